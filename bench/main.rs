//! charla-bench: load a running charla-server over TLS and measure it. See `--help`.

mod dialect;
mod engine;
mod procstat;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use dialect::Dialect;
use engine::{Engine, Ev};
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

const HELP: &str = "\
charla-bench: measure a running charla-server (protocol v1 over TLS, certificate verified),
or an IRC server with --dialect irc, under the same load

Usage: charla-bench <idle|fanout|handshake|soak> [OPTIONS]

Scenarios (each ends with one JSON line of results on stdout; exit 1 if it failed or timed out):
  idle        open --clients connections, register each, then report the time it took and,
              with --server-pid, the server's memory (VmRSS, VmHWM) and KiB per connection;
              then hang up every client at once and report the server's VmHWM once it has
              closed them all (the departures' LEAVE lines are the costly part with rooms)
  fanout      --clients in the room; --senders of them send --messages each (sequence number and
              send time inside); every client counts what it gets: deliveries/s, loss, order,
              latency p50/p99/max, server CPU per delivery
  handshake   connect + TLS + register + quit, --concurrency at a time, for --seconds:
              sessions/s and server CPU per session
  soak        churn for --seconds: --clients steady chatters (one --size line per second
              each), --concurrency sessions joining and quitting, a flooder every 10 s, a
              client that stops reading every 30 s (five at most: the oldest hangs up); the
              population stays steady. Samples the server's VmRSS and open
              descriptors (--server-pid) every 10 s and reports first, last and highest

Options:
  --server ADDR:PORT     server address [default: 127.0.0.1:12345]
  --host NAME            name to verify in the certificate [default: localhost]
  --dialect NAME         charla (protocol v1) or irc: NICK/USER/JOIN #charla, PRIVMSG, to run
                         idle, fanout and handshake against an IRC server [default: charla]
  --ca PATH              certificate to trust [default: certs/server-cert.pem]
  --server-pid PID       read the server's CPU and memory from /proc/PID
  --clients N            connections in the room [default: 100]
  --senders N            fanout: how many clients send [default: 10]
  --messages N           fanout: messages per sender [default: 2000]
  --rate N               fanout: messages per second per sender; 0 = as fast as the server
                         takes them [default: 0]
  --size BYTES           fanout: length of each message text [default: 64]
  --window N             fanout, flat out: messages a sender may have in flight [default: 64]
  --seconds S            handshake: how long to run [default: 5]
  --concurrency N        handshake/idle: connections being set up at once [default: 64]
  --hold S               idle: how long the registered clients sit idle before the server's
                         memory is read [default: 3]
  --prefill N            idle: before the clients join, one more client says N lines of
                         --size bytes, so that every join gets a full history to replay; the
                         server's CPU per join is reported [default: 0]
  --rooms N              idle and fanout: every client says '/cap rooms' before its nickname
                         and, once in, joins --rooms-each of the rooms #r0..#r<N-1> (client i
                         the rooms i, i+1, ... modulo N), so that its plain lines go to the
                         last one; the rooms are made by their first member, which takes
                         --identity and a server started with --max-rooms-per-identity and
                         --max-rooms that allow them [default: 0, the default room only]
  --rooms-each K         how many rooms each client joins with --rooms [default: 1]
  --identity             every connection presents a client certificate (one ECDSA P-256
                         identity, made at start, as Charla's client makes one), so that the
                         server's cost of checking it is measured too
  --timeout S            hard limit for the whole scenario [default: 300]
  -h, --help             print this help

The server should run with flood control off (--flood-rate 0), a --max-clients above --clients
and, for flat-out fanout, a --max-queue large enough for the burst.
";

struct Opts {
    scenario: String,
    server: SocketAddr,
    host: String,
    dialect: Dialect,
    ca: PathBuf,
    server_pid: Option<u32>,
    clients: usize,
    senders: usize,
    messages: usize,
    rate: f64,
    size: usize,
    window: usize,
    seconds: f64,
    concurrency: usize,
    timeout: Duration,
    hold: f64,
    prefill: usize,
    identity: bool,
    rooms: RoomPlan,
}

/// The rooms each client joins once registered (`--rooms`, `--rooms-each`).
#[derive(Clone, Copy, Default)]
struct RoomPlan {
    count: usize,
    each: usize,
}

impl RoomPlan {
    const NONE: RoomPlan = RoomPlan { count: 0, each: 0 };

    /// What client `id` says before its nickname, and once registered.
    fn before_nick(self) -> &'static str {
        if self.count > 0 {
            "/cap rooms\n"
        } else {
            ""
        }
    }

    fn joins(self, id: usize) -> String {
        (0..self.each.min(self.count))
            .map(|j| format!("/join #r{}\n", (id + j) % self.count))
            .collect()
    }
}

