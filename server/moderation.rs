//! Who is who and who may do what: nicknames registered to a client certificate's fingerprint,
//! operators (`--operators`), bans and mutes, and the text of the files that keep them
//! (`--state-dir`). No I/O here: the chat core decides, `state.rs` reads and writes the files.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Instant;

use charla_proto::{nick_key, normalize_fingerprint, validate_nick};

use crate::address::address_key;

/// A client certificate's SHA-256 fingerprint, canonical (`AB:CD:…`, as `normalize_fingerprint`
/// writes it).
pub type Fingerprint = Box<str>;

/// Written by this server; `charla-registrations 1` (without the time of last use) is read too.
pub const REGISTRATIONS_HEADER: &str = "charla-registrations 2";
const REGISTRATIONS_HEADER_V1: &str = "charla-registrations 1";
/// The last second of the year 9999: no time in a state file is later.
const LAST_SECOND: u64 = 253_402_300_799;
pub const BANS_HEADER: &str = "charla-bans 1";
/// A ban's reason is cut to this many bytes: it is shown in a `KICK` line and the ban list.
pub const MAX_BAN_REASON: usize = 300;

/// A line of a file that could not be read: its number (from 1) and why.
pub type LineError = (usize, String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// As it was registered (the key is case- and look-alike-insensitive).
    pub nick: Box<str>,
    pub owner: Fingerprint,
    /// Unix seconds when its owner last took it (or registered it): an unused registration
    /// expires (--registration-expiry).
    pub last_used: u64,
}

/// Registered nicknames by nickname key, with what finding them by owner and by age needs:
/// every lookup and change is O(log n), so that a million of them cost the loop nothing more.
#[derive(Default, Debug, Clone)]
pub struct Registrations {
    by_key: HashMap<String, Registration>,
    /// How many nicknames each identity holds.
    per_owner: HashMap<Fingerprint, usize>,
    /// (last used, key), oldest first: what expires next.
    by_use: BTreeSet<(u64, String)>,
}

impl Registrations {
    pub fn get(&self, nick: &str) -> Option<&Registration> {
        self.by_key.get(&nick_key(nick))
    }

    pub fn get_key(&self, key: &str) -> Option<&Registration> {
        self.by_key.get(key)
    }

