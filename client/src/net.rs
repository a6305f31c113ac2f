//! The network thread: owns the TLS stream (a native-tls stream cannot be split) and serves both
//! the socket and the commands from the UI, on one `mio::Poll` woken by a `Waker`.
//!
//! Connecting never blocks the thread, so that the UI's commands (closing the window) are served
//! at once: the name is looked up on a short-lived thread of its own (a lookup can hang); every
//! address found is tried in the resolver's order, the next one as soon as the previous refuses or
//! after [`DIAL_STAGGER`] without an answer (the slow one keeps its chance meanwhile, as in
//! RFC 8305), so that `localhost` works whether the server listens on `::1` or `127.0.0.1`; the
//! first address that answers gets the TLS handshake.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use charla_proto::io::write_until_blocked;
use charla_proto::reply::split_id;
use charla_proto::{fingerprint, parse_server_line, ErrorCode, Frame, LineFramer, ServerLine};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use native_tls::{Certificate, HandshakeError, MidHandshakeTlsStream, TlsConnector, TlsStream};

use crate::config::KnownServers;
use crate::identity::Identity;

const SOCKET: Token = Token(0);
const WAKER: Token = Token(1);
/// Sockets still connecting get tokens from here on, a new one for every socket.
const FIRST_DIAL_TOKEN: usize = 2;
/// How long one address may stay silent before the next one is tried as well.
pub const DIAL_STAGGER: Duration = Duration::from_millis(250);
/// From connect to WELCOME.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// After `/quit`, how long to wait for the server to close.
const QUIT_TIMEOUT: Duration = Duration::from_secs(3);
/// Retries come back within this: a restarted server sees its users again within seconds.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const MAX_SERVER_LINE: usize = 1 << 20;
/// Rooms joined at once after a registration, and then every `JOINS_INTERVAL`.
const JOINS_AT_ONCE: usize = 8;
const JOINS_INTERVAL: Duration = Duration::from_secs(1);

/// The token of the `/ping` sent after `/resume` at registration (see `Phase::Registering`).
const RESUME_MARK: &str = "charla-resume";
/// The network thread reads from the server only while fewer batches than this wait for their
/// consumer: a UI that falls behind a flood then holds at most this many reads (16 KiB each) of
/// lines, the rest stays in the socket, and the server deals with the slow reader.
pub const MAX_BATCHES_IN_FLIGHT: usize = 8;

/// Looks up a host's addresses, in the order to try them. Runs on a thread of its own.
pub type Resolver = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

/// The system's resolver (getaddrinfo), in the order it prefers: on a stock Debian or Ubuntu
/// desktop `localhost` gives `::1` before `127.0.0.1`.
pub fn system_resolver() -> Resolver {
    Arc::new(|host: &str, port: u16| Ok((host, port).to_socket_addrs()?.collect()))
}

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
    /// The certificate presented to the server, which knows the user by it; none with
    /// `--no-identity`.
    /// Shared: the same one goes with every connection.
    pub identity: Option<Arc<Identity>>,
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

/// An operating system error, sorted into what a person can act on; the UI words each in its
/// language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsError {
    /// Nothing listens there.
    Refused,
    TimedOut,
    /// The other side broke the connection off.
    Reset,
    /// No route to that host or network.
    Unreachable,
    NotFound,
    PermissionDenied,
    /// Anything else: the system's own words, without the error number.
    Other(String),
}

impl From<&io::Error> for OsError {
    fn from(e: &io::Error) -> OsError {
        use io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => OsError::Refused,
            K::TimedOut => OsError::TimedOut,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
                OsError::Reset
            }
            K::HostUnreachable | K::NetworkUnreachable | K::AddrNotAvailable => {
                OsError::Unreachable
            }
            K::NotFound => OsError::NotFound,
            K::PermissionDenied => OsError::PermissionDenied,
            _ => {
                let text = e.to_string();
                let plain = match text.rfind(" (os error ") {
                    Some(i) => &text[..i],
                    None => &text,
                };
                OsError::Other(plain.to_string())
            }
        }
    }
}

