//! The network thread: owns the TLS stream (a native-tls stream cannot be split) and serves both
//! the socket and the commands from the UI, on one `mio::Poll` woken by a `Waker`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use charla_proto::{fingerprint, parse_server_line, Frame, LineFramer, ServerLine};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use native_tls::{Certificate, HandshakeError, MidHandshakeTlsStream, TlsConnector, TlsStream};

use crate::config::KnownServers;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// From connect to WELCOME.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// After `/quit`, how long to wait for the server to close.
const QUIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Retries come back within this: a restarted server sees its users again within seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_SERVER_LINE: usize = 1 << 20;

/// How the server's certificate is checked.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Verify the chain against this CA or certificate file, and the host name.
    CaFile(PathBuf),
    /// Trust on first use: the certificate must be the one remembered for this server; an unknown
    /// server's fingerprint is shown to the user to accept or refuse.
    Pinned(KnownServers),
}

#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub nick: String,
    pub trust: Trust,
    /// Sent with `/pass` before the nickname, for servers started with --password-file.
    pub password: Option<String>,
}

impl Target {
    /// `host:port`, as the known-servers file names servers.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What the UI asks of the network thread.
#[derive(Debug)]
pub enum Command {
    Connect(Target),
    /// One protocol line, without its `\n`. Lines sent while not registered wait until the
    /// (re)registration.
    Send(String),
    /// The user's answer about a new server's fingerprint.
    TrustAnswer(bool),
    /// `/quit [reason]`, then stop.
    Quit(Option<String>),
    /// End the thread.
    Shutdown,
}

/// What the network thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Connecting {
        server: String,
        attempt: u32,
    },
    /// A server seen for the first time: answer with `Command::TrustAnswer`.
    NewServer {
        server: String,
        fingerprint: String,
    },
    /// The server shows a different certificate than the one remembered: refused.
    ServerChanged {
        server: String,
        expected: String,
        got: String,
    },
    Registered {
        nick: String,
    },
    /// A line from the server, after registration (and any line before it that is not a reply to
    /// the nickname).
    Line(String),
    /// The server turned the registration down (`nick-taken`, `nick-invalid`,
    /// `password-required`, `bad-password`, `server-full`, `too-many-connections`); the
    /// connection is closed.
    Refused {
        code: String,
        text: String,
    },
    /// The connection dropped; a new attempt follows after `retry_in`.
    Lost {
        reason: String,
        retry_in: Duration,
    },
    /// Nothing more will happen until a new `Connect`.
    Failed {
        reason: String,
    },
    /// The connection was closed after `/quit`.
    Closed,
}

/// Handle to the network thread.
pub struct Network {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Network {
    /// Starts the thread; `on_event` runs on it for every event.
    pub fn start(on_event: impl FnMut(Event) + Send + 'static) -> io::Result<Network> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (commands, rx) = mpsc::channel();
        let worker = Worker::new(poll, rx, Box::new(on_event));
        let thread = std::thread::Builder::new()
            .name("charla-net".into())
            .spawn(move || worker.run())?;
        Ok(Network {
            commands,
            waker,
            thread: Some(thread),
        })
    }

