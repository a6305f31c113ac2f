//! Command-line flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const HELP: &str = "\
charla-server: a one-thread TLS chat server (Charla protocol v1, docs/protocol.md)

Usage: charla-server [OPTIONS]

Options:
  --config PATH              read settings from this file first (see 'Config file' below);
                             flags given here win over it [default: none]
  --bind ADDR:PORT           where to listen [default: 127.0.0.1:12345]
                             (0.0.0.0:12345 or [::]:12345 to accept other machines;
                             port 0 picks a free port, said in the log and on --ready-fd)
  --cert PATH                certificate (PEM, may hold the chain) [default: certs/server-cert.pem]
  --key PATH                 private key (PEM: PKCS#8 or traditional RSA, plain or encrypted)
                             [default: certs/server-key.key]
  --key-pass-file PATH       read the key's passphrase from the first line of this file
                             (otherwise from the CHARLA_KEY_PASS environment variable)
  --max-clients N            most connections at once, handshaking ones included; an extra
                             one is told 'ERROR server-full' (see 'Refused connections'
                             below) (lowered at start to what 'ulimit -n' allows; at
                             most 1000000) [default: 10000]
  --max-line BYTES           longest line a client may send, terminator included;
                             longer ones get 'ERROR line-too-long' [default: 4096]
  --max-queue BYTES          most bytes waiting to be sent to one client; a client that
                             falls further behind is disconnected as 'too slow'
                             [default: 1M] (suffixes K and M: 1K = 1024)
  --max-queue-total BYTES    most bytes waiting for all clients together; past it the clients
                             holding the most (the longest-stalled first) are disconnected as
                             'too slow', so that many clients that stopped reading cannot
                             take the machine's memory [default: 32M]
  --write-timeout SECS       a client that takes none of the lines waiting for it for this
                             long is disconnected as 'too slow' [default: 60]
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
  --max-away N               most users kept away for --resume-window at once; they also
                             count against --max-clients and --max-per-ip, and the one away
                             longest is given up first when a place is needed [default: 1000]
  --max-away-per-ip N        most users away from one address (IPv6: one /64) [default: 64]
  --max-held-bytes BYTES     most bytes of private messages held for users away, and kept
                             for users whose connection might be dead, all together; past it
                             a sender is told 'not held for' [default: 4M]
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
  --registration-expiry DAYS a registered nickname its identity has not used for this long
                             is freed (told at /register); 0: never [default: 365]
  --max-bans N               most bans kept; an operator's /ban past it gets 'ERROR
                             ban-limit' (bans that end are forgotten when they do)
                             [default: 10000]
  --default-room NAME        the room every client is in when it joins, and the only one
                             clients that do not understand rooms see (docs/protocol.md,
                             'Rooms'); '#' may be left out [default: general]
  --rooms NAMES              rooms that always exist, open to all and run by the operators,
                             comma-separated, '#' left out or not (in a config file, where
                             ' #' starts a comment: rooms = tareas, juegos) [default: none]
  --max-rooms N              most rooms on the server, those above included; past it
                             '/join' and '/create' of a new room get 'ERROR too-many-rooms'
                             [default: 1000]
  --max-rooms-per-identity N most rooms one identity may own [default: 10]
  --max-rooms-per-user N     most rooms one connection may be in [default: 50]
  --ready-fd N               once listening, write one line to the open descriptor N and
                             close it: 'listening <address>' (with port 0, the port picked),
                             or 'error <code> <text>' if the server cannot start (codes:
                             address-in-use, cannot-start); for programs that start the
                             server and wait for it (docs/protocol.md) [default: none]
  -h, --help                 print this help
  -V, --version              print the version

Refused connections: telling a refused connection why takes a TLS handshake, so an address is
told at most once a second, and only while it has fewer than 4 connections still joining; other
refused connections, and any past --max-clients + 64, are closed at once without a word. They
are counted in one log line a second.

Config file: one 'name = value' per line, the names of the options above without their
dashes (max-clients = 500); switches take true or false (yes/no and on/off too:
require-client-cert = true); '#' starts a comment (at the start of a line, or after a space); blank lines are skipped. Paths are
taken as written: relative ones from the directory the server runs in. An unknown name, a bad
value or a name given twice stops the server with the file, the line and why.

Signals: SIGINT or SIGTERM tell every client 'NOTICE server shutting down', close every
connection and exit 0. SIGHUP reads the config file again (the command line's options still
win) and takes every setting that can change while running: limits, timeouts, the password
file, the operators file, the certificate and the key, which are read again from disk; --bind,
--history, --history-bytes, --history-file and --state-dir wait for a restart. The log says
what changed. If the file, the password file, the certificate, the key or the operators file
cannot be read, nothing changes (a reload is taken whole or not at all) and the log says why.
Logs go to stderr, one timestamped line per event; message text is never logged. Started by
systemd (JOURNAL_STREAM set), lines carry a syslog priority (<3> error, <4> warning,
<6> information) instead of a timestamp, for the journal. Every moderation action is logged:
who did what to whom (not the reason given).
Message text is kept in memory: the history (--history) and private messages held for a user
who is away (--resume-window); on disk only the history, and only with --history-file. Every
client is told at registration when history is kept, and where.
";

#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen: `bind_spec` as resolved once, at start (a reload never looks a name up:
    /// the loop must not wait on DNS, and the listening socket stays until a restart anyway).
    pub bind: SocketAddr,
    /// `--bind` as given (an address, or `name:port`).
    pub bind_spec: Box<str>,
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
    /// Days after which a registration nobody used is freed; zero: never.
    pub registration_expiry_days: u64,
    pub max_bans: usize,
    /// Bytes waiting for all clients together, beyond which those holding the most are dropped.
    pub max_queue_total: usize,
    /// How long a client may leave lines waiting without taking a byte of them.
    pub write_timeout: Duration,
    /// Users away (sessions kept for `/resume`) in all, and from one address.
    pub max_away: usize,
    pub max_away_per_ip: usize,
    /// Bytes of private messages held for sessions, all together.
    pub max_held_bytes: usize,
    /// The room every client is in when it joins (`#` included).
    pub default_room: Box<str>,
    /// Rooms that always exist (`#` included).
    pub rooms: Vec<Box<str>>,
    pub max_rooms: usize,
    pub max_rooms_per_identity: usize,
    pub max_rooms_per_user: usize,
    /// The config file and the command line, read again on SIGHUP.
    pub sources: Sources,
    /// `--ready-fd`: where to say `listening <address>` (or why not) once, at start.
    pub ready_fd: Option<i32>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], charla_proto::DEFAULT_PORT)),
            bind_spec: "127.0.0.1:12345".into(),
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
            registration_expiry_days: 365,
            max_bans: 10_000,
            max_queue_total: 32 << 20,
            write_timeout: Duration::from_secs(60),
            max_away: 1000,
            max_away_per_ip: 64,
            max_held_bytes: 4 << 20,
            default_room: "#general".into(),
            rooms: Vec::new(),
            max_rooms: 1000,
            max_rooms_per_identity: 10,
            max_rooms_per_user: 50,
            sources: Sources::default(),
            ready_fd: None,
        }
    }
}

