//! Who may connect: connections counted per address and in all, new connections per address
//! over time, and the refusals — told after the TLS handshake when that is worth its cost, else
//! a quiet close counted in the once-a-second log line. Part of the chat core: no I/O.

use std::net::IpAddr;
use std::time::Instant;

use charla_proto::ErrorCode;

use crate::address::{ConnectRate, PerAddress, QuietClose, QuietCloses, Refusals};
use crate::clock::seconds_up;
use crate::config::Config;

/// Connections accepted past --max-clients only to be told `ERROR server-full`; past this many
/// more, a connection is closed without a word (TLS would cost more than it is worth).
pub const OVER_CAPACITY_GRACE: usize = 64;
/// A refused connection is let in to be told why only while its address has fewer than this many
/// connections still joining; else it is closed at once.
const REFUSALS_TOLD: usize = 4;

/// What to do with a new connection.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Go on with the TLS handshake; with a refusal, only to be told it after the handshake.
    Let(Option<Refusal>),
    /// Close it at once, without a word.
    Close,
}

/// The error a connection accepted over a limit gets once its TLS is up.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub text: Box<str>,
}

/// The per-address counts and allowances behind [`Admission`].
#[derive(Default)]
pub struct AdmissionControl {
    /// Open connections per address key, for --max-per-ip.
    per_address: PerAddress,
    /// Connections per address key still handshaking or without a nickname.
    joining: PerAddress,
    connect_rate: ConnectRate,
    refusals: Refusals,
    quiet_closes: QuietCloses,
}

impl AdmissionControl {
    /// Whether a connection from address `key` comes in while `open` connections are open.
    pub fn decide(&mut self, key: IpAddr, open: usize, now: Instant, cfg: &Config) -> Admission {
        if open >= cfg.max_clients + OVER_CAPACITY_GRACE {
            self.quiet_closes.note(QuietClose::ServerFull, key, now);
            return Admission::Close;
        }
        if self.joining.count(key) >= cfg.max_joining_per_ip {
            self.quiet_closes.note(QuietClose::Joining, key, now);
            return Admission::Close;
        }
        let too_fast = self
            .connect_rate
            .take(key, now, cfg.max_connects_per_ip)
            .err();
        let refusal = if open >= cfg.max_clients {
            QuietClose::ServerFull
        } else if cfg.max_per_ip > 0 && self.per_address.count(key) >= cfg.max_per_ip {
            QuietClose::PerAddress
        } else if too_fast.is_some() {
            QuietClose::TooFast
        } else {
            return Admission::Let(None);
        };
        // Telling why takes a TLS handshake: an address is told while it has few connections
        // still joining, and once a second; past that it is closed at once.
        if self.joining.count(key) >= REFUSALS_TOLD || !self.refusals.may_tell(key, now) {
            self.quiet_closes.note(refusal, key, now);
            return Admission::Close;
        }
        let (code, text) = match refusal {
            QuietClose::ServerFull => (
                ErrorCode::ServerFull,
                "the server is full, try again later".to_string(),
            ),
            QuietClose::TooFast => (
                ErrorCode::TooManyConnections,
                format!(
                    "too many new connections from your address; try again in {} s",
                    seconds_up(too_fast.unwrap_or_default())
                ),
            ),
            _ => (
                ErrorCode::TooManyConnections,
                "too many connections from your address".to_string(),
            ),
        };
        Admission::Let(Some(Refusal {
            code,
            text: text.into(),
        }))
    }

    /// A connection that was let in is open: it counts against its address, as joining.
    pub fn opened(&mut self, key: IpAddr) {
        self.per_address.add(key);
        self.joining.add(key);
    }

    /// It has a nickname: no longer joining.
    pub fn joined(&mut self, key: IpAddr) {
        self.joining.remove(key);
    }

    /// It is on its way out: it no longer counts (nor as joining, if it still was).
    pub fn ended(&mut self, key: IpAddr, was_joining: bool) {
        if was_joining {
            self.joining.remove(key);
        }
        self.per_address.remove(key);
    }

    /// Open connections from `key`.
    pub fn count(&self, key: IpAddr) -> usize {
        self.per_address.count(key)
    }

    /// Connections from `key` still handshaking or without a nickname.
    #[cfg(test)]
    pub fn joining(&self, key: IpAddr) -> usize {
        self.joining.count(key)
    }

    /// Open connections, all addresses together.
    pub fn total(&self) -> usize {
        self.per_address.total()
    }

    /// When the count of quiet closes is next due in the log.
    pub fn due(&self) -> Option<Instant> {
        self.quiet_closes.due()
    }

    pub fn report_if_due(&mut self, now: Instant) {
        self.quiet_closes.report_if_due(now);
    }

    /// Logs the quiet closes now (the server stops).
    pub fn report(&mut self) {
        self.quiet_closes.report();
    }
}
