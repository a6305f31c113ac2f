//! Who may enter: the server password, connections per address, certificate reload.

use charla_test_support as common;

use common::{gen_certs, trusting, Client, Server, TempDir};

fn with_password(password: &str, extra: &[&str]) -> (Server, TempDir) {
    let dir = TempDir::new("password");
    let file = dir.path().join("password");
    std::fs::write(&file, format!("{password}\n")).unwrap();
    let mut args = vec!["--password-file", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    (Server::start(&args), dir)
}

#[test]
fn the_password_comes_before_the_nickname() {
    let (server, _dir) = with_password("abre sésamo", &[]);
    let mut c = server.connect();
    c.send("ana");
    let line = c.line();
    assert!(line.starts_with("ERROR password-required "), "{line}");
    // Spaces inside count; at the ends, as typed by accident, they do not.
    c.send("/pass  abre sésamo ");
    assert!(c.line().starts_with("NOTICE "));
    c.send("ana");
    c.expect_next("WELCOME ana");
    assert!(
        !server.log_text().contains("sésamo"),
        "the password is never logged"
    );
}

#[test]
fn a_wrong_password_closes_the_connection() {
    let (server, _dir) = with_password("correcta", &[]);
    let mut c = server.connect();
    c.send("/pass incorrecta");
    assert_eq!(c.expect_closed(), vec!["ERROR bad-password wrong password"]);
    server.wait_log("wrong password from 127.0.0.1");
}

#[test]
fn repeated_failures_from_one_address_are_slowed_down() {
    let (server, _dir) = with_password("correcta", &[]);
    // Three typing mistakes are free; the fourth makes the address wait.
    for _ in 0..4 {
        let mut c = server.connect();
        c.send("/pass mal");
        assert_eq!(c.expect_closed(), vec!["ERROR bad-password wrong password"]);
    }
    // Now even the right password is not checked until the wait is over.
    let mut c = server.connect();
    c.send("/pass correcta");
    let lines = c.expect_closed();
    assert!(
        lines[0].starts_with("ERROR bad-password too many wrong passwords"),
        "{lines:?}"
    );
}

#[test]
fn connections_over_max_per_ip_are_refused() {
    let server = Server::start(&["--max-per-ip", "2"]);
    let mut a = server.join("ana");
    let _b = server.join("bob");
    let mut third = server.connect();
    assert_eq!(
        third.expect_closed(),
        vec!["ERROR too-many-connections too many connections from your address"]
    );
    server.wait_log("too many connections from this address");
    // A place frees up when someone leaves.
    a.send("/quit");
    assert_eq!(a.expect_closed(), vec!["JOIN bob"]);
    server.join("eva");
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_anyone() {
    let dir = TempDir::new("reload");
    let first = gen_certs(dir.path(), &[]);
    let args = [
        "--cert",
        first.cert.to_str().unwrap(),
        "--key",
        first.key.to_str().unwrap(),
    ];
    let server = Server::start_raw(&args, &[]);
    let mut ana = Client::connect_with(server.addr, &trusting(&first.cert));
    ana.send("ana");
    ana.expect_next("WELCOME ana");
    ana.read_user_list();
    ana.sync();

    // A renewed certificate and key, written over the old files.
    let old_cert = dir.path().join("old-cert.pem");
    std::fs::copy(&first.cert, &old_cert).unwrap();
    gen_certs(dir.path(), &["--force"]);
    let new_cert = dir.path().join("new-cert.pem");
    std::fs::copy(&first.cert, &new_cert).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log("reloaded certificate");

    let mut bob = Client::connect_with(server.addr, &trusting(&new_cert));
    bob.send("bob");
    bob.expect_next("WELCOME bob");
    ana.expect_next("JOIN bob");
    let tcp = std::net::TcpStream::connect(server.addr).unwrap();
    assert!(
        trusting(&old_cert).connect("localhost", tcp).is_err(),
        "new connections get the new certificate"
    );

    // A broken file is logged and the current certificate kept.
    std::fs::write(&first.cert, "garbage").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log("reload failed, keeping everything as it was");
    let mut eva = Client::connect_with(server.addr, &trusting(&new_cert));
    eva.send("eva");
    eva.expect_next("WELCOME eva");
    ana.expect_next("JOIN eva");
}

#[test]
fn sighup_with_a_fifo_or_a_device_at_the_certificate_path_keeps_serving() {
    let dir = TempDir::new("reload-hostile");
    let certs = gen_certs(dir.path(), &[]);
    let served = dir.path().join("served-cert.pem");
    std::fs::copy(&certs.cert, &served).unwrap();
    let args = [
        "--cert",
        served.to_str().unwrap(),
        "--key",
        certs.key.to_str().unwrap(),
    ];
    let server = Server::start_raw(&args, &[]);

    // A FIFO nobody writes to: reading it would wait for ever.
    std::fs::remove_file(&served).unwrap();
    let path = std::ffi::CString::new(served.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    server.signal(libc::SIGHUP);
    server.wait_log("reload failed, keeping everything as it was");
    let mut ana = Client::connect_with(server.addr, &trusting(&certs.cert));
    ana.send("ana");
    ana.expect_next("WELCOME ana");
    ana.read_user_list();
    ana.sync();

    // A device without end: reading it whole would eat the memory.
    std::fs::remove_file(&served).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", &served).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log_count("reload failed, keeping everything as it was", 2);
    let mut bob = Client::connect_with(server.addr, &trusting(&certs.cert));
    bob.send("bob");
    bob.expect_next("WELCOME bob");
    ana.expect_next("JOIN bob");
    assert!(server.log_text().contains("not a regular file"));

    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit().code(), Some(0));
}
