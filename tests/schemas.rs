//! The worker's real messages validate against the JSON Schemas published in
//! docs/asyncapi.yaml (and printed by `payout-worker schema`).

mod common;

use common::*;
use serde_json::Value;
use std::collections::HashMap;

fn validator(name: &str) -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(payout_worker::schemas::get(name).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("a valid schema")
}

fn assert_valid(name: &str, instance: &Value) {
    let v = validator(name);
    let errors: Vec<String> = v.iter_errors(instance).map(|e| e.to_string()).collect();
    assert!(
        errors.is_empty(),
        "{name} does not match its schema: {errors:?}\n{instance}"
    );
}

#[tokio::test]
async fn every_message_the_worker_produces_matches_its_schema() {
    let mut app = TestApp::spawn(
        "schemas",
        Options {
            ..Options::default()
        },
    )
    .await;
    app.start_worker();
    let commands = vec![
        withdrawal(
            &unique("wd-s-ok"),
            vec![
                transfer_leg("1", "5.00", "zs@example.com"),
                refund_leg("2", "7.10", "2026031522001456"),
            ],
        ),
        withdrawal(
            &unique("wd-s-no"),
            vec![refund_leg("1", "9.00", "20260315220014560000")],
        ),
    ];
    for c in &commands {
        assert_valid("withdrawal.approved", &serde_json::from_slice(c).unwrap());
        app.publish_signed(c).await;
    }
    // An authentic but refused command: its withdrawal.failed too.
    let mut bad: Value = serde_json::from_slice(&withdrawal(
        &unique("wd-s-bad"),
        vec![transfer_leg("1", "5.00", "zs@example.com")],
    ))
    .unwrap();
    bad["amount"] = "6.00".into();
    app.publish_signed(bad.to_string().as_bytes()).await;

    let mut seen: HashMap<String, usize> = HashMap::new();
    while !seen.contains_key("withdrawal.succeeded")
        || seen.get("withdrawal.failed").copied().unwrap_or(0) < 2
    {
        let e = app.next_event().await.json();
        let kind = e["type"].as_str().unwrap().to_owned();
        assert_valid(&kind, &e);
        *seen.entry(kind).or_default() += 1;
    }
    assert!(seen.contains_key("withdrawal.processing"));
    app.teardown().await;
}

#[tokio::test]
async fn a_review_event_matches_its_schema() {
    let mut app = TestApp::spawn(
        "schemas-review",
        Options {
            sim_faults: 1.0,
            sim_fault_kinds: vec!["system_error"],
            ..Options::default()
        },
    )
    .await;
    app.settings.retry.max_deferrals = 2;
    app.settings.retry.in_process_budget_ms = 100;
    app.start_worker();
    app.publish_signed(&withdrawal(
        &unique("wd-s-review"),
        vec![transfer_leg("1", "5.00", "zs@example.com")],
    ))
    .await;
    loop {
        let e = app.next_event().await.json();
        let kind = e["type"].as_str().unwrap().to_owned();
        assert_valid(&kind, &e);
        if kind == "withdrawal.review_required" {
            break;
        }
    }
    app.teardown().await;
}

#[test]
fn the_command_schema_refuses_what_the_contract_forbids() {
    let v = validator("withdrawal.approved");
    let good: Value = serde_json::from_slice(&withdrawal(
        "wd-1",
        vec![transfer_leg("1", "5.00", "zs@example.com")],
    ))
    .unwrap();
    assert!(v.is_valid(&good));
    for (field, value) in [
        ("amount", Value::from("5.001")),
        ("amount", Value::from(5)),
        ("version", Value::from(2)),
        ("withdrawal_id", Value::from("wd 1")),
    ] {
        let mut bad = good.clone();
        bad[field] = value;
        assert!(!v.is_valid(&bad), "{field} accepted");
    }
}
