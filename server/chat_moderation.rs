//! The chat's identity and moderation rules (docs/protocol.md, "Identity" and "Operators"):
//! `/register`, `/unregister`, `/whois`, and the operators' `/kick`, `/ban`, `/unban`, `/bans`,
//! `/mute`, `/unmute`. A child module of `chat`, so that these rules see the peers as the rest do.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use charla_proto::time::utc_timestamp;
use charla_proto::{clean_text, nick_key, notice, short_fingerprint, ClientLine, ErrorCode};

use super::{seconds_up, unix_seconds, Chat, FloodBucket, PeerState};
use crate::address::{address_key, ConnectRate};
use crate::close::CloseReason;
use crate::log::{log, log_error};
use crate::moderation::{Ban, Bans, Mute, Operators, Registrations, Target};
use crate::outbox::ConnId;
use crate::state::{StateFile, StateStore};

/// Who is who and who may do what, and where changes are kept.
#[derive(Default)]
pub struct Moderation {
    pub registrations: Registrations,
    pub bans: Bans,
    pub mutes: crate::moderation::Mutes,
    pub operators: Operators,
    /// `--state-dir`; without it registrations and bans live in memory only.
    pub store: Option<Box<dyn StateStore>>,
    /// Operators in the room, in the order they joined (for the `OPER` lines after a user list).
    pub in_room: Vec<ConnId>,
    /// Registration changes written to disk, server-wide: each is an fsync in the event loop,
    /// which many clients registering and unregistering in a loop must not keep busy.
    pub saves: Option<FloodBucket>,
    /// The same per address, so that one address cannot use the server-wide allowance up.
    pub saves_by_address: ConnectRate,
}

/// Registration changes one address (IPv6: one /64) may make per minute, all at once if it likes.
const SAVES_PER_ADDRESS_PER_MINUTE: u32 = 6;

impl Chat {
    /// Registrations and bans from `--state-dir`, the operators from `--operators`.
    pub fn set_moderation(
        &mut self,
        registrations: Registrations,
        bans: Bans,
        operators: Operators,
        store: Option<Box<dyn StateStore>>,
    ) {
        self.moderation.registrations = registrations;
        self.moderation.bans = bans;
        self.moderation.operators = operators;
        self.moderation.store = store;
    }

