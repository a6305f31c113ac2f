//! charla: the Charla desktop client, or with `--headless` a line-based terminal client.

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use charla::config::{absolute_path, config_dir, KnownServers, Settings};
use charla::identity::Identity;
use charla::net::{Command, Network, Target, Trust};
use charla::{gui, headless, AppWindow};
use slint::ComponentHandle;

const HELP: &str = "\
charla: the Charla chat client

Usage: charla [OPTIONS]

Opens a window to connect to a Charla server and chat. With --headless, lines typed on standard
input are sent and what happens is printed on standard output, one line per event.

Options:
  --host NAME              server name or address [default: the last one used, else localhost]
  --port N                 server port [default: the last one used, else 12345]
  --nick NAME              your nickname [default: the last one used]
  --ca PATH                verify the server against this CA or certificate file (for example
                           the server's certs/server-cert.pem); without it the client trusts on
                           first use: it shows the server's SHA-256 fingerprint once, asks, and
                           refuses to connect if it ever changes
  --accept-fingerprint FP  headless: trust a new server only if its fingerprint is FP
  --password-file PATH     headless: the server's password, first line of this file
                           (otherwise $CHARLA_PASSWORD; the window has a password field)
  --join ROOMS             join these rooms once connected, comma-separated ('#a,#b'; the
                           '#' may be left out). The window lists them beside the default
                           room; --headless prints a line of a room other than the default
                           one as '[#room] <nick> text', and a plain line goes to the room
                           joined last
  --connect                window: connect at once with the values given or remembered
  --headless               no window: stdin/stdout
  --lang es|en             language of the window and of --headless
                           [default: from the system locale]
  --log-lines N            lines the window's log keeps, the oldest going first (another
                           room's or a private conversation's: 1000 at most); remembered
                           [default: the last one given, else 5000; 100 to 100000]
  --config-dir DIR         where settings, known_servers and your identity live
                           [default: $XDG_CONFIG_HOME/charla or ~/.config/charla]
  --show-identity          print your identity's SHA-256 fingerprint (what a server's
                           --operators file lists) and where its files are, then exit
  --no-identity            connect without presenting your identity: servers cannot tell
                           you from anyone else (no registered nickname, no operator)
  -h, --help               print this help
  -V, --version            print the version

In the window or in --headless mode, type /msg nick text, /me text, /nick new, /users (or
!usuarios), /register, /whois nick, /help, or /quit; in --headless mode also the room
commands: /join #room, /part #room, /rooms, /msg #room text, /topic #room, /invite nick #room,
/create #room [private]. Settings and trusted servers are stored in
the config dir.

Identity: on first run charla makes a key pair and a self-signed certificate in the config dir
(identity-key.pem, mode 0600, and identity-cert.pem) and presents it to every server, which
knows you by its fingerprint: /register keeps your nickname for it, and a server's operators
are listed by it. Keep the two files (copy them to another computer to be the same user
there); whoever has them can be you. The same fingerprint is shown to every server you join.
";

struct Opts {
    host: Option<String>,
    port: Option<u16>,
    nick: Option<String>,
    ca: Option<String>,
    accept_fingerprint: Option<String>,
    connect: bool,
    headless: bool,
    lang: Option<String>,
    config_dir: Option<PathBuf>,
    password_file: Option<PathBuf>,
    show_identity: bool,
    no_identity: bool,
    log_lines: Option<usize>,
    join: Vec<String>,
}

enum Parsed {
    Run(Box<Opts>),
    Help,
    Version,
}

