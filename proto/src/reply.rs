//! Server lines: writing them (server) and reading them (client, tests, benchmark).

use crate::MAX_SERVER_LINE;

/// The code after `ERROR`: stable words a program can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NickInvalid,
    NickTaken,
    NoSuchUser,
    UnknownCommand,
    MissingArgument,
    LineTooLong,
    BadUtf8,
    Flood,
    ServerFull,
    Timeout,
    PasswordRequired,
    BadPassword,
    TooManyConnections,
    NickRegistered,
    NoIdentity,
    NotOperator,
    Kicked,
    Banned,
    Muted,
    NoSuchBan,
    RegistrationLimit,
    NotSaved,
    IsOperator,
    BanLimit,
    NoSuchRoom,
    BadRoomName,
    InviteOnly,
    BannedFromRoom,
    TooManyRooms,
    NotRoomOperator,
    NotInRoom,
    RoomExists,
    RoomLimit,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::NickInvalid,
        ErrorCode::NickTaken,
        ErrorCode::NoSuchUser,
        ErrorCode::UnknownCommand,
        ErrorCode::MissingArgument,
        ErrorCode::LineTooLong,
        ErrorCode::BadUtf8,
        ErrorCode::Flood,
        ErrorCode::ServerFull,
        ErrorCode::Timeout,
        ErrorCode::PasswordRequired,
        ErrorCode::BadPassword,
        ErrorCode::TooManyConnections,
        ErrorCode::NickRegistered,
        ErrorCode::NoIdentity,
        ErrorCode::NotOperator,
        ErrorCode::Kicked,
        ErrorCode::Banned,
        ErrorCode::Muted,
        ErrorCode::NoSuchBan,
        ErrorCode::RegistrationLimit,
        ErrorCode::NotSaved,
        ErrorCode::IsOperator,
        ErrorCode::BanLimit,
        ErrorCode::NoSuchRoom,
        ErrorCode::BadRoomName,
        ErrorCode::InviteOnly,
        ErrorCode::BannedFromRoom,
        ErrorCode::TooManyRooms,
        ErrorCode::NotRoomOperator,
        ErrorCode::NotInRoom,
        ErrorCode::RoomExists,
        ErrorCode::RoomLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NickInvalid => "nick-invalid",
            ErrorCode::NickTaken => "nick-taken",
            ErrorCode::NoSuchUser => "no-such-user",
            ErrorCode::UnknownCommand => "unknown-command",
            ErrorCode::MissingArgument => "missing-argument",
            ErrorCode::LineTooLong => "line-too-long",
            ErrorCode::BadUtf8 => "bad-utf8",
            ErrorCode::Flood => "flood",
            ErrorCode::ServerFull => "server-full",
            ErrorCode::Timeout => "timeout",
            ErrorCode::PasswordRequired => "password-required",
            ErrorCode::BadPassword => "bad-password",
            ErrorCode::TooManyConnections => "too-many-connections",
            ErrorCode::NickRegistered => "nick-registered",
            ErrorCode::NoIdentity => "no-identity",
            ErrorCode::NotOperator => "not-operator",
            ErrorCode::Kicked => "kicked",
            ErrorCode::Banned => "banned",
            ErrorCode::Muted => "muted",
            ErrorCode::NoSuchBan => "no-such-ban",
            ErrorCode::RegistrationLimit => "registration-limit",
            ErrorCode::NotSaved => "not-saved",
            ErrorCode::IsOperator => "is-operator",
            ErrorCode::BanLimit => "ban-limit",
            ErrorCode::NoSuchRoom => "no-such-room",
            ErrorCode::BadRoomName => "bad-room-name",
            ErrorCode::InviteOnly => "invite-only",
            ErrorCode::BannedFromRoom => "banned-from-room",
            ErrorCode::TooManyRooms => "too-many-rooms",
            ErrorCode::NotRoomOperator => "not-room-operator",
            ErrorCode::NotInRoom => "not-in-room",
            ErrorCode::RoomExists => "room-exists",
            ErrorCode::RoomLimit => "room-limit",
        }
    }

    pub fn from_word(word: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == word)
    }
}

