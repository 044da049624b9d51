//! End to end on the real RabbitMQ and Redis: signed commands in, payouts through the
//! simulator, events out. Each test has its own names (see `common`).

mod common;

use common::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

#[tokio::test]
async fn alipay_refund_and_transfer_are_paid_once_with_succeeded_events() {
    let mut app = TestApp::spawn("paid", Options::default()).await;
    app.start_worker();
    let refund_id = unique("wd-refund");
    let transfer_id = unique("wd-transfer");
    app.publish_signed(&withdrawal(
        &refund_id,
        vec![refund_leg("1", "1000.00", "2026031522001456")],
    ))
    .await;
    app.publish_signed(&withdrawal(
        &transfer_id,
        vec![transfer_leg("1", "500.00", "zhangsan@example.com")],
    ))
    .await;

    let (terminal, other) = app.terminal_events(2).await;
    let by_id: HashMap<&str, &Value> = terminal
        .iter()
        .map(|e| (e["subject"].as_str().unwrap(), e))
        .collect();
    for id in [&refund_id, &transfer_id] {
        let e = by_id[id.as_str()];
        assert_eq!(e["type"], "withdrawal.succeeded", "{e}");
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["id"], format!("{id}:withdrawal.succeeded"));
        assert_eq!(e["data"]["paid_amount"], e["data"]["amount"]);
        let leg = &e["data"]["legs"][0];
        assert!(!leg["channel_reference"].as_str().unwrap().is_empty());
        assert!(leg["completed_at"].is_string());
    }
    assert_eq!(
        by_id[refund_id.as_str()]["data"]["legs"][0]["route"],
        "original"
    );
    assert_eq!(
        by_id[transfer_id.as_str()]["data"]["legs"][0]["route"],
        "designated"
    );
    // Each got its processing event first.
    let processing: HashSet<&str> = other
        .iter()
        .filter(|e| e["type"] == "withdrawal.processing")
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert!(processing.contains(refund_id.as_str()) && processing.contains(transfer_id.as_str()));

    let ledger = app.ledger().await;
    assert_eq!(ledger.len(), 2, "{ledger:?}");
    assert!(moves(&ledger).values().all(|m| *m == 1), "{ledger:?}");
    app.teardown().await;
}

#[tokio::test]
async fn the_same_command_three_times_pays_once_and_yields_one_event_id() {
    let mut app = TestApp::spawn("dup", Options::default()).await;
    app.start_worker();
    let id = unique("wd-dup");
    let body = withdrawal(&id, vec![refund_leg("1", "88.00", "2026031522009999")]);
    for _ in 0..3 {
        app.publish_signed(&body).await;
    }
    let (terminal, _) = app.terminal_events(3).await;
    let ids: HashSet<&str> = terminal.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "{terminal:?}");
    assert_eq!(terminal[0]["type"], "withdrawal.succeeded");
    // Republished byte-for-byte from the outbox: even `time` is identical.
    assert!(terminal.iter().all(|e| e == &terminal[0]));
    let ledger = app.ledger().await;
    assert_eq!(
        moves(&ledger).values().copied().collect::<Vec<_>>(),
        vec![1]
    );
    app.teardown().await;
}

#[tokio::test]
async fn two_workers_pay_two_hundred_withdrawals_each_leg_exactly_once() {
    let mut app = TestApp::spawn(
        "two-workers",
        Options {
            prefetch: 16,
            ..Options::default()
        },
    )
    .await;
    app.start_worker();
    app.start_worker();
    let mut expected = HashSet::new();
    for i in 0..200 {
        let id = unique(&format!("wd-{i}"));
        let legs = if i % 4 == 0 {
            vec![
                refund_leg("1", "10.00", &format!("2026{i:08}12")),
                transfer_leg("2", "5.50", "zs@example.com"),
            ]
        } else if i % 2 == 0 {
            vec![transfer_leg("1", "7.25", "13800138000")]
        } else {
            vec![refund_leg("1", "12.34", &format!("2025{i:08}34"))]
        };
        app.publish_signed(&withdrawal(&id, legs)).await;
        expected.insert(id);
    }
    let (terminal, _) = app.terminal_events(200).await;
    let seen: HashSet<String> = terminal
        .iter()
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected);
    assert!(terminal.iter().all(|e| e["type"] == "withdrawal.succeeded"));
    let ledger = app.ledger().await;
    // 50 two-leg + 150 one-leg withdrawals: 250 keys, each moved exactly once.
    assert_eq!(ledger.len(), 250);
    let m = moves(&ledger);
    assert!(
        m.values().all(|m| *m == 1),
        "double or missing payout: {m:?}"
    );
    app.teardown().await;
}

