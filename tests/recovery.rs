//! Recoverability with faults injected for real: lost answers, closed broker
//! connections, Redis flushed and restarted, workers killed. The invariant every test
//! checks in the simulator's ledger: no key paid more than once, nothing lost.

mod common;

use common::*;
use std::collections::HashSet;

fn mixed(i: usize) -> Vec<serde_json::Value> {
    if i.is_multiple_of(2) {
        vec![transfer_leg("1", "6.00", "zs@example.com")]
    } else {
        vec![refund_leg("1", "9.00", &format!("2026{i:08}55"))]
    }
}

async fn publish_batch(app: &TestApp, tag: &str, n: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    for i in 0..n {
        let id = unique(&format!("wd-{tag}-{i}"));
        app.publish_signed(&withdrawal(&id, mixed(i))).await;
        ids.insert(id);
    }
    ids
}

fn assert_each_paid_once(ledger: &[serde_json::Value], expected_keys: usize) {
    assert_eq!(ledger.len(), expected_keys, "{ledger:?}");
    let m = moves(ledger);
    assert!(
        m.values().all(|m| *m == 1),
        "double or missing payout: {m:?}"
    );
}

fn assert_all_succeeded(terminal: &[serde_json::Value]) {
    for e in terminal {
        assert_eq!(e["type"], "withdrawal.succeeded", "{e}");
    }
}

#[tokio::test]
async fn answers_lost_after_the_money_moved_never_cause_a_second_payment() {
    let mut app = TestApp::spawn(
        "lost-answer",
        Options {
            sim_faults: 0.3,
            sim_fault_kinds: vec!["lost_answer"],
            ..Options::default()
        },
    )
    .await;
    app.start_worker();
    let ids = publish_batch(&app, "lost", 60).await;
    let terminal = app.until_terminal(&ids).await;
    assert_all_succeeded(&terminal);
    assert_each_paid_once(&app.ledger().await, 60);
    app.teardown().await;
}

#[tokio::test]
async fn closing_every_broker_connection_mid_run_loses_nothing_and_pays_nothing_twice() {
    let mut app = TestApp::spawn(
        "close-conns",
        Options {
            own_vhost: true,
            sim_latency_ms: 20,
            prefetch: 8,
            ..Options::default()
        },
    )
    .await;
    app.start_worker();
    app.start_worker();
    let ids = publish_batch(&app, "close", 80).await;
    let (first, _) = app.terminal_events(15).await;
    assert!(
        app.close_worker_connections() >= 2,
        "both workers' connections were found and closed"
    );
    let remaining = not_yet_terminal(&ids, &first);
    let rest = app.until_terminal(&remaining).await;
    assert_all_succeeded(&first);
    assert_all_succeeded(&rest);
    assert_each_paid_once(&app.ledger().await, 80);
    app.teardown().await;
}

#[tokio::test]
async fn redis_flushed_then_restarted_empty_mid_run_causes_no_double_payment() {
    let mut app = TestApp::spawn(
        "redis-faults",
        Options {
            own_redis: true,
            sim_latency_ms: 20,
            prefetch: 8,
            ..Options::default()
        },
    )
    .await;
    app.start_worker();
    let ids = publish_batch(&app, "redis", 60).await;
    let (first, _) = app.terminal_events(10).await;
    app.redis.as_ref().unwrap().flush();
    let (second, _) = app.terminal_events(10).await;
    // Down for a while, then back, empty.
    app.redis.as_mut().unwrap().stop();
    let outage = unique("wd-during-outage");
    app.publish_signed(&withdrawal(&outage, mixed(0))).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await; // the outage itself
    app.redis.as_mut().unwrap().resume();
    let seen: Vec<serde_json::Value> = first.iter().chain(&second).cloned().collect();
    let mut remaining = not_yet_terminal(&ids, &seen);
    remaining.insert(outage);
    let rest = app.until_terminal(&remaining).await;
    for e in first.iter().chain(&second).chain(&rest) {
        assert_eq!(e["type"], "withdrawal.succeeded", "{e}");
    }
    assert_each_paid_once(&app.ledger().await, 61);
    app.teardown().await;
}

#[tokio::test]
async fn a_worker_killed_mid_call_and_restarted_pays_nothing_twice_and_loses_nothing() {
    let mut app = TestApp::spawn(
        "sigkill",
        Options {
            sim_latency_ms: 200,
            prefetch: 16,
            ..Options::default()
        },
    )
    .await;
    let mut child = spawn_binary_worker(&app.settings);
    let ids = publish_batch(&app, "kill", 40).await;
    let (first, _) = app.terminal_events(3).await;
    child.kill().await.expect("SIGKILL");
    let _ = child.wait().await;
    // Restart: another process of the real binary.
    let mut again = spawn_binary_worker(&app.settings);
    let remaining = not_yet_terminal(&ids, &first);
    let rest = app.until_terminal(&remaining).await;
    assert_all_succeeded(&rest);
    assert_each_paid_once(&app.ledger().await, 40);
    let _ = again.kill().await;
    app.teardown().await;
}

