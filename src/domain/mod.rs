//! The payout domain: withdrawals, legs, money and ids, valid by construction.

pub mod command;
pub mod ids;
pub mod money;
pub mod party;
pub mod reject;

pub use command::{Leg, Payee, PayeeKind, Route, Source, Withdrawal};
pub use ids::{IdempotencyKey, LegId, WithdrawalId};
pub use money::{Currency, Money};
pub use party::{AccountNo, PersonName};
pub use reject::{RejectCode, Rejection};

use serde::Serialize;
use std::fmt;

/// The four channels money can leave through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Alipay,
    WechatPay,
    Unionpay,
    Bank,
}

impl ChannelKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "alipay" => Some(Self::Alipay),
            "wechat_pay" => Some(Self::WechatPay),
            "unionpay" => Some(Self::Unionpay),
            "bank" => Some(Self::Bank),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alipay => "alipay",
            Self::WechatPay => "wechat_pay",
            Self::Unionpay => "unionpay",
            Self::Bank => "bank",
        }
    }
}

impl fmt::Display for ChannelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
