//! The window without a display: Slint's testing backend, real callbacks and models; commands to
//! the network are captured instead of sent.

use std::cell::RefCell;
use std::rc::Rc;

use charla::config::Settings;
use charla::gui::{self, UiEvent};
use charla::net::{Command, Event, OsError, Problem, Trust};
use charla::present::Shown;
use charla::{AppWindow, Dialog, LogKind, Page};
use charla_proto::ErrorCode;
use i_slint_backend_testing::ElementHandle;
use slint::platform::{Key, WindowEvent};
use slint::{ComponentHandle, Model};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Ui {
    app: AppWindow,
    gui: gui::Gui,
    sent: Rc<RefCell<Vec<Command>>>,
    dir: std::path::PathBuf,
}

fn ui(lang: &str) -> Ui {
    ui_as(lang, false)
}

/// With `identity`, the window is bound with an identity made in its config dir.
fn ui_as(lang: &str, identity: bool) -> Ui {
    i_slint_backend_testing::init_no_event_loop();
    let app = AppWindow::new().unwrap();
    slint::select_bundled_translation(lang).unwrap();
    let sent = Rc::new(RefCell::new(Vec::new()));
    let sink = sent.clone();
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "charla-ui-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let identity = identity
        .then(|| std::sync::Arc::new(charla::identity::Identity::load_or_create(&dir).unwrap()));
    let gui = gui::bind(
        &app,
        &Settings::default(),
        dir.clone(),
        identity,
        Rc::new(move |c| sink.borrow_mut().push(c)),
    );
    Ui {
        app,
        gui,
        sent,
        dir,
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Ui {
    /// The panel's header counts exactly the names it lists.
    fn header_agrees(&self) {
        self.element(&format!("In the chat ({})", self.users().len()));
    }

    fn registered(&self, nick: &str) {
        self.gui.apply(
            &self.app,
            UiEvent::Net(Event::Registered { nick: nick.into() }),
        );
    }

    fn show(&self, shown: Shown) {
        self.gui.apply(&self.app, UiEvent::Shown(shown));
    }

    fn element(&self, label: &str) -> ElementHandle {
        ElementHandle::find_by_accessible_label(&self.app, label)
            .next()
            .unwrap_or_else(|| panic!("no element labelled {label:?}"))
    }

    fn log(&self) -> Vec<(LogKind, String)> {
        self.app
            .get_log()
            .iter()
            .map(|e| (e.kind, gui::line_text(&e)))
            .collect()
    }

    fn last_log(&self) -> (LogKind, String) {
        self.log().last().cloned().expect("empty log")
    }

    fn users(&self) -> Vec<String> {
        self.app
            .get_users()
            .iter()
            .map(|u| u.nick.to_string())
            .collect()
    }

    fn sent_lines(&self) -> Vec<String> {
        self.sent
            .borrow()
            .iter()
            .filter_map(|c| match c {
                Command::Send(line) => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    fn press_enter(&self) {
        press(self, Key::Return);
    }
}

fn own(text: &str) -> (LogKind, String) {
    (LogKind::Own, text.into())
}

#[test]
fn send_button_puts_the_line_in_the_log_and_hands_it_to_the_network() {
    let ui = ui("en");
    ui.registered("ana");
    assert_eq!(ui.app.get_page(), Page::Chat);
    ui.element("Message").set_accessible_value("hola a todos");
    ui.element("Send").invoke_accessible_default_action();
    assert_eq!(ui.sent_lines(), vec!["hola a todos"]);
    assert_eq!(ui.last_log(), own("ana: hola a todos"));
    assert_eq!(ui.app.get_input(), "", "the input is cleared");
}

#[test]
fn enter_sends_too() {
    let ui = ui("en");
    ui.registered("ana");
    ui.element("Message").set_accessible_value("con Enter");
    ui.press_enter();
    assert_eq!(ui.sent_lines(), vec!["con Enter"]);
    assert_eq!(ui.last_log(), own("ana: con Enter"));
}

#[test]
fn commands_typed_in_the_input_work() {
    let ui = ui("en");
    ui.registered("ana");
    for line in ["/me saluda", "/nick anita", "//tmp", "/msg bob psst"] {
        ui.app.set_input(line.into());
        ui.app.invoke_send(line.into());
    }
    assert_eq!(
        ui.sent_lines(),
        vec!["/me saluda", "/nick anita", "//tmp", "/msg bob psst"]
    );
    // /msg opened the conversation with bob, and shows it.
    assert_eq!(ui.app.get_current_conversation(), 1);
    assert_eq!(
        ui.log(),
        [(LogKind::Private, "(private to bob) psst".to_string())]
    );
    ui.app.invoke_switch_to(0);
    let log = ui.log();
    assert!(log.contains(&own("* ana saluda")), "{log:?}");
    assert!(log.contains(&own("ana: /tmp")), "{log:?}");
    ui.show(Shown::Renamed {
        old: "ana".into(),
        new: "anita".into(),
    });
    assert_eq!(ui.app.get_my_nick(), "anita");
}

#[test]
fn the_user_panel_follows_users_join_leave_and_nick() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Users(vec!["bob".into(), "ana".into()]));
    assert_eq!(ui.users(), vec!["ana", "bob"]);
    ui.header_agrees();
    assert!(
        !ui.log()
            .iter()
            .any(|(_, t)| t.contains("Users in the chat")),
        "the automatic list is not logged"
    );
    ui.show(Shown::Joined("eva".into()));
    assert_eq!(ui.users(), vec!["ana", "bob", "eva"]);
    ui.header_agrees();
    assert_eq!(
        ui.last_log(),
        (LogKind::System, "[+] User eva has joined the chat".into())
    );
    ui.show(Shown::Renamed {
        old: "bob".into(),
        new: "roberto".into(),
    });
    assert_eq!(ui.users(), vec!["ana", "roberto", "eva"]);
    ui.header_agrees();
    ui.show(Shown::Left {
        nick: "eva".into(),
        why: "too-slow".into(),
        text: None,
    });
    assert_eq!(ui.users(), vec!["ana", "roberto"]);
    ui.header_agrees();
    assert_eq!(
        ui.last_log(),
        (
            LogKind::System,
            "[!] User eva has left the chat (too slow)".into()
        )
    );
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Lost {
            problem: Problem::ServerClosed,
            retry_in: std::time::Duration::from_secs(1),
        }),
    );
    assert!(ui.users().is_empty());
    ui.header_agrees();
}

#[test]
fn list_users_asks_the_server_and_prints_the_answer() {
    let ui = ui("en");
    ui.registered("ana");
    ui.element("List users").invoke_accessible_default_action();
    assert_eq!(ui.sent_lines(), vec!["/users"]);
    ui.show(Shown::Users(vec!["bob".into(), "ana".into()]));
    assert_eq!(
        ui.last_log(),
        (LogKind::System, "Users in the chat (2): ana, bob".into())
    );
}

#[test]
fn clicking_a_name_starts_a_private_message() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Users(vec!["ana".into(), "bob".into()]));
    ui.element("bob").invoke_accessible_default_action();
    // A conversation with bob, shown, and the input ready for what to say.
    assert_eq!(ui.app.get_current_conversation(), 1);
    ui.element("Private with bob, 0 unread");
    ui.app
        .window()
        .dispatch_event(WindowEvent::KeyPressed { text: "h".into() });
    ui.app
        .window()
        .dispatch_event(WindowEvent::KeyReleased { text: "h".into() });
    assert_eq!(ui.app.get_input(), "h");
    ui.press_enter();
    assert_eq!(ui.sent_lines(), ["/msg bob h"]);
    assert_eq!(
        ui.last_log(),
        (LogKind::Private, "(private to bob) h".into())
    );
}

#[test]
fn messages_private_lines_and_errors_are_told_apart() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Message {
        from: "bob".into(),
        text: "hola".into(),
    });
    ui.show(Shown::Private {
        from: "bob".into(),
        text: "psst".into(),
    });
    ui.show(Shown::Action {
        from: "bob".into(),
        text: "saluda".into(),
    });
    ui.show(Shown::Error {
        code: "no-such-user".into(),
        text: "zoe".into(),
    });
    ui.show(Shown::Notice("server shutting down".into()));
    let log = ui.log();
    let kinds: Vec<LogKind> = log.iter().skip(1).map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        vec![
            LogKind::Message,
            LogKind::Action,
            LogKind::Error,
            LogKind::System
        ]
    );
    // The private line is in bob's conversation, counted until it is shown.
    ui.element("Private with bob, 1 unread");
    ui.app.invoke_switch_to(1);
    assert_eq!(ui.log(), [(LogKind::Private, "(private) bob: psst".into())]);
    ui.element("Private with bob, 0 unread");
}

