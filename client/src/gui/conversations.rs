//! The window's conversations as one model: the rooms the user is in (the server's default room
//! first), then the people written to in private. Each has its own log; each room its own user
//! list and topic. The window shows one at a time (`current`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use charla_proto::room_key;
use slint::{Model, ModelRc, VecModel};

use crate::ring_model::RingModel;
use crate::{Conversation, LogEntry, UserEntry};

/// Private conversations in tabs of their own, at most (see `open_private`).
pub const MAX_PRIVATE_CONVERSATIONS: usize = 30;

/// Rooms with a tab of their own, at most: above what a server lets one connection be in
/// (`--max-rooms-per-user`, 50 by default), so that a hostile server cannot make the window
/// hold a log for every name it makes up.
pub const MAX_ROOMS: usize = 100;

/// Where conversation `index` is once conversation `removed` is gone (itself: the one before).
pub fn after_removal(index: usize, removed: usize) -> usize {
    match index {
        s if s == removed => removed.saturating_sub(1),
        s if s > removed => s - 1,
        s => s,
    }
}

/// Lines the log of a conversation other than the default room keeps, at most (the default
/// room keeps `--log-lines`): a server that lets the user into 100 rooms, or writes from 30
/// names, cannot make the window hold 130 logs of 5,000 lines (HexChat keeps 500 a tab).
pub const OTHER_LOG_LINES: usize = 1000;

/// What the window keeps of one conversation besides its row in the model.
struct Entry {
    log: Rc<RingModel<LogEntry>>,
    /// A room's members (empty for a private conversation).
    users: Rc<VecModel<UserEntry>>,
    /// A room's topic ("" when it has none).
    topic: String,
    /// The user runs this room (an operator of it, or its owner).
    running: bool,
}

pub struct Conversations {
    model: Rc<VecModel<Conversation>>,
    entries: RefCell<Vec<Entry>>,
    /// How many of the first conversations are rooms.
    rooms: Cell<usize>,
    current: Cell<usize>,
    /// The room whose members the user panel lists: the one shown, or the last one shown while a
    /// private conversation is.
    listed: Cell<usize>,
    log_lines: usize,
}

impl Conversations {
    /// The default room alone, not named yet (a server without rooms never names it).
    pub fn new(log_lines: usize) -> Conversations {
        let conversations = Conversations {
            model: Rc::new(VecModel::default()),
            entries: RefCell::new(Vec::new()),
            rooms: Cell::new(0),
            current: Cell::new(0),
            listed: Cell::new(0),
            log_lines,
        };
        conversations.insert(0, Conversation::default());
        conversations.rooms.set(1);
        conversations
    }

    fn insert(&self, i: usize, conversation: Conversation) {
        let lines = if i == 0 {
            self.log_lines
        } else {
            self.log_lines.min(OTHER_LOG_LINES)
        };
        self.entries.borrow_mut().insert(
            i,
            Entry {
                log: Rc::new(RingModel::new(lines)),
                users: Rc::new(VecModel::default()),
                topic: String::new(),
                running: false,
            },
        );
        self.model.insert(i, conversation);
    }

    pub fn model(&self) -> ModelRc<Conversation> {
        ModelRc::from(self.model.clone())
    }

    pub fn len(&self) -> usize {
        self.model.row_count()
    }

    pub fn log_lines(&self) -> usize {
        self.log_lines
    }

    pub fn current(&self) -> usize {
        self.current.get()
    }

    pub fn listed_room(&self) -> usize {
        self.listed.get()
    }

    pub fn is_room(&self, i: usize) -> bool {
        i < self.rooms.get()
    }

    pub fn log(&self, i: usize) -> Option<Rc<RingModel<LogEntry>>> {
        self.entries.borrow().get(i).map(|e| e.log.clone())
    }

    /// The default room's log: where what belongs to no conversation goes.
    pub fn main_log(&self) -> Rc<RingModel<LogEntry>> {
        self.entries.borrow()[0].log.clone()
    }

    /// A room's members (a private conversation: those of the room the panel lists).
    pub fn users(&self, i: usize) -> Rc<VecModel<UserEntry>> {
        let i = if self.is_room(i) {
            i
        } else {
            self.listed.get()
        };
        self.entries.borrow()[i].users.clone()
    }

    /// The room's name (`#general`), if `i` is a room whose name is known.
    pub fn room_name(&self, i: usize) -> Option<String> {
        let conversation = self.model.row_data(i).filter(|_| self.is_room(i))?;
        (!conversation.room.is_empty()).then(|| conversation.room.to_string())
    }

    /// The person of private conversation `i`.
    pub fn nick(&self, i: usize) -> Option<String> {
        let conversation = self.model.row_data(i).filter(|_| !self.is_room(i))?;
        Some(conversation.nick.to_string())
    }

    /// The rooms the user is in besides the default one, which every client is put in.
    pub fn joined_rooms(&self) -> Vec<String> {
        (1..self.rooms.get())
            .filter_map(|i| self.room_name(i))
            .collect()
    }

    /// The conversation of room `name` (without regard to case or look-alike letters, as the
    /// server compares them).
    pub fn room_index(&self, name: &str) -> Option<usize> {
        let key = room_key(name);
        (0..self.rooms.get()).find(|&i| self.room_name(i).is_some_and(|n| room_key(&n) == key))
    }

