//! Alipay OpenAPI RSA2 signing, exactly as `CHANNELS.md` describes it.
//!
//! Request: every parameter except `sign`, empty values dropped, sorted by key (ASCII),
//! joined `k=v&k=v` with raw values, signed SHA256withRSA. Response: the signed text is the
//! exact bytes of the `<method>_response` object, which is why responses are read with
//! `RawValue` and never re-serialised before verifying.

use crate::channels::rsa::{RsaSigner, RsaVerifier};
use serde_json::value::RawValue;
use std::collections::{BTreeMap, HashMap};

/// The string an Alipay request signature covers.
pub fn string_to_sign(params: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    // BTreeMap iterates in byte order of the keys, which is the ASCII order Alipay wants.
    for (k, v) in params {
        if k == "sign" || v.is_empty() {
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

/// Adds `sign` to a request's parameters.
pub fn sign_request(params: &mut BTreeMap<String, String>, key: &RsaSigner) {
    let signature = key.sign_base64(string_to_sign(params).as_bytes());
    params.insert("sign".into(), signature);
}

/// Verifies a request's `sign` (the simulator's side).
pub fn verify_request(params: &BTreeMap<String, String>, key: &RsaVerifier) -> bool {
    match params.get("sign") {
        Some(sig) => key.verify_base64(string_to_sign(params).as_bytes(), sig),
        None => false,
    }
}

/// The name of the response object for a method: dots become underscores.
pub fn response_field(method: &str) -> String {
    format!("{}_response", method.replace('.', "_"))
}

/// A response body whose signature checked out: the inner object's exact text.
#[derive(Debug)]
pub struct VerifiedResponse {
    pub inner: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("response is not a JSON object")]
    NotJson,
    #[error("response has no {0} object")]
    MissingObject(String),
    #[error("response is not signed")]
    Unsigned,
    #[error("response signature does not verify")]
    BadSignature,
}

/// Finds `<method>_response` in a gateway reply and checks its signature.
pub fn verify_response(
    body: &str,
    method: &str,
    key: &RsaVerifier,
) -> Result<VerifiedResponse, ResponseError> {
    let fields: HashMap<String, &RawValue> =
        serde_json::from_str(body).map_err(|_| ResponseError::NotJson)?;
    let name = response_field(method);
    let inner = fields
        .get(&name)
        .ok_or(ResponseError::MissingObject(name))?
        .get();
    let sign: String = match fields.get("sign") {
        Some(raw) => serde_json::from_str(raw.get()).map_err(|_| ResponseError::Unsigned)?,
        None => return Err(ResponseError::Unsigned),
    };
    if key.verify_base64(inner.as_bytes(), &sign) {
        Ok(VerifiedResponse {
            inner: inner.to_owned(),
        })
    } else {
        Err(ResponseError::BadSignature)
    }
}

/// Builds a signed gateway reply around `inner` (the simulator's side).
pub fn sign_response(method: &str, inner: &str, key: &RsaSigner) -> String {
    let sign = key.sign_base64(inner.as_bytes());
    format!(
        "{{\"{}\":{},\"sign\":{}}}",
        response_field(method),
        inner,
        serde_json::Value::String(sign)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PRIVATE: &str = include_str!("../../../tests/fixtures/keys/test_rsa_private.pem");
    const PUBLIC: &str = include_str!("../../../tests/fixtures/keys/test_rsa_public.pem");
    /// The parameters of `tests/fixtures/alipay/refund_request.txt`, whose signature
    /// `tests/fixtures/alipay/refund_request.sig.b64` was made with
    /// `openssl dgst -sha256 -sign test_rsa_private.pem refund_request.txt | base64 -w0`.
    const KNOWN_STRING: &str = include_str!("../../../tests/fixtures/alipay/refund_request.txt");
    const KNOWN_SIGNATURE: &str =
        include_str!("../../../tests/fixtures/alipay/refund_request.sig.b64");

    fn known_params() -> BTreeMap<String, String> {
        [
            ("app_id", "2021000000000001"),
            ("method", "alipay.trade.refund"),
            ("format", "JSON"),
            ("charset", "utf-8"),
            ("sign_type", "RSA2"),
            ("timestamp", "2026-11-20 08:00:00"),
            ("version", "1.0"),
            ("notify_url", ""),
            (
                "biz_content",
                r#"{"out_request_no":"PO0123456789abcdef0123456789abcd","refund_amount":"1000.00","trade_no":"2026031522001456"}"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    #[test]
    fn string_to_sign_is_sorted_raw_and_skips_empty_values() {
        assert_eq!(string_to_sign(&known_params()), KNOWN_STRING);
    }

    #[test]
    fn request_signature_matches_openssl_known_answer() {
        let mut params = known_params();
        sign_request(&mut params, &RsaSigner::from_pem(PRIVATE).unwrap());
        assert_eq!(params["sign"], KNOWN_SIGNATURE.trim());
        assert!(verify_request(
            &params,
            &RsaVerifier::from_pem(PUBLIC).unwrap()
        ));
    }

    #[test]
    fn a_changed_parameter_breaks_the_request_signature() {
        let mut params = known_params();
        sign_request(&mut params, &RsaSigner::from_pem(PRIVATE).unwrap());
        params.insert("timestamp".into(), "2026-11-20 08:00:01".into());
        assert!(!verify_request(
            &params,
            &RsaVerifier::from_pem(PUBLIC).unwrap()
        ));
    }

    #[test]
    fn response_signature_covers_the_exact_inner_bytes() {
        let signer = RsaSigner::from_pem(PRIVATE).unwrap();
        let verifier = RsaVerifier::from_pem(PUBLIC).unwrap();
        let inner = r#"{"code":"10000","msg":"Success","fund_change":"Y"}"#;
        let body = sign_response("alipay.trade.refund", inner, &signer);
        let ok = verify_response(&body, "alipay.trade.refund", &verifier).unwrap();
        assert_eq!(ok.inner, inner);
        // Same JSON meaning, other bytes: must not verify.
        let respaced = body.replacen(r#""code":"10000""#, r#""code": "10000""#, 1);
        assert_eq!(
            verify_response(&respaced, "alipay.trade.refund", &verifier).unwrap_err(),
            ResponseError::BadSignature
        );
        assert_eq!(
            verify_response(
                r#"{"alipay_trade_refund_response":{}}"#,
                "alipay.trade.refund",
                &verifier
            )
            .unwrap_err(),
            ResponseError::Unsigned
        );
        assert!(matches!(
            verify_response(&body, "alipay.fund.trans.uni.transfer", &verifier),
            Err(ResponseError::MissingObject(_))
        ));
    }

    proptest! {
        #[test]
        fn response_reader_never_panics(body in ".{0,200}") {
            let verifier = RsaVerifier::from_pem(PUBLIC).unwrap();
            let _ = verify_response(&body, "alipay.trade.refund", &verifier);
        }
    }
}
