//! The simulator's WeChat Pay API v3 side: `POST /v3/refund/domestic/refunds` and
//! `GET /v3/refund/domestic/refunds/{out_refund_no}`, JSON requests signed by the
//! merchant (`WECHATPAY2-SHA256-RSA2048`), every answer signed with the platform key in
//! the `Wechatpay-*` headers.
//!
//! The refund decisions live in [`refunds`] (no I/O, time injected); this file checks
//! the request signature, applies injected faults the way WeChat would show them, signs
//! answers and speaks HTTP. It is the exact counterpart of `crate::channels::wechat_pay`
//! and shares its wire types and signing code.

pub mod refunds;

use super::faults::Fault;
use super::ledger::Ledger;
use super::Sim;
use crate::channels::alipay::read_key_or_dev;
use crate::channels::rsa::{RsaSigner, RsaVerifier};
use crate::channels::wechat_pay::protocol::REFUNDS_PATH;
use crate::channels::wechat_pay::{
    sign, DEV_MERCHANT_PUBLIC_KEY, DEV_PLATFORM_PRIVATE_KEY, DEV_PLATFORM_SERIAL_NO,
};
use crate::config::SimSettings;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use refunds::{Answer, Now};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which API a request reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    CreateRefund,
    GetRefund { out_refund_no: String },
}

/// A request as the signature sees it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path_with_query: &'a str,
    pub authorization: Option<&'a str>,
    pub body: &'a [u8],
}

/// What goes back over HTTP.
#[derive(Debug, PartialEq, Eq)]
pub enum Wire {
    /// An answer from WeChat itself, signed in the `Wechatpay-*` headers.
    Signed {
        status: StatusCode,
        body: String,
        timestamp: String,
        nonce: String,
        signature: String,
    },
    /// An HTTP failure from something in front of WeChat: plain text, unsigned.
    Plain(StatusCode, &'static str),
}

/// The simulated API's keys and the one thing the shared ledger does not keep for it.
#[derive(Debug)]
pub struct WechatSim {
    /// Signs answers as the WeChat Pay platform.
    platform_key: RsaSigner,
    /// Sent as `Wechatpay-Serial`: the serial of the development platform key, which is
    /// what `channels.wechat_pay.platform_serial_no` names by default.
    platform_serial: String,
    /// Verifies the merchant's (the worker's) requests.
    merchant_key: RsaVerifier,
    /// Each key's stated order total (see [`refunds::create`]). A std Mutex, always
    /// taken after the ledger's and never held across an await.
    totals: Mutex<HashMap<String, i64>>,
}

impl WechatSim {
    pub fn from_settings(s: &SimSettings) -> Result<Self, String> {
        let platform_pem = read_key_or_dev(
            &s.wechat_platform_private_key_file,
            DEV_PLATFORM_PRIVATE_KEY,
            "wechat pay platform private key",
        )?;
        let merchant_pem = read_key_or_dev(
            &s.wechat_merchant_public_key_file,
            DEV_MERCHANT_PUBLIC_KEY,
            "wechat pay merchant public key",
        )?;
        Ok(Self::new(
            RsaSigner::from_pem(&platform_pem)
                .map_err(|e| format!("sim.wechat_platform_private_key_file: {e}"))?,
            RsaVerifier::from_pem(&merchant_pem)
                .map_err(|e| format!("sim.wechat_merchant_public_key_file: {e}"))?,
        ))
    }

    pub fn new(platform_key: RsaSigner, merchant_key: RsaVerifier) -> Self {
        Self {
            platform_key,
            platform_serial: DEV_PLATFORM_SERIAL_NO.to_owned(),
            merchant_key,
            totals: Mutex::new(HashMap::new()),
        }
    }

    /// One call that reached WeChat: the signature check, then the refund API.
    pub fn handle(
        &self,
        ledger: &Ledger,
        settle: Duration,
        endpoint: &Endpoint,
        req: &Request<'_>,
        now: Now,
    ) -> Answer {
        let verified = req.authorization.is_some_and(|auth| {
            sign::verify_request(
                auth,
                req.method,
                req.path_with_query,
                req.body,
                &self.merchant_key,
                now.unix,
            )
            .is_ok()
        });
        if !verified {
            return Answer::error(
                StatusCode::UNAUTHORIZED,
                "SIGN_ERROR",
                "签名错误，请检查后再试",
                None,
            );
        }
        // Ledger first, then totals: look-up and insert under one lock, so concurrent
        // calls with one new key refund once.
        let mut book = ledger.lock();
        let mut totals = self.totals.lock().unwrap_or_else(|p| p.into_inner());
        match endpoint {
            Endpoint::CreateRefund => {
                refunds::create(&mut book, &mut totals, settle, req.body, now)
            }
            Endpoint::GetRefund { out_refund_no } => {
                refunds::get(&book, &totals, settle, out_refund_no, now)
            }
        }
    }

