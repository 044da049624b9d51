//! The simulated WeChat refund API's decisions, with no I/O: create a refund, read one.
//!
//! Every refund is asynchronous, as on WeChat: a new key is accepted as `PROCESSING` and
//! settles after `settle` to `SUCCESS`, or to `CLOSED` when its `transaction_id` ends in
//! `0001`; one ending in `0000` names a payment WeChat does not know (404, nothing
//! moves); one ending in `0002` finds our merchant balance too low (403 `NOT_ENOUGH`,
//! nothing created, on every attempt: the merchant-side refusal of issue 14). Idempotency is the shared [`Ledger`]'s: the same key and parameters get the
//! refund's current state, the same key with other parameters `INVALID_REQUEST`.
//! Time is a parameter, so settlement is tested without sleeping.

use crate::channels::wechat_pay::protocol::{
    ErrorBody, RefundObject, RefundRequest, ResponseAmount, MAX_OUT_REFUND_NO,
};
use crate::sim::ledger::{fingerprint, Book, Entry, Fate, Settled, State};
use axum::http::StatusCode;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const CHANNEL: &str = "wechat_pay";
const OP_REFUND: &str = "refund";
/// The only currency WeChat refunds domestic payments in.
const CURRENCY: &str = "CNY";

/// The moment a call is handled: the monotonic clock for settlement, the wall clock for
/// timestamps WeChat prints (and for the request signature's skew check).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    pub instant: Instant,
    pub unix: i64,
}

/// An answer before signing: HTTP status, the exact body, what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    pub key: Option<String>,
    /// Status or error code: safe to log (no payee data).
    pub outcome: String,
}

impl Answer {
    pub fn error(status: StatusCode, code: &str, message: &str, key: Option<&str>) -> Self {
        let body = ErrorBody {
            code: code.to_owned(),
            message: message.to_owned(),
        };
        Self {
            status,
            body: serde_json::to_string(&body).expect("an error body serialises"),
            key: key.map(str::to_owned),
            outcome: code.to_owned(),
        }
    }

    fn refund(r: &RefundObject) -> Self {
        Self {
            status: StatusCode::OK,
            body: serde_json::to_string(r).expect("a refund object serialises"),
            key: Some(r.out_refund_no.clone()),
            outcome: r.status.clone(),
        }
    }
}

fn param_error(key: Option<&str>) -> Answer {
    Answer::error(StatusCode::BAD_REQUEST, "PARAM_ERROR", "参数错误", key)
}

fn not_found(key: &str) -> Answer {
    Answer::error(
        StatusCode::NOT_FOUND,
        "RESOURCE_NOT_EXISTS",
        "订单不存在",
        Some(key),
    )
}

/// WeChat's rule for merchant numbers: 1–64 of `[0-9A-Za-z_-|*@]`.
pub fn valid_out_refund_no(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_OUT_REFUND_NO
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-|*@".contains(&b))
}

/// `POST /v3/refund/domestic/refunds` behind a verified signature. `totals` holds each
/// key's stated order total, which the ledger's channel-neutral record does not keep;
/// it is written and read under the ledger's lock.
pub fn create(
    book: &mut Book<'_>,
    totals: &mut HashMap<String, i64>,
    settle: Duration,
    body: &[u8],
    now: Now,
) -> Answer {
    let Ok(req) = serde_json::from_slice::<RefundRequest>(body) else {
        return param_error(None);
    };
    let key = req.out_refund_no.as_str();
    let amount = &req.amount;
    if !valid_out_refund_no(key)
        || req.transaction_id.is_empty()
        || req.transaction_id.len() > 32
        || amount.refund < 1
        || amount.total < amount.refund
        || amount.currency != CURRENCY
    {
        return param_error(Some(key));
    }
    // `reason` is a display text and stays out: a repeat is the same refund if it moves
    // the same money from the same payment.
    let print = fingerprint(&[
        &req.transaction_id,
        &amount.refund.to_string(),
        &amount.total.to_string(),
        &amount.currency,
    ]);
    if let Some(seen) = book.get(CHANNEL, key) {
        if !seen.same_request(OP_REFUND, &print) {
            return Answer::error(
                StatusCode::BAD_REQUEST,
                "INVALID_REQUEST",
                "商户退款单号重复，但请求参数与原请求不一致",
                Some(key),
            );
        }
        return reply(seen, totals, settle, now);
    }
    // Our balance is too low: refused before a refund exists, so a query finds nothing
    // and every resend gets the same answer.
    if req.transaction_id.ends_with("0002") {
        return Answer::error(
            StatusCode::FORBIDDEN,
            "NOT_ENOUGH",
            "基本账户余额不足，请充值后重新发起",
            Some(key),
        );
    }
    let at = now.instant + settle;
    let (fate, payouts) =
        if req.transaction_id.ends_with("0000") || book.past_window(&req.transaction_id) {
            (Fate::Refused, 0)
        } else if req.transaction_id.ends_with("0001") {
            (
                Fate::Settles {
                    at,
                    then: Settled::Refused,
                },
                0,
            )
        } else {
            (
                Fate::Settles {
                    at,
                    then: Settled::Paid,
                },
                1,
            )
        };
    totals.insert(key.to_owned(), amount.total);
    let entry = book.open(Entry {
        channel: CHANNEL,
        key: key.to_owned(),
        op: OP_REFUND,
        fingerprint: print,
        amount: amount.refund.to_string(),
        // WeChat's id of the refunded payment; the refund's own id is derived from the key.
        reference: req.transaction_id.clone(),
        accepted_on: china_time(now.unix),
        fate,
        payouts,
    });
    reply(entry, totals, settle, now)
}

