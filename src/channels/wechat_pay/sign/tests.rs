//! Known answers for WeChat Pay signing (`tests/fixtures/wechat_pay/`, made with
//! `openssl dgst -sha256 -sign`), the exact `Authorization` format, and the ±5 minute
//! skew rule with the time injected.

use super::*;
use crate::channels::wechat_pay::protocol::{refund_path, RefundRequest, REFUNDS_PATH};
use crate::channels::wechat_pay::tests::sample_order;
use proptest::prelude::*;

const PRIVATE: &str = include_str!("../../../../tests/fixtures/keys/test_rsa_private.pem");
const PUBLIC: &str = include_str!("../../../../tests/fixtures/keys/test_rsa_public.pem");
const REFUND_MESSAGE: &[u8] =
    include_bytes!("../../../../tests/fixtures/wechat_pay/refund_request.txt");
const REFUND_SIGNATURE: &str =
    include_str!("../../../../tests/fixtures/wechat_pay/refund_request.sig.b64");
const QUERY_MESSAGE: &[u8] =
    include_bytes!("../../../../tests/fixtures/wechat_pay/query_request.txt");
const QUERY_SIGNATURE: &str =
    include_str!("../../../../tests/fixtures/wechat_pay/query_request.sig.b64");
const RESPONSE_MESSAGE: &[u8] =
    include_bytes!("../../../../tests/fixtures/wechat_pay/refund_response.txt");
const RESPONSE_SIGNATURE: &str =
    include_str!("../../../../tests/fixtures/wechat_pay/refund_response.sig.b64");

const TIMESTAMP: i64 = 1_795_161_600; // 2026-11-20T08:00:00Z
const REFUND_NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";
const QUERY_NONCE: &str = "C4F8F9C1E3B04B6E8D3B1F2A6A7E9D10";
const MCHID: &str = "1900000001";
const MERCHANT_SERIAL: &str = "3775B6A45ACD588826D15E583A95F5DD00000001";
const PLATFORM_SERIAL: &str = "5157F09EFDC096DE15EBE81A47057A7200000002";
const RESPONSE_TIMESTAMP: &str = "1795161603";
const RESPONSE_NONCE: &str = "8A1D2E6F0B9C4D3E2F1A0B9C8D7E6F5A";

fn signer() -> RsaSigner {
    RsaSigner::from_pem(PRIVATE).unwrap()
}

fn verifier() -> RsaVerifier {
    RsaVerifier::from_pem(PUBLIC).unwrap()
}

/// The refund body exactly as the adapter writes it for the sample order.
fn refund_body() -> Vec<u8> {
    let order = sample_order("4200002026031522001456");
    serde_json::to_vec(&RefundRequest::for_order(&order, "4200002026031522001456")).unwrap()
}

fn refund_request(body: &[u8]) -> RequestToSign<'_> {
    RequestToSign {
        method: "POST",
        path_with_query: REFUNDS_PATH,
        timestamp: TIMESTAMP,
        nonce: REFUND_NONCE,
        body,
    }
}

/// The response fixture split into its signed parts: (timestamp, nonce, body).
fn response_parts() -> (&'static str, &'static str, &'static [u8]) {
    let text = std::str::from_utf8(RESPONSE_MESSAGE).unwrap();
    let mut lines = text.splitn(3, '\n');
    let (ts, nonce, rest) = (
        lines.next().unwrap(),
        lines.next().unwrap(),
        lines.next().unwrap(),
    );
    (ts, nonce, rest.strip_suffix('\n').unwrap().as_bytes())
}

fn response_headers<'a>(ts: &'a str, nonce: &'a str, signature: &'a str) -> ResponseHeaders<'a> {
    ResponseHeaders {
        timestamp: Some(ts),
        nonce: Some(nonce),
        signature: Some(signature),
        serial: Some(PLATFORM_SERIAL),
    }
}

#[test]
fn request_messages_match_the_fixture_bytes() {
    let body = refund_body();
    assert_eq!(request_message(&refund_request(&body)), REFUND_MESSAGE);
    let path = refund_path("PO73e67d6185226a979fda4140e4128b");
    let query = RequestToSign {
        method: "GET",
        path_with_query: &path,
        timestamp: TIMESTAMP,
        nonce: QUERY_NONCE,
        body: b"",
    };
    // An empty body still ends its line: the message ends "\n\n".
    assert_eq!(request_message(&query), QUERY_MESSAGE);
    assert!(QUERY_MESSAGE.ends_with(b"\n\n"));
}

#[test]
fn request_signatures_match_openssl_known_answers() {
    assert_eq!(
        signer().sign_base64(REFUND_MESSAGE),
        REFUND_SIGNATURE.trim()
    );
    assert_eq!(signer().sign_base64(QUERY_MESSAGE), QUERY_SIGNATURE.trim());
    assert!(verifier().verify_base64(REFUND_MESSAGE, REFUND_SIGNATURE));
    assert!(verifier().verify_base64(QUERY_MESSAGE, QUERY_SIGNATURE));
}

