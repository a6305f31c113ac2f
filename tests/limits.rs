//! Bad input and limits: every case answered, nobody else disturbed.

use charla_test_support as common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{wait_tcp_closed, Client, Server};

#[test]
fn too_long_line_is_refused_and_the_connection_kept() {
    let server = Server::start(&["--max-line", "100"]);
    let (mut ana, mut bob) = server.pair();
    ana.send(&"x".repeat(99)); // 99 + '\n' = 100 bytes: allowed
    bob.expect_next(&format!("MSG ana {}", "x".repeat(99)));
    ana.send(&"y".repeat(5000));
    let (line, skipped) = ana.expect_prefix("ERROR ");
    assert!(skipped.is_empty());
    assert!(line.starts_with("ERROR line-too-long "), "{line}");
    ana.send("sigo aquí");
    bob.expect_next("MSG ana sigo aquí");
    server.wait_log("line too long from ana");
}

#[test]
fn invalid_utf8_is_refused_and_the_connection_kept() {
    let server = Server::start(&[]);
    let (mut ana, mut bob) = server.pair();
    ana.send_raw(b"mal \xff\xfe texto\n");
    let line = ana.line();
    assert!(line.starts_with("ERROR bad-utf8 "), "{line}");
    ana.send("bien");
    bob.expect_next("MSG ana bien");
}

#[test]
fn plain_tcp_instead_of_tls_is_closed_and_logged() {
    let server = Server::start(&[]);
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    tcp.write_all(b"ana\nhola\n").unwrap();
    assert!(
        wait_tcp_closed(&mut tcp),
        "server kept a plain-TCP connection open"
    );
    server.wait_log("handshake failed");
    // The server still serves others.
    server.join("ana");
}

#[test]
fn silent_socket_is_closed_at_handshake_timeout() {
    let server = Server::start(&["--handshake-timeout", "0.5"]);
    let mut tcp = TcpStream::connect(server.addr).unwrap();
    assert!(wait_tcp_closed(&mut tcp));
    server.wait_log("handshake timed out");
}

#[test]
fn no_nickname_in_time_is_told_and_closed() {
    let server = Server::start(&["--register-timeout", "0.5"]);
    let mut c = server.connect();
    let lines = c.expect_closed();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("ERROR timeout "), "{lines:?}");
    server.wait_log("no nickname in time");
}

#[test]
fn flood_is_answered_and_excess_lines_dropped() {
    let server = Server::start(&["--flood-rate", "0.01", "--flood-burst", "5"]);
    let (mut ana, mut bob) = server.pair();
    // Ten lines in one write arrive together: the nickname and the harness's /ping after it took
    // two tokens of five, three are left.
    let burst: String = (0..10).map(|i| format!("línea {i}\n")).collect();
    ana.send_raw(burst.as_bytes());
    let line = ana.line();
    assert!(line.starts_with("ERROR flood "), "{line}");
    for i in 0..3 {
        bob.expect_next(&format!("MSG ana línea {i}"));
    }
    // Everything the server did with ana's lines came before this round trip.
    let after = bob.sync();
    assert!(after.is_empty(), "dropped lines were delivered: {after:?}");
    server.wait_log("flood from ana");
}

#[test]
fn full_server_says_so_and_closes() {
    let server = Server::start(&["--max-clients", "2"]);
    let _ana = server.join("ana");
    let _bob = server.join("bob");
    let mut third = server.connect();
    let lines = third.expect_closed();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("ERROR server-full "), "{lines:?}");
    server.wait_log("server full");
}

#[test]
fn too_few_descriptors_lower_max_clients_and_say_so_once() {
    // 200 descriptors: room for 36 clients besides the server's own and the 64 it keeps for
    // telling extra clients that it is full.
    let server = Server::start_with_descriptor_limit(&["--max-clients", "1000"], 200);
    let line = server.wait_log("--max-clients lowered from 1000 to ");
    assert!(line.contains("only 200 file descriptors"), "{line}");
    let clients: Vec<_> = (0..36).map(|i| server.join(&format!("c{i}"))).collect();
    let mut extra = server.connect();
    let lines = extra.expect_closed();
    assert!(lines[0].starts_with("ERROR server-full "), "{lines:?}");
    assert_eq!(
        server.log_text().matches("file descriptors").count(),
        1,
        "said once"
    );
    drop(clients);
}