/// Why a connection could not be made or was lost, in parts that the UI words in its language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The name could not be looked up, or has no address. `detail` is the resolver's word, if
    /// any.
    UnknownHost { host: String, detail: String },
    /// No address answered: each address tried, and why it failed.
    Unreachable {
        server: String,
        tries: Vec<(SocketAddr, OsError)>,
    },
    /// The server's certificate does not verify against the certificate file. `detail` is
    /// OpenSSL's verdict ("self-signed certificate", "hostname mismatch", ...).
    CertificateRejected {
        server: String,
        ca: PathBuf,
        detail: String,
    },
    /// The TLS handshake failed otherwise; `detail` is OpenSSL's reason.
    TlsFailed { server: String, detail: String },
    /// The server showed no certificate to pin.
    NoCertificate { server: String },
    /// The certificate file given to verify the server with cannot be read.
    CaUnreadable { path: PathBuf, error: OsError },
    /// The certificate file is not a PEM certificate.
    CaInvalid { path: PathBuf },
    /// The known-servers file cannot be read or written.
    KnownServers { path: PathBuf, error: OsError },
    /// The user did not trust a new server.
    NotTrusted { server: String },
    /// The server turned a reconnection away for now (full, or too many connections from this
    /// address): retried later.
    Busy { code: ErrorCode, text: String },
    /// The server closed the connection.
    ServerClosed,
    /// No answer in time.
    NoAnswer { server: String },
    /// Reading or writing the connection failed.
    Broken(OsError),
    /// The client itself could not go on (its event loop, a thread, the TLS library).
    Internal(String),
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
    /// Leave with `/quit [reason]`: at once when registered; while a connection is being made,
    /// once it is registered and the waiting lines are sent. Ends with `Closed`, or `Failed` if
    /// the connection cannot be made.
    Quit(Option<String>),
    /// Understand rooms (`/cap rooms` at every registration, docs/protocol.md "Rooms") and join
    /// these once registered (a room already joined is a no-op). Sent before `Connect`.
    Rooms(Vec<String>),
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
    /// The server shows a different certificate than the one remembered in `known_servers`:
    /// refused.
    ServerChanged {
        server: String,
        expected: String,
        got: String,
        known_servers: PathBuf,
    },
    Registered {
        nick: String,
    },
    /// A line the user gave with `Command::Send` went to the server.
    Sent(String),
    /// A line from the server, after registration (and any line before it that is not a reply to
    /// the nickname).
    Line(String),
    /// The server turned the registration down; the connection is closed.
    Refused {
        code: ErrorCode,
        text: String,
    },
    /// The connection dropped; a new attempt follows after `retry_in`.
    Lost {
        problem: Problem,
        retry_in: Duration,
    },
    /// Nothing more will happen until a new `Connect`.
    Failed {
        problem: Problem,
    },
    /// The connection was closed after `/quit`.
    Closed,
}

/// What the network thread produced in one go, in order: all that one read from the server
/// brought, or what a command or a timer caused.
pub struct Batch {
    pub events: Vec<Event>,
    /// Drop it once the events are dealt with: until then the batch counts as in flight.
    pub slot: Slot,
}

/// A batch's place among the [`MAX_BATCHES_IN_FLIGHT`]; dropping it gives the place back.
pub struct Slot(Arc<InFlight>);

impl Drop for Slot {
    fn drop(&mut self) {
        // Only the place that ends a full house wakes the thread: it stopped reading then, and
        // while it reads anyway a wake-up per batch would be a system call per batch for nothing.
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == self.0.bound {
            (self.0.wake)();
        }
    }
}

/// Counts the batches handed over whose [`Slot`] is still alive.
struct InFlight {
    count: AtomicUsize,
    bound: usize,
    /// Called when a place frees up in a full house.
    wake: Box<dyn Fn() + Send + Sync>,
}

impl InFlight {
    fn new(bound: usize, wake: impl Fn() + Send + Sync + 'static) -> Arc<InFlight> {
        Arc::new(InFlight {
            count: AtomicUsize::new(0),
            bound,
            wake: Box::new(wake),
        })
    }

    /// A place for one more batch. Always given: only reading waits for places, so that what a
    /// command or a timer brings about (`Closed`, `Sent`) is never held up by a slow consumer.
    fn slot(self: &Arc<InFlight>) -> Slot {
        self.count.fetch_add(1, Ordering::SeqCst);
        Slot(self.clone())
    }

    fn is_full(&self) -> bool {
        self.count.load(Ordering::SeqCst) >= self.bound
    }
}

/// The errors with which a server turns a registration down (and closes, or waits for another
/// try that this client does not make).
fn refuses_registration(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::NickTaken
            | ErrorCode::NickInvalid
            | ErrorCode::PasswordRequired
            | ErrorCode::BadPassword
            | ErrorCode::ServerFull
            | ErrorCode::TooManyConnections
            | ErrorCode::Timeout
            | ErrorCode::NickRegistered
            | ErrorCode::NoIdentity
            | ErrorCode::Banned
            // Before registration: a muted user may only come back under its old name.
            | ErrorCode::Muted
    )
}

