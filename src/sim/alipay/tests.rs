//! Tests of the simulated Alipay gateway, called directly (no HTTP) with an injected
//! clock: the gateway checks and faults here, refunds and transfers in `tests/`. Every
//! answer is also run through the worker's own classification table, so the simulator
//! and the adapter are checked to be counterparts.

use super::*;
use crate::channels::alipay::protocol::{classify, Call, GatewayResponse};
use crate::channels::alipay::{DEV_APP_PRIVATE_KEY, DEV_APP_PUBLIC_KEY, DEV_PLATFORM_PRIVATE_KEY};
use crate::channels::ChannelOutcome;

mod refunds;
mod transfers;

const SETTLE: Duration = Duration::from_millis(300);

fn sim() -> AlipaySim {
    AlipaySim {
        platform_key: RsaSigner::from_pem(DEV_PLATFORM_PRIVATE_KEY).unwrap(),
        app_key: RsaVerifier::from_pem(DEV_APP_PUBLIC_KEY).unwrap(),
        settle: SETTLE,
    }
}

fn refund(key: &str, trade_no: &str, amount: &str) -> String {
    serde_json::json!({
        "trade_no": trade_no, "refund_amount": amount,
        "out_request_no": key, "refund_reason": "withdrawal",
    })
    .to_string()
}

fn refund_query(key: &str, trade_no: &str) -> String {
    serde_json::json!({"trade_no": trade_no, "out_request_no": key}).to_string()
}

fn transfer(key: &str, identity: &str, name: &str, amount: &str) -> String {
    serde_json::json!({
        "out_biz_no": key, "trans_amount": amount,
        "product_code": "TRANS_ACCOUNT_NO_PWD", "biz_scene": "DIRECT_TRANSFER",
        "order_title": "withdrawal",
        "payee_info": {"identity": identity, "identity_type": "ALIPAY_LOGON_ID", "name": name},
    })
    .to_string()
}

fn transfer_query(key: &str) -> String {
    serde_json::json!({
        "out_biz_no": key, "product_code": "TRANS_ACCOUNT_NO_PWD", "biz_scene": "DIRECT_TRANSFER",
    })
    .to_string()
}

fn parsed(a: &Answer) -> GatewayResponse {
    serde_json::from_str(&a.inner).unwrap()
}

/// What the worker's adapter makes of an answer.
fn worker_sees(call: Call, a: &Answer) -> ChannelOutcome {
    classify(call, &parsed(a))
}

fn moves(ledger: &Ledger, key: &str, now: Instant) -> Option<u32> {
    ledger
        .snapshot(now)
        .into_iter()
        .find(|l| l.key == key)
        .map(|l| l.moves)
}

#[test]
fn queries_for_unknown_keys_say_not_found() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("nope"), t0);
    assert_eq!(parsed(&q).sub_code.as_deref(), Some("ORDER_NOT_EXIST"));
    assert_eq!(
        worker_sees(Call::TransferQuery, &q),
        ChannelOutcome::NotFound
    );
    let q = sim.business(
        &ledger,
        REFUND_QUERY,
        &refund_query("nope", "2026031522001456"),
        t0,
    );
    assert_eq!(
        (parsed(&q).code.as_str(), parsed(&q).refund_status),
        ("10000", None)
    );
    assert!(ledger.snapshot(t0).is_empty(), "queries do not create keys");
}

#[test]
fn bad_business_parameters_get_alipay_errors_and_no_record() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let a = sim.business(&ledger, REFUND, "{not json", t0);
    assert_eq!(
        parsed(&a).sub_code.as_deref(),
        Some("isv.invalid-parameter")
    );
    for amount in ["0.00", "-1", "1.234", "1.", "", "abc"] {
        let a = sim.business(
            &ledger,
            REFUND,
            &refund("K", "2026031522001456", amount),
            t0,
        );
        assert_eq!(
            parsed(&a).sub_code.as_deref(),
            Some("ACQ.INVALID_PARAMETER"),
            "{amount:?}"
        );
        let a = sim.business(
            &ledger,
            TRANSFER,
            &transfer("K", "p@example.com", "N", amount),
            t0,
        );
        assert_eq!(
            parsed(&a).sub_code.as_deref(),
            Some("INVALID_PARAMETER"),
            "{amount:?}"
        );
    }
    let long_key = "k".repeat(65);
    let a = sim.business(
        &ledger,
        REFUND,
        &refund(&long_key, "2026031522001456", "1.00"),
        t0,
    );
    assert_eq!(
        parsed(&a).sub_code.as_deref(),
        Some("ACQ.INVALID_PARAMETER")
    );
    assert!(ledger.snapshot(t0).is_empty());
}

fn signed(method: &str, biz: &str) -> BTreeMap<String, String> {
    let mut params: BTreeMap<String, String> = [
        ("app_id", "2021000000000001"),
        ("method", method),
        ("format", "JSON"),
        ("charset", "utf-8"),
        ("sign_type", "RSA2"),
        ("timestamp", "2026-11-20 08:00:00"),
        ("version", "1.0"),
        ("biz_content", biz),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    sign::sign_request(
        &mut params,
        &RsaSigner::from_pem(DEV_APP_PRIVATE_KEY).unwrap(),
    );
    params
}

#[test]
fn the_gateway_checks_method_and_signature_before_any_business() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let good = signed(REFUND, &refund("K1", "2026031522001456", "10.00"));
    let sub = |params: &BTreeMap<String, String>| {
        let a = sim.handle(&ledger, params, t0);
        (a.method.clone(), parsed(&a).code, parsed(&a).sub_code)
    };
    let mut tampered = good.clone();
    tampered.insert(
        "biz_content".into(),
        refund("K1", "2026031522001456", "99.00"),
    );
    assert_eq!(
        sub(&tampered),
        (
            REFUND.into(),
            "40002".into(),
            Some("isv.invalid-signature".into())
        )
    );
    let mut unsigned = good.clone();
    unsigned.remove("sign");
    assert_eq!(sub(&unsigned).2.as_deref(), Some("isv.missing-signature"));
    let mut no_method = good.clone();
    no_method.remove("method");
    assert_eq!(
        sub(&no_method),
        (
            "error".into(),
            "40001".into(),
            Some("isv.missing-method".into())
        )
    );
    let unknown = signed("alipay.trade.pay", "{}");
    assert_eq!(sub(&unknown).2.as_deref(), Some("isv.invalid-method"));
    assert!(
        ledger.snapshot(t0).is_empty(),
        "nothing rejected at the gateway is recorded"
    );
    assert_eq!(sub(&good), (REFUND.into(), "10000".into(), None));
    assert_eq!(moves(&ledger, "K1", t0), Some(1));
}

#[test]
fn fault_answers_are_unknown_to_the_worker() {
    let a = system_error(REFUND);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("ACQ.SYSTEM_ERROR"));
    assert!(matches!(
        worker_sees(Call::Refund, &a),
        ChannelOutcome::Unknown { .. }
    ));
    let a = system_error(TRANSFER);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("SYSTEM_ERROR"));
    assert!(matches!(
        worker_sees(Call::Transfer, &a),
        ChannelOutcome::Unknown { .. }
    ));
    let a = service_unavailable(TRANSFER_QUERY);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("isp.unknow-error"));
    assert!(matches!(
        worker_sees(Call::TransferQuery, &a),
        ChannelOutcome::Unknown { .. }
    ));
}
