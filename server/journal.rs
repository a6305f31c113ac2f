//! `--history-file`: the history on disk, so that it survives a restart, a crash or SIGKILL.
//!
//! The file is append-only text: a header line, then one record per public line,
//! `<id> <unix seconds> <author> <bytes> <line>`. The byte count tells a record cut short by a
//! crash from a whole one. A thread of its own writes it, so that the event loop never waits on
//! the disk (an SD card can take a second); the loop hands records over without blocking and
//! counts those it had to drop if the disk falls that far behind. The thread rewrites the file
//! from the history it mirrors once it holds twice the history's bound (and at least 256 KiB),
//! and syncs it to the disk once a second while there are new records (see docs/security.md for
//! what a power cut loses).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::history::{Entry, History};
use crate::log::{log, log_error, log_warning};

const HEADER: &str = "charla-history 1";
/// Batches of records (one per pass of the event loop) the loop may hand over before the writer
/// has taken them; past that they wait in the loop (see `Journal::pending`).
const QUEUE: usize = 256;
/// How often new records are synced to the disk.
const SYNC_EVERY: Duration = Duration::from_secs(1);
/// The file is rewritten once it holds twice the history's bound and at least this much: a
/// short history would otherwise be rewritten (and synced) every few lines on a busy server.
const REWRITE_AT_LEAST: usize = 256 << 10;

/// The writer's end, held by the chat core's history.
pub struct Journal {
    records: Option<SyncSender<Vec<Entry>>>,
    writer: Option<JoinHandle<()>>,
    /// Records of this pass of the event loop, handed over together at its end: one wake-up of
    /// the writer per pass, not per line. While the writer is behind (a slow disk) they wait
    /// here, the oldest given up past the history's bound, as the history itself does.
    pending: Vec<Entry>,
    max_lines: usize,
    max_bytes: usize,
}

/// Opens (or creates, mode 0600) the journal at `path` and reads the history it holds, within
/// the history's bounds. A file that is not a journal is refused; a record cut short (a crash
/// while writing) or damaged is skipped, with one log line. A disk that cannot be written (full)
/// does not keep the server from starting: the history goes on in memory, and the file is
/// written again as soon as the disk takes it (the log says both).
pub fn open(
    path: &Path,
    max_lines: usize,
    max_bytes: usize,
) -> Result<(Journal, Vec<Entry>), String> {
    let lock = crate::lockfile::lock(path, "--history-file")?;
    let mut history = History::new(max_lines, max_bytes, 1);
    read_journal(path, &mut history)?;
    let entries: Vec<Entry> = history.after(0).cloned().collect();
    let mirror = {
        let mut mirror = History::new(max_lines, max_bytes, 1);
        for entry in &entries {
            mirror.record(entry.clone());
        }
        mirror
    };
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let mut writer = Writer {
        _lock: lock,
        path: path.to_path_buf(),
        file: None,
        good_len: 0,
        behind: true,
        retry_at: None,
        reported: false,
        mirror,
        max_lines,
        max_bytes,
        records_in_file: 0,
    };
    // Written afresh: what was skipped goes, and the file starts within its bound.
    writer.catch_up();
    if writer.behind {
        // Appends wait for the file to be rewritten whole; until then it keeps what it had.
        writer.file = OpenOptions::new().append(true).open(path).ok();
    }
    let thread = std::thread::Builder::new()
        .name("history-journal".into())
        .spawn(move || writer.run(rx))
        .map_err(|e| format!("cannot start the history file's writer: {e}"))?;
    Ok((
        Journal {
            records: Some(tx),
            writer: Some(thread),
            pending: Vec::new(),
            max_lines,
            max_bytes,
        },
        entries,
    ))
}

/// The most of a history file read at start: it is rewritten once it holds twice the history's
/// bound (and 256 KiB), so a file much larger than that is not one this server wrote with these
/// settings; its newest part is read.
fn read_limit(history: &History) -> u64 {
    // Each record also carries its id, time, author and length: at most ~64 bytes.
    let bound = history.max_bytes() + 64 * history.max_lines();
    (4 * bound).max(4 * REWRITE_AT_LEAST) as u64
}

