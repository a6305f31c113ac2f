//! Rooms: their names, who owns and runs each, topics, invitations and bans — the rules of
//! docs/protocol.md's "Rooms", without I/O. Who is in a room is the outbox's (it delivers their
//! lines); this module decides who may join, speak for and run a room.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use charla_proto::{room_key, validate_room, ErrorCode};

use crate::moderation::Target;
pub use crate::outbox::RoomId;

/// The longest topic kept, in bytes (cut at a character boundary).
pub const MAX_TOPIC_BYTES: usize = 300;
/// Invitations a room keeps (the oldest go first).
const MAX_INVITATIONS: usize = 100;
/// What one room keeps, and the room bans of all rooms together: the rooms file is written whole
/// (on the event loop's thread, formatted), so it must stay small — a thousand rooms at these
/// bounds are about 3 MB of text.
pub const MAX_ROOM_BANS: usize = 100;
pub const MAX_ROOM_OPERATORS: usize = 20;
pub const MAX_ROOM_BANS_TOTAL: usize = 10_000;

pub struct Room {
    /// As it was made (`#Tareas`); its key makes it unique.
    pub name: Box<str>,
    pub key: Box<str>,
    /// Invite-only, and listed only to its members.
    pub private: bool,
    pub topic: Option<Topic>,
    /// The identity that made it. None: the default room or one the config declares, run by
    /// the server's operators.
    pub owner: Option<Box<str>>,
    /// Identities the owner made room operators.
    pub operators: BTreeSet<Box<str>>,
    /// Who is invited in, until they join: the nickname key, and the identity the invitee had
    /// (then only that identity may use it).
    invited: VecDeque<(String, Option<Box<str>>)>,
    bans: Vec<RoomBan>,
    /// Who may not speak in it, until when (unix seconds; None: until lifted). In memory only,
    /// as the server's mutes.
    mutes: Vec<(Target, Option<u64>)>,
    /// The default room and those the config declares always exist.
    pub permanent: bool,
    /// This room, as opposed to an earlier one of the same name that is gone: a session comes
    /// back only into the very room it was in.
    pub incarnation: u64,
    /// The newest history line id when it was made: lines of an earlier room of the same name
    /// (a private one, perhaps) are never replayed in it. 0 for a room that always existed.
    pub history_after: u64,
    /// Its lines in the rooms file, kept until it changes: the file is written whole, and a
    /// thousand rooms formatted anew each time would cost the event loop milliseconds.
    saved_text: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub text: Box<str>,
    pub by: Box<str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoomBan {
    pub target: Target,
    /// Unix seconds; None: until lifted.
    pub until: Option<u64>,
    /// The nickname it was made from, if it was.
    pub nick: Option<Box<str>>,
}

impl RoomBan {
    fn active(&self, now: u64) -> bool {
        self.until.is_none_or(|until| now < until)
    }
}

/// Who asks, as far as the rules need to know.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub identity: Option<&'a str>,
    pub ip: IpAddr,
    pub nick_key: &'a str,
    pub server_operator: bool,
}

/// Why a room command is refused: the code of its `ERROR` line and the words for people.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub code: ErrorCode,
    pub text: String,
}

fn refused(code: ErrorCode, text: impl Into<String>) -> Refused {
    Refused {
        code,
        text: text.into(),
    }
}

/// The limits that bound the rooms (flags; see `config.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rooms on the server, the permanent ones included.
    pub max_rooms: usize,
    /// Rooms one identity may own.
    pub max_owned: usize,
}

pub struct Rooms {
    rooms: Vec<Option<Room>>,
    by_key: HashMap<Box<str>, RoomId>,
    free: Vec<RoomId>,
    default: RoomId,
    /// Rooms owned, per identity.
    owned: HashMap<Box<str>, usize>,
    /// Room bans, all rooms together.
    bans: usize,
    next_incarnation: u64,
}

/// The name a person types, `#` added when it is missing (`--default-room general`).
pub fn with_hash(name: &str) -> String {
    if name.starts_with('#') {
        name.to_string()
    } else {
        format!("#{name}")
    }
}

impl Rooms {
    /// The rooms of a server whose default room is `default` (a valid name: the config checks).
    pub fn new(default: &str) -> Rooms {
        let mut rooms = Rooms {
            rooms: Vec::new(),
            by_key: HashMap::new(),
            free: Vec::new(),
            default: 0,
            owned: HashMap::new(),
            bans: 0,
            next_incarnation: 0,
        };
        rooms.default = rooms.insert(&with_hash(default), false, None, true);
        rooms
    }

    pub fn default_room(&self) -> RoomId {
        self.default
    }

    pub fn get(&self, id: RoomId) -> Option<&Room> {
        self.rooms.get(id)?.as_ref()
    }

    /// The room, to be changed: its saved text is made again when next needed.
    fn get_mut(&mut self, id: RoomId) -> Option<&mut Room> {
        let room = self.rooms.get_mut(id)?.as_mut()?;
        room.saved_text = None;
        Some(room)
    }

