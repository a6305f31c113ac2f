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
/// Only where that was measured: the release build, linked by the LLD that rustup's Rust (1.90
/// or later) ships and uses for x86-64 Linux, no linker chosen by the user.
fn order_the_code_run_at_start() {
    println!("cargo:rerun-if-changed=link-order.txt");
    // A linker chosen through the environment (cargo hands it on as RUSTC_LINKER, below).
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    // Set by scripts/order-client-code.sh: valgrind names only the functions in `.text`.
    println!("cargo:rerun-if-env-changed=CHARLA_UNORDERED");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    // The profiling build (debug info) is for perf and valgrind: its functions stay in `.text`.
    if !var("CHARLA_UNORDERED").is_empty() || var("DEBUG") == "true" {
        return;
    }
    if var("TARGET") != "x86_64-unknown-linux-gnu" || var("PROFILE") != "release" {
        return;
    }
    // A linker the user chose (in .cargo/config.toml, the environment or the flags: mold, say,
    // which takes no SECTIONS) gets no script.
    let rustflags = var("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = !var("RUSTC_LINKER").is_empty()
        || [
            "linker=",
            "linker-flavor",
            "linker-features",
            "fuse-ld",
            "ld-path",
        ]
        .iter()
        .any(|flag| rustflags.contains(flag));
    if own_linker || !rustc_links_with_its_lld() {
        return;
    }
    let list = std::fs::read_to_string("link-order.txt").expect("read client/link-order.txt");
    let script = link_order::linker_script(&list);
    let path = std::path::Path::new(&var("OUT_DIR")).join("start-code.ld");
    std::fs::write(&path, script).expect("write the linker script");
    // As two arguments: a path may hold a comma, which -Wl, would split on.
    println!("cargo:rustc-link-arg-bin=charla=-T");
    println!("cargo:rustc-link-arg-bin=charla={}", path.display());
}

/// Rust 1.90 made the LLD it ships (`gcc-ld/ld.lld` in its sysroot) the linker for
/// x86_64-unknown-linux-gnu; a distribution's rustc may ship none and link with the system's ld.
fn rustc_links_with_its_lld() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let output = |args: &[&str]| {
        std::process::Command::new(&rustc)
            .args(args)
            .output()
            .ok()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default()
    };
    let version = output(&["-vV"]);
    let Some(release) = version.lines().find_map(|l| l.strip_prefix("release: ")) else {
        return false;
    };
    let mut parts = release
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let sysroot = output(&["--print", "sysroot"]);
    let lld = std::path::Path::new(sysroot.trim())
        .join("lib/rustlib/x86_64-unknown-linux-gnu/bin/gcc-ld/ld.lld");
    (major, minor) >= (1, 90) && lld.exists()
}
