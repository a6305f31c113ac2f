//! The event loop: one thread, one `mio::Poll`, every socket.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::IpAddr;
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use charla_proto::{leave_reason, notice, ErrorCode};

use crate::address::{address_key, ConnectRate, PerAddress, Refusals};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use openssl::ssl::{ErrorCode as SslErrorCode, Ssl, SslAcceptor, SslStream};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::auth::{Password, Throttle};
use crate::chat::Room;
use crate::config::Config;
use crate::conn::{write_until_blocked, BufferPool, Conn, Phase, Slab};
use crate::log::log;
use crate::tls;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);

/// Connections accepted past --max-clients only to be told `ERROR server-full`; past this many
/// more, a connection is closed without a word (TLS would cost more than it is worth).
const OVER_CAPACITY_GRACE: usize = 64;
/// A refused connection is let in to be told why only while its address has fewer than this many
/// connections still joining; else it is closed at once.
const REFUSALS_TOLD: usize = 4;
/// How long a closing connection may take to take its last lines and close its side.
const LINGER: Duration = Duration::from_secs(2);
/// Bytes read from one connection before the others get their turn.
const READ_BUDGET: usize = 256 * 1024;
const SCRATCH_SIZE: usize = 16 * 1024;
/// Longest time lines wait to be written while more input keeps arriving.
const FLUSH_AFTER: Duration = Duration::from_millis(1);
/// Quiet time after which freed memory is handed back to the system.
const IDLE_TRIM_AFTER: Duration = Duration::from_secs(1);
/// How long SIGINT/SIGTERM waits for connections to close before exiting anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Why a connection is being closed.
#[derive(Debug)]
pub enum CloseReason {
    Quit(Option<String>),
    PeerClosed,
    Lost(String),
    TooSlow,
    HandshakeFailed(String),
    HandshakeTimeout,
    RegisterTimeout,
    /// Turned away after the handshake with this error (a limit, a wrong password).
    Rejected(ErrorCode),
    Shutdown,
}

impl CloseReason {
    /// The reason others see in `LEAVE <nick> [reason]`.
    fn leave_text(&self) -> Option<&str> {
        match self {
            CloseReason::Quit(reason) => reason.as_deref(),
            CloseReason::PeerClosed => Some(leave_reason::CONNECTION_CLOSED),
            CloseReason::Lost(_) => Some(leave_reason::CONNECTION_LOST),
            CloseReason::TooSlow => Some(leave_reason::TOO_SLOW),
            CloseReason::RegisterTimeout | CloseReason::HandshakeTimeout => {
                Some(leave_reason::TIMEOUT)
            }
            CloseReason::HandshakeFailed(_) | CloseReason::Rejected(_) => None,
            CloseReason::Shutdown => Some(leave_reason::SHUTTING_DOWN),
        }
    }

    /// Closed on the spot, without close_notify: the peer is gone, broken or not reading.
    fn abrupt(&self) -> bool {
        matches!(
            self,
            CloseReason::Lost(_)
                | CloseReason::TooSlow
                | CloseReason::HandshakeFailed(_)
                | CloseReason::HandshakeTimeout
        )
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            CloseReason::Quit(_) => "quit".into(),
            CloseReason::PeerClosed => "connection closed by peer".into(),
            CloseReason::Lost(why) => format!("connection lost: {why}"),
            CloseReason::TooSlow => "too slow: send queue over --max-queue".into(),
            CloseReason::HandshakeFailed(why) => format!("handshake failed: {why}"),
            CloseReason::HandshakeTimeout => "handshake timed out (--handshake-timeout)".into(),
            CloseReason::RegisterTimeout => "no nickname in time (--register-timeout)".into(),
            CloseReason::Rejected(ErrorCode::ServerFull) => "server full (--max-clients)".into(),
            CloseReason::Rejected(ErrorCode::TooManyConnections) => {
                "too many connections from this address (--max-per-ip or --max-connects-per-ip)"
                    .into()
            }
            CloseReason::Rejected(ErrorCode::BadPassword) => "wrong password".into(),
            CloseReason::Rejected(code) => code.as_str().into(),
            CloseReason::Shutdown => "server shutting down".into(),
        }
    }
}

