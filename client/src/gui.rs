//! Binds the Slint window (ui/*.slint) to the network thread. UI callbacks never do I/O: they hand
//! a command to the network thread, whose events come back through the event loop.

use std::cell::Cell;
use std::path::PathBuf;
use std::rc::Rc;

use charla_proto::{
    leave_reason, notice, parse_client_line, validate_nick, ClientLine, ErrorCode, NickError,
    MAX_NICK_CHARS,
};
use slint::{ComponentHandle, Model, ModelRc, SharedString, VecModel};

use crate::config::{absolute_path, KnownServers, Settings};
use crate::glyphs;
use crate::net::{Command, Event, OsError, Problem, Target, Trust};
use crate::present::{clock, contained, Decoder, Kind, Shown};
use crate::{AppWindow, LogEntry, Strings};

/// Oldest lines are dropped past this, so that a long or flooded session stays light.
const MAX_LOG_LINES: usize = 5000;

/// What reaches the UI thread: network events, with server lines already decoded.
#[derive(Debug, Clone)]
pub enum UiEvent {
    Net(Event),
    Shown(Shown),
}

thread_local! {
    /// The user asked for the user list: show the next one in the log too (the panel always
    /// follows it).
    static USERS_REQUESTED: Cell<bool> = const { Cell::new(false) };
    /// Exit was asked: quit the event loop once the connection is closed.
    static EXITING: Cell<bool> = const { Cell::new(false) };
}

/// Sets up models and callbacks. `commands` hands a command to the network thread.
pub fn bind(
    app: &AppWindow,
    settings: &Settings,
    config_dir: PathBuf,
    commands: Rc<dyn Fn(Command)>,
) {
    app.set_log(ModelRc::new(VecModel::<LogEntry>::default()));
    app.set_users(ModelRc::new(VecModel::<SharedString>::default()));
    app.set_host(settings.host.as_str().into());
    app.set_port(settings.port.to_string().into());
    app.set_nick(settings.nick.as_str().into());
    app.set_ca_path(settings.ca.as_str().into());
    app.set_version(env!("CARGO_PKG_VERSION").into());

    let weak = app.as_weak();
    let send = commands.clone();
    app.on_connect(move || {
        let Some(app) = weak.upgrade() else { return };
        connect(&app, &config_dir, &*send);
    });

    let weak = app.as_weak();
    let send = commands.clone();
    app.on_send(move |text| {
        let Some(app) = weak.upgrade() else { return };
        send_line(&app, &text, &*send);
    });

    let weak = app.as_weak();
    let send = commands.clone();
    app.on_list_users(move || {
        if weak.upgrade().is_some_and(|app| app.get_online()) {
            USERS_REQUESTED.set(true);
            send(Command::Send("/users".into()));
        }
    });

    let weak = app.as_weak();
    let send = commands.clone();
    app.on_exit(move || {
        if let Some(app) = weak.upgrade() {
            exit(&app, &*send);
        }
    });

    let weak = app.as_weak();
    app.on_user_clicked(move |nick| {
        let Some(app) = weak.upgrade() else { return };
        app.invoke_start_line(format!("/msg {nick} ").into());
    });

    let weak = app.as_weak();
    let send = commands.clone();
    app.on_trust_answer(move |accepted| {
        let Some(app) = weak.upgrade() else { return };
        app.set_trust_visible(false);
        if !accepted {
            app.set_busy(false);
            app.set_login_status("".into());
        }
        send(Command::TrustAnswer(accepted));
    });

    let weak = app.as_weak();
    let send = commands;
    app.window().on_close_requested(move || {
        if let Some(app) = weak.upgrade() {
            exit(&app, &*send);
        }
        slint::CloseRequestResponse::KeepWindowShown
    });
}