#[test]
fn a_client_that_does_not_read_is_dropped_and_others_get_everything() {
    let server = Server::start(&["--max-queue", "64K", "--flood-rate", "0"]);
    let mut reader = server.join("reader");
    let mut sender = server.join("sender");
    // The slow one registers and then never reads again.
    let slow = server.join("slow");
    reader.expect_line("JOIN slow");
    sender.expect_line("JOIN slow");

    let stop = Arc::new(AtomicBool::new(false));
    let stop_sender = stop.clone();
    // The sender stays at most a few messages ahead of the reader, so that only the client that
    // does not read at all falls behind.
    let received = Arc::new(AtomicUsize::new(0));
    let received_by_reader = received.clone();
    let payload = "z".repeat(3000);
    // Enough to fill the kernel's socket buffers and then the 64 KiB queue (bounded anyway).
    const MAX_MESSAGES: usize = 20_000;
    let sending = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < MAX_MESSAGES && !stop_sender.load(Ordering::Relaxed) {
            if sent >= received_by_reader.load(Ordering::Acquire) + 8 {
                std::thread::yield_now();
                continue;
            }
            sender.send(&format!("{sent} {payload}"));
            sent += 1;
        }
        sender.send("end");
        (sender, sent)
    });

    let mut next = 0;
    let mut saw_leave = false;
    loop {
        let line = reader.line();
        if line == "LEAVE slow too-slow" {
            saw_leave = true;
            stop.store(true, Ordering::Relaxed);
            continue;
        }
        if line == "MSG sender end" {
            break;
        }
        let rest = line
            .strip_prefix("MSG sender ")
            .unwrap_or_else(|| panic!("unexpected {line:.60}"));
        let (seq, _) = rest.split_once(' ').unwrap();
        assert_eq!(
            seq.parse::<usize>().unwrap(),
            next,
            "lost or reordered message"
        );
        next += 1;
        received.store(next, Ordering::Release);
    }
    let (_sender, sent) = sending.join().unwrap();
    assert!(
        saw_leave,
        "the non-reading client was never dropped ({sent} messages sent)"
    );
    assert_eq!(next, sent, "the reader got every message");
    server.wait_log("too slow");
    drop(slow);
}

#[test]
fn a_thousand_clients_and_one_message_reaches_the_other_999() {
    common::raise_fd_limit();
    // All from 127.0.0.1 within seconds: no limit on new connections per address.
    let server = Server::start(&["--flood-rate", "0", "--max-connects-per-ip", "0"]);
    let mut clients: Vec<Client> = (0..1000).map(|i| server.join(&format!("u{i}"))).collect();
    clients[0].send("hola a los 999");
    for (i, c) in clients.iter_mut().enumerate().skip(1) {
        let skipped = c.expect_line("MSG u0 hola a los 999");
        assert!(
            skipped.iter().all(|l| l.starts_with("JOIN ")),
            "client {i}: {skipped:?}"
        );
    }
    assert!(
        clients[0].sync().iter().all(|l| l.starts_with("JOIN ")),
        "no echo to the sender"
    );
}

#[test]
fn a_client_sending_tls_garbage_after_the_handshake_only_hurts_itself() {
    let server = Server::start(&[]);
    let mut ana = server.join("ana");
    let bob = server.join("bob");
    ana.expect_next("JOIN bob");
    // Raw bytes on the socket under bob's TLS session: a broken record.
    let mut raw = bob.tls.get_ref().try_clone().unwrap();
    raw.write_all(b"\x17\x03\x03\x00\x05hello").unwrap();
    let mut sink = [0u8; 1024];
    let _ = raw.read(&mut sink);
    let (line, _) = ana.expect_prefix("LEAVE bob ");
    assert!(
        line == "LEAVE bob lost" || line == "LEAVE bob closed",
        "{line}"
    );
    ana.send("/ping ok");
    ana.expect_next("PONG ok");
}

