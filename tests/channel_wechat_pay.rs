//! WeChat Pay API v3 through the whole worker, on the real RabbitMQ and Redis: signed
//! commands in, refunds through the simulator's WeChat side (asynchronous: `PROCESSING`
//! first, settled after `settle_ms`), events out, and the simulator's ledger as the
//! oracle for "paid at most once".

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Long enough that the first answer is certainly `PROCESSING`: a refund only reaches
/// `SUCCESS` or `CLOSED` through a later query.
const SETTLE_MS: u64 = 300;

/// A leg refunding a WeChat Pay top-up made 20 days ago (well inside the window).
fn wechat_refund_leg(leg_id: &str, amount: &str, channel_txn_id: &str) -> Value {
    json!({"leg_id": leg_id, "amount": amount, "route": "original", "channel": "wechat_pay",
           "source": {"topup_id": format!("tp-{leg_id}"), "channel_txn_id": channel_txn_id,
                      "paid_at": (chrono::Utc::now() - chrono::Duration::days(20)).to_rfc3339()}})
}

/// A test app whose worker sends WeChat Pay calls to the app's simulator.
async fn app(tag: &str) -> TestApp {
    let mut app = TestApp::spawn(
        tag,
        Options {
            settle_ms: SETTLE_MS,
            ..Options::default()
        },
    )
    .await;
    let wechat = &mut app.settings.channels.wechat_pay;
    wechat.base_url = app.sim_url.clone();
    // Poll often, so the test waits for settlement rather than for the schedule.
    wechat.settlement.poll_schedule_ms = vec![100, 200, 400];
    app.start_worker();
    app
}

