//! The simulated Alipay OpenAPI gateway: the exact counterpart of
//! `crate::channels::alipay`, with no I/O.
//!
//! It checks the RSA2 request signature, enforces Alipay's idempotency (same key and
//! parameters: the same answer; same key, other parameters: Alipay's own "discordant"
//! error) against the shared [`Ledger`], and lets the request choose a business failure:
//! a `trade_no` or payee identity ending in `0000` is refused at once, one ending in
//! `0001` is accepted and then refused (refund) or bounced (transfer) after `settle`; a
//! transfer to a payee ending in `0002` finds our daily quota used up
//! (`EXCEED_LIMIT_DM_AMOUNT`, nothing recorded, on every attempt).
//! Time is a parameter, so settlement is tested without sleeping.

mod reply;

pub use reply::{method_of, service_unavailable, system_error, Answer};

use super::ledger::{fingerprint, Book, Entry, Fate, Ledger, Settled, State};
use crate::channels::alipay::protocol::{
    RefundBiz, RefundQueryBiz, TransferBiz, TransferQueryBiz, REFUND, REFUND_QUERY, TRANSFER,
    TRANSFER_QUERY,
};
use crate::channels::alipay::sign;
use crate::channels::rsa::{RsaSigner, RsaVerifier};
use reply::{digits, valid_key, valid_yuan, wall_clock, Inner};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

pub const CHANNEL: &str = "alipay";
const OP_REFUND: &str = "refund";
const OP_TRANSFER: &str = "transfer";
/// Alipay limits `out_request_no` and `out_biz_no` to 64 characters.
const MAX_KEY_LEN: usize = 64;

/// The simulated gateway: its keys and how long asynchronous outcomes take.
#[derive(Debug)]
pub struct AlipaySim {
    pub platform_key: RsaSigner,
    pub app_key: RsaVerifier,
    pub settle: Duration,
}

impl AlipaySim {
    /// Signs an answer as the platform: `{"<method>_response":{...},"sign":"..."}`.
    pub fn sign(&self, answer: &Answer) -> String {
        sign::sign_response(&answer.method, &answer.inner, &self.platform_key)
    }