#[tokio::test]
async fn sigterm_under_load_exits_zero_after_the_grace_period_and_nothing_is_lost() {
    let mut app = TestApp::spawn(
        "grace",
        Options {
            sim_latency_ms: 1500,
            prefetch: 16,
            ..Options::default()
        },
    )
    .await;
    let mut env_settings = app.settings.clone();
    env_settings.amqp.shutdown_grace_ms = 300;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_payout-worker"))
        .arg("run")
        .envs(env_for(&env_settings))
        .env("PAYOUT__AMQP__SHUTDOWN_GRACE_MS", "300")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let ids = publish_batch(&app, "grace", 20).await;
    // Wait until the worker has announced work (so calls are in flight), then stop it.
    let first = app.next_event().await.json();
    assert_eq!(first["type"], "withdrawal.processing");
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    app.start_worker();
    let terminal = app.until_terminal(&ids).await;
    assert_all_succeeded(&terminal);
    assert_each_paid_once(&app.ledger().await, 20);
    app.teardown().await;
}

#[tokio::test]
async fn an_outcome_that_stays_unknown_goes_to_review_never_to_failed() {
    let (app, id, review) = unknown_until_review("unknown", "77.00").await;
    assert_eq!(review["subject"], id.as_str());
    assert_eq!(review["data"]["review_kind"], "outcome_unknown");
    assert_eq!(review["data"]["legs"][0]["status"], "unknown");
    // The money did move once (the simulator carried the transfer out); it is accounted
    // for as frozen-in-review, not released and not paid again.
    let ledger = app.ledger().await;
    assert_eq!(
        moves(&ledger).values().copied().collect::<Vec<_>>(),
        vec![1]
    );
    app.teardown().await;
}

#[tokio::test]
async fn an_error_storm_on_one_channel_pays_everything_once_while_other_channels_flow() {
    let mut app = TestApp::spawn("storm", Options::default()).await;
    // A second simulator, storming: half of all Alipay calls get a 502, "unavailable" or
    // a system error. The bank channel stays on the calm one.
    let mut stormy = app.settings.sim.clone();
    stormy.faults = 0.5;
    stormy.fault_kinds = vec![
        "bad_gateway".into(),
        "unavailable".into(),
        "system_error".into(),
    ];
    stormy.seed = 7;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let storm_url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, mut stopped) = payout_worker::shutdown::channel();
    tokio::spawn(payout_worker::sim::serve(
        payout_worker::sim::SimOptions::from_settings(&stormy).unwrap(),
        listener,
        async move { stopped.wait().await },
    ));
    app.settings.channels.alipay.gateway_url = format!("{storm_url}/gateway.do");
    app.settings.channels.bank.base_url = format!("{}/bank", app.sim_url);
    app.settings.channels.bank.settlement.poll_schedule_ms = vec![100, 200];
    app.start_worker();

    let mut ids = HashSet::new();
    for i in 0..30 {
        let a = unique(&format!("wd-storm-alipay-{i}"));
        app.publish_signed(&withdrawal(&a, mixed(i))).await;
        let b = unique(&format!("wd-storm-bank-{i}"));
        let card = serde_json::json!({"leg_id": "1", "amount": "8.00", "route": "designated", "channel": "bank",
            "payee": {"kind": "bank_card", "name": "Zhang San", "account_no": format!("62220202{i:08}77"), "bank_name": "ICBC"}});
        app.publish_signed(&withdrawal(&b, vec![card])).await;
        ids.insert(a);
        ids.insert(b);
    }
    let terminal = app.until_terminal(&ids).await;
    assert_all_succeeded(&terminal);
    let mut ledger = app.ledger().await;
    ledger.extend(
        reqwest::get(format!("{storm_url}/sim/ledger"))
            .await
            .unwrap()
            .json::<Vec<serde_json::Value>>()
            .await
            .unwrap(),
    );
    assert_each_paid_once(&ledger, 60);
    stop.trigger();
    app.teardown().await;
}

#[tokio::test]
async fn a_worker_started_while_redis_is_down_waits_for_it_instead_of_exiting() {
    let mut app = TestApp::spawn(
        "redis-down-at-start",
        Options {
            own_redis: true,
            ..Options::default()
        },
    )
    .await;
    app.redis.as_mut().unwrap().stop();
    let mut child = spawn_binary_worker(&app.settings);
    let id = unique("wd-redis-late");
    app.publish_signed(&withdrawal(&id, mixed(0))).await;
    // The outage itself: long enough for the worker to have found Redis away.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "the worker exited while Redis was away"
    );
    app.redis.as_mut().unwrap().resume();
    // …and once it is back, the withdrawal is paid.
    let (terminal, _) = app.terminal_events(1).await;
    assert_eq!(terminal[0]["subject"], id.as_str());
    assert_eq!(terminal[0]["type"], "withdrawal.succeeded");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the worker kept running"
    );
    let _ = child.kill().await;
    app.teardown().await;
}
