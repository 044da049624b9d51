//! UnionPay's side of the conversation with no I/O: the request fields of a refund
//! (`txnType=04`) and a status query (`txnType=00`), how our order becomes an `orderId`
//! and `txnTime`, and the tables that classify every answer.
//!
//! Codes are parsed into an enum with an `Other` variant and matched exhaustively (no
//! catch-all arm), so a new variant cannot slip through unclassified. The rules (issue 14,
//! CHANNELS.md):
//! - `00` and `A6` ("success with defects") are accepted, never final: UnionPay's SDK
//!   demos treat both as success to be confirmed by a status query.
//! - Only the refusals UnionPay documents fail a refund; a code we do not know is unknown
//!   (query, then review), never a failure. (UnionPay's demos say "anything else failed";
//!   we do not release funds on a code we cannot read.)
//! - Merchant-side problems never fail the user's withdrawal: a closed or busy gateway,
//!   a rejection of our own message or setup (format, signature, permissions) are
//!   retried later, then reviewed.
//! - A query's own code never fails anything, and `34` (no such transaction) is not
//!   "not found": UnionPay's query demo reads it as "status not known yet, query again
//!   later, or settle it by the reconciliation file". So no UnionPay answer is
//!   `NotFound`: a leg whose refund UnionPay never saw ends in review, not in a resend.

use crate::channels::ChannelOutcome;
use crate::domain::{Currency, IdempotencyKey};
use chrono::{DateTime, FixedOffset, Utc};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

mod codes;
pub use codes::RespCode;

pub const VERSION: &str = "5.1.0";
pub const ENCODING: &str = "UTF-8";
/// RSA with SHA-256 (the 5.1.0 certificate signature).
pub const SIGN_METHOD: &str = "01";
pub const TXN_REFUND: &str = "04";
pub const TXN_QUERY: &str = "00";
pub const TXN_SUB_TYPE: &str = "00";
/// Refunds belong to the gateway payment product; queries use the generic biz type.
pub const BIZ_REFUND: &str = "000201";
pub const BIZ_QUERY: &str = "000000";
/// A merchant connecting directly (not through an acquirer).
pub const ACCESS_MERCHANT: &str = "0";
/// Mobile channel, the one our top-ups come through.
pub const CHANNEL_MOBILE: &str = "07";

/// `orderId` bounds: UnionPay takes 8–32 letters and digits.
const ORDER_ID_MIN: usize = 8;
const ORDER_ID_MAX: usize = 32;

/// The `orderId` for a leg. Our key is already 32 alphanumerics and used as is, so the
/// channel's records and the simulator's ledger read under the worker's own key.
pub fn order_id(key: &IdempotencyKey) -> String {
    normalise_order_id(key.as_str())
}

/// Any text to a valid `orderId`, deterministically: valid text stays itself, anything
/// else becomes `UP` + 30 hex digits of its SHA-256 (the same text always maps the same).
pub fn normalise_order_id(raw: &str) -> String {
    let valid = (ORDER_ID_MIN..=ORDER_ID_MAX).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric());
    if valid {
        raw.to_owned()
    } else {
        let hex = hex::encode(Sha256::digest(raw.as_bytes()));
        format!("UP{}", &hex[..30])
    }
}

/// `txnTime` (`YYYYMMDDhhmmss`, Beijing time). Derived from a time fixed for the leg:
/// UnionPay identifies an order by `orderId` + `txnTime`, so a fresh time on a retry
/// would be another order, and a query with it would find nothing.
pub fn txn_time(requested_at: DateTime<Utc>) -> String {
    let beijing = FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    requested_at
        .with_timezone(&beijing)
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// ISO 4217 numeric code for `currencyCode`; `None` for a currency UnionPay refunds
/// cannot carry.
pub fn currency_code(currency: &Currency) -> Option<&'static str> {
    match currency.as_str() {
        "CNY" => Some("156"),
        _ => None,
    }
}

/// Who we are to UnionPay.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub mer_id: String,
    pub cert_id: String,
}

/// The order as UnionPay knows it: the pair that identifies it on every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRef {
    pub order_id: String,
    pub txn_time: String,
}

fn common(
    m: &Merchant,
    txn_type: &str,
    biz_type: &str,
    o: &OrderRef,
) -> Vec<(&'static str, String)> {
    vec![
        ("version", VERSION.into()),
        ("encoding", ENCODING.into()),
        ("signMethod", SIGN_METHOD.into()),
        ("txnType", txn_type.into()),
        ("txnSubType", TXN_SUB_TYPE.into()),
        ("bizType", biz_type.into()),
        ("accessType", ACCESS_MERCHANT.into()),
        ("merId", m.mer_id.clone()),
        ("orderId", o.order_id.clone()),
        ("txnTime", o.txn_time.clone()),
        ("certId", m.cert_id.clone()),
    ]
}

