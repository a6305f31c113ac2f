//! The lock that keeps two servers off the same files (`--history-file`, `--state-dir`).

use std::fs::File;
use std::path::{Path, PathBuf};

/// `PATH.lock`, locked for as long as the server runs: a second server given the same file would
/// rewrite it under the first one's feet. (The file itself is replaced when it is rewritten, so
/// its own lock would not last.)
pub fn lock(path: &Path, flag: &str) -> Result<File, String> {
    use std::os::fd::AsRawFd;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let lock_path = PathBuf::from(name);
    let file = charla_proto::files::open_lock_file(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "{} is in use by another charla-server (its lock {} is held); give each server its \
             own {flag}",
            path.display(),
            lock_path.display()
        ));
    }
    Ok(file)
}
