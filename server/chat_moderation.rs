//! The chat's identity and moderation rules (docs/protocol.md, "Identity" and "Operators"):
//! `/register`, `/unregister`, `/whois`, and the operators' `/kick`, `/ban`, `/unban`, `/bans`,
//! `/mute`, `/unmute`. A child module of `chat`, so that these rules see the peers as the rest do.
//!
//! With `--state-dir`, a change to the registrations or the bans takes effect in memory at once
//! and is handed to the state writer (a thread of its own, `state.rs`) as an effect
//! ([`Chat::take_state_batch`]); the command that made it is answered when the writer reports it
//! written ([`Chat::state_saved`]). If the disk refuses it, the change is undone and answered
//! `ERROR not-saved` — and so is every change made after it and not yet written, so that what is
//! in memory is always what is on disk once the writer is done.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};

use charla_proto::time::utc_timestamp;
use charla_proto::{clean_text, nick_key, short_fingerprint, ClientLine, ErrorCode, Presence};

use super::{Chat, FloodBucket, PeerState};
use crate::address::{address_key, ConnectRate};
use crate::clock::seconds_up;
use crate::close::CloseReason;
use crate::log::{log, log_error};
use crate::moderation::{
    cut_reason, Ban, Bans, Mute, Operators, Registration, Registrations, StateChange, Target,
};
use crate::outbox::ConnId;
use crate::rooms::RoomId;

/// Who may do what (the registered nicknames are the registry's, `nicknames.rs`), and the
/// changes to both on their way to `--state-dir`.
#[derive(Default)]
pub struct Moderation {
    pub bans: Bans,
    pub mutes: crate::moderation::Mutes,
    pub operators: Operators,
    /// `--state-dir`: changes are written by the state writer and answered when written; without
    /// it registrations and bans live in memory only, and are answered at once.
    pub persistent: bool,
    /// Operators in the room, in the order they joined (for the `OPER` lines after a user list).
    pub in_room: Vec<ConnId>,
    /// Registration changes, server-wide: each is a file written and synced, which many clients
    /// registering and unregistering in a loop must not keep busy.
    pub saves: Option<FloodBucket>,
    /// The same per address, so that one address cannot use the server-wide allowance up.
    pub saves_by_address: ConnectRate,
    /// The batch the writer has (its number and its changes), and the changes waiting for it.
    writing: Option<(u64, Vec<Change>)>,
    waiting: Vec<Change>,
    batches: u64,
    /// Registrations used since they were last written (nickname key → when), written with the
    /// next change or within the hour.
    used: HashMap<String, u64>,
    used_since: Option<Instant>,
    /// When registrations were last checked for expiry.
    expiry_checked: Option<Instant>,
}

/// Registration changes one address (IPv6: one /64) may make per minute, all at once if it likes.
const SAVES_PER_ADDRESS_PER_MINUTE: u32 = 6;
/// Bans shown per page of `/bans`: a long list must not make an operator's client "too slow".
const BANS_PER_PAGE: usize = 50;
/// How often registrations are checked for expiry, and the most that expire at once (the rest
/// at the next check): a burst of expiries must not hold the loop.
const EXPIRY_EVERY: Duration = Duration::from_secs(60);
const EXPIRE_AT_ONCE: usize = 1000;
/// Ended bans forgotten per pass of the loop, at most.
const BANS_ENDED_AT_ONCE: usize = 1000;
/// Registrations used are written at least this often, if nothing else is.
const USED_WRITTEN_EVERY: Duration = Duration::from_secs(3600);
/// The rooms file is written whole: at most this often (a loop of `/join #new` and `/part` must
/// not keep the disk busy), and at once when the server stops.
const ROOMS_WRITTEN_EVERY: Duration = Duration::from_secs(5);

/// A change on its way to the disk: what it is, how to undo it, and what to answer (to whom)
/// once it is written.
struct Change {
    change: StateChange,
    undo: Undo,
    answer: Answer,
    /// The connection to answer, and its serial (it may be gone by then).
    to: Option<(ConnId, u64)>,
}

enum Undo {
    Unregister(String),
    Reregister(Registration),
    /// Remove the ban on this target, and put back the one it replaced.
    Unban(Target, Option<Ban>),
    Reban(Ban),
}

enum Answer {
    /// Written without a word (expiry, a change answered by another).
    Quiet,
    Registered {
        nick: String,
        owner: String,
    },
    Unregistered {
        nick: String,
        owner: String,
    },
    Banned(Ban),
    Unbanned {
        count: usize,
        what: String,
    },
}

impl Chat {
    /// Registrations and bans from `--state-dir` (`persistent`: changes go back to it), the
    /// operators from `--operators`.
    pub fn set_moderation(
        &mut self,
        registrations: Registrations,
        bans: Bans,
        operators: Operators,
        persistent: bool,
    ) {
        self.nicknames.registered = registrations;
        self.moderation.bans = bans;
        self.moderation.operators = operators;
        self.moderation.persistent = persistent;
    }

