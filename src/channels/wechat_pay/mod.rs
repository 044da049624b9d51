//! WeChat Pay API v3 transport: refunds to the original payment
//! (`POST /v3/refund/domestic/refunds`) and refund queries (`GET …/{out_refund_no}`).
//! Signs each request with the merchant key, sends it with a timeout, verifies the
//! platform's signature and timestamp on the answer and hands it to the classification
//! table in `protocol.rs`.
//!
//! WeChat only refunds to the payment being refunded, so the routing rules never send it
//! an account payout; one that arrives anyway goes to a person.

pub mod protocol;
pub mod sign;

use super::rsa::{off_runtime, RsaSigner, RsaVerifier};
use super::{ChannelOutcome, ChannelSetupError, PayoutOrder, Target};
use crate::channels::alipay::read_key_or_dev;
use crate::config::WechatPaySettings;
use protocol::{Call, RefundRequest};
use reqwest::{Method, Url};
use sign::{RequestToSign, ResponseHeaders};

pub const DEV_MERCHANT_PRIVATE_KEY: &str =
    include_str!("../../../config/dev-keys/wechat_merchant_private.pem");
pub const DEV_MERCHANT_PUBLIC_KEY: &str =
    include_str!("../../../config/dev-keys/wechat_merchant_public.pem");
pub const DEV_PLATFORM_PRIVATE_KEY: &str =
    include_str!("../../../config/dev-keys/wechat_platform_private.pem");
pub const DEV_PLATFORM_PUBLIC_KEY: &str =
    include_str!("../../../config/dev-keys/wechat_platform_public.pem");
/// The serial of the development platform key (`config/default.toml` names it too).
pub const DEV_PLATFORM_SERIAL_NO: &str = "5157F09EFDC096DE15EBE81A47057A7200000002";

/// WeChat Pay rejects API v3 calls without a User-Agent.
const USER_AGENT: &str = concat!("payout-worker/", env!("CARGO_PKG_VERSION"));

#[derive(Debug)]
pub struct WechatPayClient {
    http: reqwest::Client,
    /// Scheme, host and any path prefix, without a trailing slash.
    base_url: String,
    mchid: String,
    merchant_serial_no: String,
    merchant_key: RsaSigner,
    platform_key: RsaVerifier,
    platform_serial_no: String,
}

