//! `charla --headless` as a person or a script uses it: a real process, stdin and stdout.

use charla_test_support as common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::Instant;

use common::{certs, Proxy, Server, TempDir, DEADLINE};

/// `charla --headless` for the server on `port` (by the name `localhost`), with piped input and
/// output.
fn spawn(port: u16, nick: &str, extra: &[&str], config: &TempDir) -> Child {
    Command::new(env!("CARGO_BIN_EXE_charla"))
        .args([
            "--headless",
            "--host",
            "localhost",
            "--port",
            &port.to_string(),
            "--nick",
            nick,
        ])
        .arg("--config-dir")
        .arg(config.path())
        .args(extra)
        // The words are the system's language's: these tests read the English ones.
        .env("LANG", "C.UTF-8")
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

struct Headless {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Headless {
    fn start(server: &Server, nick: &str, extra: &[&str], config: &TempDir) -> Headless {
        Headless::start_at(server.addr.port(), nick, extra, config)
    }

    fn start_at(port: u16, nick: &str, extra: &[&str], config: &TempDir) -> Headless {
        let mut child = spawn(port, nick, extra, config);
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stdin = child.stdin.take();
        Headless {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for an output line containing `needle`.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "no line containing {needle:?}; output so far: {:#?}",
                    self.seen
                ),
            }
        }
    }

    fn exit_code(mut self) -> Option<i32> {
        drop(self.stdin.take());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(self.child.wait());
        });
        rx.recv_timeout(DEADLINE)
            .expect("charla did not exit")
            .unwrap()
            .code()
    }
}

#[test]
fn typed_lines_are_sent_and_events_printed() {
    let server = Server::start(&[]);
    let config = TempDir::new("headless");
    let mut bob = server.join("bob");
    let mut eva = Headless::start(
        &server,
        "eva",
        &["--ca", certs().cert.to_str().unwrap()],
        &config,
    );
    eva.expect("* Connected as eva");
    bob.expect_next("JOIN eva");
    eva.type_line("hola desde la terminal");
    bob.expect_next("MSG eva hola desde la terminal");
    bob.send("hola eva");
    assert!(eva.expect("<bob> hola eva").starts_with('['), "timestamped");
    bob.send("/me saluda");
    eva.expect("* bob saluda");
    // Bidi controls are written out: a terminal would reorder the line with them.
    bob.send("al reves \u{202E}odnum");
    eva.expect("<bob> al reves \\u{202E}odnum");
    bob.send("/msg eva en privado");
    eva.expect("(private) bob: en privado");
    eva.type_line("!usuarios");
    eva.expect("Users in the chat (2): ");
    let carol = server.join("carol");
    eva.expect("[+] User carol has joined the chat");
    drop(carol);
    eva.expect("[!] User carol has left the chat (connection closed)");
    eva.type_line("/quit adiós");
    bob.expect_line("LEAVE eva quit adiós");
    assert_eq!(eva.exit_code(), Some(0));
}

#[test]
fn end_of_input_quits_cleanly() {
    let server = Server::start(&[]);
    let config = TempDir::new("eof");
    let mut bob = server.join("bob");
    let mut eva = Headless::start(
        &server,
        "eva",
        &["--ca", certs().cert.to_str().unwrap()],
        &config,
    );
    eva.expect("* Connected as eva");
    bob.expect_next("JOIN eva");
    assert_eq!(eva.exit_code(), Some(0));
    bob.expect_next("LEAVE eva quit");
}

#[test]
fn trust_on_first_use_asks_on_stdin() {
    let server = Server::start(&[]);
    let config = TempDir::new("tofu-headless");
    let mut eva = Headless::start(&server, "eva", &[], &config);
    eva.expect("is not known yet");
    let fingerprint = eva.expect(":");
    assert_eq!(fingerprint.trim().len(), 95, "{fingerprint}");
    eva.expect("Trust it? (yes/no)");
    eva.type_line("yes");
    eva.expect("* Connected as eva");
    assert_eq!(eva.exit_code(), Some(0));

    // Remembered: no question the second time.
    let mut again = Headless::start(&server, "eva", &[], &config);
    again.expect("* Connected as eva");
    assert!(
        !again.seen.iter().any(|l| l.contains("not known")),
        "{:?}",
        again.seen
    );
    assert_eq!(again.exit_code(), Some(0));
}

