//! Test harness: certificates from gen-certs.sh, the real server binary, real TLS clients.
//!
//! Nothing here sleeps to synchronise: every wait is for an expected line, with a deadline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use openssl::ssl::{SslConnector, SslMethod, SslStream, SslVerifyMode};

/// How long any single expected event may take (generous: debug builds on a busy CI machine).
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The workspace root (where gen-certs.sh is).
pub fn root() -> PathBuf {
    // This crate is tests/common in the workspace.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The server binary that `cargo test` built beside the test being run (target/<profile>/, one
/// level above the test executable in deps/), or `CHARLA_TEST_SERVER_BIN`, to see a test fail
/// against another build (an older commit's, to reproduce a bug first).
pub fn server_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CHARLA_TEST_SERVER_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let server = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .join("charla-server");
    assert!(
        server.exists(),
        "{} is missing: run `cargo build -p charla-server` (scripts/test.sh builds it)",
        server.display()
    );
    server
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("charla-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Certs {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Runs `gen-certs.sh --batch` into `dir` with extra args; panics with its output on failure.
pub fn gen_certs(dir: &Path, extra: &[&str]) -> Certs {
    let out = Command::new(root().join("gen-certs.sh"))
        .args(["--batch", "--out"])
        .arg(dir)
        .args(extra)
        .output()
        .expect("run gen-certs.sh");
    assert!(
        out.status.success(),
        "gen-certs.sh failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Certs {
        dir: dir.into(),
        cert: dir.join("server-cert.pem"),
        key: dir.join("server-key.key"),
    }
}

/// One certificate pair per test process, made at run time, removed when the process exits.
pub fn certs() -> &'static Certs {
    static CERTS: OnceLock<(TempDir, Certs)> = OnceLock::new();
    &CERTS
        .get_or_init(|| {
            let dir = TempDir::new("certs");
            let certs = gen_certs(dir.path(), &[]);
            // Statics are never dropped: the test harness's exit runs this instead.
            extern "C" fn remove_certs() {
                if let Some((dir, _)) = CERTS.get() {
                    let _ = std::fs::remove_dir_all(dir.path());
                }
            }
            // SAFETY: atexit with a function that only removes a directory.
            unsafe { libc::atexit(remove_certs) };
            (dir, certs)
        })
        .1
}

/// Fails at once, in one line that says how to install it, when a program a test needs is not on
/// the PATH (instead of a timeout or an empty error later).
pub fn require_program(program: &str) {
    let found = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    });
    assert!(
        found,
        "{program} is not installed: run scripts/install-packages.sh --tests"
    );
}

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.2, 127.0.0.3...): one
/// test process can be several clients' addresses at once.
pub fn tcp_from(from: std::net::Ipv4Addr, addr: SocketAddr) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(to) = addr else {
        panic!("tcp_from is for IPv4")
    };
    let sockaddr = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket, bound and connected with valid sockaddr_in values, then owned by
    // the TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let local = sockaddr(from, 0);
        assert_eq!(
            libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len),
            0,
            "bind {from}: {}",
            std::io::Error::last_os_error()
        );
        let remote = sockaddr(*to.ip(), to.port());
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0,
            "connect from {from}: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}

/// A TCP connection to `addr` whose receive buffer (hence the window it offers) is `bytes`, set
/// before connecting: a client on a slow link, or one that never reads, from the server's side.
pub fn tcp_with_receive_buffer(addr: SocketAddr, bytes: i32) -> TcpStream {
    use std::os::fd::FromRawFd;
    let domain = libc::AF_INET;
    // SAFETY: a fresh socket, given a buffer size, then connected; owned by the TcpStream.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let stream = TcpStream::from_raw_fd(fd);
        let rc = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "SO_RCVBUF: {}", std::io::Error::last_os_error());
        let SocketAddr::V4(to) = addr else {
            panic!("IPv4 only")
        };
        let remote = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: to.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*to.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        assert_eq!(
            libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len),
            0,
            "connect: {}",
            std::io::Error::last_os_error()
        );
        stream
    }
}