#[test]
fn private_conversations_have_tabs_with_unread_counts_and_follow_renames() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Users(vec![
        "ana".into(),
        "bob".into(),
        "cleo".into(),
    ]));
    // No tabs while there is only the room.
    assert!(
        ElementHandle::find_by_accessible_label(&ui.app, "Chat room, 0 unread")
            .next()
            .is_none()
    );
    ui.show(Shown::Private {
        from: "bob".into(),
        text: "uno".into(),
    });
    ui.show(Shown::Private {
        from: "Cleo".into(),
        text: "dos".into(),
    });
    ui.show(Shown::Private {
        from: "bob".into(),
        text: "tres".into(),
    });
    // The room stays first and shown; each person has a tab counting what they said.
    assert_eq!(ui.app.get_current_conversation(), 0);
    ui.element("Chat room, 0 unread");
    ui.element("Private with bob, 2 unread");
    ui.element("Private with Cleo, 1 unread");
    // In bob's tab, a line is for bob; the room counts what is said there meanwhile.
    ui.element("Private with bob, 2 unread")
        .invoke_accessible_default_action();
    ui.app.set_input("vale".into());
    ui.press_enter();
    assert_eq!(ui.sent_lines(), ["/msg bob vale"]);
    ui.show(Shown::Message {
        from: "cleo".into(),
        text: "hola a todos".into(),
    });
    ui.element("Chat room, 1 unread");
    // bob becomes roberto: the tab follows, and says so.
    ui.show(Shown::Renamed {
        old: "bob".into(),
        new: "roberto".into(),
    });
    ui.element("Private with roberto, 0 unread");
    assert_eq!(
        ui.last_log(),
        (LogKind::System, "bob is now known as roberto".into())
    );
    ui.app.set_input("sigues?".into());
    ui.press_enter();
    assert_eq!(ui.sent_lines().last().unwrap(), "/msg roberto sigues?");
    // Closing it shows the tab before; the room cannot be closed.
    ui.element("Close the conversation with roberto")
        .invoke_accessible_default_action();
    assert_eq!(ui.app.get_current_conversation(), 0);
    assert!(
        ElementHandle::find_by_accessible_label(&ui.app, "Private with roberto, 0 unread")
            .next()
            .is_none()
    );
    ui.element("Private with Cleo, 1 unread");
}

#[test]
fn offline_the_typed_text_is_kept() {
    let ui = ui("en");
    ui.registered("ana");
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Lost {
            problem: Problem::ServerClosed,
            retry_in: std::time::Duration::from_secs(2),
        }),
    );
    assert!(!ui.app.get_online());
    assert_eq!(ui.element("Send").accessible_enabled(), Some(false));
    assert!(
        ui.last_log().1.contains("Reconnecting in 2 s"),
        "{:?}",
        ui.last_log()
    );
    ui.element("Message").set_accessible_value("borrador");
    ui.press_enter();
    assert!(ui.sent_lines().is_empty());
    assert_eq!(ui.app.get_input(), "borrador");
    ui.registered("ana");
    ui.element("Send").invoke_accessible_default_action();
    assert_eq!(ui.sent_lines(), vec!["borrador"]);
}

#[test]
fn the_login_shows_errors_and_stays() {
    let ui = ui("en");
    assert_eq!(ui.app.get_page(), Page::Login);
    ui.app.set_nick("mal nombre".into());
    ui.element("Connect").invoke_accessible_default_action();
    assert_eq!(
        ui.app.get_login_error(),
        "Nickname refused: ' ' is not allowed: use letters, digits, _ - and ."
    );
    assert!(ui.sent.borrow().is_empty());

    ui.app.set_nick("ana".into());
    ui.app.set_port("99999".into());
    ui.element("Connect").invoke_accessible_default_action();
    assert!(
        ui.app.get_login_error().contains("port"),
        "{}",
        ui.app.get_login_error()
    );

    ui.app.set_port("12345".into());
    // A relative certificate file is remembered as an absolute one: later runs start elsewhere.
    ui.app.set_ca_path("certs/server-cert.pem".into());
    ui.element("Connect").invoke_accessible_default_action();
    let absolute = std::env::current_dir()
        .unwrap()
        .join("certs/server-cert.pem");
    assert!(matches!(ui.sent.borrow().last(), Some(Command::Connect(t))
            if t.nick == "ana" && t.port == 12345
                && matches!(&t.trust, Trust::CaFile(p) if *p == absolute)));
    assert_eq!(
        Settings::load(&ui.dir).ca,
        absolute.to_str().unwrap(),
        "the saved settings"
    );
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Failed {
            problem: Problem::Unreachable {
                server: "localhost:12345".into(),
                tries: vec![("[::1]:12345".parse().unwrap(), OsError::Refused)],
            },
        }),
    );
    assert_eq!(ui.app.get_page(), Page::Login);
    assert_eq!(
        ui.app.get_login_error(),
        "Error: cannot connect to localhost:12345 ([::1]:12345: refused: no server is listening there)"
    );
    assert!(!ui.app.get_busy(), "Connect can be pressed again");

    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Refused {
            code: ErrorCode::NickTaken,
            text: "ana is already in use".into(),
        }),
    );
    assert_eq!(
        ui.app.get_login_error(),
        "Nickname refused: that nickname is already in use: choose another"
    );
}

#[test]
fn a_new_server_asks_for_trust_and_a_changed_one_warns() {
    let ui = ui("en");
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::NewServer {
            server: "localhost:12345".into(),
            fingerprint: "AB:CD".into(),
        }),
    );
    assert_eq!(ui.app.get_dialog(), Dialog::Trust);
    assert_eq!(
        ui.element("Fingerprint").accessible_value().unwrap(),
        "AB:CD"
    );
    ui.element("Trust and connect")
        .invoke_accessible_default_action();
    assert!(matches!(
        ui.sent.borrow().last(),
        Some(Command::TrustAnswer(true))
    ));
    assert_ne!(ui.app.get_dialog(), Dialog::Trust);

    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::ServerChanged {
            server: "h:1".into(),
            expected: "AA".into(),
            got: "BB".into(),
            known_servers: "/home/ana/.config/charla/known_servers".into(),
        }),
    );
    let error = ui.app.get_login_error();
    assert!(
        error.starts_with("WARNING")
            && error.contains("AA")
            && error.contains("BB")
            && error.contains("/home/ana/.config/charla/known_servers"),
        "{error}"
    );
}

#[test]
fn spanish_strings_follow_the_tutorial() {
    let ui = ui("es");
    ui.registered("ana");
    for label in ["Enviar", "Listar Usuarios", "Salir", "Mensaje"] {
        ui.element(label);
    }
    ui.show(Shown::Joined("bob".into()));
    assert_eq!(ui.last_log().1, "[+] El usuario bob ha entrado al chat");
    ui.show(Shown::Left {
        nick: "bob".into(),
        why: "quit".into(),
        text: None,
    });
    assert_eq!(ui.last_log().1, "[!] El usuario bob ha abandonado el chat");
}

#[test]
fn spanish_sessions_show_no_english() {
    let ui = ui("es");
    ui.registered("ana");
    ui.show(Shown::Left {
        nick: "bob".into(),
        why: "closed".into(),
        text: None,
    });
    assert_eq!(
        ui.last_log().1,
        "[!] El usuario bob ha abandonado el chat (conexión cerrada)"
    );
    ui.show(Shown::Notice("server shutting down".into()));
    assert_eq!(ui.last_log().1, "Servidor: el servidor se está apagando");
    ui.app.set_nick("".into());
    ui.app.invoke_connect();
    assert_eq!(
        ui.app.get_login_error(),
        "Nombre rechazado: escribe un nombre"
    );
    ui.show(Shown::Error {
        code: "unknown-command".into(),
        text: "frob".into(),
    });
    assert_eq!(
        ui.last_log().1,
        "Error: orden desconocida /frob (/help las enumera)"
    );
    ui.show(Shown::Users(vec!["ana".into()]));
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Lost {
            problem: Problem::ServerClosed,
            retry_in: std::time::Duration::from_secs(2),
        }),
    );
    assert_eq!(
        ui.last_log().1,
        "Conexión perdida: el servidor cerró la conexión. Reconectando en 2 s…"
    );
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Failed {
            problem: Problem::Unreachable {
                server: "localhost:12345".into(),
                tries: vec![
                    ("[::1]:12345".parse().unwrap(), OsError::Refused),
                    ("127.0.0.1:12345".parse().unwrap(), OsError::TimedOut),
                ],
            },
        }),
    );
    assert_eq!(
        ui.app.get_login_error(),
        "Error: no se puede conectar con localhost:12345 ([::1]:12345: rechazada: no hay ningún servidor escuchando ahí; 127.0.0.1:12345: sin respuesta)"
    );
}