    /// The operators file was read again (SIGHUP): whoever became or stopped being an operator
    /// is announced to the room.
    pub fn set_operators(&mut self, operators: Operators) {
        self.moderation.operators = operators;
        let members: Vec<ConnId> = (0..self.peers.len())
            .filter(|&id| self.nick(id).is_some())
            .collect();
        for id in members {
            let now_operator = self.is_operator(id);
            let was = self.moderation.in_room.contains(&id);
            let Some(nick) = self.nick(id).map(String::from) else {
                continue;
            };
            if now_operator && !was {
                self.moderation.in_room.push(id);
                log!("moderation: {} is now an operator", self.who(id));
                self.line_to_rooms_of(id, None, &["OPER", &nick]);
            } else if !now_operator && was {
                self.moderation.in_room.retain(|&m| m != id);
                log!("moderation: {} is no longer an operator", self.who(id));
                self.line_to_rooms_of(id, None, &["DEOPER", &nick]);
            }
        }
    }

    pub(super) fn identity(&self, id: ConnId) -> Option<&str> {
        self.peer(id)?.identity.as_deref()
    }

    pub(super) fn is_operator(&self, id: ConnId) -> bool {
        self.moderation.operators.contains(self.identity(id))
    }

    /// Right after the TLS handshake: a connection without the certificate the server requires,
    /// or one a ban keeps out, is told why; returns whether it was turned away.
    pub(super) fn turned_away(&mut self, id: ConnId) -> bool {
        let Some(peer) = self.peer(id) else {
            return false;
        };
        let (ip, identity) = (peer.addr.ip(), peer.identity.clone());
        if self.cfg.require_client_cert && identity.is_none() {
            log!("refused {}: no client certificate", self.who(id));
            self.reply_error(
                id,
                ErrorCode::NoIdentity,
                "this server requires a client certificate (Charla's client makes one; with \
                 openssl s_client add -cert and -key)",
            );
            self.close(id, CloseReason::Rejected(ErrorCode::NoIdentity));
            return true;
        }
        let Some(text) = self.ban_on(identity.as_deref(), ip) else {
            return false;
        };
        log!("refused {}: banned", self.who(id));
        self.reply_error(id, ErrorCode::Banned, &text);
        self.close(id, CloseReason::Rejected(ErrorCode::Banned));
        true
    }

    /// The `ERROR banned` text for a connection a ban keeps out; operators never are.
    fn ban_on(&self, identity: Option<&str>, ip: IpAddr) -> Option<String> {
        if self.moderation.operators.contains(identity) {
            return None;
        }
        let ban = self.moderation.bans.find(identity, ip, self.unix())?;
        Some(ban_text(ban))
    }

    /// Why `id` may not have `nick`, if it is registered to another identity.
    pub(super) fn registered_to_another(&self, id: ConnId, nick: &str) -> Option<String> {
        let owner = self.nicknames.registered.owner(nick)?;
        if self.identity(id) == Some(owner) {
            return None;
        }
        Some(if self.identity(id).is_some() {
            format!("{nick} is registered to another identity; choose another")
        } else {
            format!(
                "{nick} is registered; choose another, or connect with the identity (client \
                 certificate) it was registered with"
            )
        })
    }

    /// Its owner took a registered nickname (by key): it does not expire for a while yet.
    pub(super) fn note_nick_used(&mut self, id: ConnId, key: &str) {
        let owned = self
            .nicknames
            .registered
            .get_key(key)
            .is_some_and(|r| Some(&*r.owner) == self.identity(id));
        if !owned {
            return;
        }
        let now = self.unix();
        self.nicknames.registered.touch(key, now);
        if self.moderation.persistent {
            self.moderation.used.insert(key.to_string(), now);
            self.moderation.used_since.get_or_insert(self.now);
        }
    }

    /// The mute that keeps `id` quiet in public, if any; operators never are.
    pub(super) fn muted(&self, id: ConnId) -> Option<&Mute> {
        if self.moderation.mutes.is_empty() {
            return None;
        }
        let peer = self.peer(id)?;
        // As with bans: an address mute must not silence an operator behind the same address.
        if self.moderation.operators.contains(peer.identity.as_deref()) {
            return None;
        }
        self.moderation
            .mutes
            .find(peer.identity.as_deref(), peer.addr.ip(), self.now)
    }

    /// A muted user joins only under the nickname it was muted as: any other would say to the
    /// room what its lines may not.
    pub(super) fn muted_under_another_name(&self, id: ConnId, nick: &str) -> Option<String> {
        let mute = self.muted(id)?;
        (nick_key(&mute.nick) != nick_key(nick)).then(|| {
            format!(
                "an operator muted you: while muted you can only be {} here",
                mute.nick
            )
        })
    }

