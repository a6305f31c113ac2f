//! What a server line means for a person: its parts, decoded for display.

use charla_proto::time::rfc3339_seconds;
use charla_proto::{parse_server_line, Presence, ServerLine};

/// A server line, decoded for display and for the user panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shown {
    Message {
        from: String,
        text: String,
    },
    Action {
        from: String,
        text: String,
    },
    Private {
        from: String,
        text: String,
    },
    Joined(String),
    Left {
        nick: String,
        /// One of `charla_proto::leave_reason`'s words (`quit`, `lost`, …).
        why: String,
        /// The user's own reason, after `quit`.
        text: Option<String>,
    },
    Renamed {
        old: String,
        new: String,
    },
    /// A complete user list (assembled from USERS and USERS+ lines).
    Users(Vec<String>),
    Pong(Option<String>),
    Notice(String),
    Error {
        code: String,
        text: String,
    },
    /// A line said before the user joined or while away: when (local time, with the date when
    /// not today) and what.
    History {
        at: String,
        shown: Box<Shown>,
    },
    /// An operator put `nick` out of the room.
    Kicked {
        by: String,
        nick: String,
        reason: Option<String>,
    },
    /// `nick` is an operator (after a user list, when it joins, when it becomes one).
    Operator(String),
    NotOperator(String),
    /// The answer to `/whois`.
    Whois {
        nick: String,
        presence: Presence,
        registered: bool,
        operator: bool,
        fingerprint: Option<String>,
        /// Given to operators only.
        address: Option<String>,
    },
    /// The server's answer to an operator's or a user's moderation command.
    Moderation(ModerationNotice),
    /// The answer to `/rooms`: how many, the page and how many pages, then each.
    RoomCount {
        total: usize,
        page: usize,
        pages: usize,
    },
    Room {
        name: String,
        members: usize,
        private: bool,
        topic: Option<String>,
    },
    /// A room's topic, and who set it (none: it has no topic).
    Topic {
        by: String,
        text: String,
    },
    NoTopic,
    /// Someone runs the room (`on`), or no longer does.
    RoomOperator {
        nick: String,
        on: bool,
    },
    /// An invitation to the user, and the answer to the user's `/invite`.
    Invited {
        from: String,
        room: String,
    },
    InviteSent {
        nick: String,
        room: String,
    },
    Other(String),
}

/// Turns server lines into [`Shown`] items, joining a user list split over several lines.
#[derive(Default)]
pub struct Decoder {
    users: Option<(usize, Vec<String>)>,
}

impl Decoder {
    pub fn decode(&mut self, line: &str) -> Option<Shown> {
        self.decode_line(line, true)
    }