/// A field of /proc/PID/status in KiB (`"VmRSS:"`, `"VmHWM:"`: its peak).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Lets this test process hold a thousand client sockets or more.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `--cert` and `--key` of the test certificates, then `args`.
fn with_test_certs<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let c = certs();
    let mut all = vec![
        "--cert",
        c.cert.to_str().unwrap(),
        "--key",
        c.key.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    all
}

#[derive(Default)]
struct LogLines {
    lines: Mutex<Vec<String>>,
    grew: Condvar,
    /// The test wants the server's stderr left unread for a while.
    unread: Mutex<bool>,
    resumed: Condvar,
}

/// A running charla-server on a free loopback port; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<LogLines>,
    /// The read end of the server's stderr pipe.
    log_fd: i32,
}

impl Server {
    /// Starts the server with the test certificates and `args`.
    pub fn start(args: &[&str]) -> Server {
        Server::start_raw(&with_test_certs(args), &[])
    }

    /// Starts the server with exactly `args` (plus `--bind 127.0.0.1:0` unless given).
    pub fn start_raw(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(Command::new(server_bin()), args, env)
    }

    /// As `start`, in a process allowed at most `descriptors` open files (hard limit too).
    pub fn start_with_descriptor_limit(args: &[&str], descriptors: u64) -> Server {
        Server::start_with_rlimit(args, libc::RLIMIT_NOFILE, descriptors)
    }

