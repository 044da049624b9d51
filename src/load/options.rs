//! The `payout-worker load` options.

use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Publishes signed withdrawals to a worker process against the simulator, consumes the
/// events, and measures throughput, publish-to-terminal time, the worker's memory, CPU
/// and Redis round trips; in the same run, a minimal relay on the same broker and the
/// cost of one RSA-2048 signature, for ratios that hold on a shared machine.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Withdrawals to publish.
    #[arg(long, default_value_t = 2000)]
    pub withdrawals: usize,
    /// The channel every leg is paid through.
    #[arg(long, value_enum, default_value_t = LoadChannel::Bank)]
    pub channel: LoadChannel,
    /// Legs per withdrawal (1 to 4).
    #[arg(long, default_value_t = 1)]
    pub legs: usize,
    /// Withdrawals per second to offer; 0: as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// The worker's prefetch (and the relay's).
    #[arg(long, default_value_t = 256)]
    pub prefetch: u16,
    /// Latency the simulator adds to every channel call (milliseconds).
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// The simulator's settlement time for channels that settle asynchronously; 0: the
    /// bank settles instant payments in its first answer.
    #[arg(long, default_value_t = 0)]
    pub settle_ms: u64,
    /// Skip the relay baseline.
    #[arg(long)]
    pub no_relay: bool,
    /// Log level of the worker process (its log goes to a file).
    #[arg(long, default_value = "info")]
    pub worker_log_level: String,
    /// Where the JSON results go.
    #[arg(long, default_value = "load-report.json")]
    pub report: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadChannel {
    Bank,
    Alipay,
    WechatPay,
    Unionpay,
}

impl LoadArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.withdrawals == 0 {
            return Err("--withdrawals must be at least 1".into());
        }
        if !(1..=4).contains(&self.legs) {
            return Err("--legs must be 1 to 4".into());
        }
        if !(self.rate >= 0.0 && self.rate.is_finite()) {
            return Err("--rate must be 0 (as fast as possible) or a positive number".into());
        }
        if self.prefetch == 0 {
            return Err("--prefetch must be at least 1".into());
        }
        Ok(())
    }
}

impl LoadChannel {
    pub fn kind(self) -> crate::domain::ChannelKind {
        use crate::domain::ChannelKind;
        match self {
            LoadChannel::Bank => ChannelKind::Bank,
            LoadChannel::Alipay => ChannelKind::Alipay,
            LoadChannel::WechatPay => ChannelKind::WechatPay,
            LoadChannel::Unionpay => ChannelKind::Unionpay,
        }
    }
}