/// The ledger's WeChat lines: (key, moves). Every key must have moved at most once.
async fn wechat_moves(app: &TestApp) -> Vec<u64> {
    let ledger = app.ledger().await;
    let lines: Vec<&Value> = ledger
        .iter()
        .filter(|l| l["channel"] == "wechat_pay")
        .collect();
    assert!(
        lines.iter().all(|l| l["moves"].as_u64().unwrap() <= 1),
        "{ledger:?}"
    );
    lines.iter().map(|l| l["moves"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_wechat_refund_is_pending_then_paid_once() {
    let mut app = app("wechat-paid").await;
    let id = unique("wd-wx");
    let sent = Instant::now();
    app.publish_signed(&withdrawal(
        &id,
        vec![wechat_refund_leg("1", "1000.00", "4200002026031522001456")],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.succeeded", "{e}");
    assert_eq!(e["subject"], id.as_str());
    assert_eq!(e["data"]["paid_amount"], "1000.00");
    let leg = &e["data"]["legs"][0];
    assert_eq!(leg["channel"], "wechat_pay");
    assert_eq!(leg["route"], "original");
    let reference = leg["channel_reference"].as_str().unwrap();
    assert!(
        reference.starts_with("50") && reference.len() == 29,
        "{reference}"
    );
    // WeChat answered PROCESSING and the refund only settled `SETTLE_MS` later, so the
    // success came from a poll, not from the first answer.
    assert!(sent.elapsed() >= Duration::from_millis(SETTLE_MS));
    assert_eq!(wechat_moves(&app).await, vec![1]);
    app.teardown().await;
}

#[tokio::test]
async fn a_payment_wechat_does_not_know_fails_at_once_and_releases_the_amount() {
    let mut app = app("wechat-0000").await;
    let id = unique("wd-wx-0000");
    app.publish_signed(&withdrawal(
        &id,
        vec![wechat_refund_leg(
            "1",
            "250.00",
            "42000020260315220014560000",
        )],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.failed", "{e}");
    assert_eq!(e["data"]["unfreeze_amount"], "250.00");
    assert_eq!(e["data"]["paid_amount"], "0.00");
    let leg = &e["data"]["legs"][0];
    assert_eq!(leg["failure_code"], "RESOURCE_NOT_EXISTS");
    assert!(!leg["failure_reason"].as_str().unwrap().is_empty());
    assert_eq!(wechat_moves(&app).await, vec![0]);
    app.teardown().await;
}

#[tokio::test]
async fn a_refund_closed_after_acceptance_fails_and_releases_the_amount() {
    let mut app = app("wechat-0001").await;
    let id = unique("wd-wx-0001");
    let sent = Instant::now();
    app.publish_signed(&withdrawal(
        &id,
        vec![wechat_refund_leg(
            "1",
            "75.50",
            "42000020260315220014560001",
        )],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.failed", "{e}");
    assert_eq!(e["data"]["unfreeze_amount"], "75.50");
    assert_eq!(e["data"]["paid_amount"], "0.00");
    assert_eq!(e["data"]["legs"][0]["failure_code"], "REFUND_CLOSED");
    // Accepted first (PROCESSING), closed only at settlement.
    assert!(sent.elapsed() >= Duration::from_millis(SETTLE_MS));
    assert_eq!(wechat_moves(&app).await, vec![0]);
    app.teardown().await;
}

#[tokio::test]
async fn a_repeated_command_with_a_paid_and_a_closed_leg_pays_once_and_adds_up() {
    let mut app = app("wechat-mixed").await;
    let id = unique("wd-wx-mixed");
    let body = withdrawal(
        &id,
        vec![
            wechat_refund_leg("1", "30.00", "4200002026031522001456"),
            wechat_refund_leg("2", "20.00", "42000020260315220014560001"),
        ],
    );
    app.publish_signed(&body).await;
    app.publish_signed(&body).await;
    let (terminal, _) = app.terminal_events(2).await;
    assert!(
        terminal.iter().all(|e| e["id"] == terminal[0]["id"]),
        "{terminal:?}"
    );
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.failed", "{e}");
    assert_eq!(e["data"]["paid_amount"], "30.00");
    assert_eq!(e["data"]["unfreeze_amount"], "20.00");
    let mut moves = wechat_moves(&app).await;
    moves.sort();
    assert_eq!(moves, vec![0, 1]);
    app.teardown().await;
}

/// Issue 14 item 9: `NOT_ENOUGH` is our merchant balance, not the user's fault. The
/// simulator answers it on every attempt for a payment ending in `0002`. The worker must
/// keep the funds frozen (no `withdrawal.failed`), retry under the same key, and after
/// its retry budget raise a review for the leg; nothing moves.
#[tokio::test]
async fn our_balance_too_low_keeps_the_funds_frozen_and_ends_in_review() {
    let mut app = TestApp::spawn(
        "wechat-0002",
        Options {
            settle_ms: SETTLE_MS,
            ..Options::default()
        },
    )
    .await;
    app.settings.channels.wechat_pay.base_url = app.sim_url.clone();
    // A short retry budget, so the review comes within the test's wait.
    app.settings.retry.max_deferrals = 3;
    app.start_worker();
    let id = unique("wd-wx-0002");
    app.publish_signed(&withdrawal(
        &id,
        vec![wechat_refund_leg(
            "1",
            "120.00",
            "42000020260315220014560002",
        )],
    ))
    .await;
    let review = review_before_any_terminal(&mut app, &id).await;
    assert_ne!(review["data"]["review_kind"], "limit", "{review}");
    let leg = &review["data"]["legs"][0];
    assert!(
        leg["sends"].as_u64().unwrap() >= 2,
        "retried under the same key before the review: {review}"
    );
    assert_ne!(leg["status"], "failed", "{review}");
    assert!(
        leg["note"]
            .as_str()
            .unwrap_or_default()
            .contains("NOT_ENOUGH"),
        "the leg says why: {review}"
    );
    // Refused before a refund existed: nothing in the ledger, nothing moved.
    assert!(wechat_moves(&app).await.iter().all(|m| *m == 0));
    // And no terminal event follows the review (funds stay frozen for a person).
    assert_no_terminal_event(&mut app, &id, Duration::from_millis(1500)).await;
    app.teardown().await;
}