    /// Signs an answer as the platform.
    pub fn sign(&self, answer: &Answer, unix_now: i64) -> Wire {
        let timestamp = unix_now.to_string();
        let nonce = sign::nonce();
        let signature = sign::sign_response(
            &self.platform_key,
            &timestamp,
            &nonce,
            answer.body.as_bytes(),
        );
        Wire::Signed {
            status: answer.status,
            body: answer.body.clone(),
            timestamp,
            nonce,
            signature,
        }
    }

    /// One call under a drawn fault (a latency spike has already been waited out).
    /// Returns the reply and, when the request reached WeChat, its answer.
    pub fn call(
        &self,
        fault: Option<Fault>,
        ledger: &Ledger,
        settle: Duration,
        endpoint: &Endpoint,
        req: &Request<'_>,
        now: Now,
    ) -> (Wire, Option<Answer>) {
        let handle = || self.handle(ledger, settle, endpoint, req, now);
        let answer = match fault {
            Some(Fault::BadGateway) => {
                return (
                    Wire::Plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway"),
                    None,
                )
            }
            // WeChat's own "busy" answers; the request was not carried out.
            Some(Fault::ServiceUnavailable) => {
                let busy = Answer::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "FREQUENCY_LIMITED",
                    "请求频率超过限制",
                    None,
                );
                return (self.sign(&busy, now.unix), None);
            }
            Some(Fault::SystemError) => {
                let busy = Answer::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "SYSTEM_ERROR",
                    "系统繁忙，请稍后重试",
                    None,
                );
                return (self.sign(&busy, now.unix), None);
            }
            Some(Fault::LostAnswer) => {
                // Carried out for real (a refund may be created), then the answer is lost.
                let done = handle();
                let reply = Wire::Plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error",
                );
                return (reply, Some(done));
            }
            Some(Fault::LatencySpike) | None => handle(),
        };
        (self.sign(&answer, now.unix), Some(answer))
    }
}

/// This channel's HTTP routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(REFUNDS_PATH, post(create_refund))
        .route(
            &format!("{REFUNDS_PATH}/{{out_refund_no}}"),
            get(get_refund),
        )
}

async fn create_refund(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&sim, Endpoint::CreateRefund, "POST", &uri, &headers, &body).await
}

async fn get_refund(
    State(sim): State<Arc<Sim>>,
    Path(out_refund_no): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let endpoint = Endpoint::GetRefund { out_refund_no };
    serve(&sim, endpoint, "GET", &uri, &headers, &[]).await
}

async fn serve(
    sim: &Sim,
    endpoint: Endpoint,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let fault = sim.before_call().await;
    let path_with_query = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned());
    let req = Request {
        method,
        path_with_query: &path_with_query,
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
        body,
    };
    let now = Now {
        instant: Instant::now(),
        unix: chrono::Utc::now().timestamp(),
    };
    let (wire, answer) = sim
        .wechat_pay
        .call(fault, &sim.ledger, sim.settle, &endpoint, &req, now);
    // Keys and outcomes only: never the Authorization header or signatures.
    tracing::debug!(
        channel = refunds::CHANNEL,
        method,
        key = answer
            .as_ref()
            .and_then(|a| a.key.as_deref())
            .unwrap_or("-"),
        outcome = answer
            .as_ref()
            .map_or("not processed", |a| a.outcome.as_str()),
        fault = fault.map_or("none", Fault::label),
        "sim wechat pay call"
    );
    match wire {
        Wire::Signed {
            status,
            body,
            timestamp,
            nonce,
            signature,
        } => (
            status,
            [
                (header::CONTENT_TYPE.as_str(), "application/json".to_owned()),
                ("wechatpay-timestamp", timestamp),
                ("wechatpay-nonce", nonce),
                ("wechatpay-signature", signature),
                ("wechatpay-serial", sim.wechat_pay.platform_serial.clone()),
            ],
            body,
        )
            .into_response(),
        Wire::Plain(status, text) => (
            status,
            [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
            text,
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests;