impl WechatPayClient {
    pub fn from_settings(s: &WechatPaySettings) -> Result<Self, ChannelSetupError> {
        let bad = |message: String| ChannelSetupError::Invalid {
            channel: "wechat_pay",
            message,
        };
        let merchant_pem = read_key_or_dev(
            &s.merchant_private_key_file,
            DEV_MERCHANT_PRIVATE_KEY,
            "wechat pay merchant private key",
        )
        .map_err(bad)?;
        let platform_pem = read_key_or_dev(
            &s.platform_public_key_file,
            DEV_PLATFORM_PUBLIC_KEY,
            "wechat pay platform public key",
        )
        .map_err(bad)?;
        for (name, value) in [
            ("mchid", &s.mchid),
            ("merchant_serial_no", &s.merchant_serial_no),
            ("platform_serial_no", &s.platform_serial_no),
        ] {
            if value.is_empty() {
                return Err(bad(format!("{name} must be set")));
            }
        }
        super::http::check_endpoint(&s.base_url, "channels.wechat_pay.base_url").map_err(bad)?;
        // The whole call is bounded; connecting gets a shorter bound of its own, so an
        // unreachable endpoint is reported as "not sent" quickly.
        let http = super::http::client(s.timeout_ms, USER_AGENT).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            http,
            base_url: s.base_url.trim_end_matches('/').to_owned(),
            mchid: s.mchid.clone(),
            merchant_serial_no: s.merchant_serial_no.clone(),
            merchant_key: RsaSigner::from_pem(&merchant_pem)
                .map_err(|e| bad(format!("merchant_private_key_file: {e}")))?,
            platform_key: RsaVerifier::from_pem(&platform_pem)
                .map_err(|e| bad(format!("platform_public_key_file: {e}")))?,
            platform_serial_no: s.platform_serial_no.clone(),
        })
    }

    /// Sends the refund (or resends it, with the same `out_refund_no` and body).
    pub async fn pay(&self, order: &PayoutOrder) -> ChannelOutcome {
        let Target::Refund { channel_txn_id, .. } = &order.target else {
            return not_a_refund();
        };
        let request = RefundRequest::for_order(order, channel_txn_id);
        let body = serde_json::to_vec(&request).expect("a refund request always serialises");
        self.call(
            Call::Refund,
            order,
            Method::POST,
            protocol::REFUNDS_PATH,
            body,
        )
        .await
    }

    /// Reads the refund under the leg's `out_refund_no`.
    pub async fn query(&self, order: &PayoutOrder) -> ChannelOutcome {
        if !matches!(order.target, Target::Refund { .. }) {
            return not_a_refund();
        }
        let path = protocol::refund_path(order.key.as_str());
        self.call(Call::Query, order, Method::GET, &path, Vec::new())
            .await
    }

    async fn call(
        &self,
        call: Call,
        order: &PayoutOrder,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> ChannelOutcome {
        // Appended, not joined: a base URL with a path prefix (a proxy) keeps it.
        let url = match Url::parse(&format!("{}{path}", self.base_url)) {
            Ok(u) => u,
            Err(e) => {
                return ChannelOutcome::RetryLater {
                    reason: format!("cannot build the WeChat Pay URL for {path}: {e}"),
                }
            }
        };
        // Sign the path exactly as it goes on the request line (after URL encoding).
        let path_with_query = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let authorization = {
            let (key, mchid, serial_no, verb, body) = (
                self.merchant_key.clone(),
                self.mchid.clone(),
                self.merchant_serial_no.clone(),
                method.clone(),
                body.clone(),
            );
            off_runtime(move || {
                sign::authorization(
                    &key,
                    &mchid,
                    &serial_no,
                    &RequestToSign {
                        method: verb.as_str(),
                        path_with_query: &path_with_query,
                        timestamp: chrono::Utc::now().timestamp(),
                        nonce: &sign::nonce(),
                        body: &body,
                    },
                )
            })
            .await
        };
        let mut request = self
            .http
            .request(method, url)
            .header("authorization", authorization)
            .header("accept", "application/json");
        if call == Call::Refund {
            request = request.header("content-type", "application/json");
        }
        let (status, outcome) = match super::http::exchange("WeChat Pay", request.body(body)).await
        {
            Ok(answer) => (
                answer.status,
                self.interpret(
                    call,
                    order.key.as_str(),
                    answer.status,
                    &ResponseHeaders::from_map(&answer.headers),
                    &answer.body,
                    chrono::Utc::now().timestamp(),
                ),
            ),
            Err(outcome) => (0, outcome),
        };
        // The key and the outcome only: never keys, signatures or payee data.
        tracing::debug!(out_refund_no = %order.key, ?call, http_status = status, ?outcome, "wechat pay call");
        outcome
    }

    /// What an HTTP answer means, with no I/O. A 5xx is unknown without further ado
    /// (proxies answer those unsigned); anything else must carry a valid platform
    /// signature and a fresh timestamp before the table may read it, since a 404 read
    /// as a refusal releases the user's funds.
    pub fn interpret(
        &self,
        call: Call,
        key: &str,
        http_status: u16,
        headers: &ResponseHeaders<'_>,
        body: &[u8],
        now_unix: i64,
    ) -> ChannelOutcome {
        if http_status >= 500 {
            return ChannelOutcome::Unknown {
                reason: format!("WeChat Pay answered HTTP {http_status}"),
            };
        }
        if let Err(e) = sign::verify_response(
            headers,
            body,
            &self.platform_key,
            &self.platform_serial_no,
            now_unix,
        ) {
            return ChannelOutcome::Unknown {
                reason: format!("WeChat Pay answer rejected (HTTP {http_status}): {e}"),
            };
        }
        protocol::classify(call, key, &protocol::parse_reply(http_status, body))
    }
}

fn not_a_refund() -> ChannelOutcome {
    ChannelOutcome::Review {
        reason:
            "WeChat Pay only refunds to the original payment; an account payout was routed to it"
                .into(),
    }
}

#[cfg(test)]
mod tests;