/// A moment when a connection must have left a phase; stale entries are skipped by serial.
struct Deadline {
    at: Instant,
    token: Token,
    serial: u64,
}

/// Fixes the kernel's send buffer for one client (SO_SNDBUF; Linux doubles the value for its
/// bookkeeping). Without it the kernel grows the buffer up to net.ipv4.tcp_wmem's maximum, which
/// lets a client that stopped reading hold megabytes of kernel memory before --max-queue counts.
fn set_send_buffer(stream: &TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: setsockopt reads `size` for the given length; the descriptor is open.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Whether the output queued so far goes out at the end of this pass. While more input keeps
/// arriving, lines for each client pile up and go out together (fewer TLS records and write
/// calls): they wait at most FLUSH_AFTER, and not at all once the input stops. With
/// --batch-delay they wait that long, whatever the input does. Connections to close (too slow,
/// or everyone at shutdown) never wait.
fn flush_due(batch_delay: Duration, waited: Duration, had_input: bool, closing: bool) -> bool {
    closing
        || if batch_delay.is_zero() {
            !had_input || waited >= FLUSH_AFTER
        } else {
            waited >= batch_delay
        }
}

pub struct Server {
    pub(crate) poll: Poll,
    listener: Option<TcpListener>,
    signals: Signals,
    acceptor: SslAcceptor,
    pub(crate) cfg: Config,
    pub(crate) conns: Slab,
    pub(crate) room: Room,
    /// Connections with output to write at the end of this pass.
    pub(crate) flush_queue: Vec<Token>,
    /// The room's members while they are flushed (kept to reuse its allocation).
    member_scratch: Vec<Token>,
    /// Connections found too slow while a line was being fanned out, closed after it.
    pub(crate) to_close: Vec<(Token, u64, CloseReason)>,
    /// Connections that used their read budget and have more to read.
    read_again: Vec<Token>,
    handshake_deadlines: VecDeque<Deadline>,
    register_deadlines: VecDeque<Deadline>,
    linger_deadlines: VecDeque<Deadline>,
    scratch: Vec<u8>,
    /// Output buffers between uses.
    pub(crate) pool: BufferPool,
    /// A reusable buffer for formatting one line.
    pub(crate) line_buf: Vec<u8>,
    next_serial: u64,
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    pub(crate) now: Instant,
    pub(crate) password: Option<Password>,
    pub(crate) throttle: Throttle,
    /// Open connections per address key, for --max-per-ip.
    per_ip: PerAddress,
    /// Connections per address key still in their handshake or without a nickname, for
    /// --max-joining-per-ip.
    pub(crate) joining: PerAddress,
    /// New connections per address key over time, for --max-connects-per-ip.
    connect_rate: ConnectRate,
    quiet_closes: QuietCloses,
    /// When each address was last told why it was refused.
    refusals: Refusals,
    /// Most connections since memory was last handed back to the system.
    peak_conns: usize,
    /// When to hand memory back if nothing happens until then.
    trim_due: Option<Instant>,
    /// When output started waiting for the next write to clients.
    queued_since: Option<Instant>,
}

impl Server {
    /// Binds the listening socket and prepares the loop; errors are one line for the operator.
    pub fn new(
        cfg: Config,
        acceptor: SslAcceptor,
        password: Option<Password>,
    ) -> Result<Server, String> {
        let poll = Poll::new().map_err(|e| format!("cannot create the event loop: {e}"))?;
        let mut listener = TcpListener::bind(cfg.bind).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => format!(
                "cannot listen on {}: the address is already in use (another server running? pick another with --bind)",
                cfg.bind
            ),
            _ => format!("cannot listen on {}: {e}", cfg.bind),
        })?;
        // mio listens with a backlog of 1024; a burst of connections (a class joining at once, a
        // flood of sockets) should wait in the kernel's queue, not be dropped. Linux lets
        // listen() be called again to raise it (up to net.core.somaxconn).
        // SAFETY: listen() on the socket we own.
        unsafe {
            libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 4096);
        }
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("cannot watch the listening socket: {e}"))?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("cannot watch signals: {e}"))?;
        Ok(Server {
            poll,
            listener: Some(listener),
            signals,
            acceptor,
            cfg,
            conns: Slab::default(),
            room: Room::default(),
            flush_queue: Vec::new(),
            member_scratch: Vec::new(),
            to_close: Vec::new(),
            read_again: Vec::new(),
            handshake_deadlines: VecDeque::new(),
            register_deadlines: VecDeque::new(),
            linger_deadlines: VecDeque::new(),
            scratch: vec![0; SCRATCH_SIZE],
            pool: BufferPool::default(),
            line_buf: Vec::new(),
            next_serial: 0,
            accept_paused_until: None,
            shutdown_deadline: None,
            now: Instant::now(),
            password,
            throttle: Throttle::default(),
            per_ip: PerAddress::default(),
            joining: PerAddress::default(),
            connect_rate: ConnectRate::default(),
            quiet_closes: QuietCloses::default(),
            refusals: Refusals::default(),
            peak_conns: 0,
            trim_due: None,
            queued_since: None,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Runs until SIGINT or SIGTERM has closed every connection.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let batch_delay = self.cfg.batch_delay;
            let timeout = match self.queued_since {
                _ if !self.output_waiting() && self.to_close.is_empty() => self.next_timeout(),
                // --batch-delay: output waits for its time (or for anything due earlier).
                Some(since) if !batch_delay.is_zero() => {
                    let due = (since + batch_delay).saturating_duration_since(Instant::now());
                    Some(self.next_timeout().map_or(due, |t| t.min(due)))
                }
                // Output is waiting: only look for what is already there, then write.
                _ => Some(Duration::ZERO),
            };
            crate::log::flush();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            self.now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    SIGNALS => self.handle_signals(),
                    token => self.conn_ready(
                        token,
                        event.is_readable() || event.is_read_closed() || event.is_error(),
                        event.is_writable(),
                    ),
                }
            }
            for token in std::mem::take(&mut self.read_again) {
                self.conn_ready(token, true, false);
            }
            self.expire_deadlines();
            self.quiet_closes.report_if_due(self.now);
            let waited = self.queued_since.map_or(Duration::ZERO, |t| self.now - t);
            let due = flush_due(
                batch_delay,
                waited,
                !events.is_empty(),
                !self.to_close.is_empty() || self.shutdown_deadline.is_some(),
            );
            if due {
                self.finish_pass();
                self.queued_since = None;
            } else if self.queued_since.is_none() && self.output_waiting() {
                self.queued_since = Some(self.now);
            }
            self.trim_memory(!events.is_empty());
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || self.now >= deadline {
                    log!("stopped ({} connections left)", self.conns.len());
                    return Ok(());
                }
            }
        }
    }

    /// Hands freed memory back to the system (glibc keeps it otherwise): once half the
    /// connections of a peak have gone, and once things have been quiet for a second, so that a
    /// burst of sockets or of traffic does not leave the server fat for good.
    fn trim_memory(&mut self, had_events: bool) {
        let now = self.conns.len();
        self.peak_conns = self.peak_conns.max(now);
        let after_peak = self.peak_conns >= 256 && now <= self.peak_conns / 2;
        let quiet = !had_events && self.trim_due.is_some_and(|at| at <= self.now);
        if had_events {
            self.trim_due = Some(self.now + IDLE_TRIM_AFTER);
        }
        if after_peak || quiet {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only releases free memory held by the allocator.
            unsafe {
                libc::malloc_trim(0);
            }
            self.peak_conns = now;
            if quiet {
                self.trim_due = None;
            }
        }
    }

    fn next_timeout(&self) -> Option<Duration> {
        if !self.read_again.is_empty() {
            return Some(Duration::ZERO);
        }
        [
            &self.handshake_deadlines,
            &self.register_deadlines,
            &self.linger_deadlines,
        ]
        .into_iter()
        .filter_map(|q| q.front().map(|d| d.at))
        .chain(self.accept_paused_until)
        .chain(self.shutdown_deadline)
        .chain(self.trim_due)
        .chain(self.quiet_closes.due())
        .min()
        // Rounded up: epoll counts whole milliseconds and waking early just loops again.
        .map(|at| at.saturating_duration_since(Instant::now()) + Duration::from_millis(1))
    }

    fn accept_all(&mut self) {
        while let Some(listener) = &self.listener {
            match listener.accept() {
                Ok((stream, addr)) => self.add_conn(stream, addr),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                    ) =>
                {
                    // Out of descriptors or memory: pending connections wait in the backlog.
                    log!("limit: cannot accept: {e}; retrying in 100 ms");
                    self.accept_paused_until = Some(self.now + Duration::from_millis(100));
                    return;
                }
                Err(e) => log!("accept failed: {e}"),
            }
        }
    }

    fn add_conn(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        let count = self.conns.len();
        let key = address_key(addr.ip());
        // Turned away before anything is spent on it, so that an address cannot hold the places
        // of others until its handshakes time out.
        if count >= self.cfg.max_clients + OVER_CAPACITY_GRACE {
            return self
                .quiet_closes
                .note(QuietClose::ServerFull, key, self.now);
        }
        if self.joining.count(key) >= self.cfg.max_joining_per_ip {
            return self.quiet_closes.note(QuietClose::Joining, key, self.now);
        }
        let too_fast = self
            .connect_rate
            .take(key, self.now, self.cfg.max_connects_per_ip)
            .err();
        let refusal = if count >= self.cfg.max_clients {
            Some(QuietClose::ServerFull)
        } else if self.cfg.max_per_ip > 0 && self.per_ip.count(key) >= self.cfg.max_per_ip {
            Some(QuietClose::PerAddress)
        } else if too_fast.is_some() {
            Some(QuietClose::TooFast)
        } else {
            None
        };
        // Telling why takes a TLS handshake: an address is told while it has few connections
        // still joining, and once a second; past that it is closed at once.
        if let Some(why) = refusal {
            if self.joining.count(key) >= REFUSALS_TOLD || !self.refusals.may_tell(key, self.now) {
                return self.quiet_closes.note(why, key, self.now);
            }
        }
        // Chat lines are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        if self.cfg.send_buffer > 0 {
            set_send_buffer(&stream, self.cfg.send_buffer);
        }
        let token = Token(self.conns.next_index());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            log!("cannot watch connection from {addr}: {e}");
            return;
        }
        let tls =
            match Ssl::new(self.acceptor.context()).and_then(|ssl| SslStream::new(ssl, stream)) {
                Ok(tls) => tls,
                Err(e) => {
                    log!("cannot start TLS for {addr}: {e}");
                    return;
                }
            };
        self.next_serial += 1;
        let serial = self.next_serial;
        let mut conn = Conn::new(tls, addr, serial, self.now, self.cfg.flood_burst);
        conn.authenticated = self.password.is_none();
        self.per_ip.add(key);
        self.joining.add(key);
        conn.joining = true;
        conn.reject = match refusal {
            None => None,
            Some(QuietClose::ServerFull) => Some((
                ErrorCode::ServerFull,
                "the server is full, try again later".into(),
            )),
            Some(QuietClose::TooFast) => Some((
                ErrorCode::TooManyConnections,
                format!(
                    "too many new connections from your address; try again in {} s",
                    too_fast.unwrap_or_default().as_secs() + 1
                )
                .into(),
            )),
            Some(_) => Some((
                ErrorCode::TooManyConnections,
                "too many connections from your address".into(),
            )),
        };
        self.conns.insert(conn);
        self.handshake_deadlines.push_back(Deadline {
            at: self.now + self.cfg.handshake_timeout,
            token,
            serial,
        });
        log!("accepted {addr}");
    }

    fn conn_ready(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        match conn.phase {
            Phase::Handshaking => self.continue_handshake(token),
            Phase::Registering | Phase::Chatting => {
                if writable && conn.out.pending() > 0 {
                    // The socket has room again. The output goes out with this pass's other
                    // lines, or, with --batch-delay, at once: it has waited its turn already.
                    if self.cfg.batch_delay.is_zero() {
                        self.queue_flush(token);
                    } else {
                        self.flush(token);
                    }
                }
                if readable {
                    self.read_lines(token);
                }
            }
            Phase::Closing => {
                if writable && !conn.close_notify_sent {
                    self.queue_flush(token);
                }
                if readable {
                    self.drain_closing(token);
                }
            }
        }
    }

    fn continue_handshake(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        match conn.tls.accept() {
            Ok(()) => {
                if let Some((code, text)) = conn.reject.take() {
                    log!("limit: {text}, rejecting {}", conn.addr);
                    conn.phase = Phase::Registering;
                    self.reply_error(token, code, &text);
                    self.close(token, CloseReason::Rejected(code));
                    return;
                }
                conn.phase = Phase::Registering;
                let serial = conn.serial;
                self.register_deadlines.push_back(Deadline {
                    at: self.now + self.cfg.register_timeout,
                    token,
                    serial,
                });
                self.update_interest(token);
                // The nickname may have come in the same packets as the handshake's end.
                self.read_lines(token);
            }
            Err(e) if e.code() == SslErrorCode::WANT_READ => {
                conn.handshake_interest = Interest::READABLE;
                self.update_interest(token);
            }
            Err(e) if e.code() == SslErrorCode::WANT_WRITE => {
                conn.handshake_interest = Interest::READABLE | Interest::WRITABLE;
                self.update_interest(token);
            }
            Err(e) => {
                let why = describe_ssl_error(&e);
                self.close(token, CloseReason::HandshakeFailed(why));
            }
        }
    }

    /// Reads until the socket is empty (OpenSSL keeps decrypted bytes that epoll never reports
    /// again) or the read budget is used, handling each complete line.
    fn read_lines(&mut self, token: Token) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut budget = READ_BUDGET;
        let max_line = self.cfg.max_line;
        while let Some(conn) = self.conns.get_mut(token.0) {
            if !matches!(conn.phase, Phase::Registering | Phase::Chatting) {
                break;
            }
            match conn.tls.read(&mut scratch) {
                Ok(0) => {
                    self.close(token, CloseReason::PeerClosed);
                    break;
                }
                Ok(n) => {
                    let mut framer = std::mem::take(&mut conn.framer);
                    framer.feed(&scratch[..n], max_line, |frame| {
                        self.handle_frame(token, frame)
                    });
                    if let Some(conn) = self.conns.get_mut(token.0) {
                        conn.framer = framer;
                    }
                    budget = budget.saturating_sub(n);
                    if budget == 0 {
                        self.read_again.push(token);
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.close(token, CloseReason::Lost(describe_io_error(&e)));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// A closing connection's input is read and dropped until the peer closes.
    fn drain_closing(&mut self, token: Token) {
        let mut scratch = std::mem::take(&mut self.scratch);
        while let Some(conn) = self.conns.get_mut(token.0) {
            match conn.tls.read(&mut scratch) {
                Ok(0) => {
                    self.drop_conn(token);
                    break;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_conn(token);
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    pub(crate) fn queue_flush(&mut self, token: Token) {
        if let Some(conn) = self.conns.get_mut(token.0) {
            if !conn.flush_queued {
                conn.flush_queued = true;
                self.flush_queue.push(token);
            }
        }
    }

    /// Output is queued for some connection, or lines for the room.
    fn output_waiting(&self) -> bool {
        !self.flush_queue.is_empty() || self.room.dirty
    }

    /// Ends a loop pass: closes what was found too slow, then writes every connection that has
    /// output once, with everything queued for it this pass in as few TLS records as possible.
    fn finish_pass(&mut self) {
        loop {
            while let Some((token, serial, reason)) = self.to_close.pop() {
                if self.conns.get(token.0).is_some_and(|c| c.serial == serial) {
                    self.close(token, reason);
                }
            }
            if self.room.dirty {
                // Closing connections (too slow, lost) adds LEAVE lines: round again.
                self.room.dirty = false;
                self.flush_room();
                continue;
            }
            if self.flush_queue.is_empty() {
                if self.to_close.is_empty() {
                    self.room.clear_log();
                    return;
                }
                continue;
            }
            let queue = std::mem::take(&mut self.flush_queue);
            for &token in &queue {
                self.flush(token);
            }
            if self.flush_queue.is_empty() {
                // Keep the allocation for the next pass.
                self.flush_queue = queue;
                self.flush_queue.clear();
            }
        }
    }

    /// Serves every member the room's lines of this pass: its own queue first (its bytes come
    /// before the room's), then straight from the room's log. Whatever the socket does not take
    /// is copied into the member's queue, to go out when it drains; past --max-queue the member
    /// is too slow.
    fn flush_room(&mut self) {
        let mut members = std::mem::take(&mut self.member_scratch);
        members.clear();
        members.extend_from_slice(self.room.members());
        for &token in &members {
            self.flush_member(token);
        }
        self.member_scratch = members;
    }

    fn flush_member(&mut self, token: Token) {
        let max_queue = self.cfg.max_queue;
        let Server {
            room, conns, pool, ..
        } = self;
        let Some(conn) = conns.get_mut(token.0) else {
            return;
        };
        // A member that spoke has the room's earlier lines in its own queue (`catch_up`).
        if !matches!(conn.phase, Phase::Registering | Phase::Chatting)
            || (room.unserved(conn).is_empty() && conn.out.pending() == 0)
        {
            return;
        }
        // Its own bytes first; once they are all out, the room's, from the shared log.
        let result = conn.out.write_to(&mut conn.tls, pool).and_then(|all_out| {
            if all_out {
                let unserved = room.unserved(conn);
                conn.room_pos += write_until_blocked(&mut conn.tls, unserved)? as u64;
            }
            Ok(())
        });
        if let Err(e) = result {
            self.close(token, CloseReason::Lost(describe_io_error(&e)));
            return;
        }
        // The socket is full: the rest waits in the member's queue. A write that returned
        // WouldBlock is retried from there with the same bytes first, which OpenSSL allows
        // (ACCEPT_MOVING_WRITE_BUFFER).
        room.catch_up(conn, pool);
        if conn.out.pending() > max_queue {
            conn.give_up();
            self.to_close
                .push((token, conn.serial, CloseReason::TooSlow));
            return;
        }
        self.update_interest(token);
    }

    fn flush(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let serial = conn.serial;
        conn.flush_queued = false;
        if conn.phase == Phase::Handshaking {
            return;
        }
        match conn.out.write_to(&mut conn.tls, &mut self.pool) {
            Ok(true) if conn.phase == Phase::Closing && !conn.close_notify_sent => {
                // close_notify once; the peer's is not waited for.
                conn.close_notify_sent = true;
                let _ = conn.tls.shutdown();
                let _ = conn.tls.get_ref().shutdown(Shutdown::Write);
                if conn.peer_gone {
                    // Its end is closed already: nothing to linger for.
                    return self.drop_conn(token);
                }
                // The peer may have closed already (a client that sends /quit and hangs up): its
                // end of stream, if there, is read now rather than at the end of the linger.
                self.drain_closing(token);
                if self.conns.get(token.0).is_none_or(|c| c.serial != serial) {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                if conn.phase == Phase::Closing {
                    self.drop_conn(token);
                } else {
                    self.close(token, CloseReason::Lost(describe_io_error(&e)));
                }
                return;
            }
        }
        self.update_interest(token);
    }

    fn update_interest(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let wanted = conn.wanted_interest();
        if wanted != conn.interest {
            match self
                .poll
                .registry()
                .reregister(conn.tls.get_mut(), token, wanted)
            {
                Ok(()) => conn.interest = wanted,
                Err(e) => {
                    let why = format!("cannot watch socket: {e}");
                    self.close(token, CloseReason::Lost(why));
                }
            }
        }
    }

    /// Starts closing a connection: it leaves the room (others get LEAVE), then either goes at
    /// once or flushes its last lines and says close_notify.
    pub(crate) fn close(&mut self, token: Token, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.close_started {
            return;
        }
        conn.close_started = true;
        conn.phase = Phase::Closing;
        // A connection on its way out no longer counts against the per-address limits.
        release_address(&mut self.per_ip, &mut self.joining, conn);
        conn.peer_gone = matches!(reason, CloseReason::PeerClosed);
        let abrupt = reason.abrupt();
        if abrupt {
            conn.out.clear();
        }
        let who = conn.who();
        if !abrupt {
            // What the room said before it left still reaches it.
            self.room.catch_up(conn, &mut self.pool);
        }
        if let Some(slot) = conn.room_slot.take() {
            let nick = std::mem::take(&mut conn.nick);
            self.room.leave(&mut self.conns, slot, &nick);
            log!("left {who}: {}", reason.describe());
            if self.shutdown_deadline.is_none() {
                let leave = reason.leave_text();
                let mut words = vec!["LEAVE", &*nick];
                words.extend(leave);
                self.send_to_room(None, &words);
            }
        } else {
            log!("closed {who}: {}", reason.describe());
        }
        if abrupt {
            self.drop_conn(token);
        } else if let Some(conn) = self.conns.get(token.0) {
            let serial = conn.serial;
            self.linger_deadlines.push_back(Deadline {
                at: self.now + LINGER,
                token,
                serial,
            });
            self.queue_flush(token);
        }
    }

    fn drop_conn(&mut self, token: Token) {
        if let Some(mut conn) = self.conns.remove(token.0) {
            if !conn.close_started {
                release_address(&mut self.per_ip, &mut self.joining, &mut conn);
            }
            if let Some(slot) = conn.room_slot.take() {
                // Every path out of the room goes through close(); this is a safety net.
                self.room.leave(&mut self.conns, slot, &conn.nick);
            }
            let _ = self.poll.registry().deregister(conn.tls.get_mut());
        }
    }

    fn expire_deadlines(&mut self) {
        let now = self.now;
        while let Some(d) = pop_due(&mut self.handshake_deadlines, now) {
            if self.is_current(&d, Phase::Handshaking) {
                self.close(d.token, CloseReason::HandshakeTimeout);
            }
        }
        while let Some(d) = pop_due(&mut self.register_deadlines, now) {
            if self.is_current(&d, Phase::Registering) {
                let secs = self.cfg.register_timeout.as_secs_f64();
                self.reply_error(
                    d.token,
                    charla_proto::ErrorCode::Timeout,
                    &format!("no nickname within {secs} s"),
                );
                self.close(d.token, CloseReason::RegisterTimeout);
            }
        }
        while let Some(d) = pop_due(&mut self.linger_deadlines, now) {
            if self.is_current(&d, Phase::Closing) {
                self.drop_conn(d.token);
            }
        }
        if self.accept_paused_until.is_some_and(|at| at <= now) {
            self.accept_paused_until = None;
            self.accept_all();
        }
    }

    fn is_current(&self, d: &Deadline, phase: Phase) -> bool {
        self.conns
            .get(d.token.0)
            .is_some_and(|c| c.serial == d.serial && c.phase == phase)
    }

    fn handle_signals(&mut self) {
        let signals: Vec<i32> = self.signals.pending().collect();
        for signal in signals {
            match signal {
                SIGHUP => self.reload_tls(),
                _ if self.shutdown_deadline.is_some() => {
                    log!("second signal: exiting now");
                    crate::log::flush();
                    std::process::exit(0);
                }
                _ => self.begin_shutdown(signal),
            }
        }
    }

    fn reload_tls(&mut self) {
        match tls::load_acceptor(&self.cfg) {
            Ok(acceptor) => {
                self.acceptor = acceptor;
                log!(
                    "reloaded certificate {} and key {}",
                    self.cfg.cert.display(),
                    self.cfg.key.display()
                );
            }
            Err(e) => log!("reload failed, keeping the current certificate: {e}"),
        }
    }

    fn begin_shutdown(&mut self, signal: i32) {
        let name = if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        self.quiet_closes.report();
        log!(
            "{name}: shutting down, closing {} connections",
            self.conns.len()
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(self.now + SHUTDOWN_GRACE);
        for index in self.conns.indexes() {
            let token = Token(index);
            let Some(conn) = self.conns.get(index) else {
                continue;
            };
            match conn.phase {
                Phase::Handshaking => self.drop_conn(token),
                Phase::Registering | Phase::Chatting => {
                    self.reply(token, &["NOTICE", notice::SHUTTING_DOWN]);
                    self.close(token, CloseReason::Shutdown);
                }
                Phase::Closing => {}
            }
        }
    }
}

/// Takes a connection out of the per-address counts (once: `close` does it for every connection
/// that goes through it, `drop_conn` for the others).
fn release_address(per_ip: &mut PerAddress, joining: &mut PerAddress, conn: &mut Conn) {
    let key = address_key(conn.addr.ip());
    per_ip.remove(key);
    if std::mem::take(&mut conn.joining) {
        joining.remove(key);
    }
}

/// Why a connection was closed at once, without a handshake.
#[derive(Clone, Copy)]
enum QuietClose {
    ServerFull,
    PerAddress,
    Joining,
    TooFast,
}

/// Connections closed at once for a limit, logged as one line a second: a line each would let
/// whoever connects in a loop grow the log as fast as it connects.
#[derive(Default)]
struct QuietCloses {
    /// Per [`QuietClose`]: how many, and the address (key) of the last one.
    counts: [(u64, Option<IpAddr>); 4],
    since: Option<Instant>,
}

impl QuietCloses {
    fn note(&mut self, why: QuietClose, key: IpAddr, now: Instant) {
        self.since.get_or_insert(now);
        let entry = &mut self.counts[why as usize];
        entry.0 += 1;
        entry.1 = Some(key);
    }

    fn due(&self) -> Option<Instant> {
        self.since.map(|since| since + Duration::from_secs(1))
    }

    fn report_if_due(&mut self, now: Instant) {
        if self.due().is_some_and(|due| due <= now) {
            self.report();
        }
    }

    fn report(&mut self) {
        const WHY: [&str; 4] = [
            "server full",
            "too many connections from",
            "too many joining from",
            "new connections too fast from",
        ];
        let mut total = 0;
        let mut parts = Vec::new();
        for (i, (count, key)) in self.counts.iter().enumerate() {
            if *count > 0 {
                total += count;
                match (i, key) {
                    (0, _) | (_, None) => parts.push(format!("{}: {count}", WHY[i])),
                    (_, Some(key)) => parts.push(format!("{} {key} (last): {count}", WHY[i])),
                }
            }
        }
        if total > 0 {
            log!(
                "limit: closed {total} connections at once in the last second ({})",
                parts.join(", ")
            );
        }
        *self = QuietCloses::default();
    }
}

fn pop_due(queue: &mut VecDeque<Deadline>, now: Instant) -> Option<Deadline> {
    if queue.front()?.at <= now {
        queue.pop_front()
    } else {
        None
    }
}

fn describe_io_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        _ => e.to_string(),
    }
}

/// A short reason for a failed handshake, for the log.
fn describe_ssl_error(e: &openssl::ssl::Error) -> String {
    if let Some(io) = e.io_error() {
        return describe_io_error(io);
    }
    if let Some(stack) = e.ssl_error() {
        if let Some(reason) = stack.errors().first().and_then(|err| err.reason()) {
            return reason.to_string();
        }
    }
    if e.code() == SslErrorCode::SYSCALL || e.code() == SslErrorCode::ZERO_RETURN {
        return "peer closed the connection".into();
    }
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_waits_only_while_input_keeps_coming() {
        let ms = Duration::from_millis;
        // Default: written as soon as a pass brings no input, else after FLUSH_AFTER.
        assert!(flush_due(Duration::ZERO, ms(0), false, false));
        assert!(!flush_due(Duration::ZERO, ms(0), true, false));
        assert!(flush_due(Duration::ZERO, FLUSH_AFTER, true, false));
        // --batch-delay 5: waits 5 ms even when the input has stopped.
        assert!(!flush_due(ms(5), ms(0), false, false));
        assert!(!flush_due(ms(5), ms(4), true, false));
        assert!(flush_due(ms(5), ms(5), false, false));
        // A connection to close (too slow, shutdown) does not wait for either.
        assert!(flush_due(ms(5), ms(0), true, true));
        assert!(flush_due(Duration::ZERO, ms(0), true, true));
    }
}
