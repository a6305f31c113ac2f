//! Nickname rules: what a valid nickname is and when two are the same.

use std::fmt;

use unicode_security::{skeleton, GeneralSecurityProfile, MixedScript};

pub const MAX_NICK_CHARS: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NickError {
    Empty,
    TooLong,
    BadChar(char),
    /// A letter Unicode does not recommend in names: invisible fillers (U+3164), obsolete or
    /// limited-use characters.
    UnfitChar(char),
    /// Letters of more than one script, as in a Cyrillic "а" among Latin letters.
    MixedScripts,
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
            NickError::UnfitChar(c) => write!(
                f,
                "{c:?} (U+{:04X}) is not allowed in nicknames: it can be invisible or mistaken for another",
                *c as u32
            ),
            NickError::MixedScripts => write!(
                f,
                "a nickname uses the letters of one script (not Latin and Cyrillic together, for example)"
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
    // UTS #39's General Security Profile: no default-ignorable fillers, nothing obsolete.
    if let Some(c) = nick.chars().find(|c| !c.identifier_allowed()) {
        return Err(NickError::UnfitChar(c));
    }
    if !nick.is_single_script() {
        return Err(NickError::MixedScripts);
    }
    Ok(())
}

/// The key under which a nickname is unique: nicknames that differ only in case, or that look
/// the same (UTS #39 confusable skeletons: Greek "ΑΝΑ" and Latin "ANA"), are the same name.
pub fn nick_key(nick: &str) -> String {
    // Capitals first, so that case cannot matter: the skeleton of a capital may be a lower-case
    // letter other than its own ("I" → "l"), which made "anita" and "ANITA" two names.
    let upper = nick.to_uppercase();
    let lower = skeleton(&upper).collect::<String>().to_lowercase();
    // Lowercasing can make new look-alikes: the skeleton again.
    skeleton(&lower).collect()
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
        // "I" looks like "l": case must still not matter.
        assert_eq!(nick_key("ANITA"), nick_key("anita"));
        assert_eq!(nick_key("Anita"), nick_key("aNITA"));
        assert_eq!(
            nick_key("ANlTA"),
            nick_key("anita"),
            "l for I is a look-alike"
        );
        assert_ne!(nick_key("ana"), nick_key("ana2"));
    }

    #[test]
    fn invisible_and_unfit_characters_are_refused() {
        for filler in ['\u{3164}', '\u{FFA0}', '\u{115F}', '\u{1160}'] {
            assert_eq!(
                validate_nick(&format!("ana{filler}")),
                Err(NickError::UnfitChar(filler))
            );
            assert!(validate_nick(&filler.to_string()).is_err());
        }
    }

    #[test]
    fn one_script_per_nickname() {
        // A Cyrillic "а" (U+0430) among Latin letters.
        assert_eq!(validate_nick("\u{430}na"), Err(NickError::MixedScripts));
        for ok in [
            "анна",
            "Ελένη",
            "山田太郎",
            "やまだ",
            "ヤマダ_2",
            "محمد",
            "ana-2.b",
        ] {
            assert_eq!(validate_nick(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn names_that_look_the_same_are_the_same_name() {
        // Greek capitals that look like Latin ones.
        assert_eq!(nick_key("\u{391}\u{39D}\u{391}"), nick_key("ana"));
        assert_eq!(nick_key("ANA"), nick_key("ana"));
        assert_ne!(nick_key("ana"), nick_key("anna"));
        assert_ne!(nick_key("анна"), nick_key("ana"));
    }
}
