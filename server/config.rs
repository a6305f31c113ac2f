//! Command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
charla-server: a one-thread TLS chat server (Charla protocol v1, docs/protocol.md)

Usage: charla-server [OPTIONS]

Options:
  --bind ADDR:PORT           where to listen [default: 127.0.0.1:12345]
                             (0.0.0.0:12345 or [::]:12345 to accept other machines;
                             port 0 picks a free port, printed in the 'listening' log line)
  --cert PATH                certificate (PEM, may hold the chain) [default: certs/server-cert.pem]
  --key PATH                 private key (PEM: PKCS#8 or traditional RSA, plain or encrypted)
                             [default: certs/server-key.key]
  --key-pass-file PATH       read the key's passphrase from the first line of this file
                             (otherwise from the CHARLA_KEY_PASS environment variable)
  --max-clients N            most connections at once, handshaking ones included; an extra
                             one is told 'ERROR server-full' (see 'Refused connections'
                             below) (lowered at start to what 'ulimit -n' allows)
                             [default: 10000]
  --max-line BYTES           longest line a client may send, terminator included;
                             longer ones get 'ERROR line-too-long' [default: 4096]
  --max-queue BYTES          most bytes waiting to be sent to one client; a client that
                             falls further behind is disconnected as 'too slow'
                             [default: 1M] (suffixes K and M: 1K = 1024)
  --send-buffer BYTES        the kernel's send buffer for each client (SO_SNDBUF), so that a
                             client that stops reading holds at most this much kernel memory
                             besides its --max-queue; 0 lets the kernel size it, up to
                             net.ipv4.tcp_wmem's maximum (megabytes) [default: 256K]
  --flood-rate N             lines per second one client may send, on average;
                             0 turns flood control off [default: 10]
  --flood-burst N            lines one client may send at once above the rate [default: 20]
  --batch-delay MS           let lines for a client wait up to MS milliseconds so that
                             several go out in one TLS record and one write: less CPU per
                             line on a busy server, at the cost of that much latency
                             [default: 0 = write as soon as the input stops]
  --handshake-timeout SECS   close connections that have not finished TLS by then [default: 10]
  --register-timeout SECS    close connections that have not chosen a nickname by then
                             [default: 30]
  --password-file PATH       require a password: the first line of this file (spaces inside
                             it count, none may start or end it); clients send
                             '/pass <password>' before their nickname (never give it on the
                             command line, where other users of the machine can see it)
  --max-per-ip N             most connections from one IP address (IPv6: one /64 network),
                             counted from the moment they are accepted; an extra one is told
                             'ERROR too-many-connections' (see below) [default: 0 = no
                             limit, since a classroom behind NAT shares one address]
  --max-joining-per-ip N     most connections from one address (IPv6: one /64) that are still
                             in their TLS handshake or have no nickname yet; further ones are
                             closed at once, so that silent sockets from one address cannot
                             take the places of everyone else [default: 64]
  --max-connects-per-ip N    new connections one address (IPv6: one /64) may open per
                             minute, all at once if it likes; past it, 'ERROR
                             too-many-connections' says when to try again (see below), so
                             that a connect-join-quit loop cannot drown the room in JOIN and
                             LEAVE lines; raise it for a large network behind one NAT
                             address [default: 120; 0 = no limit]
  --history N                the last N public messages (and /me actions) are kept in memory
                             and shown to whoever joins, as 'HISTORY <time> <line>'; private
                             messages are never kept in it; 0 turns history off
                             [default: 100]
  --history-bytes BYTES      most memory the history may take; the oldest messages go first
                             [default: 256K]
  --history-file PATH        keep the history on disk too, in this file (created mode 0600), so
                             that it survives a restart or a crash; written by a thread of its
                             own and synced once a second: a power cut can lose the last second
                             [default: none, the history is in memory only]
  --resume-window SECS       a client that asked for a session ('/resume', docs/protocol.md)
                             and whose connection dropped keeps its nickname for this long,
                             and private messages sent to it meanwhile are held in memory and
                             delivered when it comes back; 0 turns this off [default: 120]
  --require-client-cert      refuse clients that present no certificate ('ERROR no-identity');
                             without it a certificate is asked for, not required, and a client
                             without one chats under an unregistered nickname. Any
                             self-signed certificate is taken: the identity is its SHA-256
                             fingerprint, as with SSH keys
  --operators FILE           the operators: one certificate fingerprint per line ('#' starts a
                             comment), as 'charla --show-identity' prints it; read again on
                             SIGHUP. Operators may /kick, /ban, /unban, /bans, /mute, /unmute
                             and /unregister any nickname [default: none, nobody is one]
  --state-dir DIR            keep registered nicknames and bans in DIR (created mode 0700,
                             files 0600), each change written to disk before it is answered;
                             a damaged file stops the server at start [default: none, they
                             live in memory and are lost at restart]
  --max-registrations N      most registered nicknames on the server [default: 10000]
  --max-nicks-per-identity N most nicknames one identity may register [default: 5]
  --registration-rate N      /register and /unregister changes written to disk per second,
                             server-wide (bursts of ten times as many; from one address, at
                             most 6 a minute); past it 'ERROR flood', so that clients
                             registering in a loop cannot keep the server busy syncing files
                             [default: 5]
  -h, --help                 print this help
  -V, --version              print the version

Refused connections: telling a refused connection why takes a TLS handshake, so an address is
told at most once a second, and only while it has fewer than 4 connections still joining; other
refused connections, and any past --max-clients + 64, are closed at once without a word. They
are counted in one log line a second.

Signals: SIGINT or SIGTERM tell every client 'NOTICE server shutting down', close every
connection and exit 0; SIGHUP reloads the certificate, the key and the --operators file from
disk (a broken file is logged and the old one kept).
Logs go to stderr, one timestamped line per event; message text is never logged. Every
moderation action is logged: who did what to whom (not the reason given).
Message text is kept in memory: the history (--history) and private messages held for a user
who is away (--resume-window); on disk only the history, and only with --history-file. Every
client is told at registration when history is kept, and where.
";

#[derive(Debug, Clone)]
pub struct Config {
    pub bind: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub key_pass_file: Option<PathBuf>,
    pub max_clients: usize,
    pub max_line: usize,
    pub max_queue: usize,
    /// SO_SNDBUF for each client; 0 = the kernel's automatic sizing.
    pub send_buffer: usize,
    /// Lines per second; 0 = off.
    pub flood_rate: f64,
    pub flood_burst: f64,
    /// How long output may wait to be batched; zero: written once the input stops.
    pub batch_delay: Duration,
    pub handshake_timeout: Duration,
    pub register_timeout: Duration,
    /// A file whose first line is the password clients must give with `/pass`.
    pub password_file: Option<PathBuf>,
    /// Most connections from one IP address; 0 = no limit.
    pub max_per_ip: usize,
    /// Most connections from one address still in their TLS handshake or without a nickname.
    pub max_joining_per_ip: usize,
    /// New connections one address may open per minute; 0 = no limit.
    pub max_connects_per_ip: u32,
    /// Public messages kept for those who join later; 0 = no history.
    pub history: usize,
    /// Most bytes the history may take.
    pub history_bytes: usize,
    /// How long a user whose connection dropped keeps its nickname and held messages.
    pub resume_window: Duration,
    /// Where the history is kept across restarts; in memory only without it.
    pub history_file: Option<PathBuf>,
    /// Clients without a certificate are refused.
    pub require_client_cert: bool,
    /// The operators' fingerprints, one per line.
    pub operators: Option<PathBuf>,
    /// Where registrations and bans are kept; in memory only without it.
    pub state_dir: Option<PathBuf>,
    pub max_registrations: usize,
    pub max_nicks_per_identity: usize,
    /// Registration changes written per second, server-wide.
    pub registration_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], charla_proto::DEFAULT_PORT)),
            cert: "certs/server-cert.pem".into(),
            key: "certs/server-key.key".into(),
            key_pass_file: None,
            max_clients: 10_000,
            max_line: 4096,
            max_queue: 1 << 20,
            send_buffer: 256 << 10,
            flood_rate: 10.0,
            flood_burst: 20.0,
            batch_delay: Duration::ZERO,
            handshake_timeout: Duration::from_secs(10),
            register_timeout: Duration::from_secs(30),
            password_file: None,
            max_per_ip: 0,
            max_joining_per_ip: 64,
            max_connects_per_ip: 120,
            history: 100,
            history_bytes: 256 << 10,
            resume_window: Duration::from_secs(120),
            history_file: None,
            require_client_cert: false,
            operators: None,
            state_dir: None,
            max_registrations: 10_000,
            max_nicks_per_identity: 5,
            registration_rate: 5.0,
        }
    }
}

