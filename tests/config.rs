//! The config file (--config): settings, errors naming the file and line, flags winning over it,
//! SIGHUP taking new settings or keeping the old ones when the file is broken; logs for journald.

use charla_test_support as common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{certs, server_bin, Identity, Server, TempDir, DEADLINE};

/// Writes `text` as `dir/server.conf`; returns its path as a string.
fn write_config(dir: &TempDir, text: &str) -> String {
    let path = dir.path().join("server.conf");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The server's exit code and stderr when it refuses to start.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(server_bin())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code(), stderr)
}

#[test]
fn a_config_file_sets_the_limits_and_flags_win_over_it() {
    let dir = TempDir::new("config-good");
    let c = certs();
    let config = write_config(
        &dir,
        &format!(
            "# Charla test server\n\
             cert = {}\n\
             key = {}   # the test key\n\
             \n\
             max-line = 100\n\
             flood-rate = 0\n",
            c.cert.display(),
            c.key.display()
        ),
    );
    // The file alone: 100 bytes at most.
    let server = Server::start_raw(&["--config", &config], &[]);
    let (mut ana, mut bob) = server.pair();
    ana.send(&"x".repeat(99));
    bob.expect_next(&format!("MSG ana {}", "x".repeat(99)));
    ana.send(&"y".repeat(150));
    let (line, _) = ana.expect_prefix("ERROR ");
    assert!(line.starts_with("ERROR line-too-long "), "{line}");
    drop(server);

    // A flag on the command line wins, before or after --config.
    for args in [
        ["--max-line", "200", "--config", &config],
        ["--config", &config, "--max-line", "200"],
    ] {
        let server = Server::start_raw(&args, &[]);
        let (mut ana, mut bob) = server.pair();
        ana.send(&"z".repeat(150));
        bob.expect_next(&format!("MSG ana {}", "z".repeat(150)));
        ana.send(&"y".repeat(250));
        let (line, _) = ana.expect_prefix("ERROR ");
        assert!(line.starts_with("ERROR line-too-long "), "{line}");
    }
}

#[test]
fn an_unknown_name_or_a_bad_value_stops_the_server_naming_the_file_and_line() {
    let dir = TempDir::new("config-bad");
    for (text, why) in [
        (
            "max-line = 100\n# fine so far\nmax-lines = 100\n",
            ":3: unknown setting \"max-lines\"",
        ),
        (
            "flood-rate = fast\n",
            ":1: flood-rate = fast: expected lines per second, 0 for off",
        ),
        (
            "history = 5\nhistory = 6\n",
            ":2: history is already set on line 1",
        ),
    ] {
        let config = write_config(&dir, text);
        let (code, stderr) = refused(&["--config", &config]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.starts_with(&format!("charla-server: {config}{why}")),
            "{stderr}"
        );
    }
    let (code, stderr) = refused(&["--config", "/nonexistent/server.conf"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read the config file /nonexistent/server.conf"),
        "{stderr}"
    );
}

#[test]
fn sighup_takes_new_limits_and_a_broken_file_keeps_the_old_ones() {
    let dir = TempDir::new("config-reload");
    let config = write_config(&dir, "max-line = 4096\nflood-rate = 0\n");
    let server = Server::start(&["--config", &config]);
    let (mut ana, mut bob) = server.pair();
    ana.send(&"a".repeat(150));
    bob.expect_next(&format!("MSG ana {}", "a".repeat(150)));

    // A smaller limit, and a change that waits for a restart.
    write_config(&dir, "max-line = 100\nflood-rate = 0\nhistory = 5\n");
    server.signal(libc::SIGHUP);
    server.wait_log(&format!(
        "reloaded {config}: max-line 4096 → 100, history 100 → 5"
    ));
    server.wait_log(&format!(
        "history changed in {config}: taken at the next start, not now"
    ));
    ana.send(&"b".repeat(150));
    let (line, _) = ana.expect_prefix("ERROR ");
    assert!(line.starts_with("ERROR line-too-long "), "{line}");
    // The history keeps what it kept: a newcomer is told 100 messages, not 5.
    let mut cleo = server.connect();
    cleo.send("/nick cleo");
    cleo.expect_line("NOTICE history kept: 100 public messages in memory, shown to whoever joins");

    // A broken file: logged, and the settings in force stay.
    write_config(&dir, "max-line = tiny\n");
    server.signal(libc::SIGHUP);
    server.wait_log(&format!(
        "reload failed, keeping everything as it was: {config}:1: max-line = tiny"
    ));
    ana.send(&"c".repeat(150));
    let (line, _) = ana.expect_prefix("ERROR ");
    assert!(line.starts_with("ERROR line-too-long "), "{line}");
    ana.send(&"d".repeat(50));
    bob.expect_line(&format!("MSG ana {}", "d".repeat(50)));
}

#[test]
fn sighup_reads_a_new_password() {
    let dir = TempDir::new("config-password");
    let password = dir.path().join("password");
    std::fs::write(&password, "primera clave\n").unwrap();
    let config = write_config(&dir, &format!("password-file = {}\n", password.display()));
    let server = Server::start(&["--config", &config]);
    std::fs::write(&password, "segunda clave\n").unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log(&format!(
        "reloaded the password from {}",
        password.display()
    ));
    let mut old = server.connect();
    old.send("/pass primera clave");
    let (line, _) = old.expect_prefix("ERROR ");
    assert!(line.starts_with("ERROR bad-password "), "{line}");
    let mut new = server.connect();
    new.send("/pass segunda clave");
    new.send("/nick ana");
    new.expect_prefix("WELCOME ");
}

/// Runs the server with stderr into a file, as systemd would give it the journal's stream:
/// `JOURNAL_STREAM` names that file's device and inode (or, with `matching` false, another's).
fn journal_log(args: &[&str], matching: bool, until: &str) -> String {
    let dir = TempDir::new("journal");
    let log_path = dir.path().join("stderr");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let stream = if matching {
        format!("{}:{}", meta.dev(), meta.ino())
    } else {
        format!("{}:{}", meta.dev(), meta.ino() + 1)
    };
    let mut child = Command::new(server_bin())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env("JOURNAL_STREAM", stream)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_file_contains(&log_path, until);
    // SAFETY: a signal to our own child, which has not been waited for yet.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    std::fs::read_to_string(&log_path).unwrap()
}

fn wait_file_contains(path: &Path, needle: &str) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never logged:\n{text}"
        );
        // A file gives nothing to wait on: look again shortly; the deadline decides.
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn under_systemd_log_lines_carry_a_priority_and_no_timestamp() {
    let c = certs();
    let (cert, key) = (c.cert.to_str().unwrap(), c.key.to_str().unwrap());
    let log = journal_log(&["--cert", cert, "--key", key], true, "listening on");
    let listening = log.lines().find(|l| l.contains("listening on")).unwrap();
    assert!(listening.starts_with("<6>listening on 127.0.0.1:"), "{log}");
    assert!(log.lines().all(|l| l.starts_with('<')), "{log}");

    // A start-up error is priority 3.
    let log = journal_log(&["--cert", "/nonexistent.pem", "--key", key], true, "\n");
    assert!(log.starts_with("<3>charla-server: "), "{log}");

    // JOURNAL_STREAM naming another stream (inherited, stderr redirected): timestamps as usual.
    let log = journal_log(&["--cert", cert, "--key", key], false, "listening on");
    let listening = log.lines().find(|l| l.contains("listening on")).unwrap();
    assert!(listening.starts_with("20"), "{log}");
    assert!(listening.contains("Z listening on 127.0.0.1:"), "{log}");
}