#[test]
fn the_about_window_shows_the_version() {
    let ui = ui("en");
    ui.element("About").invoke_accessible_default_action();
    ui.element(&format!("Version {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn english_strings_are_there_too() {
    let ui = ui("en");
    ui.registered("ana");
    for label in ["Send", "List users", "Exit", "Message"] {
        ui.element(label);
    }
}

#[test]
fn bidi_controls_in_a_message_stay_inside_it() {
    let ui = ui("en");
    ui.registered("ana");
    // An override that would show the rest of the row backwards, after a pop meant to close the
    // isolate early.
    ui.show(Shown::Message {
        from: "bob".into(),
        text: "hola\u{2069}\u{202E}evil".into(),
    });
    assert_eq!(
        ui.last_log().1,
        "bob: \u{2068}hola\u{202E}evil\u{2069}",
        "isolated, the stray pop dropped"
    );
    ui.show(Shown::Message {
        from: "bob".into(),
        text: "plain".into(),
    });
    assert_eq!(ui.last_log().1, "bob: plain", "plain text is left alone");
}

#[test]
fn a_batch_is_applied_whole_and_in_order() {
    let ui = ui("en");
    ui.registered("ana");
    ui.gui.apply_batch(
        &ui.app,
        vec![
            UiEvent::Shown(Shown::Users(vec!["ana".into()])),
            UiEvent::Shown(Shown::Joined("bob".into())),
            UiEvent::Shown(Shown::Message {
                from: "bob".into(),
                text: "hola".into(),
            }),
            UiEvent::Shown(Shown::Left {
                nick: "bob".into(),
                why: "quit".into(),
                text: None,
            }),
        ],
    );
    let log = ui.log();
    assert_eq!(
        log[log.len() - 3..],
        [
            (LogKind::System, "[+] User bob has joined the chat".into()),
            (LogKind::Message, "bob: hola".into()),
            (LogKind::System, "[!] User bob has left the chat".into()),
        ]
    );
    assert_eq!(ui.users(), vec!["ana"]);
    ui.header_agrees();
}

#[test]
fn the_log_keeps_the_newest_lines_past_its_bound() {
    let ui = ui("en");
    ui.registered("ana");
    let extra = 10;
    let flood: Vec<UiEvent> = (0..gui::MAX_LOG_LINES + extra)
        .map(|i| {
            UiEvent::Shown(Shown::Message {
                from: "bob".into(),
                text: format!("{i}"),
            })
        })
        .collect();
    ui.gui.apply_batch(&ui.app, flood);
    let log = ui.log();
    assert_eq!(log.len(), gui::MAX_LOG_LINES);
    assert_eq!(log[0].1, format!("bob: {extra}"), "the oldest lines went");
    assert_eq!(
        log[log.len() - 1].1,
        format!("bob: {}", gui::MAX_LOG_LINES + extra - 1)
    );
    assert_eq!(
        gui::line_text(&ui.app.get_log().row_data(1).unwrap()),
        format!("bob: {}", extra + 1)
    );
}

#[test]
fn history_is_shown_with_its_own_time_apart_from_live_lines_and_a_marker_after_it() {
    let ui = ui("en");
    let connecting = |ui: &Ui| {
        ui.gui.apply(
            &ui.app,
            UiEvent::Net(Event::Connecting {
                server: "localhost:12345".into(),
                attempt: 0,
            }),
        )
    };
    let mut decoder = charla::present::Decoder::default();
    let mut lines = |ui: &Ui, lines: &[&str]| {
        for line in lines {
            if let Some(shown) = decoder.decode(line) {
                ui.show(shown);
            }
        }
    };
    let kept = "NOTICE history kept: 100 public messages in memory, shown to whoever joins";
    connecting(&ui);
    ui.registered("ana");
    let before = ui.app.get_log().row_count();
    lines(
        &ui,
        &[
            "USERS 1 ana",
            "HISTORY 2026-01-02T03:04:05Z MSG bob hola",
            "HISTORY 2026-01-02T03:05:05Z ACTION bob saluda",
            kept,
            "MSG bob ya",
        ],
    );
    let log: Vec<_> = ui.app.get_log().iter().skip(before).collect();
    let shown: Vec<(LogKind, String)> = log.iter().map(|e| (e.kind, gui::line_text(e))).collect();
    assert_eq!(
        shown,
        [
            (LogKind::History, "bob: hola".into()),
            (LogKind::History, "* bob saluda".into()),
            (
                LogKind::System,
                "— 2 earlier messages, said before you joined —".into()
            ),
            (
                LogKind::System,
                "This server keeps the last 100 public messages and shows them to whoever joins"
                    .into()
            ),
            (LogKind::Message, "bob: ya".into()),
        ]
    );
    // Not today: the date goes with the time.
    assert!(log[0].time.starts_with("2026-01-0"), "{}", log[0].time);

    // The connection drops and comes back with what was missed.
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Lost {
            problem: Problem::ServerClosed,
            retry_in: std::time::Duration::from_secs(1),
        }),
    );
    connecting(&ui);
    ui.registered("ana");
    let before = ui.app.get_log().row_count();
    lines(
        &ui,
        &[
            "USERS 2 ana bob",
            "HISTORY 2026-01-02T03:06:05Z MSG bob perdido",
            kept,
        ],
    );
    let shown: Vec<(LogKind, String)> = ui
        .app
        .get_log()
        .iter()
        .skip(before)
        .map(|e| (e.kind, gui::line_text(&e)))
        .collect();
    assert_eq!(
        shown,
        [
            (LogKind::History, "bob: perdido".into()),
            (LogKind::System, "— 1 message while you were away —".into()),
        ],
        "the notice once per server"
    );

    // Dropped again, back with nothing missed; later history is not "while you were away".
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Lost {
            problem: Problem::ServerClosed,
            retry_in: std::time::Duration::from_secs(1),
        }),
    );
    ui.registered("ana");
    lines(&ui, &["USERS 2 ana bob", kept, "MSG bob hola"]);
    ui.registered("ana");
    lines(
        &ui,
        &[
            "USERS 2 ana bob",
            "HISTORY 2026-01-02T03:07:05Z MSG bob antes",
            kept,
        ],
    );
    assert_eq!(
        ui.last_log(),
        (
            LogKind::System,
            "— 1 earlier message, said before you joined —".into()
        )
    );
}

#[test]
fn the_about_window_shows_the_identity_with_a_copy_button() {
    let with = ui_as("en", true);
    let identity = charla::identity::Identity::load_or_create(&with.dir).unwrap();
    with.element("About").invoke_accessible_default_action();
    // In four groups of eight bytes (lines break between them only); the same fingerprint.
    let shown = with.element("Your fingerprint").accessible_value().unwrap();
    assert_eq!(shown.split(' ').count(), 4, "{shown}");
    assert_eq!(
        charla_proto::normalize_fingerprint(&shown).as_deref(),
        Some(identity.fingerprint.as_str())
    );
    assert_eq!(identity.fingerprint.len(), 95);
    with.element("Copy");
}

#[test]
fn without_an_identity_the_about_window_says_why() {
    let plain = ui("en");
    plain.element("About").invoke_accessible_default_action();
    assert!(
        ElementHandle::find_by_accessible_label(&plain.app, "Your fingerprint")
            .next()
            .is_none()
    );
    assert!(plain.app.get_identity_note().contains("--no-identity"));
}

/// The "Moderate <nick>" buttons of the user panel.
fn moderate_buttons(ui: &Ui) -> Vec<String> {
    ["ana", "bob", "carla"]
        .iter()
        .filter(|nick| {
            ElementHandle::find_by_accessible_label(&ui.app, &format!("Moderate {nick}"))
                .next()
                .is_some()
        })
        .map(|nick| nick.to_string())
        .collect()
}

#[test]
fn kick_ban_and_mute_are_offered_to_an_operator_only() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Users(vec![
        "ana".into(),
        "bob".into(),
        "carla".into(),
    ]));
    ui.show(Shown::Operator("carla".into()));
    assert!(!ui.app.get_operator());
    assert_eq!(moderate_buttons(&ui), Vec::<String>::new());
    assert!(ui
        .app
        .get_users()
        .iter()
        .any(|u| u.nick == "carla" && u.operator));
    assert_eq!(
        ui.element("carla").accessible_description().unwrap(),
        "operator"
    );

    // The server says the user is one: every other name offers moderation.
    ui.show(Shown::Operator("ana".into()));
    assert!(ui.app.get_operator());
    assert_eq!(moderate_buttons(&ui), ["bob", "carla"]);

    // Ban, with a confirmation that carries the reason and the minutes.
    ui.element("Moderate bob")
        .invoke_accessible_default_action();
    assert_eq!(ui.app.get_dialog(), Dialog::Moderate);
    // What is typed goes to the reason at once.
    for key in ["s", "p"] {
        ui.app
            .window()
            .dispatch_event(WindowEvent::KeyPressed { text: key.into() });
        ui.app
            .window()
            .dispatch_event(WindowEvent::KeyReleased { text: key.into() });
    }
    assert_eq!(ui.app.get_moderate_reason(), "sp");
    ui.app.set_moderate_reason("spam".into());
    ui.app.set_moderate_minutes("ten".into());
    ui.element("Ban").invoke_accessible_default_action();
    assert!(
        ui.app.get_dialog() == Dialog::Moderate,
        "bad minutes keep the dialog open"
    );
    assert_eq!(
        ui.app.get_moderate_error(),
        "Minutes must be a whole number above 0, or empty."
    );
    assert!(ui.sent_lines().is_empty());
    ui.app.set_moderate_minutes("10".into());
    ui.element("Ban").invoke_accessible_default_action();
    assert_ne!(ui.app.get_dialog(), Dialog::Moderate);
    assert_eq!(ui.sent_lines(), ["/ban bob 10 spam"]);
    // Without minutes, until lifted: a reason that starts with a number stays the reason.
    ui.element("Moderate bob")
        .invoke_accessible_default_action();
    ui.app.set_moderate_reason("3 strikes".into());
    ui.element("Ban").invoke_accessible_default_action();
    assert_eq!(ui.sent_lines().last().unwrap(), "/ban bob 0 3 strikes");
    ui.sent.borrow_mut().clear();
    ui.sent
        .borrow_mut()
        .push(Command::Send("/ban bob 10 spam".into()));

    // Kick and mute; cancel sends nothing.
    ui.element("Moderate carla")
        .invoke_accessible_default_action();
    assert_eq!(
        ui.app.get_moderate_reason(),
        "",
        "a new dialog starts empty"
    );
    ui.app.set_moderate_reason("calm down".into());
    ui.element("Kick").invoke_accessible_default_action();
    ui.element("Moderate carla")
        .invoke_accessible_default_action();
    ui.element("Mute").invoke_accessible_default_action();
    ui.element("Moderate carla")
        .invoke_accessible_default_action();
    ui.element("Cancel").invoke_accessible_default_action();
    assert_ne!(ui.app.get_dialog(), Dialog::Moderate);
    assert_eq!(
        ui.sent_lines(),
        ["/ban bob 10 spam", "/kick carla calm down", "/mute carla 0"]
    );

    // A kick takes the name out of the panel and says who did it.
    ui.show(Shown::Kicked {
        by: "ana".into(),
        nick: "bob".into(),
        reason: Some("spam".into()),
    });
    assert_eq!(ui.users(), ["ana", "carla"]);
    assert_eq!(
        ui.last_log(),
        (
            LogKind::System,
            "[!] ana put bob out of the chat (spam)".into()
        )
    );
    // A nick change keeps the mark; losing it (SIGHUP on the server) takes the buttons away.
    ui.show(Shown::Renamed {
        old: "ana".into(),
        new: "ana2".into(),
    });
    assert!(ui.app.get_operator());
    ui.show(Shown::NotOperator("ana2".into()));
    assert!(!ui.app.get_operator());
    assert_eq!(moderate_buttons(&ui), Vec::<String>::new());
}

