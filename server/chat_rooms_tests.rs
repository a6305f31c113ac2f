//! Rooms (docs/protocol.md, "Rooms"), through the chat core.

use super::*;

const ANA: &str = "AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA";
const BOB: &str = "BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB:BB";

/// Registered as `nick` after `/cap rooms`, with `identity`; its lines so far read.
fn join_rooms(h: &mut Harness, id: ConnId, nick: &str, identity: Option<&str>) -> Vec<String> {
    h.connect_as(id, ANY, identity);
    h.send(id, "/cap rooms");
    h.send(id, nick);
    let lines = h.lines(id);
    assert_eq!(
        lines[..2],
        ["CAP rooms".to_string(), format!("WELCOME {nick}")]
    );
    lines
}

/// As [`join_rooms`], after `/resume`: returns the id of the newest line from `SESSION`.
fn join_rooms_with_session(h: &mut Harness, id: ConnId, nick: &str, identity: &str) -> u64 {
    h.connect_as(id, ANY, Some(identity));
    h.send(id, "/cap rooms");
    h.send(id, "/resume");
    h.send(id, nick);
    let lines = h.lines(id);
    let session = lines
        .iter()
        .find_map(|l| l.strip_prefix("SESSION "))
        .unwrap_or_else(|| panic!("no SESSION line: {lines:?}"));
    session.split_once(' ').unwrap().1.parse().unwrap()
}

#[test]
fn a_client_that_understands_rooms_sees_the_default_room_named() {
    let mut h = Harness::new();
    h.join(1, "bob");
    let lines = join_rooms(&mut h, 2, "ana", None);
    assert_eq!(lines[2], "#general USERS 2 bob ana");
    assert_eq!(h.lines(1), ["JOIN ana"]);
    h.send(1, "hola");
    assert_eq!(h.lines(2), ["#general MSG bob hola"]);
    h.send(2, "buenas");
    assert_eq!(h.lines(1), ["MSG ana buenas"]);
    h.send(2, "/users");
    assert_eq!(h.lines(2), ["#general USERS 2 bob ana"]);
    h.send(1, "/nick roberto");
    assert_eq!(h.lines(2), ["#general NICK bob roberto"]);
    assert_eq!(h.lines(1), ["NICK bob roberto"]);
    // A capability the server does not know is not taken.
    h.connect(3);
    h.send(3, "/cap rooms telepathy");
    assert_eq!(h.lines(3), ["CAP rooms"]);
    h.send(3, "/cap telepathy");
    assert_eq!(h.lines(3), ["CAP"]);
}

#[test]
fn a_client_of_the_seed_sees_nothing_of_other_rooms() {
    let mut h = Harness::new();
    h.join(1, "bob");
    join_rooms(&mut h, 2, "ana", Some(ANA));
    h.lines(1);
    h.send(2, "/join #tareas");
    let lines = h.lines(2);
    assert_eq!(
        lines,
        [
            "#tareas JOIN ana",
            "#tareas USERS 1 ana",
            "#tareas OP ana",
            "#tareas TOPIC -"
        ]
    );
    // Its plain lines go to the room it joined last; /msg #room says where.
    h.send(2, "deberes para el lunes");
    h.send(2, "/action #tareas suspira");
    h.send(2, "/msg #general hola a todos");
    assert_eq!(h.lines(1), ["MSG ana hola a todos"]);
    // The seed's commands are as before; the room commands unknown to it.
    h.send(1, "/join #tareas");
    assert_eq!(h.lines(1), ["ERROR unknown-command join"]);
    h.send(1, "/rooms");
    assert_eq!(h.lines(1), ["ERROR unknown-command rooms"]);
    // Another room is no one to it: not even told that it exists.
    h.send(1, "/msg #tareas psst");
    assert_eq!(h.lines(1), ["ERROR no-such-user #tareas"]);
    h.send(1, "/msg #general por aquí");
    assert_eq!(h.lines(2), ["#general MSG bob por aquí"]);
    // Lines only rooms have never reach it; a /part, as a plain leaving.
    h.send(2, "/topic #general hola");
    assert!(h.lines(2)[0].starts_with("ERROR not-room-operator "));
    h.send(2, "/invite bob #tareas");
    assert_eq!(
        h.lines(2),
        ["ERROR no-such-user bob"],
        "it could not join anyway"
    );
    h.send(2, "/part #general me voy a tareas");
    assert_eq!(h.lines(1), ["LEAVE ana quit"]);
    h.send(2, "/join #general");
    assert_eq!(h.lines(1), ["JOIN ana"]);
    // Leaving: the seed's client hears of it once, from the default room.
    h.send(2, "/quit adiós");
    assert_eq!(h.lines(1), ["LEAVE ana quit adiós"]);
}