    /// `line`, and within a `HISTORY` line the line it carries — one level only: a `HISTORY`
    /// inside a `HISTORY` is shown as it came (a hostile server nesting a million of them must
    /// not make this recurse a million times).
    fn decode_line(&mut self, line: &str, outer: bool) -> Option<Shown> {
        let owned = |s: &str| s.to_string();
        Some(match parse_server_line(line) {
            ServerLine::Msg { from, text } => Shown::Message {
                from: owned(from),
                text: owned(text),
            },
            ServerLine::Action { from, text } => Shown::Action {
                from: owned(from),
                text: owned(text),
            },
            ServerLine::Privmsg { from, text } => Shown::Private {
                from: owned(from),
                text: owned(text),
            },
            ServerLine::Join(nick) => Shown::Joined(owned(nick)),
            ServerLine::Leave { nick, why, text } => Shown::Left {
                nick: owned(nick),
                why: owned(why),
                text: text.map(owned),
            },
            ServerLine::Nick { old, new } => Shown::Renamed {
                old: owned(old),
                new: owned(new),
            },
            ServerLine::Users { total, nicks } => {
                let nicks: Vec<String> = nicks.into_iter().map(owned).collect();
                if nicks.len() >= total {
                    return Some(Shown::Users(nicks));
                }
                self.users = Some((total, nicks));
                return None;
            }
            ServerLine::UsersMore(more) => {
                let (total, mut nicks) = self.users.take()?;
                nicks.extend(more.into_iter().map(owned));
                if nicks.len() >= total {
                    return Some(Shown::Users(nicks));
                }
                self.users = Some((total, nicks));
                return None;
            }
            ServerLine::Pong(token) => Shown::Pong(token.map(owned)),
            ServerLine::Notice(text) => Shown::Notice(owned(text)),
            ServerLine::Error { code, text } => Shown::Error {
                code: owned(code),
                text: owned(text),
            },
            ServerLine::History { time, line: said } if outer => {
                let at = rfc3339_seconds(time).map_or_else(|| owned(time), local_label);
                let shown = self.decode_line(said, false)?;
                Shown::History {
                    at,
                    shown: Box::new(shown),
                }
            }
            ServerLine::Kick { by, nick, reason } => Shown::Kicked {
                by: owned(by),
                nick: owned(nick),
                reason: reason.map(owned),
            },
            ServerLine::Oper(nick) => Shown::Operator(owned(nick)),
            ServerLine::Deoper(nick) => Shown::NotOperator(owned(nick)),
            ServerLine::Whois {
                nick,
                presence,
                registered,
                operator,
                fingerprint,
                address,
            } => Shown::Whois {
                nick: owned(nick),
                presence,
                registered,
                operator,
                fingerprint: fingerprint.map(owned),
                address: address.map(owned),
            },
            ServerLine::Registered {
                nick, expires_days, ..
            } => Shown::Moderation(ModerationNotice::Registered {
                nick: owned(nick),
                expires_days,
            }),
            ServerLine::Unregistered(nick) => {
                Shown::Moderation(ModerationNotice::Unregistered(owned(nick)))
            }
            ServerLine::Banned { ban, closed } => Shown::Moderation(ModerationNotice::Banned {
                ban: ban_shown(ban),
                closed,
            }),
            ServerLine::BanList { total, page, pages } => {
                Shown::Moderation(ModerationNotice::BanList { total, page, pages })
            }
            ServerLine::BanEntry {
                ban, by, reason, ..
            } => Shown::Moderation(ModerationNotice::Ban {
                ban: ban_shown(ban),
                by: owned(by),
                reason: reason.map(owned),
            }),
            ServerLine::Unbanned(count) => Shown::Moderation(ModerationNotice::Unbanned(count)),
            ServerLine::Muted { nick, minutes } => Shown::Moderation(ModerationNotice::Muted {
                nick: owned(nick),
                minutes,
            }),
            ServerLine::Unmuted(nick) => Shown::Moderation(ModerationNotice::Unmuted(owned(nick))),
            ServerLine::Unknown(_) => room_line(line).unwrap_or_else(|| Shown::Other(owned(line))),
            ServerLine::History { .. } | ServerLine::Welcome(_) | ServerLine::Session { .. } => {
                Shown::Other(owned(line))
            }
        })
    }
}

/// The lines of rooms (docs/protocol.md, "Rooms") with their room name already taken off.
fn room_line(line: &str) -> Option<Shown> {
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    let owned = |s: &str| s.to_string();
    Some(match word {
        "ROOMS" => {
            let mut words = rest.split(' ').map(str::parse);
            match (words.next(), words.next(), words.next(), words.next()) {
                (Some(Ok(total)), Some(Ok(page)), Some(Ok(pages)), None) => {
                    Shown::RoomCount { total, page, pages }
                }
                _ => return None,
            }
        }
        "ROOM" => {
            let mut words = rest.splitn(4, ' ');
            let name = words.next()?;
            let members = words.next()?.parse().ok()?;
            let private = match words.next()? {
                "private" => true,
                "open" => false,
                _ => return None,
            };
            Shown::Room {
                name: owned(name),
                members,
                private,
                topic: words.next().map(owned),
            }
        }
        "TOPIC" => match rest.split_once(' ') {
            Some((by, text)) => Shown::Topic {
                by: owned(by),
                text: owned(text),
            },
            None => Shown::NoTopic,
        },
        "OP" | "DEOP" if !rest.is_empty() && !rest.contains(' ') => Shown::RoomOperator {
            nick: owned(rest),
            on: word == "OP",
        },
        "INVITE" | "INVITED" => {
            let (who, room) = rest.split_once(' ')?;
            if word == "INVITE" {
                Shown::Invited {
                    from: owned(who),
                    room: owned(room),
                }
            } else {
                Shown::InviteSent {
                    nick: owned(who),
                    room: owned(room),
                }
            }
        }
        _ => return None,
    })
}

