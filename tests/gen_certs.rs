//! gen-certs.sh: the tutorial's four openssl steps, scripted.

use charla_test_support as common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use common::{root, TempDir};

fn run(args: &[&str], dir: &std::path::Path) -> Output {
    Command::new(root().join("gen-certs.sh"))
        .args(args)
        .arg("--out")
        .arg(dir)
        .env_remove("CHARLA_KEY_PASS")
        .output()
        .unwrap()
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn batch_run_makes_key_csr_and_certificate() {
    let dir = TempDir::new("gen");
    let out = run(&["--batch"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Each of the tutorial's steps is shown as it runs.
    for step in [
        "openssl genpkey -algorithm RSA",
        "-aes256",
        "openssl req -new",
        "openssl x509 -req",
        "-signkey",
        "openssl rsa",
    ] {
        assert!(stdout.contains(step), "{step} not echoed:\n{stdout}");
    }
    let key = dir.path().join("server-key.key");
    let cert = dir.path().join("server-cert.pem");
    assert!(dir.path().join("server.csr").exists());
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key mode {mode:o}");
    assert!(
        std::fs::read_to_string(&key)
            .unwrap()
            .contains("BEGIN PRIVATE KEY"),
        "passphrase stripped"
    );

    let text = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    assert!(
        text.contains("DNS:localhost")
            && text.contains("IP Address:127.0.0.1")
            && text.contains("IP Address:0:0:0:0:0:0:0:1"),
        "{text}"
    );
    assert!(
        text.contains("CA:FALSE") && text.contains("TLS Web Server Authentication"),
        "{text}"
    );

    let fingerprint = openssl(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        cert.to_str().unwrap(),
    ]);
    assert_eq!(
        stdout.trim_end().lines().last().unwrap().trim(),
        fingerprint.trim(),
        "fingerprint printed last"
    );
}

#[test]
fn refuses_to_overwrite_a_key_without_force() {
    let dir = TempDir::new("force");
    assert!(run(&["--batch"], dir.path()).status.success());
    let key = dir.path().join("server-key.key");
    let before = std::fs::read(&key).unwrap();
    let again = run(&["--batch"], dir.path());
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("server-key.key") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&key).unwrap(),
        before,
        "the key was not touched"
    );

    assert!(run(&["--batch", "--force"], dir.path()).status.success());
    assert_ne!(
        std::fs::read(&key).unwrap(),
        before,
        "--force made a new key"
    );
}

#[test]
fn san_days_and_cn_options() {
    let dir = TempDir::new("san");
    let out = run(
        &[
            "--batch",
            "--san",
            "DNS:chat.example.org,IP:192.0.2.7",
            "--days",
            "30",
            "--cn",
            "chat.example.org",
        ],
        dir.path(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert = dir.path().join("server-cert.pem");
    let text = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    assert!(
        text.contains("DNS:chat.example.org")
            && text.contains("IP Address:192.0.2.7")
            && text.contains("DNS:localhost"),
        "{text}"
    );
    assert!(
        text.contains("CN = chat.example.org") || text.contains("CN=chat.example.org"),
        "{text}"
    );
    let checkend = |secs: u32| {
        Command::new("openssl")
            .args([
                "x509",
                "-noout",
                "-checkend",
                &secs.to_string(),
                "-in",
                cert.to_str().unwrap(),
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(checkend(29 * 86400), "valid for 29 more days");
    assert!(!checkend(31 * 86400), "but not for 31");
}

#[test]
fn keep_passphrase_leaves_the_key_encrypted() {
    let dir = TempDir::new("keep");
    let out = Command::new(root().join("gen-certs.sh"))
        .args(["--batch", "--keep-passphrase", "--out"])
        .arg(dir.path())
        .env("CHARLA_KEY_PASS", "frase")
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = std::fs::read_to_string(dir.path().join("server-key.key")).unwrap();
    assert!(key.contains("ENCRYPTED PRIVATE KEY"));
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("frase"),
        "the passphrase is never printed"
    );
}

#[test]
fn bad_options_are_usage_errors() {
    let dir = TempDir::new("bad");
    for args in [
        &["--batch", "--days", "0"][..],
        &["--batch", "--frob"],
        &["--batch", "--san", "email:a@b"],
    ] {
        let out = run(args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    assert!(!dir.path().join("server-key.key").exists());
    let help = Command::new(root().join("gen-certs.sh"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--batch",
        "--out",
        "--days",
        "--cn",
        "--san",
        "--keep-passphrase",
        "--force",
    ] {
        assert!(help.contains(flag), "{flag}");
    }
}

#[test]
fn ec_key_type_makes_an_ecdsa_certificate_the_server_uses() {
    let dir = TempDir::new("gen-ec");
    let out = run(&["--batch", "--key-type", "ec"], dir.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256"));
    // `openssl rsa` cannot read an EC key; the passphrase comes off with `openssl pkey`.
    assert!(
        stdout.contains("openssl pkey -in server-key.key"),
        "{stdout}"
    );
    let key = dir.path().join("server-key.key");
    let cert = dir.path().join("server-cert.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key mode {mode:o}");
    let text = openssl(&["x509", "-noout", "-text", "-in", cert.to_str().unwrap()]);
    assert!(text.contains("id-ecPublicKey"), "{text}");
    assert!(text.contains("NIST CURVE: P-256"), "{text}");
    // Key encipherment is an RSA usage; an ECDSA certificate only signs.
    assert!(!text.contains("Key Encipherment"), "{text}");
    let key_text = openssl(&["pkey", "-noout", "-text", "-in", key.to_str().unwrap()]);
    assert!(key_text.contains("ASN1 OID: prime256v1"), "{key_text}");

    let server = common::Server::start_raw(
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
        &[],
    );
    let connector = common::trusting(&cert);
    let mut ana = common::Client::connect_with(server.addr, &connector);
    ana.send("ana");
    ana.expect_prefix("WELCOME ana");
    let mut bob = common::Client::connect_with(server.addr, &connector);
    bob.send("bob");
    bob.expect_prefix("WELCOME bob");
    bob.send("hola con ECDSA");
    ana.expect_line("MSG bob hola con ECDSA");
}

#[test]
fn unknown_key_type_is_a_usage_error() {
    let dir = TempDir::new("gen-bad-type");
    let out_dir = dir.path().join("new");
    let out = run(&["--batch", "--key-type", "dsa"], &out_dir);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--key-type must be rsa or ec"), "{stderr}");
    // Refused before anything was made: not even the output directory.
    assert!(!out_dir.exists());
}