#[test]
fn many_lines_in_one_tls_record_all_arrive_in_order() {
    let server = Server::start(&["--flood-rate", "0"]);
    let (mut ana, mut bob) = server.pair();
    // 500 short lines in one write: OpenSSL sends them as one or two records, and the server
    // decrypts many lines from each read.
    let batch: String = (0..500).map(|i| format!("línea {i}\n")).collect();
    assert!(batch.len() < 16 * 1024, "fits one TLS record");
    ana.send_raw(batch.as_bytes());
    for i in 0..500 {
        bob.expect_next(&format!("MSG ana línea {i}"));
    }
}

#[test]
fn a_burst_bigger_than_the_queue_does_not_drop_clients_that_read() {
    // 64 KiB of queue, and 40 senders whose 3 KB lines all arrive in one pass: 117 KB for each
    // reader at once, more than its queue, though every reader reads.
    let server = Server::start(&["--max-queue", "64K", "--flood-rate", "0"]);
    let mut reader = server.join("reader");
    let mut senders: Vec<Client> = (0..40).map(|i| server.join(&format!("s{i}"))).collect();
    for i in 0..40 {
        reader.expect_line(&format!("JOIN s{i}"));
    }
    let line = "z".repeat(3000);
    for s in senders.iter_mut() {
        s.send(&line);
    }
    let mut got = 0;
    while got < 40 {
        let l = reader.line();
        assert!(!l.starts_with("LEAVE"), "{l}");
        if l.starts_with("MSG s") {
            got += 1;
        }
    }
    assert!(
        !server.log_text().contains("too slow"),
        "{}",
        server.log_text()
    );
}

