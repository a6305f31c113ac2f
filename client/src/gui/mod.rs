//! Binds the Slint window (ui/*.slint) to the network thread. UI callbacks never do I/O: they hand
//! a command to the network thread, whose events come back through the event loop.

mod conversations;
mod hosting;
mod moderation;
mod paste;
mod rooms;

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{mpsc, Arc};

use charla_proto::{is_room, notice, parse_client_line, validate_nick, ClientLine, ErrorCode};
use slint::{ComponentHandle, Model, ModelRc, SharedString, VecModel};

use crate::config::{absolute_path, next_text_scale, HistoryNoticesSeen, KnownServers, Settings};
use crate::glyphs;
use crate::host::{HostError, HostFiles, HostedServer};
use crate::identity::Identity;
use crate::net::{Batch, Command, Event, Slot, Target, Trust};
use crate::notify::{Notification, Notifier};
use crate::present::{
    clock, contained, fingerprint_groups, first_link, nick_color, split_room, today, DayMarker,
    Decoder, Shown,
};
use crate::typing::{mentions, InputHistory, NickCompleter};
use crate::words;
use crate::{AppWindow, Dialog, LogEntry, LogKind, Page, RoomEntry, Strings, UserEntry};

use conversations::Conversations;
pub use conversations::{MAX_PRIVATE_CONVERSATIONS, MAX_ROOMS, OTHER_LOG_LINES};
pub use hosting::host_rooms;
pub use paste::pasted_lines;

/// Names in one room's user list, at most (`JOIN` lines from a hostile server).
const MAX_LISTED_USERS: usize = 20_000;

/// Oldest lines are dropped past this (unless `--log-lines` says otherwise), so that a long or
/// flooded session stays light.
pub const MAX_LOG_LINES: usize = crate::config::DEFAULT_LOG_LINES;

/// A line nobody said (a notice, a join, a private line as worded): its first web address offered
/// to open, and a character no font has shown as `�` rather than as nothing at all.
fn log_entry(time: String, kind: LogKind, text: &str) -> LogEntry {
    LogEntry {
        time: time.into(),
        kind,
        link: first_link(text).unwrap_or_default().into(),
        text: glyphs::visible(text).as_ref().into(),
        ..Default::default()
    }
}