#[test]
fn a_wrong_expected_fingerprint_refuses() {
    let server = Server::start(&[]);
    let config = TempDir::new("wrongfp");
    let wrong = "AB:".repeat(31) + "AB";
    let mut eva = Headless::start(&server, "eva", &["--accept-fingerprint", &wrong], &config);
    eva.expect("not connecting");
    assert_eq!(eva.exit_code(), Some(1));
}

#[test]
fn a_taken_nickname_ends_with_an_error() {
    let server = Server::start(&[]);
    let config = TempDir::new("taken");
    let _bob = server.join("bob");
    let mut other = Headless::start(
        &server,
        "bob",
        &["--ca", certs().cert.to_str().unwrap()],
        &config,
    );
    other.expect("! Nickname refused: that nickname is already in use");
    assert_eq!(other.exit_code(), Some(1));
}

/// Runs `charla --headless` with all of `input` piped in at once, as a script does; returns its
/// exit code and output.
fn piped(
    port: u16,
    nick: &str,
    extra: &[&str],
    config: &TempDir,
    input: &str,
) -> (Option<i32>, Vec<String>) {
    let mut child = spawn(port, nick, extra, config);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(DEADLINE)
        .expect("charla did not exit")
        .unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    (out.status.code(), lines)
}

#[test]
fn piped_lines_are_sent_in_order_then_it_leaves() {
    let server = Server::start(&[]);
    let config = TempDir::new("piped");
    let mut bob = server.join("bob");
    let (code, out) = piped(
        server.addr.port(),
        "gina",
        &["--ca", certs().cert.to_str().unwrap()],
        &config,
        "hello\n/me waves\nsecond line\n",
    );
    bob.expect_next("JOIN gina");
    bob.expect_next("MSG gina hello");
    bob.expect_next("ACTION gina waves");
    bob.expect_next("MSG gina second line");
    bob.expect_next("LEAVE gina quit");
    assert_eq!(code, Some(0), "{out:#?}");
    // Its own lines are in the transcript, like everyone else's.
    let own: Vec<&String> = out.iter().filter(|l| l.contains("gina")).collect();
    assert!(
        own.iter()
            .any(|l| l.starts_with('[') && l.ends_with("] <gina> hello")),
        "{out:#?}"
    );
    assert!(
        own.iter().any(|l| l.ends_with("] * gina waves")),
        "{out:#?}"
    );
    assert!(
        own.iter().any(|l| l.ends_with("] <gina> second line")),
        "{out:#?}"
    );
}

#[test]
fn piped_lines_to_a_server_that_is_not_there_fail() {
    let server = Server::start(&[]);
    let config = TempDir::new("piped-gone");
    let port = server.addr.port();
    drop(server);
    let ca = ["--ca", certs().cert.to_str().unwrap()];
    let (code, out) = piped(port, "gina", &ca, &config, "hello\n");
    assert_eq!(code, Some(1), "nothing was sent: {out:#?}");
    assert!(out.iter().any(|l| l.contains("refused")), "{out:#?}");
}

#[test]
fn a_trust_question_is_answered_from_piped_input() {
    let server = Server::start(&[]);
    let config = TempDir::new("piped-no");
    let (code, out) = piped(server.addr.port(), "gina", &[], &config, "no\nhello\n");
    assert!(
        out.iter().any(|l| l.contains("Trust it? (yes/no)")),
        "{out:#?}"
    );
    assert!(out.iter().any(|l| l.contains("not trusted")), "{out:#?}");
    assert_eq!(code, Some(1));
    assert!(
        !server.log_text().contains("registered gina"),
        "never joined"
    );

    let (code, out) = piped(server.addr.port(), "gina", &[], &config, "yes\nhola\n");
    assert_eq!(code, Some(0), "{out:#?}");
    server.wait_log("registered gina");
}

#[test]
fn a_trust_question_with_no_input_left_refuses() {
    let server = Server::start(&[]);
    let config = TempDir::new("piped-eof");
    let (code, out) = piped(server.addr.port(), "gina", &[], &config, "");
    assert!(
        out.iter().any(|l| l.contains("Trust it? (yes/no)")),
        "{out:#?}"
    );
    assert!(out.iter().any(|l| l.contains("No answer")), "{out:#?}");
    assert_eq!(code, Some(1));
    assert!(!config.path().join("known_servers").exists());
}