/// A line of a room as a client that said `/cap rooms` gets it, `#<room> <line>`, or inside a
/// `HISTORY` line (`HISTORY <time> #<room> <line>`, its id already taken off): the room, and the
/// line as a client of one room would get it.
pub fn split_room(line: &str) -> (Option<&str>, std::borrow::Cow<'_, str>) {
    use std::borrow::Cow;
    if line.starts_with('#') {
        if let Some((room, rest)) = line.split_once(' ') {
            return (Some(room), Cow::Borrowed(rest));
        }
    }
    if let Some(history) = line.strip_prefix("HISTORY ") {
        if let Some((time, said)) = history.split_once(' ') {
            if said.starts_with('#') {
                if let Some((room, rest)) = said.split_once(' ') {
                    return (Some(room), Cow::Owned(format!("HISTORY {time} {rest}")));
                }
            }
        }
    }
    (None, Cow::Borrowed(line))
}

/// The first web address in `text` (`http://` or `https://` at the start of a word, up to the
/// next space), without the punctuation that usually ends a sentence after it; a closing
/// bracket stays when the address opened one (`…/Rust_(lenguaje)`). Other schemes (`file:`,
/// `javascript:`) are never links.
pub fn first_link(text: &str) -> Option<&str> {
    let mut from = 0;
    while let Some(found) = text[from..]
        .find("http://")
        .into_iter()
        .chain(text[from..].find("https://"))
        .min()
    {
        let start = from + found;
        let at_word_start = text[..start].chars().next_back().is_none_or(|c| {
            c.is_whitespace() || "([<\"'".contains(c) || is_bidi_control(c) || is_invisible(c)
        });
        // An address ends at a space, and at anything that would make what is shown differ from
        // what is opened: a control, a bidi control, an invisible format character.
        let end = text[start..]
            .find(|c: char| {
                c.is_whitespace() || c.is_control() || is_bidi_control(c) || is_invisible(c)
            })
            .map_or(text.len(), |n| start + n);
        let mut link = &text[start..end];
        while let Some(last) = link.chars().next_back() {
            let unbalanced_close = matches!(last, ')' | ']')
                && link.matches(if last == ')' { '(' } else { '[' }).count()
                    < link.matches(last).count();
            if !(".,;:!?\"'>".contains(last) || unbalanced_close) {
                break;
            }
            link = &link[..link.len() - last.len_utf8()];
        }
        let host = link.split_once("://").map_or("", |(_, rest)| rest);
        if at_word_start
            && host
                .chars()
                .next()
                .is_some_and(|c| c.is_alphanumeric() || c == '[')
        {
            return Some(link);
        }
        from = end.max(start + 1);
    }
    None
}

/// Zero-width and other invisible format characters (U+200B–U+200F, U+2060–U+206F, U+FEFF).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{2060}'..='\u{206F}' | '\u{FEFF}')
}