#[test]
fn each_room_hears_only_its_own_lines_and_its_members_come_and_go() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "ana", Some(ANA));
    join_rooms(&mut h, 2, "bob", Some(BOB));
    join_rooms(&mut h, 3, "eva", None);
    h.lines(1);
    h.lines(2);
    h.send(1, "/join #tareas");
    h.lines(1);
    h.send(2, "/join #Tareas");
    let lines = h.lines(2);
    assert_eq!(lines[0], "#tareas JOIN bob");
    assert_eq!(lines[1], "#tareas USERS 2 ana bob");
    assert_eq!(h.lines(1), ["#tareas JOIN bob"]);
    h.send(1, "uno");
    h.send(1, "/msg #general dos");
    assert_eq!(h.lines(2), ["#tareas MSG ana uno", "#general MSG ana dos"]);
    assert_eq!(h.lines(3), ["#general MSG ana dos"]);
    h.send(2, "/part #tareas me voy");
    assert_eq!(h.lines(1), ["#tareas LEAVE bob part me voy"]);
    assert_eq!(h.lines(2), ["#tareas LEAVE bob part me voy"]);
    // A plain line of bob's goes to a room it is still in.
    h.send(2, "sigo aquí");
    assert_eq!(h.lines(1), ["#general MSG bob sigo aquí"]);
    h.send(2, "/part #tareas");
    assert!(h.lines(2)[0].starts_with("ERROR not-in-room you are not in #tareas"));
    // A nickname change and a quit reach every room the user is in, once per room.
    h.send(1, "/nick anita");
    assert_eq!(h.lines(2), ["#general NICK ana anita"]);
    let own = h.lines(1);
    assert_eq!(own, ["#general NICK ana anita", "#tareas NICK ana anita"]);
    h.send(1, "/quit");
    assert_eq!(
        h.lines(3),
        [
            "#general MSG bob sigo aquí",
            "#general NICK ana anita",
            "#general LEAVE anita quit"
        ]
    );
}

#[test]
fn rooms_are_made_by_identities_and_an_unregistered_owners_room_goes_with_its_last_member() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "eva", None);
    h.send(1, "/join #nueva");
    assert!(h.lines(1)[0].starts_with("ERROR no-identity making a room needs an identity"));
    h.send(1, "/join nueva");
    assert!(h.lines(1)[0].starts_with("ERROR bad-room-name a room's name starts with #"));
    h.send(1, "/join #a\u{3164}");
    assert!(h.lines(1)[0].starts_with("ERROR bad-room-name "));
    join_rooms(&mut h, 2, "ana", Some(ANA));
    h.lines(1);
    h.send(2, "/create #club open");
    assert_eq!(h.lines(2)[0], "#club JOIN ana");
    h.send(2, "/create #CLUB");
    assert!(h.lines(2)[0].starts_with("ERROR room-exists "));
    h.send(1, "/join #club");
    assert_eq!(h.lines(1)[0], "#club JOIN eva");
    h.send(2, "/part #club");
    h.send(1, "/part #club");
    h.lines(1);
    h.send(1, "/join #club");
    assert!(
        h.lines(1)[0].starts_with("ERROR no-identity "),
        "gone with its last member: eva would have to make it"
    );
}