fn parse_args() -> Result<Parsed, String> {
    use lexopt::prelude::*;
    let mut o = Opts {
        host: None,
        port: None,
        nick: None,
        ca: None,
        accept_fingerprint: None,
        connect: false,
        headless: false,
        lang: None,
        config_dir: None,
        password_file: None,
        show_identity: false,
        no_identity: false,
        log_lines: None,
        join: Vec::new(),
    };
    let mut p = lexopt::Parser::from_env();
    let text = |p: &mut lexopt::Parser, flag: &str| -> Result<String, String> {
        p.value()
            .map_err(|e| e.to_string())?
            .into_string()
            .map_err(|_| format!("{flag}: the value is not valid UTF-8"))
    };
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            Long("headless") => o.headless = true,
            Long("connect") => o.connect = true,
            Long("show-identity") => o.show_identity = true,
            Long("log-lines") => {
                let v = text(&mut p, "--log-lines")?;
                let range = charla::config::LOG_LINES;
                o.log_lines = Some(v.parse().ok().filter(|n| range.contains(n)).ok_or(format!(
                    "--log-lines {v:?}: expected {} to {}",
                    range.start(),
                    range.end()
                ))?);
            }
            Long("no-identity") => o.no_identity = true,
            Long("host") => o.host = Some(text(&mut p, "--host")?),
            Long("port") => {
                let v = text(&mut p, "--port")?;
                o.port = Some(
                    v.parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--port {v:?}: expected 1 to 65535"))?,
                );
            }
            Long("nick") => o.nick = Some(text(&mut p, "--nick")?),
            Long("ca") => o.ca = Some(text(&mut p, "--ca")?),
            Long("accept-fingerprint") => {
                let v = text(&mut p, "--accept-fingerprint")?;
                charla_proto::normalize_fingerprint(&v).ok_or(format!(
                    "--accept-fingerprint {v:?}: expected 32 hex bytes (AB:CD:...)"
                ))?;
                o.accept_fingerprint = Some(v);
            }
            Long("lang") => {
                let v = text(&mut p, "--lang")?;
                if !matches!(v.as_str(), "es" | "en") {
                    return Err(format!("--lang {v:?}: expected es or en"));
                }
                o.lang = Some(v);
            }
            Long("password-file") => {
                o.password_file = Some(text(&mut p, "--password-file")?.into())
            }
            Long("config-dir") => o.config_dir = Some(text(&mut p, "--config-dir")?.into()),
            Long("join") => {
                let v = text(&mut p, "--join")?;
                for name in v.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                    let room = if name.starts_with('#') {
                        name.to_string()
                    } else {
                        format!("#{name}")
                    };
                    charla_proto::validate_room(&room)
                        .map_err(|e| format!("--join {name:?}: {e}"))?;
                    o.join.push(room);
                }
            }
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    Ok(Parsed::Run(Box::new(o)))
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(Parsed::Run(o)) => *o,
        Ok(Parsed::Help) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Version) => {
            println!("charla {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("charla: {e}\nTry 'charla --help'.");
            return ExitCode::from(2);
        }
    };
    charla::slint_messages::install();
    let dir = opts.config_dir.clone().unwrap_or_else(config_dir);
    if opts.show_identity {
        return match Identity::load_or_create(&dir) {
            Ok(identity) => {
                use std::io::Write;
                // Not println!: a script may read the first line and close the pipe
                // (`charla --show-identity | head -1`), and that is no reason to panic.
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", identity.fingerprint)
                    .and_then(|_| writeln!(out, "certificate: {}", identity.cert_path.display()))
                    .and_then(|_| writeln!(out, "key:         {}", identity.key_path.display()));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("charla: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Without it the chat still works, as for a client that has none: say so and go on.
    let (identity, identity_error) = if opts.no_identity {
        (None, None)
    } else {
        match Identity::load_or_create(&dir) {
            Ok(identity) => (Some(std::sync::Arc::new(identity)), None),
            Err(e) => {
                eprintln!("charla: {e}; connecting without an identity");
                (None, Some(e))
            }
        }
    };
    let mut settings = Settings::load(&dir);
    if let Some(h) = &opts.host {
        settings.host = h.clone();
    }
    if let Some(p) = opts.port {
        settings.port = p;
    }
    if let Some(n) = &opts.nick {
        settings.nick = n.clone();
    }
    if let Some(ca) = &opts.ca {
        settings.ca = absolute_path(ca);
    }
    if let Some(lines) = opts.log_lines {
        settings.log_lines = lines;
    }
    if opts.headless {
        if settings.nick.is_empty() {
            eprintln!("charla: --headless needs a nickname: give --nick NAME");
            return ExitCode::from(2);
        }
        let trust = if settings.ca.is_empty() {
            Trust::Pinned(KnownServers::in_dir(&dir))
        } else {
            Trust::CaFile(settings.ca.clone().into())
        };
        let password = match read_password(&opts) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("charla: {e}");
                return ExitCode::from(2);
            }
        };
        let target = Target {
            host: settings.host,
            port: settings.port,
            nick: settings.nick,
            trust,
            password,
            identity,
        };
        return headless::run(
            target,
            opts.accept_fingerprint,
            opts.lang.as_deref(),
            opts.join,
        );
    }
    run_window(&opts, &settings, dir, identity, identity_error)
}

/// The server password for --headless: --password-file, else $CHARLA_PASSWORD.
fn read_password(opts: &Opts) -> Result<Option<String>, String> {
    if let Some(path) = &opts.password_file {
        let line = charla_proto::files::first_line(path)
            .map_err(|e| format!("cannot read --password-file {}: {e}", path.display()))?;
        return Ok(Some(line).filter(|p| !p.is_empty()));
    }
    Ok(std::env::var("CHARLA_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty()))
}

fn run_window(
    opts: &Opts,
    settings: &Settings,
    dir: PathBuf,
    identity: Option<std::sync::Arc<Identity>>,
    identity_error: Option<String>,
) -> ExitCode {
    let app = match AppWindow::new() {
        Ok(app) => app,
        Err(e) => {
            eprintln!("charla: cannot open a window: {e}\n(no display? try --headless)");
            return ExitCode::FAILURE;
        }
    };
    if let Some(lang) = &opts.lang {
        if let Err(e) = slint::select_bundled_translation(lang) {
            eprintln!("charla: --lang {lang}: {e}");
        }
    }
    // The window's commands go to the network thread, started once the window can take its
    // events.
    let network: Rc<std::cell::OnceCell<Network>> = Rc::default();
    let net = network.clone();
    let gui = Rc::new(gui::bind(
        &app,
        settings,
        dir,
        identity,
        Rc::new(move |command: Command| {
            if let Some(network) = net.get() {
                network.send(command);
            }
        }),
    ));
    match Network::start(gui.event_sink()) {
        Ok(started) => {
            let _ = network.set(started);
        }
        Err(e) => {
            eprintln!("charla: cannot start the network thread: {e}");
            return ExitCode::FAILURE;
        }
    }
    if let Some(why) = identity_error {
        let note = app
            .global::<charla::Strings>()
            .invoke_no_identity_error(why.into());
        app.set_identity_note(note);
    }
    // winit's window events, which Slint's own API does not give: whether the window is the active
    // one, and the moment a key is pressed.
    {
        use slint::winit_030::{winit::event::WindowEvent, EventResult, WinitWindowAccessor};
        let weak = app.as_weak();
        let gui = gui.clone();
        app.window().on_winit_window_event(move |window, event| {
            match event {
                WindowEvent::Focused(active) => {
                    if let Some(app) = weak.upgrade() {
                        gui.window_activated(&app, *active);
                    }
                }
                // On X11, Slint draws a change at its next frame tick, started by the change:
                // a key typed into an idle window was painted one frame (~16 ms) late. winit
                // delivers this redraw once the key has been handled, in the same turn of the
                // event loop (measured with scripts/bench-client.sh, docs/benchmarks.md).
                WindowEvent::KeyboardInput { .. } | WindowEvent::Ime(_) => {
                    window.with_winit_window(|w| w.request_redraw());
                }
                _ => {}
            }
            EventResult::Propagate
        });
    }
    gui.join_at_start(opts.join.clone());
    if opts.connect {
        app.invoke_connect();
    } else {
        app.invoke_focus_login();
    }
    let run = app.run();
    // A server this window started stops with it (unless asked to keep running).
    gui.stop_hosting();
    if let Err(e) = run {
        eprintln!("charla: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
