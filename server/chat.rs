//! The chat's rules (docs/protocol.md) without any I/O: who may connect, registration,
//! nicknames, the password, commands, flood control, the user list and who gets which line.
//!
//! The reactor tells the core what happened — a connection arrived ([`Chat::admit`],
//! [`Chat::opened`]), its TLS is up ([`Chat::handshake_done`]), a line came ([`Chat::frame`]), it
//! is gone ([`Chat::disconnected`], [`Chat::forget`]), time passed ([`Chat::tick`]) — and the core
//! answers into its [`Outbox`] (bytes for a connection, lines for the room) and its list of
//! connections to close ([`Chat::take_closes`]), which the reactor carries out. Unit tests drive it
//! directly, without sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::clock::seconds_up;
pub use crate::clock::Now;

use charla_proto::command::HELP;
use charla_proto::reply::{push_bounded_line, push_line, push_user_list};
use charla_proto::time::utc_timestamp;
use charla_proto::{
    clean_text, nick_key, notice, parse_client_line, validate_nick, ClientLine, ErrorCode, Frame,
    LineFramer,
};

use crate::address::address_key;
use crate::admission::AdmissionControl;
pub use crate::admission::{Admission, Refusal};
use crate::auth::{Password, Throttle};
use crate::close::CloseReason;
use crate::config::Config;
use crate::deadlines::Deadlines;
use crate::history::{Entry, History};
use crate::log::log;
use crate::nicknames::Nicknames;
use crate::outbox::{ConnId, LineForm, Outbox};
use crate::rooms::{RoomId, Rooms};
use crate::sessions::{Held, Session, Sessions};

#[path = "chat_moderation.rs"]
mod moderate;
#[path = "chat_rooms.rs"]
mod rooms_rules;
pub use moderate::Moderation;

struct Peer {
    addr: SocketAddr,
    /// The SHA-256 fingerprint of its client certificate, if it sent one.
    identity: Option<Box<str>>,
    serial: u64,
    state: PeerState,
    /// The part of a line read so far.
    framer: LineFramer,
}

/// Where a connection is in the protocol. Counted against its address (--max-per-ip) in every
/// state but `Closing`, and as joining (--max-joining-per-ip) while `Handshaking` or
/// `Registering`.
enum PeerState {
    Handshaking {
        refusal: Option<Refusal>,
    },
    /// TLS is up; no nickname yet.
    Registering {
        /// Gave the server password (or none is needed).
        authenticated: bool,
        flood: FloodBucket,
        resume: Resume,
        /// Wants the history replayed when it joins (`/history off` says no).
        replay: bool,
        /// Sent `/cap rooms`: understands rooms.
        rooms: bool,
    },
    /// In the room.
    Chatting {
        nick: Box<str>,
        flood: FloodBucket,
        /// Its lines in the history are marked with this.
        author: u64,
        /// Its session token, if it asked for one (it then gets line ids).
        session: Option<Box<str>>,
        /// How it gets room lines: with ids (a session), with their room named (`/cap rooms`).
        form: LineForm,
        /// Where a plain line goes: the room it joined last.
        current: RoomId,
    },
    /// Out of the room; the reactor sends what is left and closes it.
    Closing,
}

/// What a registering client asked for with `/resume`.
#[derive(Clone)]
enum Resume {
    No,
    /// Line ids and a session token.
    New,
    /// Coming back: its token and the id of the last public line it has.
    Back {
        token: Box<str>,
        last: u64,
    },
}

/// Which lines of the history a client coming back already has (its own).
#[derive(Clone)]
enum Skip {
    Nothing,
    Author(u64),
    /// The nickname key, for a client whose session is gone.
    Nick(String),
}

/// Makes session tokens: OpenSSL's random generator in the server, something predictable in
/// tests. Kept out of the core so that it needs no cryptography library.
pub type TokenSource = Box<dyn FnMut() -> String>;

/// Takes each public line the history keeps, to write it to disk (`--history-file`); kept out of
/// the core, which does no I/O.
pub trait HistorySink {
    fn keep(&mut self, entry: &Entry);
    /// The end of a pass of the event loop: what was kept may go out together.
    fn flush(&mut self);
    /// The server exits now: what was kept goes out, waiting at most `wait` for the disk.
    fn finish(&mut self, wait: Duration);
}

pub struct Chat {
    cfg: Config,
    history: History,
    sessions: Sessions,
    new_token: TokenSource,
    history_sink: Option<Box<dyn HistorySink>>,
    moderation: Moderation,
    rooms: Rooms,
    /// A room that outlives a restart changed since the rooms were last handed to the state
    /// writer (`--state-dir`).
    rooms_changed: bool,
    /// The rooms as they were when the server began to stop, with their members still in.
    rooms_at_shutdown: Option<Vec<std::sync::Arc<str>>>,
    /// When the rooms were last handed to the state writer, and whether the batch it has now
    /// holds them (a failed write is tried again later).
    rooms_written_at: Option<Instant>,
    rooms_in_flight: bool,
    /// Numbers authors of history lines (a session keeps its number across connections).
    next_author: u64,
    /// The time of the latest event, for what happens outside one (a connection found gone).
    now: Instant,
    /// The wall clock at the latest event: history times, ban and registration expiry.
    wall: SystemTime,
    password: Option<Password>,
    throttle: Throttle,
    peers: Vec<Option<Peer>>,
    /// Case-insensitive nickname key → connection, for everyone in the room.
    nicknames: Nicknames,
    pub outbox: Outbox,
    closes: Vec<(ConnId, CloseReason)>,
    /// When each registering connection must have chosen a nickname; stale entries are skipped
    /// by serial.
    register_deadlines: Deadlines<(ConnId, u64)>,
    next_serial: u64,
    admission: AdmissionControl,
    shutting_down: bool,
    /// A reusable buffer for formatting one line.
    line: Vec<u8>,
}

