//! Bank gateway answers (HTTP captures): what the adapter reads (signature over status,
//! path and body, then the table) for both calls, and the table as if verified.
#![no_main]

mod common;

use common::Capture;
use libfuzzer_sys::fuzz_target;
use payout_worker::channels::bank::protocol::{classify, Call};
use payout_worker::channels::bank::{read_answer, sign, DEV_GATEWAY_PUBLIC_KEY};
use payout_worker::channels::rsa::RsaVerifier;
use std::sync::LazyLock;

static KEY: LazyLock<RsaVerifier> =
    LazyLock::new(|| RsaVerifier::from_pem(DEV_GATEWAY_PUBLIC_KEY).expect("dev key"));

const E2E: &str = "PO0123456789abcdef0123456789abcd";

fuzz_target!(|data: &[u8]| {
    let c = Capture::read(data);
    let status_path = format!("/bank/payments/{E2E}");
    for (call, path) in [
        (Call::Initiation, "/bank/payments"),
        (Call::StatusQuery, status_path.as_str()),
    ] {
        let signature = c.header(sign::SIGNATURE_HEADER);
        let _ = read_answer(&KEY, call, E2E, path, c.status, signature, c.body);
        let _ = classify(call, c.status, c.body, E2E);
    }
});
