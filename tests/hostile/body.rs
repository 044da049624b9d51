//! Hostile bodies: authentic commands whose content is hostile or malformed (issue 15,
//! rows 5–10). Each is signed with the publishing key, so only the worker's reading of
//! the body stands between it and a payment.

use super::common::*;
use chrono::{Duration, Utc};
use payout_worker::channels::Channels;
use payout_worker::domain::{LegId, WithdrawalId};
use payout_worker::ops::review::{self, ReviewError, Verdict};
use payout_worker::store::Store;
use serde_json::{json, Value};
use std::collections::HashMap;

const CARD: &str = "6222020200112233445";

/// `body` with the value at `path` (object keys, array indexes) replaced.
fn with(body: &[u8], path: &[&str], value: Value) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(body).unwrap();
    let mut at = &mut v;
    for step in path {
        at = match step.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*step],
        };
    }
    *at = value;
    v.to_string().into_bytes()
}

/// `body`'s text with `find` (which must be there) replaced once: for bodies no JSON
/// library writes (repeated keys, a number where a string belongs).
fn edited(body: &[u8], find: &str, replace: &str) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains(find), "{find} not in {text}");
    text.replacen(find, replace, 1).into_bytes()
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

/// A refused command as the outside sees it: its dead letter and its `withdrawal.failed`.
struct Refused {
    code: String,
    error: String,
    failed: Value,
}

