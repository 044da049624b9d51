//! Publishing the mix at its times, as upstream billing would: signed with the
//! configured key through [`crate::cli::publish_command`], or raw for the unsigned and
//! forged ones. Records when each withdrawal was first published (the start of its
//! time to a terminal event).

use super::mix::{Outgoing, Signing};
use crate::auth::{KeyRing, KEY_ID_HEADER, SIGNATURE_HEADER};
use crate::broker::headers::long_string;
use crate::broker::{topology, Publisher};
use crate::config::Settings;
use crate::shutdown::Shutdown;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct Sent {
    /// When each withdrawal was first published.
    pub first: HashMap<String, Instant>,
    pub count: usize,
    pub errors: Vec<String>,
}

pub type Shared = Arc<Mutex<Sent>>;

pub fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Sent> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Publishes `messages` at `t0 + at` until done or `stop`.
pub async fn run(
    settings: Arc<Settings>,
    publisher: Publisher,
    messages: Vec<Outgoing>,
    t0: Instant,
    forged_secret: String,
    sent: Shared,
    mut stop: Shutdown,
) {
    let key_id = settings.auth.publish_key_id.clone();
    let forger = KeyRing::parse(&format!("{key_id}:{forged_secret}")).ok();
    for m in messages {
        let when = tokio::time::Instant::from_std(t0 + m.at);
        tokio::select! {
            _ = stop.wait() => return,
            _ = tokio::time::sleep_until(when) => {}
        }
        let started = Instant::now();
        // No retry: a publish whose confirm was lost may have arrived, and a second
        // copy of a bad input would be a dead letter too many. A failure is reported.
        let result = send(&settings, &publisher, &key_id, forger.as_ref(), &m).await;
        let mut s = lock(&sent);
        match result {
            Ok(()) => {
                s.count += 1;
                s.first.entry(m.withdrawal_id.clone()).or_insert(started);
            }
            Err(e) => s.errors.push(format!("{}: {e}", m.withdrawal_id)),
        }
    }
}

async fn send(
    settings: &Settings,
    publisher: &Publisher,
    key_id: &str,
    forger: Option<&KeyRing>,
    m: &Outgoing,
) -> Result<(), String> {
    let mut headers = FieldTable::default();
    match m.signing {
        Signing::Signed => {
            return crate::cli::publish_command(settings, publisher, key_id, &m.body)
                .await
                .map_err(|e| e.to_string())
        }
        Signing::Unsigned => {}
        Signing::Forged => {
            let signature = forger
                .and_then(|f| f.sign(key_id, &m.body))
                .ok_or("cannot build a forged signature")?;
            headers.insert(KEY_ID_HEADER.into(), long_string(key_id));
            headers.insert(SIGNATURE_HEADER.into(), long_string(&signature));
        }
    }
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_headers(headers);
    publisher
        .publish(
            &settings.topology.commands_exchange,
            topology::APPROVED_ROUTING_KEY,
            &m.body,
            props,
        )
        .await
        .map_err(|e| e.to_string())
}