/// One setting: its name (the flag without `--`, the key in a config file), how a value is read
/// into a [`Config`], how the current one is shown (in the log of what a reload changed), and
/// whether a running server takes a new value on SIGHUP.
struct Setting {
    name: &'static str,
    /// Sets the value, or says what was expected.
    set: fn(&mut Config, &str) -> Result<(), &'static str>,
    show: fn(&Config) -> String,
    /// Taken by a running server on SIGHUP; otherwise it waits for the next start.
    live: bool,
}

/// Far more than one thread serves; keeps the arithmetic on it (descriptors, the grace past it)
/// from overflowing.
const MAX_CLIENTS: usize = 1_000_000;

/// Switches take no value on the command line (`--require-client-cert`); in a config file they
/// are `true` or `false`.
const SWITCHES: &[&str] = &["require-client-cert"];

/// Every setting, once: the command line, the config file and reloads all go through this table.
const SETTINGS: &[Setting] = &[
    Setting {
        name: "bind",
        set: |c, v| {
            match v.parse() {
                Ok(addr) => c.bind = addr,
                // A name is looked up at start only (resolve_bind), never on a reload.
                Err(_) => {
                    v.rsplit_once(':')
                        .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
                        .ok_or(
                            "expected ADDR:PORT, e.g. 127.0.0.1:12345, [::]:12345 or localhost:12345",
                        )?;
                }
            }
            c.bind_spec = v.into();
            Ok(())
        },
        show: |c| c.bind_spec.to_string(),
        live: false,
    },
    Setting {
        name: "cert",
        set: |c, v| path(&mut c.cert, v),
        show: |c| c.cert.display().to_string(),
        live: true,
    },
    Setting {
        name: "key",
        set: |c, v| path(&mut c.key, v),
        show: |c| c.key.display().to_string(),
        live: true,
    },
    Setting {
        name: "key-pass-file",
        set: |c, v| optional_path(&mut c.key_pass_file, v),
        show: |c| show_path(&c.key_pass_file),
        live: true,
    },
    Setting {
        name: "max-clients",
        set: |c, v| {
            c.max_clients = positive(v)
                .filter(|&n| n <= MAX_CLIENTS)
                .ok_or("expected a whole number from 1 to 1000000")?;
            Ok(())
        },
        show: |c| c.max_clients.to_string(),
        live: true,
    },
    Setting {
        name: "max-line",
        set: |c, v| {
            c.max_line = parse_bytes(v)
                .filter(|&n| n >= 64)
                .ok_or("expected a size of at least 64 bytes")?;
            Ok(())
        },
        show: |c| c.max_line.to_string(),
        live: true,
    },
    Setting {
        name: "max-queue",
        set: |c, v| {
            c.max_queue = parse_bytes(v)
                .filter(|&n| n >= 4096)
                .ok_or("expected a size of at least 4096 bytes (e.g. 65536, 64K, 1M)")?;
            Ok(())
        },
        show: |c| c.max_queue.to_string(),
        live: true,
    },
    Setting {
        name: "send-buffer",
        set: |c, v| {
            c.send_buffer = parse_bytes(v)
                .filter(|&n| n == 0 || (4096..=64 << 20).contains(&n))
                .ok_or("expected 0 or a size from 4K to 64M")?;
            Ok(())
        },
        show: |c| c.send_buffer.to_string(),
        live: true,
    },
    Setting {
        name: "flood-rate",
        set: |c, v| {
            c.flood_rate = non_negative(v).ok_or("expected lines per second, 0 for off")?;
            Ok(())
        },
        show: |c| c.flood_rate.to_string(),
        live: true,
    },
    Setting {
        name: "flood-burst",
        set: |c, v| {
            c.flood_burst = non_negative(v)
                .filter(|&n| n >= 1.0)
                .ok_or("expected a number of lines, at least 1")?;
            Ok(())
        },
        show: |c| c.flood_burst.to_string(),
        live: true,
    },
    Setting {
        name: "batch-delay",
        set: |c, v| {
            c.batch_delay = non_negative(v)
                .filter(|&ms| ms <= 1000.0)
                .map(|ms| Duration::from_micros((ms * 1000.0).round() as u64))
                .ok_or("expected milliseconds from 0 to 1000")?;
            Ok(())
        },
        show: |c| show_secs(c.batch_delay),
        live: true,
    },
    Setting {
        name: "handshake-timeout",
        set: |c, v| {
            c.handshake_timeout = seconds(v).ok_or("expected seconds above 0")?;
            Ok(())
        },
        show: |c| show_secs(c.handshake_timeout),
        live: true,
    },
    Setting {
        name: "register-timeout",
        set: |c, v| {
            c.register_timeout = seconds(v).ok_or("expected seconds above 0")?;
            Ok(())
        },
        show: |c| show_secs(c.register_timeout),
        live: true,
    },
    Setting {
        name: "password-file",
        set: |c, v| optional_path(&mut c.password_file, v),
        show: |c| show_path(&c.password_file),
        live: true,
    },
    Setting {
        name: "max-per-ip",
        set: |c, v| {
            c.max_per_ip = v
                .parse()
                .or(Err("expected a whole number, 0 for no limit"))?;
            Ok(())
        },
        show: |c| c.max_per_ip.to_string(),
        live: true,
    },
    Setting {
        name: "max-joining-per-ip",
        set: |c, v| {
            c.max_joining_per_ip = positive(v).ok_or("expected a whole number above 0")?;
            Ok(())
        },
        show: |c| c.max_joining_per_ip.to_string(),
        live: true,
    },
    Setting {
        name: "max-connects-per-ip",
        set: |c, v| {
            c.max_connects_per_ip = v
                .parse()
                .or(Err("expected a whole number per minute, 0 for no limit"))?;
            Ok(())
        },
        show: |c| c.max_connects_per_ip.to_string(),
        live: true,
    },
    Setting {
        name: "history",
        set: |c, v| {
            c.history = v
                .parse()
                .ok()
                .filter(|&n| n <= 100_000)
                .ok_or("expected a whole number of messages from 0 to 100000")?;
            Ok(())
        },
        show: |c| c.history.to_string(),
        live: false,
    },
    Setting {
        name: "history-bytes",
        set: |c, v| {
            c.history_bytes = parse_bytes(v)
                .filter(|&n| (4096..=256 << 20).contains(&n))
                .ok_or("expected a size from 4K to 256M")?;
            Ok(())
        },
        show: |c| c.history_bytes.to_string(),
        live: false,
    },
    Setting {
        name: "history-file",
        set: |c, v| optional_path(&mut c.history_file, v),
        show: |c| show_path(&c.history_file),
        live: false,
    },
    Setting {
        name: "resume-window",
        set: |c, v| {
            c.resume_window = non_negative(v)
                .filter(|&n| n <= 86_400.0)
                .map(Duration::from_secs_f64)
                .ok_or("expected seconds from 0 to 86400")?;
            Ok(())
        },
        show: |c| show_secs(c.resume_window),
        live: true,
    },
    Setting {
        name: "require-client-cert",
        set: |c, v| {
            c.require_client_cert = match v {
                "true" | "yes" | "on" => true,
                "false" | "no" | "off" => false,
                _ => return Err("expected true or false"),
            };
            Ok(())
        },
        show: |c| c.require_client_cert.to_string(),
        live: true,
    },
    Setting {
        name: "operators",
        set: |c, v| optional_path(&mut c.operators, v),
        show: |c| show_path(&c.operators),
        live: true,
    },
    Setting {
        name: "state-dir",
        set: |c, v| optional_path(&mut c.state_dir, v),
        show: |c| show_path(&c.state_dir),
        live: false,
    },
    Setting {
        name: "max-registrations",
        set: |c, v| {
            c.max_registrations = v
                .parse()
                .ok()
                .filter(|&n| n <= 1_000_000)
                .ok_or("expected a whole number from 0 to 1000000")?;
            Ok(())
        },
        show: |c| c.max_registrations.to_string(),
        live: true,
    },
    Setting {
        name: "max-nicks-per-identity",
        set: |c, v| {
            c.max_nicks_per_identity = v
                .parse()
                .ok()
                .filter(|&n| n <= 1000)
                .ok_or("expected a whole number from 0 to 1000")?;
            Ok(())
        },
        show: |c| c.max_nicks_per_identity.to_string(),
        live: true,
    },
    Setting {
        name: "registration-rate",
        set: |c, v| {
            c.registration_rate = non_negative(v)
                .filter(|&n| (0.1..=10_000.0).contains(&n))
                .ok_or("expected changes per second, from 0.1 to 10000")?;
            Ok(())
        },
        show: |c| c.registration_rate.to_string(),
        live: true,
    },
    Setting {
        name: "registration-expiry",
        set: |c, v| {
            c.registration_expiry_days = v
                .parse()
                .ok()
                .filter(|&n| n <= 36_500)
                .ok_or("expected days from 0 (never) to 36500")?;
            Ok(())
        },
        show: |c| c.registration_expiry_days.to_string(),
        live: true,
    },
    Setting {
        name: "max-bans",
        set: |c, v| {
            c.max_bans = v
                .parse()
                .ok()
                .filter(|&n| n <= 1_000_000)
                .ok_or("expected a whole number from 0 to 1000000")?;
            Ok(())
        },
        show: |c| c.max_bans.to_string(),
        live: true,
    },
    Setting {
        name: "max-queue-total",
        set: |c, v| {
            c.max_queue_total = parse_bytes(v)
                .filter(|&n| (64 << 10..=16 << 30).contains(&n))
                .ok_or("expected a size from 64K to 16384M")?;
            Ok(())
        },
        show: |c| c.max_queue_total.to_string(),
        live: true,
    },
    Setting {
        name: "write-timeout",
        set: |c, v| {
            c.write_timeout = seconds(v).ok_or("expected seconds above 0")?;
            Ok(())
        },
        show: |c| show_secs(c.write_timeout),
        live: true,
    },
    Setting {
        name: "max-away",
        set: |c, v| {
            c.max_away = v
                .parse()
                .ok()
                .filter(|&n| n <= MAX_CLIENTS)
                .ok_or("expected a whole number from 0 to 1000000")?;
            Ok(())
        },
        show: |c| c.max_away.to_string(),
        live: true,
    },
    Setting {
        name: "max-away-per-ip",
        set: |c, v| {
            c.max_away_per_ip = v
                .parse()
                .ok()
                .filter(|&n| n <= MAX_CLIENTS)
                .ok_or("expected a whole number from 0 to 1000000")?;
            Ok(())
        },
        show: |c| c.max_away_per_ip.to_string(),
        live: true,
    },
    Setting {
        name: "max-held-bytes",
        set: |c, v| {
            c.max_held_bytes = parse_bytes(v)
                .filter(|&n| n <= 4 << 30)
                .ok_or("expected a size up to 4096M")?;
            Ok(())
        },
        show: |c| c.max_held_bytes.to_string(),
        live: true,
    },
    Setting {
        name: "default-room",
        set: |c, v| {
            c.default_room = room_name(v)?;
            Ok(())
        },
        show: |c| c.default_room.to_string(),
        live: false,
    },
    Setting {
        name: "rooms",
        set: |c, v| {
            c.rooms = v
                .split(',')
                .map(str::trim)
                .filter(|name| !name.is_empty())
                .map(room_name)
                .collect::<Result<_, _>>()?;
            Ok(())
        },
        show: |c| c.rooms.join(","),
        live: false,
    },
    Setting {
        name: "max-rooms",
        set: |c, v| {
            c.max_rooms = v
                .parse()
                .ok()
                .filter(|&n| (1..=MAX_CLIENTS).contains(&n))
                .ok_or("expected a whole number from 1 to 1000000")?;
            Ok(())
        },
        show: |c| c.max_rooms.to_string(),
        live: true,
    },
    Setting {
        name: "max-rooms-per-identity",
        set: |c, v| {
            c.max_rooms_per_identity = v
                .parse()
                .ok()
                .filter(|&n| n <= MAX_CLIENTS)
                .ok_or("expected a whole number from 0 to 1000000")?;
            Ok(())
        },
        show: |c| c.max_rooms_per_identity.to_string(),
        live: true,
    },
    Setting {
        name: "max-rooms-per-user",
        set: |c, v| {
            c.max_rooms_per_user = v
                .parse()
                .ok()
                .filter(|&n| (1..=10_000).contains(&n))
                .ok_or("expected a whole number from 1 to 10000")?;
            Ok(())
        },
        show: |c| c.max_rooms_per_user.to_string(),
        live: true,
    },
];