#[test]
fn kicked_goes_back_to_the_login_and_whois_is_worded() {
    let ui = ui("es");
    ui.registered("ana");
    ui.show(Shown::Whois {
        nick: "bob".into(),
        presence: charla_proto::Presence::Online,
        registered: true,
        operator: true,
        fingerprint: Some("AB:CD:EF:01:23:45:67:89".into()),
        address: Some("10.0.0.7".into()),
    });
    assert_eq!(
        ui.last_log(),
        (
            LogKind::System,
            "bob está en el chat; el apodo está registrado; operador; identidad AB:CD:EF:01:23:45:67:89; dirección 10.0.0.7"
                .into()
        )
    );
    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::Refused {
            code: ErrorCode::Kicked,
            text: "root kicked you: enough".into(),
        }),
    );
    assert_eq!(ui.app.get_page(), Page::Login);
    assert_eq!(
        ui.app.get_login_error(),
        "Error: te han echado del chat (root kicked you: enough)"
    );
}

/// Every text the window shows through @tr has its Spanish translation.
#[test]
fn every_window_text_has_a_spanish_translation() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let po = std::fs::read_to_string(root.join("lang/es/LC_MESSAGES/charla.po")).unwrap();
    let translated: std::collections::HashSet<&str> = po
        .lines()
        .filter_map(|l| l.strip_prefix("msgid \"")?.strip_suffix('"'))
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(root.join("ui")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for piece in text.split("@tr(\"").skip(1) {
            // The msgid as the .po file writes it: up to the first unescaped quote.
            let mut end = 0;
            let bytes = piece.as_bytes();
            while end < bytes.len()
                && !(bytes[end] == b'"' && (end == 0 || bytes[end - 1] != b'\\'))
            {
                end += 1;
            }
            let id = &piece[..end];
            if !translated.contains(id) {
                missing.push(format!("{}: {id}", path.display()));
            }
        }
    }
    assert!(missing.is_empty(), "not in charla.po: {missing:#?}");
}

#[test]
fn an_operators_notices_are_in_the_windows_language() {
    let ui = ui("es");
    ui.registered("ana");
    let mut decoder = charla::present::Decoder::default();
    for (line, want) in [
        (
            "BANNED address 127.0.0.1 permanent 1 bob",
            "Expulsión: dirección 127.0.0.1 (bob) hasta que se levante; 1 conexión cerrada",
        ),
        (
            "BANNED address 127.0.0.2 permanent 2 bob",
            "Expulsión: dirección 127.0.0.2 (bob) hasta que se levante; 2 conexiones cerradas",
        ),
        (
            "NOTICE held for bob: away, delivered if back within 120 s",
            "bob está ausente: lo que le envíes se entregará si vuelve antes de 120 s",
        ),
        (
            "NOTICE not delivered to bob: not back in time, 1 messages dropped",
            "bob no volvió a tiempo: 1 mensaje para esa persona no se entregó",
        ),
        (
            "NOTICE not delivered to bob: not back in time, 3 messages dropped",
            "bob no volvió a tiempo: 3 mensajes para esa persona no se entregaron",
        ),
        (
            "NOTICE not held for bob: too many messages waiting",
            "bob está ausente y tiene demasiados mensajes esperando: el tuyo no se guardó",
        ),
        ("BANS 1 1 1", "Expulsiones vigentes: 1"),
        (
            "BANS 120 1 3",
            "Expulsiones vigentes: 120 (página 1 de 3; /bans 2 para la siguiente)",
        ),
        (
            "BAN identity AB:CD permanent 2026-11-30T09:13:13Z ana - spam",
            "Expulsión: identidad AB:CD hasta que se levante, por ana (spam)",
        ),
        ("UNBANNED 1", "Expulsiones levantadas: 1"),
        ("MUTED bob 5", "bob queda silenciado durante 5 minutos"),
        ("UNMUTED bob", "bob puede volver a hablar"),
        (
            "REGISTERED ana AB:CD:EF:01:23:45:67:89 365",
            "ana queda registrado a tu identidad: nadie más puede usarlo aquí; si no se usa en 365 días, queda libre",
        ),
        (
            "ERROR is-operator operators cannot be muted",
            "no se puede expulsar ni silenciar a un operador",
        ),
    ] {
        ui.show(decoder.decode(line).unwrap());
        let (_, text) = ui.last_log();
        assert!(text.contains(want), "{line}: {text}");
    }
}

/// Issue 23: a muted user's line stayed in the log as said. The server's refusal marks it as not
/// sent (the newest own line not marked yet), and says why in the room.
#[test]
fn a_line_refused_while_muted_is_marked_not_sent() {
    let ui = ui("en");
    ui.registered("ana");
    for line in ["first", "second"] {
        ui.app.set_input(line.into());
        ui.app.invoke_send(line.into());
    }
    ui.show(Shown::Error {
        code: "muted".into(),
        text: "an operator muted you".into(),
    });
    let log = ui.log();
    let n = log.len();
    assert_eq!(
        log[n - 3..],
        [
            own("ana: first"),
            (LogKind::Error, "ana: second (not sent)".into()),
            (
                LogKind::Error,
                "Error: an operator muted you: your public messages reach no one for now".into()
            ),
        ],
        "{log:#?}"
    );
}

/// `/help` is answered by the window itself, in its language, where the user is; nothing is sent.
#[test]
fn help_lists_the_commands_in_the_windows_language() {
    let ui = ui("es");
    ui.registered("ana");
    ui.app.set_input("/help".into());
    ui.app.invoke_send("/help".into());
    assert!(ui.sent_lines().is_empty(), "{:?}", ui.sent_lines());
    assert_eq!(ui.app.get_input(), "", "the input is cleared");
    let log = ui.log();
    assert!(
        log.contains(&(LogKind::System, "Órdenes:".into())),
        "{log:#?}"
    );
    assert!(
        log.contains(&(
            LogKind::System,
            "/users (o !usuarios): quién está en el chat".into()
        )),
        "{log:#?}"
    );
}

/// Issue 21: private messages from new names each opened a tab, with its own log: a server, or
/// anyone on it, sending from ten thousand names made the window hold ten thousand. Past 30 tabs
/// a new name's lines go to the room's tab, still marked private.
#[test]
fn private_tabs_opened_by_messages_are_bounded() {
    let ui = ui("en");
    ui.registered("ana");
    for n in 0..200 {
        ui.show(Shown::Private {
            from: format!("p{n}"),
            text: "hola".into(),
        });
    }
    // The list scrolls (it makes only the rows in view): its model holds the conversations.
    let tabs = ui
        .app
        .get_conversations()
        .iter()
        .filter(|c| c.nick.starts_with('p') && c.unread == 1)
        .count();
    assert_eq!(tabs, charla::gui::MAX_PRIVATE_CONVERSATIONS);
    ui.element("Private with p0, 1 unread");
    // The rest were said in the room's tab.
    assert!(ui
        .log()
        .iter()
        .any(|(kind, text)| *kind == LogKind::Private && text.contains("p199")));
}

fn press(ui: &Ui, key: Key) {
    let text: slint::SharedString = key.into();
    ui.app
        .window()
        .dispatch_event(WindowEvent::KeyPressed { text: text.clone() });
    ui.app
        .window()
        .dispatch_event(WindowEvent::KeyReleased { text });
}

#[test]
fn up_and_down_recall_what_was_sent_and_tab_completes_names() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Users(vec!["ana".into(), "bob".into(), "bea".into()]));
    ui.app.invoke_focus_input();
    for line in ["hola", "/me saluda"] {
        ui.app.set_input(line.into());
        ui.press_enter();
    }
    assert_eq!(ui.sent_lines(), ["hola", "/me saluda"]);
    ui.app.set_input("borrador".into());
    press(&ui, Key::UpArrow);
    assert_eq!(ui.app.get_input(), "/me saluda");
    press(&ui, Key::UpArrow);
    assert_eq!(ui.app.get_input(), "hola");
    press(&ui, Key::UpArrow);
    assert_eq!(ui.app.get_input(), "hola", "the oldest stays");
    press(&ui, Key::DownArrow);
    assert_eq!(ui.app.get_input(), "/me saluda");
    press(&ui, Key::DownArrow);
    assert_eq!(
        ui.app.get_input(),
        "borrador",
        "back to what was being typed"
    );

    // Tab: the names in the chat but one's own, in order, again and again.
    ui.app.set_input("b".into());
    press(&ui, Key::Tab);
    assert_eq!(ui.app.get_input(), "bea: ");
    press(&ui, Key::Tab);
    assert_eq!(ui.app.get_input(), "bob: ");
    press(&ui, Key::Tab);
    assert_eq!(ui.app.get_input(), "bea: ");
    ui.app.set_input("gracias B".into());
    press(&ui, Key::Tab);
    assert_eq!(ui.app.get_input(), "gracias bea ");
    // What is typed after a completion goes after it.
    ui.app
        .window()
        .dispatch_event(WindowEvent::KeyPressed { text: "!".into() });
    assert_eq!(ui.app.get_input(), "gracias bea !");
    // No match: the input keeps the focus (a space typed next must not press Send).
    ui.app.set_input("hola zz".into());
    press(&ui, Key::Tab);
    press(&ui, Key::Space);
    assert_eq!(ui.app.get_input(), "hola zz ");
    assert!(ui.sent_lines().len() == 2, "no key here sent anything");
}