/// Reads the records of the journal at `path` into `history`, through the one bounded reader
/// that never waits (a FIFO at the path) nor takes a file without end (a link to /dev/zero).
fn read_journal(path: &Path, history: &mut History) -> Result<(), String> {
    let shown = path.display();
    let cannot = |e: io::Error| format!("cannot read the history file {shown}: {e}");
    let mut first = Vec::new();
    match charla_proto::files::open_regular(path) {
        Ok(file) => {
            file.take(HEADER.len() as u64 + 1)
                .read_to_end(&mut first)
                .map_err(cannot)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(cannot(e)),
    }
    if first.is_empty() {
        return Ok(());
    }
    if first != format!("{HEADER}\n").as_bytes() {
        return Err(format!(
            "{shown} is not a Charla history file (its first line is not '{HEADER}'): give \
             --history-file a new path, or remove the file if it is an old one of yours"
        ));
    }
    let limit = read_limit(history);
    let (bytes, cut) = charla_proto::files::read_tail(path, limit).map_err(cannot)?;
    if cut {
        log_warning!(
            "history file {shown}: larger than {} KiB, more than this server writes; its newest \
             part is read",
            limit >> 10
        );
    }
    let mut records = bytes.split_inclusive(|&b| b == b'\n');
    if !cut {
        records.next();
    }
    let mut skipped = 0;
    for record in records {
        match parse_record(record) {
            Some(entry) => history.record(entry),
            None => skipped += 1,
        }
    }
    if skipped > 0 {
        log_warning!(
            "history file {shown}: skipped {skipped} damaged or incomplete record(s) (a crash \
             while writing?); the rest is kept"
        );
    }
    Ok(())
}

fn parse_record(bytes: &[u8]) -> Option<Entry> {
    let text = std::str::from_utf8(bytes.strip_suffix(b"\n")?).ok()?;
    let mut parts = text.splitn(5, ' ');
    let id = parts.next()?.parse().ok()?;
    let at = parts.next()?.parse().ok()?;
    let author = parts.next()?.parse().ok()?;
    let len: usize = parts.next()?.parse().ok()?;
    let stored = parts.next()?;
    if stored.len() != len || stored.is_empty() {
        return None;
    }
    // A line of a room other than the default one is stored with its room's key in front.
    let (room, line) = match stored.split_once(' ') {
        Some((room, line)) if room.starts_with('#') => (Some(room.into()), line),
        _ => (None, stored),
    };
    Some(Entry {
        id,
        at,
        author,
        room,
        line: line.into(),
    })
}

fn push_record(out: &mut Vec<u8>, e: &Entry) {
    let _ = match &e.room {
        Some(room) => writeln!(
            out,
            "{} {} {} {} {room} {}",
            e.id,
            e.at,
            e.author,
            room.len() + 1 + e.line.len(),
            e.line
        ),
        None => writeln!(
            out,
            "{} {} {} {} {}",
            e.id,
            e.at,
            e.author,
            e.line.len(),
            e.line
        ),
    };
}

/// Writes the header and `entries` to a temporary file, syncs it and renames it over `path`;
/// returns the new file, open for appending.
fn rewrite<'a>(path: &Path, entries: impl IntoIterator<Item = &'a Entry>) -> io::Result<File> {
    let mut bytes = format!("{HEADER}\n").into_bytes();
    for entry in entries {
        push_record(&mut bytes, entry);
    }
    charla_proto::files::write_atomically(path, &bytes)?;
    OpenOptions::new().append(true).open(path)
}

impl Journal {
    /// Keeps a record for the writer; it goes with the others of this pass ([`Journal::flush`]).
    pub fn append(&mut self, entry: &Entry) {
        if self.records.is_some() {
            self.pending.push(entry.clone());
        }
    }

    /// Hands this pass's records to the writer, without waiting.
    pub fn flush(&mut self) {
        let Some(records) = &self.records else {
            return;
        };
        if self.pending.is_empty() {
            return;
        }
        match records.try_send(std::mem::take(&mut self.pending)) {
            Ok(()) => {}
            Err(TrySendError::Full(mut waiting)) => {
                let mut bytes: usize = waiting.iter().map(|e| e.line.len()).sum();
                let mut first = waiting.len().saturating_sub(self.max_lines);
                for e in &waiting[..first] {
                    bytes -= e.line.len();
                }
                while bytes > self.max_bytes && first < waiting.len() {
                    bytes -= waiting[first].line.len();
                    first += 1;
                }
                waiting.drain(..first);
                self.pending = waiting;
            }
            Err(TrySendError::Disconnected(_)) => {
                log_error!("history file: its writer stopped; the history is kept in memory only");
                self.records = None;
            }
        }
    }
}

impl crate::chat::HistorySink for Journal {
    fn keep(&mut self, entry: &Entry) {
        self.append(entry);
    }

    fn flush(&mut self) {
        Journal::flush(self);
    }

    fn finish(&mut self, wait: Duration) {
        Journal::finish(self, Some(wait));
    }
}

