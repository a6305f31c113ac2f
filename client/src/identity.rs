//! The user's identity: a key pair and a self-signed certificate made on first run in the config
//! directory, presented in every TLS handshake. Servers know the user by the certificate's
//! SHA-256 fingerprint (registered nicknames, operators); losing the files loses the identity.

use std::fmt;
use std::path::{Path, PathBuf};

use charla_proto::identity::{new_identity, pem_fingerprint};

#[derive(Clone)]
pub struct Identity {
    pub cert_pem: Vec<u8>,
    /// PKCS#8 PEM, as native-tls wants it.
    pub key_pem: Vec<u8>,
    /// `AB:CD:…`, as servers, operators files and `openssl x509 -fingerprint -sha256` write it.
    pub fingerprint: String,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

// The key stays out of logs and panic messages.
impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.fingerprint)
    }
}

const CERT_FILE: &str = "identity-cert.pem";
const KEY_FILE: &str = "identity-key.pem";

impl Identity {
    /// The identity kept in `dir`, made there first if there is none (the key file mode 0600).
    /// One file without the other is an error, not a reason to make a new identity: that would
    /// silently lose the old one.
    pub fn load_or_create(dir: &Path) -> Result<Identity, String> {
        let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => {}
            (false, false) => {
                let made = new_identity("charla user")
                    .map_err(|e| format!("cannot make an identity: {e}"))?;
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let write = |path: &Path, bytes: &[u8]| {
                    charla_proto::files::write_atomically(path, bytes)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))
                };
                // The key first: a certificate without its key would be an identity nobody has.
                write(&key_path, &made.key_pem)?;
                write(&cert_path, &made.cert_pem)?;
            }
            (has_cert, _) => {
                let (there, missing) = if has_cert {
                    (&cert_path, &key_path)
                } else {
                    (&key_path, &cert_path)
                };
                return Err(format!(
                    "{} is missing while {} is there: put it back, or move both away to make a \
                     new identity (servers will not know you by the old one)",
                    missing.display(),
                    there.display()
                ));
            }
        }
        let read = |path: &Path| {
            charla_proto::files::read_small(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
        let fingerprint = pem_fingerprint(&cert_pem)
            .ok_or_else(|| format!("{}: not a PEM certificate", cert_path.display()))?;
        if !charla_proto::identity::key_matches(&cert_pem, &key_pem) {
            return Err(format!(
                "{} does not belong to {}: put the right pair back, or move both away to make a \
                 new identity",
                key_path.display(),
                cert_path.display()
            ));
        }
        Ok(Identity {
            cert_pem,
            key_pem,
            fingerprint,
            cert_path,
            key_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_once_then_kept_with_a_private_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("charla-identity-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = Identity::load_or_create(&dir).unwrap();
        let again = Identity::load_or_create(&dir).unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        let mode = std::fs::metadata(&first.key_path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!format!("{first:?}").contains("PRIVATE"));
        // A key that is not the certificate's (two first runs racing, a bad copy) is refused.
        let other = new_identity("other").unwrap();
        std::fs::write(&first.key_path, &other.key_pem).unwrap();
        let err = Identity::load_or_create(&dir).unwrap_err();
        assert!(err.contains("does not belong to"), "{err}");
        std::fs::remove_file(&first.cert_path).unwrap();
        let err = Identity::load_or_create(&dir).unwrap_err();
        assert!(err.contains("identity-cert.pem is missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
