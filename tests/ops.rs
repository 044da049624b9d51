//! What ops see: metrics that move with the work, and readiness that follows the broker.

mod common;

use common::*;
use std::time::Duration;

async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    let status = r.status().as_u16();
    Some((status, r.text().await.unwrap_or_default()))
}

/// Polls `url` until it answers `status` (a condition, with a deadline: not a sleep).
async fn until_status(url: &str, status: u16) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if get(url).await.map(|(s, _)| s) == Some(status) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{url} never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn counter(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_with_the_work() {
    let mut app = TestApp::spawn("metrics", Options::default()).await;
    let port = free_port();
    app.settings.ops.listen = format!("127.0.0.1:{port}");
    app.start_worker();
    let base = format!("http://127.0.0.1:{port}");
    until_status(&format!("{base}/readyz"), 200).await;
    assert_eq!(get(&format!("{base}/healthz")).await.unwrap().0, 200);

    app.publish_signed(&withdrawal(
        &unique("wd-m-ok"),
        vec![transfer_leg("1", "5.00", "zs@example.com")],
    ))
    .await;
    app.publish_signed(&withdrawal(
        &unique("wd-m-no"),
        vec![refund_leg("1", "5.00", "20260315220014560000")],
    ))
    .await;
    app.publish_signed(b"not json").await;
    app.terminal_events(2).await;
    app.next_dead().await;

    let (status, text) = get(&format!("{base}/metrics")).await.unwrap();
    assert_eq!(status, 200);
    assert!(
        counter(&text, "payout_deliveries_received_total") >= 3.0,
        "{text}"
    );
    assert!(
        counter(
            &text,
            "payout_events_published_total{type=\"withdrawal.succeeded\"}"
        ) >= 1.0
    );
    assert!(
        counter(
            &text,
            "payout_events_published_total{type=\"withdrawal.failed\"}"
        ) >= 1.0
    );
    assert!(counter(&text, "payout_dead_letters_total{code=\"malformed_json\"}") >= 1.0);
    assert!(
        counter(
            &text,
            "payout_leg_outcomes_total{channel=\"alipay\",result=\"failed:ACQ.TRADE_NOT_EXIST\"}"
        ) >= 1.0
    );
    assert!(
        counter(
            &text,
            "payout_channel_call_seconds_count{channel=\"alipay\",operation=\"pay\"}"
        ) >= 2.0
    );
    assert!(counter(&text, "payout_decisions_total{decision=\"ack\"}") >= 2.0);
    // No id ever becomes a label.
    assert!(!text.contains("wd-m-"), "an id leaked into a label");
    promtool_check(&text);
    app.teardown().await;
}

#[tokio::test]
async fn readyz_goes_unready_while_the_broker_is_gone_and_ready_after_the_reconnect() {
    let mut app = TestApp::spawn(
        "readyz",
        Options {
            own_vhost: true,
            ..Options::default()
        },
    )
    .await;
    let port = free_port();
    app.settings.ops.listen = format!("127.0.0.1:{port}");
    app.start_worker();
    let readyz = format!("http://127.0.0.1:{port}/readyz");
    until_status(&readyz, 200).await;

    // Cut the worker off: close its connections and refuse it the vhost until we say so.
    let vhost = app.vhost.clone().unwrap();
    rabbitmqctl(&["clear_permissions", "-p", &vhost, "guest"]);
    assert!(app.close_worker_connections() >= 1);
    until_status(&readyz, 503).await;
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
    until_status(&readyz, 200).await;

    // And it consumes again.
    let id = unique("wd-after-reconnect");
    app.publish_signed(&withdrawal(
        &id,
        vec![transfer_leg("1", "5.00", "zs@example.com")],
    ))
    .await;
    let (terminal, _) = app.terminal_events(1).await;
    assert_eq!(terminal[0]["subject"], id.as_str());
    app.teardown().await;
}

/// `promtool check metrics` (Debian's `prometheus` package; `.ci/run` installs it). Where
/// it is missing outside CI the lint is skipped with a note; in CI it is required.
fn promtool_check(text: &str) {
    use std::io::Write;
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("promtool not installed: metrics lint skipped (CI runs it)");
            return;
        }
        Err(e) => panic!("promtool is required in CI: {e}"),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