/// Handle to the network thread.
pub struct Network {
    commands: Sender<Command>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl Network {
    /// Starts the thread; `on_batch` runs on it for every batch of events. The thread stops
    /// reading from the server while [`MAX_BATCHES_IN_FLIGHT`] batches are alive; it still serves
    /// commands then.
    pub fn start(on_batch: impl FnMut(Batch) + Send + 'static) -> io::Result<Network> {
        Network::start_with_resolver(on_batch, system_resolver())
    }

    /// As `start`, with names looked up by `resolver`.
    pub fn start_with_resolver(
        on_batch: impl FnMut(Batch) + Send + 'static,
        resolver: Resolver,
    ) -> io::Result<Network> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (commands, rx) = mpsc::channel();
        let in_flight = {
            let waker = waker.clone();
            InFlight::new(MAX_BATCHES_IN_FLIGHT, move || {
                let _ = waker.wake();
            })
        };
        let worker = Worker::new(
            poll,
            waker.clone(),
            rx,
            Box::new(on_batch),
            in_flight,
            resolver,
        );
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

/// The addresses of one connection attempt.
struct Dialer {
    /// Not tried yet, in the resolver's order.
    waiting: VecDeque<SocketAddr>,
    /// Still connecting: a slow address keeps its chance while the next ones are tried.
    trying: Vec<(Token, SocketAddr, TcpStream)>,
    failed: Vec<(SocketAddr, OsError)>,
    /// When to start the next waiting address if none has answered by then.
    next_at: Option<Instant>,
}

enum Link {
    Down,
    /// Waiting for lookup number `.0` (stale answers of earlier lookups are ignored).
    Resolving(u64),
    Dialing(Dialer),
    Handshaking(MidHandshakeTlsStream<TcpStream>),
    /// TLS is up, waiting for the user to accept this new server.
    AwaitingTrust(String),
    Up(Up),
}

/// A connection whose TLS is up, and how far the conversation over it has gone.
struct Up {
    tls: TlsStream<TcpStream>,
    phase: Phase,
    /// Reading stopped with all places in flight taken, possibly with data still waiting: the
    /// socket will not tell again (its readiness is edge-triggered), so reading resumes when a
    /// place frees up.
    reading_paused: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The nickname is sent, no `WELCOME` yet. `resume_unanswered`: `/resume` was sent, and the
    /// `/ping` after it not yet answered: an `ERROR nick-invalid` before that `PONG` is an old
    /// server's answer to `/resume` (from before sessions), not to the nickname. Known by
    /// order, not by what the error's text says.
    Registering {
        resume_unanswered: bool,
    },
    Registered,
    /// `/quit` was sent (once registered): the server's close ends the session.
    Quitting,
}

type Lookup = (u64, io::Result<Vec<SocketAddr>>);

struct Worker {
    poll: Poll,
    waker: Arc<Waker>,
    commands: Receiver<Command>,
    on_batch: Box<dyn FnMut(Batch) + Send>,
    in_flight: Arc<InFlight>,
    /// Events of this step, handed over together by `deliver`.
    batch: Vec<Event>,
    resolver: Resolver,
    lookups_tx: Sender<Lookup>,
    lookups: Receiver<Lookup>,
    last_lookup: u64,
    next_dial_token: usize,
    target: Option<Target>,
    link: Link,
    /// This session (not this connection: the link says that) has been registered at least
    /// once: a lost connection is retried.
    was_registered: bool,
    /// The session the server gave (`SESSION`), and the id of the newest public line this
    /// client has: a reconnection resumes from there (`/resume <token> <last id>`), so that what
    /// was said meanwhile comes once, and nothing twice.
    session: Option<String>,
    last_id: Option<u64>,
    attempt: u32,
    retry_at: Option<Instant>,
    deadline: Option<Instant>,
    /// The `/quit` line to send once registered and the backlog is out.
    quit_when_registered: Option<String>,
    framer: LineFramer,
    out: Vec<u8>,
    out_sent: usize,
    /// Lines the user sent while not registered.
    backlog: Vec<String>,
    /// `Command::Rooms`: this client understands rooms, and joins these at registration.
    rooms: Option<Vec<String>>,
    /// Rooms still to join after this registration, a few at a time (see `JOINS_AT_ONCE`), and
    /// when the next few go.
    joins: VecDeque<String>,
    joins_at: Option<Instant>,
    interest: Interest,
}

impl Worker {
    fn new(
        poll: Poll,
        waker: Arc<Waker>,
        commands: Receiver<Command>,
        on_batch: Box<dyn FnMut(Batch) + Send>,
        in_flight: Arc<InFlight>,
        resolver: Resolver,
    ) -> Worker {
        let (lookups_tx, lookups) = mpsc::channel();
        Worker {
            poll,
            waker,
            commands,
            on_batch,
            in_flight,
            batch: Vec::new(),
            resolver,
            lookups_tx,
            lookups,
            last_lookup: 0,
            next_dial_token: FIRST_DIAL_TOKEN,
            target: None,
            link: Link::Down,
            was_registered: false,
            session: None,
            last_id: None,
            attempt: 0,
            retry_at: None,
            joins: VecDeque::new(),
            joins_at: None,
            deadline: None,
            quit_when_registered: None,
            framer: LineFramer::new(),
            out: Vec::new(),
            out_sent: 0,
            backlog: Vec::new(),
            rooms: None,
            interest: Interest::READABLE,
        }
    }

    fn emit(&mut self, event: Event) {
        self.batch.push(event);
    }

    fn deliver(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.batch);
        let slot = self.in_flight.slot();
        (self.on_batch)(Batch { events, slot });
    }

    fn server_name(&self) -> String {
        self.target.as_ref().map(Target::server).unwrap_or_default()
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(16);
        loop {
            let dial_at = match &self.link {
                Link::Dialing(d) => d.next_at,
                _ => None,
            };
            let timeout = [self.retry_at, self.deadline, dial_at, self.joins_at]
                .into_iter()
                .flatten()
                .min()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    let problem = Problem::Internal(format!("event loop failed: {e}"));
                    self.emit(Event::Failed { problem });
                    self.deliver();
                    return;
                }
            }
            let ready: Vec<Token> = events
                .iter()
                .map(|e| e.token())
                .filter(|&t| t != WAKER)
                .collect();
            loop {
                match self.commands.try_recv() {
                    Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => {
                        self.drop_link();
                        self.deliver();
                        return;
                    }
                    Ok(command) => self.command(command),
                    Err(TryRecvError::Empty) => break,
                }
            }
            while let Ok((id, result)) = self.lookups.try_recv() {
                self.looked_up(id, result);
            }
            if self.up().is_some_and(|up| up.reading_paused) && !self.in_flight.is_full() {
                self.read();
            }
            for token in ready {
                if token == SOCKET {
                    self.socket_ready();
                } else {
                    self.dial_ready(token);
                }
            }
            self.timers();
            self.deliver();
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Connect(mut target) => {
                self.drop_link();
                // `[::1]` as typed in a URL is the address `::1`.
                if let Some(bare) = target
                    .host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                {
                    target.host = bare.to_string();
                }
                self.target = Some(target);
                self.was_registered = false;
                self.session = None;
                self.last_id = None;
                self.quit_when_registered = None;
                self.attempt = 0;
                self.backlog.clear();
                self.start_connect();
            }
            Command::Send(line) => {
                if self.registered() {
                    self.send_user_line(line);
                } else {
                    self.backlog.push(line);
                }
            }
            Command::TrustAnswer(accepted) => self.trust_answer(accepted),
            Command::Rooms(rooms) => self.rooms = Some(rooms),
            Command::Quit(reason) => {
                let line = match reason {
                    Some(r) => format!("/quit {r}"),
                    None => "/quit".to_string(),
                };
                if self.registered() {
                    self.quit(line);
                } else if self.target.is_some() {
                    self.quit_when_registered = Some(line);
                } else {
                    self.drop_link();
                    self.emit(Event::Closed);
                }
            }
            Command::Shutdown => unreachable!("handled by the loop"),
        }
    }

    fn quit(&mut self, line: String) {
        self.target = None;
        self.retry_at = None;
        if let Some(up) = self.up_mut() {
            up.phase = Phase::Quitting;
        }
        // Before the line: a write that fails ends the session at once (`Closed`), and must
        // leave no deadline behind to report it again.
        self.deadline = Some(Instant::now() + QUIT_TIMEOUT);
        self.queue_line(&line);
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
        self.deadline = Some(Instant::now() + CONNECT_TIMEOUT);
        if let Ok(ip) = target.host.parse::<IpAddr>() {
            return self.dial(Dialer::new(vec![SocketAddr::new(ip, target.port)]));
        }
        self.last_lookup += 1;
        let id = self.last_lookup;
        let (resolver, results, waker) = (
            self.resolver.clone(),
            self.lookups_tx.clone(),
            self.waker.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("charla-lookup".into())
            .spawn(move || {
                let found = resolver(&target.host, target.port);
                if results.send((id, found)).is_ok() {
                    let _ = waker.wake();
                }
            });
        match spawned {
            Ok(_) => self.link = Link::Resolving(id),
            Err(e) => self.give_up(Problem::Internal(format!("cannot start a lookup: {e}"))),
        }
    }

    fn looked_up(&mut self, id: u64, found: io::Result<Vec<SocketAddr>>) {
        if !matches!(self.link, Link::Resolving(current) if current == id) {
            return;
        }
        self.link = Link::Down;
        let host = self
            .target
            .as_ref()
            .map(|t| t.host.clone())
            .unwrap_or_default();
        match found {
            Ok(addrs) if !addrs.is_empty() => self.dial(Dialer::new(addrs)),
            Ok(_) => self.connection_lost(Problem::UnknownHost {
                host,
                detail: String::new(),
            }),
            Err(e) => {
                let text = e.to_string();
                let detail = text
                    .strip_prefix("failed to lookup address information: ")
                    .unwrap_or(&text)
                    .to_string();
                self.connection_lost(Problem::UnknownHost { host, detail })
            }
        }
    }

    /// Starts the next address that can be started; reports when nothing is left to try.
    fn dial(&mut self, mut dialer: Dialer) {
        while let Some(addr) = dialer.waiting.pop_front() {
            match self.open_socket(addr) {
                Ok((token, tcp)) => {
                    dialer.trying.push((token, addr, tcp));
                    dialer.next_at =
                        (!dialer.waiting.is_empty()).then(|| Instant::now() + DIAL_STAGGER);
                    self.link = Link::Dialing(dialer);
                    return;
                }
                Err(e) => dialer.failed.push((addr, OsError::from(&e))),
            }
        }
        dialer.next_at = None;
        if dialer.trying.is_empty() {
            let server = self.server_name();
            return self.connection_lost(Problem::Unreachable {
                server,
                tries: dialer.failed,
            });
        }
        self.link = Link::Dialing(dialer);
    }

    fn open_socket(&mut self, addr: SocketAddr) -> io::Result<(Token, TcpStream)> {
        let mut tcp = TcpStream::connect(addr)?;
        let token = Token(self.next_dial_token);
        self.next_dial_token += 1;
        self.poll
            .registry()
            .register(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok((token, tcp))
    }

    /// A connecting socket is ready: connected, or failed.
    fn dial_ready(&mut self, token: Token) {
        // A stale event (an attempt already given up, or the link moved on in this batch) must
        // leave the current link alone.
        let link = std::mem::replace(&mut self.link, Link::Down);
        let Link::Dialing(mut dialer) = link else {
            self.link = link;
            return;
        };
        let Some(i) = dialer.trying.iter().position(|(t, ..)| *t == token) else {
            self.link = Link::Dialing(dialer);
            return;
        };
        let tcp = &dialer.trying[i].2;
        let outcome = match tcp.take_error() {
            Ok(Some(e)) | Err(e) => Err(e),
            Ok(None) => match tcp.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    // Not yet: a spurious wake-up.
                    self.link = Link::Dialing(dialer);
                    return;
                }
                Err(e) => Err(e),
            },
        };
        let (_, addr, mut tcp) = dialer.trying.remove(i);
        match outcome {
            Ok(()) => {
                for (_, _, mut other) in dialer.trying.drain(..) {
                    let _ = self.poll.registry().deregister(&mut other);
                }
                self.connected(tcp);
            }
            Err(e) => {
                let _ = self.poll.registry().deregister(&mut tcp);
                dialer.failed.push((addr, OsError::from(&e)));
                // A refusal is an answer: no reason to wait before the next address.
                self.dial(dialer);
            }
        }
    }

    fn connected(&mut self, mut tcp: TcpStream) {
        let Some(target) = self.target.clone() else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        // The handshake does not say whether it waits to read or to write: both.
        self.interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .reregister(&mut tcp, SOCKET, self.interest)
        {
            return self.connection_lost(Problem::Broken(OsError::from(&e)));
        }
        let connector = match tls_connector(&target.trust, target.identity.as_deref()) {
            Ok(c) => c,
            Err(problem) => return self.give_up(problem),
        };
        self.handshake_result(connector.connect(&target.host, tcp));
    }

    fn socket_ready(&mut self) {
        match std::mem::replace(&mut self.link, Link::Down) {
            Link::Handshaking(mid) => self.handshake_result(mid.handshake()),
            Link::Up(up) => {
                self.link = Link::Up(up);
                self.flush();
                self.read();
            }
            other => self.link = other,
        }
    }

    fn handshake_result(
        &mut self,
        result: Result<TlsStream<TcpStream>, HandshakeError<TcpStream>>,
    ) {
        match result {
            Ok(tls) => self.tls_up(tls),
            Err(HandshakeError::WouldBlock(mid)) => self.link = Link::Handshaking(mid),
            Err(HandshakeError::Failure(e)) => {
                let server = self.server_name();
                match tls_failure(&e) {
                    TlsFailure::Unverified => {
                        let ca = match self.target.as_ref().map(|t| &t.trust) {
                            Some(Trust::CaFile(path)) => path.clone(),
                            _ => PathBuf::new(),
                        };
                        // A certificate that fails verification will not pass on a retry either.
                        self.give_up(Problem::CertificateRejected {
                            server,
                            ca,
                            detail: verify_verdict(&e),
                        })
                    }
                    TlsFailure::Io(error) => self.connection_lost(Problem::Broken(error)),
                    TlsFailure::Closed => self.connection_lost(Problem::ServerClosed),
                    TlsFailure::Protocol(detail) => {
                        self.connection_lost(Problem::TlsFailed { server, detail })
                    }
                }
            }
        }
    }

    fn tls_up(&mut self, tls: TlsStream<TcpStream>) {
        let Some(target) = self.target.clone() else {
            return;
        };
        if let Trust::Pinned(known) = &target.trust {
            let server = target.server();
            let der = tls
                .peer_certificate()
                .ok()
                .flatten()
                .and_then(|cert| cert.to_der().ok());
            let Some(der) = der else {
                return self.give_up(Problem::NoCertificate { server });
            };
            let got = fingerprint(&der);
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
                        known_servers: known.path().to_path_buf(),
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
                    return self.give_up(Problem::KnownServers {
                        path: known.path().to_path_buf(),
                        error: OsError::from(&e),
                    })
                }
            }
        }
        // `/resume` is always sent, with a `/ping` after it (see `Phase::Registering`).
        self.link = Link::Up(Up {
            tls,
            phase: Phase::Registering {
                resume_unanswered: true,
            },
            reading_paused: false,
        });
        self.framer = LineFramer::new();
        self.out.clear();
        self.out_sent = 0;
        if let Some(password) = &target.password {
            self.queue_line(&format!("/pass {password}"));
        }
        // An old server answers `/cap` as it answers `/resume` (see `Phase::Registering`).
        if self.rooms.is_some() {
            self.queue_line("/cap rooms");
        }
        let resume = match (&self.session, self.last_id) {
            (Some(token), Some(last)) => format!("/resume {token} {last}"),
            _ => "/resume".to_string(),
        };
        self.queue_line(&resume);
        self.queue_line(&format!("/ping {RESUME_MARK}"));
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
        let server = self.server_name();
        if !accepted {
            return self.give_up(Problem::NotTrusted { server });
        }
        if let Err(e) = known.remember(&server, &fp) {
            return self.give_up(Problem::KnownServers {
                path: known.path().to_path_buf(),
                error: OsError::from(&e),
            });
        }
        self.attempt = 0;
        self.start_connect();
    }

    fn send_user_line(&mut self, line: String) {
        self.queue_line(&line);
        if self.registered() {
            self.emit(Event::Sent(line));
        }
    }

    fn queue_line(&mut self, line: &str) {
        self.out.extend_from_slice(line.as_bytes());
        self.out.push(b'\n');
        self.flush();
    }

    fn flush(&mut self) {
        let Link::Up(Up { tls, .. }) = &mut self.link else {
            return;
        };
        let written = write_until_blocked(tls, &self.out[self.out_sent..]);
        if let Ok(n) = written {
            self.out_sent += n;
        }
        if self.out_sent == self.out.len() {
            self.out.clear();
            self.out_sent = 0;
        }
        if let Err(e) = written {
            return self.connection_lost(Problem::Broken(OsError::from(&e)));
        }
        let wanted = if self.out.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if wanted != self.interest {
            let Link::Up(Up { tls, .. }) = &mut self.link else {
                return;
            };
            match self
                .poll
                .registry()
                .reregister(tls.get_mut(), SOCKET, wanted)
            {
                Ok(()) => self.interest = wanted,
                // Without the registration nothing more would be read or written.
                Err(e) => self.connection_lost(Problem::Broken(OsError::from(&e))),
            }
        }
    }

    fn read(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            // The server's lines wait in the socket, not in this process, while the consumer is
            // behind; once the socket is full the server sees a slow reader.
            let full = self.in_flight.is_full();
            let Link::Up(Up {
                tls,
                reading_paused,
                ..
            }) = &mut self.link
            else {
                return;
            };
            *reading_paused = full;
            if full {
                return;
            }
            match tls.read(&mut buf) {
                Ok(0) => return self.connection_lost(Problem::ServerClosed),
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
                    self.deliver();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.connection_lost(Problem::Broken(OsError::from(&e))),
            }
        }
    }

    /// Notes the ids of public lines and the session, and takes the ids off: the rest of the
    /// client sees lines as a plain client would. `SESSION` is kept here, not shown.
    fn note_ids(&mut self, line: String) -> Option<String> {
        fn newest(id: u64, last: &mut Option<u64>) {
            *last = Some(last.map_or(id, |l| l.max(id)));
        }
        if let (Some(id), rest) = split_id(&line) {
            newest(id, &mut self.last_id);
            return Some(rest.to_string());
        }
        if let Some(history) = line.strip_prefix("HISTORY ") {
            if let Some((time, tagged)) = history.split_once(' ') {
                if let (Some(id), rest) = split_id(tagged) {
                    newest(id, &mut self.last_id);
                    return Some(format!("HISTORY {time} {rest}"));
                }
            }
            return Some(line);
        }
        if let ServerLine::Session { token, last } = parse_server_line(&line) {
            self.session = Some(token.to_string());
            // A first session starts from what the server had; one resumed keeps what this client
            // had seen (the replay that follows brings it up to date), unless the server has
            // never given ids that high (a restart with its clock behind): then its own count.
            if self.last_id.is_none_or(|seen| last < seen) {
                self.last_id = Some(last);
            }
            return None;
        }
        Some(line)
    }

    fn server_line(&mut self, line: String) {
        let Some(line) = self.note_ids(line) else {
            return;
        };
        if self.registered() {
            match parse_server_line(&line) {
                ServerLine::Nick { old, new } => {
                    // Reconnecting uses the name the user has now.
                    if let Some(target) = self.target.as_mut().filter(|t| t.nick == old) {
                        target.nick = new.to_string();
                    }
                }
                // Put out by an operator: coming straight back would undo the kick.
                ServerLine::Error { code, text }
                    if code == ErrorCode::Kicked.as_str() || code == ErrorCode::Banned.as_str() =>
                {
                    let code = ErrorCode::from_word(code).unwrap_or(ErrorCode::Kicked);
                    let text = text.to_string();
                    self.drop_link();
                    self.target = None;
                    self.retry_at = None;
                    self.deadline = None;
                    return self.emit(Event::Refused { code, text });
                }
                _ => {}
            }
            return self.emit(Event::Line(line));
        }
        match parse_server_line(&line) {
            // A server from before sessions: `/resume` was not for it, and the nickname follows.
            ServerLine::Error { code, .. }
                if self.resume_unanswered() && code == ErrorCode::NickInvalid.as_str() => {}
            ServerLine::Pong(Some(RESUME_MARK)) if self.resume_unanswered() => {
                if let Some(up) = self.up_mut() {
                    up.phase = Phase::Registering {
                        resume_unanswered: false,
                    };
                }
            }
            // The answer to `/cap rooms`: the room lines that follow say the rest.
            ServerLine::Unknown(l) if l == "CAP" || l.starts_with("CAP ") => {}
            ServerLine::Welcome(nick) => {
                let nick = nick.to_string();
                if let Some(up) = self.up_mut() {
                    up.phase = Phase::Registered;
                }
                self.was_registered = true;
                self.attempt = 0;
                self.deadline = None;
                self.emit(Event::Registered { nick });
                self.joins = self.rooms.clone().unwrap_or_default().into();
                self.send_joins();
                for line in std::mem::take(&mut self.backlog) {
                    self.send_user_line(line);
                }
                if let Some(quit) = self.quit_when_registered.take() {
                    self.quit(quit);
                }
            }
            ServerLine::Error { code, text } => {
                match ErrorCode::from_word(code).filter(|&c| refuses_registration(c)) {
                    // Busy for now, as when a restarted server sees everyone come back at once:
                    // a client that was in the chat tries again later.
                    Some(code @ (ErrorCode::ServerFull | ErrorCode::TooManyConnections))
                        if self.was_registered =>
                    {
                        let text = text.to_string();
                        self.connection_lost(Problem::Busy { code, text });
                    }
                    Some(code) => {
                        let text = text.to_string();
                        self.drop_link();
                        self.target = None;
                        self.deadline = None;
                        self.emit(Event::Refused { code, text });
                    }
                    None => self.emit(Event::Line(line)),
                }
            }
            _ => self.emit(Event::Line(line)),
        }
    }

    /// The next few rooms to join: under the servers' default flood limit (bursts of 20 lines,
    /// 10 a second, a few of them taken by the registration), however many rooms there are.
    fn send_joins(&mut self) {
        for _ in 0..JOINS_AT_ONCE {
            let Some(room) = self.joins.pop_front() else {
                break;
            };
            self.send_user_line(format!("/join {room}"));
        }
        self.joins_at = (!self.joins.is_empty()).then(|| Instant::now() + JOINS_INTERVAL);
    }

    fn timers(&mut self) {
        let now = Instant::now();
        if self.joins_at.is_some_and(|at| at <= now) && self.registered() {
            self.send_joins();
        }
        if self.retry_at.is_some_and(|at| at <= now) {
            self.start_connect();
        }
        if let Link::Dialing(dialer) = &mut self.link {
            if dialer.next_at.is_some_and(|at| at <= now) {
                let dialer = std::mem::replace(dialer, Dialer::new(Vec::new()));
                self.link = Link::Down;
                self.dial(dialer);
            }
        }
        if self.deadline.is_some_and(|at| at <= now) {
            self.deadline = None;
            if self.quitting() {
                self.drop_link();
                self.emit(Event::Closed);
            } else {
                let server = self.server_name();
                self.connection_lost(Problem::NoAnswer { server });
            }
        }
    }

    /// The connection could not be made or was lost: retried if this session was registered
    /// before (and is not just waiting to leave), else reported as a failure (the user is still at
    /// the login window).
    fn connection_lost(&mut self, problem: Problem) {
        let quitting = self.quitting();
        self.drop_link();
        if quitting {
            self.deadline = None;
            return self.emit(Event::Closed);
        }
        if self.was_registered && self.target.is_some() && self.quit_when_registered.is_none() {
            let retry_in = backoff(self.attempt);
            self.retry_at = Some(Instant::now() + retry_in);
            self.deadline = None;
            self.emit(Event::Lost { problem, retry_in });
        } else {
            self.give_up(problem);
        }
    }

    fn give_up(&mut self, problem: Problem) {
        self.drop_link();
        self.target = None;
        self.retry_at = None;
        self.deadline = None;
        self.quit_when_registered = None;
        self.emit(Event::Failed { problem });
    }

    fn up(&self) -> Option<&Up> {
        match &self.link {
            Link::Up(up) => Some(up),
            _ => None,
        }
    }

    fn up_mut(&mut self) -> Option<&mut Up> {
        match &mut self.link {
            Link::Up(up) => Some(up),
            _ => None,
        }
    }

    fn phase(&self) -> Option<Phase> {
        self.up().map(|up| up.phase)
    }

    /// The server has welcomed this connection (and it may be leaving).
    fn registered(&self) -> bool {
        matches!(self.phase(), Some(Phase::Registered | Phase::Quitting))
    }

    fn quitting(&self) -> bool {
        self.phase() == Some(Phase::Quitting)
    }

    fn resume_unanswered(&self) -> bool {
        self.phase()
            == Some(Phase::Registering {
                resume_unanswered: true,
            })
    }

    fn drop_link(&mut self) {
        match std::mem::replace(&mut self.link, Link::Down) {
            Link::Up(mut up) => {
                let _ = up.tls.shutdown();
                let _ = self.poll.registry().deregister(up.tls.get_mut());
            }
            Link::Handshaking(mut mid) => {
                let _ = self.poll.registry().deregister(mid.get_mut());
            }
            Link::Dialing(mut dialer) => {
                for (_, _, tcp) in &mut dialer.trying {
                    let _ = self.poll.registry().deregister(tcp);
                }
            }
            Link::Down | Link::Resolving(_) | Link::AwaitingTrust(_) => {}
        }
        self.out.clear();
        self.out_sent = 0;
        self.joins.clear();
        self.joins_at = None;
    }
}

