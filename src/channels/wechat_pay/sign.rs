//! WeChat Pay API v3 signatures, both directions, exactly as `CHANNELS.md` describes them.
//!
//! Request: `METHOD\nPATH_WITH_QUERY\nUNIX_SECONDS\nNONCE\nBODY\n` (every line ends in
//! `\n`, the exact body bytes sent, empty for GET), SHA256withRSA with the merchant key,
//! carried in `Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",…`.
//! Response: `TIMESTAMP\nNONCE\nBODY\n` signed with the platform key named by
//! `Wechatpay-Serial`, rejected when its timestamp is more than five minutes off.
//! The simulator uses the same functions for its side, so both stay in step. Time is
//! always a parameter, so the skew rule is tested without a clock.

use crate::channels::rsa::{RsaSigner, RsaVerifier};
use rand::Rng;

/// The scheme name in the `Authorization` header.
pub const SCHEMA: &str = "WECHATPAY2-SHA256-RSA2048";
/// Largest clock difference accepted on a signed message, either direction (WeChat's
/// own rule, and what stops an old captured answer from being replayed).
pub const MAX_SKEW_SECS: u64 = 300;

/// What a request signature covers, apart from the key.
#[derive(Debug, Clone, Copy)]
pub struct RequestToSign<'a> {
    pub method: &'a str,
    /// Path and query exactly as in the request line (`/v3/refund/domestic/refunds`).
    pub path_with_query: &'a str,
    pub timestamp: i64,
    pub nonce: &'a str,
    /// The exact body bytes sent; empty for GET.
    pub body: &'a [u8],
}

/// The bytes a request signature covers.
pub fn request_message(r: &RequestToSign<'_>) -> Vec<u8> {
    let mut m = format!(
        "{}\n{}\n{}\n{}\n",
        r.method, r.path_with_query, r.timestamp, r.nonce
    )
    .into_bytes();
    m.extend_from_slice(r.body);
    m.push(b'\n');
    m
}

/// The `Authorization` header value for a request.
pub fn authorization(
    key: &RsaSigner,
    mchid: &str,
    serial_no: &str,
    r: &RequestToSign<'_>,
) -> String {
    let signature = key.sign_base64(&request_message(r));
    format!(
        "{SCHEMA} mchid=\"{mchid}\",nonce_str=\"{}\",timestamp=\"{}\",serial_no=\"{serial_no}\",signature=\"{signature}\"",
        r.nonce, r.timestamp
    )
}

/// A fresh nonce: 32 random alphanumerics, as WeChat's SDKs make them. It only has to be
/// unique per message (WeChat rejects a replayed nonce), not secret.
pub fn nonce() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// The fields of an `Authorization` header (the simulator's side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub mchid: String,
    pub nonce_str: String,
    pub timestamp: i64,
    pub serial_no: String,
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no {SCHEMA} Authorization header")]
    Missing,
    #[error("the Authorization header lacks a valid {0}")]
    Field(&'static str),
    #[error("the request timestamp is {0} s away from now")]
    Skewed(u64),
    #[error("the request signature does not verify")]
    BadSignature,
}

/// Parses `WECHATPAY2-SHA256-RSA2048 k="v",k="v",…`. Values never contain `"` or `,`
/// (base64, digits, hex serials and alphanumeric nonces), so a plain split is exact.
pub fn parse_authorization(header: &str) -> Result<Authorization, AuthError> {
    let rest = header
        .strip_prefix(SCHEMA)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or(AuthError::Missing)?;
    let field = |name: &'static str| -> Result<String, AuthError> {
        rest.split(',')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.strip_prefix('"')?.strip_suffix('"'))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or(AuthError::Field(name))
    };
    Ok(Authorization {
        mchid: field("mchid")?,
        nonce_str: field("nonce_str")?,
        timestamp: field("timestamp")?
            .parse()
            .map_err(|_| AuthError::Field("timestamp"))?,
        serial_no: field("serial_no")?,
        signature: field("signature")?,
    })
}

