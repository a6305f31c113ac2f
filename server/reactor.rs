//! The event loop: one thread, one `mio::Poll`, every socket. I/O only: accepting, TLS
//! handshakes, reading until `WouldBlock`, writing what the chat core put in its outbox, interest,
//! deadlines and signals. What a line means is the chat core's business (`chat.rs`).

use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use openssl::ssl::{ErrorCode as SslErrorCode, Ssl, SslAcceptor, SslStream};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

use crate::auth::Password;
use crate::chat::{Admission, Chat, HistorySink, Now};
use crate::close::CloseReason;
use crate::config::Config;
use crate::conn::{Conn, Link, Slab};
use crate::deadlines::Deadlines;
use crate::log::{log, log_error, log_warning};
use crate::outbox::ConnId;
use crate::tls;

const LISTENER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// The state writer (`--state-dir`) has reported a batch written.
const STATE_WRITTEN: Token = Token(usize::MAX - 3);

/// How long a closing connection may take to take its last lines and close its side.
const LINGER: Duration = Duration::from_secs(2);
/// Bytes read from one connection before the others get their turn.
const READ_BUDGET: usize = 256 * 1024;
const SCRATCH_SIZE: usize = 16 * 1024;
/// The room's lines of one pass are written out once they pass this size, whatever the pass
/// still has to read: the room's log is bounded in bytes, not only by the length of a pass.
const ROOM_LOG_MAX: usize = 1 << 20;
/// Longest time lines wait to be written while more input keeps arriving.
const FLUSH_AFTER: Duration = Duration::from_millis(1);
/// Quiet time after which freed memory is handed back to the system.
const IDLE_TRIM_AFTER: Duration = Duration::from_secs(1);
/// How long SIGINT/SIGTERM waits for connections to close before exiting anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// How long a stopping server waits for the state writer to put the last changes on the disk.
const STATE_FINISH_WAIT: Duration = Duration::from_secs(3);
/// How long a second SIGINT/SIGTERM waits for the history's last lines to reach the disk.
const SECOND_SIGNAL_WAIT: Duration = Duration::from_secs(2);
/// The kernel's queue of connections not yet accepted: a burst (a class joining at once, a flood
/// of sockets) waits there instead of being dropped (Linux caps it at net.core.somaxconn).
const LISTEN_BACKLOG: i32 = 4096;

/// A connection that must have left a state by a deadline; stale entries are skipped by serial.
struct Due {
    token: Token,
    serial: u64,
}

/// Whether the output queued so far goes out at the end of this pass. While more input keeps
/// arriving, lines for each client pile up and go out together (fewer TLS records and write
/// calls): they wait at most FLUSH_AFTER, and not at all once the input stops. With
/// --batch-delay they wait that long, whatever the input does. Connections to close (too slow,
/// or everyone at shutdown) and a full room log never wait.
fn flush_due(batch_delay: Duration, waited: Duration, had_input: bool, urgent: bool) -> bool {
    urgent
        || if batch_delay.is_zero() {
            !had_input || waited >= FLUSH_AFTER
        } else {
            waited >= batch_delay
        }
}

