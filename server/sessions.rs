//! Sessions of clients that asked for them (`/resume`): a token that lets a client whose
//! connection dropped come back as the same user within `--resume-window`, with its nickname kept
//! and the private messages sent to it meanwhile held. No I/O.
//!
//! What they may hold is bounded: sessions parked while their user is away count against the
//! server's places (the chat core gives up the oldest when a live connection needs one), against
//! `--max-away` in all and `--max-away-per-ip` per address; the messages held for them and kept
//! in case a connection was already dead are at most `--max-held-bytes` in all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

use crate::address::PerAddress;
use crate::deadlines::Deadlines;
use crate::outbox::ConnId;

/// Most private messages held for one user who is away, and their bytes.
pub const MAX_HELD_MESSAGES: usize = 100;
pub const MAX_HELD_BYTES: usize = 64 << 10;
/// The latest private messages sent to a user with a session, kept in case its connection was
/// already dead (the server finds out only later) or drops while they are replayed.
const MAX_RECENT_MESSAGES: usize = 20;
const MAX_RECENT_BYTES: usize = 8 << 10;

/// A private message to a user with a session.
#[derive(Clone)]
pub struct Held {
    /// From the same sequence as public lines, so that the client's last id covers it.
    pub id: u64,
    /// Seconds since the Unix epoch when it was sent.
    pub at: u64,
    /// `PRIVMSG <from> <text>`, without `\n`.
    pub line: Box<str>,
    /// Who sent it (connection and its serial), to be told if it is never delivered.
    pub sender: (ConnId, u64),
}

pub struct Session {
    /// Stands for this user's lines in the history, across connections.
    pub author: u64,
    pub nick: Box<str>,
    /// The client certificate's fingerprint it was started with, if any: only a connection
    /// with the same identity may come back to it.
    pub identity: Option<Box<str>>,
    /// The address key (`address_key`) of its latest connection.
    pub address: IpAddr,
    /// The connection using it; `None` while the user is away.
    pub conn: Option<ConnId>,
    /// While away: when the nickname and the held messages are given up.
    pub away_until: Option<Instant>,
    /// Sent while the user was away, never delivered.
    pub held: Vec<Held>,
    held_bytes: usize,
    /// Sent (or replayed) to the user, perhaps never received.
    recent: VecDeque<Held>,
    /// The highest id the client said it has (`/resume <token> <last id>`): nothing up to it is
    /// replayed again, whatever a later `/resume` says.
    acked: u64,
    /// The nickname key it is held under while away, and its place in the order of going away.
    away: Option<(String, u64)>,
    /// The rooms its user was in when it went away (at most --max-rooms-per-user), by key and
    /// incarnation: it comes back into those very rooms, not into others that took their names.
    pub rooms: Vec<(Box<str>, u64)>,
}

impl Session {
    fn recent_bytes(&self) -> usize {
        self.recent.iter().map(|m| m.line.len()).sum()
    }
}

#[derive(Default)]
pub struct Sessions {
    by_token: HashMap<Box<str>, Session>,
    /// Nickname key → token, for users who are away.
    away_by_nick: HashMap<String, Box<str>>,
    /// When sessions of users who went away expire, soonest first; stale entries (the user came
    /// back, or went away again later) are skipped.
    expiries: Deadlines<Box<str>>,
    /// Users away, in the order they went: the oldest is given up first.
    away_order: BTreeMap<u64, Box<str>>,
    next_away: u64,
    /// Users away per address key.
    away_per_address: PerAddress,
    /// The token a session had before its latest return → its token now, and the address that
    /// came back with it: a client cut off again before it read its new token may still use the
    /// old one, from there only.
    previous: HashMap<Box<str>, (Box<str>, IpAddr)>,
    /// Bytes of private messages held or kept as recent, all sessions together.
    bytes: usize,
    /// --max-held-bytes (zero until set: nothing is held).
    max_held_bytes: usize,
}

impl Sessions {
    /// The most bytes of messages held and kept, all sessions together (--max-held-bytes).
    pub fn set_max_held_bytes(&mut self, max: usize) {
        self.max_held_bytes = max;
    }

    pub fn start(
        &mut self,
        token: Box<str>,
        author: u64,
        nick: &str,
        conn: ConnId,
        identity: Option<&str>,
        address: IpAddr,
    ) {
        self.by_token.insert(
            token,
            Session {
                author,
                nick: nick.into(),
                identity: identity.map(Into::into),
                address,
                conn: Some(conn),
                away_until: None,
                held: Vec::new(),
                held_bytes: 0,
                recent: VecDeque::new(),
                acked: 0,
                away: None,
                rooms: Vec::new(),
            },
        );
    }

