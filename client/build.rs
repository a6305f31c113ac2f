use slint_build::{CompilerConfiguration, DefaultTranslationContext};

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
}
