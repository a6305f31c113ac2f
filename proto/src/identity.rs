//! A client's identity: an ECDSA P-256 key and a self-signed certificate made by OpenSSL. The
//! server knows a user by the certificate's SHA-256 fingerprint, as SSH knows a key: nothing
//! signs it but its own key, so nothing about it expires or needs renewing.

use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::x509::{X509Builder, X509NameBuilder, X509};

/// A new identity: the certificate and the key (PKCS#8), both PEM.
pub struct NewIdentity {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// Makes a new key pair and a certificate for it, valid for a century (servers that know users by
/// fingerprint ignore the dates; others should not refuse it as expired).
pub fn new_identity(common_name: &str) -> Result<NewIdentity, openssl::error::ErrorStack> {
    self_signed(common_name, 36_500, |_, _| Ok(()))
}

/// A server's key and self-signed certificate, with what gen-certs.sh puts in one: the names and
/// addresses clients connect to (subjectAltName), CA:FALSE and serverAuth. ECDSA P-256: the
/// cheaper handshake on a small machine.
pub fn new_server_certificate(
    common_name: &str,
    dns: &[String],
    ips: &[std::net::IpAddr],
    days: u32,
) -> Result<NewIdentity, openssl::error::ErrorStack> {
    use openssl::x509::extension::{BasicConstraints, ExtendedKeyUsage, SubjectAlternativeName};
    self_signed(common_name, days, |cert, context_of| {
        let mut names = SubjectAlternativeName::new();
        for name in dns {
            names.dns(name);
        }
        for ip in ips {
            names.ip(&ip.to_string());
        }
        let names = names.build(&context_of(cert))?;
        cert.append_extension(names)?;
        cert.append_extension(BasicConstraints::new().critical().build()?)?;
        cert.append_extension(ExtendedKeyUsage::new().server_auth().build()?)?;
        Ok(())
    })
}

/// The X.509 context extensions are built in: the certificate is its own issuer.
type ContextOf = fn(&X509Builder) -> openssl::x509::X509v3Context<'_>;

fn self_signed(
    common_name: &str,
    days: u32,
    extensions: impl FnOnce(&mut X509Builder, ContextOf) -> Result<(), openssl::error::ErrorStack>,
) -> Result<NewIdentity, openssl::error::ErrorStack> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(EcKey::generate(&group)?)?;
    let mut name = X509NameBuilder::new()?;
    name.append_entry_by_nid(Nid::COMMONNAME, common_name)?;
    let name = name.build();
    let mut cert = X509Builder::new()?;
    cert.set_version(2)?;
    let mut serial = BigNum::new()?;
    serial.rand(127, MsbOption::MAYBE_ZERO, false)?;
    let serial = serial.to_asn1_integer()?;
    cert.set_serial_number(&serial)?;
    cert.set_subject_name(&name)?;
    cert.set_issuer_name(&name)?;
    cert.set_pubkey(&key)?;
    let (from, until) = (Asn1Time::days_from_now(0)?, Asn1Time::days_from_now(days)?);
    cert.set_not_before(&from)?;
    cert.set_not_after(&until)?;
    extensions(&mut cert, |cert| cert.x509v3_context(None, None))?;
    cert.sign(&key, MessageDigest::sha256())?;
    Ok(NewIdentity {
        cert_pem: cert.build().to_pem()?,
        key_pem: key.private_key_to_pem_pkcs8()?,
    })
}

/// The fingerprint of the first certificate in a PEM file.
pub fn pem_fingerprint(cert_pem: &[u8]) -> Option<String> {
    let cert = X509::from_pem(cert_pem).ok()?;
    Some(crate::fingerprint(&cert.to_der().ok()?))
}

/// Whether the PEM key is the private half of the PEM certificate's public key.
pub fn key_matches(cert_pem: &[u8], key_pem: &[u8]) -> bool {
    let (Ok(cert), Ok(key)) = (
        X509::from_pem(cert_pem),
        PKey::private_key_from_pem(key_pem),
    ) else {
        return false;
    };
    cert.public_key().is_ok_and(|public| public.public_eq(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identity_is_new_and_its_key_matches() {
        let a = new_identity("charla").unwrap();
        let b = new_identity("charla").unwrap();
        let (fa, fb) = (
            pem_fingerprint(&a.cert_pem).unwrap(),
            pem_fingerprint(&b.cert_pem).unwrap(),
        );
        assert_ne!(fa, fb);
        assert_eq!(crate::normalize_fingerprint(&fa), Some(fa.clone()));
        assert!(key_matches(&a.cert_pem, &a.key_pem));
        assert!(!key_matches(&a.cert_pem, &b.key_pem));
        assert!(String::from_utf8(a.key_pem)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
    }
}
