//! One timestamped line per event on stderr.
//!
//! Lines are gathered and written once per pass of the event loop ([`flush`]): a busy server
//! logs several lines per connection, and one `write` each was a measurable part of a handshake.

use std::cell::RefCell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use charla_proto::io::write_until_blocked;

thread_local! {
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending { bytes: Vec::new(), dropped: 0 }) };
}

/// Lines not yet taken by stderr.
struct Pending {
    bytes: Vec<u8>,
    /// Lines dropped since the last that went out, because stderr was not being read.
    dropped: u64,
}

/// Written at once past this size, so that a storm of events does not pile up lines.
const FLUSH_AT: usize = 16 << 10;
/// Most bytes kept while stderr takes nothing (a pipe nobody reads): further lines are dropped
/// and counted, rather than the event loop waiting for the reader or memory growing.
const MAX_PENDING: usize = 64 << 10;

/// `log!("accepted {addr}")` writes `2026-11-27T22:10:03Z accepted 127.0.0.1:50123`.
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::write_line(format_args!($($arg)*)) };
}
pub(crate) use log;

pub fn write_line(args: std::fmt::Arguments<'_>) {
    let stamp = utc_timestamp(SystemTime::now());
    PENDING.with(|pending| {
        let Ok(mut pending) = pending.try_borrow_mut() else {
            return;
        };
        let before = pending.bytes.len();
        let _ = writeln!(pending.bytes, "{stamp} {args}");
        if pending.bytes.len() > MAX_PENDING {
            pending.bytes.truncate(before);
            pending.dropped += 1;
            return;
        }
        if pending.bytes.len() >= FLUSH_AT {
            write_out(&mut pending);
        }
    });
}

/// Writes the gathered lines, as far as stderr takes them: at the end of each pass of the event
/// loop, before the server exits, and from the panic hook.
pub fn flush() {
    PENDING.with(|pending| {
        if let Ok(mut pending) = pending.try_borrow_mut() {
            write_out(&mut pending);
        }
    });
}

fn write_out(pending: &mut Pending) {
    let mut stderr = std::io::stderr().lock();
    loop {
        match write_until_blocked(&mut stderr, &pending.bytes) {
            Ok(n) => {
                pending.bytes.drain(..n);
            }
            // A log that cannot be written (stderr closed) is not worth stopping the chat for.
            Err(_) => pending.bytes.clear(),
        }
        if !pending.bytes.is_empty() || pending.dropped == 0 {
            return;
        }
        let stamp = utc_timestamp(SystemTime::now());
        let dropped = std::mem::take(&mut pending.dropped);
        let _ = writeln!(
            pending.bytes,
            "{stamp} log: {dropped} lines dropped: stderr was not being read"
        );
    }
}

/// While the server runs, a full stderr pipe or socket (a log reader that stalls) must not stop
/// the event loop: writes to it return at once instead of waiting ([`write_out`] keeps the rest).
/// Terminals and files are left as they are (they do not stall for long, and the flag would be
/// shared with the shell). The flag comes off again when the guard is dropped.
pub fn nonblocking_stderr() -> NonblockingStderr {
    use std::os::fd::AsRawFd;
    let fd = std::io::stderr().as_raw_fd();
    // SAFETY: fstat and fcntl on descriptor 2 with a struct of ours.
    unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        let kind = if libc::fstat(fd, &mut stat) == 0 {
            stat.st_mode & libc::S_IFMT
        } else {
            0
        };
        let stalls = kind == libc::S_IFIFO || kind == libc::S_IFSOCK;
        if flags < 0 || !stalls || flags & libc::O_NONBLOCK != 0 {
            return NonblockingStderr { restore: None };
        }
        if libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) != 0 {
            return NonblockingStderr { restore: None };
        }
        NonblockingStderr {
            restore: Some(flags),
        }
    }
}

pub struct NonblockingStderr {
    restore: Option<libc::c_int>,
}

impl Drop for NonblockingStderr {
    fn drop(&mut self) {
        // What stderr does not take now is dropped: exiting must not wait for a stalled reader.
        flush();
        PENDING.with(|pending| {
            if let Ok(mut pending) = pending.try_borrow_mut() {
                pending.bytes.clear();
            }
        });
        if let Some(flags) = self.restore {
            use std::os::fd::AsRawFd;
            // SAFETY: fcntl on descriptor 2, putting back the flags it had.
            unsafe {
                libc::fcntl(std::io::stderr().as_raw_fd(), libc::F_SETFL, flags);
            }
        }
    }
}

/// RFC 3339 UTC time with whole seconds, without a date library.
pub fn utc_timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date, after Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661); // 2000-02-29 01:01:01
        assert_eq!(utc_timestamp(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_817_199); // 2026-11-27 22:06:39
        assert_eq!(utc_timestamp(t), "2026-11-27T22:06:39Z");
    }
}