/// The bytes a client that stops reading can hold before it is dropped: its own receive buffer,
/// the server's --send-buffer and --max-queue. Without --send-buffer the kernel would let the
/// server's send buffer grow to megabytes first (net.ipv4.tcp_wmem).
#[test]
fn send_buffer_bounds_what_a_client_that_stops_reading_holds() {
    use std::os::fd::AsRawFd;
    let server = Server::start(&[
        "--max-queue",
        "64K",
        "--send-buffer",
        "16K",
        "--flood-rate",
        "0",
    ]);
    let mut reader = server.join("reader");
    let mut sender = server.join("sender");
    let slow = server.join("slow");
    // A small receive window on the slow side too, as a far-away client's would be.
    let size: libc::c_int = 16 << 10;
    // SAFETY: setsockopt reads `size` for the given length; the socket is open.
    unsafe {
        libc::setsockopt(
            slow.tls.get_ref().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    reader.expect_line("JOIN slow");
    sender.expect_line("JOIN slow");

    let payload = "z".repeat(3000);
    let mut sent_bytes = 0usize;
    let mut seq = 0usize;
    // The sender stays one line ahead of the reader: only the slow client falls behind.
    loop {
        sender.send(&format!("{seq} {payload}"));
        sent_bytes += payload.len();
        let line = reader.line();
        if line == "LEAVE slow too-slow" {
            break;
        }
        assert!(
            line.starts_with(&format!("MSG sender {seq} ")),
            "unexpected {line:.60}"
        );
        seq += 1;
        assert!(
            sent_bytes < 2 << 20,
            "the non-reading client still not dropped after {sent_bytes} bytes"
        );
    }
    server.wait_log("too slow");
    assert!(
        sent_bytes < 1 << 20,
        "dropped only after {sent_bytes} bytes"
    );
    drop(slow);
}

/// A client found too slow while others' lines are read, whose hang-up comes in the same pass of
/// the event loop, still leaves everyone's user list with a LEAVE line. (It once left a ghost:
/// the hang-up removed it through a path that announced nothing.)
#[test]
fn a_slow_client_that_hangs_up_in_the_same_pass_is_announced_as_leaving() {
    let server = Server::start(&[
        "--max-queue",
        "4K",
        "--send-buffer",
        "4K",
        "--flood-rate",
        "0",
    ]);
    let mut watcher = server.join("watcher");
    // A small receive window: a few kilobytes fill what the kernel holds for it.
    let tcp = {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(2048).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        TcpStream::from(socket)
    };
    let mut slow = Client::over(tcp, common::connector());
    slow.send("slow");
    slow.expect_next("WELCOME slow");
    let mut sender = server.join("sender");
    watcher.expect_line("JOIN slow");
    watcher.expect_line("JOIN sender");
    sender.sync();
    let text = "x".repeat(4000);
    {
        let _paused = server.pause();
        // Far more than the slow client's window, its socket buffer and --max-queue together,
        // all found in one read of the sender...
        for _ in 0..16 {
            sender.send(&format!("/msg slow {text}"));
        }
        // ...and, in the same pass, the slow client hangs up.
        slow.tls
            .get_ref()
            .shutdown(std::net::Shutdown::Write)
            .unwrap();
    }
    let (leave, _) = watcher.expect_prefix("LEAVE slow");
    assert!(
        leave == "LEAVE slow too-slow" || leave == "LEAVE slow closed",
        "{leave}"
    );
    watcher.send("/users");
    assert_eq!(watcher.read_user_list(), ["watcher", "sender"]);
}

/// A log reader that stalls (a full stderr pipe) must not stall the chat: the server keeps
/// serving, drops log lines it cannot write, and says how many once stderr is read again.
#[test]
fn a_server_whose_log_is_not_read_keeps_serving_and_counts_what_it_dropped() {
    // Flood control off: the pings below, as many as it takes the log reader to catch up.
    let server = Server::start(&[
        "--max-connects-per-ip",
        "0",
        "--max-joining-per-ip",
        "100000",
        "--flood-rate",
        "0",
    ]);
    server.stop_reading_log();
    // Each plain TCP connection that hangs up makes two log lines: far more than the pipe's
    // page and the server's 64 KiB of pending lines.
    for _ in 0..1500 {
        drop(TcpStream::connect(server.addr).unwrap());
    }
    let (mut ana, mut bob) = server.pair();
    ana.send("still here");
    bob.expect_line("MSG ana still here");
    server.resume_reading_log();
    // The log is written at the end of a pass of the event loop: pings make passes.
    let deadline = std::time::Instant::now() + common::DEADLINE;
    while !server
        .log_text()
        .contains(" lines dropped: stderr was not taking them")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no count of dropped lines"
        );
        ana.sync();
    }
}

