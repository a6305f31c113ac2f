//! What a server line means for a person: its parts, decoded for display.

use charla_proto::time::rfc3339_seconds;
use charla_proto::{parse_server_line, ServerLine};

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
        reason: Option<String>,
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
        online: bool,
        registered: bool,
        operator: bool,
        fingerprint: Option<String>,
        /// Given to operators only.
        address: Option<String>,
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
            ServerLine::Leave { nick, reason } => Shown::Left {
                nick: owned(nick),
                reason: reason.map(owned),
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
            ServerLine::History { time, line: said } => {
                let at = rfc3339_seconds(time).map_or_else(|| owned(time), local_label);
                let shown = self.decode(said)?;
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
                online,
                registered,
                operator,
                fingerprint,
                address,
            } => Shown::Whois {
                nick: owned(nick),
                online,
                registered,
                operator,
                fingerprint: fingerprint.map(owned),
                address: address.map(owned),
            },
            ServerLine::Welcome(_) | ServerLine::Session { .. } | ServerLine::Unknown(_) => {
                Shown::Other(owned(line))
            }
        })
    }
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
            d.decode("LEAVE bob"),
            Some(Shown::Left {
                nick: "bob".into(),
                reason: None
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
    fn clock_is_hh_mm() {
        let c = clock();
        assert_eq!(c.len(), 5);
        assert_eq!(&c[2..3], ":");
    }
}