    /// One `POST /gateway.do`: gateway checks (method, signature), then the business call
    /// (which answers an unknown method).
    pub fn handle(
        &self,
        ledger: &Ledger,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> Answer {
        let method = method_of(params);
        let gateway_error = |code: &str, msg: &str, sub_code: &str, sub_msg: &str| {
            Answer::new(method, None, Inner::fail(code, msg, sub_code, sub_msg))
        };
        if method == "error" {
            return gateway_error(
                "40001",
                "Missing Required Arguments",
                "isv.missing-method",
                "缺少方法名参数",
            );
        }
        if params.get("sign").is_none_or(|s| s.is_empty()) {
            return gateway_error(
                "40001",
                "Missing Required Arguments",
                "isv.missing-signature",
                "缺少签名参数",
            );
        }
        if params.get("sign_type").map(String::as_str) != Some("RSA2") {
            return gateway_error(
                "40002",
                "Invalid Arguments",
                "isv.invalid-signature-type",
                "无效的签名类型",
            );
        }
        if !sign::verify_request(params, &self.app_key) {
            return gateway_error(
                "40002",
                "Invalid Arguments",
                "isv.invalid-signature",
                "验签出错",
            );
        }
        let biz = params
            .get("biz_content")
            .map(String::as_str)
            .unwrap_or_default();
        self.business(ledger, method, biz, now)
    }

    /// The business call behind a verified request. `biz` is the raw `biz_content`.
    pub fn business(&self, ledger: &Ledger, method: &str, biz: &str, now: Instant) -> Answer {
        // One lock for look-up and insert: concurrent calls with one new key pay once.
        let mut book = ledger.lock();
        match method {
            REFUND => with_biz(method, biz, |b| self.refund(&mut book, b, now)),
            REFUND_QUERY => with_biz(method, biz, |b| refund_query(&book, b, now)),
            TRANSFER => with_biz(method, biz, |b| self.transfer(&mut book, b, now)),
            TRANSFER_QUERY => with_biz(method, biz, |b| transfer_query(&book, b, now)),
            _ => Answer::new(
                method,
                None,
                Inner::fail(
                    "40002",
                    "Invalid Arguments",
                    "isv.invalid-method",
                    "不存在的方法名",
                ),
            ),
        }
    }

    fn refund(&self, book: &mut Book<'_>, biz: RefundBiz, now: Instant) -> Answer {
        let key = biz.out_request_no.as_str();
        let answer = |inner| Answer::new(REFUND, Some(key), inner);
        if !valid_key(key) || biz.trade_no.is_empty() || !valid_yuan(&biz.refund_amount) {
            return answer(Inner::business("ACQ.INVALID_PARAMETER", "参数无效"));
        }
        let print = fingerprint(&[&biz.trade_no, &biz.refund_amount]);
        if let Some(seen) = book.get(CHANNEL, key) {
            if !seen.same_request(OP_REFUND, &print) {
                return answer(Inner::business(
                    "ACQ.DISCORDANT_REPEAT_REQUEST",
                    "请求信息不一致",
                ));
            }
            return answer(refund_reply(seen, now));
        }
        let (fate, payouts) = if biz.trade_no.ends_with("0000") || book.past_window(&biz.trade_no) {
            (Fate::Refused, 0)
        } else if biz.trade_no.ends_with("0001") {
            let at = now + self.settle;
            (
                Fate::Settles {
                    at,
                    then: Settled::Refused,
                },
                0,
            )
        } else {
            (Fate::Paid, 1)
        };
        let entry = book.open(Entry {
            channel: CHANNEL,
            key: key.to_owned(),
            op: OP_REFUND,
            fingerprint: print,
            amount: biz.refund_amount.clone(),
            reference: biz.trade_no.clone(),
            accepted_on: wall_clock(),
            fate,
            payouts,
        });
        answer(refund_reply(entry, now))
    }

    fn transfer(&self, book: &mut Book<'_>, biz: TransferBiz, now: Instant) -> Answer {
        let key = biz.out_biz_no.as_str();
        let answer = |inner| Answer::new(TRANSFER, Some(key), inner);
        let payee = &biz.payee_info;
        if !valid_key(key) || payee.identity.is_empty() || !valid_yuan(&biz.trans_amount) {
            return answer(Inner::business("INVALID_PARAMETER", "参数有误"));
        }
        let print = fingerprint(&[
            &biz.trans_amount,
            &payee.identity_type,
            &payee.identity,
            &payee.name,
        ]);
        if let Some(seen) = book.get(CHANNEL, key) {
            if !seen.same_request(OP_TRANSFER, &print) {
                return answer(Inner::business(
                    "PAYMENT_INFO_INCONSISTENCY",
                    "两次请求商户单号一样，但是参数不一致",
                ));
            }
            return answer(transfer_reply(seen, now));
        }
        // Our merchant quota for the day is used up: refused before a transfer exists, so
        // a query finds nothing and every resend gets the same answer.
        if payee.identity.ends_with("0002") {
            return answer(Inner::business("EXCEED_LIMIT_DM_AMOUNT", "日累计额度超限"));
        }
        let (fate, payouts) = if payee.identity.ends_with("0000") {
            (Fate::Refused, 0)
        } else if payee.identity.ends_with("0001") {
            // The money leaves, then the destination sends it back: counted, then undone.
            let at = now + self.settle;
            (
                Fate::Settles {
                    at,
                    then: Settled::Bounced,
                },
                1,
            )
        } else {
            (Fate::Paid, 1)
        };
        let entry = book.open(Entry {
            channel: CHANNEL,
            key: key.to_owned(),
            op: OP_TRANSFER,
            fingerprint: print,
            amount: biz.trans_amount.clone(),
            reference: digits("order_id", key),
            accepted_on: wall_clock(),
            fate,
            payouts,
        });
        answer(transfer_reply(entry, now))
    }
}

/// Parses `biz_content` or answers the way Alipay's gateway does for bad parameters.
fn with_biz<B: DeserializeOwned>(method: &str, biz: &str, f: impl FnOnce(B) -> Answer) -> Answer {
    match serde_json::from_str::<B>(biz) {
        Ok(b) => f(b),
        Err(_) => Answer::new(
            method,
            None,
            Inner::fail(
                "40002",
                "Invalid Arguments",
                "isv.invalid-parameter",
                "参数无效",
            ),
        ),
    }
}

/// The answer to a refund (first time or repeat) from the key's record.
fn refund_reply(e: &Entry, now: Instant) -> Inner {
    let accepted = || {
        Inner::ok()
            .with("trade_no", e.reference.clone())
            .with("out_trade_no", digits("out_trade_no", &e.reference))
    };
    match (e.state(now), e.fate) {
        (State::Paid, _) => accepted()
            .with("fund_change", "Y")
            .with("refund_fee", e.amount.clone())
            .with("gmt_refund_pay", e.accepted_on.clone()),
        (State::Pending, _) => accepted()
            .with("fund_change", "N")
            .with("refund_fee", "0.00"),
        (State::Refused, Fate::Refused) => Inner::business("ACQ.TRADE_NOT_EXIST", "交易不存在"),
        (State::Refused | State::Bounced, _) => {
            Inner::business("ACQ.TRADE_NOT_ALLOW_REFUND", "当前交易不允许退款")
        }
    }
}

/// Refund query: code 10000 either way; only a refund that stayed paid has a status
/// ("not found" and "not refunded" are the same answer, as on real Alipay).
fn refund_query(book: &Book<'_>, biz: RefundQueryBiz, now: Instant) -> Answer {
    let key = biz.out_request_no.as_str();
    let found = book.get(CHANNEL, key).filter(|e| {
        e.op == OP_REFUND && e.reference == biz.trade_no && e.state(now) == State::Paid
    });
    let base = Inner::ok()
        .with("trade_no", biz.trade_no.clone())
        .with("out_request_no", key);
    let inner = match found {
        Some(e) => base
            .with("out_trade_no", digits("out_trade_no", &e.reference))
            .with("refund_amount", e.amount.clone())
            .with("total_amount", e.amount.clone())
            .with("refund_status", "REFUND_SUCCESS")
            .with("gmt_refund_pay", e.accepted_on.clone()),
        None => base,
    };
    Answer::new(REFUND_QUERY, Some(key), inner)
}

/// The answer to a transfer (first time or repeat) from the key's record.
fn transfer_reply(e: &Entry, now: Instant) -> Inner {
    let status = match (e.state(now), e.fate) {
        (State::Refused, Fate::Refused) => {
            return Inner::business("PAYEE_NOT_EXIST", "收款账号不存在");
        }
        (State::Paid, _) => "SUCCESS",
        (State::Pending, _) => "DEALING",
        (State::Bounced, _) => "REFUND",
        (State::Refused, _) => "FAIL",
    };
    Inner::ok()
        .with("out_biz_no", e.key.clone())
        .with("order_id", e.reference.clone())
        .with("pay_fund_order_id", digits("pay_fund_order_id", &e.key))
        .with("status", status)
        .with("trans_date", e.accepted_on.clone())
}

/// Transfer query: `ORDER_NOT_EXIST` for a key that never became an order (unknown, or
/// refused at once), otherwise the order's status now.
fn transfer_query(book: &Book<'_>, biz: TransferQueryBiz, now: Instant) -> Answer {
    let key = biz.out_biz_no.as_str();
    let order = book
        .get(CHANNEL, key)
        .filter(|e| e.op == OP_TRANSFER && e.fate != Fate::Refused);
    let inner = match order {
        None => Inner::business("ORDER_NOT_EXIST", "转账订单不存在"),
        Some(e) => {
            let state = e.state(now);
            let reply = Inner::ok()
                .with("order_id", e.reference.clone())
                .with("pay_fund_order_id", digits("pay_fund_order_id", &e.key))
                .with("out_biz_no", key)
                .with("trans_amount", e.amount.clone());
            match state {
                State::Paid => reply
                    .with("status", "SUCCESS")
                    .with("pay_date", e.accepted_on.clone()),
                State::Pending => reply.with("status", "DEALING"),
                State::Bounced => reply
                    .with("status", "REFUND")
                    .with("fail_reason", "收款方账户异常，资金已退回"),
                State::Refused => reply.with("status", "FAIL").with("fail_reason", "转账失败"),
            }
        }
    };
    Answer::new(TRANSFER_QUERY, Some(key), inner)
}

#[cfg(test)]
mod tests;
