//! SHA256withRSA (PKCS#1 v1.5), the signature every channel in `CHANNELS.md` uses.
//!
//! `ring` does the arithmetic: constant-time and close to OpenSSL's speed. Keys come as
//! PEM: private keys in PKCS#8 (`BEGIN PRIVATE KEY`), public keys as SubjectPublicKeyInfo
//! (`BEGIN PUBLIC KEY`), the formats the channels hand out.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};
use std::fmt;
use std::sync::LazyLock;
use tokio::sync::Semaphore;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM block labelled {0}")]
    NotPem(&'static str),
    #[error("invalid base64 in the PEM body")]
    Base64,
    #[error("the key is not a valid RSA key: {0}")]
    Rejected(String),
}

/// A private key that signs. `Debug` prints nothing of the key.
#[derive(Clone)]
pub struct RsaSigner {
    key: std::sync::Arc<RsaKeyPair>,
    rng: SystemRandom,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaSigner(<redacted>)")
    }
}

impl RsaSigner {
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let der = pem_body(pem, "PRIVATE KEY")?;
        let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(Self {
            key: std::sync::Arc::new(key),
            rng: SystemRandom::new(),
        })
    }

    /// SHA256withRSA over `message`, base64.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&signature::RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
            .expect("signing with a valid RSA key and a correctly sized buffer cannot fail");
        BASE64.encode(sig)
    }
}

/// Runs `signing` (work that makes an RSA signature) on tokio's blocking pool: one
/// RSA-2048 signature takes most of a millisecond, and on a runtime thread it would hold
/// up every other task there (publisher confirms, Redis replies, deliveries) that long.
/// At most one signature per core at a time, so the pool stays that small however many
/// legs are in flight (more threads would only share the same cores).
pub async fn off_runtime<T: Send + 'static>(signing: impl FnOnce() -> T + Send + 'static) -> T {
    static SIGNING: LazyLock<Semaphore> = LazyLock::new(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _permit = SIGNING
        .acquire()
        .await
        .expect("the signing semaphore is never closed");
    match tokio::task::spawn_blocking(signing).await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A public key that verifies.
#[derive(Clone)]
pub struct RsaVerifier {
    /// DER `RSAPublicKey`, the form `ring` takes.
    rsa_public_key: Vec<u8>,
}

impl fmt::Debug for RsaVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaVerifier")
    }
}

impl RsaVerifier {
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let spki = pem_body(pem, "PUBLIC KEY")?;
        let rsa_public_key = spki_to_rsa_public_key(&spki)
            .ok_or_else(|| KeyError::Rejected("not an RSA SubjectPublicKeyInfo".into()))?;
        Ok(Self { rsa_public_key })
    }

    /// Checks a base64 SHA256withRSA signature; anything malformed is simply `false`.
    pub fn verify_base64(&self, message: &[u8], signature_b64: &str) -> bool {
        let Ok(sig) = BASE64.decode(signature_b64.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &self.rsa_public_key)
            .verify(message, &sig)
            .is_ok()
    }
}

/// The DER inside the first PEM block with the given label.
fn pem_body(pem: &str, label: &'static str) -> Result<Vec<u8>, KeyError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).ok_or(KeyError::NotPem(label))? + begin.len();
    let stop = pem[start..].find(&end).ok_or(KeyError::NotPem(label))? + start;
    let b64: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    BASE64.decode(b64).map_err(|_| KeyError::Base64)
}

/// `SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }`:
/// returns the BIT STRING's content when the algorithm is rsaEncryption.
fn spki_to_rsa_public_key(spki: &[u8]) -> Option<Vec<u8>> {
    const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (outer, _) = der_element(spki, 0x30)?;
    let (algorithm, rest) = der_element(outer, 0x30)?;
    let (oid, _) = der_element(algorithm, 0x06)?;
    if oid != RSA_ENCRYPTION_OID {
        return None;
    }
    let (bits, _) = der_element(rest, 0x03)?;
    // First byte of a BIT STRING counts unused bits; a key has none.
    match bits.split_first() {
        Some((0, key)) => Some(key.to_vec()),
        _ => None,
    }
}

/// Splits one DER element with the expected tag off `input`: (content, remainder).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PRIVATE: &str = include_str!("../../tests/fixtures/keys/test_rsa_private.pem");
    const PUBLIC: &str = include_str!("../../tests/fixtures/keys/test_rsa_public.pem");
    /// `printf 'payout-worker known answer' | openssl dgst -sha256 -sign test_rsa_private.pem | base64 -w0`
    const KNOWN_SIGNATURE: &str = include_str!("../../tests/fixtures/keys/known_answer.sig.b64");

    #[test]
    fn signature_matches_openssl_known_answer() {
        let signer = RsaSigner::from_pem(PRIVATE).unwrap();
        assert_eq!(
            signer.sign_base64(b"payout-worker known answer"),
            KNOWN_SIGNATURE.trim()
        );
    }

    #[test]
    fn openssl_signature_verifies_and_tampering_does_not() {
        let verifier = RsaVerifier::from_pem(PUBLIC).unwrap();
        assert!(verifier.verify_base64(b"payout-worker known answer", KNOWN_SIGNATURE));
        assert!(!verifier.verify_base64(b"payout-worker known answer!", KNOWN_SIGNATURE));
        assert!(!verifier.verify_base64(b"payout-worker known answer", "not base64 ***"));
    }

    #[test]
    fn wrong_pem_labels_are_rejected() {
        assert!(matches!(
            RsaSigner::from_pem(PUBLIC),
            Err(KeyError::NotPem(_))
        ));
        assert!(RsaVerifier::from_pem(PRIVATE).is_err());
        assert!(RsaSigner::from_pem("").is_err());
    }

    #[test]
    fn debug_output_never_shows_key_material() {
        let signer = RsaSigner::from_pem(PRIVATE).unwrap();
        assert_eq!(format!("{signer:?}"), "RsaSigner(<redacted>)");
    }

    proptest! {
        #[test]
        fn any_message_round_trips(msg in proptest::collection::vec(any::<u8>(), 0..512)) {
            let signer = RsaSigner::from_pem(PRIVATE).unwrap();
            let verifier = RsaVerifier::from_pem(PUBLIC).unwrap();
            prop_assert!(verifier.verify_base64(&msg, &signer.sign_base64(&msg)));
        }

        #[test]
        fn der_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = spki_to_rsa_public_key(&bytes);
        }
    }
}
