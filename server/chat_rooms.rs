//! A child module of the chat core: the room commands (`/join`, `/part`, `/rooms`, `/users
//! #room`, `/topic`, `/invite`, `/create`, `/action`, `/op`, `/deop`, and `/kick`, `/ban`,
//! `/unban` in a room) and the `/cap rooms` that makes a client see them. The rules themselves
//! are [`crate::rooms`]'s; this is who asks, what the room is told and what is answered.

use std::net::IpAddr;
use std::sync::Arc;

use charla_proto::{clean_text, nick_key, ClientLine, ErrorCode, ROOMS_PAGE};

use super::moderate::until_word;
use super::{Chat, PeerState};
use crate::log::log;
use crate::moderation::Target;
use crate::outbox::{ConnId, LineForm};
use crate::rooms::{Limits, Refused, RoomBan, RoomId, Who};

/// Who asks, owned, so that the rooms can be changed while the rules look at it.
struct Asker {
    identity: Option<Box<str>>,
    ip: IpAddr,
    nick_key: String,
    server_operator: bool,
}

impl Asker {
    fn who(&self) -> Who<'_> {
        Who {
            identity: self.identity.as_deref(),
            ip: self.ip,
            nick_key: &self.nick_key,
            server_operator: self.server_operator,
        }
    }
}

impl Chat {
    /// `/cap <name>...` before the nickname: answered `CAP` and the names this server takes.
    pub(super) fn capabilities(&mut self, id: ConnId, names: &str) {
        let mut taken = vec!["CAP"];
        for name in names.split_whitespace() {
            if name.eq_ignore_ascii_case("rooms") && !taken.contains(&"rooms") {
                if let Some(PeerState::Registering { rooms, .. }) =
                    self.peer_mut(id).map(|p| &mut p.state)
                {
                    *rooms = true;
                }
                taken.push("rooms");
            }
        }
        self.reply(id, &taken);
    }

    /// `id` as the room rules know it; `nick_key` for a connection still choosing its nickname.
    fn asker(&self, id: ConnId, nick_key: Option<&str>) -> Option<Asker> {
        let peer = self.peer(id)?;
        let key = match nick_key {
            Some(key) => key.to_string(),
            None => charla_proto::nick_key(self.nick(id)?),
        };
        Some(Asker {
            identity: peer.identity.clone(),
            ip: peer.addr.ip(),
            nick_key: key,
            server_operator: self.is_operator(id),
        })
    }

    /// Whether `id`, registering as `nick_key`, may come into `room`.
    pub(super) fn may_join(&self, id: ConnId, room: RoomId, nick_key: &str) -> Result<(), Refused> {
        match self.asker(id, Some(nick_key)) {
            Some(asker) => self.rooms.may_join(room, &asker.who(), self.unix()),
            None => Ok(()),
        }
    }

    pub(super) fn in_room(&self, id: ConnId, room: RoomId) -> bool {
        self.outbox.rooms_of(id).any(|r| r == room)
    }

    /// Where a plain line of `id` goes.
    pub(super) fn current_room(&self, id: ConnId) -> RoomId {
        match self.peer(id).map(|p| &p.state) {
            Some(PeerState::Chatting { current, .. }) => *current,
            _ => self.rooms.default_room(),
        }
    }

    pub(super) fn set_current_room(&mut self, id: ConnId, room: RoomId) {
        if let Some(PeerState::Chatting { current, .. }) = self.peer_mut(id).map(|p| &mut p.state) {
            *current = room;
        }
    }

    /// How `id` gets room lines.
    pub(super) fn form(&self, id: ConnId) -> LineForm {
        match self.peer(id).map(|p| &p.state) {
            Some(PeerState::Chatting { form, .. }) => *form,
            _ => LineForm::default(),
        }
    }

    /// What goes in front of a line about `room` sent to `id` alone: the room's name and a
    /// space, for a client that understands rooms.
    pub(super) fn room_prefix(&self, id: ConnId, room: RoomId) -> String {
        if self.form(id).rooms {
            format!("{} ", self.rooms.name(room))
        } else {
            String::new()
        }
    }

    /// A line about `room` to `id` alone.
    fn room_reply(&mut self, id: ConnId, room: RoomId, words: &[&str]) {
        let prefix = self.room_prefix(id, room);
        let mut all: Vec<&str> = Vec::with_capacity(words.len() + 1);
        if !prefix.is_empty() {
            all.push(prefix.trim_end());
        }
        all.extend_from_slice(words);
        self.reply(id, &all);
    }

