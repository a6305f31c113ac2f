//! charla-bench against the real server, tiny sizes: correctness only (all registered, nothing
//! lost, order kept), never speed.

use charla_test_support as common;

use std::process::Command;

use common::{certs, Server};

fn bench(server: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_charla-bench"))
        .args(args)
        .args([
            "--server",
            &server.addr.to_string(),
            "--ca",
            certs().cert.to_str().unwrap(),
        ])
        .args(["--server-pid", &server.pid().to_string(), "--timeout", "60"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    assert!(
        stdout.starts_with('{')
            && stdout.trim_end().ends_with('}')
            && stdout.contains("\"ok\":true"),
        "{stdout}"
    );
    stdout
}

#[test]
fn idle_registers_everyone() {
    // The load generator is many clients from one address.
    let server = Server::start(&["--flood-rate", "0", "--max-connects-per-ip", "0"]);
    let out = bench(&server, &["idle", "--clients", "50", "--hold", "0.2"]);
    assert!(out.contains("\"clients\":50,"), "{out}");
    assert!(out.contains("\"kib_per_client\":"), "{out}");
}

#[test]
fn fanout_loses_nothing_and_keeps_order() {
    // The load generator is many clients from one address.
    let server = Server::start(&["--flood-rate", "0", "--max-connects-per-ip", "0"]);
    let out = bench(
        &server,
        &[
            "fanout",
            "--clients",
            "20",
            "--senders",
            "2",
            "--messages",
            "50",
        ],
    );
    assert!(
        out.contains("\"deliveries\":1900,")
            && out.contains("\"lost\":0,")
            && out.contains("\"out_of_order\":0,"),
        "{out}"
    );
    let paced = bench(
        &server,
        &[
            "fanout",
            "--clients",
            "5",
            "--senders",
            "1",
            "--messages",
            "20",
            "--rate",
            "200",
        ],
    );
    assert!(
        paced.contains("\"deliveries\":80,") && paced.contains("\"lost\":0,"),
        "{paced}"
    );
}

#[test]
fn handshake_completes_sessions() {
    // The load generator is many clients from one address.
    let server = Server::start(&["--flood-rate", "0", "--max-connects-per-ip", "0"]);
    let out = bench(
        &server,
        &["handshake", "--seconds", "0.5", "--concurrency", "4"],
    );
    assert!(!out.contains("\"sessions\":0,"), "{out}");
}

#[test]
fn wrong_certificate_is_a_failure_not_a_result() {
    let server = Server::start(&[]);
    let dir = common::TempDir::new("benchca");
    let other = common::gen_certs(dir.path(), &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_charla-bench"))
        .args([
            "idle",
            "--clients",
            "1",
            "--timeout",
            "20",
            "--server",
            &server.addr.to_string(),
        ])
        .arg("--ca")
        .arg(&other.cert)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"ok\":false") && stdout.contains("certificate verify failed"),
        "{stdout}"
    );
}
