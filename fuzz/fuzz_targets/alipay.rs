//! Alipay answers: signature verification on arbitrary bodies for every call, and the
//! body parser and classification table as if verified. Never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use payout_worker::channels::alipay::protocol::{
    classify, Call, GatewayResponse, REFUND, REFUND_QUERY, TRANSFER, TRANSFER_QUERY,
};
use payout_worker::channels::alipay::{sign, DEV_PLATFORM_PUBLIC_KEY};
use payout_worker::channels::rsa::RsaVerifier;
use std::sync::LazyLock;

static KEY: LazyLock<RsaVerifier> =
    LazyLock::new(|| RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).expect("dev key"));

const CALLS: [(&str, Call); 4] = [
    (REFUND, Call::Refund),
    (REFUND_QUERY, Call::RefundQuery),
    (TRANSFER, Call::Transfer),
    (TRANSFER_QUERY, Call::TransferQuery),
];

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = serde_json::from_str::<serde_json::Value>(body).ok();
    for (method, call) in CALLS {
        if let Ok(v) = sign::verify_response(body, method, &KEY) {
            if let Ok(r) = serde_json::from_str::<GatewayResponse>(&v.inner) {
                let _ = classify(call, &r);
            }
        }
        // The inner object as if the signature had verified.
        let inner = parsed
            .as_ref()
            .and_then(|v| v.get(sign::response_field(method)).cloned())
            .unwrap_or(serde_json::Value::Null);
        if let Ok(r) = serde_json::from_value::<GatewayResponse>(inner) {
            let _ = classify(call, &r);
        }
    }
});
