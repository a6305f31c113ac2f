//! "Host a chat on this computer": a certificate in the config dir (made as gen-certs.sh makes
//! one), `charla-server` — the binary installed next to `charla`, run as a process of its own —
//! listening on the chosen port, and what to tell friends: this machine's addresses, the port,
//! the certificate's fingerprint. The client never links the server.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use charla_proto::files::write_atomically;
use charla_proto::identity::{new_server_certificate, pem_fingerprint};

/// Days the hosted server's certificate is valid: friends trust it by its fingerprint, which a
/// new certificate would change.
pub const CERT_DAYS: u32 = 3650;
/// How long the server may take to say it is listening.
const START_DEADLINE: Duration = Duration::from_secs(15);

/// Where the hosted server keeps its certificate, key, state and log: `<config dir>/host/`.
pub struct HostFiles {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub fingerprint: String,
}

/// The certificate and key (made on first use, mode 0600), the state directory and the
/// operators file: the host, by its identity, is the chat's operator.
pub fn prepare(config_dir: &Path, operator: Option<&str>) -> Result<HostFiles, String> {
    let dir = config_dir.join("host");
    make_private_dir(&dir)?;
    let cert = dir.join("server-cert.pem");
    let key = dir.join("server-key.key");
    if !cert.exists() || !key.exists() {
        let (dns, ips) = names_for_certificate();
        let made = new_server_certificate("Charla", &dns, &ips, CERT_DAYS)
            .map_err(|e| format!("cannot make a certificate: {e}"))?;
        write_atomically(&key, &made.key_pem)
            .map_err(|e| format!("cannot write {}: {e}", key.display()))?;
        write_atomically(&cert, &made.cert_pem)
            .map_err(|e| format!("cannot write {}: {e}", cert.display()))?;
    }
    let pem = std::fs::read(&cert).map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let fingerprint = pem_fingerprint(&pem)
        .ok_or_else(|| format!("{}: not a PEM certificate", cert.display()))?;
    let operators = dir.join("operators");
    let listed = match operator {
        Some(fp) => format!("# the person hosting this chat (charla --show-identity)\n{fp}\n"),
        None => "# nobody: this Charla runs without an identity (--no-identity)\n".to_string(),
    };
    write_atomically(&operators, listed.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", operators.display()))?;
    Ok(HostFiles {
        dir,
        cert,
        key,
        fingerprint,
    })
}

fn make_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot make {}: {e}", dir.display()))
}

/// The names and addresses clients may use for this machine: localhost, its host name, and
/// every address it has.
fn names_for_certificate() -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_string()];
    if let Some(name) = host_name().filter(|n| n != "localhost") {
        dns.push(name);
    }
    let mut ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
    ips.extend(network_addresses());
    (dns, ips)
}

fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0)?;
    ok.then(|| String::from_utf8_lossy(&buf[..end]).into_owned())
        .filter(|n| !n.is_empty())
}

/// This machine's addresses that others on the network can reach: not loopback, not IPv6
/// link-local (which needs an interface name to be used).
pub fn network_addresses() -> Vec<IpAddr> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, which is walked read-only and freed once.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return found;
        }
        let mut at = list;
        while !at.is_null() {
            let entry = &*at;
            at = entry.ifa_next;
            if entry.ifa_addr.is_null() {
                continue;
            }
            let ip = match i32::from((*entry.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = &*(entry.ifa_addr as *const libc::sockaddr_in);
                    IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes())
                }
                libc::AF_INET6 => {
                    let sin6 = &*(entry.ifa_addr as *const libc::sockaddr_in6);
                    IpAddr::from(sin6.sin6_addr.s6_addr)
                }
                _ => continue,
            };
            let link_local = matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
            if !ip.is_loopback() && !ip.is_unspecified() && !link_local && !found.contains(&ip) {
                found.push(ip);
            }
        }
        libc::freeifaddrs(list);
    }
    found
}

/// `charla-server` next to this program (as the packages and `cargo build` put it); from a test
/// executable in `target/<profile>/deps/`, the one in `target/<profile>/`.
pub fn server_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let found = [Some(dir), dir.parent()]
        .into_iter()
        .flatten()
        .map(|d| d.join("charla-server"))
        .find(|p| p.is_file());
    found.ok_or_else(|| format!("charla-server is not installed next to {}", exe.display()))
}

/// The hosted server, stopped (SIGTERM: it tells everyone it is shutting down) when dropped,
/// unless it is to keep running after the window closes.
pub struct HostedServer {
    child: Child,
    pub port: u16,
    pub keep_running: bool,
}

