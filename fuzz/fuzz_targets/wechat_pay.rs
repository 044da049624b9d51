//! WeChat Pay answers (HTTP captures): response signature verification with arbitrary
//! headers, and the reply parser and table for every call as if verified.
#![no_main]

mod common;

use common::Capture;
use libfuzzer_sys::fuzz_target;
use payout_worker::channels::rsa::RsaVerifier;
use payout_worker::channels::wechat_pay::protocol::{classify, parse_reply, Call};
use payout_worker::channels::wechat_pay::sign::{verify_response, ResponseHeaders};
use payout_worker::channels::wechat_pay::{DEV_PLATFORM_PUBLIC_KEY, DEV_PLATFORM_SERIAL_NO};
use std::sync::LazyLock;

static KEY: LazyLock<RsaVerifier> =
    LazyLock::new(|| RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).expect("dev key"));

fuzz_target!(|data: &[u8]| {
    let c = Capture::read(data);
    let h = ResponseHeaders {
        timestamp: c.header("Wechatpay-Timestamp"),
        nonce: c.header("Wechatpay-Nonce"),
        signature: c.header("Wechatpay-Signature"),
        serial: c.header("Wechatpay-Serial"),
    };
    // "Now" is the answer's own time, so the skew check passes and the signature is read.
    let now = h.timestamp.and_then(|t| t.parse().ok()).unwrap_or(0);
    let _ = verify_response(&h, c.body, &KEY, DEV_PLATFORM_SERIAL_NO, now);
    let reply = parse_reply(c.status, c.body);
    for call in [Call::Refund, Call::Query] {
        let _ = classify(call, "PO0123456789abcdef0123456789abcd", &reply);
    }
});