    /// The room's name, or "" for a room that is gone.
    pub fn name(&self, id: RoomId) -> &str {
        self.get(id).map_or("", |r| &r.name)
    }

    /// Rooms on the server.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (RoomId, &Room)> {
        self.rooms
            .iter()
            .enumerate()
            .filter_map(|(id, r)| Some((id, r.as_ref()?)))
    }

    /// The room whose key is `key`.
    pub fn by_key(&self, key: &str) -> Option<RoomId> {
        self.by_key.get(key).copied()
    }

    /// The room called `name`: a name that is not one, or no such room, is refused.
    pub fn find(&self, name: &str) -> Result<RoomId, Refused> {
        validate_room(name).map_err(|e| refused(ErrorCode::BadRoomName, e.to_string()))?;
        self.by_key
            .get(room_key(name).as_str())
            .copied()
            .ok_or_else(|| refused(ErrorCode::NoSuchRoom, format!("there is no room {name}")))
    }

    fn insert(
        &mut self,
        name: &str,
        private: bool,
        owner: Option<&str>,
        permanent: bool,
    ) -> RoomId {
        let key: Box<str> = room_key(name).into();
        let room = Room {
            name: name.into(),
            key: key.clone(),
            private,
            topic: None,
            owner: owner.map(Into::into),
            operators: BTreeSet::new(),
            invited: VecDeque::new(),
            bans: Vec::new(),
            mutes: Vec::new(),
            permanent,
            saved_text: None,
            incarnation: self.next_incarnation,
            history_after: 0,
        };
        self.next_incarnation += 1;
        if let Some(owner) = owner {
            *self.owned.entry(owner.into()).or_default() += 1;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.rooms[id] = Some(room);
                id
            }
            None => {
                self.rooms.push(Some(room));
                self.rooms.len() - 1
            }
        };
        self.by_key.insert(key, id);
        id
    }

    /// A room the config declares: it always exists, open, run by the server's operators.
    pub fn declare(&mut self, name: &str) -> Result<RoomId, Refused> {
        validate_room(name).map_err(|e| refused(ErrorCode::BadRoomName, e.to_string()))?;
        if let Ok(id) = self.find(name) {
            if let Some(room) = self.get_mut(id) {
                room.permanent = true;
            }
            return Ok(id);
        }
        Ok(self.insert(name, false, None, true))
    }

    /// Makes a room for `who`, who becomes its owner. Only a user with an identity (a client
    /// certificate) may: a room is run by its owner's identity. `history_after`: the newest
    /// history line id now (none of the lines kept so far are this room's).
    pub fn create(
        &mut self,
        name: &str,
        private: bool,
        who: &Who,
        limits: Limits,
        history_after: u64,
    ) -> Result<RoomId, Refused> {
        validate_room(name).map_err(|e| refused(ErrorCode::BadRoomName, e.to_string()))?;
        if self.by_key.contains_key(room_key(name).as_str()) {
            return Err(refused(
                ErrorCode::RoomExists,
                format!("{name} exists already"),
            ));
        }
        let Some(owner) = who.identity else {
            return Err(refused(
                ErrorCode::NoIdentity,
                "making a room needs an identity (a client certificate): the room is yours by it",
            ));
        };
        if self.len() >= limits.max_rooms {
            return Err(refused(
                ErrorCode::TooManyRooms,
                format!("the server holds at most {} rooms", limits.max_rooms),
            ));
        }
        if !who.server_operator && self.owned(owner) >= limits.max_owned {
            return Err(refused(
                ErrorCode::TooManyRooms,
                format!("one identity owns at most {} rooms", limits.max_owned),
            ));
        }
        let id = self.insert(name, private, Some(owner), false);
        if let Some(r) = self.rooms[id].as_mut() {
            r.history_after = history_after;
        }
        Ok(id)
    }

    /// Rooms `identity` owns.
    pub fn owned(&self, identity: &str) -> usize {
        self.owned.get(identity).copied().unwrap_or(0)
    }

    /// Whether `who` runs `room`: a server operator, its owner or one of its operators.
    pub fn is_room_operator(&self, room: RoomId, who: &Who) -> bool {
        let Some(r) = self.get(room) else {
            return false;
        };
        who.server_operator
            || who
                .identity
                .is_some_and(|me| r.owner.as_deref() == Some(me) || r.operators.contains(me))
    }

    /// Whether `who` runs the room; if not, the refusal.
    pub fn must_run(&self, room: RoomId, who: &Who) -> Result<(), Refused> {
        if self.is_room_operator(room, who) {
            return Ok(());
        }
        Err(refused(
            ErrorCode::NotRoomOperator,
            format!("only the operators of {} may", self.name(room)),
        ))
    }

    /// Whether `who` may come into `room` now (`now`: the wall clock, for bans that end).
    pub fn may_join(&self, room: RoomId, who: &Who, now: u64) -> Result<(), Refused> {
        let Some(r) = self.get(room) else {
            return Err(refused(ErrorCode::NoSuchRoom, "that room is gone"));
        };
        if self.is_room_operator(room, who) {
            return Ok(());
        }
        let banned = r
            .bans
            .iter()
            .any(|b| b.active(now) && b.target.matches(who.identity, who.ip));
        if banned {
            return Err(refused(
                ErrorCode::BannedFromRoom,
                format!("you are banned from {}", r.name),
            ));
        }
        let invited = r.invited.iter().any(|(k, identity)| {
            k == who.nick_key && identity.as_deref().is_none_or(|i| who.identity == Some(i))
        });
        if r.private && !invited {
            return Err(refused(
                ErrorCode::InviteOnly,
                format!("{} is private: someone in it must /invite you", r.name),
            ));
        }
        Ok(())
    }

    /// `who` came in: an invitation is used up.
    pub fn joined(&mut self, room: RoomId, who: &Who) {
        if let Some(r) = self.get_mut(room) {
            r.invited.retain(|(k, _)| k != who.nick_key);
        }
    }

    /// Sets the topic (or clears it, with None): room operators only.
    pub fn set_topic(
        &mut self,
        room: RoomId,
        who: &Who,
        by: &str,
        text: Option<&str>,
    ) -> Result<(), Refused> {
        self.must_run(room, who)?;
        if let Some(r) = self.get_mut(room) {
            r.topic = text.map(|text| Topic {
                text: charla_proto::cut_text(text, MAX_TOPIC_BYTES).into(),
                by: by.into(),
            });
        }
        Ok(())
    }

    /// Lets the user with nickname key `invitee` (and, if it has one, this identity) into a
    /// private room (room operators only); in an open room anyone in it may invite.
    pub fn invite(
        &mut self,
        room: RoomId,
        who: &Who,
        invitee: &str,
        identity: Option<&str>,
    ) -> Result<(), Refused> {
        if self.get(room).is_some_and(|r| r.private) {
            self.must_run(room, who)?;
        }
        if let Some(r) = self.get_mut(room) {
            r.invited.retain(|(k, _)| k != invitee);
            if r.invited.len() >= MAX_INVITATIONS {
                r.invited.pop_front();
            }
            r.invited
                .push_back((invitee.to_string(), identity.map(Into::into)));
        }
        Ok(())
    }

    /// Makes `identity` a room operator, or no longer one (the owner and server operators
    /// only). Returns whether anything changed.
    pub fn set_operator(
        &mut self,
        room: RoomId,
        who: &Who,
        identity: &str,
        on: bool,
    ) -> Result<bool, Refused> {
        self.must_own(room, who)?;
        let Some(r) = self.get_mut(room) else {
            return Err(refused(ErrorCode::NoSuchRoom, "that room is gone"));
        };
        if on && !r.operators.contains(identity) && r.operators.len() >= MAX_ROOM_OPERATORS {
            return Err(refused(
                ErrorCode::RoomLimit,
                format!("a room has at most {MAX_ROOM_OPERATORS} operators: /deop one first"),
            ));
        }
        Ok(if on {
            r.operators.insert(identity.into())
        } else {
            r.operators.remove(identity)
        })
    }

    /// Whether `who` may make the room's operators: its owner, or a server operator.
    pub fn must_own(&self, room: RoomId, who: &Who) -> Result<(), Refused> {
        let Some(r) = self.get(room) else {
            return Err(refused(ErrorCode::NoSuchRoom, "that room is gone"));
        };
        let owner = who.identity.is_some() && r.owner.as_deref() == who.identity;
        if owner || who.server_operator {
            return Ok(());
        }
        Err(refused(
            ErrorCode::NotRoomOperator,
            format!("only the owner of {} makes its operators", r.name),
        ))
    }

    /// Whether `identity` is one of the room's operators or its owner.
    pub fn runs(&self, room: RoomId, identity: Option<&str>) -> bool {
        let Some((r, me)) = self.get(room).zip(identity) else {
            return false;
        };
        r.owner.as_deref() == Some(me) || r.operators.contains(me)
    }

    /// Keeps `ban.target` out of the room (room operators only); replaces a ban on the same
    /// target.
    pub fn ban(&mut self, room: RoomId, who: &Who, ban: RoomBan, now: u64) -> Result<(), Refused> {
        self.must_run(room, who)?;
        let total = self.bans;
        let Some(r) = self.get_mut(room) else {
            return Ok(());
        };
        let before = r.bans.len();
        r.bans.retain(|b| b.active(now) && b.target != ban.target);
        let total = total - (before - r.bans.len());
        let full = if r.bans.len() >= MAX_ROOM_BANS {
            Some(format!(
                "a room keeps at most {MAX_ROOM_BANS} bans: /unban some first"
            ))
        } else if total >= MAX_ROOM_BANS_TOTAL {
            Some(format!(
                "the server keeps at most {MAX_ROOM_BANS_TOTAL} room bans in all"
            ))
        } else {
            r.bans.push(ban);
            None
        };
        self.bans = total + usize::from(full.is_none());
        match full {
            Some(text) => Err(refused(ErrorCode::RoomLimit, text)),
            None => Ok(()),
        }
    }

    /// Silences `target` in the room (room operators only) until `until`, replacing a mute on
    /// the same target.
    pub fn mute(
        &mut self,
        room: RoomId,
        who: &Who,
        target: Target,
        until: Option<u64>,
        now: u64,
    ) -> Result<(), Refused> {
        self.must_run(room, who)?;
        let Some(r) = self.rooms.get_mut(room).and_then(Option::as_mut) else {
            return Ok(());
        };
        r.mutes
            .retain(|(t, end)| *t != target && end.is_none_or(|end| now < end));
        if r.mutes.len() >= MAX_ROOM_BANS {
            return Err(refused(
                ErrorCode::RoomLimit,
                format!("a room keeps at most {MAX_ROOM_BANS} mutes: /unmute some first"),
            ));
        }
        r.mutes.push((target, until));
        Ok(())
    }

    /// Lifts the room's mute on `target`; returns whether there was one.
    pub fn unmute(&mut self, room: RoomId, who: &Who, target: &Target) -> Result<bool, Refused> {
        self.must_run(room, who)?;
        let Some(r) = self.rooms.get_mut(room).and_then(Option::as_mut) else {
            return Ok(false);
        };
        let before = r.mutes.len();
        r.mutes.retain(|(t, _)| t != target);
        Ok(r.mutes.len() < before)
    }

    /// Whether someone with this identity and address is silenced in the room now; if so, until
    /// when (None: until lifted).
    pub fn muted(
        &self,
        room: RoomId,
        identity: Option<&str>,
        ip: IpAddr,
        now: u64,
    ) -> Option<Option<u64>> {
        let r = self.get(room)?;
        r.mutes
            .iter()
            .find(|(t, end)| end.is_none_or(|end| now < end) && t.matches(identity, ip))
            .map(|(_, end)| *end)
    }

    /// Lifts the room's bans on `target`, or those made from the nickname `nick`; returns how
    /// many.
    pub fn unban(
        &mut self,
        room: RoomId,
        who: &Who,
        target: Option<&Target>,
        nick: &str,
    ) -> Result<usize, Refused> {
        self.must_run(room, who)?;
        let Some(r) = self.get_mut(room) else {
            return Ok(0);
        };
        let before = r.bans.len();
        let nick_key = charla_proto::nick_key(nick);
        r.bans.retain(|b| {
            Some(&b.target) != target
                && b.nick
                    .as_deref()
                    .is_none_or(|n| charla_proto::nick_key(n) != nick_key)
        });
        let lifted = before - r.bans.len();
        self.bans -= lifted;
        Ok(lifted)
    }

    /// The room has `members` left: one that is not permanent, and whose owner has no
    /// registered nickname (`owner_registered`), is gone with its last member. Returns whether it
    /// was removed.
    pub fn remove_if_unused(
        &mut self,
        room: RoomId,
        members: usize,
        owner_registered: bool,
    ) -> bool {
        let keep = self
            .get(room)
            .is_none_or(|r| r.permanent || members > 0 || owner_registered);
        if keep {
            return false;
        }
        let Some(r) = self.rooms[room].take() else {
            return false;
        };
        self.by_key.remove(&r.key);
        self.bans -= r.bans.len();
        if let Some(owner) = &r.owner {
            if let Some(n) = self.owned.get_mut(owner) {
                *n -= 1;
                if *n == 0 {
                    self.owned.remove(owner);
                }
            }
        }
        self.free.push(room);
        true
    }
}