    pub fn send(&self, command: Command) {
        if self.commands.send(command).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

enum Link {
    Down,
    Connecting(TcpStream),
    Handshaking(MidHandshakeTlsStream<TcpStream>),
    /// TLS is up, waiting for the user to accept this new server.
    AwaitingTrust(String),
    Up(TlsStream<TcpStream>),
}

struct Worker {
    poll: Poll,
    commands: Receiver<Command>,
    on_event: Box<dyn FnMut(Event) + Send>,
    target: Option<Target>,
    link: Link,
    registered: bool,
    /// This session has been registered at least once: a lost connection is retried.
    was_registered: bool,
    attempt: u32,
    retry_at: Option<Instant>,
    deadline: Option<Instant>,
    quitting: bool,
    framer: LineFramer,
    out: Vec<u8>,
    out_sent: usize,
    /// Lines the user sent while not registered.
    backlog: Vec<String>,
    interest: Interest,
}

impl Worker {
    fn new(
        poll: Poll,
        commands: Receiver<Command>,
        on_event: Box<dyn FnMut(Event) + Send>,
    ) -> Worker {
        Worker {
            poll,
            commands,
            on_event,
            target: None,
            link: Link::Down,
            registered: false,
            was_registered: false,
            attempt: 0,
            retry_at: None,
            deadline: None,
            quitting: false,
            framer: LineFramer::new(),
            out: Vec::new(),
            out_sent: 0,
            backlog: Vec::new(),
            interest: Interest::READABLE,
        }
    }

    fn emit(&mut self, event: Event) {
        (self.on_event)(event);
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(16);
        loop {
            let timeout = [self.retry_at, self.deadline]
                .into_iter()
                .flatten()
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    let reason = format!("event loop failed: {e}");
                    self.emit(Event::Failed { reason });
                    return;
                }
            }
            let socket_ready = events.iter().any(|e| e.token() == SOCKET);
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => {
                        self.drop_link();
                        return;
                    }
                    Ok(command) => self.command(command),
                    Err(TryRecvError::Empty) => break,
                }
            }
            if socket_ready {
                self.socket_ready();
            }
            self.timers();
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Connect(target) => {
                self.drop_link();
                self.target = Some(target);
                self.was_registered = false;
                self.quitting = false;
                self.attempt = 0;
                self.backlog.clear();
                self.start_connect();
            }
            Command::Send(line) => {
                if self.registered {
                    self.queue_line(&line);
                } else {
                    self.backlog.push(line);
                }
            }
            Command::TrustAnswer(accepted) => self.trust_answer(accepted),
            Command::Quit(reason) => {
                self.target = None;
                self.retry_at = None;
                if self.registered {
                    self.quitting = true;
                    let line = match reason {
                        Some(r) => format!("/quit {r}"),
                        None => "/quit".to_string(),
                    };
                    self.queue_line(&line);
                    self.deadline = Some(Instant::now() + QUIT_TIMEOUT);
                } else {
                    self.drop_link();
                    self.emit(Event::Closed);
                }
            }
            Command::Shutdown => unreachable!("handled by the loop"),
        }
    }

    fn start_connect(&mut self) {
        let Some(target) = self.target.clone() else {
            return;
        };
        self.retry_at = None;
        self.attempt += 1;
        self.emit(Event::Connecting {
            server: target.server(),
            attempt: self.attempt,
        });
        let addr = match (target.host.as_str(), target.port)
            .to_socket_addrs()
            .map(|mut a| a.next())
        {
            Ok(Some(addr)) => addr,
            Ok(None) => return self.connection_lost(format!("{}: no address found", target.host)),
            Err(e) => return self.connection_lost(format!("cannot find {}: {e}", target.host)),
        };
        match self.open_socket(addr) {
            Ok(tcp) => {
                self.link = Link::Connecting(tcp);
                self.deadline = Some(Instant::now() + CONNECT_TIMEOUT);
            }
            Err(e) => self.connection_lost(format!("cannot connect to {}: {e}", target.server())),
        }
    }

    fn open_socket(&mut self, addr: SocketAddr) -> io::Result<TcpStream> {
        let mut tcp = TcpStream::connect(addr)?;
        let _ = tcp.set_nodelay(true);
        self.interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut tcp, SOCKET, self.interest)?;
        Ok(tcp)
    }

    fn socket_ready(&mut self) {
        match std::mem::replace(&mut self.link, Link::Down) {
            Link::Down => {}
            Link::Connecting(tcp) => self.tcp_connected(tcp),
            Link::Handshaking(mid) => self.handshake_result(mid.handshake()),
            link @ Link::AwaitingTrust(_) => self.link = link,
            Link::Up(tls) => {
                self.link = Link::Up(tls);
                self.flush();
                self.read();
            }
        }
    }

    fn tcp_connected(&mut self, tcp: TcpStream) {
        let Some(target) = self.target.clone() else {
            return;
        };
        match tcp.take_error() {
            Ok(Some(e)) | Err(e) => {
                return self.connection_lost(format!("cannot connect to {}: {e}", target.server()))
            }
            Ok(None) => {}
        }
        match tcp.peer_addr() {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                self.link = Link::Connecting(tcp);
                return;
            }
            Err(e) => {
                return self.connection_lost(format!("cannot connect to {}: {e}", target.server()))
            }
        }
        let connector = match tls_connector(&target.trust) {
            Ok(c) => c,
            Err(reason) => return self.give_up(reason),
        };
        self.handshake_result(connector.connect(&target.host, tcp));
    }

    fn handshake_result(
        &mut self,
        result: Result<TlsStream<TcpStream>, HandshakeError<TcpStream>>,
    ) {
        match result {
            Ok(tls) => self.tls_up(tls),
            Err(HandshakeError::WouldBlock(mid)) => self.link = Link::Handshaking(mid),
            Err(HandshakeError::Failure(e)) => {
                let server = self.target.as_ref().map(Target::server).unwrap_or_default();
                let text = e.to_string();
                let reason = if text.contains("certificate verify failed") {
                    format!("the certificate of {server} could not be verified ({text})")
                } else {
                    format!("TLS with {server} failed: {text}")
                };
                // A certificate that fails verification will not pass on a retry either.
                if text.contains("certificate") {
                    self.give_up(reason)
                } else {
                    self.connection_lost(reason)
                }
            }
        }
    }

    fn tls_up(&mut self, tls: TlsStream<TcpStream>) {
        let Some(target) = self.target.clone() else {
            return;
        };
        if let Trust::Pinned(known) = &target.trust {
            let got = match tls.peer_certificate() {
                Ok(Some(cert)) => match cert.to_der() {
                    Ok(der) => fingerprint(&der),
                    Err(e) => {
                        return self.give_up(format!("cannot read the server's certificate: {e}"))
                    }
                },
                _ => return self.give_up("the server showed no certificate".into()),
            };
            let server = target.server();
            match known.lookup(&server) {
                Ok(Some(expected)) if expected == got => {}
                Ok(Some(expected)) => {
                    self.drop_link();
                    self.target = None;
                    self.retry_at = None;
                    self.deadline = None;
                    return self.emit(Event::ServerChanged {
                        server,
                        expected,
                        got,
                    });
                }
                Ok(None) => {
                    // The question may take longer than the server waits for a nickname: this
                    // connection is dropped and a new one made once the user has answered.
                    self.drop_link();
                    self.deadline = None;
                    self.link = Link::AwaitingTrust(got.clone());
                    return self.emit(Event::NewServer {
                        server,
                        fingerprint: got,
                    });
                }
                Err(e) => {
                    return self.give_up(format!("cannot read {}: {e}", known.path().display()))
                }
            }
        }
        self.link = Link::Up(tls);
        self.framer = LineFramer::new();
        self.out.clear();
        self.out_sent = 0;
        if let Some(password) = &target.password {
            self.queue_line(&format!("/pass {password}"));
        }
        if let Some(password) = &target.password {
            self.queue_line(&format!("/pass {password}"));
        }
        self.queue_line(&target.nick);
        self.read();
    }

    fn trust_answer(&mut self, accepted: bool) {
        let Link::AwaitingTrust(fp) = std::mem::replace(&mut self.link, Link::Down) else {
            return;
        };
        let Some(Target {
            trust: Trust::Pinned(known),
            ..
        }) = self.target.clone()
        else {
            return;
        };
        let server = self.target.as_ref().map(Target::server).unwrap_or_default();
        if !accepted {
            return self.give_up(format!("{server} was not trusted: not connected"));
        }
        if let Err(e) = known.remember(&server, &fp) {
            return self.give_up(format!("cannot save {}: {e}", known.path().display()));
        }
        self.attempt = 0;
        self.start_connect();
    }

    fn queue_line(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.push(b'\n');
        self.flush();
    }

    fn flush(&mut self) {
        let Link::Up(tls) = &mut self.link else {
            return;
        };
        let mut failure = None;
        while self.out_sent < self.out.len() {
            match tls.write(&self.out[self.out_sent..]) {
                Ok(n) => self.out_sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        }
        if let Some(e) = failure {
            return self.connection_lost(format!("connection lost: {e}"));
        }
        let wanted = if self.out.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if wanted != self.interest {
            if let Link::Up(tls) = &mut self.link {
                if self
                    .poll
                    .registry()
                    .reregister(tls.get_mut(), SOCKET, wanted)
                    .is_ok()
                {
                    self.interest = wanted;
                }
            }
        }
    }

    fn read(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let Link::Up(tls) = &mut self.link else {
                return;
            };
            match tls.read(&mut buf) {
                Ok(0) => return self.connection_lost("the server closed the connection".into()),
                Ok(n) => {
                    let mut framer = std::mem::take(&mut self.framer);
                    let mut lines = Vec::new();
                    framer.feed(&buf[..n], MAX_SERVER_LINE, |frame| {
                        if let Frame::Line(line) = frame {
                            lines.push(line.to_string());
                        }
                        true
                    });
                    self.framer = framer;
                    for line in lines {
                        self.server_line(line);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.connection_lost(format!("connection lost: {e}")),
            }
        }
    }

    fn server_line(&mut self, line: String) {
        if self.registered {
            if let ServerLine::Nick { old, new } = parse_server_line(&line) {
                // Reconnecting uses the name the user has now.
                if let Some(target) = self.target.as_mut().filter(|t| t.nick == old) {
                    target.nick = new.to_string();
                }
            }
            return self.emit(Event::Line(line));
        }
        match parse_server_line(&line) {
            ServerLine::Welcome(nick) => {
                let nick = nick.to_string();
                self.registered = true;
                self.was_registered = true;
                self.attempt = 0;
                self.deadline = None;
                self.emit(Event::Registered { nick });
                for line in std::mem::take(&mut self.backlog) {
                    self.queue_line(&line);
                }
            }
            ServerLine::Error {
                code:
                    code @ ("nick-taken"
                    | "nick-invalid"
                    | "password-required"
                    | "bad-password"
                    | "server-full"
                    | "too-many-connections"),
                text,
            } => {
                let (code, text) = (code.to_string(), text.to_string());
                self.drop_link();
                self.target = None;
                self.deadline = None;
                self.emit(Event::Refused { code, text });
            }
            _ => self.emit(Event::Line(line)),
        }
    }

    fn timers(&mut self) {
        let now = Instant::now();
        if self.retry_at.is_some_and(|at| at <= now) {
            self.start_connect();
        }
        if self.deadline.is_some_and(|at| at <= now) {
            self.deadline = None;
            if self.quitting {
                self.drop_link();
                self.quitting = false;
                self.emit(Event::Closed);
            } else {
                self.connection_lost("the server did not answer in time".into());
            }
        }
    }

    /// The connection could not be made or was lost: retried if this session was registered
    /// before, else reported as a failure (the user is still at the login window).
    fn connection_lost(&mut self, reason: String) {
        self.drop_link();
        if self.quitting {
            self.quitting = false;
            return self.emit(Event::Closed);
        }
        if self.was_registered && self.target.is_some() {
            let retry_in = backoff(self.attempt);
            self.retry_at = Some(Instant::now() + retry_in);
            self.deadline = None;
            self.emit(Event::Lost { reason, retry_in });
        } else {
            self.give_up(reason);
        }
    }

    fn give_up(&mut self, reason: String) {
        self.drop_link();
        self.target = None;
        self.retry_at = None;
        self.deadline = None;
        self.emit(Event::Failed { reason });
    }

    fn drop_link(&mut self) {
        match std::mem::replace(&mut self.link, Link::Down) {
            Link::Up(mut tls) => {
                let _ = tls.shutdown();
                let _ = self.poll.registry().deregister(tls.get_mut());
            }
            Link::Handshaking(mut mid) => {
                let _ = self.poll.registry().deregister(mid.get_mut());
            }
            Link::Connecting(mut tcp) => {
                let _ = self.poll.registry().deregister(&mut tcp);
            }
            Link::Down | Link::AwaitingTrust(_) => {}
        }
        self.registered = false;
        self.out.clear();
        self.out_sent = 0;
    }
}

/// 1, 2, 4, 8, 10, 10... seconds.
fn backoff(attempt: u32) -> Duration {
    let secs = 1u64 << attempt.saturating_sub(1).min(5);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

fn tls_connector(trust: &Trust) -> Result<TlsConnector, String> {
    let mut builder = TlsConnector::builder();
    builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    match trust {
        Trust::CaFile(path) => {
            let pem =
                std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("{}: not a PEM certificate ({e})", path.display()))?;
            builder
                .add_root_certificate(cert)
                .disable_built_in_roots(true);
        }
        Trust::Pinned(_) => {
            // The chain and name are not checked here; instead the certificate itself must be the
            // one the user accepted (compared by fingerprint before anything is sent). The TLS
            // handshake still proves the server holds that certificate's key.
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
    }
    builder
        .build()
        .map_err(|e| format!("TLS setup failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_ten_seconds() {
        let secs: Vec<u64> = (1..=7).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10, 10]);
    }

    #[test]
    fn server_names_bracket_ipv6() {
        let t = |host: &str| Target {
            host: host.into(),
            port: 1,
            nick: "a".into(),
            trust: Trust::CaFile("x".into()),
            password: None,
        };
        assert_eq!(t("localhost").server(), "localhost:1");
        assert_eq!(t("::1").server(), "[::1]:1");
    }
}
