//! The bank payout gateway end to end, through the worker: signed commands in over the
//! real RabbitMQ and Redis, payouts through the simulated bank (asynchronous: every
//! payment is acknowledged `ACTC` and settles after `settle_ms`, so each paid leg goes
//! pending → polled → paid), events out, and the simulator's ledger as the oracle for
//! "paid at most once".

mod common;

use common::*;
use serde_json::{json, Value};

/// A designated bank card (the `bank` channel pays it by credit transfer).
fn card_leg(leg_id: &str, amount: &str, account: &str) -> Value {
    json!({"leg_id": leg_id, "amount": amount, "route": "designated", "channel": "bank",
           "payee": {"kind": "bank_card", "name": "Zhang San", "account_no": account,
                     "bank_name": "ICBC", "branch": "Hangzhou Xihu Sub-branch"}})
}

/// An online-banking top-up from 20 days ago, refunded to the account it came from.
fn online_banking_leg(leg_id: &str, amount: &str, channel_txn_id: &str) -> Value {
    json!({"leg_id": leg_id, "amount": amount, "route": "original", "channel": "bank",
           "source": {"topup_id": format!("tp-{leg_id}"), "channel_txn_id": channel_txn_id,
                      "bank": "Some Bank",
                      "paid_at": (chrono::Utc::now() - chrono::Duration::days(20)).to_rfc3339()}})
}

/// A test app whose worker pays bank legs through its own simulator, polling pending
/// payments quickly (the default schedule is meant for days-long settlement).
async fn bank_app(tag: &str) -> TestApp {
    let mut app = TestApp::spawn(tag, Options::default()).await;
    app.settings.channels.bank.base_url = format!("{}/bank", app.sim_url);
    app.settings.channels.bank.settlement.poll_schedule_ms = vec![100, 200];
    app.start_worker();
    app
}

/// The ledger's `moves` for a key, after checking that no bank key was paid twice.
async fn moves_for(app: &TestApp, key: &str) -> u64 {
    let ledger = app.ledger().await;
    assert!(ledger.iter().all(|l| l["channel"] == "bank"), "{ledger:?}");
    *channel_moves(app, "bank")
        .await
        .get(key)
        .unwrap_or_else(|| panic!("{key} not in {ledger:?}"))
}

#[tokio::test]
async fn a_designated_bank_card_is_accepted_then_settles_and_succeeds() {
    let mut app = bank_app("bank-card").await;
    let id = unique("wd-bank-card");
    app.publish_signed(&withdrawal(
        &id,
        vec![card_leg("1", "500.00", "6222020200112233445")],
    ))
    .await;
    let (terminal, other) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.succeeded", "{e}");
    assert_eq!(e["data"]["paid_amount"], "500.00");
    let leg = &e["data"]["legs"][0];
    assert_eq!(
        (&leg["channel"], &leg["route"]),
        (&json!("bank"), &json!("designated"))
    );
    assert!(
        leg["channel_reference"].as_str().unwrap().starts_with("BR"),
        "{leg}"
    );
    assert!(other.iter().any(|e| e["type"] == "withdrawal.processing"));
    assert_eq!(moves_for(&app, &leg_key(&id, "1")).await, 1);
    app.teardown().await;
}

#[tokio::test]
async fn an_online_banking_top_up_is_refunded_to_its_source_account() {
    let mut app = bank_app("bank-refund").await;
    let id = unique("wd-bank-refund");
    app.publish_signed(&withdrawal(
        &id,
        vec![online_banking_leg("1", "88.00", "2026031522001456")],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.succeeded", "{e}");
    let leg = &e["data"]["legs"][0];
    assert_eq!(
        (&leg["channel"], &leg["route"]),
        (&json!("bank"), &json!("original"))
    );
    assert!(!leg["channel_reference"].as_str().unwrap().is_empty());
    assert_eq!(moves_for(&app, &leg_key(&id, "1")).await, 1);
    app.teardown().await;
}

#[tokio::test]
async fn a_closed_account_fails_at_once_and_releases_the_whole_amount() {
    let mut app = bank_app("bank-ac04").await;
    let id = unique("wd-bank-0000");
    app.publish_signed(&withdrawal(
        &id,
        vec![card_leg("1", "250.00", "62220202001122330000")],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.failed", "{e}");
    assert_eq!(e["data"]["unfreeze_amount"], "250.00");
    assert_eq!(e["data"]["paid_amount"], "0.00");
    let leg = &e["data"]["legs"][0];
    assert_eq!(leg["failure_code"], "AC04");
    assert!(!leg["failure_reason"].as_str().unwrap().is_empty());
    assert_eq!(moves_for(&app, &leg_key(&id, "1")).await, 0);
    app.teardown().await;
}

#[tokio::test]
async fn a_wrong_account_fails_only_after_acceptance_and_the_paid_leg_stays_paid() {
    let mut app = bank_app("bank-ac01").await;
    let id = unique("wd-bank-0001");
    app.publish_signed(&withdrawal(
        &id,
        vec![
            online_banking_leg("1", "30.00", "2026031522001456"),
            card_leg("2", "20.00", "62220202001122330001"),
        ],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_first_paid_second_refused(e, "30.00", "20.00", "AC01");
    assert_eq!(moves_for(&app, &leg_key(&id, "1")).await, 1);
    assert_eq!(moves_for(&app, &leg_key(&id, "2")).await, 0);
    app.teardown().await;
}