/// The server's fixed notices (`NOTICE <text>`): clients recognise them to say the same in the
/// user's language.
pub mod notice {
    pub const SHUTTING_DOWN: &str = "server shutting down";
    pub const PASSWORD_ACCEPTED: &str = "password accepted, now send your nickname";
    pub const PASSWORD_ALREADY_ACCEPTED: &str = "password already accepted";
    /// Followed by a space and the nickname.
    pub const NICK_UNCHANGED: &str = "your nickname is already";
    /// `history kept: <n> public messages <in memory|on disk>, shown to whoever joins`.
    pub const HISTORY_KEPT: &str = "history kept:";
    /// `held for <nick>: away, delivered if back within <s> s`.
    pub const HELD_FOR: &str = "held for";
    /// `not delivered to <nick>: not back in time, <n> messages dropped`.
    pub const NOT_DELIVERED_TO: &str = "not delivered to";
    /// `not held for <nick>: too many messages waiting`.
    pub const NOT_HELD_FOR: &str = "not held for";
}

/// Why someone left: the word after the nickname in `LEAVE <nick> <why> [text]`. Only `quit`
/// carries text (the user's own reason), so that a reason a user typed can never pass for one of
/// the server's.
pub mod leave_reason {
    /// `/quit`, with the user's reason after it if it gave one.
    pub const QUIT: &str = "quit";
    pub const CONNECTION_CLOSED: &str = "closed";
    pub const CONNECTION_LOST: &str = "lost";
    pub const TOO_SLOW: &str = "too-slow";
    pub const TIMEOUT: &str = "timeout";
    pub const SHUTTING_DOWN: &str = "shutting-down";
    /// `/part`, with the user's reason after it if it gave one (room lines only).
    pub const PART: &str = "part";
}

/// Appends one line made of `words` separated by single spaces, then `\n`.
pub fn push_line(out: &mut Vec<u8>, words: &[&str]) {
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(word.as_bytes());
    }
    out.push(b'\n');
}

/// As [`push_line`], with the last word cut (at a character boundary) so that the line, its
/// `\n` included, is at most [`MAX_SERVER_LINE`] bytes: for lines that carry something a client
/// sent (a `/ping` token, a `/quit` reason, an unknown command) but are not its message.
pub fn push_bounded_line(out: &mut Vec<u8>, words: &[&str]) {
    let start = out.len();
    push_line(out, words);
    if out.len() - start > MAX_SERVER_LINE {
        let mut end = start + MAX_SERVER_LINE - 1;
        while !is_char_start(out[end]) {
            end -= 1;
        }
        out.truncate(end);
        out.push(b'\n');
    }
}

fn is_char_start(byte: u8) -> bool {
    byte & 0b1100_0000 != 0b1000_0000
}

/// Appends the user list: `USERS <n> <nick>...`, continued in `USERS+ <nick>...` lines so that no
/// line is longer than [`MAX_SERVER_LINE`] bytes, each line after `prefix` (`""`, or a room's
/// name and a space for a client that understands rooms).
pub fn push_user_list<'a>(
    out: &mut Vec<u8>,
    prefix: &str,
    nicks: impl ExactSizeIterator<Item = &'a str>,
) {
    let total = nicks.len().to_string();
    let mut line_start = out.len();
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(b"USERS ");
    out.extend_from_slice(total.as_bytes());
    for nick in nicks {
        // +2: the space before the nick and the final '\n'.
        if out.len() - line_start + nick.len() + 2 > MAX_SERVER_LINE {
            out.push(b'\n');
            line_start = out.len();
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(b"USERS+");
        }
        out.push(b' ');
        out.extend_from_slice(nick.as_bytes());
    }
    out.push(b'\n');
}