#[test]
fn a_reload_is_taken_whole_or_not_at_all() {
    let dir = TempDir::new("config-whole");
    let ops = dir.path().join("operators");
    let op = Identity::new("op");
    std::fs::write(&ops, format!("{}\n", op.fingerprint)).unwrap();
    let config = write_config(
        &dir,
        &format!("operators = {}\nmax-line = 4096\n", ops.display()),
    );
    let server = Server::start(&["--config", &config, "--flood-rate", "0"]);
    let mut ana = op.join(server.addr, "ana");
    let mut bob = server.join("bob");

    // A password file that is not there yet, with another change: neither is taken (the
    // server must not look protected while it is not), and the log says why.
    let missing = dir.path().join("password");
    write_config(
        &dir,
        &format!(
            "operators = {}\nmax-line = 100\npassword-file = {}\n",
            ops.display(),
            missing.display()
        ),
    );
    server.signal(libc::SIGHUP);
    server.wait_log(&format!(
        "reload failed, keeping everything as it was: cannot read password file {}",
        missing.display()
    ));
    bob.send(&"b".repeat(150));
    ana.expect_line(&format!("MSG bob {}", "b".repeat(150)));

    // The operators file taken out of the config: nobody is an operator any more.
    write_config(&dir, "max-line = 4096\n");
    server.signal(libc::SIGHUP);
    server.wait_log("no operators file any more: nobody is an operator");
    ana.send("/kick bob");
    let (line, _) = ana.expect_prefix("ERROR ");
    assert!(line.starts_with("ERROR not-operator "), "{line}");
}

