//! Who is who and who may do what: nicknames registered to a client certificate's fingerprint,
//! operators (`--operators`), bans and mutes, and the text of the files that keep them
//! (`--state-dir`). No I/O here: the chat core decides, `state.rs` reads and writes the files.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Instant;

use charla_proto::{nick_key, normalize_fingerprint, validate_nick};

use crate::address::address_key;

/// A client certificate's SHA-256 fingerprint, canonical (`AB:CD:…`, as `normalize_fingerprint`
/// writes it).
pub type Fingerprint = Box<str>;

pub const REGISTRATIONS_HEADER: &str = "charla-registrations 1";
/// The last second of the year 9999: no time in a state file is later.
const LAST_SECOND: u64 = 253_402_300_799;
pub const BANS_HEADER: &str = "charla-bans 1";

/// A line of a file that could not be read: its number (from 1) and why.
pub type LineError = (usize, String);

#[derive(Debug)]
pub struct Registration {
    /// As it was registered (the key is case- and look-alike-insensitive).
    pub nick: Box<str>,
    pub owner: Fingerprint,
}

/// Registered nicknames by nickname key.
#[derive(Default, Debug)]
pub struct Registrations {
    by_key: HashMap<String, Registration>,
}

impl Registrations {
    pub fn get(&self, nick: &str) -> Option<&Registration> {
        self.by_key.get(&nick_key(nick))
    }

    /// The owner of a nickname, if it is registered.
    pub fn owner(&self, nick: &str) -> Option<&str> {
        self.get(nick).map(|r| &*r.owner)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// How many nicknames this identity holds.
    pub fn count_of(&self, owner: &str) -> usize {
        self.by_key.values().filter(|r| &*r.owner == owner).count()
    }

    pub fn insert(&mut self, nick: &str, owner: &str) {
        let registration = Registration {
            nick: nick.into(),
            owner: owner.into(),
        };
        self.by_key.insert(nick_key(nick), registration);
    }

    pub fn remove(&mut self, nick: &str) -> Option<Registration> {
        self.by_key.remove(&nick_key(nick))
    }

    /// The file's text: the header, then `<fingerprint> <nickname>` per line, sorted.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<(&String, &Registration)> = self.by_key.iter().collect();
        lines.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = format!("{REGISTRATIONS_HEADER}\n# <fingerprint> <nickname>\n");
        for (_, r) in lines {
            let _ = writeln!(text, "{} {}", r.owner, r.nick);
        }
        text
    }

    pub fn parse(text: &str) -> Result<Registrations, LineError> {
        let mut registrations = Registrations::default();
        for (n, line) in content_lines(text, REGISTRATIONS_HEADER)? {
            let (fingerprint, nick) = line
                .split_once(' ')
                .ok_or((n, "expected '<fingerprint> <nickname>'".to_string()))?;
            let owner = normalize_fingerprint(fingerprint)
                .ok_or((n, format!("{fingerprint:?} is not a SHA-256 fingerprint")))?;
            validate_nick(nick).map_err(|e| (n, format!("nickname {nick:?}: {e}")))?;
            if registrations.get(nick).is_some() {
                return Err((n, format!("{nick} is registered twice")));
            }
            registrations.insert(nick, &owner);
        }
        Ok(registrations)
    }
}

/// Who a ban or a mute is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Identity(Fingerprint),
    /// An address key (`address_key`: an IPv4 address or an IPv6 /64).
    Address(IpAddr),
}

