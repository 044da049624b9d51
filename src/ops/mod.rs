//! What ops watch: Prometheus metrics and health endpoints, on `ops.listen`
//! (`127.0.0.1:9464` by default): `/metrics`, `/healthz` (the process answers) and
//! `/readyz` (connected to RabbitMQ and Redis and consuming; not while reconnecting or
//! draining), usable as container probes.

pub mod metrics;
pub mod review;

use crate::store::Store;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use metrics::METRICS;

/// Whether the worker is consuming right now; flipped by the consume loop.
#[derive(Debug, Default, Clone)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self, consuming: bool) {
        self.0.store(consuming, Ordering::Relaxed);
    }

    pub fn consuming(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct Ops {
    ready: Readiness,
    store: Store,
}

/// Binds `listen` and serves until the process ends. Returns the bound address.
pub async fn serve(
    listen: &str,
    ready: Readiness,
    store: Store,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(|| async { METRICS.render() }))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(Ops { ready, store });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "ops endpoint stopped");
        }
    });
    Ok(addr)
}

async fn readyz(State(ops): State<Ops>) -> (StatusCode, &'static str) {
    if !ops.ready.consuming() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not consuming");
    }
    match ops.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "redis unavailable"),
    }
}
