//! The channel simulator (`payout-worker sim`): speaks the channels' real protocols so the
//! worker can be run, demonstrated and tested end to end without a real channel.
//!
//! It checks signatures, keeps its own [`ledger`] (the oracle behind `GET /sim/ledger`:
//! how often money really left under each key), enforces each channel's idempotency, and
//! injects [`faults`] reproducibly for a seed. Channels live one per file ([`alipay`]);
//! they share the ledger, the fault injector and the latency settings here.

pub mod alipay;
pub mod faults;
pub mod ledger;

use crate::channels::alipay::{read_key_or_dev, DEV_APP_PUBLIC_KEY, DEV_PLATFORM_PRIVATE_KEY};
use crate::channels::rsa::{RsaSigner, RsaVerifier};
use alipay::{AlipaySim, Answer};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use faults::{Fault, FaultInjector};
use ledger::Ledger;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Everything the simulator needs, keys already parsed.
#[derive(Debug)]
pub struct SimOptions {
    /// Fraction of gateway calls that get a fault (0 to 1).
    pub faults: f64,
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
}

impl SimOptions {
    /// Reads the keys (an empty path means the compiled-in development key).
    pub fn from_settings(s: &crate::config::SimSettings) -> Result<Self, String> {
        if !(0.0..=1.0).contains(&s.faults) {
            return Err(format!("sim.faults must be between 0 and 1, not {}", s.faults));
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
        Ok(Self {
            faults: s.faults,
            seed: s.seed,
            latency_ms: s.latency_ms,
            settle_ms: s.settle_ms,
            alipay_platform_key: RsaSigner::from_pem(&platform_pem)
                .map_err(|e| format!("sim.alipay_platform_private_key_file: {e}"))?,
            alipay_app_key: RsaVerifier::from_pem(&app_pem)
                .map_err(|e| format!("sim.alipay_app_public_key_file: {e}"))?,
        })
    }
}

/// The running simulator's shared state.
#[derive(Debug)]
struct Sim {
    ledger: Ledger,
    faults: FaultInjector,
    latency: Duration,
    alipay: AlipaySim,
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
            faults: FaultInjector::new(opts.faults, opts.seed),
            latency: Duration::from_millis(opts.latency_ms),
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
                return (Reply::Plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway"), None)
            }
            Some(Fault::ServiceUnavailable) => alipay::service_unavailable(method),
            Some(Fault::SystemError) => alipay::system_error(method),
            Some(Fault::LostAnswer) => {
                // Carried out for real (money may move), then the answer is lost.
                let done = self.alipay.handle(&self.ledger, params, now);
                let reply = Reply::Plain(StatusCode::INTERNAL_SERVER_ERROR, "500 Internal Server Error");
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
        .with_state(sim);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn alipay_gateway(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    if !sim.latency.is_zero() {
        tokio::time::sleep(sim.latency).await;
    }
    let fault = sim.faults.draw();
    if fault == Some(Fault::LatencySpike) {
        tokio::time::sleep(Duration::from_millis(faults::SPIKE_MS)).await;
    }
    // An unreadable form is treated as an empty one: Alipay's "missing method" answer.
    let params: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let (reply, answer) = sim.alipay_call(fault, &params, Instant::now());
    // Keys and outcomes only: account numbers and names never reach the log.
    tracing::debug!(
        channel = alipay::CHANNEL,
        method = alipay::method_of(&params),
        key = answer.as_ref().and_then(|a| a.key.as_deref()).unwrap_or("-"),
        outcome = answer.as_ref().map_or("not processed", |a| a.outcome.as_str()),
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

async fn ledger_view(State(sim): State<Arc<Sim>>) -> Json<Vec<ledger::LedgerLine>> {
    Json(sim.ledger.snapshot(Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::alipay::protocol::{GatewayResponse, REFUND};
    use crate::channels::alipay::{sign, DEV_APP_PRIVATE_KEY, DEV_PLATFORM_PUBLIC_KEY};

    fn opts(faults: f64) -> SimOptions {
        let mut s = crate::config::Settings::defaults().sim;
        s.faults = faults;
        SimOptions::from_settings(&s).unwrap()
    }

    fn signed_refund(key: &str, amount: &str) -> BTreeMap<String, String> {
        let biz = serde_json::json!({
            "trade_no": "2026031522001456", "refund_amount": amount,
            "out_request_no": key, "refund_reason": "withdrawal",
        });
        let mut params: BTreeMap<String, String> = [
            ("app_id", "2021000000000001".to_owned()),
            ("method", REFUND.to_owned()),
            ("format", "JSON".to_owned()),
            ("charset", "utf-8".to_owned()),
            ("sign_type", "RSA2".to_owned()),
            ("timestamp", "2026-11-20 08:00:00".to_owned()),
            ("version", "1.0".to_owned()),
            ("biz_content", biz.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        sign::sign_request(&mut params, &RsaSigner::from_pem(DEV_APP_PRIVATE_KEY).unwrap());
        params
    }

    #[test]
    fn settings_with_a_bad_fault_rate_or_key_file_are_refused() {
        let mut s = crate::config::Settings::defaults().sim;
        s.faults = 1.5;
        assert!(SimOptions::from_settings(&s).unwrap_err().contains("sim.faults"));
        s.faults = 0.0;
        s.alipay_platform_private_key_file = "/nonexistent/key.pem".into();
        assert!(SimOptions::from_settings(&s).is_err());
    }

    #[test]
    fn each_fault_kind_does_what_it_says() {
        let sim = Sim::new(opts(0.0));
        let now = Instant::now();
        let moved = |key: &str| {
            sim.ledger.snapshot(now).iter().find(|l| l.key == key).map(|l| l.moves)
        };
        let code_of = |reply: &Reply| match reply {
            Reply::Signed(body) => {
                let v = sign::verify_response(body, REFUND, &RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap()).unwrap();
                let r: GatewayResponse = serde_json::from_str(&v.inner).unwrap();
                format!("{} {}", r.code, r.sub_code.unwrap_or_default())
            }
            Reply::Plain(status, _) => status.as_str().to_owned(),
        };
        let cases = [
            (Fault::BadGateway, "a", "502", None),
            (Fault::ServiceUnavailable, "b", "20000 isp.unknow-error", None),
            (Fault::SystemError, "c", "40004 ACQ.SYSTEM_ERROR", None),
            (Fault::LostAnswer, "d", "500", Some(1)),
            (Fault::LatencySpike, "e", "10000 ", Some(1)),
        ];
        for (fault, key, code, moves) in cases {
            let (reply, _) = sim.alipay_call(Some(fault), &signed_refund(key, "1.00"), now);
            assert_eq!(code_of(&reply), code, "{fault:?}");
            assert_eq!(moved(key), moves, "{fault:?}");
        }
        // After the lost answer, the resend is answered from the record: still one move.
        let (reply, _) = sim.alipay_call(None, &signed_refund("d", "1.00"), now);
        assert_eq!(code_of(&reply), "10000 ");
        assert_eq!(moved("d"), Some(1));
    }

    /// One real signed refund over HTTP, answered, verified, and visible in the ledger.
    #[tokio::test]
    async fn serves_signed_alipay_calls_and_the_ledger_over_http() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(opts(0.0), listener, async {
            let _ = stopped.await;
        }));
        let http = reqwest::Client::new();
        let post = |params: BTreeMap<String, String>| {
            http.post(format!("{base}/gateway.do"))
                .header("content-type", "application/x-www-form-urlencoded;charset=utf-8")
                .body(serde_urlencoded::to_string(&params).unwrap())
                .send()
        };
        let platform = RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap();

        let response = post(signed_refund("PO-HTTP-1", "12.34")).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers()[header::CONTENT_TYPE].to_str().unwrap().starts_with("application/json"));
        let verified = sign::verify_response(&response.text().await.unwrap(), REFUND, &platform).unwrap();
        let r: GatewayResponse = serde_json::from_str(&verified.inner).unwrap();
        assert_eq!((r.code.as_str(), r.fund_change.as_deref()), ("10000", Some("Y")));

        let ledger: serde_json::Value = http.get(format!("{base}/sim/ledger")).send().await.unwrap().json().await.unwrap();
        assert_eq!(
            ledger,
            serde_json::json!([{"channel": "alipay", "key": "PO-HTTP-1", "amount": "12.34", "moves": 1}])
        );

        let mut tampered = signed_refund("PO-HTTP-2", "12.34");
        tampered.insert("timestamp".into(), "2026-11-20 08:00:01".into());
        let body = post(tampered).await.unwrap().text().await.unwrap();
        let verified = sign::verify_response(&body, REFUND, &platform).unwrap();
        let r: GatewayResponse = serde_json::from_str(&verified.inner).unwrap();
        assert_eq!((r.code.as_str(), r.sub_code.as_deref()), ("40002", Some("isv.invalid-signature")));

        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
