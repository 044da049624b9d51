//! `review list` and `review resolve`: a withdrawal whose outcome could not be resolved
//! is decided by an operator, and a decision that contradicts a final state is refused.

mod common;

use common::*;
use payout_worker::channels::Channels;
use payout_worker::domain::{LegId, WithdrawalId};
use payout_worker::ops::review::{self, ReviewError, Verdict};
use payout_worker::store::Store;

#[tokio::test]
async fn an_operator_resolves_an_unknown_leg_and_the_terminal_event_follows() {
    let (mut app, id, _) = unknown_until_review("review", "21.00").await;

    // The operator acts on what the channel says: the worker is stopped (it would find
    // out by itself once answers come back) and the channel answers again.
    app.stop_workers().await;
    let status = reqwest::Client::new()
        .post(format!("{}/sim/faults", app.sim_url))
        .json(&serde_json::json!({"rate": 0.0}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    let channels = Channels::from_settings(&app.settings).unwrap();
    let store = Store::connect(&app.settings.redis).await.unwrap();
    let listed = review::list(&app.settings, &store).await.unwrap();
    let item = listed
        .iter()
        .find(|i| i.id == id)
        .expect("listed in review");
    let w = item.withdrawal.as_ref().expect("the command is readable");
    assert_eq!(w.amount.to_string(), "21.00");
    let (_, leg) = &item.record.as_ref().unwrap().legs["1"];
    assert_eq!(format!("{:?}", leg.state), "Unknown");

    // The operator checked the channel: the money went out.
    let (wid, leg_id) = (
        WithdrawalId::parse(&id).unwrap(),
        LegId::parse("1").unwrap(),
    );
    let event = review::resolve(
        &app.settings,
        &store,
        &app.publisher,
        &channels,
        &wid,
        &leg_id,
        Verdict::Paid,
        "seen as SUCCESS in the Alipay portal",
    )
    .await
    .unwrap()
    .expect("the withdrawal is complete");
    assert_eq!(event.kind, "withdrawal.succeeded");
    let (terminal, _) = app.terminal_events(1).await;
    assert_eq!(terminal[0]["subject"], id.as_str());
    assert_eq!(terminal[0]["data"]["legs"][0]["status"], "succeeded");
    assert!(!review::list(&app.settings, &store)
        .await
        .unwrap()
        .iter()
        .any(|i| i.id == id));

    // Now final: a contradicting decision is refused.
    let err = review::resolve(
        &app.settings,
        &store,
        &app.publisher,
        &channels,
        &wid,
        &leg_id,
        Verdict::Failed,
        "changed my mind",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ReviewError::Contradicts { .. }), "{err}");
    app.teardown().await;
}