    /// The token a client coming back from `address` with `token` means: the session's token,
    /// or, from the address that last came back, the one before it.
    pub fn resolve(&self, token: &str, address: IpAddr) -> Option<Box<str>> {
        if self.by_token.contains_key(token) {
            return Some(token.into());
        }
        match self.previous.get(token) {
            Some((current, from)) if *from == address => Some(current.clone()),
            _ => None,
        }
    }

    pub fn get(&self, token: &str) -> Option<&Session> {
        self.by_token.get(token)
    }

    pub fn get_mut(&mut self, token: &str) -> Option<&mut Session> {
        self.by_token.get_mut(token)
    }

    /// The token of the away user holding this nickname (by key).
    pub fn away_holder(&self, nick_key: &str) -> Option<&str> {
        self.away_by_nick.get(nick_key).map(|t| &**t)
    }

    /// Users away, in all and from one address key.
    pub fn away_count(&self) -> usize {
        self.away_order.len()
    }

    pub fn away_from(&self, address: IpAddr) -> usize {
        self.away_per_address.count(address)
    }

    /// The user's connection is gone: the session waits for it until `until`.
    pub fn go_away(&mut self, token: &str, nick_key: String, until: Instant) {
        let Some(session) = self.by_token.get_mut(token) else {
            return;
        };
        session.conn = None;
        session.away_until = Some(until);
        self.next_away += 1;
        session.away = Some((nick_key.clone(), self.next_away));
        self.away_per_address.add(session.address);
        self.away_order.insert(self.next_away, token.into());
        self.away_by_nick.insert(nick_key, token.into());
        self.expiries.push(until, token.into());
    }

    /// Takes a session out of the away lists (it came back, ended or is given up).
    fn not_away(&mut self, token: &str) {
        let Some(session) = self.by_token.get_mut(token) else {
            return;
        };
        session.away_until = None;
        if let Some((key, order)) = session.away.take() {
            self.away_by_nick.remove(&key);
            self.away_order.remove(&order);
            self.away_per_address.remove(session.address);
        }
    }

    /// The user is back on `conn`, having every line up to id `last`, under a new token (a token
    /// that was seen once, on a network someone watches or in a log, is worth nothing after
    /// this): its nickname is no longer held by the away list (the caller puts it in the room),
    /// and the private messages it may not have, in id order, are handed over (they stay recent
    /// until a later return covers them).
    pub fn come_back(
        &mut self,
        token: &str,
        new_token: Box<str>,
        conn: ConnId,
        address: IpAddr,
        last: u64,
    ) -> Vec<Held> {
        self.not_away(token);
        let Some(mut session) = self.by_token.remove(token) else {
            return Vec::new();
        };
        session.conn = Some(conn);
        session.address = address;
        session.acked = session.acked.max(last);
        let acked = session.acked;
        let before = session.held_bytes + session.recent_bytes();
        session.held_bytes = 0;
        session.recent.retain(|m| m.id > acked);
        let held = std::mem::take(&mut session.held);
        self.bytes -= before;
        self.bytes += session.recent_bytes();
        for message in held {
            self.remember(&mut session, message);
        }
        let mut missed: Vec<Held> = session.recent.iter().cloned().collect();
        missed.sort_by_key(|m| m.id);
        self.previous.retain(|_, (current, _)| **current != *token);
        if *new_token != *token {
            self.previous
                .insert(token.into(), (new_token.clone(), address));
        }
        self.by_token.insert(new_token, session);
        missed
    }

    /// Keeps a message sent (or replayed) to the session's user among its recent ones.
    fn remember(&mut self, session: &mut Session, message: Held) {
        let size = message.line.len();
        if self.bytes + size > self.max_held_bytes {
            // The server holds as much as it may for everyone: this one is only sent live.
            return;
        }
        self.bytes += size;
        session.recent.push_back(message);
        let mut bytes = session.recent_bytes();
        while session.recent.len() > MAX_RECENT_MESSAGES || bytes > MAX_RECENT_BYTES {
            match session.recent.pop_front() {
                Some(old) => {
                    bytes -= old.line.len();
                    self.bytes -= old.line.len();
                }
                None => break,
            }
        }
    }

    /// A private message was sent to the user with this session.
    pub fn sent(&mut self, token: &str, message: Held) {
        if let Some(mut session) = self.by_token.remove(token) {
            self.remember(&mut session, message);
            self.by_token.insert(token.into(), session);
        }
    }

    /// Ends a session (its user quit, was kicked or banned); returns it.
    pub fn end(&mut self, token: &str) -> Option<Session> {
        self.not_away(token);
        let session = self.by_token.remove(token)?;
        self.previous.retain(|_, (current, _)| **current != *token);
        self.bytes -= session.held_bytes + session.recent_bytes();
        Some(session)
    }

