//! Abuse and faults: silent sockets, clients that vanish at every stage, resets. Bounded in time,
//! loopback only. Nobody else is disturbed, and nothing leaks.

use charla_test_support as common;

use std::io::Write;
use std::net::TcpStream;

use common::{connector, raise_fd_limit, tcp_from, wait_tcp_closed, Client, Server};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn two_thousand_silent_sockets_do_not_disturb_the_chat_and_are_closed() {
    raise_fd_limit();
    // Flood control off: the twenty lines below go out as fast as the machine allows, and whether
    // the burst allowance covers them must not depend on its speed.
    // As if from many addresses: all 2000 are let in and wait for their handshake timeout.
    let server = Server::start(&[
        "--handshake-timeout",
        "15",
        "--flood-rate",
        "0",
        "--max-joining-per-ip",
        "3000",
        "--max-connects-per-ip",
        "0",
    ]);
    let pid = server.pid();
    let (mut ana, mut bob) = server.pair();
    let rss_before = rss_kib(pid);
    let fds_before = open_fds(pid);

    let mut silent: Vec<TcpStream> = (0..2000)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    server.wait_log_count("accepted", 2002);
    let fds_busy = open_fds(pid);
    assert!(
        fds_busy >= fds_before + 2000,
        "{fds_before} descriptors before, {fds_busy} with the sockets"
    );
    let rss_busy = rss_kib(pid);

    // The users chat on while the sockets sit there.
    for i in 0..20 {
        ana.send(&format!("mensaje {i}"));
        bob.expect_next(&format!("MSG ana mensaje {i}"));
    }

    server.wait_log_count("handshake timed out", 2000);
    for s in &mut silent {
        assert!(wait_tcp_closed(s));
    }
    bob.send("sigo aquí");
    ana.expect_next("MSG bob sigo aquí");
    assert_eq!(open_fds(pid), fds_before, "descriptors come back");
    let rss_after = rss_kib(pid);
    eprintln!("server RSS: {rss_before} KiB before, {rss_busy} KiB with 2000 silent sockets, {rss_after} KiB after");
    assert!(
        rss_busy > rss_before,
        "the silent sockets cost memory while open"
    );
    assert!(
        rss_after <= rss_before + (rss_busy - rss_before) / 4,
        "memory comes back: {rss_before} KiB before, {rss_busy} KiB busy, {rss_after} KiB after"
    );
}

#[test]
fn clients_vanishing_at_every_stage_leave_the_rest_chatting_and_leak_nothing() {
    let server = Server::start(&["--flood-rate", "0"]);
    let pid = server.pid();
    let (mut ana, mut bob) = server.pair();
    let fds_before = open_fds(pid);

    // Mid-handshake: half a ClientHello, then gone.
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(server.addr).unwrap();
        tcp.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            .unwrap();
    }
    // Mid-line: registered, half a line, gone.
    let mut half = server.join("half");
    half.send_raw(b"una frase sin final");
    drop(half);
    // Mid-broadcast: a registered client that never reads, gone while lines are queued for it.
    let quiet = server.join("quiet");
    for i in 0..200 {
        ana.send(&format!("ráfaga {i} {}", "x".repeat(500)));
    }
    drop(quiet);
    // Reset: SO_LINGER 0 turns close() into a TCP reset.
    let rst = server.join("rst");
    rst.reset();

    let mut left = Vec::new();
    while left.len() < 3 {
        let line = bob.line();
        if let Some(rest) = line.strip_prefix("LEAVE ") {
            left.push(rest.to_string());
        }
    }
    left.sort();
    assert!(
        left[0] == "half closed" || left[0] == "half lost",
        "{left:?}"
    );
    assert!(
        left[1] == "quiet closed" || left[1] == "quiet lost",
        "{left:?}"
    );
    assert!(left[2] == "rst closed" || left[2] == "rst lost", "{left:?}");
    ana.send("/ping fin");
    ana.expect_line("PONG fin");
    bob.send("seguimos");
    ana.expect_line("MSG bob seguimos");
    server.wait_log_count("handshake failed", 20);
    assert_eq!(open_fds(pid), fds_before, "no descriptor leaks");
    assert!(!server.log_text().contains("panicked"));
}