#[test]
fn a_line_that_names_the_user_stands_out() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Message {
        from: "bob".into(),
        text: "Ana: ¿vienes?".into(),
    });
    assert_eq!(ui.last_log().0, LogKind::Mention);
    ui.show(Shown::Message {
        from: "bob".into(),
        text: "una banana".into(),
    });
    assert_eq!(ui.last_log().0, LogKind::Message);
    ui.show(Shown::Action {
        from: "bob".into(),
        text: "saluda a ana".into(),
    });
    assert_eq!(ui.last_log().0, LogKind::Mention);
}

#[test]
fn escape_closes_every_dialog() {
    let ui = ui("en");
    ui.element("About").invoke_accessible_default_action();
    assert_eq!(ui.app.get_dialog(), Dialog::About);
    press(&ui, Key::Escape);
    assert_ne!(ui.app.get_dialog(), Dialog::About);

    ui.gui.apply(
        &ui.app,
        UiEvent::Net(Event::NewServer {
            server: "localhost:12345".into(),
            fingerprint: "AB:CD".into(),
        }),
    );
    assert_eq!(ui.app.get_dialog(), Dialog::Trust);
    press(&ui, Key::Escape);
    assert_ne!(ui.app.get_dialog(), Dialog::Trust);
    assert!(matches!(
        ui.sent.borrow().last(),
        Some(Command::TrustAnswer(false))
    ));

    ui.registered("ana");
    ui.show(Shown::Users(vec!["ana".into(), "bob".into()]));
    ui.show(Shown::Operator("ana".into()));
    ui.element("Moderate bob")
        .invoke_accessible_default_action();
    assert_eq!(ui.app.get_dialog(), Dialog::Moderate);
    // Escape while the reason field has the focus.
    press(&ui, Key::Escape);
    assert_ne!(ui.app.get_dialog(), Dialog::Moderate);
    assert!(ui.sent_lines().is_empty());
}

#[test]
fn the_theme_is_chosen_in_about_and_remembered() {
    let ui = ui("en");
    assert_eq!(ui.app.get_theme(), "system", "the system's by default");
    ui.element("About").invoke_accessible_default_action();
    ui.element("Dark").invoke_accessible_default_action();
    assert_eq!(ui.app.get_theme(), "dark");
    assert_eq!(Settings::load(&ui.dir).theme, "dark");
    ui.element("Light").invoke_accessible_default_action();
    assert_eq!(Settings::load(&ui.dir).theme, "light");
    // A later connection saves the settings again, and keeps the theme.
    ui.app.set_nick("ana".into());
    ui.app.invoke_connect();
    assert_eq!(Settings::load(&ui.dir).theme, "light");
}

fn ctrl(ui: &Ui, key: &str) {
    with_modifier(ui, Key::Control, key);
}

#[test]
fn ctrl_plus_minus_and_zero_change_the_text_size_and_it_is_remembered() {
    let ui = ui("en");
    ui.registered("ana");
    ui.app.invoke_focus_input();
    assert_eq!(ui.app.get_text_scale(), 1.0);
    ctrl(&ui, "+");
    ctrl(&ui, "=");
    assert_eq!(ui.app.get_text_scale(), 1.25);
    assert_eq!(Settings::load(&ui.dir).text_scale, 1.25);
    ctrl(&ui, "-");
    assert_eq!(ui.app.get_text_scale(), 1.1);
    ctrl(&ui, "0");
    assert_eq!(ui.app.get_text_scale(), 1.0);
    assert_eq!(Settings::load(&ui.dir).text_scale, 1.0);
    assert_eq!(ui.app.get_input(), "", "the keys typed nothing");
}

#[test]
fn the_log_keeps_as_many_lines_as_it_is_told() {
    i_slint_backend_testing::init_no_event_loop();
    let app = AppWindow::new().unwrap();
    let dir = std::env::temp_dir().join(format!("charla-ui-log-lines-{}", std::process::id()));
    let settings = Settings {
        log_lines: 100,
        ..Settings::default()
    };
    let gui = gui::bind(&app, &settings, dir.clone(), None, Rc::new(|_| {}));
    gui.apply(&app, UiEvent::Net(Event::Registered { nick: "ana".into() }));
    for i in 0..150 {
        gui.apply(
            &app,
            UiEvent::Shown(Shown::Message {
                from: "bob".into(),
                text: i.to_string(),
            }),
        );
    }
    let log = app.get_log();
    assert_eq!(log.row_count(), 100);
    assert_eq!(gui::line_text(&log.row_data(99).unwrap()), "bob: 149");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn nicknames_have_their_colour_and_a_web_address_is_offered_to_open() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Message {
        from: "Bob".into(),
        text: "mira https://example.org/charla.".into(),
    });
    ui.show(Shown::Action {
        from: "bob".into(),
        text: "saluda".into(),
    });
    ui.app.invoke_send("y yo".into());
    let log: Vec<_> = ui.app.get_log().iter().collect();
    let last = log.len() - 1;
    let (message, action, own) = (&log[last - 2], &log[last - 1], &log[last]);
    assert_eq!(message.nick, "Bob:");
    assert_eq!(message.text, "mira https://example.org/charla.");
    assert_eq!(message.link, "https://example.org/charla");
    assert_eq!(action.nick, "* bob");
    assert_eq!(action.link, "");
    // The same person in any case, the same colour; the user's own lines too.
    assert_eq!(message.nick_color, action.nick_color);
    assert_eq!(own.nick, "ana:");
    assert_eq!(own.nick_color, charla::present::nick_color("ana"));
    // The address is a button of its own, named for screen readers.
    ui.element("Open https://example.org/charla in the browser");
}

#[test]
fn lines_said_while_the_window_is_in_the_background_count_in_its_title() {
    let ui = ui("en");
    ui.registered("ana");
    assert_eq!(ui.app.get_window_title(), "Charla: ana");
    ui.gui.window_activated(&ui.app, false);
    ui.show(Shown::Message {
        from: "bob".into(),
        text: "hola".into(),
    });
    ui.show(Shown::Private {
        from: "bob".into(),
        text: "¿estás?".into(),
    });
    // The server's own lines are not somebody talking.
    ui.show(Shown::Joined("cleo".into()));
    assert_eq!(ui.app.get_window_title(), "(2) Charla: ana");
    ui.gui.window_activated(&ui.app, true);
    assert_eq!(ui.app.get_window_title(), "Charla: ana");
    ui.show(Shown::Message {
        from: "bob".into(),
        text: "ya estás".into(),
    });
    assert_eq!(ui.app.get_window_title(), "Charla: ana");
}

#[test]
fn pasting_several_lines_asks_first_then_sends_them_paced_as_messages() {
    let ui = ui("en");
    ui.registered("ana");
    // One line is pasted into the input as usual.
    assert!(!ui.app.invoke_pasted("una sola línea".into()));
    assert_ne!(ui.app.get_dialog(), Dialog::Paste);
    let pasted = "uno\n/quit\n\ndos\r\ntres\ncuatro\ncinco\nseis\nsiete\n";
    assert!(ui.app.invoke_pasted(pasted.into()));
    assert_eq!(ui.app.get_dialog(), Dialog::Paste);
    assert_eq!(ui.app.get_paste_count(), 8);
    assert_eq!(
        ui.app.get_paste_preview(),
        "uno\n/quit\ndos\ntres\ncuatro\n…"
    );
    // Cancel sends nothing.
    ui.element("Cancel").invoke_accessible_default_action();
    assert_ne!(ui.app.get_dialog(), Dialog::Paste);
    assert!(ui.sent_lines().is_empty());

    ui.app.set_input("a medias".into());
    assert!(ui.app.invoke_pasted(pasted.into()));
    ui.element("Send them").invoke_accessible_default_action();
    assert_ne!(ui.app.get_dialog(), Dialog::Paste);
    // The first five at once; a line starting with / is a message, not a command.
    assert_eq!(ui.sent_lines(), ["uno", "//quit", "dos", "tres", "cuatro"]);
    i_slint_backend_testing::mock_elapsed_time(std::time::Duration::from_millis(260));
    assert_eq!(ui.sent_lines().len(), 6);
    i_slint_backend_testing::mock_elapsed_time(std::time::Duration::from_millis(260));
    i_slint_backend_testing::mock_elapsed_time(std::time::Duration::from_millis(260));
    i_slint_backend_testing::mock_elapsed_time(std::time::Duration::from_millis(260));
    assert_eq!(ui.sent_lines()[5..], ["cinco", "seis", "siete"]);
    assert_eq!(ui.last_log(), (LogKind::Own, "ana: siete".into()));
    // What the user was typing is still there.
    assert_eq!(ui.app.get_input(), "a medias");
}

