//! The server's TLS configuration, built with the openssl crate.

use std::path::Path;

use foreign_types::ForeignTypeRef;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{SslAcceptor, SslMethod, SslOptions, SslSessionCacheMode, SslVerifyMode};
use openssl::x509::{X509Ref, X509};

use crate::config::Config;
use charla_proto::files;

/// The script is `gen-certs.sh` in the source tree and `charla-gen-certs` once packaged.
const HOW_TO_MAKE: &str =
    "make one with ./gen-certs.sh, or charla-gen-certs where the package is installed";

/// TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers only. TLS 1.3 suites
/// are all of that kind already.
const TLS12_SUITES: &str = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/// The key exchanges offered, on TLS 1.3 and 1.2 alike: the ones whose cost is a millisecond or
/// less of the one thread. OpenSSL would also take P-521 (~2 ms here) and the finite-field groups
/// ffdhe2048–8192 (ffdhe8192: ~120–220 ms per handshake, paid on a replayed ClientHello alone).
const GROUPS: &str = "X25519:P-256:P-384";

/// The largest client key whose signature (TLS's CertificateVerify) is checked: an RSA key of
/// 8,192 bits costs ~1.5 ms here; OpenSSL would take 16,384.
const MAX_CLIENT_RSA_BITS: u32 = 8192;
/// RSA public exponents past this make checking a signature as costly as making one (a 3,072-bit
/// key with a 3,000-bit exponent: ~7 ms per handshake); every real key uses 65537.
const MAX_CLIENT_RSA_EXPONENT_BITS: i32 = 32;

/// `SSL_CTRL_SET_MAX_CERT_LIST` in OpenSSL's ssl.h (openssl-sys exports no constant for it).
const SSL_CTRL_SET_MAX_CERT_LIST: std::ffi::c_int = 51;
/// The most bytes of certificates a client may send: a P-256 identity takes about 400, an RSA-4096
/// one about 1,500.
const MAX_CLIENT_CERT_BYTES: std::ffi::c_long = 16 << 10;

extern "C" {
    // In libssl, which the openssl crate links; the crate does not wrap it.
    fn SSL_CTX_set_cert_verify_callback(
        ctx: *mut openssl_sys::SSL_CTX,
        callback: Option<
            unsafe extern "C" fn(
                *mut openssl_sys::X509_STORE_CTX,
                *mut std::ffi::c_void,
            ) -> std::ffi::c_int,
        >,
        arg: *mut std::ffi::c_void,
    );
    fn X509_STORE_CTX_get0_cert(ctx: *mut openssl_sys::X509_STORE_CTX) -> *mut openssl_sys::X509;
}

/// Replaces OpenSSL's certificate verification for client certificates: an identity is taken as
/// it is (its fingerprint is who it is), so there is no chain to build and no signature of the
/// certificate on itself worth checking. The handshake still proves the client holds the key, by
/// a signature the server checks: only keys whose signature costs the one thread little are
/// taken ([`key_is_cheap_to_check`]); any other ends the handshake with a TLS alert.
unsafe extern "C" fn take_any_certificate(
    ctx: *mut openssl_sys::X509_STORE_CTX,
    _: *mut std::ffi::c_void,
) -> std::ffi::c_int {
    // SAFETY: OpenSSL calls this with the store context of the chain the client sent, whose
    // first certificate (the client's own) lives as long as the context.
    let cert = unsafe { X509_STORE_CTX_get0_cert(ctx) };
    if cert.is_null() {
        return 0;
    }
    // SAFETY: the pointer is non-null and borrowed for this call only (see above); the key it
    // holds was decoded once, when OpenSSL read the certificate.
    let cert = unsafe { X509Ref::from_ptr(cert) };
    let cheap = cert
        .public_key()
        .is_ok_and(|key| key_is_cheap_to_check(&key));
    std::ffi::c_int::from(cheap)
}

/// A client key whose signature costs at most about 1.5 ms to check: ECDSA on a named curve,
/// Ed25519 or Ed448, RSA up to [`MAX_CLIENT_RSA_BITS`] with a small exponent.
fn key_is_cheap_to_check(key: &PKey<openssl::pkey::Public>) -> bool {
    use openssl::nid::Nid;
    use openssl::pkey::Id;
    match key.id() {
        Id::ED25519 | Id::ED448 => true,
        Id::EC => key.ec_key().is_ok_and(|ec| {
            matches!(
                ec.group().curve_name(),
                Some(Nid::X9_62_PRIME256V1 | Nid::SECP384R1 | Nid::SECP521R1)
            )
        }),
        Id::RSA | Id::RSA_PSS => key.rsa().is_ok_and(|rsa| {
            rsa.n().num_bits() as u32 <= MAX_CLIENT_RSA_BITS
                && rsa.e().num_bits() <= MAX_CLIENT_RSA_EXPONENT_BITS
        }),
        _ => false,
    }
}

