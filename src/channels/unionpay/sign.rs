//! UnionPay gateway signing, version 5.1.0 (`signMethod=01`), and the `k=v&...` message
//! format UnionPay answers in.
//!
//! The signature does not cover the parameters directly: every parameter except
//! `signature` is sorted by key and joined `k=v&k=v` with raw (not URL-encoded) values,
//! that string is hashed with SHA-256, and SHA256withRSA signs the *lowercase hex* of the
//! hash. Responses are signed the same way with UnionPay's key. Both sides (the adapter
//! and the simulator) use these functions, so they cannot drift apart.

use crate::channels::rsa::{RsaSigner, RsaVerifier};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The parameter that carries the signature, and the only one left out of it.
pub const SIGNATURE: &str = "signature";

/// The string a signature covers: sorted `k=v` pairs joined by `&`, raw values.
pub fn string_to_sign(params: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    // BTreeMap iterates in byte order of the keys: the ASCII order UnionPay sorts by.
    for (k, v) in params {
        if k == SIGNATURE {
            continue;
        }
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// Lowercase hex SHA-256 of the string to sign: the message RSA actually signs.
pub fn digest_hex(string_to_sign: &str) -> String {
    hex::encode(Sha256::digest(string_to_sign.as_bytes()))
}

/// Adds `signature` to a message's parameters.
pub fn sign(params: &mut BTreeMap<String, String>, key: &RsaSigner) {
    let digest = digest_hex(&string_to_sign(params));
    params.insert(SIGNATURE.into(), key.sign_base64(digest.as_bytes()));
}

/// Whether a message's `signature` verifies; a missing signature never does.
pub fn verify(params: &BTreeMap<String, String>, key: &RsaVerifier) -> bool {
    match params.get(SIGNATURE) {
        Some(sig) => key.verify_base64(digest_hex(&string_to_sign(params)).as_bytes(), sig),
        None => false,
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the answer is empty")]
    Empty,
    #[error("a pair in the answer has no '='")]
    NoEquals,
    #[error("a pair in the answer has an empty name")]
    EmptyName,
    #[error("the answer names {0} twice")]
    Repeated(String),
    #[error("the answer is not signed")]
    Unsigned,
    #[error("the answer's signature does not verify")]
    BadSignature,
}

/// Splits an answer `k=v&k=v` into its pairs, as UnionPay's SDK does: values are raw
/// (not URL-decoded), the first `=` ends the name, and an `&` inside `{...}` or `[...]`
/// (UnionPay's nested fields) does not end the value. A repeated name is an error: which
/// of the two was signed would be a guess.
pub fn parse_message(body: &str) -> Result<BTreeMap<String, String>, MessageError> {
    let body = body.trim();
    if body.is_empty() {
        return Err(MessageError::Empty);
    }
    let mut pairs = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let end = pair_end(rest);
        let (pair, tail) = rest.split_at(end);
        let (name, value) = pair.split_once('=').ok_or(MessageError::NoEquals)?;
        if name.is_empty() {
            return Err(MessageError::EmptyName);
        }
        if pairs.insert(name.to_owned(), value.to_owned()).is_some() {
            return Err(MessageError::Repeated(name.to_owned()));
        }
        // Skip the '&' (one byte) that ended the pair, if any.
        rest = tail.strip_prefix('&').unwrap_or(tail);
    }
    Ok(pairs)
}

/// Byte index of the `&` that ends the first pair of `s` (or `s.len()`), ignoring `&`
/// nested in brackets. Unbalanced brackets run to the end: never a panic.
fn pair_end(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth = depth.saturating_sub(1),
            '&' if depth == 0 => return i,
            _ => {}
        }
    }
    s.len()
}

/// Parses an answer and checks its signature with UnionPay's key.
pub fn verify_message(
    body: &str,
    key: &RsaVerifier,
) -> Result<BTreeMap<String, String>, MessageError> {
    let params = parse_message(body)?;
    if params.get(SIGNATURE).is_none_or(|s| s.is_empty()) {
        return Err(MessageError::Unsigned);
    }
    if verify(&params, key) {
        Ok(params)
    } else {
        Err(MessageError::BadSignature)
    }
}