    /// The muted user's public line is refused; returns whether it was.
    pub(super) fn refused_as_muted(&mut self, id: ConnId) -> bool {
        let Some(mute) = self.muted(id) else {
            return false;
        };
        let text = match mute.until {
            Some(until) => format!(
                "an operator muted you for {} more minutes: your public lines reach no one; \
                 private messages still go",
                minutes_up(until.saturating_duration_since(self.now))
            ),
            None => "an operator muted you: your public lines reach no one; private messages \
                     still go"
                .to_string(),
        };
        self.reply_error(id, ErrorCode::Muted, &text);
        true
    }

    /// A new member of the room, before its user list: an operator is counted among those in
    /// the room. Returns whether it is one.
    pub(super) fn note_operator(&mut self, id: ConnId) -> bool {
        let operator = self.is_operator(id);
        if operator {
            self.moderation.in_room.push(id);
        }
        operator
    }

    /// The lines that follow the user list of `room`: `OPER <nick>` for each server operator
    /// in it, then `OP <nick>` for each of the room's own operators in it.
    pub(super) fn push_operator_lines(&self, lines: &mut Vec<u8>, prefix: &str, room: RoomId) {
        let push = |lines: &mut Vec<u8>, kind: &str, nick: &str| {
            lines.extend_from_slice(prefix.as_bytes());
            charla_proto::reply::push_line(lines, &[kind, nick]);
        };
        for &op in &self.moderation.in_room {
            if let Some(nick) = self.nick(op).filter(|_| self.in_room(op, room)) {
                push(lines, "OPER", nick);
            }
        }
        // `OP` is a line of rooms: a client of the seed (no prefix) does not get it.
        let runs_something = self
            .rooms
            .get(room)
            .is_some_and(|r| r.owner.is_some() || !r.operators.is_empty());
        if !prefix.is_empty() && runs_something {
            for member in self.outbox.members(room) {
                let identity = self.peer(member).and_then(|p| p.identity.as_deref());
                if self.rooms.runs(room, identity) {
                    push(lines, "OP", self.nick(member).unwrap_or_default());
                }
            }
        }
    }

    /// The identity and moderation commands of someone in the room.
    pub(super) fn moderation_command(&mut self, id: ConnId, command: ClientLine<'_>) {
        match command {
            ClientLine::Register => self.register(id),
            ClientLine::Unregister(nick) => self.unregister(id, nick),
            ClientLine::Whois(nick) => self.whois(id, nick),
            command if !self.is_operator(id) => {
                let name = match command {
                    ClientLine::Kick { .. } => "kick",
                    ClientLine::Ban { .. } => "ban",
                    ClientLine::Unban(_) => "unban",
                    ClientLine::Bans(_) => "bans",
                    ClientLine::Mute { .. } => "mute",
                    _ => "unmute",
                };
                let text = format!(
                    "/{name} is for operators: the server's --operators file lists their identities"
                );
                self.reply_error(id, ErrorCode::NotOperator, &text);
            }
            ClientLine::Kick { nick, reason } => self.kick(id, nick, reason),
            ClientLine::Ban {
                target,
                minutes,
                reason,
            } => self.ban(id, target, minutes, reason),
            ClientLine::Unban(what) => self.unban(id, what),
            ClientLine::Bans(page) => self.list_bans(id, page),
            ClientLine::Mute { nick, minutes } => self.mute(id, nick, minutes),
            ClientLine::Unmute(nick) => self.unmute(id, nick),
            _ => {}
        }
    }

    /// A change made in memory: answered now without `--state-dir`, else when it is written.
    fn changed(&mut self, to: Option<ConnId>, change: StateChange, undo: Undo, answer: Answer) {
        let to = to.and_then(|id| Some((id, self.peer(id)?.serial)));
        let change = Change {
            change,
            undo,
            answer,
            to,
        };
        if self.moderation.persistent {
            self.moderation.waiting.push(change);
        } else {
            self.answer(change);
        }
    }

    /// The changes for the state writer, when it has none and some are waiting (or registrations
    /// used are due to be written). Called by the reactor at the end of each pass.
    pub fn take_state_batch(&mut self) -> Option<(u64, Vec<StateChange>)> {
        let rooms = self.rooms_at_shutdown.is_some()
            || (self.rooms_changed
                && self
                    .rooms_written_at
                    .is_none_or(|at| self.now >= at + ROOMS_WRITTEN_EVERY));
        let m = &mut self.moderation;
        let used_due = m
            .used_since
            .is_some_and(|since| self.shutting_down || self.now >= since + USED_WRITTEN_EVERY);
        if m.writing.is_some() || (m.waiting.is_empty() && !used_due && !rooms) || !m.persistent {
            return None;
        }
        let mut changes: Vec<StateChange> = m
            .used
            .drain()
            .map(|(key, at)| StateChange::Used(key, at))
            .collect();
        m.used_since = None;
        let batch = std::mem::take(&mut m.waiting);
        changes.extend(batch.iter().map(|c| c.change.clone()));
        m.batches += 1;
        m.writing = Some((m.batches, batch));
        self.rooms_in_flight = rooms;
        if rooms {
            self.rooms_changed = false;
            self.rooms_written_at = Some(self.now);
            let text = match self.rooms_at_shutdown.take() {
                Some(text) => text,
                None => self.rooms_text(),
            };
            changes.push(StateChange::Rooms(text));
        }
        Some((self.moderation.batches, changes))
    }