#[test]
fn quit_is_understood_in_any_case() {
    let server = Server::start(&[]);
    let config = TempDir::new("quit-case");
    let mut bob = server.join("bob");
    let (code, out) = piped(
        server.addr.port(),
        "gina",
        &["--ca", certs().cert.to_str().unwrap()],
        &config,
        "/QUIT hasta luego\nnot sent\n",
    );
    assert_eq!(code, Some(0), "{out:#?}");
    bob.expect_next("JOIN gina");
    bob.expect_next("LEAVE gina quit hasta luego");
    assert!(
        bob.sync().is_empty(),
        "nothing after /QUIT, and no second join"
    );
}

/// The connection is cut while 50 public lines and 3 private ones are sent: the headless client
/// comes back by itself and prints each of them exactly once, in order.
#[test]
fn a_cut_connection_comes_back_with_every_line_exactly_once() {
    let server = Server::start(&["--flood-rate", "0"]);
    let proxy = Proxy::start(server.addr);
    let config = TempDir::new("headless-resume");
    let mut bob = server.join("bob");
    let mut ana = Headless::start_at(
        proxy.addr.port(),
        "ana",
        &["--ca", certs().cert.to_str().unwrap()],
        &config,
    );
    ana.expect("* Connected as ana");
    bob.expect_line("JOIN ana");
    bob.send("antes");
    ana.expect("<bob> antes");
    // The network stays down until everything has been said: all of it comes back as history.
    proxy.sever_and_hold();
    bob.expect_prefix("LEAVE ana");
    for n in 1..=50 {
        bob.send(&format!("perdido {n}"));
    }
    for n in 1..=3 {
        bob.send(&format!("/msg ana privado {n}"));
        bob.expect_line("NOTICE held for ana: away, delivered if back within 120 s");
    }
    proxy.reopen();
    bob.expect_line("JOIN ana");
    ana.expect("(private) bob: privado 3");
    let said: Vec<&String> = ana
        .seen
        .iter()
        .filter(|l| l.contains("<bob> ") || l.contains("(private) bob: "))
        .collect();
    // ("antes" was read by the expect above; "privado 3" by the one that waited for it.)
    let mut wanted: Vec<String> = (1..=50).map(|n| format!("perdido {n}")).collect();
    wanted.extend((1..=2).map(|n| format!("privado {n}")));
    let texts: Vec<&str> = said
        .iter()
        .map(|l| {
            let public = l.rsplit("<bob> ").next().unwrap();
            public.rsplit("(private) bob: ").next().unwrap()
        })
        .collect();
    assert_eq!(texts, wanted, "every line once, in order: {said:#?}");
    assert!(
        said.iter().all(|l| l.contains("[history]")),
        "what was missed is marked as history: {said:#?}"
    );
    ana.type_line("/quit");
    assert_eq!(ana.exit_code(), Some(0));
}