impl Journal {
    /// At exit: the writer takes what is left, syncs and stops; this waits for it at most `wait`
    /// (a second signal: the operator wants out), or as long as the disk takes.
    fn finish(&mut self, wait: Option<Duration>) {
        let deadline = wait.map(|wait| Instant::now() + wait);
        let past = || deadline.is_some_and(|at| Instant::now() >= at);
        if let Some(records) = self.records.take() {
            let mut batch = std::mem::take(&mut self.pending);
            while !batch.is_empty() {
                match records.try_send(batch) {
                    Ok(()) => break,
                    Err(TrySendError::Full(back)) if !past() => {
                        batch = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => break,
                }
            }
        }
        if let Some(writer) = self.writer.take() {
            while !writer.is_finished() && !past() {
                std::thread::sleep(Duration::from_millis(1));
            }
            if writer.is_finished() {
                let _ = writer.join();
            }
        }
    }
}

impl Drop for Journal {
    /// At exit (the server stopped after SIGTERM): the writer takes what is left, syncs and stops.
    fn drop(&mut self) {
        self.finish(None);
    }
}

struct Writer {
    /// Held while the writer lives: one server per history file.
    _lock: File,
    path: PathBuf,
    /// Open for appending; `None` when it could not even be opened.
    file: Option<File>,
    /// The length of the file up to its last whole record: a write cut short (a full disk) is
    /// cut off there, so that what comes next is not glued to half a record.
    good_len: u64,
    /// The file does not hold every record of the mirror (a write failed): it is rewritten whole
    /// from the mirror when the disk takes it again, and nothing is appended until then.
    behind: bool,
    /// When to try again while behind, or to compact after a compaction failed.
    retry_at: Option<Instant>,
    /// Falling behind was logged; catching up will be.
    reported: bool,
    /// The history as the file should hold it, to rewrite the file from.
    mirror: History,
    max_lines: usize,
    max_bytes: usize,
    records_in_file: usize,
}

/// How often a writer that is behind (a full disk) tries again, besides when new lines come.
const RETRY_EVERY: Duration = Duration::from_secs(5);

impl Writer {
    fn run(mut self, records: mpsc::Receiver<Vec<Entry>>) {
        let mut unsynced: Option<Instant> = None;
        let mut batch = Vec::new();
        loop {
            let sync_due = unsynced.map(|since| since + SYNC_EVERY);
            let wake = sync_due.into_iter().chain(self.retry_at).min();
            let wait = wake.map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(Instant::now())
            });
            match records.recv_timeout(wait) {
                Ok(entries) => {
                    batch.clear();
                    let mut count = 0;
                    for entry in entries.into_iter().chain(records.try_iter().flatten()) {
                        push_record(&mut batch, &entry);
                        self.mirror.record(entry);
                        count += 1;
                    }
                    if self.behind {
                        self.catch_up();
                    } else {
                        self.append(&batch, count);
                        unsynced.get_or_insert_with(Instant::now);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    if self.behind {
                        self.catch_up();
                    }
                    self.sync();
                    return;
                }
            }
            if self.retry_at.is_some_and(|at| at <= Instant::now()) {
                self.retry_at = None;
                if self.behind {
                    self.catch_up();
                } else {
                    self.compact_if_over();
                }
            }
            if unsynced.is_some_and(|since| since.elapsed() >= SYNC_EVERY) {
                self.sync();
                unsynced = None;
            }
        }
    }

    /// Appends a batch of records; if the disk does not take it whole, cuts the file back to its
    /// last whole record and falls behind.
    fn append(&mut self, batch: &[u8], count: usize) {
        let Some(file) = &mut self.file else {
            return self.fall_behind("the file is not open".into());
        };
        match file.write_all(batch) {
            Ok(()) => {
                self.good_len += batch.len() as u64;
                self.records_in_file += count;
                self.compact_if_over();
            }
            Err(e) => {
                // Truncating needs no space: the next write starts at a record's start.
                let _ = file.set_len(self.good_len);
                self.fall_behind(e.to_string());
            }
        }
    }

    fn fall_behind(&mut self, why: String) {
        if !self.reported {
            log_error!(
                "history file {}: cannot write it ({why}): the history is kept in memory, and \
                 the file written again as soon as the disk takes it",
                self.path.display()
            );
            self.reported = true;
        }
        self.behind = true;
        self.retry_at = Some(Instant::now() + RETRY_EVERY);
    }

    /// Rewrites the file whole from the mirror: at start, and while behind.
    fn catch_up(&mut self) {
        match rewrite(&self.path, self.mirror.after(0)) {
            Ok(file) => {
                if std::mem::take(&mut self.reported) {
                    log!(
                        "history file {}: written again, {} messages",
                        self.path.display(),
                        self.mirror.after(0).count()
                    );
                }
                self.good_len = file.metadata().map_or(0, |m| m.len());
                self.file = Some(file);
                self.records_in_file = self.mirror.after(0).count();
                self.behind = false;
                self.retry_at = None;
            }
            Err(e) => self.fall_behind(e.to_string()),
        }
    }

