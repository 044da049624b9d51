//! Command authenticity: `x-payout-signature: v1=<hex HMAC-SHA256(key, exact body)>` with
//! the key named by `x-payout-key-id`. Several keys may be live at once, for rotation.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;

pub const KEY_ID_HEADER: &str = "x-payout-key-id";
pub const SIGNATURE_HEADER: &str = "x-payout-signature";
/// The worker's own seal over the bookkeeping headers it writes on a re-published copy.
pub const SEAL_HEADER: &str = "x-payout-seal";

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

/// The worker's seal over its own bookkeeping headers (`x-payout-attempt`,
/// `x-payout-lease-waits`) on the copies it re-publishes: an HMAC with a key only workers
/// hold (`auth.worker_keys`), bound to the command's own signature, so a publisher (who
/// holds the command keys, not these) cannot set how a command is scheduled, and a
/// count cannot be moved from one command to another. Signed with the first key, checked
/// against every listed one (rotation: add the new key second, roll the workers, then
/// move it first).
pub struct Seal {
    keys: Vec<(String, SecretSlice<u8>)>,
}

impl fmt::Debug for Seal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<&str> = self.keys.iter().map(|(id, _)| id.as_str()).collect();
        f.debug_struct("Seal").field("key_ids", &ids).finish()
    }
}

impl Seal {
    /// Parses `id:secret[,id:secret...]`, the first being the one that seals.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let ring = KeyRing::parse(spec)?;
        let order = spec
            .split(',')
            .map(str::trim)
            .filter_map(|p| p.split_once(':').map(|(id, _)| id.to_owned()));
        let mut keys = Vec::new();
        let mut ring = ring.keys;
        for id in order {
            if let Some(k) = ring.remove(&id) {
                keys.push((id, k));
            }
        }
        Ok(Self { keys })
    }

    fn mac(key: &SecretSlice<u8>, signature: &str, counts: &[u32]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(key.expose_secret()).expect("HMAC takes any key length");
        mac.update(b"payout-worker seal v1\n");
        mac.update(signature.as_bytes());
        for c in counts {
            mac.update(b"\n");
            mac.update(c.to_string().as_bytes());
        }
        mac
    }

    /// The seal header's value for these counts on the command signed `signature`.
    pub fn seal(&self, signature: &str, counts: &[u32]) -> String {
        let (id, key) = &self.keys[0];
        let tag = Self::mac(key, signature, counts).finalize().into_bytes();
        format!("{id}:v1={}", hex::encode(tag))
    }

    /// True when `seal` is this worker fleet's seal of `counts` on `signature`.
    pub fn verify(&self, seal: &str, signature: &str, counts: &[u32]) -> bool {
        let Some((id, hex_tag)) = seal.split_once(":v1=") else {
            return false;
        };
        let Ok(tag) = hex::decode(hex_tag) else {
            return false;
        };
        self.keys
            .iter()
            .find(|(k, _)| k == id)
            .is_some_and(|(_, key)| Self::mac(key, signature, counts).verify_slice(&tag).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_seal_binds_its_counts_its_command_and_its_key() {
        let seal = Seal::parse("w2:new, w1:old").unwrap();
        let s = seal.seal("v1=abc", &[3, 1]);
        assert!(s.starts_with("w2:v1="));
        assert!(seal.verify(&s, "v1=abc", &[3, 1]));
        assert!(!seal.verify(&s, "v1=abc", &[4, 1]), "another count");
        assert!(!seal.verify(&s, "v1=abd", &[3, 1]), "another command");
        let old = Seal::parse("w1:old").unwrap().seal("v1=abc", &[3, 1]);
        assert!(seal.verify(&old, "v1=abc", &[3, 1]), "an older listed key");
        let foreign = Seal::parse("w2:guessed").unwrap().seal("v1=abc", &[3, 1]);
        assert!(!seal.verify(&foreign, "v1=abc", &[3, 1]), "a key not ours");
        for junk in ["", "w2", "w2:v1=", "w2:v1=zz", ":v1=00"] {
            assert!(!seal.verify(junk, "v1=abc", &[3, 1]), "{junk:?}");
        }
        assert!(!format!("{seal:?}").contains("new"));
    }

    #[test]
    fn seal_known_answer() {
        // printf 'payout-worker seal v1\nv1=abc\n3\n1' | openssl dgst -sha256 -hmac 'k'
        let seal = Seal::parse("w:k").unwrap();
        assert_eq!(
            seal.seal("v1=abc", &[3, 1]),
            format!(
                "w:v1={}",
                include_str!("../tests/fixtures/seal_known.hex").trim()
            )
        );
    }

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