/// Issue 21: deadlines were kept in the order they were set, so after SIGHUP lowered
/// `--handshake-timeout` or `--register-timeout` a new connection's deadline waited behind older,
/// longer ones. (Failed before the fix: the new sockets stayed open for the old 300 s.)
#[test]
fn timeouts_lowered_by_a_reload_apply_at_once_behind_longer_ones() {
    let dir = TempDir::new("config-timeouts");
    let long = "handshake-timeout = 300\nregister-timeout = 300\n";
    let config = write_config(&dir, long);
    let server = Server::start(&["--config", &config]);
    // Set under the long timeouts: a silent socket and a client without a nickname.
    let mut old_silent = std::net::TcpStream::connect(server.addr).unwrap();
    let mut old_unnamed = server.connect();
    old_unnamed.sync();
    write_config(&dir, "handshake-timeout = 1\nregister-timeout = 1\n");
    server.signal(libc::SIGHUP);
    server.wait_log(&format!("reloaded {config}: handshake-timeout 300s → 1s"));
    let mut new_silent = std::net::TcpStream::connect(server.addr).unwrap();
    let mut new_unnamed = server.connect();
    assert!(
        common::wait_tcp_closed(&mut new_silent),
        "the new silent socket was not closed"
    );
    let lines = new_unnamed.expect_closed();
    assert!(
        lines.iter().any(|l| l.starts_with("ERROR timeout ")),
        "{lines:?}"
    );
    // The old ones keep the deadlines they were given.
    old_unnamed.sync();
    old_silent
        .set_read_timeout(Some(std::time::Duration::from_millis(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    let read = std::io::Read::read(&mut old_silent, &mut byte);
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the old silent socket was closed: {read:?}"
    );
}

/// Issue 21: a reload looked `--bind` up again (DNS, in the event loop) and threw the answer away,
/// since the listening socket stays until a restart. Now a name is looked up at start only: a
/// config file naming a host that does not resolve is reloaded like any other. (Failed before:
/// "reload failed … bind = chat.invalid:12345: expected ADDR:PORT".)
#[test]
fn a_reload_does_not_look_the_bind_name_up() {
    let dir = TempDir::new("config-bind");
    let config = write_config(&dir, "max-line = 4096\n");
    // The harness's --bind on the command line wins over the file's.
    let server = Server::start(&["--config", &config]);
    write_config(&dir, "max-line = 100\nbind = chat.invalid:12345\n");
    server.signal(libc::SIGHUP);
    server.wait_log(&format!("reloaded {config}: max-line 4096 → 100"));
    assert!(!server.log_text().contains("reload failed"));
}

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
}

/// Issue 21: on SIGHUP the config file was read with read_to_string: a FIFO there froze the
/// server, a link to /dev/zero ate memory until it died. Both are refused, the reload is not
/// taken, and the chat goes on. (Failed before the fix: the chat froze on the FIFO.)
#[test]
fn a_fifo_or_dev_zero_as_the_config_file_does_not_stop_the_server() {
    let dir = TempDir::new("config-fifo");
    let config = write_config(&dir, "max-line = 4096\n");
    let server = Server::start(&["--config", &config]);
    let (mut ana, mut bob) = server.pair();
    std::fs::remove_file(&config).unwrap();
    mkfifo(Path::new(&config));
    server.signal(libc::SIGHUP);
    server.wait_log(&format!(
        "reload failed, keeping everything as it was: cannot read the config file {config}: not a regular file"
    ));
    ana.send("sigo aquí");
    bob.expect_line("MSG ana sigo aquí");
    std::fs::remove_file(&config).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &config).unwrap();
    server.signal(libc::SIGHUP);
    server.wait_log_count(
        "reload failed, keeping everything as it was: cannot read the config file",
        2,
    );
    ana.send("y aquí");
    bob.expect_line("MSG ana y aquí");
}

/// The server's stderr when it refuses to start within the deadline (it must not hang).
fn refused_in_time(args: &[&str]) -> String {
    let c = certs();
    let mut child = Command::new(server_bin())
        .args(["--bind", "127.0.0.1:0", "--cert"])
        .arg(&c.cert)
        .arg("--key")
        .arg(&c.key)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert_eq!(status.code(), Some(1), "{err}");
            return err;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("the server hung instead of refusing {args:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Issue 21: at start the history file and the state files were read without bounds: /dev/zero
/// aborted the server, a FIFO hung it after the port was bound. Each is refused at once, naming
/// the file. (Failed before the fix: the server hung on the FIFO.)
#[test]
fn a_fifo_or_dev_zero_as_the_history_or_a_state_file_is_refused_at_start() {
    let dir = TempDir::new("start-fifo");
    let fifo = dir.path().join("fifo");
    mkfifo(&fifo);
    let err = refused_in_time(&["--history-file", fifo.to_str().unwrap()]);
    assert!(err.contains("not a regular file"), "{err}");
    let err = refused_in_time(&["--history-file", "/dev/zero"]);
    assert!(
        err.contains("not a regular file") || err.contains("/dev/zero.lock"),
        "{err}"
    );
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    mkfifo(&state.join("bans"));
    let err = refused_in_time(&["--state-dir", state.to_str().unwrap()]);
    assert!(
        err.contains("bans") && err.contains("not a regular file"),
        "{err}"
    );
    std::fs::remove_file(state.join("bans")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", state.join("registrations")).unwrap();
    let err = refused_in_time(&["--state-dir", state.to_str().unwrap()]);
    assert!(
        err.contains("registrations") && err.contains("not a regular file"),
        "{err}"
    );
}

/// Issue 21: an existing --state-dir of mode 0755 stayed 0755 (bans and who owns which nickname
/// readable by every user of the machine). It is made 0700, and the log says so. (Failed before:
/// still 0755.)
#[test]
fn an_existing_state_dir_open_to_others_is_made_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("state-mode");
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start(&["--state-dir", state.to_str().unwrap()]);
    server.wait_log("was mode 755, open to other users; made 700");
    let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}