/// One line from the server, as a client understands it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine<'a> {
    Welcome(&'a str),
    /// The first line of the user list: the total and the first nicks.
    Users {
        total: usize,
        nicks: Vec<&'a str>,
    },
    /// More nicks of the same user list.
    UsersMore(Vec<&'a str>),
    Join(&'a str),
    Leave {
        nick: &'a str,
        /// One of [`leave_reason`]'s words.
        why: &'a str,
        /// The user's own reason, after `quit`.
        text: Option<&'a str>,
    },
    Msg {
        from: &'a str,
        text: &'a str,
    },
    Action {
        from: &'a str,
        text: &'a str,
    },
    Privmsg {
        from: &'a str,
        text: &'a str,
    },
    Nick {
        old: &'a str,
        new: &'a str,
    },
    Pong(Option<&'a str>),
    Notice(&'a str),
    /// A line said before the client joined or while it was away: when (RFC 3339, UTC) and the
    /// line as it was sent live (its id, if any, taken off).
    History {
        time: &'a str,
        line: &'a str,
    },
    /// `SESSION <token> <last id>`, for clients that sent `/resume`.
    Session {
        token: &'a str,
        last: u64,
    },
    Error {
        code: &'a str,
        text: &'a str,
    },
    /// The answer to `/whois`.
    Whois {
        nick: &'a str,
        presence: Presence,
        registered: bool,
        operator: bool,
        /// Its certificate's fingerprint (shortened for those who are not operators), if any.
        fingerprint: Option<&'a str>,
        /// Its address, for operators asking about someone online.
        address: Option<&'a str>,
    },
    /// An operator (`by`) put `nick` out of the room.
    Kick {
        by: &'a str,
        nick: &'a str,
        reason: Option<&'a str>,
    },
    /// `nick` is an operator.
    Oper(&'a str),
    /// `nick` is no longer an operator.
    Deoper(&'a str),
    /// `/register` took effect: `nick` is kept for the identity whose fingerprint starts so, and
    /// freed after `expires_days` days unused (0: never).
    Registered {
        nick: &'a str,
        fingerprint: &'a str,
        expires_days: u64,
    },
    /// `/unregister` took effect.
    Unregistered(&'a str),
    /// To an operator: its ban took effect, and closed `closed` connections.
    Banned {
        ban: BanShown<'a>,
        closed: u64,
    },
    /// To an operator: the ban list's page `page` of `pages`, `total` bans in all; its `BAN` lines
    /// follow.
    BanList {
        total: u64,
        page: u64,
        pages: u64,
    },
    /// One ban of the list.
    BanEntry {
        ban: BanShown<'a>,
        /// RFC 3339.
        set_at: &'a str,
        by: &'a str,
        reason: Option<&'a str>,
    },
    /// To an operator: `/unban` lifted this many bans.
    Unbanned(u64),
    /// To an operator: `nick` is muted for `minutes` (`None`: until `/unmute`).
    Muted {
        nick: &'a str,
        minutes: Option<u64>,
    },
    Unmuted(&'a str),
    /// A line this version does not know; clients should show or ignore it, not fail.
    Unknown(&'a str),
}

/// Where someone asked about with `/whois` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Online,
    /// Its connection dropped; its session waits for it (`--resume-window`).
    Away,
    Offline,
}

impl Presence {
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Online => "online",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }
}

/// Whom a ban is on: `<identity|address> <value> <until|permanent>`, and the nickname it was made
/// from, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanShown<'a> {
    /// `identity` or `address`.
    pub kind: &'a str,
    pub value: &'a str,
    /// RFC 3339; `None`: until lifted.
    pub until: Option<&'a str>,
    pub nick: Option<&'a str>,
}

/// `<identity|address> <value> <until|permanent>`, then what follows.
fn ban_shown(rest: &str) -> Option<(BanShown<'_>, &str)> {
    let (kind, rest) = first_word(rest);
    let (value, rest) = first_word(rest);
    let (until, rest) = first_word(rest);
    if !matches!(kind, "identity" | "address") || value.is_empty() || until.is_empty() {
        return None;
    }
    let until = (until != "permanent").then_some(until);
    Some((
        BanShown {
            kind,
            value,
            until,
            nick: None,
        },
        rest,
    ))
}

/// `-` stands for no nickname.
fn nick_or_dash(word: &str) -> Option<&str> {
    (!word.is_empty() && word != "-").then_some(word)
}

/// Splits `s` at its first space; the second part is empty if there is none.
fn first_word(s: &str) -> (&str, &str) {
    s.split_once(' ').unwrap_or((s, ""))
}

fn opt(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// `@<id> <line>` → the id and the line; any other line as it is.
pub fn split_id(line: &str) -> (Option<u64>, &str) {
    let Some(tagged) = line.strip_prefix('@') else {
        return (None, line);
    };
    let (id, rest) = first_word(tagged);
    match id.parse() {
        Ok(id) => (Some(id), rest),
        Err(_) => (None, line),
    }
}

/// Parses a server line (without its `\n`). A public line's id (`@<id> `) is taken off: see
/// [`split_id`] to read it.
pub fn parse_server_line(line: &str) -> ServerLine<'_> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (_, line) = split_id(line);
    let (kind, rest) = first_word(line);
    let unknown = ServerLine::Unknown(line);
    match kind {
        "WELCOME" if !rest.is_empty() => ServerLine::Welcome(rest),
        "USERS" => {
            let mut words = rest.split(' ').filter(|w| !w.is_empty());
            match words.next().and_then(|n| n.parse().ok()) {
                Some(total) => ServerLine::Users {
                    total,
                    nicks: words.collect(),
                },
                None => unknown,
            }
        }
        "USERS+" => ServerLine::UsersMore(rest.split(' ').filter(|w| !w.is_empty()).collect()),
        "JOIN" if !rest.is_empty() => ServerLine::Join(rest),
        "LEAVE" => {
            let (nick, rest) = first_word(rest);
            let (why, text) = first_word(rest);
            if nick.is_empty() || why.is_empty() {
                unknown
            } else {
                ServerLine::Leave {
                    nick,
                    why,
                    text: opt(text),
                }
            }
        }
        "MSG" | "ACTION" | "PRIVMSG" if !rest.is_empty() => {
            let (from, text) = first_word(rest);
            match kind {
                "MSG" => ServerLine::Msg { from, text },
                "ACTION" => ServerLine::Action { from, text },
                _ => ServerLine::Privmsg { from, text },
            }
        }
        "NICK" => match rest.split_once(' ') {
            Some((old, new)) if !old.is_empty() && !new.is_empty() => ServerLine::Nick { old, new },
            _ => unknown,
        },
        "PONG" => ServerLine::Pong(opt(rest)),
        "NOTICE" => ServerLine::Notice(rest),
        "HISTORY" => match rest.split_once(' ') {
            Some((time, line)) if !line.is_empty() => ServerLine::History {
                time,
                line: split_id(line).1,
            },
            _ => unknown,
        },
        "SESSION" => match rest.split_once(' ').map(|(t, l)| (t, l.parse())) {
            Some((token, Ok(last))) if !token.is_empty() => ServerLine::Session { token, last },
            _ => unknown,
        },
        "WHOIS" => {
            let words: Vec<&str> = rest.split(' ').collect();
            match words[..] {
                [nick, presence, registered, operator, fingerprint, ref address @ ..]
                    if !nick.is_empty() && address.len() <= 1 =>
                {
                    let presence = match presence {
                        "online" => Presence::Online,
                        "away" => Presence::Away,
                        _ => Presence::Offline,
                    };
                    ServerLine::Whois {
                        nick,
                        presence,
                        registered: registered == "registered",
                        operator: operator == "operator",
                        fingerprint: (fingerprint != "no-identity").then_some(fingerprint),
                        address: address.first().copied(),
                    }
                }
                _ => unknown,
            }
        }
        "KICK" => {
            let (by, rest) = first_word(rest);
            let (nick, reason) = first_word(rest);
            if by.is_empty() || nick.is_empty() {
                unknown
            } else {
                ServerLine::Kick {
                    by,
                    nick,
                    reason: opt(reason),
                }
            }
        }
        "OPER" if !rest.is_empty() => ServerLine::Oper(rest),
        "REGISTERED" => {
            let words: Vec<&str> = rest.split(' ').collect();
            match words[..] {
                [nick, fingerprint, days] if !nick.is_empty() && !fingerprint.is_empty() => {
                    match days.parse() {
                        Ok(expires_days) => ServerLine::Registered {
                            nick,
                            fingerprint,
                            expires_days,
                        },
                        Err(_) => unknown,
                    }
                }
                _ => unknown,
            }
        }
        "UNREGISTERED" if !rest.is_empty() => ServerLine::Unregistered(rest),
        "BANNED" => match ban_shown(rest) {
            Some((mut ban, rest)) => {
                let (closed, nick) = first_word(rest);
                match closed.parse() {
                    Ok(closed) => {
                        ban.nick = nick_or_dash(nick);
                        ServerLine::Banned { ban, closed }
                    }
                    Err(_) => unknown,
                }
            }
            None => unknown,
        },
        "BANS" => {
            let numbers: Vec<Option<u64>> = rest.split(' ').map(|w| w.parse().ok()).collect();
            match numbers[..] {
                [Some(total), Some(page), Some(pages)] => {
                    ServerLine::BanList { total, page, pages }
                }
                _ => unknown,
            }
        }
        "BAN" => match ban_shown(rest) {
            Some((mut ban, rest)) => {
                let (set_at, rest) = first_word(rest);
                let (by, rest) = first_word(rest);
                let (nick, reason) = first_word(rest);
                if set_at.is_empty() || by.is_empty() || nick.is_empty() {
                    unknown
                } else {
                    ban.nick = nick_or_dash(nick);
                    ServerLine::BanEntry {
                        ban,
                        set_at,
                        by,
                        reason: opt(reason),
                    }
                }
            }
            None => unknown,
        },
        "UNBANNED" => match rest.parse() {
            Ok(n) => ServerLine::Unbanned(n),
            Err(_) => unknown,
        },
        "MUTED" => match rest
            .split_once(' ')
            .map(|(nick, m)| (nick, m.parse::<u64>()))
        {
            Some((nick, Ok(minutes))) if !nick.is_empty() => ServerLine::Muted {
                nick,
                minutes: (minutes > 0).then_some(minutes),
            },
            _ => unknown,
        },
        "UNMUTED" if !rest.is_empty() => ServerLine::Unmuted(rest),
        "DEOPER" if !rest.is_empty() => ServerLine::Deoper(rest),
        "ERROR" if !rest.is_empty() => {
            let (code, text) = first_word(rest);
            ServerLine::Error { code, text }
        }
        _ => unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_round_trip() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_word(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::from_word("nope"), None);
    }

    #[test]
    fn bounded_lines_are_cut_at_a_character_boundary() {
        let long = "é".repeat(3000);
        let mut out = Vec::new();
        push_bounded_line(&mut out, &["PONG", &long]);
        assert!(out.len() <= MAX_SERVER_LINE, "{}", out.len());
        assert!(out.len() >= MAX_SERVER_LINE - 1);
        let text = String::from_utf8(out).expect("still UTF-8");
        assert!(text.starts_with("PONG éé") && text.ends_with("é\n"));
        let mut short = Vec::new();
        push_bounded_line(&mut short, &["PONG", "x"]);
        assert_eq!(short, b"PONG x\n");
    }

    #[test]
    fn ids_history_and_session_lines() {
        assert_eq!(split_id("@42 MSG ana hola"), (Some(42), "MSG ana hola"));
        assert_eq!(split_id("MSG ana hola"), (None, "MSG ana hola"));
        assert_eq!(split_id("@x MSG"), (None, "@x MSG"));
        assert_eq!(
            parse_server_line("@42 MSG ana hola"),
            ServerLine::Msg {
                from: "ana",
                text: "hola"
            }
        );
        assert_eq!(
            parse_server_line("HISTORY 2026-11-30T09:15:02Z @7 ACTION bob saluda"),
            ServerLine::History {
                time: "2026-11-30T09:15:02Z",
                line: "ACTION bob saluda"
            }
        );
        assert_eq!(
            parse_server_line("SESSION abc 12"),
            ServerLine::Session {
                token: "abc",
                last: 12
            }
        );
        assert!(matches!(
            parse_server_line("SESSION abc"),
            ServerLine::Unknown(_)
        ));
    }

    #[test]
    fn push_line_joins_words() {
        let mut out = Vec::new();
        push_line(&mut out, &["MSG", "ana", "hola mundo"]);
        push_line(&mut out, &["PONG"]);
        assert_eq!(out, b"MSG ana hola mundo\nPONG\n");
    }

    #[test]
    fn short_user_list_is_one_line() {
        let mut out = Vec::new();
        push_user_list(&mut out, "", ["ana", "bob"].into_iter());
        assert_eq!(out, b"USERS 2 ana bob\n");
        out.clear();
        push_user_list(&mut out, "", std::iter::empty());
        assert_eq!(out, b"USERS 0\n");
    }

    #[test]
    fn long_user_list_is_split_into_lines_that_fit() {
        let nicks: Vec<String> = (0..1000)
            .map(|i| format!("user{i:05}_{}", "x".repeat(20)))
            .collect();
        let mut out = Vec::new();
        push_user_list(&mut out, "", nicks.iter().map(String::as_str));
        let text = String::from_utf8(out).unwrap();
        let mut seen = Vec::new();
        let mut total = None;
        for line in text.lines() {
            assert!(line.len() < MAX_SERVER_LINE, "{} bytes", line.len() + 1);
            match parse_server_line(line) {
                ServerLine::Users { total: n, nicks } => {
                    assert!(total.is_none());
                    total = Some(n);
                    seen.extend(nicks);
                }
                ServerLine::UsersMore(nicks) => seen.extend(nicks),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(total, Some(1000));
        assert_eq!(seen, nicks.iter().map(String::as_str).collect::<Vec<_>>());
        // In front of a room's name, each line still fits.
        let mut out = Vec::new();
        push_user_list(
            &mut out,
            "#una-sala-de-nombre-largo ",
            nicks.iter().map(String::as_str),
        );
        for line in String::from_utf8(out).unwrap().lines() {
            assert!(line.len() < MAX_SERVER_LINE, "{} bytes", line.len() + 1);
            assert!(
                line.starts_with("#una-sala-de-nombre-largo USERS"),
                "{line}"
            );
        }
        assert!(text.lines().count() > 5);
    }

    #[test]
    fn parses_every_server_line() {
        use ServerLine::*;
        assert_eq!(parse_server_line("WELCOME ana"), Welcome("ana"));
        assert_eq!(parse_server_line("JOIN bob"), Join("bob"));
        assert_eq!(
            parse_server_line("LEAVE bob quit"),
            Leave {
                nick: "bob",
                why: "quit",
                text: None
            }
        );
        // A user's reason comes after `quit`: it cannot pass for the server's.
        assert_eq!(
            parse_server_line("LEAVE bob quit too-slow"),
            Leave {
                nick: "bob",
                why: "quit",
                text: Some("too-slow")
            }
        );
        assert_eq!(
            parse_server_line("LEAVE bob too-slow"),
            Leave {
                nick: "bob",
                why: "too-slow",
                text: None
            }
        );
        assert_eq!(parse_server_line("LEAVE bob"), Unknown("LEAVE bob"));
        assert_eq!(
            parse_server_line("MSG bob hola a todos"),
            Msg {
                from: "bob",
                text: "hola a todos"
            }
        );
        assert_eq!(
            parse_server_line("ACTION bob saluda"),
            Action {
                from: "bob",
                text: "saluda"
            }
        );
        assert_eq!(
            parse_server_line("PRIVMSG bob psst"),
            Privmsg {
                from: "bob",
                text: "psst"
            }
        );
        assert_eq!(
            parse_server_line("NICK bob roberto"),
            Nick {
                old: "bob",
                new: "roberto"
            }
        );
        assert_eq!(parse_server_line("PONG"), Pong(None));
        assert_eq!(parse_server_line("PONG 7"), Pong(Some("7")));
        assert_eq!(
            parse_server_line("NOTICE server shutting down"),
            Notice("server shutting down")
        );
        assert_eq!(
            parse_server_line("ERROR nick-taken ana is taken"),
            Error {
                code: "nick-taken",
                text: "ana is taken"
            }
        );
        assert_eq!(parse_server_line("USERS+ c d"), UsersMore(vec!["c", "d"]));
        assert_eq!(
            parse_server_line("WHOIS ana online registered operator AB:CD:EF:01:23:45:67:89"),
            Whois {
                nick: "ana",
                presence: Presence::Online,
                registered: true,
                operator: true,
                fingerprint: Some("AB:CD:EF:01:23:45:67:89"),
                address: None,
            }
        );
        assert_eq!(
            parse_server_line("WHOIS bob away unregistered user no-identity 10.0.0.7"),
            Whois {
                nick: "bob",
                presence: Presence::Away,
                registered: false,
                operator: false,
                fingerprint: None,
                address: Some("10.0.0.7"),
            }
        );
        assert_eq!(
            parse_server_line("WHOIS bob offline unregistered user no-identity"),
            Whois {
                nick: "bob",
                presence: Presence::Offline,
                registered: false,
                operator: false,
                fingerprint: None,
                address: None,
            }
        );
        assert_eq!(
            parse_server_line("KICK ana bob stop it"),
            Kick {
                by: "ana",
                nick: "bob",
                reason: Some("stop it")
            }
        );
        assert_eq!(
            parse_server_line("KICK ana bob"),
            Kick {
                by: "ana",
                nick: "bob",
                reason: None
            }
        );
        assert_eq!(parse_server_line("OPER ana"), Oper("ana"));
        let ban = |kind, value, until, nick| BanShown {
            kind,
            value,
            until,
            nick,
        };
        assert_eq!(
            parse_server_line("REGISTERED ana AB:CD:EF:01:23:45:67:89 365"),
            Registered {
                nick: "ana",
                fingerprint: "AB:CD:EF:01:23:45:67:89",
                expires_days: 365
            }
        );
        assert_eq!(parse_server_line("UNREGISTERED ana"), Unregistered("ana"));
        assert_eq!(
            parse_server_line("BANNED address 127.0.0.1 2026-11-30T09:13:13Z 1 bob"),
            Banned {
                ban: ban(
                    "address",
                    "127.0.0.1",
                    Some("2026-11-30T09:13:13Z"),
                    Some("bob")
                ),
                closed: 1
            }
        );
        assert_eq!(
            parse_server_line("BANNED identity AB:CD permanent 0"),
            Banned {
                ban: ban("identity", "AB:CD", None, None),
                closed: 0
            }
        );
        assert_eq!(
            parse_server_line("BANS 120 2 3"),
            BanList {
                total: 120,
                page: 2,
                pages: 3
            }
        );
        assert_eq!(
            parse_server_line(
                "BAN address 10.0.0.1 permanent 2026-11-30T09:13:13Z ana bob spam, again"
            ),
            BanEntry {
                ban: ban("address", "10.0.0.1", None, Some("bob")),
                set_at: "2026-11-30T09:13:13Z",
                by: "ana",
                reason: Some("spam, again")
            }
        );
        assert_eq!(
            parse_server_line("BAN identity AB:CD permanent 2026-11-30T09:13:13Z ana -"),
            BanEntry {
                ban: ban("identity", "AB:CD", None, None),
                set_at: "2026-11-30T09:13:13Z",
                by: "ana",
                reason: None
            }
        );
        assert_eq!(parse_server_line("UNBANNED 2"), Unbanned(2));
        assert_eq!(
            parse_server_line("MUTED bob 30"),
            Muted {
                nick: "bob",
                minutes: Some(30)
            }
        );
        assert_eq!(
            parse_server_line("MUTED bob 0"),
            Muted {
                nick: "bob",
                minutes: None
            }
        );
        assert_eq!(parse_server_line("UNMUTED bob"), Unmuted("bob"));
        assert_eq!(
            parse_server_line("BANNED nonsense"),
            Unknown("BANNED nonsense")
        );
        assert_eq!(parse_server_line("DEOPER ana"), Deoper("ana"));
        assert_eq!(parse_server_line("HELLO"), Unknown("HELLO"));
        assert_eq!(parse_server_line("USERS x"), Unknown("USERS x"));
    }
}