    /// As `start`, in a process with the soft limit `resource` at `value` (hard limit too for
    /// descriptors; for the others the hard limit stays, so that [`Server::set_rlimit`] can raise
    /// it again).
    pub fn start_with_rlimit(
        args: &[&str],
        resource: libc::__rlimit_resource_t,
        value: u64,
    ) -> Server {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(server_bin());
        // SAFETY: getrlimit/setrlimit are async-signal-safe; nothing else runs between fork and
        // exec.
        unsafe {
            cmd.pre_exec(move || {
                let mut lim = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                if libc::getrlimit(resource, &mut lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                lim.rlim_cur = value as libc::rlim_t;
                if resource == libc::RLIMIT_NOFILE {
                    lim.rlim_max = value as libc::rlim_t;
                }
                if libc::setrlimit(resource, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Server::spawn(cmd, &with_test_certs(args), &[])
    }

    /// Changes a limit of the running server (prlimit(2)), as if the machine changed under it:
    /// RLIMIT_FSIZE stands for a disk that fills up and has room again.
    pub fn set_rlimit(&self, resource: libc::__rlimit_resource_t, value: libc::rlim_t) {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: prlimit on our own child, with structs of ours.
        unsafe {
            assert_eq!(
                libc::prlimit(self.child.id() as i32, resource, std::ptr::null(), &mut lim),
                0
            );
            lim.rlim_cur = value.min(lim.rlim_max);
            assert_eq!(
                libc::prlimit(self.child.id() as i32, resource, &lim, std::ptr::null_mut()),
                0,
                "prlimit: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    fn spawn(mut cmd: Command, args: &[&str], env: &[(&str, &str)]) -> Server {
        if !args.contains(&"--bind") {
            cmd.args(["--bind", "127.0.0.1:0"]);
        }
        // The readiness line, not the log, says when and where it listens.
        let (mut ready, ready_end) = charla_proto::ready::pipe().expect("a pipe");
        charla_proto::ready::hand_over_as_fd3(&mut cmd, &ready_end);
        cmd.args(["--ready-fd", "3"]);
        cmd.args(args)
            .envs(env.iter().copied())
            .env_remove("CHARLA_KEY_PASS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn charla-server");
        drop(ready_end);
        let log = Arc::new(LogLines::default());
        let stderr = child.stderr.take().unwrap();
        let log_fd = std::os::fd::AsRawFd::as_raw_fd(&stderr);
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line);
                sink.grew.notify_all();
                let mut unread = sink.unread.lock().unwrap_or_else(|e| e.into_inner());
                while *unread {
                    unread = sink.resumed.wait(unread).unwrap_or_else(|e| e.into_inner());
                }
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            log,
            log_fd,
        };
        match charla_proto::ready::wait(&mut ready, Instant::now() + DEADLINE) {
            Ok(Some(charla_proto::ready::Readiness::Listening(addr))) => server.addr = addr,
            other => {
                panic!(
                    "the server did not say it listens ({other:?}); log:\n{}",
                    server.log_text()
                )
            }
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut lines = self.log.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no server log line containing {needle:?}; log:\n{}",
                lines.join("\n")
            );
            lines = self.log.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub fn wait_log_count(&self, needle: &str, n: usize) {
        self.wait_log_until(&format!("{n} log lines containing {needle:?}"), |lines| {
            lines.iter().filter(|l| l.contains(needle)).count() >= n
        });
    }

    /// Waits until the server has logged `n` connections closed at once for a limit (it sums
    /// them up once a second: `closed N connections at once in the last second (...)`).
    pub fn wait_closed_at_once(&self, n: u64) {
        let total = |lines: &[String]| -> u64 {
            lines
                .iter()
                .filter_map(|l| l.split("limit: closed ").nth(1))
                .filter_map(|rest| rest.split(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        self.wait_log_until(
            &format!("{n} connections logged as closed at once"),
            |lines| total(lines) >= n,
        );
        let logged = total(&self.log.lines.lock().unwrap_or_else(|e| e.into_inner()));
        assert_eq!(logged, n, "more connections closed at once than expected");
    }

    /// Waits, up to twice the deadline, until `done` holds for the log lines so far.
    fn wait_log_until(&self, what: &str, done: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + DEADLINE * 2;
        let mut lines = self.log.lines.lock().unwrap_or_else(|e| e.into_inner());
        while !done(&lines) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the log never showed {what}");
            lines = self.log.grew.wait_timeout(lines, left).unwrap().0;
        }
    }

    pub fn log_text(&self) -> String {
        self.log
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Registered as `nick`, with what registration brings (the user list, the history and
    /// the notice that it is kept) read.
    pub fn join(&self, nick: &str) -> Client {
        let mut c = self.connect();
        c.send(nick);
        c.expect_next(&format!("WELCOME {nick}"));
        c.read_user_list();
        c.sync();
        c
    }

    /// ana and bob in the chat, ana having seen bob join.
    pub fn pair(&self) -> (Client, Client) {
        let mut ana = self.join("ana");
        let bob = self.join("bob");
        ana.expect_next("JOIN bob");
        (ana, bob)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Stops reading the server's stderr (after the line being read), its pipe shrunk to one
    /// page, so that the server finds it full: as a log reader that stalls.
    pub fn stop_reading_log(&self) {
        *self.log.unread.lock().unwrap() = true;
        // SAFETY: fcntl on the pipe's read end, which the reader thread keeps open.
        let size = unsafe { libc::fcntl(self.log_fd, libc::F_SETPIPE_SZ, 4096) };
        assert!(
            size > 0,
            "F_SETPIPE_SZ: {}",
            std::io::Error::last_os_error()
        );
    }

    pub fn resume_reading_log(&self) {
        *self.log.unread.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.log.resumed.notify_all();
    }

    /// Stops the server process (SIGSTOP) until the returned guard is dropped (SIGCONT): what
    /// clients send meanwhile waits in the kernel, and the server then finds it all in one pass
    /// of its event loop, in the order it arrived.
    pub fn pause(&self) -> Paused<'_> {
        self.signal(libc::SIGSTOP);
        Paused(self)
    }

    /// Waits for the process to exit, within the deadline.
    pub fn wait_exit(mut self) -> ExitStatus {
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        rx.recv_timeout(DEADLINE)
            .expect("server did not exit in time")
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- server log ---\n{}\n---", self.log_text());
        }
        self.resume_reading_log();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client context that trusts only `cert` (and checks the name it connects to).
pub fn trusting(cert: &Path) -> SslConnector {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(cert).unwrap();
    b.set_verify(SslVerifyMode::PEER);
    b.build()
}

pub struct Paused<'a>(&'a Server);

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        self.0.signal(libc::SIGCONT);
    }
}

/// A client context that trusts only the test certificate (built once: loading it is slow).
pub fn connector() -> &'static SslConnector {
    static CONNECTOR: OnceLock<SslConnector> = OnceLock::new();
    CONNECTOR.get_or_init(|| trusting(&certs().cert))
}

/// A client identity as Charla's client makes one (an ECDSA P-256 key and a self-signed
/// certificate, from `charla_proto::identity`), in PEM files for `openssl s_client -cert -key` too.
pub struct Identity {
    _dir: TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `AB:CD:…`, as the server and `charla --show-identity` write it.
    pub fingerprint: String,
    connector: SslConnector,
}

impl Identity {
    pub fn new(name: &str) -> Identity {
        let dir = TempDir::new(&format!("identity-{name}"));
        let made = charla_proto::identity::new_identity(name).expect("make an identity");
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &made.cert_pem).unwrap();
        std::fs::write(&key, &made.key_pem).unwrap();
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_ca_file(&certs().cert).unwrap();
        b.set_verify(SslVerifyMode::PEER);
        b.set_certificate_file(&cert, openssl::ssl::SslFiletype::PEM)
            .unwrap();
        b.set_private_key_file(&key, openssl::ssl::SslFiletype::PEM)
            .unwrap();
        Identity {
            fingerprint: charla_proto::identity::pem_fingerprint(&made.cert_pem).unwrap(),
            _dir: dir,
            cert,
            key,
            connector: b.build(),
        }
    }

    /// A connection that presents this identity.
    pub fn connect(&self, addr: SocketAddr) -> Client {
        Client::connect_with(addr, &self.connector)
    }

    /// TLS with this identity over a connection already made (for example with [`tcp_from`]).
    pub fn connect_over(&self, tcp: TcpStream) -> Client {
        Client::over(tcp, &self.connector)
    }

    /// Connected with this identity and registered as `nick` (welcome and user list read).
    pub fn join(&self, addr: SocketAddr, nick: &str) -> Client {
        let mut c = self.connect(addr);
        c.send(nick);
        c.expect_next(&format!("WELCOME {nick}"));
        c.sync();
        c
    }
}

/// A blocking TLS client that verifies the server's certificate.
pub struct Client {
    pub tls: SslStream<TcpStream>,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_with(addr, connector())
    }

    pub fn connect_with(addr: SocketAddr, connector: &SslConnector) -> Client {
        Client::over(TcpStream::connect(addr).expect("tcp connect"), connector)
    }

    /// TLS over a connection already made (for example with [`tcp_from`]).
    pub fn over(tcp: TcpStream, connector: &SslConnector) -> Client {
        // As Charla's client does: without it, Nagle's algorithm and delayed ACKs hold small
        // lines back up to 40 ms.
        tcp.set_nodelay(true).unwrap();
        tcp.set_read_timeout(Some(DEADLINE)).unwrap();
        tcp.set_write_timeout(Some(DEADLINE)).unwrap();
        let tls = connector.connect("localhost", tcp).expect("TLS handshake");
        Client {
            tls,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.tls.write_all(bytes).expect("send to server");
    }

    /// The next line, or None at end of stream.
    pub fn try_line(&mut self) -> Option<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8(line[..i].to_vec()).expect("server sent UTF-8"));
            }
            assert!(Instant::now() < deadline, "no line from the server in time");
            let mut chunk = [0u8; 16384];
            match self.tls.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                // A socket with a receive timeout is not restarted after a signal (signal(7)):
                // seen once in CI, during a join. Read again; the deadline still holds.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!(
                    "reading from server: {e} (partial: {:?})",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }

    pub fn line(&mut self) -> String {
        self.try_line().expect("server closed the connection")
    }

    /// The next line must be exactly `want`.
    pub fn expect_next(&mut self, want: &str) {
        let got = self.line();
        assert_eq!(got, want);
    }

    /// Reads lines until one starts with `prefix`; returns it and the lines skipped before it.
    pub fn expect_prefix(&mut self, prefix: &str) -> (String, Vec<String>) {
        let mut skipped = Vec::new();
        loop {
            match self.try_line() {
                Some(line) if line.starts_with(prefix) => return (line, skipped),
                Some(line) => skipped.push(line),
                None => {
                    panic!("connection closed before a line starting {prefix:?}; got {skipped:?}")
                }
            }
        }
    }

    /// Reads lines until `want` exactly; returns the lines skipped before it.
    pub fn expect_line(&mut self, want: &str) -> Vec<String> {
        let mut skipped = Vec::new();
        loop {
            match self.try_line() {
                Some(line) if line == want => return skipped,
                Some(line) => skipped.push(line),
                None => panic!("connection closed before {want:?}; got {skipped:?}"),
            }
        }
    }

    /// Round trip: everything the server sent us before answering this ping is returned.
    pub fn sync(&mut self) -> Vec<String> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let token = format!("sync{}", N.fetch_add(1, Ordering::Relaxed));
        self.send(&format!("/ping {token}"));
        self.expect_line(&format!("PONG {token}"))
    }

    /// Reads a `USERS`/`USERS+` list; returns the nicks.
    pub fn read_user_list(&mut self) -> Vec<String> {
        let first = self.line();
        let mut words = first.split(' ');
        assert_eq!(words.next(), Some("USERS"), "expected USERS, got {first:?}");
        let total: usize = words.next().unwrap().parse().unwrap();
        let mut nicks: Vec<String> = words.map(String::from).collect();
        while nicks.len() < total {
            let more = self.line();
            let rest = more
                .strip_prefix("USERS+ ")
                .unwrap_or_else(|| panic!("expected USERS+, got {more:?}"));
            nicks.extend(rest.split(' ').map(String::from));
        }
        assert_eq!(nicks.len(), total);
        nicks
    }

    /// Closes the connection with a TCP reset instead of a FIN (SO_LINGER with a zero timeout).
    pub fn reset(self) {
        use std::os::fd::AsRawFd;
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a socket we own, with a correctly sized struct.
        let rc = unsafe {
            libc::setsockopt(
                self.tls.get_ref().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &linger as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
    }

    /// The server must close the connection; returns the lines it sent first.
    pub fn expect_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.try_line() {
            lines.push(line);
        }
        lines
    }
}

/// Waits for a raw TCP connection to be closed by the peer: true if closed within the deadline.
pub fn wait_tcp_closed(tcp: &mut TcpStream) -> bool {
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A TCP proxy in front of a server that can cut every connection through it at once, as a
/// network that drops would; new connections go through as before.
pub struct Proxy {
    pub addr: SocketAddr,
    live: Arc<Mutex<Vec<TcpStream>>>,
    /// While set, new connections wait before they reach the server.
    held: Arc<(Mutex<bool>, Condvar)>,
}

impl Proxy {
    pub fn start(to: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let addr = listener.local_addr().unwrap();
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let held: Arc<(Mutex<bool>, Condvar)> = Arc::default();
        let sockets = live.clone();
        let gate = held.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let (lock, opened) = &*gate;
                let mut closed = lock.lock().unwrap_or_else(|e| e.into_inner());
                while *closed {
                    closed = opened.wait(closed).unwrap_or_else(|e| e.into_inner());
                }
                drop(closed);
                let Ok(server) = TcpStream::connect(to) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut live = sockets.lock().unwrap_or_else(|e| e.into_inner());
                    live.push(client.try_clone().unwrap());
                    live.push(server.try_clone().unwrap());
                }
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || pump(from, to));
                }
            }
        });
        Proxy { addr, live, held }
    }

    /// Cuts every connection made so far, both ways, and holds new ones back until
    /// [`Proxy::reopen`]: the network stays down as long as the test needs.
    pub fn sever_and_hold(&self) {
        *self.held.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.sever();
    }

    pub fn reopen(&self) {
        *self.held.0.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.held.1.notify_all();
    }

    /// Cuts every connection made so far, both ways.
    pub fn sever(&self) {
        for socket in self
            .live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}
