//! The invariant checker is itself tested: a deliberately broken worker, compiled only
//! with `--features broken-fresh-key-resend` (resend at once, with a fresh reference,
//! instead of querying the leg's key first), is run against the simulator with answers
//! lost after the money moved, and the checker must report the double payment.
//!
//! `cargo test --features broken-fresh-key-resend --test broken_builds` (CI runs it).
#![cfg(feature = "broken-fresh-key-resend")]

mod common;

use common::*;
use payout_worker::chaos::invariants::{
    self, Event, Expect, ExpectedLeg, ExpectedWithdrawal, LedgerLine,
};
use payout_worker::domain::{IdempotencyKey, LegId, WithdrawalId};
use rust_decimal::Decimal;
use std::collections::HashSet;

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