/// A room's name as a flag gives it: `#` added when left out, checked by the protocol's rules.
fn room_name(v: &str) -> Result<Box<str>, &'static str> {
    let name = if v.starts_with('#') {
        v.to_string()
    } else {
        format!("#{v}")
    };
    charla_proto::validate_room(&name).map_err(|_| {
        "expected a room name: '#' and 1 to 32 letters, digits, '_', '-' or '.' of one script"
    })?;
    Ok(name.into())
}

fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.name == name)
}

fn path(field: &mut PathBuf, v: &str) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("expected a path");
    }
    *field = v.into();
    Ok(())
}

fn optional_path(field: &mut Option<PathBuf>, v: &str) -> Result<(), &'static str> {
    if v.is_empty() {
        return Err("expected a path");
    }
    *field = Some(v.into());
    Ok(())
}

fn show_path(p: &Option<PathBuf>) -> String {
    p.as_ref()
        .map_or_else(|| "none".into(), |p| p.display().to_string())
}

fn show_secs(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// What the command line asks for.
#[allow(clippy::large_enum_variant)] // made once, at start-up
pub enum Command {
    Run(Config),
    Help,
    Version,
}

/// Where the settings came from, kept so that SIGHUP can read them again: the config file, then
/// the command line's settings on top.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub file: Option<PathBuf>,
    flags: Vec<(&'static str, String)>,
}

pub fn parse_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut sources = Sources::default();
    let mut ready_fd = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        let name = match &arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('V') | Long("version") => return Ok(Command::Version),
            Long("config") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                if sources.file.is_some() {
                    return Err("--config: only one config file may be given".into());
                }
                sources.file = Some(value.into());
                continue;
            }
            Long("ready-fd") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                let fd = value
                    .to_str()
                    .and_then(|v| v.parse::<i32>().ok())
                    .filter(|&fd| fd >= 3)
                    .ok_or("--ready-fd: expected a descriptor number, 3 or more")?;
                // SAFETY: fcntl only asks whether the descriptor is open.
                if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                    return Err(format!("--ready-fd {fd}: no such open descriptor"));
                }
                ready_fd = Some(fd);
                continue;
            }
            Long(name) => match setting(name) {
                Some(s) => s.name,
                None => return Err(format!("unknown option --{name}")),
            },
            _ => return Err(arg.unexpected().to_string()),
        };
        let value = if SWITCHES.contains(&name) {
            "true".to_string()
        } else {
            parser
                .value()
                .map_err(|e| e.to_string())?
                .into_string()
                .map_err(|_| format!("--{name}: the value is not valid UTF-8"))?
        };
        // Checked now, so that a mistake is named as a flag, not found later among the file's.
        (setting(name).expect("looked up above").set)(&mut Config::default(), &value)
            .map_err(|why| format!("--{name} {value:?}: {why}"))?;
        sources.flags.push((name, value));
    }
    let mut cfg = load(sources)?;
    cfg.bind = resolve_bind(&cfg.bind_spec)?;
    cfg.ready_fd = ready_fd;
    Ok(Command::Run(cfg))
}

