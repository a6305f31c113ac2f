//! Why a connection ends: what the room is told, what the log says, and whether what is queued
//! for it is still sent.

use charla_proto::{leave_reason, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    Quit(Option<String>),
    PeerClosed,
    Lost(String),
    /// Its queue passed --max-queue.
    TooSlow,
    /// Lines waited for it longer than --write-timeout without its socket taking any.
    Stalled,
    /// It held the most when the output for everyone passed --max-queue-total.
    Shed,
    HandshakeFailed(String),
    HandshakeTimeout,
    RegisterTimeout,
    /// Turned away after the handshake with this error (a limit, a wrong password).
    Rejected(ErrorCode),
    Shutdown,
    /// Put out by an operator (`/kick`, or a `/ban` that matched): the room gets `KICK` instead
    /// of `LEAVE`.
    Kicked {
        by: String,
        reason: Option<String>,
    },
}

impl CloseReason {
    /// What others see after `LEAVE <nick>`: why (one of `leave_reason`'s words), and for a
    /// `/quit` the user's own reason. `None` for a connection that never joined the room.
    pub fn leave_words(&self) -> Option<(&'static str, Option<&str>)> {
        Some(match self {
            CloseReason::Quit(reason) => (leave_reason::QUIT, reason.as_deref()),
            CloseReason::PeerClosed => (leave_reason::CONNECTION_CLOSED, None),
            CloseReason::Lost(_) => (leave_reason::CONNECTION_LOST, None),
            CloseReason::TooSlow | CloseReason::Stalled | CloseReason::Shed => {
                (leave_reason::TOO_SLOW, None)
            }
            CloseReason::RegisterTimeout | CloseReason::HandshakeTimeout => {
                (leave_reason::TIMEOUT, None)
            }
            CloseReason::HandshakeFailed(_) | CloseReason::Rejected(_) => return None,
            CloseReason::Shutdown => (leave_reason::SHUTTING_DOWN, None),
            // The room gets `KICK` instead.
            CloseReason::Kicked { .. } => return None,
        })
    }

    /// Closed on the spot, without close_notify and without what was queued: the peer is gone,
    /// broken or not reading.
    pub fn abrupt(&self) -> bool {
        matches!(
            self,
            CloseReason::Lost(_)
                | CloseReason::TooSlow
                | CloseReason::Stalled
                | CloseReason::Shed
                | CloseReason::HandshakeFailed(_)
                | CloseReason::HandshakeTimeout
        )
    }

    /// For the log.
    pub fn describe(&self) -> String {
        match self {
            CloseReason::Quit(_) => "quit".into(),
            CloseReason::PeerClosed => "connection closed by peer".into(),
            CloseReason::Lost(why) => format!("connection lost: {why}"),
            CloseReason::TooSlow => "too slow: send queue over --max-queue".into(),
            CloseReason::Stalled => "too slow: took nothing for --write-timeout".into(),
            CloseReason::Shed => {
                "too slow: held the most when all queues passed --max-queue-total".into()
            }
            CloseReason::HandshakeFailed(why) => format!("handshake failed: {why}"),
            CloseReason::HandshakeTimeout => "handshake timed out (--handshake-timeout)".into(),
            CloseReason::RegisterTimeout => "no nickname in time (--register-timeout)".into(),
            CloseReason::Rejected(ErrorCode::ServerFull) => "server full (--max-clients)".into(),
            CloseReason::Rejected(ErrorCode::TooManyConnections) => {
                "too many connections from this address (--max-per-ip or --max-connects-per-ip)"
                    .into()
            }
            CloseReason::Rejected(ErrorCode::BadPassword) => "wrong password".into(),
            CloseReason::Rejected(ErrorCode::Banned) => "banned".into(),
            CloseReason::Rejected(ErrorCode::NoIdentity) => {
                "no client certificate (--require-client-cert)".into()
            }
            CloseReason::Rejected(code) => code.as_str().into(),
            CloseReason::Shutdown => "server shutting down".into(),
            CloseReason::Kicked { by, .. } => format!("kicked by {by}"),
        }
    }
}
