//! WeChat Pay API v3's side of the conversation with no I/O: the refund request we send,
//! the refund object and error body we read, and the one table that classifies every
//! answer. Statuses and error codes are matched exhaustively on enums; an unrecognised
//! one is `Other`, which classifies as unknown (query, then review), never as a failure.

use crate::channels::{ChannelOutcome, PayoutOrder};
use serde::{Deserialize, Serialize};

/// `POST` here creates a refund; `GET` on `{REFUNDS_PATH}/{out_refund_no}` reads one.
pub const REFUNDS_PATH: &str = "/v3/refund/domestic/refunds";
/// WeChat limits `out_refund_no` to 64 characters.
pub const MAX_OUT_REFUND_NO: usize = 64;
/// WeChat limits `reason` to 80 characters (it shows it to the payer).
pub const MAX_REASON_CHARS: usize = 80;

/// The path that reads the refund under our key.
pub fn refund_path(out_refund_no: &str) -> String {
    format!("{REFUNDS_PATH}/{out_refund_no}")
}

/// Which call an answer belongs to: the same code means different things per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Refund,
    Query,
}

/// `POST /v3/refund/domestic/refunds`. No `notify_url`: the worker polls instead of
/// taking callbacks, so a refund's outcome is always read from the same place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundRequest {
    /// WeChat's id of the payment being refunded (the top-up's `channel_txn_id`).
    pub transaction_id: String,
    /// Our idempotency key, unchanged on every attempt.
    pub out_refund_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub amount: RequestAmount,
}

/// Amounts in fen (integers), as WeChat counts them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestAmount {
    pub refund: i64,
    /// The original payment's total. The withdrawal command does not carry the top-up's
    /// total (a gap in the contract), so we send `total = refund`; against production,
    /// a partial refund of a larger top-up needs the top-up total added to the command.
    pub total: i64,
    pub currency: String,
}

impl RefundRequest {
    /// The refund of `channel_txn_id` that pays `order`.
    pub fn for_order(order: &PayoutOrder, channel_txn_id: &str) -> Self {
        let fen = order.amount.minor_units();
        let reason: String = order.memo.chars().take(MAX_REASON_CHARS).collect();
        Self {
            transaction_id: channel_txn_id.to_owned(),
            out_refund_no: order.key.to_string(),
            reason: (!reason.is_empty()).then_some(reason),
            amount: RequestAmount {
                refund: fen,
                total: fen,
                currency: order.currency.as_str().to_owned(),
            },
        }
    }
}

/// The refund object both calls answer with (the fields we read, plus what the
/// simulator writes so its answers look like WeChat's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundObject {
    pub refund_id: String,
    pub out_refund_no: String,
    #[serde(default)]
    pub transaction_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_received_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<ResponseAmount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseAmount {
    pub total: i64,
    pub refund: i64,
    pub payer_total: i64,
    pub payer_refund: i64,
    pub currency: String,
}

/// The body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// A refund's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Success,
    Processing,
    Closed,
    /// Failed at the destination (e.g. the payer's card was closed): needs a person.
    Abnormal,
    Other,
}

impl RefundStatus {
    pub fn parse(s: &str) -> Self {
        match s {
            "SUCCESS" => Self::Success,
            "PROCESSING" => Self::Processing,
            "CLOSED" => Self::Closed,
            "ABNORMAL" => Self::Abnormal,
            _ => Self::Other,
        }
    }
}

/// An error `code`. Decisions are made on this (and the HTTP status), never on `message`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    SystemError,
    FrequencyLimited,
    NotEnough,
    UserAccountAbnormal,
    ParamError,
    ResourceNotExists,
    InvalidRequest,
    SignError,
    NoAuth,
    MchNotExists,
    Other,
}

impl ErrorCode {
    pub fn parse(s: &str) -> Self {
        match s {
            "SYSTEM_ERROR" => Self::SystemError,
            "FREQUENCY_LIMITED" => Self::FrequencyLimited,
            "NOT_ENOUGH" => Self::NotEnough,
            "USER_ACCOUNT_ABNORMAL" => Self::UserAccountAbnormal,
            "PARAM_ERROR" => Self::ParamError,
            "RESOURCE_NOT_EXISTS" => Self::ResourceNotExists,
            "INVALID_REQUEST" => Self::InvalidRequest,
            "SIGN_ERROR" => Self::SignError,
            "NO_AUTH" => Self::NoAuth,
            "MCH_NOT_EXISTS" => Self::MchNotExists,
            _ => Self::Other,
        }
    }
}

/// An HTTP answer read into WeChat's terms (after its signature was checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A 2xx with a refund object.
    Refund(RefundObject),
    /// A non-2xx, with its error body when it had a readable one.
    Error { http: u16, body: Option<ErrorBody> },
    /// A 2xx we cannot read: something answered that is not the refund API.
    Unreadable { http: u16 },
}

/// Reads an answer's body by its HTTP status. Never panics, whatever the bytes.
pub fn parse_reply(http: u16, body: &[u8]) -> Reply {
    if (200..300).contains(&http) {
        match serde_json::from_slice::<RefundObject>(body) {
            Ok(r) => Reply::Refund(r),
            Err(_) => Reply::Unreadable { http },
        }
    } else {
        Reply::Error {
            http,
            body: serde_json::from_slice(body).ok(),
        }
    }
}

