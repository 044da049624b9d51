//! UnionPay gateway transport: refunds to the original payment (`backTransReq`,
//! `txnType=04`) and status queries (`queryTrans`, `txnType=00`). Builds the 5.1.0-signed
//! form, posts it with a timeout, verifies UnionPay's signature on the answer and hands
//! the verified fields to the classification tables in `protocol.rs`.
//!
//! UnionPay only refunds to the payment being refunded, so the routing rules never send
//! it an account payout; one that arrives anyway goes to a person.

pub mod protocol;
pub mod sign;

use super::rsa::{off_runtime, RsaSigner, RsaVerifier};
use super::{ChannelOutcome, ChannelSetupError, PayoutOrder, Target};
use crate::channels::alipay::read_key_or_dev;
use crate::config::UnionpaySettings;
use protocol::{Answer, Call, Merchant, OrderRef};
use std::collections::BTreeMap;

pub const DEV_MERCHANT_PRIVATE_KEY: &str =
    include_str!("../../../config/dev-keys/unionpay_merchant_private.pem");
pub const DEV_MERCHANT_PUBLIC_KEY: &str =
    include_str!("../../../config/dev-keys/unionpay_merchant_public.pem");
pub const DEV_PLATFORM_PRIVATE_KEY: &str =
    include_str!("../../../config/dev-keys/unionpay_platform_private.pem");
pub const DEV_PLATFORM_PUBLIC_KEY: &str =
    include_str!("../../../config/dev-keys/unionpay_platform_public.pem");

#[derive(Debug)]
pub struct UnionpayClient {
    http: reqwest::Client,
    back_url: String,
    query_url: String,
    merchant: Merchant,
    merchant_key: RsaSigner,
    unionpay_key: RsaVerifier,
}

impl UnionpayClient {
    pub fn from_settings(s: &UnionpaySettings) -> Result<Self, ChannelSetupError> {
        let bad = |message: String| ChannelSetupError::Invalid {
            channel: "unionpay",
            message,
        };
        let merchant_pem = read_key_or_dev(
            &s.merchant_private_key_file,
            DEV_MERCHANT_PRIVATE_KEY,
            "unionpay merchant private key",
        )
        .map_err(bad)?;
        let unionpay_pem = read_key_or_dev(
            &s.unionpay_public_key_file,
            DEV_PLATFORM_PUBLIC_KEY,
            "unionpay public key",
        )
        .map_err(bad)?;
        if s.mer_id.is_empty() {
            return Err(bad("mer_id must be set".into()));
        }
        super::http::check_endpoint(&s.back_url, "channels.unionpay.back_url").map_err(bad)?;
        super::http::check_endpoint(&s.query_url, "channels.unionpay.query_url").map_err(bad)?;
        // The whole call is bounded; connecting gets a shorter bound of its own, so an
        // unreachable gateway is reported as "not sent" quickly.
        let http = super::http::client(
            s.timeout_ms,
            concat!("payout-worker/", env!("CARGO_PKG_VERSION")),
        )
        .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            http,
            back_url: s.back_url.clone(),
            query_url: s.query_url.clone(),
            merchant: Merchant {
                mer_id: s.mer_id.clone(),
                cert_id: s.cert_id.clone(),
            },
            merchant_key: RsaSigner::from_pem(&merchant_pem)
                .map_err(|e| bad(format!("merchant_private_key_file: {e}")))?,
            unionpay_key: RsaVerifier::from_pem(&unionpay_pem)
                .map_err(|e| bad(format!("unionpay_public_key_file: {e}")))?,
        })
    }

    /// Sends the refund (or resends it: same `orderId`, same `txnTime`).
    pub async fn pay(&self, order: &PayoutOrder) -> ChannelOutcome {
        let Target::Refund { channel_txn_id, .. } = &order.target else {
            return not_a_refund();
        };
        let Some(currency) = protocol::currency_code(&order.currency) else {
            return ChannelOutcome::Review {
                reason: format!(
                    "UnionPay refunds cannot carry {}; nothing was sent",
                    order.currency.as_str()
                ),
            };
        };
        let o = order_ref(order);
        let params = protocol::refund_params(
            &self.merchant,
            &o,
            order.amount.minor_units(),
            currency,
            channel_txn_id,
        );
        self.call(&self.back_url, Call::Refund, &o, params).await
    }

    /// Asks what became of the refund under the leg's `orderId` and `txnTime`.
    pub async fn query(&self, order: &PayoutOrder) -> ChannelOutcome {
        if !matches!(order.target, Target::Refund { .. }) {
            return not_a_refund();
        }
        let o = order_ref(order);
        let params = protocol::query_params(&self.merchant, &o);
        self.call(&self.query_url, Call::Query, &o, params).await
    }

    async fn call(
        &self,
        url: &str,
        call: Call,
        o: &OrderRef,
        mut params: BTreeMap<String, String>,
    ) -> ChannelOutcome {
        let key = self.merchant_key.clone();
        let params = off_runtime(move || {
            sign::sign(&mut params, &key);
            params
        })
        .await;
        let form = serde_urlencoded::to_string(&params).expect("string pairs always encode");
        let request = self
            .http
            .post(url)
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=UTF-8",
            )
            .body(form);
        let (status, outcome) = match super::http::exchange("UnionPay", request).await {
            Ok(answer) => (
                answer.status,
                interpret(
                    call,
                    o,
                    answer.status,
                    &String::from_utf8_lossy(&answer.body),
                    &self.unionpay_key,
                ),
            ),
            Err(outcome) => (0, outcome),
        };
        // The order id and the outcome only: never keys, signatures or payee data.
        tracing::debug!(order_id = %o.order_id, ?call, http_status = status, ?outcome, "unionpay call");
        outcome
    }
}

/// What an HTTP answer means, with no I/O: only a 200 whose signature verifies with
/// UnionPay's key, about our order, reaches the classification table. Anything else
/// may hide a refund that went through, so it is `Unknown`.
pub(crate) fn interpret(
    call: Call,
    o: &OrderRef,
    http_status: u16,
    body: &str,
    unionpay_key: &RsaVerifier,
) -> ChannelOutcome {
    if !(200..300).contains(&http_status) {
        return ChannelOutcome::Unknown {
            reason: format!("UnionPay answered HTTP {http_status}"),
        };
    }
    let params = match sign::verify_message(body, unionpay_key) {
        Ok(p) => p,
        Err(e) => {
            return ChannelOutcome::Unknown {
                reason: format!("UnionPay answer rejected: {e}"),
            }
        }
    };
    let answer = Answer::from_params(&params);
    if !answer.is_about(o) {
        return ChannelOutcome::Unknown {
            reason: "UnionPay answered about another order".into(),
        };
    }
    protocol::classify(call, &answer)
}

/// The pair that names the leg's order at UnionPay, the same on every attempt and query.
pub(crate) fn order_ref(order: &PayoutOrder) -> OrderRef {
    OrderRef {
        order_id: protocol::order_id(&order.key),
        txn_time: protocol::txn_time(order.requested_at),
    }
}

fn not_a_refund() -> ChannelOutcome {
    ChannelOutcome::Review {
        reason: "UnionPay only refunds to the original payment; an account payout was routed to it"
            .into(),
    }
}

#[cfg(test)]
mod tests;
