//! Binds the Slint window (ui/*.slint) to the network thread. UI callbacks never do I/O: they hand
//! a command to the network thread, whose events come back through the event loop.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use charla_proto::{notice, parse_client_line, validate_nick, ClientLine, ErrorCode};
use slint::{ComponentHandle, Model, ModelRc, SharedString, VecModel};

use crate::config::{absolute_path, next_text_scale, HistoryNoticesSeen, KnownServers, Settings};
use crate::glyphs;
use crate::host::{self, HostError, HostFiles, HostedServer};
use crate::identity::Identity;
use crate::net::{Batch, Command, Event, Slot, Target, Trust};
use crate::notify::{Notification, Notifier};
use crate::present::{
    clock, contained, fingerprint_groups, first_link, nick_color, today, DayMarker, Decoder, Shown,
};
use crate::ring_model::RingModel;
use crate::typing::{mentions, InputHistory, NickCompleter};
use crate::words;
use crate::{
    AppWindow, Conversation, Dialog, LogEntry, LogKind, ModerationAction, Page, Strings, UserEntry,
};

/// Oldest lines are dropped past this (unless `--log-lines` says otherwise), so that a long or
/// flooded session stays light.
pub const MAX_LOG_LINES: usize = crate::config::DEFAULT_LOG_LINES;

/// Private conversations in tabs of their own, at most (see `open_conversation`).
pub const MAX_PRIVATE_CONVERSATIONS: usize = 30;

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

/// Pasted lines shown in the question before sending them.
const PASTE_PREVIEW_LINES: usize = 5;
/// Pasted lines sent at once, then one per interval: 4 a second, under the 10 a second (bursts
/// of 20) that servers allow by default (`--flood-rate`).
const PASTE_BURST: usize = 5;
const PASTE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// The lines of a paste worth sending: without line ends, blank ones left out.
pub fn pasted_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
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
    Shown(Shown),
}

/// The window's models, and what the UI thread remembers from one event to the next.
struct UiState {
    /// The room's log.
    log: Rc<RingModel<LogEntry>>,
    /// The room, then private conversations (their tabs), each with its own log; which is shown.
    conversations: Rc<VecModel<Conversation>>,
    conversation_logs: RefCell<Vec<Rc<RingModel<LogEntry>>>>,
    current: Cell<usize>,
    users: Rc<VecModel<UserEntry>>,
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
    /// History lines shown since the last live line: a marker follows them.
    history_run: Cell<usize>,
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
}

thread_local! {
    /// The same state the callbacks hold, for the network's batches: those come to the UI thread
    /// in closures that must be `Send`, which an `Rc` is not. One window per thread.
    static UI_STATE: RefCell<Option<Rc<UiState>>> = const { RefCell::new(None) };
}

/// Sets up models and callbacks. `commands` hands a command to the network thread.
pub fn bind(
    app: &AppWindow,
    settings: &Settings,
    config_dir: PathBuf,
    identity: Option<Arc<Identity>>,
    commands: Rc<dyn Fn(Command)>,
) {
    match &identity {
        Some(identity) => app.set_identity(fingerprint_groups(&identity.fingerprint).into()),
        None => app.set_identity_note(app.global::<Strings>().invoke_no_identity_flag()),
    }
    let room_log = Rc::new(RingModel::new(settings.log_lines));
    let state = Rc::new(UiState {
        log: room_log.clone(),
        conversations: Rc::new(VecModel::from(vec![Conversation::default()])),
        conversation_logs: RefCell::new(vec![room_log]),
        current: Cell::new(0),
        users: Rc::new(VecModel::default()),
        commands,
        identity,
        input_history: RefCell::new(InputHistory::default()),
        completer: RefCell::new(NickCompleter::default()),
        days: RefCell::new(DayMarker::default()),
        users_requested: Cell::new(false),
        exiting: Cell::new(false),
        shown_slots: RefCell::new(Vec::new()),
        release_slots: slint::Timer::default(),
        history_run: Cell::new(0),
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
    });
    app.set_log(ModelRc::from(state.log.clone()));
    app.set_conversations(ModelRc::from(state.conversations.clone()));
    app.set_users(ModelRc::from(state.users.clone()));
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
            (ui.commands)(Command::Send("/users".into()));
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
        let i = ui.open_conversation(&nick);
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
            .users
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

    UI_STATE.set(Some(state));
}