#[test]
fn a_private_room_is_hidden_from_outsiders_and_an_invitation_lets_one_in() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "ana", Some(ANA));
    join_rooms(&mut h, 2, "bob", Some(BOB));
    h.send(1, "/create #organizadores private");
    h.send(1, "/topic #organizadores reunión el jueves");
    h.lines(1);
    h.send(2, "/rooms");
    assert_eq!(h.lines(2), ["ROOMS 1 1 1", "ROOM #general 2 open"]);
    h.send(1, "/rooms");
    assert_eq!(
        h.lines(1),
        [
            "ROOMS 2 1 1",
            "ROOM #general 2 open",
            "ROOM #organizadores 1 private reunión el jueves"
        ]
    );
    h.send(2, "/users #organizadores");
    assert_eq!(
        h.lines(2),
        ["ERROR no-such-room there is no room #organizadores"]
    );
    h.send(2, "/join #organizadores");
    assert!(h.lines(2)[0].starts_with("ERROR invite-only "));
    h.send(2, "/invite ana #organizadores");
    assert_eq!(
        h.lines(2),
        ["ERROR no-such-room there is no room #organizadores"]
    );
    h.send(1, "/invite bob #organizadores");
    assert_eq!(h.lines(1), ["INVITED bob #organizadores"]);
    assert_eq!(h.lines(2), ["INVITE ana #organizadores"]);
    h.send(2, "/join #organizadores");
    let lines = h.lines(2);
    assert_eq!(lines[0], "#organizadores JOIN bob");
    assert!(
        lines.contains(&"#organizadores TOPIC ana reunión el jueves".to_string()),
        "{lines:?}"
    );
    h.send(2, "/part #organizadores");
    h.lines(2);
    h.send(2, "/join #organizadores");
    assert!(
        h.lines(2)[0].starts_with("ERROR invite-only "),
        "an invitation is used once"
    );
}

#[test]
fn a_room_operator_runs_the_room_and_only_the_room() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "ana", Some(ANA));
    join_rooms(&mut h, 2, "bob", Some(BOB));
    join_rooms(&mut h, 3, "eva", None);
    h.send(1, "/join #tareas");
    h.send(2, "/join #tareas");
    h.send(3, "/join #tareas");
    h.lines(1);
    h.lines(2);
    h.lines(3);
    h.send(2, "/kick #tareas eva");
    let lines = h.lines(2);
    assert!(
        lines[0].starts_with("ERROR not-room-operator "),
        "{lines:?}"
    );
    h.send(2, "/op eva #tareas");
    assert!(h.lines(2)[0].starts_with("ERROR not-room-operator "));
    h.send(1, "/op eva #tareas");
    assert!(h.lines(1)[0].starts_with("ERROR no-identity eva has no identity"));
    h.send(1, "/op bob #tareas");
    assert_eq!(h.lines(3), ["#tareas OP bob"]);
    h.send(2, "/topic #tareas deberes");
    assert_eq!(h.lines(3), ["#tareas TOPIC bob deberes"]);
    h.send(2, "/kick #tareas eva basta");
    assert_eq!(h.lines(3), ["#tareas KICK bob eva basta"]);
    assert_eq!(
        h.lines(1),
        [
            "#tareas OP bob",
            "#tareas TOPIC bob deberes",
            "#tareas KICK bob eva basta"
        ]
    );
    // Out of the room, still on the server.
    h.send(3, "sigo");
    assert_eq!(h.lines(1), ["#general MSG eva sigo"]);
    assert!(h.closes().is_empty());
    // The owner cannot be put out by the operators it made.
    h.lines(2);
    h.send(2, "/kick #tareas ana");
    let lines = h.lines(2);
    assert!(lines[0].starts_with("ERROR is-operator "), "{lines:?}");
    h.send(2, "/ban #tareas eva 10 otra vez");
    let lines = h.lines(2);
    assert!(
        lines[0].starts_with("#tareas BANNED address 192.0.2.1 "),
        "{lines:?}"
    );
    assert!(lines[0].ends_with(" 0 eva"), "{lines:?}");
    h.send(3, "/join #tareas");
    assert!(h.lines(3)[0].starts_with("ERROR banned-from-room you are banned from #tareas"));
    h.send(2, "/unban #tareas eva");
    assert_eq!(h.lines(2), ["#tareas UNBANNED 1"]);
    h.send(3, "/join #tareas");
    assert_eq!(h.lines(3)[0], "#tareas JOIN eva");
}

