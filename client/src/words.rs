//! What the window and the terminal say, in the user's language: one presenter for both, so that
//! they cannot drift apart. The words are the window's `Strings` global (`ui/strings.slint`, and
//! its translations in `lang/`); the terminal reaches them through [`Words`], a window that is
//! never shown.

use charla_proto::{leave_reason, notice, ErrorCode, NickError, Presence, MAX_NICK_CHARS};
use slint::{ComponentHandle, SharedString};

use crate::net::{OsError, Problem};
use crate::present::{contained, fingerprint_groups, BanShown, ModerationNotice, Shown};
use crate::Strings;

/// A count for a Slint `int`.
fn int(n: u64) -> i32 {
    n.min(i32::MAX as u64) as i32
}

/// The words of a window nobody sees, for `charla --headless`: the same translations as the
/// window, in the language chosen (`--lang`, or the system's).
pub struct Words {
    window: crate::Words,
}

impl Words {
    /// Sets up the platform a hidden window needs (no display is used), then the window. Call
    /// once, before any other Slint use in the process.
    pub fn new(lang: Option<&str>) -> Result<Words, String> {
        let _ = slint::platform::set_platform(Box::new(Unseen));
        let window = crate::Words::new().map_err(|e| e.to_string())?;
        if let Some(lang) = lang {
            slint::select_bundled_translation(lang).map_err(|e| e.to_string())?;
        }
        Ok(Words { window })
    }

    pub fn strings(&self) -> Strings<'_> {
        self.window.global::<Strings>()
    }
}

/// A platform whose windows are never drawn: the terminal's words need a window's globals only.
struct Unseen;

impl slint::platform::Platform for Unseen {
    fn create_window_adapter(
        &self,
    ) -> Result<std::rc::Rc<dyn slint::platform::WindowAdapter>, slint::PlatformError> {
        Ok(
            slint::platform::software_renderer::MinimalSoftwareWindow::new(
                slint::platform::software_renderer::RepaintBufferType::NewBuffer,
            ),
        )
    }
}

/// A server's `ERROR <code> <text>`; the server's text is used only where it is a detail (a
/// nickname, a command, a usage, who kicked and why).
pub fn server_error(s: &Strings<'_>, code: &str, text: &str) -> SharedString {
    let Some(code) = ErrorCode::from_word(code) else {
        return s.invoke_err_other(code.into(), text.into());
    };
    match code {
        ErrorCode::NickInvalid => s.invoke_err_nick_invalid(text.into()),
        ErrorCode::NickTaken => s.invoke_err_nick_taken(),
        ErrorCode::NoSuchUser => s.invoke_err_no_such_user(text.into()),
        ErrorCode::UnknownCommand => {
            s.invoke_err_unknown_command(text.trim_start_matches('/').into())
        }
        ErrorCode::MissingArgument => s.invoke_err_missing_argument(text.into()),
        ErrorCode::LineTooLong => s.invoke_err_line_too_long(),
        ErrorCode::BadUtf8 => s.invoke_err_bad_utf8(),
        ErrorCode::Flood => s.invoke_err_flood(),
        ErrorCode::ServerFull => s.invoke_err_server_full(),
        ErrorCode::Timeout => s.invoke_err_timeout(),
        ErrorCode::PasswordRequired => s.invoke_err_password_required(),
        ErrorCode::BadPassword => s.invoke_err_bad_password(),
        ErrorCode::TooManyConnections => s.invoke_err_too_many_connections(),
        ErrorCode::NickRegistered => s.invoke_err_nick_registered(),
        ErrorCode::NoIdentity => s.invoke_err_no_identity(),
        ErrorCode::NotOperator => s.invoke_err_not_operator(),
        ErrorCode::Kicked => s.invoke_err_kicked(text.into()),
        ErrorCode::Banned => s.invoke_err_banned(text.into()),
        ErrorCode::Muted => s.invoke_err_muted(),
        ErrorCode::NoSuchBan => s.invoke_err_no_such_ban(text.into()),
        ErrorCode::RegistrationLimit => s.invoke_err_registration_limit(text.into()),
        ErrorCode::NotSaved => s.invoke_err_not_saved(),
        ErrorCode::IsOperator => s.invoke_err_is_operator(),
        ErrorCode::BanLimit => s.invoke_err_ban_limit(),
        ErrorCode::NoSuchRoom => s.invoke_err_no_such_room(text.into()),
        ErrorCode::BadRoomName => s.invoke_err_bad_room_name(text.into()),
        ErrorCode::InviteOnly => s.invoke_err_invite_only(),
        ErrorCode::BannedFromRoom => s.invoke_err_banned_from_room(),
        ErrorCode::TooManyRooms => s.invoke_err_too_many_rooms(text.into()),
        ErrorCode::NotRoomOperator => s.invoke_err_not_room_operator(),
        ErrorCode::NotInRoom => s.invoke_err_not_in_room(),
        ErrorCode::RoomExists => s.invoke_err_room_exists(),
        ErrorCode::RoomLimit => s.invoke_err_room_limit(text.into()),
    }
}

