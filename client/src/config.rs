//! Files in the user's config directory: the last login values and the known servers.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// `$CHARLA_CONFIG_DIR`, else `$XDG_CONFIG_HOME/charla`, else `~/.config/charla`.
pub fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHARLA_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("charla");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".config").join("charla")
}

/// A file name as given on the command line or in the login window, made absolute against the
/// current directory: the settings are read again from other directories. Empty stays empty.
pub fn absolute_path(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    match std::path::absolute(path) {
        Ok(abs) => abs.to_string_lossy().into_owned(),
        Err(_) => path.to_string(),
    }
}

/// Writes a file whole or not at all (a crash mid-write must not eat the known servers).
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    charla_proto::files::write_atomically(path, text.as_bytes())
}

/// Lines the window's log keeps unless told otherwise (`--log-lines`), and the range allowed.
pub const DEFAULT_LOG_LINES: usize = 5000;
pub const LOG_LINES: std::ops::RangeInclusive<usize> = 100..=100_000;

/// The text sizes Ctrl + and Ctrl - step through.
pub const TEXT_SCALES: [f32; 8] = [0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 1.75, 2.0];

/// The next text size: a step bigger (`step` > 0), smaller (< 0), or back to 1 (0).
pub fn next_text_scale(now: f32, step: i32) -> f32 {
    let at = TEXT_SCALES
        .iter()
        .position(|&s| s >= now)
        .unwrap_or(TEXT_SCALES.len() - 1);
    match step {
        0 => 1.0,
        s if s > 0 => TEXT_SCALES[(at + 1).min(TEXT_SCALES.len() - 1)],
        _ => TEXT_SCALES[at.saturating_sub(1)],
    }
}

/// The login window's last values, remembered between runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub nick: String,
    /// A CA or certificate file to verify the server with; empty for trust on first use.
    pub ca: String,
    /// `system`, `light` or `dark`.
    pub theme: String,
    /// The window's text size, 1 as the style draws it.
    pub text_scale: f32,
    /// Lines the log keeps; the oldest go first.
    pub log_lines: usize,
    /// The port last used to host a chat on this computer.
    pub host_port: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "localhost".into(),
            port: charla_proto::DEFAULT_PORT,
            nick: String::new(),
            ca: String::new(),
            theme: "system".into(),
            text_scale: 1.0,
            log_lines: DEFAULT_LOG_LINES,
            host_port: charla_proto::DEFAULT_PORT,
        }
    }
}

impl Settings {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("settings")
    }

    /// The saved values, or the defaults for what is missing or unreadable.
    pub fn load(dir: &Path) -> Settings {
        let mut s = Settings::default();
        let Ok(text) = fs::read_to_string(Self::path(dir)) else {
            return s;
        };
        for line in text.lines() {
            match line.split_once('=') {
                Some(("host", v)) => s.host = v.to_string(),
                Some(("port", v)) => s.port = v.parse().unwrap_or(s.port),
                Some(("host_port", v)) => {
                    s.host_port = v.parse().ok().filter(|&p| p > 0).unwrap_or(s.host_port)
                }
                Some(("nick", v)) => s.nick = v.to_string(),
                Some(("ca", v)) => s.ca = v.to_string(),
                Some(("theme", v)) if matches!(v, "system" | "light" | "dark") => {
                    s.theme = v.to_string()
                }
                Some(("log_lines", v)) => {
                    if let Some(n) = v.parse().ok().filter(|n| LOG_LINES.contains(n)) {
                        s.log_lines = n;
                    }
                }
                Some(("text_scale", v)) => {
                    if let Some(scale) = v.parse().ok().filter(|s| TEXT_SCALES.contains(s)) {
                        s.text_scale = scale;
                    }
                }
                _ => {}
            }
        }
        s
    }

    pub fn save(&self, dir: &Path) -> io::Result<()> {
        let text = format!(
            "host={}\nport={}\nnick={}\nca={}\ntheme={}\ntext_scale={}\nlog_lines={}\nhost_port={}\n",
            self.host,
            self.port,
            self.nick,
            self.ca,
            self.theme,
            self.text_scale,
            self.log_lines,
            self.host_port
        );
        write_atomically(&Self::path(dir), &text)
    }
}

