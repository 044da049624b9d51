//! Publishing with publisher confirms and `mandatory`: a publish counts only when the
//! broker confirmed it and did not return it as unroutable.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused (nack) the message for {0}")]
    Nacked(String),
    #[error("no queue is bound for {0}: the message came back unroutable")]
    Returned(String),
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
}

/// A confirm-mode channel. `lapin` channels are cheap to clone and safe to share; many
/// publishes may be outstanding at once, each awaiting its own confirm.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    confirm_timeout: Duration,
}

impl Publisher {
    pub async fn open(conn: &Connection, confirm_timeout: Duration) -> Result<Self, PublishError> {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            channel,
            confirm_timeout,
        })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes and waits for the confirm. Mandatory: an unroutable message is an error.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        props: BasicProperties,
    ) -> Result<(), PublishError> {
        let what = || format!("{exchange}/{routing_key}");
        let send = async {
            let confirm = self
                .channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    body,
                    props,
                )
                .await?
                .await?;
            if confirm.is_nack() {
                return Err(PublishError::Nacked(what()));
            }
            if confirm.take_message().is_some() {
                return Err(PublishError::Returned(what()));
            }
            Ok(())
        };
        match tokio::time::timeout(self.confirm_timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(PublishError::Timeout(self.confirm_timeout)),
        }
    }
}