impl Target {
    /// A fingerprint or an address as an operator types it; anything else is taken for a
    /// nickname by the caller.
    pub fn parse(text: &str) -> Option<Target> {
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Some(Target::Address(address_key(ip)));
        }
        normalize_fingerprint(text).map(|fp| Target::Identity(fp.into()))
    }

    /// The target a user is known by: its identity if it has one, else its address.
    pub fn of(identity: Option<&str>, ip: IpAddr) -> Target {
        match identity {
            Some(fp) => Target::Identity(fp.into()),
            None => Target::Address(address_key(ip)),
        }
    }

    pub fn matches(&self, identity: Option<&str>, ip: IpAddr) -> bool {
        match self {
            Target::Identity(fp) => identity == Some(&**fp),
            Target::Address(key) => address_key(ip) == *key,
        }
    }

    /// `identity AB:CD:…` or `address 10.0.0.7` (`2001:db8::/64`).
    pub fn describe(&self) -> String {
        match self {
            Target::Identity(fp) => format!("identity {fp}"),
            Target::Address(IpAddr::V6(ip)) => format!("address {ip}/64"),
            Target::Address(ip) => format!("address {ip}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub target: Target,
    /// Unix seconds; `None`: until lifted.
    pub until: Option<u64>,
    /// Unix seconds.
    pub set_at: u64,
    /// The operator's nickname.
    pub by: Box<str>,
    /// The nickname it was made from, if it was (so that `/unban <nick>` finds it).
    pub nick: Option<Box<str>>,
    pub reason: Box<str>,
}

impl Ban {
    pub fn active(&self, now: u64) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

#[derive(Default, Clone, PartialEq, Debug)]
pub struct Bans {
    list: Vec<Ban>,
}

impl Bans {
    /// The ban that keeps out a connection with this identity from this address, if any.
    pub fn find(&self, identity: Option<&str>, ip: IpAddr, now: u64) -> Option<&Ban> {
        self.list
            .iter()
            .find(|b| b.active(now) && b.target.matches(identity, ip))
    }

    /// Adds a ban; one for the same target is replaced.
    pub fn add(&mut self, ban: Ban) {
        self.list.retain(|b| b.target != ban.target);
        self.list.push(ban);
    }

    /// Removes the bans `lift` picks; returns how many.
    pub fn remove_where(&mut self, lift: impl Fn(&Ban) -> bool) -> usize {
        let before = self.list.len();
        self.list.retain(|b| !lift(b));
        before - self.list.len()
    }

    /// Forgets the bans that have expired; returns whether there were any.
    pub fn expire(&mut self, now: u64) -> bool {
        self.remove_where(|b| !b.active(now)) > 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.list.iter()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// The file's text: the header, then one ban per line.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{BANS_HEADER}\n# <identity|address> <value> <until: unix seconds|permanent> \
             <set at: unix seconds> <by> <nickname|-> <reason>\n"
        );
        for b in &self.list {
            let (kind, value) = match &b.target {
                Target::Identity(fp) => ("identity", fp.to_string()),
                Target::Address(ip) => ("address", ip.to_string()),
            };
            let until = b.until.map_or("permanent".into(), |u| u.to_string());
            let nick = b.nick.as_deref().unwrap_or("-");
            let _ = writeln!(
                text,
                "{kind} {value} {until} {} {} {nick} {}",
                b.set_at, b.by, b.reason
            );
        }
        text
    }

    pub fn parse(text: &str) -> Result<Bans, LineError> {
        let mut bans = Bans::default();
        for (n, line) in content_lines(text, BANS_HEADER)? {
            let mut words = line.splitn(7, ' ');
            let mut word = |what: &str| {
                words
                    .next()
                    .filter(|w| !w.is_empty())
                    .ok_or((n, format!("{what} missing")))
            };
            let kind = word("the kind (identity or address)")?;
            let value = word("the value")?;
            let target = match (kind, Target::parse(value)) {
                ("identity", Some(t @ Target::Identity(_))) => t,
                ("address", Some(t @ Target::Address(_))) => t,
                _ => return Err((n, format!("{kind} {value:?} is not a valid target"))),
            };
            let until = match word("the end (unix seconds or 'permanent')")? {
                "permanent" => None,
                u => Some(
                    u.parse()
                        .ok()
                        .filter(|&t| t <= LAST_SECOND)
                        .ok_or((n, format!("bad end time {u:?}")))?,
                ),
            };
            let set_at = word("the time it was set")?;
            let set_at = set_at
                .parse()
                .ok()
                .filter(|&t| t <= LAST_SECOND)
                .ok_or((n, format!("bad time {set_at:?}")))?;
            let by = word("the operator")?.into();
            let nick = match word("the nickname (or -)")? {
                "-" => None,
                nick => Some(nick.into()),
            };
            let reason = words.next().unwrap_or("").into();
            bans.list.push(Ban {
                target,
                until,
                set_at,
                by,
                nick,
                reason,
            });
        }
        Ok(bans)
    }
}

/// The lines of a state file after its header, numbered, without comments and blank lines.
fn content_lines<'a>(
    text: &'a str,
    header: &str,
) -> Result<impl Iterator<Item = (usize, &'a str)>, LineError> {
    let mut lines = text.lines();
    if lines.next() != Some(header) {
        return Err((1, format!("expected the header {header:?}")));
    }
    Ok(lines
        .enumerate()
        .map(|(i, line)| (i + 2, line.trim_end()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#')))
}

/// A user silenced in public until `until` (in memory only).
pub struct Mute {
    pub target: Target,
    pub until: Option<Instant>,
    /// The nickname it was made from, for `/unmute <nick>`.
    pub nick: Box<str>,
}

#[derive(Default)]
pub struct Mutes {
    list: Vec<Mute>,
}

impl Mutes {
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn find(&self, identity: Option<&str>, ip: IpAddr, now: Instant) -> Option<&Mute> {
        self.list
            .iter()
            .find(|m| m.until.is_none_or(|until| until > now) && m.target.matches(identity, ip))
    }

    pub fn add(&mut self, mute: Mute, now: Instant) {
        self.list
            .retain(|m| m.target != mute.target && m.until.is_none_or(|until| until > now));
        self.list.push(mute);
    }

    pub fn remove_where(&mut self, lift: impl Fn(&Mute) -> bool) -> usize {
        let before = self.list.len();
        self.list.retain(|m| !lift(m));
        before - self.list.len()
    }
}

/// The fingerprints of the operators (`--operators FILE`).
#[derive(Default, Debug, PartialEq)]
pub struct Operators {
    fingerprints: HashSet<Fingerprint>,
}

impl Operators {
    /// One fingerprint per line (any form `normalize_fingerprint` reads, such as what
    /// `charla --show-identity` or `openssl x509 -fingerprint -sha256` prints); `#` starts a
    /// comment.
    pub fn parse(text: &str) -> Result<Operators, LineError> {
        let mut fingerprints = HashSet::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let fp = normalize_fingerprint(line).ok_or((
                i + 1,
                format!("{line:?} is not a SHA-256 fingerprint (64 hex digits)"),
            ))?;
            fingerprints.insert(fp.into());
        }
        Ok(Operators { fingerprints })
    }

    pub fn contains(&self, identity: Option<&str>) -> bool {
        identity.is_some_and(|fp| self.fingerprints.contains(fp))
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP_A: &str = "AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA:AA";

    #[test]
    fn registrations_round_trip_and_ignore_case() {
        let mut r = Registrations::default();
        r.insert("Ana", FP_A);
        r.insert("bob", FP_A);
        assert_eq!(r.owner("ANA"), Some(FP_A));
        assert_eq!(r.count_of(FP_A), 2);
        let again = Registrations::parse(&r.to_text()).unwrap();
        assert_eq!(again.owner("ana"), Some(FP_A));
        assert_eq!(&*again.get("ana").unwrap().nick, "Ana");
        assert_eq!(again.len(), 2);
    }

    #[test]
    fn a_bad_registrations_file_names_the_line() {
        let text = format!("{REGISTRATIONS_HEADER}\n# comment\n\n{FP_A} ana\nnot-a-fp bob\n");
        assert_eq!(Registrations::parse(&text).unwrap_err().0, 5);
        let twice = format!("{REGISTRATIONS_HEADER}\n{FP_A} ana\n{FP_A} ANA\n");
        assert!(Registrations::parse(&twice)
            .unwrap_err()
            .1
            .contains("twice"));
        assert_eq!(Registrations::parse("hello\n").unwrap_err().0, 1);
        let bad_nick = format!("{REGISTRATIONS_HEADER}\n{FP_A} a b\n");
        assert_eq!(Registrations::parse(&bad_nick).unwrap_err().0, 2);
    }

    #[test]
    fn bans_round_trip_expire_and_match() {
        let mut bans = Bans::default();
        bans.add(Ban {
            target: Target::Identity(FP_A.into()),
            until: None,
            set_at: 100,
            by: "op".into(),
            nick: Some("troll".into()),
            reason: "spam, again".into(),
        });
        bans.add(Ban {
            target: Target::parse("2001:db8::1").unwrap(),
            until: Some(200),
            set_at: 100,
            by: "op".into(),
            nick: None,
            reason: "".into(),
        });
        let again = Bans::parse(&bans.to_text()).unwrap();
        assert_eq!(again, bans);
        let other_host_same_64: IpAddr = "2001:db8::99".parse().unwrap();
        let elsewhere: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(bans.find(None, other_host_same_64, 150).is_some());
        assert!(bans.find(None, other_host_same_64, 200).is_none());
        assert!(bans.find(Some(FP_A), elsewhere, 10_000).is_some());
        assert!(bans.find(None, elsewhere, 10).is_none());
        assert!(bans.expire(200));
        assert_eq!(bans.len(), 1);
        let bad = format!("{BANS_HEADER}\nidentity {FP_A} soon 1 op - x\n");
        assert_eq!(Bans::parse(&bad).unwrap_err().0, 2);
        let far = format!("{BANS_HEADER}\naddress 10.0.0.1 99999999999999 1 op - x\n");
        assert!(Bans::parse(&far).unwrap_err().1.contains("bad end time"));
        let bad = format!("{BANS_HEADER}\naddress {FP_A} permanent 1 op - x\n");
        assert!(Bans::parse(&bad)
            .unwrap_err()
            .1
            .contains("not a valid target"));
    }

    #[test]
    fn operators_file_takes_any_fingerprint_form_and_comments() {
        let lower = FP_A.replace(':', "").to_lowercase();
        let text = format!("# the operators\n{lower}  # ana\n\nsha256 Fingerprint={FP_A}\n");
        let ops = Operators::parse(&text).unwrap();
        assert_eq!(ops.len(), 1);
        assert!(ops.contains(Some(FP_A)));
        assert!(!ops.contains(None));
        assert_eq!(Operators::parse("x\nzz\n").unwrap_err().0, 1);
    }
}
