//! The broker objects of CONTRACT.md §1, declared idempotently with the same arguments
//! every time (a mismatch is the broker's PRECONDITION_FAILED, which we surface).
//!
//! - `payout.commands` (topic) → `payout.withdrawals.approved` (quorum): the work queue,
//!   with an explicit delivery limit whose overflow dead-letters to `payout.dead`.
//! - `payout.events` (topic), plus an optional audit queue bound to `#`.
//! - `payout.dead` (fanout) → `payout.dead` (quorum queue): kept byte-for-byte.
//! - `payout.delay.<ms>ms` (quorum, TTL): deferred commands wait here and dead-letter
//!   straight back into the work queue through the default exchange.

use crate::config::TopologySettings;
use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, Connection, ExchangeKind};

pub const APPROVED_ROUTING_KEY: &str = "withdrawal.approved";

/// The delivery limit of queues that must never drop or dead-letter a message for being
/// returned often: the largest value the `x-delivery-limit` argument takes (a signed
/// 32-bit integer), accepted by 3.x and 4.x alike (4.x also reads -1 as "no limit";
/// 3.x does not).
pub const UNLIMITED_DELIVERIES: i32 = i32::MAX;

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()))
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// The delay queue for the n-th deferral (0-based); the last tier repeats.
pub fn delay_queue(t: &TopologySettings, deferral: u32) -> (String, u64) {
    let i = (deferral as usize).min(t.delay_tiers_ms.len() - 1);
    let ms = t.delay_tiers_ms[i];
    (format!("{}.{ms}ms", t.delay_prefix), ms)
}

/// The shortest delay queue that waits at least `wanted_ms` (the longest if none does).
pub fn delay_queue_for(t: &TopologySettings, wanted_ms: u64) -> (String, u64) {
    let i = t
        .delay_tiers_ms
        .iter()
        .position(|ms| *ms >= wanted_ms)
        .unwrap_or(t.delay_tiers_ms.len() - 1);
    delay_queue(t, i as u32)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) -> lapin::Result<()> {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
}

/// Declares a queue whose `x-delivery-limit` this build added, on a channel of its own:
/// a queue an older build declared without the argument makes the broker refuse the
/// declaration (`PRECONDITION_FAILED`, which closes the channel). The queue exists and
/// works then, so the worker goes on, and says what to do about it.
async fn limited_queue(conn: &Connection, name: &str, args: FieldTable) -> lapin::Result<()> {
    let ch = conn.create_channel().await?;
    match ch.queue_declare(name.into(), durable(), args).await {
        Ok(_) => {
            let _ = ch.close(200, "declared".into()).await;
            Ok(())
        }
        Err(e) if older_declaration(&e) => {
            tracing::warn!(queue = name, error = %e,
                "queue declared by an older build without x-delivery-limit: RabbitMQ 4.x gives it a limit of 20; set a policy with delivery-limit, or delete the queue once empty so it is declared again");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn older_declaration(e: &lapin::Error) -> bool {
    let text = e.to_string();
    text.contains("PRECONDITION_FAILED") && text.contains("x-delivery-limit")
}

pub async fn declare(conn: &Connection, ch: &Channel, t: &TopologySettings) -> lapin::Result<()> {
    exchange(ch, &t.commands_exchange, ExchangeKind::Topic).await?;
    exchange(ch, &t.events_exchange, ExchangeKind::Topic).await?;
    exchange(ch, &t.dead_letter, ExchangeKind::Fanout).await?;

    // Every quorum queue names its delivery limit: RabbitMQ 4.0 gives a queue without
    // one a limit of 20, after which a returned message is dropped (or dead-lettered).
    // A dead letter must stay until an operator removes it, however often it is
    // listed (`dlq list` reads by get and return), so its queue's limit is as high as
    // the broker takes, explicitly.
    limited_queue(
        conn,
        &t.dead_letter,
        table(&[
            ("x-queue-type", s("quorum")),
            ("x-delivery-limit", AMQPValue::LongInt(UNLIMITED_DELIVERIES)),
        ]),
    )
    .await?;
    ch.queue_bind(
        t.dead_letter.as_str().into(),
        t.dead_letter.as_str().into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;

    ch.queue_declare(
        t.work_queue.as_str().into(),
        durable(),
        table(&[
            ("x-queue-type", s("quorum")),
            (
                "x-delivery-limit",
                AMQPValue::LongInt(t.delivery_limit as i32),
            ),
            ("x-dead-letter-exchange", s(&t.dead_letter)),
            // at-least-once dead-lettering needs reject-publish overflow.
            ("x-dead-letter-strategy", s("at-least-once")),
            ("x-overflow", s("reject-publish")),
        ]),
    )
    .await?;
    ch.queue_bind(
        t.work_queue.as_str().into(),
        t.commands_exchange.as_str().into(),
        APPROVED_ROUTING_KEY.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;

    for deferral in 0..t.delay_tiers_ms.len() as u32 {
        let (name, ms) = delay_queue(t, deferral);
        limited_queue(
            conn,
            &name,
            table(&[
                ("x-queue-type", s("quorum")),
                ("x-message-ttl", AMQPValue::LongLongInt(ms as i64)),
                // Never consumed (messages leave by TTL), so never returned; explicit
                // all the same, against 4.x's default of 20.
                ("x-delivery-limit", AMQPValue::LongInt(UNLIMITED_DELIVERIES)),
                ("x-dead-letter-exchange", s("")),
                ("x-dead-letter-routing-key", s(&t.work_queue)),
                ("x-dead-letter-strategy", s("at-least-once")),
                ("x-overflow", s("reject-publish")),
            ]),
        )
        .await?;
    }

    if !t.events_audit_queue.is_empty() {
        ch.queue_declare(
            t.events_audit_queue.as_str().into(),
            durable(),
            table(&[
                ("x-queue-type", s("quorum")),
                (
                    "x-max-length",
                    AMQPValue::LongLongInt(t.events_audit_max_length.into()),
                ),
                ("x-overflow", s("drop-head")),
            ]),
        )
        .await?;
        ch.queue_bind(
            t.events_audit_queue.as_str().into(),
            t.events_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    #[test]
    fn deferrals_walk_the_tiers_and_stay_on_the_last() {
        let t = Settings::defaults().topology;
        assert_eq!(delay_queue(&t, 0), ("payout.delay.200ms".into(), 200));
        assert_eq!(delay_queue(&t, 4).1, 300000);
        assert_eq!(delay_queue(&t, 99).1, 300000);
        assert_eq!(delay_queue_for(&t, 1).1, 200);
        assert_eq!(delay_queue_for(&t, 1000).1, 1000);
        assert_eq!(delay_queue_for(&t, 1001).1, 5000);
        assert_eq!(delay_queue_for(&t, 10_000_000).1, 300000);
    }
}