/// The server's answer when it did not let the user in (the registration refused).
pub fn refused_words(s: &Strings<'_>, code: ErrorCode, text: &str) -> SharedString {
    let why = server_error(s, code.as_str(), text);
    match code {
        ErrorCode::NickTaken | ErrorCode::NickInvalid | ErrorCode::NickRegistered => {
            s.invoke_nick_refused(why)
        }
        ErrorCode::PasswordRequired | ErrorCode::BadPassword => s.invoke_password_refused(why),
        _ => s.invoke_error(why),
    }
}

/// Why a nickname is refused before asking any server.
pub fn nick_refused(s: &Strings<'_>, error: NickError) -> SharedString {
    let why = match error {
        NickError::Empty => s.invoke_nick_empty(),
        NickError::TooLong => s.invoke_nick_too_long(MAX_NICK_CHARS as i32),
        NickError::BadChar(c) => s.invoke_nick_bad_char(format!("{c:?}").into()),
        NickError::UnfitChar(c) => {
            s.invoke_nick_unfit_char(format!("{c:?} (U+{:04X})", c as u32).into())
        }
        NickError::MixedScripts => s.invoke_nick_mixed_scripts(),
    };
    s.invoke_nick_refused(why)
}

/// The server's fixed notices; any other notice (free text) as it came.
pub fn notice_words(s: &Strings<'_>, text: &str) -> SharedString {
    if text == notice::SHUTTING_DOWN {
        return s.invoke_shutting_down();
    }
    if text == notice::PASSWORD_ACCEPTED || text == notice::PASSWORD_ALREADY_ACCEPTED {
        return s.invoke_password_accepted();
    }
    if let Some(nick) = text
        .strip_prefix(notice::NICK_UNCHANGED)
        .and_then(|rest| rest.strip_prefix(' '))
    {
        return s.invoke_nick_unchanged(nick.into());
    }
    if let Some(rest) = text.strip_prefix(notice::HISTORY_KEPT) {
        return s.invoke_history_kept(int(first_number(rest).unwrap_or(0)));
    }
    // "not held for" first: it ends with "held for".
    if let Some((nick, _)) = about(text, notice::NOT_HELD_FOR) {
        return s.invoke_not_held_for(nick.into());
    }
    if let Some((nick, rest)) = about(text, notice::HELD_FOR) {
        if let Some(seconds) = first_number(rest) {
            return s.invoke_held_for(nick.into(), int(seconds));
        }
    }
    if let Some((nick, rest)) = about(text, notice::NOT_DELIVERED_TO) {
        if let Some(count) = first_number(rest) {
            return s.invoke_not_delivered_to(nick.into(), int(count));
        }
    }
    text.into()
}

/// `<prefix> <nick>: <rest>`: the nickname and the rest.
fn about<'t>(text: &'t str, prefix: &str) -> Option<(&'t str, &'t str)> {
    text.strip_prefix(prefix)?
        .strip_prefix(' ')?
        .split_once(':')
}

/// The first word of `text` that is a number.
fn first_number(text: &str) -> Option<u64> {
    text.split_whitespace().find_map(|word| word.parse().ok())
}