fn parse_args() -> Result<Option<Opts>, String> {
    use lexopt::prelude::*;
    let mut o = Opts {
        scenario: String::new(),
        server: "127.0.0.1:12345".parse().unwrap(),
        host: "localhost".into(),
        dialect: Dialect::Charla,
        ca: "certs/server-cert.pem".into(),
        server_pid: None,
        clients: 100,
        senders: 10,
        messages: 2000,
        rate: 0.0,
        size: 64,
        window: 64,
        seconds: 5.0,
        concurrency: 64,
        timeout: Duration::from_secs(300),
        hold: 3.0,
        prefill: 0,
        identity: false,
        rooms: RoomPlan { count: 0, each: 1 },
    };
    let mut p = lexopt::Parser::from_env();
    fn num<T: std::str::FromStr>(p: &mut lexopt::Parser, flag: &str) -> Result<T, String> {
        let v = p.value().map_err(|e| e.to_string())?;
        v.to_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("{flag}: expected a number, got {v:?}"))
    }
    while let Some(arg) = p.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Value(v) if o.scenario.is_empty() => o.scenario = v.to_string_lossy().into_owned(),
            Long("server") => o.server = num(&mut p, "--server")?,
            Long("host") => {
                o.host = p
                    .value()
                    .map_err(|e| e.to_string())?
                    .to_string_lossy()
                    .into_owned()
            }
            Long("dialect") => {
                let v = p.value().map_err(|e| e.to_string())?;
                o.dialect = v
                    .to_str()
                    .and_then(Dialect::parse)
                    .ok_or_else(|| format!("--dialect: expected charla or irc, got {v:?}"))?;
            }
            Long("ca") => o.ca = p.value().map_err(|e| e.to_string())?.into(),
            Long("server-pid") => o.server_pid = Some(num(&mut p, "--server-pid")?),
            Long("clients") => o.clients = num(&mut p, "--clients")?,
            Long("senders") => o.senders = num(&mut p, "--senders")?,
            Long("messages") => o.messages = num(&mut p, "--messages")?,
            Long("rate") => o.rate = num(&mut p, "--rate")?,
            Long("size") => o.size = num(&mut p, "--size")?,
            Long("window") => o.window = num(&mut p, "--window")?,
            Long("seconds") => o.seconds = num(&mut p, "--seconds")?,
            Long("concurrency") => o.concurrency = num(&mut p, "--concurrency")?,
            Long("hold") => o.hold = num(&mut p, "--hold")?,
            Long("prefill") => o.prefill = num(&mut p, "--prefill")?,
            Long("identity") => o.identity = true,
            Long("rooms") => o.rooms.count = num(&mut p, "--rooms")?,
            Long("rooms-each") => o.rooms.each = num(&mut p, "--rooms-each")?,
            Long("timeout") => o.timeout = Duration::from_secs_f64(num(&mut p, "--timeout")?),
            _ => return Err(arg.unexpected().to_string()),
        }
    }
    if !matches!(
        o.scenario.as_str(),
        "idle" | "fanout" | "handshake" | "soak"
    ) {
        return Err("name a scenario: idle, fanout, handshake or soak".into());
    }
    if o.scenario == "soak" && o.dialect != Dialect::Charla {
        return Err(
            "soak speaks only --dialect charla (it checks Charla's flood and slow-reader replies)"
                .into(),
        );
    }
    if o.scenario == "fanout" && (o.senders == 0 || o.senders >= o.clients) {
        return Err("fanout needs 0 < --senders < --clients".into());
    }
    if o.clients == 0 || o.concurrency == 0 || o.window == 0 {
        return Err("--clients, --concurrency and --window must be above 0".into());
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("charla-bench: {e}\nTry 'charla-bench --help'.");
            return ExitCode::from(2);
        }
    };
    let mut json = Json::new(&opts.scenario);
    let result = match connector(&opts).and_then(|c| {
        let mut engine = Engine::new(opts.server, &opts.host, c).map_err(|e| e.to_string())?;
        engine.dialect = opts.dialect;
        let deadline = Instant::now() + opts.timeout;
        match opts.scenario.as_str() {
            "idle" => idle(&opts, &mut engine, deadline, &mut json),
            "fanout" => fanout(&opts, &mut engine, deadline, &mut json),
            "soak" => soak(&opts, &mut engine, deadline, &mut json),
            _ => handshake(&opts, &mut engine, deadline, &mut json),
        }
    }) {
        Ok(()) => {
            json.field("ok", true);
            ExitCode::SUCCESS
        }
        Err(e) => {
            json.field("ok", false);
            json.str("error", &e);
            ExitCode::FAILURE
        }
    };
    json.num("bench_cpu_s", procstat::own_cpu().as_secs_f64());
    println!("{}", json.finish());
    result
}