fn into_params(pairs: Vec<(&'static str, String)>) -> BTreeMap<String, String> {
    // Blank values are left out, as UnionPay's SDK does before signing.
    pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

/// A refund to the original payment (`backTransReq`, `txnType=04`), unsigned.
pub fn refund_params(
    m: &Merchant,
    o: &OrderRef,
    amount_fen: i64,
    currency_code: &str,
    orig_qry_id: &str,
) -> BTreeMap<String, String> {
    let mut pairs = common(m, TXN_REFUND, BIZ_REFUND, o);
    pairs.extend([
        ("channelType", CHANNEL_MOBILE.into()),
        ("txnAmt", amount_fen.to_string()),
        ("currencyCode", currency_code.into()),
        ("origQryId", orig_qry_id.into()),
    ]);
    into_params(pairs)
}

/// A status query (`queryTrans`, `txnType=00`) for the order, unsigned.
pub fn query_params(m: &Merchant, o: &OrderRef) -> BTreeMap<String, String> {
    into_params(common(m, TXN_QUERY, BIZ_QUERY, o))
}

/// Which call an answer belongs to: `respCode` means different things on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Refund,
    Query,
}

/// The fields of a verified answer that decide its outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub resp_code: Option<String>,
    pub resp_msg: String,
    pub orig_resp_code: Option<String>,
    pub orig_resp_msg: String,
    pub query_id: Option<String>,
    pub order_id: Option<String>,
    pub txn_time: Option<String>,
}

impl Answer {
    pub fn from_params(p: &BTreeMap<String, String>) -> Self {
        let field = |k: &str| p.get(k).filter(|v| !v.is_empty()).cloned();
        Self {
            resp_code: field("respCode"),
            resp_msg: field("respMsg").unwrap_or_default(),
            orig_resp_code: field("origRespCode"),
            orig_resp_msg: field("origRespMsg").unwrap_or_default(),
            query_id: field("queryId"),
            order_id: field("orderId"),
            txn_time: field("txnTime"),
        }
    }

    /// Whether the answer is about our order. UnionPay echoes `orderId` and `txnTime`;
    /// a signed answer about another order (a mixed-up proxy, a replay) proves nothing
    /// about ours. Absent fields are not held against it.
    pub fn is_about(&self, o: &OrderRef) -> bool {
        self.order_id.as_ref().is_none_or(|id| *id == o.order_id)
            && self.txn_time.as_ref().is_none_or(|t| *t == o.txn_time)
    }
}

/// Longest channel text we carry into a failure reason.
const MAX_REASON_CHARS: usize = 200;

fn failed(code: &str, msg: &str) -> ChannelOutcome {
    let reason = if msg.trim().is_empty() {
        format!("UnionPay refused the refund (respCode {code})")
    } else {
        msg.trim().chars().take(MAX_REASON_CHARS).collect()
    };
    ChannelOutcome::Failed {
        code: code.to_owned(),
        reason,
    }
}

fn unknown(what: &str, code: &str) -> ChannelOutcome {
    ChannelOutcome::Unknown {
        reason: format!("UnionPay {what} (respCode {code})"),
    }
}

/// The classification table: every verified UnionPay answer to one of our calls, to one
/// outcome. (An unverified answer never gets here: it is `Unknown` in the transport.)
pub fn classify(call: Call, a: &Answer) -> ChannelOutcome {
    let Some(code) = a.resp_code.as_deref() else {
        return ChannelOutcome::Unknown {
            reason: "UnionPay answer has no respCode".into(),
        };
    };
    match call {
        Call::Refund => classify_refund(code, &a.resp_msg),
        Call::Query => classify_query(code, a),
    }
}

