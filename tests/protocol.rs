//! Protocol v1 over real TLS against the real server binary: one test per line of the spec.

use charla_test_support as common;

use common::{Client, Server};

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn registration_gives_welcome_user_list_and_join() {
    let server = Server::start(&[]);
    let mut ana = server.connect();
    ana.send("ana");
    ana.expect_next("WELCOME ana");
    assert_eq!(ana.read_user_list(), vec!["ana"]);
    let kept = "NOTICE history kept: 100 public messages in memory, shown to whoever joins";
    ana.expect_next(kept);

    let mut bob = server.connect();
    bob.send("bob");
    bob.expect_next("WELCOME bob");
    assert_eq!(sorted(bob.read_user_list()), vec!["ana", "bob"]);
    bob.expect_next(kept);
    ana.expect_next("JOIN bob");
    assert!(server.wait_log("registered bob").contains("127.0.0.1"));
}

#[test]
fn crlf_line_endings_are_accepted() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    let mut bob = server.connect();
    bob.send_raw(b"bob\r\nhola\r\n");
    bob.expect_next("WELCOME bob");
    ana.expect_next("JOIN bob");
    ana.expect_next("MSG bob hola");
}

#[test]
fn invalid_nick_is_refused_and_another_may_be_tried() {
    let server = Server::start(&[]);
    let mut c = server.connect();
    for bad in ["ana maría", &"x".repeat(33), "a/b", "/users"] {
        c.send(bad);
        let (line, _) = c.expect_prefix("ERROR ");
        assert!(line.starts_with("ERROR nick-invalid "), "{bad:?}: {line}");
    }
    c.send("/nick");
    let line = c.line();
    assert!(line.starts_with("ERROR missing-argument "), "{line}");
    for command in ["!usuarios", "/users", "/me hola"] {
        c.send(command);
        assert_eq!(
            c.line(),
            "ERROR nick-invalid choose a nickname first: send it alone on a line"
        );
    }
    c.send("/nick maría_2.0-x");
    c.expect_next("WELCOME maría_2.0-x");
}

#[test]
fn nicknames_cannot_pass_for_someone_else() {
    let server = Server::start(&[]);
    let _ana = server.join("ana");
    let mut c = server.connect();
    // An invisible Hangul filler after "ana", and a Cyrillic "а" among Latin letters.
    for fake in ["ana\u{3164}", "\u{3164}", "\u{430}na"] {
        c.send(fake);
        let line = c.line();
        assert!(line.starts_with("ERROR nick-invalid "), "{fake:?}: {line}");
    }
    // Greek capitals that look like "ANA": the same name as "ana".
    c.send("\u{391}\u{39D}\u{391}");
    let line = c.line();
    assert!(line.starts_with("ERROR nick-taken "), "{line}");
    // A name wholly in another script is welcome.
    c.send("анна");
    c.expect_next("WELCOME анна");
}

#[test]
fn taken_nick_is_refused_case_insensitively() {
    let server = Server::start(&[]);
    let _ana = server.join("Ana");
    let mut c = server.connect();
    c.send("aNA");
    let line = c.line();
    assert!(line.starts_with("ERROR nick-taken "), "{line}");
    c.send("ana2");
    c.expect_next("WELCOME ana2");
}

#[test]
fn public_message_reaches_others_but_is_not_echoed() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    let mut bob = server.join("bob");
    let mut eva = server.join("eva");
    ana.expect_line("JOIN eva");
    bob.expect_line("JOIN eva");
    ana.send("hola a todos");
    bob.expect_next("MSG ana hola a todos");
    eva.expect_next("MSG ana hola a todos");
    assert_eq!(ana.sync(), Vec::<String>::new(), "the sender gets no echo");
}

#[test]
fn empty_lines_are_ignored_and_control_characters_removed() {
    let server = Server::start(&[]);
    let (mut ana, mut bob) = server.pair();
    ana.send_raw(b"\n   \n\r\na\x1b[31mb\tc\x07\n");
    bob.expect_next("MSG ana a[31mb\tc");
    assert!(ana.sync().is_empty(), "empty lines get no answer");
    // Line and paragraph separators would show a fake second line under another name.
    ana.send("hola\u{2028}[12:00] <bob> dame tu clave\u{2029}");
    bob.expect_next("MSG ana hola[12:00] <bob> dame tu clave");
    ana.send("/me se va\u{2028}LEAVE ana");
    bob.expect_next("ACTION ana se vaLEAVE ana");
}

#[test]
fn double_slash_sends_a_line_starting_with_slash() {
    let server = Server::start(&[]);
    let (mut ana, mut bob) = server.pair();
    ana.send("//tmp está lleno");
    bob.expect_next("MSG ana /tmp está lleno");
}

