//! `--state-dir`: the registrations and bans on disk, and the operators file (`--operators`).
//!
//! Each change is written atomically (a temporary file, fsync, rename) by a thread of its own,
//! [`StateWriter`]: a file of a hundred thousand bans takes the disk a while, and an SD card can
//! stall a sync for a second, which the event loop must never wait for. The chat core hands over
//! a batch of changes ([`StateChange`]) at a time and answers the commands that made them when
//! the writer reports back ([`crate::chat::Chat::state_saved`]); the writer keeps its own copy of
//! the registrations and bans to write the files from.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::Arc;

use crate::log::log_warning;
use crate::moderation::{Bans, LineError, Operators, Registrations, StateChange};

/// The most a state file may hold: a million registrations or bans of a few hundred bytes each.
/// Read through the one bounded reader, which takes no FIFO and no file without end.
const MAX_STATE_FILE_BYTES: u64 = 512 << 20;

/// Which state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFile {
    Registrations,
    Bans,
    Rooms,
}

impl StateFile {
    fn name(self) -> &'static str {
        match self {
            StateFile::Registrations => "registrations",
            StateFile::Bans => "bans",
            StateFile::Rooms => "rooms",
        }
    }
}

/// The files of `--state-dir`.
pub struct StateDir {
    dir: PathBuf,
    /// Held while the server runs: two servers writing one directory would undo each other.
    _lock: File,
}

/// What a state directory holds when the server starts.
#[derive(Default, Clone)]
pub struct Loaded {
    pub registrations: Registrations,
    pub bans: Bans,
    /// The `rooms` file, read by the chat core (it knows the default and declared rooms).
    pub rooms: Option<String>,
}

