//! The optional server password (`--password-file`): compared in constant time, and repeated
//! failures from one address slowed down.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use openssl::sha::sha256;

use crate::address::make_room;

pub struct Password {
    digest: [u8; 32],
}

impl Password {
    /// The first line of the file (without its line ending) is the password.
    pub fn load(path: &Path) -> Result<Password, String> {
        let line = charla_proto::files::first_line(path)
            .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?;
        if line.is_empty() {
            return Err(format!(
                "{}: the first line (the password) is empty",
                path.display()
            ));
        }
        // Clients drop spaces at the ends of what is typed (and `/pass` ignores them), so such a
        // password could never be given: refuse it now rather than every attempt later.
        if line.trim() != line {
            return Err(format!(
                "{}: the password starts or ends with a space or tab; remove it (spaces inside \
                 the password are fine)",
                path.display()
            ));
        }
        Ok(Password::from_text(&line))
    }

    pub fn from_text(password: &str) -> Password {
        Password {
            digest: sha256(password.as_bytes()),
        }
    }

    /// Comparing digests keeps the time independent of where, or whether, the two differ.
    pub fn matches(&self, given: &str) -> bool {
        openssl::memcmp::eq(&sha256(given.as_bytes()), &self.digest)
    }
}

/// Failed attempts per address: after [`FREE_FAILURES`] the address must wait, twice as long
/// after each further failure, up to [`MAX_WAIT`].
#[derive(Default)]
pub struct Throttle {
    by_ip: HashMap<IpAddr, Failures>,
}

struct Failures {
    count: u32,
    until: Instant,
    last: Instant,
}

/// Typing mistakes cost nothing.
const FREE_FAILURES: u32 = 3;
const MAX_WAIT: Duration = Duration::from_secs(60);
/// An address is forgotten this long after its last failure.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

impl Throttle {
    /// How long this address must still wait before its password is checked again.
    pub fn wait_left(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let f = self.by_ip.get(&ip)?;
        (f.until > now).then(|| f.until - now)
    }

    /// Records a failure; returns how long the address must now wait.
    pub fn failed(&mut self, ip: IpAddr, now: Instant) -> Duration {
        // Bounded: failures from more addresses than that forget the old ones first, then all.
        make_room(&mut self.by_ip, ip, |f| {
            now.saturating_duration_since(f.last) < FORGET_AFTER
        });
        let f = self.by_ip.entry(ip).or_insert(Failures {
            count: 0,
            until: now,
            last: now,
        });
        if now.saturating_duration_since(f.last) >= FORGET_AFTER {
            f.count = 0;
        }
        f.count += 1;
        f.last = now;
        let wait = match f.count.checked_sub(FREE_FAILURES) {
            None | Some(0) => Duration::ZERO,
            Some(n) => Duration::from_secs(1u64 << (n - 1).min(6)).min(MAX_WAIT),
        };
        f.until = now + wait;
        wait
    }

    pub fn succeeded(&mut self, ip: IpAddr) {
        self.by_ip.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_only_itself() {
        let dir = std::env::temp_dir().join(format!("charla-pass-{}", std::process::id()));
        std::fs::write(&dir, "s3cr3t o no\nsegunda línea\n").unwrap();
        let p = Password::load(&dir).unwrap();
        assert!(p.matches("s3cr3t o no"));
        assert!(!p.matches("s3cr3t"));
        assert!(!p.matches(""));
        std::fs::write(&dir, "\n").unwrap();
        assert!(Password::load(&dir)
            .err()
            .is_some_and(|e| e.contains("empty")));
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn failures_wait_longer_and_longer() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        let mut t = Throttle::default();
        let waits: Vec<u64> = (0..10).map(|_| t.failed(ip, t0).as_secs()).collect();
        assert_eq!(waits, vec![0, 0, 0, 1, 2, 4, 8, 16, 32, 60]);
        assert!(t.wait_left(ip, t0).is_some());
        assert!(
            t.wait_left(other, t0).is_none(),
            "other addresses are not affected"
        );
        assert!(t.wait_left(ip, t0 + Duration::from_secs(61)).is_none());
        t.succeeded(ip);
        assert!(t.wait_left(ip, t0).is_none());
    }

    #[test]
    fn failures_from_ever_more_addresses_stay_bounded() {
        let t0 = Instant::now();
        let mut t = Throttle::default();
        for i in 0..(crate::address::MAX_TRACKED as u32 + 10) {
            t.failed(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), t0);
        }
        assert!(t.by_ip.len() <= crate::address::MAX_TRACKED);
    }
}
