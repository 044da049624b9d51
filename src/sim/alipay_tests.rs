//! Tests of the simulated Alipay gateway's business rules, called directly (no HTTP) with
//! an injected clock. Every answer is also run through the worker's own classification
//! table, so the simulator and the adapter are checked to be counterparts.

use super::*;
use crate::channels::alipay::protocol::{classify, Call, GatewayResponse};
use crate::channels::alipay::{DEV_APP_PRIVATE_KEY, DEV_APP_PUBLIC_KEY, DEV_PLATFORM_PRIVATE_KEY};
use crate::channels::ChannelOutcome;

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
    ledger.snapshot(now).into_iter().find(|l| l.key == key).map(|l| l.moves)
}

#[test]
fn a_refund_is_paid_once_and_a_repeat_gets_the_same_answer() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let first = sim.business(&ledger, REFUND, &refund("K1", "2026031522001456", "10.00"), t0);
    let r = parsed(&first);
    assert_eq!((r.code.as_str(), r.fund_change.as_deref()), ("10000", Some("Y")));
    assert!(first.inner.contains(r#""refund_fee":"10.00""#), "{}", first.inner);
    assert_eq!(
        worker_sees(Call::Refund, &first),
        ChannelOutcome::Succeeded { reference: "2026031522001456".into() }
    );
    let again = sim.business(&ledger, REFUND, &refund("K1", "2026031522001456", "10.00"), t0 + SETTLE * 2);
    assert_eq!(again.inner, first.inner);
    assert_eq!(moves(&ledger, "K1", t0 + SETTLE * 2), Some(1));
    let q = sim.business(&ledger, REFUND_QUERY, &refund_query("K1", "2026031522001456"), t0);
    assert_eq!(parsed(&q).refund_status.as_deref(), Some("REFUND_SUCCESS"));
    assert!(matches!(worker_sees(Call::RefundQuery, &q), ChannelOutcome::Succeeded { .. }));
}

#[test]
fn a_refund_key_reused_with_other_parameters_is_discordant() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    sim.business(&ledger, REFUND, &refund("K1", "2026031522001456", "10.00"), t0);
    for other in [refund("K1", "2026031522001456", "10.01"), refund("K1", "2026031522009999", "10.00")] {
        let a = sim.business(&ledger, REFUND, &other, t0);
        assert_eq!(parsed(&a).sub_code.as_deref(), Some("ACQ.DISCORDANT_REPEAT_REQUEST"));
        assert!(matches!(worker_sees(Call::Refund, &a), ChannelOutcome::Review { .. }));
    }
    let lines = ledger.snapshot(t0);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].amount.as_str(), lines[0].moves), ("10.00", 1));
}

#[test]
fn a_trade_ending_0000_does_not_exist() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let a = sim.business(&ledger, REFUND, &refund("K0", "2026031522000000", "5.00"), t0);
    let r = parsed(&a);
    assert_eq!((r.code.as_str(), r.sub_code.as_deref()), ("40004", Some("ACQ.TRADE_NOT_EXIST")));
    assert_eq!(r.sub_msg.as_deref(), Some("交易不存在"));
    assert!(matches!(worker_sees(Call::Refund, &a), ChannelOutcome::Failed { .. }));
    assert_eq!(sim.business(&ledger, REFUND, &refund("K0", "2026031522000000", "5.00"), t0).inner, a.inner);
    let q = sim.business(&ledger, REFUND_QUERY, &refund_query("K0", "2026031522000000"), t0);
    assert_eq!(worker_sees(Call::RefundQuery, &q), ChannelOutcome::NotFound);
    assert_eq!(moves(&ledger, "K0", t0), Some(0));
}