/// The server's answers to the moderation commands.
pub fn moderation_words(s: &Strings<'_>, said: &ModerationNotice) -> SharedString {
    let target = |ban: &BanShown| {
        let what = if ban.kind == "identity" {
            s.invoke_identity_of(fingerprint_groups(&ban.value).into())
        } else {
            s.invoke_address_of(ban.value.as_str().into())
        };
        let who = match &ban.nick {
            Some(nick) => format!("{what} ({nick})"),
            None => what.to_string(),
        };
        let until = match &ban.until {
            Some(time) => s.invoke_until(time.as_str().into()),
            None => s.invoke_until_lifted(),
        };
        (SharedString::from(who), until)
    };
    match said {
        ModerationNotice::Registered {
            nick,
            expires_days: 0,
        } => s.invoke_registered(nick.into()),
        ModerationNotice::Registered { nick, expires_days } => {
            s.invoke_registered_expires(nick.into(), int(*expires_days))
        }
        ModerationNotice::Unregistered(nick) => s.invoke_unregistered(nick.into()),
        ModerationNotice::BanList { total, pages, .. } if *pages <= 1 => {
            s.invoke_bans_count(int(*total))
        }
        ModerationNotice::BanList { total, page, pages } => {
            s.invoke_bans_page(int(*total), int(*page), int(*pages))
        }
        ModerationNotice::Banned { ban, closed } => {
            let (who, until) = target(ban);
            s.invoke_banned_notice(who, until, int(*closed))
        }
        ModerationNotice::Ban { ban, by, reason } => {
            let (who, until) = target(ban);
            match reason {
                Some(reason) => s.invoke_ban_entry_because(
                    who,
                    until,
                    by.into(),
                    contained(reason).as_ref().into(),
                ),
                None => s.invoke_ban_entry(who, until, by.into()),
            }
        }
        ModerationNotice::Unbanned(count) => s.invoke_unbanned_notice(int(*count)),
        ModerationNotice::Muted {
            nick,
            minutes: Some(minutes),
        } => s.invoke_muted_for(nick.into(), int(*minutes)),
        ModerationNotice::Muted {
            nick,
            minutes: None,
        } => s.invoke_muted_until_unmuted(nick.into()),
        ModerationNotice::Unmuted(nick) => s.invoke_unmuted_notice(nick.into()),
    }
}

/// The server's word for why someone left.
pub fn leave_words(s: &Strings<'_>, why: &str) -> SharedString {
    match why {
        leave_reason::CONNECTION_CLOSED => s.invoke_reason_closed(),
        leave_reason::CONNECTION_LOST => s.invoke_reason_lost(),
        leave_reason::TOO_SLOW => s.invoke_reason_too_slow(),
        leave_reason::TIMEOUT => s.invoke_reason_timeout(),
        leave_reason::SHUTTING_DOWN => s.invoke_shutting_down(),
        // A reason this version does not know: the server's word.
        other => other.into(),
    }
}

/// Why a connection could not be made or was lost.
pub fn problem_words(s: &Strings<'_>, problem: &Problem) -> SharedString {
    let path = |p: &std::path::Path| SharedString::from(p.display().to_string());
    match problem {
        Problem::UnknownHost { host, .. } => s.invoke_unknown_host(host.into()),
        Problem::Unreachable { server, tries } => {
            let tried: Vec<String> = tries
                .iter()
                .map(|(addr, error)| format!("{addr}: {}", os_words(s, error)))
                .collect();
            s.invoke_unreachable(server.into(), tried.join("; ").into())
        }
        Problem::CertificateRejected { server, ca, detail } => {
            s.invoke_certificate_rejected(server.into(), path(ca), detail.into())
        }
        Problem::TlsFailed { server, detail } => s.invoke_tls_failed(server.into(), detail.into()),
        Problem::NoCertificate { server } => s.invoke_no_certificate(server.into()),
        Problem::CaUnreadable { path: p, error } => {
            s.invoke_ca_unreadable(path(p), os_words(s, error))
        }
        Problem::CaInvalid { path: p } => s.invoke_ca_invalid(path(p)),
        Problem::KnownServers { path: p, error } => {
            s.invoke_known_servers_failed(path(p), os_words(s, error))
        }
        Problem::NotTrusted { server } => s.invoke_not_trusted(server.into()),
        Problem::Busy { code, text } => server_error(s, code.as_str(), text),
        Problem::ServerClosed => s.invoke_server_closed(),
        Problem::NoAnswer { server } => s.invoke_no_answer(server.into()),
        Problem::Broken(error) => s.invoke_broken(os_words(s, error)),
        Problem::Internal(text) => text.into(),
    }
}