impl Chat {
    pub fn new(cfg: Config, password: Option<Password>, new_token: TokenSource, now: Now) -> Chat {
        // Ids start at the time in microseconds: above any id a client kept from an earlier run
        // of the server (the history does not survive a restart).
        let first_id = now
            .wall
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_micros() as u64);
        let outbox = Outbox::new(cfg.max_queue);
        let mut sessions = Sessions::default();
        sessions.set_max_held_bytes(cfg.max_held_bytes);
        let mut rooms = Rooms::new(&cfg.default_room);
        for name in &cfg.rooms {
            // The config checked the names.
            let _ = rooms.declare(name);
        }
        Chat {
            history: History::new(cfg.history, cfg.history_bytes, first_id),
            sessions,
            new_token,
            history_sink: None,
            moderation: Moderation::default(),
            rooms,
            rooms_changed: false,
            rooms_at_shutdown: None,
            rooms_written_at: None,
            rooms_in_flight: false,
            next_author: 0,
            now: now.at,
            wall: now.wall,
            cfg,
            password,
            throttle: Throttle::default(),
            peers: Vec::new(),
            nicknames: Nicknames::default(),
            outbox,
            closes: Vec::new(),
            register_deadlines: Deadlines::default(),
            next_serial: 0,
            admission: AdmissionControl::default(),
            shutting_down: false,
            line: Vec::new(),
        }
    }

    /// The history a journal kept across a restart, and where new lines go from now on.
    pub fn restore_history(&mut self, entries: Vec<Entry>, sink: Box<dyn HistorySink>) {
        for entry in entries {
            // Authors of the new run are numbered above the old ones.
            self.next_author = self.next_author.max(entry.author);
            self.history.restore(entry);
        }
        self.history_sink = Some(sink);
    }

    /// Settings read again on SIGHUP (those that need a restart already put back by the caller).
    /// Clients already in are judged by the new limits from their next line on.
    pub fn set_config(&mut self, cfg: Config) {
        self.outbox.set_max_queue(cfg.max_queue);
        self.sessions.set_max_held_bytes(cfg.max_held_bytes);
        self.cfg = cfg;
    }

    /// The password from a reload; `None` when the config no longer asks for one.
    pub fn set_password(&mut self, password: Option<Password>) {
        self.password = password;
    }

    /// A second SIGINT or SIGTERM: the server exits at once, but what the history kept still
    /// reaches its file (waiting at most `wait` for the disk).
    pub fn finish_history(&mut self, wait: Duration) {
        if let Some(sink) = &mut self.history_sink {
            sink.finish(wait);
        }
    }

    /// The end of a pass of the event loop.
    pub fn end_pass(&mut self) {
        self.outbox.end_pass();
        if let Some(sink) = &mut self.history_sink {
            sink.flush();
        }
    }

    /// Every event brings the time it happened.
    fn set_clock(&mut self, now: Now) {
        self.now = now.at;
        self.wall = now.wall;
    }

    /// The wall clock at the latest event, in seconds since the Unix epoch.
    fn unix(&self) -> u64 {
        Now {
            at: self.now,
            wall: self.wall,
        }
        .unix()
    }

    fn peer(&self, id: ConnId) -> Option<&Peer> {
        self.peers.get(id)?.as_ref()
    }

    fn peer_mut(&mut self, id: ConnId) -> Option<&mut Peer> {
        self.peers.get_mut(id)?.as_mut()
    }

    /// Registering or chatting: its lines are read and answered.
    pub fn is_open(&self, id: ConnId) -> bool {
        self.peer(id).is_some_and(|p| {
            matches!(
                p.state,
                PeerState::Registering { .. } | PeerState::Chatting { .. }
            )
        })
    }

    pub fn nick(&self, id: ConnId) -> Option<&str> {
        match &self.peer(id)?.state {
            PeerState::Chatting { nick, .. } => Some(nick),
            _ => None,
        }
    }

    /// Who this is in a log line.
    fn who(&self, id: ConnId) -> String {
        match (self.peer(id), self.nick(id)) {
            (Some(p), Some(nick)) => format!("{nick} ({})", p.addr),
            (Some(p), None) => p.addr.to_string(),
            (None, _) => format!("connection {id}"),
        }
    }

    /// A connection arrived from `addr` while `open` connections are open: turned away before
    /// anything is spent on it when over a limit, so that an address cannot hold the places of
    /// others until its handshakes time out.
    pub fn admit(&mut self, addr: SocketAddr, open: usize, now: Now) -> Admission {
        self.set_clock(now);
        let now = now.at;
        let key = address_key(addr.ip());
        // Users away hold places too, but a live connection comes first: the one away longest
        // is given up to make room — when that makes room (a server full of live connections
        // refuses the newcomer anyway, and keeps who is away).
        while open < self.cfg.max_clients
            && open + self.sessions.away_count() >= self.cfg.max_clients
            && self.sessions.away_count() > 0
        {
            self.give_up_away(None, "the server needed its place");
        }
        let here = self.admission.count(key);
        while self.cfg.max_per_ip > 0
            && here < self.cfg.max_per_ip
            && self.sessions.away_from(key) > 0
            && here + self.sessions.away_from(key) >= self.cfg.max_per_ip
        {
            self.give_up_away(Some(key), "its address needed the place");
        }
        self.admission.decide(key, open, now, &self.cfg)
    }

    /// A connection `admit` let in is open, its TLS handshake about to start.
    pub fn opened(&mut self, id: ConnId, addr: SocketAddr, refusal: Option<Refusal>) {
        let key = address_key(addr.ip());
        self.admission.opened(key);
        self.next_serial += 1;
        if self.peers.len() <= id {
            self.peers.resize_with(id + 1, || None);
        }
        self.peers[id] = Some(Peer {
            addr,
            identity: None,
            serial: self.next_serial,
            state: PeerState::Handshaking { refusal },
            framer: LineFramer::new(),
        });
        self.outbox.open(id);
        log!("accepted {addr}");
    }

    /// The TLS handshake is done, with the fingerprint of the client's certificate if it sent
    /// one: the connection may register, or is told why it is refused.
    pub fn handshake_done(&mut self, id: ConnId, identity: Option<String>, now: Now) {
        self.set_clock(now);
        let now = now.at;
        let burst = self.cfg.flood_burst;
        let authenticated = self.password.is_none();
        let register_by = now + self.cfg.register_timeout;
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        let PeerState::Handshaking { refusal } = &mut peer.state else {
            return;
        };
        let refusal = refusal.take();
        peer.identity = identity.map(Into::into);
        peer.state = PeerState::Registering {
            authenticated,
            flood: FloodBucket::new(now, burst),
            resume: Resume::No,
            replay: true,
            rooms: false,
        };
        let serial = peer.serial;
        if let Some(Refusal { code, text }) = refusal {
            log!("limit: {text}, rejecting {}", peer.addr);
            self.reply_error(id, code, &text);
            return self.close(id, CloseReason::Rejected(code));
        }
        if self.turned_away(id) {
            return;
        }
        self.register_deadlines.push(register_by, (id, serial));
    }

    /// Bytes read from a connection: each complete line is handled, until the connection is
    /// closed by one of them.
    pub fn feed(&mut self, id: ConnId, bytes: &[u8], now: Now) {
        self.set_clock(now);
        let max_line = self.cfg.max_line;
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        let mut framer = std::mem::take(&mut peer.framer);
        framer.feed(bytes, max_line, |frame| self.frame(id, frame, now));
        if let Some(peer) = self.peer_mut(id) {
            peer.framer = framer;
        }
    }

    /// One line (or a line that could not be taken) from a connection; returns whether more
    /// of its input should be read.
    pub fn frame(&mut self, id: ConnId, frame: Frame<'_>, now: Now) -> bool {
        self.set_clock(now);
        let now = now.at;
        let (rate, burst) = (self.cfg.flood_rate, self.cfg.flood_burst);
        let Some(peer) = self.peer_mut(id) else {
            return false;
        };
        let (flood, registered) = match &mut peer.state {
            PeerState::Registering { flood, .. } => (flood, false),
            PeerState::Chatting { flood, .. } => (flood, true),
            _ => return false,
        };
        if rate > 0.0 && !flood.allow(now, rate, burst) {
            if !std::mem::replace(&mut flood.warned, true) {
                log!("limit: flood from {}, dropping lines", self.who(id));
                let text = format!("too many lines: at most {rate} per second; lines dropped");
                self.reply_error(id, ErrorCode::Flood, &text);
            }
            return true;
        }
        match frame {
            Frame::TooLong => {
                log!("limit: line too long from {}", self.who(id));
                let text = format!(
                    "lines are at most {} bytes; line dropped",
                    self.cfg.max_line
                );
                self.reply_error(id, ErrorCode::LineTooLong, &text);
            }
            Frame::BadUtf8 => {
                self.reply_error(id, ErrorCode::BadUtf8, "lines must be UTF-8; line dropped")
            }
            Frame::Line(line) if registered => self.chat_line(id, line),
            Frame::Line(line) => self.registration_line(id, line, now),
        }
        self.is_open(id)
    }

    /// The reactor found the connection gone or unfit (closed by its peer, broken, too slow, a
    /// failed handshake): it leaves the room at once, and the others are told. Nothing happens
    /// for a connection already closing, so that two causes in one pass announce it once.
    pub fn disconnected(&mut self, id: ConnId, reason: CloseReason) {
        self.end(id, &reason);
    }

    /// The connection is closed and its slot may be reused. One that was never said goodbye to
    /// leaves the room here, so that nobody can stay in the others' user lists.
    pub fn forget(&mut self, id: ConnId) {
        self.end(id, &CloseReason::Lost("dropped".into()));
        // A close the reactor has not carried out must not reach the next connection in the slot.
        self.closes.retain(|(c, _)| *c != id);
        self.outbox.remove(id);
        if let Some(slot) = self.peers.get_mut(id) {
            *slot = None;
        }
    }

    /// Connections the core has finished with (a `/quit`, a wrong password, a refusal, a
    /// timeout): the reactor sends what is queued for them, then closes them.
    pub fn take_closes(&mut self) -> Vec<(ConnId, CloseReason)> {
        std::mem::take(&mut self.closes)
    }

    pub fn has_closes(&self) -> bool {
        !self.closes.is_empty()
    }

    /// Time passed: connections without a nickname in time are closed; the count of connections
    /// closed at once is logged.
    pub fn tick(&mut self, now: Now) {
        self.set_clock(now);
        let now = now.at;
        for session in self.sessions.expire(now) {
            log!("session of {} expired", session.nick);
            self.gave_up_waiting(session);
        }
        self.tick_moderation(now);
        while let Some((_, (id, serial))) = self.register_deadlines.pop_due(now) {
            let current = self.peer(id).is_some_and(|p| {
                p.serial == serial && matches!(p.state, PeerState::Registering { .. })
            });
            if current {
                let secs = self.cfg.register_timeout.as_secs_f64();
                self.reply_error(
                    id,
                    ErrorCode::Timeout,
                    &format!("no nickname within {secs} s"),
                );
                self.close(id, CloseReason::RegisterTimeout);
            }
        }
        self.admission.report_if_due(now);
    }

    /// The next moment [`Chat::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.register_deadlines
            .next()
            .into_iter()
            .chain(self.admission.due())
            .chain(self.sessions.next_expiry())
            .chain(self.next_moderation_deadline())
            .min()
    }

    /// SIGINT or SIGTERM: everyone is told and closed; nobody is told of the others leaving.
    pub fn shutdown(&mut self) {
        self.admission.report();
        // Rooms with people in them outlive the restart: saved before everyone is put out.
        if self.moderation.persistent {
            self.rooms_at_shutdown = Some(self.rooms_text());
        }
        self.shutting_down = true;
        for id in 0..self.peers.len() {
            match self.peer(id).map(|p| &p.state) {
                Some(PeerState::Registering { .. } | PeerState::Chatting { .. }) => {
                    self.reply(id, &["NOTICE", notice::SHUTTING_DOWN]);
                    self.close(id, CloseReason::Shutdown);
                }
                Some(PeerState::Handshaking { .. }) => {
                    self.close(id, CloseReason::Shutdown);
                }
                _ => {}
            }
        }
    }

    /// The core is done with a connection: it ends here, and the reactor closes it.
    fn close(&mut self, id: ConnId, reason: CloseReason) {
        if self.end(id, &reason) {
            self.closes.push((id, reason));
        }
    }

    /// Takes a connection out of the chat: out of the per-address counts, out of the room (the
    /// others get `LEAVE`). Returns false if it had ended already.
    fn end(&mut self, id: ConnId, reason: &CloseReason) -> bool {
        if self
            .peer(id)
            .is_none_or(|p| matches!(p.state, PeerState::Closing))
        {
            return false;
        }
        let who = self.who(id);
        let Some(peer) = self.peer_mut(id) else {
            return false;
        };
        let key = address_key(peer.addr.ip());
        let address = key;
        let was = std::mem::replace(&mut peer.state, PeerState::Closing);
        let was_joining = match &was {
            PeerState::Closing => return false,
            PeerState::Handshaking { .. } | PeerState::Registering { .. } => true,
            PeerState::Chatting { .. } => false,
        };
        // A connection on its way out no longer counts against the per-address limits.
        self.admission.ended(key, was_joining);
        if reason.abrupt() {
            self.outbox.discard(id);
        }
        let PeerState::Chatting { nick, session, .. } = was else {
            log!("closed {who}: {}", reason.describe());
            return true;
        };
        let key = nick_key(&nick);
        self.nicknames.remove(&key);
        self.moderation.in_room.retain(|&m| m != id);
        let kicked = matches!(reason, CloseReason::Kicked { .. });
        let rooms: Vec<RoomId> = self.outbox.rooms_of(id).collect();
        if let Some(token) = session {
            // Someone who asked for a session may come back: its nickname and private messages
            // wait for it, unless it said goodbye.
            let away = !matches!(reason, CloseReason::Quit(_) | CloseReason::Shutdown)
                && !kicked
                && !self.cfg.resume_window.is_zero();
            if away {
                let until = self.now + self.cfg.resume_window;
                let keys = rooms
                    .iter()
                    .filter_map(|&room| {
                        let r = self.rooms.get(room)?;
                        Some((r.key.clone(), r.incarnation))
                    })
                    .collect();
                if let Some(s) = self.sessions.get_mut(&token) {
                    s.rooms = keys;
                }
                self.sessions.go_away(&token, key, until);
                self.keep_away_within_bounds(Some(address));
            } else {
                self.sessions.end(&token);
            }
        }
        // What its rooms said before it left still reaches it, unless it is gone.
        self.outbox.leave_all(id, !reason.abrupt());
        log!("left {who}: {}", reason.describe());
        for room in rooms {
            // A user muted in a room does not speak to it through its quit reason either.
            let muted_here = self.muted_in(id, room).is_some();
            if let CloseReason::Kicked { by, reason } = reason {
                let mut words = vec!["KICK", by, &*nick];
                words.extend(reason.as_deref());
                self.room_line(room, None, &words);
            } else if !self.shutting_down {
                let (why, text) = reason
                    .leave_words()
                    .unwrap_or((charla_proto::leave_reason::CONNECTION_CLOSED, None));
                let mut words = vec!["LEAVE", &*nick, why];
                words.extend(text.filter(|_| !muted_here));
                self.room_line(room, None, &words);
            }
            if !self.shutting_down {
                self.room_emptied(room);
            }
        }
        true
    }

    /// Formats into the reusable line buffer, then hands the bytes to `send`.
    fn with_line(
        &mut self,
        format: impl FnOnce(&Chat, &mut Vec<u8>),
        send: impl FnOnce(&mut Outbox, &[u8]),
    ) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        format(self, &mut line);
        if !line.is_empty() {
            send(&mut self.outbox, &line);
        }
        self.line = line;
    }

    /// One line of the server's own to one connection, at most 4096 bytes.
    fn reply(&mut self, id: ConnId, words: &[&str]) {
        self.with_line(
            |_, line| push_bounded_line(line, words),
            |out, line| out.send(id, line),
        );
    }

    fn reply_error(&mut self, id: ConnId, code: ErrorCode, text: &str) {
        self.reply(id, &["ERROR", code.as_str(), text]);
    }

    /// One line of the server's own to everyone in `room` but `except`, formatted once (with
    /// the room's name in front for the members that understand rooms).
    fn room_line(&mut self, room: RoomId, except: Option<ConnId>, words: &[&str]) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        push_bounded_line(&mut line, words);
        self.outbox
            .send_to_room(room, self.rooms.name(room), except, None, &line);
        self.line = line;
    }

    /// As [`Chat::room_line`], for lines only clients that understand rooms know (`TOPIC`,
    /// `OP`…): a client of the seed gets `plain` instead, or nothing.
    fn room_line_as(
        &mut self,
        room: RoomId,
        except: Option<ConnId>,
        plain: Option<&[&str]>,
        words: &[&str],
    ) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        push_bounded_line(&mut line, words);
        let split = line.len();
        if let Some(plain) = plain {
            push_bounded_line(&mut line, plain);
        }
        let (named, plain_line) = line.split_at(split);
        let plain_line = plain.map(|_| plain_line);
        self.outbox
            .send_to_room_as(room, self.rooms.name(room), except, None, plain_line, named);
        self.line = line;
    }

    /// One line of the server's own to everyone in every room `subject` is in (`except` left
    /// out); to `subject` alone when it is in none and is not left out.
    fn line_to_rooms_of(&mut self, subject: ConnId, except: Option<ConnId>, words: &[&str]) {
        let rooms: Vec<RoomId> = self.outbox.rooms_of(subject).collect();
        if rooms.is_empty() && except != Some(subject) {
            return self.reply(subject, words);
        }
        for room in rooms {
            self.room_line(room, except, words);
        }
    }

    /// The members of `room`, then its operators, to `id` (`USERS`, `USERS+`, `OPER`, and the
    /// room's own operators as `OP`), the room named in front of each line for a client that
    /// understands rooms.
    fn send_room_users(&mut self, id: ConnId, room: RoomId) {
        let prefix = self.room_prefix(id, room);
        self.with_line(
            |chat, lines| {
                let nicks = chat
                    .outbox
                    .members(room)
                    .map(|m| chat.nick(m).unwrap_or(""));
                let nicks: Vec<&str> = nicks.collect();
                push_user_list(lines, &prefix, nicks.into_iter());
                chat.push_operator_lines(lines, &prefix, room);
            },
            |out, lines| out.send(id, lines),
        );
    }

    /// `/users`: the room a plain line of `id` goes to.
    fn send_user_list(&mut self, id: ConnId) {
        let room = self.current_room(id);
        if self.in_room(id, room) {
            self.send_room_users(id, room);
        } else {
            self.not_in_room(id, room);
        }
    }

    /// A line before the client has a nickname: the nickname, or one of the few commands that
    /// make sense without one.
    fn registration_line(&mut self, id: ConnId, line: &str, now: Instant) {
        let wanted = line.trim();
        let authenticated = matches!(
            self.peer(id).map(|p| &p.state),
            Some(PeerState::Registering {
                authenticated: true,
                ..
            })
        );
        match parse_client_line(wanted) {
            ClientLine::Resume(asked) => self.ask_resume(id, asked),
            ClientLine::History(on) => {
                if let Some(PeerState::Registering { replay, .. }) =
                    self.peer_mut(id).map(|p| &mut p.state)
                {
                    *replay = on;
                }
            }
            ClientLine::Cap(names) => self.capabilities(id, names),
            ClientLine::Pass(given) if !authenticated => self.check_password(id, given, now),
            ClientLine::Pass(_) => self.reply(id, &["NOTICE", notice::PASSWORD_ALREADY_ACCEPTED]),
            ClientLine::Ping(token) => self.pong(id, token),
            ClientLine::Help => self.help(id),
            ClientLine::Quit(reason) => self.quit(id, reason),
            _ if !authenticated => self.reply_error(
                id,
                ErrorCode::PasswordRequired,
                "this server needs a password: send /pass <password> first",
            ),
            ClientLine::Message(_) | ClientLine::Empty if !wanted.starts_with("//") => {
                self.try_register(id, wanted)
            }
            ClientLine::Nick(nick) => self.try_register(id, nick),
            ClientLine::MissingArgument(usage) => {
                self.reply_error(id, ErrorCode::MissingArgument, &format!("usage: {usage}"))
            }
            _ => self.reply_error(
                id,
                ErrorCode::NickInvalid,
                "choose a nickname first: send it alone on a line",
            ),
        }
    }

    fn check_password(&mut self, id: ConnId, given: &str, now: Instant) {
        let Some(peer) = self.peer(id) else {
            return;
        };
        // IPv6 by /64: one host usually has the whole network.
        let ip = address_key(peer.addr.ip());
        if let Some(wait) = self.throttle.wait_left(ip, now) {
            log!("limit: password attempt from {ip} while blocked");
            let text = format!(
                "too many wrong passwords from your address; try again in {} s",
                seconds_up(wait)
            );
            self.reply_error(id, ErrorCode::BadPassword, &text);
            return self.close(id, CloseReason::Rejected(ErrorCode::BadPassword));
        }
        if self.password.as_ref().is_some_and(|p| p.matches(given)) {
            if let Some(PeerState::Registering { authenticated, .. }) =
                self.peer_mut(id).map(|p| &mut p.state)
            {
                *authenticated = true;
            }
            self.throttle.succeeded(ip);
            return self.reply(id, &["NOTICE", notice::PASSWORD_ACCEPTED]);
        }
        let wait = self.throttle.failed(ip, now);
        log!(
            "limit: wrong password from {ip} (next attempt allowed in {} s)",
            wait.as_secs()
        );
        self.reply_error(id, ErrorCode::BadPassword, "wrong password");
        self.close(id, CloseReason::Rejected(ErrorCode::BadPassword));
    }

    fn ask_resume(&mut self, id: ConnId, asked: Option<(&str, u64)>) {
        if let Some(PeerState::Registering { resume, .. }) = self.peer_mut(id).map(|p| &mut p.state)
        {
            *resume = match asked {
                None => Resume::New,
                Some((token, last)) => Resume::Back {
                    token: token.into(),
                    last,
                },
            };
        }
    }

    fn try_register(&mut self, id: ConnId, nick: &str) {
        if let Err(e) = validate_nick(nick) {
            return self.reply_error(id, ErrorCode::NickInvalid, &e.to_string());
        }
        let Some(PeerState::Registering {
            flood,
            resume,
            replay,
            rooms,
            ..
        }) = self.peer(id).map(|p| &p.state)
        else {
            return;
        };
        let (flood, resume, replay, rooms) = (flood.clone(), resume.clone(), *replay, *rooms);
        if let Some(text) = self.registered_to_another(id, nick) {
            return self.reply_error(id, ErrorCode::NickRegistered, &text);
        }
        if let Some(text) = self.muted_under_another_name(id, nick) {
            return self.reply_error(id, ErrorCode::Muted, &text);
        }
        let key = nick_key(nick);
        // A session coming back takes its nickname back from the away list, or from its old
        // connection if the server has not yet found that one dead. A session started with an
        // identity is only for a connection with the same one: its token alone is not enough.
        let identity = self.peer(id).and_then(|p| p.identity.clone());
        let Some(address) = self.peer(id).map(|p| address_key(p.addr.ip())) else {
            return;
        };
        let back = match &resume {
            Resume::Back { token, .. } => self.sessions.resolve(token, address).and_then(|token| {
                let session = self.sessions.get(&token)?;
                (session.identity.is_none() || session.identity == identity)
                    .then(|| (token.clone(), session.conn))
            }),
            _ => None,
        };
        let old_conn = back.as_ref().and_then(|(_, conn)| *conn);
        let coming_back = back.as_ref().map(|(token, _)| &**token);
        if let Some(text) = self.nick_taken(nick, &key, old_conn, coming_back) {
            return self.reply_error(id, ErrorCode::NickTaken, &text);
        }
        if let Some(old) = old_conn {
            self.close(
                old,
                CloseReason::Lost("replaced: its session connected again".into()),
            );
        }
        let token_known = back.is_some();
        let Some(addr_key) = self.peer(id).map(|p| address_key(p.addr.ip())) else {
            return;
        };
        // The session: the one coming back (under a new token), a new one, or none.
        let (session, author, held) = match (&resume, back) {
            (_, Some((token, _))) => {
                let author = self.sessions.get(&token).map_or(0, |s| s.author);
                let last = match &resume {
                    Resume::Back { last, .. } => *last,
                    _ => 0,
                };
                let new_token: Box<str> = match (self.new_token)() {
                    fresh if !fresh.is_empty() => fresh.into(),
                    _ => token.clone(),
                };
                let held = self
                    .sessions
                    .come_back(&token, new_token.clone(), id, addr_key, last);
                if let Some(s) = self.sessions.get_mut(&new_token) {
                    s.nick = nick.into();
                }
                (Some(new_token), author, held)
            }
            (Resume::No, None) => {
                self.next_author += 1;
                (None, self.next_author, Vec::new())
            }
            (_, None) => {
                self.next_author += 1;
                let token: Box<str> = (self.new_token)().into();
                if token.is_empty() {
                    (None, self.next_author, Vec::new())
                } else {
                    self.sessions.start(
                        token.clone(),
                        self.next_author,
                        nick,
                        id,
                        identity.as_deref(),
                        addr_key,
                    );
                    (Some(token), self.next_author, Vec::new())
                }
            }
        };
        self.note_nick_used(id, &key);
        // A client that does not understand rooms lives in the default room: kept out of it, it
        // is kept out of the server.
        let default = self.rooms.default_room();
        let form = LineForm {
            ids: session.is_some(),
            rooms,
        };
        let kept_out = self.may_join(id, default, &key).err();
        if let (Some(refused), false) = (&kept_out, rooms) {
            log!(
                "limit: {} kept out of {}",
                self.who(id),
                self.rooms.name(default)
            );
            self.reply_error(id, refused.code, &refused.text);
            if let Some(token) = &session {
                self.sessions.end(token);
            }
            return self.close(id, CloseReason::Rejected(refused.code));
        }
        let Some(peer) = self.peer_mut(id) else {
            return;
        };
        peer.state = PeerState::Chatting {
            nick: nick.into(),
            flood,
            author,
            session: session.clone(),
            form,
            current: default,
        };
        self.admission.joined(addr_key);
        self.nicknames.insert(key.clone(), id);
        self.outbox.set_form(id, form);
        log!("registered {}", self.who(id));
        self.reply(id, &["WELCOME", nick]);
        let operator = self.note_operator(id);
        // The rooms it comes into: those it was in when its connection dropped, for a client
        // that understands rooms coming back to its session; else the default room.
        let entering: Vec<RoomId> = match session.as_ref().and_then(|t| self.sessions.get(t)) {
            Some(s) if rooms && token_known => {
                let mut entering = Vec::new();
                for (key, incarnation) in &s.rooms {
                    let same = self.rooms.by_key(key).filter(|&room| {
                        self.rooms.get(room).map(|r| r.incarnation) == Some(*incarnation)
                    });
                    if let Some(room) = same {
                        if !entering.contains(&room) {
                            entering.push(room);
                        }
                    }
                }
                entering
            }
            _ => vec![default],
        };
        let mut entered = Vec::new();
        for room in entering {
            // A member coming back needs no new invitation; a ban made meanwhile holds.
            let refused = if room == default {
                kept_out.clone()
            } else {
                self.may_join(id, room, &key)
                    .err()
                    .filter(|r| r.code != ErrorCode::InviteOnly || !token_known)
            };
            match refused {
                Some(refused) => self.reply_error(id, refused.code, &refused.text),
                None => {
                    self.outbox.join(id, room);
                    entered.push(room);
                    self.send_room_users(id, room);
                    if rooms {
                        self.send_topic(id, room);
                    }
                }
            }
        }
        if let Some(&last) = entered.last() {
            self.set_current_room(id, last);
        }
        if let Some(token) = &session {
            let last = self.history.last_id().to_string();
            self.reply(id, &["SESSION", token, &last]);
        }
        let mut held = Some(held);
        if replay {
            // A client coming back showed its own lines when it sent them. Its session tells
            // which were its own; without it (the server restarted, or the window passed) the
            // nickname does.
            let (after, skip) = match &resume {
                // An id above any this server gave is from an earlier run whose clock was
                // ahead: everything kept is new to the client.
                Resume::Back { last, .. } if *last > self.history.last_id() => {
                    (0, Skip::Nick(key.clone()))
                }
                Resume::Back { last, .. } if token_known => (*last, Skip::Author(author)),
                Resume::Back { last, .. } => (*last, Skip::Nick(key.clone())),
                _ => (0, Skip::Nothing),
            };
            // The private messages go in id order among the first room's lines.
            for &room in &entered {
                let private = held.take().unwrap_or_default();
                let floor = self.rooms.get(room).map_or(0, |r| r.history_after);
                self.replay_history(id, Some(room), after.max(floor), skip.clone(), private);
            }
        }
        if let Some(held) = held.filter(|held| !held.is_empty()) {
            // Private messages are not the history a client declines.
            self.replay_history(id, None, u64::MAX, Skip::Nothing, held);
        }
        if self.history.max_lines() > 0 {
            let place = if self.history_sink.is_some() {
                "on disk"
            } else {
                "in memory"
            };
            let text = format!(
                "{} {} public messages {place}, shown to whoever joins",
                notice::HISTORY_KEPT,
                self.history.max_lines()
            );
            self.reply(id, &["NOTICE", &text]);
        }
        for room in entered {
            self.room_line(room, Some(id), &["JOIN", nick]);
            if operator {
                self.room_line(room, Some(id), &["OPER", nick]);
            }
            if self.rooms.runs(room, self.identity(id)) {
                self.room_line_as(room, Some(id), None, &["OP", nick]);
            }
        }
    }

    /// Why `nick` (key `key`) cannot be taken, if it cannot: someone else in the chat has it
    /// (but `may_hold`, the connection taking it or the one it replaces), or it is kept for a
    /// user away (but the session `coming_back`).
    fn nick_taken(
        &self,
        nick: &str,
        key: &str,
        may_hold: Option<ConnId>,
        coming_back: Option<&str>,
    ) -> Option<String> {
        if self
            .nicknames
            .holder(key)
            .is_some_and(|holder| Some(holder) != may_hold)
        {
            return Some(format!("{nick} is already in use, choose another"));
        }
        let away = self.sessions.away_holder(key)?;
        (coming_back != Some(away)).then(|| self.kept_for_its_user(nick))
    }

    fn kept_for_its_user(&self, nick: &str) -> String {
        let secs = self.cfg.resume_window.as_secs();
        format!(
            "{nick} is kept for its user, whose connection dropped, for up to {secs} s; choose another"
        )
    }

    /// The public lines of `room` kept newer than `after`, as `HISTORY <time> [@<id>] [#room]
    /// <line>`, but those `skip` says the client has; among them, in id order, the private
    /// messages given.
    fn replay_history(
        &mut self,
        id: ConnId,
        room: Option<RoomId>,
        after: u64,
        skip: Skip,
        private: Vec<Held>,
    ) {
        let form = self.form(id);
        let ids = form.ids;
        let room_key = room.map(|room| self.history_room(room));
        let room_word = match room {
            Some(room) if form.rooms => Some(self.rooms.name(room).to_string()),
            _ => None,
        };
        let mut lines = std::mem::take(&mut self.line);
        lines.clear();
        let mut starts = Vec::new();
        // Private messages go in id order among the public lines: a client that gets a line has
        // every line before it, so its last id is all it must tell when it comes back.
        let mut private = private.into_iter().peekable();
        let push_private = |lines: &mut Vec<u8>, starts: &mut Vec<usize>, m: Held| {
            let time = utc_timestamp(UNIX_EPOCH + Duration::from_secs(m.at));
            starts.push(lines.len());
            push_line(lines, &["HISTORY", &time, &format!("@{}", m.id), &m.line]);
        };
        let entries = self.history.after(after).filter(|e| {
            room_key
                .as_ref()
                .is_some_and(|key| e.in_room(key.as_deref()))
        });
        for entry in entries {
            while let Some(m) = private.next_if(|m| m.id < entry.id) {
                push_private(&mut lines, &mut starts, m);
            }
            let own = match &skip {
                Skip::Author(author) => entry.author == *author,
                // `MSG <nick> <text>`, `ACTION <nick> <text>`.
                Skip::Nick(key) => entry
                    .line
                    .split(' ')
                    .nth(1)
                    .is_some_and(|nick| nick_key(nick) == *key),
                Skip::Nothing => false,
            };
            if own {
                continue;
            }
            let time = utc_timestamp(UNIX_EPOCH + Duration::from_secs(entry.at));
            let id_word = format!("@{}", entry.id);
            let mut words = vec!["HISTORY", &*time];
            if ids {
                words.push(&id_word);
            }
            words.extend(room_word.as_deref());
            words.push(&entry.line);
            starts.push(lines.len());
            push_line(&mut lines, &words);
        }
        for m in private {
            push_private(&mut lines, &mut starts, m);
        }
        // A replay must never make a client that reads "too slow": at most half of --max-queue,
        // its newest lines.
        let budget = self.cfg.max_queue / 2;
        let from = starts
            .iter()
            .copied()
            .find(|&start| lines.len() - start <= budget)
            .unwrap_or(lines.len());
        if from < lines.len() {
            self.outbox.send(id, &lines[from..]);
        }
        self.line = lines;
    }

    /// The user who was away did not come back in time (or its place was needed): its nickname
    /// is free again, and those whose private messages were waiting for it are told.
    fn gave_up_waiting(&mut self, session: Session) {
        let mut senders: Vec<((ConnId, u64), usize)> = Vec::new();
        for held in &session.held {
            match senders.iter_mut().find(|(s, _)| *s == held.sender) {
                Some((_, n)) => *n += 1,
                None => senders.push((held.sender, 1)),
            }
        }
        let secs = self.cfg.resume_window.as_secs();
        for ((conn, serial), count) in senders {
            if self.peer(conn).is_some_and(|p| p.serial == serial) && self.is_open(conn) {
                let text = format!(
                    "{} {}: not back within {secs} s, {count} messages dropped",
                    notice::NOT_DELIVERED_TO,
                    session.nick
                );
                self.reply(conn, &["NOTICE", &text]);
            }
        }
    }

    /// After a user went away from `address`: the sessions kept stay within --max-away,
    /// --max-away-per-ip, and with the open connections within --max-clients and --max-per-ip;
    /// the one away longest goes first.
    fn keep_away_within_bounds(&mut self, address: Option<std::net::IpAddr>) {
        let open = self.admission.total();
        while self.sessions.away_count() > self.cfg.max_away
            || open + self.sessions.away_count() > self.cfg.max_clients
        {
            if !self.give_up_away(None, "too many users away") {
                break;
            }
        }
        let Some(address) = address else {
            return;
        };
        while self.sessions.away_from(address) > self.cfg.max_away_per_ip
            || (self.cfg.max_per_ip > 0
                && self.admission.count(address) + self.sessions.away_from(address)
                    > self.cfg.max_per_ip)
        {
            if !self.give_up_away(Some(address), "too many users away from its address") {
                break;
            }
        }
    }

    /// Gives up the session of the user away longest (from `address`, if given); returns whether
    /// there was one.
    fn give_up_away(&mut self, address: Option<std::net::IpAddr>, why: &str) -> bool {
        let Some(session) = self.sessions.give_up_oldest(address) else {
            return false;
        };
        log!("session of {} given up: {why}", session.nick);
        self.gave_up_waiting(session);
        true
    }

    fn chat_line(&mut self, id: ConnId, line: &str) {
        match parse_client_line(line) {
            ClientLine::Empty => {}
            ClientLine::Message(text) => self.say(id, self.current_room(id), "MSG", text),
            ClientLine::Me(text) => self.say(id, self.current_room(id), "ACTION", text),
            ClientLine::Users => self.send_user_list(id),
            // A client of the seed knows the default room only: to it, `#other` is no one.
            ClientLine::Msg { to, text } if self.speaks_rooms_to(id, to) => {
                self.say_in(id, to, "MSG", text)
            }
            ClientLine::Msg { to, text } => self.private_message(id, to, text),
            ClientLine::Nick(new) => self.change_nick(id, new),
            ClientLine::Ping(token) => self.pong(id, token),
            ClientLine::Quit(reason) => self.quit(id, reason),
            ClientLine::Help => self.help(id),
            ClientLine::MissingArgument(usage) => {
                self.reply_error(id, ErrorCode::MissingArgument, &format!("usage: {usage}"))
            }
            // Said before the nickname, or not at all.
            ClientLine::Pass(_) => self.reply_error(id, ErrorCode::UnknownCommand, "pass"),
            ClientLine::Resume(_) => self.reply_error(id, ErrorCode::UnknownCommand, "resume"),
            ClientLine::History(_) => self.reply_error(id, ErrorCode::UnknownCommand, "history"),
            command @ (ClientLine::Register
            | ClientLine::Unregister(_)
            | ClientLine::Whois(_)
            | ClientLine::Kick { .. }
            | ClientLine::Ban { .. }
            | ClientLine::Unban(_)
            | ClientLine::Bans(_)
            | ClientLine::Mute { .. }
            | ClientLine::Unmute(_)) => self.moderation_command(id, command),
            ClientLine::Cap(_) => self.reply_error(id, ErrorCode::UnknownCommand, "cap"),
            command @ (ClientLine::Join(_)
            | ClientLine::Part { .. }
            | ClientLine::Rooms(_)
            | ClientLine::RoomUsers(_)
            | ClientLine::Topic { .. }
            | ClientLine::Invite { .. }
            | ClientLine::Create { .. }
            | ClientLine::Action { .. }
            | ClientLine::RoomOp { .. }
            | ClientLine::RoomKick { .. }
            | ClientLine::RoomBan { .. }
            | ClientLine::RoomUnban { .. }
            | ClientLine::RoomMute { .. }
            | ClientLine::RoomUnmute { .. }) => self.room_command(id, command),
            ClientLine::Unknown("") => self.reply_error(id, ErrorCode::UnknownCommand, "/"),
            ClientLine::Unknown(name) => {
                self.reply_error(id, ErrorCode::UnknownCommand, &clean_text(name))
            }
        }
    }

    /// A public message or action in `room`: formatted once for everyone else in it, and kept
    /// in the history.
    fn say(&mut self, id: ConnId, room: RoomId, kind: &str, text: &str) {
        let text = clean_text(text);
        if text.trim().is_empty() {
            return;
        }
        if !self.in_room(id, room) {
            return self.not_in_room(id, room);
        }
        if self.refused_as_muted(id) || self.refused_as_muted_in(id, room) {
            return;
        }
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        let author = match self.peer(id).map(|p| &p.state) {
            Some(PeerState::Chatting { nick, author, .. }) => {
                push_line(&mut line, &[kind, nick, &text]);
                *author
            }
            _ => {
                self.line = line;
                return;
            }
        };
        let line_id = self.history.take_id();
        // Not cut to 4096 bytes: it carries the sender's whole line (protocol.md).
        self.outbox
            .send_to_room(room, self.rooms.name(room), Some(id), Some(line_id), &line);
        if self.history.max_lines() > 0 {
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into();
            let entry = Entry {
                id: line_id,
                at: self.unix(),
                author,
                room: self.history_room(room),
                line: text,
            };
            if let Some(sink) = &mut self.history_sink {
                sink.keep(&entry);
            }
            self.history.record(entry);
        }
        self.line = line;
    }

    /// `<kind> <sender's nick> <text>` for one connection. Not cut to 4096 bytes: it carries
    /// the sender's whole line (protocol.md).
    fn relay(&mut self, from: ConnId, kind: &str, text: &str, to: ConnId) {
        self.with_line(
            |chat, line| {
                if let Some(nick) = chat.nick(from) {
                    push_line(line, &[kind, nick, text]);
                }
            },
            |out, line| out.send(to, line),
        );
    }

    /// A line of several parts (`HISTORY <time> <line>`) that may be as long as a relayed one.
    fn reply_unbounded(&mut self, id: ConnId, words: &[&str]) {
        self.with_line(
            |_, line| push_line(line, words),
            |out, line| out.send(id, line),
        );
    }

    fn private_message(&mut self, id: ConnId, to: &str, text: &str) {
        let text = clean_text(text);
        if text.trim().is_empty() {
            return self.reply_error(id, ErrorCode::MissingArgument, "usage: /msg <nick> <text>");
        }
        let key = nick_key(to);
        if let Some(target) = self.nicknames.holder(&key) {
            let target_session = match self.peer(target).map(|p| &p.state) {
                Some(PeerState::Chatting {
                    session: Some(token),
                    ..
                }) => Some(token.clone()),
                _ => None,
            };
            let (Some(token), Some(from), Some(serial)) = (
                target_session,
                self.nick(id).map(String::from),
                self.peer(id).map(|p| p.serial),
            ) else {
                return self.relay(id, "PRIVMSG", &text, target);
            };
            // Kept a while, with an id: the target's connection may be dead already.
            let message = Held {
                id: self.history.take_id(),
                at: self.unix(),
                line: format!("PRIVMSG {from} {text}").into(),
                sender: (id, serial),
            };
            self.reply_unbounded(target, &[&format!("@{}", message.id), &message.line]);
            self.sessions.sent(&token, message);
            return;
        }
        let Some(token) = self.sessions.away_holder(&key).map(Box::<str>::from) else {
            return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(to));
        };
        let (Some(from), Some(serial)) = (
            self.nick(id).map(String::from),
            self.peer(id).map(|p| p.serial),
        ) else {
            return;
        };
        let held = Held {
            id: self.history.take_id(),
            at: self.unix(),
            line: format!("PRIVMSG {from} {text}").into(),
            sender: (id, serial),
        };
        let (away_nick, until) = self
            .sessions
            .get(&token)
            .map_or((to.into(), None), |s| (s.nick.clone(), s.away_until));
        let text = if self.sessions.hold(&token, held) {
            let secs = until.map_or(0, |until| {
                seconds_up(until.saturating_duration_since(self.now))
            });
            format!(
                "{} {away_nick}: away, delivered if back within {secs} s",
                notice::HELD_FOR
            )
        } else {
            format!(
                "{} {away_nick}: too many messages waiting",
                notice::NOT_HELD_FOR
            )
        };
        self.reply(id, &["NOTICE", &text]);
    }

    fn change_nick(&mut self, id: ConnId, new: &str) {
        if let Err(e) = validate_nick(new) {
            return self.reply_error(id, ErrorCode::NickInvalid, &e.to_string());
        }
        let Some(old) = self.nick(id) else {
            return;
        };
        if old == new {
            return self.reply(id, &["NOTICE", notice::NICK_UNCHANGED, new]);
        }
        if let Some(text) = self.registered_to_another(id, new) {
            return self.reply_error(id, ErrorCode::NickRegistered, &text);
        }
        // A nickname is shown to everyone: a muted user cannot use one to speak.
        if self.refused_as_muted(id) {
            return;
        }
        let rooms: Vec<RoomId> = self.outbox.rooms_of(id).collect();
        if rooms
            .into_iter()
            .any(|room| self.refused_as_muted_in(id, room))
        {
            return;
        }
        let new_key = nick_key(new);
        if let Some(text) = self.nick_taken(new, &new_key, Some(id), None) {
            return self.reply_error(id, ErrorCode::NickTaken, &text);
        }
        let addr = self.peer(id).map(|p| p.addr);
        let Some(PeerState::Chatting { nick, session, .. }) =
            self.peer_mut(id).map(|p| &mut p.state)
        else {
            return;
        };
        let old = std::mem::replace(nick, new.into());
        if let Some(s) = session
            .clone()
            .and_then(|token| self.sessions.get_mut(&token))
        {
            s.nick = new.into();
        }
        self.nicknames.remove(&nick_key(&old));
        self.note_nick_used(id, &new_key);
        self.nicknames.insert(new_key, id);
        if let Some(addr) = addr {
            log!("nick {old} -> {new} ({addr})");
        }
        // Everyone, the sender included, so that the client learns the change took effect.
        self.line_to_rooms_of(id, None, &["NICK", &old, new]);
    }

    fn pong(&mut self, id: ConnId, token: Option<&str>) {
        match token {
            Some(token) => self.reply(id, &["PONG", &clean_text(token)]),
            None => self.reply(id, &["PONG"]),
        }
    }

    fn help(&mut self, id: ConnId) {
        for line in HELP {
            self.reply(id, &["NOTICE", line]);
        }
    }

    fn quit(&mut self, id: ConnId, reason: Option<&str>) {
        // The room sees a quit reason: a muted user's is not passed on.
        let muted = self.muted(id).is_some();
        let reason = reason
            .filter(|_| !muted)
            .map(|r| clean_text(r).into_owned())
            .filter(|r| !r.trim().is_empty());
        self.close(id, CloseReason::Quit(reason));
    }
}

/// Token bucket: `rate` lines per second on average, `burst` at once.
#[derive(Clone)]
pub struct FloodBucket {
    tokens: f64,
    last: Instant,
    /// `ERROR flood` was sent for the current run of dropped lines.
    warned: bool,
}

impl FloodBucket {
    fn new(now: Instant, burst: f64) -> Self {
        FloodBucket {
            tokens: burst,
            last: now,
            warned: false,
        }
    }

    fn allow(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.warned = false;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[path = "chat_tests.rs"]
mod tests;