impl HostedServer {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for HostedServer {
    fn drop(&mut self) {
        // Already ended (and reaped: its pid may belong to another process by now), or kept.
        if self.keep_running || matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // SAFETY: a signal to our own child, not yet waited for.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server started and not yet listening: [`Starting::wait`] tells.
pub struct Starting {
    server: HostedServer,
    keep_running: bool,
    log_path: PathBuf,
    /// Where the server says it listens, or why it cannot (`--ready-fd`).
    ready: std::fs::File,
    /// The port asked for.
    port: u16,
}

/// Why a hosted server did not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostError {
    /// Another program has the port.
    PortInUse(u16),
    Other(String),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::PortInUse(port) => write!(f, "port {port} is in use by another program"),
            HostError::Other(why) => f.write_str(why),
        }
    }
}

/// Starts the server on `port` (0: any free one) for every address of this machine, with `rooms`
/// besides its default one (they always exist, run by the host); its log goes
/// to `host/server.log`. Call it on the thread that lives as long as the window (the UI's):
/// unless it is to keep running, the server is told to stop when that thread ends, so that it
/// stops with Charla even when Charla is killed rather than closed.
pub fn spawn(
    files: &HostFiles,
    port: u16,
    rooms: &[String],
    keep_running: bool,
) -> Result<Starting, HostError> {
    use std::os::unix::process::CommandExt;
    let binary = server_binary().map_err(HostError::Other)?;
    let log_path = files.dir.join("server.log");
    // Appended to: a server kept running from before may still be writing to it.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| HostError::Other(format!("cannot write {}: {e}", log_path.display())))?;
    let (ready, ready_end) = charla_proto::ready::pipe()
        .map_err(|e| HostError::Other(format!("cannot make a pipe: {e}")))?;
    let mut command = Command::new(&binary);
    charla_proto::ready::hand_over_as_fd3(&mut command, &ready_end);
    command
        .args(["--ready-fd", "3"])
        .arg("--bind")
        .arg(format!("0.0.0.0:{port}"))
        .arg("--cert")
        .arg(&files.cert)
        .arg("--key")
        .arg(&files.key)
        .arg("--state-dir")
        .arg(files.dir.join("state"))
        .arg("--operators")
        .arg(files.dir.join("operators"));
    if !rooms.is_empty() {
        command.arg("--rooms").arg(rooms.join(","));
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if keep_running {
        // Its own process group: Ctrl-C in the terminal Charla was started from does not stop it.
        command.process_group(0);
    } else {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let child = command
        .spawn()
        .map_err(|e| HostError::Other(format!("cannot start {}: {e}", binary.display())))?;
    // Only the server holds the write end now: its end of file means it stopped.
    drop(ready_end);
    Ok(Starting {
        server: HostedServer {
            child,
            port: 0,
            keep_running: false,
        },
        keep_running,
        log_path,
        ready,
        port,
    })
}

/// [`spawn`], then [`Starting::wait`], on this thread.
pub fn start(
    files: &HostFiles,
    port: u16,
    rooms: &[String],
    keep_running: bool,
) -> Result<HostedServer, HostError> {
    spawn(files, port, rooms, keep_running)?.wait()
}

impl Starting {
    /// Waits (not on the window's thread) until the server says it listens, or why it could not
    /// (its readiness line, `--ready-fd`: not its log, whose sentences are for people).
    pub fn wait(self) -> Result<HostedServer, HostError> {
        use charla_proto::ready::{self, Readiness};
        let Starting {
            mut server,
            keep_running,
            log_path,
            mut ready,
            port,
        } = self;
        let said = ready::wait(&mut ready, Instant::now() + START_DEADLINE)
            .map_err(|e| HostError::Other(format!("cannot hear from charla-server: {e}")))?;
        match said {
            Some(Readiness::Listening(addr)) => {
                server.port = addr.port();
                server.keep_running = keep_running;
                Ok(server)
            }
            Some(Readiness::Failed { code, text }) => Err(match code.as_str() {
                ready::code::ADDRESS_IN_USE => HostError::PortInUse(port),
                _ => HostError::Other(text),
            }),
            None if matches!(server.child.try_wait(), Ok(Some(_))) => {
                Err(HostError::Other(format!(
                    "charla-server stopped at once (its log: {})",
                    log_path.display()
                )))
            }
            None => Err(HostError::Other(format!(
                "charla-server did not start listening within {} s (its log: {})",
                START_DEADLINE.as_secs(),
                log_path.display()
            ))),
        }
    }
}
