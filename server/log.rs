//! One timestamped line per event on stderr (or one with a syslog priority, for the journal).
//!
//! Lines are gathered in memory and written by a thread of their own ([`start_writer`]): stderr
//! may be a terminal someone pressed Ctrl-S in, a pipe nobody reads or a file on a slow disk, and
//! the event loop must never wait for any of them. While the writer is stuck, at most
//! [`MAX_PENDING`] bytes wait; later lines are dropped and counted, and the count is said once the
//! writer moves again. Every thread logs the same way (the history journal's writer included).

use std::io::Write;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use charla_proto::time::utc_timestamp;

/// Lines not yet taken by the writer.
struct Pending {
    bytes: Vec<u8>,
    /// Lines dropped because the writer was behind by MAX_PENDING.
    dropped: u64,
    /// A writer thread takes the lines; without one (before it starts, or if it could not be
    /// started) `flush` writes them itself.
    writer: bool,
    /// The writer is writing a batch it took.
    busy: bool,
}

static PENDING: Mutex<Pending> = Mutex::new(Pending {
    bytes: Vec::new(),
    dropped: 0,
    writer: false,
    busy: false,
});
/// The writer waits on it for lines; `finish` waits on it for the writer to be done.
static WAKE: Condvar = Condvar::new();
static DONE: Condvar = Condvar::new();

/// Most bytes kept while the writer is stuck: further lines are dropped and counted, rather than
/// memory growing.
const MAX_PENDING: usize = 64 << 10;
/// Lines gathered past this size wake the writer before the pass ends.
const WAKE_AT: usize = 16 << 10;
/// How long exiting waits for the last lines to go out to a writer that is stuck.
const FINISH_WAIT: Duration = Duration::from_secs(1);

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
    // A panic while the lock was held must not stop the log (nor the panic hook's flush).
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    let before = pending.bytes.len();
    write_start(&mut pending.bytes, level);
    let _ = writeln!(pending.bytes, "{args}");
    if pending.bytes.len() > MAX_PENDING {
        pending.bytes.truncate(before);
        pending.dropped += 1;
    } else if pending.writer && pending.bytes.len() >= WAKE_AT && !pending.busy {
        // A storm of events within one pass: the writer starts on them now.
        WAKE.notify_one();
    }
}

/// Starts the thread that writes the log to stderr. Until it runs (start-up), `flush` writes
/// the lines itself.
pub fn start_writer() {
    let started = std::thread::Builder::new()
        .name("log".into())
        .spawn(write_forever);
    if started.is_ok() {
        PENDING.lock().unwrap_or_else(|e| e.into_inner()).writer = true;
    }
}

fn write_forever() {
    let mut batch = Vec::new();
    loop {
        let dropped = {
            let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
            while pending.bytes.is_empty() && pending.dropped == 0 {
                pending.busy = false;
                DONE.notify_all();
                pending = WAKE.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            pending.busy = true;
            std::mem::swap(&mut batch, &mut pending.bytes);
            std::mem::take(&mut pending.dropped)
        };
        if dropped > 0 {
            write_start(&mut batch, Level::Warning);
            let _ = writeln!(
                batch,
                "log: {dropped} lines dropped: stderr was not taking them"
            );
        }
        // Blocking here is what this thread is for; a log that cannot be written (stderr closed)
        // is not worth stopping for.
        let _ = std::io::stderr().lock().write_all(&batch);
        batch.clear();
        // A batch that was large once does not keep its memory.
        batch.shrink_to(MAX_PENDING);
    }
}

/// Hands the gathered lines to the writer (at the end of each pass of the event loop): a wake-up,
/// never a write. Before the writer runs, writes them here.
pub fn flush() {
    let Ok(mut pending) = PENDING.try_lock() else {
        return;
    };
    if pending.writer {
        if !pending.bytes.is_empty() || pending.dropped > 0 {
            WAKE.notify_one();
        }
        return;
    }
    let bytes = std::mem::take(&mut pending.bytes);
    drop(pending);
    let _ = std::io::stderr().lock().write_all(&bytes);
}

/// Before the process exits: lets the writer put out what is left, waiting at most FINISH_WAIT
/// (a stopped terminal must not keep a stopped server from exiting).
pub fn finish() {
    let deadline = Instant::now() + FINISH_WAIT;
    // Not lock(): from the panic hook, this thread may be the one holding it.
    let mut pending = loop {
        match PENDING.try_lock() {
            Ok(pending) => break pending,
            Err(std::sync::TryLockError::Poisoned(e)) => break e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(std::sync::TryLockError::WouldBlock) => return,
        }
    };
    if !pending.writer {
        let bytes = std::mem::take(&mut pending.bytes);
        drop(pending);
        let _ = std::io::stderr().lock().write_all(&bytes);
        return;
    }
    WAKE.notify_one();
    while !pending.bytes.is_empty() || pending.dropped > 0 || pending.busy {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        pending = DONE
            .wait_timeout(pending, left)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}
