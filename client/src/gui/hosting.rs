//! "Host a chat on this computer": the window starts a server of its own and joins it.

use charla_proto::DEFAULT_PORT;
use slint::{ComponentHandle, SharedString};

use super::{close_dialog, nick_refused, Arrival, UiState};
use crate::host::{self, HostError, HostFiles, HostedServer};
use crate::present::fingerprint_groups;
use crate::{AppWindow, Dialog, Strings};

impl UiState {
    /// Start in the host dialog: the certificate is made and the server started here (both
    /// quick), and waited for on a thread of its own; `host_started` gets the outcome.
    pub(super) fn start_hosting(&self, app: &AppWindow) {
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
        let rooms = match host_rooms(&app.get_host_rooms()) {
            Ok(rooms) => rooms,
            Err(name) => {
                app.set_host_error(strings.invoke_err_bad_room_name(name.into()));
                return;
            }
        };
        let _ = self
            .settings_now(
                app,
                app.get_host().trim().to_string(),
                app.get_port().trim().parse().unwrap_or(DEFAULT_PORT),
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
        let starting = match host::spawn(&files, port, &rooms, app.get_host_keep_running()) {
            Ok(starting) => starting,
            Err(e) => {
                app.set_host_error(host_error_words(app, &e));
                return;
            }
        };
        app.set_host_error("".into());
        app.set_host_starting(true);
        let mailbox = self.mailbox.clone();
        let spawned = std::thread::Builder::new()
            .name("charla-host".into())
            .spawn(move || {
                let started = starting.wait();
                mailbox.post(Arrival::Hosted(files, started));
            });
        if let Err(e) = spawned {
            app.set_host_starting(false);
            app.set_host_error(strings.invoke_host_failed(e.to_string().into()));
        }
    }

    pub(super) fn host_started(
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
}

/// Why hosting did not start, in the user's language.
fn host_error_words(app: &AppWindow, error: &HostError) -> SharedString {
    let s = app.global::<Strings>();
    match error {
        HostError::PortInUse(port) => s.invoke_host_port_in_use(i32::from(*port)),
        HostError::Other(why) => s.invoke_host_failed(why.into()),
    }
}

/// The rooms typed in the host dialog (`#homework, off-topic`: commas or spaces between them,
/// `#` optional), each with its `#`; the first name that is not a room's, if one is not.
pub fn host_rooms(typed: &str) -> Result<Vec<String>, String> {
    typed
        .split([',', ' '])
        .filter(|name| !name.is_empty())
        .map(|name| {
            let room = format!("#{}", name.trim_start_matches('#'));
            match charla_proto::validate_room(&room) {
                Ok(()) => Ok(room),
                Err(_) => Err(name.to_string()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::host_rooms;

    #[test]
    fn the_host_dialogs_rooms_are_read_as_typed() {
        assert_eq!(host_rooms(""), Ok(vec![]));
        assert_eq!(
            host_rooms(" #deberes,off-topic  #Juegos "),
            Ok(vec![
                "#deberes".into(),
                "#off-topic".into(),
                "#Juegos".into()
            ])
        );
        // The first name that is not a room's, as typed.
        assert_eq!(host_rooms("#a, b\u{200b}c"), Err("b\u{200b}c".into()));
    }
}