    /// The batch the state writer has, if any.
    pub fn state_batch_in_flight(&self) -> Option<u64> {
        self.moderation.writing.as_ref().map(|(id, _)| *id)
    }

    /// The state writer wrote batch `id` (or could not): its commands are answered; on failure
    /// every change not yet written is undone and answered `ERROR not-saved`.
    pub fn state_saved(&mut self, id: u64, result: Result<(), String>) {
        let Some((writing, batch)) = self.moderation.writing.take() else {
            return;
        };
        if writing != id {
            self.moderation.writing = Some((writing, batch));
            return;
        }
        match result {
            Ok(()) => {
                self.rooms_in_flight = false;
                for change in batch {
                    self.answer(change);
                }
            }
            Err(why) => {
                // The rooms are written whole: tried again after a while, not at once (a failing
                // disk must not be kept busy).
                log_error!("state not saved: {why}");
                if std::mem::take(&mut self.rooms_in_flight) {
                    self.rooms_changed();
                }
                let mut undone = batch;
                undone.append(&mut self.moderation.waiting);
                for change in undone.iter().rev() {
                    self.undo(&change.undo);
                }
                for change in undone {
                    let Some(to) = change
                        .to
                        .filter(|_| !matches!(change.answer, Answer::Quiet))
                    else {
                        continue;
                    };
                    if self.peer(to.0).is_some_and(|p| p.serial == to.1) {
                        self.reply_error(
                            to.0,
                            ErrorCode::NotSaved,
                            "the server could not save the change (its operator will find why \
                             in its log); nothing changed",
                        );
                    }
                }
            }
        }
    }

    fn undo(&mut self, undo: &Undo) {
        let m = &mut self.moderation;
        match undo {
            Undo::Unregister(key) => {
                self.nicknames.registered.remove_key(key);
            }
            Undo::Reregister(r) => {
                self.nicknames.registered.insert(r.clone());
            }
            Undo::Unban(target, previous) => {
                m.bans.remove(target);
                if let Some(previous) = previous {
                    m.bans.add(previous.clone());
                }
            }
            Undo::Reban(ban) => {
                m.bans.add(ban.clone());
            }
        }
    }

    /// A change is written (or needs no writing): its command is answered, to a connection still
    /// there, and what waited for it is done.
    fn answer(&mut self, change: Change) {
        let to = change
            .to
            .filter(|&(id, serial)| self.peer(id).is_some_and(|p| p.serial == serial))
            .map(|(id, _)| id);
        match change.answer {
            Answer::Quiet => {}
            Answer::Registered { nick, owner } => {
                log!(
                    "registration: {nick} registered to {}",
                    short_fingerprint(&owner)
                );
                if let Some(id) = to {
                    self.reply_registered(id, &nick, &owner);
                }
            }
            Answer::Unregistered { nick, owner } => {
                match to.filter(|&id| self.identity(id) != Some(&owner)) {
                    Some(id) => log!(
                        "moderation: {} unregistered {nick} (was {})",
                        self.who(id),
                        short_fingerprint(&owner)
                    ),
                    None => log!("registration: {nick} unregistered"),
                }
                if let Some(id) = to {
                    self.reply(id, &["UNREGISTERED", &nick]);
                }
            }
            Answer::Banned(ban) => {
                let named = ban
                    .nick
                    .as_deref()
                    .map_or(String::new(), |n| format!(" ({n})"));
                log!(
                    "moderation: {} banned {}{named} {}",
                    to.map_or_else(|| ban.by.to_string(), |id| self.who(id)),
                    ban.target.describe(),
                    until_text(ban.until)
                );
                let closed = self.close_banned(&ban);
                if let Some(id) = to {
                    let (kind, value) = ban.target.words();
                    let until = until_word(ban.until);
                    let closed = closed.to_string();
                    let mut words = vec!["BANNED", kind, &value, &until, &closed];
                    words.extend(ban.nick.as_deref());
                    self.reply(id, &words);
                }
            }
            Answer::Unbanned { count, what } => {
                if let Some(id) = to {
                    log!("moderation: {} lifted {count} bans ({what})", self.who(id));
                    self.reply(id, &["UNBANNED", &count.to_string()]);
                }
            }
        }
    }