#[test]
fn show_identity_makes_one_once_and_a_server_operator_can_list_it() {
    let config = TempDir::new("show-identity");
    let show = || {
        let out = Command::new(env!("CARGO_BIN_EXE_charla"))
            .arg("--config-dir")
            .arg(config.path())
            .arg("--show-identity")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let first = show();
    let fingerprint = first.lines().next().unwrap().to_string();
    assert_eq!(
        charla_proto::normalize_fingerprint(&fingerprint),
        Some(fingerprint.clone())
    );
    assert_eq!(show(), first, "the same identity every time");
    use std::os::unix::fs::PermissionsExt;
    let key = config.path().join("identity-key.pem");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(first.contains(&key.display().to_string()));

    // Listed as an operator, the headless client presenting it can kick; with --no-identity
    // it is nobody in particular.
    let ops = config.path().join("operators");
    std::fs::write(&ops, format!("{fingerprint}\n")).unwrap();
    let server = Server::start(&["--operators", ops.to_str().unwrap()]);
    let mut bob = server.join("bob");
    let ca = ["--ca", certs().cert.to_str().unwrap()];
    let mut op = Headless::start(&server, "root", &ca, &config);
    op.expect("root is an operator");
    op.type_line("/kick bob");
    assert_eq!(
        bob.expect_closed().last().unwrap(),
        "ERROR kicked root kicked you"
    );
    op.expect("[!] root put bob out of the chat");
    let mut anon = Headless::start(
        &server,
        "anon",
        &[&ca[..], &["--no-identity"]].concat(),
        &config,
    );
    anon.expect("* Connected as anon");
    anon.type_line("/whois anon");
    anon.expect("anon is in the chat; the nickname is not registered; no identity");
}

/// Issue 23: a muted user's line was printed as if it had been said. The server refuses it: the
/// terminal says so, and says the line again as not sent.
#[test]
fn a_line_refused_while_muted_is_said_as_not_sent() {
    let op = common::Identity::new("op");
    let config = TempDir::new("headless-muted");
    let ops = config.path().join("operators");
    std::fs::write(&ops, format!("{}\n", op.fingerprint)).unwrap();
    let server = Server::start(&["--operators", ops.to_str().unwrap()]);
    let mut root = op.join(server.addr, "root");
    let ca = ["--ca", certs().cert.to_str().unwrap()];
    let mut eva = Headless::start(&server, "eva", &ca, &config);
    eva.expect("* Connected as eva");
    root.expect_line("JOIN eva");
    root.send("/mute eva 5");
    root.expect_line("MUTED eva 5");
    eva.type_line("nadie me oye");
    eva.expect("] <eva> nadie me oye");
    eva.expect("Error: an operator muted you");
    eva.expect("] <eva> nadie me oye (not sent)");
    eva.type_line("/quit");
    let before = root.expect_line("LEAVE eva quit");
    assert!(
        before.iter().all(|l| !l.contains("nadie")),
        "the line reached no one: {before:?}"
    );
}

/// Everything the terminal says is in the user's language, as in the window: the same words, one
/// translation (plural forms included); `/help` is the client's own list, in that language.
#[test]
fn the_terminal_speaks_the_language_asked_for() {
    let server = Server::start(&["--history", "1"]);
    let config = TempDir::new("headless-es");
    let mut bob = server.join("bob");
    bob.send("antes");
    bob.sync();
    let ca = ["--ca", certs().cert.to_str().unwrap(), "--lang", "es"];
    let mut eva = Headless::start(&server, "eva", &ca, &config);
    eva.expect("[historial] <bob> antes");
    bob.expect_line("JOIN eva");
    eva.type_line("/help");
    eva.expect("* Órdenes:");
    eva.expect("  /users (o !usuarios): quién está en el chat");
    bob.send("/msg eva hola");
    eva.expect("(privado) bob: hola");
    let seen = eva.seen.clone();
    eva.type_line("/quit");
    bob.expect_line("LEAVE eva quit");
    assert_eq!(eva.exit_code(), Some(0));
    for said in [
        "* Conectado como eva",
        // One message kept: the singular.
        "Este servidor guarda el último mensaje público y se lo muestra a quien entra",
    ] {
        assert!(
            seen.iter().any(|l| l.contains(said)),
            "{said:?} in {seen:#?}"
        );
    }
    assert!(
        !bob.sync().iter().any(|l| l.contains("help")),
        "/help is answered by the client, not sent"
    );
}

/// Without --lang, the system's language (LANG), as a terminal in Spanish has it.
#[test]
fn the_terminal_speaks_the_systems_language() {
    let server = Server::start(&[]);
    let config = TempDir::new("headless-lang");
    let out = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["--headless", "--host", "localhost", "--nick", "eva"])
        .args(["--port", &server.addr.port().to_string()])
        .arg("--config-dir")
        .arg(config.path())
        .env("LANG", "es_ES.UTF-8")
        .env_remove("LANGUAGE")
        .env_remove("LC_ALL")
        .env_remove("LC_MESSAGES")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("aún no es conocido"), "{said}");
    assert!(
        said.contains("Sin respuesta (la entrada terminó): no se confía"),
        "{said}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn show_identity_into_a_closed_pipe_does_not_panic() {
    // As `charla --show-identity | head -1` when head has gone: the output's reader is closed
    // before charla writes (it is closed at once; charla first starts and reads its identity).
    let config = TempDir::new("show-identity-pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_charla"))
        .arg("--config-dir")
        .arg(config.path())
        .arg("--show-identity")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn help_explains_every_flag_and_bad_values_are_refused_clearly() {
    let out = Command::new(env!("CARGO_BIN_EXE_charla"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--host",
        "--port",
        "--nick",
        "--ca",
        "--accept-fingerprint",
        "--password-file",
        "--connect",
        "--headless",
        "--lang",
        "--log-lines",
        "--config-dir",
        "--show-identity",
        "--no-identity",
        "--join",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_charla"))
        .args(["--log-lines", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--log-lines \"5\": expected 100 to 100000")
    );
}

/// Issue 22, the terminal: `--join '#a,#b'`, room lines as `[#room] <nick> text` (the default
/// room's and private ones as before), the room commands typed, `/rooms` one per line.
#[test]
fn rooms_are_joined_and_their_lines_marked_in_the_terminal() {
    let server = Server::start(&[]);
    let config = TempDir::new("headless-rooms");
    let mut bob = server.join("bob");
    let ca = [
        "--ca",
        certs().cert.to_str().unwrap(),
        "--join",
        "tareas,#juegos",
    ];
    let mut eva = Headless::start(&server, "eva", &ca, &config);
    eva.expect("* Connected as eva");
    // Both rooms made by eva's identity (the client makes one on first run).
    eva.expect("[#tareas] [+] User eva has joined the chat");
    eva.expect("[#juegos] [+] User eva has joined the chat");
    bob.expect_line("JOIN eva");
    // The seed's client in the default room: eva's line to it is unmarked on both sides; her
    // plain line goes to the room she joined last, which bob never sees.
    eva.type_line("/msg #general hola bob");
    bob.expect_line("MSG eva hola bob");
    eva.expect("] <eva> hola bob");
    eva.type_line("a jugar");
    eva.expect("] [#juegos] <eva> a jugar");
    bob.send("hola eva");
    let line = eva.expect("<bob> hola eva");
    assert!(!line.contains("[#"), "{line}");
    bob.send("/msg eva psst");
    eva.expect("(private) bob: psst");
    let mut ana = common::Client::connect(server.addr);
    ana.send("/cap rooms");
    ana.send("ana");
    ana.expect_line("WELCOME ana");
    ana.send("/join #tareas");
    eva.expect("[#tareas] [+] User ana has joined the chat");
    ana.send("/msg #tareas ¿los deberes?");
    eva.expect("[#tareas] <ana> ¿los deberes?");
    eva.type_line("/topic #tareas página 12");
    eva.expect("[#tareas] Topic (set by eva): página 12");
    eva.type_line("/rooms");
    eva.expect("Rooms: 3");
    eva.expect("#general: 3 people in it, open");
    eva.expect("#tareas: 2 people in it, open — página 12");
    eva.expect("#juegos: 1 person in it, open");
    eva.type_line("/part #juegos");
    eva.expect("[#juegos] [!] User eva has left the room");
    // Its plain lines go to another of its rooms now.
    eva.type_line("/join #tareas");
    eva.type_line("sigo aquí");
    ana.expect_line("#tareas MSG eva sigo aquí");
    assert!(
        !bob.sync()
            .iter()
            .any(|l| l.contains("sigo aquí") || l.contains("tareas")),
        "the seed's client sees nothing of #tareas"
    );
    eva.type_line("/quit");
    assert_eq!(eva.exit_code(), Some(0));
}

/// Rooms to join come a few at a time, so that many of them stay under the server's default
/// flood limit (bursts of 20 lines): all 24 are joined, none refused as a flood.
#[test]
fn many_rooms_are_all_joined_under_the_flood_limit() {
    let names: Vec<String> = (0..24).map(|n| format!("r{n}")).collect();
    // Rooms that exist already: joining them makes nothing (an identity may make only 10).
    let server = Server::start(&["--rooms", &names.join(",")]);
    let config = TempDir::new("headless-many-rooms");
    let rooms: Vec<String> = names.iter().map(|n| format!("#{n}")).collect();
    let join = rooms.join(",");
    let args = ["--ca", certs().cert.to_str().unwrap(), "--join", &join];
    let mut eva = Headless::start(&server, "eva", &args, &config);
    eva.expect("* Connected as eva");
    for room in &rooms {
        eva.expect(&format!("[{room}] [+] User eva has joined the chat"));
    }
    eva.type_line("/quit");
    assert_eq!(eva.exit_code(), Some(0));
}