/// `GET /v3/refund/domestic/refunds/{out_refund_no}`: the refund as it stands, or 404
/// for a key that never became a refund.
pub fn get(
    book: &Book<'_>,
    totals: &HashMap<String, i64>,
    settle: Duration,
    key: &str,
    now: Now,
) -> Answer {
    if !valid_out_refund_no(key) {
        return param_error(Some(key));
    }
    match book.get(CHANNEL, key).filter(|e| e.op == OP_REFUND) {
        Some(e) => reply(e, totals, settle, now),
        None => not_found(key),
    }
}

/// A key's answer now, from its record (the same for a first call, a repeat, a query).
fn reply(e: &Entry, totals: &HashMap<String, i64>, settle: Duration, now: Now) -> Answer {
    let status = match (e.state(now.instant), e.fate) {
        // Refused at once: no refund was ever created under this key.
        (State::Refused, Fate::Refused) => return not_found(&e.key),
        (State::Pending, _) => "PROCESSING",
        (State::Paid, _) => "SUCCESS",
        (State::Refused, _) => "CLOSED",
        // Returned by the destination after apparent success: WeChat's ABNORMAL.
        (State::Bounced, _) => "ABNORMAL",
    };
    let refund: i64 = e.amount.parse().unwrap_or_default();
    let total = totals.get(&e.key).copied().unwrap_or(refund);
    let success_time = (status == "SUCCESS").then(|| {
        chrono::DateTime::parse_from_rfc3339(&e.accepted_on)
            .map(|t| (t + chrono::TimeDelta::from_std(settle).unwrap_or_default()).to_rfc3339())
            .unwrap_or_else(|_| e.accepted_on.clone())
    });
    Answer::refund(&RefundObject {
        refund_id: refund_id(&e.key),
        out_refund_no: e.key.clone(),
        transaction_id: e.reference.clone(),
        channel: Some("ORIGINAL".into()),
        user_received_account: Some("支付用户零钱".into()),
        success_time,
        create_time: Some(e.accepted_on.clone()),
        status: status.into(),
        amount: Some(ResponseAmount {
            total,
            refund,
            payer_total: total,
            payer_refund: refund,
            currency: CURRENCY.into(),
        }),
    })
}

/// A stable WeChat-looking refund id ("50" and 27 digits) for a key: repeats and
/// queries agree without storing it.
pub fn refund_id(key: &str) -> String {
    let hash = Sha256::new()
        .chain_update(b"refund_id\0")
        .chain_update(key.as_bytes())
        .finalize();
    let (mut hi, mut lo) = ([0u8; 8], [0u8; 8]);
    hi.copy_from_slice(&hash[..8]);
    lo.copy_from_slice(&hash[8..16]);
    format!(
        "50{:013}{:014}",
        u64::from_be_bytes(hi) % 10_000_000_000_000,
        u64::from_be_bytes(lo) % 100_000_000_000_000
    )
}

/// Unix seconds on WeChat's clock (UTC+8), RFC 3339 as its `*_time` fields print it.
pub fn china_time(unix: i64) -> String {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    chrono::DateTime::from_timestamp(unix, 0)
        .unwrap_or_default()
        .with_timezone(&china)
        .to_rfc3339()
}
