//! The invariant checker is itself tested against deliberately broken workers, each
//! compiled only under its own cargo feature (CI runs both):
//! - `cargo test --features broken-fresh-key-resend --test broken_builds`: resend at
//!   once, with a fresh reference, instead of querying the leg's key first. Run against
//!   the simulator with answers lost after the money moved, the checker must report the
//!   double payment.
//! - `cargo test --features broken-ack-before-publish --test broken_builds`: ack each
//!   delivery on arrival, before paying and publishing. A seeded `payout-worker chaos`
//!   run that SIGKILLs workers must fail, name the lost withdrawals, and print the
//!   command that reproduces it.
#![cfg(any(
    feature = "broken-fresh-key-resend",
    feature = "broken-ack-before-publish"
))]

mod common;

use common::*;
#[cfg(feature = "broken-fresh-key-resend")]
use payout_worker::chaos::invariants::{
    self, Event, Expect, ExpectedLeg, ExpectedWithdrawal, LedgerLine,
};
#[cfg(feature = "broken-fresh-key-resend")]
use payout_worker::domain::{IdempotencyKey, LegId, WithdrawalId};
#[cfg(feature = "broken-fresh-key-resend")]
use rust_decimal::Decimal;
#[cfg(feature = "broken-fresh-key-resend")]
use std::collections::HashSet;

#[cfg(feature = "broken-fresh-key-resend")]
#[tokio::test]
async fn the_checker_catches_a_worker_that_resends_with_a_fresh_key() {
    let mut app = TestApp::spawn(
        "broken-fresh-key",
        Options {
            sim_faults: 0.3,
            sim_fault_kinds: vec!["lost_answer"],
            ..Options::default()
        },
    )
    .await;
    app.start_worker();
    let mut ids = HashSet::new();
    let mut authentic = Vec::new();
    for i in 0..30 {
        let id = unique(&format!("wd-broken-{i}"));
        app.publish_signed(&withdrawal(
            &id,
            vec![transfer_leg("1", "10.00", "zs@example.com")],
        ))
        .await;
        authentic.push(ExpectedWithdrawal {
            id: id.clone(),
            amount: Decimal::new(1000, 2),
            legs: vec![ExpectedLeg {
                leg_id: "1".into(),
                amount: Decimal::new(1000, 2),
                key: IdempotencyKey::for_leg(
                    &WithdrawalId::parse(&id).unwrap(),
                    &LegId::parse("1").unwrap(),
                )
                .to_string(),
                expect: Expect::Paid {
                    channel: "alipay",
                    route: "designated",
                },
            }],
        });
        ids.insert(id);
    }
    let terminal = app.until_terminal(&ids).await;
    let events: Vec<Event> = terminal
        .iter()
        .map(|e| Event::parse(e.to_string().as_bytes()).unwrap())
        .collect();
    let ledger: Vec<LedgerLine> =
        serde_json::from_value(serde_json::Value::Array(app.ledger().await)).unwrap();

    let verdict = invariants::ledger_matches_events(&authentic, &events, &ledger);
    assert!(
        !verdict.passed,
        "the checker missed the double payment: {verdict:?}"
    );
    assert!(
        verdict.violations.iter().any(|v| v.contains("moved")),
        "{verdict:?}"
    );
    app.teardown().await;
}

/// The whole chaos command against the broken binary: workers are SIGKILLed while
/// withdrawals they already acked are in flight (channel latency spikes keep many in
/// flight), and nothing redelivers them.
#[cfg(feature = "broken-ack-before-publish")]
#[test]
fn the_chaos_run_catches_a_worker_that_acks_before_publishing() {
    let dir = std::env::temp_dir().join(unique("broken-ack"));
    std::fs::create_dir_all(&dir).unwrap();
    let report_path = dir.join("report.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payout-worker"))
        .args([
            "chaos",
            "--seed",
            "5",
            "--workers",
            "2",
            "--withdrawals",
            "300",
            "--duration",
            "30",
            // Latency spikes keep withdrawals in flight, so every SIGKILL lands on some.
            "--faults",
            "kill,latency",
            "--fault-interval",
            "1.5",
            "--report",
        ])
        .arg(&report_path)
        .output()
        .expect("run payout-worker chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the chaos run passed a worker that acks before publishing:\n{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["verdict"], "FAIL", "{report:#}");
    let one_outcome = report["invariants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "one_outcome_each")
        .expect("the one_outcome_each verdict");
    assert_eq!(one_outcome["passed"], false, "{one_outcome:#}");
    assert!(
        report["faults_by_kind"]["kill"].as_u64().unwrap_or(0) > 0,
        "{report:#}"
    );
    let reproduce = report["reproduce"].as_str().unwrap();
    assert!(reproduce.contains("--seed 5"), "{reproduce}");
    assert!(
        stdout.contains(reproduce),
        "the terminal report must print the command that reproduces the run"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
