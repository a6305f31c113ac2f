//! Who counts as one address for the per-address limits (--max-per-ip, --max-joining-per-ip, the
//! password throttle): an IPv4 address, or an IPv6 /64 network, since one IPv6 host is usually
//! given a whole /64 and could otherwise use 2^64 addresses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

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

/// Connections counted per address key.
#[derive(Default)]
pub struct PerAddress(HashMap<IpAddr, usize>);

impl PerAddress {
    pub fn count(&self, key: IpAddr) -> usize {
        self.0.get(&key).copied().unwrap_or(0)
    }

    pub fn add(&mut self, key: IpAddr) -> usize {
        let n = self.0.entry(key).or_insert(0);
        *n += 1;
        *n
    }

    pub fn remove(&mut self, key: IpAddr) {
        if let Some(n) = self.0.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.0.remove(&key);
            }
        }
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
    fn counts_go_up_and_down_and_are_forgotten_at_zero() {
        let mut per = PerAddress::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(per.add(a), 1);
        assert_eq!(per.add(a), 2);
        per.remove(a);
        assert_eq!(per.count(a), 1);
        per.remove(a);
        assert!(per.0.is_empty());
    }
}
