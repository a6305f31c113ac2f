//! The server's readiness signal (`charla-server --ready-fd N`): once it listens, the server
//! writes one line to descriptor N and closes it — `listening <address>` — or, if it cannot
//! start, `error <code> <text>`. Whoever starts a server (the window's "Host a chat", the tests,
//! the scripts) waits for that line instead of reading the log, whose sentences are for people
//! and may be reworded.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Instant;

/// `listening <address>`.
pub const LISTENING: &str = "listening";
/// `error <code> <text>`.
pub const ERROR: &str = "error";

/// Why a server could not start, as the `error` line names it.
pub mod code {
    /// Another program (another server) has the address and port.
    pub const ADDRESS_IN_USE: &str = "address-in-use";
    /// Any other reason; the text says which.
    pub const CANNOT_START: &str = "cannot-start";
}

/// What a server said on its readiness descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Listening(SocketAddr),
    Failed { code: String, text: String },
}

impl Readiness {
    /// Reads the line (without its `\n`).
    pub fn parse(line: &str) -> Option<Readiness> {
        let (word, rest) = line.split_once(' ')?;
        match word {
            LISTENING => rest.trim().parse().ok().map(Readiness::Listening),
            ERROR => {
                let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
                Some(Readiness::Failed {
                    code: code.to_string(),
                    text: text.to_string(),
                })
            }
            _ => None,
        }
    }
}

/// A pipe for the readiness line: the end to read, and the end to hand to the server (as its
/// descriptor 3, with [`hand_over_as_fd3`]). Both are close-on-exec: only the descriptor 3 made
/// from the write end reaches the server.
pub fn pipe() -> io::Result<(File, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills in two descriptors, owned from here on.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Makes `fd` the child's descriptor 3, for `--ready-fd 3`.
pub fn hand_over_as_fd3(command: &mut std::process::Command, fd: &OwnedFd) {
    use std::os::unix::process::CommandExt;
    let fd: RawFd = fd.as_raw_fd();
    // SAFETY: dup2 is async-signal-safe; nothing else runs between fork and exec. The new
    // descriptor 3 does not inherit close-on-exec.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(fd, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Waits until `deadline` for the line on the read end of the pipe (the write end must be closed
/// in this process once the server has it). `Ok(None)`: the server closed it without a line (it
/// stopped, perhaps before it could say why), or the deadline passed.
pub fn wait(read: &mut File, deadline: Instant) -> io::Result<Option<Readiness>> {
    let mut got = Vec::new();
    let mut chunk = [0u8; 512];
    while !got.contains(&b'\n') && got.len() < 4096 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        let mut poll = libc::pollfd {
            fd: read.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: poll on one descriptor of ours.
        let ready = unsafe { libc::poll(&mut poll, 1, ms.max(1)) };
        if ready < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if ready == 0 {
            continue;
        }
        match read.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let text = String::from_utf8_lossy(&got);
    Ok(text.lines().next().and_then(Readiness::parse))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_are_read_back() {
        assert_eq!(
            Readiness::parse("listening 127.0.0.1:12345"),
            Some(Readiness::Listening("127.0.0.1:12345".parse().unwrap()))
        );
        assert_eq!(
            Readiness::parse("error address-in-use 0.0.0.0:12345 is taken"),
            Some(Readiness::Failed {
                code: code::ADDRESS_IN_USE.into(),
                text: "0.0.0.0:12345 is taken".into()
            })
        );
        assert_eq!(Readiness::parse("listening nowhere"), None);
        assert_eq!(Readiness::parse("hello"), None);
    }

    #[test]
    fn a_line_written_to_the_pipe_is_waited_for() {
        use std::io::Write;
        let (mut read, write) = pipe().unwrap();
        let mut write = File::from(write);
        write.write_all(b"listening [::1]:7\n").unwrap();
        drop(write);
        let deadline = Instant::now() + std::time::Duration::from_secs(5);
        assert_eq!(
            wait(&mut read, deadline).unwrap(),
            Some(Readiness::Listening("[::1]:7".parse().unwrap()))
        );
    }
}