fn unknown(what: impl std::fmt::Display) -> ChannelOutcome {
    ChannelOutcome::Unknown {
        reason: format!("WeChat Pay {what}"),
    }
}

/// The classification table: every WeChat answer to one of our calls about `key`, to
/// one outcome.
pub fn classify(call: Call, key: &str, reply: &Reply) -> ChannelOutcome {
    match reply {
        Reply::Refund(r) if r.out_refund_no != key => {
            unknown("answered about another out_refund_no")
        }
        Reply::Refund(r) => classify_status(r),
        Reply::Error { http, body } => classify_error(call, *http, body.as_ref()),
        Reply::Unreadable { http } => unknown(format_args!(
            "answered HTTP {http} with a body that is not a refund"
        )),
    }
}

fn classify_status(r: &RefundObject) -> ChannelOutcome {
    match RefundStatus::parse(&r.status) {
        RefundStatus::Success => ChannelOutcome::Succeeded {
            reference: r.refund_id.clone(),
        },
        // A 200 means accepted, not refunded: poll.
        RefundStatus::Processing => ChannelOutcome::Pending,
        RefundStatus::Closed => ChannelOutcome::Failed {
            code: "REFUND_CLOSED".into(),
            reason: "WeChat Pay closed the refund without paying it".into(),
        },
        RefundStatus::Abnormal => ChannelOutcome::Review {
            reason: "WeChat Pay reports the refund ABNORMAL: the payer's account refused it; \
                     it must be re-routed by a person"
                .into(),
        },
        RefundStatus::Other => unknown(format_args!(
            "refund status {:?} is not one we know",
            short(&r.status)
        )),
    }
}

fn classify_error(call: Call, http: u16, body: Option<&ErrorBody>) -> ChannelOutcome {
    let raw = body.map_or("", |b| b.code.as_str());
    // The HTTP status speaks first: a 5xx may come from anywhere between us and WeChat,
    // after the refund was carried out; a 429 on a refund is to be queried before any
    // resend (CHANNELS.md). Neither may be read as a refusal, whatever the body says.
    // Only a 4xx carries a refusal (WeChat documents every error code with a 4xx): any
    // other status (1xx, 3xx, non-standard) is not one we know, so it is unknown too.
    if http >= 500 || http == 429 || !(400..500).contains(&http) {
        return unknown(format_args!("answered HTTP {http} {}", short(raw)));
    }
    let message = body.map_or("", |b| b.message.as_str());
    let failed = || ChannelOutcome::Failed {
        code: raw.to_owned(),
        reason: if message.is_empty() {
            format!("WeChat Pay refused the refund ({raw})")
        } else {
            message.to_owned()
        },
    };
    match (ErrorCode::parse(raw), call) {
        (ErrorCode::SystemError | ErrorCode::FrequencyLimited, _) => {
            unknown(format_args!("is busy ({raw}): query before any resend"))
        }
        // Same key, other body: a bug on our side. Never a failure.
        (ErrorCode::InvalidRequest, Call::Refund) => ChannelOutcome::Review {
            reason: "WeChat Pay saw our out_refund_no with other parameters (INVALID_REQUEST)"
                .into(),
        },
        // NOT_ENOUGH is *our* merchant account's balance (CHANNELS.md; WeChat Pay's refund
        // guide: "NOT ENOUGH ... retry after an interval"): nothing was refunded, and it
        // is ours to fix, not the user's. Retry later, then review; funds stay frozen.
        (ErrorCode::NotEnough, Call::Refund) => ChannelOutcome::RetryLater {
            reason: "our WeChat Pay merchant balance is too low for the refund (NOT_ENOUGH)".into(),
        },
        // The payer's side or the refund itself refused: definitive (CHANNELS.md).
        (
            ErrorCode::UserAccountAbnormal | ErrorCode::ParamError | ErrorCode::ResourceNotExists,
            Call::Refund,
        ) => failed(),
        // On a query, "no such refund" is the answer that makes a resend safe.
        (ErrorCode::ResourceNotExists, Call::Query) => ChannelOutcome::NotFound,
        // A query that errs says nothing about the refund itself.
        (
            ErrorCode::InvalidRequest
            | ErrorCode::NotEnough
            | ErrorCode::UserAccountAbnormal
            | ErrorCode::ParamError,
            Call::Query,
        ) => unknown(format_args!("refused the query ({raw})")),
        // Our merchant setup (key, serial, permissions) was refused before anything was
        // carried out: not the user's fault, and nothing moved.
        (ErrorCode::SignError | ErrorCode::NoAuth | ErrorCode::MchNotExists, _) => {
            ChannelOutcome::RetryLater {
                reason: format!("WeChat Pay rejected our merchant request ({raw}): merchant setup"),
            }
        }
        (ErrorCode::Other, _) => unknown(format_args!(
            "answered HTTP {http} with an unrecognised code {:?}",
            short(raw)
        )),
    }
}

/// At most 40 characters of something the other side wrote, for a reason text.
fn short(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests;
