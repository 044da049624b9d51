//! The baseline: the least a consumer that publishes an event per message can do on
//! this broker. Consume from a quorum queue with manual acks and the worker's prefetch;
//! for each message publish one persistent event with a publisher confirm, then ack.
//! No parsing, no Redis, no channel: what is left is the broker's own cost, which the
//! worker's throughput is reported against.

use crate::broker::{self, Publisher};
use crate::config::AmqpSettings;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicQosOptions, ExchangeDeclareOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ExchangeKind};
use std::time::Duration;

/// The relay's names in a run.
pub struct RelayNames {
    pub input: String,
    pub output: String,
}

impl RelayNames {
    pub fn new(run_id: &str) -> Self {
        Self {
            input: format!("{run_id}.relay.in"),
            output: format!("{run_id}.relay.out"),
        }
    }
}

/// Declares the relay's input queue (quorum, like the work queue) and output exchange.
pub async fn declare(channel: &lapin::Channel, names: &RelayNames) -> Result<(), lapin::Error> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            names.input.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await?;
    channel
        .exchange_declare(
            names.output.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Runs the relay on a connection of its own until the connection is closed.
pub async fn start(
    amqp: &AmqpSettings,
    names: &RelayNames,
    connection_name: &str,
    prefetch: u16,
) -> Result<Connection, String> {
    let conn = broker::connect(amqp, connection_name)
        .await
        .map_err(|e| format!("relay: {e}"))?;
    let publisher = Publisher::open(&conn, Duration::from_secs(30))
        .await
        .map_err(|e| format!("relay: {e}"))?;
    let consume = conn.create_channel().await.map_err(|e| e.to_string())?;
    consume
        .basic_qos(prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = consume
        .basic_consume(
            names.input.as_str().into(),
            "relay".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| e.to_string())?;
    let output = names.output.clone();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let publisher = publisher.clone();
            let output = output.clone();
            tokio::spawn(async move {
                let props = BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(
                        delivery
                            .properties
                            .message_id()
                            .clone()
                            .unwrap_or_else(|| "".into()),
                    );
                if publisher
                    .publish(&output, "relayed", &delivery.data, props)
                    .await
                    .is_ok()
                {
                    let _ = delivery.ack(BasicAckOptions::default()).await;
                }
            });
        }
    });
    Ok(conn)
}