#[test]
fn the_room_limits_answer_their_codes() {
    let mut h = Harness::with(|cfg| {
        cfg.max_rooms = 4;
        cfg.max_rooms_per_identity = 1;
        cfg.max_rooms_per_user = 2;
    });
    join_rooms(&mut h, 1, "ana", Some(ANA));
    join_rooms(&mut h, 2, "bob", Some(BOB));
    h.send(1, "/join #uno");
    h.lines(1);
    h.send(1, "/join #dos");
    assert!(h.lines(1)[0].starts_with("ERROR too-many-rooms you are in 2 rooms already"));
    h.send(2, "/part #general");
    h.send(2, "/join #dos");
    h.lines(2);
    h.send(2, "/create #tres");
    let lines = h.lines(2);
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("ERROR too-many-rooms one identity owns at most 1"),
        "{lines:?}"
    );
    join_rooms(&mut h, 3, "eva", Some("EE:EE"));
    h.send(3, "/join #cuatro");
    assert_eq!(h.lines(3)[0], "#cuatro JOIN eva");
    join_rooms(&mut h, 4, "fede", Some("FF:FF"));
    h.send(4, "/join #cinco");
    assert!(h.lines(4)[0].starts_with("ERROR too-many-rooms the server holds at most 4 rooms"));
}

#[test]
fn each_room_replays_its_own_history_to_whoever_joins() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "ana", Some(ANA));
    h.send(1, "en general");
    h.send(1, "/join #tareas");
    h.send(1, "en tareas");
    h.lines(1);
    h.connect(2);
    h.send(2, "bob");
    h.connect(3);
    h.send(3, "/cap rooms");
    h.send(3, "/resume");
    h.send(3, "eva");
    let history = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.starts_with("HISTORY "))
            .collect()
    };
    let all = h.lines(2);
    let bob = history(all.clone());
    assert_eq!(bob.len(), 1, "{all:?}");
    assert!(bob[0].ends_with("Z MSG ana en general"), "{bob:?}");
    let eva = history(h.lines(3));
    assert_eq!(eva.len(), 1);
    assert!(eva[0].contains(" #general MSG ana en general"), "{eva:?}");
    assert!(
        eva[0].split(' ').nth(2).unwrap().starts_with('@'),
        "{eva:?}"
    );
    h.send(3, "/join #tareas");
    let lines = h.lines(3);
    let eva = history(lines.clone());
    assert_eq!(eva.len(), 1, "{lines:?}");
    assert!(eva[0].ends_with(" #tareas MSG ana en tareas"), "{eva:?}");
}

#[test]
fn coming_back_to_a_session_enters_its_rooms_again_with_what_each_missed() {
    let mut h = Harness::new();
    let last = join_rooms_with_session(&mut h, 1, "ana", ANA);
    h.send(1, "/join #tareas");
    h.send(1, "/part #general");
    join_rooms(&mut h, 2, "bob", Some(BOB));
    h.send(2, "/join #tareas");
    h.lines(1);
    h.lines(2);
    drop_connection(&mut h, 1);
    assert_eq!(h.lines(2), ["#tareas LEAVE ana lost"]);
    h.send(2, "en tareas");
    h.send(2, "/msg #general en general");
    h.connect_as(3, ANY, Some(ANA));
    h.send(3, "/cap rooms");
    h.send(3, &format!("/resume tok1 {last}"));
    h.send(3, "ana");
    let lines = h.lines(3);
    assert!(
        lines.contains(&"#tareas USERS 2 ana bob".to_string()),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("#general")),
        "it had left #general: {lines:?}"
    );
    let replayed: Vec<&String> = lines.iter().filter(|l| l.starts_with("HISTORY ")).collect();
    assert_eq!(replayed.len(), 1, "{lines:?}");
    assert!(
        replayed[0].ends_with(" #tareas MSG bob en tareas"),
        "{lines:?}"
    );
    assert_eq!(h.lines(2), ["#tareas JOIN ana", "#tareas OP ana"]);
    h.send(3, "de vuelta");
    assert_eq!(h.lines(2), ["#tareas MSG ana de vuelta"]);
}