impl Config {
    /// The settings read again from where they first came from (SIGHUP).
    pub fn reload(&self) -> Result<Config, String> {
        load(self.sources.clone())
    }

    /// What `new` changes, as `name: old → new`, and which of those wait for a restart.
    pub fn changes(&self, new: &Config) -> (Vec<String>, Vec<&'static str>) {
        let mut changed = Vec::new();
        let mut need_restart = Vec::new();
        for s in SETTINGS {
            let (old_value, new_value) = ((s.show)(self), (s.show)(new));
            if old_value == new_value {
                continue;
            }
            changed.push(format!("{} {} → {}", s.name, old_value, new_value));
            if !s.live {
                need_restart.push(s.name);
            }
        }
        (changed, need_restart)
    }

    /// `new` with the settings a running server cannot change put back to this one's.
    pub fn keeping_startup_settings(&self, mut new: Config) -> Config {
        new.bind = self.bind;
        new.bind_spec = self.bind_spec.clone();
        new.history = self.history;
        new.history_bytes = self.history_bytes;
        new.history_file = self.history_file.clone();
        new.state_dir = self.state_dir.clone();
        new.default_room = self.default_room.clone();
        new.rooms = self.rooms.clone();
        new
    }
}

/// The defaults, then the config file, then the command line's settings.
fn load(sources: Sources) -> Result<Config, String> {
    let mut cfg = Config::default();
    if let Some(path) = &sources.file {
        read_config_file(&mut cfg, path)?;
    }
    for (name, value) in &sources.flags {
        (setting(name).expect("checked when parsed").set)(&mut cfg, value)
            .map_err(|why| format!("--{name} {value:?}: {why}"))?;
    }
    cfg.sources = sources;
    Ok(cfg)
}

