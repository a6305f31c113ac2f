//! Rooms over real TLS with the real server (docs/protocol.md, "Rooms"): a client of the seed in
//! the default room sees nothing of the others; private rooms; a room operator; rooms and their
//! owners across a restart; history and resume per room; the limits' codes.

use charla_test_support as common;

use common::{Client, Identity, Server, TempDir};

/// Connected with `identity` (or none), `/cap rooms` said, registered as `nick`; what came with
/// the welcome read.
fn join_rooms(server: &Server, identity: Option<&Identity>, nick: &str) -> Client {
    let mut c = match identity {
        Some(identity) => identity.connect(server.addr),
        None => Client::connect(server.addr),
    };
    c.send("/cap rooms");
    c.expect_next("CAP rooms");
    c.send(nick);
    c.expect_next(&format!("WELCOME {nick}"));
    c.sync();
    c
}

fn error(c: &mut Client) -> String {
    c.expect_prefix("ERROR ").0
}

#[test]
fn a_client_of_the_seed_sees_nothing_of_another_room() {
    let server = Server::start(&[]);
    let mut seed = server.join("bob");
    let ana = Identity::new("ana");
    let mut a = join_rooms(&server, Some(&ana), "ana");
    seed.expect_next("JOIN ana");
    a.send("/join #tareas");
    a.expect_next("#tareas JOIN ana");
    a.send("secreto de tareas");
    a.send("/action #tareas suspira");
    a.send("/topic #tareas examen el lunes");
    a.send("/msg #general hola, bob");
    let skipped = seed.expect_line("MSG ana hola, bob");
    assert!(skipped.is_empty(), "{skipped:?}");
    // What the seed's client sees of the room it does not know: nothing, ever.
    let rest = seed.sync();
    assert!(rest.is_empty(), "{rest:?}");
    seed.send("/join #tareas");
    assert_eq!(error(&mut seed), "ERROR unknown-command join");
    a.send("/quit");
    seed.expect_next("LEAVE ana quit");
}

#[test]
fn a_private_room_is_hidden_and_an_invitation_lets_one_in() {
    let server = Server::start(&[]);
    let (ana, bob) = (Identity::new("ana"), Identity::new("bob"));
    let mut a = join_rooms(&server, Some(&ana), "ana");
    let mut b = join_rooms(&server, Some(&bob), "bob");
    a.send("/create #club private");
    a.expect_line("#club JOIN ana");
    a.sync();
    b.send("/rooms");
    b.expect_next("ROOMS 1 1 1");
    b.expect_next("ROOM #general 2 open");
    b.send("/join #club");
    assert!(error(&mut b).starts_with("ERROR invite-only "));
    a.send("/invite bob #club");
    a.expect_line("INVITED bob #club");
    b.expect_next("INVITE ana #club");
    b.send("/join #club");
    b.expect_next("#club JOIN bob");
    b.expect_next("#club USERS 2 ana bob");
    a.expect_line("#club JOIN bob");
    b.send("/msg #club dentro");
    a.expect_next("#club MSG bob dentro");
}

#[test]
fn a_room_operator_puts_someone_out_of_the_room_only() {
    let server = Server::start(&[]);
    let (ana, bob) = (Identity::new("ana"), Identity::new("bob"));
    let mut a = join_rooms(&server, Some(&ana), "ana");
    let mut b = join_rooms(&server, Some(&bob), "bob");
    let mut e = join_rooms(&server, None, "eva");
    a.send("/join #tareas");
    b.send("/join #tareas");
    e.send("/join #tareas");
    e.expect_line("#tareas JOIN eva");
    a.send("/op bob #tareas");
    e.expect_line("#tareas OP bob");
    b.send("/kick #tareas eva ruido");
    e.expect_line("#tareas KICK bob eva ruido");
    a.expect_line("#tareas KICK bob eva ruido");
    // Still on the server, in #general.
    e.send("aquí sigo");
    a.expect_line("#general MSG eva aquí sigo");
    e.send("/msg #tareas hola");
    assert!(error(&mut e).starts_with("ERROR not-in-room "));
    e.send("/kick #tareas bob");
    assert!(error(&mut e).starts_with("ERROR not-room-operator "));
}

