//! Desktop notifications: a mention or a private message while the window is in the background
//! reaches the session bus as a freedesktop `Notify` call (seen by `dbus-monitor` on a private
//! `dbus-daemon`); an ordinary line does not; and without a bus nothing breaks.
//!
//! One test in this file: it sets DBUS_SESSION_BUS_ADDRESS for the whole process.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::Instant;

use charla::config::Settings;
use charla::gui::{self, UiEvent};
use charla::net::Event;
use charla::present::Shown;
use charla::AppWindow;
use charla_test_support::{require_program, TempDir, DEADLINE};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The lines a child prints, as they come.
fn lines_of(child: &mut Child) -> Receiver<String> {
    let (tx, rx) = channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`; returns every line read until then.
fn wait_for(lines: &Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                panic!("{needle:?} never came; got:\n{}", seen.join("\n"))
            }
        }
    }
}

/// The `Notify` calls' summary and body, as dbus-monitor prints them: the 4th and 5th
/// arguments (app name, replaces id, icon, summary, body).
fn next_notification(lines: &Receiver<String>) -> (String, String) {
    wait_for(lines, "member=Notify");
    let mut strings = Vec::new();
    while strings.len() < 4 {
        let line = wait_for(lines, "").pop().unwrap();
        let line = line.trim();
        if let Some(s) = line.strip_prefix("string \"") {
            strings.push(s.trim_end_matches('"').to_string());
        }
    }
    // The strings: app name, icon, summary, body.
    assert_eq!(strings[0], "Charla");
    (strings[2].clone(), strings[3].clone())
}

#[test]
fn mentions_and_private_messages_in_the_background_are_notified() {
    require_program("dbus-daemon");
    require_program("dbus-monitor");
    let dir = TempDir::new("notify");
    let socket = dir.path().join("bus");
    let mut daemon = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .arg(format!("--address=unix:path={}", socket.display()))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let address = lines_of(&mut daemon).recv_timeout(DEADLINE).unwrap();
    let _daemon = Killed(daemon);
    let mut monitor = Command::new("dbus-monitor")
        .args(["--address", &address])
        .arg("type='method_call',interface='org.freedesktop.Notifications'")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let calls = lines_of(&mut monitor);
    let _monitor = Killed(monitor);
    // dbus-monitor says it is watching with its own NameAcquired/NameLost signals.
    wait_for(&calls, "NameLost");
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &address);

    i_slint_backend_testing::init_no_event_loop();
    let app = AppWindow::new().unwrap();
    let gui = gui::bind(
        &app,
        &Settings::default(),
        dir.path().join("config"),
        None,
        Rc::new(|_| {}),
    );
    let show = |shown| gui.apply(&app, UiEvent::Shown(shown));
    gui.apply(&app, UiEvent::Net(Event::Registered { nick: "ana".into() }));
    gui.window_activated(&app, false);
    show(Shown::Message {
        from: "bob".into(),
        text: "nada especial".into(),
    });
    show(Shown::Message {
        from: "bob".into(),
        text: "ana, <b>mira</b>".into(),
    });
    assert_eq!(
        next_notification(&calls),
        ("bob".into(), "ana, &lt;b&gt;mira&lt;/b&gt;".into())
    );
    show(Shown::Private {
        from: "cleo".into(),
        text: "¿vienes?".into(),
    });
    assert_eq!(
        next_notification(&calls),
        ("cleo (private)".into(), "¿vienes?".into())
    );
    // In front of the user: no notification; the next one is the mention after going away again.
    gui.window_activated(&app, true);
    show(Shown::Message {
        from: "bob".into(),
        text: "ana ¿sigues?".into(),
    });
    gui.window_activated(&app, false);
    show(Shown::Action {
        from: "bob".into(),
        text: "saluda a ana".into(),
    });
    assert_eq!(
        next_notification(&calls),
        ("bob".into(), "* bob saluda a ana".into())
    );
    // Back in front, the count started again: only the action since.
    assert_eq!(app.get_unread(), 1);
    // Notifications go out in order from one thread, so the plain line and the mention made in
    // front of the user would have come before the ones seen: neither was notified.
}
