//! Issue 14: money stays correct when Redis loses state, when time passes a window or a
//! limit in between, when operators act, and when the broker's delivery counts run out.
//! Each test sets up one reproduced sequence against the real RabbitMQ, a redis-server
//! of its own where it empties Redis, and the simulator; each failed on 682cdf7.

mod common;

use chrono::{DateTime, Months, Utc};
use common::*;
use lapin::options::{BasicGetOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use payout_worker::auth::{KeyRing, KEY_ID_HEADER, SIGNATURE_HEADER};
use payout_worker::broker::headers;
use payout_worker::channels::Channels;
use payout_worker::domain::command::parse_command;
use payout_worker::domain::{ChannelKind, LegId, WithdrawalId};
use payout_worker::ops::review::{self, ReviewError, Verdict};
use payout_worker::routing::{RouteTaken, Rules};
use payout_worker::store::{LeaseOwner, LegRecord, LegState, Store};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::time::Duration;

const OWNER: &str = "Zhang San";

fn card() -> Value {
    json!({"kind": "bank_card", "name": OWNER, "account_no": "6222020200112233445", "bank_name": "ICBC"})
}

/// A one-leg withdrawal approved at `approved_at`.
fn command(id: &str, approved_at: DateTime<Utc>, leg: Value) -> Vec<u8> {
    json!({
        "type": "withdrawal.approved", "version": 1, "withdrawal_id": id,
        "account_id": format!("acct-{id}"), "verified_name": OWNER, "currency": "CNY",
        "amount": leg["amount"].clone(), "approved_at": approved_at.to_rfc3339(), "legs": [leg],
    })
    .to_string()
    .into_bytes()
}

/// An Alipay refund of a top-up paid at `paid_at`, with the fallback card or without.
fn alipay_refund(amount: &str, paid_at: DateTime<Utc>, fallback: bool) -> Value {
    let mut leg = json!({"leg_id": "1", "amount": amount, "route": "original", "channel": "alipay",
        "source": {"topup_id": "tp-1", "channel_txn_id": "2026011522001456", "paid_at": paid_at.to_rfc3339()}});
    if fallback {
        leg["fallback_payee"] = card();
    }
    leg
}

fn bank_transfer(leg_id: &str, amount: &str) -> Value {
    json!({"leg_id": leg_id, "amount": amount, "route": "designated", "channel": "bank", "payee": card()})
}

/// Polls the simulator's ledger until `key` is there with `moves` (0 while a payout
/// settles, 1 once the money moved); returns its line.
async fn until_ledger(app: &TestApp, key: &str, moves: u64) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let line = app
            .ledger()
            .await
            .into_iter()
            .find(|l| l["key"] == key && l["moves"] == moves);
        if let Some(line) = line {
            return line;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key} never at {moves} moves in the ledger: {:?}",
            app.ledger().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_sim_faults(app: &TestApp, rate: f64) {
    let status = reqwest::Client::new()
        .post(format!("{}/sim/faults", app.sim_url))
        .json(&json!({"rate": rate}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
}

/// The ledger's lines for one key: (channel, moves).
async fn moved_by_channel(app: &TestApp, key: &str) -> Vec<(String, u64)> {
    app.ledger()
        .await
        .into_iter()
        .filter(|l| l["key"] == key)
        .map(|l| {
            (
                l["channel"].as_str().unwrap().to_owned(),
                l["moves"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Reads events until one about `id` of type `kind`; panics on a terminal event of
/// another type for it, or on a review of a kind in `never`.
async fn until_event(app: &mut TestApp, id: &str, kind: &str, never: &[&str]) -> Value {
    loop {
        let e = app.next_event().await.json();
        if e["subject"] != id {
            continue;
        }
        if e["type"] == "withdrawal.review_required" {
            let k = e["data"]["review_kind"].as_str().unwrap_or("");
            assert!(!never.contains(&k), "unexpected {k} review: {e}");
        }
        if e["type"] == kind {
            return e;
        }
        assert!(
            !matches!(
                e["type"].as_str(),
                Some("withdrawal.succeeded" | "withdrawal.failed")
            ),
            "wanted {kind}, got {e}"
        );
    }
}

/// Case 1: an Alipay refund is sent and paid, its answer is lost, Redis comes back
/// empty, and the top-up's original-route window closes before the redelivery. The
/// leg is re-planned from the command (`approved_at`), found paid at Alipay, and never
/// paid again through the bank (with a fallback card) nor refused and released
/// (without one).
#[tokio::test]
async fn a_refund_paid_before_redis_was_emptied_and_its_window_closed_is_not_paid_again() {
    let mut app = TestApp::spawn(
        "replan",
        Options {
            own_redis: true,
            sim_faults: 1.0,
            sim_fault_kinds: vec!["lost_answer"],
            ..Options::default()
        },
    )
    .await;
    app.settings.retry.in_process_budget_ms = 100;
    let rules = Rules::from_settings(&app.settings.rules);
    // The window closes a few seconds from now: open at approval, closed at redelivery.
    let closes = Utc::now() + chrono::Duration::seconds(6);
    let paid_at = closes.checked_sub_months(Months::new(11)).unwrap();
    let deadline = rules
        .deadline(ChannelKind::Alipay, None, paid_at)
        .expect("a deadline");
    assert!(deadline > Utc::now() && deadline <= closes, "{deadline}");
    let approved_at = Utc::now();
    let with_card = unique("wd-replan-card");
    let without = unique("wd-replan-nocard");
    app.start_worker();
    app.publish_signed(&command(
        &with_card,
        approved_at,
        alipay_refund("100.00", paid_at, true),
    ))
    .await;
    app.publish_signed(&command(
        &without,
        approved_at,
        alipay_refund("50.00", paid_at, false),
    ))
    .await;
    // Both refunds go out and are paid; their answers (and every query's) are lost.
    for id in [&with_card, &without] {
        until_ledger(&app, &leg_key(id, "1"), 1).await;
    }
    app.stop_workers().await;
    app.redis.as_ref().unwrap().flush();
    set_sim_faults(&app, 0.0).await;
    let wait = (deadline - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    assert!(Utc::now() > deadline, "the window has closed");

    app.start_worker();
    let ids = [with_card.clone(), without.clone()].into_iter().collect();
    let terminal = app.until_terminal(&ids).await;
    for (id, amount) in [(&with_card, "100.00"), (&without, "50.00")] {
        let e = terminal
            .iter()
            .find(|e| e["subject"] == id.as_str())
            .unwrap();
        assert_eq!(e["type"], "withdrawal.succeeded", "{e}");
        assert_eq!(e["data"]["paid_amount"], amount, "{e}");
        assert_eq!(e["data"]["legs"][0]["channel"], "alipay", "{e}");
        assert_eq!(
            moved_by_channel(&app, &leg_key(id, "1")).await,
            vec![("alipay".to_owned(), 1)],
            "paid once, through Alipay only"
        );
    }
    app.teardown().await;
}

/// Case 2: a bank payout still settling loses its record, and the redelivery comes
/// after `approved_at` is older than `max_age_secs`. The limit is not applied to a
/// withdrawal a channel has seen: the leg is found pending and followed to its end.
#[tokio::test]
async fn a_settling_payout_whose_record_was_lost_past_the_age_limit_is_followed_not_held() {
    let mut app = TestApp::spawn(
        "agelimit",
        Options {
            own_redis: true,
            settle_ms: 8_000,
            ..Options::default()
        },
    )
    .await;
    app.settings.limits.max_age_secs = 4;
    let approved_at = Utc::now();
    let id = unique("wd-agelimit");
    app.start_worker();
    app.publish_signed(&command(&id, approved_at, bank_transfer("1", "200.00")))
        .await;
    until_ledger(&app, &leg_key(&id, "1"), 0).await;
    app.stop_workers().await;
    app.redis.as_ref().unwrap().flush();
    // Past the limit: older than 4 whole seconds.
    let aged = approved_at + chrono::Duration::seconds(5);
    let wait = (aged - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;

    app.start_worker();
    let e = until_event(&mut app, &id, "withdrawal.succeeded", &["limit"]).await;
    assert_eq!(e["data"]["paid_amount"], "200.00");
    assert_eq!(
        moved_by_channel(&app, &leg_key(&id, "1")).await,
        vec![("bank".to_owned(), 1)]
    );
    app.teardown().await;
}

/// What a test needs to act as an operator: the store, the channels and a command.
async fn operator(app: &TestApp) -> (Store, Channels) {
    (
        Store::connect(&app.settings.redis).await.unwrap(),
        Channels::from_settings(&app.settings).unwrap(),
    )
}

async fn resolve(
    app: &TestApp,
    store: &Store,
    channels: &Channels,
    id: &str,
    verdict: Verdict,
) -> Result<Option<payout_worker::events::Event>, ReviewError> {
    review::resolve(
        &app.settings,
        store,
        &app.publisher,
        channels,
        &WithdrawalId::parse(id).unwrap(),
        &LegId::parse("1").unwrap(),
        verdict,
        "checked by the test",
    )
    .await
}

/// Case 3: an operator cannot contradict the machine. A withdrawal not in review, a leg
/// the channel is settling, a leg a worker holds, `paid` for a leg never sent: all
/// refused, with the reason. `failed` on a leg held by a limit (never sent) releases it.
#[tokio::test]
async fn an_operator_verdict_is_refused_unless_the_leg_needs_a_person_and_the_channel_agrees() {
    let mut app = TestApp::spawn(
        "operator",
        Options {
            settle_ms: 60_000,
            ..Options::default()
        },
    )
    .await;
    app.settings.limits.max_leg_amount = rust_decimal::Decimal::new(100_000, 2);
    app.start_worker();
    let (store, channels) = operator(&app).await;

    // In flight: the bank accepted it and is settling it.
    let settling = unique("wd-op-settling");
    app.publish_signed(&command(
        &settling,
        Utc::now(),
        bank_transfer("1", "200.00"),
    ))
    .await;
    until_ledger(&app, &leg_key(&settling, "1"), 0).await;
    for verdict in [Verdict::Failed, Verdict::Paid] {
        let err = resolve(&app, &store, &channels, &settling, verdict)
            .await
            .unwrap_err();
        assert!(matches!(err, ReviewError::Refused(_)), "{err}");
    }

    // Held by a limit before anything was sent.
    let held = unique("wd-op-held");
    app.publish_signed(&command(&held, Utc::now(), bank_transfer("1", "5000.00")))
        .await;
    let e = until_event(&mut app, &held, "withdrawal.review_required", &[]).await;
    assert_eq!(e["data"]["review_kind"], "limit");
    // A worker (another owner) holds the lease: refused while it does.
    let wid = WithdrawalId::parse(&held).unwrap();
    let someone = LeaseOwner::new();
    // (The worker gives its own lease back just after publishing the review.)
    let deadline = tokio::time::Instant::now() + WAIT;
    while !store.take_lease(&wid, &someone).await.unwrap() {
        assert!(tokio::time::Instant::now() < deadline, "lease never free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = resolve(&app, &store, &channels, &held, Verdict::Failed)
        .await
        .unwrap_err();
    assert!(matches!(err, ReviewError::Busy), "{err}");
    store.release(&wid, &someone).await.unwrap();
    // Never sent: it cannot have been paid.
    let err = resolve(&app, &store, &channels, &held, Verdict::Paid)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ReviewError::Refused(why) if why.contains("never sent")),
        "{err}"
    );
    let event = resolve(&app, &store, &channels, &held, Verdict::Failed)
        .await
        .unwrap()
        .expect("the withdrawal is complete");
    assert_eq!(event.kind, "withdrawal.failed");
    let e = until_event(&mut app, &held, "withdrawal.failed", &[]).await;
    assert_eq!(e["data"]["unfreeze_amount"], "5000.00");
    // Run again (as after a publish that failed): the stored outcome goes out again.
    let again = resolve(&app, &store, &channels, &held, Verdict::Failed)
        .await
        .unwrap()
        .expect("the stored outcome");
    assert_eq!(again.id, event.id);
    assert!(app
        .ledger()
        .await
        .iter()
        .all(|l| l["key"] != leg_key(&held, "1")));
    app.teardown().await;
}

/// Case 3, with the channel as the judge: a leg whose outcome stayed unknown past its
/// cap, which the channel in fact paid, cannot be released; `paid` is recorded.
#[tokio::test]
async fn an_operator_cannot_release_a_leg_the_channel_paid() {
    let (mut app, id, e) = unknown_until_review("operator-paid", "21.00").await;
    assert_eq!(e["data"]["review_kind"], "outcome_unknown");
    app.stop_workers().await;
    set_sim_faults(&app, 0.0).await;
    let (store, channels) = operator(&app).await;
    let err = resolve(&app, &store, &channels, &id, Verdict::Failed)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ReviewError::Refused(why) if why.contains("paid this leg")),
        "{err}"
    );
    let event = resolve(&app, &store, &channels, &id, Verdict::Paid)
        .await
        .unwrap()
        .expect("complete");
    assert_eq!(event.kind, "withdrawal.succeeded");
    app.teardown().await;
}

fn signed_headers(app: &TestApp, body: &[u8], extra: &[(&str, AMQPValue)]) -> FieldTable {
    let keys = KeyRing::parse(app.settings.auth.hmac_keys.expose_secret()).unwrap();
    let mut h = FieldTable::default();
    h.insert(KEY_ID_HEADER.into(), headers::long_string("dev"));
    h.insert(
        SIGNATURE_HEADER.into(),
        headers::long_string(&keys.sign("dev", body).unwrap()),
    );
    for (k, v) in extra {
        h.insert((*k).into(), v.clone());
    }
    h
}

/// Case 4: waiting for another worker's lease counts lease waits, and leaves the
/// work's attempt count (which schedules polls and the outcome-unknown review) alone.
#[tokio::test]
async fn a_lease_wait_counts_itself_and_keeps_the_attempt_count() {
    let mut app = TestApp::spawn("leasewait", Options::default()).await;
    // One long tier: the deferred copy stays in the delay queue for the test to read.
    app.settings.topology.delay_tiers_ms = vec![600_000];
    payout_worker::broker::topology::declare(&app.conn, &app.channel, &app.settings.topology)
        .await
        .unwrap();
    let id = unique("wd-leasewait");
    let body = withdrawal(&id, vec![transfer_leg("1", "12.00", "zs@example.com")]);
    let parsed = parse_command(&body, &["CNY".into()]).unwrap();
    let store = Store::connect(&app.settings.redis).await.unwrap();
    let someone = LeaseOwner::new();
    store
        .claim(&parsed.id, &parsed.digest, &body, &someone, &[])
        .await
        .unwrap();
    app.start_worker();
    // The counts as a worker left them: sealed with the workers' own key.
    let mut h = signed_headers(
        &app,
        &body,
        &[
            (headers::ATTEMPT, AMQPValue::LongLongInt(5)),
            (headers::LEASE_WAITS, AMQPValue::LongLongInt(2)),
        ],
    );
    let seal =
        payout_worker::auth::Seal::parse(app.settings.auth.worker_keys.expose_secret()).unwrap();
    let signature = KeyRing::parse(app.settings.auth.hmac_keys.expose_secret())
        .unwrap()
        .sign("dev", &body)
        .unwrap();
    h.insert(
        payout_worker::auth::SEAL_HEADER.into(),
        headers::long_string(&seal.seal(&signature, &[5, 2])),
    );
    app.publish_raw(&body, h).await;
    let (queue, _) = payout_worker::broker::topology::delay_queue(&app.settings.topology, 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    let deferred = loop {
        if let Some(m) = app
            .channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            break m.delivery.properties;
        }
        assert!(tokio::time::Instant::now() < deadline, "never deferred");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(headers::count(&deferred, headers::LEASE_WAITS), 3);
    assert_eq!(headers::count(&deferred, headers::ATTEMPT), 5);
    assert!(app.ledger().await.is_empty());
    app.teardown().await;
}

/// Sets up what a worker left: the command claimed with these leg records, no lease.
async fn left_with(app: &TestApp, body: &[u8], legs: &[(&str, LegRecord)]) -> Store {
    let parsed = parse_command(body, &["CNY".into()]).unwrap();
    let store = Store::connect(&app.settings.redis).await.unwrap();
    let owner = LeaseOwner::new();
    let ids: Vec<LegId> = legs.iter().map(|(l, _)| LegId::parse(l).unwrap()).collect();
    let records: Vec<(&LegId, LegRecord)> = ids
        .iter()
        .zip(legs.iter().map(|(_, r)| r.clone()))
        .collect();
    store
        .claim(&parsed.id, &parsed.digest, body, &owner, &records)
        .await
        .unwrap();
    store.release(&parsed.id, &owner).await.unwrap();
    store
}

fn record(state: LegState, channel: ChannelKind, route: RouteTaken) -> LegRecord {
    let mut r = LegRecord::sending(None, route, channel, Utc::now());
    r.state = state;
    r
}

/// Case 5: the channel accepted a leg (pending) and now says it never saw its key. A
/// resend would rely on the channel never forgetting a key mid-settlement: the leg
/// goes to a person instead, and nothing is paid.
#[tokio::test]
async fn a_pending_leg_the_channel_no_longer_knows_goes_to_review_not_resent() {
    let mut app = TestApp::spawn("forgotten", Options::default()).await;
    let id = unique("wd-forgotten");
    let body = command(&id, Utc::now(), bank_transfer("1", "30.00"));
    left_with(
        &app,
        &body,
        &[(
            "1",
            record(LegState::Pending, ChannelKind::Bank, RouteTaken::Designated),
        )],
    )
    .await;
    app.start_worker();
    app.publish_signed(&body).await;
    let e = until_event(&mut app, &id, "withdrawal.review_required", &[]).await;
    assert_eq!(e["data"]["review_kind"], "leg", "{e}");
    assert!(app.ledger().await.is_empty(), "nothing resent");
    app.teardown().await;
}

/// Case 6: a delivery the broker is about to dead-letter for its delivery count is
/// reported for review before it is, and every queue names its delivery limit.
#[tokio::test]
async fn a_delivery_near_the_brokers_limit_raises_review_and_every_queue_names_its_limit() {
    let mut app = TestApp::spawn(
        "deliverylimit",
        Options {
            own_vhost: true,
            ..Options::default()
        },
    )
    .await;
    let id = unique("wd-deliverylimit");
    let body = withdrawal(&id, vec![transfer_leg("1", "12.00", "zs@example.com")]);
    app.publish_signed(&body).await;
    // Returned to the queue until the broker's own count is one short of its limit (a
    // count a publisher writes is not honoured: `tests/hostile`).
    let near = app.settings.topology.delivery_limit - 1;
    let queue = app.settings.topology.work_queue.clone();
    let mut returned = 0;
    while returned < near {
        let Some(m) = app
            .channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
        else {
            continue;
        };
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
        returned += 1;
    }
    app.start_worker();
    let e = until_event(&mut app, &id, "withdrawal.review_required", &[]).await;
    assert_eq!(e["data"]["review_kind"], "delivery_limit", "{e}");
    until_event(&mut app, &id, "withdrawal.succeeded", &[]).await;

    let vhost = app.vhost.clone().unwrap();
    let listing = rabbitmqctl(&[
        "list_queues",
        "-p",
        &vhost,
        "name",
        "arguments",
        "--quiet",
        "--no-table-headers",
    ]);
    let t = &app.settings.topology;
    let mut ours = vec![t.work_queue.clone(), t.dead_letter.clone()];
    for i in 0..t.delay_tiers_ms.len() as u32 {
        ours.push(payout_worker::broker::topology::delay_queue(t, i).0);
    }
    for q in ours {
        let line = listing
            .lines()
            .find(|l| l.split('\t').next() == Some(q.as_str()))
            .unwrap_or_else(|| panic!("{q} not listed: {listing}"));
        assert!(line.contains("x-delivery-limit"), "{q}: {line}");
    }
    app.teardown().await;
}

/// Case 7: a withdrawal in review keeps its record however long the person takes; one
/// that settles by itself after its review was raised leaves the review list.
#[tokio::test]
async fn a_review_keeps_its_record_and_a_withdrawal_that_settles_by_itself_leaves_the_list() {
    let (mut app, id, e) = unknown_until_review("reviewkeep", "21.00").await;
    assert_eq!(e["data"]["review_kind"], "outcome_unknown");
    let store = Store::connect(&app.settings.redis).await.unwrap();
    let key = store.key(&WithdrawalId::parse(&id).unwrap());
    let client = redis::Client::open(app.settings.redis.urls[0].expose_secret()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(ttl, -1, "kept until the review is resolved");

    set_sim_faults(&app, 0.0).await;
    until_event(&mut app, &id, "withdrawal.succeeded", &[]).await;
    let listed = review::list(&app.settings, &store).await.unwrap();
    assert!(!listed.iter().any(|i| i.id == id), "off the review list");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0, "retention runs again once it has its outcome");
    app.teardown().await;
}

/// Case 8: a leg that needs a person is reported when it does, not when the other legs
/// have settled (a bank leg can take days).
#[tokio::test]
async fn a_legs_review_is_raised_while_other_legs_still_settle() {
    let mut app = TestApp::spawn(
        "legreview",
        Options {
            settle_ms: 60_000,
            ..Options::default()
        },
    )
    .await;
    let id = unique("wd-legreview");
    let body = json!({
        "type": "withdrawal.approved", "version": 1, "withdrawal_id": id,
        "account_id": format!("acct-{id}"), "verified_name": OWNER, "currency": "CNY",
        "amount": "30.00", "approved_at": Utc::now().to_rfc3339(),
        "legs": [bank_transfer("1", "10.00"), bank_transfer("2", "20.00")],
    })
    .to_string()
    .into_bytes();
    let mut stuck = record(LegState::Review, ChannelKind::Bank, RouteTaken::Designated);
    stuck.reason = Some("returned by the destination bank".into());
    left_with(&app, &body, &[("1", stuck)]).await;
    app.start_worker();
    app.publish_signed(&body).await;
    let e = until_event(&mut app, &id, "withdrawal.review_required", &[]).await;
    assert_eq!(e["data"]["review_kind"], "leg", "{e}");
    assert_eq!(
        moved_by_channel(&app, &leg_key(&id, "2")).await,
        vec![("bank".to_owned(), 0)],
        "leg 2 accepted and still settling when the review came"
    );
    app.teardown().await;
}

/// `redis.wait_replicas`: a leg's request leaves only once a replica has its `sending`
/// record; with no replica to acknowledge, nothing is paid.
#[tokio::test]
async fn with_wait_replicas_a_request_leaves_only_once_a_replica_has_the_record() {
    let mut app = TestApp::spawn(
        "waitreplicas",
        Options {
            own_redis: true,
            ..Options::default()
        },
    )
    .await;
    app.settings.redis.wait_replicas = 1;
    app.settings.redis.wait_timeout_ms = 200;
    app.start_worker();
    let id = unique("wd-noreplica");
    app.publish_signed(&withdrawal(
        &id,
        vec![transfer_leg("1", "12.00", "zs@example.com")],
    ))
    .await;
    until_event(&mut app, &id, "withdrawal.processing", &[]).await;
    // The worker asks for the replica again and again (this test is the only one in
    // its process that waits for replicas), and the request never leaves meanwhile.
    let waits = || {
        payout_worker::ops::METRICS
            .redis_round_trips
            .with_label_values(&["wait"])
            .get()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while waits() < 3 {
        assert!(tokio::time::Instant::now() < deadline, "never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(app.ledger().await.is_empty(), "nothing left unreplicated");
    let store = Store::connect(&app.settings.redis).await.unwrap();
    let wid = WithdrawalId::parse(&id).unwrap();
    let rec = store.load(&wid).await.unwrap().expect("claimed");
    assert_eq!(rec.legs["1"].1.state, LegState::Sending);

    // A replica arrives: the same withdrawal is paid, once.
    let primary = app.redis.as_ref().unwrap().port;
    let _replica = OwnRedis::start_with(|_| {
        vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.to_string(),
        ]
    });
    let e = until_event(&mut app, &id, "withdrawal.succeeded", &[]).await;
    assert_eq!(e["data"]["paid_amount"], "12.00");
    assert_eq!(
        moved_by_channel(&app, &leg_key(&id, "1")).await,
        vec![("alipay".to_owned(), 1)]
    );
    app.teardown().await;
}

/// An upgrade from a build that declared the dead-letter and delay queues without a
/// delivery limit: the broker refuses the new arguments, and the worker still starts,
/// works, and dead-letters into the old queue.
#[tokio::test]
async fn queues_declared_without_a_delivery_limit_by_an_older_build_still_work() {
    use lapin::options::QueueDeclareOptions;
    let mut app = TestApp::spawn(
        "oldqueues",
        Options {
            own_vhost: true,
            // The queue is replaced below: this test reads it itself.
            tap_dead: false,
            ..Options::default()
        },
    )
    .await;
    // Replace the dead-letter queue with one as 682cdf7 declared it.
    let t = app.settings.topology.clone();
    app.channel
        .queue_delete(t.dead_letter.as_str().into(), Default::default())
        .await
        .unwrap();
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), headers::long_string("quorum"));
    app.channel
        .queue_declare(
            t.dead_letter.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            quorum,
        )
        .await
        .unwrap();
    app.channel
        .queue_bind(
            t.dead_letter.as_str().into(),
            t.dead_letter.as_str().into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    app.start_worker();
    app.publish_raw(b"{not json", FieldTable::default()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let dead = loop {
        if let Some(m) = app
            .channel
            .basic_get(
                t.dead_letter.as_str().into(),
                BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            break m.delivery.properties;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        headers::text(&dead, headers::ERROR_CODE).as_deref(),
        Some("signature_invalid")
    );
    let id = unique("wd-oldqueues");
    app.publish_signed(&withdrawal(
        &id,
        vec![transfer_leg("1", "12.00", "zs@example.com")],
    ))
    .await;
    until_event(&mut app, &id, "withdrawal.succeeded", &[]).await;
    app.teardown().await;
}

/// Case 2, with two legs: a replay past the age limit where one leg reached its channel
/// (paid by a worker whose records were lost) and the other never left. The paid leg is
/// followed; the other is held for a person and never sent, as the limit demands.
#[tokio::test]
async fn past_a_limit_only_the_legs_a_channel_has_seen_are_followed() {
    let mut app = TestApp::spawn("limitlegs", Options::default()).await;
    app.settings.limits.max_age_secs = 600;
    let id = unique("wd-limitlegs");
    let body = json!({
        "type": "withdrawal.approved", "version": 1, "withdrawal_id": id,
        "account_id": format!("acct-{id}"), "verified_name": OWNER, "currency": "CNY",
        "amount": "30.00", "approved_at": (Utc::now() - chrono::Duration::hours(1)).to_rfc3339(),
        "legs": [transfer_leg("1", "10.00", "zs@example.com"), transfer_leg("2", "20.00", "zs2@example.com")],
    })
    .to_string()
    .into_bytes();
    // Leg 1 was paid before (its worker's records are gone).
    let w = parse_command(&body, &["CNY".into()]).unwrap();
    let order = payout_worker::routing::order_for(&w, &w.legs[0], RouteTaken::Designated).unwrap();
    let channels = Channels::from_settings(&app.settings).unwrap();
    assert!(matches!(
        channels.pay(&order).await,
        payout_worker::channels::ChannelOutcome::Succeeded { .. }
    ));
    app.start_worker();
    app.publish_signed(&body).await;
    let e = until_event(&mut app, &id, "withdrawal.review_required", &["limit"]).await;
    assert_eq!(e["data"]["review_kind"], "leg", "{e}");
    let legs = e["data"]["legs"].as_array().unwrap();
    assert_eq!(legs[0]["status"], "succeeded", "{e}");
    assert_eq!(legs[1]["status"], "review", "{e}");
    assert_eq!(
        moved_by_channel(&app, &leg_key(&id, "1")).await,
        vec![("alipay".to_owned(), 1)]
    );
    assert!(
        moved_by_channel(&app, &leg_key(&id, "2")).await.is_empty(),
        "the unseen leg was never sent"
    );
    app.teardown().await;
}