/// Renders signed parameters as UnionPay writes an answer: sorted `k=v&...`, raw values
/// (the simulator's side).
pub fn render_message(params: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PRIVATE: &str = include_str!("../../../tests/fixtures/keys/test_rsa_private.pem");
    const PUBLIC: &str = include_str!("../../../tests/fixtures/keys/test_rsa_public.pem");
    /// The string to sign of [`known_params`], committed byte for byte (no newline).
    const KNOWN_STRING: &str = include_str!("../../../tests/fixtures/unionpay/refund_request.txt");
    /// `sha256sum refund_request.txt`
    const KNOWN_DIGEST: &str =
        include_str!("../../../tests/fixtures/unionpay/refund_request.sha256.hex");
    /// `printf '%s' "$(cat refund_request.sha256.hex)" |
    ///  openssl dgst -sha256 -sign test_rsa_private.pem | base64 -w0`
    const KNOWN_SIGNATURE: &str =
        include_str!("../../../tests/fixtures/unionpay/refund_request.sig.b64");

    fn known_params() -> BTreeMap<String, String> {
        [
            ("version", "5.1.0"),
            ("encoding", "UTF-8"),
            ("signMethod", "01"),
            ("txnType", "04"),
            ("txnSubType", "00"),
            ("bizType", "000201"),
            ("accessType", "0"),
            ("channelType", "07"),
            ("merId", "777290058110048"),
            ("orderId", "PO73e67d6185226a979fda4140e4128b"),
            ("txnTime", "20261120160000"),
            ("txnAmt", "100000"),
            ("currencyCode", "156"),
            ("origQryId", "202603151000001234567"),
            ("certId", "69629715588"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn string_to_sign_is_sorted_and_raw() {
        assert_eq!(string_to_sign(&known_params()), KNOWN_STRING);
    }

    #[test]
    fn digest_matches_sha256sum_known_answer() {
        assert_eq!(digest_hex(KNOWN_STRING), KNOWN_DIGEST.trim());
    }

    #[test]
    fn signature_matches_openssl_known_answer_and_verifies() {
        let mut params = known_params();
        sign(&mut params, &RsaSigner::from_pem(PRIVATE).unwrap());
        assert_eq!(params[SIGNATURE], KNOWN_SIGNATURE.trim());
        let verifier = RsaVerifier::from_pem(PUBLIC).unwrap();
        assert!(verify(&params, &verifier));
        // The signature is over the hex digest, not over the string itself.
        assert!(verifier.verify_base64(KNOWN_DIGEST.trim().as_bytes(), KNOWN_SIGNATURE));
        assert!(!verifier.verify_base64(KNOWN_STRING.as_bytes(), KNOWN_SIGNATURE));
    }

    #[test]
    fn tampering_breaks_the_signature() {
        let verifier = RsaVerifier::from_pem(PUBLIC).unwrap();
        let mut params = known_params();
        sign(&mut params, &RsaSigner::from_pem(PRIVATE).unwrap());
        let mut changed = params.clone();
        changed.insert("txnAmt".into(), "100001".into());
        assert!(!verify(&changed, &verifier));
        let mut added = params.clone();
        added.insert("reserved".into(), "x".into());
        assert!(!verify(&added, &verifier));
        params.remove(SIGNATURE);
        assert!(!verify(&params, &verifier));
    }

    #[test]
    fn answers_round_trip_through_render_and_parse() {
        let verifier = RsaVerifier::from_pem(PUBLIC).unwrap();
        let mut params = known_params();
        params.insert("respCode".into(), "00".into());
        params.insert("respMsg".into(), "成功[0000000]".into());
        params.insert("reserved".into(), "{a=1&b=2}".into());
        sign(&mut params, &RsaSigner::from_pem(PRIVATE).unwrap());
        let body = render_message(&params);
        assert_eq!(verify_message(&body, &verifier).unwrap(), params);
        let forged = body.replace("txnAmt=100000", "txnAmt=900000");
        assert_eq!(
            verify_message(&forged, &verifier),
            Err(MessageError::BadSignature)
        );
        assert_eq!(
            verify_message("respCode=00&respMsg=ok", &verifier),
            Err(MessageError::Unsigned)
        );
    }

    #[test]
    fn message_parser_follows_the_sdk_rules() {
        let m = parse_message("a=1&b=x=y&c=&d={e=1&f=2}&g=[h&i]").unwrap();
        assert_eq!(m["a"], "1");
        assert_eq!(m["b"], "x=y");
        assert_eq!(m["c"], "");
        assert_eq!(m["d"], "{e=1&f=2}");
        assert_eq!(m["g"], "[h&i]");
        assert_eq!(parse_message("  "), Err(MessageError::Empty));
        assert_eq!(parse_message("a=1&b"), Err(MessageError::NoEquals));
        assert_eq!(parse_message("=1"), Err(MessageError::EmptyName));
        assert_eq!(
            parse_message("a=1&a=2"),
            Err(MessageError::Repeated("a".into()))
        );
        assert_eq!(parse_message("a=1&").unwrap().len(), 1);
    }

    proptest! {
        #[test]
        fn parser_and_verifier_never_panic(body in "\\PC{0,300}") {
            let verifier = RsaVerifier::from_pem(PUBLIC).unwrap();
            let _ = verify_message(&body, &verifier);
        }

        #[test]
        fn parser_never_panics_on_its_own_alphabet(body in "[a-z=&{}\\[\\]é]{0,80}") {
            let _ = parse_message(&body);
        }
    }
}