#[test]
fn users_and_usuarios_list_everyone() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    let _bob = server.join("bob");
    ana.expect_next("JOIN bob");
    ana.send("/users");
    assert_eq!(sorted(ana.read_user_list()), vec!["ana", "bob"]);
    ana.send("!usuarios");
    assert_eq!(sorted(ana.read_user_list()), vec!["ana", "bob"]);
    ana.send("!USUARIOS");
    assert_eq!(sorted(ana.read_user_list()), vec!["ana", "bob"]);
}

#[test]
fn long_user_list_continues_in_users_plus_lines() {
    common::raise_fd_limit();
    let server = Server::start(&["--flood-rate", "0", "--max-connects-per-ip", "0"]);
    // 150 nicks of 32 characters do not fit in one 4096-byte line.
    let nicks: Vec<String> = (0..150)
        .map(|i| format!("{i:03}{}", "n".repeat(29)))
        .collect();
    let clients: Vec<Client> = nicks.iter().map(|n| server.join(n)).collect();
    let mut last = server.join("last");
    last.send("/users");
    let first = last.line();
    assert!(
        first.starts_with("USERS 151 ") && first.len() < 4096,
        "{}",
        &first[..40]
    );
    let mut seen: Vec<String> = first.split(' ').skip(2).map(String::from).collect();
    let mut continuation_lines = 0;
    while seen.len() < 151 {
        let more = last.line();
        assert!(more.starts_with("USERS+ ") && more.len() < 4096);
        continuation_lines += 1;
        seen.extend(more.split(' ').skip(1).map(String::from));
    }
    assert!(continuation_lines >= 1);
    let mut want = nicks.clone();
    want.push("last".into());
    assert_eq!(sorted(seen), sorted(want));
    drop(clients);
}

#[test]
fn private_message_reaches_only_its_target() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    let mut bob = server.join("bob");
    let mut eva = server.join("eva");
    ana.send("/msg BOB un secreto");
    bob.expect_line("PRIVMSG ana un secreto");
    assert!(!eva.sync().iter().any(|l| l.contains("secreto")));
    ana.send("/msg nadie hola");
    ana.expect_line("ERROR no-such-user nadie");
    ana.send("/msg bob");
    let (line, _) = ana.expect_prefix("ERROR ");
    assert!(line.starts_with("ERROR missing-argument "), "{line}");
}

#[test]
fn me_sends_an_action() {
    let server = Server::start(&[]);
    let (mut ana, mut bob) = server.pair();
    ana.send("/me saluda");
    bob.expect_next("ACTION ana saluda");
}

#[test]
fn nick_change_is_announced_and_checked() {
    let server = Server::start(&[]);
    let (mut ana, mut bob) = server.pair();
    ana.send("/nick anita");
    bob.expect_next("NICK ana anita");
    ana.expect_next("NICK ana anita");
    ana.send("/nick BOB");
    assert!(ana.line().starts_with("ERROR nick-taken "));
    ana.send("/nick no vale");
    assert!(ana.line().starts_with("ERROR nick-invalid "));
    ana.send("/nick anita");
    ana.expect_next("NOTICE your nickname is already anita");
    // The old name is free again; the new one reaches the right person.
    bob.send("/msg anita hola");
    ana.expect_next("PRIVMSG bob hola");
    bob.send("/msg ana hola");
    bob.expect_next("ERROR no-such-user ana");
}

#[test]
fn ping_gets_pong_with_its_token() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    ana.send("/ping");
    ana.expect_next("PONG");
    ana.send("/ping 12345");
    ana.expect_next("PONG 12345");
}

#[test]
fn quit_closes_and_tells_others_the_reason() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    let mut bob = server.join("bob");
    let mut eva = server.join("eva");
    ana.expect_line("JOIN eva");
    bob.expect_line("JOIN eva");
    bob.send("/quit hasta mañana");
    assert!(bob.expect_closed().is_empty());
    ana.expect_next("LEAVE bob quit hasta mañana");
    eva.expect_next("LEAVE bob quit hasta mañana");
    eva.send("/quit");
    ana.expect_next("LEAVE eva quit");
    assert!(eva.expect_closed().is_empty());
}

#[test]
fn help_lists_the_commands() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    ana.send("/help");
    let lines = ana.sync();
    assert!(lines.iter().all(|l| l.starts_with("NOTICE ")));
    let text = lines.join("\n");
    for cmd in [
        "/users",
        "/msg",
        "/me",
        "/nick",
        "/ping",
        "/quit",
        "/help",
        "!usuarios",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from /help");
    }
}

#[test]
fn unknown_command_is_an_error() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    ana.send("/frobnicate now");
    ana.expect_next("ERROR unknown-command frobnicate");
    ana.send("/");
    ana.expect_next("ERROR unknown-command /");
}

