//! Command authenticity: `x-payout-signature: v1=<hex HMAC-SHA256(key, exact body)>` with
//! the key named by `x-payout-key-id`. Several keys may be live at once, for rotation.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;

pub const KEY_ID_HEADER: &str = "x-payout-key-id";
pub const SIGNATURE_HEADER: &str = "x-payout-signature";

type HmacSha256 = Hmac<Sha256>;

/// The HMAC keys this worker accepts. `Debug` shows only the key ids.
pub struct KeyRing {
    keys: HashMap<String, SecretSlice<u8>>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

impl KeyRing {
    /// Parses `id:secret[,id:secret...]`.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys = HashMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, secret) = part
                .split_once(':')
                .ok_or("each key must be written id:secret")?;
            if id.is_empty() || secret.is_empty() {
                return Err("key id and secret must both be non-empty".into());
            }
            if keys
                .insert(id.to_owned(), SecretSlice::from(secret.as_bytes().to_vec()))
                .is_some()
            {
                return Err(format!("key id {id:?} appears twice"));
            }
        }
        if keys.is_empty() {
            return Err("no keys given".into());
        }
        Ok(Self { keys })
    }

    fn mac(&self, key_id: &str) -> Option<HmacSha256> {
        let key = self.keys.get(key_id)?;
        Some(HmacSha256::new_from_slice(key.expose_secret()).expect("HMAC takes any key length"))
    }

    /// The header value for `body` signed with `key_id`.
    pub fn sign(&self, key_id: &str, body: &[u8]) -> Option<String> {
        let mut mac = self.mac(key_id)?;
        mac.update(body);
        Some(format!("v1={}", hex::encode(mac.finalize().into_bytes())))
    }

    /// True when `signature` is a valid `v1=` HMAC of `body` under `key_id`.
    /// The comparison is constant-time (`verify_slice`).
    pub fn verify(&self, key_id: Option<&str>, signature: Option<&str>, body: &[u8]) -> bool {
        let (Some(key_id), Some(signature)) = (key_id, signature) else {
            return false;
        };
        let Some(hex_sig) = signature.strip_prefix("v1=") else {
            return false;
        };
        let Ok(expected) = hex::decode(hex_sig) else {
            return false;
        };
        let Some(mut mac) = self.mac(key_id) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&expected).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_answer() {
        // printf 'hello' | openssl dgst -sha256 -hmac 'dev-secret-do-not-use-in-production'
        let ring = KeyRing::parse("dev:dev-secret-do-not-use-in-production").unwrap();
        assert_eq!(
            ring.sign("dev", b"hello").unwrap(),
            format!(
                "v1={}",
                include_str!("../tests/fixtures/hmac_hello.hex").trim()
            )
        );
    }

    #[test]
    fn rotation_accepts_every_listed_key_and_nothing_else() {
        let ring = KeyRing::parse("old:aaa, new:bbb").unwrap();
        let body = b"{\"x\":1}";
        let old = ring.sign("old", body).unwrap();
        let new = ring.sign("new", body).unwrap();
        assert!(ring.verify(Some("old"), Some(&old), body));
        assert!(ring.verify(Some("new"), Some(&new), body));
        assert!(!ring.verify(Some("new"), Some(&old), body));
        assert!(!ring.verify(Some("gone"), Some(&old), body));
        assert!(!ring.verify(None, Some(&old), body));
        assert!(!ring.verify(Some("old"), None, body));
        assert!(!ring.verify(Some("old"), Some(&old[3..]), body));
        assert!(!ring.verify(Some("old"), Some(&old), b"{\"x\":2}"));
    }

    #[test]
    fn bad_specs_are_refused_and_debug_hides_secrets() {
        assert!(KeyRing::parse("").is_err());
        assert!(KeyRing::parse("nocolon").is_err());
        assert!(KeyRing::parse("a:1,a:2").is_err());
        let ring = KeyRing::parse("k1:topsecret").unwrap();
        assert!(!format!("{ring:?}").contains("topsecret"));
    }

    proptest! {
        #[test]
        fn any_signature_header_is_handled(sig in ".{0,80}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let ring = KeyRing::parse("dev:x").unwrap();
            prop_assert!(!ring.verify(Some("dev"), Some(&sig), &body) || ring.sign("dev", &body).unwrap() == sig);
        }
    }
}