/// Builds the acceptor: TLS 1.2 and 1.3 only (Mozilla's "intermediate" v5 profile), ECDHE with
/// AEAD suites only on 1.2, no renegotiation, no compression.
pub fn load_acceptor(cfg: &Config) -> Result<SslAcceptor, String> {
    let cert_pem = read(&cfg.cert, "certificate")?;
    let mut chain = X509::stack_from_pem(&cert_pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            format!(
                "{}: no PEM certificate found in it ({HOW_TO_MAKE})",
                cfg.cert.display()
            )
        })?
        .into_iter();
    let key = load_key(cfg)?;

    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    builder.set_options(SslOptions::NO_RENEGOTIATION | SslOptions::NO_COMPRESSION);
    builder
        .set_groups_list(GROUPS)
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    // Mozilla's list also has DHE suites; ECDHE alone is faster and what every client speaks.
    builder
        .set_cipher_list(TLS12_SUITES)
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    // The server picks: AES-128-GCM (as strong as a chat needs, and cheaper per byte than
    // AES-256, which OpenSSL clients list first), unless the client puts ChaCha20 first, as
    // clients without AES instructions do (PRIORITIZE_CHACHA).
    builder.set_options(SslOptions::CIPHER_SERVER_PREFERENCE | SslOptions::PRIORITIZE_CHACHA);
    // No session resumption: Charla's clients do not resume, and each cached session or TLS 1.3
    // ticket costs every handshake CPU and every idle connection memory.
    builder.set_session_cache_mode(SslSessionCacheMode::OFF);
    builder
        .set_num_tickets(0)
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    // TLS 1.2 tickets too: the key that encrypts them would sit in memory for hours, and anyone
    // who got it could decrypt every recorded session that used a ticket (no forward secrecy).
    builder.set_options(SslOptions::NO_TICKET);
    // Read whole bursts of records in one system call instead of a header and a body per record;
    // the read buffer is still released whenever it is empty (RELEASE_BUFFERS).
    builder.set_read_ahead(true);
    // Ask every client for a certificate and take any, self-signed included: a user's identity is
    // its certificate's fingerprint, which the handshake proves the client holds the key of (as
    // SSH knows users by key). No certificate is fine too: the chat core decides what that
    // client may do (--require-client-cert refuses it with a clear error, not a TLS alert).
    builder.set_verify(SslVerifyMode::PEER);
    // SAFETY: installs a C callback that only returns 1, on the context being built.
    unsafe {
        SSL_CTX_set_cert_verify_callback(
            builder.as_ptr(),
            Some(take_any_certificate),
            std::ptr::null_mut(),
        );
    }
    // What a client that has not even chosen a nickname may make the one thread parse and keep:
    // certificates of at most 16 KiB in all (OpenSSL's default would take 100 KiB from every
    // connection), and no chain built from them (take_any_certificate).
    // SAFETY: a plain setter on the context being built (SSL_CTX_set_max_cert_list, a macro
    // over SSL_CTX_ctrl); the pointer stays valid for the call.
    unsafe {
        openssl_sys::SSL_CTX_ctrl(
            builder.as_ptr(),
            SSL_CTRL_SET_MAX_CERT_LIST,
            MAX_CLIENT_CERT_BYTES,
            std::ptr::null_mut(),
        );
    }
    let leaf = chain.next().expect("the chain was checked to be non-empty");
    builder
        .set_certificate(&leaf)
        .map_err(|e| format!("{}: unusable certificate: {e}", cfg.cert.display()))?;
    for extra in chain {
        builder
            .add_extra_chain_cert(extra)
            .map_err(|e| format!("{}: unusable chain certificate: {e}", cfg.cert.display()))?;
    }
    let mismatch = || {
        format!(
            "{} does not belong to {} ({HOW_TO_MAKE} to make a matching pair)",
            cfg.key.display(),
            cfg.cert.display()
        )
    };
    builder.set_private_key(&key).map_err(|e| {
        // OpenSSL already compares the key with the certificate here.
        if e.errors()
            .iter()
            .any(|e| e.reason() == Some("key values mismatch"))
        {
            mismatch()
        } else {
            format!("{}: unusable key: {e}", cfg.key.display())
        }
    })?;
    builder.check_private_key().map_err(|_| mismatch())?;
    Ok(builder.build())
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>, String> {
    files::read_small(path)
        .map_err(|e| format!("cannot read {what} {}: {e} ({HOW_TO_MAKE})", path.display()))
}

fn load_key(cfg: &Config) -> Result<PKey<Private>, String> {
    let pem = read(&cfg.key, "private key")?;
    let passphrase = passphrase(cfg)?;
    let name = cfg.key.display();
    // The callback keeps OpenSSL from prompting on the terminal for an encrypted key.
    let mut asked = false;
    let key = PKey::private_key_from_pem_callback(&pem, |buf| {
        asked = true;
        let pass = passphrase.as_deref().unwrap_or_default().as_bytes();
        if pass.is_empty() || pass.len() > buf.len() {
            return Ok(0);
        }
        buf[..pass.len()].copy_from_slice(pass);
        Ok(pass.len())
    });
    key.map_err(|_| match (asked, &passphrase) {
        (true, None) => format!(
            "{name} is encrypted: give its passphrase in CHARLA_KEY_PASS or --key-pass-file"
        ),
        (true, Some(_)) => format!("{name}: wrong passphrase, or a damaged key"),
        (false, _) => format!("{name}: no PEM private key found in it ({HOW_TO_MAKE})"),
    })
}

fn passphrase(cfg: &Config) -> Result<Option<String>, String> {
    if let Some(path) = &cfg.key_pass_file {
        let line = files::first_line(path)
            .map_err(|e| format!("cannot read passphrase file {}: {e}", path.display()))?;
        return Ok(Some(line));
    }
    Ok(std::env::var("CHARLA_KEY_PASS")
        .ok()
        .filter(|p| !p.is_empty()))
}