    /// `REGISTERED <nick> <short fingerprint> <days before it expires unused, 0: never>`.
    fn reply_registered(&mut self, id: ConnId, nick: &str, owner: &str) {
        let days = self.cfg.registration_expiry_days.to_string();
        let short = short_fingerprint(owner).to_string();
        self.reply(id, &["REGISTERED", nick, &short, &days]);
    }

    /// Time passed: bans that ended are forgotten, registrations nobody used for
    /// --registration-expiry are freed; a bounded number at a time.
    pub(super) fn tick_moderation(&mut self, now: Instant) {
        let unix = self.unix();
        self.moderation.bans.expire(unix, BANS_ENDED_AT_ONCE);
        let days = self.cfg.registration_expiry_days;
        if days == 0
            || self
                .moderation
                .expiry_checked
                .is_some_and(|at| now < at + EXPIRY_EVERY)
        {
            return;
        }
        self.moderation.expiry_checked = Some(now);
        let before = unix.saturating_sub(days * 86_400);
        let gone = self
            .nicknames
            .registered
            .take_unused(before, EXPIRE_AT_ONCE);
        if gone.is_empty() {
            return;
        }
        log!(
            "registration: {} nicknames unused for {days} days freed",
            gone.len()
        );
        for r in gone {
            let key = nick_key(&r.nick);
            self.moderation.used.remove(&key);
            self.changed(
                None,
                StateChange::Unregister(key),
                Undo::Reregister(r),
                Answer::Quiet,
            );
        }
    }

    /// The next moment `tick_moderation` has something to do.
    pub(super) fn next_moderation_deadline(&self) -> Option<Instant> {
        let expiry = (self.cfg.registration_expiry_days > 0
            && !self.nicknames.registered.is_empty())
        .then(|| {
            self.moderation
                .expiry_checked
                .map_or(self.now, |at| at + EXPIRY_EVERY)
        });
        let used = self.moderation.used_since.map(|at| at + USED_WRITTEN_EVERY);
        let rooms = self
            .rooms_written_at
            .filter(|_| self.rooms_changed)
            .map(|at| at + ROOMS_WRITTEN_EVERY);
        expiry.into_iter().chain(used).chain(rooms).min()
    }

    /// Whether a registration change may be made now; if not, the client is told to wait.
    fn may_save_registration(&mut self, id: ConnId) -> bool {
        let Some(ip) = self.peer(id).map(|p| address_key(p.addr.ip())) else {
            return false;
        };
        let (now, rate) = (self.now, self.cfg.registration_rate);
        if let Err(wait) =
            self.moderation
                .saves_by_address
                .take(ip, now, SAVES_PER_ADDRESS_PER_MINUTE)
        {
            let text = format!(
                "at most {SAVES_PER_ADDRESS_PER_MINUTE} registration changes a minute from one address; try again in {} s",
                seconds_up(wait)
            );
            self.reply_error(id, ErrorCode::Flood, &text);
            return false;
        }
        // Bursts of ten times the rate: a class registering at once does not wait.
        let burst = (10.0 * rate).max(1.0);
        let saves = self
            .moderation
            .saves
            .get_or_insert_with(|| FloodBucket::new(now, burst));
        if saves.allow(now, rate, burst) {
            return true;
        }
        self.reply_error(
            id,
            ErrorCode::Flood,
            "the server is saving too many registrations at once; try again in a moment",
        );
        false
    }

    fn register(&mut self, id: ConnId) {
        let Some(identity) = self.identity(id).map(String::from) else {
            return self.reply_error(
                id,
                ErrorCode::NoIdentity,
                "your client sent no certificate: a nickname is registered to a certificate's \
                 fingerprint (Charla's client makes one; with openssl s_client add -cert and -key)",
            );
        };
        let Some(nick) = self.nick(id).map(String::from) else {
            return;
        };
        if self.nicknames.registered.owner(&nick) == Some(&identity) {
            // Already so: said the same way.
            return self.reply_registered(id, &nick, &identity);
        }
        let per_identity = self.cfg.max_nicks_per_identity;
        if self.nicknames.registered.count_of(&identity) >= per_identity {
            let text = format!(
                "an identity may register at most {per_identity} nicknames here; /unregister one first"
            );
            return self.reply_error(id, ErrorCode::RegistrationLimit, &text);
        }
        if self.nicknames.registered.len() >= self.cfg.max_registrations {
            return self.reply_error(
                id,
                ErrorCode::RegistrationLimit,
                "this server holds as many registrations as it takes",
            );
        }
        if !self.may_save_registration(id) {
            return;
        }
        let registration = Registration {
            nick: nick.as_str().into(),
            owner: identity.as_str().into(),
            last_used: self.unix(),
        };
        self.nicknames.registered.insert(registration.clone());
        self.changed(
            Some(id),
            StateChange::Register(registration),
            Undo::Unregister(nick_key(&nick)),
            Answer::Registered {
                nick,
                owner: identity,
            },
        );
    }