pub fn os_words(s: &Strings<'_>, error: &OsError) -> SharedString {
    match error {
        OsError::Refused => s.invoke_os_refused(),
        OsError::TimedOut => s.invoke_os_timed_out(),
        OsError::Reset => s.invoke_os_reset(),
        OsError::Unreachable => s.invoke_os_unreachable(),
        OsError::NotFound => s.invoke_os_not_found(),
        OsError::PermissionDenied => s.invoke_os_permission_denied(),
        OsError::Other(text) => text.into(),
    }
}

/// The line an event is told in, for those the window and the terminal both say as a line of
/// text (a message or an action is drawn with its sender apart, and a line of history with its
/// time: their callers put them together). `None`: nothing to say.
pub fn shown_words(s: &Strings<'_>, shown: &Shown) -> Option<SharedString> {
    Some(match shown {
        Shown::Message { from, text } => format!("<{from}> {text}").into(),
        Shown::Action { from, text } => format!("* {from} {text}").into(),
        Shown::Private { from, text } => {
            s.invoke_private_from(from.into(), contained(text).as_ref().into())
        }
        Shown::Joined(nick) => s.invoke_joined(nick.into()),
        Shown::Left { nick, why, text } => match (why.as_str(), text) {
            (leave_reason::QUIT, Some(reason)) => {
                s.invoke_left_because(nick.into(), contained(reason).as_ref().into())
            }
            (leave_reason::QUIT, None) => s.invoke_left(nick.into()),
            (leave_reason::PART, Some(reason)) => {
                s.invoke_left_room_because(nick.into(), contained(reason).as_ref().into())
            }
            (leave_reason::PART, None) => s.invoke_left_room(nick.into()),
            (why, _) => s.invoke_left_because(nick.into(), leave_words(s, why)),
        },
        Shown::Renamed { old, new } => s.invoke_renamed(old.into(), new.into()),
        Shown::Users(nicks) => {
            let mut nicks = nicks.clone();
            nicks.sort_by_key(|n| n.to_lowercase());
            s.invoke_user_list(nicks.len() as i32, nicks.join(", ").into())
        }
        Shown::Pong(_) => s.invoke_pong(),
        Shown::Notice(text) => s.invoke_notice(notice_words(s, text)),
        Shown::Error { code, text } => s.invoke_error(server_error(s, code, text)),
        Shown::History { shown, .. } => return shown_words(s, shown),
        Shown::Kicked { by, nick, reason } => match reason {
            Some(r) => {
                s.invoke_kicked_because(by.into(), nick.into(), contained(r).as_ref().into())
            }
            None => s.invoke_kicked(by.into(), nick.into()),
        },
        Shown::Operator(_) => return None,
        Shown::NotOperator(nick) => s.invoke_no_longer_operator(nick.into()),
        Shown::Whois {
            nick,
            presence,
            registered,
            operator,
            fingerprint,
            address,
        } => s.invoke_whois(
            nick.into(),
            match presence {
                Presence::Online => 0,
                Presence::Away => 1,
                Presence::Offline => 2,
            },
            *registered,
            *operator,
            fingerprint.as_deref().unwrap_or_default().into(),
            address.as_deref().unwrap_or_default().into(),
        ),
        Shown::Moderation(said) => s.invoke_notice(moderation_words(s, said)),
        Shown::RoomCount { total, page, pages } => {
            let n = |v: usize| v.min(i32::MAX as usize) as i32;
            if *pages > 1 {
                s.invoke_rooms_page(n(*total), n(*page), n(*pages))
            } else {
                s.invoke_rooms_count(n(*total))
            }
        }
        Shown::Room {
            name,
            members,
            private,
            topic,
        } => s.invoke_room_listed(
            name.into(),
            (*members).min(i32::MAX as usize) as i32,
            *private,
            contained(topic.as_deref().unwrap_or_default())
                .as_ref()
                .into(),
        ),
        Shown::Topic { by, text } => s.invoke_topic_is(by.into(), contained(text).as_ref().into()),
        Shown::NoTopic => s.invoke_no_topic(),
        Shown::RoomOperator { nick, on: true } => s.invoke_room_operator(nick.into()),
        Shown::RoomOperator { nick, on: false } => s.invoke_no_longer_room_operator(nick.into()),
        Shown::Invited { from, room } => s.invoke_invited_you(from.into(), room.into()),
        Shown::InviteSent { nick, room } => s.invoke_you_invited(nick.into(), room.into()),
        Shown::Other(line) => line.into(),
    })
}