    /// The room a history entry of `room` is kept under: None for the default room (so that a
    /// history file written before rooms is the default room's).
    pub(super) fn history_room(&self, room: RoomId) -> Option<Box<str>> {
        if room == self.rooms.default_room() {
            return None;
        }
        self.rooms.get(room).map(|r| r.key.clone())
    }

    pub(super) fn not_in_room(&mut self, id: ConnId, room: RoomId) {
        let name = self.rooms.name(room).to_string();
        self.reply_error(
            id,
            ErrorCode::NotInRoom,
            &format!("you are not in {name}: /join {name} first"),
        );
    }

    /// Someone left `room`: gone with its last member, unless it is to stay.
    pub(super) fn room_emptied(&mut self, room: RoomId) {
        let members = self.outbox.member_count(room);
        if members > 0 {
            return;
        }
        let owner_registered = self
            .rooms
            .get(room)
            .and_then(|r| r.owner.as_deref())
            .is_some_and(|owner| self.nicknames.registered.count_of(owner) > 0);
        let name = self.rooms.name(room).to_string();
        if self.rooms.remove_if_unused(room, members, owner_registered) {
            log!("room {name} is gone with its last member");
            self.rooms_changed();
        }
    }

    /// A room that may outlive a restart changed: the rooms go to `--state-dir` with the next
    /// batch of the state writer.
    pub(super) fn rooms_changed(&mut self) {
        self.rooms_changed = self.moderation.persistent;
    }

    /// The `rooms` file: the rooms with people in them, and those whose owner has a registered
    /// nickname.
    pub(super) fn rooms_text(&mut self) -> Vec<Arc<str>> {
        let (outbox, registrations) = (&self.outbox, &self.nicknames.registered);
        self.rooms.snapshot(|room, r| {
            outbox.member_count(room) > 0
                || r.owner
                    .as_deref()
                    .is_some_and(|owner| registrations.count_of(owner) > 0)
        })
    }

    /// The rooms `--state-dir` kept (its `rooms` file), at start.
    pub fn restore_rooms(&mut self, text: &str) -> Result<(), (usize, String)> {
        self.rooms.restore(text)?;
        // Each room's text made now, before the loop serves anyone: later only a room that
        // changes is formatted again.
        self.rooms_text();
        Ok(())
    }

    fn refuse(&mut self, id: ConnId, refused: Refused) {
        self.reply_error(id, refused.code, &refused.text);
    }

    /// The room `name` for `id`: a private room it is not in is as good as absent (its name is
    /// not told to outsiders).
    fn visible_room(&mut self, id: ConnId, name: &str) -> Option<RoomId> {
        let found = self.rooms.find(name).and_then(|room| {
            let hidden = self.rooms.get(room).is_some_and(|r| r.private)
                && !self.in_room(id, room)
                && !self.is_operator(id)
                && !self.rooms.runs(room, self.identity(id));
            if hidden {
                Err(Refused {
                    code: ErrorCode::NoSuchRoom,
                    text: format!("there is no room {name}"),
                })
            } else {
                Ok(room)
            }
        });
        match found {
            Ok(room) => Some(room),
            Err(refused) => {
                self.refuse(id, refused);
                None
            }
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            max_rooms: self.cfg.max_rooms,
            max_owned: self.cfg.max_rooms_per_identity,
        }
    }

