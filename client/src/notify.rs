//! Desktop notifications (freedesktop.org's `org.freedesktop.Notifications` on the session bus),
//! sent from a thread of their own so that a slow or missing notification service never holds up
//! the window. Without a session bus or a notification service nothing is shown and nothing else
//! changes: the title's unread count still tells.

use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};

/// One notification: who or what (`ana`, `ana (private)`) and the text.
pub struct Notification {
    pub summary: String,
    pub body: String,
}

/// Hands notifications to the notification thread, started on the first one.
#[derive(Default)]
pub struct Notifier {
    to_thread: Option<Sender<Notification>>,
}

impl Notifier {
    pub fn notify(&mut self, notification: Notification) {
        if self.to_thread.is_none() {
            let (tx, rx) = channel();
            let started = std::thread::Builder::new()
                .name("charla-notify".into())
                .spawn(move || run(rx));
            if started.is_err() {
                return;
            }
            self.to_thread = Some(tx);
        }
        if let Some(tx) = &self.to_thread {
            let _ = tx.send(notification);
        }
    }
}

/// A burst (a flood of mentions) becomes one notification: the newest, saying how many more.
fn run(rx: Receiver<Notification>) {
    let mut bus: Option<zbus::blocking::Connection> = None;
    let mut bus_failed = false;
    let mut markup: Option<bool> = None;
    while let Ok(first) = rx.recv() {
        let mut newest = first;
        let mut more = 0;
        while let Ok(next) = rx.try_recv() {
            newest = next;
            more += 1;
        }
        if bus_failed {
            continue;
        }
        if bus.is_none() {
            match zbus::blocking::Connection::session() {
                Ok(connection) => bus = Some(connection),
                Err(_) => {
                    // No session bus (a server, a bare X session): notifications are not a thing
                    // here, and trying again for every line would only cost time.
                    bus_failed = true;
                    continue;
                }
            }
        }
        if let Some(connection) = &bus {
            if more > 0 {
                newest.summary = format!("{} (+{more})", newest.summary);
            }
            // Asked once: services that take markup in the body get it escaped; the others show
            // the text as it is.
            let markup = *markup.get_or_insert_with(|| takes_markup(connection));
            // No service answering is not an error the user can act on.
            let _ = send(connection, &newest, markup);
        }
    }
}

/// Notification services that take markup in the body would otherwise read `<a href=…>` in
/// someone's message as a link or `<b>` as bold: the text is shown as it was written.
fn escape_markup(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn takes_markup(connection: &zbus::blocking::Connection) -> bool {
    connection
        .call_method(
            Some("org.freedesktop.Notifications"),
            "/org/freedesktop/Notifications",
            Some("org.freedesktop.Notifications"),
            "GetCapabilities",
            &(),
        )
        .ok()
        .and_then(|reply| reply.body().deserialize::<Vec<String>>().ok())
        // Unknown (no answer): escaped, the safe side.
        .is_none_or(|caps| caps.iter().any(|c| c == "body-markup"))
}

fn send(
    connection: &zbus::blocking::Connection,
    n: &Notification,
    markup: bool,
) -> zbus::Result<()> {
    let body = if markup {
        escape_markup(&n.body)
    } else {
        n.body.clone()
    };
    let mut hints: HashMap<&str, zbus::zvariant::Value<'_>> = HashMap::new();
    hints.insert("desktop-entry", "charla".into());
    hints.insert("category", "im.received".into());
    connection.call_method(
        Some("org.freedesktop.Notifications"),
        "/org/freedesktop/Notifications",
        Some("org.freedesktop.Notifications"),
        "Notify",
        &(
            "Charla",
            0u32,
            "charla",
            n.summary.as_str(),
            body.as_str(),
            Vec::<&str>::new(),
            hints,
            -1i32,
        ),
    )?;
    Ok(())
}