/// The flags that take a value.
const KNOWN_FLAGS: &[&str] = &[
    "bind",
    "cert",
    "key",
    "key-pass-file",
    "max-clients",
    "max-line",
    "max-queue",
    "send-buffer",
    "flood-rate",
    "flood-burst",
    "batch-delay",
    "handshake-timeout",
    "register-timeout",
    "password-file",
    "max-per-ip",
    "max-joining-per-ip",
    "max-connects-per-ip",
    "history",
    "history-bytes",
    "resume-window",
    "history-file",
    "operators",
    "state-dir",
    "max-registrations",
    "max-nicks-per-identity",
    "registration-rate",
];

/// What the command line asks for.
#[allow(clippy::large_enum_variant)] // made once, at start-up
pub enum Command {
    Run(Config),
    Help,
    Version,
}

pub fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut cfg = Config::default();
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let flag = match &arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("require-client-cert") => {
                cfg.require_client_cert = true;
                continue;
            }
            Long(name) if KNOWN_FLAGS.contains(name) => format!("--{name}"),
            Long(name) => return Err(format!("unknown option --{name}")),
            _ => return Err(arg.unexpected().to_string()),
        };
        let value = parser.value().map_err(|e| e.to_string())?;
        let value = value
            .into_string()
            .map_err(|_| format!("{flag}: the value is not valid UTF-8"))?;
        let bad = |what: &str| format!("{flag} {value:?}: {what}");
        match flag.as_str() {
            "--bind" => {
                cfg.bind = parse_bind(&value).ok_or_else(|| {
                    bad("expected ADDR:PORT, e.g. 127.0.0.1:12345, [::]:12345 or localhost:12345")
                })?
            }
            "--cert" => cfg.cert = value.into(),
            "--key" => cfg.key = value.into(),
            "--key-pass-file" => cfg.key_pass_file = Some(value.into()),
            "--max-clients" => {
                cfg.max_clients =
                    positive(&value).ok_or_else(|| bad("expected a whole number above 0"))?
            }
            "--max-line" => {
                cfg.max_line = parse_bytes(&value)
                    .filter(|&n| n >= 64)
                    .ok_or_else(|| bad("expected a size of at least 64 bytes"))?
            }
            "--max-queue" => {
                cfg.max_queue = parse_bytes(&value).filter(|&n| n >= 4096).ok_or_else(|| {
                    bad("expected a size of at least 4096 bytes (e.g. 65536, 64K, 1M)")
                })?
            }
            "--send-buffer" => {
                cfg.send_buffer = parse_bytes(&value)
                    .filter(|&n| n == 0 || (4096..=64 << 20).contains(&n))
                    .ok_or_else(|| bad("expected 0 or a size from 4K to 64M"))?
            }
            "--flood-rate" => {
                cfg.flood_rate = non_negative(&value)
                    .ok_or_else(|| bad("expected lines per second, 0 for off"))?
            }
            "--flood-burst" => {
                cfg.flood_burst = non_negative(&value)
                    .filter(|&n| n >= 1.0)
                    .ok_or_else(|| bad("expected a number of lines, at least 1"))?
            }
            "--batch-delay" => {
                cfg.batch_delay = non_negative(&value)
                    .filter(|&ms| ms <= 1000.0)
                    .map(|ms| Duration::from_micros((ms * 1000.0).round() as u64))
                    .ok_or_else(|| bad("expected milliseconds from 0 to 1000"))?
            }
            "--handshake-timeout" => {
                cfg.handshake_timeout =
                    seconds(&value).ok_or_else(|| bad("expected seconds above 0"))?
            }
            "--register-timeout" => {
                cfg.register_timeout =
                    seconds(&value).ok_or_else(|| bad("expected seconds above 0"))?
            }
            "--password-file" => cfg.password_file = Some(value.into()),
            "--max-joining-per-ip" => {
                cfg.max_joining_per_ip = value
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("expected a whole number above 0"))?
            }
            "--max-connects-per-ip" => {
                cfg.max_connects_per_ip = value
                    .parse()
                    .map_err(|_| bad("expected a whole number per minute, 0 for no limit"))?
            }
            "--max-per-ip" => {
                cfg.max_per_ip = value
                    .parse()
                    .map_err(|_| bad("expected a whole number, 0 for no limit"))?
            }
            "--history" => {
                cfg.history = value
                    .parse()
                    .ok()
                    .filter(|&n| n <= 100_000)
                    .ok_or_else(|| bad("expected a whole number of messages from 0 to 100000"))?
            }
            "--history-bytes" => {
                cfg.history_bytes = parse_bytes(&value)
                    .filter(|&n| (4096..=256 << 20).contains(&n))
                    .ok_or_else(|| bad("expected a size from 4K to 256M"))?
            }
            "--history-file" => cfg.history_file = Some(value.into()),
            "--operators" => cfg.operators = Some(value.into()),
            "--state-dir" => cfg.state_dir = Some(value.into()),
            "--max-registrations" => {
                cfg.max_registrations = value
                    .parse()
                    .ok()
                    .filter(|&n| n <= 1_000_000)
                    .ok_or_else(|| bad("expected a whole number from 0 to 1000000"))?
            }
            "--registration-rate" => {
                cfg.registration_rate = non_negative(&value)
                    .filter(|&n| (0.1..=10_000.0).contains(&n))
                    .ok_or_else(|| bad("expected changes per second, from 0.1 to 10000"))?
            }
            "--max-nicks-per-identity" => {
                cfg.max_nicks_per_identity = value
                    .parse()
                    .ok()
                    .filter(|&n| n <= 1000)
                    .ok_or_else(|| bad("expected a whole number from 0 to 1000"))?
            }
            "--resume-window" => {
                cfg.resume_window = non_negative(&value)
                    .filter(|&n| n <= 86_400.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| bad("expected seconds from 0 to 86400"))?
            }
            _ => unreachable!("every name in KNOWN_FLAGS has a branch"),
        }
    }
    Ok(Command::Run(cfg))
}

