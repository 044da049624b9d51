//! The worker's metrics, Prometheus conventions: `_total` counters, `_seconds`
//! histograms, base units, and only bounded labels (channel, operation, result, code,
//! tier, event type): never an id.
//!
//! One process-wide registry: every part of the worker records into it without the
//! handle being threaded through, and `/metrics` renders it.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};
use std::sync::LazyLock;

pub struct Metrics {
    registry: Registry,
    pub deliveries_received: IntCounter,
    /// Leg outcomes by channel and result (`succeeded`, `failed:<code>`, `pending`,
    /// `unknown`, `review`).
    pub leg_outcomes: IntCounterVec,
    /// Withdrawal decisions: ack, defer, dead_letter, requeue.
    pub decisions: IntCounterVec,
    /// Deferrals through the delay queues, by tier (milliseconds as text).
    pub deferrals: IntCounterVec,
    pub channel_call_seconds: HistogramVec,
    pub legs_in_flight: IntGauge,
    pub lease_conflicts: IntCounter,
    pub dead_letters: IntCounterVec,
    pub events_published: IntCounterVec,
    pub event_confirm_seconds: Histogram,
    pub broker_reconnects: IntCounter,
    pub redis_round_trips: IntCounterVec,
    pub limit_holds: IntCounterVec,
    pub redis_errors: IntCounter,
    /// Acks or nacks the broker did not take (the message will come back).
    pub acks_failed: IntCounter,
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("registered once");
    c
}

impl Metrics {
    fn new() -> Self {
        let r = Registry::new_custom(Some("payout".into()), None).expect("valid prefix");
        let channel_call_seconds = HistogramVec::new(
            HistogramOpts::new("channel_call_seconds", "Channel call latency.").buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["channel", "operation"],
        )
        .expect("valid metric");
        r.register(Box::new(channel_call_seconds.clone()))
            .expect("registered once");
        let event_confirm_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "event_confirm_seconds",
                "Time from publishing an event to the broker's confirm.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(event_confirm_seconds.clone()))
            .expect("registered once");
        let legs_in_flight =
            IntGauge::new("legs_in_flight", "Legs being paid right now.").expect("valid metric");
        r.register(Box::new(legs_in_flight.clone()))
            .expect("registered once");
        Self {
            deliveries_received: counter(
                &r,
                "deliveries_received_total",
                "Commands delivered to this worker.",
            ),
            leg_outcomes: counter_vec(
                &r,
                "leg_outcomes_total",
                "Leg results by channel.",
                &["channel", "result"],
            ),
            decisions: counter_vec(
                &r,
                "decisions_total",
                "How deliveries were settled.",
                &["decision"],
            ),
            deferrals: counter_vec(
                &r,
                "deferrals_total",
                "Commands deferred through the delay queues.",
                &["tier_ms"],
            ),
            channel_call_seconds,
            legs_in_flight,
            lease_conflicts: counter(
                &r,
                "lease_conflicts_total",
                "Commands deferred because another worker held the lease.",
            ),
            dead_letters: counter_vec(
                &r,
                "dead_letters_total",
                "Commands dead-lettered, by error code.",
                &["code"],
            ),
            events_published: counter_vec(
                &r,
                "events_published_total",
                "Events confirmed by the broker.",
                &["type"],
            ),
            event_confirm_seconds,
            broker_reconnects: counter(
                &r,
                "broker_reconnects_total",
                "Broker sessions that ended and were reopened.",
            ),
            limit_holds: counter_vec(
                &r,
                "limit_holds_total",
                "Withdrawals held for review by a containment limit, by limit.",
                &["limit"],
            ),
            redis_round_trips: counter_vec(
                &r,
                "redis_round_trips_total",
                "Redis round trips (one script or one command each), by operation.",
                &["op"],
            ),
            redis_errors: counter(
                &r,
                "redis_errors_total",
                "Redis calls that failed or timed out.",
            ),
            acks_failed: counter(
                &r,
                "acks_failed_total",
                "Acks or nacks the broker did not take.",
            ),
            registry: r,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text_with_conventional_names() {
        METRICS.deliveries_received.inc();
        METRICS
            .leg_outcomes
            .with_label_values(&["alipay", "succeeded"])
            .inc();
        METRICS
            .channel_call_seconds
            .with_label_values(&["alipay", "pay"])
            .observe(0.02);
        let text = METRICS.render();
        assert!(text.contains("# TYPE payout_deliveries_received_total counter"));
        assert!(text.contains("payout_leg_outcomes_total{channel=\"alipay\",result=\"succeeded\"}"));
        assert!(text.contains(
            "payout_channel_call_seconds_bucket{channel=\"alipay\",operation=\"pay\",le=\"0.025\"}"
        ));
    }
}