/// The network's batches as the UI thread gets them; runs on the network thread. Each batch is
/// shown in one go, and its slot is held until then (and a little longer, see
/// `UiState::shown_slots`), so that the network thread reads no further ahead of the window than
/// its bound.
pub fn event_sink(app: &AppWindow) -> impl FnMut(Batch) + Send + 'static {
    let weak = app.as_weak();
    let mut decoder = Decoder::default();
    move |batch: Batch| {
        let Batch { events, slot } = batch;
        let ui_events: Vec<UiEvent> = events
            .into_iter()
            .filter_map(|event| match event {
                Event::Line(line) => decoder.decode(&line).map(UiEvent::Shown),
                other => Some(UiEvent::Net(other)),
            })
            .collect();
        if ui_events.is_empty() {
            return;
        }
        // Without an event loop the closure is dropped, and the slot with it.
        let _ = weak.upgrade_in_event_loop(move |app| show_batch(&app, ui_events, slot));
    }
}

fn show_batch(app: &AppWindow, events: Vec<UiEvent>, slot: Slot) {
    let Some(state) = bound_state() else { return };
    for event in events {
        state.apply(app, event);
    }
    state.shown_slots.borrow_mut().push(slot);
    if !state.release_slots.running() {
        // Timers run when the event loop starts its next turn, after it has drawn this one.
        let weak = Rc::downgrade(&state);
        state.release_slots.start(
            slint::TimerMode::SingleShot,
            std::time::Duration::ZERO,
            move || {
                if let Some(state) = weak.upgrade() {
                    state.shown_slots.borrow_mut().clear();
                }
            },
        );
    }
}

/// The window became the active one (the user is looking) or stopped being it: the unread count
/// starts from nothing again when it comes back.
pub fn window_activated(app: &AppWindow, active: bool) {
    let Some(state) = bound_state() else { return };
    state.window_active.set(active);
    if active {
        app.set_unread(0);
    }
}

/// The hosted server is listening (or could not start): the window connects to it and shows
/// what to tell friends.
pub fn host_started(app: &AppWindow, files: &HostFiles, started: Result<HostedServer, HostError>) {
    let Some(state) = bound_state() else { return };
    state.host_started(app, files, started);
}

/// Stops the server this window started, unless it is to keep running (the window is closing).
pub fn stop_hosting() {
    if let Some(state) = bound_state() {
        state.hosted.borrow_mut().take();
    }
}

/// Applies one event to the window bound on this thread.
pub fn apply(app: &AppWindow, event: UiEvent) {
    apply_batch(app, vec![event]);
}

/// Applies a batch of events, in order, to the window bound on this thread.
pub fn apply_batch(app: &AppWindow, events: Vec<UiEvent>) {
    let Some(state) = bound_state() else { return };
    for event in events {
        state.apply(app, event);
    }
}

/// The state `bind` made on this thread. Events only follow commands, and only a bound window
/// gives commands: an event with no state has no window to go to.
fn bound_state() -> Option<Rc<UiState>> {
    UI_STATE.with_borrow(|state| state.clone())
}

