//! Nickname rules: what a valid nickname is and when two are the same.

use std::fmt;

pub const MAX_NICK_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NickError {
    Empty,
    TooLong,
    BadChar(char),
}

impl fmt::Display for NickError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NickError::Empty => write!(f, "a nickname cannot be empty"),
            NickError::TooLong => {
                write!(f, "a nickname has at most {MAX_NICK_CHARS} characters")
            }
            NickError::BadChar(c) => write!(
                f,
                "{c:?} is not allowed: use letters, digits, '_', '-' and '.'"
            ),
        }
    }
}

/// A nickname is 1 to 32 characters: Unicode letters and digits, `_`, `-` and `.`.
pub fn validate_nick(nick: &str) -> Result<(), NickError> {
    if nick.is_empty() {
        return Err(NickError::Empty);
    }
    if let Some(c) = nick
        .chars()
        .find(|&c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NickError::BadChar(c));
    }
    if nick.chars().count() > MAX_NICK_CHARS {
        return Err(NickError::TooLong);
    }
    Ok(())
}

/// The key under which a nickname is unique: nicknames differing only in case are the same person.
pub fn nick_key(nick: &str) -> String {
    nick.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_and_marks() {
        for ok in [
            "ana",
            "José",
            "Łukasz_2",
            "a.b-c",
            "名前",
            "x",
            &"z".repeat(32),
        ] {
            assert_eq!(validate_nick(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_nicks_with_reason() {
        assert_eq!(validate_nick(""), Err(NickError::Empty));
        assert_eq!(validate_nick(&"z".repeat(33)), Err(NickError::TooLong));
        assert_eq!(validate_nick("ana maría"), Err(NickError::BadChar(' ')));
        assert_eq!(validate_nick("/quit"), Err(NickError::BadChar('/')));
        assert_eq!(validate_nick("a\u{7}"), Err(NickError::BadChar('\u{7}')));
        assert!(NickError::BadChar(' ').to_string().contains("letters"));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(validate_nick(&"ñ".repeat(32)), Ok(()));
    }

    #[test]
    fn case_insensitive_key() {
        assert_eq!(nick_key("ÁNGEL"), nick_key("ángel"));
        assert_ne!(nick_key("ana"), nick_key("ana2"));
    }
}
