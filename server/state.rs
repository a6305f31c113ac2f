//! `--state-dir`: the registrations and bans on disk, each change written atomically before the
//! command that made it is answered; and the operators file (`--operators`).

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::log::log_warning;
use crate::moderation::{Bans, LineError, Operators, Registrations};

/// The most a state file may hold: a million registrations or bans of a few hundred bytes each.
/// Read through the one bounded reader, which takes no FIFO and no file without end.
const MAX_STATE_FILE_BYTES: u64 = 512 << 20;

/// Which state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateFile {
    Registrations,
    Bans,
}

impl StateFile {
    fn name(self) -> &'static str {
        match self {
            StateFile::Registrations => "registrations",
            StateFile::Bans => "bans",
        }
    }
}

/// Where the chat core's registrations and bans are kept; kept out of the core, which does no
/// I/O. `save` returns once the text is safely on disk, or says why it is not.
pub trait StateStore {
    fn save(&mut self, file: StateFile, text: &str) -> Result<(), String>;
}

/// The files of `--state-dir`.
pub struct StateDir {
    dir: PathBuf,
    /// Held while the server runs: two servers writing one directory would undo each other.
    _lock: File,
}

/// What a state directory holds when the server starts.
#[derive(Default)]
pub struct Loaded {
    pub registrations: Registrations,
    pub bans: Bans,
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
        let lock = crate::journal::lock(&dir.join("state"), "--state-dir")?;
        let store = StateDir {
            dir: dir.to_path_buf(),
            _lock: lock,
        };
        let registrations = store.load(StateFile::Registrations, Registrations::parse)?;
        let bans = store.load(StateFile::Bans, Bans::parse)?;
        Ok((
            store,
            Loaded {
                registrations: registrations.unwrap_or_default(),
                bans: bans.unwrap_or_default(),
            },
        ))
    }

    fn path(&self, file: StateFile) -> PathBuf {
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

impl StateStore for StateDir {
    fn save(&mut self, file: StateFile, text: &str) -> Result<(), String> {
        let path = self.path(file);
        charla_proto::files::write_atomically(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
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
    fn saved_state_is_read_back_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("saved");
        {
            let (mut store, loaded) = StateDir::open(&dir).unwrap();
            assert_eq!(loaded.registrations.len(), 0);
            let mut r = Registrations::default();
            r.insert(
                "ana",
                &"AB:"
                    .repeat(31)
                    .chars()
                    .chain("AB".chars())
                    .collect::<String>(),
            );
            store.save(StateFile::Registrations, &r.to_text()).unwrap();
            // A second server on the same directory is refused.
            assert!(StateDir::open(&dir).err().unwrap().contains("in use"));
        }
        let (_, loaded) = StateDir::open(&dir).unwrap();
        assert!(loaded.registrations.owner("ANA").is_some());
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
