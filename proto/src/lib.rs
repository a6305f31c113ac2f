//! Charla protocol v1, shared by the server, the client, the benchmark tool and the tests.
//!
//! Every message is one line of UTF-8 ending in `\n`; see `docs/protocol.md`.

pub mod command;
pub mod files;
pub mod fingerprint;
pub mod framing;
pub mod identity;
pub mod io;
pub mod nick;
pub mod ready;
pub mod reply;
pub mod room;
pub mod time;

pub use command::{clean_text, cut_text, parse_client_line, ClientLine};
pub use fingerprint::{fingerprint, normalize_fingerprint, short_fingerprint};
pub use framing::{Frame, LineFramer};
pub use nick::{nick_key, validate_nick, NickError, MAX_NICK_CHARS};
pub use reply::{
    leave_reason, notice, parse_server_line, BanShown, ErrorCode, Presence, ServerLine,
};
pub use room::{is_room, room_key, validate_room, RoomNameError, ROOMS_PAGE};

/// The tutorial's port, kept so that its users find the server where they expect it.
pub const DEFAULT_PORT: u16 = 12345;

/// Longest server line the protocol promises, terminator included (the user list is split to fit).
pub const MAX_SERVER_LINE: usize = 4096;