    /// Where a line of `room` goes: no room, or the default room's first line names it (a
    /// server that understands rooms names the default room first); `None` for a room the user
    /// has no tab for.
    pub fn for_room(&self, room: Option<&str>) -> Option<usize> {
        let Some(name) = room else { return Some(0) };
        if let Some(i) = self.room_index(name) {
            return Some(i);
        }
        let default = self.model.row_data(0)?;
        if default.room.is_empty() {
            self.model.set_row_data(
                0,
                Conversation {
                    room: name.into(),
                    ..default
                },
            );
            return Some(0);
        }
        None
    }

    /// The tab of room `name`, opened after the other rooms if need be; `None` past
    /// [`MAX_ROOMS`].
    pub fn open_room(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.for_room(Some(name)) {
            return Some(i);
        }
        let at = self.rooms.get();
        if at >= MAX_ROOMS {
            return None;
        }
        self.insert(
            at,
            Conversation {
                room: name.into(),
                ..Default::default()
            },
        );
        self.rooms.set(at + 1);
        if self.current.get() >= at {
            self.current.set(self.current.get() + 1);
        }
        Some(at)
    }

    /// The conversation with `nick`, if open (nicknames compare without case, as the server's).
    pub fn private_index(&self, nick: &str) -> Option<usize> {
        let nick = nick.to_lowercase();
        (self.rooms.get()..self.len()).find(|&i| {
            self.model
                .row_data(i)
                .is_some_and(|c| c.nick.to_lowercase() == nick)
        })
    }

    /// The conversation with `nick`, opened after the others if it was not. Past
    /// [`MAX_PRIVATE_CONVERSATIONS`] tabs, a new name's lines go to the default room (still
    /// marked private): a server, or anyone on it, sending from ten thousand names cannot make
    /// the window hold ten thousand logs.
    pub fn open_private(&self, nick: &str) -> usize {
        if let Some(i) = self.private_index(nick) {
            return i;
        }
        if self.len() - self.rooms.get() >= MAX_PRIVATE_CONVERSATIONS {
            return 0;
        }
        self.insert(
            self.len(),
            Conversation {
                nick: nick.into(),
                ..Default::default()
            },
        );
        self.len() - 1
    }

    /// Shows conversation `i`: its unread count and mention mark are reset.
    pub fn switch_to(&self, i: usize) -> bool {
        if i >= self.len() {
            return false;
        }
        self.current.set(i);
        if self.is_room(i) {
            self.listed.set(i);
        }
        self.update(i, |c| {
            c.unread = 0;
            c.mentioned = false;
        });
        true
    }

    /// Closes conversation `i` (not the default room); the one shown next is current (its
    /// index returned, for `switch_to`).
    pub fn remove(&self, i: usize) -> Option<usize> {
        if i == 0 || i >= self.len() {
            return None;
        }
        self.model.remove(i);
        self.entries.borrow_mut().remove(i);
        if self.is_room(i) {
            self.rooms.set(self.rooms.get() - 1);
        }
        self.listed
            .set(after_removal(self.listed.get(), i).min(self.rooms.get() - 1));
        self.current.set(after_removal(self.current.get(), i));
        Some(self.current.get())
    }

    /// Back to the default room alone, unnamed (another server: its rooms are others).
    pub fn forget_rooms(&self) {
        while self.rooms.get() > 1 {
            self.remove(1);
        }
        self.update(0, |c| c.room = Default::default());
        let mut entries = self.entries.borrow_mut();
        entries[0].topic.clear();
        entries[0].running = false;
    }

    /// Changes conversation `i`'s row, if it changed.
    pub fn update(&self, i: usize, change: impl FnOnce(&mut Conversation)) {
        if let Some(old) = self.model.row_data(i) {
            let mut new = old.clone();
            change(&mut new);
            if new != old {
                self.model.set_row_data(i, new);
            }
        }
    }

    /// A line said in `i` while another is shown: one more unread, marked if it names the user.
    pub fn note_unseen(&self, i: usize, mention: bool) {
        if i != self.current.get() {
            self.update(i, |c| {
                c.unread = c.unread.saturating_add(1);
                c.mentioned |= mention;
            });
        }
    }

    pub fn topic(&self, i: usize) -> String {
        self.entries
            .borrow()
            .get(i)
            .map(|e| e.topic.clone())
            .unwrap_or_default()
    }

    pub fn set_topic(&self, i: usize, topic: &str) {
        if let Some(entry) = self.entries.borrow_mut().get_mut(i) {
            entry.topic = topic.to_string();
        }
    }

    /// The user runs room `i`.
    pub fn running(&self, i: usize) -> bool {
        self.entries.borrow().get(i).is_some_and(|e| e.running)
    }

    pub fn set_running(&self, i: usize, running: bool) {
        if let Some(entry) = self.entries.borrow_mut().get_mut(i) {
            entry.running = running;
        }
    }

    /// Every room's member list, for a change that concerns them all (someone's new name).
    pub fn each_room_users(&self) -> Vec<Rc<VecModel<UserEntry>>> {
        let entries = self.entries.borrow();
        entries[..self.rooms.get()]
            .iter()
            .map(|e| e.users.clone())
            .collect()
    }
}