/// The listening socket, made through socket2 so that the backlog can be chosen and every call
/// is checked.
fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    // A restarted server can listen again at once, while old connections are in TIME_WAIT.
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// 128 random bits from OpenSSL, as 32 hex digits: unguessable session tokens.
fn session_token() -> String {
    let mut bytes = [0u8; 16];
    // The generator fails only if it could not be seeded; then no token is better than a weak
    // one: an empty token matches no session (the client just gets no resume).
    if openssl::rand::rand_bytes(&mut bytes).is_err() {
        log_error!("cannot make a session token: OpenSSL's random generator failed");
        return String::new();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct Server {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: Signals,
    acceptor: SslAcceptor,
    cfg: Config,
    conns: Slab,
    chat: Chat,
    /// Connections to write this round (kept to reuse its allocation).
    writers: Vec<ConnId>,
    /// Connections with output waiting, when every queue together is over --max-queue-total
    /// (reused).
    backlogged: Vec<ConnId>,
    /// Connections in `Link::Failed` the chat has not been told of yet, with their serials.
    failed: Vec<(ConnId, u64, CloseReason)>,
    /// Connections that used their read budget, or met a full room log, and have more to read.
    read_again: Vec<Token>,
    handshake_deadlines: Deadlines<Due>,
    linger_deadlines: Deadlines<Due>,
    /// When connections with lines waiting must have taken some (--write-timeout).
    write_deadlines: Deadlines<Due>,
    scratch: Vec<u8>,
    next_serial: u64,
    accept_paused_until: Option<Instant>,
    shutdown_deadline: Option<Instant>,
    now: Now,
    /// SO_SNDBUF could not be set: said once.
    send_buffer_warned: bool,
    /// Most connections since memory was last handed back to the system.
    peak_conns: usize,
    /// When to hand memory back if nothing happens until then.
    trim_due: Option<Instant>,
    /// When output started waiting for the next write to clients.
    queued_since: Option<Instant>,
    /// --max-clients as given; `cfg.max_clients` is what the descriptor limit allowed.
    max_clients_given: usize,
    /// Writes `--state-dir` off the loop.
    state_writer: Option<crate::state::StateWriter>,
}

/// What a reload read, before any of it is taken.
struct Reloaded {
    cfg: Config,
    acceptor: SslAcceptor,
    password: Option<Password>,
    operators: crate::moderation::Operators,
}

impl Server {
    /// Binds the listening socket and prepares the loop; errors are one line for the operator.
    pub fn new(
        mut cfg: Config,
        acceptor: SslAcceptor,
        password: Option<Password>,
    ) -> Result<Server, crate::StartError> {
        let max_clients_given = cfg.max_clients;
        cfg.max_clients = crate::descriptors::raise_limit(max_clients_given);
        let poll = Poll::new().map_err(|e| format!("cannot create the event loop: {e}"))?;
        let mut listener = listen(cfg.bind).map_err(|e| match e.kind() {
            io::ErrorKind::AddrInUse => crate::StartError {
                code: charla_proto::ready::code::ADDRESS_IN_USE,
                message: format!(
                    "cannot listen on {}: the address is already in use (another server running? pick another with --bind)",
                    cfg.bind
                ),
            },
            _ => format!("cannot listen on {}: {e}", cfg.bind).into(),
        })?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("cannot watch the listening socket: {e}"))?;
        let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])
            .map_err(|e| format!("cannot install signal handlers: {e}"))?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)
            .map_err(|e| format!("cannot watch signals: {e}"))?;
        let now = Now::read();
        Ok(Server {
            poll,
            listener: Some(listener),
            signals,
            acceptor,
            chat: Chat::new(cfg.clone(), password, Box::new(session_token), now),
            cfg,
            conns: Slab::default(),
            writers: Vec::new(),
            backlogged: Vec::new(),
            failed: Vec::new(),
            read_again: Vec::new(),
            handshake_deadlines: Deadlines::default(),
            linger_deadlines: Deadlines::default(),
            write_deadlines: Deadlines::default(),
            scratch: vec![0; SCRATCH_SIZE],
            next_serial: 0,
            accept_paused_until: None,
            shutdown_deadline: None,
            now,
            send_buffer_warned: false,
            peak_conns: 0,
            trim_due: None,
            queued_since: None,
            max_clients_given,
            state_writer: None,
        })
    }

    /// The history kept by `--history-file`, and where new lines go.
    pub fn restore_history(
        &mut self,
        entries: Vec<crate::history::Entry>,
        sink: Box<dyn HistorySink>,
    ) {
        self.chat.restore_history(entries, sink);
    }

    /// Registrations and bans (`--state-dir`: what it holds, and its writer's thread started
    /// here), operators (`--operators`).
    pub fn set_moderation(
        &mut self,
        operators: crate::moderation::Operators,
        state: Option<(crate::state::StateDir, crate::state::Loaded)>,
    ) -> Result<(), String> {
        let Some((dir, loaded)) = state else {
            self.chat
                .set_moderation(Default::default(), Default::default(), operators, false);
            return Ok(());
        };
        let waker = std::sync::Arc::new(
            mio::Waker::new(self.poll.registry(), STATE_WRITTEN)
                .map_err(|e| format!("cannot watch the state writer: {e}"))?,
        );
        let wake = std::sync::Arc::new(move || {
            let _ = waker.wake();
        });
        self.chat.set_moderation(
            loaded.registrations.clone(),
            loaded.bans.clone(),
            operators,
            true,
        );
        if let Some(text) = &loaded.rooms {
            self.chat.restore_rooms(text).map_err(|(line, why)| {
                format!(
                    "{} line {line}: {why} (fix or move the file; the server does not start \
                     without its rooms)",
                    dir.path(crate::state::StateFile::Rooms).display()
                )
            })?;
        }
        self.state_writer = Some(crate::state::StateWriter::start(dir, loaded, wake)?);
        Ok(())
    }

    /// Hands the chat's state changes to the writer (one batch at a time), and its reports back.
    fn exchange_state(&mut self) {
        let Some(writer) = &mut self.state_writer else {
            return;
        };
        loop {
            match writer.written() {
                Ok(Some((id, result))) => self.chat.state_saved(id, result),
                Ok(None) => break,
                Err(()) => {
                    // Whatever it had is not written: undone and said so.
                    if let Some(id) = self.chat.state_batch_in_flight() {
                        self.chat
                            .state_saved(id, Err("the state directory's writer stopped".into()));
                    }
                    break;
                }
            }
        }
        if let Some(batch) = self.chat.take_state_batch() {
            let id = batch.0;
            if !writer.send(batch) {
                self.chat
                    .state_saved(id, Err("the state directory's writer stopped".into()));
            }
        }
    }

    /// The server stops: the state changes still waiting (the rooms as they were when it began
    /// to stop, for one) are handed to the writer, waiting at most a few seconds for the disk.
    fn finish_state(&mut self) {
        let deadline = Instant::now() + STATE_FINISH_WAIT;
        while self.state_writer.is_some() && Instant::now() < deadline {
            self.exchange_state();
            if self.chat.state_batch_in_flight().is_none() {
                break;
            }
            if let Some(writer) = &mut self.state_writer {
                writer.wait(deadline.saturating_duration_since(Instant::now()));
            }
        }
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.listener {
            Some(l) => l.local_addr(),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Output that must not wait for the batching: connections to close, a full room log.
    fn output_urgent(&self) -> bool {
        self.chat.has_closes()
            || self.shutdown_deadline.is_some()
            || self.chat.outbox.room_len() >= ROOM_LOG_MAX
    }

    /// Runs until SIGINT or SIGTERM has closed every connection.
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        loop {
            let batch_delay = self.cfg.batch_delay;
            let waiting = self.chat.outbox.has_output() || self.chat.has_closes();
            let timeout = match self.queued_since {
                _ if !waiting => self.next_timeout(),
                // --batch-delay: output waits for its time (or for anything due earlier).
                Some(since) if !batch_delay.is_zero() && !self.output_urgent() => {
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
            self.now = Now::read();
            // Those that stopped reading in the last pass go first: epoll will not report their
            // waiting input again.
            for token in std::mem::take(&mut self.read_again) {
                self.conn_ready(token, true, false);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept_all(),
                    SIGNALS => self.handle_signals(),
                    STATE_WRITTEN => self.exchange_state(),
                    token => self.conn_ready(
                        token,
                        event.is_readable() || event.is_read_closed() || event.is_error(),
                        event.is_writable(),
                    ),
                }
            }
            self.expire_deadlines();
            self.chat.tick(self.now);
            self.relieve_full_queues();
            // State changes go to their writer as soon as they are made, whatever the output.
            self.exchange_state();
            let waited = self
                .queued_since
                .map_or(Duration::ZERO, |t| self.now.at - t);
            if flush_due(
                batch_delay,
                waited,
                !events.is_empty(),
                self.output_urgent(),
            ) {
                self.finish_pass();
                self.queued_since = None;
            } else if self.queued_since.is_none() && self.chat.outbox.has_output() {
                self.queued_since = Some(self.now.at);
            }
            self.trim_memory(!events.is_empty());
            if let Some(deadline) = self.shutdown_deadline {
                if self.conns.is_empty() || self.now.at >= deadline {
                    self.finish_state();
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
        let quiet = !had_events && self.trim_due.is_some_and(|at| at <= self.now.at);
        if had_events {
            self.trim_due = Some(self.now.at + IDLE_TRIM_AFTER);
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
            &self.linger_deadlines,
            &self.write_deadlines,
        ]
        .into_iter()
        .filter_map(Deadlines::next)
        .chain(self.accept_paused_until)
        .chain(self.shutdown_deadline)
        .chain(self.trim_due)
        .chain(self.chat.next_deadline())
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
                    log_warning!("limit: cannot accept: {e}; retrying in 100 ms");
                    self.accept_paused_until = Some(self.now.at + Duration::from_millis(100));
                    return;
                }
                Err(e) => log_error!("accept failed: {e}"),
            }
        }
    }

    fn add_conn(&mut self, mut stream: TcpStream, addr: SocketAddr) {
        let Admission::Let(refusal) = self.chat.admit(addr, self.conns.len(), self.now) else {
            return;
        };
        // Chat lines are small and latency matters more than packet count.
        let _ = stream.set_nodelay(true);
        if self.cfg.send_buffer > 0 {
            // Fixes the kernel's send buffer for one client (Linux doubles the value for its
            // bookkeeping). Without it the kernel grows the buffer up to net.ipv4.tcp_wmem's
            // maximum, which lets a client that stopped reading hold megabytes of kernel memory
            // before --max-queue counts.
            let set = socket2::SockRef::from(&stream).set_send_buffer_size(self.cfg.send_buffer);
            if let Err(e) = set {
                if !std::mem::replace(&mut self.send_buffer_warned, true) {
                    log_warning!("cannot set --send-buffer on client sockets: {e}");
                }
            }
        }
        let token = Token(self.conns.next_index());
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, token, Interest::READABLE)
        {
            log_warning!("cannot watch connection from {addr}: {e}");
            return;
        }
        let tls =
            match Ssl::new(self.acceptor.context()).and_then(|ssl| SslStream::new(ssl, stream)) {
                Ok(tls) => tls,
                Err(e) => {
                    log_warning!("cannot start TLS for {addr}: {e}");
                    return;
                }
            };
        self.next_serial += 1;
        let serial = self.next_serial;
        self.conns.insert(Conn::new(tls, serial));
        self.chat.opened(token.0, addr, refusal);
        self.handshake_deadlines.push(
            self.now.at + self.cfg.handshake_timeout,
            Due { token, serial },
        );
    }

    fn conn_ready(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        match conn.link {
            Link::Handshaking { .. } => self.continue_handshake(token),
            Link::Open => {
                if writable && self.chat.outbox.pending(token.0) > 0 {
                    // The socket has room again. The output goes out with this pass's other
                    // lines, or, with --batch-delay, at once: it has waited its turn already.
                    if self.cfg.batch_delay.is_zero() {
                        self.chat.outbox.list_for_flush(token.0);
                    } else {
                        self.flush(token.0);
                    }
                }
                if readable {
                    self.read_lines(token);
                }
            }
            Link::Closing { notify_sent, .. } => {
                if writable && !notify_sent {
                    self.chat.outbox.list_for_flush(token.0);
                }
                if readable {
                    self.drain_closing(token);
                }
            }
            Link::Failed => {}
        }
        // A departure or a drop says LEAVE into every room the person was in.
        self.relieve_full_queues();
    }

    fn continue_handshake(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        let wants = match conn.tls.accept() {
            Ok(()) => {
                conn.link = Link::Open;
                let identity = conn
                    .tls
                    .ssl()
                    .peer_certificate()
                    .and_then(|cert| cert.to_der().ok())
                    .map(|der| charla_proto::fingerprint(&der));
                self.chat.handshake_done(token.0, identity, self.now);
                self.update_interest(token.0);
                // The nickname may have come in the same packets as the handshake's end.
                return self.read_lines(token);
            }
            Err(e) if e.code() == SslErrorCode::WANT_READ => Interest::READABLE,
            Err(e) if e.code() == SslErrorCode::WANT_WRITE => {
                Interest::READABLE | Interest::WRITABLE
            }
            Err(e) => {
                let why = describe_ssl_error(&e);
                return self.end_now(token.0, CloseReason::HandshakeFailed(why));
            }
        };
        conn.link = Link::Handshaking { wants };
        self.update_interest(token.0);
    }

    /// Reads until the socket is empty (OpenSSL keeps decrypted bytes that epoll never reports
    /// again), the read budget is used or the room's log is full, handing each line to the chat.
    fn read_lines(&mut self, token: Token) {
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut budget = READ_BUDGET;
        let id = token.0;
        while let Some(conn) = self.conns.get_mut(id) {
            if conn.link != Link::Open || !self.chat.is_open(id) {
                break;
            }
            if budget == 0 || self.chat.outbox.room_len() >= ROOM_LOG_MAX {
                self.read_again.push(token);
                break;
            }
            match conn.tls.read(&mut scratch) {
                Ok(0) => {
                    self.peer_closed(id);
                    break;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    self.chat.feed(id, &scratch[..n], self.now);
                    // Relieving may drain a closing connection, which reads into this buffer.
                    self.scratch = scratch;
                    self.relieve_full_queues();
                    scratch = std::mem::take(&mut self.scratch);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.end_now(id, CloseReason::Lost(describe_io_error(&e)));
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Queues that passed --max-queue while lines were handled: their sockets get what is queued
    /// now, and a client whose socket cannot take enough is too slow, before more piles up. The
    /// same for every queue once all together pass --max-queue-total; then, if they still hold
    /// more than 90 % of it, those holding the most are shed down to that, so that the next
    /// round of writing everyone waits for a tenth of the limit more (one round per line would
    /// be quadratic with thousands of clients behind). The chat hears of failed connections
    /// here, one at a time with the output of each departure in hand before the next: a
    /// departure from fifty rooms copies its LEAVE lines into the queue of every member served
    /// from another room, and a thousand of them at once would be gigabytes.
    fn relieve_full_queues(&mut self) {
        loop {
            for id in self.chat.outbox.take_over_limit() {
                if self.conns.get(id).is_some_and(|c| c.link == Link::Open) {
                    self.flush(id);
                }
            }
            if self.chat.outbox.total_pending() > self.cfg.max_queue_total {
                let mut backlogged = std::mem::take(&mut self.backlogged);
                backlogged.extend(self.chat.outbox.backlogged().map(|(id, _)| id));
                for &id in &backlogged {
                    self.flush(id);
                }
                backlogged.clear();
                self.backlogged = backlogged;
                self.shed_holders();
            }
            let Some((id, serial, reason)) = self.failed.pop() else {
                break;
            };
            if self.conns.get(id).is_some_and(|c| c.serial == serial) {
                self.end_now(id, reason);
            }
        }
    }

    /// The connection is done for: it gets nothing more, and the chat is told in
    /// `relieve_full_queues`.
    fn fail(&mut self, id: ConnId, reason: CloseReason) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if conn.link == Link::Failed {
            return;
        }
        conn.link = Link::Failed;
        self.failed.push((id, conn.serial, reason));
        // Nor the LEAVE lines of those that fail with it.
        self.chat.outbox.silence(id);
    }

    /// The peer closed its side: it leaves the chat, and gets what is queued for it (it may
    /// still read) before close_notify.
    fn peer_closed(&mut self, id: ConnId) {
        self.chat.disconnected(id, CloseReason::PeerClosed);
        self.start_closing(id, true);
    }

    /// A closing connection's input is read and dropped until the peer closes, at most
    /// READ_BUDGET bytes before the others get their turn (a peer that keeps sending must not
    /// hold the loop until its linger ends). A peer that closed its side may still read: what is
    /// queued for it goes out first, then close_notify.
    fn drain_closing(&mut self, token: Token) {
        let mut scratch = std::mem::take(&mut self.scratch);
        // An empty buffer reads 0 bytes, which would look like the peer's end of stream.
        debug_assert!(!scratch.is_empty(), "the read buffer is in use");
        let id = token.0;
        let mut budget = READ_BUDGET;
        while let Some(conn) = self.conns.get_mut(id) {
            if budget == 0 {
                self.read_again.push(token);
                break;
            }
            match conn.tls.read(&mut scratch) {
                Ok(0) => {
                    match conn.link {
                        Link::Closing {
                            notify_sent: false, ..
                        } if self.chat.outbox.pending(id) > 0 => {
                            conn.link = Link::Closing {
                                notify_sent: false,
                                peer_gone: true,
                            };
                        }
                        _ => self.drop_conn(id),
                    }
                    break;
                }
                Ok(n) => budget = budget.saturating_sub(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.drop_conn(token.0);
                    break;
                }
            }
        }
        self.scratch = scratch;
    }

    /// Ends a pass: closes what the chat is done with, then writes every connection that has
    /// output once, with everything queued for it this pass in as few TLS records as possible;
    /// rounds again while that produces more (LEAVE lines of connections found too slow).
    fn finish_pass(&mut self) {
        let mut writers = std::mem::take(&mut self.writers);
        loop {
            for (id, _) in self.chat.take_closes() {
                match self.conns.get(id).map(|c| c.link) {
                    Some(Link::Handshaking { .. }) => self.drop_conn(id),
                    Some(Link::Open) => self.start_closing(id, false),
                    _ => {}
                }
            }
            writers.clear();
            self.chat.outbox.take_writers(&mut writers);
            if writers.is_empty() {
                if !self.chat.has_closes() {
                    break;
                }
                continue;
            }
            for &id in &writers {
                self.flush(id);
            }
            self.relieve_full_queues();
        }
        self.chat.end_pass();
        self.writers = writers;
    }

    /// Writes what waits for one connection; a connection that leaves more than --max-queue
    /// unwritten is too slow.
    fn flush(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if matches!(conn.link, Link::Handshaking { .. } | Link::Failed) {
            return;
        }
        let pending = match self.chat.outbox.write(id, &mut conn.tls) {
            Ok(written) => {
                if written.pending == 0 {
                    conn.stalled_since = None;
                } else if written.taken > 0 || conn.stalled_since.is_none() {
                    // Waiting lines: the clock runs from the last byte its socket took.
                    conn.stalled_since = Some(self.now.at);
                    if !std::mem::replace(&mut conn.write_deadline_set, true) {
                        let due = self.now.at + self.cfg.write_timeout;
                        let serial = conn.serial;
                        self.write_deadlines.push(
                            due,
                            Due {
                                token: Token(id),
                                serial,
                            },
                        );
                    }
                }
                written.pending
            }
            Err(e) => return self.fail(id, CloseReason::Lost(describe_io_error(&e))),
        };
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        match conn.link {
            Link::Open if pending > self.cfg.max_queue => {
                return self.fail(id, CloseReason::TooSlow)
            }
            Link::Closing {
                notify_sent: false,
                peer_gone,
            } if pending == 0 => {
                // close_notify once; the peer's is not waited for.
                conn.link = Link::Closing {
                    notify_sent: true,
                    peer_gone,
                };
                let _ = conn.tls.shutdown();
                let _ = conn.tls.get_ref().shutdown(Shutdown::Write);
                if peer_gone {
                    return self.drop_conn(id);
                }
                // The peer may have closed already (a client that sends /quit and hangs up): its
                // end of stream, if there, is read now rather than at the end of the linger.
                let serial = conn.serial;
                self.drain_closing(Token(id));
                if self.conns.get(id).is_none_or(|c| c.serial != serial) {
                    return;
                }
            }
            _ => {}
        }
        self.update_interest(id);
    }

    /// --max-queue-total, once every queue has been offered to its socket: the clients holding
    /// the most (and of those, the longest stalled) are dropped as too slow, down to 90 % of it,
    /// so that many clients that stopped reading cannot take the machine's memory one
    /// --max-queue at a time.
    fn shed_holders(&mut self) {
        let limit = self.cfg.max_queue_total;
        let target = limit / 10 * 9;
        if self.chat.outbox.total_pending() <= target {
            return;
        }
        let mut holders: Vec<(usize, Instant, ConnId)> = self
            .chat
            .outbox
            .backlogged()
            .map(|(id, pending)| {
                let since = self.conns.get(id).and_then(|c| c.stalled_since);
                (pending, since.unwrap_or(self.now.at), id)
            })
            .collect();
        holders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut dropped = 0;
        for (_, _, id) in holders {
            if self.chat.outbox.total_pending() <= target {
                break;
            }
            self.fail(id, CloseReason::Shed);
            dropped += 1;
        }
        log_warning!(
            "limit: output waiting for all clients over --max-queue-total ({} KiB): {dropped} clients holding the most disconnected as too slow",
            limit >> 10
        );
    }

    fn update_interest(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let wanted = conn.wanted_interest(self.chat.outbox.pending(id));
        if wanted != conn.interest {
            match self
                .poll
                .registry()
                .reregister(conn.tls.get_mut(), Token(id), wanted)
            {
                Ok(()) => conn.interest = wanted,
                Err(e) => self.end_now(id, CloseReason::Lost(format!("cannot watch socket: {e}"))),
            }
        }
    }

    /// Starts saying goodbye: what is queued goes out, then close_notify, then a short linger.
    fn start_closing(&mut self, id: ConnId, peer_gone: bool) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        if matches!(conn.link, Link::Closing { .. }) {
            return;
        }
        conn.link = Link::Closing {
            notify_sent: false,
            peer_gone,
        };
        let serial = conn.serial;
        self.linger_deadlines.push(
            self.now.at + LINGER,
            Due {
                token: Token(id),
                serial,
            },
        );
        self.chat.outbox.list_for_flush(id);
    }

    /// Closes a connection on the spot (broken, too slow, failed handshake): the chat is told
    /// why, so that the room hears it left.
    fn end_now(&mut self, id: ConnId, reason: CloseReason) {
        self.chat.disconnected(id, reason);
        self.drop_conn(id);
    }

    /// The connection is gone: its socket is closed and the chat forgets it (one that it had
    /// not been told about leaves the room there, announced).
    fn drop_conn(&mut self, id: ConnId) {
        if let Some(mut conn) = self.conns.remove(id) {
            let _ = self.poll.registry().deregister(conn.tls.get_mut());
            self.chat.forget(id);
        }
    }

    fn expire_deadlines(&mut self) {
        let now = self.now.at;
        while let Some((_, d)) = self.handshake_deadlines.pop_due(now) {
            if self.is_current(&d, |link| matches!(link, Link::Handshaking { .. })) {
                self.end_now(d.token.0, CloseReason::HandshakeTimeout);
            }
        }
        while let Some((_, d)) = self.write_deadlines.pop_due(now) {
            let timeout = self.cfg.write_timeout;
            let Some(conn) = self
                .conns
                .get_mut(d.token.0)
                .filter(|c| c.serial == d.serial)
            else {
                continue;
            };
            match conn.stalled_since {
                Some(since) if since + timeout <= now => {
                    conn.write_deadline_set = false;
                    if conn.link == Link::Open {
                        self.end_now(d.token.0, CloseReason::Stalled);
                    }
                }
                // It took something since: its deadline moves.
                Some(since) => self.write_deadlines.push(since + timeout, d),
                None => conn.write_deadline_set = false,
            }
        }
        while let Some((_, d)) = self.linger_deadlines.pop_due(now) {
            if self.is_current(&d, |link| matches!(link, Link::Closing { .. })) {
                self.drop_conn(d.token.0);
            }
        }
        if self.accept_paused_until.is_some_and(|at| at <= now) {
            self.accept_paused_until = None;
            self.accept_all();
        }
    }

    fn is_current(&self, d: &Due, state: impl Fn(Link) -> bool) -> bool {
        self.conns
            .get(d.token.0)
            .is_some_and(|c| c.serial == d.serial && state(c.link))
    }

    fn handle_signals(&mut self) {
        let signals: Vec<i32> = self.signals.pending().collect();
        for signal in signals {
            match signal {
                SIGHUP => self.reload(),
                _ if self.shutdown_deadline.is_some() => {
                    log!("second signal: exiting now");
                    self.chat.finish_history(SECOND_SIGNAL_WAIT);
                    crate::log::finish();
                    std::process::exit(0);
                }
                _ => self.begin_shutdown(signal),
            }
        }
    }

    /// SIGHUP: the config file (with the command line on top), the password file, the
    /// certificate and key, the operators file — all read before anything changes, and if one
    /// fails nothing does: half a reload could leave the server without the password or with
    /// operators the file no longer lists.
    fn reload(&mut self) {
        let new = match self.read_for_reload() {
            Ok(new) => new,
            Err(e) => {
                log_warning!("reload failed, keeping everything as it was: {e}");
                return;
            }
        };
        let Reloaded {
            cfg,
            acceptor,
            password,
            operators,
        } = new;
        // Compared with what was asked for, not with what the descriptor limit allowed.
        let mut as_given = self.cfg.clone();
        as_given.max_clients = self.max_clients_given;
        let (changed, need_restart) = as_given.changes(&cfg);
        let mut cfg = self.cfg.keeping_startup_settings(cfg);
        if cfg.max_clients == self.max_clients_given {
            cfg.max_clients = self.cfg.max_clients;
        } else {
            self.max_clients_given = cfg.max_clients;
            cfg.max_clients = crate::descriptors::raise_limit(cfg.max_clients);
        }
        if let Some(file) = &cfg.sources.file {
            if changed.is_empty() {
                log!("reloaded {}: no setting changed", file.display());
            } else {
                log!("reloaded {}: {}", file.display(), changed.join(", "));
            }
            if !need_restart.is_empty() {
                log_warning!(
                    "{} changed in {}: taken at the next start, not now",
                    need_restart.join(", "),
                    file.display()
                );
            }
        }
        self.acceptor = acceptor;
        log!(
            "reloaded certificate {} and key {}",
            cfg.cert.display(),
            cfg.key.display()
        );
        match &cfg.password_file {
            Some(path) => log!("reloaded the password from {}", path.display()),
            None if self.cfg.password_file.is_some() => {
                log_warning!("no password file any more: no password is asked for")
            }
            None => {}
        }
        self.chat.set_password(password);
        match (&cfg.operators, &operators) {
            (Some(path), operators) => log!(
                "reloaded {}: {} operator identities",
                path.display(),
                operators.len()
            ),
            (None, _) if self.cfg.operators.is_some() => {
                log_warning!("no operators file any more: nobody is an operator")
            }
            (None, _) => {}
        }
        self.chat.set_operators(operators);
        self.chat.set_config(cfg.clone());
        self.cfg = cfg;
    }

    fn read_for_reload(&self) -> Result<Reloaded, String> {
        let cfg = match &self.cfg.sources.file {
            Some(_) => self.cfg.reload()?,
            None => self.cfg.clone(),
        };
        let password = cfg
            .password_file
            .as_deref()
            .map(Password::load)
            .transpose()?;
        let acceptor = tls::load_acceptor(&cfg)?;
        let operators = cfg
            .operators
            .as_deref()
            .map(crate::state::load_operators)
            .transpose()?
            .unwrap_or_default();
        Ok(Reloaded {
            cfg,
            acceptor,
            password,
            operators,
        })
    }

    fn begin_shutdown(&mut self, signal: i32) {
        let name = if signal == SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        log!(
            "{name}: shutting down, closing {} connections",
            self.conns.len()
        );
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        self.shutdown_deadline = Some(self.now.at + SHUTDOWN_GRACE);
        self.chat.shutdown();
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
