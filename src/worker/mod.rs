//! The worker: consumes `withdrawal.approved`, pays, publishes, acks.
//!
//! Concurrency: the broker pushes at most `prefetch` unacked deliveries, and a semaphore
//! with as many permits travels with each spawned task, so in-flight work is bounded by
//! the same number. Shutdown: stop consuming, wait until every permit is back (all
//! in-flight deliveries settled), close, exit.

mod decision;
pub mod history;
mod legs;
mod polling;
pub mod probe;
pub mod retry;
mod step;

pub use decision::Decision;
pub use history::History;

use crate::auth::{KeyRing, Seal};
use crate::broker::{self, topology, BrokerError, PublishError, Publisher};
use crate::channels::{ChannelSetupError, Channels};
use crate::config::Settings;
use crate::ops::{Readiness, METRICS};
use crate::routing::Rules;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError};
use futures_util::StreamExt;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
    #[error("publishing `withdrawal.processing`: {0}")]
    ProcessingUnconfirmed(String),
    #[error("the withdrawal's record vanished from Redis mid-step")]
    StateLost,
    #[error("other workers kept changing the same leg")]
    Contended,
    #[error("inconsistent state: {0}")]
    Inconsistent(&'static str),
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Channels(#[from] ChannelSetupError),
    #[error("the broker cancelled our consumer (queue deleted or node lost)")]
    ConsumerCancelled,
    #[error("the publishing channel was closed")]
    PublishingClosed,
    #[error("the broker connection is no longer open")]
    ConnectionLost,
    #[error("the broker did not finish setting up the session within {0:?}")]
    SetupTimeout(Duration),
    #[error("secrets: {0}")]
    Keys(String),
}

/// Everything one step needs. Cheap to clone: the heavy parts are shared.
#[derive(Clone)]
pub struct Worker {
    settings: Arc<Settings>,
    keys: Arc<KeyRing>,
    seal: Arc<Seal>,
    rules: Arc<Rules>,
    retry: retry::RetryPolicy,
    store: Store,
    channels: Channels,
    publisher: Publisher,
}

impl Worker {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        channels: Channels,
        publisher: Publisher,
    ) -> Result<Self, WorkerError> {
        let keys = KeyRing::parse(settings.auth.hmac_keys.expose_secret())
            .map_err(|e| WorkerError::Keys(format!("auth.hmac_keys: {e}")))?;
        let seal = Seal::parse(settings.auth.worker_keys.expose_secret())
            .map_err(|e| WorkerError::Keys(format!("auth.worker_keys: {e}")))?;
        Ok(Self {
            seal: Arc::new(seal),
            rules: Arc::new(Rules::from_settings(&settings.rules)),
            retry: retry::RetryPolicy::from_settings(&settings.retry),
            keys: Arc::new(keys),
            settings,
            store,
            channels,
            publisher,
        })
    }
}

