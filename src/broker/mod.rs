//! RabbitMQ: connecting, the topology of CONTRACT.md §1, and confirmed publishing.

pub mod headers;
pub mod publisher;
pub mod topology;

use crate::config::AmqpSettings;
use lapin::{Connection, ConnectionProperties};
use secrecy::ExposeSecret;
use std::time::Duration;

pub use publisher::{PublishError, Publisher};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("RabbitMQ did not answer within {0:?}")]
    Timeout(Duration),
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("RabbitMQ TLS: {0}")]
    Tls(String),
}

/// The URL with the heartbeat added unless the URL sets one.
fn url_with_heartbeat(url: &str, heartbeat_secs: u16) -> String {
    if url.contains("heartbeat=") {
        return url.to_owned();
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}heartbeat={heartbeat_secs}")
}

/// Connects with a timeout; `name` shows in the broker's connection list, so tests and
/// ops can find (and fault-inject) exactly this connection. An `amqps://` URL connects
/// over TLS with `settings.tls` (`crate::tls`).
pub async fn connect(settings: &AmqpSettings, name: &str) -> Result<Connection, BrokerError> {
    let url = url_with_heartbeat(settings.url.expose_secret(), settings.heartbeat_secs);
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let tls = settings.tls.for_amqp().map_err(BrokerError::Tls)?;
    let runtime = lapin::runtime::default_runtime().map_err(|e| BrokerError::Tls(e.to_string()))?;
    let timeout = Duration::from_millis(settings.connect_timeout_ms);
    let connecting = Connection::connect_with_config(&url, props, tls, runtime);
    match tokio::time::timeout(timeout, connecting).await {
        Ok(conn) => Ok(conn?),
        Err(_) => Err(BrokerError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_added_once() {
        assert_eq!(
            url_with_heartbeat("amqp://h/%2f", 30),
            "amqp://h/%2f?heartbeat=30"
        );
        assert_eq!(
            url_with_heartbeat("amqp://h/v?x=1", 5),
            "amqp://h/v?x=1&heartbeat=5"
        );
        assert_eq!(
            url_with_heartbeat("amqp://h/v?heartbeat=9", 5),
            "amqp://h/v?heartbeat=9"
        );
    }
}