impl StateDir {
    /// Opens (creating it, mode 0700) the directory and reads its files. A file that cannot be
    /// read or parsed is an error naming the file and the line: the server must not start
    /// without its bans.
    pub fn open(dir: &Path) -> Result<(StateDir, Loaded), String> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
        // A directory that was there already keeps its mode: bans and who owns which nickname
        // are nobody else's business.
        let meta = std::fs::metadata(dir)
            .map_err(|e| format!("cannot read the state directory {}: {e}", dir.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                format!(
                    "the state directory {} is open to other users (mode {mode:o}) and cannot be \
                     made private ({e}): run 'chmod 700 {}'",
                    dir.display(),
                    dir.display()
                )
            })?;
            log_warning!(
                "state directory {}: was mode {mode:o}, open to other users; made 700",
                dir.display()
            );
        }
        let lock = crate::lockfile::lock(&dir.join("state"), "--state-dir")?;
        let store = StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        let now = crate::clock::unix_seconds();
        let registrations = store.load(StateFile::Registrations, |text| {
            Registrations::parse(text, now)
        })?;
        let bans = store.load(StateFile::Bans, Bans::parse)?;
        let rooms = store.load(StateFile::Rooms, |text| Ok(text.to_string()))?;
        Ok((
            store,
            Loaded {
                registrations: registrations.unwrap_or_default(),
                bans: bans.unwrap_or_default(),
                rooms,
            },
        ))
    }

    pub fn path(&self, file: StateFile) -> PathBuf {
        self.dir.join(file.name())
    }

    /// The file's content, or `None` if there is no such file yet.
    fn load<T>(
        &self,
        file: StateFile,
        parse: impl Fn(&str) -> Result<T, LineError>,
    ) -> Result<Option<T>, String> {
        let path = self.path(file);
        let text = match charla_proto::files::read_bounded(&path, MAX_STATE_FILE_BYTES) {
            Ok(bytes) => String::from_utf8(bytes)
                .map_err(|_| format!("{}: not UTF-8 text", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        parse(&text)
            .map(Some)
            .map_err(|(line, why)| {
                format!(
                    "{} line {line}: {why} (fix or move the file; the server does not start without its {})",
                    path.display(),
                    file.name()
                )
            })
    }
}

impl StateDir {
    fn save(&self, file: StateFile, text: &str) -> Result<(), String> {
        let path = self.path(file);
        charla_proto::files::write_atomically(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// A batch of changes handed to the writer: its number and the changes, in order.
pub type Batch = (u64, Vec<StateChange>);
/// What the writer reports: the batch's number, and whether its files are on the disk.
pub type Written = (u64, Result<(), String>);

/// The thread that writes `--state-dir`, and its two channels. Dropping it lets the thread
/// finish what it was given, and waits for it (the server is exiting).
pub struct StateWriter {
    batches: Option<SyncSender<Batch>>,
    written: Receiver<Written>,
    /// A report [`StateWriter::wait`] received.
    early: Option<Written>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StateWriter {
    /// Starts the writer on the directory, with a copy of what was loaded from it; `wake` is
    /// called after each report, so that the event loop reads it.
    pub fn start(
        dir: StateDir,
        loaded: Loaded,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<StateWriter, String> {
        // The core hands over one batch at a time and waits for its report.
        let (batches, to_write) = mpsc::sync_channel::<Batch>(1);
        let (report, written) = mpsc::sync_channel::<Written>(1);
        let thread = std::thread::Builder::new()
            .name("state-writer".into())
            .spawn(move || {
                let mut saved = loaded;
                for (id, changes) in to_write {
                    let result = write_batch(&dir, &mut saved, &changes);
                    if report.send((id, result)).is_err() {
                        return;
                    }
                    wake();
                }
            })
            .map_err(|e| format!("cannot start the state directory's writer: {e}"))?;
        Ok(StateWriter {
            batches: Some(batches),
            written,
            early: None,
            thread: Some(thread),
        })
    }

    /// Hands a batch over; false if the writer is gone (then nothing will be written).
    pub fn send(&mut self, batch: Batch) -> bool {
        self.batches
            .as_ref()
            .is_some_and(|batches| batches.try_send(batch).is_ok())
    }

    /// Waits at most `timeout` for the writer to report (the server is exiting); the report is
    /// then read by [`StateWriter::written`].
    pub fn wait(&mut self, timeout: std::time::Duration) {
        if let Ok(written) = self.written.recv_timeout(timeout) {
            self.early = Some(written);
        }
    }

    /// A report, if one came; `Err` once the writer is gone (it stopped on a bug): nothing it
    /// was given will be reported.
    pub fn written(&mut self) -> Result<Option<Written>, ()> {
        if let Some(written) = self.early.take() {
            return Ok(Some(written));
        }
        match self.written.try_recv() {
            Ok(written) => Ok(Some(written)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(()),
        }
    }
}

impl Drop for StateWriter {
    fn drop(&mut self) {
        drop(self.batches.take());
        if let Some(thread) = self.thread.take() {
            // Unblocks a writer waiting to report.
            while !thread.is_finished() {
                if self
                    .written
                    .recv_timeout(std::time::Duration::from_millis(10))
                    .is_err()
                {
                    continue;
                }
            }
            let _ = thread.join();
        }
    }
}

/// Applies a batch to the writer's copy and writes the files it touched; if one cannot be
/// written, the copy is put back as it was (the core undoes the batch too).
fn write_batch(dir: &StateDir, saved: &mut Loaded, changes: &[StateChange]) -> Result<(), String> {
    let before = (saved.registrations.clone(), saved.bans.clone());
    // Which files the batch touched: registrations, bans; and the rooms file's new text.
    let mut touched = (false, false);
    let mut rooms = None;
    for change in changes {
        match change {
            StateChange::Register(r) => {
                saved.registrations.insert(r.clone());
                touched.0 = true;
            }
            StateChange::Unregister(key) => {
                saved.registrations.remove_key(key);
                touched.0 = true;
            }
            StateChange::Used(key, at) => {
                saved.registrations.touch(key, *at);
                touched.0 = true;
            }
            StateChange::Ban(ban) => {
                saved.bans.add(ban.clone());
                touched.1 = true;
            }
            StateChange::Unban(target) => {
                saved.bans.remove(target);
                touched.1 = true;
            }
            StateChange::Rooms(text) => rooms = Some(text),
        }
    }
    let mut result = Ok(());
    if touched.0 {
        result = dir.save(StateFile::Registrations, &saved.registrations.to_text());
    }
    if touched.1 && result.is_ok() {
        let now = crate::clock::unix_seconds();
        saved.bans.expire(now, usize::MAX);
        result = dir.save(StateFile::Bans, &saved.bans.to_text(now));
    }
    if let (Some(parts), true) = (rooms, result.is_ok()) {
        let mut text = format!("{}\n", crate::rooms::ROOMS_HEADER);
        text.extend(parts.iter().map(|part| &**part));
        result = dir.save(StateFile::Rooms, &text);
    }
    if result.is_err() {
        (saved.registrations, saved.bans) = before;
    }
    result
}

/// Reads the operators file; errors name the file and the line.
pub fn load_operators(path: &Path) -> Result<Operators, String> {
    let bytes = charla_proto::files::read_small(path)
        .map_err(|e| format!("cannot read the operators file {}: {e}", path.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    Operators::parse(&text).map_err(|(line, why)| format!("{} line {line}: {why}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("charla-state-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_writer_saves_batches_and_they_are_read_back_private() {
        use crate::moderation::Registration;
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("saved");
        let fp: String = "AB:".repeat(31) + "AB";
        {
            let (store, loaded) = StateDir::open(&dir).unwrap();
            assert_eq!(loaded.registrations.len(), 0);
            // A second server on the same directory is refused.
            assert!(StateDir::open(&dir).err().unwrap().contains("in use"));
            let (tx, rx) = mpsc::channel();
            let wake = Arc::new(move || {
                let _ = tx.send(());
            });
            let mut writer = StateWriter::start(store, loaded, wake).unwrap();
            let ana = Registration {
                nick: "ana".into(),
                owner: fp.clone().into(),
                last_used: 5,
            };
            assert!(writer.send((1, vec![StateChange::Register(ana)])));
            rx.recv().unwrap();
            assert_eq!(writer.written(), Ok(Some((1, Ok(())))));
            assert!(writer.send((2, vec![StateChange::Used("ana".into(), 9)])));
            rx.recv().unwrap();
            assert_eq!(writer.written(), Ok(Some((2, Ok(())))));
        }
        let (_, loaded) = StateDir::open(&dir).unwrap();
        let ana = loaded.registrations.get("ANA").unwrap();
        assert_eq!((&*ana.owner, ana.last_used), (fp.as_str(), 9));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("registrations")), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_file_stops_the_start_naming_file_and_line() {
        let dir = temp("damaged");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("bans"),
            "charla-bans 1\naddress 10.0.0.1 permanent x\n",
        )
        .unwrap();
        let err = StateDir::open(&dir).err().unwrap();
        assert!(err.contains("bans line 2"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
