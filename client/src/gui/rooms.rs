//! Rooms in the window: which conversation a room's line goes to, the browse dialog (`/rooms`),
//! making a room, its topic, and leaving it.

use std::rc::Rc;

use charla_proto::room_key;
use slint::{ComponentHandle, Model};

use super::{close_dialog, UiState};
use crate::net::Command;
use crate::present::Shown;
use crate::{AppWindow, Dialog, LogKind, RoomEntry};

/// Rooms the browse dialog lists, at most: a page (the server sends 100), which a hostile server
/// cannot make longer.
const MAX_LISTED_ROOMS: usize = charla_proto::ROOMS_PAGE;

/// The callbacks of the rooms' dialogs.
pub(super) fn bind(app: &AppWindow, state: &Rc<UiState>) {
    let weak = app.as_weak();
    let ui = state.clone();
    app.on_browse_rooms(move || {
        if let Some(app) = weak.upgrade() {
            ui.browse_rooms(&app);
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_rooms_next_page(move || {
        if weak.upgrade().is_some_and(|app| app.get_online()) {
            let next = ui.room_page.get() + 1;
            (ui.commands)(Command::Send(format!("/rooms {next}")));
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_join_room(move |name| {
        if let Some(app) = weak.upgrade() {
            ui.join_room(&app, &name, None);
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_create_room(move |name, private| {
        if let Some(app) = weak.upgrade() {
            ui.join_room(&app, &name, Some(private));
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_save_topic(move |text| {
        let Some(app) = weak.upgrade() else { return };
        // The room the dialog was opened for, whichever is shown now.
        let room = app.get_topic_room();
        if room.is_empty() {
            return;
        }
        // One line; none: no topic (`-`).
        let text = text.trim().replace(['\n', '\r'], " ");
        let text = if text.is_empty() { "-".into() } else { text };
        (ui.commands)(Command::Send(format!("/topic {room} {text}")));
        close_dialog(&app, Dialog::Topic);
        app.invoke_focus_input();
    });
}

impl UiState {
    /// Rooms… : the dialog opens at once and fills as the server's list comes.
    fn browse_rooms(&self, app: &AppWindow) {
        self.room_list.clear();
        self.room_page.set(0);
        app.set_room_total(0);
        app.set_room_list_more(false);
        app.set_rooms_error("".into());
        app.set_dialog(Dialog::Rooms);
        (self.commands)(Command::Send("/rooms".into()));
    }

    /// Join in the browse dialog (`private`: none), or Make it (open or private): a room
    /// already shown is switched to; another is asked for and shown when the server lets the
    /// user in.
    fn join_room(&self, app: &AppWindow, typed: &str, private: Option<bool>) {
        let name = format!("#{}", typed.trim().trim_start_matches('#'));
        if let Err(error) = charla_proto::validate_room(&name) {
            let strings = app.global::<crate::Strings>();
            let why = strings.invoke_err_bad_room_name(error.to_string().into());
            app.set_rooms_error(why);
            return;
        }
        // A room shown already is switched to; joined again all the same (harmless when in it),
        // for the default room, which a user may have left.
        if let Some(i) = self.conv.room_index(&name).filter(|_| private.is_none()) {
            close_dialog(app, Dialog::Rooms);
            self.switch_to(app, i);
            app.invoke_focus_input();
            (self.commands)(Command::Send(format!("/join {name}")));
            return;
        }
        let line = match private {
            None => format!("/join {name}"),
            Some(true) => format!("/create {name} private"),
            Some(false) => format!("/create {name} open"),
        };
        *self.joining.borrow_mut() = Some(room_key(&name));
        app.set_new_room_name("".into());
        close_dialog(app, Dialog::Rooms);
        app.invoke_focus_input();
        (self.commands)(Command::Send(line));
    }

    /// The conversation a line of `room` goes to. The user's own `JOIN` says the user is in the
    /// room: its tab opens (and is shown, if the user asked to join it). A room the window has
    /// no tab for gets none from any other line (`/users #room` answers for rooms one is not
    /// in; after a reconnection the rooms come back into the tabs they had).
    pub(super) fn room_for(&self, app: &AppWindow, room: &str, shown: &Shown) -> Option<usize> {
        let unnamed = self.conv.room_name(0).is_none();
        if let Some(i) = self.conv.for_room(Some(room)) {
            if unnamed {
                // The server has rooms: the default room's name, and what rooms offer, show.
                self.shown_changed(app);
            }
            return Some(i);
        }
        let entered = matches!(shown, Shown::Joined(nick) if *nick == app.get_my_nick().as_str());
        if !entered {
            return None;
        }
        let i = self.conv.open_room(room)?;
        self.rooms_changed();
        let asked = self.joining.borrow().as_deref() == Some(&room_key(room));
        if asked {
            self.joining.borrow_mut().take();
            self.switch_to(app, i);
        } else {
            // Another tab before the one shown moved it: the window follows.
            self.shown_changed(app);
        }
        Some(i)
    }

    /// The user is out of room `i` (left it, or was put out): its last line is told in the
    /// default room, and its tab closes.
    pub(super) fn left_room(&self, app: &AppWindow, i: usize) {
        if i == 0 {
            return;
        }
        if let (Some(name), Some(last)) = (
            self.conv.room_name(i),
            self.conv.log(i).and_then(|log| {
                let rows = log.row_count();
                log.row_data(rows.checked_sub(1)?)
            }),
        ) {
            self.push_log_in(0, LogKind::System, format!("[{name}] {}", last.text));
        }
        self.remove_conversation(app, i);
        self.rooms_changed();
    }

    /// A line of the answer to `/rooms` while the browse dialog is open: into its list.
    pub(super) fn listed(&self, app: &AppWindow, shown: Shown) {
        match shown {
            // A page replaces the one before.
            Shown::RoomCount { total, page, pages } => {
                self.room_list.clear();
                self.room_page.set(page);
                app.set_room_total(total.min(i32::MAX as usize) as i32);
                app.set_room_list_more(page < pages);
            }
            Shown::Room {
                name,
                members,
                private,
                topic,
            } if self.room_list.row_count() < MAX_LISTED_ROOMS => {
                self.room_list.push(RoomEntry {
                    name: name.into(),
                    members: members.min(i32::MAX as usize) as i32,
                    private,
                    topic: topic.unwrap_or_default().into(),
                });
            }
            _ => {}
        }
    }
}
