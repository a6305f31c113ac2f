//! A real window under Xvfb, typed into with xdotool, chatting with a live server through TLS.
//! Needs the Debian packages xvfb, xdotool and imagemagick (.ci/run installs them).
//! `CHARLA_SCREENSHOT_DIR=$PWD/docs cargo test -p charla --test window`, from the top directory
//! (tests run in client/), refreshes the README's screenshots (one per theme).

use charla_test_support as common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use common::{certs, require_program, Client, Server, TempDir, DEADLINE};

/// An X server of our own; `-displayfd` tells when it is ready and which display it took.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        for program in ["Xvfb", "xdotool", "import"] {
            require_program(program);
        }
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1024x640x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok).unwrap_or_default());
            // Keep the pipe open and drained: Xvfb dies of SIGPIPE if its stdout closes.
            lines.for_each(drop);
        });
        let number = rx.recv_timeout(DEADLINE).expect("Xvfb did not start");
        Xvfb {
            child,
            display: format!(":{}", number.trim()),
        }
    }

    /// Runs an X client (xdotool, import) on this display, within the deadline.
    fn run(&self, program: &str, args: &[&str]) -> Output {
        let out = Command::new("timeout")
            .arg(DEADLINE.as_secs().to_string())
            .arg(program)
            .args(args)
            .env("DISPLAY", &self.display)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `charla` as a user starts it: joining `server` as ana, the test certificate trusted, the
/// settings (`settings` file contents) in a config dir of its own.
fn start_charla(x: &Xvfb, server: &Server, config: &TempDir, settings: &str) -> Child {
    start_charla_with(x, server, config, settings, &[])
}

fn start_charla_with(
    x: &Xvfb,
    server: &Server,
    config: &TempDir,
    settings: &str,
    env: &[(&str, &std::path::Path)],
) -> Child {
    charla_command(x, server, config, settings)
        .envs(env.iter().copied())
        .spawn()
        .unwrap()
}

fn charla_command(x: &Xvfb, server: &Server, config: &TempDir, settings: &str) -> Command {
    std::fs::write(config.path().join("settings"), settings).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_charla"));
    command
        .args([
            "--connect",
            "--lang",
            "en",
            "--host",
            "localhost",
            "--nick",
            "ana",
        ])
        .args([
            "--port",
            &server.addr.port().to_string(),
            "--ca",
            certs().cert.to_str().unwrap(),
        ])
        .arg("--config-dir")
        .arg(config.path())
        .env("DISPLAY", &x.display)
        .env("LANG", "C");
    command
}

/// The chat window, once the server has registered ana (`witness` saw her JOIN): it shows the
/// chat (and its title says so) a moment later, and keys typed before would go to the login
/// page. Only a mapped window can take the keyboard (SetInputFocus on one not yet shown fails
/// with BadMatch): visible, not just made. Bare Xvfb has no window manager: the test gives the
/// window the keyboard itself.
fn chat_window(x: &Xvfb, witness: &mut Client) -> String {
    witness.expect_line("JOIN ana");
    let found = x.run(
        "xdotool",
        &[
            "search",
            "--sync",
            "--onlyvisible",
            "--name",
            "^Charla: ana in #general$",
        ],
    );
    let window = String::from_utf8(found.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    x.run("xdotool", &["windowfocus", "--sync", &window]);
    window
}

/// The window's picture in `shot`, once it has stopped changing (a debug build repaints slowly).
fn picture_when_still(x: &Xvfb, window: &str, shot: &std::path::Path) {
    let mut previous = Vec::new();
    for _ in 0..30 {
        x.run("import", &["-window", window, shot.to_str().unwrap()]);
        let picture = std::fs::read(shot).unwrap();
        if picture == previous {
            break;
        }
        previous = picture;
    }
}

/// /quit typed into the window: the server sees ana leave and the program ends well.
fn quit(x: &Xvfb, window: &str, mut charla: Child, witness: &mut Client) {
    x.run("xdotool", &["windowfocus", "--sync", window]);
    x.run("xdotool", &["type", "--delay", "20", "/quit"]);
    x.run("xdotool", &["key", "Return"]);
    witness.expect_line("LEAVE ana quit");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(charla.wait());
    });
    let status = rx
        .recv_timeout(DEADLINE)
        .expect("the window did not close")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_window_chats_with_a_live_server() {
    let x = Xvfb::start();
    let server = Server::start(&[]);
    let mut bob = server.join("bob");
    let config = TempDir::new("window");
    let charla = start_charla(&x, &server, &config, "");
    let window = chat_window(&x, &mut bob);
    x.run(
        "xdotool",
        &["type", "--delay", "30", "hola desde la ventana"],
    );
    x.run("xdotool", &["key", "Return"]);
    bob.expect_next("MSG ana hola desde la ventana");

    x.run("xdotool", &["type", "--delay", "30", "/me sonrie"]);
    x.run("xdotool", &["key", "Return"]);
    bob.expect_next("ACTION ana sonrie");
    bob.send("hola ana, te leo");
    bob.send("/me saluda con la mano");
    bob.send("/msg ana esto es privado");
    let eva = server.join("eva");
    bob.expect_next("JOIN eva");
    x.run("xdotool", &["type", "--delay", "30", "bienvenida, eva"]);
    x.run("xdotool", &["key", "Return"]);
    bob.expect_next("MSG ana bienvenida, eva");

    // Without CHARLA_SCREENSHOT the picture goes to a directory removed at the end.
    let shots = TempDir::new("window-shot");
    let shot = std::env::var("CHARLA_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| shots.path().join("charla-window.png"));
    picture_when_still(&x, &window, &shot);
    let size = std::fs::metadata(&shot).unwrap().len();
    assert!(
        size > 10_000,
        "a screenshot of a drawn window, not an empty screen ({size} bytes)"
    );

    quit(&x, &window, charla, &mut bob);
    drop(eva);
}

/// The average brightness of a picture, 0 (black) to 1 (white), as ImageMagick measures it.
fn brightness(x: &Xvfb, picture: &std::path::Path) -> f64 {
    let out = x.run(
        "convert",
        &[
            picture.to_str().unwrap(),
            "-colorspace",
            "Gray",
            "-format",
            "%[fx:mean]",
            "info:",
        ],
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// The window in each theme with what the README shows: nickname colours, a link, a mention, two
/// rooms and a private conversation (one room's unread count), and the unread count in the
/// title. `CHARLA_SCREENSHOT_DIR=$PWD/docs cargo test -p charla --test window` writes them as
/// docs/screenshot-light.png and docs/screenshot-dark.png.
#[test]
fn screenshots_in_the_light_and_the_dark_theme() {
    require_program("convert");
    let x = Xvfb::start();
    let shots = TempDir::new("theme-shots");
    let dir = std::env::var("CHARLA_SCREENSHOT_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| shots.path().to_path_buf());
    let root_window = String::from_utf8(
        x.run("xdotool", &["search", "--maxdepth", "0", "--name", ""])
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let mut seen = Vec::new();
    for theme in ["light", "dark"] {
        // A server of its own: the second window does not see the first one's lines as history.
        let server = Server::start(&["--rooms", "tareas"]);
        let config = TempDir::new(&format!("theme-{theme}"));
        let mut bob = server.join("bob");
        let mut eva = server.join("eva");
        // carla understands rooms, and waits in #tareas.
        let mut carla = in_room(&server, "carla", "#tareas");
        let charla = start_charla(&x, &server, &config, &format!("theme={theme}\n"));
        let window = chat_window(&x, &mut bob);
        type_in(&x, "/join #tareas");
        carla.expect_line("#tareas JOIN ana");
        wait_title(&x, "^Charla: ana in #tareas$");
        x.run("xdotool", &["key", "alt+1"]);
        wait_title(&x, "^Charla: ana in #general$");
        x.run("xdotool", &["type", "--delay", "20", "Hola a los dos!"]);
        x.run("xdotool", &["key", "Return"]);
        bob.expect_line("MSG ana Hola a los dos!");
        eva.expect_line("MSG ana Hola a los dos!");
        // The user looks elsewhere; four lines come, and the title counts them: then all four
        // have been taken by the window (one in #tareas, counted on its entry too).
        x.run("xdotool", &["windowfocus", "--sync", &root_window]);
        bob.send("ana, has visto https://slint.dev?");
        eva.send("/me llega con café ☕");
        bob.send("/msg ana ¿hablamos luego?");
        carla.send("/msg #tareas ¿quién tiene el ejercicio 3?");
        x.run(
            "xdotool",
            &[
                "search",
                "--sync",
                "--name",
                "^\\(4\\) Charla: ana in #general$",
            ],
        );
        let shot = dir.join(format!("screenshot-{theme}.png"));
        picture_when_still(&x, &window, &shot);
        seen.push((theme, brightness(&x, &shot)));
        quit(&x, &window, charla, &mut bob);
    }
    let (light, dark) = (seen[0].1, seen[1].1);
    assert!(light > 0.7, "the light theme's picture is light: {seen:?}");
    assert!(dark < 0.35, "the dark theme's picture is dark: {seen:?}");
}

/// The X server's root window: focusing it takes the keyboard from the chat window.
fn root_window(x: &Xvfb) -> String {
    let out = x.run("xdotool", &["search", "--maxdepth", "0", "--name", ""]);
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn a_link_is_opened_in_the_browser_from_the_keyboard() {
    let x = Xvfb::start();
    let server = Server::start(&[]);
    let mut bob = server.join("bob");
    let config = TempDir::new("window-link");
    // The browser: a script that writes down what it was asked to open ($BROWSER, which the
    // desktop's opener follows).
    let browser = config.path().join("browser.sh");
    let opened = config.path().join("opened.txt");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\necho \"$1\" >> '{}'\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(
        &browser,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let charla = start_charla_with(&x, &server, &config, "", &[("BROWSER", browser.as_path())]);
    let window = chat_window(&x, &mut bob);
    // Looking elsewhere while bob's line comes: the title's count says the window has it.
    x.run("xdotool", &["windowfocus", "--sync", &root_window(&x)]);
    bob.send("mira https://example.org/charla, es nuevo");
    x.run(
        "xdotool",
        &[
            "search",
            "--sync",
            "--name",
            "^\\(1\\) Charla: ana in #general$",
        ],
    );
    x.run("xdotool", &["windowfocus", "--sync", &window]);
    // Back from the input, the newest line's link comes first; Enter opens it.
    x.run("xdotool", &["key", "shift+Tab"]);
    x.run("xdotool", &["key", "Return"]);
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(&opened).unwrap_or_default();
        if !text.is_empty() {
            assert_eq!(text, "https://example.org/charla\n");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the browser was never asked"
        );
        // A file gives nothing to wait on: look again shortly; the deadline decides.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Tab goes on from the link to the input.
    x.run("xdotool", &["key", "Tab"]);
    quit(&x, &window, charla, &mut bob);
}

/// Issue 23: without a desktop session bus (a bare X server, a container, `ssh -X`) every start
/// printed `Error watching for xdg desktop settings: …`, Slint's, on the terminal. Nothing is lost
/// without the bus (the window keeps its own light or dark setting), so nothing is said.
#[test]
fn no_session_bus_says_nothing() {
    let x = Xvfb::start();
    let server = Server::start(&[]);
    let mut bob = server.join("bob");
    let config = TempDir::new("window-no-bus");
    // A runtime directory with no bus in it, as on a machine without a session.
    let runtime = TempDir::new("window-no-bus-runtime");
    let stderr = config.path().join("stderr");
    let charla = charla_command(&x, &server, &config, "")
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let window = chat_window(&x, &mut bob);
    quit(&x, &window, charla, &mut bob);
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert!(!said.contains("xdg"), "{said}");
}

/// `nick`, a client that understands rooms, in `room` (and the default room).
fn in_room(server: &Server, nick: &str, room: &str) -> Client {
    let mut client = server.connect();
    client.send("/cap rooms");
    client.expect_line("CAP rooms");
    client.send(nick);
    client.expect_prefix(&format!("WELCOME {nick}"));
    client.send(&format!("/join {room}"));
    client.expect_line(&format!("{room} JOIN {nick}"));
    client
}

/// Waits until the window's title is `title` (a regular expression), as xdotool sees it.
fn wait_title(x: &Xvfb, title: &str) {
    x.run("xdotool", &["search", "--sync", "--name", title]);
}

fn type_in(x: &Xvfb, text: &str) {
    x.run("xdotool", &["type", "--delay", "20", text]);
    x.run("xdotool", &["key", "Return"]);
}

/// Issue 22.11: in a real window, a room is joined by typing `/join`, lines go to the room shown,
/// Alt+1 and Alt+2 switch rooms, and lines said in the room not shown are counted on its entry
/// (the window's picture changes while the room shown gets nothing) and in the title.
#[test]
fn a_window_joins_switches_rooms_and_counts_what_it_did_not_see() {
    let x = Xvfb::start();
    let server = Server::start(&["--rooms", "tareas"]);
    // eva speaks the seed's protocol: she is in the default room only.
    let mut eva = server.join("eva");
    let mut bob = in_room(&server, "bob", "#tareas");
    let config = TempDir::new("window-rooms");
    let charla = start_charla(&x, &server, &config, "");
    let window = chat_window(&x, &mut eva);

    type_in(&x, "/join #tareas");
    bob.expect_line("#tareas JOIN ana");
    // The title names the room shown: once it says #tareas, the window shows it.
    wait_title(&x, "^Charla: ana in #tareas$");
    type_in(&x, "hola, tareas");
    bob.expect_line("#tareas MSG ana hola, tareas");

    x.run("xdotool", &["key", "alt+1"]);
    wait_title(&x, "^Charla: ana in #general$");
    type_in(&x, "hola, general");
    eva.expect_line("MSG ana hola, general");

    // Looking elsewhere, with #general shown: bob says two lines in #tareas.
    x.run("xdotool", &["windowfocus", "--sync", &root_window(&x)]);
    let shots = TempDir::new("window-rooms-shots");
    let before = shots.path().join("before.png");
    let after = shots.path().join("after.png");
    picture_when_still(&x, &window, &before);
    bob.send("/msg #tareas ¿alguien tiene el ejercicio 3?");
    bob.send("/msg #tareas ana, ¿tú?");
    wait_title(&x, "^\\(2\\) Charla: ana in #general$");
    picture_when_still(&x, &window, &after);
    assert_ne!(
        std::fs::read(&before).unwrap(),
        std::fs::read(&after).unwrap(),
        "#tareas's count did not show"
    );

    x.run("xdotool", &["windowfocus", "--sync", &window]);
    x.run("xdotool", &["key", "alt+2"]);
    wait_title(&x, "^Charla: ana in #tareas$");
    // ASCII: xdotool types other letters by remapping a key for a moment, and winit 0.30 can
    // lose its X connection on such a burst of keymap changes (seen: "Failed to set decoration
    // state").
    type_in(&x, "si, te lo paso");
    bob.expect_line("#tareas MSG ana si, te lo paso");
    // eva, in the default room only, saw nothing of #tareas.
    let seen = eva.sync();
    assert!(
        !seen
            .iter()
            .any(|l| l.contains("tareas") || l.contains("ejercicio")),
        "{seen:?}"
    );
    quit(&x, &window, charla, &mut eva);
}
