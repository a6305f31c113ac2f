use slint_build::{CompilerConfiguration, DefaultTranslationContext};

#[path = "link_order.rs"]
mod link_order;

fn main() {
    let config = CompilerConfiguration::new()
        .with_bundled_translations(concat!(env!("CARGO_MANIFEST_DIR"), "/../lang"))
        // lang/*.po carry plain msgids, without a component name as context.
        .with_default_translation_context(DefaultTranslationContext::None)
        // Element lookups in the UI tests (i-slint-backend-testing) need this debug info.
        .with_debug_info(true);
    slint_build::compile_with_config("../ui/app.slint", config).expect("compile ui/app.slint");
    println!("cargo:rerun-if-changed=../ui");
    println!("cargo:rerun-if-changed=../lang");
    order_the_code_run_at_start();
}

/// The window runs about 2 MB of its 9 MB of code to start, connect and sit idle, spread over
/// the whole binary: the kernel maps code in 64 KiB around each page touched, so nearly all of
/// it ends up resident. `link-order.txt` lists those functions (made by
/// `scripts/order-client-code.sh`); a linker script puts them first, together (link_order.rs).
/// Only for the release build, where the linker is rustc's own LLD (x86-64 Linux, Rust 1.90 or
/// later, no linker of the user's): that is where it was measured.
fn order_the_code_run_at_start() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    // Set by scripts/order-client-code.sh: valgrind names only the functions in `.text`.
    println!("cargo:rerun-if-env-changed=CHARLA_UNORDERED");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if !var("CHARLA_UNORDERED").is_empty() {
        return;
    }
    // A linker of the user's (mold, say, through -fuse-ld) may not take a linker script.
    let rustflags = var("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = !var("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
        || rustflags.contains("linker")
        || rustflags.contains("fuse-ld");
    if var("TARGET") != "x86_64-unknown-linux-gnu" || var("PROFILE") != "release" || own_linker {
        return;
    }
    if !rustc_links_with_lld() {
        return;
    }
    let list = std::fs::read_to_string("link-order.txt").expect("read client/link-order.txt");
    let script = link_order::linker_script(&list);
    let path = std::path::Path::new(&var("OUT_DIR")).join("start-code.ld");
    std::fs::write(&path, script).expect("write the linker script");
    println!("cargo:rustc-link-arg-bin=charla=-Wl,-T,{}", path.display());
}

/// Rust 1.90 made rust-lld the linker for x86_64-unknown-linux-gnu.
fn rustc_links_with_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("-vV").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let Some(release) = text.lines().find_map(|l| l.strip_prefix("release: ")) else {
        return false;
    };
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
