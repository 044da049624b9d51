//! The simulated UnionPay gateway's decisions, with no I/O: the exact counterpart of
//! `crate::channels::unionpay`.
//!
//! It checks the 5.1.0 request signature, enforces UnionPay's idempotency against the
//! shared [`Ledger`] (same `orderId` and parameters: the same answer; same `orderId`,
//! other parameters: `12` duplicate transaction), and lets the request choose a business
//! failure: an `origQryId` ending in `0000` is refused at once (`35`, nothing moves), one
//! ending in `0001` is accepted and then refused after `settle` (`origRespCode=60`), one
//! ending in `0003` is accepted as `A6` ("success with defects") and paid like any other.
//! Everything else is accepted (`00`) and paid after `settle`; until then a query shows
//! `origRespCode=05`. Time is a parameter, so settlement is tested without sleeping.

use super::super::ledger::{fingerprint, Book, Entry, Fate, Ledger, Settled, State};
use crate::channels::rsa::RsaVerifier;
use crate::channels::unionpay::protocol::{
    ACCESS_MERCHANT, BIZ_QUERY, BIZ_REFUND, SIGN_METHOD, TXN_QUERY, TXN_REFUND, TXN_SUB_TYPE,
    VERSION,
};
use crate::channels::unionpay::sign;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const CHANNEL: &str = "unionpay";
const OP_REFUND: &str = "refund";

/// Which gateway address a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `backTransReq.do`: refunds.
    BackTrans,
    /// `queryTrans.do`: status queries.
    Query,
}

/// An answer before signing: its fields, and what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub fields: BTreeMap<String, String>,
    /// The `orderId` it concerns, when the request named a valid one.
    pub order_id: Option<String>,
}

impl Answer {
    /// Codes only: safe to log.
    pub fn outcome(&self) -> String {
        let code = |k: &str| self.fields.get(k).map_or("-", String::as_str);
        match self.fields.get("origRespCode") {
            Some(orig) => format!("respCode={} origRespCode={orig}", code("respCode")),
            None => format!("respCode={}", code("respCode")),
        }
    }
}

/// The fields UnionPay echoes back, taken from the request only when they cannot break
/// the `k=v&` answer (no separators or brackets).
const ECHOED: [&str; 10] = [
    "version",
    "encoding",
    "signMethod",
    "txnType",
    "txnSubType",
    "bizType",
    "accessType",
    "merId",
    "orderId",
    "txnTime",
];

/// Builds answers to one request.
struct Reply<'a> {
    request: &'a BTreeMap<String, String>,
}

impl Reply<'_> {
    fn answer(&self, code: &str, msg: &str, extra: &[(&str, String)]) -> Answer {
        let mut fields = BTreeMap::new();
        for k in ECHOED {
            if let Some(v) = self.request.get(k).filter(|v| echo_safe(v)) {
                fields.insert(k.to_owned(), v.clone());
            }
        }
        for (k, v) in extra {
            fields.insert((*k).to_owned(), v.clone());
        }
        fields.insert("respCode".into(), code.into());
        fields.insert("respMsg".into(), msg.into());
        Answer {
            order_id: fields.get("orderId").cloned(),
            fields,
        }
    }
}

/// Answers a request the gateway was too busy to carry out (injected faults): `03`
/// communication timeout or `04` status unknown. Nothing was recorded.
pub fn not_processed(request: &BTreeMap<String, String>, code: &str) -> Answer {
    let msg = match code {
        "03" => "交易通讯超时，请发起查询交易",
        _ => "交易状态未明，请查询对账结果",
    };
    Reply { request }.answer(code, msg, &[])
}