/// The first line of `--state-dir`'s `rooms` file.
pub const ROOMS_HEADER: &str = "charla-rooms 1";

impl Rooms {
    /// The rooms that outlive a restart, as `--state-dir`'s `rooms` file holds them: every room
    /// but the default one that `keep` says should (a room with members, or whose owner has a
    /// registered nickname). One `room <name> <open|private> <owner|->` line each, then its
    /// `topic <by> <text>`, `op <fingerprint>` and `ban <identity|address> <value>
    /// <until|permanent> <nick|->` lines.
    #[cfg(test)]
    pub fn file_text(&mut self, keep: impl Fn(RoomId, &Room) -> bool) -> String {
        let parts = self.snapshot(keep);
        std::iter::once(format!("{ROOMS_HEADER}\n").as_str())
            .chain(parts.iter().map(|p| &**p))
            .collect()
    }

    /// The rooms file's content after its header, one part per room (see [`Rooms::file_text`]):
    /// only the rooms that changed since the last time are formatted again.
    pub fn snapshot(&mut self, keep: impl Fn(RoomId, &Room) -> bool) -> Vec<Arc<str>> {
        let default = self.default;
        let mut parts = Vec::new();
        for (id, slot) in self.rooms.iter_mut().enumerate() {
            let Some(r) = slot.as_mut() else {
                continue;
            };
            if id == default || !keep(id, r) {
                continue;
            }
            if r.saved_text.is_none() {
                r.saved_text = Some(room_text(r).into());
            }
            parts.extend(r.saved_text.clone());
        }
        parts
    }
}

