//! Where money leaves: one adapter per channel, each split into a pure protocol side
//! (`protocol.rs`: wire types and the exhaustive classification table) and a transport
//! side (`mod.rs`: HTTP, signing, verification, timeouts).
//!
//! Every adapter answers with a [`ChannelOutcome`]. The rule across channels: one
//! [`IdempotencyKey`] per leg, sent unchanged on every attempt and every query.

pub mod alipay;
pub mod bank;
pub mod http;
pub mod rsa;
pub mod unionpay;
pub mod wechat_pay;

use crate::config::Settings;
use crate::domain::{ChannelKind, Currency, IdempotencyKey, Money, Payee};
use std::sync::Arc;

/// What to pay, fully decided: the routing rules have already run.
#[derive(Debug, Clone)]
pub struct PayoutOrder {
    pub key: IdempotencyKey,
    pub channel: ChannelKind,
    pub amount: Money,
    pub currency: Currency,
    pub target: Target,
    /// A short text the channel shows the payee (never contains account data).
    pub memo: String,
    /// A timestamp fixed for the leg (the withdrawal's `approved_at`), for protocols that
    /// need the same request time on every attempt and query (UnionPay's `txnTime`).
    pub requested_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Clone)]
pub enum Target {
    /// Refund a top-up to its original payment.
    Refund {
        channel_txn_id: String,
        bank: Option<String>,
    },
    /// Pay an account (designated payee, or the fallback bank card).
    Account(Payee),
}

/// What a channel call told us. `Failed` is the only outcome that may release funds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelOutcome {
    /// The money moved; `reference` is the channel's own id for it.
    Succeeded { reference: String },
    /// The channel definitively refused: the money did not move and will not.
    Failed { code: String, reason: String },
    /// Accepted, settles later: poll with the same key.
    Pending,
    /// We cannot tell whether money moved: query with the same key before anything else.
    Unknown { reason: String },
    /// (Queries only) the channel has no record of this key: a resend with it is safe.
    NotFound,
    /// The request was certainly not carried out, but retrying later may work
    /// (merchant-side problems, nothing sent): retry with the same key, then review.
    RetryLater { reason: String },
    /// Needs a person: the channel's answer makes no sense for us (e.g. our key reused
    /// with other parameters) or the payout is stuck at the destination.
    Review { reason: String },
}

/// The configured channel adapters. Enum-style dispatch keeps the call sites free of
/// trait objects and lets each adapter keep its own concrete types.
#[derive(Debug, Clone)]
pub struct Channels {
    alipay: Arc<alipay::AlipayClient>,
    wechat_pay: Arc<wechat_pay::WechatPayClient>,
    unionpay: Arc<unionpay::UnionpayClient>,
    bank: Arc<bank::BankClient>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelSetupError {
    #[error("channels.{channel}: {message}")]
    Invalid {
        channel: &'static str,
        message: String,
    },
}

impl Channels {
    pub fn from_settings(settings: &Settings) -> Result<Self, ChannelSetupError> {
        let c = &settings.channels;
        Ok(Self {
            alipay: Arc::new(alipay::AlipayClient::from_settings(&c.alipay)?),
            wechat_pay: Arc::new(wechat_pay::WechatPayClient::from_settings(&c.wechat_pay)?),
            unionpay: Arc::new(unionpay::UnionpayClient::from_settings(&c.unionpay)?),
            bank: Arc::new(bank::BankClient::from_settings(&c.bank)?),
        })
    }

    /// Sends the payout (or resends it, with the same key).
    pub async fn pay(&self, order: &PayoutOrder) -> ChannelOutcome {
        match order.channel {
            ChannelKind::Alipay => self.alipay.pay(order).await,
            ChannelKind::WechatPay => self.wechat_pay.pay(order).await,
            ChannelKind::Unionpay => self.unionpay.pay(order).await,
            ChannelKind::Bank => self.bank.pay(order).await,
        }
    }

    /// Asks the channel what became of the payout under `order.key`.
    pub async fn query(&self, order: &PayoutOrder) -> ChannelOutcome {
        match order.channel {
            ChannelKind::Alipay => self.alipay.query(order).await,
            ChannelKind::WechatPay => self.wechat_pay.query(order).await,
            ChannelKind::Unionpay => self.unionpay.query(order).await,
            ChannelKind::Bank => self.bank.query(order).await,
        }
    }
}