/// Checks a request's `Authorization` against the merchant key (the simulator's side).
pub fn verify_request(
    header: &str,
    method: &str,
    path_with_query: &str,
    body: &[u8],
    merchant_key: &RsaVerifier,
    now_unix: i64,
) -> Result<Authorization, AuthError> {
    let auth = parse_authorization(header)?;
    let skew = auth.timestamp.abs_diff(now_unix);
    if skew > MAX_SKEW_SECS {
        return Err(AuthError::Skewed(skew));
    }
    let message = request_message(&RequestToSign {
        method,
        path_with_query,
        timestamp: auth.timestamp,
        nonce: &auth.nonce_str,
        body,
    });
    if merchant_key.verify_base64(&message, &auth.signature) {
        Ok(auth)
    } else {
        Err(AuthError::BadSignature)
    }
}

/// The bytes a response signature covers.
pub fn response_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = format!("{timestamp}\n{nonce}\n").into_bytes();
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The `Wechatpay-Signature` of a response (the simulator's side).
pub fn sign_response(
    platform_key: &RsaSigner,
    timestamp: &str,
    nonce: &str,
    body: &[u8],
) -> String {
    platform_key.sign_base64(&response_message(timestamp, nonce, body))
}

/// The `Wechatpay-*` headers of a response, as received (absent ones are `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseHeaders<'a> {
    pub timestamp: Option<&'a str>,
    pub nonce: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub serial: Option<&'a str>,
}

impl<'a> ResponseHeaders<'a> {
    pub fn from_map(h: &'a reqwest::header::HeaderMap) -> Self {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        Self {
            timestamp: get("wechatpay-timestamp"),
            nonce: get("wechatpay-nonce"),
            signature: get("wechatpay-signature"),
            serial: get("wechatpay-serial"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("the answer has no {0} header")]
    MissingHeader(&'static str),
    #[error("the answer is signed by a platform key we do not hold (serial {0})")]
    UnknownSerial(String),
    #[error("Wechatpay-Timestamp is not a number of seconds")]
    BadTimestamp,
    #[error("Wechatpay-Timestamp is {0} s away from now (at most {MAX_SKEW_SECS})")]
    Skewed(u64),
    #[error("the answer's signature does not verify")]
    BadSignature,
}

/// Whether a signed timestamp is close enough to `now_unix`: at most
/// [`MAX_SKEW_SECS`] either way, the boundary included.
pub fn check_skew(timestamp: i64, now_unix: i64) -> Result<(), ResponseError> {
    // abs_diff cannot overflow, whatever a hostile header says.
    match timestamp.abs_diff(now_unix) {
        skew if skew > MAX_SKEW_SECS => Err(ResponseError::Skewed(skew)),
        _ => Ok(()),
    }
}

/// Verifies a response: the serial names our configured platform key, the timestamp is
/// within the skew, and the signature covers `TIMESTAMP\nNONCE\nBODY\n`.
pub fn verify_response(
    h: &ResponseHeaders<'_>,
    body: &[u8],
    platform_key: &RsaVerifier,
    platform_serial: &str,
    now_unix: i64,
) -> Result<(), ResponseError> {
    let serial = h
        .serial
        .ok_or(ResponseError::MissingHeader("Wechatpay-Serial"))?;
    if !serial.eq_ignore_ascii_case(platform_serial) {
        // A serial is a certificate number, not a secret; a short prefix is enough to
        // tell which key a rotation left behind, without echoing arbitrary input.
        return Err(ResponseError::UnknownSerial(
            serial.chars().take(40).collect(),
        ));
    }
    let timestamp = h
        .timestamp
        .ok_or(ResponseError::MissingHeader("Wechatpay-Timestamp"))?;
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| ResponseError::BadTimestamp)?;
    check_skew(seconds, now_unix)?;
    let nonce = h
        .nonce
        .ok_or(ResponseError::MissingHeader("Wechatpay-Nonce"))?;
    let signature = h
        .signature
        .ok_or(ResponseError::MissingHeader("Wechatpay-Signature"))?;
    if platform_key.verify_base64(&response_message(timestamp, nonce, body), signature) {
        Ok(())
    } else {
        Err(ResponseError::BadSignature)
    }
}

#[cfg(test)]
mod tests;
