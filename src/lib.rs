//! payout-worker: consumes approved withdrawals from RabbitMQ, pays each leg exactly once
//! through its channel, and publishes the outcome for the funds service.
//!
//! Where things are:
//! - a message comes in: [`worker`] (consume, decide, ack) using [`auth`] and [`domain`];
//! - the routing rules decide where a leg's money goes: [`routing`];
//! - money goes out: [`channels`] (one folder per channel);
//! - state lives in Redis: [`store`];
//! - events and dead letters leave: [`broker`] and [`events`];
//! - the channel simulator: [`sim`];
//! - the chaos suite (`payout-worker chaos`): [`chaos`].

pub mod auth;
pub mod broker;
pub mod channels;
pub mod chaos;
pub mod cli;
pub mod config;
pub mod domain;
pub mod events;
#[cfg(test)]
mod fuzz;
pub mod limits;
pub mod load;
pub mod ops;
pub mod routing;
pub mod schemas;
pub mod shutdown;
pub mod sim;
pub mod store;
pub mod telemetry;
pub mod tls;
pub mod worker;

pub use config::Settings;
pub use worker::{run, Worker};