    /// The owner of a nickname, if it is registered.
    pub fn owner(&self, nick: &str) -> Option<&str> {
        self.get(nick).map(|r| &*r.owner)
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// How many nicknames this identity holds.
    pub fn count_of(&self, owner: &str) -> usize {
        self.per_owner.get(owner).copied().unwrap_or(0)
    }

    /// Registers a nickname (replacing a registration of the same key); returns the one replaced.
    pub fn insert(&mut self, registration: Registration) -> Option<Registration> {
        let key = nick_key(&registration.nick);
        let old = self.remove_key(&key);
        *self
            .per_owner
            .entry(registration.owner.clone())
            .or_insert(0) += 1;
        self.by_use.insert((registration.last_used, key.clone()));
        self.by_key.insert(key, registration);
        old
    }

    pub fn remove(&mut self, nick: &str) -> Option<Registration> {
        self.remove_key(&nick_key(nick))
    }

    pub fn remove_key(&mut self, key: &str) -> Option<Registration> {
        let old = self.by_key.remove(key)?;
        self.by_use.remove(&(old.last_used, key.to_string()));
        if let Some(n) = self.per_owner.get_mut(&old.owner) {
            *n -= 1;
            if *n == 0 {
                self.per_owner.remove(&old.owner);
            }
        }
        Some(old)
    }

    /// Its owner took the nickname at `at`.
    pub fn touch(&mut self, key: &str, at: u64) {
        if let Some(r) = self.by_key.get_mut(key) {
            if r.last_used < at {
                self.by_use.remove(&(r.last_used, key.to_string()));
                r.last_used = at;
                self.by_use.insert((at, key.to_string()));
            }
        }
    }

    /// Removes at most `max` registrations last used before `before`, oldest first.
    pub fn take_unused(&mut self, before: u64, max: usize) -> Vec<Registration> {
        let mut gone = Vec::new();
        while gone.len() < max {
            let Some((at, key)) = self.by_use.first().cloned() else {
                break;
            };
            if at >= before {
                break;
            }
            match self.remove_key(&key) {
                Some(r) => gone.push(r),
                None => {
                    self.by_use.remove(&(at, key));
                }
            }
        }
        gone
    }

    /// The file's text: the header, then `<fingerprint> <nickname> <last used>` per line, sorted.
    pub fn to_text(&self) -> String {
        let mut lines: Vec<(&String, &Registration)> = self.by_key.iter().collect();
        lines.sort_by(|a, b| a.0.cmp(b.0));
        let mut text = format!(
            "{REGISTRATIONS_HEADER}\n# <fingerprint> <nickname> <last used: unix seconds>\n"
        );
        for (_, r) in lines {
            let _ = writeln!(text, "{} {} {}", r.owner, r.nick, r.last_used);
        }
        text
    }

    /// Reads the file; registrations of the first format, which has no time of last use, count
    /// as used at `now`.
    pub fn parse(text: &str, now: u64) -> Result<Registrations, LineError> {
        let mut registrations = Registrations::default();
        let header = text.lines().next().unwrap_or("");
        let header = if header == REGISTRATIONS_HEADER_V1 {
            REGISTRATIONS_HEADER_V1
        } else {
            REGISTRATIONS_HEADER
        };
        for (n, line) in content_lines(text, header)? {
            let mut words = line.split(' ');
            let (Some(fingerprint), Some(nick)) = (words.next(), words.next()) else {
                return Err((
                    n,
                    "expected '<fingerprint> <nickname> <last used>'".to_string(),
                ));
            };
            let owner = normalize_fingerprint(fingerprint)
                .ok_or((n, format!("{fingerprint:?} is not a SHA-256 fingerprint")))?;
            validate_nick(nick).map_err(|e| (n, format!("nickname {nick:?}: {e}")))?;
            let last_used = match (header, words.next()) {
                (REGISTRATIONS_HEADER_V1, None) => now,
                (_, Some(at)) => at
                    .parse()
                    .ok()
                    .filter(|&t| t <= LAST_SECOND)
                    .ok_or((n, format!("bad time of last use {at:?}")))?,
                (_, None) => return Err((n, "the time of last use is missing".to_string())),
            };
            if words.next().is_some() {
                return Err((
                    n,
                    "expected '<fingerprint> <nickname> <last used>'".to_string(),
                ));
            }
            if registrations.get(nick).is_some() {
                return Err((n, format!("{nick} is registered twice")));
            }
            registrations.insert(Registration {
                nick: nick.into(),
                owner: owner.into(),
                last_used,
            });
        }
        Ok(registrations)
    }
}

/// Who a ban or a mute is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