/// Many silent sockets from 127.0.0.1 (never a byte of TLS); a client from another address gets
/// in at once, long before the silent ones' handshakes would time out.
fn silent_sockets_from_one_address_leave_room_for_others(args: &[&str], held_at_most: usize) {
    raise_fd_limit();
    let mut all = vec![
        "--max-clients",
        "500",
        "--handshake-timeout",
        "120",
        "--max-connects-per-ip",
        "0",
    ];
    all.extend_from_slice(args);
    let server = Server::start(&all);
    let silent: Vec<TcpStream> = (0..600)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Every one of them has been accepted, or closed at once, before the others come; the log
    // counts the closed ones in one line a second, not one each.
    server.wait_closed_at_once((600 - held_at_most) as u64);
    assert!(
        server.log_text().lines().count() < 200,
        "the log does not grow with each connection closed at once"
    );
    for (i, from) in ["127.0.0.2", "127.0.0.3"].into_iter().enumerate() {
        let tcp = tcp_from(from.parse().unwrap(), server.addr);
        let mut c = Client::over(tcp, connector());
        c.send(&format!("otro{i}"));
        c.expect_next(&format!("WELCOME otro{i}"));
    }
    let accepted = server.log_text().matches("accepted 127.0.0.1:").count();
    assert_eq!(accepted, held_at_most, "places held by the silent address");
    drop(silent);
}

#[test]
fn silent_sockets_over_max_per_ip_do_not_take_everyone_s_place() {
    // --max-per-ip 10: ten connections; the rest are not even told (that takes a handshake, and
    // this address already has ten joining).
    silent_sockets_from_one_address_leave_room_for_others(&["--max-per-ip", "10"], 10);
}

#[test]
fn silent_sockets_without_max_per_ip_do_not_take_everyone_s_place() {
    // No --max-per-ip (a classroom behind NAT): still at most 64 joining at once from one address.
    silent_sockets_from_one_address_leave_room_for_others(&[], 64);
}

/// One address looping connect, join, quit: past its allowance of new connections it is told when
/// to try again, and the room sees no more JOIN and LEAVE lines than the allowance.
#[test]
fn connection_churn_from_one_address_cannot_drown_the_room() {
    // Two a minute: the allowance refills only after 30 s, far longer than the test takes.
    let server = Server::start(&["--max-connects-per-ip", "2"]);
    let watcher = tcp_from("127.0.0.2".parse().unwrap(), server.addr);
    let mut watcher = Client::over(watcher, connector());
    watcher.send("vigia");
    watcher.expect_next("WELCOME vigia");
    watcher.read_user_list();
    for i in 0..2 {
        let mut c = server.connect();
        c.send(&format!("churn{i}"));
        c.expect_next(&format!("WELCOME churn{i}"));
        c.read_user_list();
        c.send("/quit");
        c.expect_closed();
    }
    let mut third = server.connect();
    let lines = third.expect_closed();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("ERROR too-many-connections too many new connections")
            && lines[0].contains("try again in "),
        "{lines:?}"
    );
    // The watcher saw two joins and two leaves, then nothing more from the churn.
    let mut seen = Vec::new();
    for line in watcher.sync() {
        seen.push(line);
    }
    let joins = seen.iter().filter(|l| l.starts_with("JOIN churn")).count();
    let leaves = seen.iter().filter(|l| l.starts_with("LEAVE churn")).count();
    assert_eq!((joins, leaves), (2, 2), "{seen:?}");
}

/// Issue 21: a connection being closed was read until its socket was empty, with no budget: a
/// peer that sent `/quit` and kept sending as fast as it could held the loop. It is read in turns
/// like any other, and closed at the end of its linger, while the others chat.
#[test]
fn a_closing_connection_that_keeps_sending_does_not_hold_the_loop() {
    let server = Server::start(&["--flood-rate", "0"]);
    let (mut ana, mut bob) = server.pair();
    let mut talker = server.join("talker");
    talker.send("/quit");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sending = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let chunk = vec![b'x'; 64 << 10];
            let mut sent = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if talker.tls.write_all(&chunk).is_err() {
                    return (sent, true);
                }
                sent += chunk.len();
            }
            (sent, false)
        })
    };
    for n in 0..20 {
        ana.send(&format!("línea {n}"));
        bob.expect_line(&format!("MSG ana línea {n}"));
    }
    server.wait_log("left talker");
    // The linger (2 s) ends it, however much it sends.
    let (sent, cut) = {
        let deadline = std::time::Instant::now() + common::DEADLINE;
        while !sending.is_finished() && std::time::Instant::now() < deadline {
            bob.sync();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sending.join().unwrap()
    };
    assert!(
        cut,
        "the closing connection was never cut ({sent} bytes sent)"
    );
    bob.send("/ping done");
    bob.expect_line("PONG done");
}
