//! Sessions of clients that asked for them (`/resume`): a token that lets a client whose
//! connection dropped come back as the same user within `--resume-window`, with its nickname kept
//! and the private messages sent to it meanwhile held. No I/O.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

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
    /// The connection using it; `None` while the user is away.
    pub conn: Option<ConnId>,
    /// While away: when the nickname and the held messages are given up.
    pub away_until: Option<Instant>,
    /// Sent while the user was away, never delivered.
    pub held: Vec<Held>,
    held_bytes: usize,
    /// Sent (or replayed) to the user, perhaps never received.
    recent: VecDeque<Held>,
    /// The nickname key it is held under while away.
    away_key: Option<String>,
}

#[derive(Default)]
pub struct Sessions {
    by_token: HashMap<Box<str>, Session>,
    /// Nickname key → token, for users who are away.
    away_by_nick: HashMap<String, Box<str>>,
    /// When sessions of users who went away expire, soonest first; stale entries (the user came
    /// back, or went away again later) are skipped.
    expiries: Deadlines<Box<str>>,
}

impl Session {
    fn remember(&mut self, message: Held) {
        self.recent.push_back(message);
        let mut bytes: usize = self.recent.iter().map(|m| m.line.len()).sum();
        while self.recent.len() > MAX_RECENT_MESSAGES || bytes > MAX_RECENT_BYTES {
            match self.recent.pop_front() {
                Some(old) => bytes -= old.line.len(),
                None => break,
            }
        }
    }
}

impl Sessions {
    pub fn start(&mut self, token: Box<str>, author: u64, nick: &str, conn: ConnId) {
        self.by_token.insert(
            token,
            Session {
                author,
                nick: nick.into(),
                conn: Some(conn),
                away_until: None,
                held: Vec::new(),
                held_bytes: 0,
                recent: VecDeque::new(),
                away_key: None,
            },
        );
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

    /// The user's connection is gone: the session waits for it until `until`.
    pub fn go_away(&mut self, token: &str, nick_key: String, until: Instant) {
        if let Some(session) = self.by_token.get_mut(token) {
            session.conn = None;
            session.away_until = Some(until);
            session.away_key = Some(nick_key.clone());
            self.away_by_nick.insert(nick_key, token.into());
            self.expiries.push(until, token.into());
        }
    }

    /// The user is back on `conn`, having every line up to id `last`: its nickname is no longer
    /// held by the away list (the caller puts it in the room), and the private messages it may
    /// not have, in id order, are handed over (they stay recent until a later return covers
    /// them).
    pub fn come_back(&mut self, token: &str, conn: ConnId, last: u64) -> Vec<Held> {
        let Some(session) = self.by_token.get_mut(token) else {
            return Vec::new();
        };
        session.conn = Some(conn);
        session.away_until = None;
        session.held_bytes = 0;
        if let Some(key) = session.away_key.take() {
            self.away_by_nick.remove(&key);
        }
        session.recent.retain(|m| m.id > last);
        for held in std::mem::take(&mut session.held) {
            session.remember(held);
        }
        let mut missed: Vec<Held> = session.recent.iter().cloned().collect();
        missed.sort_by_key(|m| m.id);
        missed
    }

    /// A private message was sent to the user with this session.
    pub fn sent(&mut self, token: &str, message: Held) {
        if let Some(session) = self.by_token.get_mut(token) {
            session.remember(message);
        }
    }

    pub fn end(&mut self, token: &str) {
        if let Some(key) = self.by_token.remove(token).and_then(|s| s.away_key) {
            self.away_by_nick.remove(&key);
        }
    }

    /// Holds a private message for an away user; false when too much already waits.
    pub fn hold(&mut self, token: &str, held: Held) -> bool {
        let Some(session) = self.by_token.get_mut(token) else {
            return false;
        };
        if session.held.len() >= MAX_HELD_MESSAGES
            || session.held_bytes + held.line.len() > MAX_HELD_BYTES
        {
            return false;
        }
        session.held_bytes += held.line.len();
        session.held.push(held);
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
                if let Some(mut session) = self.by_token.remove(&token) {
                    if let Some(key) = session.away_key.take() {
                        self.away_by_nick.remove(&key);
                    }
                    gone.push(session);
                }
            }
        }
        gone
    }

    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiries.next()
    }
}
