//! `payout-worker demo`: the simulator, the worker and a stream of sample withdrawals in
//! one process, printing each event as the funds service would receive it. The quickest
//! way to see payouts flow against local RabbitMQ and Redis.

use super::{publish_command, run_sim, CliError};
use crate::broker::{self, Publisher};
use crate::config::Settings;
use crate::shutdown;
use chrono::{Duration as Days, Utc};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use std::time::Duration;

pub async fn run(settings: Settings, count: u64, interval_ms: u64) -> Result<(), CliError> {
    let (trigger, shutdown) = shutdown::channel();
    {
        let trigger = trigger.clone();
        tokio::spawn(async move {
            shutdown::os_signal().await;
            trigger.trigger();
        });
    }
    let sim = {
        let settings = settings.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move { run_sim(&settings, async move { stop.wait().await }).await })
    };
    let worker = tokio::spawn(crate::worker::run(settings.clone(), shutdown.clone()));

    let conn = broker::connect(&settings.amqp, "payout-worker-demo").await?;
    let publisher = Publisher::open(&conn, Duration::from_secs(30)).await?;
    crate::broker::topology::declare(&conn, publisher.channel(), &settings.topology).await?;
    let tail = conn.create_channel().await?;
    let queue = tail
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    tail.queue_bind(
        queue.name().clone(),
        settings.topology.events_exchange.as_str().into(),
        "#".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    let mut events = tail
        .basic_consume(
            queue.name().clone(),
            "demo-tail".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let run_id = Utc::now().format("%Y%m%d%H%M%S").to_string();
    let mut published = 0u64;
    let mut terminal = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    let mut stop = shutdown.clone();
    loop {
        tokio::select! {
            _ = stop.wait() => break,
            _ = tick.tick(), if count == 0 || published < count => {
                let body = sample(&run_id, published);
                publish_command(&settings, &publisher, &settings.auth.publish_key_id, &body).await?;
                published += 1;
            }
            Some(Ok(delivery)) = events.next() => {
                let _ = delivery.ack(BasicAckOptions::default()).await;
                if let Ok(event) = serde_json::from_slice::<Value>(&delivery.data) {
                    let kind = event["type"].as_str().unwrap_or("?");
                    if kind != crate::events::PROCESSING {
                        terminal += 1;
                    }
                    println!("{}", describe(&event));
                }
                if count > 0 && terminal >= count {
                    trigger.trigger();
                }
            }
        }
    }
    let _ = conn.close(200, "demo done".into()).await;
    trigger.trigger();
    let _ = worker.await;
    let _ = sim.await;
    println!("demo: published {published}, saw {terminal} final events");
    Ok(())
}

/// One line per event, masked like the logs.
fn describe(e: &Value) -> String {
    let d = &e["data"];
    let id = d["withdrawal_id"].as_str().unwrap_or("?");
    let legs: Vec<String> = d["legs"]
        .as_array()
        .map(|legs| {
            legs.iter()
                .map(|l| {
                    let extra = l["failure_code"]
                        .as_str()
                        .or(l["channel_reference"].as_str())
                        .unwrap_or("");
                    format!(
                        "{} {} via {} {} {}",
                        l["leg_id"].as_str().unwrap_or("?"),
                        l["amount"].as_str().unwrap_or("?"),
                        l["channel"].as_str().unwrap_or("?"),
                        l["route"].as_str().unwrap_or("?"),
                        extra
                    )
                    .trim_end()
                    .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    let money = match (d["paid_amount"].as_str(), d["unfreeze_amount"].as_str()) {
        (Some(p), Some(u)) => format!(" paid {p} unfreeze {u}"),
        (Some(p), None) => format!(" paid {p}"),
        _ => format!(" amount {}", d["amount"].as_str().unwrap_or("?")),
    };
    format!(
        "EVENT {:<27} {id}{money} [{}]",
        e["type"].as_str().unwrap_or("?"),
        legs.join("; ")
    )
}

/// A rotating mix: refunds, transfers, two-leg withdrawals, and the simulator's
/// business failures (`0000` refused at once, `0001` bounced after acceptance).
pub fn sample(run_id: &str, n: u64) -> Vec<u8> {
    let now = Utc::now();
    let paid_at = (now - Days::days(30)).to_rfc3339();
    let refund = |leg: &str, amount: &str, txn: &str| {
        json!({"leg_id": leg, "amount": amount, "route": "original", "channel": "alipay",
               "source": {"topup_id": format!("tp-{run_id}-{n}-{leg}"), "channel_txn_id": txn, "paid_at": paid_at}})
    };
    let transfer = |leg: &str, amount: &str, account: &str| {
        json!({"leg_id": leg, "amount": amount, "route": "designated", "channel": "alipay",
               "payee": {"kind": "alipay", "name": "Zhang San", "account_no": account}})
    };
    let (amount, legs) = match n % 5 {
        0 => (
            "120.00",
            vec![refund("1", "120.00", &format!("2026{n:012}7"))],
        ),
        1 => (
            "58.30",
            vec![transfer("1", "58.30", "zhangsan@example.com")],
        ),
        2 => ("99.99", vec![refund("1", "99.99", "20260315220014560000")]),
        3 => (
            "300.00",
            vec![
                refund("1", "200.00", &format!("2027{n:012}7")),
                transfer("2", "100.00", "13800138000"),
            ],
        ),
        _ => ("45.00", vec![transfer("1", "45.00", "1380013000001")]),
    };
    json!({
        "type": "withdrawal.approved", "version": 1,
        "withdrawal_id": format!("demo-{run_id}-{n}"), "account_id": format!("acct-{run_id}-{n}"),
        "verified_name": "Zhang San", "currency": "CNY", "amount": amount,
        "approved_at": now.to_rfc3339(), "legs": legs,
    })
    .to_string()
    .into_bytes()
}
