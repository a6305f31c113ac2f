//! What a client's line asks for.

use std::borrow::Cow;

/// One line from a client, as the server understands it.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientLine<'a> {
    /// Nothing to do (an empty or blank line).
    Empty,
    /// A public message (a leading `//` has become `/`).
    Message(&'a str),
    /// `/users` or the tutorial's `!usuarios`.
    Users,
    Msg {
        to: &'a str,
        text: &'a str,
    },
    Me(&'a str),
    Nick(&'a str),
    Ping(Option<&'a str>),
    Quit(Option<&'a str>),
    Help,
    Pass(&'a str),
    /// `/resume`: this client wants line ids and a session token (before its nickname).
    /// `/resume <token> <last id>`: it had them, and comes back.
    Resume(Option<(&'a str, u64)>),
    /// `/history off` (before the nickname): no replay of the history; `/history on` undoes it.
    History(bool),
    /// `/register`: binds the current nickname to the client certificate's fingerprint.
    Register,
    /// `/unregister [nick]`: frees the current nickname (or, for an operator, any).
    Unregister(Option<&'a str>),
    Whois(&'a str),
    /// Operators only, as are the commands below.
    Kick {
        nick: &'a str,
        reason: Option<&'a str>,
    },
    /// `/ban <nick|address|fingerprint> [minutes] [reason]`.
    Ban {
        target: &'a str,
        minutes: Option<u64>,
        reason: Option<&'a str>,
    },
    Unban(&'a str),
    /// `/bans [page]`, from page 1.
    Bans(u32),
    Mute {
        nick: &'a str,
        minutes: Option<u64>,
    },
    Unmute(&'a str),
    /// `/cap <name>...` before the nickname: what this client understands (`rooms`: every line
    /// of a room with its room named, and the room commands below).
    Cap(&'a str),
    /// `/join #room`: into a room (an open one is made when there is none, for registered users).
    Join(&'a str),
    /// `/part #room [reason]`.
    Part {
        room: &'a str,
        reason: Option<&'a str>,
    },
    /// `/rooms [page]`: the rooms on the server, from page 1.
    Rooms(u32),
    /// `/users #room`.
    RoomUsers(&'a str),
    /// `/topic #room [text]`: shows the topic, or sets it (`-` clears it).
    Topic {
        room: &'a str,
        text: Option<&'a str>,
    },
    /// `/invite <nick> #room`.
    Invite {
        nick: &'a str,
        room: &'a str,
    },
    /// `/create #room [open|private]`.
    Create {
        room: &'a str,
        private: bool,
    },
    /// `/action #room <text>`: `/me` into a given room.
    Action {
        room: &'a str,
        text: &'a str,
    },
    /// `/op <nick> #room` (`on`), `/deop <nick> #room`.
    RoomOp {
        nick: &'a str,
        room: &'a str,
        on: bool,
    },
    /// `/kick #room <nick> [reason]`: out of that room only.
    RoomKick {
        room: &'a str,
        nick: &'a str,
        reason: Option<&'a str>,
    },
    /// `/ban #room <nick|address|fingerprint> [minutes] [reason]`: kept out of that room.
    RoomBan {
        room: &'a str,
        target: &'a str,
        minutes: Option<u64>,
        reason: Option<&'a str>,
    },
    /// `/unban #room <nick|address|fingerprint>`.
    RoomUnban {
        room: &'a str,
        target: &'a str,
    },
    /// `/mute #room <nick> [minutes]`: silenced in that room only.
    RoomMute {
        room: &'a str,
        nick: &'a str,
        minutes: Option<u64>,
    },
    /// `/unmute #room <nick>`.
    RoomUnmute {
        room: &'a str,
        nick: &'a str,
    },
    /// A known command without its required argument; the usage to show.
    MissingArgument(&'static str),
    Unknown(&'a str),
}

/// The commands and what they do, as `/help` lists them.
pub const HELP: &[&str] = &[
    "Commands:",
    "/users (or !usuarios)     list who is in the chat",
    "/msg <nick> <text>        send a private message",
    "/me <text>                send an action (\"* nick waves\")",
    "/nick <new>               change your nickname",
    "/ping [token]             the server answers PONG [token]",
    "/quit [reason]            leave the chat",
    "/help                     this list",
    "/register                 keep your nickname for your identity (client certificate)",
    "/unregister [nick]        free a nickname you registered",
    "/whois <nick>             who that is: registered, operator, identity",
    "Operators only:",
    "/kick <nick> [reason]     disconnect someone",
    "/ban <nick|address|fingerprint> [minutes] [reason]   keep them out",
    "/unban <nick|address|fingerprint>, /bans [page]   lift a ban, list the bans",
    "/mute <nick> [minutes], /unmute <nick>     silence someone in public",
    "Rooms (clients that sent /cap rooms):",
    "/join #room, /part #room [reason]    enter or leave a room",
    "/rooms [page], /users #room   the rooms (100 a page), who is in one",
    "/msg #room <text>, /action #room <text>   say something in a room",
    "/create #room [open|private]   make a room (registered users)",
    "/topic #room [text|-], /invite <nick> #room   the topic; let someone into a private room",
    "/op <nick> #room, /deop <nick> #room   room operators (the room's owner)",
    "/kick #room <nick> [reason], /ban #room <nick> [minutes] [reason], /unban #room <nick>",
    "/mute #room <nick> [minutes], /unmute #room <nick>   silence someone in one room",
    "Any other line is a public message (to the room you last joined); start it with // to send a line that begins with /.",
];

/// Splits off the first space-separated word; the rest keeps its inner spacing.
fn split_word(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], s[i + 1..].trim_start_matches(' ')),
        None => (s, ""),
    }
}

fn non_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// Parses a line from a client that has a nickname.
pub fn parse_client_line(line: &str) -> ClientLine<'_> {
    if line.trim().is_empty() {
        return ClientLine::Empty;
    }
    if line.trim().eq_ignore_ascii_case("!usuarios") {
        return ClientLine::Users;
    }
    let Some(after_slash) = line.strip_prefix('/') else {
        return ClientLine::Message(line);
    };
    if after_slash.starts_with('/') {
        return ClientLine::Message(after_slash);
    }
    let (name, args) = split_word(after_slash);
    match name.to_ascii_lowercase().as_str() {
        "users" => match non_empty(args) {
            Some(room) if crate::room::is_room(room) => ClientLine::RoomUsers(room),
            _ => ClientLine::Users,
        },
        "cap" => match non_empty(args) {
            Some(names) => ClientLine::Cap(names),
            None => ClientLine::MissingArgument("/cap rooms"),
        },
        "join" => match non_empty(args) {
            Some(room) if !room.contains(' ') => ClientLine::Join(room),
            _ => ClientLine::MissingArgument("/join #room"),
        },
        "part" => match split_word(args.trim()) {
            ("", _) => ClientLine::MissingArgument("/part #room [reason]"),
            (room, reason) => ClientLine::Part {
                room,
                reason: non_empty(reason),
            },
        },
        "rooms" => match args.trim() {
            "" => ClientLine::Rooms(1),
            page => match page.parse() {
                Ok(page) if page >= 1 => ClientLine::Rooms(page),
                _ => ClientLine::MissingArgument("/rooms [page]"),
            },
        },
        "topic" => match split_word(args.trim()) {
            ("", _) => ClientLine::MissingArgument("/topic #room [text]"),
            (room, text) => ClientLine::Topic {
                room,
                text: non_empty(text),
            },
        },
        "invite" => {
            let mut words = args.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(nick), Some(room), None) => ClientLine::Invite { nick, room },
                _ => ClientLine::MissingArgument("/invite <nick> #room"),
            }
        }
        "create" => {
            let mut words = args.split_whitespace();
            let kind = words.next().map(|room| (room, words.next(), words.next()));
            match kind {
                Some((room, None, None)) => ClientLine::Create {
                    room,
                    private: false,
                },
                Some((room, Some(kind), None)) if kind.eq_ignore_ascii_case("open") => {
                    ClientLine::Create {
                        room,
                        private: false,
                    }
                }
                Some((room, Some(kind), None)) if kind.eq_ignore_ascii_case("private") => {
                    ClientLine::Create {
                        room,
                        private: true,
                    }
                }
                _ => ClientLine::MissingArgument("/create #room [open|private]"),
            }
        }
        "action" => {
            let (room, text) = split_word(args.trim_start_matches(' '));
            if room.is_empty() || text.trim().is_empty() {
                ClientLine::MissingArgument("/action #room <text>")
            } else {
                ClientLine::Action { room, text }
            }
        }
        "op" | "deop" => {
            let on = name.eq_ignore_ascii_case("op");
            let mut words = args.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(nick), Some(room), None) => ClientLine::RoomOp { nick, room, on },
                _ if on => ClientLine::MissingArgument("/op <nick> #room"),
                _ => ClientLine::MissingArgument("/deop <nick> #room"),
            }
        }
        "msg" => {
            let (to, text) = split_word(args.trim_start_matches(' '));
            if to.is_empty() || text.trim().is_empty() {
                ClientLine::MissingArgument("/msg <nick> <text>")
            } else {
                ClientLine::Msg { to, text }
            }
        }
        "me" => match non_empty(args) {
            Some(_) => ClientLine::Me(args),
            None => ClientLine::MissingArgument("/me <text>"),
        },
        "nick" => match non_empty(args) {
            Some(nick) => ClientLine::Nick(nick),
            None => ClientLine::MissingArgument("/nick <new nickname>"),
        },
        "ping" => ClientLine::Ping(non_empty(args)),
        "quit" => ClientLine::Quit(non_empty(args)),
        "help" => ClientLine::Help,
        // Spaces inside the password are part of it; at its ends they are not (nobody sees them
        // when typing, and the server refuses such a password at start).
        "pass" => match non_empty(args) {
            Some(password) => ClientLine::Pass(password),
            None => ClientLine::MissingArgument("/pass <password>"),
        },
        "resume" => {
            let mut words = args.split_whitespace();
            match (words.next(), words.next().map(str::parse), words.next()) {
                (None, _, _) => ClientLine::Resume(None),
                (Some(token), Some(Ok(last)), None) => ClientLine::Resume(Some((token, last))),
                _ => ClientLine::MissingArgument("/resume [<token> <last id>]"),
            }
        }
        "history" => match args.trim().to_ascii_lowercase().as_str() {
            "off" => ClientLine::History(false),
            "on" => ClientLine::History(true),
            _ => ClientLine::MissingArgument("/history on|off"),
        },
        "register" => ClientLine::Register,
        "unregister" => ClientLine::Unregister(non_empty(args)),
        "whois" => match non_empty(args) {
            Some(nick) => ClientLine::Whois(nick),
            None => ClientLine::MissingArgument("/whois <nick>"),
        },
        "kick" if crate::room::is_room(args.trim_start()) => {
            let (room, rest) = split_word(args.trim());
            match split_word(rest.trim()) {
                ("", _) => ClientLine::MissingArgument("/kick #room <nick> [reason]"),
                (nick, reason) => ClientLine::RoomKick {
                    room,
                    nick,
                    reason: non_empty(reason),
                },
            }
        }
        "ban" if crate::room::is_room(args.trim_start()) => {
            let (room, rest) = split_word(args.trim());
            let (target, rest) = split_word(rest.trim());
            let (minutes, reason) = leading_minutes(rest);
            match (target, minutes) {
                ("", _) | (_, Err(())) => ClientLine::MissingArgument(
                    "/ban #room <nick|address|fingerprint> [minutes] [reason]",
                ),
                (target, Ok(minutes)) => ClientLine::RoomBan {
                    room,
                    target,
                    minutes,
                    reason: non_empty(reason),
                },
            }
        }
        "unban" if crate::room::is_room(args.trim_start()) => {
            let mut words = args.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(room), Some(target), None) => ClientLine::RoomUnban { room, target },
                _ => ClientLine::MissingArgument("/unban #room <nick|address|fingerprint>"),
            }
        }
        "mute" if crate::room::is_room(args.trim_start()) => {
            let (room, rest) = split_word(args.trim());
            let (nick, rest) = split_word(rest.trim());
            match (nick, leading_minutes(rest)) {
                ("", _) | (_, (Err(()), _)) => {
                    ClientLine::MissingArgument("/mute #room <nick> [minutes]")
                }
                (_, (Ok(_), extra)) if !extra.trim().is_empty() => {
                    ClientLine::MissingArgument("/mute #room <nick> [minutes]")
                }
                (nick, (Ok(minutes), _)) => ClientLine::RoomMute {
                    room,
                    nick,
                    minutes,
                },
            }
        }
        "unmute" if crate::room::is_room(args.trim_start()) => {
            let mut words = args.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(room), Some(nick), None) => ClientLine::RoomUnmute { room, nick },
                _ => ClientLine::MissingArgument("/unmute #room <nick>"),
            }
        }
        "kick" => match split_word(args.trim()) {
            ("", _) => ClientLine::MissingArgument("/kick <nick> [reason]"),
            (nick, reason) => ClientLine::Kick {
                nick,
                reason: non_empty(reason),
            },
        },
        "ban" => {
            let (target, rest) = split_word(args.trim());
            let (minutes, reason) = leading_minutes(rest);
            match (target, minutes) {
                ("", _) | (_, Err(())) => ClientLine::MissingArgument(
                    "/ban <nick|address|fingerprint> [minutes] [reason]",
                ),
                (target, Ok(minutes)) => ClientLine::Ban {
                    target,
                    minutes,
                    reason: non_empty(reason),
                },
            }
        }
        "unban" => match non_empty(args) {
            Some(target) => ClientLine::Unban(target),
            None => ClientLine::MissingArgument("/unban <nick|address|fingerprint>"),
        },
        "bans" => match args.trim() {
            "" => ClientLine::Bans(1),
            page => match page.parse() {
                Ok(page) if page >= 1 => ClientLine::Bans(page),
                _ => ClientLine::MissingArgument("/bans [page]"),
            },
        },
        "mute" => {
            let (nick, rest) = split_word(args.trim());
            match (nick, leading_minutes(rest)) {
                ("", _) | (_, (Err(()), _)) => {
                    ClientLine::MissingArgument("/mute <nick> [minutes]")
                }
                (_, (Ok(_), extra)) if !extra.trim().is_empty() => {
                    ClientLine::MissingArgument("/mute <nick> [minutes]")
                }
                (nick, (Ok(minutes), _)) => ClientLine::Mute { nick, minutes },
            }
        }
        "unmute" => match non_empty(args) {
            Some(nick) => ClientLine::Unmute(nick),
            None => ClientLine::MissingArgument("/unmute <nick>"),
        },
        _ => ClientLine::Unknown(name),
    }
}

/// Longest ban or mute, in minutes: ten years; longer is "until lifted".
pub const MAX_MINUTES: u64 = 10 * 366 * 24 * 60;

/// A leading word of digits is a number of minutes (1 to [`MAX_MINUTES`], or 0 for "until
/// lifted", so that a reason may start with a number); returns it and the rest. A number out of
/// range is an error, not the start of a reason.
fn leading_minutes(s: &str) -> (Result<Option<u64>, ()>, &str) {
    let (word, rest) = split_word(s.trim_start());
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return (Ok(None), s);
    }
    match word.parse() {
        Ok(0) => (Ok(None), rest),
        Ok(minutes) if minutes <= MAX_MINUTES => (Ok(Some(minutes)), rest),
        _ => (Err(()), rest),
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
pub fn cut_text(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Removes control characters other than tab from text that others will see.
pub fn clean_text(text: &str) -> Cow<'_, str> {
    if text.chars().any(removed) {
        Cow::Owned(text.chars().filter(|&c| !removed(c)).collect())
    } else {
        Cow::Borrowed(text)
    }
}

/// Control characters (but tab), and the line and paragraph separators, with which a line could
/// show a fake second line under someone else's name.
fn removed(c: char) -> bool {
    (c.is_control() && c != '\t') || c == '\u{2028}' || c == '\u{2029}'
}

#[cfg(test)]
mod tests {
    use super::ClientLine::*;
    use super::*;

    #[test]
    fn separators_and_controls_are_removed() {
        assert_eq!(
            clean_text("uno\u{2028}MSG bob dos\u{2029}tres\u{7}\tcuatro"),
            "unoMSG bob dostres\tcuatro"
        );
        assert!(matches!(clean_text("sin nada"), Cow::Borrowed(_)));
    }

    #[test]
    fn resume_and_history_take_their_arguments_or_say_how() {
        assert_eq!(parse_client_line("/resume"), Resume(None));
        assert_eq!(
            parse_client_line("/RESUME abc 42"),
            Resume(Some(("abc", 42)))
        );
        for bad in [
            "/resume abc",
            "/resume abc x",
            "/resume abc 1 2",
            "/resume abc -1",
        ] {
            assert_eq!(
                parse_client_line(bad),
                MissingArgument("/resume [<token> <last id>]"),
                "{bad}"
            );
        }
        assert_eq!(parse_client_line("/history off"), History(false));
        assert_eq!(parse_client_line("/history ON"), History(true));
        assert_eq!(
            parse_client_line("/history"),
            MissingArgument("/history on|off")
        );
    }

    #[test]
    fn room_commands_take_their_arguments_or_say_how() {
        assert_eq!(parse_client_line("/cap rooms"), Cap("rooms"));
        assert_eq!(parse_client_line("/join #tareas"), Join("#tareas"));
        assert!(matches!(parse_client_line("/join"), MissingArgument(_)));
        assert!(matches!(
            parse_client_line("/join #a #b"),
            MissingArgument(_)
        ));
        assert_eq!(
            parse_client_line("/part #tareas me voy  ya"),
            Part {
                room: "#tareas",
                reason: Some("me voy  ya")
            }
        );
        assert_eq!(parse_client_line("/rooms"), Rooms(1));
        assert_eq!(parse_client_line("/rooms 3"), Rooms(3));
        assert!(matches!(parse_client_line("/rooms x"), MissingArgument(_)));
        assert_eq!(parse_client_line("/users #a"), RoomUsers("#a"));
        assert_eq!(parse_client_line("/users"), Users);
        assert_eq!(
            parse_client_line("/topic #a deberes del lunes"),
            Topic {
                room: "#a",
                text: Some("deberes del lunes")
            }
        );
        assert_eq!(
            parse_client_line("/topic #a"),
            Topic {
                room: "#a",
                text: None
            }
        );
        assert_eq!(
            parse_client_line("/invite bob #a"),
            Invite {
                nick: "bob",
                room: "#a"
            }
        );
        assert!(matches!(
            parse_client_line("/invite bob"),
            MissingArgument(_)
        ));
        assert_eq!(
            parse_client_line("/create #a private"),
            Create {
                room: "#a",
                private: true
            }
        );
        assert_eq!(
            parse_client_line("/create #a"),
            Create {
                room: "#a",
                private: false
            }
        );
        assert!(matches!(
            parse_client_line("/create #a secret"),
            MissingArgument(_)
        ));
        assert_eq!(
            parse_client_line("/action #a saluda a todos"),
            Action {
                room: "#a",
                text: "saluda a todos"
            }
        );
        assert_eq!(
            parse_client_line("/deop bob #a"),
            RoomOp {
                nick: "bob",
                room: "#a",
                on: false
            }
        );
        assert_eq!(
            parse_client_line("/kick #a bob basta"),
            RoomKick {
                room: "#a",
                nick: "bob",
                reason: Some("basta")
            }
        );
        assert_eq!(
            parse_client_line("/kick bob basta"),
            Kick {
                nick: "bob",
                reason: Some("basta")
            }
        );
        assert_eq!(
            parse_client_line("/ban #a bob 10 spam"),
            RoomBan {
                room: "#a",
                target: "bob",
                minutes: Some(10),
                reason: Some("spam")
            }
        );
        assert_eq!(
            parse_client_line("/unban #a bob"),
            RoomUnban {
                room: "#a",
                target: "bob"
            }
        );
        assert!(matches!(parse_client_line("/kick #a"), MissingArgument(_)));
        assert_eq!(
            parse_client_line("/mute #a bob 5"),
            RoomMute {
                room: "#a",
                nick: "bob",
                minutes: Some(5)
            }
        );
        assert_eq!(
            parse_client_line("/unmute #a bob"),
            RoomUnmute {
                room: "#a",
                nick: "bob"
            }
        );
        assert_eq!(
            parse_client_line("/mute bob 5"),
            Mute {
                nick: "bob",
                minutes: Some(5)
            }
        );
    }

    #[test]
    fn identity_and_moderation_commands() {
        assert_eq!(parse_client_line("/register"), Register);
        assert_eq!(parse_client_line("/unregister"), Unregister(None));
        assert_eq!(
            parse_client_line("/unregister ana"),
            Unregister(Some("ana"))
        );
        assert_eq!(parse_client_line("/whois  Ana "), Whois("Ana"));
        assert!(matches!(parse_client_line("/whois"), MissingArgument(_)));
        assert_eq!(
            parse_client_line("/kick bob  stop  it"),
            Kick {
                nick: "bob",
                reason: Some("stop  it")
            }
        );
        assert_eq!(
            parse_client_line("/kick bob"),
            Kick {
                nick: "bob",
                reason: None
            }
        );
        assert!(matches!(parse_client_line("/kick "), MissingArgument(_)));
        assert_eq!(
            parse_client_line("/ban bob 10 spam"),
            Ban {
                target: "bob",
                minutes: Some(10),
                reason: Some("spam")
            }
        );
        assert_eq!(
            parse_client_line("/ban 10.0.0.7 spam again"),
            Ban {
                target: "10.0.0.7",
                minutes: None,
                reason: Some("spam again")
            }
        );
        assert_eq!(
            parse_client_line("/ban bob"),
            Ban {
                target: "bob",
                minutes: None,
                reason: None
            }
        );
        assert_eq!(
            parse_client_line("/ban bob 0 3 strikes"),
            Ban {
                target: "bob",
                minutes: None,
                reason: Some("3 strikes")
            }
        );
        for bad in [
            "/ban",
            "/ban bob 99999999999999999999 x",
            "/ban bob 5270401",
        ] {
            assert!(
                matches!(parse_client_line(bad), MissingArgument(_)),
                "{bad}"
            );
        }
        assert_eq!(parse_client_line("/unban bob"), Unban("bob"));
        assert_eq!(parse_client_line("/BANS"), Bans(1));
        assert_eq!(parse_client_line("/bans 3"), Bans(3));
        assert_eq!(
            parse_client_line("/bans x"),
            MissingArgument("/bans [page]")
        );
        assert_eq!(
            parse_client_line("/mute bob 5"),
            Mute {
                nick: "bob",
                minutes: Some(5)
            }
        );
        assert_eq!(
            parse_client_line("/mute bob"),
            Mute {
                nick: "bob",
                minutes: None
            }
        );
        assert_eq!(
            parse_client_line("/mute bob 0"),
            Mute {
                nick: "bob",
                minutes: None
            }
        );
        for bad in ["/mute", "/mute bob soon", "/mute bob 5 minutes"] {
            assert!(
                matches!(parse_client_line(bad), MissingArgument(_)),
                "{bad}"
            );
        }
        assert_eq!(parse_client_line("/unmute bob"), Unmute("bob"));
    }

    #[test]
    fn plain_lines_are_messages() {
        assert_eq!(parse_client_line("hola a todos"), Message("hola a todos"));
        assert_eq!(
            parse_client_line("//not a command"),
            Message("/not a command")
        );
        assert_eq!(parse_client_line("   "), Empty);
        assert_eq!(parse_client_line(""), Empty);
    }

    #[test]
    fn commands() {
        assert_eq!(parse_client_line("/users"), Users);
        assert_eq!(parse_client_line("!usuarios"), Users);
        assert_eq!(parse_client_line("!USUARIOS"), Users);
        assert_eq!(parse_client_line("/ users"), Unknown(""));
        assert_eq!(parse_client_line("/USERS"), Users);
        assert_eq!(
            parse_client_line("/msg bob  hola  bob"),
            Msg {
                to: "bob",
                text: "hola  bob"
            }
        );
        assert_eq!(parse_client_line("/me saluda"), Me("saluda"));
        assert_eq!(parse_client_line("/nick  ana "), Nick("ana"));
        assert_eq!(parse_client_line("/ping"), Ping(None));
        assert_eq!(parse_client_line("/ping 42"), Ping(Some("42")));
        assert_eq!(parse_client_line("/quit"), Quit(None));
        assert_eq!(parse_client_line("/quit me voy"), Quit(Some("me voy")));
        assert_eq!(parse_client_line("/help"), Help);
        assert_eq!(parse_client_line("/pass s3cr3t"), Pass("s3cr3t"));
        assert_eq!(
            parse_client_line("/pass  clave de clase \t"),
            Pass("clave de clase")
        );
        assert_eq!(parse_client_line("/frobnicate x"), Unknown("frobnicate"));
        assert_eq!(parse_client_line("/"), Unknown(""));
    }

    #[test]
    fn missing_arguments() {
        assert!(matches!(parse_client_line("/msg"), MissingArgument(_)));
        assert!(matches!(parse_client_line("/msg bob"), MissingArgument(_)));
        assert!(matches!(
            parse_client_line("/msg bob   "),
            MissingArgument(_)
        ));
        assert!(matches!(parse_client_line("/me"), MissingArgument(_)));
        assert!(matches!(parse_client_line("/nick"), MissingArgument(_)));
    }

    #[test]
    fn cleans_control_characters_but_keeps_tab() {
        assert_eq!(clean_text("a\u{1b}[31mb\tc\u{7f}"), "a[31mb\tc");
        assert!(matches!(clean_text("normal"), Cow::Borrowed(_)));
    }
}