    /// The room commands of someone registered.
    pub(super) fn room_command(&mut self, id: ConnId, command: ClientLine<'_>) {
        if !self.form(id).rooms {
            // Without `/cap rooms` a client could not tell one room's lines from another's.
            let name = match command {
                ClientLine::Join(_) => "join",
                ClientLine::Part { .. } => "part",
                ClientLine::Rooms(_) => "rooms",
                ClientLine::Topic { .. } => "topic",
                ClientLine::Invite { .. } => "invite",
                ClientLine::Create { .. } => "create",
                ClientLine::Action { .. } => "action",
                ClientLine::RoomOp { on: true, .. } => "op",
                ClientLine::RoomOp { .. } => "deop",
                ClientLine::RoomKick { .. } => "kick",
                ClientLine::RoomBan { .. } => "ban",
                ClientLine::RoomUnban { .. } => "unban",
                ClientLine::RoomMute { .. } => "mute",
                ClientLine::RoomUnmute { .. } => "unmute",
                _ => "users",
            };
            return self.reply_error(id, ErrorCode::UnknownCommand, name);
        }
        match command {
            ClientLine::Join(name) => self.join(id, name),
            ClientLine::Part { room, reason } => self.part(id, room, reason),
            ClientLine::Rooms(page) => self.list_rooms(id, page),
            ClientLine::RoomUsers(name) => {
                if let Some(room) = self.visible_room(id, name) {
                    self.send_room_users(id, room);
                }
            }
            ClientLine::Topic { room, text } => self.topic(id, room, text),
            ClientLine::Invite { nick, room } => self.invite(id, nick, room),
            ClientLine::Create { room, private } => self.create(id, room, private),
            ClientLine::Action { room, text } => self.say_in(id, room, "ACTION", text),
            ClientLine::RoomOp { nick, room, on } => self.room_operator(id, nick, room, on),
            ClientLine::RoomKick { room, nick, reason } => self.room_kick(id, room, nick, reason),
            ClientLine::RoomBan {
                room,
                target,
                minutes,
                reason,
            } => self.room_ban(id, room, target, minutes, reason),
            ClientLine::RoomUnban { room, target } => self.room_unban(id, room, target),
            ClientLine::RoomMute {
                room,
                nick,
                minutes,
            } => self.room_mute(id, room, nick, minutes),
            ClientLine::RoomUnmute { room, nick } => self.room_unmute(id, room, nick),
            _ => {}
        }
    }

    /// `/msg #room <text>`, `/action #room <text>`.
    pub(super) fn say_in(&mut self, id: ConnId, name: &str, kind: &str, text: &str) {
        if let Some(room) = self.visible_room(id, name) {
            self.say(id, room, kind, text);
        }
    }

    /// Whether `/msg <to>` from `id` is to a room: `to` names one, and `id` understands rooms
    /// or names the default room (the one room a client of the seed knows).
    pub(super) fn speaks_rooms_to(&self, id: ConnId, to: &str) -> bool {
        charla_proto::is_room(to)
            && (self.form(id).rooms || self.rooms.find(to).ok() == Some(self.rooms.default_room()))
    }

    /// Whether `id` may be in one more room (`--max-rooms-per-user`).
    fn may_enter_another(&mut self, id: ConnId) -> bool {
        let max = self.cfg.max_rooms_per_user;
        if self.outbox.rooms_of(id).count() < max {
            return true;
        }
        self.reply_error(
            id,
            ErrorCode::TooManyRooms,
            &format!("you are in {max} rooms already, the most one user may be in: /part one"),
        );
        false
    }

    fn join(&mut self, id: ConnId, name: &str) {
        let room = match self.rooms.find(name) {
            Ok(room) if self.in_room(id, room) => return self.set_current_room(id, room),
            Ok(room) => room,
            Err(refused) if refused.code == ErrorCode::NoSuchRoom => {
                return self.create(id, name, false);
            }
            Err(refused) => return self.refuse(id, refused),
        };
        if !self.may_enter_another(id) {
            return;
        }
        let Some(asker) = self.asker(id, None) else {
            return;
        };
        // A private room's name is one room: that it exists is said here (docs/protocol.md).
        if let Err(refused) = self.rooms.may_join(room, &asker.who(), self.unix()) {
            return self.refuse(id, refused);
        }
        self.rooms.joined(room, &asker.who());
        self.enter_room(id, room);
    }

    fn create(&mut self, id: ConnId, name: &str, private: bool) {
        if !self.may_enter_another(id) {
            return;
        }
        let Some(asker) = self.asker(id, None) else {
            return;
        };
        let limits = self.limits();
        let last_line = self.history.last_id();
        match self
            .rooms
            .create(name, private, &asker.who(), limits, last_line)
        {
            Ok(room) => {
                let kind = if private { "private" } else { "open" };
                log!("room {name} ({kind}) made by {}", self.who(id));
                self.rooms_changed();
                self.enter_room(id, room);
            }
            Err(refused) => self.refuse(id, refused),
        }
    }