/// Every control a person can use, named for screen readers: buttons, inputs, checkboxes, tabs
/// (read-only text, the log's lines among them, is read by its value).
/// Returns how many controls were looked at, and those without a name.
fn unnamed_controls(ui: &Ui) -> (usize, Vec<String>) {
    use i_slint_backend_testing::{AccessibleRole, ElementQuery};
    let controls: Vec<_> = ElementQuery::from_root(&ui.app)
        .match_descendants()
        .find_all()
        .into_iter()
        .filter(|e| {
            matches!(
                e.accessible_role(),
                Some(
                    AccessibleRole::Button
                        | AccessibleRole::TextInput
                        | AccessibleRole::Checkbox
                        | AccessibleRole::Tab
                        | AccessibleRole::Combobox
                )
            )
        })
        .filter(|e| e.accessible_read_only() != Some(true))
        .collect();
    let unnamed = controls
        .iter()
        .filter(|e| e.accessible_label().is_none_or(|l| l.trim().is_empty()))
        .map(|e| format!("{:?} {:?}", e.accessible_role(), e.accessible_value()))
        .collect();
    (controls.len(), unnamed)
}

#[test]
fn every_control_has_an_accessible_name() {
    let ui = ui_as("en", true);
    let (login, unnamed) = unnamed_controls(&ui);
    assert_eq!(unnamed, Vec::<String>::new(), "login page");
    // Server, port, nickname, password, certificate; Connect, About, Host a chat.
    assert!(login >= 8, "only {login} controls found on the login page");
    ui.registered("ana");
    ui.show(Shown::Users(vec!["ana".into(), "bob".into()]));
    ui.show(Shown::Operator("ana".into()));
    ui.show(Shown::Message {
        from: "bob".into(),
        text: "https://example.org".into(),
    });
    ui.show(Shown::Private {
        from: "bob".into(),
        text: "psst".into(),
    });
    let (chat, unnamed) = unnamed_controls(&ui);
    assert_eq!(unnamed, Vec::<String>::new(), "chat page");
    assert!(chat > login, "{chat} controls with the chat page");
    // Each dialog in turn (one is open at a time).
    let mut all = 0;
    for dialog in [
        Dialog::About,
        Dialog::Trust,
        Dialog::Moderate,
        Dialog::Paste,
        Dialog::Host,
        Dialog::HostInfo,
    ] {
        ui.app.set_dialog(dialog);
        let (with_dialog, unnamed) = unnamed_controls(&ui);
        assert_eq!(unnamed, Vec::<String>::new(), "{dialog:?}");
        assert!(with_dialog > chat, "{with_dialog} controls with {dialog:?}");
        all += with_dialog - chat;
    }
    assert!(all > 10, "{all} controls in the dialogs together");
}

#[test]
fn the_user_list_is_reached_and_used_with_the_keyboard() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Users(vec![
        "ana".into(),
        "bob".into(),
        "cleo".into(),
    ]));
    ui.app.invoke_focus_input();
    // From the empty input: Send, List users, Exit, About, then the list.
    for _ in 0..5 {
        press(&ui, Key::Tab);
    }
    // The first name is chosen on arrival; Down twice, Up once: bob. Enter writes to him.
    press(&ui, Key::DownArrow);
    press(&ui, Key::DownArrow);
    press(&ui, Key::UpArrow);
    ui.press_enter();
    assert_eq!(ui.app.get_current_conversation(), 1);
    ui.element("Private with bob, 0 unread");
}

#[test]
fn lines_pasted_in_a_private_conversation_go_to_that_person() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Private {
        from: "bob".into(),
        text: "¿me pasas la lista?".into(),
    });
    ui.app.invoke_switch_to(1);
    assert!(ui.app.invoke_pasted("pan\n/leche\n".into()));
    ui.element("Send them").invoke_accessible_default_action();
    assert_eq!(ui.sent_lines(), ["/msg bob pan", "/msg bob /leche"]);
}

#[test]
fn private_tabs_keep_their_lines_in_one_place() {
    let ui = ui("en");
    ui.registered("ana");
    ui.show(Shown::Users(vec!["ana".into(), "bob".into()]));
    // Clicking your own name opens nothing.
    ui.element("ana").invoke_accessible_default_action();
    assert_eq!(ui.app.get_conversations().row_count(), 1);
    ui.show(Shown::Private {
        from: "bob".into(),
        text: "hola".into(),
    });
    ui.show(Shown::Private {
        from: "cleo".into(),
        text: "hola".into(),
    });
    // /me in a private conversation is said to that person, not to the room.
    ui.app.invoke_switch_to(1);
    ui.app.set_input("/me saluda".into());
    ui.press_enter();
    assert_eq!(ui.sent_lines(), ["/msg bob * saluda"]);
    // A paste for bob, sent paced, does not pull the user back to bob's tab.
    assert!(ui.app.invoke_pasted("1\n2\n3\n4\n5\n6\n".into()));
    ui.element("Send them").invoke_accessible_default_action();
    ui.app.invoke_switch_to(0);
    i_slint_backend_testing::mock_elapsed_time(std::time::Duration::from_millis(260));
    assert_eq!(ui.sent_lines().last().unwrap(), "/msg bob 6");
    assert_eq!(ui.app.get_current_conversation(), 0);
    // cleo takes the name bob had after he left: one tab called bob, the renamed one.
    ui.show(Shown::Left {
        nick: "bob".into(),
        why: "quit".into(),
        text: None,
    });
    ui.show(Shown::Renamed {
        old: "cleo".into(),
        new: "bob".into(),
    });
    let names: Vec<String> = ui
        .app
        .get_conversations()
        .iter()
        .map(|c| c.nick.to_string())
        .collect();
    assert_eq!(names, ["", "bob"]);
}

#[test]
fn the_name_chosen_with_the_keyboard_is_scrolled_into_view() {
    let ui = ui("en");
    ui.registered("ana");
    let mut names: Vec<String> = (0..60).map(|i| format!("u{i:02}")).collect();
    names.push("ana".into());
    ui.show(Shown::Users(names));
    ui.app.invoke_focus_input();
    for _ in 0..5 {
        press(&ui, Key::Tab);
    }
    // Down to the 51st name (ana sorts first), far below the panel's height.
    for _ in 0..50 {
        press(&ui, Key::DownArrow);
    }
    let row = ui.element("u49");
    let list = ui.element("Users");
    let (row_y, list_y) = (row.absolute_position().y, list.absolute_position().y);
    assert!(
        row_y >= list_y && row_y + row.size().height <= list_y + list.size().height + 0.5,
        "row at {row_y}, list from {list_y} to {}",
        list_y + list.size().height
    );
    ui.press_enter();
    ui.element("Private with u49, 0 unread");
}

/// Issue 23: offline, the reason was cut off with "…", and a long outage showed "Reconnecting in
/// 1 s…" once and nothing after. The whole reason is there, and each attempt's seconds are
/// counted down.
#[test]
fn a_lost_connection_counts_down_to_each_attempt() {
    use std::time::Duration;
    let ui = ui("en");
    ui.registered("ana");
    let lost = |secs| {
        ui.gui.apply(
            &ui.app,
            UiEvent::Net(Event::Lost {
                problem: charla::net::Problem::ServerClosed,
                retry_in: Duration::from_secs(secs),
            }),
        )
    };
    lost(3);
    let status = ui.app.get_chat_status().to_string();
    assert!(status.ends_with("Reconnecting in 3 s…"), "{status}");
    i_slint_backend_testing::mock_elapsed_time(Duration::from_millis(1000));
    assert!(ui.app.get_chat_status().ends_with("Reconnecting in 2 s…"));
    i_slint_backend_testing::mock_elapsed_time(Duration::from_millis(1000));
    i_slint_backend_testing::mock_elapsed_time(Duration::from_millis(1000));
    assert!(ui.app.get_chat_status().ends_with("Reconnecting…"));
    // The attempt failed: a new count.
    lost(5);
    assert!(ui.app.get_chat_status().ends_with("Reconnecting in 5 s…"));
    i_slint_backend_testing::mock_elapsed_time(Duration::from_millis(1000));
    assert!(ui.app.get_chat_status().ends_with("Reconnecting in 4 s…"));
    ui.registered("ana");
    assert_eq!(ui.app.get_chat_status(), "");
}

/// A line of `room`, as a server that understands rooms sends it to the window.
fn in_room(ui: &Ui, room: &str, shown: Shown) {
    ui.gui.apply(
        &ui.app,
        UiEvent::InRoom {
            room: room.into(),
            shown,
        },
    );
}

fn said(from: &str, text: &str) -> Shown {
    Shown::Message {
        from: from.into(),
        text: text.into(),
    }
}

fn users(nicks: &[&str]) -> Shown {
    Shown::Users(nicks.iter().map(|n| n.to_string()).collect())
}

/// The rooms the window would join again after a reconnection (its last `Command::Rooms`).
fn rooms_to_rejoin(ui: &Ui) -> Vec<String> {
    ui.sent
        .borrow()
        .iter()
        .rev()
        .find_map(|c| match c {
            Command::Rooms(rooms) => Some(rooms.clone()),
            _ => None,
        })
        .expect("no Command::Rooms")
}

