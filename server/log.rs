//! One timestamped line per event on stderr (or one with a syslog priority, for the journal).
//!
//! Lines are gathered and written once per pass of the event loop ([`flush`]): a busy server
//! logs several lines per connection, and one `write` each was a measurable part of a handshake.

use std::cell::RefCell;
use std::io::Write;
use std::time::SystemTime;

use charla_proto::io::write_until_blocked;
use charla_proto::time::utc_timestamp;

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

/// How much a line matters, as syslog numbers it: the journal shows and filters by it.
#[derive(Clone, Copy)]
pub enum Level {
    Error = 3,
    Warning = 4,
    Info = 6,
}

/// `log!("accepted {addr}")` writes `2026-11-27T22:10:03Z accepted 127.0.0.1:50123`, or
/// `<6>accepted 127.0.0.1:50123` to the journal (which stamps the time itself).
macro_rules! log {
    ($($arg:tt)*) => { $crate::log::write_line($crate::log::Level::Info, format_args!($($arg)*)) };
}
/// Something the operator should look at; the server goes on.
macro_rules! log_warning {
    ($($arg:tt)*) => { $crate::log::write_line($crate::log::Level::Warning, format_args!($($arg)*)) };
}
/// Something failed: a file not written, an event the loop could not handle.
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::log::write_line($crate::log::Level::Error, format_args!($($arg)*)) };
}
pub(crate) use {log, log_error, log_warning};

/// Whether stderr is the journal: systemd sets JOURNAL_STREAM to the device and inode of the
/// stream it connected, so a program it started whose stderr was redirected elsewhere is not
/// fooled (sd_journal_stream_fd(3)).
fn to_journal() -> bool {
    static TO_JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *TO_JOURNAL.get_or_init(|| {
        let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
            return false;
        };
        let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
            return false;
        };
        // SAFETY: fstat on descriptor 2 into a struct of ours.
        unsafe {
            let mut stat: libc::stat = std::mem::zeroed();
            libc::fstat(2, &mut stat) == 0 && stat.st_dev as u64 == dev && stat.st_ino as u64 == ino
        }
    })
}

/// What starts a line written straight to stderr (start-up errors): its priority for the
/// journal, nothing otherwise.
pub fn error_prefix() -> &'static str {
    if to_journal() {
        "<3>"
    } else {
        ""
    }
}

/// The start of a line: a timestamp, or the priority for the journal.
fn write_start(out: &mut Vec<u8>, level: Level) {
    if to_journal() {
        let _ = write!(out, "<{}>", level as u8);
    } else {
        let _ = write!(out, "{} ", utc_timestamp(SystemTime::now()));
    }
}

pub fn write_line(level: Level, args: std::fmt::Arguments<'_>) {
    PENDING.with(|pending| {
        let Ok(mut pending) = pending.try_borrow_mut() else {
            return;
        };
        let before = pending.bytes.len();
        write_start(&mut pending.bytes, level);
        let _ = writeln!(pending.bytes, "{args}");
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
        let dropped = std::mem::take(&mut pending.dropped);
        write_start(&mut pending.bytes, Level::Warning);
        let _ = writeln!(
            pending.bytes,
            "log: {dropped} lines dropped: stderr was not being read"
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