    /// `id` is let into `room`: everyone in it (`id` too) gets `JOIN`, then `id` gets the user
    /// list, the topic and the room's history.
    fn enter_room(&mut self, id: ConnId, room: RoomId) {
        let Some(nick) = self.nick(id).map(String::from) else {
            return;
        };
        self.outbox.join(id, room);
        self.set_current_room(id, room);
        self.room_line(room, None, &["JOIN", &nick]);
        if self.is_operator(id) {
            self.room_line(room, Some(id), &["OPER", &nick]);
        }
        if self.rooms.runs(room, self.identity(id)) {
            self.room_line_as(room, Some(id), None, &["OP", &nick]);
        }
        self.send_room_users(id, room);
        self.send_topic(id, room);
        let after = self.rooms.get(room).map_or(0, |r| r.history_after);
        self.replay_history(id, Some(room), after, super::Skip::Nothing, Vec::new());
    }

    /// `TOPIC <nick> <text>`, or `TOPIC -` when it has none.
    pub(super) fn send_topic(&mut self, id: ConnId, room: RoomId) {
        let topic = self.rooms.get(room).and_then(|r| r.topic.clone());
        match topic {
            Some(topic) => self.room_reply(id, room, &["TOPIC", &topic.by, &topic.text]),
            None => self.room_reply(id, room, &["TOPIC", "-"]),
        }
    }

    /// Takes `id` out of `room` (its lines said before still reach it); a plain line of its goes
    /// to another of its rooms from then on.
    fn take_out_of_room(&mut self, id: ConnId, room: RoomId) {
        self.outbox.leave(id, room, true);
        if self.current_room(id) == room {
            let next = self
                .outbox
                .rooms_of(id)
                .last()
                .unwrap_or(self.rooms.default_room());
            self.set_current_room(id, next);
        }
        self.room_emptied(room);
    }

    fn part(&mut self, id: ConnId, name: &str, reason: Option<&str>) {
        let Some(room) = self.visible_room(id, name) else {
            return;
        };
        if !self.in_room(id, room) {
            return self.not_in_room(id, room);
        }
        let Some(nick) = self.nick(id).map(String::from) else {
            return;
        };
        // As with /quit: a muted user's reason reaches no one.
        let muted = self.muted(id).is_some() || self.muted_in(id, room).is_some();
        let reason = reason
            .filter(|_| !muted)
            .map(|r| clean_text(r).into_owned())
            .filter(|r| !r.trim().is_empty());
        let mut words = vec!["LEAVE", &*nick, charla_proto::leave_reason::PART];
        words.extend(reason.as_deref());
        // A client of the seed knows only `quit`, and only a quit's text: the user left.
        let plain = ["LEAVE", &*nick, charla_proto::leave_reason::QUIT];
        self.room_line_as(room, None, Some(&plain), &words);
        log!("{} left {}", self.who(id), self.rooms.name(room));
        self.take_out_of_room(id, room);
    }

    /// `ROOMS <total> <page> <pages>`, then `ROOM <name> <members> <open|private> [topic]` for
    /// each room of that page `id` may see: the open ones, and the private ones it is in or runs
    /// (all, for a server operator). A page is at most [`ROOMS_PAGE`] rooms (about 30 KB).
    fn list_rooms(&mut self, id: ConnId, page: u32) {
        let operator = self.is_operator(id);
        let identity = self.identity(id);
        let mut visible = Vec::new();
        for (room, r) in self.rooms.iter() {
            if !r.private || operator || self.in_room(id, room) || self.rooms.runs(room, identity) {
                visible.push(room);
            }
        }
        let pages = visible.len().div_ceil(ROOMS_PAGE).max(1);
        let page = (page as usize).min(pages);
        let mut lines = std::mem::take(&mut self.line);
        lines.clear();
        charla_proto::reply::push_line(
            &mut lines,
            &[
                "ROOMS",
                &visible.len().to_string(),
                &page.to_string(),
                &pages.to_string(),
            ],
        );
        for &room in visible
            .iter()
            .skip((page - 1) * ROOMS_PAGE)
            .take(ROOMS_PAGE)
        {
            let Some(r) = self.rooms.get(room) else {
                continue;
            };
            let members = self.outbox.member_count(room).to_string();
            let kind = if r.private { "private" } else { "open" };
            let mut words = vec!["ROOM", &*r.name, &*members, kind];
            if let Some(topic) = &r.topic {
                words.push(&topic.text);
            }
            charla_proto::reply::push_bounded_line(&mut lines, &words);
        }
        self.outbox.send(id, &lines);
        self.line = lines;
    }