impl Dialer {
    fn new(addrs: Vec<SocketAddr>) -> Dialer {
        Dialer {
            waiting: addrs.into(),
            trying: Vec::new(),
            failed: Vec::new(),
            next_at: None,
        }
    }
}

/// 1, 2, 4, 8, 10, 10... seconds.
fn backoff(attempt: u32) -> Duration {
    let secs = 1u64 << attempt.saturating_sub(1).min(5);
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

fn tls_connector(trust: &Trust, identity: Option<&Identity>) -> Result<TlsConnector, Problem> {
    let mut builder = TlsConnector::builder();
    builder.min_protocol_version(Some(native_tls::Protocol::Tlsv12));
    if let Some(identity) = identity {
        let identity = native_tls::Identity::from_pkcs8(&identity.cert_pem, &identity.key_pem)
            .map_err(|e| Problem::Internal(format!("the identity cannot be used: {e}")))?;
        builder.identity(identity);
    }
    match trust {
        Trust::CaFile(path) => {
            let pem = std::fs::read(path).map_err(|e| Problem::CaUnreadable {
                path: path.clone(),
                error: OsError::from(&e),
            })?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|_| Problem::CaInvalid { path: path.clone() })?;
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
        .map_err(|e| Problem::Internal(format!("TLS setup failed: {e}")))
}

enum TlsFailure {
    /// The certificate did not verify.
    Unverified,
    Io(OsError),
    /// The server hung up during the handshake.
    Closed,
    /// Anything else, with OpenSSL's reason.
    Protocol(String),
}

/// OpenSSL's library and reason numbers (include/openssl/sslerr.h; the same in 1.1 and 3.x):
/// openssl-sys does not export them.
const ERR_LIB_SSL: libc::c_int = 20;
const SSL_R_CERTIFICATE_VERIFY_FAILED: libc::c_int = 134;

/// Sorts a failed handshake by OpenSSL's error codes. native-tls's error leads to the I/O error
/// or OpenSSL's error stack behind it.
fn tls_failure(e: &native_tls::Error) -> TlsFailure {
    use std::error::Error as _;
    let Some(cause) = e.source() else {
        return TlsFailure::Closed;
    };
    if let Some(io) = cause.downcast_ref::<io::Error>() {
        return TlsFailure::Io(OsError::from(io));
    }
    if let Some(stack) = cause.downcast_ref::<openssl::error::ErrorStack>() {
        let errors = stack.errors();
        if errors.iter().any(|e| {
            e.library_code() == ERR_LIB_SSL && e.reason_code() == SSL_R_CERTIFICATE_VERIFY_FAILED
        }) {
            return TlsFailure::Unverified;
        }
        if let Some(reason) = errors.first().and_then(|e| e.reason()) {
            return TlsFailure::Protocol(reason.to_string());
        }
    }
    TlsFailure::Protocol(e.to_string())
}

/// OpenSSL's verdict on a certificate that did not verify ("self-signed certificate", "hostname
/// mismatch"): native-tls keeps it only in its message, in the last parentheses. Shown as a
/// detail, never used to decide anything.
fn verify_verdict(e: &native_tls::Error) -> String {
    let text = e.to_string();
    text.strip_suffix(')')
        .and_then(|t| t.rsplit_once(" ("))
        .map(|(_, verdict)| verdict.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_house_of_batches_wakes_the_thread_when_a_place_frees_up() {
        let wakes = Arc::new(AtomicUsize::new(0));
        let counter = wakes.clone();
        let in_flight = InFlight::new(2, move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let first = in_flight.slot();
        assert!(!in_flight.is_full());
        let second = in_flight.slot();
        assert!(in_flight.is_full());
        // Past the bound too: what commands and timers bring is never held back.
        let third = in_flight.slot();
        drop(third);
        assert!(in_flight.is_full(), "still two in flight");
        assert_eq!(wakes.load(Ordering::SeqCst), 0, "not yet a free place");
        drop(first);
        assert!(!in_flight.is_full());
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            1,
            "the thread is woken to read"
        );
        drop(second);
        assert_eq!(
            wakes.load(Ordering::SeqCst),
            1,
            "no wake-up while reading anyway"
        );
        assert_eq!(in_flight.count.load(Ordering::SeqCst), 0);
    }

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
            identity: None,
        };
        assert_eq!(t("localhost").server(), "localhost:1");
        assert_eq!(t("::1").server(), "[::1]:1");
    }

    #[test]
    fn os_errors_in_plain_words() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(OsError::from(&refused), OsError::Refused);
        let raw = io::Error::from_raw_os_error(libc::ENOSPC);
        let OsError::Other(text) = OsError::from(&raw) else {
            panic!("ENOSPC sorted as something else")
        };
        assert!(!text.contains("os error"), "{text}");
        assert!(!text.is_empty());
    }
}
