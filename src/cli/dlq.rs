//! `payout-worker dlq list | replay | purge`: the dead-letter queue for ops.
//!
//! Messages are read with `basic.get` and settled one by one: `list` puts every message
//! back; `replay` republishes the chosen ones to the command exchange with their body
//! unchanged (so their signature still verifies) and removes each from the dead queue
//! only after the broker confirmed the republish; `purge` empties the queue after an
//! explicit confirmation.

use super::CliError;
use crate::broker::headers::{self, ERROR_CODE, ERROR_MESSAGE};
use crate::broker::{self, topology, Publisher};
use crate::config::Settings;
use crate::domain::command::named_withdrawal;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use std::time::Duration;

/// Header stamped on a message when the worker dead-letters it (unix seconds).
pub const DEAD_AT: &str = "x-payout-dead-at";

/// Which dead letters a replay takes.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub all: bool,
    pub withdrawal_ids: Vec<String>,
    pub codes: Vec<String>,
}

impl Selection {
    fn takes(&self, letter: &Letter) -> bool {
        self.all
            || letter
                .withdrawal_id
                .as_ref()
                .is_some_and(|id| self.withdrawal_ids.contains(id))
            || letter.code.as_ref().is_some_and(|c| self.codes.contains(c))
    }
}

/// What ops see of one dead letter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Letter {
    pub code: Option<String>,
    pub reason: Option<String>,
    pub withdrawal_id: Option<String>,
    pub age_secs: Option<u64>,
    pub bytes: usize,
}

fn describe(m: &BasicGetMessage, now_secs: u64) -> Letter {
    let props = &m.delivery.properties;
    let dead_at = headers::count(props, DEAD_AT);
    Letter {
        code: code(props),
        reason: headers::text(props, ERROR_MESSAGE),
        withdrawal_id: serde_json::from_slice(&m.delivery.data)
            .ok()
            .and_then(|v| named_withdrawal(&v))
            .map(|id| id.to_string()),
        age_secs: (dead_at > 0).then(|| now_secs.saturating_sub(u64::from(dead_at))),
        bytes: m.delivery.data.len(),
    }
}

/// A letter's code: the worker's `x-payout-error-code`, or, for a message the broker
/// dead-lettered by itself (past the work queue's delivery limit: one that kept killing
/// or disconnecting workers before they could settle it), `broker_` and the broker's
/// reason (`broker_delivery_limit`, `broker_expired`, ...).
fn code(props: &lapin::BasicProperties) -> Option<String> {
    headers::text(props, ERROR_CODE).or_else(|| {
        headers::text(props, headers::FIRST_DEATH_REASON).map(|reason| format!("broker_{reason}"))
    })
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Reads every message currently in the dead queue (unacked, so they stay there until
/// settled), hands each to `settle`, which acks (removes) or nacks (keeps) it.
async fn each_letter<F, Fut>(settings: &Settings, mut settle: F) -> Result<(), CliError>
where
    F: FnMut(BasicGetMessage, Letter) -> Fut,
    Fut: std::future::Future<Output = Result<(), CliError>>,
{
    let conn = broker::connect(&settings.amqp, "payout-worker-dlq").await?;
    let queue = settings.topology.dead_letter.as_str();
    // Every request is bounded: a message too large for any AMQP client to read makes
    // the client close its own connection, and the request would wait for ever.
    let within = Duration::from_millis(settings.amqp.connect_timeout_ms);
    let channel = tokio::time::timeout(within, conn.create_channel())
        .await
        .map_err(|_| unanswered("opening a channel", within))??;
    tokio::time::timeout(
        within,
        topology::declare(&conn, &channel, &settings.topology),
    )
    .await
    .map_err(|_| unanswered("declaring the topology", within))??;
    let count = tokio::time::timeout(
        within,
        channel.queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
    )
    .await
    .map_err(|_| unanswered("counting the dead letters", within))??
    .message_count();
    // Only the messages there now: a nacked message goes back and must not be read twice.
    let mut held = Vec::new();
    for _ in 0..count {
        let got = tokio::time::timeout(
            within,
            channel.basic_get(queue.into(), BasicGetOptions::default()),
        )
        .await;
        let Some(m) = (match got {
            Ok(got) => got?,
            // The connection is gone under a pending get: the message it was sent was
            // larger than a frame (the broker adds its own headers when it dead-letters).
            Err(_) if !conn.status().connected() => {
                return Err(CliError::Other(format!(
                    "the next dead letter in {queue} is larger than the broker's frame size with the broker's own headers added, so no AMQP client can read it: read it with the management API (rabbitmqadmin get queue={queue}) or remove it with `dlq purge`"
                )))
            }
            Err(_) => return Err(unanswered("a get", within)),
        }) else {
            break;
        };
        held.push(m);
    }
    let now = now_secs();
    for m in held {
        let letter = describe(&m, now);
        settle(m, letter).await?;
    }
    let _ = conn.close(200, "dlq done".into()).await;
    Ok(())
}

fn unanswered(what: &str, within: Duration) -> CliError {
    CliError::Other(format!(
        "the broker did not answer {what} within {within:?}"
    ))
}

async fn keep(m: &BasicGetMessage) -> Result<(), CliError> {
    m.delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await?;
    Ok(())
}

pub async fn list(settings: &Settings) -> Result<Vec<Letter>, CliError> {
    let mut letters = Vec::new();
    each_letter(settings, |m, letter| {
        letters.push(letter);
        async move { keep(&m).await }
    })
    .await?;
    Ok(letters)
}

/// Republishes the selected letters; returns how many were replayed.
pub async fn replay(settings: &Settings, selection: &Selection) -> Result<usize, CliError> {
    let conn = broker::connect(&settings.amqp, "payout-worker-dlq-replay").await?;
    let publisher = Publisher::open(&conn, Duration::from_secs(30)).await?;
    let mut replayed = 0;
    each_letter(settings, |m, letter| {
        let take = selection.takes(&letter);
        let publisher = publisher.clone();
        if take {
            replayed += 1;
        }
        async move {
            if !take {
                return keep(&m).await;
            }
            // Body unchanged; the error headers and the broker's bookkeeping go, the
            // signature headers stay.
            let dead_letter_only = [
                ERROR_CODE,
                ERROR_MESSAGE,
                DEAD_AT,
                headers::ORIGINAL_EXPIRATION,
            ];
            let gone: Vec<&str> = dead_letter_only
                .into_iter()
                .chain(headers::BROKER_OWNED.iter().copied())
                .collect();
            let props = headers::without_headers(&m.delivery.properties, &gone);
            match publisher
                .publish(
                    &settings.topology.commands_exchange,
                    topology::APPROVED_ROUTING_KEY,
                    &m.delivery.data,
                    props,
                )
                .await
            {
                Ok(()) => {
                    m.delivery.ack(BasicAckOptions::default()).await?;
                    Ok(())
                }
                Err(e) => {
                    keep(&m).await?;
                    Err(e.into())
                }
            }
        }
    })
    .await?;
    let _ = conn.close(200, "dlq replay done".into()).await;
    Ok(replayed)
}

pub async fn purge(settings: &Settings) -> Result<u32, CliError> {
    let conn = broker::connect(&settings.amqp, "payout-worker-dlq-purge").await?;
    let channel = conn.create_channel().await?;
    let n = channel
        .queue_purge(
            settings.topology.dead_letter.as_str().into(),
            QueuePurgeOptions::default(),
        )
        .await?;
    let _ = conn.close(200, "dlq purge done".into()).await;
    Ok(n)
}
