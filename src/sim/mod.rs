//! The channel simulator (`payout-worker sim`): speaks the channels' real protocols so the
//! worker can be run, demonstrated and tested end to end without a real channel.
//!
//! It checks signatures, keeps its own [`ledger`] (the oracle behind `GET /sim/ledger`:
//! how often money really left under each key), enforces each channel's idempotency, and
//! injects [`faults`] reproducibly for a seed. Channels live one per file ([`alipay`]);
//! they share the ledger, the fault injector and the latency settings here.
//!
//! Besides the channels' own endpoints: `GET /sim/ledger` (the oracle), and
//! `POST /sim/forget` (forget every pending payout, money still moving) and
//! `POST /sim/settle` (settle every pending payout now), `POST /sim/windows` (refund
//! deadlines of top-ups, past which a refund is refused), and
//! `GET`/`POST /sim/faults` to read or change the fault rate, the fault kinds and the
//! added latency while it runs (JSON `{"rate": 0.5, "kinds": ["bad_gateway"],
//! "latency_ms": 800}`, every field optional), which `payout-worker chaos` uses for its
//! error storms, lost answers and latency spikes.

pub mod alipay;
pub mod bank;
pub mod faults;
pub mod ledger;
pub mod unionpay;
pub mod wechat_pay;

use crate::channels::alipay::{read_key_or_dev, DEV_APP_PUBLIC_KEY, DEV_PLATFORM_PRIVATE_KEY};
use crate::channels::rsa::{RsaSigner, RsaVerifier};
use alipay::{AlipaySim, Answer};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faults::{Fault, FaultControl, FaultInjector, FaultStatus};
use ledger::Ledger;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the simulator needs, keys already parsed.
#[derive(Debug)]
pub struct SimOptions {
    /// Fraction of gateway calls that get a fault (0 to 1).
    pub faults: f64,
    /// The fault kinds drawn from (empty: all).
    pub fault_kinds: Vec<Fault>,
    pub seed: u64,
    /// Added to every gateway call.
    pub latency_ms: u64,
    /// How long asynchronous outcomes (Alipay's `DEALING`, a refund without fund change)
    /// take to settle.
    pub settle_ms: u64,
    /// Signs answers as Alipay.
    pub alipay_platform_key: RsaSigner,
    /// Verifies the merchant's (the worker's) request signatures.
    pub alipay_app_key: RsaVerifier,
    pub wechat_pay: wechat_pay::WechatSim,
    pub unionpay: unionpay::UnionpaySim,
    pub bank: bank::BankSim,
}