/// Servers trusted on first use: `host:port` → SHA-256 fingerprint, as SSH's known_hosts.
#[derive(Debug, Clone)]
pub struct KnownServers {
    path: PathBuf,
}

impl KnownServers {
    pub fn in_dir(dir: &Path) -> KnownServers {
        KnownServers {
            path: dir.join("known_servers"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> io::Result<BTreeMap<String, String>> {
        match fs::read_to_string(&self.path) {
            Ok(text) => Ok(text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .filter_map(|l| l.split_once(' '))
                .map(|(server, fp)| (server.to_string(), fp.trim().to_string()))
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(e),
        }
    }

    /// The fingerprint remembered for `server` (`host:port`).
    pub fn lookup(&self, server: &str) -> io::Result<Option<String>> {
        Ok(self.read()?.remove(server))
    }

    pub fn remember(&self, server: &str, fingerprint: &str) -> io::Result<()> {
        let mut all = self.read()?;
        all.insert(server.to_string(), fingerprint.to_string());
        let mut text =
            String::from("# host:port SHA-256 fingerprint, trusted on first use by charla\n");
        for (server, fp) in all {
            text.push_str(&format!("{server} {fp}\n"));
        }
        write_atomically(&self.path, &text)
    }
}

/// Servers whose history notice the window has shown (once per server, not at every
/// registration), one `host:port` per line.
#[derive(Debug, Clone)]
pub struct HistoryNoticesSeen {
    path: PathBuf,
}

impl HistoryNoticesSeen {
    pub fn in_dir(dir: &Path) -> HistoryNoticesSeen {
        HistoryNoticesSeen {
            path: dir.join("history_notices_seen"),
        }
    }

    /// Whether the notice of `server` is shown now for the first time; it is remembered. If the
    /// file cannot be written the notice is shown again next time: better twice than never.
    pub fn first_time(&self, server: &str) -> bool {
        let text = fs::read_to_string(&self.path).unwrap_or_default();
        if text.lines().any(|l| l == server) {
            return false;
        }
        let _ = write_atomically(&self.path, &format!("{text}{server}\n"));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("charla-config-test-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn settings_round_trip_and_defaults() {
        let dir = temp_dir("settings");
        assert_eq!(Settings::load(&dir), Settings::default());
        let s = Settings {
            host: "chat.example.org".into(),
            port: 4000,
            nick: "ana".into(),
            ca: "/x/ca.pem".into(),
            theme: "dark".into(),
            text_scale: 1.25,
            log_lines: 800,
            host_port: 4001,
        };
        s.save(&dir).unwrap();
        assert_eq!(Settings::load(&dir), s);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn text_sizes_step_within_bounds() {
        assert_eq!(next_text_scale(1.0, 1), 1.1);
        assert_eq!(next_text_scale(1.1, -1), 1.0);
        assert_eq!(next_text_scale(2.0, 1), 2.0);
        assert_eq!(next_text_scale(0.8, -1), 0.8);
        assert_eq!(next_text_scale(1.75, 0), 1.0);
    }

    #[test]
    fn relative_paths_are_made_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            absolute_path("certs/server-cert.pem"),
            cwd.join("certs/server-cert.pem").to_string_lossy()
        );
        assert_eq!(absolute_path("/etc/ca.pem"), "/etc/ca.pem");
        assert_eq!(absolute_path(""), "");
    }

    #[test]
    fn a_history_notice_is_new_once_per_server() {
        let dir = temp_dir("notices");
        let seen = HistoryNoticesSeen::in_dir(&dir);
        assert!(seen.first_time("a:1"));
        assert!(!seen.first_time("a:1"));
        assert!(seen.first_time("b:2"));
        assert!(
            !HistoryNoticesSeen::in_dir(&dir).first_time("a:1"),
            "remembered"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn known_servers_remember_and_replace() {
        let dir = temp_dir("known");
        let known = KnownServers::in_dir(&dir);
        assert_eq!(known.lookup("a:1").unwrap(), None);
        known.remember("a:1", "AA").unwrap();
        known.remember("b:2", "BB").unwrap();
        known.remember("a:1", "CC").unwrap();
        assert_eq!(known.lookup("a:1").unwrap().as_deref(), Some("CC"));
        assert_eq!(known.lookup("b:2").unwrap().as_deref(), Some("BB"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