    fn topic(&mut self, id: ConnId, name: &str, text: Option<&str>) {
        let Some(room) = self.visible_room(id, name) else {
            return;
        };
        let Some(text) = text else {
            return self.send_topic(id, room);
        };
        let Some(asker) = self.asker(id, None) else {
            return;
        };
        let nick = self.nick(id).unwrap_or_default().to_string();
        let text = clean_text(text).trim().to_string();
        let text = (text != "-").then_some(text.as_str());
        if let Err(refused) = self.rooms.set_topic(room, &asker.who(), &nick, text) {
            return self.refuse(id, refused);
        }
        self.rooms_changed();
        let topic = self.rooms.get(room).and_then(|r| r.topic.clone());
        match &topic {
            Some(topic) => self.room_line_as(room, None, None, &["TOPIC", &nick, &topic.text]),
            None => self.room_line_as(room, None, None, &["TOPIC", "-"]),
        }
        if !self.in_room(id, room) {
            self.send_topic(id, room);
        }
    }

    fn invite(&mut self, id: ConnId, nick: &str, name: &str) {
        let Some(room) = self.visible_room(id, name) else {
            return;
        };
        if !self.in_room(id, room) && !self.is_operator(id) {
            return self.not_in_room(id, room);
        }
        // A client of the seed could not join: to a room's invitation it is no one.
        let target = self.nicknames.find(nick).filter(|&t| self.form(t).rooms);
        let Some(target) = target else {
            return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(nick));
        };
        let Some(asker) = self.asker(id, None) else {
            return;
        };
        let invitee = self.identity(target).map(String::from);
        if let Err(refused) =
            self.rooms
                .invite(room, &asker.who(), &nick_key(nick), invitee.as_deref())
        {
            return self.refuse(id, refused);
        }
        let (Some(from), Some(to)) = (
            self.nick(id).map(String::from),
            self.nick(target).map(String::from),
        ) else {
            return;
        };
        let room_name = self.rooms.name(room).to_string();
        log!(
            "{} invited {} into {room_name}",
            self.who(id),
            self.who(target)
        );
        self.reply(target, &["INVITE", &from, &room_name]);
        self.reply(id, &["INVITED", &to, &room_name]);
    }

    /// The room operators `/op` and `/deop` name, by their identity.
    fn room_operator(&mut self, id: ConnId, nick: &str, name: &str, on: bool) {
        let Some(room) = self.visible_room(id, name) else {
            return;
        };
        let Some(asker) = self.asker(id, None) else {
            return;
        };
        if let Err(refused) = self.rooms.must_own(room, &asker.who()) {
            return self.refuse(id, refused);
        }
        let Some(target) = self.nicknames.find(nick) else {
            return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(nick));
        };
        let Some(identity) = self.identity(target).map(String::from) else {
            return self.reply_error(
                id,
                ErrorCode::NoIdentity,
                &format!(
                    "{} has no identity (client certificate): room operators are known by theirs",
                    self.nick(target).unwrap_or_default()
                ),
            );
        };
        match self.rooms.set_operator(room, &asker.who(), &identity, on) {
            Err(refused) => self.refuse(id, refused),
            Ok(changed) => {
                let target_nick = self.nick(target).unwrap_or_default().to_string();
                let word = if on { "OP" } else { "DEOP" };
                if changed {
                    self.rooms_changed();
                    log!(
                        "{} made {} {} operator of {}",
                        self.who(id),
                        self.who(target),
                        if on { "an" } else { "no longer an" },
                        self.rooms.name(room)
                    );
                }
                if self.in_room(target, room) {
                    self.room_line_as(room, None, None, &[word, &target_nick]);
                }
                if !self.in_room(id, room) || !self.in_room(target, room) {
                    self.room_reply(id, room, &[word, &target_nick]);
                }
            }
        }
    }

    /// Room operators may not act on the server's operators nor on the room's owner.
    fn protected_in_room(&mut self, id: ConnId, room: RoomId, target: Option<&Target>) -> bool {
        let owner = self.rooms.get(room).and_then(|r| r.owner.clone());
        let protected = match target {
            Some(Target::Identity(fp)) => {
                self.moderation.operators.contains(Some(fp))
                    || (owner.as_deref() == Some(&**fp) && !self.is_operator(id))
            }
            _ => false,
        };
        if protected {
            self.reply_error(
                id,
                ErrorCode::IsOperator,
                "that is a server operator or the room's owner",
            );
        }
        protected
    }

    /// The room `name`, for a command only those who run it may give, and who asks; each
    /// refusal told to `id`.
    fn room_run_by(&mut self, id: ConnId, name: &str) -> Option<(RoomId, Asker)> {
        let room = self.visible_room(id, name)?;
        let asker = self.asker(id, None)?;
        if let Err(refused) = self.rooms.must_run(room, &asker.who()) {
            self.refuse(id, refused);
            return None;
        }
        Some((room, asker))
    }

    fn room_kick(&mut self, id: ConnId, name: &str, nick: &str, reason: Option<&str>) {
        let Some((room, _)) = self.room_run_by(id, name) else {
            return;
        };
        let target = self.nicknames.find(nick).filter(|&t| self.in_room(t, room));
        let Some(target) = target else {
            return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(nick));
        };
        let identity = self.identity(target).map(|fp| Target::Identity(fp.into()));
        if self.protected_in_room(id, room, identity.as_ref()) {
            return;
        }
        let reason = reason.map(|r| clean_text(r).into_owned());
        self.put_out_of_room(id, target, room, reason);
    }

    /// `target` is put out of `room` by `id`: the room (`target` too) gets `KICK`. A client that
    /// does not understand rooms lives in the default room only: put out of it, it is
    /// disconnected as by a server operator's `/kick`.
    fn put_out_of_room(
        &mut self,
        id: ConnId,
        target: ConnId,
        room: RoomId,
        reason: Option<String>,
    ) {
        let by = self.nick(id).unwrap_or_default().to_string();
        let Some(nick) = self.nick(target).map(String::from) else {
            return;
        };
        log!(
            "moderation: {} put {} out of {}",
            self.who(id),
            self.who(target),
            self.rooms.name(room)
        );
        if !self.form(target).rooms {
            return self.kick_out(target, by, reason);
        }
        let mut words = vec!["KICK", &*by, &*nick];
        words.extend(reason.as_deref());
        self.room_line(room, None, &words);
        self.take_out_of_room(target, room);
    }

    fn room_ban(
        &mut self,
        id: ConnId,
        name: &str,
        what: &str,
        minutes: Option<u64>,
        reason: Option<&str>,
    ) {
        let Some((room, asker)) = self.room_run_by(id, name) else {
            return;
        };
        // A nickname first, as for the server's /ban.
        let online = self.nicknames.find(what);
        let (target, nick) = match online.and_then(|conn| Some((conn, self.peer(conn)?))) {
            Some((conn, peer)) => (
                Target::of(peer.identity.as_deref(), peer.addr.ip()),
                self.nick(conn).map(Box::<str>::from),
            ),
            None => match Target::parse(what) {
                Some(target) => (target, None),
                None => return self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(what)),
            },
        };
        if self.protected_in_room(id, room, Some(&target)) {
            return;
        }
        let now = self.unix();
        let until = minutes.map(|m| now + m * 60);
        let ban = RoomBan {
            target: target.clone(),
            until,
            nick: nick.clone(),
        };
        if let Err(refused) = self.rooms.ban(room, &asker.who(), ban, now) {
            return self.refuse(id, refused);
        }
        self.rooms_changed();
        let reason = reason.map(|r| crate::moderation::cut_reason(&clean_text(r)).to_string());
        // Taken now: putting out the last member may make the room go.
        let prefix = self.room_prefix(id, room);
        let members: Vec<ConnId> = self.outbox.members(room).collect();
        let mut closed = 0;
        for member in members {
            let matches = self
                .peer(member)
                .is_some_and(|p| target.matches(p.identity.as_deref(), p.addr.ip()));
            // As the ban itself never keeps them out: whoever runs the room stays.
            let runs = self.is_operator(member) || self.rooms.runs(room, self.identity(member));
            if matches && member != id && !runs {
                closed += 1;
                self.put_out_of_room(id, member, room, reason.clone());
            }
        }
        log!(
            "moderation: {} banned {} from {}",
            self.who(id),
            target.describe(),
            self.rooms.name(room)
        );
        let (kind, value) = target.words();
        let until = until_word(until);
        let closed = closed.to_string();
        let mut words = vec![
            prefix.trim_end(),
            "BANNED",
            kind,
            &*value,
            &*until,
            &*closed,
        ];
        words.retain(|w| !w.is_empty());
        words.extend(nick.as_deref());
        self.reply(id, &words);
    }

    /// Whether `id` is muted in `room` now, and until when (None: until lifted). Those who run
    /// the room, and the server's operators, never are.
    pub(super) fn muted_in(&self, id: ConnId, room: RoomId) -> Option<Option<u64>> {
        let peer = self.peer(id)?;
        let identity = peer.identity.as_deref();
        if self.is_operator(id) || self.rooms.runs(room, identity) {
            return None;
        }
        self.rooms
            .muted(room, identity, peer.addr.ip(), self.unix())
    }

    /// Muted in `room` (by its operators): its line reaches no one, and it is told why.
    pub(super) fn refused_as_muted_in(&mut self, id: ConnId, room: RoomId) -> bool {
        let Some(until) = self.muted_in(id, room) else {
            return false;
        };
        let now = self.unix();
        let name = self.rooms.name(room).to_string();
        let text = match until {
            Some(until) => format!(
                "the operators of {name} muted you there for {} more minutes: your lines in it \
                 reach no one",
                (until.saturating_sub(now)).div_ceil(60)
            ),
            None => {
                format!("the operators of {name} muted you there: your lines in it reach no one")
            }
        };
        self.reply_error(id, ErrorCode::Muted, &text);
        true
    }

    /// The room `name` (which `id` runs), who asks, and the user `nick` in the chat with what a
    /// mute on it holds for; each refusal told to `id`.
    fn room_and_user(
        &mut self,
        id: ConnId,
        name: &str,
        nick: &str,
    ) -> Option<(RoomId, Asker, ConnId, Target)> {
        let (room, asker) = self.room_run_by(id, name)?;
        let Some(target) = self.nicknames.find(nick) else {
            self.reply_error(id, ErrorCode::NoSuchUser, &clean_text(nick));
            return None;
        };
        let peer = self.peer(target)?;
        let what = Target::of(peer.identity.as_deref(), peer.addr.ip());
        Some((room, asker, target, what))
    }

    /// `/mute #room <nick> [minutes]`: `#room MUTED <nick> <minutes>` to the operator.
    fn room_mute(&mut self, id: ConnId, name: &str, nick: &str, minutes: Option<u64>) {
        let Some((room, asker, target, what)) = self.room_and_user(id, name, nick) else {
            return;
        };
        if self.is_operator(target) || self.rooms.runs(room, self.identity(target)) {
            return self.reply_error(
                id,
                ErrorCode::IsOperator,
                "the server's operators and the room's are never muted in it",
            );
        }
        let now = self.unix();
        let until = minutes.map(|m| now + m * 60);
        if let Err(refused) = self.rooms.mute(room, &asker.who(), what, until, now) {
            return self.refuse(id, refused);
        }
        let target_nick = self.nick(target).unwrap_or_default().to_string();
        log!(
            "moderation: {} muted {} in {}",
            self.who(id),
            self.who(target),
            self.rooms.name(room)
        );
        let minutes = minutes.unwrap_or(0).to_string();
        self.room_reply(id, room, &["MUTED", &target_nick, &minutes]);
    }

    fn room_unmute(&mut self, id: ConnId, name: &str, nick: &str) {
        let Some((room, asker, target, what)) = self.room_and_user(id, name, nick) else {
            return;
        };
        match self.rooms.unmute(room, &asker.who(), &what) {
            Err(refused) => self.refuse(id, refused),
            Ok(false) => self.reply_error(
                id,
                ErrorCode::NoSuchBan,
                &format!(
                    "{} is not muted in {}",
                    clean_text(nick),
                    self.rooms.name(room)
                ),
            ),
            Ok(true) => {
                let target_nick = self.nick(target).unwrap_or_default().to_string();
                self.room_reply(id, room, &["UNMUTED", &target_nick]);
            }
        }
    }

    fn room_unban(&mut self, id: ConnId, name: &str, what: &str) {
        let Some(room) = self.visible_room(id, name) else {
            return;
        };
        let Some(asker) = self.asker(id, None) else {
            return;
        };
        let target = Target::parse(what);
        match self.rooms.unban(room, &asker.who(), target.as_ref(), what) {
            Err(refused) => self.refuse(id, refused),
            Ok(0) => self.reply_error(
                id,
                ErrorCode::NoSuchBan,
                &format!(
                    "no ban in {} matches {}",
                    self.rooms.name(room),
                    clean_text(what)
                ),
            ),
            Ok(n) => {
                self.rooms_changed();
                log!(
                    "moderation: {} lifted {n} bans in {}",
                    self.who(id),
                    self.rooms.name(room)
                );
                self.room_reply(id, room, &["UNBANNED", &n.to_string()]);
            }
        }
    }
}