impl SimOptions {
    /// Reads the keys (an empty path means the compiled-in development key).
    pub fn from_settings(s: &crate::config::SimSettings) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&s.faults) {
            return Err(format!(
                "sim.faults must be between 0 and 1, not {}",
                s.faults
            ));
        }
        let platform_pem = read_key_or_dev(
            &s.alipay_platform_private_key_file,
            DEV_PLATFORM_PRIVATE_KEY,
            "alipay platform private key",
        )?;
        let app_pem = read_key_or_dev(
            &s.alipay_app_public_key_file,
            DEV_APP_PUBLIC_KEY,
            "alipay app public key",
        )?;
        let fault_kinds = s
            .fault_kinds
            .iter()
            .map(|k| {
                Fault::parse(k).ok_or_else(|| {
                    let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                    format!(
                        "sim.fault_kinds: unknown fault {k:?} (known: {})",
                        known.join(", ")
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            faults: s.faults,
            fault_kinds,
            seed: s.seed,
            latency_ms: s.latency_ms,
            settle_ms: s.settle_ms,
            alipay_platform_key: RsaSigner::from_pem(&platform_pem)
                .map_err(|e| format!("sim.alipay_platform_private_key_file: {e}"))?,
            alipay_app_key: RsaVerifier::from_pem(&app_pem)
                .map_err(|e| format!("sim.alipay_app_public_key_file: {e}"))?,
            wechat_pay: wechat_pay::WechatSim::from_settings(s)?,
            unionpay: unionpay::UnionpaySim::from_settings(s)?,
            bank: bank::BankSim::from_settings(s)?,
        })
    }
}

/// The running simulator's shared state; each channel module's handlers reach it
/// through `State<Arc<Sim>>`.
#[derive(Debug)]
pub struct Sim {
    pub(crate) ledger: Ledger,
    pub(crate) faults: FaultInjector,
    /// Added to every call, in milliseconds; changed at run time by `POST /sim/faults`.
    latency_ms: AtomicU64,
    /// When asynchronous payouts settle (after `--settle-ms`).
    pub(crate) settle: Duration,
    alipay: AlipaySim,
    pub(crate) wechat_pay: wechat_pay::WechatSim,
    pub(crate) unionpay: unionpay::UnionpaySim,
    pub(crate) bank: bank::BankSim,
}

/// What goes back over HTTP.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    /// A signed channel answer (HTTP 200).
    Signed(String),
    /// An HTTP-level failure with a plain-text body.
    Plain(StatusCode, &'static str),
}

impl Sim {
    fn new(opts: SimOptions) -> Self {
        Self {
            ledger: Ledger::new(),
            faults: FaultInjector::with_kinds(opts.faults, opts.seed, opts.fault_kinds),
            latency_ms: AtomicU64::new(opts.latency_ms),
            settle: Duration::from_millis(opts.settle_ms),
            wechat_pay: opts.wechat_pay,
            unionpay: opts.unionpay,
            bank: opts.bank,
            alipay: AlipaySim {
                platform_key: opts.alipay_platform_key,
                app_key: opts.alipay_app_key,
                settle: Duration::from_millis(opts.settle_ms),
            },
        }
    }

    /// One Alipay gateway call under a drawn fault (the latency spike has already been
    /// waited out by the caller). Returns the reply and, when the request reached the
    /// channel, its answer for the log.
    fn alipay_call(
        &self,
        fault: Option<Fault>,
        params: &BTreeMap<String, String>,
        now: Instant,
    ) -> (Reply, Option<Answer>) {
        let method = alipay::method_of(params);
        let answer = match fault {
            Some(Fault::BadGateway) => {
                return (
                    Reply::Plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway"),
                    None,
                )
            }
            Some(Fault::ServiceUnavailable) => alipay::service_unavailable(method),
            Some(Fault::SystemError) => alipay::system_error(method),
            Some(Fault::LostAnswer) => {
                // Carried out for real (money may move), then the answer is lost.
                let done = self.alipay.handle(&self.ledger, params, now);
                let reply = Reply::Plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "500 Internal Server Error",
                );
                return (reply, Some(done));
            }
            Some(Fault::LatencySpike) | None => self.alipay.handle(&self.ledger, params, now),
        };
        (Reply::Signed(self.alipay.sign(&answer)), Some(answer))
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    opts: SimOptions,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sim = Arc::new(Sim::new(opts));
    let app = Router::new()
        .route("/gateway.do", post(alipay_gateway))
        .route("/sim/ledger", get(ledger_view))
        .route("/sim/faults", get(faults_view).post(faults_control))
        .route("/sim/forget", post(forget_pending))
        .route("/sim/remember", post(remember_all))
        .route("/sim/settle", post(settle_all))
        .route("/sim/windows", post(close_windows))
        .merge(wechat_pay::routes())
        .merge(unionpay::routes())
        .merge(bank::routes())
        .with_state(sim);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

impl Sim {
    /// What every channel call goes through first: the configured latency, then a fault
    /// draw (a latency spike is waited out here; the caller acts on the others).
    pub(crate) async fn before_call(&self) -> Option<Fault> {
        let latency = self.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        let fault = self.faults.draw();
        if fault == Some(Fault::LatencySpike) {
            tokio::time::sleep(Duration::from_millis(faults::SPIKE_MS)).await;
        }
        fault
    }
}

async fn alipay_gateway(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let fault = sim.before_call().await;
    // An unreadable form is treated as an empty one: Alipay's "missing method" answer.
    let params: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (reply, answer) = sim.alipay_call(fault, &params, Instant::now());
    // Keys and outcomes only: account numbers and names never reach the log.
    tracing::debug!(
        channel = alipay::CHANNEL,
        method = alipay::method_of(&params),
        key = answer
            .as_ref()
            .and_then(|a| a.key.as_deref())
            .unwrap_or("-"),
        outcome = answer
            .as_ref()
            .map_or("not processed", |a| a.outcome.as_str()),
        fault = fault.map_or("none", Fault::label),
        "sim gateway call"
    );
    match reply {
        Reply::Signed(body) => (
            [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
            body,
        )
            .into_response(),
        Reply::Plain(status, text) => (
            status,
            [(header::CONTENT_TYPE, "text/plain;charset=utf-8")],
            text,
        )
            .into_response(),
    }
}

/// `POST /sim/forget`: the channels forget every payout still pending (chaos fault
/// `forget_keys`), or with a JSON list of idempotency keys only those; answers how many.
async fn forget_pending(
    State(sim): State<Arc<Sim>>,
    keys: Option<Json<Vec<String>>>,
) -> Json<usize> {
    let only = keys.map(|Json(k)| k);
    Json(
        sim.ledger
            .forget_pending_of(only.as_deref(), Instant::now()),
    )
}

/// `POST /sim/remember`: the channels remember every payout they forgot (unless a new
/// one was opened under its key since); answers how many.
async fn remember_all(State(sim): State<Arc<Sim>>) -> Json<usize> {
    Json(sim.ledger.remember_all())
}

/// `POST /sim/settle`: every pending payout settles now (the end of a chaos run);
/// answers how many.
async fn settle_all(State(sim): State<Arc<Sim>>) -> Json<usize> {
    Json(sim.ledger.settle_all(Instant::now()))
}

/// `POST /sim/windows`: `{"<channel txn id>": "<RFC 3339 deadline>", ...}`: from the
/// deadline on, the provider refuses a refund of that top-up (as the real one does).
async fn close_windows(
    State(sim): State<Arc<Sim>>,
    Json(deadlines): Json<BTreeMap<String, chrono::DateTime<chrono::Utc>>>,
) -> Json<usize> {
    let n = deadlines.len();
    sim.ledger.close_windows(deadlines);
    Json(n)
}

async fn ledger_view(State(sim): State<Arc<Sim>>) -> Json<Vec<ledger::LedgerLine>> {
    Json(sim.ledger.snapshot(Instant::now()))
}

impl Sim {
    /// Applies a `POST /sim/faults` request: the fields given replace the current values.
    fn control_faults(&self, control: &FaultControl) -> Result<FaultStatus, String> {
        let (rate, kinds) = control.parsed()?;
        if rate.is_some() || kinds.is_some() {
            let (current_rate, current_kinds) = self.faults.current();
            self.faults
                .adjust(rate.unwrap_or(current_rate), kinds.unwrap_or(current_kinds));
        }
        if let Some(ms) = control.latency_ms {
            self.latency_ms.store(ms, Ordering::Relaxed);
        }
        let status = self.fault_status();
        tracing::debug!(rate = status.rate, kinds = ?status.kinds, latency_ms = status.latency_ms, "sim faults changed");
        Ok(status)
    }

    fn fault_status(&self) -> FaultStatus {
        self.faults.status(self.latency_ms.load(Ordering::Relaxed))
    }
}

async fn faults_view(State(sim): State<Arc<Sim>>) -> Json<FaultStatus> {
    Json(sim.fault_status())
}

/// An unreadable body is answered by axum's JSON extractor (4xx); an out-of-range rate
/// or an unknown kind gets a 400 that says which.
async fn faults_control(
    State(sim): State<Arc<Sim>>,
    Json(control): Json<FaultControl>,
) -> Response {
    match sim.control_faults(&control) {
        Ok(status) => Json(status).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

#[cfg(test)]
mod tests;