#[test]
fn a_trade_ending_0001_is_accepted_then_refused_after_settling() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let body = refund("K2", "2026031522000001", "7.50");
    let first = sim.business(&ledger, REFUND, &body, t0);
    let r = parsed(&first);
    assert_eq!((r.code.as_str(), r.fund_change.as_deref()), ("10000", Some("N")));
    assert!(matches!(worker_sees(Call::Refund, &first), ChannelOutcome::Unknown { .. }));
    // Before settling: the same answer again, and the query finds no refund.
    let before = t0 + SETTLE - Duration::from_millis(1);
    assert_eq!(sim.business(&ledger, REFUND, &body, before).inner, first.inner);
    let q = sim.business(&ledger, REFUND_QUERY, &refund_query("K2", "2026031522000001"), before);
    assert_eq!(worker_sees(Call::RefundQuery, &q), ChannelOutcome::NotFound);
    // After: still no refund, and a resend is refused definitively.
    let after = t0 + SETTLE;
    let q = sim.business(&ledger, REFUND_QUERY, &refund_query("K2", "2026031522000001"), after);
    assert_eq!(parsed(&q).refund_status, None);
    let resend = sim.business(&ledger, REFUND, &body, after);
    assert_eq!(parsed(&resend).sub_code.as_deref(), Some("ACQ.TRADE_NOT_ALLOW_REFUND"));
    assert!(matches!(worker_sees(Call::Refund, &resend), ChannelOutcome::Failed { .. }));
    assert_eq!(moves(&ledger, "K2", before), Some(0));
    assert_eq!(moves(&ledger, "K2", after), Some(0));
}

#[test]
fn a_transfer_is_paid_once_with_a_stable_order_id() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let body = transfer("T1", "payee@example.com", "Zhang San", "100.00");
    let first = sim.business(&ledger, TRANSFER, &body, t0);
    let r = parsed(&first);
    assert_eq!((r.code.as_str(), r.status.as_deref()), ("10000", Some("SUCCESS")));
    let order_id = r.order_id.clone().unwrap();
    assert!(order_id.starts_with("2026") && order_id.len() == 20, "{order_id}");
    assert_eq!(order_id, digits("order_id", "T1"));
    assert_eq!(worker_sees(Call::Transfer, &first), ChannelOutcome::Succeeded { reference: order_id.clone() });
    assert_eq!(sim.business(&ledger, TRANSFER, &body, t0 + SETTLE).inner, first.inner);
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T1"), t0);
    assert_eq!(worker_sees(Call::TransferQuery, &q), ChannelOutcome::Succeeded { reference: order_id });
    assert_eq!(moves(&ledger, "T1", t0 + SETTLE), Some(1));
    // The log line names the outcome, never the payee.
    assert!(!first.outcome.contains("payee@") && !first.outcome.contains("Zhang"));
}

#[test]
fn a_transfer_key_reused_with_other_parameters_is_inconsistent() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    sim.business(&ledger, TRANSFER, &transfer("T1", "payee@example.com", "Zhang San", "100.00"), t0);
    for other in [
        transfer("T1", "payee@example.com", "Zhang San", "100.01"),
        transfer("T1", "other@example.com", "Zhang San", "100.00"),
        transfer("T1", "payee@example.com", "Li Si", "100.00"),
    ] {
        let a = sim.business(&ledger, TRANSFER, &other, t0);
        assert_eq!(parsed(&a).sub_code.as_deref(), Some("PAYMENT_INFO_INCONSISTENCY"));
        assert!(matches!(worker_sees(Call::Transfer, &a), ChannelOutcome::Review { .. }));
    }
    assert_eq!(moves(&ledger, "T1", t0), Some(1));
}

#[test]
fn a_payee_ending_0000_does_not_exist() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let a = sim.business(&ledger, TRANSFER, &transfer("T0", "6222000000000000", "Zhang San", "1.00"), t0);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("PAYEE_NOT_EXIST"));
    assert!(matches!(worker_sees(Call::Transfer, &a), ChannelOutcome::Failed { .. }));
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T0"), t0);
    assert_eq!(worker_sees(Call::TransferQuery, &q), ChannelOutcome::NotFound);
    assert_eq!(moves(&ledger, "T0", t0), Some(0));
}