/// Issue 22.11: each room is a conversation of its own, with its log, its members, its unread
/// count and a mark when a line names the user; lines typed go to the room shown.
#[test]
fn rooms_are_conversations_with_their_own_lines_members_and_unread_counts() {
    let ui = ui("en");
    ui.registered("ana");
    // The first room line names the default room.
    in_room(&ui, "#general", users(&["ana", "bob"]));
    ui.element("In #general (2)");
    // Joined at reconnection (not asked for now): its tab opens, the room shown stays.
    in_room(&ui, "#tareas", Shown::Joined("ana".into()));
    in_room(&ui, "#tareas", users(&["ana", "carla"]));
    assert_eq!(ui.app.get_current_conversation(), 0);
    assert_eq!(rooms_to_rejoin(&ui), vec!["#tareas".to_string()]);
    ui.element("In #general (2)");
    ui.element("Room #general, 0 unread");

    in_room(&ui, "#tareas", said("carla", "¿hicisteis el ejercicio 3?"));
    in_room(&ui, "#tareas", said("carla", "ana, ¿lo tienes?"));
    in_room(&ui, "#general", said("bob", "hola"));
    // Counted where they were said, not in the room shown; the mention marked.
    ui.element("Room #tareas, 2 unread");
    let tareas = ui.app.get_conversations().row_data(1).unwrap();
    assert!(tareas.mentioned);
    assert_eq!(ui.last_log(), (LogKind::Message, "bob: hola".into()));

    ui.element("Room #tareas, 2 unread")
        .invoke_accessible_default_action();
    assert_eq!(ui.app.get_current_conversation(), 1);
    ui.element("Room #tareas, 0 unread");
    assert!(!ui.app.get_conversations().row_data(1).unwrap().mentioned);
    assert_eq!(ui.users(), vec!["ana", "carla"]);
    ui.element("In #tareas (2)");
    assert_eq!(ui.app.get_room_name(), "#tareas");
    assert!(ui
        .log()
        .contains(&(LogKind::Mention, "carla: ana, ¿lo tienes?".into())));

    // Typed in #tareas: said in #tareas, by name (the server's plain lines go elsewhere).
    type_line(&ui, "sí, ahora lo paso");
    type_line(&ui, "/me busca el cuaderno");
    assert_eq!(
        ui.sent_lines(),
        vec![
            "/msg #tareas sí, ahora lo paso",
            "/action #tareas busca el cuaderno"
        ]
    );
    assert_eq!(ui.last_log().0, LogKind::Own);
    // The other room's log is its own.
    ui.element("Room #general, 0 unread")
        .invoke_accessible_default_action();
    assert_eq!(ui.last_log(), (LogKind::Message, "bob: hola".into()));
    type_line(&ui, "hola bob");
    assert_eq!(ui.sent_lines().last().unwrap(), "/msg #general hola bob");

    // Someone's new name, told in each room they share: each list follows.
    in_room(
        &ui,
        "#general",
        Shown::Renamed {
            old: "bob".into(),
            new: "roberto".into(),
        },
    );
    assert_eq!(ui.users(), vec!["ana", "roberto"]);
}

fn type_line(ui: &Ui, text: &str) {
    ui.app.set_input(text.into());
    ui.app.invoke_send(text.into());
}

/// Issue 22.11: Rooms… lists the server's rooms; Enter joins the one chosen, which is shown
/// once the server lets the user in; a room can be made, open or private; a name that is not
/// a room's is said in the dialog.
#[test]
fn the_rooms_dialog_lists_joins_and_makes_rooms() {
    let ui = ui_as("en", true);
    ui.registered("ana");
    in_room(&ui, "#general", users(&["ana"]));
    ui.element("Rooms: browse, join or make one")
        .invoke_accessible_default_action();
    assert_eq!(ui.app.get_dialog(), Dialog::Rooms);
    assert_eq!(ui.sent_lines(), vec!["/rooms"]);
    ui.show(Shown::RoomCount {
        total: 2,
        page: 1,
        pages: 1,
    });
    ui.show(Shown::Room {
        name: "#juegos".into(),
        members: 3,
        private: false,
        topic: Some("ajedrez los viernes".into()),
    });
    ui.show(Shown::Room {
        name: "#club".into(),
        members: 1,
        private: true,
        topic: None,
    });
    // In the dialog, not in the log.
    assert!(!ui.log().iter().any(|(_, t)| t.contains("juegos")));
    ui.element("#juegos, 3 people in it: ajedrez los viernes");
    ui.element("#club, private, 1 person in it: ");
    ui.element("2 rooms. Up and Down choose one, Enter joins it.");
    assert!(!ui.app.get_room_list_more());

    // The list has the keyboard, and says which room is chosen: Enter joins it.
    assert_eq!(
        ui.element("Rooms of the server")
            .accessible_value()
            .as_deref(),
        Some("#juegos")
    );
    ui.press_enter();
    assert_eq!(ui.sent_lines().last().unwrap(), "/join #juegos");
    assert_eq!(ui.app.get_dialog(), Dialog::None);
    in_room(&ui, "#juegos", Shown::Joined("ana".into()));
    assert_eq!(ui.app.get_current_conversation(), 1);
    assert_eq!(ui.app.get_room_name(), "#juegos");

    // Make a private room.
    ui.app.invoke_browse_rooms();
    ui.app.invoke_create_room("deberes de mates".into(), true);
    assert_eq!(ui.app.get_dialog(), Dialog::Rooms);
    assert!(
        ui.app.get_rooms_error().starts_with("not a room name"),
        "{}",
        ui.app.get_rooms_error()
    );
    ui.app.invoke_create_room("club2".into(), true);
    assert_eq!(ui.sent_lines().last().unwrap(), "/create #club2 private");
    in_room(&ui, "#club2", Shown::Joined("ana".into()));
    assert_eq!(ui.app.get_room_name(), "#club2");
    // Rooms first, in the order joined.
    let rooms: Vec<String> = ui
        .app
        .get_conversations()
        .iter()
        .map(|c| c.room.to_string())
        .collect();
    assert_eq!(rooms, vec!["#general", "#juegos", "#club2"]);
    // A room already open is shown at once (and joined again, harmless when in it: the
    // default room may have been left).
    ui.app.invoke_join_room("#JUEGOS".into());
    assert_eq!(ui.app.get_room_name(), "#juegos");
    assert_eq!(ui.sent_lines().last().unwrap(), "/join #JUEGOS");
}

/// Issue 22.11: the topic in the header, changed by those who run the room; the user's menu
/// invites to the user's rooms; room operators kick in their room only; × leaves a room.
#[test]
fn topic_invitations_room_moderation_and_leaving() {
    let ui = ui_as("en", true);
    ui.registered("ana");
    in_room(&ui, "#general", users(&["ana", "bob", "carla"]));
    // Nothing to invite to yet, and not an operator: no menu.
    assert!(!ui.app.get_may_invite());
    ui.app.invoke_join_room("#club".into());
    in_room(&ui, "#club", Shown::Joined("ana".into()));
    in_room(&ui, "#club", users(&["ana", "carla"]));
    in_room(
        &ui,
        "#club",
        Shown::RoomOperator {
            nick: "ana".into(),
            on: true,
        },
    );
    in_room(&ui, "#club", Shown::NoTopic);
    assert_eq!(ui.app.get_room_name(), "#club");
    ui.element("Topic of #club: No topic");
    // Part of the user list: not news.
    assert!(!ui.log().iter().any(|(_, t)| t.contains("runs this room")));
    assert!(ui.app.get_may_edit_topic());
    assert!(ui.app.get_operator());

    ui.element("Change the topic of #club")
        .invoke_accessible_default_action();
    assert_eq!(ui.app.get_dialog(), Dialog::Topic);
    ui.app.set_topic_draft("organización del viernes".into());
    ui.app.invoke_save_topic("organización del viernes".into());
    assert_eq!(
        ui.sent_lines().last().unwrap(),
        "/topic #club organización del viernes"
    );
    in_room(
        &ui,
        "#club",
        Shown::Topic {
            by: "ana".into(),
            text: "organización del viernes".into(),
        },
    );
    ui.element("Topic of #club: organización del viernes");

    // In #club, a room operator acts in #club.
    ui.element("Moderate carla")
        .invoke_accessible_default_action();
    assert_eq!(ui.app.get_dialog(), Dialog::Moderate);
    assert_eq!(ui.app.get_moderate_room(), "#club");
    ui.app.set_moderate_reason("spam".into());
    ui.app.invoke_moderate(charla::ModerationAction::Kick);
    assert_eq!(ui.sent_lines().last().unwrap(), "/kick #club carla spam");

    // In #general ana runs nothing: bob's menu only invites, to the rooms bob is not in.
    ui.element("Room #general, 0 unread")
        .invoke_accessible_default_action();
    assert!(!ui.app.get_operator());
    assert!(!ui.app.get_may_edit_topic());
    assert!(ui.app.get_may_invite());
    ui.element("Invite bob").invoke_accessible_default_action();
    let rooms: Vec<String> = ui
        .app
        .get_invite_rooms()
        .iter()
        .map(|r| r.to_string())
        .collect();
    assert_eq!(rooms, vec!["#club"]);
    ui.app.invoke_invite("#club".into());
    assert_eq!(ui.sent_lines().last().unwrap(), "/invite bob #club");
    // carla is in #club already.
    ui.element("Invite carla")
        .invoke_accessible_default_action();
    assert_eq!(ui.app.get_invite_rooms().row_count(), 0);
    ui.app.set_dialog(Dialog::None);

    // × on #club leaves it; it is not joined again after a reconnection.
    ui.element("Leave #club").invoke_accessible_default_action();
    assert_eq!(ui.sent_lines().last().unwrap(), "/part #club");
    assert_eq!(ui.app.get_conversations().row_count(), 1);
    assert!(rooms_to_rejoin(&ui).is_empty());
    // Its last lines, arriving after, go nowhere.
    in_room(&ui, "#club", said("carla", "adiós"));
    assert!(!ui.log().iter().any(|(_, t)| t.contains("adiós")));
}