#[test]
fn a_tampered_message_does_not_verify() {
    let mut tampered = REFUND_MESSAGE.to_vec();
    let at = tampered.windows(6).position(|w| w == b"100000").unwrap();
    tampered[at] = b'9';
    assert!(!verifier().verify_base64(&tampered, REFUND_SIGNATURE));
    // Dropping the final newline is a different message too.
    assert!(!verifier().verify_base64(
        &REFUND_MESSAGE[..REFUND_MESSAGE.len() - 1],
        REFUND_SIGNATURE
    ));
}

#[test]
fn authorization_header_has_the_exact_v3_format() {
    let body = refund_body();
    let header = authorization(&signer(), MCHID, MERCHANT_SERIAL, &refund_request(&body));
    assert_eq!(
        header,
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"{MCHID}\",nonce_str=\"{REFUND_NONCE}\",\
             timestamp=\"{TIMESTAMP}\",serial_no=\"{MERCHANT_SERIAL}\",signature=\"{}\"",
            REFUND_SIGNATURE.trim()
        )
    );
    let parsed = parse_authorization(&header).unwrap();
    assert_eq!(parsed.mchid, MCHID);
    assert_eq!(parsed.nonce_str, REFUND_NONCE);
    assert_eq!(parsed.timestamp, TIMESTAMP);
    assert_eq!(parsed.serial_no, MERCHANT_SERIAL);
    assert_eq!(parsed.signature, REFUND_SIGNATURE.trim());
}

#[test]
fn the_simulator_side_checks_signature_body_and_skew() {
    let body = refund_body();
    let header = authorization(&signer(), MCHID, MERCHANT_SERIAL, &refund_request(&body));
    let check = |body: &[u8], now: i64| {
        verify_request(&header, "POST", REFUNDS_PATH, body, &verifier(), now)
    };
    assert!(check(&body, TIMESTAMP).is_ok());
    assert!(check(&body, TIMESTAMP + 300).is_ok());
    assert!(check(&body, TIMESTAMP - 300).is_ok());
    assert_eq!(check(&body, TIMESTAMP + 301), Err(AuthError::Skewed(301)));
    assert_eq!(check(&body, TIMESTAMP - 301), Err(AuthError::Skewed(301)));
    assert_eq!(check(b"{}", TIMESTAMP), Err(AuthError::BadSignature));
    // Signed for POST, replayed as GET of the same path.
    assert_eq!(
        verify_request(&header, "GET", REFUNDS_PATH, &body, &verifier(), TIMESTAMP),
        Err(AuthError::BadSignature)
    );
}

#[test]
fn malformed_authorization_headers_are_named() {
    assert_eq!(parse_authorization(""), Err(AuthError::Missing));
    assert_eq!(parse_authorization("Bearer abc"), Err(AuthError::Missing));
    assert_eq!(
        parse_authorization("WECHATPAY2-SHA256-RSA2048 mchid=\"1\""),
        Err(AuthError::Field("nonce_str"))
    );
    assert_eq!(
        parse_authorization(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1\",nonce_str=\"n\",timestamp=\"soon\",serial_no=\"s\",signature=\"x\""
        ),
        Err(AuthError::Field("timestamp"))
    );
}

#[test]
fn response_signature_matches_openssl_and_verifies_within_the_skew() {
    let (ts, nonce, body) = response_parts();
    assert_eq!((ts, nonce), (RESPONSE_TIMESTAMP, RESPONSE_NONCE));
    assert_eq!(
        sign_response(&signer(), ts, nonce, body),
        RESPONSE_SIGNATURE.trim()
    );
    let h = response_headers(ts, nonce, RESPONSE_SIGNATURE.trim());
    let sent: i64 = ts.parse().unwrap();
    let verify = |h: &ResponseHeaders<'_>, body: &[u8], now: i64| {
        verify_response(h, body, &verifier(), PLATFORM_SERIAL, now)
    };
    assert_eq!(verify(&h, body, sent), Ok(()));
    assert_eq!(verify(&h, body, sent + 300), Ok(()));
    assert_eq!(verify(&h, body, sent - 300), Ok(()));
    assert_eq!(
        verify(&h, body, sent + 301),
        Err(ResponseError::Skewed(301))
    );
    assert_eq!(
        verify(&h, body, sent - 301),
        Err(ResponseError::Skewed(301))
    );

    let tampered = String::from_utf8(body.to_vec())
        .unwrap()
        .replace("PROCESSING", "SUCCESS");
    assert_eq!(
        verify(&h, tampered.as_bytes(), sent),
        Err(ResponseError::BadSignature)
    );
    // The timestamp is signed: moving it breaks the signature even within the skew.
    let moved = response_headers("1795161604", nonce, RESPONSE_SIGNATURE.trim());
    assert_eq!(verify(&moved, body, sent), Err(ResponseError::BadSignature));
}