#[test]
fn a_payee_ending_0001_is_dealing_then_bounces() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let body = transfer("T2", "6222000000000001", "Zhang San", "3.00");
    let a = sim.business(&ledger, TRANSFER, &body, t0);
    assert_eq!(parsed(&a).status.as_deref(), Some("DEALING"));
    assert_eq!(worker_sees(Call::Transfer, &a), ChannelOutcome::Pending);
    let before = t0 + SETTLE - Duration::from_millis(1);
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T2"), before);
    assert_eq!(worker_sees(Call::TransferQuery, &q), ChannelOutcome::Pending);
    let after = t0 + SETTLE;
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T2"), after);
    assert_eq!(parsed(&q).status.as_deref(), Some("REFUND"));
    assert!(matches!(worker_sees(Call::TransferQuery, &q), ChannelOutcome::Failed { .. }));
    assert_eq!(moves(&ledger, "T2", before), Some(0));
    assert_eq!(moves(&ledger, "T2", after), Some(0));
}

#[test]
fn queries_for_unknown_keys_say_not_found() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("nope"), t0);
    assert_eq!(parsed(&q).sub_code.as_deref(), Some("ORDER_NOT_EXIST"));
    assert_eq!(worker_sees(Call::TransferQuery, &q), ChannelOutcome::NotFound);
    let q = sim.business(&ledger, REFUND_QUERY, &refund_query("nope", "2026031522001456"), t0);
    assert_eq!((parsed(&q).code.as_str(), parsed(&q).refund_status), ("10000", None));
    assert!(ledger.snapshot(t0).is_empty(), "queries do not create keys");
}

#[test]
fn bad_business_parameters_get_alipay_errors_and_no_record() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let a = sim.business(&ledger, REFUND, "{not json", t0);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("isv.invalid-parameter"));
    for amount in ["0.00", "-1", "1.234", "1.", "", "abc"] {
        let a = sim.business(&ledger, REFUND, &refund("K", "2026031522001456", amount), t0);
        assert_eq!(parsed(&a).sub_code.as_deref(), Some("ACQ.INVALID_PARAMETER"), "{amount:?}");
        let a = sim.business(&ledger, TRANSFER, &transfer("K", "p@example.com", "N", amount), t0);
        assert_eq!(parsed(&a).sub_code.as_deref(), Some("INVALID_PARAMETER"), "{amount:?}");
    }
    let long_key = "k".repeat(65);
    let a = sim.business(&ledger, REFUND, &refund(&long_key, "2026031522001456", "1.00"), t0);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("ACQ.INVALID_PARAMETER"));
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
    sign::sign_request(&mut params, &RsaSigner::from_pem(DEV_APP_PRIVATE_KEY).unwrap());
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
    tampered.insert("biz_content".into(), refund("K1", "2026031522001456", "99.00"));
    assert_eq!(sub(&tampered), (REFUND.into(), "40002".into(), Some("isv.invalid-signature".into())));
    let mut unsigned = good.clone();
    unsigned.remove("sign");
    assert_eq!(sub(&unsigned).2.as_deref(), Some("isv.missing-signature"));
    let mut no_method = good.clone();
    no_method.remove("method");
    assert_eq!(sub(&no_method), ("error".into(), "40001".into(), Some("isv.missing-method".into())));
    let unknown = signed("alipay.trade.pay", "{}");
    assert_eq!(sub(&unknown).2.as_deref(), Some("isv.invalid-method"));
    assert!(ledger.snapshot(t0).is_empty(), "nothing rejected at the gateway is recorded");
    assert_eq!(sub(&good), (REFUND.into(), "10000".into(), None));
    assert_eq!(moves(&ledger, "K1", t0), Some(1));
}

#[test]
fn fault_answers_are_unknown_to_the_worker() {
    let a = system_error(REFUND);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("ACQ.SYSTEM_ERROR"));
    assert!(matches!(worker_sees(Call::Refund, &a), ChannelOutcome::Unknown { .. }));
    let a = system_error(TRANSFER);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("SYSTEM_ERROR"));
    assert!(matches!(worker_sees(Call::Transfer, &a), ChannelOutcome::Unknown { .. }));
    let a = service_unavailable(TRANSFER_QUERY);
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("isp.unknow-error"));
    assert!(matches!(worker_sees(Call::TransferQuery, &a), ChannelOutcome::Unknown { .. }));
}
