//! Identifiers: what the contract allows, and the idempotency key derived from them.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// 1–64 of `[A-Za-z0-9_-]`, the contract's rule for `withdrawal_id` and `leg_id`.
fn is_contract_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! contract_id {
    ($name:ident) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Option<Self> {
                is_contract_id(s).then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

contract_id!(WithdrawalId);
contract_id!(LegId);

/// The key a leg is paid under, derived once and sent unchanged on every attempt and
/// every query: `PO` + 30 hex digits of SHA-256(withdrawal_id, leg_id). 32 alphanumerics
/// suit every channel (UnionPay's `orderId` wants 8–32, Alipay and WeChat allow 64) and
/// 120 bits make a collision out of reach.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn for_leg(withdrawal: &WithdrawalId, leg: &LegId) -> Self {
        let mut h = Sha256::new();
        h.update(withdrawal.as_str().as_bytes());
        // The separator cannot occur in an id, so ("a-b","c") and ("a","b-c") differ.
        h.update(b"\n");
        h.update(leg.as_str().as_bytes());
        let hex = hex::encode(h.finalize());
        Self(format!("PO{}", &hex[..30]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Only in the deliberately broken build (`broken-fresh-key-resend`): a different key
    /// per send, to prove the chaos checker catches a double payment.
    #[cfg(feature = "broken-fresh-key-resend")]
    pub fn broken_fresh_variant(&self, send: u32) -> Self {
        if send <= 1 {
            self.clone()
        } else {
            Self(format!("{}R{send}", &self.0[..29]))
        }
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_follow_the_contract() {
        assert!(WithdrawalId::parse("wd-20261120-000123").is_some());
        assert!(WithdrawalId::parse(&"a".repeat(64)).is_some());
        assert!(WithdrawalId::parse(&"a".repeat(65)).is_none());
        assert!(WithdrawalId::parse("").is_none());
        assert!(WithdrawalId::parse("wd 1").is_none());
        assert!(LegId::parse("1").is_some());
        assert!(LegId::parse("{x}").is_none());
    }

    #[test]
    fn key_is_stable_known_value() {
        let k = IdempotencyKey::for_leg(
            &WithdrawalId::parse("wd-20261120-000123").unwrap(),
            &LegId::parse("1").unwrap(),
        );
        // printf 'wd-20261120-000123\n1' | sha256sum | cut -c1-30
        assert_eq!(k.as_str(), "PO73e67d6185226a979fda4140e4128b");
    }

    proptest! {
        #[test]
        fn key_is_32_alphanumerics(w in "[A-Za-z0-9_-]{1,64}", l in "[A-Za-z0-9_-]{1,64}") {
            let k = IdempotencyKey::for_leg(&WithdrawalId::parse(&w).unwrap(), &LegId::parse(&l).unwrap());
            prop_assert_eq!(k.as_str().len(), 32);
            prop_assert!(k.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }
}