#[test]
fn rooms_and_their_owners_survive_a_restart() {
    let state = TempDir::new("rooms-state");
    let dir = state.path().to_str().unwrap().to_string();
    let ana = Identity::new("ana");
    let (bob, eva) = (Identity::new("bob"), Identity::new("eva"));
    let server = Server::start(&["--state-dir", &dir]);
    let mut a = join_rooms(&server, Some(&ana), "ana");
    a.send("/register");
    a.expect_prefix("REGISTERED ana ");
    a.send("/create #club private");
    a.send("/topic #club los jueves");
    a.send("/part #club");
    a.expect_line("#club LEAVE ana part");
    // An owner without a registered nickname: its room lives while someone is in it.
    let mut b = join_rooms(&server, Some(&bob), "bob");
    b.send("/join #charla");
    b.expect_line("#charla JOIN bob");
    let mut e = join_rooms(&server, Some(&eva), "eva");
    e.send("/join #efimera");
    e.expect_line("#efimera JOIN eva");
    e.send("/part #efimera");
    e.expect_line("#efimera LEAVE eva part");
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    let rooms = std::fs::read_to_string(state.path().join("rooms")).unwrap();
    assert!(rooms.contains("room #club private "), "{rooms}");
    assert!(rooms.contains("room #charla open "), "{rooms}");
    assert!(!rooms.contains("#efimera"), "{rooms}");

    let server = Server::start(&["--state-dir", &dir]);
    let mut a = join_rooms(&server, Some(&ana), "ana");
    a.send("/rooms");
    a.expect_next("ROOMS 3 1 1");
    let lines = [a.line(), a.line(), a.line()];
    assert!(
        lines.contains(&"ROOM #club 0 private los jueves".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"ROOM #charla 0 open".to_string()),
        "{lines:?}"
    );
    // Still its owner's: private, and run by ana.
    let mut e = join_rooms(&server, Some(&eva), "eva");
    e.send("/join #club");
    assert!(error(&mut e).starts_with("ERROR invite-only "));
    a.send("/join #club");
    a.expect_line("#club OP ana");
}

#[test]
fn each_room_keeps_its_history_and_a_session_comes_back_to_its_rooms() {
    let history = TempDir::new("rooms-history");
    let file = history.path().join("history");
    let server = Server::start(&["--history-file", file.to_str().unwrap()]);
    let ana = Identity::new("ana");
    let mut a = ana.connect(server.addr);
    a.send("/cap rooms");
    a.send("/resume");
    a.send("ana");
    let (session, _) = a.expect_prefix("SESSION ");
    let token = session.split(' ').nth(1).unwrap().to_string();
    let last = session.split(' ').nth(2).unwrap().to_string();
    a.send("/join #tareas");
    a.expect_line("#tareas JOIN ana");
    let mut b = join_rooms(&server, Some(&Identity::new("bob")), "bob");
    b.send("/join #tareas");
    a.expect_line("#tareas JOIN bob");
    // ana's connection drops; each room goes on without her.
    a.reset();
    b.expect_line("#tareas LEAVE ana lost");
    b.send("en tareas");
    b.send("/msg #general en general");
    b.sync();
    let mut back = ana.connect(server.addr);
    back.send("/cap rooms");
    back.send(&format!("/resume {token} {last}"));
    back.send("ana");
    let (_, before) = back.expect_prefix("NOTICE history kept:");
    let replayed: Vec<&String> = before
        .iter()
        .filter(|l| l.starts_with("HISTORY "))
        .collect();
    assert_eq!(replayed.len(), 2, "{before:?}");
    assert!(
        replayed
            .iter()
            .any(|l| l.ends_with(" #general MSG bob en general")),
        "{before:?}"
    );
    assert!(
        replayed
            .iter()
            .any(|l| l.ends_with(" #tareas MSG bob en tareas")),
        "{before:?}"
    );
    b.expect_line("#tareas JOIN ana");
    // After a restart each room's history is its own.
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit().success());
    let server = Server::start(&["--history-file", file.to_str().unwrap()]);
    let mut seed = server.connect();
    seed.send("carla");
    let (_, before) = seed.expect_prefix("NOTICE history kept:");
    let replayed: Vec<&String> = before
        .iter()
        .filter(|l| l.starts_with("HISTORY "))
        .collect();
    assert_eq!(replayed.len(), 1, "{before:?}");
    assert!(replayed[0].ends_with("Z MSG bob en general"), "{before:?}");
}

