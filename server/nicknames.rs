//! The registry of nicknames in use: who is in the chat under which name, found by the name's
//! key (`nick_key`: case and look-alike letters make one name). Users away keep theirs in
//! `sessions.rs`; registered ones are in `moderation.rs`.

use std::collections::HashMap;

use charla_proto::nick_key;

use crate::outbox::ConnId;

#[derive(Default)]
pub struct Nicknames {
    by_key: HashMap<String, ConnId>,
}

impl Nicknames {
    /// The connection using the nickname with this key.
    pub fn holder(&self, key: &str) -> Option<ConnId> {
        self.by_key.get(key).copied()
    }

    /// The connection using `nick` (as a person types it).
    pub fn find(&self, nick: &str) -> Option<ConnId> {
        self.holder(&nick_key(nick))
    }

    pub fn insert(&mut self, key: String, id: ConnId) {
        self.by_key.insert(key, id);
    }

    pub fn remove(&mut self, key: &str) {
        self.by_key.remove(key);
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}