/// Publishes each `(withdrawal id, authentic body)` and reads, for each, its dead letter
/// and its `withdrawal.failed` (never anything else about it first), checked against
/// the published schema. Nothing of a refused command reaches a channel.
async fn refused(app: &mut TestApp, bodies: &[(String, Vec<u8>)]) -> HashMap<String, Refused> {
    for (_, body) in bodies {
        app.publish_signed(body).await;
    }
    let mut dead = HashMap::new();
    while dead.len() < bodies.len() {
        let d = app.next_dead().await;
        let text = String::from_utf8_lossy(&d.body).into_owned();
        let (id, _) = bodies
            .iter()
            .find(|(_, b)| b == &d.body)
            .unwrap_or_else(|| panic!("a dead letter not published here: {text}"));
        let code = d.header("x-payout-error-code").expect("a code");
        let error = d.header("x-payout-error").expect("a reason");
        dead.insert(id.clone(), (code, error));
    }
    let schema: Value =
        serde_json::from_str(payout_worker::schemas::get("withdrawal.failed").unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let mut failed = HashMap::new();
    while failed.len() < bodies.len() {
        let e = app.next_event().await.json();
        let id = e["subject"].as_str().unwrap().to_owned();
        assert!(
            dead.contains_key(&id),
            "an event about another withdrawal: {e}"
        );
        assert_eq!(e["type"], "withdrawal.failed", "{e}");
        let errors: Vec<String> = validator.iter_errors(&e).map(|x| x.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}\n{e}");
        assert_eq!(e["data"]["unfreeze_all"], true, "{e}");
        assert_eq!(e["data"]["paid_amount"], "0.00", "{e}");
        failed.insert(id, e);
    }
    assert!(
        app.ledger().await.is_empty(),
        "a refused command reached a channel"
    );
    dead.into_iter()
        .map(|(id, (code, error))| {
            let failed = failed.remove(&id).unwrap();
            assert_eq!(failed["data"]["failure_code"], code.as_str());
            assert_eq!(failed["data"]["failure_reason"], error.as_str());
            (
                id,
                Refused {
                    code,
                    error,
                    failed,
                },
            )
        })
        .collect()
}

/// Row 5: `approved_at` ten years ahead, or 9999-12-31, would dodge the age limit for as
/// long as it lies: held for review naming `max_clock_skew_secs`, never paid. An
/// operator can release it (`failed`); `paid` is refused (no channel has it). One
/// approved within the skew is paid.
#[tokio::test]
async fn an_approval_ahead_of_the_clock_is_held_for_review_never_paid() {
    let mut app = TestApp::spawn("hostile-skew", Options::default()).await;
    app.start_worker();
    let mut held = Vec::new();
    for approved_at in [
        (Utc::now() + Duration::days(3653)).to_rfc3339(),
        "9999-12-31T23:59:59Z".to_owned(),
    ] {
        let id = unique("wd-skew");
        let body = withdrawal(&id, vec![transfer_leg("1", "30.00", "zs@example.com")]);
        app.publish_signed(&with(&body, &["approved_at"], json!(approved_at)))
            .await;
        let review = review_before_any_terminal(&mut app, &id).await;
        assert_eq!(review["data"]["review_kind"], "limit", "{review}");
        let reason = review["data"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("`max_clock_skew_secs`") && reason.contains("in the future"),
            "{reason}"
        );
        let legs = review["data"]["legs"].as_array().unwrap();
        assert!(
            legs.iter()
                .all(|l| l["status"] == "review" && l["sends"] == 0),
            "{review}"
        );
        held.push(id);
    }
    assert!(app.ledger().await.is_empty(), "a held withdrawal was paid");

    // Within the skew (a minute ahead): paid as usual.
    let fine = unique("wd-skew-fine");
    let body = withdrawal(&fine, vec![transfer_leg("1", "12.00", "zs@example.com")]);
    let ahead = (Utc::now() + Duration::seconds(60)).to_rfc3339();
    app.publish_signed(&with(&body, &["approved_at"], json!(ahead)))
        .await;
    event_for(&mut app, &fine, "withdrawal.succeeded").await;

    // The operator: `paid` needs a channel that paid it; `failed` releases it.
    let store = Store::connect(&app.settings.redis).await.unwrap();
    let channels = Channels::from_settings(&app.settings).unwrap();
    let id = WithdrawalId::parse(&held[1]).unwrap();
    let leg = LegId::parse("1").unwrap();
    let decide = |verdict| {
        review::resolve(
            &app.settings,
            &store,
            &app.publisher,
            &channels,
            &id,
            &leg,
            verdict,
            "approved_at lies in the year 9999",
        )
    };
    let err = decide(Verdict::Paid).await.unwrap_err();
    assert!(matches!(err, ReviewError::Refused(_)), "{err}");
    let released = decide(Verdict::Failed)
        .await
        .unwrap()
        .expect("the withdrawal is complete");
    assert_eq!(released.kind, "withdrawal.failed");
    let e = event_for(&mut app, &held[1], "withdrawal.failed").await;
    assert_eq!(e["data"]["unfreeze_amount"], "30.00");
    assert_eq!(e["data"]["paid_amount"], "0.00");
    let ledger = app.ledger().await;
    assert_eq!(ledger.len(), 1, "only the one within the skew: {ledger:?}");
    assert_eq!(ledger[0]["key"], leg_key(&fine, "1"));
    app.teardown().await;
}

/// Row 6: a top-up paid after its refund was approved, or in the future beyond the
/// skew, is impossible: refused `invalid_timestamp`, funds released, nothing paid.
#[tokio::test]
async fn a_top_up_paid_after_approval_or_in_the_future_is_refused() {
    let mut app = TestApp::spawn("hostile-paid-at", Options::default()).await;
    app.start_worker();
    let later = |id: &str| {
        let body = withdrawal(id, vec![refund_leg("1", "9.00", "2026031522001456")]);
        with(
            &body,
            &["legs", "0", "source", "paid_at"],
            json!("2030-03-15T10:00:00Z"),
        )
    };
    let future = |id: &str| {
        // Both ahead of the clock, the top-up before the approval: the top-up's time
        // alone is impossible.
        let body = withdrawal(id, vec![refund_leg("1", "9.00", "2026031522001456")]);
        let body = with(
            &body,
            &["approved_at"],
            json!((Utc::now() + Duration::hours(3)).to_rfc3339()),
        );
        with(
            &body,
            &["legs", "0", "source", "paid_at"],
            json!((Utc::now() + Duration::hours(2)).to_rfc3339()),
        )
    };
    let (a, b) = (unique("wd-paid-later"), unique("wd-paid-future"));
    let bodies = [(a.clone(), later(&a)), (b.clone(), future(&b))];
    let out = refused(&mut app, &bodies).await;
    for (id, r) in &out {
        assert_eq!(r.code, "invalid_timestamp", "{id}: {}", r.error);
        assert!(r.error.contains("legs[0].source.paid_at"), "{}", r.error);
        assert_eq!(r.failed["data"]["unfreeze_amount"], "9.00");
    }
    assert!(
        out[&a].error.contains("after approved_at"),
        "{}",
        out[&a].error
    );
    assert!(out[&b].error.contains("in the future"), "{}", out[&b].error);
    app.teardown().await;
}

/// Row 7: a card number sent as a JSON number (or where an amount or a currency
/// belongs) appears nowhere: not in the worker's log, not in `x-payout-error`, not in
/// the `withdrawal.failed` sent to the funds service. The worker here is the real
/// binary, its JSON log captured.
#[tokio::test]
async fn a_card_number_in_a_refused_command_leaks_nowhere() {
    let mut app = TestApp::spawn("hostile-leak", Options::default()).await;
    let worker = LoggedWorker::start(&app.settings, "payout-hostile-leak");

    let card_leg = json!({"leg_id": "1", "amount": "10.00", "route": "designated", "channel": "bank",
        "payee": {"kind": "bank_card", "name": "Zhang San", "account_no": CARD, "bank_name": "ICBC"}});
    let (number, amount, currency) = (
        unique("wd-leak-number"),
        unique("wd-leak-amount"),
        unique("wd-leak-currency"),
    );
    let bodies = [
        (
            number.clone(),
            edited(
                &withdrawal(&number, vec![card_leg.clone()]),
                &format!("\"account_no\":\"{CARD}\""),
                &format!("\"account_no\":{CARD}"),
            ),
        ),
        (
            amount.clone(),
            with(
                &withdrawal(&amount, vec![card_leg.clone()]),
                &["legs", "0", "amount"],
                json!(CARD),
            ),
        ),
        (
            currency.clone(),
            with(
                &withdrawal(&currency, vec![card_leg]),
                &["currency"],
                json!(CARD),
            ),
        ),
    ];
    let out = refused(&mut app, &bodies).await;
    let log = worker.stop_and_read_log().await;

    assert_eq!(out[&number].code, "schema_invalid");
    assert_eq!(
        out[&number].error,
        "legs[0].payee.account_no must be a string, not a number"
    );
    assert_eq!(out[&amount].code, "invalid_amount");
    assert_eq!(out[&currency].code, "unsupported_currency");
    for (id, r) in &out {
        assert!(!r.error.contains(CARD), "{id}: x-payout-error {}", r.error);
        assert!(
            !r.failed.to_string().contains(CARD),
            "{id}: withdrawal.failed {}",
            r.failed
        );
    }
    let dead_lettered = log
        .lines()
        .filter(|l| l.contains("dead-lettering command"))
        .count();
    assert_eq!(dead_lettered, 3, "the refusals are logged:\n{log}");
    assert!(!log.contains(CARD), "the log holds the card number:\n{log}");
    app.teardown().await;
}

/// Row 8: an amount the published schema forbids (a leading zero) is refused
/// `invalid_amount`, on a leg or the withdrawal.
#[tokio::test]
async fn an_amount_with_a_leading_zero_is_refused() {
    let mut app = TestApp::spawn("hostile-leading-zero", Options::default()).await;
    app.start_worker();
    let (leg, total) = (unique("wd-zero-leg"), unique("wd-zero-total"));
    let bodies = [
        (
            leg.clone(),
            withdrawal(&leg, vec![transfer_leg("1", "01.00", "zs@example.com")]),
        ),
        (
            total.clone(),
            with(
                &withdrawal(&total, vec![transfer_leg("1", "1.00", "zs@example.com")]),
                &["amount"],
                json!("01.00"),
            ),
        ),
    ];
    let out = refused(&mut app, &bodies).await;
    assert!(out.values().all(|r| r.code == "invalid_amount"));
    assert!(out[&leg].error.starts_with("legs[0].amount: not a decimal"));
    assert!(out[&total].error.starts_with("amount: not a decimal"));
    // The valid total is repeated for the funds service; "01.00" is not.
    assert_eq!(out[&leg].failed["data"]["unfreeze_amount"], "1.00");
    assert_eq!(out[&total].failed["data"]["unfreeze_amount"], Value::Null);
    app.teardown().await;
}

/// Row 9: a body repeating a key (where the last one would make a payable command, at
/// the top level or inside a payee) is refused `schema_invalid`; its funds are released
/// without reading any of its ambiguous fields (a top-level amount written twice is not
/// repeated in the event; one written once is).
#[tokio::test]
async fn a_repeated_json_key_is_refused() {
    let mut app = TestApp::spawn("hostile-repeated-key", Options::default()).await;
    app.start_worker();
    let (top, payee) = (unique("wd-repeat-top"), unique("wd-repeat-payee"));
    let bodies = [
        (
            top.clone(),
            edited(
                &withdrawal(&top, vec![transfer_leg("1", "5.00", "zs@example.com")]),
                "\"amount\":\"5.00\"",
                "\"amount\":\"9.00\",\"amount\":\"5.00\"",
            ),
        ),
        (
            payee.clone(),
            edited(
                &withdrawal(&payee, vec![transfer_leg("1", "5.00", "zs@example.com")]),
                "\"account_no\":\"zs@example.com\"",
                "\"account_no\":\"zs@example.com\",\"account_no\":\"other@example.com\"",
            ),
        ),
    ];
    let out = refused(&mut app, &bodies).await;
    for (id, r) in &out {
        assert_eq!(r.code, "schema_invalid", "{id}: {}", r.error);
        assert!(r.error.contains("repeats a key"), "{}", r.error);
        let once = if *id == top {
            Value::Null
        } else {
            json!("5.00")
        };
        assert_eq!(r.failed["data"]["amount"], once, "{id}");
        assert_eq!(r.failed["data"]["unfreeze_amount"], once, "{id}");
        assert_eq!(r.failed["data"]["unfreeze_all"], true);
    }
    app.teardown().await;
}

/// Row 10: a refused command's `withdrawal.failed` never repeats an amount that is not
/// a valid one ("-1", "1e3", "+1.00" all read as decimals): null, with `unfreeze_all`.
#[tokio::test]
async fn a_refused_command_repeats_no_invalid_amount() {
    let mut app = TestApp::spawn("hostile-unfreeze", Options::default()).await;
    app.start_worker();
    let bodies: Vec<(String, Vec<u8>)> = ["-1", "1e3", "+1.00"]
        .iter()
        .map(|amount| {
            let id = unique("wd-unfreeze");
            let body = withdrawal(&id, vec![transfer_leg("1", "1.00", "zs@example.com")]);
            let body = with(&body, &["amount"], json!(amount));
            (id, body)
        })
        .collect();
    let out = refused(&mut app, &bodies).await;
    for (id, r) in &out {
        assert_eq!(r.code, "invalid_amount", "{id}");
        assert_eq!(r.failed["data"]["amount"], Value::Null, "{}", r.failed);
        assert_eq!(
            r.failed["data"]["unfreeze_amount"],
            Value::Null,
            "{}",
            r.failed
        );
    }
    app.teardown().await;
}