    /// Holds a private message for an away user; false when too much already waits (for that
    /// user, or for everyone together).
    pub fn hold(&mut self, token: &str, held: Held) -> bool {
        let total = self.bytes;
        let Some(session) = self.by_token.get_mut(token) else {
            return false;
        };
        let size = held.line.len();
        if session.held.len() >= MAX_HELD_MESSAGES
            || session.held_bytes + size > MAX_HELD_BYTES
            || total + size > self.max_held_bytes
        {
            return false;
        }
        session.held_bytes += size;
        session.held.push(held);
        self.bytes += size;
        true
    }

    /// Sessions whose user did not come back by `now`, removed.
    pub fn expire(&mut self, now: Instant) -> Vec<Session> {
        let mut gone = Vec::new();
        while let Some((at, token)) = self.expiries.pop_due(now) {
            let due = self
                .by_token
                .get(&token)
                .is_some_and(|s| s.conn.is_none() && s.away_until == Some(at));
            if due {
                gone.extend(self.end(&token));
            }
        }
        gone
    }

    /// Gives up the session of the user who has been away longest (from `address`, if given),
    /// to make room.
    pub fn give_up_oldest(&mut self, address: Option<IpAddr>) -> Option<Session> {
        let token = self
            .away_order
            .values()
            .find(|token| {
                address.is_none_or(|a| self.by_token.get(&***token).is_some_and(|s| s.address == a))
            })?
            .clone();
        self.end(&token)
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.next()
    }

    /// Bytes of messages held or kept, all sessions together.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn held(id: u64, text: &str) -> Held {
        Held {
            id,
            at: 0,
            line: format!("PRIVMSG bob {text}").into(),
            sender: (9, 1),
        }
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn held_bytes_are_bounded_for_everyone_together() {
        let mut s = Sessions::default();
        s.set_max_held_bytes(100);
        let now = Instant::now();
        for (n, token) in ["a", "b"].into_iter().enumerate() {
            s.start(token.into(), n as u64, token, n, None, HOME);
            s.go_away(token, token.into(), now + Duration::from_secs(60));
        }
        assert!(s.hold("a", held(1, &"x".repeat(50))));
        assert!(!s.hold("b", held(2, &"y".repeat(50))), "over the total");
        assert!(s.hold("b", held(3, "hola")));
        let before = s.bytes();
        s.end("a");
        assert!(s.bytes() < before);
        assert_eq!(s.away_count(), 1);
        assert_eq!(s.away_from(HOME), 1);
    }

    #[test]
    fn coming_back_changes_the_token_and_never_replays_what_was_acknowledged() {
        let mut s = Sessions::default();
        s.set_max_held_bytes(1 << 20);
        let now = Instant::now();
        s.start("t1".into(), 1, "ana", 1, None, HOME);
        s.sent("t1", held(10, "uno"));
        s.sent("t1", held(20, "dos"));
        s.go_away("t1", "ana".into(), now + Duration::from_secs(60));
        let missed = s.come_back("t1", "t2".into(), 2, HOME, 10);
        assert_eq!(missed.iter().map(|m| m.id).collect::<Vec<_>>(), [20]);
        assert!(s.get("t1").is_none());
        // The old token means the session only from the address that came back with it.
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));
        assert_eq!(s.resolve("t1", elsewhere), None);
        assert_eq!(s.resolve("t1", HOME).as_deref(), Some("t2"));
        s.go_away("t2", "ana".into(), now + Duration::from_secs(60));
        // Whoever comes back with an older last id does not get "dos" again... nor "uno".
        let missed = s.come_back("t2", "t3".into(), 3, HOME, 0);
        assert_eq!(missed.iter().map(|m| m.id).collect::<Vec<_>>(), [20]);
        s.go_away("t3", "ana".into(), now + Duration::from_secs(60));
        let missed = s.come_back("t3", "t4".into(), 4, HOME, 20);
        assert!(missed.is_empty());
        assert_eq!(s.resolve("t2", HOME), None, "only the one before is kept");
        let missed = s.come_back("t4", "t5".into(), 5, HOME, 0);
        assert!(missed.is_empty(), "20 was acknowledged");
    }

    #[test]
    fn the_oldest_away_user_is_given_up_first() {
        let mut s = Sessions::default();
        s.set_max_held_bytes(1 << 20);
        let now = Instant::now();
        let elsewhere = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));
        for (n, (token, at)) in [("a", HOME), ("b", elsewhere), ("c", HOME)]
            .into_iter()
            .enumerate()
        {
            s.start(token.into(), n as u64, token, n, None, at);
            s.go_away(token, token.into(), now + Duration::from_secs(60));
        }
        assert_eq!(&*s.give_up_oldest(Some(elsewhere)).unwrap().nick, "b");
        assert_eq!(&*s.give_up_oldest(None).unwrap().nick, "a");
        assert_eq!(s.away_count(), 1);
        assert!(s.away_holder("a").is_none());
    }
}