/// A SHA-256 fingerprint as people read it: its 32 bytes in four groups of eight, a space
/// between groups, so that a line breaks only between groups, never inside a byte (a person
/// reading one out to a friend must not split "3A" in two). The groups keep their colons, and a
/// copy of it still reads as the fingerprint (spaces are ignored wherever one is typed in).
pub fn fingerprint_groups(fingerprint: &str) -> String {
    let bytes: Vec<&str> = fingerprint.split(':').collect();
    if bytes.len() != 32 {
        return fingerprint.to_string();
    }
    bytes
        .chunks(8)
        .map(|group| group.join(":"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many colours nicknames are drawn in (`Theme.nick-colors`).
pub const NICK_COLORS: u32 = 8;

/// Which of the nickname colours `nick` is drawn in: the same for a nickname in every window and
/// every run, whatever its case (the server treats `Ana` and `ana` as one). FNV-1a: a hash for
/// spreading names over colours, not for security.
pub fn nick_color(nick: &str) -> i32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in nick.to_lowercase().bytes() {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    (hash % NICK_COLORS) as i32
}

/// Unicode's explicit bidirectional formatting characters: embeddings, overrides, isolates and
/// marks. In a message they can make text run backwards into what follows it.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

const FIRST_STRONG_ISOLATE: char = '\u{2068}';
const POP_DIRECTIONAL_ISOLATE: char = '\u{2069}';

/// `text` as a directional isolate: whatever bidi controls it holds end with it, and its
/// direction does not move what is shown around it (the sender's name). A pop that would close
/// an isolate opened outside the text is dropped; isolates the text leaves open are closed.
pub fn isolate(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    out.push(FIRST_STRONG_ISOLATE);
    let mut open = 0usize;
    for c in text.chars() {
        match c {
            '\u{2066}'..='\u{2068}' => open += 1,
            POP_DIRECTIONAL_ISOLATE if open == 0 => continue,
            POP_DIRECTIONAL_ISOLATE => open -= 1,
            _ => {}
        }
        out.push(c);
    }
    out.extend(std::iter::repeat_n(POP_DIRECTIONAL_ISOLATE, open + 1));
    out
}

/// `text` ready to show after a name: isolated when it holds bidi controls (plain text stays as
/// it is, so that what is copied from the log has nothing invisible in it).
pub fn contained(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(is_bidi_control) {
        std::borrow::Cow::Owned(isolate(text))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// `text` with its bidi controls written out as `\u{202E}`, for a terminal transcript.
pub fn escape_bidi(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(is_bidi_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_bidi_control(c) {
            out.push_str(&format!("\\u{{{:04X}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn local_tm(seconds: i64) -> libc::tm {
    let t = seconds as libc::time_t;
    // SAFETY: localtime_r writes only into the struct we pass.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        libc::localtime_r(&t, &mut tm);
        tm
    }
}

/// Today's local date, `YYYY-MM-DD`.
pub fn today() -> String {
    local_date(now_seconds())
}

fn local_date(seconds: i64) -> String {
    let tm = local_tm(seconds);
    format!(
        "{:04}-{:02}-{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday
    )
}

/// Live lines carry only `hh:mm`: when the date changes between two of them (a session across
/// midnight), a separator line says the new date.
#[derive(Default)]
pub struct DayMarker {
    last: Option<String>,
}

impl DayMarker {
    /// The separator to show before a live line of `day`, if the day changed since the last one.
    pub fn before_line_of(&mut self, day: &str) -> Option<String> {
        let changed = self.last.as_deref().is_some_and(|last| last != day);
        if self.last.as_deref() != Some(day) {
            self.last = Some(day.to_string());
        }
        changed.then(|| format!("— {day} —"))
    }
}

/// The local time as `hh:mm`.
pub fn clock() -> String {
    let tm = local_tm(now_seconds());
    format!("{:02}:{:02}", tm.tm_hour, tm.tm_min)
}

/// A moment in local time: `hh:mm` when it is today, else `YYYY-MM-DD hh:mm`.
pub fn local_label(seconds: i64) -> String {
    let (tm, today) = (local_tm(seconds), local_tm(now_seconds()));
    let time = format!("{:02}:{:02}", tm.tm_hour, tm.tm_min);
    if (tm.tm_year, tm.tm_yday) == (today.tm_year, today.tm_yday) {
        time
    } else {
        format!(
            "{:04}-{:02}-{:02} {time}",
            tm.tm_year + 1900,
            tm.tm_mon + 1,
            tm.tm_mday
        )
    }
}

/// Whom a ban is on, as an operator's notices say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanShown {
    /// `identity` or `address`.
    pub kind: String,
    pub value: String,
    /// The nickname it was made from.
    pub nick: Option<String>,
    /// When it ends, in local time (`None`: until lifted).
    pub until: Option<String>,
}

/// The server's answers to the moderation commands (docs/protocol.md, "Identity" and
/// "Operators").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModerationNotice {
    Registered {
        nick: String,
        /// Freed after this many days unused; 0: never.
        expires_days: u64,
    },
    Unregistered(String),
    Banned {
        ban: BanShown,
        closed: u64,
    },
    BanList {
        total: u64,
        page: u64,
        pages: u64,
    },
    Ban {
        ban: BanShown,
        by: String,
        reason: Option<String>,
    },
    Unbanned(u64),
    Muted {
        nick: String,
        minutes: Option<u64>,
    },
    Unmuted(String),
}

/// A ban as the protocol's line gives it, its end in local time.
fn ban_shown(ban: charla_proto::BanShown<'_>) -> BanShown {
    BanShown {
        kind: ban.kind.into(),
        value: ban.value.into(),
        nick: ban.nick.map(String::from),
        until: ban
            .until
            .map(|time| rfc3339_seconds(time).map_or_else(|| time.to_string(), local_label)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_a_split_user_list() {
        let mut d = Decoder::default();
        assert_eq!(d.decode("USERS 3 a b"), None);
        assert_eq!(
            d.decode("USERS+ c"),
            Some(Shown::Users(vec!["a".into(), "b".into(), "c".into()]))
        );
        assert_eq!(d.decode("USERS 1 a"), Some(Shown::Users(vec!["a".into()])));
    }

    #[test]
    fn a_new_day_is_marked_once_between_two_lines() {
        let mut days = DayMarker::default();
        assert_eq!(
            days.before_line_of("2026-11-30"),
            None,
            "not before the first line"
        );
        assert_eq!(days.before_line_of("2026-11-30"), None);
        assert_eq!(
            days.before_line_of("2026-12-01").as_deref(),
            Some("— 2026-12-01 —")
        );
        assert_eq!(days.before_line_of("2026-12-01"), None);
        assert_eq!(today().len(), 10);
    }

    #[test]
    fn moderation_lines_are_read_back() {
        use ModerationNotice::*;
        let mut d = Decoder::default();
        let mut decode = |line: &str| match d.decode(line) {
            Some(Shown::Moderation(said)) => Some(said),
            _ => None,
        };
        let ban = |kind: &str, value: &str, nick: Option<&str>| BanShown {
            kind: kind.into(),
            value: value.into(),
            nick: nick.map(String::from),
            until: None,
        };
        assert_eq!(
            decode("BANNED address 127.0.0.1 permanent 1 bob"),
            Some(Banned {
                ban: ban("address", "127.0.0.1", Some("bob")),
                closed: 1
            })
        );
        let Some(Banned { ban: timed, .. }) =
            decode("BANNED identity AB:CD 2026-11-30T09:13:13Z 0")
        else {
            panic!("not read");
        };
        assert!(timed.until.is_some_and(|t| t.contains(':')));
        assert_eq!(
            decode("BAN address 2001:db8:: permanent 2026-11-30T09:13:13Z ana - spam: again"),
            Some(Ban {
                ban: ban("address", "2001:db8::", None),
                by: "ana".into(),
                reason: Some("spam: again".into())
            })
        );
        assert_eq!(
            decode("BANS 3 1 1"),
            Some(BanList {
                total: 3,
                page: 1,
                pages: 1
            })
        );
        assert_eq!(decode("UNBANNED 2"), Some(Unbanned(2)));
        assert_eq!(
            decode("MUTED bob 5"),
            Some(Muted {
                nick: "bob".into(),
                minutes: Some(5)
            })
        );
        assert_eq!(decode("UNMUTED bob"), Some(Unmuted("bob".into())));
        assert_eq!(
            decode("REGISTERED ana AB:CD:EF:01:23:45:67:89 365"),
            Some(Registered {
                nick: "ana".into(),
                expires_days: 365
            })
        );
        assert_eq!(decode("UNREGISTERED ana"), Some(Unregistered("ana".into())));
    }

    /// Issue 21: a line of nested `HISTORY` prefixes from a hostile server made the decoder
    /// recurse once per prefix, and ~900 KB of them overflowed the network thread's stack. One
    /// level is decoded; a `HISTORY` inside one is shown as it came.
    #[test]
    fn nested_history_is_decoded_one_level_only() {
        let mut d = Decoder::default();
        let nested = "HISTORY 2026-11-30T09:15:02Z ".repeat(100_000) + "MSG ana hola";
        let Some(Shown::History { shown, .. }) = d.decode(&nested) else {
            panic!("not a history line");
        };
        assert!(matches!(*shown, Shown::Other(ref line) if line.starts_with("HISTORY ")));
        let Some(Shown::History { shown, .. }) =
            d.decode("HISTORY 2026-11-30T09:15:02Z MSG ana hola")
        else {
            panic!("not a history line");
        };
        assert_eq!(
            *shown,
            Shown::Message {
                from: "ana".into(),
                text: "hola".into()
            }
        );
    }

    #[test]
    fn a_fingerprint_is_shown_in_groups_that_read_back_the_same() {
        let fp = (0..32)
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let shown = fingerprint_groups(&fp);
        assert_eq!(
            shown,
            "00:01:02:03:04:05:06:07 08:09:0A:0B:0C:0D:0E:0F 10:11:12:13:14:15:16:17 18:19:1A:1B:1C:1D:1E:1F"
        );
        assert_eq!(charla_proto::normalize_fingerprint(&shown), Some(fp));
        assert_eq!(fingerprint_groups("AB:CD"), "AB:CD", "a short one as it is");
    }

    #[test]
    fn decodes_lines() {
        let mut d = Decoder::default();
        assert_eq!(
            d.decode("MSG ana hola"),
            Some(Shown::Message {
                from: "ana".into(),
                text: "hola".into()
            })
        );
        assert_eq!(
            d.decode("LEAVE bob quit hasta luego"),
            Some(Shown::Left {
                nick: "bob".into(),
                why: "quit".into(),
                text: Some("hasta luego".into())
            })
        );
        assert_eq!(d.decode("FOO bar"), Some(Shown::Other("FOO bar".into())));
    }

    #[test]
    fn bidi_controls_cannot_escape_an_isolated_message() {
        // An override left open ends with the isolate.
        assert_eq!(isolate("abc\u{202E}def"), "\u{2068}abc\u{202E}def\u{2069}");
        // A pop that would close the isolate early is dropped.
        assert_eq!(isolate("a\u{2069}\u{202E}b"), "\u{2068}a\u{202E}b\u{2069}");
        // Isolates opened inside are closed before it.
        assert_eq!(
            isolate("\u{2067}x\u{2066}y"),
            "\u{2068}\u{2067}x\u{2066}y\u{2069}\u{2069}\u{2069}"
        );
        // Balanced ones are kept as they are.
        assert_eq!(
            isolate("\u{2067}x\u{2069}"),
            "\u{2068}\u{2067}x\u{2069}\u{2069}"
        );
    }

    #[test]
    fn bidi_controls_are_written_out_for_a_terminal() {
        assert_eq!(escape_bidi("a\u{202E}b\u{200F}"), "a\\u{202E}b\\u{200F}");
        assert_eq!(escape_bidi("hola"), "hola");
    }

    #[test]
    fn server_times_are_read_and_shown_in_local_time() {
        let today = local_label(now_seconds());
        assert!(
            today.len() == 5 && today.as_bytes()[2] == b':',
            "today: the time alone: {today}"
        );
        let long_ago = local_label(86_400 * 365);
        assert!(long_ago.starts_with("1971-01-0"), "{long_ago}");
        let mut d = Decoder::default();
        let Some(Shown::History { at, shown }) =
            d.decode("HISTORY 1971-01-01T12:00:00Z MSG ana hola")
        else {
            panic!("not history");
        };
        assert!(
            at.starts_with("1971-01-01 ")
                || at.starts_with("1970-12-31 ")
                || at.starts_with("1971-01-02 "),
            "{at}"
        );
        assert_eq!(
            *shown,
            Shown::Message {
                from: "ana".into(),
                text: "hola".into()
            }
        );
    }

    #[test]
    fn the_first_web_address_is_found_without_the_sentence_around_it() {
        let cases = [
            (
                "mira https://example.org/a?b=1.",
                Some("https://example.org/a?b=1"),
            ),
            ("(ver http://x.es/y), luego", Some("http://x.es/y")),
            (
                "https://es.wikipedia.org/wiki/Rust_(lenguaje)",
                Some("https://es.wikipedia.org/wiki/Rust_(lenguaje)"),
            ),
            ("dos: https://a.org y https://b.org", Some("https://a.org")),
            ("\"https://q.org/\"", Some("https://q.org/")),
            (
                "nohttps://a.org ni file:///etc/passwd ni javascript:alert(1)",
                None,
            ),
            ("https:// vacío", None),
            ("https://", None),
            ("nada", None),
            (
                "xhttp://a.org y después http://[::1]:8080/",
                Some("http://[::1]:8080/"),
            ),
            // What is opened is what is shown: no bidi override or invisible part in it.
            (
                "https://evil.example/\u{202E}gpj.exe",
                Some("https://evil.example/"),
            ),
            ("\u{2068}https://x.org\u{2069}", Some("https://x.org")),
            ("https://a.org\u{200B}.b", Some("https://a.org")),
        ];
        for (text, link) in cases {
            assert_eq!(first_link(text), link, "{text}");
        }
    }

    #[test]
    fn a_nickname_keeps_its_colour_and_names_spread_over_all() {
        assert_eq!(nick_color("ana"), nick_color("ANA"));
        assert_eq!(nick_color("ana"), nick_color("ana"));
        let names = [
            "ana", "bob", "cleo", "dani", "eva", "fran", "gus", "hugo", "inés", "juan",
        ];
        let used: std::collections::HashSet<i32> = names.iter().map(|n| nick_color(n)).collect();
        assert!(used.iter().all(|&c| (0..NICK_COLORS as i32).contains(&c)));
        assert!(used.len() >= 5, "{used:?}");
    }

    #[test]
    fn clock_is_hh_mm() {
        let c = clock();
        assert_eq!(c.len(), 5);
        assert_eq!(&c[2..3], ":");
    }

    /// Issue 22: a room's lines arrive with the room in front; without it, they are read as a
    /// client of one room reads them.
    #[test]
    fn room_lines_are_split_from_their_room_and_read() {
        assert_eq!(
            split_room("#tareas MSG ana hola"),
            (Some("#tareas"), "MSG ana hola".into())
        );
        assert_eq!(
            split_room("HISTORY 2026-12-06T10:00:00Z #tareas MSG ana hola"),
            (
                Some("#tareas"),
                "HISTORY 2026-12-06T10:00:00Z MSG ana hola".into()
            )
        );
        assert_eq!(split_room("MSG ana #hola"), (None, "MSG ana #hola".into()));
        assert_eq!(split_room("#solo"), (None, "#solo".into()));
        let mut d = Decoder::default();
        assert_eq!(
            d.decode("ROOMS 2 1 1"),
            Some(Shown::RoomCount {
                total: 2,
                page: 1,
                pages: 1
            })
        );
        assert_eq!(
            d.decode("ROOM #tareas 3 private deberes del lunes"),
            Some(Shown::Room {
                name: "#tareas".into(),
                members: 3,
                private: true,
                topic: Some("deberes del lunes".into())
            })
        );
        assert_eq!(
            d.decode("TOPIC ana deberes del lunes"),
            Some(Shown::Topic {
                by: "ana".into(),
                text: "deberes del lunes".into()
            })
        );
        assert_eq!(d.decode("TOPIC -"), Some(Shown::NoTopic));
        assert_eq!(
            d.decode("DEOP bob"),
            Some(Shown::RoomOperator {
                nick: "bob".into(),
                on: false
            })
        );
        assert_eq!(
            d.decode("INVITE ana #club"),
            Some(Shown::Invited {
                from: "ana".into(),
                room: "#club".into()
            })
        );
        // Not a room line after all: shown as it came.
        assert_eq!(
            d.decode("ROOM #x lots open"),
            Some(Shown::Other("ROOM #x lots open".into()))
        );
    }
}