    /// Rewrites the file from the mirror once it holds twice the history's bound (and at least
    /// REWRITE_AT_LEAST), so that it stays within that; a failure is tried again later.
    fn compact_if_over(&mut self) {
        let over = self.records_in_file > 2 * self.max_lines.max(1)
            || self.good_len as usize > 2 * self.max_bytes;
        if !over || (self.good_len as usize) < REWRITE_AT_LEAST || self.retry_at.is_some() {
            return;
        }
        match rewrite(&self.path, self.mirror.after(0)) {
            Ok(file) => {
                self.good_len = file.metadata().map_or(0, |m| m.len());
                self.file = Some(file);
                self.records_in_file = self.mirror.after(0).count();
            }
            Err(e) => {
                log_error!(
                    "history file {}: cannot rewrite it ({e}); appending goes on",
                    self.path.display()
                );
                self.retry_at = Some(Instant::now() + RETRY_EVERY);
            }
        }
    }

    fn sync(&mut self) {
        let Some(file) = &self.file else {
            return;
        };
        if let Err(e) = file.sync_data() {
            // What was written may not be on the disk: rewritten whole when the disk takes it.
            self.fall_behind(format!("sync failed: {e}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn entry(id: u64, line: &str) -> Entry {
        Entry {
            id,
            at: 1_700_000_000 + id,
            author: 7,
            room: None,
            line: line.into(),
        }
    }

    /// The journal and its lock file.
    fn remove(path: &Path) {
        std::fs::remove_file(path).unwrap();
        let mut lock = path.as_os_str().to_owned();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("charla-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn records_survive_a_reopen_and_a_torn_last_record_is_skipped() {
        let path = temp("torn");
        {
            let (mut journal, loaded) = open(&path, 100, 1 << 20).unwrap();
            assert!(loaded.is_empty());
            journal.append(&entry(1, "MSG ana uno"));
            journal.append(&entry(2, "MSG ana dos con espacios"));
        }
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // A crash in the middle of writing the third record.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"3 1700000003 7 11 MSG an").unwrap();
        drop(file);
        let (_journal, loaded) = open(&path, 100, 1 << 20).unwrap();
        let lines: Vec<&str> = loaded.iter().map(|e| &*e.line).collect();
        assert_eq!(lines, ["MSG ana uno", "MSG ana dos con espacios"]);
        assert_eq!(loaded[1], entry(2, "MSG ana dos con espacios"));
        remove(&path);
    }

    /// Issue 22: the lines of every room go to the one file, each with its room; the default
    /// room's as before, so that a file written before rooms is read as the default room's.
    #[test]
    fn each_line_comes_back_with_its_room() {
        let path = temp("rooms");
        let in_room = Entry {
            room: Some("#tareas".into()),
            ..entry(2, "MSG ana deberes")
        };
        {
            let (mut journal, _) = open(&path, 100, 1 << 20).unwrap();
            journal.append(&entry(1, "MSG ana hola"));
            journal.append(&in_room);
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(" 12 MSG ana hola\n"), "{text}");
        assert!(text.contains(" 23 #tareas MSG ana deberes\n"), "{text}");
        let (_journal, loaded) = open(&path, 100, 1 << 20).unwrap();
        assert_eq!(loaded, [entry(1, "MSG ana hola"), in_room]);
        remove(&path);
    }

    #[test]
    fn one_server_per_file() {
        let path = temp("locked");
        let (first, _) = open(&path, 100, 1 << 20).unwrap();
        let err = open(&path, 100, 1 << 20).err().unwrap();
        assert!(err.contains("in use by another charla-server"), "{err}");
        drop(first);
        assert!(open(&path, 100, 1 << 20).is_ok(), "free again");
        remove(&path);
        let mut lock = path.into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }

    #[test]
    fn a_file_that_is_not_a_journal_is_refused() {
        let path = temp("foreign");
        std::fs::write(&path, "important notes\n").unwrap();
        let err = open(&path, 100, 1 << 20).err().unwrap();
        assert!(err.contains("is not a Charla history file"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "important notes\n");
        remove(&path);
    }

    #[test]
    fn the_file_stays_within_twice_the_bound_or_256_kib() {
        let path = temp("compact");
        let line = format!("MSG ana {}", "x".repeat(1000));
        {
            let (mut journal, _) = open(&path, 10, 1 << 20).unwrap();
            for id in 1..=1000 {
                journal.append(&entry(id, &line));
            }
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < REWRITE_AT_LEAST as u64 + 2000, "{len} bytes");
        let (_journal, loaded) = open(&path, 10, 1 << 20).unwrap();
        assert_eq!(loaded.len(), 10);
        assert_eq!(loaded.last().unwrap().id, 1000);
        remove(&path);
    }
}