#[test]
fn the_room_limits_answer_their_codes() {
    let server = Server::start(&[
        "--max-rooms",
        "4",
        "--max-rooms-per-identity",
        "1",
        "--max-rooms-per-user",
        "2",
        "--rooms",
        "tareas",
    ]);
    let ana = Identity::new("ana");
    let mut a = join_rooms(&server, Some(&ana), "ana");
    a.send("/join #tareas");
    a.expect_line("#tareas JOIN ana");
    a.send("/join #otra");
    assert!(error(&mut a).starts_with("ERROR too-many-rooms you are in 2 rooms already"));
    a.send("/part #tareas");
    a.send("/join #mia");
    a.expect_line("#mia JOIN ana");
    a.send("/part #general");
    a.send("/create #segunda");
    assert!(error(&mut a).starts_with("ERROR too-many-rooms one identity owns at most 1"));
    let mut b = join_rooms(&server, Some(&Identity::new("bob")), "bob");
    b.send("/join #mas");
    b.expect_line("#mas JOIN bob");
    b.send("/part #general");
    b.send("/join #otra-mas");
    assert!(error(&mut b).starts_with("ERROR too-many-rooms the server holds at most 4"));
    b.send("/join sin-almohadilla");
    assert!(error(&mut b).starts_with("ERROR bad-room-name "));
    b.send("/users #nada");
    assert!(error(&mut b).starts_with("ERROR no-such-room "));
    let mut plain = join_rooms(&server, None, "eva");
    plain.send("/create #nueva");
    assert!(error(&mut plain).starts_with("ERROR no-identity "));
}

/// Everyone in many rooms together hanging up at once: each departure says LEAVE in each of its
/// rooms, and a member served from another room's log gets a copy in its own queue — with 1,000
/// people in the same 50 rooms leaving, 1.5 GB within a few passes, the server's memory at 550
/// MiB with a 32 MiB --max-queue-total. The total is kept as the copies are made: the one who
/// stays gets every LEAVE and is not shed, and the server's peak grows by ~3.4 MiB. (Failed before: the
/// peak grew by ~17 MiB here.)
#[test]
fn a_mass_departure_from_many_rooms_stays_within_the_total_and_the_others_get_every_leave() {
    common::raise_fd_limit();
    const LEAVERS: usize = 200;
    const ROOMS: usize = 40;
    let rooms: Vec<String> = (0..ROOMS).map(|n| format!("#r{n}")).collect();
    let server = Server::start(&[
        "--flood-rate",
        "0",
        "--max-connects-per-ip",
        "0",
        "--max-queue-total",
        "2M",
        "--rooms",
        &rooms.join(","),
    ]);
    let mut stays = join_rooms(&server, None, "stays");
    for room in &rooms {
        stays.send(&format!("/join {room}"));
    }
    stays.sync();
    let leavers: Vec<Client> = (0..LEAVERS)
        .map(|n| {
            let mut c = join_rooms(&server, None, &format!("u{n}"));
            for room in &rooms {
                c.send(&format!("/join {room}"));
            }
            c.sync();
            // What the later ones' joins bring it waits unread in its socket: it hangs up with
            // a reset, as a client that is killed does.
            c
        })
        .collect();
    stays.sync();
    let before = common::status_kib(server.pid(), "VmHWM:");
    drop(leavers);
    let mut left = std::collections::HashSet::new();
    while left.len() < LEAVERS * (ROOMS + 1) {
        let line = stays.line();
        let mut words = line.split(' ');
        if let (Some(room), Some("LEAVE"), Some(nick)) = (words.next(), words.next(), words.next())
        {
            assert!(
                left.insert((room.to_string(), nick.to_string())),
                "twice: {line}"
            );
        }
    }
    // Still in, and alone in its rooms.
    stays.send("/users #r0");
    stays.expect_next("#r0 USERS 1 stays");
    let grown = common::status_kib(server.pid(), "VmHWM:").saturating_sub(before);
    assert!(
        grown < 10 * 1024,
        "the server's peak grew by {grown} KiB as {LEAVERS} clients in {ROOMS} rooms left"
    );
}