/// The network events as the UI thread gets them; runs on the network thread.
pub fn event_sink(app: &AppWindow) -> impl FnMut(Event) + Send + 'static {
    let weak = app.as_weak();
    let mut decoder = Decoder::default();
    move |event| {
        let ui_event = match event {
            Event::Line(line) => match decoder.decode(&line) {
                Some(shown) => UiEvent::Shown(shown),
                None => return,
            },
            other => UiEvent::Net(other),
        };
        let _ = weak.upgrade_in_event_loop(move |app| apply(&app, ui_event));
    }
}

fn connect(app: &AppWindow, config_dir: &std::path::Path, send: &dyn Fn(Command)) {
    let host = app.get_host().trim().to_string();
    let nick = app.get_nick().trim().to_string();
    // Saved for later runs, which may start in another directory.
    let ca = absolute_path(app.get_ca_path().trim());
    app.set_ca_path(ca.as_str().into());
    let Some(port) = app.get_port().trim().parse::<u16>().ok().filter(|&p| p > 0) else {
        app.set_login_error(app.global::<Strings>().invoke_bad_port());
        return;
    };
    if let Err(e) = validate_nick(&nick) {
        let strings = app.global::<Strings>();
        let why = match e {
            NickError::Empty => strings.invoke_nick_empty(),
            NickError::TooLong => strings.invoke_nick_too_long(MAX_NICK_CHARS as i32),
            NickError::BadChar(c) => strings.invoke_nick_bad_char(format!("{c:?}").into()),
            NickError::UnfitChar(c) => {
                strings.invoke_nick_unfit_char(format!("{c:?} (U+{:04X})", c as u32).into())
            }
            NickError::MixedScripts => strings.invoke_nick_mixed_scripts(),
        };
        app.set_login_error(strings.invoke_nick_refused(why));
        return;
    }
    let settings = Settings {
        host: host.clone(),
        port,
        nick: nick.clone(),
        ca: ca.clone(),
    };
    // Remembering the values is a convenience: failing to is not worth stopping for.
    let _ = settings.save(config_dir);
    let trust = if ca.is_empty() {
        Trust::Pinned(KnownServers::in_dir(config_dir))
    } else {
        Trust::CaFile(PathBuf::from(ca))
    };
    app.set_login_error("".into());
    app.set_busy(true);
    EXITING.set(false);
    let password = Some(app.get_password().to_string()).filter(|p| !p.is_empty());
    send(Command::Connect(Target {
        host,
        port,
        nick,
        trust,
        password,
    }));
}

/// Enter or Send: the line goes to the network and, if it is the user's own text, into the log
/// at once (the server does not echo it back).
fn send_line(app: &AppWindow, text: &str, send: &dyn Fn(Command)) {
    if !app.get_online() || text.trim().is_empty() {
        // Nothing is lost: the text stays in the input until it can be sent.
        return;
    }
    let me = app.get_my_nick().to_string();
    let strings = app.global::<Strings>();
    match parse_client_line(text) {
        ClientLine::Message(body) => push_log(app, Kind::Own, format!("{me}: {}", contained(body))),
        ClientLine::Me(body) => push_log(app, Kind::Own, format!("* {me} {}", contained(body))),
        ClientLine::Msg { to, text } => push_log(
            app,
            Kind::Private,
            strings
                .invoke_private_to(to.into(), contained(text).as_ref().into())
                .to_string(),
        ),
        ClientLine::Users => USERS_REQUESTED.set(true),
        ClientLine::Quit(_) => {
            app.set_input("".into());
            return exit(app, send);
        }
        _ => {}
    }
    send(Command::Send(text.to_string()));
    app.set_input("".into());
}

fn exit(app: &AppWindow, send: &dyn Fn(Command)) {
    if app.get_online() {
        EXITING.set(true);
        send(Command::Quit(None));
    } else {
        send(Command::Shutdown);
        let _ = slint::quit_event_loop();
    }
}