    fn unregister(&mut self, id: ConnId, nick: Option<&str>) {
        let Some(nick) = nick.or(self.nick(id)).map(String::from) else {
            return;
        };
        let Some(owner) = self.nicknames.registered.owner(&nick).map(String::from) else {
            let text = format!("{} is not registered", clean_text(&nick));
            return self.reply_error(id, ErrorCode::NoSuchUser, &text);
        };
        let operator = self.is_operator(id);
        if self.identity(id) != Some(&owner) && !operator {
            let text = format!("{nick} is registered to another identity");
            return self.reply_error(id, ErrorCode::NickRegistered, &text);
        }
        if !self.may_save_registration(id) {
            return;
        }
        let Some(removed) = self.nicknames.registered.remove(&nick) else {
            return;
        };
        let key = nick_key(&removed.nick);
        self.moderation.used.remove(&key);
        self.changed(
            Some(id),
            StateChange::Unregister(key),
            Undo::Reregister(removed.clone()),
            Answer::Unregistered {
                nick: removed.nick.to_string(),
                owner,
            },
        );
    }

    /// The identity and address of someone away (its session waiting for it), by nickname key.
    fn away_user(&self, key: &str) -> Option<(String, Option<String>, IpAddr)> {
        let token = self.sessions.away_holder(key)?;
        let s = self.sessions.get(token)?;
        Some((
            s.nick.to_string(),
            s.identity.as_deref().map(String::from),
            s.address,
        ))
    }

