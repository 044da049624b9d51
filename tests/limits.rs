//! Containment limits through the worker, against the real RabbitMQ and Redis: a
//! command past a limit is held with `withdrawal.review_required` naming the limit, and
//! no channel is called for it.

mod common;

use chrono::{Duration, Utc};
use common::*;
use rust_decimal::Decimal;
use serde_json::Value;

fn with(body: Vec<u8>, field: &str, value: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&body).unwrap();
    v[field] = value;
    v.to_string().into_bytes()
}

/// Reads events until one of type `kind` for `id`.
async fn event_for(app: &mut TestApp, id: &str, kind: &str) -> Value {
    loop {
        let e = app.next_event().await.json();
        if e["type"] == kind && e["subject"] == id {
            return e;
        }
    }
}

fn assert_held(e: &Value, limit: &str) {
    assert_eq!(e["type"], "withdrawal.review_required", "{e}");
    assert_eq!(e["data"]["review_kind"], "limit", "{e}");
    let reason = e["data"]["reason"].as_str().unwrap();
    assert!(reason.contains(limit), "{reason}");
    for leg in e["data"]["legs"].as_array().unwrap() {
        assert_eq!(leg["status"], "review", "{e}");
        assert_eq!(leg["sends"], 0, "{e}");
    }
}