impl UiState {
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
        (self.commands)(Command::Connect(Target {
            host,
            port,
            nick,
            trust,
            password,
            identity: self.identity.clone(),
        }));
    }

    /// The operator confirmed Kick, Ban or Mute in the dialog: the command goes to the server,
    /// whose answer (`KICK`, a notice, an error) shows in the log.
    fn moderate(&self, app: &AppWindow, action: ModerationAction) {
        let nick = app.get_moderate_nick().to_string();
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
        let words: Vec<&str> = match action {
            ModerationAction::Kick => vec!["/kick", &nick, &reason],
            ModerationAction::Ban => vec!["/ban", &nick, &minutes, &reason],
            ModerationAction::Mute => vec!["/mute", &nick, &minutes],
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

    /// Marks `nick` in the user panel as an operator or not; the window offers moderation when
    /// it is the user.
    fn set_operator(&self, app: &AppWindow, nick: &str, operator: bool) {
        if let Some(i) = self.users.iter().position(|u| u.nick == nick) {
            self.users.set_row_data(
                i,
                UserEntry {
                    nick: nick.into(),
                    operator,
                },
            );
        }
        if app.get_my_nick() == nick {
            app.set_operator(operator);
        }
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

    /// In a private conversation, a line that is not a command is for that person.
    fn addressed(&self, text: &str) -> String {
        // There are no private actions: /me in a private conversation is said to that person.
        if let (Some(nick), ClientLine::Me(body)) = (self.current_nick(), parse_client_line(text)) {
            return format!("/msg {nick} * {body}");
        }
        let to_private = self
            .current_nick()
            .filter(|_| !text.starts_with('/') || text.starts_with("//"));
        match to_private {
            Some(nick) => format!("/msg {nick} {}", text.strip_prefix('/').unwrap_or(text)),
            None => text.to_string(),
        }
    }

    /// Sends a line (a message or a command) and shows it; false when it made the window leave.
    /// `show_conversation`: a private line opens its conversation and shows it (typed), or
    /// only opens it (pasted lines, sent later).
    fn send_text(&self, app: &AppWindow, text: &str, show_conversation: bool) -> bool {
        let me = app.get_my_nick().to_string();
        let strings = app.global::<Strings>();
        match parse_client_line(text) {
            ClientLine::Message(body) => self.push_said(LogKind::Own, Said::Message(&me), body),
            ClientLine::Me(body) => self.push_said(LogKind::Own, Said::Action(&me), body),
            ClientLine::Msg { to, text } => {
                let i = self.open_conversation(to);
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
            ClientLine::Users => self.users_requested.set(true),
            // The client's own list, in the user's language; the server's is in English.
            ClientLine::Help => {
                for line in strings.invoke_help().lines() {
                    self.push_log_in(self.current.get(), LogKind::System, line.to_string());
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
            log_lines: self.log.capacity(),
            host_port: app
                .get_host_port()
                .trim()
                .parse()
                .unwrap_or(charla_proto::DEFAULT_PORT),
        }
    }

    /// Start in the host dialog: the certificate is made and the server started here (both
    /// quick), and waited for on a thread of its own; `host_started` gets the outcome.
    fn start_hosting(&self, app: &AppWindow) {
        // One hosted chat per window, started once.
        if app.get_host_starting() || self.hosted.borrow().is_some() {
            return;
        }
        let strings = app.global::<Strings>();
        // The window joins the chat it hosts under this name: asked here, not found missing
        // later behind the "chat is running" window.
        let nick = app.get_nick().trim().to_string();
        if let Some(why) = nick_refused(app, &nick) {
            app.set_host_error(why);
            return;
        }
        let Some(port) = app
            .get_host_port()
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
        else {
            app.set_host_error(strings.invoke_bad_port());
            return;
        };
        let _ = self
            .settings_now(
                app,
                app.get_host().trim().to_string(),
                app.get_port()
                    .trim()
                    .parse()
                    .unwrap_or(charla_proto::DEFAULT_PORT),
                app.get_ca_path().trim().to_string(),
            )
            .save(&self.config_dir);
        let operator = self.identity.as_ref().map(|i| i.fingerprint.clone());
        let files = match host::prepare(&self.config_dir, operator.as_deref()) {
            Ok(files) => files,
            Err(e) => {
                app.set_host_error(strings.invoke_host_failed(e.into()));
                return;
            }
        };
        // Started from this thread, which lives as long as the window: see host::spawn.
        let starting = match host::spawn(&files, port, app.get_host_keep_running()) {
            Ok(starting) => starting,
            Err(e) => {
                app.set_host_error(host_error_words(app, &e));
                return;
            }
        };
        app.set_host_error("".into());
        app.set_host_starting(true);
        let weak = app.as_weak();
        let spawned = std::thread::Builder::new()
            .name("charla-host".into())
            .spawn(move || {
                let started = starting.wait();
                let _ = weak.upgrade_in_event_loop(move |app| host_started(&app, &files, started));
            });
        if let Err(e) = spawned {
            app.set_host_starting(false);
            app.set_host_error(strings.invoke_host_failed(e.to_string().into()));
        }
    }

    fn host_started(
        &self,
        app: &AppWindow,
        files: &HostFiles,
        started: Result<HostedServer, HostError>,
    ) {
        app.set_host_starting(false);
        let server = match started {
            Ok(server) => server,
            Err(why) => {
                app.set_host_error(host_error_words(app, &why));
                return;
            }
        };
        // The server listens on IPv4 (0.0.0.0): only those addresses reach it.
        let addresses: Vec<String> = host::network_addresses()
            .iter()
            .filter(|ip| ip.is_ipv4())
            .map(|ip| ip.to_string())
            .collect();
        app.set_host_addresses(addresses.join(", ").into());
        app.set_hosted_port(server.port.to_string().into());
        app.set_host_fingerprint(fingerprint_groups(&files.fingerprint).into());
        close_dialog(app, Dialog::Host);
        app.set_hosting(true);
        app.set_dialog(Dialog::HostInfo);
        // This window joins its own chat, checking the certificate it just made.
        app.set_host("127.0.0.1".into());
        app.set_port(server.port.to_string().into());
        app.set_ca_path(files.cert.to_string_lossy().as_ref().into());
        *self.hosted.borrow_mut() = Some(server);
        self.connect(app, &self.config_dir);
    }

    /// Ctrl+V with several lines: asks first (returns true: the paste is taken here). One line
    /// is pasted into the input as usual (false).
    fn pasted(&self, app: &AppWindow, text: &str) -> bool {
        let lines = pasted_lines(text);
        if lines.len() < 2 {
            return false;
        }
        let preview: Vec<&str> = lines
            .iter()
            .take(PASTE_PREVIEW_LINES)
            .map(String::as_str)
            .collect();
        let mut preview = preview.join("\n");
        if lines.len() > PASTE_PREVIEW_LINES {
            preview.push_str("\n…");
        }
        app.set_paste_count(lines.len() as i32);
        app.set_paste_preview(glyphs::visible(&contained(&preview)).as_ref().into());
        *self.paste_offered.borrow_mut() = lines;
        app.set_dialog(Dialog::Paste);
        true
    }

    /// Send in the paste dialog: the lines go out as messages (a line starting with `/` is not
    /// taken for a command), the first few at once and the rest paced, under the servers'
    /// default flood limit; they wait while the connection is down.
    fn send_pasted(self: &Rc<Self>, app: &AppWindow) {
        close_dialog(app, Dialog::Paste);
        let lines = std::mem::take(&mut *self.paste_offered.borrow_mut());
        let mut queue = self.paste_queue.borrow_mut();
        // Addressed now: to the conversation shown when they were pasted.
        queue.extend(lines.into_iter().map(|line| {
            if line.starts_with('/') {
                self.addressed(&format!("/{line}"))
            } else {
                self.addressed(&line)
            }
        }));
        drop(queue);
        for _ in 0..PASTE_BURST {
            if !self.send_next_pasted(app) {
                break;
            }
        }
        if !self.paste_queue.borrow().is_empty() && !self.paste_timer.running() {
            let weak_state = Rc::downgrade(self);
            let weak_app = app.as_weak();
            self.paste_timer
                .start(slint::TimerMode::Repeated, PASTE_INTERVAL, move || {
                    let (Some(state), Some(app)) = (weak_state.upgrade(), weak_app.upgrade())
                    else {
                        return;
                    };
                    state.send_next_pasted(&app);
                    if state.paste_queue.borrow().is_empty() {
                        state.paste_timer.stop();
                    }
                });
        }
    }

    /// One pasted line out, if connected; false when none could go.
    fn send_next_pasted(&self, app: &AppWindow) -> bool {
        if !app.get_online() {
            return false;
        }
        let Some(line) = self.paste_queue.borrow_mut().pop_front() else {
            return false;
        };
        // Shown in its conversation, without pulling the user back to it.
        self.send_text(app, &line, false)
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

    /// A live line, at the current time; after midnight, the new date first.
    fn push_log(&self, kind: LogKind, text: String) {
        if let Some(separator) = self.days.borrow_mut().before_line_of(&today()) {
            self.push_log_at(clock(), LogKind::System, separator);
        }
        self.push_log_at(clock(), kind, text);
    }

    /// The conversation with `nick`, if open (nicknames compare without case, as the server's).
    fn conversation_index(&self, nick: &str) -> Option<usize> {
        let nick = nick.to_lowercase();
        self.conversations
            .iter()
            .position(|c| !c.nick.is_empty() && c.nick.to_lowercase() == nick)
    }

    /// The conversation with `nick`, opened after the others if it was not.
    /// The tab of the conversation with `nick`, opened if need be. Past
    /// [`MAX_PRIVATE_CONVERSATIONS`] tabs, a new name's lines go to the room's tab (still marked
    /// private): a server, or anyone on it, sending from ten thousand names cannot make the
    /// window hold ten thousand logs.
    fn open_conversation(&self, nick: &str) -> usize {
        if let Some(i) = self.conversation_index(nick) {
            return i;
        }
        if self.conversations.row_count() > MAX_PRIVATE_CONVERSATIONS {
            return 0;
        }
        let capacity = self.log.capacity();
        self.conversation_logs
            .borrow_mut()
            .push(Rc::new(RingModel::new(capacity)));
        self.conversations.push(Conversation {
            nick: nick.into(),
            unread: 0,
        });
        self.conversations.row_count() - 1
    }

    /// Counts the seconds to the next connection attempt down in the status line, once a
    /// second, until it is made (each failed attempt starts a new count).
    fn count_down_retry(&self, app: &AppWindow, reason: SharedString, seconds: u64) {
        *self.retry.borrow_mut() = Some((reason, seconds));
        let weak = app.as_weak();
        self.retry_timer.start(
            slint::TimerMode::Repeated,
            std::time::Duration::from_secs(1),
            move || {
                let (Some(app), Some(state)) = (weak.upgrade(), bound_state()) else {
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

    /// The person of the conversation shown, or none in the room.
    fn current_nick(&self) -> Option<String> {
        let conversation = self.conversations.row_data(self.current.get())?;
        (!conversation.nick.is_empty()).then(|| conversation.nick.to_string())
    }

    fn switch_to(&self, app: &AppWindow, i: usize) {
        let Some(log) = self.conversation_logs.borrow().get(i).cloned() else {
            return;
        };
        self.current.set(i);
        app.set_log(ModelRc::from(log));
        app.set_current_conversation(i as i32);
        self.set_unread(i, |_| 0);
    }

    /// × on a private conversation's tab: its lines go with it; the room cannot be closed.
    fn close_conversation(&self, app: &AppWindow, i: usize) {
        if i == 0 || i >= self.conversations.row_count() {
            return;
        }
        let shown = self.current.get();
        self.conversations.remove(i);
        self.conversation_logs.borrow_mut().remove(i);
        let next = match shown {
            s if s == i => i - 1,
            s if s > i => s - 1,
            s => s,
        };
        self.switch_to(app, next);
    }

    /// A line in conversation `i` (the room is 0); what was said counts as unread while another
    /// is shown.
    fn push_log_in(&self, i: usize, kind: LogKind, text: String) {
        if i == 0 {
            return self.push_log(kind, text);
        }
        let Some(log) = self.conversation_logs.borrow().get(i).cloned() else {
            return;
        };
        log.push(log_entry(clock(), kind, &text));
        // What was said counts; that they left or changed name does not.
        if i != self.current.get() && kind == LogKind::Private {
            self.set_unread(i, |n| n + 1);
        }
    }

    /// Changes the unread count on conversation `i`'s tab.
    fn set_unread(&self, i: usize, count: impl FnOnce(i32) -> i32) {
        if let Some(conversation) = self.conversations.row_data(i) {
            let unread = count(conversation.unread);
            if unread != conversation.unread {
                self.conversations.set_row_data(
                    i,
                    Conversation {
                        unread,
                        ..conversation
                    },
                );
            }
        }
    }

    fn push_log_at(&self, time: String, kind: LogKind, text: String) {
        self.log.push(log_entry(time, kind, &text));
    }

    /// A live line someone said: their nickname in its colour, then the text.
    fn push_said(&self, kind: LogKind, said: Said<'_>, body: &str) {
        if let Some(separator) = self.days.borrow_mut().before_line_of(&today()) {
            self.push_log_at(clock(), LogKind::System, separator);
        }
        self.push_said_at(clock(), kind, said, body);
        // Someone spoke in the room while a private conversation is shown: the room's tab counts.
        if self.current.get() != 0 && kind != LogKind::Own {
            self.set_unread(0, |n| n + 1);
        }
    }

    fn push_said_at(&self, time: String, kind: LogKind, said: Said<'_>, body: &str) {
        let (nick, label) = match said {
            Said::Message(nick) => (nick, format!("{nick}:")),
            Said::Action(nick) => (nick, format!("* {nick}")),
        };
        self.log.push(LogEntry {
            time: time.into(),
            kind,
            nick: glyphs::visible(&label).as_ref().into(),
            nick_color: nick_color(nick),
            link: first_link(body).unwrap_or_default().into(),
            // Bidi controls in the text cannot reach what follows it.
            text: glyphs::visible(&contained(body)).as_ref().into(),
        });
    }

    /// The server refused the user's public line (muted): the line shown as said is marked as not
    /// sent. The server answers in order and says nothing of lines it takes, so the refused line
    /// is the newest of the user's own lines not marked yet.
    fn mark_not_sent(&self, strings: &Strings<'_>) {
        let rows = self.log.row_count();
        // A refusal comes one round trip after its line: it is among the last lines.
        for row in (rows.saturating_sub(200)..rows).rev() {
            let Some(entry) = self.log.row_data(row) else {
                continue;
            };
            if entry.kind == LogKind::Own {
                let text = strings.invoke_not_sent(entry.text.clone());
                self.log.set_row_data(
                    row,
                    LogEntry {
                        kind: LogKind::Error,
                        text,
                        ..entry
                    },
                );
                return;
            }
        }
    }

    /// After a run of history lines, before what is live: a marker saying what they were.
    fn end_history_run(&self, app: &AppWindow) {
        let count = self.history_run.replace(0);
        if count == 0 {
            return;
        }
        let strings = app.global::<Strings>();
        let text = if self.was_away.replace(false) {
            strings.invoke_history_away(count as i32)
        } else {
            strings.invoke_history_before(count as i32)
        };
        self.push_log(LogKind::System, text.to_string());
    }

    /// A line that names the user stands out.
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

    fn kind_for(&self, app: &AppWindow, text: &str, kind: LogKind) -> LogKind {
        if mentions(text, &app.get_my_nick()) {
            LogKind::Mention
        } else {
            kind
        }
    }

    fn remove_user(&self, nick: &str) {
        if let Some(i) = self.users.iter().position(|u| u.nick == nick) {
            self.users.remove(i);
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
                back_to_login(app, text);
            }
            UiEvent::Net(Event::Registered { nick }) => {
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
                back_to_login(app, text);
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
                    // Who is in the chat is unknown until the server answers again.
                    self.users.clear();
                    app.set_operator(false);
                }
            }
            UiEvent::Net(Event::Failed { problem }) => {
                let text = strings.invoke_error(words::problem_words(&strings, &problem));
                if app.get_page() == Page::Chat {
                    self.push_log(LogKind::Error, text.to_string());
                }
                back_to_login(app, text);
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
            UiEvent::Shown(shown) => self.show(app, shown),
        }
    }

    fn show(&self, app: &AppWindow, shown: Shown) {
        let strings = app.global::<Strings>();
        match &shown {
            Shown::History { .. } => {}
            // The user list, and the operators after it, come before a registration's history.
            Shown::Users(_) | Shown::Operator(_) | Shown::NotOperator(_) => {}
            _ => {
                if self.history_run.get() == 0 {
                    // Back with nothing missed: the next history is not "while you were away".
                    self.was_away.set(false);
                }
                self.end_history_run(app);
            }
        }
        // The words, the same as the terminal's; the arms below add what only the window does.
        let said = words::shown_words(&strings, &shown)
            .map(|text| text.to_string())
            .unwrap_or_default();
        match shown {
            Shown::History { at, shown } => {
                self.history_run.set(self.history_run.get() + 1);
                match *shown {
                    Shown::Message { from, text } => {
                        self.push_said_at(at, LogKind::History, Said::Message(&from), &text)
                    }
                    Shown::Action { from, text } => {
                        self.push_said_at(at, LogKind::History, Said::Action(&from), &text)
                    }
                    _ => self.push_log_at(at, LogKind::History, said),
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
                self.push_said(kind, Said::Message(&from), &text);
                let mention = (kind == LogKind::Mention).then(|| Notification {
                    summary: from.clone(),
                    body: text.clone(),
                });
                self.note_unread(app, mention);
            }
            Shown::Action { from, text } => {
                let kind = self.kind_for(app, &text, LogKind::Action);
                self.push_said(kind, Said::Action(&from), &text);
                let mention = (kind == LogKind::Mention).then(|| Notification {
                    summary: from.clone(),
                    body: format!("* {from} {text}"),
                });
                self.note_unread(app, mention);
            }
            Shown::Private { from, text } => {
                let i = self.open_conversation(&from);
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
                if !self.users.iter().any(|u| u.nick == nick.as_str()) {
                    self.users.push(UserEntry {
                        nick: nick.as_str().into(),
                        operator: false,
                    });
                }
                self.push_log(LogKind::System, said);
            }
            Shown::Left { nick, .. } => {
                self.remove_user(&nick);
                // Said in the room, and in a conversation with them.
                if let Some(i) = self.conversation_index(&nick) {
                    self.push_log_in(i, LogKind::System, said.clone());
                }
                self.push_log(LogKind::System, said);
            }
            Shown::Renamed { old, new } => {
                if let Some(i) = self.users.iter().position(|u| u.nick == old.as_str()) {
                    let operator = self.users.row_data(i).is_some_and(|u| u.operator);
                    self.users.set_row_data(
                        i,
                        UserEntry {
                            nick: new.as_str().into(),
                            operator,
                        },
                    );
                }
                if app.get_my_nick() == old.as_str() {
                    app.set_my_nick(new.as_str().into());
                }
                // A conversation follows the person under the new name; one already open under
                // that name (someone who had it before) is closed, so that lines have one place.
                if let (Some(i), Some(j)) =
                    (self.conversation_index(&old), self.conversation_index(&new))
                {
                    if i != j {
                        self.close_conversation(app, j);
                    }
                }
                if let Some(i) = self.conversation_index(&old) {
                    self.conversations.set_row_data(
                        i,
                        Conversation {
                            nick: new.as_str().into(),
                            ..self.conversations.row_data(i).unwrap_or_default()
                        },
                    );
                    self.push_log_in(i, LogKind::System, said.clone());
                }
                self.push_log(LogKind::System, said);
            }
            Shown::Users(mut nicks) => {
                if self.users_requested.replace(false) {
                    self.push_log(LogKind::System, said);
                }
                nicks.sort_by_key(|n| n.to_lowercase());
                // The OPER lines that follow mark the operators again.
                app.set_operator(false);
                self.users.set_vec(
                    nicks
                        .into_iter()
                        .map(|nick| UserEntry {
                            nick: nick.into(),
                            operator: false,
                        })
                        .collect::<Vec<_>>(),
                );
            }
            Shown::Operator(nick) => self.set_operator(app, &nick, true),
            Shown::NotOperator(nick) => {
                self.set_operator(app, &nick, false);
                self.push_log(LogKind::System, said);
            }
            Shown::Kicked { nick, .. } => {
                self.remove_user(&nick);
                self.push_log(LogKind::System, said);
            }
            // An answer to what the user just did: shown where they are.
            Shown::Error { code, .. } => {
                if code == ErrorCode::Muted.as_str() {
                    // About a line said in the room: told there.
                    self.mark_not_sent(&strings);
                    return self.push_log_in(0, LogKind::Error, said);
                }
                self.push_log_in(self.current.get(), LogKind::Error, said)
            }
            Shown::Whois { .. }
            | Shown::Pong(_)
            | Shown::Notice(_)
            | Shown::Moderation(_)
            | Shown::RoomCount { .. }
            | Shown::Room { .. }
            | Shown::Topic { .. }
            | Shown::NoTopic
            | Shown::RoomOperator { .. }
            | Shown::Invited { .. }
            | Shown::InviteSent { .. }
            | Shown::Other(_) => self.push_log(LogKind::System, said),
        }
    }
}

/// Closes `dialog` if it is the one open (another may have taken its place meanwhile).
fn close_dialog(app: &AppWindow, dialog: Dialog) {
    if app.get_dialog() == dialog {
        app.set_dialog(Dialog::None);
    }
}

fn back_to_login(app: &AppWindow, error: SharedString) {
    // A paste still being sent was for the server that is gone: not for the next one.
    if let Some(state) = bound_state() {
        state.paste_queue.borrow_mut().clear();
        state.paste_timer.stop();
        state.stop_retry_countdown();
    }
    app.set_online(false);
    app.set_operator(false);
    app.set_busy(false);
    app.set_login_status("".into());
    app.set_login_error(error);
    app.set_page(Page::Login);
}

/// Why a nickname is refused before asking any server, in the user's language; `None` if fine.
fn nick_refused(app: &AppWindow, nick: &str) -> Option<SharedString> {
    let error = validate_nick(nick).err()?;
    Some(words::nick_refused(&app.global::<Strings>(), error))
}

/// Why hosting did not start, in the user's language.
fn host_error_words(app: &AppWindow, error: &HostError) -> SharedString {
    let s = app.global::<Strings>();
    match error {
        HostError::PortInUse(port) => s.invoke_host_port_in_use(i32::from(*port)),
        HostError::Other(why) => s.invoke_host_failed(why.into()),
    }
}
