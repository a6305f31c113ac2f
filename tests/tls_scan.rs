//! An independent check of the TLS setup: sslscan (Debian's package, installed by .ci/run)
//! against the running server.

use charla_test_support as common;

use std::process::Command;

use common::{require_program, Server};

#[test]
fn sslscan_finds_only_modern_tls() {
    require_program("sslscan");
    // A scanner opens hundreds of connections in seconds: the per-address limit would stop it.
    let server = Server::start(&["--max-connects-per-ip", "0"]);
    let out = Command::new("timeout")
        .args(["120", "sslscan", "--no-colour", "--xml=-"])
        .arg(server.addr.to_string())
        .output()
        .expect("run timeout(1) from coreutils");
    let xml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && xml.contains("<ssltest"),
        "sslscan failed ({}): {xml}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let enabled: Vec<&str> = xml
        .lines()
        .filter(|l| l.contains("<protocol ") && l.contains("enabled=\"1\""))
        .collect();
    assert_eq!(enabled.len(), 2, "{enabled:?}");
    assert!(
        enabled.iter().any(|l| l.contains("version=\"1.2\""))
            && enabled.iter().any(|l| l.contains("version=\"1.3\""))
    );

    let ciphers: Vec<&str> = xml.lines().filter(|l| l.contains("<cipher ")).collect();
    assert!(!ciphers.is_empty());
    for line in &ciphers {
        let name = line
            .split("cipher=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap();
        if line.contains("sslversion=\"TLSv1.2\"") {
            assert!(
                name.starts_with("ECDHE-"),
                "TLS 1.2 suite without ECDHE: {name}"
            );
            assert!(
                name.contains("GCM") || name.contains("CHACHA20-POLY1305"),
                "TLS 1.2 suite without AEAD: {name}"
            );
        } else {
            assert!(line.contains("sslversion=\"TLSv1.3\""), "{line}");
        }
    }
    assert!(
        xml.contains("<renegotiation supported=\"0\""),
        "renegotiation offered"
    );
    assert!(
        !xml.contains("<compression supported=\"1\""),
        "compression offered"
    );
    assert!(!xml.contains("vulnerable=\"1\""), "heartbleed");
}

#[test]
fn server_picks_aes_128_unless_the_client_prefers_chacha() {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    let server = Server::start(&[]);
    let cipher = |suites: &str| {
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_ca_file(&common::certs().cert).unwrap();
        b.set_verify(SslVerifyMode::PEER);
        b.set_ciphersuites(suites).unwrap();
        let client = common::Client::connect_with(server.addr, &b.build());
        client
            .tls
            .ssl()
            .current_cipher()
            .unwrap()
            .name()
            .to_string()
    };
    // OpenSSL's clients list AES-256 first; the server's order wins.
    assert_eq!(
        cipher("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
        "TLS_AES_128_GCM_SHA256"
    );
    // A client without AES instructions puts ChaCha20 first, and gets it.
    assert_eq!(
        cipher("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"),
        "TLS_CHACHA20_POLY1305_SHA256"
    );
}

/// No session resumption on either version: a ticket key kept in memory would let whoever gets
/// it decrypt recorded sessions. `s_client -reconnect` tries to resume five times.
#[test]
fn no_session_is_resumed_with_tls_1_2_or_1_3() {
    let server = Server::start(&[]);
    for version in ["-tls1_2", "-tls1_3"] {
        let out = Command::new("openssl")
            .args(["s_client", version, "-reconnect", "-connect"])
            .arg(server.addr.to_string())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run openssl s_client");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("New, "),
            "{version}: no session at all: {text}"
        );
        assert!(
            !text.contains("Reused, "),
            "{version}: a session was resumed: {text}"
        );
        assert!(
            !text.contains("TLS session ticket lifetime hint"),
            "{version}: a ticket was issued: {text}"
        );
    }
}