/// An address, or a host name resolved once at start (`localhost:12345`).
fn parse_bind(s: &str) -> Option<SocketAddr> {
    use std::net::ToSocketAddrs;
    s.parse().ok().or_else(|| s.to_socket_addrs().ok()?.next())
}

fn positive(s: &str) -> Option<usize> {
    s.parse().ok().filter(|&n| n > 0)
}

fn non_negative(s: &str) -> Option<f64> {
    s.parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)
}

fn seconds(s: &str) -> Option<Duration> {
    non_negative(s)
        .filter(|&n| n > 0.0 && n < 1e9)
        .map(Duration::from_secs_f64)
}

/// A byte count: `65536`, `64K` or `1M` (binary units).
fn parse_bytes(s: &str) -> Option<usize> {
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().ok()?;
    let unit = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        _ => return None,
    };
    n.checked_mul(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        match parse_args(args.iter().map(Into::into))? {
            Command::Run(cfg) => Ok(cfg),
            _ => Err("not run".into()),
        }
    }

    #[test]
    fn defaults_match_the_help() {
        let cfg = parse(&[]).unwrap();
        assert_eq!(cfg.bind.to_string(), "127.0.0.1:12345");
        assert_eq!(cfg.max_clients, 10_000);
        assert_eq!(cfg.max_line, 4096);
        assert_eq!(cfg.max_queue, 1 << 20);
        assert_eq!(cfg.handshake_timeout, Duration::from_secs(10));
        assert_eq!(cfg.register_timeout, Duration::from_secs(30));
        assert_eq!(cfg.batch_delay, Duration::ZERO);
        assert_eq!(cfg.send_buffer, 256 << 10);
    }

    #[test]
    fn flags_and_units() {
        let cfg = parse(&[
            "--bind=[::1]:0",
            "--max-queue",
            "64K",
            "--flood-rate",
            "0",
            "--handshake-timeout",
            "0.5",
            "--batch-delay",
            "2.5",
            "--send-buffer",
            "32K",
        ])
        .unwrap();
        assert_eq!(cfg.send_buffer, 32 << 10);
        assert_eq!(cfg.batch_delay, Duration::from_micros(2500));
        assert_eq!(cfg.bind.to_string(), "[::1]:0");
        assert_eq!(cfg.max_queue, 65536);
        assert_eq!(cfg.flood_rate, 0.0);
        assert_eq!(cfg.handshake_timeout, Duration::from_millis(500));
    }

    #[test]
    fn clear_errors() {
        assert!(parse(&["--bind", "localhost"])
            .unwrap_err()
            .contains("ADDR:PORT"));
        assert!(parse(&["--bind", "localhost:9"]).is_ok());
        assert!(parse(&["--max-clients", "0"])
            .unwrap_err()
            .contains("--max-clients"));
        assert!(parse(&["--max-queue", "1G"])
            .unwrap_err()
            .contains("--max-queue"));
        for bad in ["100", "1G"] {
            assert!(parse(&["--send-buffer", bad])
                .unwrap_err()
                .contains("0 or a size from 4K to 64M"));
        }
        for bad in ["-1", "1001", "soon"] {
            assert!(parse(&["--batch-delay", bad])
                .unwrap_err()
                .contains("milliseconds from 0 to 1000"));
        }
        assert!(parse(&["--frobnicate", "1"])
            .unwrap_err()
            .contains("unknown option --frobnicate"));
        assert!(parse(&["--cert"]).is_err());
        assert!(parse(&["--max-nicks-per-identity", "x"])
            .unwrap_err()
            .contains("0 to 1000"));
    }

    #[test]
    fn identity_flags() {
        let cfg = parse(&[
            "--require-client-cert",
            "--operators",
            "ops",
            "--state-dir",
            "st",
        ])
        .unwrap();
        assert!(cfg.require_client_cert);
        assert_eq!(cfg.operators, Some("ops".into()));
        assert_eq!(cfg.state_dir, Some("st".into()));
        assert!(!parse(&[]).unwrap().require_client_cert);
        assert!(parse(&["--require-client-cert=yes"]).is_err());
    }

    #[test]
    fn every_flag_is_in_the_help() {
        // The flags that take a value, as the parser knows them, and the switches.
        let switches = ["require-client-cert", "help", "version"];
        for name in KNOWN_FLAGS.iter().chain(&switches) {
            assert!(HELP.contains(&format!("--{name} ")), "--{name}");
        }
    }
}