/// Issue 22.11: put out of a room, the user is told in the default room, and its tab closes.
#[test]
fn kicked_out_of_a_room_the_window_says_so_and_closes_it() {
    let ui = ui("en");
    ui.registered("ana");
    in_room(&ui, "#general", users(&["ana", "bob"]));
    ui.app.invoke_join_room("#juegos".into());
    in_room(&ui, "#juegos", Shown::Joined("ana".into()));
    assert_eq!(ui.app.get_current_conversation(), 1);
    in_room(
        &ui,
        "#juegos",
        Shown::Kicked {
            by: "bob".into(),
            nick: "ana".into(),
            reason: Some("spam".into()),
        },
    );
    assert_eq!(ui.app.get_conversations().row_count(), 1);
    assert_eq!(ui.app.get_current_conversation(), 0);
    let (kind, text) = ui.last_log();
    assert_eq!(kind, LogKind::System);
    assert!(
        text.starts_with("[#juegos] ") && text.contains("spam"),
        "{text}"
    );
    assert!(rooms_to_rejoin(&ui).is_empty());
}

/// A hostile server naming a new room in every line opens no tab for it; one letting the user
/// into room after room opens at most MAX_ROOMS.
#[test]
fn room_tabs_are_bounded() {
    let ui = ui("en");
    ui.registered("ana");
    in_room(&ui, "#general", users(&["ana"]));
    for n in 0..50 {
        in_room(&ui, &format!("#r{n}"), said("eve", "hola"));
    }
    assert_eq!(ui.app.get_conversations().row_count(), 1);
    for n in 0..300 {
        in_room(&ui, &format!("#r{n}"), Shown::Joined("ana".into()));
    }
    assert_eq!(
        ui.app.get_conversations().row_count(),
        charla::gui::MAX_ROOMS
    );
}

fn with_modifier(ui: &Ui, modifier: Key, key: &str) {
    let modifier: slint::SharedString = modifier.into();
    let window = ui.app.window();
    window.dispatch_event(WindowEvent::KeyPressed {
        text: modifier.clone(),
    });
    window.dispatch_event(WindowEvent::KeyPressed { text: key.into() });
    window.dispatch_event(WindowEvent::KeyReleased { text: key.into() });
    window.dispatch_event(WindowEvent::KeyReleased { text: modifier });
}

/// Issue 22.11: conversations are reached from the keyboard: Alt+1 … Alt+9, and Ctrl+Page Down
/// and Ctrl+Page Up round them; a typed /join shows the room once the server lets the user in.
#[test]
fn the_keyboard_moves_between_conversations() {
    let ui = ui("en");
    ui.registered("ana");
    in_room(&ui, "#general", users(&["ana", "bob"]));
    ui.app.invoke_focus_input();
    type_line(&ui, "/join #tareas");
    assert_eq!(ui.sent_lines(), ["/join #tareas"]);
    in_room(&ui, "#tareas", Shown::Joined("ana".into()));
    assert_eq!(ui.app.get_room_name(), "#tareas");
    ui.show(Shown::Private {
        from: "bob".into(),
        text: "hola".into(),
    });
    assert_eq!(ui.app.get_conversations().row_count(), 3);

    with_modifier(&ui, Key::Alt, "1");
    assert_eq!(ui.app.get_current_conversation(), 0);
    // The one shown is told apart by more than its colour.
    let checked = |label: &str| ui.element(label).accessible_checked();
    assert_eq!(checked("Room #general, 0 unread"), Some(true));
    assert_eq!(checked("Room #tareas, 0 unread"), Some(false));
    with_modifier(&ui, Key::Alt, "3");
    assert_eq!(ui.app.get_current_conversation(), 2);
    // No fourth: nothing moves.
    with_modifier(&ui, Key::Alt, "4");
    assert_eq!(ui.app.get_current_conversation(), 2);
    let page_down: slint::SharedString = Key::PageDown.into();
    let page_up: slint::SharedString = Key::PageUp.into();
    with_modifier(&ui, Key::Control, &page_down);
    assert_eq!(ui.app.get_current_conversation(), 0);
    with_modifier(&ui, Key::Control, &page_up);
    assert_eq!(ui.app.get_current_conversation(), 2);
    with_modifier(&ui, Key::Control, &page_up);
    assert_eq!(ui.app.get_room_name(), "#tareas");
    // Still typing into the input, in the room now shown.
    type_line(&ui, "hola");
    assert_eq!(ui.sent_lines().last().unwrap(), "/msg #tareas hola");
}

/// `charla --join '#tareas'` in the window: the rooms are asked for at the first connection.
#[test]
fn rooms_given_with_join_are_joined_at_the_first_connection() {
    let ui = ui("en");
    ui.gui.join_at_start(vec!["#tareas".into()]);
    ui.app.set_nick("ana".into());
    ui.app.invoke_connect();
    let sent = ui.sent.borrow();
    let rooms = sent
        .iter()
        .position(|c| matches!(c, Command::Rooms(r) if r == &["#tareas"]));
    let connect = sent.iter().position(|c| matches!(c, Command::Connect(_)));
    assert!(rooms.is_some() && rooms < connect, "{sent:?}");
}

/// Each room's history is said in that room, with its own marker after it.
#[test]
fn each_rooms_history_has_its_marker_in_that_room() {
    let ui = ui("en");
    ui.registered("ana");
    let history = |from: &str, text: &str| Shown::History {
        at: "10:00".into(),
        shown: Box::new(said(from, text)),
    };
    in_room(&ui, "#general", users(&["ana", "bob"]));
    in_room(&ui, "#tareas", Shown::Joined("ana".into()));
    in_room(&ui, "#tareas", users(&["ana", "carla"]));
    in_room(&ui, "#general", history("bob", "buenos días"));
    in_room(&ui, "#tareas", history("carla", "el 3 es difícil"));
    in_room(&ui, "#tareas", history("carla", "¿alguien?"));
    in_room(&ui, "#general", Shown::Joined("ana".into()));
    let log = ui.log();
    assert!(
        log.contains(&(
            LogKind::System,
            "— 1 earlier message, said before you joined —".into()
        )),
        "{log:#?}"
    );
    ui.app.invoke_switch_to(1);
    let log = ui.log();
    assert_eq!(
        log[log.len() - 1],
        (
            LogKind::System,
            "— 2 earlier messages, said before you joined —".into()
        ),
        "{log:#?}"
    );
}

/// The review of issue 22.11: connecting to another server forgot the rooms' tabs but left the
/// shown conversation's index past them — a line typed to a person went to the new server's room.
#[test]
fn another_server_forgets_the_rooms_and_keeps_the_conversation_shown() {
    let ui = ui("en");
    ui.registered("ana");
    in_room(&ui, "#general", users(&["ana", "bob", "carol"]));
    ui.app.invoke_join_room("#a".into());
    in_room(&ui, "#a", Shown::Joined("ana".into()));
    for from in ["bob", "carol"] {
        ui.show(Shown::Private {
            from: from.into(),
            text: "hola".into(),
        });
    }
    ui.app.invoke_switch_to(3);
    assert_eq!(
        ui.app.get_conversations().row_data(3).unwrap().nick,
        "carol"
    );
    ui.app.set_host("otro.example.org".into());
    ui.app.set_nick("ana".into());
    ui.app.invoke_connect();
    let shown = ui.app.get_current_conversation() as usize;
    assert_eq!(ui.app.get_conversations().row_count(), 3);
    assert_eq!(
        ui.app.get_conversations().row_data(shown).unwrap().nick,
        "carol"
    );
    assert!(rooms_to_rejoin(&ui).is_empty());
    ui.registered("ana");
    type_line(&ui, "¿sigues ahí?");
    assert_eq!(ui.sent_lines().last().unwrap(), "/msg carol ¿sigues ahí?");
}

/// The review of issue 22.11: `/users #x` answers for a room one is not in; it opened a tab.
/// Typed in a room, `/users` is that room's list.
#[test]
fn a_user_list_of_a_room_without_a_tab_opens_none() {
    let ui = ui("en");
    ui.registered("ana");
    in_room(&ui, "#general", users(&["ana"]));
    type_line(&ui, "/users #x");
    in_room(&ui, "#x", users(&["bob", "carla"]));
    assert_eq!(ui.app.get_conversations().row_count(), 1);
    assert!(!ui
        .sent
        .borrow()
        .iter()
        .any(|c| matches!(c, Command::Rooms(r) if r.iter().any(|r| r == "#x"))));
    assert!(ui.last_log().1.starts_with("#x: "), "{:?}", ui.last_log());
    assert_eq!(ui.users(), vec!["ana"]);
    type_line(&ui, "/users");
    assert_eq!(ui.sent_lines().last().unwrap(), "/users #general");
}

/// A room other than the default one, and a private conversation, keep at most
/// OTHER_LOG_LINES lines: a hostile server's hundred rooms cannot hold a hundred full logs.
#[test]
fn other_conversations_keep_fewer_lines() {
    let ui = ui("en");
    ui.registered("ana");
    in_room(&ui, "#general", users(&["ana"]));
    ui.app.invoke_join_room("#a".into());
    in_room(&ui, "#a", Shown::Joined("ana".into()));
    let extra = 5;
    let flood: Vec<UiEvent> = (0..gui::OTHER_LOG_LINES + extra)
        .map(|i| UiEvent::InRoom {
            room: "#a".into(),
            shown: said("bob", &i.to_string()),
        })
        .collect();
    ui.gui.apply_batch(&ui.app, flood);
    let log = ui.log();
    assert_eq!(log.len(), gui::OTHER_LOG_LINES);
    assert_eq!(
        log[log.len() - 1].1,
        format!("bob: {}", gui::OTHER_LOG_LINES + extra - 1)
    );
    assert_eq!(log[0].1, format!("bob: {extra}"), "the oldest lines went");
}
