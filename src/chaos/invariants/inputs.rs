//! What the invariant checker reads: the plan (what was published and what each leg was
//! designed to come to) and the observations (events, dead letters, ledger lines).

use super::{FAILED, SUCCEEDED};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

// ---- the plan ----------------------------------------------------------------------

/// What a leg of an authentic withdrawal was designed to come to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "expect", rename_all = "snake_case")]
pub enum Expect {
    /// Paid through `channel` along `route` (`original`, `fallback`, `designated`).
    Paid {
        channel: &'static str,
        route: &'static str,
    },
    /// Refused: by the routing rules before any call (`code` is then the rule's code),
    /// or by the channel (`code: None`, the channel picks its own).
    Refused { code: Option<&'static str> },
    /// A top-up whose original-route window closes during the run: decided from the
    /// command's `approved_at` it goes the original route through `channel`; a channel
    /// that refuses the refund after its window closed makes it fail (nothing moved);
    /// with a `fallback` card, a worker that learnt the window had closed before
    /// sending may pay it to the card through the bank.
    WindowClosing {
        channel: &'static str,
        fallback: bool,
    },
    /// An outcome no machine can resolve (the channel answers "unavailable" for good):
    /// it must end in review, never in a terminal event.
    Unresolved,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedLeg {
    pub leg_id: String,
    pub amount: Decimal,
    /// Its idempotency key, [`IdempotencyKey::for_leg`]: how the ledger knows it.
    pub key: String,
    pub expect: Expect,
}

/// An authentic, valid withdrawal as published.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedWithdrawal {
    pub id: String,
    pub amount: Decimal,
    pub legs: Vec<ExpectedLeg>,
}

/// The kinds of input the worker must dead-letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadKind {
    /// Signed bytes that are not JSON.
    NotJson,
    /// Signed JSON with fields of the wrong type.
    WrongTypes,
    /// Signed, amounts with three decimals.
    ThreeDecimals,
    /// Signed, the legs do not add up to the amount.
    LegsNotAddingUp,
    /// Signed, `version: 2`.
    UnsupportedVersion,
    /// A valid command without signature headers.
    Unsigned,
    /// A valid command signed with a wrong secret.
    Forged,
}

impl BadKind {
    pub const ALL: [BadKind; 7] = [
        BadKind::NotJson,
        BadKind::WrongTypes,
        BadKind::ThreeDecimals,
        BadKind::LegsNotAddingUp,
        BadKind::UnsupportedVersion,
        BadKind::Unsigned,
        BadKind::Forged,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BadKind::NotJson => "not_json",
            BadKind::WrongTypes => "wrong_types",
            BadKind::ThreeDecimals => "three_decimals",
            BadKind::LegsNotAddingUp => "legs_not_adding_up",
            BadKind::UnsupportedVersion => "unsupported_version",
            BadKind::Unsigned => "unsigned",
            BadKind::Forged => "forged",
        }
    }

    /// The `x-payout-error-code` the dead letter must carry (README, reject codes).
    pub fn expected_code(self) -> &'static str {
        match self {
            BadKind::NotJson => "malformed_json",
            BadKind::WrongTypes => "schema_invalid",
            BadKind::ThreeDecimals => "invalid_amount",
            BadKind::LegsNotAddingUp => "amount_mismatch",
            BadKind::UnsupportedVersion => "unsupported_version",
            BadKind::Unsigned | BadKind::Forged => "signature_invalid",
        }
    }

    /// Whether the worker must release its funds with a `withdrawal.failed`: authentic,
    /// readable JSON naming a valid withdrawal id (contract §4).
    pub fn releases_funds(self) -> bool {
        !matches!(self, BadKind::NotJson | BadKind::Unsigned | BadKind::Forged)
    }
}

/// A bad input as published. Its `withdrawal_id` is the marker: the only place its bytes
/// occur is this one message (ids have a fixed width, so none is inside another).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadInput {
    pub withdrawal_id: String,
    pub kind: BadKind,
    /// The idempotency keys of the legs it names: none may ever move money.
    pub keys: Vec<String>,
}

// ---- what was observed -------------------------------------------------------------

/// One event as received (repeats included).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub data: Value,
}

impl Event {
    /// Reads a CloudEvent body; `None` if it is not one.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let v: Value = serde_json::from_slice(body).ok()?;
        Some(Self {
            id: v.get("id")?.as_str()?.to_owned(),
            kind: v.get("type")?.as_str()?.to_owned(),
            subject: v.get("subject")?.as_str()?.to_owned(),
            data: v.get("data").cloned().unwrap_or(Value::Null),
        })
    }

    pub(super) fn is_terminal(&self) -> bool {
        self.kind == SUCCEEDED || self.kind == FAILED
    }

    pub(super) fn money(&self, field: &str) -> Option<Decimal> {
        self.data.get(field)?.as_str()?.parse().ok()
    }

    pub(super) fn legs(&self) -> &[Value] {
        self.data
            .get("legs")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// One message read from the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub error_code: Option<String>,
}

/// One line of `GET /sim/ledger`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLine {
    pub channel: String,
    pub key: String,
    pub amount: String,
    pub moves: u32,
}

impl LedgerLine {
    /// The amount in yuan: the ledger view states every channel's amount in yuan with
    /// two places (WeChat Pay's and UnionPay's fen converted).
    pub fn yuan(&self) -> Option<Decimal> {
        self.amount.parse().ok()
    }

    /// Money that left under this key and stayed out.
    pub fn moved(&self) -> Option<Decimal> {
        Some(self.yuan()? * Decimal::from(self.moves))
    }
}

/// A verdict `payout-worker review resolve` accepted (exit status 0) during the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperatorVerdict {
    pub withdrawal: String,
    pub leg: String,
    /// `paid` or `failed`.
    pub outcome: String,
}

/// Everything the checker reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub authentic: &'a [ExpectedWithdrawal],
    pub bad: &'a [BadInput],
    pub events: &'a [Event],
    pub dead: &'a [DeadLetter],
    pub ledger: &'a [LedgerLine],
    /// Verdicts the operator process had accepted.
    pub verdicts: &'a [OperatorVerdict],
}