#[tokio::test]
async fn a_leg_or_withdrawal_past_its_limit_is_held_and_never_paid() {
    let mut app = TestApp::spawn("limits-amount", Options::default()).await;
    app.settings.limits.max_leg_amount = Decimal::new(10_000, 2);
    app.settings.limits.max_withdrawal_amount = Decimal::new(15_000, 2);
    app.start_worker();

    let big_leg = unique("wd-big-leg");
    app.publish_signed(&withdrawal(
        &big_leg,
        vec![transfer_leg("1", "100.01", "zs@example.com")],
    ))
    .await;
    assert_held(
        &event_for(&mut app, &big_leg, "withdrawal.review_required").await,
        "max_leg_amount",
    );

    let big = unique("wd-big");
    let body = withdrawal(
        &big,
        vec![
            transfer_leg("1", "100.00", "zs@example.com"),
            transfer_leg("2", "50.01", "13800138000"),
        ],
    );
    app.publish_signed(&body).await;
    assert_held(
        &event_for(&mut app, &big, "withdrawal.review_required").await,
        "max_withdrawal_amount",
    );
    // Delivered again: still held, still unpaid; then one under every limit is paid.
    app.publish_signed(&body).await;
    let fine = unique("wd-fine");
    app.publish_signed(&withdrawal(
        &fine,
        vec![transfer_leg("1", "100.00", "zs@example.com")],
    ))
    .await;
    let paid = event_for(&mut app, &fine, "withdrawal.succeeded").await;
    assert_eq!(paid["data"]["amount"], "100.00");
    let ledger = app.ledger().await;
    assert_eq!(
        ledger.len(),
        1,
        "only the withdrawal under the limits reached a channel: {ledger:?}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn an_account_past_its_daily_amount_has_the_rest_held() {
    let mut app = TestApp::spawn("limits-daily", Options::default()).await;
    app.settings.limits.account_daily_amount = Decimal::new(10_000, 2);
    app.start_worker();
    let account = unique("acct-daily");
    let ids: Vec<String> = (0..3).map(|i| unique(&format!("wd-daily-{i}"))).collect();
    for id in &ids {
        let body = withdrawal(id, vec![transfer_leg("1", "40.00", "zs@example.com")]);
        app.publish_signed(&with(body, "account_id", Value::from(account.clone())))
            .await;
    }
    // 40 + 40 fit under 100; the third would make 120.
    let (mut paid, mut held) = (Vec::new(), Vec::new());
    while paid.len() + held.len() < 3 {
        let e = app.next_event().await.json();
        match e["type"].as_str() {
            Some("withdrawal.succeeded") => paid.push(e),
            Some("withdrawal.review_required") => held.push(e),
            _ => {}
        }
    }
    assert_eq!((paid.len(), held.len()), (2, 1), "{paid:?} {held:?}");
    assert_held(&held[0], "account_daily_amount");
    assert_eq!(app.ledger().await.len(), 2);
    app.teardown().await;
}

/// An authentic command replayed after its idempotency record expired from Redis (its
/// own redis-server flushed here; a smaller age limit stands for the time that passed)
/// is never paid again. It is past the age limit, but a limit holds only a withdrawal
/// no channel has seen (issue 14): the channel, asked with the leg's key, says it paid,
/// and the original outcome is announced again under its own event id. A replay of a
/// withdrawal no channel ever saw is held by the age limit.
#[tokio::test]
async fn a_replay_after_the_record_expired_is_answered_from_the_channel_or_held() {
    let mut app = TestApp::spawn(
        "limits-replay",
        Options {
            own_redis: true,
            ..Options::default()
        },
    )
    .await;
    app.settings.limits.max_age_secs = 3600;
    app.start_worker();
    let id = unique("wd-replay");
    let approved = Value::from((Utc::now() - Duration::minutes(30)).to_rfc3339());
    let body = with(
        withdrawal(&id, vec![transfer_leg("1", "30.00", "zs@example.com")]),
        "approved_at",
        approved.clone(),
    );
    app.publish_signed(&body).await;
    let first = event_for(&mut app, &id, "withdrawal.succeeded").await;
    let calls_before = app.ledger().await;

    app.stop_workers().await;
    app.redis.as_ref().expect("own redis").flush();
    app.settings.limits.max_age_secs = 600;
    app.start_worker();
    app.publish_signed(&body).await;
    let again = event_for(&mut app, &id, "withdrawal.succeeded").await;
    assert_eq!(
        again["id"], first["id"],
        "the same event, deduplicated by id"
    );
    assert_eq!(again["data"]["paid_amount"], "30.00");
    assert_eq!(
        app.ledger().await,
        calls_before,
        "the replay was paid again"
    );

    // Never seen by a channel: held.
    let unseen = unique("wd-replay-unseen");
    let body = with(
        withdrawal(&unseen, vec![transfer_leg("1", "30.00", "zs@example.com")]),
        "approved_at",
        approved,
    );
    app.publish_signed(&body).await;
    assert_held(
        &event_for(&mut app, &unseen, "withdrawal.review_required").await,
        "max_age_secs",
    );
    assert_eq!(app.ledger().await, calls_before, "nothing was sent");
    app.teardown().await;
}

/// The daily counters see a withdrawal however late it comes back: one counted on an
/// earlier day of its window (an upstream duplicate delivered after midnight, say) is
/// not counted again today, so it cannot crowd out the account's other withdrawals.
#[tokio::test]
async fn a_withdrawal_counted_on_an_earlier_day_is_not_counted_again() {
    let app = TestApp::spawn("limits-days", Options::default()).await;
    let store = payout_worker::store::Store::connect(&app.settings.redis)
        .await
        .unwrap();
    let account = unique("acct-days");
    let (a, b, c) = (
        payout_worker::domain::WithdrawalId::parse(&unique("wd-a")).unwrap(),
        payout_worker::domain::WithdrawalId::parse(&unique("wd-b")).unwrap(),
        payout_worker::domain::WithdrawalId::parse(&unique("wd-c")).unwrap(),
    );
    let reserve = |id, days: &[&str]| payout_worker::limits::DailyReservation {
        account_id: &account,
        id,
        days: days.iter().map(|d| d.to_string()).collect(),
        cents: 100,
        max_cents: 1_000_000,
        max_count: 1,
        ttl_secs: 3 * 86_400,
    };
    let (today, yesterday) = ("20261129", "20261128");
    assert_eq!(
        store
            .reserve_daily(&reserve(&a, &[yesterday]))
            .await
            .unwrap(),
        None
    );
    // Again today, its approval day still in its window: already counted.
    assert_eq!(
        store
            .reserve_daily(&reserve(&a, &[today, yesterday]))
            .await
            .unwrap(),
        None
    );
    // So today's one allowed withdrawal is still free for another...
    assert_eq!(
        store.reserve_daily(&reserve(&b, &[today])).await.unwrap(),
        None
    );
    // ...and only one.
    let over = store.reserve_daily(&reserve(&c, &[today])).await.unwrap();
    assert_eq!(over.map(|b| b.limit), Some("account_daily_count"));
    app.teardown().await;
}
