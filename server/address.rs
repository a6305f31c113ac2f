//! Who counts as one address for the per-address limits (--max-per-ip, --max-joining-per-ip, the
//! password throttle): an IPv4 address, or an IPv6 /64 network, since one IPv6 host is usually
//! given a whole /64 and could otherwise use 2^64 addresses.

use std::collections::HashMap;

use crate::log::log;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// The key an address is counted under.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            // An IPv4 client reaching a dual-stack listener is still that IPv4 address.
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

/// Connections counted per address key, and in all.
#[derive(Default)]
pub struct PerAddress {
    by_key: HashMap<IpAddr, usize>,
    total: usize,
}

impl PerAddress {
    pub fn count(&self, key: IpAddr) -> usize {
        self.by_key.get(&key).copied().unwrap_or(0)
    }

    /// Connections counted, all addresses together.
    pub fn total(&self) -> usize {
        self.total
    }

    pub fn add(&mut self, key: IpAddr) -> usize {
        self.total += 1;
        let n = self.by_key.entry(key).or_insert(0);
        *n += 1;
        *n
    }

    pub fn remove(&mut self, key: IpAddr) {
        if let Some(n) = self.by_key.get_mut(&key) {
            self.total -= 1;
            *n -= 1;
            if *n == 0 {
                self.by_key.remove(&key);
            }
        }
    }
}

/// How many addresses [`ConnectRate`] follows at most; past it, those whose allowance is full
/// again are forgotten, and if that is not enough, all (a flood from that many addresses is not
/// stopped by a per-address limit anyway).
pub const MAX_TRACKED: usize = 65_536;

/// Before `key` is added to a full map: keeps only the entries `still_needed` says are, and if
/// that frees nothing, forgets them all.
pub fn make_room<V>(
    map: &mut HashMap<IpAddr, V>,
    key: IpAddr,
    still_needed: impl FnMut(&V) -> bool,
) {
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        let mut still_needed = still_needed;
        map.retain(|_, value| still_needed(value));
        if map.len() >= MAX_TRACKED {
            map.clear();
        }
    }
}

/// New connections per address over time (--max-connects-per-ip): an allowance of N that refills
/// at N per minute, so that one address cannot churn connect-join-quit and drown the room in
/// JOIN and LEAVE lines.
#[derive(Default)]
pub struct ConnectRate {
    allowance: HashMap<IpAddr, (f64, Instant)>,
}

impl ConnectRate {
    /// Takes one new connection from `key`'s allowance; when none is left, how long until one
    /// is. `per_minute` 0 is no limit.
    pub fn take(&mut self, key: IpAddr, now: Instant, per_minute: u32) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let full = f64::from(per_minute);
        let per_second = full / 60.0;
        let refilled = |(left, at): (f64, Instant)| {
            (left + now.saturating_duration_since(at).as_secs_f64() * per_second).min(full)
        };
        make_room(&mut self.allowance, key, |entry| refilled(*entry) < full);
        let entry = self.allowance.entry(key).or_insert((full, now));
        let left = refilled(*entry);
        if left >= 1.0 {
            *entry = (left - 1.0, now);
            Ok(())
        } else {
            *entry = (left, now);
            Err(Duration::from_secs_f64((1.0 - left) / per_second))
        }
    }
}

/// When each address was last told why it was refused: telling takes a TLS handshake, so an
/// address is told at most once a second, and its other refused connections are closed at once.
#[derive(Default)]
pub struct Refusals {
    last_told: HashMap<IpAddr, Instant>,
}

impl Refusals {
    const EVERY: Duration = Duration::from_secs(1);

    pub fn may_tell(&mut self, key: IpAddr, now: Instant) -> bool {
        make_room(&mut self.last_told, key, |at| {
            now.saturating_duration_since(*at) < Self::EVERY
        });
        match self.last_told.get(&key) {
            Some(at) if now.saturating_duration_since(*at) < Self::EVERY => false,
            _ => {
                self.last_told.insert(key, now);
                true
            }
        }
    }
}

/// Why a connection was closed at once, without a handshake.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QuietClose {
    ServerFull,
    PerAddress,
    Joining,
    TooFast,
}

/// Connections closed at once for a limit, logged as one line a second: a line each would let
/// whoever connects in a loop grow the log as fast as it connects.
#[derive(Default)]
pub struct QuietCloses {
    /// Per [`QuietClose`]: how many, and the address (key) of the last one.
    counts: [(u64, Option<IpAddr>); 4],
    since: Option<Instant>,
}

impl QuietCloses {
    pub fn note(&mut self, why: QuietClose, key: IpAddr, now: Instant) {
        self.since.get_or_insert(now);
        let entry = &mut self.counts[why as usize];
        entry.0 += 1;
        entry.1 = Some(key);
    }

    pub fn due(&self) -> Option<Instant> {
        self.since.map(|since| since + Duration::from_secs(1))
    }

    pub fn report_if_due(&mut self, now: Instant) {
        if self.due().is_some_and(|due| due <= now) {
            self.report();
        }
    }

    pub fn report(&mut self) {
        const WHY: [&str; 4] = [
            "server full",
            "too many connections from",
            "too many joining from",
            "new connections too fast from",
        ];
        let mut total = 0;
        let mut parts = Vec::new();
        for (i, (count, key)) in self.counts.iter().enumerate() {
            if *count > 0 {
                total += count;
                match (i, key) {
                    (0, _) | (_, None) => parts.push(format!("{}: {count}", WHY[i])),
                    (_, Some(key)) => parts.push(format!("{} {key} (last): {count}", WHY[i])),
                }
            }
        }
        if total > 0 {
            log!(
                "limit: closed {total} connections at once in the last second ({})",
                parts.join(", ")
            );
        }
        *self = QuietCloses::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_64_network_and_ipv4_by_address() {
        let key = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_eq!(
            key("2001:db8:1:2:aaaa::1"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("192.0.2.1"), key("192.0.2.2"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.1"));
    }

    #[test]
    fn new_connections_come_out_of_an_allowance_that_refills() {
        let mut rate = ConnectRate::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..6 {
            assert_eq!(rate.take(a, t0, 6), Ok(()));
        }
        // Six a minute: the next one in ten seconds.
        let wait = rate.take(a, t0, 6).unwrap_err();
        assert!((9.9..=10.0).contains(&wait.as_secs_f64()), "{wait:?}");
        assert_eq!(
            rate.take(b, t0, 6),
            Ok(()),
            "another address is not affected"
        );
        assert_eq!(rate.take(a, t0 + Duration::from_secs(10), 6), Ok(()));
        assert!(rate.take(a, t0 + Duration::from_secs(10), 6).is_err());
        assert_eq!(rate.take(a, t0, 0), Ok(()), "0 is no limit");
    }

    #[test]
    fn an_address_is_told_why_at_most_once_a_second() {
        let mut told = Refusals::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        assert!(told.may_tell(a, t0));
        assert!(!told.may_tell(a, t0 + Duration::from_millis(999)));
        assert!(told.may_tell(b, t0));
        assert!(told.may_tell(a, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn counts_go_up_and_down_and_are_forgotten_at_zero() {
        let mut per = PerAddress::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(per.add(a), 1);
        assert_eq!(per.add(a), 2);
        per.remove(a);
        assert_eq!(per.count(a), 1);
        per.remove(a);
        assert!(per.by_key.is_empty());
        assert_eq!(per.total(), 0);
    }
}
