//! The one way Charla's programs read and write their files. The server reads files from its
//! event loop (the certificate, key and config on SIGHUP) and at start (history, state), which
//! must neither block (a FIFO at the path waits for a writer) nor swallow a file without end (a
//! link to /dev/zero); and it writes files where others might plant a link (a predictable
//! temporary name).

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Far more than any certificate chain, key, password or config file needs.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Opens a file for reading without waiting (O_NONBLOCK: a FIFO opens at once instead of waiting
/// for a writer), and only if it is a regular file: a FIFO, a device (/dev/zero), a directory or
/// a socket is refused.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// The whole file, if it is a regular file of at most `max` bytes.
pub fn read_bounded(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {}", describe_size(max)),
        )
    };
    let len = file.metadata()?.len();
    if len > max {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The size can change after the check: never read more than the limit.
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

/// At most the last `max` bytes of a regular file, starting at a line: a log-like file that
/// grew past what is expected is read from its newest part. Says whether the start was cut.
pub fn read_tail(path: &Path, max: u64) -> io::Result<(Vec<u8>, bool)> {
    let mut file = open_regular(path)?;
    let len = file.metadata()?.len();
    let cut = len > max;
    if cut {
        file.seek(SeekFrom::Start(len - max))?;
    }
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    if cut {
        // The first line is only part of one.
        let start = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..start);
    }
    Ok((bytes, cut))
}

fn describe_size(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// The whole file, if it is a regular file of at most [`MAX_FILE_BYTES`].
pub fn read_small(path: &Path) -> io::Result<Vec<u8>> {
    read_bounded(path, MAX_FILE_BYTES)
}

/// The first line of a small text file, without its line ending.
pub fn first_line(path: &Path) -> io::Result<String> {
    let bytes = read_small(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// Opens (creating it, mode 0600) a file that is only ever locked, never read or written: not
/// through a symbolic link, and without waiting (a FIFO planted there is refused).
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one, never a mix:
/// a temporary file beside it, synced, renamed over it, and the directory synced so that the
/// rename reaches the disk too. The temporary file has an unpredictable name and is created
/// anew (O_EXCL, O_NOFOLLOW, mode 0600: it may hold a key, bans, history), so that nothing
/// planted at its name — a link to another file — is written through; whatever fails, it is
/// removed. An error means the file was not replaced: once the rename is done, a failed directory
/// sync is not reported (the new file is in place; only a power cut in the next moments could
/// bring the old one back).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut random = [0u8; 12];
    openssl::rand::rand_bytes(&mut random).map_err(io::Error::other)?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp.");
    for b in random {
        tmp_name.push(format!("{b:02x}"));
    }
    let tmp = std::path::PathBuf::from(tmp_name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_small_regular_files_are_read() {
        let dir = std::env::temp_dir().join(format!("charla-files-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let small = dir.join("small");
        std::fs::write(&small, "clave\r\nresto\n").unwrap();
        assert_eq!(first_line(&small).unwrap(), "clave");
        let big = dir.join("big");
        std::fs::write(&big, vec![b'x'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(
            read_small(&big).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        assert_eq!(
            read_small(Path::new("/dev/zero")).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            read_small(&dir).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn atomic_writes_replace_the_file_and_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("charla-atomic-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state");
        std::fs::write(&path, "old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left: {left:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 21: a FIFO at a path the server reads froze it (on SIGHUP, or at start after the
    /// port was bound); /dev/zero ate memory. Both are refused at once.
    #[test]
    fn a_fifo_or_a_device_is_refused_without_waiting() {
        let dir = std::env::temp_dir().join(format!("charla-fifo-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        for read in [read_small, |p: &Path| read_tail(p, 100).map(|r| r.0)] {
            assert_eq!(read(&fifo).unwrap_err().kind(), io::ErrorKind::InvalidInput);
            assert_eq!(
                read(Path::new("/dev/zero")).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
        }
        // Opened for writing without a reader: ENXIO, at once.
        assert!(open_lock_file(&fifo).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_tail_starts_at_a_whole_line() {
        let dir = std::env::temp_dir().join(format!("charla-tail-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log");
        std::fs::write(&path, "uno\ndos\ntres\n").unwrap();
        assert_eq!(
            read_tail(&path, 100).unwrap(),
            (b"uno\ndos\ntres\n".to_vec(), false)
        );
        assert_eq!(read_tail(&path, 7).unwrap(), (b"tres\n".to_vec(), true));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 21: the temporary file had a predictable name (`<file>.tmp.<pid>`); a link planted
    /// there made the writer truncate and chmod the link's target. (Failed before: the target was
    /// emptied.)
    #[test]
    fn a_link_planted_where_the_temporary_file_goes_is_not_written_through() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("charla-plant-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.join("state");
        let planted = dir.join(format!("state.tmp.{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        // A failed write (here: the path is a directory) leaves no temporary file.
        let taken = dir.join("taken");
        std::fs::create_dir(&taken).unwrap();
        std::fs::write(taken.join("x"), "x").unwrap();
        assert!(write_atomically(&taken, b"new").is_err());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp."))
            .collect();
        assert_eq!(left, [format!("state.tmp.{}", std::process::id())]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
