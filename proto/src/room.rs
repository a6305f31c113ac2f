//! Room names: `#` and a name under the nickname rules (1 to 32 letters, digits, `_ - .`, one
//! script, nothing invisible), unique without regard to case or look-alike letters.

use std::fmt;

use crate::nick::{nick_key, validate_nick, NickError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomNameError {
    /// It does not start with `#`.
    NoHash,
    Name(NickError),
}

impl fmt::Display for RoomNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoomNameError::NoHash => write!(f, "a room's name starts with # (#general)"),
            RoomNameError::Name(e) => {
                let text = e.to_string().replace("a nickname", "a room's name");
                write!(f, "{}", text.replace("in nicknames", "in room names"))
            }
        }
    }
}

/// Rooms in one page of the answer to `/rooms` (docs/protocol.md, "Rooms"), at most.
pub const ROOMS_PAGE: usize = 100;

/// Whether `name` is a valid room name (`#` included).
pub fn validate_room(name: &str) -> Result<(), RoomNameError> {
    let rest = name.strip_prefix('#').ok_or(RoomNameError::NoHash)?;
    validate_nick(rest).map_err(RoomNameError::Name)
}

/// The key under which a room name is unique (`#` included): `#Tareas`, `#tareas` and a name
/// that only looks the same are one room.
pub fn room_key(name: &str) -> String {
    format!("#{}", nick_key(name.strip_prefix('#').unwrap_or(name)))
}

/// Whether a word names a room rather than a nickname (nicknames never start with `#`).
pub fn is_room(word: &str) -> bool {
    word.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_follow_the_nickname_rules_after_the_hash() {
        assert_eq!(validate_room("#general"), Ok(()));
        assert_eq!(validate_room("#tareas-2.año"), Ok(()));
        assert_eq!(validate_room("general"), Err(RoomNameError::NoHash));
        assert!(matches!(
            validate_room("#"),
            Err(RoomNameError::Name(NickError::Empty))
        ));
        assert!(matches!(
            validate_room("#a b"),
            Err(RoomNameError::Name(NickError::BadChar(' ')))
        ));
        assert!(matches!(
            validate_room("#pаypal"),
            Err(RoomNameError::Name(NickError::MixedScripts))
        ));
        assert!(validate_room(&format!("#{}", "a".repeat(33))).is_err());
        assert!(validate_room("#\u{3164}").is_err());
        assert!(RoomNameError::NoHash.to_string().contains('#'));
    }

    #[test]
    fn look_alike_and_differently_cased_names_are_one_room() {
        assert_eq!(room_key("#Tareas"), room_key("#tareas"));
        assert_eq!(room_key("#ΑΝΑ"), room_key("#ana"));
        assert_ne!(room_key("#ana"), room_key("#ane"));
        assert!(room_key("#x").starts_with('#'));
    }
}
