//! The simulator's UnionPay gateway: `POST /gateway/api/backTransReq.do` (refunds) and
//! `POST /gateway/api/queryTrans.do` (status queries), form-encoded requests signed by
//! the merchant, `k=v&...` answers signed with UnionPay's key (5.1.0 both ways).
//!
//! The decisions live in [`gateway`] (no I/O, time injected); this file reads the keys,
//! applies injected faults the way UnionPay would show them, and speaks HTTP.

pub mod gateway;

use super::faults::Fault;
use super::ledger::Ledger;
use super::{Reply, Sim};
use crate::channels::alipay::read_key_or_dev;
use crate::channels::rsa::{RsaSigner, RsaVerifier};
use crate::channels::unionpay::{sign, DEV_MERCHANT_PUBLIC_KEY, DEV_PLATFORM_PRIVATE_KEY};
use crate::config::SimSettings;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use gateway::{Answer, Endpoint};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BACK_TRANS_PATH: &str = "/gateway/api/backTransReq.do";
pub const QUERY_PATH: &str = "/gateway/api/queryTrans.do";

/// The simulated gateway's keys.
#[derive(Debug)]
pub struct UnionpaySim {
    /// Signs answers as UnionPay.
    platform_key: RsaSigner,
    /// Verifies the merchant's (the worker's) requests.
    merchant_key: RsaVerifier,
}

impl UnionpaySim {
    pub fn from_settings(s: &SimSettings) -> Result<Self, String> {
        let platform_pem = read_key_or_dev(
            &s.unionpay_platform_private_key_file,
            DEV_PLATFORM_PRIVATE_KEY,
            "unionpay platform private key",
        )?;
        let merchant_pem = read_key_or_dev(
            &s.unionpay_merchant_public_key_file,
            DEV_MERCHANT_PUBLIC_KEY,
            "unionpay merchant public key",
        )?;
        Ok(Self::new(
            RsaSigner::from_pem(&platform_pem)
                .map_err(|e| format!("sim.unionpay_platform_private_key_file: {e}"))?,
            RsaVerifier::from_pem(&merchant_pem)
                .map_err(|e| format!("sim.unionpay_merchant_public_key_file: {e}"))?,
        ))
    }

    pub fn new(platform_key: RsaSigner, merchant_key: RsaVerifier) -> Self {
        Self {
            platform_key,
            merchant_key,
        }
    }

    /// Signs an answer and renders it as UnionPay does (`k=v&...`, raw values).
    pub fn sign(&self, answer: &Answer) -> String {
        let mut fields = answer.fields.clone();
        sign::sign(&mut fields, &self.platform_key);
        sign::render_message(&fields)
    }

    /// One gateway call under a drawn fault (a latency spike has already been waited
    /// out). Returns the reply and, when the request reached the gateway, its answer.
    fn call(
        &self,
        fault: Option<Fault>,
        ledger: &Ledger,
        settle: Duration,
        endpoint: Endpoint,
        request: &BTreeMap<String, String>,
        now: Instant,
    ) -> (Reply, Option<Answer>) {
        let handle = || gateway::handle(&self.merchant_key, ledger, settle, endpoint, request, now);
        let answer = match fault {
            Some(Fault::BadGateway) => {
                return (
                    Reply::Plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway"),
                    None,
                )
            }
            // UnionPay's own "busy" answers; the request was not carried out.
            Some(Fault::ServiceUnavailable) => gateway::not_processed(request, "03"),
            Some(Fault::SystemError) => gateway::not_processed(request, "04"),
            Some(Fault::LostAnswer) => {
                // Carried out for real (the refund may be accepted), then the answer is lost.
                let done = handle();
                let reply = Reply::Plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error",
                );
                return (reply, Some(done));
            }
            Some(Fault::LatencySpike) | None => handle(),
        };
        (Reply::Signed(self.sign(&answer)), Some(answer))
    }
}

/// This channel's HTTP routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route(BACK_TRANS_PATH, post(back_trans))
        .route(QUERY_PATH, post(query_trans))
}

async fn back_trans(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    serve(&sim, Endpoint::BackTrans, &body).await
}

async fn query_trans(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    serve(&sim, Endpoint::Query, &body).await
}

async fn serve(sim: &Sim, endpoint: Endpoint, body: &[u8]) -> Response {
    let fault = sim.before_call().await;
    // An unreadable form is treated as an empty one: UnionPay's format-error answer.
    let request: BTreeMap<String, String> = serde_urlencoded::from_bytes(body).unwrap_or_default();
    let (reply, answer) = sim.unionpay.call(
        fault,
        &sim.ledger,
        sim.settle,
        endpoint,
        &request,
        Instant::now(),
    );
    // Order ids and codes only: no card data, keys or signatures reach the log.
    tracing::debug!(
        channel = gateway::CHANNEL,
        ?endpoint,
        order_id = answer
            .as_ref()
            .and_then(|a| a.order_id.as_deref())
            .unwrap_or("-"),
        outcome = answer
            .as_ref()
            .map_or("not processed".to_owned(), Answer::outcome),
        fault = fault.map_or("none", Fault::label),
        "sim gateway call"
    );
    match reply {
        Reply::Signed(body) => {
            ([(header::CONTENT_TYPE, "text/plain;charset=UTF-8")], body).into_response()
        }
        Reply::Plain(status, text) => (
            status,
            [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
            text,
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests;