fn classify_refund(code: &str, msg: &str) -> ChannelOutcome {
    use RespCode::*;
    match RespCode::parse(code) {
        // Accepted, not paid: refunds settle over clearing days. Poll with a query.
        // `A6` is accepted too and confirmed the same way. Pending (not Unknown) fits the
        // adapter's flow: the refund was accepted, so it follows the channel's poll
        // schedule and settlement deadline, and only a query's origRespCode settles it.
        Success | SuccessWithDefects => ChannelOutcome::Pending,
        // UnionPay's own "status unknown" family: the refund may have been taken.
        CommunicationTimeout | StatusUnknown | AcceptedQueryLater => {
            unknown("does not know the refund's status", code)
        }
        // Our orderId with other parameters: a bug on our side, never a failure.
        DuplicateTransaction => ChannelOutcome::Review {
            reason: "UnionPay saw our orderId with other parameters (respCode 12)".into(),
        },
        // Refused before processing for a passing reason: nothing done, try again.
        SystemClosed | SystemBusy | TooFrequent | OutsideHours => ChannelOutcome::RetryLater {
            reason: format!("UnionPay is not taking refunds now (respCode {code})"),
        },
        // Our message or merchant setup is wrong (keys, permissions, fields): not the
        // user's fault, and nothing was done. Retry, then a person looks.
        FormatError
        | SignatureInvalid
        | MissingElements
        | MerchantStatus
        | NoTransactionPermission
        | NoBusinessPermission => ChannelOutcome::RetryLater {
            reason: format!("UnionPay rejected our request (respCode {code}): merchant setup"),
        },
        // Definitive refusals UnionPay documents.
        TransactionFailed | NotApproved | AmountOverLimit | OriginalNotFound | OriginalMismatch
        | RiskRestricted | IssuerDeclined | InvalidCard | IssuerUnsupported | CardStatus => {
            failed(code, msg)
        }
        // "No such transaction" is a query's answer, not a refund's: it makes no sense
        // here, so it proves nothing. A code we do not know proves nothing either.
        NoSuchTransaction | Other => {
            unknown("answered the refund with a code we do not know", code)
        }
    }
}

fn classify_query(code: &str, a: &Answer) -> ChannelOutcome {
    use RespCode::*;
    match RespCode::parse(code) {
        Success => classify_original(a),
        // "No such transaction" may only mean the refund has not reached UnionPay's
        // records yet (UnionPay's query demo: status unknown, query again later or use
        // the reconciliation file). Never NotFound, which would resend at once.
        NoSuchTransaction => unknown("has no record of the refund yet; query again later", code),
        // The query itself did not get an answer, or was refused: it tells us nothing
        // about the refund, so nothing here may fail it.
        CommunicationTimeout | StatusUnknown | AcceptedQueryLater => {
            unknown("could not answer the query", code)
        }
        SuccessWithDefects
        | TransactionFailed
        | SystemClosed
        | SystemBusy
        | FormatError
        | SignatureInvalid
        | DuplicateTransaction
        | MissingElements
        | NotApproved
        | MerchantStatus
        | NoTransactionPermission
        | AmountOverLimit
        | OriginalNotFound
        | OriginalMismatch
        | TooFrequent
        | RiskRestricted
        | OutsideHours
        | NoBusinessPermission
        | IssuerDeclined
        | InvalidCard
        | IssuerUnsupported
        | CardStatus
        | Other => unknown("refused the query", code),
    }
}

/// `origRespCode` of a successful query: the refund's own status.
fn classify_original(a: &Answer) -> ChannelOutcome {
    use RespCode::*;
    let Some(code) = a.orig_resp_code.as_deref() else {
        return ChannelOutcome::Unknown {
            reason: "UnionPay query answer has no origRespCode".into(),
        };
    };
    match RespCode::parse(code) {
        // `00` and `A6` are success (UnionPay's query demo: "00 or A6: success").
        Success | SuccessWithDefects => match &a.query_id {
            Some(query_id) => ChannelOutcome::Succeeded {
                reference: query_id.clone(),
            },
            // Paid by its code but without UnionPay's id: ask again, never guess.
            None => unknown("reports the refund paid without a queryId", code),
        },
        CommunicationTimeout | StatusUnknown | AcceptedQueryLater => ChannelOutcome::Pending,
        // Our orderId with other parameters: a bug on our side, never a failure (as on
        // the refund's own answer).
        DuplicateTransaction => ChannelOutcome::Review {
            reason: "UnionPay reports our orderId seen with other parameters (origRespCode 12)"
                .into(),
        },
        // The refund was refused for a passing reason or for our own message or setup:
        // nothing moved, and it is not the user's fault. As on the refund's own answer:
        // retry later, then review; funds stay frozen.
        SystemClosed | SystemBusy | TooFrequent | OutsideHours => ChannelOutcome::RetryLater {
            reason: format!("UnionPay did not take the refund now (origRespCode {code})"),
        },
        FormatError
        | SignatureInvalid
        | MissingElements
        | MerchantStatus
        | NoTransactionPermission
        | NoBusinessPermission => ChannelOutcome::RetryLater {
            reason: format!("UnionPay rejected our refund (origRespCode {code}): merchant setup"),
        },
        // The refusals UnionPay documents: the refund was refused, before or after
        // acceptance.
        TransactionFailed | NotApproved | AmountOverLimit | OriginalNotFound | OriginalMismatch
        | RiskRestricted | IssuerDeclined | InvalidCard | IssuerUnsupported | CardStatus => {
            failed(code, &a.orig_resp_msg)
        }
        // "No such transaction" as the refund's own status, or a code we do not know:
        // nothing we can act on. Query again, then review.
        NoSuchTransaction | Other => unknown("reports a refund status we do not know", code),
    }
}

#[cfg(test)]
mod tests;