/// `key = value` lines, `#` comments (a whole line, or after a space), blank lines.
fn read_config_file(cfg: &mut Config, path: &std::path::Path) -> Result<(), String> {
    // Read on SIGHUP from the event loop: the one bounded reader that never waits (a FIFO at
    // the path) nor swallows a file without end (a link to /dev/zero).
    let text = charla_proto::files::read_small(path)
        .and_then(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
        })
        .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
    let mut seen: Vec<(&str, usize)> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let at = |why: String| format!("{}:{number}: {why}", path.display());
        // A comment starts at a '#' at the start of the line or after a space or tab.
        let comment = raw
            .char_indices()
            .find(|&(i, c)| c == '#' && (i == 0 || raw[..i].ends_with([' ', '\t'])))
            .map_or(raw.len(), |(i, _)| i);
        let line = &raw[..comment];
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(at(format!("expected 'name = value', found {line:?}")));
        };
        let (key, value) = (key.trim(), value.trim());
        let Some(s) = setting(key) else {
            let hint = if key == "config" {
                " (a config file cannot name another)".to_string()
            } else if key.starts_with("--") {
                format!(
                    " (write it without the dashes: {})",
                    key.trim_start_matches('-')
                )
            } else {
                " (see 'charla-server --help' for the names)".to_string()
            };
            return Err(at(format!("unknown setting {key:?}{hint}")));
        };
        if let Some((_, first)) = seen.iter().find(|(name, _)| *name == s.name) {
            return Err(at(format!("{key} is already set on line {first}")));
        }
        seen.push((s.name, number));
        (s.set)(cfg, value).map_err(|why| at(format!("{key} = {value}: {why}")))?;
    }
    Ok(())
}