fn signed_headers(app: &TestApp, body: &[u8], key_id: &str, secret_keys: &str) -> FieldTable {
    let ring = payout_worker::auth::KeyRing::parse(secret_keys).unwrap();
    let mut h = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()));
    h.insert("x-payout-key-id".into(), s(key_id));
    h.insert(
        "x-payout-signature".into(),
        s(&ring.sign(key_id, body).unwrap()),
    );
    let _ = app;
    h
}

#[tokio::test]
async fn bad_inputs_are_dead_lettered_with_codes_and_only_authentic_ones_release_funds() {
    let mut app = TestApp::spawn("bad", Options::default()).await;
    app.start_worker();
    let dev = "dev:dev-secret-do-not-use-in-production";
    let good = |id: &str| withdrawal(id, vec![refund_leg("1", "10.00", "2026031522001456")]);
    let mutate = |id: &str, f: &dyn Fn(&mut Value)| {
        let mut v: Value = serde_json::from_slice(&good(id)).unwrap();
        f(&mut v);
        v.to_string().into_bytes()
    };
    let wrong_types = unique("wd-types");
    let three_places = unique("wd-3dp");
    let mismatch = unique("wd-sum");
    let version = unique("wd-version");
    let unsigned = unique("wd-unsigned");
    let forged = unique("wd-forged");
    let cases: Vec<(&str, Vec<u8>, FieldTable, Option<&str>)> = vec![
        (
            "malformed_json",
            b"{not json".to_vec(),
            FieldTable::default(),
            None,
        ),
        (
            "schema_invalid",
            mutate(&wrong_types, &|v| v["amount"] = serde_json::json!(10)),
            FieldTable::default(),
            Some(&wrong_types),
        ),
        (
            "invalid_amount",
            mutate(&three_places, &|v| {
                v["amount"] = "10.005".into();
                v["legs"][0]["amount"] = "10.005".into();
            }),
            FieldTable::default(),
            Some(&three_places),
        ),
        (
            "amount_mismatch",
            mutate(&mismatch, &|v| v["amount"] = "11.00".into()),
            FieldTable::default(),
            Some(&mismatch),
        ),
        (
            "unsupported_version",
            mutate(&version, &|v| v["version"] = 2.into()),
            FieldTable::default(),
            Some(&version),
        ),
    ];
    let mut expected_codes = Vec::new();
    let mut authentic_ids = HashSet::new();
    for (code, body, _, id) in &cases {
        let headers = signed_headers(&app, body, "dev", dev);
        app.publish_raw(body, headers).await;
        expected_codes.push(code.to_string());
        if let Some(id) = id {
            authentic_ids.insert(id.to_string());
        }
    }
    // Unsigned, and signed with a key the worker does not hold.
    app.publish_raw(&good(&unsigned), FieldTable::default())
        .await;
    let forged_body = good(&forged);
    let forged_headers = signed_headers(&app, &forged_body, "dev", "dev:not-the-real-secret");
    app.publish_raw(&forged_body, forged_headers).await;
    expected_codes.push("signature_invalid".into());
    expected_codes.push("signature_invalid".into());

    // Then a valid one: the worker must still be consuming.
    let ok_id = unique("wd-after-bad");
    app.publish_signed(&good(&ok_id)).await;

    let mut codes = Vec::new();
    for _ in 0..expected_codes.len() {
        let d = app.next_dead().await;
        let code = d.header("x-payout-error-code").expect("error code header");
        assert!(!d.header("x-payout-error").unwrap().is_empty());
        codes.push(code);
    }
    codes.sort();
    expected_codes.sort();
    assert_eq!(codes, expected_codes);

    // Four authentic invalid commands release funds; the valid one succeeds.
    let (terminal, _) = app.terminal_events(5).await;
    let failed: HashSet<String> = terminal
        .iter()
        .filter(|e| e["type"] == "withdrawal.failed")
        .map(|e| e["subject"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(failed, authentic_ids);
    assert!(terminal
        .iter()
        .any(|e| e["subject"] == ok_id.as_str() && e["type"] == "withdrawal.succeeded"));
    for e in terminal.iter().filter(|e| e["type"] == "withdrawal.failed") {
        assert_eq!(e["data"]["paid_amount"], "0.00");
        assert_eq!(e["data"]["unfreeze_all"], true);
    }
    // Nothing else was dead-lettered or announced (forged ids produce no event).
    assert!(app.dead.try_recv().is_err());
    while let Ok(e) = app.events.try_recv() {
        let e = e.json();
        assert_ne!(e["subject"], unsigned.as_str());
        assert_ne!(e["subject"], forged.as_str());
    }
    app.teardown().await;
}

#[tokio::test]
async fn a_refused_refund_fails_and_releases_the_whole_amount() {
    let mut app = TestApp::spawn("refused", Options::default()).await;
    app.start_worker();
    let id = unique("wd-0000");
    app.publish_signed(&withdrawal(
        &id,
        vec![refund_leg("1", "250.00", "20260315220014560000")],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.failed");
    assert_eq!(e["data"]["unfreeze_amount"], "250.00");
    assert_eq!(e["data"]["paid_amount"], "0.00");
    assert_eq!(e["data"]["legs"][0]["failure_code"], "ACQ.TRADE_NOT_EXIST");
    assert!(!e["data"]["legs"][0]["failure_reason"]
        .as_str()
        .unwrap()
        .is_empty());
    assert!(moves(&app.ledger().await).values().all(|m| *m == 0));
    app.teardown().await;
}

#[tokio::test]
async fn a_bounced_transfer_fails_only_after_settlement_and_partial_payment_adds_up() {
    let mut app = TestApp::spawn("bounce", Options::default()).await;
    app.start_worker();
    let id = unique("wd-0001");
    app.publish_signed(&withdrawal(
        &id,
        vec![
            refund_leg("1", "30.00", "2026031522001456"),
            transfer_leg("2", "20.00", "138001380001"),
        ],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_first_paid_second_refused(e, "30.00", "20.00", "TRANSFER_REFUND");
    app.teardown().await;
}

#[tokio::test]
async fn topology_is_idempotent_and_an_unroutable_event_is_an_error_not_a_success() {
    let app = TestApp::spawn("topology", Options::default()).await;
    // Declaring again with the same arguments succeeds (a mismatch would be refused).
    payout_worker::broker::topology::declare(&app.conn, &app.channel, &app.settings.topology)
        .await
        .expect("second declaration");
    // An exchange with nothing bound: mandatory publishing reports the return.
    let lonely = format!("{}.lonely", app.settings.topology.events_exchange);
    app.channel
        .exchange_declare(
            lonely.as_str().into(),
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let err = app
        .publisher
        .publish(
            &lonely,
            "withdrawal.succeeded",
            b"{}",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, payout_worker::broker::PublishError::Returned(_)),
        "{err}"
    );
    let _ = app
        .channel
        .exchange_delete(
            lonely.as_str().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await;
    app.teardown().await;
}

/// A one-leg transfer, parsed, with a store on the app's Redis and a lease owner: what a
/// test needs to set up the state a worker that died would have left.
async fn left_behind(
    app: &TestApp,
    tag: &str,
) -> (
    String,
    Vec<u8>,
    payout_worker::domain::Withdrawal,
    payout_worker::store::Store,
    payout_worker::store::LeaseOwner,
) {
    let id = unique(tag);
    let body = withdrawal(&id, vec![transfer_leg("1", "12.00", "zs@example.com")]);
    let parsed = payout_worker::domain::command::parse_command(&body, &["CNY".into()]).unwrap();
    let store = payout_worker::store::Store::connect(&app.settings.redis)
        .await
        .unwrap();
    (
        id,
        body,
        parsed,
        store,
        payout_worker::store::LeaseOwner::new(),
    )
}

#[tokio::test]
async fn a_stored_outcome_is_republished_byte_for_byte_without_calling_the_channel() {
    // As if a worker stored the outcome and died before publishing it.
    let mut app = TestApp::spawn("outbox", Options::default()).await;
    let (id, body, parsed, store, owner) = left_behind(&app, "wd-outbox").await;
    store
        .claim(&parsed.id, &parsed.digest, &body, &owner, &[])
        .await
        .unwrap();
    let stored = r#"{"specversion":"1.0","id":"X:withdrawal.succeeded","type":"withdrawal.succeeded","subject":"X","marker":"from-the-outbox"}"#
        .replace('X', &id);
    store.finish(&parsed.id, &stored, &owner).await.unwrap();

    app.start_worker();
    app.publish_signed(&body).await;
    let e = app.next_event().await;
    assert_eq!(String::from_utf8(e.body).unwrap(), stored);
    assert!(
        app.ledger().await.is_empty(),
        "the channel was not called again"
    );
    app.teardown().await;
}

#[tokio::test]
async fn a_claim_whose_worker_died_before_processing_is_announced_and_paid_once() {
    // As if a worker claimed a fresh withdrawal (its leg recorded as `sending` in the
    // claim) and died before `processing` was confirmed or the leg sent.
    let mut app = TestApp::spawn("claimed-died", Options::default()).await;
    let (_, body, parsed, store, owner) = left_behind(&app, "wd-claimed").await;
    let sending = payout_worker::store::LegRecord::sending(
        None,
        payout_worker::routing::RouteTaken::Designated,
        payout_worker::domain::ChannelKind::Alipay,
        chrono::Utc::now(),
    );
    let claim = store
        .claim(
            &parsed.id,
            &parsed.digest,
            &body,
            &owner,
            &[(&parsed.legs[0].id, sending)],
        )
        .await
        .unwrap();
    assert!(
        matches!(&claim, payout_worker::store::Claim::Owned(r) if r.fresh && r.legs.len() == 1),
        "{claim:?}"
    );
    store.release(&parsed.id, &owner).await.unwrap();

    app.start_worker();
    app.publish_signed(&body).await;
    let first = app.next_event().await.json();
    assert_eq!(first["type"], "withdrawal.processing", "{first}");
    let done = app.next_event().await.json();
    assert_eq!(done["type"], "withdrawal.succeeded", "{done}");
    assert_eq!(app.ledger().await.len(), 1, "paid exactly once");
    app.teardown().await;
}

/// The happy path of a one-leg withdrawal is three Redis round trips: the account's daily
/// limits, the claim (which records the leg as `sending`), and the leg's answer stored
/// with the terminal event. Counted by the worker's own redis-server.
#[tokio::test]
async fn a_one_leg_withdrawal_takes_three_redis_round_trips() {
    let mut app = TestApp::spawn(
        "round-trips",
        Options {
            own_redis: true,
            ..Options::default()
        },
    )
    .await;
    app.start_worker();
    // The first withdrawal also loads the scripts into this new server.
    app.pays_transfers("rt-warm", 1).await;
    let port = app.redis.as_ref().unwrap().port;
    let calls = || {
        let info = run_ok(std::process::Command::new("redis-cli").args([
            "-p",
            &port.to_string(),
            "INFO",
            "commandstats",
        ]));
        // Commands the worker sends itself (a script's own calls count under their
        // names, so the hash and set commands are left out).
        ["evalsha", "eval", "script", "ping", "zadd"].map(|name| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("cmdstat_{name}:calls=")))
                .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
    };
    let before = calls();
    app.pays_transfers("rt", 10).await;
    let after = calls();
    let spent: Vec<u64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(spent, [30, 0, 0, 0, 0], "evalsha, eval, script, ping, zadd");
    app.teardown().await;
}