fn push_log(app: &AppWindow, kind: Kind, text: String) {
    let log = app.get_log();
    let Some(model) = log.as_any().downcast_ref::<VecModel<LogEntry>>() else {
        return;
    };
    if model.row_count() >= MAX_LOG_LINES {
        model.remove(0);
    }
    model.push(LogEntry {
        time: clock().into(),
        kind: kind.as_str().into(),
        // A character no font has would show as nothing at all.
        text: glyphs::visible(&text).as_ref().into(),
    });
}

fn with_users(app: &AppWindow, f: impl FnOnce(&VecModel<SharedString>)) {
    let users = app.get_users();
    if let Some(model) = users.as_any().downcast_ref::<VecModel<SharedString>>() {
        f(model);
    }
}

fn remove_user(model: &VecModel<SharedString>, nick: &str) {
    if let Some(i) = model.iter().position(|n| n == nick) {
        model.remove(i);
    }
}

/// Applies one event to the window.
pub fn apply(app: &AppWindow, event: UiEvent) {
    let strings = app.global::<Strings>();
    match event {
        UiEvent::Net(Event::Connecting { server, .. }) => {
            let text = strings.invoke_connecting(server.into());
            if app.get_page() == 0 {
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
            app.set_trust_fingerprint(fingerprint.into());
            app.set_trust_visible(true);
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
            app.set_page(1);
            app.set_login_status("".into());
            app.set_chat_status("".into());
            push_log(
                app,
                Kind::System,
                strings.invoke_connected(nick.into()).to_string(),
            );
            app.invoke_focus_input();
        }
        // The window was closed while the connection was being made again: it closes now.
        UiEvent::Net(Event::Failed { .. } | Event::Refused { .. }) if EXITING.get() => {
            let _ = slint::quit_event_loop();
        }
        UiEvent::Net(Event::Refused { code, text }) => {
            let why = server_error(app, code.as_str(), &text);
            let text = match code {
                ErrorCode::NickTaken | ErrorCode::NickInvalid => strings.invoke_nick_refused(why),
                ErrorCode::PasswordRequired | ErrorCode::BadPassword => {
                    strings.invoke_password_refused(why)
                }
                _ => strings.invoke_error(why),
            };
            if app.get_page() == 1 {
                push_log(app, Kind::Error, text.to_string());
            }
            back_to_login(app, text);
        }
        UiEvent::Net(Event::Lost { problem, retry_in }) => {
            let reason = problem_words(app, &problem);
            let text = strings.invoke_lost(reason, retry_in.as_secs() as i32);
            app.set_chat_status(text.clone());
            // The log says it once; further failed attempts only update the status line.
            if app.get_online() {
                app.set_online(false);
                push_log(app, Kind::System, text.to_string());
                // Who is in the chat is unknown until the server answers again.
                with_users(app, |m| m.set_vec(Vec::new()));
            }
        }
        UiEvent::Net(Event::Failed { problem }) => {
            let text = strings.invoke_error(problem_words(app, &problem));
            if app.get_page() == 1 {
                push_log(app, Kind::Error, text.to_string());
            }
            back_to_login(app, text);
        }
        // Own lines are in the log since they were typed.
        UiEvent::Net(Event::Sent(_)) => {}
        UiEvent::Net(Event::Closed) => {
            app.set_online(false);
            if EXITING.get() {
                let _ = slint::quit_event_loop();
            } else {
                app.set_page(0);
            }
        }
        UiEvent::Net(Event::Line(line)) => push_log(app, Kind::System, line),
        UiEvent::Shown(shown) => show(app, shown),
    }
}

fn back_to_login(app: &AppWindow, error: SharedString) {
    app.set_online(false);
    app.set_busy(false);
    app.set_login_status("".into());
    app.set_login_error(error);
    app.set_page(0);
}

fn show(app: &AppWindow, shown: Shown) {
    let strings = app.global::<Strings>();
    match shown {
        // Each message is shown so that bidi controls in it cannot reach what follows.
        Shown::Message { from, text } => {
            push_log(app, Kind::Message, format!("{from}: {}", contained(&text)))
        }
        Shown::Action { from, text } => {
            push_log(app, Kind::Action, format!("* {from} {}", contained(&text)))
        }
        Shown::Private { from, text } => push_log(
            app,
            Kind::Private,
            strings
                .invoke_private_from(from.into(), contained(&text).as_ref().into())
                .to_string(),
        ),
        Shown::Joined(nick) => {
            with_users(app, |m| {
                if !m.iter().any(|n| n == nick.as_str()) {
                    m.push(nick.as_str().into());
                }
            });
            push_log(
                app,
                Kind::System,
                strings.invoke_joined(nick.into()).to_string(),
            );
        }
        Shown::Left { nick, reason } => {
            with_users(app, |m| remove_user(m, &nick));
            let text = match reason {
                Some(r) => {
                    strings.invoke_left_because(nick.into(), leave_words(app, &contained(&r)))
                }
                None => strings.invoke_left(nick.into()),
            };
            push_log(app, Kind::System, text.to_string());
        }
        Shown::Renamed { old, new } => {
            with_users(app, |m| {
                if let Some(i) = m.iter().position(|n| n == old.as_str()) {
                    m.set_row_data(i, new.as_str().into());
                }
            });
            if app.get_my_nick() == old.as_str() {
                app.set_my_nick(new.as_str().into());
            }
            push_log(
                app,
                Kind::System,
                strings.invoke_renamed(old.into(), new.into()).to_string(),
            );
        }
        Shown::Users(mut nicks) => {
            nicks.sort_by_key(|n| n.to_lowercase());
            if USERS_REQUESTED.replace(false) {
                let text = strings.invoke_user_list(nicks.len() as i32, nicks.join(", ").into());
                push_log(app, Kind::System, text.to_string());
            }
            with_users(app, |m| {
                m.set_vec(
                    nicks
                        .into_iter()
                        .map(SharedString::from)
                        .collect::<Vec<_>>(),
                )
            });
        }
        Shown::Pong(_) => push_log(app, Kind::System, strings.invoke_pong().to_string()),
        Shown::Notice(text) => push_log(
            app,
            Kind::System,
            strings.invoke_notice(notice_words(app, &text)).to_string(),
        ),
        Shown::Error { code, text } => push_log(
            app,
            Kind::Error,
            strings
                .invoke_error(server_error(app, &code, &text))
                .to_string(),
        ),
        Shown::Other(line) => push_log(app, Kind::System, line),
    }
}

/// A server's `ERROR <code> <text>` in the user's language; the server's text is used only where
/// it is a detail (a nickname, a command, a usage).
fn server_error(app: &AppWindow, code: &str, text: &str) -> SharedString {
    let s = app.global::<Strings>();
    let Some(code) = ErrorCode::from_word(code) else {
        return s.invoke_err_other(code.into(), text.into());
    };
    match code {
        ErrorCode::NickInvalid => s.invoke_err_nick_invalid(text.into()),
        ErrorCode::NickTaken => s.invoke_err_nick_taken(),
        ErrorCode::NoSuchUser => s.invoke_err_no_such_user(text.into()),
        ErrorCode::UnknownCommand => {
            s.invoke_err_unknown_command(text.trim_start_matches('/').into())
        }
        ErrorCode::MissingArgument => s.invoke_err_missing_argument(text.into()),
        ErrorCode::LineTooLong => s.invoke_err_line_too_long(),
        ErrorCode::BadUtf8 => s.invoke_err_bad_utf8(),
        ErrorCode::Flood => s.invoke_err_flood(),
        ErrorCode::ServerFull => s.invoke_err_server_full(),
        ErrorCode::Timeout => s.invoke_err_timeout(),
        ErrorCode::PasswordRequired => s.invoke_err_password_required(),
        ErrorCode::BadPassword => s.invoke_err_bad_password(),
        ErrorCode::TooManyConnections => s.invoke_err_too_many_connections(),
    }
}

/// The server's fixed notices in the user's language; any other notice (the /help text) as it
/// came.
fn notice_words(app: &AppWindow, text: &str) -> SharedString {
    let s = app.global::<Strings>();
    if text == notice::SHUTTING_DOWN {
        return s.invoke_shutting_down();
    }
    if text == notice::PASSWORD_ACCEPTED || text == notice::PASSWORD_ALREADY_ACCEPTED {
        return s.invoke_password_accepted();
    }
    if let Some(nick) = text
        .strip_prefix(notice::NICK_UNCHANGED)
        .and_then(|rest| rest.strip_prefix(' '))
    {
        return s.invoke_nick_unchanged(nick.into());
    }
    text.into()
}

/// The server's own leave reasons in the user's language; a reason the user gave with `/quit`
/// as it came.
fn leave_words(app: &AppWindow, reason: &str) -> SharedString {
    let s = app.global::<Strings>();
    match reason {
        leave_reason::CONNECTION_CLOSED => s.invoke_reason_closed(),
        leave_reason::CONNECTION_LOST => s.invoke_reason_lost(),
        leave_reason::TOO_SLOW => s.invoke_reason_too_slow(),
        leave_reason::TIMEOUT => s.invoke_reason_timeout(),
        leave_reason::SHUTTING_DOWN => s.invoke_shutting_down(),
        other => other.into(),
    }
}

/// Why a connection could not be made or was lost, in the user's language.
fn problem_words(app: &AppWindow, problem: &Problem) -> SharedString {
    let s = app.global::<Strings>();
    let path = |p: &std::path::Path| SharedString::from(p.display().to_string());
    match problem {
        Problem::UnknownHost { host, .. } => s.invoke_unknown_host(host.into()),
        Problem::Unreachable { server, tries } => {
            let tried: Vec<String> = tries
                .iter()
                .map(|(addr, error)| format!("{addr}: {}", os_words(app, error)))
                .collect();
            s.invoke_unreachable(server.into(), tried.join("; ").into())
        }
        Problem::CertificateRejected { server, ca, detail } => {
            s.invoke_certificate_rejected(server.into(), path(ca), detail.into())
        }
        Problem::TlsFailed { server, detail } => s.invoke_tls_failed(server.into(), detail.into()),
        Problem::NoCertificate { server } => s.invoke_no_certificate(server.into()),
        Problem::CaUnreadable { path: p, error } => {
            s.invoke_ca_unreadable(path(p), os_words(app, error))
        }
        Problem::CaInvalid { path: p } => s.invoke_ca_invalid(path(p)),
        Problem::KnownServers { path: p, error } => {
            s.invoke_known_servers_failed(path(p), os_words(app, error))
        }
        Problem::NotTrusted { server } => s.invoke_not_trusted(server.into()),
        Problem::Busy { code, text } => server_error(app, code.as_str(), text),
        Problem::ServerClosed => s.invoke_server_closed(),
        Problem::NoAnswer { server } => s.invoke_no_answer(server.into()),
        Problem::Broken(error) => s.invoke_broken(os_words(app, error)),
        Problem::Internal(text) => text.into(),
    }
}

fn os_words(app: &AppWindow, error: &OsError) -> SharedString {
    let s = app.global::<Strings>();
    match error {
        OsError::Refused => s.invoke_os_refused(),
        OsError::TimedOut => s.invoke_os_timed_out(),
        OsError::Reset => s.invoke_os_reset(),
        OsError::Unreachable => s.invoke_os_unreachable(),
        OsError::NotFound => s.invoke_os_not_found(),
        OsError::PermissionDenied => s.invoke_os_permission_denied(),
        OsError::Other(text) => text.into(),
    }
}
