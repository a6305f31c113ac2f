//! Why a connection ends: what the room is told, what the log says, and whether what is queued
//! for it is still sent.

use charla_proto::{leave_reason, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    Quit(Option<String>),
    PeerClosed,
    Lost(String),
    TooSlow,
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
    /// The reason others see in `LEAVE <nick> [reason]`.
    pub fn leave_text(&self) -> Option<&str> {
        match self {
            CloseReason::Quit(reason) => reason.as_deref(),
            CloseReason::PeerClosed => Some(leave_reason::CONNECTION_CLOSED),
            CloseReason::Lost(_) => Some(leave_reason::CONNECTION_LOST),
            CloseReason::TooSlow => Some(leave_reason::TOO_SLOW),
            CloseReason::RegisterTimeout | CloseReason::HandshakeTimeout => {
                Some(leave_reason::TIMEOUT)
            }
            CloseReason::HandshakeFailed(_) | CloseReason::Rejected(_) => None,
            CloseReason::Shutdown => Some(leave_reason::SHUTTING_DOWN),
            CloseReason::Kicked { reason, .. } => reason.as_deref(),
        }
    }

    /// Closed on the spot, without close_notify and without what was queued: the peer is gone,
    /// broken or not reading.
    pub fn abrupt(&self) -> bool {
        matches!(
            self,
            CloseReason::Lost(_)
                | CloseReason::TooSlow
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