fn connector(o: &Opts) -> Result<SslConnector, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| e.to_string())?;
    b.set_ca_file(&o.ca)
        .map_err(|e| format!("--ca {}: {e}", o.ca.display()))?;
    b.set_verify(SslVerifyMode::PEER);
    if o.identity {
        use openssl::pkey::PKey;
        use openssl::x509::X509;
        let made =
            charla_proto::identity::new_identity("charla-bench").map_err(|e| e.to_string())?;
        let cert = X509::from_pem(&made.cert_pem).map_err(|e| e.to_string())?;
        let key = PKey::private_key_from_pem(&made.key_pem).map_err(|e| e.to_string())?;
        b.set_certificate(&cert).map_err(|e| e.to_string())?;
        b.set_private_key(&key).map_err(|e| e.to_string())?;
    }
    Ok(b.build())
}

/// Connects and registers clients `0..n` as `<prefix><i>`, `in_flight` at a time; each then
/// joins the rooms `rooms` gives it.
fn join_all(
    d: Dialect,
    engine: &mut Engine,
    n: usize,
    prefix: &str,
    in_flight: usize,
    deadline: Instant,
    rooms: RoomPlan,
) -> Result<(), String> {
    let mut welcomed = Vec::new();
    let mut next = 0;
    let mut registered = 0;
    let mut ready = Vec::new();
    let mut error = None;
    while registered < n {
        while next < n && next - registered < in_flight {
            engine.connect(next).map_err(|e| format!("connect: {e}"))?;
            next += 1;
        }
        check_deadline(deadline, || format!("{registered} of {n} registered"))?;
        engine
            .poll(Duration::from_millis(100), &mut |id, ev| match ev {
                Ev::Ready => ready.push(id),
                Ev::Line(l) if d.is_registered(l) => {
                    registered += 1;
                    welcomed.push(id);
                }
                Ev::Line(l) if d.is_error(l) => error = Some(format!("client {id}: {l}")),
                Ev::Closed(why) => error = Some(format!("client {id} closed: {why}")),
                Ev::Line(_) => {}
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = error.take() {
            return Err(e);
        }
        for id in ready.drain(..) {
            let register = d.register(&format!("{prefix}{id}"));
            engine.send(id, format!("{}{register}", rooms.before_nick()).as_bytes());
        }
        for id in welcomed.drain(..) {
            if rooms.count > 0 {
                engine.send(id, rooms.joins(id).as_bytes());
            }
        }
    }
    Ok(())
}

/// `--prefill`: one client, apart from the others, says that many lines and waits until the
/// server has taken them all.
fn prefill(o: &Opts, deadline: Instant) -> Result<Option<Engine>, String> {
    if o.prefill == 0 {
        return Ok(None);
    }
    let mut engine = Engine::new(o.server, &o.host, connector(o)?).map_err(|e| e.to_string())?;
    engine.dialect = o.dialect;
    join_all(
        o.dialect,
        &mut engine,
        1,
        "prefill",
        1,
        deadline,
        RoomPlan::NONE,
    )?;
    let mut lines = String::new();
    for n in 0..o.prefill {
        let text = format!("{n:08} {}", "x".repeat(o.size.saturating_sub(9)));
        o.dialect.say(&text, &mut lines);
    }
    engine.send(0, lines.as_bytes());
    barrier(o.dialect, &mut engine, 1, deadline)?;
    Ok(Some(engine))
}

/// Every client pings and waits for its pong: all earlier lines to it have been read.
fn barrier(d: Dialect, engine: &mut Engine, n: usize, deadline: Instant) -> Result<(), String> {
    let ping = d.ping("barrier");
    for id in 0..n {
        engine.send(id, ping.as_bytes());
    }
    let mut left = n;
    let mut error = None;
    while left > 0 {
        check_deadline(deadline, || {
            format!("{left} clients still waiting for PONG")
        })?;
        engine
            .poll(Duration::from_millis(100), &mut |id, ev| match ev {
                Ev::Line(l) if d.is_pong(l, "barrier") => left -= 1,
                Ev::Closed(why) => error = Some(format!("client {id} closed: {why}")),
                _ => {}
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = error.take() {
            return Err(e);
        }
    }
    Ok(())
}

fn check_deadline(deadline: Instant, what: impl FnOnce() -> String) -> Result<(), String> {
    if Instant::now() >= deadline {
        Err(format!("timed out (--timeout): {}", what()))
    } else {
        Ok(())
    }
}

fn idle(o: &Opts, engine: &mut Engine, deadline: Instant, json: &mut Json) -> Result<(), String> {
    // Kept open to the end: its lines stay in the history while the others join.
    let _prefiller = prefill(o, deadline)?;
    let before = o.server_pid.and_then(procstat::process_memory_kib);
    let cpu_before = o.server_pid.and_then(procstat::process_cpu);
    let start = Instant::now();
    join_all(
        o.dialect,
        engine,
        o.clients,
        "idle",
        o.concurrency,
        deadline,
        o.rooms,
    )?;
    json.num("connect_all_s", start.elapsed().as_secs_f64());
    barrier(o.dialect, engine, o.clients, deadline)?;
    // Registered and everything sent to them at registration (the history) read.
    json.num("join_all_s", start.elapsed().as_secs_f64());
    if let (Some(cpu0), Some(cpu)) = (cpu_before, o.server_pid.and_then(procstat::process_cpu)) {
        let cpu = cpu.saturating_sub(cpu0).as_secs_f64();
        json.num("join_server_cpu_s", cpu);
        json.num(
            "join_server_cpu_ms_per_client",
            cpu * 1e3 / o.clients as f64,
        );
    }
    json.num("prefill", o.prefill as f64);
    // Hold: the clients sit idle, as most chat clients do most of the time.
    let hold_until = Instant::now() + Duration::from_secs_f64(o.hold);
    let mut error = None;
    while Instant::now() < hold_until {
        engine
            .poll(
                hold_until.saturating_duration_since(Instant::now()),
                &mut |id, ev| {
                    if let Ev::Closed(why) = ev {
                        error = Some(format!("client {id} closed: {why}"));
                    }
                },
            )
            .map_err(|e| e.to_string())?;
        if let Some(e) = error.take() {
            return Err(e);
        }
    }
    json.num("hold_s", o.hold);
    json.num("clients", o.clients as f64);
    json.num("rooms", o.rooms.count as f64);
    if let (Some((rss0, _)), Some((rss, hwm))) =
        (before, o.server_pid.and_then(procstat::process_memory_kib))
    {
        json.num("server_rss_before_kib", rss0 as f64);
        json.num("server_rss_kib", rss as f64);
        json.num("server_hwm_kib", hwm as f64);
        json.num(
            "kib_per_client",
            (rss as f64 - rss0 as f64) / o.clients as f64,
        );
    }
    if let Some(pid) = o.server_pid {
        leave_all(pid, engine, o.clients, deadline, json)?;
    }
    Ok(())
}

/// Every client hangs up at once; the server's peak memory once it has closed them all (its
/// descriptors back to what it had before they came, give or take the prefiller's and a few).
fn leave_all(
    pid: u32,
    engine: &mut Engine,
    clients: usize,
    deadline: Instant,
    json: &mut Json,
) -> Result<(), String> {
    let with_clients = open_fds(pid).unwrap_or(0);
    let start = Instant::now();
    for id in 0..clients {
        engine.close(id);
    }
    let settled = with_clients.saturating_sub(clients) + 4;
    while open_fds(pid).is_some_and(|n| n > settled) {
        check_deadline(deadline, || "the server closing every connection".into())?;
        std::thread::sleep(Duration::from_millis(10));
    }
    json.num("leave_all_s", start.elapsed().as_secs_f64());
    if let Some((_, hwm)) = procstat::process_memory_kib(pid) {
        json.num("server_hwm_after_leaving_kib", hwm as f64);
    }
    Ok(())
}

fn fanout(o: &Opts, engine: &mut Engine, deadline: Instant, json: &mut Json) -> Result<(), String> {
    let d = o.dialect;
    join_all(d, engine, o.clients, "c", o.concurrency, deadline, o.rooms)?;
    barrier(d, engine, o.clients, deadline)?;
    let (c, s, m) = (o.clients, o.senders, o.messages);
    let expected = s * m * (c - 1);
    // next_seq[receiver * s + sender]: the sequence number expected next.
    let mut next_seq = vec![0usize; c * s];
    let mut sent = vec![0usize; s];
    let observer = c - 1;
    let mut delivered = 0usize;
    let mut out_of_order = 0usize;
    let mut latencies_us: Vec<u32> = Vec::with_capacity(expected.min(50_000_000));
    let mut error = None;
    let cpu0 = o.server_pid.and_then(procstat::process_cpu);
    let start = Instant::now();
    let mut line = String::new();
    let mut text = String::new();
    while delivered < expected {
        check_deadline(deadline, || format!("{delivered} of {expected} delivered"))?;
        let now = Instant::now();
        let mut next_due = None::<Instant>;
        for sender in 0..s {
            loop {
                let seq = sent[sender];
                if seq >= m {
                    break;
                }
                if o.rate > 0.0 {
                    // Senders are spread over the first period so that they do not send in lockstep.
                    let offset = (seq as f64 + sender as f64 / s as f64) / o.rate;
                    let due = start + Duration::from_secs_f64(offset);
                    if due > now {
                        next_due = Some(next_due.map_or(due, |d: Instant| d.min(due)));
                        break;
                    }
                } else if seq >= next_seq[observer * s + sender] + o.window
                    || engine.pending(sender) > 0
                {
                    break;
                }
                text.clear();
                let t = start.elapsed().as_micros();
                let _ = write!(text, "{sender} {seq} {t} ");
                while text.len() + 1 < o.size {
                    text.push('x');
                }
                line.clear();
                d.say(&text, &mut line);
                engine.send(sender, line.as_bytes());
                sent[sender] += 1;
            }
        }
        let wait = next_due.map_or(Duration::from_millis(50), |d| {
            d.saturating_duration_since(Instant::now())
        });
        engine
            .poll(wait, &mut |id, ev| match ev {
                Ev::Line(l) => {
                    let Some(text) = d.heard(l) else {
                        return;
                    };
                    let mut words = text.split(' ');
                    let (Some(sender), Some(seq), Some(t)) =
                        (words.next(), words.next(), words.next())
                    else {
                        return;
                    };
                    let (Ok(sender), Ok(seq), Ok(t)) = (
                        sender.parse::<usize>(),
                        seq.parse::<usize>(),
                        t.parse::<u128>(),
                    ) else {
                        return;
                    };
                    if sender >= s {
                        return;
                    }
                    delivered += 1;
                    let slot = &mut next_seq[id * s + sender];
                    if seq != *slot {
                        out_of_order += 1;
                    }
                    *slot = seq + 1;
                    let lat = start.elapsed().as_micros().saturating_sub(t);
                    latencies_us.push(lat.min(u32::MAX as u128) as u32);
                }
                Ev::Closed(why) => error = Some(format!("client {id} closed: {why}")),
                Ev::Ready => {}
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = error.take() {
            return Err(e);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu1 = o.server_pid.and_then(procstat::process_cpu);
    latencies_us.sort_unstable();
    let pct = |p: f64| {
        latencies_us
            .get(((latencies_us.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    json.num("clients", c as f64);
    json.num("senders", s as f64);
    json.num("messages_per_sender", m as f64);
    json.num("rate_per_sender", o.rate);
    json.num("deliveries", delivered as f64);
    json.num("expected", expected as f64);
    json.num("lost", (expected - delivered.min(expected)) as f64);
    json.num("out_of_order", out_of_order as f64);
    json.num("seconds", elapsed);
    json.num("deliveries_per_s", delivered as f64 / elapsed);
    json.num("latency_p50_ms", pct(0.50));
    json.num("latency_p99_ms", pct(0.99));
    json.num("latency_max_ms", pct(1.0));
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        let cpu = (b - a).as_secs_f64();
        json.num("server_cpu_s", cpu);
        json.num(
            "server_cpu_us_per_delivery",
            cpu * 1e6 / delivered.max(1) as f64,
        );
    }
    if out_of_order > 0 {
        return Err(format!("{out_of_order} messages out of order"));
    }
    Ok(())
}

fn handshake(
    o: &Opts,
    engine: &mut Engine,
    deadline: Instant,
    json: &mut Json,
) -> Result<(), String> {
    let run_for = Duration::from_secs_f64(o.seconds);
    let cpu0 = o.server_pid.and_then(procstat::process_cpu);
    let start = Instant::now();
    let mut next_id = 0usize;
    let mut done = 0usize;
    let mut ready = Vec::new();
    let mut finished = Vec::new();
    let mut error = None;
    loop {
        let running = start.elapsed() < run_for;
        while running && engine.open_count() < o.concurrency {
            engine
                .connect(next_id)
                .map_err(|e| format!("connect: {e}"))?;
            next_id += 1;
        }
        if !running && engine.open_count() == 0 {
            break;
        }
        check_deadline(deadline, || format!("{done} sessions"))?;
        engine
            .poll(Duration::from_millis(50), &mut |id, ev| match ev {
                Ev::Ready => ready.push(id),
                Ev::Line(l) if o.dialect.is_registered(l) => finished.push(id),
                Ev::Line(l) if o.dialect.is_error(l) => error = Some(format!("session {id}: {l}")),
                Ev::Closed(why) => error = Some(format!("session {id} closed: {why}")),
                Ev::Line(_) => {}
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = error.take() {
            return Err(e);
        }
        for id in ready.drain(..) {
            engine.send(id, o.dialect.register(&format!("h{id}")).as_bytes());
        }
        for id in finished.drain(..) {
            engine.send(id, o.dialect.quit().as_bytes());
            engine.close(id);
            done += 1;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    json.num("sessions", done as f64);
    json.num("seconds", elapsed);
    json.num("sessions_per_s", done as f64 / elapsed);
    if let (Some(a), Some(b)) = (cpu0, o.server_pid.and_then(procstat::process_cpu)) {
        let cpu = (b - a).as_secs_f64();
        json.num("server_cpu_s", cpu);
        json.num("server_cpu_ms_per_session", cpu * 1e3 / done.max(1) as f64);
    }
    Ok(())
}

/// Open descriptors of a process.
fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

fn soak(o: &Opts, engine: &mut Engine, deadline: Instant, json: &mut Json) -> Result<(), String> {
    let steady = o.clients;
    join_all(
        Dialect::Charla,
        engine,
        steady,
        "steady",
        o.concurrency,
        deadline,
        RoomPlan::NONE,
    )?;
    let run_for = Duration::from_secs_f64(o.seconds);
    let start = Instant::now();
    let mut samples: Vec<(u64, usize)> = Vec::new();
    let sample = |samples: &mut Vec<(u64, usize)>| {
        if let Some(pid) = o.server_pid {
            if let (Some((rss, _)), Some(fds)) = (procstat::process_memory_kib(pid), open_fds(pid))
            {
                samples.push((rss, fds));
            }
        }
    };
    sample(&mut samples);
    // Ids: 0..steady are the steady chatters; churners, flooders and deaf clients get fresh ids.
    let mut next_id = steady;
    let mut churn_open = 0usize;
    let (mut sessions, mut messages, mut floods, mut deaf, mut dropped) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut ready = Vec::new();
    let mut welcomed = Vec::new();
    let mut closed = Vec::new();
    let mut error = None;
    let mut next_message = start;
    let mut next_flood = start + Duration::from_secs(5);
    let mut next_deaf = start + Duration::from_secs(15);
    let mut next_sample = start + Duration::from_secs(10);
    let mut roles: std::collections::HashMap<usize, &'static str> =
        std::collections::HashMap::new();
    let mut deaf_ids = std::collections::VecDeque::new();
    const MAX_DEAF: usize = 5;
    let mut line = String::new();
    while start.elapsed() < run_for {
        check_deadline(deadline, || "soak".into())?;
        let now = Instant::now();
        while churn_open < o.concurrency {
            engine
                .connect(next_id)
                .map_err(|e| format!("connect: {e}"))?;
            roles.insert(next_id, "churn");
            next_id += 1;
            churn_open += 1;
        }
        if now >= next_message {
            next_message += Duration::from_secs(1);
            for id in 0..steady {
                line.clear();
                let _ = write!(line, "soak {messages} ");
                while line.len() + 1 < o.size {
                    line.push('s');
                }
                line.push('\n');
                engine.send(id, line.as_bytes());
                messages += 1;
            }
        }
        if now >= next_flood {
            next_flood += Duration::from_secs(10);
            engine
                .connect(next_id)
                .map_err(|e| format!("connect: {e}"))?;
            roles.insert(next_id, "flood");
            next_id += 1;
        }
        if now >= next_deaf {
            next_deaf += Duration::from_secs(30);
            engine
                .connect(next_id)
                .map_err(|e| format!("connect: {e}"))?;
            roles.insert(next_id, "deaf");
            next_id += 1;
        }
        if now >= next_sample {
            next_sample += Duration::from_secs(10);
            sample(&mut samples);
        }
        engine
            .poll(Duration::from_millis(20), &mut |id, ev| match ev {
                Ev::Ready => ready.push(id),
                Ev::Line(l) if l.starts_with("WELCOME ") => welcomed.push(id),
                Ev::Line(l) if l.starts_with("ERROR flood") => floods += 1,
                Ev::Line(l) if l.starts_with("LEAVE ") && l.ends_with(" too slow") => dropped += 1,
                Ev::Line(_) => {}
                Ev::Closed(why) if id < steady => {
                    error = Some(format!("steady client {id} closed: {why}"))
                }
                Ev::Closed(_) => closed.push(id),
            })
            .map_err(|e| e.to_string())?;
        if let Some(e) = error.take() {
            return Err(e);
        }
        for id in ready.drain(..) {
            engine.send(id, format!("soak{id}\n").as_bytes());
        }
        for id in welcomed.drain(..) {
            match roles.get(&id).copied() {
                Some("churn") => {
                    engine.send(id, b"hola y adios\n/quit\n");
                    engine.close(id);
                    churn_open -= 1;
                    sessions += 1;
                }
                Some("flood") => {
                    // The burst, then gone (a /quit after it would be dropped as flood too).
                    let burst: String = (0..200).map(|i| format!("flood {i}\n")).collect();
                    engine.send(id, burst.as_bytes());
                    engine.close(id);
                    roles.remove(&id);
                }
                Some("deaf") => {
                    engine.stop_reading(id);
                    deaf += 1;
                    // A few stay deaf at a time; the oldest one hangs up, so that the population
                    // is steady and the server's memory and descriptors can be seen to be flat.
                    deaf_ids.push_back(id);
                    if deaf_ids.len() > MAX_DEAF {
                        if let Some(old) = deaf_ids.pop_front() {
                            engine.close(old);
                            roles.remove(&old);
                        }
                    }
                }
                _ => {}
            }
        }
        for id in closed.drain(..) {
            if roles.remove(&id) == Some("churn") {
                churn_open -= 1;
            }
        }
    }
    sample(&mut samples);
    json.num("seconds", start.elapsed().as_secs_f64());
    json.num("sessions", sessions as f64);
    json.num("messages", messages as f64);
    json.num("flood_errors", floods as f64);
    json.num("deaf_clients", deaf as f64);
    json.num("dropped_too_slow", dropped as f64);
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        json.num("samples", samples.len() as f64);
        // Every tenth sample, to see the trend rather than two ends.
        let every: Vec<u64> = samples.iter().step_by(10).map(|s| s.0).collect();
        json.list("rss_kib_every_100s", &every);
        let every: Vec<u64> = samples.iter().step_by(10).map(|s| s.1 as u64).collect();
        json.list("fds_every_100s", &every);
        json.num("rss_first_kib", first.0 as f64);
        json.num("rss_last_kib", last.0 as f64);
        json.num(
            "rss_max_kib",
            samples.iter().map(|s| s.0).max().unwrap_or(0) as f64,
        );
        json.num("fds_first", first.1 as f64);
        json.num("fds_last", last.1 as f64);
        json.num(
            "fds_max",
            samples.iter().map(|s| s.1).max().unwrap_or(0) as f64,
        );
    }
    Ok(())
}

/// One flat JSON object, written by hand: the values are numbers, booleans and plain strings.
struct Json(String);

impl Json {
    fn new(scenario: &str) -> Json {
        let mut j = Json(String::from("{"));
        j.str("scenario", scenario);
        j
    }
    fn sep(&mut self) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
    }
    fn num(&mut self, key: &str, v: f64) {
        self.sep();
        let v = if v.is_finite() { v } else { 0.0 };
        let _ = write!(self.0, "\"{key}\":{}", (v * 1e4).round() / 1e4);
    }
    fn list(&mut self, key: &str, values: &[u64]) {
        self.sep();
        let items: Vec<String> = values.iter().map(u64::to_string).collect();
        let _ = write!(self.0, "\"{key}\":[{}]", items.join(","));
    }
    fn field(&mut self, key: &str, v: bool) {
        self.sep();
        let _ = write!(self.0, "\"{key}\":{v}");
    }
    fn str(&mut self, key: &str, v: &str) {
        self.sep();
        let escaped: String = v
            .chars()
            .flat_map(|c| match c {
                '"' => vec!['\\', '"'],
                '\\' => vec!['\\', '\\'],
                c if c.is_control() => vec![' '],
                c => vec![c],
            })
            .collect();
        let _ = write!(self.0, "\"{key}\":\"{escaped}\"");
    }
    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}