    /// The operators file was read again (SIGHUP): whoever became or stopped being an operator
    /// is announced to the room.
    pub fn set_operators(&mut self, operators: Operators) {
        self.moderation.operators = operators;
        let members: Vec<ConnId> = self.outbox.members().to_vec();
        for id in members {
            let now_operator = self.is_operator(id);
            let was = self.moderation.in_room.contains(&id);
            let Some(nick) = self.nick(id).map(String::from) else {
                continue;
            };
            if now_operator && !was {
                self.moderation.in_room.push(id);
                log!("moderation: {} is now an operator", self.who(id));
                self.send_to_room(None, &["OPER", &nick]);
            } else if !now_operator && was {
                self.moderation.in_room.retain(|&m| m != id);
                log!("moderation: {} is no longer an operator", self.who(id));
                self.send_to_room(None, &["DEOPER", &nick]);
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
        let ban = self.moderation.bans.find(identity, ip, unix_seconds())?;
        Some(ban_text(ban))
    }

    /// Why `id` may not have `nick`, if it is registered to another identity.
    pub(super) fn registered_to_another(&self, id: ConnId, nick: &str) -> Option<String> {
        let owner = self.moderation.registrations.owner(nick)?;
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

    /// The muted user's public line is refused; returns whether it was.
    pub(super) fn refused_as_muted(&mut self, id: ConnId) -> bool {
        if self.moderation.mutes.is_empty() {
            return false;
        }
        let Some(peer) = self.peer(id) else {
            return false;
        };
        // As with bans: an address mute must not silence an operator behind the same address.
        if self.moderation.operators.contains(peer.identity.as_deref()) {
            return false;
        }
        let Some(mute) =
            self.moderation
                .mutes
                .find(peer.identity.as_deref(), peer.addr.ip(), self.now)
        else {
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

    /// The `OPER <nick>` lines that follow a user list.
    pub(super) fn push_operator_lines(&self, lines: &mut Vec<u8>) {
        for &op in &self.moderation.in_room {
            if let Some(nick) = self.nick(op) {
                charla_proto::reply::push_line(lines, &["OPER", nick]);
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
                    ClientLine::Bans => "bans",
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
            ClientLine::Bans => self.list_bans(id),
            ClientLine::Mute { nick, minutes } => self.mute(id, nick, minutes),
            ClientLine::Unmute(nick) => self.unmute(id, nick),
            _ => {}
        }
    }

    /// Writes a state file before the change is answered; `Err` is the `ERROR not-saved` text.
    fn save(&mut self, file: StateFile) -> Result<(), String> {
        let Some(store) = &mut self.moderation.store else {
            return Ok(());
        };
        let text = match file {
            StateFile::Registrations => self.moderation.registrations.to_text(),
            StateFile::Bans => self.moderation.bans.to_text(),
        };
        store.save(file, &text).map_err(|e| {
            log_error!("state not saved: {e}");
            "the server could not save the change (its operator will find why in its log); \
             nothing changed"
                .to_string()
        })
    }

    /// Whether a registration change may be written now; if not, the client is told to wait.
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
        let short = short_fingerprint(&identity).to_string();
        if self.moderation.registrations.owner(&nick) == Some(&identity) {
            let text = format!("{} {nick} is already yours ({short})", notice::REGISTERED);
            return self.reply(id, &["NOTICE", &text]);
        }
        let per_identity = self.cfg.max_nicks_per_identity;
        if self.moderation.registrations.count_of(&identity) >= per_identity {
            let text = format!(
                "an identity may register at most {per_identity} nicknames here; /unregister one first"
            );
            return self.reply_error(id, ErrorCode::RegistrationLimit, &text);
        }
        if self.moderation.registrations.len() >= self.cfg.max_registrations {
            return self.reply_error(
                id,
                ErrorCode::RegistrationLimit,
                "this server holds as many registrations as it takes",
            );
        }
        if !self.may_save_registration(id) {
            return;
        }
        self.moderation.registrations.insert(&nick, &identity);
        if let Err(text) = self.save(StateFile::Registrations) {
            self.moderation.registrations.remove(&nick);
            return self.reply_error(id, ErrorCode::NotSaved, &text);
        }
        log!("registration: {nick} registered to {short}");
        let text = format!(
            "{} {nick} is kept for your identity {short}; others are refused it",
            notice::REGISTERED
        );
        self.reply(id, &["NOTICE", &text]);
    }

    fn unregister(&mut self, id: ConnId, nick: Option<&str>) {
        let Some(nick) = nick.or(self.nick(id)).map(String::from) else {
            return;
        };
        let Some(owner) = self.moderation.registrations.owner(&nick).map(String::from) else {
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
        let Some(removed) = self.moderation.registrations.remove(&nick) else {
            return;
        };
        if let Err(text) = self.save(StateFile::Registrations) {
            self.moderation
                .registrations
                .insert(&removed.nick, &removed.owner);
            return self.reply_error(id, ErrorCode::NotSaved, &text);
        }
        if self.identity(id) == Some(&owner) {
            log!("registration: {} unregistered", removed.nick);
        } else {
            log!(
                "moderation: {} unregistered {} (was {})",
                self.who(id),
                removed.nick,
                short_fingerprint(&owner)
            );
        }
        let text = format!(
            "{} {} is free for anyone",
            notice::UNREGISTERED,
            removed.nick
        );
        self.reply(id, &["NOTICE", &text]);
    }

    /// `WHOIS <nick> <online|offline> <registered|unregistered> <operator|user>
    /// <fingerprint|no-identity> [address]`: for operators the whole fingerprint and, for someone
    /// online, the address; a short fingerprint for others.
    fn whois(&mut self, id: ConnId, nick: &str) {
        let asker_is_operator = self.is_operator(id);
        let show = |fp: &str| {
            if asker_is_operator {
                fp.to_string()
            } else {
                short_fingerprint(fp).to_string()
            }
        };
        let registration = self.moderation.registrations.get(nick);
        let online = self.by_nick.get(&nick_key(nick)).copied();
        let (name, identity, online) = match (online, registration) {
            (Some(conn), _) => (
                self.nick(conn).unwrap_or(nick).to_string(),
                self.identity(conn).map(String::from),
                Some(conn),
            ),
            (None, Some(r)) => (r.nick.to_string(), Some(r.owner.to_string()), None),
            (None, None) => return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(nick)),
        };
        // Operators also see the address (to ban it when the identity is not enough).
        let address = online
            .filter(|_| asker_is_operator)
            .and_then(|conn| self.peer(conn))
            .map(|p| p.addr.ip().to_canonical().to_string());
        let registered = registration.is_some();
        let operator = self.moderation.operators.contains(identity.as_deref());
        let fingerprint = identity.as_deref().map_or("no-identity".into(), show);
        let mut words = vec![
            "WHOIS",
            &name,
            if online.is_some() {
                "online"
            } else {
                "offline"
            },
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
        let found = self.by_nick.get(&nick_key(nick)).copied();
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
        let text = match &reason {
            Some(reason) => format!("{by} kicked you: {reason}"),
            None => format!("{by} kicked you"),
        };
        self.reply_error(target, ErrorCode::Kicked, &text);
        self.close(target, CloseReason::Kicked { by, reason });
    }

    fn ban(&mut self, id: ConnId, what: &str, minutes: Option<u64>, reason: Option<&str>) {
        // A nickname first: `1.2.3.4` is a valid one, and the user called that is who is meant.
        let online = self.by_nick.get(&nick_key(what)).copied();
        let (target, nick) = if let Some(conn) = online {
            let Some(peer) = self.peer(conn) else {
                return;
            };
            let target = Target::of(peer.identity.as_deref(), peer.addr.ip());
            (target, self.nick(conn).map(Box::<str>::from))
        } else if let Some(r) = self.moderation.registrations.get(what) {
            (Target::Identity(r.owner.clone()), Some(r.nick.clone()))
        } else if let Some(target) = Target::parse(what) {
            (target, None)
        } else {
            return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(what));
        };
        if let Target::Identity(fp) = &target {
            if self.moderation.operators.contains(Some(fp)) {
                return self.reply(id, &["NOTICE", notice::OPERATORS_NOT_BANNED]);
            }
        }
        let now = unix_seconds();
        let ban = Ban {
            target,
            until: minutes.map(|m| now + m * 60),
            set_at: now,
            by: self.nick(id).unwrap_or_default().into(),
            nick,
            reason: reason.map(clean_text).unwrap_or_default().into(),
        };
        let before = self.moderation.bans.clone();
        self.moderation.bans.expire(now);
        self.moderation.bans.add(ban.clone());
        if let Err(text) = self.save(StateFile::Bans) {
            self.moderation.bans = before;
            return self.reply_error(id, ErrorCode::NotSaved, &text);
        }
        let named = ban
            .nick
            .as_deref()
            .map_or(String::new(), |n| format!(" ({n})"));
        log!(
            "moderation: {} banned {}{named} {}",
            self.who(id),
            ban.target.describe(),
            until_text(ban.until)
        );
        let closed = self.close_banned(&ban);
        let text = format!(
            "{} {}{named} {}; {closed} connections closed",
            notice::BANNED,
            ban.target.describe(),
            until_text(ban.until)
        );
        self.reply(id, &["NOTICE", &text]);
    }

    /// Closes every connection a new ban keeps out: those in the room are kicked (the room gets
    /// `KICK`), the others refused. Returns how many.
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
        closed
    }

    fn unban(&mut self, id: ConnId, what: &str) {
        let before = self.moderation.bans.clone();
        // As for /ban, a nickname first (bans made from it, or on its owner's identity), then an
        // address or a fingerprint.
        let key = nick_key(what);
        let owner = self
            .moderation
            .registrations
            .owner(what)
            .map(|fp| Target::Identity(fp.into()));
        let mut lifted = self.moderation.bans.remove_where(|b| {
            b.nick.as_deref().is_some_and(|n| nick_key(n) == key)
                || owner.as_ref() == Some(&b.target)
        });
        if let (0, Some(target)) = (lifted, Target::parse(what)) {
            lifted = self.moderation.bans.remove_where(|b| b.target == target);
        }
        if lifted == 0 {
            let text = format!("no ban matches {}", clean_text(what));
            return self.reply_error(id, ErrorCode::NoSuchBan, &text);
        }
        if let Err(text) = self.save(StateFile::Bans) {
            self.moderation.bans = before;
            return self.reply_error(id, ErrorCode::NotSaved, &text);
        }
        log!("moderation: {} lifted {lifted} bans ({what})", self.who(id));
        let text = format!("{} {lifted} bans lifted", notice::UNBANNED);
        self.reply(id, &["NOTICE", &text]);
    }

    fn list_bans(&mut self, id: ConnId) {
        let now = unix_seconds();
        let lines: Vec<String> = self
            .moderation
            .bans
            .iter()
            .filter(|b| b.active(now))
            .map(|b| {
                let named = b
                    .nick
                    .as_deref()
                    .map_or(String::new(), |n| format!(" ({n})"));
                let reason = if b.reason.is_empty() {
                    String::new()
                } else {
                    format!(": {}", b.reason)
                };
                format!(
                    "{} {}{named} {}, by {}{reason}",
                    notice::BAN,
                    b.target.describe(),
                    until_text(b.until),
                    b.by
                )
            })
            .collect();
        let count = format!("{} {}", notice::BANS, lines.len());
        self.reply(id, &["NOTICE", &count]);
        for line in lines {
            self.reply(id, &["NOTICE", &line]);
        }
    }

    fn mute(&mut self, id: ConnId, nick: &str, minutes: Option<u64>) {
        let Some(target) = self.member(id, nick) else {
            return;
        };
        if self.is_operator(target) {
            return self.reply(id, &["NOTICE", notice::OPERATORS_NOT_MUTED]);
        }
        let Some(peer) = self.peer(target) else {
            return;
        };
        let name = self.nick(target).unwrap_or(nick).to_string();
        let mute = Mute {
            target: Target::of(peer.identity.as_deref(), peer.addr.ip()),
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
        let how_long = minutes.map_or("until unmuted".into(), |m| format!("for {m} minutes"));
        let text = format!("{} {name} {how_long}", notice::MUTED);
        self.reply(id, &["NOTICE", &text]);
    }

    fn unmute(&mut self, id: ConnId, nick: &str) {
        let key = nick_key(nick);
        let online = self.by_nick.get(&key).and_then(|&conn| {
            let peer = self.peer(conn)?;
            Some((peer.identity.clone(), peer.addr.ip()))
        });
        let lifted = self.moderation.mutes.remove_where(|m| {
            nick_key(&m.nick) == key
                || online
                    .as_ref()
                    .is_some_and(|(identity, ip)| m.target.matches(identity.as_deref(), *ip))
        });
        if lifted == 0 {
            let text = format!("{} is not muted", clean_text(nick));
            return self.reply_error(id, ErrorCode::NoSuchBan, &text);
        }
        log!("moderation: {} unmuted {nick}", self.who(id));
        let text = format!("{} {}", notice::UNMUTED, clean_text(nick));
        self.reply(id, &["NOTICE", &text]);
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
        Some(at) => format!(
            "until {}",
            utc_timestamp(UNIX_EPOCH + Duration::from_secs(at))
        ),
        None => "until lifted".into(),
    }
}

/// Whole minutes, rounded up.
fn minutes_up(wait: Duration) -> u64 {
    wait.as_secs().div_ceil(60).max(1)
}
