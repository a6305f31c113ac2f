//! "Host a chat on this computer" with the real `charla-server` process: the certificate made in
//! the config dir, the server started on a free port, the window connecting to it and showing what
//! to tell friends, a friend joining with that certificate, and the server stopping with the
//! window (or not, when asked to keep running).

use std::cell::RefCell;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::rc::Rc;

use charla::config::Settings;
use charla::gui;
use charla::host;
use charla::net::{Command, Trust};
use charla::{AppWindow, Dialog};
use charla_test_support::{trusting, Client, TempDir};
use i_slint_backend_testing::ElementHandle;

fn element(app: &AppWindow, label: &str) -> ElementHandle {
    ElementHandle::find_by_accessible_label(app, label)
        .next()
        .unwrap_or_else(|| panic!("no element labelled {label:?}"))
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn hosting_starts_a_server_that_friends_join_and_that_stops_with_the_window() {
    i_slint_backend_testing::init_no_event_loop();
    let dir = TempDir::new("host");
    let app = AppWindow::new().unwrap();
    let sent = Rc::new(RefCell::new(Vec::new()));
    let sink = sent.clone();
    let gui = gui::bind(
        &app,
        &Settings::default(),
        dir.path().to_path_buf(),
        None,
        Rc::new(move |c| sink.borrow_mut().push(c)),
    );
    app.set_nick("ana".into());

    // The login's button opens the dialog; a port that is not one is refused there.
    element(&app, "Host a chat on this computer").invoke_accessible_default_action();
    assert_eq!(app.get_dialog(), Dialog::Host);
    app.set_host_port("cien".into());
    app.invoke_host_start();
    assert_eq!(
        app.get_host_error(),
        "The port must be a number from 1 to 65535."
    );
    assert!(!app.get_host_starting());

    // What Start does on its thread, on a free port.
    let files = host::prepare(dir.path(), None).unwrap();
    let key_mode = std::fs::metadata(&files.key).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);
    // With a room of the host's besides the general one (typed as the dialog takes them).
    let rooms = charla::gui::host_rooms("tareas, #juegos").unwrap();
    assert_eq!(rooms, ["#tareas", "#juegos"]);
    let server = host::start(&files, 0, &rooms, false).unwrap();
    let port = server.port;
    gui.host_started(&app, &files, Ok(server));

    // The window shows what to tell friends, and connects to its own server with the certificate.
    assert_ne!(app.get_dialog(), Dialog::Host);
    assert!(app.get_hosting());
    assert_eq!(app.get_dialog(), Dialog::HostInfo);
    assert_eq!(app.get_hosted_port(), port.to_string());
    // In four groups of eight bytes, so that a line breaks between groups only (issue 23); the
    // same fingerprint to anything that reads it.
    let shown = app.get_host_fingerprint().to_string();
    assert_eq!(shown.split(' ').count(), 4, "{shown}");
    assert_eq!(
        charla_proto::normalize_fingerprint(&shown).as_deref(),
        Some(files.fingerprint.as_str())
    );
    element(&app, "Fingerprint");
    element(&app, "Copy Fingerprint");
    let connect = sent
        .borrow()
        .iter()
        .find_map(|c| match c {
            Command::Connect(target) => Some((
                target.host.clone(),
                target.port,
                matches!(&target.trust, Trust::CaFile(ca) if *ca == files.cert),
            )),
            _ => None,
        })
        .expect("no Connect command");
    assert_eq!(connect, ("127.0.0.1".to_string(), port, true));

    // A friend with the certificate (or its fingerprint) joins; the server is the real one.
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut bob = Client::connect_with(addr, &trusting(&files.cert));
    bob.send("/cap rooms");
    bob.expect_prefix("CAP rooms");
    bob.send("bob");
    bob.expect_prefix("WELCOME bob");
    bob.send("/join #tareas");
    bob.expect_prefix("#tareas JOIN bob");
    bob.send("/rooms");
    bob.expect_prefix("ROOMS 3 1 1");
    drop(bob);

    // The window closes: the server stops.
    gui.stop_hosting();
    assert!(!listening(port), "the server still listens on {port}");

    // A second start keeps the certificate, so friends' trust stays good.
    let again = host::prepare(dir.path(), None).unwrap();
    assert_eq!(again.fingerprint, files.fingerprint);
}

#[test]
fn a_server_asked_to_keep_running_outlives_the_window_and_a_busy_port_is_said() {
    let dir = TempDir::new("host-keep");
    let me = vec!["AB"; 32].join(":");
    let files = host::prepare(dir.path(), Some(&me)).unwrap();
    let operators = std::fs::read_to_string(files.dir.join("operators")).unwrap();
    assert!(operators.lines().any(|l| l == me), "{operators}");
    let server = host::start(&files, 0, &[], true).unwrap();
    let (port, pid) = (server.port, server.pid());
    drop(server);
    let _stop = Stop(pid);
    assert!(listening(port), "the server stopped");
    // The same port again: the second server cannot listen, and says why.
    let err = host::start(&files, port, &[], false)
        .err()
        .expect("started twice");
    assert_eq!(err, host::HostError::PortInUse(port));
}

/// Stops a server left running on purpose, whatever the test's outcome.
struct Stop(u32);

impl Drop for Stop {
    fn drop(&mut self) {
        // SAFETY: a signal to the server this test started.
        unsafe { libc::kill(self.0 as i32, libc::SIGTERM) };
    }
}

/// Issue 23: on a fresh install (no nickname yet) the window started the server, showed "Your
/// chat is running", and behind it the login said "Nickname refused: type a nickname". The host
/// dialog asks for the nickname, and refuses to start without one; the port is remembered.
#[test]
fn hosting_asks_for_a_nickname_first_and_remembers_the_port() {
    i_slint_backend_testing::init_no_event_loop();
    let dir = TempDir::new("host-nick");
    let app = AppWindow::new().unwrap();
    let gui = gui::bind(
        &app,
        &Settings::default(),
        dir.path().to_path_buf(),
        None,
        Rc::new(|_| {}),
    );
    element(&app, "Host a chat on this computer").invoke_accessible_default_action();
    // The dialog has the nickname field, empty on a fresh install.
    let nick = element(&app, "Your nickname");
    assert_eq!(nick.accessible_value().unwrap_or_default(), "");
    app.set_host_port("23999".into());
    app.invoke_host_start();
    assert!(
        app.get_host_error().starts_with("Nickname refused"),
        "{}",
        app.get_host_error()
    );
    assert!(!app.get_host_starting(), "nothing was started");
    // Typed there, it is the login's too; and the port is kept for next time.
    nick.set_accessible_value("ana");
    assert_eq!(app.get_nick(), "ana");
    let settings_before = Settings::load(dir.path());
    assert_eq!(
        settings_before.host_port, 12345,
        "nothing saved before a valid start"
    );
    app.set_host_port("0".into());
    app.invoke_host_start();
    assert!(!app.get_host_starting());
    app.set_host_port("23999".into());
    app.invoke_host_start();
    assert_eq!(Settings::load(dir.path()).host_port, 23999);
    assert_eq!(Settings::load(dir.path()).nick, "ana");
    gui.stop_hosting();
}
