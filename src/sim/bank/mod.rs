//! The simulated bank payout gateway: the exact counterpart of `crate::channels::bank`.
//!
//! Its HTTP face is here: `POST /bank/payments` and `GET /bank/payments/{end_to_end_id}`,
//! the request signature check (`METHOD\nPATH\nBODY` with the client's public key; bad or
//! missing → HTTP 401), injected faults, and the gateway's signature on every answer it
//! gives itself (a proxy's 502/500 is unsigned). The payment book behind it is
//! [`payments`]. Everything below the HTTP handlers takes the time as a parameter, so
//! settlement is tested without sleeping.

pub mod payments;

use super::faults::Fault;
use super::ledger::Ledger;
use super::Sim;
use crate::channels::alipay::read_key_or_dev;
use crate::channels::bank::protocol::PaymentInitiation;
use crate::channels::bank::{sign, DEV_CLIENT_PUBLIC_KEY, DEV_GATEWAY_PRIVATE_KEY};
use crate::channels::rsa::{RsaSigner, RsaVerifier};
use crate::config::SimSettings;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use payments::Answer;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The gateway's keys: its own to sign answers, the client's to check requests.
#[derive(Debug)]
pub struct BankSim {
    gateway_key: RsaSigner,
    client_key: RsaVerifier,
}

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op<'a> {
    Initiate,
    Status(&'a str),
}

/// One request as the gateway sees it: what is signed, and the headers that sign it.
#[derive(Debug, Clone, Copy)]
pub struct GatewayRequest<'a> {
    pub op: Op<'a>,
    pub method: &'a str,
    /// The request path exactly as received (what the client signed).
    pub path: &'a str,
    pub key_id: Option<&'a str>,
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// What goes back over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// The gateway's signature; `None` for what a proxy in front of it answers.
    pub signature: Option<String>,
    pub key: Option<String>,
    pub outcome: String,
}

impl BankSim {
    pub fn from_settings(s: &SimSettings) -> Result<Self, String> {
        let gateway_pem = read_key_or_dev(
            &s.bank_gateway_private_key_file,
            DEV_GATEWAY_PRIVATE_KEY,
            "bank gateway private key",
        )?;
        let client_pem = read_key_or_dev(
            &s.bank_client_public_key_file,
            DEV_CLIENT_PUBLIC_KEY,
            "bank client public key",
        )?;
        Ok(Self {
            gateway_key: RsaSigner::from_pem(&gateway_pem)
                .map_err(|e| format!("sim.bank_gateway_private_key_file: {e}"))?,
            client_key: RsaVerifier::from_pem(&client_pem)
                .map_err(|e| format!("sim.bank_client_public_key_file: {e}"))?,
        })
    }

    /// One call under a drawn fault (a latency spike has already been waited out).
    pub fn call(
        &self,
        ledger: &Ledger,
        settle: Duration,
        fault: Option<Fault>,
        req: &GatewayRequest<'_>,
        now: Instant,
    ) -> Reply {
        match fault {
            Some(Fault::BadGateway) => plain(502, "502 Bad Gateway", "fault:502"),
            Some(Fault::ServiceUnavailable | Fault::SystemError) => {
                let busy = Answer::error(503, "SERVICE_UNAVAILABLE", "try again later", None);
                self.signed(req.path, busy)
            }
            Some(Fault::LostAnswer) => {
                // Carried out for real (money may move), then the answer is lost.
                let done = self.handle(ledger, settle, req, now);
                Reply {
                    outcome: format!("{} then fault:500", done.outcome),
                    key: done.key,
                    ..plain(500, "500 Internal Server Error", "")
                }
            }
            Some(Fault::LatencySpike) | None => self.handle(ledger, settle, req, now),
        }
    }

    /// One call with no fault: authentication, then the payment book.
    pub fn handle(
        &self,
        ledger: &Ledger,
        settle: Duration,
        req: &GatewayRequest<'_>,
        now: Instant,
    ) -> Reply {
        let key_id_ok = req.key_id.is_some_and(|k| !k.trim().is_empty());
        // The simulator holds one client key, so any key id names it.
        let signature_ok = req.signature.is_some_and(|sig| {
            sign::verify_request(&self.client_key, req.method, req.path, req.body, sig)
        });
        let answer = if !key_id_ok {
            Answer::error(401, "UNAUTHENTICATED", "missing X-Key-Id", None)
        } else if !signature_ok {
            Answer::error(
                401,
                "SIGNATURE_INVALID",
                "request signature does not verify",
                None,
            )
        } else {
            match req.op {
                Op::Initiate => match serde_json::from_slice::<PaymentInitiation>(req.body) {
                    // One lock for look-up and insert: concurrent calls with one new id pay once.
                    Ok(p) => payments::initiate(&mut ledger.lock(), &p, settle, now),
                    Err(_) => Answer::error(
                        400,
                        "INVALID_REQUEST",
                        "body is not a payment initiation",
                        None,
                    ),
                },
                Op::Status(id) => payments::status(&ledger.lock(), id, now),
            }
        };
        self.signed(req.path, answer)
    }

    /// Signs an answer as the gateway: over its status, the request path and the body.
    fn signed(&self, path: &str, a: Answer) -> Reply {
        let signature = sign::sign_response(&self.gateway_key, a.status, path, a.body.as_bytes());
        Reply {
            status: a.status,
            body: a.body,
            signature: Some(signature),
            key: a.key,
            outcome: a.outcome,
        }
    }
}

/// An unsigned plain-text answer, as a proxy in front of the gateway gives.
fn plain(status: u16, text: &str, outcome: &str) -> Reply {
    Reply {
        status,
        body: text.to_owned(),
        signature: None,
        key: None,
        outcome: outcome.to_owned(),
    }
}

/// This channel's HTTP routes.
pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/bank/payments", post(initiate))
        .route("/bank/payments/{end_to_end_id}", get(status_report))
}

async fn initiate(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(&sim, Op::Initiate, "POST", &uri, &headers, &body).await
}

async fn status_report(
    State(sim): State<Arc<Sim>>,
    Path(end_to_end_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    // A GET is signed with an empty body.
    serve(&sim, Op::Status(&end_to_end_id), "GET", &uri, &headers, &[]).await
}

async fn serve(
    sim: &Sim,
    op: Op<'_>,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let fault = sim.before_call().await;
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let req = GatewayRequest {
        op,
        method,
        path: uri.path(),
        key_id: text(sign::KEY_ID_HEADER),
        signature: text(sign::SIGNATURE_HEADER),
        body,
    };
    let reply = sim
        .bank
        .call(&sim.ledger, sim.settle, fault, &req, Instant::now());
    // Keys and outcomes only: account numbers and names never reach the log.
    tracing::debug!(
        channel = payments::CHANNEL,
        method,
        key = reply.key.as_deref().unwrap_or("-"),
        http = reply.status,
        outcome = %reply.outcome,
        fault = fault.map_or("none", Fault::label),
        "sim gateway call"
    );
    into_response(reply)
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = match reply.signature {
        Some(_) => "application/json;charset=utf-8",
        None => "text/plain;charset=utf-8",
    };
    let mut response = (status, [(header::CONTENT_TYPE, content_type)], reply.body).into_response();
    if let Some(sig) = reply.signature.and_then(|s| s.parse().ok()) {
        response.headers_mut().insert(sign::SIGNATURE_HEADER, sig);
    }
    response
}

#[cfg(test)]
mod tests;