/// Who said a line, and how: `ana: hola` or `* ana saluda`.
#[derive(Clone, Copy)]
enum Said<'a> {
    Message(&'a str),
    Action(&'a str),
}

/// A log line as one string, the nickname first (`ana: hola`): what a reader sees in it.
pub fn line_text(entry: &LogEntry) -> String {
    if entry.nick.is_empty() {
        entry.text.to_string()
    } else {
        format!("{} {}", entry.nick, entry.text)
    }
}

/// What reaches the UI thread: network events, with server lines already decoded.
#[derive(Debug, Clone)]
pub enum UiEvent {
    Net(Event),
    /// A line that belongs to no room, or (from a server without rooms) to its only one.
    Shown(Shown),
    /// A line of room `room` (for a client that said `/cap rooms`: `#room <line>`).
    InRoom {
        room: String,
        shown: Shown,
    },
}

/// The window's models, and what the UI thread remembers from one event to the next.
struct UiState {
    /// The state itself, for the timers' callbacks.
    me: std::rc::Weak<UiState>,
    /// Where other threads post what the window is to show.
    mailbox: Mailbox,
    /// The rooms, then private conversations, each with its own log; which is shown.
    conv: Conversations,
    commands: Rc<dyn Fn(Command)>,
    /// Presented to servers at every connection; none with --no-identity.
    identity: Option<Arc<Identity>>,
    /// Up/Down in the input.
    input_history: RefCell<InputHistory>,
    /// Tab in the input.
    completer: RefCell<NickCompleter>,
    /// The date of the last live line, for a separator when it changes.
    days: RefCell<DayMarker>,
    /// The user asked for the user list: show the next one in the log too (the panel always
    /// follows it).
    users_requested: Cell<bool>,
    /// Exit was asked: quit the event loop once the connection is closed.
    exiting: Cell<bool>,
    /// The slots of the network's batches shown in this turn of the event loop, given back on the
    /// next turn by `release_slots`. Given back at once, they would let the network thread post
    /// a new batch while the event loop still runs the posted ones, and (on X11 at least) the
    /// loop draws the window only once none is left: a flood would never be drawn.
    shown_slots: RefCell<Vec<Slot>>,
    release_slots: slint::Timer,
    /// Restarted by every batch shown: once the network has been quiet for a while, the memory
    /// freed since (a start, a burst, a history) goes back to the system.
    quiet_timer: slint::Timer,
    /// History lines shown since the last live line, and the conversation they were shown in: a
    /// marker follows them there.
    history_run: Cell<usize>,
    history_room: Cell<usize>,
    /// The connection was lost since the last marker: the history that comes is what was missed.
    was_away: Cell<bool>,
    /// The server being talked to, and those whose history notice was shown (once per server).
    server: RefCell<String>,
    history_notices: HistoryNoticesSeen,
    /// Where the settings, known servers and the hosted server's files are.
    config_dir: PathBuf,
    /// The server this window started ("Host a chat on this computer"), stopped with it.
    hosted: RefCell<Option<HostedServer>>,
    /// The lines of a paste waiting for the user's answer, and those being sent.
    paste_offered: RefCell<Vec<String>>,
    paste_queue: RefCell<std::collections::VecDeque<String>>,
    paste_timer: slint::Timer,
    /// While reconnecting: why the connection was lost, and the seconds left before the next
    /// attempt, counted down in the status line once a second.
    retry: RefCell<Option<(SharedString, u64)>>,
    retry_timer: slint::Timer,
    /// The window is the one the user is in; lines said while it is not count as unread.
    window_active: Cell<bool>,
    notifier: RefCell<Notifier>,
    /// The server says the user is one of its operators.
    server_operator: Cell<bool>,
    /// The room of the user's last line: a refusal (muted) is marked there.
    last_said: Cell<usize>,
    /// A room the user asked to join or make: shown when the server lets them in.
    joining: RefCell<Option<String>>,
    /// The server's rooms as `/rooms` lists them, for the browse dialog.
    room_list: Rc<VecModel<RoomEntry>>,
    room_page: Cell<usize>,
    /// `--join`: rooms to join at the first connection, besides those the window shows.
    start_rooms: RefCell<Vec<String>>,
    /// The room whose user list was the last line: the operators' lines that follow are part
    /// of it, not news.
    after_users: Cell<Option<usize>>,
}

/// What reaches the UI thread from other threads: the network's batches, and the hosted server's
/// start. It comes over a channel, the window told by its `take-arrivals` callback: the closures
/// that cross to the UI thread must be `Send`, which the state's `Rc`s are not.
enum Arrival {
    Batch(Vec<UiEvent>, Slot),
    Hosted(HostFiles, Result<HostedServer, HostError>),
}

/// Sends an arrival to the window's thread, and has the window take it.
#[derive(Clone)]
struct Mailbox {
    sender: mpsc::Sender<Arrival>,
    window: slint::Weak<AppWindow>,
}

impl Mailbox {
    fn post(&self, arrival: Arrival) {
        // Without a window the arrival is dropped (a batch's slot with it).
        if self.sender.send(arrival).is_ok() {
            let _ = self
                .window
                .upgrade_in_event_loop(|app| app.invoke_take_arrivals());
        }
    }
}

/// The bound window: what the program (and the tests) tell it from outside its callbacks.
pub struct Gui {
    state: Rc<UiState>,
}

/// How long the network stays quiet before the memory freed meanwhile is given back.
const QUIET_BEFORE_TRIM: std::time::Duration = std::time::Duration::from_secs(1);

/// Sets up models and callbacks. `commands` hands a command to the network thread.
pub fn bind(
    app: &AppWindow,
    settings: &Settings,
    config_dir: PathBuf,
    identity: Option<Arc<Identity>>,
    commands: Rc<dyn Fn(Command)>,
) -> Gui {
    match &identity {
        Some(identity) => app.set_identity(fingerprint_groups(&identity.fingerprint).into()),
        None => app.set_identity_note(app.global::<Strings>().invoke_no_identity_flag()),
    }
    let (sender, arrivals) = mpsc::channel();
    let state = Rc::new_cyclic(|me| UiState {
        me: me.clone(),
        mailbox: Mailbox {
            sender,
            window: app.as_weak(),
        },
        conv: Conversations::new(settings.log_lines),
        commands,
        identity,
        input_history: RefCell::new(InputHistory::default()),
        completer: RefCell::new(NickCompleter::default()),
        days: RefCell::new(DayMarker::default()),
        users_requested: Cell::new(false),
        exiting: Cell::new(false),
        shown_slots: RefCell::new(Vec::new()),
        release_slots: slint::Timer::default(),
        quiet_timer: slint::Timer::default(),
        history_run: Cell::new(0),
        history_room: Cell::new(0),
        was_away: Cell::new(false),
        server: RefCell::new(String::new()),
        history_notices: HistoryNoticesSeen::in_dir(&config_dir),
        config_dir: config_dir.clone(),
        hosted: RefCell::new(None),
        paste_offered: RefCell::new(Vec::new()),
        paste_queue: RefCell::new(std::collections::VecDeque::new()),
        paste_timer: slint::Timer::default(),
        retry: RefCell::new(None),
        retry_timer: slint::Timer::default(),
        window_active: Cell::new(true),
        notifier: RefCell::new(Notifier::default()),
        server_operator: Cell::new(false),
        last_said: Cell::new(0),
        joining: RefCell::new(None),
        room_list: Rc::new(VecModel::default()),
        room_page: Cell::new(0),
        after_users: Cell::new(None),
        start_rooms: RefCell::new(Vec::new()),
    });
    app.set_log(ModelRc::from(state.conv.main_log()));
    app.set_conversations(state.conv.model());
    app.set_users(ModelRc::from(state.conv.users(0)));
    app.set_room_list(ModelRc::from(state.room_list.clone()));
    // Armed now for the window's start-up, restarted by every batch from the network.
    state.quiet_timer.start(
        slint::TimerMode::SingleShot,
        QUIET_BEFORE_TRIM,
        crate::heap::give_back_free_memory,
    );
    app.set_host(settings.host.as_str().into());
    app.set_port(settings.port.to_string().into());
    app.set_nick(settings.nick.as_str().into());
    app.set_host_port(settings.host_port.to_string().into());
    app.set_ca_path(settings.ca.as_str().into());
    app.set_version(env!("CARGO_PKG_VERSION").into());
    app.set_theme(settings.theme.as_str().into());
    app.set_text_scale(settings.text_scale);

    let weak = app.as_weak();
    let dir = config_dir.clone();
    app.on_zoom(move |step| {
        let Some(app) = weak.upgrade() else { return };
        let scale = next_text_scale(app.get_text_scale(), step);
        app.set_text_scale(scale);
        let mut settings = Settings::load(&dir);
        settings.text_scale = scale;
        let _ = settings.save(&dir);
    });

    let weak = app.as_weak();
    let dir = config_dir.clone();
    app.on_choose_theme(move |theme| {
        let Some(app) = weak.upgrade() else { return };
        app.set_theme(theme.clone());
        // Remembered with the other settings; not being able to is not worth an error.
        let mut settings = Settings::load(&dir);
        settings.theme = theme.to_string();
        let _ = settings.save(&dir);
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_connect(move || {
        let Some(app) = weak.upgrade() else { return };
        ui.connect(&app, &config_dir);
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_send(move |text| {
        let Some(app) = weak.upgrade() else { return };
        ui.send_line(&app, &text);
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_list_users(move || {
        if weak.upgrade().is_some_and(|app| app.get_online()) {
            ui.users_requested.set(true);
            // In a room: its members.
            let line = match ui.conv.room_name(ui.conv.listed_room()) {
                Some(room) => format!("/users {room}"),
                None => "/users".into(),
            };
            (ui.commands)(Command::Send(line));
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_exit(move || {
        if let Some(app) = weak.upgrade() {
            ui.exit(&app);
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_user_clicked(move |nick| {
        let Some(app) = weak.upgrade() else { return };
        if nick == app.get_my_nick() {
            return;
        }
        let i = ui.conv.open_private(&nick);
        ui.switch_to(&app, i);
        app.invoke_focus_input();
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_switch_to(move |i| {
        let Some(app) = weak.upgrade() else { return };
        ui.switch_to(&app, i.max(0) as usize);
        app.invoke_focus_input();
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_close_conversation(move |i| {
        let Some(app) = weak.upgrade() else { return };
        ui.close_conversation(&app, i.max(0) as usize);
        app.invoke_focus_input();
    });

    let ui = state.clone();
    app.on_recall(move |up, current| {
        let mut history = ui.input_history.borrow_mut();
        let line = if up {
            history.previous(&current)
        } else {
            history.following()
        };
        line.map_or(current, SharedString::from)
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_complete(move |current| {
        let Some(app) = weak.upgrade() else {
            return SharedString::new();
        };
        let me = app.get_my_nick();
        let nicks: Vec<SharedString> = ui
            .conv
            .users(ui.conv.current())
            .iter()
            .map(|u| u.nick)
            .filter(|n| *n != me)
            .collect();
        let completed = ui
            .completer
            .borrow_mut()
            .complete(&current, nicks.iter().map(SharedString::as_str));
        completed.map(SharedString::from).unwrap_or_default()
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_host_start(move || {
        if let Some(app) = weak.upgrade() {
            ui.start_hosting(&app);
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_pasted(move |text| weak.upgrade().is_some_and(|app| ui.pasted(&app, &text)));

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_paste_answer(move |send| {
        let Some(app) = weak.upgrade() else { return };
        if send {
            ui.send_pasted(&app);
        } else {
            close_dialog(&app, Dialog::Paste);
            ui.paste_offered.borrow_mut().clear();
        }
        app.invoke_focus_input();
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_moderate(move |action| {
        if let Some(app) = weak.upgrade() {
            ui.moderate(&app, action);
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_open_user_menu(move |nick| {
        if let Some(app) = weak.upgrade() {
            ui.open_user_menu(&app, &nick);
        }
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_invite(move |room| {
        if let Some(app) = weak.upgrade() {
            ui.invite(&app, &room);
        }
    });

    rooms::bind(app, &state);

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_trust_answer(move |accepted| {
        let Some(app) = weak.upgrade() else { return };
        close_dialog(&app, Dialog::Trust);
        if !accepted {
            app.set_busy(false);
            app.set_login_status("".into());
        }
        (ui.commands)(Command::TrustAnswer(accepted));
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.window().on_close_requested(move || {
        if let Some(app) = weak.upgrade() {
            ui.exit(&app);
        }
        slint::CloseRequestResponse::KeepWindowShown
    });

    let weak = app.as_weak();
    let ui = state.clone();
    app.on_take_arrivals(move || {
        let Some(app) = weak.upgrade() else { return };
        while let Ok(arrival) = arrivals.try_recv() {
            match arrival {
                Arrival::Batch(events, slot) => ui.show_batch(&app, events, slot),
                Arrival::Hosted(files, started) => ui.host_started(&app, &files, started),
            }
        }
    });

    Gui { state }
}

/// The UI's events from a line of the server: decoded, with its room taken off first.
fn decoded(decoder: &mut Decoder, line: &str) -> Option<UiEvent> {
    let (room, rest) = split_room(line);
    let shown = decoder.decode(&rest)?;
    Some(match room {
        Some(room) => UiEvent::InRoom {
            room: room.to_string(),
            shown,
        },
        None => UiEvent::Shown(shown),
    })
}

impl Gui {
    /// The network's batches as the UI thread gets them; runs on the network thread. Each batch
    /// is shown in one go, and its slot is held until then (and a little longer, see
    /// `UiState::shown_slots`), so that the network thread reads no further ahead of the window
    /// than its bound.
    pub fn event_sink(&self) -> impl FnMut(Batch) + Send + 'static {
        let mailbox = self.state.mailbox.clone();
        let mut decoder = Decoder::default();
        move |batch: Batch| {
            let Batch { events, slot } = batch;
            let ui_events: Vec<UiEvent> = events
                .into_iter()
                .filter_map(|event| match event {
                    Event::Line(line) => decoded(&mut decoder, &line),
                    other => Some(UiEvent::Net(other)),
                })
                .collect();
            if !ui_events.is_empty() {
                mailbox.post(Arrival::Batch(ui_events, slot));
            }
        }
    }

    /// The window became the active one (the user is looking) or stopped being it: the unread
    /// count starts from nothing again when it comes back.
    pub fn window_activated(&self, app: &AppWindow, active: bool) {
        self.state.window_active.set(active);
        if active {
            app.set_unread(0);
        }
    }

    /// The hosted server is listening (or could not start): the window connects to it and shows
    /// what to tell friends.
    pub fn host_started(
        &self,
        app: &AppWindow,
        files: &HostFiles,
        started: Result<HostedServer, HostError>,
    ) {
        self.state.host_started(app, files, started);
    }

    /// `charla --join`: rooms to join at the first connection (their tabs open, the default
    /// room stays shown).
    pub fn join_at_start(&self, rooms: Vec<String>) {
        *self.state.start_rooms.borrow_mut() = rooms;
    }

    /// Stops the server this window started, unless it is to keep running (the window is
    /// closing).
    pub fn stop_hosting(&self) {
        self.state.hosted.borrow_mut().take();
    }

    /// Applies one event to the window.
    pub fn apply(&self, app: &AppWindow, event: UiEvent) {
        self.state.apply(app, event);
    }

    /// Applies a batch of events, in order, to the window.
    pub fn apply_batch(&self, app: &AppWindow, events: Vec<UiEvent>) {
        for event in events {
            self.state.apply(app, event);
        }
    }
}

impl UiState {
    fn show_batch(&self, app: &AppWindow, events: Vec<UiEvent>, slot: Slot) {
        for event in events {
            self.apply(app, event);
        }
        self.shown_slots.borrow_mut().push(slot);
        self.quiet_timer.restart();
        if !self.release_slots.running() {
            // Timers run when the event loop starts its next turn, after it has drawn this one.
            let me = self.me.clone();
            self.release_slots.start(
                slint::TimerMode::SingleShot,
                std::time::Duration::ZERO,
                move || {
                    if let Some(state) = me.upgrade() {
                        state.shown_slots.borrow_mut().clear();
                    }
                },
            );
        }
    }

    fn connect(&self, app: &AppWindow, config_dir: &std::path::Path) {
        let host = app.get_host().trim().to_string();
        let nick = app.get_nick().trim().to_string();
        // Saved for later runs, which may start in another directory.
        let ca = absolute_path(app.get_ca_path().trim());
        app.set_ca_path(ca.as_str().into());
        let Some(port) = app.get_port().trim().parse::<u16>().ok().filter(|&p| p > 0) else {
            app.set_login_error(app.global::<Strings>().invoke_bad_port());
            return;
        };
        if let Some(why) = nick_refused(app, &nick) {
            app.set_login_error(why);
            return;
        }
        // Remembering the values is a convenience: failing to is not worth stopping for.
        let _ = self
            .settings_now(app, host.clone(), port, ca.clone())
            .save(config_dir);
        let trust = if ca.is_empty() {
            Trust::Pinned(KnownServers::in_dir(config_dir))
        } else {
            Trust::CaFile(PathBuf::from(ca))
        };
        app.set_login_error("".into());
        app.set_busy(true);
        self.exiting.set(false);
        let password = Some(app.get_password().to_string()).filter(|p| !p.is_empty());
        let target = Target {
            host,
            port,
            nick,
            trust,
            password,
            identity: self.identity.clone(),
        };
        // Another server: the rooms of the last one are not its rooms.
        if *self.server.borrow() != target.server() {
            self.conv.forget_rooms();
            self.shown_changed(app);
        }
        // `--join`'s rooms until a connection is made (their tabs keep them after that).
        let mut rooms = self.conv.joined_rooms();
        rooms.extend(self.start_rooms.borrow().iter().cloned());
        (self.commands)(Command::Rooms(rooms));
        (self.commands)(Command::Connect(target));
    }

    /// Enter or Send: the line goes to the network and, if it is the user's own text, into the
    /// log at once (the server does not echo it back).
    fn send_line(&self, app: &AppWindow, text: &str) {
        if !app.get_online() || text.trim().is_empty() {
            // Nothing is lost: the text stays in the input until it can be sent.
            return;
        }
        self.input_history.borrow_mut().sent(text);
        if self.send_text(app, &self.addressed(text), true) {
            app.set_input("".into());
        }
    }

    /// A line that is not a command is for the conversation shown: the person of a private one,
    /// the room of a room (named: the server's plain lines go to the room joined last).
    fn addressed(&self, text: &str) -> String {
        let shown = self.conv.current();
        let command = text.starts_with('/') && !text.starts_with("//");
        let body = text.strip_prefix('/').unwrap_or(text);
        if let Some(room) = self.conv.room_name(shown) {
            return match parse_client_line(text) {
                ClientLine::Me(action) => format!("/action {room} {action}"),
                // The members of the room shown, not of the one joined last.
                ClientLine::Users => format!("/users {room}"),
                _ if command => text.to_string(),
                _ => format!("/msg {room} {body}"),
            };
        }
        let Some(nick) = self.conv.nick(shown) else {
            return text.to_string();
        };
        // There are no private actions: /me in a private conversation is said to that person.
        match parse_client_line(text) {
            ClientLine::Me(action) => format!("/msg {nick} * {action}"),
            _ if command => text.to_string(),
            _ => format!("/msg {nick} {body}"),
        }
    }

    /// Sends a line (a message or a command) and shows it; false when it made the window leave.
    /// `show_conversation`: a private line opens its conversation and shows it (typed), or
    /// only opens it (pasted lines, sent later).
    fn send_text(&self, app: &AppWindow, text: &str, show_conversation: bool) -> bool {
        let me = app.get_my_nick().to_string();
        let strings = app.global::<Strings>();
        match parse_client_line(text) {
            // Without a room named, to the one the server sends plain lines to: the default
            // room, on a server without rooms.
            ClientLine::Message(body) => self.push_own(0, Said::Message(&me), body),
            ClientLine::Me(body) => self.push_own(0, Said::Action(&me), body),
            ClientLine::Msg { to, text } if is_room(to) => {
                if let Some(i) = self.conv.room_index(to) {
                    self.push_own(i, Said::Message(&me), text);
                }
            }
            ClientLine::Action { room, text } => {
                if let Some(i) = self.conv.room_index(room) {
                    self.push_own(i, Said::Action(&me), text);
                }
            }
            ClientLine::Msg { to, text } => {
                let i = self.conv.open_private(to);
                if show_conversation {
                    self.switch_to(app, i);
                }
                self.push_log_in(
                    i,
                    LogKind::Private,
                    strings
                        .invoke_private_to(to.into(), contained(text).as_ref().into())
                        .to_string(),
                );
            }
            ClientLine::Users | ClientLine::RoomUsers(_) => self.users_requested.set(true),
            // Typed as in the dialog: the room is shown once the server lets the user in.
            ClientLine::Join(room) | ClientLine::Create { room, .. } => {
                match self.conv.room_index(room) {
                    Some(i) => self.switch_to(app, i),
                    None => *self.joining.borrow_mut() = Some(charla_proto::room_key(room)),
                }
            }
            // The client's own list, in the user's language; the server's is in English.
            ClientLine::Help => {
                for line in strings.invoke_help().lines() {
                    self.push_log_in(self.conv.current(), LogKind::System, line.to_string());
                }
                return true;
            }
            ClientLine::Quit(_) => {
                app.set_input("".into());
                self.exit(app);
                return false;
            }
            _ => {}
        }
        (self.commands)(Command::Send(text.to_string()));
        true
    }

    /// The settings as the window has them now, with this server.
    fn settings_now(&self, app: &AppWindow, host: String, port: u16, ca: String) -> Settings {
        Settings {
            host,
            port,
            nick: app.get_nick().trim().to_string(),
            ca,
            theme: app.get_theme().to_string(),
            text_scale: app.get_text_scale(),
            log_lines: self.conv.log_lines(),
            host_port: app
                .get_host_port()
                .trim()
                .parse()
                .unwrap_or(charla_proto::DEFAULT_PORT),
        }
    }

    fn exit(&self, app: &AppWindow) {
        if app.get_online() {
            self.exiting.set(true);
            (self.commands)(Command::Quit(None));
        } else {
            (self.commands)(Command::Shutdown);
            let _ = slint::quit_event_loop();
        }
    }

    /// Counts the seconds to the next connection attempt down in the status line, once a
    /// second, until it is made (each failed attempt starts a new count).
    fn count_down_retry(&self, app: &AppWindow, reason: SharedString, seconds: u64) {
        *self.retry.borrow_mut() = Some((reason, seconds));
        let weak = app.as_weak();
        let me = self.me.clone();
        self.retry_timer.start(
            slint::TimerMode::Repeated,
            std::time::Duration::from_secs(1),
            move || {
                let (Some(app), Some(state)) = (weak.upgrade(), me.upgrade()) else {
                    return;
                };
                let mut retry = state.retry.borrow_mut();
                let Some((reason, left)) = retry.as_mut() else {
                    return;
                };
                *left = left.saturating_sub(1);
                let strings = app.global::<Strings>();
                let text = if *left == 0 {
                    strings.invoke_reconnecting(reason.clone())
                } else {
                    strings.invoke_lost(reason.clone(), (*left).min(i32::MAX as u64) as i32)
                };
                if *left == 0 {
                    *retry = None;
                    state.retry_timer.stop();
                }
                app.set_chat_status(text);
            },
        );
    }

    fn stop_retry_countdown(&self) {
        *self.retry.borrow_mut() = None;
        self.retry_timer.stop();
    }

    fn switch_to(&self, app: &AppWindow, i: usize) {
        if self.conv.switch_to(i) {
            self.shown_changed(app);
        }
    }

    /// The window shows what `self.conv` says is current: its log, its room's members, topic
    /// and what the user may do there.
    fn shown_changed(&self, app: &AppWindow) {
        let i = self.conv.current();
        if let Some(log) = self.conv.log(i) {
            app.set_log(ModelRc::from(log));
        }
        app.set_current_conversation(i as i32);
        let room = self.conv.listed_room();
        app.set_users(ModelRc::from(self.conv.users(room)));
        let name = self.conv.room_name(i).unwrap_or_default();
        app.set_room_name(name.as_str().into());
        app.set_topic(self.conv.topic(i).as_str().into());
        app.set_rooms_supported(self.conv.room_name(0).is_some());
        self.show_powers(app);
    }

    /// × on a conversation: a private one's lines go with it; a room is left (`/part`). The
    /// default room cannot be closed.
    fn close_conversation(&self, app: &AppWindow, i: usize) {
        // Offline too: the line waits for the connection, and the room is not resumed into.
        if let Some(room) = self.conv.room_name(i).filter(|_| i > 0) {
            (self.commands)(Command::Send(format!("/part {room}")));
        }
        let was_room = self.conv.is_room(i);
        self.remove_conversation(app, i);
        if was_room {
            self.rooms_changed();
        }
    }

    /// Takes conversation `i` away (not the default room); what pointed past it follows it.
    fn remove_conversation(&self, app: &AppWindow, i: usize) {
        let Some(next) = self.conv.remove(i) else {
            return;
        };
        for index in [&self.history_room, &self.last_said] {
            index.set(conversations::after_removal(index.get(), i));
        }
        self.after_users.set(None);
        self.switch_to(app, next);
    }

    /// The rooms to be in after a reconnection: those the window shows now.
    fn rooms_changed(&self) {
        (self.commands)(Command::Rooms(self.conv.joined_rooms()));
    }

    /// A live line in conversation `i` (the default room is 0), at the current time; after
    /// midnight, the new date first. What was said in private counts as unread while another is
    /// shown.
    fn push_log_in(&self, i: usize, kind: LogKind, text: String) {
        let Some(log) = self.conv.log(i) else { return };
        if let Some(separator) = self.days.borrow_mut().before_line_of(&today()) {
            log.push(log_entry(clock(), LogKind::System, &separator));
        }
        log.push(log_entry(clock(), kind, &text));
        // What was said counts; that they left or changed name does not.
        if kind == LogKind::Private && !self.conv.is_room(i) {
            self.conv.note_unseen(i, false);
        }
    }

    /// A line in the default room (or, without rooms, the chat).
    fn push_log(&self, kind: LogKind, text: String) {
        self.push_log_in(0, kind, text);
    }

    /// The user's own line in room `i`, shown as typed.
    fn push_own(&self, i: usize, said: Said<'_>, body: &str) {
        self.last_said.set(i);
        self.push_said(i, LogKind::Own, said, body);
    }

    /// A live line someone said in room `i`: their nickname in its colour, then the text; while
    /// another conversation is shown, the room counts it.
    fn push_said(&self, i: usize, kind: LogKind, said: Said<'_>, body: &str) {
        let Some(log) = self.conv.log(i) else { return };
        if let Some(separator) = self.days.borrow_mut().before_line_of(&today()) {
            log.push(log_entry(clock(), LogKind::System, &separator));
        }
        log.push(said_entry(clock(), kind, said, body));
        if kind != LogKind::Own {
            self.conv.note_unseen(i, kind == LogKind::Mention);
        }
    }

    /// The server refused the user's public line (muted): the line shown as said is marked as not
    /// sent. The server answers in order and says nothing of lines it takes, so the refused line
    /// is the newest of the user's own lines not marked yet, in the room of the last one.
    fn mark_not_sent(&self, strings: &Strings<'_>) -> usize {
        let i = self.last_said.get();
        let Some(log) = self.conv.log(i) else {
            return 0;
        };
        let rows = log.row_count();
        // A refusal comes one round trip after its line: it is among the last lines.
        for row in (rows.saturating_sub(200)..rows).rev() {
            let Some(entry) = log.row_data(row) else {
                continue;
            };
            if entry.kind == LogKind::Own {
                let text = strings.invoke_not_sent(entry.text.clone());
                log.set_row_data(
                    row,
                    LogEntry {
                        kind: LogKind::Error,
                        text,
                        ..entry
                    },
                );
                break;
            }
        }
        i
    }

    /// After a run of history lines, before what is live (or another room's history): a marker
    /// saying what they were, in their conversation.
    fn end_history_run(&self, app: &AppWindow) {
        let count = self.history_run.replace(0);
        if count == 0 {
            return;
        }
        let strings = app.global::<Strings>();
        let text = if self.was_away.get() {
            strings.invoke_history_away(count as i32)
        } else {
            strings.invoke_history_before(count as i32)
        };
        self.push_log_in(self.history_room.get(), LogKind::System, text.to_string());
    }

    /// A line someone said while the user looks elsewhere: one more in the title's count, and a
    /// desktop notification when it names the user or is for them alone.
    fn note_unread(&self, app: &AppWindow, notification: Option<Notification>) {
        if self.window_active.get() {
            return;
        }
        app.set_unread(app.get_unread().saturating_add(1));
        if let Some(notification) = notification {
            self.notifier.borrow_mut().notify(notification);
        }
    }

    /// A line that names the user stands out.
    fn kind_for(&self, app: &AppWindow, text: &str, kind: LogKind) -> LogKind {
        if mentions(text, &app.get_my_nick()) {
            LogKind::Mention
        } else {
            kind
        }
    }

    fn apply(&self, app: &AppWindow, event: UiEvent) {
        let strings = app.global::<Strings>();
        match event {
            UiEvent::Net(Event::Connecting { server, .. }) => {
                *self.server.borrow_mut() = server.clone();
                let text = strings.invoke_connecting(server.into());
                if app.get_page() == Page::Login {
                    app.set_login_status(text);
                } else {
                    app.set_chat_status(text);
                }
            }
            UiEvent::Net(Event::NewServer {
                server,
                fingerprint,
            }) => {
                app.set_trust_server(server.into());
                app.set_trust_fingerprint(fingerprint_groups(&fingerprint).into());
                app.set_dialog(Dialog::Trust);
            }
            UiEvent::Net(Event::ServerChanged {
                server,
                expected,
                got,
                known_servers,
            }) => {
                let text = strings.invoke_server_changed(
                    server.into(),
                    expected.into(),
                    got.into(),
                    known_servers.display().to_string().into(),
                );
                self.back_to_login(app, text);
            }
            UiEvent::Net(Event::Registered { nick }) => {
                self.start_rooms.borrow_mut().clear();
                app.set_my_nick(nick.as_str().into());
                app.set_online(true);
                app.set_busy(false);
                app.set_page(Page::Chat);
                app.set_login_status("".into());
                app.set_chat_status("".into());
                self.stop_retry_countdown();
                self.push_log(
                    LogKind::System,
                    strings.invoke_connected(nick.into()).to_string(),
                );
                if !app.get_dialog_open() {
                    app.invoke_focus_input();
                }
            }
            // The window was closed while the connection was being made again: it closes now.
            UiEvent::Net(Event::Failed { .. } | Event::Refused { .. }) if self.exiting.get() => {
                let _ = slint::quit_event_loop();
            }
            UiEvent::Net(Event::Refused { code, text }) => {
                let text = words::refused_words(&strings, code, &text);
                if app.get_page() == Page::Chat {
                    self.push_log(LogKind::Error, text.to_string());
                }
                self.back_to_login(app, text);
            }
            UiEvent::Net(Event::Lost { problem, retry_in }) => {
                let reason = words::problem_words(&strings, &problem);
                // Whole seconds, rounded up: "in 1 s" until the attempt is made.
                let seconds = retry_in.as_secs() + u64::from(retry_in.subsec_nanos() > 0);
                let text = strings.invoke_lost(reason.clone(), seconds.min(i32::MAX as u64) as i32);
                app.set_chat_status(text.clone());
                self.count_down_retry(app, reason, seconds);
                // The log says it once; further failed attempts only update the status line.
                if app.get_online() {
                    app.set_online(false);
                    // A replay cut short is said for what it was before what follows is "away".
                    self.end_history_run(app);
                    self.was_away.set(true);
                    self.push_log(LogKind::System, text.to_string());
                    // Who is in the rooms is unknown until the server answers again.
                    for users in self.conv.each_room_users() {
                        users.clear();
                    }
                    self.server_operator.set(false);
                    for i in 0..self.conv.len() {
                        self.conv.set_running(i, false);
                    }
                    self.show_powers(app);
                }
            }
            UiEvent::Net(Event::Failed { problem }) => {
                let text = strings.invoke_error(words::problem_words(&strings, &problem));
                if app.get_page() == Page::Chat {
                    self.push_log(LogKind::Error, text.to_string());
                }
                self.back_to_login(app, text);
            }
            // Own lines are in the log since they were typed.
            UiEvent::Net(Event::Sent(_)) => {}
            UiEvent::Net(Event::Closed) => {
                app.set_online(false);
                if self.exiting.get() {
                    let _ = slint::quit_event_loop();
                } else {
                    app.set_page(Page::Login);
                }
            }
            UiEvent::Net(Event::Line(line)) => self.push_log(LogKind::System, line),
            UiEvent::Shown(shown) => self.show(app, None, shown),
            UiEvent::InRoom { room, shown } => self.show(app, Some(&room), shown),
        }
    }

    /// A line of the server, of `room` if it names one.
    fn show(&self, app: &AppWindow, room: Option<&str>, shown: Shown) {
        let strings = app.global::<Strings>();
        match &shown {
            Shown::History { .. } => {}
            // The user list, and the operators after it, come before a registration's history.
            Shown::Users(_)
            | Shown::Operator(_)
            | Shown::NotOperator(_)
            | Shown::RoomOperator { .. }
            | Shown::Topic { .. }
            | Shown::NoTopic => {}
            _ => {
                self.end_history_run(app);
                // What is live now: the next history is not "while you were away".
                self.was_away.set(false);
            }
        }
        // The words, the same as the terminal's; the arms below add what only the window does.
        let said = words::shown_words(&strings, &shown)
            .map(|text| text.to_string())
            .unwrap_or_default();
        // Lines of a room go to its conversation; the room's own lines may open it.
        let i = match room {
            Some(room) => match self.room_for(app, room, &shown) {
                Some(i) => i,
                // A room without a tab: a list the user asked for is said where they are;
                // anything else has nowhere to go (a room left).
                None => {
                    if matches!(shown, Shown::Users(_)) && self.users_requested.replace(false) {
                        self.push_log_in(
                            self.conv.current(),
                            LogKind::System,
                            format!("{room}: {said}"),
                        );
                    }
                    return;
                }
            },
            None => 0,
        };
        if !matches!(shown, Shown::Operator(_) | Shown::RoomOperator { .. }) {
            self.after_users.set(None);
        }
        match shown {
            Shown::History { at, shown } => {
                // Each room's history has its marker.
                if self.history_room.get() != i {
                    self.end_history_run(app);
                    self.history_room.set(i);
                }
                self.history_run.set(self.history_run.get() + 1);
                let Some(log) = self.conv.log(i) else { return };
                match *shown {
                    Shown::Message { from, text } => log.push(said_entry(
                        at,
                        LogKind::History,
                        Said::Message(&from),
                        &text,
                    )),
                    Shown::Action { from, text } => {
                        log.push(said_entry(at, LogKind::History, Said::Action(&from), &text))
                    }
                    _ => log.push(log_entry(at, LogKind::History, &said)),
                }
            }
            Shown::Notice(text) if text.starts_with(notice::HISTORY_KEPT) => {
                // Once per server and wording: a server that starts keeping more, or on disk, is
                // told again.
                let key = format!("{} {text}", self.server.borrow());
                if self.history_notices.first_time(&key) {
                    let text = words::notice_words(&strings, &text);
                    self.push_log(LogKind::System, text.to_string());
                }
            }
            // Each message is shown so that bidi controls in it cannot reach what follows.
            Shown::Message { from, text } => {
                let kind = self.kind_for(app, &text, LogKind::Message);
                self.push_said(i, kind, Said::Message(&from), &text);
                let mention = (kind == LogKind::Mention).then(|| Notification {
                    summary: from.clone(),
                    body: text.clone(),
                });
                self.note_unread(app, mention);
            }
            Shown::Action { from, text } => {
                let kind = self.kind_for(app, &text, LogKind::Action);
                self.push_said(i, kind, Said::Action(&from), &text);
                let mention = (kind == LogKind::Mention).then(|| Notification {
                    summary: from.clone(),
                    body: format!("* {from} {text}"),
                });
                self.note_unread(app, mention);
            }
            Shown::Private { from, text } => {
                let i = self.conv.open_private(&from);
                self.push_log_in(i, LogKind::Private, said);
                let summary = strings.invoke_private_notification(from.into()).to_string();
                self.note_unread(
                    app,
                    Some(Notification {
                        summary,
                        body: text,
                    }),
                );
            }
            Shown::Joined(nick) => {
                let users = self.conv.users(i);
                // A server cannot make a list longer than any room it may hold.
                if users.row_count() < MAX_LISTED_USERS
                    && !users.iter().any(|u| u.nick == nick.as_str())
                {
                    users.push(UserEntry {
                        nick: nick.as_str().into(),
                        ..Default::default()
                    });
                }
                self.push_log_in(i, LogKind::System, said);
            }
            Shown::Left { nick, why, .. } => {
                self.remove_user(i, &nick);
                // Said in the room, and once in a conversation with them when they left the
                // server (each room they were in tells it; the default room's line is the one).
                let from_server = why != charla_proto::leave_reason::PART && i == 0;
                if let Some(p) = self.conv.private_index(&nick).filter(|_| from_server) {
                    self.push_log_in(p, LogKind::System, said.clone());
                }
                self.push_log_in(i, LogKind::System, said);
                if room.is_some() && nick == app.get_my_nick().as_str() {
                    self.left_room(app, i);
                }
            }
            Shown::Renamed { old, new } => {
                moderation::mark_user(&self.conv.users(i), &old, |u| u.nick = new.as_str().into());
                if app.get_my_nick() == old.as_str() {
                    app.set_my_nick(new.as_str().into());
                }
                // A conversation follows the person under the new name; one already open under
                // that name (someone who had it before) is closed, so that lines have one place.
                // Said once there, however many rooms tell it.
                if let (Some(p), Some(q)) =
                    (self.conv.private_index(&old), self.conv.private_index(&new))
                {
                    if p != q {
                        self.remove_conversation(app, q);
                    }
                }
                if let Some(p) = self.conv.private_index(&old) {
                    self.conv.update(p, |c| c.nick = new.as_str().into());
                    self.push_log_in(p, LogKind::System, said.clone());
                }
                self.push_log_in(i, LogKind::System, said);
            }
            Shown::Users(mut nicks) => {
                if self.users_requested.get() && i == self.conv.listed_room() {
                    self.users_requested.set(false);
                    self.push_log_in(i, LogKind::System, said);
                }
                nicks.truncate(MAX_LISTED_USERS);
                nicks.sort_by_key(|n| n.to_lowercase());
                // The OPER and OP lines that follow mark the operators again (the user's own
                // OPER too: it comes in every room's list).
                self.server_operator.set(false);
                self.conv.set_running(i, false);
                self.after_users.set(Some(i));
                self.conv.users(i).set_vec(
                    nicks
                        .into_iter()
                        .map(|nick| UserEntry {
                            nick: nick.into(),
                            ..Default::default()
                        })
                        .collect::<Vec<_>>(),
                );
                self.show_powers(app);
            }
            Shown::Operator(nick) => self.set_operator(app, i, &nick, true),
            Shown::NotOperator(nick) => {
                self.set_operator(app, i, &nick, false);
                self.push_log_in(i, LogKind::System, said);
            }
            Shown::RoomOperator { nick, on } => {
                self.set_room_operator(app, i, &nick, on);
                // Said when it changes, not for each name of a user list.
                if self.after_users.get() != Some(i) {
                    self.push_log_in(i, LogKind::System, said);
                }
            }
            Shown::Kicked { nick, .. } => {
                self.remove_user(i, &nick);
                self.push_log_in(i, LogKind::System, said);
                if room.is_some() && nick == app.get_my_nick().as_str() {
                    self.left_room(app, i);
                }
            }
            Shown::Topic { .. } | Shown::NoTopic => {
                let topic = match &shown {
                    Shown::Topic { text, .. } => text.as_str(),
                    _ => "",
                };
                // Said when there is one to say (on joining) or it changes.
                if self.conv.topic(i) != topic {
                    self.conv.set_topic(i, topic);
                    self.push_log_in(i, LogKind::System, said);
                }
                if i == self.conv.current() {
                    app.set_topic(topic.into());
                }
            }
            Shown::RoomCount { .. } | Shown::Room { .. } if app.get_dialog() == Dialog::Rooms => {
                self.listed(app, shown);
            }
            // An answer to what the user just did: shown where they are.
            Shown::Error { code, .. } => {
                if code == ErrorCode::Muted.as_str() {
                    // About a line said in a room: told there.
                    let i = self.mark_not_sent(&strings);
                    return self.push_log_in(i, LogKind::Error, said);
                }
                if app.get_dialog() == Dialog::Rooms {
                    app.set_rooms_error(said.as_str().into());
                }
                self.push_log_in(self.conv.current(), LogKind::Error, said)
            }
            Shown::Whois { .. }
            | Shown::Pong(_)
            | Shown::Notice(_)
            | Shown::Moderation(_)
            | Shown::RoomCount { .. }
            | Shown::Room { .. }
            | Shown::Invited { .. }
            | Shown::InviteSent { .. }
            | Shown::Other(_) => self.push_log_in(i, LogKind::System, said),
        }
    }

    fn back_to_login(&self, app: &AppWindow, error: SharedString) {
        // A paste still being sent was for the server that is gone: not for the next one.
        self.paste_queue.borrow_mut().clear();
        self.paste_timer.stop();
        self.stop_retry_countdown();
        app.set_online(false);
        app.set_operator(false);
        app.set_busy(false);
        app.set_login_status("".into());
        app.set_login_error(error);
        app.set_page(Page::Login);
    }

    fn remove_user(&self, i: usize, nick: &str) {
        let users = self.conv.users(i);
        if let Some(row) = users.iter().position(|u| u.nick == nick) {
            users.remove(row);
        }
    }
}

/// A line someone said: their nickname in its colour, then the text (bidi controls in it cannot
/// reach what follows it).
fn said_entry(time: String, kind: LogKind, said: Said<'_>, body: &str) -> LogEntry {
    let (nick, label) = match said {
        Said::Message(nick) => (nick, format!("{nick}:")),
        Said::Action(nick) => (nick, format!("* {nick}")),
    };
    LogEntry {
        time: time.into(),
        kind,
        nick: glyphs::visible(&label).as_ref().into(),
        nick_color: nick_color(nick),
        link: first_link(body).unwrap_or_default().into(),
        text: glyphs::visible(&contained(body)).as_ref().into(),
    }
}

/// Closes `dialog` if it is the one open (another may have taken its place meanwhile).
fn close_dialog(app: &AppWindow, dialog: Dialog) {
    if app.get_dialog() == dialog {
        app.set_dialog(Dialog::None);
    }
}

/// Why a nickname is refused before asking any server, in the user's language; `None` if fine.
fn nick_refused(app: &AppWindow, nick: &str) -> Option<SharedString> {
    let error = validate_nick(nick).err()?;
    Some(words::nick_refused(&app.global::<Strings>(), error))
}