#[test]
fn a_room_mute_silences_someone_in_that_room_only() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "ana", Some(ANA));
    join_rooms(&mut h, 2, "bob", Some(BOB));
    h.send(1, "/join #tareas");
    h.send(2, "/join #tareas");
    h.lines(1);
    h.lines(2);
    h.send(2, "/mute #tareas ana");
    assert!(h.lines(2)[0].starts_with("ERROR not-room-operator "));
    h.send(1, "/mute #tareas bob 10");
    assert_eq!(h.lines(1), ["#tareas MUTED bob 10"]);
    h.send(2, "/msg #tareas spam");
    assert!(h.lines(2)[0]
        .starts_with("ERROR muted the operators of #tareas muted you there for 10 more minutes"));
    h.send(2, "/msg #general en general sí");
    assert_eq!(h.lines(1), ["#general MSG bob en general sí"]);
    h.now += Duration::from_secs(600);
    h.send(2, "/msg #tareas ya puedo");
    assert_eq!(h.lines(1), ["#tareas MSG bob ya puedo"]);
    h.send(1, "/mute #tareas bob");
    h.send(1, "/unmute #tareas bob");
    assert_eq!(h.lines(1), ["#tareas MUTED bob 0", "#tareas UNMUTED bob"]);
    h.send(1, "/unmute #tareas bob");
    assert!(h.lines(1)[0].starts_with("ERROR no-such-ban bob is not muted in #tareas"));
}

/// The review of issue 22: a room made again under the name of one that is gone (a private one,
/// say) never shows the old room's lines.
#[test]
fn a_room_made_again_under_an_old_name_does_not_show_the_old_rooms_lines() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "ana", Some(ANA));
    h.send(1, "/create #club private");
    h.send(1, "secreto");
    h.send(1, "/part #club");
    h.lines(1);
    join_rooms(&mut h, 2, "eva", Some(BOB));
    h.send(2, "/join #club");
    let lines = h.lines(2);
    assert_eq!(lines[0], "#club JOIN eva", "a new room: {lines:?}");
    assert!(!lines.iter().any(|l| l.contains("secreto")), "{lines:?}");
}

/// The review of issue 22: someone invited into a private room comes back into it after a
/// dropped connection, with no new invitation; a ban made meanwhile still holds.
#[test]
fn an_invited_member_comes_back_into_a_private_room() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "ana", Some(ANA));
    h.send(1, "/create #club private");
    let last = join_rooms_with_session(&mut h, 2, "bob", BOB);
    h.send(1, "/invite bob #club");
    h.send(2, "/join #club");
    h.lines(1);
    h.lines(2);
    drop_connection(&mut h, 2);
    h.connect_as(3, ANY, Some(BOB));
    h.send(3, "/cap rooms");
    h.send(3, &format!("/resume tok1 {last}"));
    h.send(3, "bob");
    let lines = h.lines(3);
    assert!(
        lines.contains(&"#club USERS 2 ana bob".to_string()),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.starts_with("ERROR ")), "{lines:?}");
}

/// The review of issue 22: a user muted in a room cannot speak to it through a /part reason, a
/// /quit reason or a new nickname.
#[test]
fn a_room_mute_holds_for_part_and_quit_reasons_and_nicknames() {
    let mut h = Harness::new();
    join_rooms(&mut h, 1, "ana", Some(ANA));
    join_rooms(&mut h, 2, "bob", Some(BOB));
    h.send(1, "/join #tareas");
    h.send(2, "/join #tareas");
    h.send(1, "/mute #tareas bob");
    h.lines(1);
    h.lines(2);
    h.send(2, "/part #tareas compra mi curso");
    assert_eq!(h.lines(1), ["#tareas LEAVE bob part"]);
    h.send(2, "/join #tareas");
    h.lines(1);
    h.send(2, "/nick compra-mi-curso");
    assert!(h.lines(2).iter().any(|l| l.starts_with("ERROR muted ")));
    h.send(2, "/quit compra mi curso");
    assert_eq!(
        h.lines(1),
        [
            "#general LEAVE bob quit compra mi curso",
            "#tareas LEAVE bob quit"
        ]
    );
}