/// One request to the gateway: common checks, then the refund or the query.
pub fn handle(
    merchant_key: &RsaVerifier,
    ledger: &Ledger,
    settle: Duration,
    endpoint: Endpoint,
    request: &BTreeMap<String, String>,
    now: Instant,
) -> Answer {
    let reply = Reply { request };
    let field = |k: &str| request.get(k).map(String::as_str).unwrap_or_default();
    if field("version") != VERSION || field("signMethod") != SIGN_METHOD {
        return reply.answer("10", "报文格式错误[version/signMethod]", &[]);
    }
    if !sign::verify(request, merchant_key) {
        return reply.answer("11", "验证签名失败", &[]);
    }
    let (txn_type, biz_type, required): (&str, &str, &[&str]) = match endpoint {
        Endpoint::BackTrans => (TXN_REFUND, BIZ_REFUND, &REFUND_FIELDS),
        Endpoint::Query => (TXN_QUERY, BIZ_QUERY, &QUERY_FIELDS),
    };
    // The transaction type decides which fields are due, so it is checked first.
    if field("txnType") != txn_type {
        return reply.answer("10", "报文格式错误[txnType]", &[]);
    }
    if let Some(missing) = required.iter().find(|k| field(k).is_empty()) {
        return reply.answer("13", &format!("报文交易要素缺失[{missing}]"), &[]);
    }
    if field("txnSubType") != TXN_SUB_TYPE
        || field("bizType") != biz_type
        || field("accessType") != ACCESS_MERCHANT
    {
        return reply.answer("10", "报文格式错误[txnSubType/bizType/accessType]", &[]);
    }
    let order = Order {
        mer_id: field("merId"),
        order_id: field("orderId"),
        txn_time: field("txnTime"),
    };
    if let Some(bad) = order.malformed() {
        return reply.answer("10", &format!("报文格式错误[{bad}]"), &[]);
    }
    // One lock for look-up and insert: concurrent calls with one new orderId pay once.
    let mut book = ledger.lock();
    match endpoint {
        Endpoint::BackTrans => refund(&mut book, &reply, &order, settle, now),
        Endpoint::Query => query(&book, &reply, &order, now),
    }
}

const REFUND_FIELDS: [&str; 10] = [
    "txnType",
    "txnSubType",
    "bizType",
    "accessType",
    "channelType",
    "merId",
    "orderId",
    "txnTime",
    "txnAmt",
    "origQryId",
];
const QUERY_FIELDS: [&str; 7] = [
    "txnType",
    "txnSubType",
    "bizType",
    "accessType",
    "merId",
    "orderId",
    "txnTime",
];

/// What names an order at UnionPay.
struct Order<'a> {
    mer_id: &'a str,
    order_id: &'a str,
    txn_time: &'a str,
}

impl Order<'_> {
    fn malformed(&self) -> Option<&'static str> {
        if !is_plain(self.mer_id, 15) {
            Some("merId")
        } else if !(8..=32).contains(&self.order_id.len()) || !is_plain(self.order_id, 32) {
            Some("orderId")
        } else if self.txn_time.len() != 14 || !self.txn_time.bytes().all(|b| b.is_ascii_digit()) {
            Some("txnTime")
        } else {
            None
        }
    }

    /// UnionPay's own id for the order (`queryId`, 21 digits): derived, so a repeat and
    /// a query recompute it, and a query with another `txnTime` cannot match it.
    fn query_id(&self) -> String {
        let hash = Sha256::new()
            .chain_update(self.mer_id)
            .chain_update([0u8])
            .chain_update(self.order_id)
            .chain_update([0u8])
            .chain_update(self.txn_time)
            .finalize();
        let mut n = [0u8; 16];
        n.copy_from_slice(&hash[..16]);
        format!("{:021}", u128::from_be_bytes(n) % 10u128.pow(21))
    }
}

fn echo_safe(s: &str) -> bool {
    s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"&={}[]".contains(&b))
}