/// Runs the worker until `shutdown`; returns once in-flight work has drained.
pub async fn run(settings: Settings, mut shutdown: Shutdown) -> Result<(), WorkerError> {
    let settings = Arc::new(settings);
    settings
        .check_production(
            std::env::var(crate::config::ENVIRONMENT_VAR)
                .ok()
                .as_deref(),
        )
        .map_err(|e| WorkerError::Keys(e.to_string()))?;
    if settings.uses_dev_hmac_key() {
        tracing::warn!(
            "accepting commands signed with the DEVELOPMENT HMAC key: never in production"
        );
    }
    let channels = Channels::from_settings(&settings)?;
    // Redis may be down when the worker starts (restarted with it, say): wait for it
    // rather than exit, and stay stoppable meanwhile.
    let mut wait = Duration::from_millis(200);
    let store = loop {
        match Store::connect(&settings.redis).await {
            Ok(store) => break store,
            Err(e) => {
                METRICS.redis_errors.inc();
                tracing::warn!(error = %e, retry_in = ?wait, "Redis unavailable at start; waiting");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.wait() => return Ok(()),
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    };
    let ready = Readiness::default();
    if !settings.ops.listen.is_empty() {
        match crate::ops::serve(&settings.ops.listen, ready.clone(), store.clone()).await {
            Ok(addr) => tracing::info!(%addr, "ops endpoint: /metrics /healthz /readyz"),
            Err(e) => {
                tracing::warn!(listen = %settings.ops.listen, error = %e, "ops endpoint not started")
            }
        }
    }
    const FIRST_BACKOFF: Duration = Duration::from_millis(200);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut consumed = false;
        let session = consume(
            &settings,
            &store,
            &channels,
            &mut shutdown,
            &ready,
            &mut consumed,
        )
        .await;
        ready.set(false);
        if consumed {
            // The broker took us and the session broke later (a delivery the client
            // could not read, a closed connection): come back at once. Backing off is
            // for a broker that does not answer at all.
            backoff = FIRST_BACKOFF;
        }
        match session {
            Ok(()) => return Ok(()),
            Err(e) if shutdown.is_triggered() => {
                tracing::warn!(error = %e, "stopped with an error during shutdown");
                return Ok(());
            }
            Err(e) => {
                METRICS.broker_reconnects.inc();
                tracing::warn!(error = %e, retry_in = ?backoff, "broker session ended; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.wait() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// One broker session: connect, declare, consume until shutdown or the session breaks.
async fn consume(
    settings: &Arc<Settings>,
    store: &Store,
    channels: &Channels,
    shutdown: &mut Shutdown,
    ready: &Readiness,
    consumed: &mut bool,
) -> Result<(), WorkerError> {
    let conn = broker::connect(&settings.amqp, &settings.amqp.connection_name).await?;
    let prefetch = settings.amqp.prefetch;
    let tag = format!("{}-{}", settings.amqp.connection_name, std::process::id());
    // Every step of the set-up waits for the broker: bounded like the connect itself
    // (a connection the client closes mid-way, say on a delivery too large to read,
    // may leave a pending request unanswered for ever).
    let setup = async {
        let publisher = Publisher::open(&conn, Duration::from_secs(30)).await?;
        topology::declare(&conn, publisher.channel(), &settings.topology).await?;
        let consume_channel = conn.create_channel().await?;
        consume_channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let consumer = consume_channel
            .basic_consume(
                settings.topology.work_queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, WorkerError>((publisher, consume_channel, consumer))
    };
    let setup_timeout = Duration::from_millis(settings.amqp.connect_timeout_ms);
    let (publisher, consume_channel, mut consumer) =
        match tokio::time::timeout(setup_timeout, setup).await {
            Ok(ready) => ready?,
            Err(_) => {
                let _ = conn.close(200, "set-up timed out".into()).await;
                return Err(WorkerError::SetupTimeout(setup_timeout));
            }
        };
    let worker = Worker::new(settings.clone(), store.clone(), channels.clone(), publisher)?;
    let permits = Arc::new(Semaphore::new(usize::from(prefetch)));
    tracing::info!(queue = %settings.topology.work_queue, prefetch, "consuming");
    ready.set(true);
    *consumed = true;

    // A closed publishing channel (a server-side channel close) would make every
    // settle fail while deliveries keep arriving, and a connection the client closed
    // itself may leave the consumer stream silent: check both, and end the session.
    let mut health = tokio::time::interval(Duration::from_secs(1));
    let publishing = worker.publisher.channel().clone();
    let ended: Result<(), WorkerError> = loop {
        let permit = tokio::select! {
            _ = shutdown.wait() => break Ok(()),
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let delivery = tokio::select! {
            _ = shutdown.wait() => break Ok(()),
            _ = health.tick() => {
                if !conn.status().connected() {
                    // Closed from our side (a frame the client refused as a protocol
                    // error): the consumer stream may never say so by itself.
                    break Err(WorkerError::ConnectionLost);
                }
                if publishing.status().connected() {
                    continue;
                }
                break Err(WorkerError::PublishingClosed);
            }
            d = consumer.next() => d,
        };
        match delivery {
            Some(Ok(delivery)) => {
                METRICS.deliveries_received.inc();
                let worker = worker.clone();
                let history =
                    History::read(&delivery.properties, delivery.redelivered, &worker.seal);
                // One span per delivery: everything logged while handling it carries the
                // withdrawal id (recorded once the command is parsed) and the attempt.
                let span = tracing::info_span!(
                    "delivery",
                    withdrawal_id = tracing::field::Empty,
                    attempt = history.attempt,
                );
                tokio::spawn(
                    async move {
                        // Deliberately broken build for the chaos checker's own tests: the
                        // delivery is acked before its work is done and its events are
                        // published, so a crash in between loses the withdrawal.
                        #[cfg(feature = "broken-ack-before-publish")]
                        let _ = delivery
                            .ack(lapin::options::BasicAckOptions::default())
                            .await;
                        let decision = worker
                            .process(&delivery.data, &delivery.properties, &history)
                            .await;
                        worker.settle(&delivery, &history, decision).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
            Some(Err(e)) => break Err(e.into()),
            None => break Err(WorkerError::ConsumerCancelled),
        }
    };
    ready.set(false);
    if shutdown.is_triggered() {
        tracing::info!("shutting down: no new deliveries; draining in-flight work");
        let _ = consume_channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    // Every permit back means every spawned delivery has been settled. Past the grace
    // period the rest stay unacked and return to the queue when the connection closes;
    // every state change is one atomic script, so nothing is half-recorded.
    let grace = Duration::from_millis(settings.amqp.shutdown_grace_ms);
    match tokio::time::timeout(grace, permits.acquire_many(u32::from(prefetch))).await {
        Ok(_) => tracing::info!("drained"),
        Err(_) => tracing::warn!(
            in_flight = usize::from(prefetch) - permits.available_permits(),
            ?grace,
            "grace period over: leaving the rest unacked for redelivery"
        ),
    }
    let _ = conn.close(200, "payout-worker stopping".into()).await;
    ended
}
