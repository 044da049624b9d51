//! Every delivery ends in exactly one of these decisions, carried out here and only here.
//! The reliability story in one place:
//! - `Ack` only after the outcome is stored and every event it causes is confirmed;
//! - `Defer` re-publishes the message (body unchanged) to a delay queue with its sealed
//!   counts (confirmed), then acks;
//! - `DeadLetter` publishes the message (body unchanged) plus error headers to
//!   `payout.dead` (confirmed), then acks;
//! - every copy is built by [`headers::republished`], so it fits in one frame and keeps
//!   no property that would make the broker expire or reorder it;
//! - if a re-publish fails, or for `Requeue`, the delivery is nacked back to the queue.
//!
//! An ack or nack that fails (or returns `false`) is logged: the broker will redeliver,
//! which is safe because every step before it is idempotent.

use super::{History, Worker};
use crate::auth::{SEAL_HEADER, SIGNATURE_HEADER};
use crate::broker::headers::{self, long_string};
use crate::broker::topology::{delay_queue, delay_queue_for};
use crate::domain::Rejection;
use crate::ops::METRICS;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::AMQPValue;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ack,
    /// Come back later through the delay queues (pending settlement, unknown outcome,
    /// Redis unavailable).
    Defer {
        reason: String,
        /// The wait wanted (a channel's polling schedule); `None`: back off by the
        /// counter's value.
        delay_ms: Option<u64>,
        /// The header that counts this kind of wait: `x-payout-attempt` for the work
        /// itself, `x-payout-lease-waits` for waiting on another worker's lease (which
        /// must not use up the work's retry budget).
        counter: &'static str,
    },
    /// Never processable: keep it, byte-for-byte, in the dead-letter queue.
    DeadLetter(Rejection),
    /// Give it back to the work queue now.
    Requeue {
        reason: String,
    },
}

/// A reason as a dead letter carries it: at most 1,000 characters.
fn bounded(message: &str) -> &str {
    match message.char_indices().nth(1000) {
        Some((end, _)) => &message[..end],
        None => message,
    }
}

impl Worker {
    pub(crate) async fn settle(&self, delivery: &Delivery, history: &History, decision: Decision) {
        let t = &self.settings.topology;
        let max_header_bytes = self.settings.amqp.max_header_bytes;
        METRICS
            .decisions
            .with_label_values(&[match &decision {
                Decision::Ack => "ack",
                Decision::Defer { .. } => "defer",
                Decision::DeadLetter(_) => "dead_letter",
                Decision::Requeue { .. } => "requeue",
            }])
            .inc();
        let republished = match &decision {
            Decision::Ack => Ok(()),
            Decision::Requeue { .. } => Err("requeue requested".to_owned()),
            Decision::DeadLetter(why) => {
                tracing::warn!(code = why.code.as_str(), reason = %why.message, "dead-lettering command");
                METRICS
                    .dead_letters
                    .with_label_values(&[why.code.as_str()])
                    .inc();
                let mut add = vec![
                    (headers::ERROR_CODE, long_string(why.code.as_str())),
                    (headers::ERROR_MESSAGE, long_string(bounded(&why.message))),
                    (
                        crate::cli::dlq::DEAD_AT,
                        AMQPValue::LongLongInt(chrono::Utc::now().timestamp()),
                    ),
                ];
                if let Some(e) = delivery.properties.expiration() {
                    add.push((headers::ORIGINAL_EXPIRATION, long_string(e.as_str())));
                }
                let props = headers::republished(&delivery.properties, &add, max_header_bytes);
                self.publisher
                    .publish(
                        &t.dead_letter,
                        delivery.routing_key.as_str(),
                        &delivery.data,
                        props,
                    )
                    .await
                    .map_err(|e| e.to_string())
            }
            Decision::Defer {
                reason,
                delay_ms,
                counter,
            } => {
                let deferrals = if *counter == headers::LEASE_WAITS {
                    history.lease_waits
                } else {
                    history.attempt
                };
                let (queue, ms) = match delay_ms {
                    Some(wanted) => delay_queue_for(t, *wanted),
                    None => delay_queue(t, deferrals),
                };
                METRICS
                    .deferrals
                    .with_label_values(&[&ms.to_string()])
                    .inc();
                tracing::info!(%reason, deferrals = deferrals + 1, delay_ms = ms, "deferring command");
                // The counter the decision names is the one that goes up: a lease wait
                // must not touch the work's own attempt count (which schedules polls and
                // raises the outcome-unknown review).
                let mut next = *history;
                #[cfg(not(feature = "broken-lease-wait-resets-attempt"))]
                if *counter == headers::LEASE_WAITS {
                    next.lease_waits += 1;
                } else {
                    next.attempt += 1;
                }
                // Deliberately broken build (the old behaviour): every deferral writes
                // the attempt counter, so a lease wait sets it back to 1.
                #[cfg(feature = "broken-lease-wait-resets-attempt")]
                {
                    next.attempt = deferrals + 1;
                }
                // The broker's delivery count belongs to the delivery, not to the message:
                // the re-published copy starts its own (our counters say it was seen).
                // The counts are sealed, so only a worker can have written them.
                let signature = headers::text(&delivery.properties, SIGNATURE_HEADER);
                let seal = next.sealed(&self.seal, signature.as_deref().unwrap_or_default());
                let props = headers::republished(
                    &delivery.properties,
                    &[
                        (
                            headers::ATTEMPT,
                            AMQPValue::LongLongInt(next.attempt.into()),
                        ),
                        (
                            headers::LEASE_WAITS,
                            AMQPValue::LongLongInt(next.lease_waits.into()),
                        ),
                        (SEAL_HEADER, long_string(&seal)),
                    ],
                    max_header_bytes,
                );
                self.publisher
                    .publish("", &queue, &delivery.data, props)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        // The deliberately broken build acked on arrival (see `worker::consume`).
        #[cfg(feature = "broken-ack-before-publish")]
        let result: Result<bool, lapin::Error> = {
            let _ = republished;
            Ok(true)
        };
        #[cfg(not(feature = "broken-ack-before-publish"))]
        let result = match republished {
            Ok(()) => delivery.ack(BasicAckOptions::default()).await,
            Err(why) => {
                tracing::warn!(%why, "could not settle the delivery; returning it to the queue");
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
            }
        };
        if !matches!(result, Ok(true)) {
            METRICS.acks_failed.inc();
        }
        match result {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                "ack/nack was not delivered (channel closed); the broker will redeliver"
            ),
            Err(e) => tracing::warn!(error = %e, "ack/nack failed; the broker will redeliver"),
        }
    }
}