#[test]
fn a_response_from_another_key_serial_or_without_headers_is_refused() {
    let (ts, nonce, body) = response_parts();
    let sig = RESPONSE_SIGNATURE.trim();
    let now: i64 = ts.parse().unwrap();
    let verify =
        |h: ResponseHeaders<'_>| verify_response(&h, body, &verifier(), PLATFORM_SERIAL, now);
    let other = ResponseHeaders {
        serial: Some("0000000000000000000000000000000000000000"),
        ..response_headers(ts, nonce, sig)
    };
    assert!(matches!(
        verify(other),
        Err(ResponseError::UnknownSerial(_))
    ));
    let lower = ResponseHeaders {
        serial: Some("5157f09efdc096de15ebe81a47057a7200000002"),
        ..response_headers(ts, nonce, sig)
    };
    assert_eq!(
        verify(lower),
        Ok(()),
        "serials are hex: case does not matter"
    );
    for (h, missing) in [
        (
            ResponseHeaders {
                serial: None,
                ..response_headers(ts, nonce, sig)
            },
            "Wechatpay-Serial",
        ),
        (
            ResponseHeaders {
                timestamp: None,
                ..response_headers(ts, nonce, sig)
            },
            "Wechatpay-Timestamp",
        ),
        (
            ResponseHeaders {
                nonce: None,
                ..response_headers(ts, nonce, sig)
            },
            "Wechatpay-Nonce",
        ),
        (
            ResponseHeaders {
                signature: None,
                ..response_headers(ts, nonce, sig)
            },
            "Wechatpay-Signature",
        ),
    ] {
        assert_eq!(verify(h), Err(ResponseError::MissingHeader(missing)));
    }
    assert_eq!(
        verify(response_headers("yesterday", nonce, sig)),
        Err(ResponseError::BadTimestamp)
    );
}

#[test]
fn skew_boundary_is_five_minutes_inclusive_and_never_overflows() {
    let now = 1_800_000_000;
    assert_eq!(check_skew(now, now), Ok(()));
    assert_eq!(check_skew(now - 300, now), Ok(()));
    assert_eq!(check_skew(now + 300, now), Ok(()));
    assert_eq!(check_skew(now - 301, now), Err(ResponseError::Skewed(301)));
    assert_eq!(check_skew(now + 301, now), Err(ResponseError::Skewed(301)));
    assert!(check_skew(i64::MIN, i64::MAX).is_err());
    assert!(check_skew(i64::MAX, i64::MIN).is_err());
}

#[test]
fn nonces_are_32_alphanumerics_and_fresh() {
    let (a, b) = (nonce(), nonce());
    assert_eq!(a.len(), 32);
    assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    assert_ne!(a, b);
}

proptest! {
    #[test]
    fn the_response_verifier_never_panics(
        ts in proptest::option::of(".{0,24}"),
        nonce in proptest::option::of(".{0,40}"),
        sig in proptest::option::of(".{0,64}"),
        serial in proptest::option::of(prop_oneof![Just(PLATFORM_SERIAL.to_owned()), ".{0,48}"]),
        body in proptest::collection::vec(any::<u8>(), 0..256),
        now in any::<i64>(),
    ) {
        let h = ResponseHeaders {
            timestamp: ts.as_deref(),
            nonce: nonce.as_deref(),
            signature: sig.as_deref(),
            serial: serial.as_deref(),
        };
        prop_assert!(verify_response(&h, &body, &verifier(), PLATFORM_SERIAL, now).is_err());
    }

    #[test]
    fn the_authorization_parser_never_panics(header in ".{0,200}", now in any::<i64>()) {
        let _ = parse_authorization(&header);
        let with_schema = format!("{SCHEMA} {header}");
        prop_assert!(verify_request(&with_schema, "POST", REFUNDS_PATH, b"", &verifier(), now).is_err());
    }

    #[test]
    fn any_request_round_trips(
        method in prop_oneof![Just("GET"), Just("POST")],
        body in proptest::collection::vec(any::<u8>(), 0..300),
        now in 0i64..4_000_000_000,
    ) {
        let n = nonce();
        let r = RequestToSign { method, path_with_query: REFUNDS_PATH, timestamp: now, nonce: &n, body: &body };
        let header = authorization(&signer(), MCHID, MERCHANT_SERIAL, &r);
        prop_assert!(verify_request(&header, method, REFUNDS_PATH, &body, &verifier(), now).is_ok());
    }
}
