//! Starting the server: flags, certificate and key problems, the port, TLS versions and suites.

use charla_test_support as common;

use std::net::TcpStream;
use std::process::Command;

use common::{certs, gen_certs, trusting, Client, Server, TempDir, DEADLINE};
use openssl::ssl::{SslConnector, SslMethod, SslVersion};

fn server_cmd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_charla-server"));
    cmd.env_remove("CHARLA_KEY_PASS");
    cmd
}

/// Runs the server expecting it to refuse to start; returns its stderr.
fn refuses(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = server_cmd()
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one clear line: {stderr}");
    stderr
}

#[test]
fn help_explains_every_flag() {
    let out = server_cmd().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--config",
        "--bind",
        "--cert",
        "--key",
        "--key-pass-file",
        "CHARLA_KEY_PASS",
        "--max-clients",
        "--max-line",
        "--max-queue",
        "--flood-rate",
        "--flood-burst",
        "--handshake-timeout",
        "--register-timeout",
        "--history",
        "--history-bytes",
        "--history-file",
        "--resume-window",
        "--require-client-cert",
        "--operators",
        "--state-dir",
        "--max-registrations",
        "--max-nicks-per-identity",
        "--registration-rate",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help");
    }
}

#[test]
fn bad_flag_is_a_usage_error() {
    let out = server_cmd().args(["--max-line", "lots"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--max-line") && err.contains("--help"),
        "{err}"
    );
}

#[test]
fn missing_certificate_names_the_file_and_the_fix() {
    let dir = TempDir::new("nocert");
    let cert = dir.path().join("nope.pem");
    let err = refuses(
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            certs().key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        err.contains("nope.pem") && err.contains("gen-certs.sh"),
        "{err}"
    );
}

#[test]
fn missing_key_names_the_file() {
    let err = refuses(
        &[
            "--cert",
            certs().cert.to_str().unwrap(),
            "--key",
            "/nonexistent/k.key",
        ],
        &[],
    );
    assert!(
        err.contains("/nonexistent/k.key") && err.contains("gen-certs.sh"),
        "{err}"
    );
}

#[test]
fn garbage_certificate_is_refused() {
    let dir = TempDir::new("garbage");
    let cert = dir.path().join("cert.pem");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    let err = refuses(
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            certs().key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(err.contains("cert.pem"), "{err}");
}

#[test]
fn key_of_another_certificate_is_refused() {
    let dir = TempDir::new("other");
    let other = gen_certs(dir.path(), &[]);
    let err = refuses(
        &[
            "--cert",
            certs().cert.to_str().unwrap(),
            "--key",
            other.key.to_str().unwrap(),
        ],
        &[],
    );
    assert!(err.contains("does not belong"), "{err}");
}

#[test]
fn encrypted_key_needs_its_passphrase() {
    let dir = TempDir::new("enc");
    let out = Command::new(common::root().join("gen-certs.sh"))
        .args(["--batch", "--keep-passphrase", "--out"])
        .arg(dir.path())
        .env("CHARLA_KEY_PASS", "una frase secreta")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = dir.path().join("server-cert.pem");
    let key = dir.path().join("server-key.key");
    let args = [
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];

    let err = refuses(&args, &[]);
    assert!(
        err.contains("encrypted") && err.contains("CHARLA_KEY_PASS"),
        "{err}"
    );
    let err = refuses(&args, &[("CHARLA_KEY_PASS", "wrong")]);
    assert!(err.contains("wrong passphrase"), "{err}");

    let server = Server::start_raw(&args, &[("CHARLA_KEY_PASS", "una frase secreta")]);
    drop(server);

    let pass_file = dir.path().join("pass.txt");
    std::fs::write(&pass_file, "una frase secreta\n").unwrap();
    let mut with_file = args.to_vec();
    with_file.extend(["--key-pass-file", pass_file.to_str().unwrap()]);
    // The connect proves the key was loaded, not just the process started.
    let server = Server::start_raw(&with_file, &[]);
    let mut conn = Client::connect_with(server.addr, &trusting(&cert));
    conn.send("ana");
    conn.expect_next("WELCOME ana");
}

#[test]
fn traditional_rsa_key_is_accepted() {
    let dir = TempDir::new("trad");
    let certs = gen_certs(dir.path(), &[]);
    let trad = dir.path().join("trad.key");
    let status = Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(&certs.key)
        .arg("-out")
        .arg(&trad)
        .output()
        .unwrap();
    assert!(status.status.success());
    assert!(std::fs::read_to_string(&trad)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    let server = Server::start_raw(
        &[
            "--cert",
            certs.cert.to_str().unwrap(),
            "--key",
            trad.to_str().unwrap(),
        ],
        &[],
    );
    let mut c = Client::connect_with(server.addr, &trusting(&certs.cert));
    c.send("ana");
    c.expect_next("WELCOME ana");
}

#[test]
fn port_in_use_is_one_clear_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let c = certs();
    let out = server_cmd()
        .args([
            "--bind",
            &addr,
            "--cert",
            c.cert.to_str().unwrap(),
            "--key",
            c.key.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&addr) && err.contains("already in use"),
        "{err}"
    );
}

/// Issue 21: whoever starts the server (the window's "Host a chat", the tests, the scripts) found
/// its port by reading `listening on` in its log, a sentence for people. `--ready-fd` gives one
/// structured line: `listening <address>`, or `error <code> <text>`.
#[test]
fn the_readiness_line_says_where_it_listens_or_why_it_cannot() {
    use charla_proto::ready::{self, code, Readiness};
    let c = certs();
    let start = |bind: &str| {
        let (mut read, write) = ready::pipe().unwrap();
        let mut cmd = server_cmd();
        ready::hand_over_as_fd3(&mut cmd, &write);
        let child = cmd
            .args(["--ready-fd", "3", "--bind", bind, "--cert"])
            .arg(&c.cert)
            .arg("--key")
            .arg(&c.key)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        drop(write);
        let said = ready::wait(&mut read, std::time::Instant::now() + DEADLINE).unwrap();
        (child, said)
    };
    let (mut first, said) = start("127.0.0.1:0");
    let Some(Readiness::Listening(addr)) = said else {
        panic!("{said:?}");
    };
    assert_ne!(addr.port(), 0, "the port picked");
    let (mut second, said) = start(&addr.to_string());
    match said {
        Some(Readiness::Failed { code, text }) => {
            assert_eq!(code, code::ADDRESS_IN_USE);
            assert!(text.contains(&addr.to_string()), "{text}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(second.wait().unwrap().code(), Some(1));
    let _ = first.kill();
    let _ = first.wait();
    // Not an open descriptor: a usage error.
    let out = server_cmd().args(["--ready-fd", "99"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ready-fd 99: no such open descriptor"));
}

fn handshake(
    server: &Server,
    configure: impl FnOnce(&mut openssl::ssl::SslConnectorBuilder),
) -> Result<String, String> {
    let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
    b.set_ca_file(&certs().cert).unwrap();
    configure(&mut b);
    let tcp = TcpStream::connect(server.addr).unwrap();
    tcp.set_read_timeout(Some(DEADLINE)).unwrap();
    match b.build().connect("localhost", tcp) {
        Ok(s) => Ok(format!(
            "{} {}",
            s.ssl().version_str(),
            s.ssl().current_cipher().map_or("", |c| c.name())
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[test]
fn tls_13_is_spoken() {
    let server = Server::start(&[]);
    let got = handshake(&server, |_| {}).unwrap();
    assert!(got.starts_with("TLSv1.3 "), "{got}");
}

#[test]
fn tls_12_only_with_forward_secret_aead_suites() {
    let server = Server::start(&[]);
    let tls12 = |b: &mut openssl::ssl::SslConnectorBuilder| {
        b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
    };
    let got = handshake(&server, tls12).unwrap();
    assert!(
        got.starts_with("TLSv1.2 ECDHE-") && (got.contains("GCM") || got.contains("CHACHA20")),
        "{got}"
    );
    for weak in [
        "AES128-SHA",
        "AES256-GCM-SHA384",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-RSA-AES256-SHA384",
    ] {
        let result = handshake(&server, |b| {
            tls12(b);
            b.set_cipher_list(weak).unwrap();
        });
        assert!(result.is_err(), "server accepted {weak}: {result:?}");
    }
}

#[test]
fn old_tls_versions_are_refused() {
    let server = Server::start(&[]);
    for version in [SslVersion::TLS1_1, SslVersion::TLS1] {
        let result = handshake(&server, |b| {
            // Lower the client's own floor so that only the server can be the one refusing.
            b.set_security_level(0);
            b.set_cipher_list("ALL:@SECLEVEL=0").unwrap();
            b.set_min_proto_version(Some(version)).unwrap();
            b.set_max_proto_version(Some(version)).unwrap();
        });
        assert!(result.is_err(), "server accepted {version:?}: {result:?}");
    }
}

#[test]
fn client_that_trusts_another_certificate_fails() {
    let server = Server::start(&[]);
    let dir = TempDir::new("stranger");
    let other = gen_certs(dir.path(), &[]);
    let tcp = TcpStream::connect(server.addr).unwrap();
    let err = trusting(&other.cert).connect("localhost", tcp).unwrap_err();
    assert!(
        err.to_string().contains("certificate verify failed"),
        "{err}"
    );
}

#[test]
fn certificate_verifies_by_ip_address_too() {
    let server = Server::start(&[]);
    let tcp = TcpStream::connect(server.addr).unwrap();
    let mut config = trusting(&certs().cert).configure().unwrap();
    config.set_use_server_name_indication(false);
    let ip: std::net::IpAddr = "127.0.0.1".parse().unwrap();
    config.param_mut().set_ip(ip).unwrap();
    config.set_verify_hostname(false);
    let tls = config.connect("127.0.0.1", tcp);
    assert!(tls.is_ok(), "{:?}", tls.err());
}

#[test]
fn a_password_that_could_never_be_typed_is_refused_at_start() {
    let dir = common::TempDir::new("untypeable");
    let c = common::certs();
    for bad in [" clave", "clave ", "clave\t"] {
        let file = dir.path().join("password");
        std::fs::write(&file, format!("{bad}\n")).unwrap();
        let err = refuses(
            &[
                "--cert",
                c.cert.to_str().unwrap(),
                "--key",
                c.key.to_str().unwrap(),
                "--password-file",
                file.to_str().unwrap(),
            ],
            &[],
        );
        assert!(
            err.contains("starts or ends with a space"),
            "{bad:?}: {err}"
        );
    }
}