/// An address, or a host name looked up, once, at start (`localhost:12345`).
fn resolve_bind(spec: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = spec.parse() {
        return Ok(addr);
    }
    match spec.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| format!("--bind {spec:?}: the name has no address")),
        Err(e) => Err(format!("--bind {spec:?}: cannot look the name up: {e}")),
    }
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
        // Issue 21: no upper bound let `+ 64` overflow (failed before: accepted).
        assert!(parse(&["--max-clients", "18446744073709551615"])
            .unwrap_err()
            .contains("from 1 to 1000000"));
        // A name is looked up at start; a reload does not look it up again.
        assert!(parse(&["--bind", "no-such-host.invalid:9"])
            .unwrap_err()
            .contains("cannot look the name up"));
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
        // Every setting, as the parser knows it, and the flags that are not settings.
        let others = ["config", "help", "version"];
        for name in SETTINGS.iter().map(|s| s.name).chain(others) {
            assert!(HELP.contains(&format!("--{name} ")), "--{name}");
        }
    }

    /// A config file in a temporary directory of its own.
    /// A config file in a directory of its own, removed when dropped.
    struct ConfigFile(PathBuf);

    impl std::ops::Deref for ConfigFile {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl AsRef<std::path::Path> for ConfigFile {
        fn as_ref(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for ConfigFile {
        fn drop(&mut self) {
            if let Some(dir) = self.0.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }

    fn config_file(test: &str, text: &str) -> ConfigFile {
        let dir = std::env::temp_dir().join(format!("charla-config-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.conf");
        std::fs::write(&path, text).unwrap();
        ConfigFile(path)
    }

    #[test]
    fn config_file_sets_what_flags_set() {
        let path = config_file(
            "good",
            "# a comment\n\nbind = [::1]:0\nmax-queue = 64K   # trailing comment\n\
             require-client-cert = true\noperators = /etc/charla/operators\n",
        );
        let cfg = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(cfg.bind.to_string(), "[::1]:0");
        assert_eq!(cfg.max_queue, 64 << 10);
        assert!(cfg.require_client_cert);
        assert_eq!(cfg.operators, Some("/etc/charla/operators".into()));
        // The rest keeps its default.
        assert_eq!(cfg.max_line, 4096);
    }

    #[test]
    fn flags_win_over_the_config_file_wherever_they_are() {
        let path = config_file("override", "max-line = 100\nflood-rate = 3\n");
        let path = path.to_str().unwrap();
        for args in [
            ["--max-line", "200", "--config", path],
            ["--config", path, "--max-line", "200"],
        ] {
            let cfg = parse(&args).unwrap();
            assert_eq!(cfg.max_line, 200);
            assert_eq!(cfg.flood_rate, 3.0);
        }
    }

    #[test]
    fn config_file_errors_name_the_file_and_line() {
        let cases = [
            (
                "unknown",
                "max-line = 100\nfrobnicate = 1\n",
                ":2: unknown setting \"frobnicate\"",
            ),
            (
                "bad-value",
                "\n\nmax-clients = lots\n",
                ":3: max-clients = lots: expected a whole number from 1 to 1000000",
            ),
            (
                "no-equals",
                "max-clients 5\n",
                ":1: expected 'name = value'",
            ),
            (
                "twice",
                "history = 5\nhistory = 6\n",
                ":2: history is already set on line 1",
            ),
            (
                "dashes",
                "--history = 5\n",
                "write it without the dashes: history",
            ),
            (
                "switch",
                "require-client-cert = maybe\n",
                "expected true or false",
            ),
            ("nested", "config = other.conf\n", "cannot name another"),
        ];
        for (test, text, expected) in cases {
            let path = config_file(test, text);
            let err = parse(&["--config", path.to_str().unwrap()])
                .err()
                .unwrap_or_else(|| panic!("{test}: accepted"));
            assert!(
                err.starts_with(&path.display().to_string()),
                "{test}: {err}"
            );
            assert!(err.contains(expected), "{test}: {err}");
        }
        let err = parse(&["--config", "/nonexistent/charla.conf"])
            .err()
            .unwrap();
        assert!(
            err.contains("cannot read the config file /nonexistent/charla.conf"),
            "{err}"
        );
    }

    #[test]
    fn comments_start_after_a_space_or_a_tab_not_inside_a_value() {
        let path = config_file(
            "comments",
            "operators = /etc/ops#1\t# a tab, then a comment # with a hash\nstate-dir = /s # x\n",
        );
        let cfg = parse(&["--config", path.to_str().unwrap()]).unwrap();
        assert_eq!(cfg.operators, Some("/etc/ops#1".into()));
        assert_eq!(cfg.state_dir, Some("/s".into()));
    }

    #[test]
    fn the_packaged_config_file_says_what_its_comments_say() {
        let mut cfg = Config::default();
        let path = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/server.conf"
        ));
        read_config_file(&mut cfg, path).unwrap();
        assert_eq!(cfg.bind.to_string(), "0.0.0.0:12345");
        assert_eq!(cfg.state_dir, Some("/var/lib/charla/state".into()));
        assert_eq!(cfg.operators, Some("/etc/charla/operators".into()));
        // Everything else as the defaults; each setting is there, commented, to be found.
        let text = std::fs::read_to_string(path).unwrap();
        for s in SETTINGS {
            assert!(
                text.contains(&format!("{} = ", s.name)),
                "{} is not in packaging/server.conf",
                s.name
            );
        }
        let defaults = Config {
            bind: cfg.bind,
            bind_spec: cfg.bind_spec.clone(),
            state_dir: cfg.state_dir.clone(),
            operators: cfg.operators.clone(),
            ..Default::default()
        };
        assert!(
            defaults.changes(&cfg).0.is_empty(),
            "{:?}",
            defaults.changes(&cfg).0
        );
    }

    #[test]
    fn reload_reads_the_file_again_and_keeps_what_needs_a_restart() {
        let path = config_file("reload", "flood-rate = 3\nhistory = 10\n");
        let old = parse(&["--config", path.to_str().unwrap(), "--max-line", "200"]).unwrap();
        std::fs::write(&path, "flood-rate = 4\nhistory = 20\nmax-line = 999\n").unwrap();
        let new = old.reload().unwrap();
        // The command line still wins.
        assert_eq!(new.max_line, 200);
        let (changed, need_restart) = old.changes(&new);
        assert_eq!(changed, ["flood-rate 3 → 4", "history 10 → 20"]);
        assert_eq!(need_restart, ["history"]);
        let kept = old.keeping_startup_settings(new);
        assert_eq!((kept.flood_rate, kept.history), (4.0, 10));
        std::fs::write(&path, "flood-rate = fast\n").unwrap();
        assert!(old.reload().unwrap_err().contains(":1: flood-rate = fast"));
    }

    #[test]
    fn every_setting_that_waits_for_a_restart_is_kept_on_reload() {
        let old = Config::default();
        let mut new = Config::default();
        for s in SETTINGS.iter().filter(|s| !s.live) {
            let value = match s.name {
                "bind" => "[::1]:1",
                "history" => "7",
                "history-bytes" => "8K",
                "default-room" => "lobby",
                "rooms" => "#a, #b",
                _ => "/elsewhere",
            };
            (s.set)(&mut new, value).unwrap();
        }
        let (_, need_restart) = old.changes(&new);
        assert_eq!(
            need_restart.len(),
            SETTINGS.iter().filter(|s| !s.live).count()
        );
        let kept = old.keeping_startup_settings(new);
        assert!(old.changes(&kept).1.is_empty());
    }
}
