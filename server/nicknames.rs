//! The registry of nicknames: who is in the chat under which name, and which names are
//! registered to an identity (a client certificate's fingerprint), each found by the name's key
//! (`nick_key`: case and look-alike letters make one name). Users away keep theirs in their
//! session (`sessions.rs`), which expires with it; the files the registrations are kept in
//! (`--state-dir`) are `moderation.rs`'s, and changes to them go through the chat's moderation
//! (`chat_moderation.rs`: written off the loop, undone if the disk refuses them).

use std::collections::HashMap;

use charla_proto::nick_key;

use crate::moderation::Registrations;
use crate::outbox::ConnId;

#[derive(Default)]
pub struct Nicknames {
    by_key: HashMap<String, ConnId>,
    /// Nicknames registered to an identity, whether their owner is here or not.
    pub registered: Registrations,
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