/// One room's lines in the rooms file.
fn room_text(r: &Room) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    {
        let kind = if r.private { "private" } else { "open" };
        let owner = r.owner.as_deref().unwrap_or("-");
        let _ = writeln!(text, "room {} {kind} {owner}", r.name);
        if let Some(topic) = &r.topic {
            let _ = writeln!(text, "topic {} {}", topic.by, topic.text);
        }
        for op in &r.operators {
            let _ = writeln!(text, "op {op}");
        }
        for ban in &r.bans {
            let (kind, value) = ban.target.words();
            let until = ban.until.map_or("permanent".to_string(), |u| u.to_string());
            let nick = ban.nick.as_deref().unwrap_or("-");
            let _ = writeln!(text, "ban {kind} {value} {until} {nick}");
        }
    }
    text
}

impl Rooms {
    /// Puts back the rooms a `rooms` file holds (see [`Rooms::file_text`]); an error names the
    /// line. A room the config declares keeps what the file says of it (topic, operators).
    pub fn restore(&mut self, text: &str) -> Result<(), (usize, String)> {
        let mut lines = text.lines();
        if lines.next() != Some(ROOMS_HEADER) {
            return Err((1, format!("expected the header {ROOMS_HEADER:?}")));
        }
        let mut current: Option<RoomId> = None;
        for (i, line) in lines.enumerate() {
            let n = i + 2;
            let line = line.trim_end();
            if line.is_empty() || line.starts_with("# ") {
                continue;
            }
            let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
            let need_room = || current.ok_or((n, format!("'{word}' before any 'room' line")));
            match word {
                "room" => {
                    let mut words = rest.split(' ');
                    let (Some(name), Some(kind), Some(owner), None) =
                        (words.next(), words.next(), words.next(), words.next())
                    else {
                        return Err((n, "expected 'room <name> <open|private> <owner|->'".into()));
                    };
                    validate_room(name).map_err(|e| (n, format!("{name}: {e}")))?;
                    let private = match kind {
                        "open" => false,
                        "private" => true,
                        _ => return Err((n, format!("expected open or private, not {kind:?}"))),
                    };
                    let owner = (owner != "-").then_some(owner);
                    if owner.is_some_and(|o| charla_proto::normalize_fingerprint(o).is_none()) {
                        return Err((n, format!("{owner:?} is not a fingerprint")));
                    }
                    let id = match self.by_key(&room_key(name)) {
                        Some(id) if id == self.default => {
                            return Err((n, format!("{name} is the default room")))
                        }
                        Some(id) => {
                            let permanent = self.get(id).is_some_and(|r| r.permanent);
                            if !permanent {
                                return Err((n, format!("{name} is there twice")));
                            }
                            if let Some(r) = self.get_mut(id) {
                                r.private = private;
                            }
                            id
                        }
                        None => self.insert(name, private, owner, false),
                    };
                    current = Some(id);
                }
                "topic" => {
                    let id = need_room()?;
                    let (by, text) = rest
                        .split_once(' ')
                        .ok_or((n, "expected 'topic <by> <text>'".to_string()))?;
                    if let Some(r) = self.get_mut(id) {
                        r.topic = Some(Topic {
                            text: charla_proto::cut_text(text, MAX_TOPIC_BYTES).into(),
                            by: by.into(),
                        });
                    }
                }
                "op" => {
                    let id = need_room()?;
                    let fp = charla_proto::normalize_fingerprint(rest)
                        .ok_or((n, format!("{rest:?} is not a fingerprint")))?;
                    if let Some(r) = self.get_mut(id) {
                        if r.operators.len() < MAX_ROOM_OPERATORS {
                            r.operators.insert(fp.into());
                        }
                    }
                }
                "ban" => {
                    let id = need_room()?;
                    let mut words = rest.split(' ');
                    let (Some(kind), Some(value), Some(until), Some(nick), None) = (
                        words.next(),
                        words.next(),
                        words.next(),
                        words.next(),
                        words.next(),
                    ) else {
                        return Err((
                            n,
                            "expected 'ban <identity|address> <value> <until|permanent> <nick|->'"
                                .into(),
                        ));
                    };
                    let target = match (kind, Target::parse(value)) {
                        ("identity", Some(t @ Target::Identity(_)))
                        | ("address", Some(t @ Target::Address(_))) => t,
                        _ => return Err((n, format!("{kind} {value}: not a ban target"))),
                    };
                    let until = match until {
                        "permanent" => None,
                        secs => Some(
                            secs.parse()
                                .map_err(|_| (n, format!("{secs:?}: expected seconds")))?,
                        ),
                    };
                    let total = self.bans;
                    if let Some(r) = self.get_mut(id) {
                        if r.bans.len() < MAX_ROOM_BANS && total < MAX_ROOM_BANS_TOTAL {
                            r.bans.push(RoomBan {
                                target,
                                until,
                                nick: (nick != "-").then(|| nick.into()),
                            });
                            self.bans += 1;
                        }
                    }
                }
                _ => return Err((n, format!("unknown line {word:?}"))),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANA: &str = "AA:AA";
    const BOB: &str = "BB:BB";
    const LIMITS: Limits = Limits {
        max_rooms: 4,
        max_owned: 2,
    };

    fn who<'a>(identity: Option<&'a str>, nick_key: &'a str) -> Who<'a> {
        Who {
            identity,
            ip: "192.0.2.1".parse().unwrap(),
            nick_key,
            server_operator: false,
        }
    }

    #[test]
    fn the_default_room_always_exists_and_is_found_by_any_spelling() {
        let mut rooms = Rooms::new("general");
        let general = rooms.default_room();
        assert_eq!(rooms.name(general), "#general");
        assert_eq!(rooms.find("#GENERAL"), Ok(general));
        assert_eq!(rooms.find("#nada").unwrap_err().code, ErrorCode::NoSuchRoom);
        assert_eq!(rooms.find("nada").unwrap_err().code, ErrorCode::BadRoomName);
        assert!(!rooms.remove_if_unused(general, 0, false));
        assert_eq!(rooms.find("#general"), Ok(general));
    }

    #[test]
    fn only_an_identity_makes_a_room_and_within_the_limits() {
        let mut rooms = Rooms::new("general");
        let ana = who(Some(ANA), "ana");
        let anon = who(None, "eva");
        assert_eq!(
            rooms
                .create("#tareas", false, &anon, LIMITS, 0)
                .unwrap_err()
                .code,
            ErrorCode::NoIdentity
        );
        let tareas = rooms.create("#tareas", false, &ana, LIMITS, 0).unwrap();
        assert_eq!(rooms.get(tareas).unwrap().owner.as_deref(), Some(ANA));
        assert_eq!(
            rooms
                .create("#Tareas", false, &ana, LIMITS, 0)
                .unwrap_err()
                .code,
            ErrorCode::RoomExists,
            "case and look-alikes make the same name"
        );
        assert_eq!(
            rooms
                .create("#a b", false, &ana, LIMITS, 0)
                .unwrap_err()
                .code,
            ErrorCode::BadRoomName
        );
        rooms.create("#juegos", false, &ana, LIMITS, 0).unwrap();
        assert_eq!(
            rooms
                .create("#mas", false, &ana, LIMITS, 0)
                .unwrap_err()
                .code,
            ErrorCode::TooManyRooms,
            "two rooms per identity"
        );
        let bob = who(Some(BOB), "bob");
        rooms.create("#bob", false, &bob, LIMITS, 0).unwrap();
        assert_eq!(
            rooms
                .create("#bob2", false, &bob, LIMITS, 0)
                .unwrap_err()
                .code,
            ErrorCode::TooManyRooms,
            "four rooms on the server"
        );
        // An empty room of an owner without a registered nickname goes; its place is free again.
        assert!(rooms.remove_if_unused(tareas, 0, false));
        assert_eq!(rooms.owned(ANA), 1);
        assert!(rooms.find("#tareas").is_err());
        let again = rooms.create("#otra", false, &ana, LIMITS, 0).unwrap();
        assert_eq!(again, tareas, "the slot is reused");
        assert!(
            !rooms.remove_if_unused(again, 0, true),
            "a registered owner keeps it"
        );
        assert!(!rooms.remove_if_unused(again, 1, false), "someone is in it");
    }

    #[test]
    fn a_private_room_lets_in_its_operators_and_whoever_they_invite_once() {
        let mut rooms = Rooms::new("general");
        let ana = who(Some(ANA), "ana");
        let bob = who(Some(BOB), "bob");
        let eva = who(None, "eva");
        let club = rooms.create("#club", true, &ana, LIMITS, 0).unwrap();
        assert_eq!(rooms.may_join(club, &ana, 0), Ok(()));
        assert_eq!(
            rooms.may_join(club, &bob, 0).unwrap_err().code,
            ErrorCode::InviteOnly
        );
        assert_eq!(
            rooms.invite(club, &bob, "eva", None).unwrap_err().code,
            ErrorCode::NotRoomOperator,
            "only its operators invite into a private room"
        );
        rooms.invite(club, &ana, "bob", Some(BOB)).unwrap();
        let impostor = who(Some("CC:CC"), "bob");
        assert_eq!(
            rooms.may_join(club, &impostor, 0).unwrap_err().code,
            ErrorCode::InviteOnly,
            "an invitation is for the identity invited"
        );
        assert_eq!(rooms.may_join(club, &bob, 0), Ok(()));
        rooms.joined(club, &bob);
        assert_eq!(
            rooms.may_join(club, &bob, 0).unwrap_err().code,
            ErrorCode::InviteOnly,
            "an invitation is used once"
        );
        let op = Who {
            server_operator: true,
            ..eva
        };
        assert_eq!(
            rooms.may_join(club, &op, 0),
            Ok(()),
            "server operators go anywhere"
        );
    }

    #[test]
    fn the_owner_makes_operators_who_run_the_room_but_cannot_make_others() {
        let mut rooms = Rooms::new("general");
        let ana = who(Some(ANA), "ana");
        let bob = who(Some(BOB), "bob");
        let room = rooms.create("#tareas", false, &ana, LIMITS, 0).unwrap();
        assert!(!rooms.is_room_operator(room, &bob));
        assert_eq!(
            rooms
                .set_topic(room, &bob, "bob", Some("x"))
                .unwrap_err()
                .code,
            ErrorCode::NotRoomOperator
        );
        assert_eq!(rooms.set_operator(room, &ana, BOB, true), Ok(true));
        assert!(rooms.is_room_operator(room, &bob) && rooms.runs(room, Some(BOB)));
        rooms
            .set_topic(room, &bob, "bob", Some(&"x".repeat(400)))
            .unwrap();
        assert_eq!(
            rooms.get(room).unwrap().topic.as_ref().unwrap().text.len(),
            MAX_TOPIC_BYTES
        );
        assert_eq!(
            rooms
                .set_operator(room, &bob, "CC:CC", true)
                .unwrap_err()
                .code,
            ErrorCode::NotRoomOperator,
            "only the owner makes operators"
        );
        assert_eq!(rooms.set_operator(room, &ana, BOB, false), Ok(true));
        assert_eq!(rooms.set_operator(room, &ana, BOB, false), Ok(false));
        let general = rooms.default_room();
        assert!(
            !rooms.is_room_operator(general, &ana),
            "the default room is the server's"
        );
        let op = Who {
            server_operator: true,
            ..bob
        };
        assert!(rooms.is_room_operator(general, &op));
    }

    #[test]
    fn rooms_written_to_the_state_directory_come_back_as_they_were() {
        const FP: &str = "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB";
        const OP: &str = "CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD:CD";
        let mut rooms = Rooms::new("general");
        let ana = who(Some(FP), "ana");
        let club = rooms.create("#club", true, &ana, LIMITS, 0).unwrap();
        rooms
            .set_topic(club, &ana, "ana", Some("los jueves, a las 7"))
            .unwrap();
        rooms.set_operator(club, &ana, OP, true).unwrap();
        let ban = RoomBan {
            target: Target::parse("192.0.2.7").unwrap(),
            until: Some(1_800_000_000),
            nick: Some("troll".into()),
        };
        rooms.ban(club, &ana, ban, 0).unwrap();
        let efimera = rooms.create("#efimera", false, &ana, LIMITS, 0).unwrap();
        // A room's text is made again only when it changed.
        let first = rooms.snapshot(|_, _| true);
        rooms
            .set_topic(efimera, &ana, "ana", Some("nueva"))
            .unwrap();
        let second = rooms.snapshot(|_, _| true);
        assert!(Arc::ptr_eq(&first[0], &second[0]), "#club did not change");
        assert!(!Arc::ptr_eq(&first[1], &second[1]) && second[1].contains("nueva"));
        let text = rooms.file_text(|_, r| &*r.name != "#efimera");
        assert_eq!(
            text,
            format!(
                "charla-rooms 1\nroom #club private {FP}\ntopic ana los jueves, a las 7\nop {OP}\n\
                 ban address 192.0.2.7 1800000000 troll\n"
            )
        );
        let mut again = Rooms::new("general");
        again.declare("#tareas").unwrap();
        again.restore(&text).unwrap();
        let club = again.find("#club").unwrap();
        let r = again.get(club).unwrap();
        assert!(r.private && r.owner.as_deref() == Some(FP) && r.operators.contains(OP));
        assert_eq!(
            r.topic.as_ref().unwrap().text.as_ref(),
            "los jueves, a las 7"
        );
        assert_eq!(again.owned(FP), 1);
        assert!(again.find("#efimera").is_err());
        assert!(again.find("#tareas").is_ok(), "declared rooms stay");
        assert_eq!(
            again.file_text(|_, _| true),
            text.replacen(
                "charla-rooms 1\n",
                "charla-rooms 1\nroom #tareas open -\n",
                1
            )
        );
        for (bad, line) in [
            ("charla-rooms 2\n", 1),
            ("charla-rooms 1\ntopic ana x\n", 2),
            ("charla-rooms 1\nroom club open -\n", 2),
            ("charla-rooms 1\nroom #a secret -\n", 2),
            ("charla-rooms 1\nroom #a open -\nroom #A open -\n", 3),
            ("charla-rooms 1\nroom #general open -\n", 2),
            (
                "charla-rooms 1\nroom #a open -\nban address nope permanent -\n",
                3,
            ),
            ("charla-rooms 1\nroom #a open -\nop nope\n", 3),
        ] {
            assert_eq!(
                Rooms::new("general").restore(bad).unwrap_err().0,
                line,
                "{bad}"
            );
        }
    }

    /// The rooms file is written whole: what it may hold is bounded per room and in all.
    #[test]
    fn operators_and_bans_are_bounded_per_room_and_in_all() {
        let mut rooms = Rooms::new("general");
        let limits = Limits {
            max_rooms: 1000,
            max_owned: 1000,
        };
        let fp = |n: usize| format!("{n:02X}:{}", "00:".repeat(30) + "00");
        let owner = fp(255);
        let ana = who(Some(&owner), "ana");
        let room = rooms.create("#a", false, &ana, limits, 0).unwrap();
        for n in 0..MAX_ROOM_OPERATORS {
            assert_eq!(rooms.set_operator(room, &ana, &fp(n), true), Ok(true));
        }
        let refused = rooms.set_operator(room, &ana, &fp(99), true).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RoomLimit);
        assert_eq!(
            rooms.set_operator(room, &ana, &fp(0), true),
            Ok(false),
            "already one"
        );
        let ban = |n: u32| RoomBan {
            target: Target::Address(IpAddr::from(n.to_be_bytes())),
            until: None,
            nick: None,
        };
        for n in 0..MAX_ROOM_BANS as u32 {
            rooms.ban(room, &ana, ban(n), 0).unwrap();
        }
        let refused = rooms.ban(room, &ana, ban(999_999), 0).unwrap_err();
        assert_eq!(refused.code, ErrorCode::RoomLimit);
        rooms.ban(room, &ana, ban(0), 0).unwrap();
        // In all: the rooms together stop at MAX_ROOM_BANS_TOTAL.
        let mut n = 1_000_000;
        let mut made = MAX_ROOM_BANS;
        while made < MAX_ROOM_BANS_TOTAL {
            let other = rooms
                .create(&format!("#r{made}"), false, &ana, limits, 0)
                .unwrap();
            for _ in 0..MAX_ROOM_BANS {
                rooms.ban(other, &ana, ban(n), 0).unwrap();
                n += 1;
            }
            made += MAX_ROOM_BANS;
        }
        let last = rooms.create("#last", false, &ana, limits, 0).unwrap();
        assert_eq!(
            rooms.ban(last, &ana, ban(7), 0).unwrap_err().code,
            ErrorCode::RoomLimit
        );
        assert_eq!(rooms.unban(room, &ana, Some(&ban(0).target), "-"), Ok(1));
        assert_eq!(
            rooms.ban(last, &ana, ban(7), 0),
            Ok(()),
            "a place was freed"
        );
        let text = rooms.file_text(|_, _| true);
        assert!(
            text.lines().count() < 11_000 + 20 + 200,
            "{} lines",
            text.lines().count()
        );
    }

    #[test]
    fn a_room_mute_silences_in_that_room_until_it_ends_or_is_lifted() {
        let mut rooms = Rooms::new("general");
        let ana = who(Some(ANA), "ana");
        let bob = who(Some(BOB), "bob");
        let room = rooms.create("#tareas", false, &ana, LIMITS, 0).unwrap();
        let target = Target::Identity(BOB.into());
        assert_eq!(
            rooms
                .mute(room, &bob, target.clone(), None, 0)
                .unwrap_err()
                .code,
            ErrorCode::NotRoomOperator
        );
        rooms.mute(room, &ana, target.clone(), Some(60), 0).unwrap();
        assert_eq!(rooms.muted(room, Some(BOB), bob.ip, 59), Some(Some(60)));
        assert_eq!(rooms.muted(room, Some(BOB), bob.ip, 60), None, "it ended");
        assert_eq!(
            rooms.muted(rooms.default_room(), Some(BOB), bob.ip, 0),
            None
        );
        rooms.mute(room, &ana, target.clone(), None, 0).unwrap();
        assert_eq!(rooms.unmute(room, &ana, &target), Ok(true));
        assert_eq!(rooms.unmute(room, &ana, &target), Ok(false));
        assert_eq!(rooms.muted(room, Some(BOB), bob.ip, 0), None);
    }

    #[test]
    fn a_room_ban_keeps_out_until_it_ends_or_is_lifted() {
        let mut rooms = Rooms::new("general");
        let ana = who(Some(ANA), "ana");
        let bob = who(Some(BOB), "bob");
        let room = rooms.create("#tareas", false, &ana, LIMITS, 0).unwrap();
        let ban = RoomBan {
            target: Target::Identity(BOB.into()),
            until: Some(100),
            nick: Some("bob".into()),
        };
        assert_eq!(
            rooms.ban(room, &bob, ban.clone(), 0).unwrap_err().code,
            ErrorCode::NotRoomOperator
        );
        rooms.ban(room, &ana, ban, 0).unwrap();
        assert_eq!(
            rooms.may_join(room, &bob, 99).unwrap_err().code,
            ErrorCode::BannedFromRoom
        );
        assert_eq!(rooms.may_join(room, &bob, 100), Ok(()), "it ended");
        assert_eq!(
            rooms.unban(room, &ana, None, "BOB"),
            Ok(1),
            "by the nickname it was made from"
        );
        assert_eq!(rooms.unban(room, &ana, None, "bob"), Ok(0));
    }
}
