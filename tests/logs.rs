//! The JSON logs of a real run: withdrawal ids on every line about a withdrawal, and no
//! account number, payee name, key or signature anywhere.

mod common;

use common::*;
use serde_json::{json, Value};
use std::collections::HashSet;

#[tokio::test]
async fn json_logs_carry_ids_and_never_personal_data_or_secrets() {
    let mut app = TestApp::spawn("logs", Options::default()).await;
    app.settings.channels.bank.settlement.poll_schedule_ms = vec![100, 200];
    let worker = LoggedWorker::start(&app.settings, "payout-logs");

    let card = "6222020200112233445";
    let mut ids = HashSet::new();
    let bodies = [
        vec![
            json!({"leg_id": "1", "amount": "10.00", "route": "designated", "channel": "bank",
            "payee": {"kind": "bank_card", "name": "Zhang San", "account_no": card, "bank_name": "ICBC"}}),
        ],
        vec![transfer_leg("1", "3.00", "zhangsan@example.com")],
        vec![refund_leg("1", "4.00", "20260315220014560000")],
    ];
    for legs in bodies {
        let id = unique("wd-log");
        app.publish_signed(&withdrawal(&id, legs)).await;
        ids.insert(id);
    }
    app.until_terminal(&ids).await;
    let text = worker.stop_and_read_log().await;
    assert!(!text.is_empty());
    for forbidden in [
        card,
        "Zhang San",
        "zhangsan@example.com",
        "dev-secret-do-not-use-in-production",
        "PRIVATE KEY",
        "v1=",
    ] {
        assert!(!text.contains(forbidden), "logs contain {forbidden:?}");
    }
    let about_a_withdrawal = [
        "paid through channel",
        "queried channel",
        "event published",
        "withdrawal complete",
        "deferring command",
    ];
    let mut checked = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).expect("every line is JSON");
        let message = v["message"].as_str().unwrap_or_default();
        if !about_a_withdrawal.contains(&message) {
            continue;
        }
        let spans = v["spans"].as_array().cloned().unwrap_or_default();
        let id = spans.iter().find_map(|s| s["withdrawal_id"].as_str());
        assert!(
            id.is_some_and(|id| ids.contains(id)),
            "no withdrawal id on: {line}"
        );
        checked += 1;
    }
    assert!(checked >= 9, "only {checked} lines about withdrawals");
    app.teardown().await;
}