    /// `WHOIS <nick> <online|away|offline> <registered|unregistered> <operator|user>
    /// <fingerprint|no-identity> [address]`: for operators the whole fingerprint and, for someone
    /// online or away, the address; a short fingerprint for others.
    fn whois(&mut self, id: ConnId, nick: &str) {
        let asker_is_operator = self.is_operator(id);
        let show = |fp: &str| {
            if asker_is_operator {
                fp.to_string()
            } else {
                short_fingerprint(fp).to_string()
            }
        };
        let key = nick_key(nick);
        let registration = self.nicknames.registered.get_key(&key);
        let online = self.nicknames.holder(&key);
        let away = online.is_none().then(|| self.away_user(&key)).flatten();
        let (name, identity, presence, address) = match (online, away, registration) {
            (Some(conn), _, _) => (
                self.nick(conn).unwrap_or(nick).to_string(),
                self.identity(conn).map(String::from),
                Presence::Online,
                self.peer(conn).map(|p| p.addr.ip()),
            ),
            (None, Some((name, identity, address)), _) => {
                (name, identity, Presence::Away, Some(address))
            }
            (None, None, Some(r)) => (
                r.nick.to_string(),
                Some(r.owner.to_string()),
                Presence::Offline,
                None,
            ),
            (None, None, None) => {
                return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(nick))
            }
        };
        // Operators also see the address (to ban it when the identity is not enough).
        let address = address
            .filter(|_| asker_is_operator)
            .map(|ip| ip.to_canonical().to_string());
        let registered = registration.is_some();
        let operator = self.moderation.operators.contains(identity.as_deref());
        let fingerprint = identity.as_deref().map_or("no-identity".into(), show);
        let mut words = vec![
            "WHOIS",
            &name,
            presence.as_str(),
            if registered {
                "registered"
            } else {
                "unregistered"
            },
            if operator { "operator" } else { "user" },
            &fingerprint,
        ];
        words.extend(address.as_deref());
        self.reply(id, &words);
    }

    /// Someone in the room, by nickname, or `ERROR no-such-user`.
    fn member(&mut self, id: ConnId, nick: &str) -> Option<ConnId> {
        let found = self.nicknames.find(nick);
        if found.is_none() {
            self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(nick));
        }
        found
    }

    fn kick(&mut self, id: ConnId, nick: &str, reason: Option<&str>) {
        let Some(target) = self.member(id, nick) else {
            return;
        };
        let reason = reason.map(|r| clean_text(r).into_owned());
        let by = self.nick(id).unwrap_or_default().to_string();
        log!("moderation: {} kicked {}", self.who(id), self.who(target));
        self.kick_out(target, by, reason);
    }

    /// `target` is told who put it out and why, and disconnected; the room gets `KICK`.
    pub(super) fn kick_out(&mut self, target: ConnId, by: String, reason: Option<String>) {
        let text = match &reason {
            Some(reason) => format!("{by} kicked you: {reason}"),
            None => format!("{by} kicked you"),
        };
        self.reply_error(target, ErrorCode::Kicked, &text);
        self.close(target, CloseReason::Kicked { by, reason });
    }

    fn ban(&mut self, id: ConnId, what: &str, minutes: Option<u64>, reason: Option<&str>) {
        // A nickname first: `1.2.3.4` is a valid one, and the user called that is who is meant —
        // in the room, away (its session waiting), or registered.
        let key = nick_key(what);
        let online = self.nicknames.holder(&key);
        let (target, nick) = if let Some(conn) = online {
            let Some(peer) = self.peer(conn) else {
                return;
            };
            let target = Target::of(peer.identity.as_deref(), peer.addr.ip());
            (target, self.nick(conn).map(Box::<str>::from))
        } else if let Some((name, identity, address)) = self.away_user(&key) {
            (Target::of(identity.as_deref(), address), Some(name.into()))
        } else if let Some(r) = self.nicknames.registered.get_key(&key) {
            (Target::Identity(r.owner.clone()), Some(r.nick.clone()))
        } else if let Some(target) = Target::parse(what) {
            (target, None)
        } else {
            return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(what));
        };
        if let Target::Identity(fp) = &target {
            if self.moderation.operators.contains(Some(fp)) {
                return self.reply_error(
                    id,
                    ErrorCode::IsOperator,
                    "that identity is an operator's: take it out of the operators file first \
                     (bans never apply to operators)",
                );
            }
        }
        let now = self.unix();
        let replacing = self.moderation.bans.get(&target).is_some();
        if !replacing && self.moderation.bans.len() >= self.cfg.max_bans {
            self.moderation.bans.expire(now, usize::MAX);
            if self.moderation.bans.len() >= self.cfg.max_bans {
                let text = format!(
                    "the server keeps at most {} bans (--max-bans); /unban some first",
                    self.cfg.max_bans
                );
                return self.reply_error(id, ErrorCode::BanLimit, &text);
            }
        }
        let reason = reason.map(clean_text).unwrap_or_default();
        let ban = Ban {
            target,
            until: minutes.map(|m| now + m * 60),
            set_at: now,
            by: self.nick(id).unwrap_or_default().into(),
            nick,
            reason: cut_reason(&reason).into(),
        };
        // New connections are kept out at once; those in the room are put out once it is saved.
        let previous = self.moderation.bans.add(ban.clone());
        self.changed(
            Some(id),
            StateChange::Ban(ban.clone()),
            Undo::Unban(ban.target.clone(), previous),
            Answer::Banned(ban),
        );
    }

    /// Closes every connection a new ban keeps out: those in the room are kicked (the room gets
    /// `KICK`), the others refused; a user away it matches is not waited for any more. Returns
    /// how many connections.
    fn close_banned(&mut self, ban: &Ban) -> usize {
        let text = ban_text(ban);
        let mut closed = 0;
        for conn in 0..self.peers.len() {
            let Some(peer) = self.peer(conn) else {
                continue;
            };
            let identity = peer.identity.as_deref();
            if !ban.target.matches(identity, peer.addr.ip())
                || self.moderation.operators.contains(identity)
            {
                continue;
            }
            match peer.state {
                PeerState::Chatting { .. } => {
                    self.reply_error(conn, ErrorCode::Banned, &text);
                    let reason = Some(ban.reason.to_string()).filter(|r| !r.is_empty());
                    let by = ban.by.to_string();
                    self.close(conn, CloseReason::Kicked { by, reason });
                }
                PeerState::Registering { .. } => {
                    self.reply_error(conn, ErrorCode::Banned, &text);
                    self.close(conn, CloseReason::Rejected(ErrorCode::Banned));
                }
                // Checked when its handshake ends.
                PeerState::Handshaking { .. } | PeerState::Closing => continue,
            }
            closed += 1;
        }
        if let Some(nick) = &ban.nick {
            let key = nick_key(nick);
            let away = self.sessions.away_holder(&key).map(Box::<str>::from);
            if let Some(session) = away.and_then(|token| self.sessions.end(&token)) {
                log!("session of {} given up: banned", session.nick);
                self.gave_up_waiting(session);
            }
        }
        closed
    }

    fn unban(&mut self, id: ConnId, what: &str) {
        // As for /ban, a nickname first (bans made from it, or on its owner's identity), then an
        // address or a fingerprint.
        let key = nick_key(what);
        let mut targets = self.moderation.bans.made_from(&key);
        if let Some(r) = self.nicknames.registered.get_key(&key) {
            let owner = Target::Identity(r.owner.clone());
            if self.moderation.bans.get(&owner).is_some() && !targets.contains(&owner) {
                targets.push(owner);
            }
        }
        if targets.is_empty() {
            if let Some(target) = Target::parse(what) {
                if self.moderation.bans.get(&target).is_some() {
                    targets.push(target);
                }
            }
        }
        if targets.is_empty() {
            let text = format!("no ban matches {}", clean_text(what));
            return self.reply_error(id, ErrorCode::NoSuchBan, &text);
        }
        let count = targets.len();
        for (n, target) in targets.into_iter().enumerate() {
            let Some(ban) = self.moderation.bans.remove(&target) else {
                continue;
            };
            // One answer, for the last.
            let answer = if n + 1 == count {
                Answer::Unbanned {
                    count,
                    what: what.to_string(),
                }
            } else {
                Answer::Quiet
            };
            self.changed(
                Some(id),
                StateChange::Unban(target),
                Undo::Reban(ban),
                answer,
            );
        }
    }

    /// `BANS <total> <page> <pages>`, then a `BAN` line per ban of that page.
    fn list_bans(&mut self, id: ConnId, page: u32) {
        let now = self.unix();
        let total = self
            .moderation
            .bans
            .iter()
            .filter(|b| b.active(now))
            .count();
        let pages = total.div_ceil(BANS_PER_PAGE).max(1);
        let page = (page as usize).max(1);
        let lines: Vec<Vec<String>> = self
            .moderation
            .bans
            .iter()
            .filter(|b| b.active(now))
            .skip((page - 1) * BANS_PER_PAGE)
            .take(BANS_PER_PAGE)
            .map(|b| {
                let (kind, value) = b.target.words();
                let mut words = vec![
                    "BAN".to_string(),
                    kind.to_string(),
                    value,
                    until_word(b.until),
                    utc_timestamp(UNIX_EPOCH + Duration::from_secs(b.set_at)),
                    b.by.to_string(),
                    b.nick.as_deref().unwrap_or("-").to_string(),
                ];
                if !b.reason.is_empty() {
                    words.push(b.reason.to_string());
                }
                words
            })
            .collect();
        let head = [total, page, pages].map(|n| n.to_string());
        self.reply(id, &["BANS", &head[0], &head[1], &head[2]]);
        for words in lines {
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            self.reply(id, &words);
        }
    }

    fn mute(&mut self, id: ConnId, nick: &str, minutes: Option<u64>) {
        let Some(target) = self.member(id, nick) else {
            return;
        };
        if self.is_operator(target) {
            return self.reply_error(id, ErrorCode::IsOperator, "operators cannot be muted");
        }
        let Some(peer) = self.peer(target) else {
            return;
        };
        let name = self.nick(target).unwrap_or(nick).to_string();
        let identity = peer.identity.as_deref();
        let mute = Mute {
            target: Target::of(identity, peer.addr.ip()),
            // The same user back from the same address without its certificate is still muted.
            seen_at: identity.map(|_| address_key(peer.addr.ip())),
            until: minutes.map(|m| self.now + Duration::from_secs(m * 60)),
            nick: name.as_str().into(),
        };
        log!(
            "moderation: {} muted {} ({}) {}",
            self.who(id),
            self.who(target),
            mute.target.describe(),
            minutes.map_or("until unmuted".into(), |m| format!("for {m} minutes"))
        );
        let now = self.now;
        self.moderation.mutes.add(mute, now);
        let minutes = minutes.unwrap_or(0).to_string();
        self.reply(id, &["MUTED", &name, &minutes]);
    }

    fn unmute(&mut self, id: ConnId, nick: &str) {
        let key = nick_key(nick);
        let online = self.nicknames.holder(&key).and_then(|conn| {
            let peer = self.peer(conn)?;
            Some((peer.identity.clone(), peer.addr.ip()))
        });
        let lifted = self.moderation.mutes.remove_where(|m| {
            nick_key(&m.nick) == key
                || online
                    .as_ref()
                    .is_some_and(|(identity, ip)| m.matches(identity.as_deref(), *ip))
        });
        if lifted == 0 {
            let text = format!("{} is not muted", clean_text(nick));
            return self.reply_error(id, ErrorCode::NoSuchBan, &text);
        }
        log!("moderation: {} unmuted {nick}", self.who(id));
        self.reply(id, &["UNMUTED", &clean_text(nick)]);
    }
}

/// What a banned connection is told.
fn ban_text(ban: &Ban) -> String {
    let reason = if ban.reason.is_empty() {
        String::new()
    } else {
        format!(": {}", ban.reason)
    };
    format!("banned by {} {}{reason}", ban.by, until_text(ban.until))
}

/// `until 2026-11-30T10:00:00Z` or `until lifted`.
fn until_text(until: Option<u64>) -> String {
    match until {
        Some(at) => format!("until {}", until_word(Some(at))),
        None => "until lifted".into(),
    }
}

/// `2026-11-30T10:00:00Z` or `permanent`, as the `BANNED` and `BAN` lines say it.
pub(super) fn until_word(until: Option<u64>) -> String {
    match until {
        Some(at) => utc_timestamp(UNIX_EPOCH + Duration::from_secs(at)),
        None => "permanent".into(),
    }
}

/// Whole minutes, rounded up.
fn minutes_up(wait: Duration) -> u64 {
    wait.as_secs().div_ceil(60).max(1)
}
