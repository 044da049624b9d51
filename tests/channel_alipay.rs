//! Alipay merchant-side refusals through the whole worker, on the real RabbitMQ and
//! Redis (issue 14 item 9): our own quota used up is not the user's fault, so the
//! withdrawal is neither failed nor released; it is retried under the same key and then
//! parked in review with the funds frozen.

mod common;

use common::*;
use std::time::Duration;

/// The simulator answers a transfer to a payee ending in `0002` with
/// `EXCEED_LIMIT_DM_AMOUNT` (our daily quota) on every attempt.
#[tokio::test]
async fn our_daily_quota_used_up_keeps_the_funds_frozen_and_ends_in_review() {
    let mut app = TestApp::spawn("alipay-quota", Options::default()).await;
    // A short retry budget, so the review comes within the test's wait.
    app.settings.retry.max_deferrals = 3;
    app.start_worker();
    let id = unique("wd-ali-quota");
    app.publish_signed(&withdrawal(
        &id,
        vec![transfer_leg("1", "300.00", "13800130002")],
    ))
    .await;
    let review = review_before_any_terminal(&mut app, &id).await;
    assert_ne!(review["data"]["review_kind"], "limit", "{review}");
    let leg = &review["data"]["legs"][0];
    assert_ne!(leg["status"], "failed", "{review}");
    assert!(
        leg["sends"].as_u64().unwrap() >= 2,
        "retried under the same key before the review: {review}"
    );
    assert!(
        leg["note"]
            .as_str()
            .unwrap_or_default()
            .contains("EXCEED_LIMIT_DM_AMOUNT"),
        "the leg says why: {review}"
    );
    // Refused before a transfer existed: nothing moved.
    let moved = channel_moves(&app, "alipay").await;
    assert_eq!(moved.get(&leg_key(&id, "1")).copied().unwrap_or(0), 0);
    // No terminal event follows the review: the funds stay frozen for a person.
    assert_no_terminal_event(&mut app, &id, Duration::from_millis(1500)).await;
    app.teardown().await;
}
