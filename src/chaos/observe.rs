//! What the run sees from outside the workers: every event on the run's events
//! exchange (through a queue of its own bound with `#`) and every message in the
//! dead-letter queue, each with the moment it arrived.

use super::invariants::{DeadLetter, Event, FAILED, REVIEW, SUCCEEDED};
use crate::broker::headers;
use crate::config::TopologySettings;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::Channel;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything received so far.
#[derive(Debug, Default)]
pub struct Observed {
    /// Events in arrival order, with their arrival time.
    pub events: Vec<(Instant, Event)>,
    pub dead: Vec<DeadLetter>,
    /// Bodies on the events exchange that were not CloudEvents.
    pub unreadable_events: usize,
    /// The first terminal event of each withdrawal.
    pub first_terminal: HashMap<String, Instant>,
    pub reviewed: HashSet<String>,
    pub last_arrival: Option<Instant>,
    /// Set if a consumer stopped (then the observations are incomplete).
    pub broken: Option<String>,
}

pub type Shared = Arc<Mutex<Observed>>;

pub fn lock(o: &Shared) -> std::sync::MutexGuard<'_, Observed> {
    o.lock().unwrap_or_else(|p| p.into_inner())
}

/// Binds a queue of our own to the events exchange and starts consuming it and the
/// dead-letter queue. The topology must be declared already.
pub async fn start(channel: &Channel, t: &TopologySettings) -> Result<Shared, lapin::Error> {
    let tap = format!("{}.chaos-tap", t.events_exchange);
    channel
        .queue_declare(
            tap.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            tap.as_str().into(),
            t.events_exchange.as_str().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let observed: Shared = Arc::default();
    for (queue, is_events) in [(tap, true), (t.dead_letter.clone(), false)] {
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("chaos-{queue}").as_str().into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        let observed = observed.clone();
        tokio::spawn(async move {
            while let Some(delivery) = consumer.next().await {
                let now = Instant::now();
                let d = match delivery {
                    Ok(d) => d,
                    Err(e) => {
                        lock(&observed).broken = Some(format!("consumer of {queue}: {e}"));
                        return;
                    }
                };
                let mut o = lock(&observed);
                o.last_arrival = Some(now);
                if is_events {
                    record_event(&mut o, now, &d.data);
                } else {
                    let error_code = headers::text(&d.properties, headers::ERROR_CODE);
                    o.dead.push(DeadLetter {
                        body: d.data,
                        error_code,
                    });
                }
            }
            let mut o = lock(&observed);
            if o.broken.is_none() {
                o.broken = Some(format!("consumer of {queue} ended"));
            }
        });
    }
    Ok(observed)
}

impl Observed {
    /// How many of `ids` occur in some dead letter's body.
    pub fn dead_found(&self, ids: &[String]) -> usize {
        let mut found = HashSet::new();
        for d in &self.dead {
            let text = String::from_utf8_lossy(&d.body);
            for id in ids {
                if text.contains(id.as_str()) {
                    found.insert(id.as_str());
                }
            }
        }
        found.len()
    }
}

/// Waits until nothing arrived for `quiet`, or `at_most` passed.
pub async fn wait_quiet(observed: &Shared, quiet: Duration, at_most: Duration) {
    let start = Instant::now();
    loop {
        let last = lock(observed).last_arrival;
        let since = last.map_or(start.elapsed(), |t| t.elapsed().min(start.elapsed()));
        if since >= quiet || start.elapsed() >= at_most {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn record_event(o: &mut Observed, now: Instant, body: &[u8]) {
    let Some(e) = Event::parse(body) else {
        o.unreadable_events += 1;
        return;
    };
    if e.kind == SUCCEEDED || e.kind == FAILED {
        o.first_terminal.entry(e.subject.clone()).or_insert(now);
    } else if e.kind == REVIEW {
        o.reviewed.insert(e.subject.clone());
    }
    o.events.push((now, e));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_terminal_event_and_reviews_are_remembered() {
        let mut o = Observed::default();
        let t0 = Instant::now();
        let body = |kind: &str, subject: &str| {
            serde_json::json!({"id": format!("{subject}:{kind}"), "type": kind, "subject": subject, "data": {}})
                .to_string()
                .into_bytes()
        };
        record_event(&mut o, t0, &body("withdrawal.processing", "a"));
        record_event(
            &mut o,
            t0 + std::time::Duration::from_secs(1),
            &body(SUCCEEDED, "a"),
        );
        record_event(
            &mut o,
            t0 + std::time::Duration::from_secs(2),
            &body(SUCCEEDED, "a"),
        );
        record_event(&mut o, t0, &body(REVIEW, "b"));
        record_event(&mut o, t0, b"garbage");
        assert_eq!(o.events.len(), 4);
        assert_eq!(o.unreadable_events, 1);
        assert_eq!(
            o.first_terminal["a"],
            t0 + std::time::Duration::from_secs(1)
        );
        assert!(o.reviewed.contains("b") && !o.first_terminal.contains_key("b"));
        o.dead.push(DeadLetter {
            body: br#"{"withdrawal_id":"c1-x000001"}"#.to_vec(),
            error_code: None,
        });
        let ids = ["c1-x000001".to_owned(), "c1-x000002".to_owned()];
        assert_eq!(o.dead_found(&ids), 1);
    }
}
