//! A user's menu (… beside a name): invitations to the user's rooms, and the Kick, Ban and Mute
//! of the server's operators and of those who run the room shown.

use slint::{ComponentHandle, Model, ModelRc, SharedString, VecModel};

use super::{close_dialog, UiState};
use crate::net::Command;
use crate::{AppWindow, Dialog, ModerationAction, Strings, UserEntry};

impl UiState {
    /// … beside `nick`: the rooms they could be invited to (the user's, but the default room,
    /// and not those `nick` is in already) and, for those who may, moderation in the room shown.
    pub(super) fn open_user_menu(&self, app: &AppWindow, nick: &str) {
        let rooms: Vec<SharedString> = (1..self.conv.len())
            .filter(|&i| self.conv.is_room(i))
            .filter(|&i| !self.conv.users(i).iter().any(|u| u.nick == nick))
            .filter_map(|i| self.conv.room_name(i))
            .map(SharedString::from)
            .collect();
        app.set_invite_rooms(ModelRc::new(VecModel::from(rooms)));
        app.set_invite_choice(0);
        app.set_moderate_nick(nick.into());
        app.set_moderate_room(self.moderated_room().unwrap_or_default().into());
        app.set_moderate_reason("".into());
        app.set_moderate_minutes("".into());
        app.set_moderate_error("".into());
        app.set_dialog(Dialog::Moderate);
    }

    /// The room Kick, Ban and Mute act in: the one shown, but the default room (there they act
    /// on the whole server, as on a server without rooms).
    fn moderated_room(&self) -> Option<String> {
        let shown = self.conv.listed_room();
        (shown != 0).then(|| self.conv.room_name(shown)).flatten()
    }

    /// Invite in the user's menu.
    pub(super) fn invite(&self, app: &AppWindow, room: &str) {
        let nick = app.get_moderate_nick().to_string();
        close_dialog(app, Dialog::Moderate);
        app.invoke_focus_input();
        (self.commands)(Command::Send(format!("/invite {nick} {room}")));
    }

    /// The operator confirmed Kick, Ban or Mute in the dialog: the command goes to the server,
    /// whose answer (`KICK`, a notice, an error) shows in the log.
    pub(super) fn moderate(&self, app: &AppWindow, action: ModerationAction) {
        let nick = app.get_moderate_nick().to_string();
        let room = app.get_moderate_room().to_string();
        let reason = app.get_moderate_reason().trim().replace(['\n', '\r'], " ");
        let minutes = app.get_moderate_minutes().trim().to_string();
        let minutes_ok = minutes.is_empty()
            || minutes
                .parse::<u64>()
                .is_ok_and(|m| (1..=charla_proto::command::MAX_MINUTES).contains(&m));
        if !minutes_ok && action != ModerationAction::Kick {
            app.set_moderate_error(app.global::<Strings>().invoke_bad_minutes());
            return;
        }
        // Minutes always go (0: until lifted), so that a reason starting with a number is not
        // taken for them.
        let minutes = if minutes.is_empty() {
            "0".into()
        } else {
            minutes
        };
        // In a room: `/kick #room nick …`; on the server: `/kick nick …`.
        let words: Vec<&str> = match action {
            ModerationAction::Kick => vec!["/kick", &room, &nick, &reason],
            ModerationAction::Ban => vec!["/ban", &room, &nick, &minutes, &reason],
            ModerationAction::Mute => vec!["/mute", &room, &nick, &minutes],
        };
        let line = words
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        close_dialog(app, Dialog::Moderate);
        app.invoke_focus_input();
        (self.commands)(Command::Send(line));
    }

    /// Marks `nick` in room `i`'s list as a server operator or not (`OPER`, `DEOPER`); the user
    /// is one in every room once the server says so in one.
    pub(super) fn set_operator(&self, app: &AppWindow, i: usize, nick: &str, operator: bool) {
        mark_user(&self.conv.users(i), nick, |u| u.operator = operator);
        if app.get_my_nick() == nick {
            self.server_operator.set(operator);
            self.show_powers(app);
        }
    }

    /// Marks `nick` as one who runs room `i` or not (`OP`, `DEOP`).
    pub(super) fn set_room_operator(&self, app: &AppWindow, i: usize, nick: &str, on: bool) {
        mark_user(&self.conv.users(i), nick, |u| u.room_operator = on);
        if app.get_my_nick() == nick {
            self.conv.set_running(i, on);
            self.show_powers(app);
        }
    }

    /// What the window offers for the conversation shown: moderation to the server's operators
    /// and those who run the room, the topic to them, invitations once the user has a room of
    /// their own to invite to.
    pub(super) fn show_powers(&self, app: &AppWindow) {
        let room = self.conv.listed_room();
        let runs = self.conv.running(room);
        let operator = self.server_operator.get();
        let shown_is_room = self.conv.is_room(self.conv.current());
        app.set_operator(operator || runs);
        app.set_may_edit_topic(shown_is_room && (operator || runs));
        app.set_may_invite((1..self.conv.len()).any(|i| self.conv.room_name(i).is_some()));
    }
}

/// Changes `nick`'s row in a user list, if it is there.
pub(super) fn mark_user(
    users: &VecModel<UserEntry>,
    nick: &str,
    change: impl FnOnce(&mut UserEntry),
) {
    if let Some(i) = users.iter().position(|u| u.nick == nick) {
        if let Some(mut user) = users.row_data(i) {
            change(&mut user);
            users.set_row_data(i, user);
        }
    }
}