    /// `("identity", "AB:CD:…")` or `("address", "10.0.0.7")`, as the protocol's lines say it.
    pub fn words(&self) -> (&'static str, String) {
        match self {
            Target::Identity(fp) => ("identity", fp.to_string()),
            Target::Address(ip) => ("address", ip.to_string()),
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

/// Bans by target, with what finding them by nickname and by end needs: each lookup and change
/// is O(log n), so that a hundred thousand bans cost `/ban`, a new connection or `/bans` no more
/// than a few.
#[derive(Default, Clone, PartialEq, Debug)]
pub struct Bans {
    by_target: BTreeMap<Target, Ban>,
    /// Nickname key → the targets of the bans made from that nickname.
    by_nick: HashMap<String, BTreeSet<Target>>,
    /// (end, target) of the bans that end: what expires next.
    by_end: BTreeSet<(u64, Target)>,
}

impl Bans {
    /// The ban that keeps out a connection with this identity from this address, if any.
    pub fn find(&self, identity: Option<&str>, ip: IpAddr, now: u64) -> Option<&Ban> {
        let by_identity = identity.and_then(|fp| self.by_target.get(&Target::Identity(fp.into())));
        by_identity
            .into_iter()
            .chain(self.by_target.get(&Target::Address(address_key(ip))))
            .find(|b| b.active(now))
    }

    pub fn get(&self, target: &Target) -> Option<&Ban> {
        self.by_target.get(target)
    }

    /// Adds a ban; returns the one it replaces (the same target).
    pub fn add(&mut self, ban: Ban) -> Option<Ban> {
        let old = self.remove(&ban.target);
        if let Some(nick) = &ban.nick {
            self.by_nick
                .entry(nick_key(nick))
                .or_default()
                .insert(ban.target.clone());
        }
        if let Some(until) = ban.until {
            self.by_end.insert((until, ban.target.clone()));
        }
        self.by_target.insert(ban.target.clone(), ban);
        old
    }

    pub fn remove(&mut self, target: &Target) -> Option<Ban> {
        let old = self.by_target.remove(target)?;
        if let Some(nick) = &old.nick {
            let key = nick_key(nick);
            if let Some(targets) = self.by_nick.get_mut(&key) {
                targets.remove(target);
                if targets.is_empty() {
                    self.by_nick.remove(&key);
                }
            }
        }
        if let Some(until) = old.until {
            self.by_end.remove(&(until, target.clone()));
        }
        Some(old)
    }

    /// The targets of the bans made from this nickname (by key).
    pub fn made_from(&self, key: &str) -> Vec<Target> {
        self.by_nick
            .get(key)
            .map(|targets| targets.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets at most `max` bans that have ended by `now`; returns how many went.
    pub fn expire(&mut self, now: u64, max: usize) -> usize {
        let mut gone = 0;
        while gone < max {
            let Some((until, target)) = self.by_end.first().cloned() else {
                break;
            };
            if until > now {
                break;
            }
            if self.remove(&target).is_none() {
                self.by_end.remove(&(until, target));
            }
            gone += 1;
        }
        gone
    }

    /// In order of target (identities, then addresses).
    pub fn iter(&self) -> impl Iterator<Item = &Ban> {
        self.by_target.values()
    }

    pub fn len(&self) -> usize {
        self.by_target.len()
    }

    /// The file's text: the header, then one ban in force per line.
    pub fn to_text(&self, now: u64) -> String {
        let mut text = format!(
            "{BANS_HEADER}\n# <identity|address> <value> <until: unix seconds|permanent> \
             <set at: unix seconds> <by> <nickname|-> <reason>\n"
        );
        for b in self.iter().filter(|b| b.active(now)) {
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
            let reason = cut_reason(words.next().unwrap_or("")).into();
            bans.add(Ban {
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

/// A ban's reason within [`MAX_BAN_REASON`] bytes, cut at a character boundary.
pub fn cut_reason(reason: &str) -> &str {
    charla_proto::cut_text(reason, MAX_BAN_REASON)
}

/// A change to the registrations or the bans, as the state writer (`--state-dir`) applies it to
/// its copy before writing the file.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    Register(Registration),
    /// By nickname key.
    Unregister(String),
    /// Its owner took the nickname (key) at this time; written with the next change, or hourly.
    Used(String, u64),
    Ban(Ban),
    Unban(Target),
    /// The rooms that outlive a restart: the whole `rooms` file after its header, a part per
    /// room (`Rooms::snapshot`).
    Rooms(Vec<std::sync::Arc<str>>),
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
    /// For a mute on an identity: the address it was made at, so that the same user coming back
    /// from there without the certificate is muted too.
    pub seen_at: Option<IpAddr>,
    pub until: Option<Instant>,
    /// The nickname it was made from, for `/unmute <nick>`; the only one a muted user may take.
    pub nick: Box<str>,
}

impl Mute {
    pub fn matches(&self, identity: Option<&str>, ip: IpAddr) -> bool {
        self.target.matches(identity, ip)
            || (identity.is_none() && self.seen_at.is_some_and(|at| at == address_key(ip)))
    }
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
            .find(|m| m.until.is_none_or(|until| until > now) && m.matches(identity, ip))
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

    fn reg(nick: &str, owner: &str, last_used: u64) -> Registration {
        Registration {
            nick: nick.into(),
            owner: owner.into(),
            last_used,
        }
    }

    #[test]
    fn registrations_round_trip_and_ignore_case() {
        let mut r = Registrations::default();
        r.insert(reg("Ana", FP_A, 100));
        r.insert(reg("bob", FP_A, 200));
        assert_eq!(r.owner("ANA"), Some(FP_A));
        assert_eq!(r.count_of(FP_A), 2);
        let again = Registrations::parse(&r.to_text(), 0).unwrap();
        assert_eq!(again.owner("ana"), Some(FP_A));
        assert_eq!(&*again.get("ana").unwrap().nick, "Ana");
        assert_eq!(again.get("bob").unwrap().last_used, 200);
        assert_eq!(again.len(), 2);
        // The first format, without the time of last use: used now.
        let v1 = format!("charla-registrations 1\n{FP_A} ana\n");
        assert_eq!(
            Registrations::parse(&v1, 7)
                .unwrap()
                .get("ana")
                .unwrap()
                .last_used,
            7
        );
        assert_eq!(r.remove("ANA").unwrap().nick.as_ref(), "Ana");
        assert_eq!(r.count_of(FP_A), 1);
    }

    #[test]
    fn unused_registrations_go_oldest_first() {
        let mut r = Registrations::default();
        r.insert(reg("ana", FP_A, 100));
        r.insert(reg("bob", FP_A, 50));
        r.insert(reg("eva", FP_A, 300));
        r.touch(&nick_key("bob"), 400);
        let gone = r.take_unused(301, 10);
        let names: Vec<&str> = gone.iter().map(|r| &*r.nick).collect();
        assert_eq!(names, ["ana", "eva"]);
        assert_eq!(r.len(), 1);
        assert_eq!(r.count_of(FP_A), 1);
        assert!(r.take_unused(401, 0).is_empty(), "at most max");
    }

    #[test]
    fn a_bad_registrations_file_names_the_line() {
        let text = format!("{REGISTRATIONS_HEADER}\n# comment\n\n{FP_A} ana 1\nnot-a-fp bob 1\n");
        assert_eq!(Registrations::parse(&text, 0).unwrap_err().0, 5);
        let twice = format!("{REGISTRATIONS_HEADER}\n{FP_A} ana 1\n{FP_A} ANA 1\n");
        assert!(Registrations::parse(&twice, 0)
            .unwrap_err()
            .1
            .contains("twice"));
        assert_eq!(Registrations::parse("hello\n", 0).unwrap_err().0, 1);
        let bad_nick = format!("{REGISTRATIONS_HEADER}\n{FP_A} a b\n");
        assert_eq!(Registrations::parse(&bad_nick, 0).unwrap_err().0, 2);
        let no_time = format!("{REGISTRATIONS_HEADER}\n{FP_A} ana\n");
        assert!(Registrations::parse(&no_time, 0)
            .unwrap_err()
            .1
            .contains("missing"));
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
        let again = Bans::parse(&bans.to_text(0)).unwrap();
        assert_eq!(again, bans);
        assert_eq!(
            bans.made_from(&nick_key("TROLL")),
            [Target::Identity(FP_A.into())]
        );
        let other_host_same_64: IpAddr = "2001:db8::99".parse().unwrap();
        let elsewhere: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(bans.find(None, other_host_same_64, 150).is_some());
        assert!(bans.find(None, other_host_same_64, 200).is_none());
        assert!(bans.find(Some(FP_A), elsewhere, 10_000).is_some());
        assert!(bans.find(None, elsewhere, 10).is_none());
        assert!(
            !bans.to_text(200).contains("2001:db8::"),
            "an ended ban is not written"
        );
        assert_eq!(bans.expire(200, 10), 1);
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
        let prefixed = format!("SHA256:{FP_A}\nsha256:{lower}\n");
        assert_eq!(Operators::parse(&prefixed).unwrap().len(), 1);
    }

    /// Issue 23: the shipped operators file showed its example as `SHA256:3A:7F:...:C2`, a form
    /// the server refused. The example, taken out of its comment, is read as an operator.
    #[test]
    fn the_shipped_operators_file_and_its_example_are_read() {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/packaging/operators"))
                .unwrap();
        assert_eq!(Operators::parse(&shipped).unwrap().len(), 0);
        let examples: Vec<&str> = shipped
            .lines()
            .filter_map(|l| l.strip_prefix("#   "))
            .collect();
        assert_eq!(examples.len(), 1, "{shipped}");
        assert_eq!(Operators::parse(examples[0]).unwrap().len(), 1);
    }
}