fn is_plain(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Fen as UnionPay takes it: digits, no leading zero, more than zero.
fn valid_fen(s: &str) -> bool {
    (1..=12).contains(&s.len()) && !s.starts_with('0') && s.bytes().all(|b| b.is_ascii_digit())
}

fn refund(
    book: &mut Book<'_>,
    reply: &Reply<'_>,
    order: &Order<'_>,
    settle: Duration,
    now: Instant,
) -> Answer {
    let field = |k: &str| reply.request.get(k).map(String::as_str).unwrap_or_default();
    let (amount, orig, currency) = (field("txnAmt"), field("origQryId"), field("currencyCode"));
    if !valid_fen(amount) {
        return reply.answer("10", "报文格式错误[txnAmt]", &[]);
    }
    if !is_plain(orig, 64) {
        return reply.answer("10", "报文格式错误[origQryId]", &[]);
    }
    if !currency.is_empty() && currency != "156" {
        return reply.answer("10", "报文格式错误[currencyCode]", &[]);
    }
    let print = fingerprint(&[order.mer_id, order.txn_time, amount, orig, currency]);
    if let Some(seen) = book.get(CHANNEL, order.order_id) {
        if !seen.same_request(OP_REFUND, &print) {
            return reply.answer("12", "重复交易", &[]);
        }
        return refund_reply(reply, seen, orig);
    }
    let (fate, payouts) = if orig.ends_with("0000") || book.past_window(orig) {
        (Fate::Refused, 0)
    } else if orig.ends_with("0001") {
        let then = Settled::Refused;
        (
            Fate::Settles {
                at: now + settle,
                then,
            },
            0,
        )
    } else {
        // Counted now, paid once it settles: the ledger shows 0 moves until then.
        let then = Settled::Paid;
        (
            Fate::Settles {
                at: now + settle,
                then,
            },
            1,
        )
    };
    let entry = book.open(Entry {
        channel: CHANNEL,
        key: order.order_id.to_owned(),
        op: OP_REFUND,
        fingerprint: print,
        amount: amount.to_owned(),
        reference: order.query_id(),
        accepted_on: beijing_now(),
        fate,
        payouts,
    });
    refund_reply(reply, entry, orig)
}

/// The answer to a refund (first time or repeat) from the order's record.
fn refund_reply(reply: &Reply<'_>, e: &Entry, orig: &str) -> Answer {
    let extra = [
        ("txnAmt", e.amount.clone()),
        ("currencyCode", "156".to_owned()),
        ("origQryId", orig.to_owned()),
    ];
    match e.fate {
        Fate::Refused => reply.answer("35", "原交易不存在或状态不正确", &extra),
        Fate::Paid | Fate::Settles { .. } => {
            let mut accepted = extra.to_vec();
            accepted.push(("queryId", e.reference.clone()));
            if orig.ends_with("0003") {
                reply.answer("A6", "有缺陷的成功", &accepted)
            } else {
                reply.answer("00", "成功[0000000]", &accepted)
            }
        }
    }
}

/// A status query: `34` unless an order with this `orderId` *and* `txnTime` exists.
fn query(book: &Book<'_>, reply: &Reply<'_>, order: &Order<'_>, now: Instant) -> Answer {
    let query_id = order.query_id();
    let found = book
        .get(CHANNEL, order.order_id)
        .filter(|e| e.op == OP_REFUND && e.reference == query_id);
    let Some(e) = found else {
        return reply.answer("34", "查无此交易", &[]);
    };
    let (orig_code, orig_msg) = match (e.state(now), e.fate) {
        (State::Pending, _) => ("05", "交易已受理，请稍后查询交易结果"),
        (State::Paid, _) => ("00", "成功[0000000]"),
        (State::Refused, Fate::Refused) => ("35", "原交易不存在或状态不正确"),
        (State::Refused | State::Bounced, _) => ("60", "交易失败，详情请咨询您的发卡行"),
    };
    let extra = [
        ("queryId", query_id),
        ("txnAmt", e.amount.clone()),
        ("currencyCode", "156".to_owned()),
        ("origRespCode", orig_code.to_owned()),
        ("origRespMsg", orig_msg.to_owned()),
    ];
    reply.answer("00", "成功[0000000]", &extra)
}

/// Now on UnionPay's clock (UTC+8), for the ledger's display-only acceptance time.
fn beijing_now() -> String {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    chrono::Utc::now()
        .with_timezone(&china)
        .format("%Y%m%d%H%M%S")
        .to_string()
}