#[test]
fn disconnect_without_quit_tells_others() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    let bob = server.join("bob");
    ana.expect_next("JOIN bob");
    drop(bob); // closes the TCP connection without /quit (and without close_notify)
    let (line, _) = ana.expect_prefix("LEAVE bob");
    assert!(line.len() > "LEAVE bob ".len(), "a reason is given: {line}");
    server.wait_log("left bob");
}

#[test]
fn connection_reset_tells_others() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    let bob = server.join("bob");
    ana.expect_next("JOIN bob");
    // SO_LINGER with a zero timeout makes close() send a TCP reset.
    bob.reset();
    let (line, _) = ana.expect_prefix("LEAVE bob ");
    assert!(
        line == "LEAVE bob lost" || line == "LEAVE bob closed",
        "{line}"
    );
    ana.send("/users");
    assert_eq!(ana.read_user_list(), vec!["ana"]);
}

#[test]
fn sigterm_notifies_everyone_and_exits_zero() {
    let server = Server::start(&[]);
    let (mut ana, mut bob) = server.pair();
    server.signal(libc::SIGTERM);
    for c in [&mut ana, &mut bob] {
        let lines = c.expect_closed();
        assert_eq!(
            lines.last().map(String::as_str),
            Some("NOTICE server shutting down"),
            "{lines:?}"
        );
    }
    let status = server.wait_exit();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigint_also_shuts_down_cleanly() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    server.signal(libc::SIGINT);
    assert_eq!(ana.expect_closed(), vec!["NOTICE server shutting down"]);
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn message_text_is_never_logged() {
    let server = Server::start(&[]);
    let (mut ana, mut bob) = server.pair();
    ana.send("texto-secreto-1");
    ana.send("/msg bob texto-secreto-2");
    ana.send("/me texto-secreto-3");
    bob.expect_next("MSG ana texto-secreto-1");
    bob.expect_next("PRIVMSG ana texto-secreto-2");
    bob.expect_next("ACTION ana texto-secreto-3");
    bob.send("/quit texto-secreto-4");
    ana.expect_line("LEAVE bob quit texto-secreto-4");
    server.wait_log("left bob");
    assert!(
        !server.log_text().contains("secreto"),
        "{}",
        server.log_text()
    );
}

#[test]
fn batch_delay_still_delivers_everything_in_order() {
    let server = Server::start(&["--batch-delay", "20", "--flood-rate", "0"]);
    let (mut ana, mut bob) = server.pair();
    let mut carl = server.join("carl");
    ana.expect_next("JOIN carl");
    bob.expect_next("JOIN carl");
    for i in 0..200 {
        ana.send(&format!("línea {i}"));
        if i % 50 == 0 {
            carl.send(&format!("carl {i}"));
        }
    }
    // Bob hears both, each in the order it was said.
    let (mut next_ana, mut next_carl) = (0, 0);
    while next_ana < 200 || next_carl < 200 {
        let line = bob.line();
        if let Some(n) = line.strip_prefix("MSG ana línea ") {
            assert_eq!(n, next_ana.to_string(), "{line}");
            next_ana += 1;
        } else if let Some(n) = line.strip_prefix("MSG carl carl ") {
            assert_eq!(n, next_carl.to_string(), "{line}");
            next_carl += 50;
        } else {
            panic!("bob got {line:?}");
        }
    }
    for i in (0..200).step_by(50) {
        ana.expect_next(&format!("MSG carl carl {i}"));
    }
}

#[test]
fn private_lines_keep_their_place_among_room_lines() {
    let server = Server::start(&["--flood-rate", "0"]);
    let (mut ana, mut bob) = server.pair();
    let mut carl = server.join("carl");
    ana.expect_next("JOIN carl");
    bob.expect_next("JOIN carl");
    // One write, so that the server most likely handles it all in one pass: room lines and
    // private ones for the same people, interleaved.
    ana.send_raw(b"uno\n/msg bob dos\ntres\n/users\n/msg carl cuatro\ncinco\n/ping seis\n");
    bob.expect_next("MSG ana uno");
    bob.expect_next("PRIVMSG ana dos");
    bob.expect_next("MSG ana tres");
    bob.expect_next("MSG ana cinco");
    carl.expect_next("MSG ana uno");
    carl.expect_next("MSG ana tres");
    carl.expect_next("PRIVMSG ana cuatro");
    carl.expect_next("MSG ana cinco");
    // Ana hears none of her own lines, only her replies, in order.
    let users = ana.read_user_list();
    assert_eq!(users.len(), 3, "{users:?}");
    ana.expect_next("PONG seis");
}
