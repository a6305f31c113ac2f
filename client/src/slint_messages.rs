//! Slint's runtime diagnostics (its `debug_log`, routed to the `log` crate by Slint's `log`
//! feature): written to stderr as Slint would, except the ones that only say something is absent
//! that nobody misses.

use std::io::Write;

struct SlintMessages;

/// Without a desktop session bus (a bare X server, a container, `ssh -X`) Slint cannot watch the
/// desktop's light or dark setting; the window keeps its own, and says nothing of it.
const NOT_SAID: &[&str] = &["Error watching for xdg desktop settings"];

impl log::Log for SlintMessages {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        // Slint's own; the other crates' debug messages are not for people.
        metadata.target().starts_with("i_slint")
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        if NOT_SAID.iter().any(|quiet| text.starts_with(quiet)) {
            return;
        }
        // A closed stderr is no reason to stop.
        let _ = writeln!(std::io::stderr(), "{text}");
    }

    fn flush(&self) {}
}

/// Takes Slint's diagnostics from now on; once, before Slint starts.
pub fn install() {
    static LOGGER: SlintMessages = SlintMessages;
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}
