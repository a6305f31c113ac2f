//! SHA-256 fingerprints of certificates, written as `openssl x509 -fingerprint -sha256` writes
//! them (`AB:CD:...`), so that a person can compare what the client shows with what
//! `gen-certs.sh` printed.

/// The fingerprint of a DER-encoded certificate: 32 bytes as uppercase hex pairs joined by `:`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = openssl::sha::sha256(der);
    let mut out = String::with_capacity(95);
    for (i, byte) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{byte:02X}"));
    }
    out
}

/// The first 8 of the 32 bytes (`AB:CD:EF:01:23:45:67:89`): enough for people to tell identities
/// apart, short enough to read out.
pub fn short_fingerprint(fingerprint: &str) -> &str {
    fingerprint.get(..23).unwrap_or(fingerprint)
}

/// Reads a fingerprint as people paste it: `sha256 Fingerprint=` prefix optional, case and
/// separators (`:`, spaces) ignored. Returns the canonical form.
pub fn normalize_fingerprint(text: &str) -> Option<String> {
    let text = text.trim();
    // `sha256 Fingerprint=AB:…` (openssl x509 -fingerprint) and `SHA256:AB:…` as people paste it.
    let text = text.rsplit('=').next().unwrap_or(text).trim();
    let text = match text.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case("sha256:") => &text[7..],
        _ => text,
    };
    let hex: String = text.chars().filter(|c| !matches!(c, ':' | ' ')).collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[2 * i..2 * i + 2]).collect();
    Some(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// OpenSSL's SHA-256 is what `openssl x509 -fingerprint -sha256` uses; these known answers
    /// (FIPS 180-4) guard against a wrong call, not against OpenSSL.
    #[test]
    fn known_answers() {
        use openssl::sha::sha256;
        assert_eq!(
            hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&sha256(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        let million_a = vec![b'a'; 1_000_000];
        assert_eq!(
            hex(&sha256(&million_a)),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
    }

    #[test]
    fn fingerprint_format() {
        let fp = fingerprint(b"abc");
        assert!(fp.starts_with("BA:78:16:BF:"));
        assert_eq!(fp.len(), 95);
        assert_eq!(
            normalize_fingerprint(&format!("sha256 Fingerprint={fp}")),
            Some(fp.clone())
        );
        assert_eq!(
            normalize_fingerprint(&fp.to_lowercase().replace(':', "")),
            Some(fp)
        );
        assert_eq!(normalize_fingerprint("AB:CD"), None);
    }
}