/// Issue 21: the log was written to a terminal from the event loop, so Ctrl-S in the terminal
/// running the server (or a terminal nobody reads) froze the whole chat. The server's stderr here
/// is a pseudo-terminal that is sent XOFF (Ctrl-S) and never read; a thousand connections later,
/// two clients still chat, and the server exits on SIGTERM. (Failed before the fix: no line from
/// the server in time.)
#[test]
fn a_stopped_terminal_does_not_stop_the_chat() {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills in two descriptors; no name, termios or window size is passed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned from here on.
    let (master, slave) = unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::process::Stdio::from(std::fs::File::from_raw_fd(slave)),
        )
    };
    let certs = common::certs();
    let (mut ready, ready_end) = charla_proto::ready::pipe().unwrap();
    let mut command = std::process::Command::new(common::server_bin());
    charla_proto::ready::hand_over_as_fd3(&mut command, &ready_end);
    let mut child = command
        .args(["--ready-fd", "3", "--bind", "127.0.0.1:0", "--cert"])
        .arg(&certs.cert)
        .arg("--key")
        .arg(&certs.key)
        .args([
            "--max-connects-per-ip",
            "0",
            "--max-joining-per-ip",
            "100000",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(slave)
        .spawn()
        .unwrap();
    drop(ready_end);
    // Killed whatever the test's outcome (SIGKILL: a stopped terminal could hold a SIGTERM's exit).
    struct KillOnDrop(u32);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            // SAFETY: kill(2) on our own child (already reaped or not: harmless either way).
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
    let kill = KillOnDrop(child.id());
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let Ok(Some(charla_proto::ready::Readiness::Listening(addr))) =
        charla_proto::ready::wait(&mut ready, deadline)
    else {
        panic!("the server did not start");
    };
    // Ctrl-S: the terminal stops taking output; and nobody reads it.
    (&master).write_all(&[0x13]).unwrap();
    for _ in 0..1000 {
        drop(TcpStream::connect(addr).unwrap());
    }
    let mut ana = Client::connect(addr);
    ana.send("ana");
    ana.expect_next("WELCOME ana");
    let mut bob = Client::connect(addr);
    bob.send("bob");
    bob.expect_next("WELCOME bob");
    ana.expect_line("JOIN bob");
    ana.send("hola");
    bob.expect_line("MSG ana hola");
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = rx
        .recv_timeout(common::DEADLINE)
        .expect("the server did not exit");
    // Reaped: its pid is no longer ours to signal.
    std::mem::forget(kill);
    assert!(status.unwrap().success());
    drop(master);
}

/// A registered client on a connection that offers a 4 KiB receive window and never reads.
fn deaf(server: &Server, nick: &str) -> Client {
    let tcp = common::tcp_with_receive_buffer(server.addr, 4096);
    let mut c = Client::over(tcp, common::connector());
    c.send(nick);
    c.expect_next(&format!("WELCOME {nick}"));
    c.sync();
    c
}

/// Issue 21: --max-queue bounded each client, not all of them: 200 clients that never read took
/// the server from 11 to 194 MB and none was dropped. --max-queue-total bounds what waits for
/// everyone together; the clients holding the most go first, and the room keeps chatting. (Failed
/// before: the server's peak memory grew by ~60 MB with 60 deaf clients.)
#[test]
fn many_clients_that_never_read_cannot_take_the_server_s_memory() {
    common::raise_fd_limit();
    let server = Server::start(&[
        "--flood-rate",
        "0",
        "--max-connects-per-ip",
        "0",
        "--max-queue-total",
        "4M",
    ]);
    let pid = server.pid();
    let (mut sender, mut reader) = server.pair();
    let deaf: Vec<Client> = (0..60)
        .map(|n| deaf(&server, &format!("deaf{n}")))
        .collect();
    reader.sync();
    sender.sync();
    let before = common::status_kib(pid, "VmRSS:");
    // 1,500 lines of 3,000 bytes: 4.5 MB for each listener, far past --max-queue (1 MiB) and the
    // kernel's buffers. The reader reads as it goes; the sender waits for it now and then.
    let payload = "z".repeat(3000);
    for n in 0..1500 {
        sender.send(&format!("{n} {payload}"));
        if n % 50 == 49 {
            reader.expect_line(&format!("MSG ana {n} {payload}"));
        }
    }
    let grown = common::status_kib(pid, "VmHWM:").saturating_sub(before);
    assert!(
        grown < 24 * 1024,
        "the server's peak memory grew by {grown} KiB with 60 clients that never read"
    );
    server.wait_log("over --max-queue-total");
    sender.sync();
    sender.send("/users");
    let users = sender.read_user_list();
    assert!(users.len() < 62, "the deaf were dropped: {}", users.len());
    drop(deaf);
}

/// Issue 21: a registered client that never reads, with lines waiting below --max-queue, was
/// kept for ever. One whose socket takes nothing for --write-timeout is dropped as too slow.
/// (Failed before: it was never dropped.)
#[test]
fn a_client_that_takes_nothing_for_the_write_timeout_is_dropped() {
    let server = Server::start(&["--flood-rate", "0", "--write-timeout", "2"]);
    let (mut sender, mut reader) = server.pair();
    let silent = deaf(&server, "silent");
    sender.expect_line("JOIN silent");
    reader.expect_line("JOIN silent");
    // 600 KB: more than its socket buffers take, less than --max-queue.
    let payload = "z".repeat(3000);
    for n in 0..200 {
        sender.send(&format!("{n} {payload}"));
    }
    reader.expect_line(&format!("MSG ana 199 {payload}"));
    reader.expect_line("LEAVE silent too-slow");
    server.wait_log("took nothing for --write-timeout");
    drop(silent);
}
