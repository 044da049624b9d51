//! A load run's results: as JSON (for `BENCHMARKS.md` and the plots) and for a person.

use super::measure::quantile;
use super::options::{LoadArgs, LoadChannel};
use super::Phase;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// RSA-2048 operations per leg: the worker signs its request and verifies the answer;
/// the channel (here the simulator, on the same cores) verifies and signs. The same for
/// every channel this worker speaks (CHANNELS.md).
const RSA_SIGNS_PER_LEG: u32 = 2;
const RSA_VERIFIES_PER_LEG: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub options: Options,
    pub machine: Machine,
    pub worker: PhaseReport,
    pub relay: Option<PhaseReport>,
    /// Worker throughput / relay throughput, same run.
    pub ratio_to_relay: Option<f64>,
    /// Peak resident set of the worker process (MiB).
    pub worker_peak_rss_mib: Option<f64>,
    /// CPU (user + system) the worker process used per withdrawal (ms).
    pub worker_cpu_ms_per_withdrawal: f64,
    /// Mean time of the worker's timed stages (`event_confirm`: one publish until its
    /// confirm; `channel_call`: one channel request until its answer), from its metrics.
    pub worker_stages_ms: BTreeMap<String, f64>,
    pub redis: RedisReport,
    pub rsa: RsaReport,
}

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub withdrawals: usize,
    pub channel: LoadChannel,
    pub legs: usize,
    /// Offered withdrawals per second; 0: as fast as possible.
    pub rate: f64,
    pub prefetch: u16,
    pub latency_ms: u64,
    pub settle_ms: u64,
    pub worker_log_level: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub build: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub published: usize,
    pub completed: usize,
    /// How they ended (`withdrawal.succeeded`, …; `relayed` for the relay).
    pub outcomes: BTreeMap<String, usize>,
    pub events_per_withdrawal: f64,
    pub elapsed_secs: f64,
    /// Completed per second, from the first publish to the last terminal event.
    pub throughput: f64,
    pub latency_ms: Latency,
    /// Nothing finished for 30 s: the phase was cut short.
    pub stalled: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RedisReport {
    /// Round trips the worker made in the measured phase, by operation (a script or a
    /// command each), as its `payout_redis_round_trips_total` counted them.
    pub round_trips: BTreeMap<String, u64>,
    pub round_trips_per_withdrawal: f64,
    /// What the run's own redis-server executed meanwhile (`INFO commandstats`): the
    /// `evalsha` calls are the scripts above; the rest ran inside them.
    pub server_commands: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RsaReport {
    pub sign_us: f64,
    pub verify_us: f64,
    /// RSA work per withdrawal on this machine's cores (both sides), in core-ms.
    pub core_ms_per_withdrawal: f64,
    /// The throughput RSA alone would allow on every core.
    pub bound_per_sec: f64,
}

pub struct Inputs<'a> {
    pub args: &'a LoadArgs,
    pub worker: Phase,
    pub relay: Option<Phase>,
    pub redis_commands: BTreeMap<String, u64>,
    pub round_trips: BTreeMap<String, u64>,
    pub stages_ms: BTreeMap<String, f64>,
    pub worker_cpu: Duration,
    pub peak_rss_kib: Option<u64>,
    pub rsa_sign: Duration,
    pub rsa_verify: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl PhaseReport {
    fn from_phase(p: &Phase) -> Self {
        let completed: usize = p.ended.values().sum();
        let l = &p.latencies;
        Self {
            published: p.published,
            completed,
            outcomes: p.ended.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            events_per_withdrawal: p.events as f64 / completed.max(1) as f64,
            elapsed_secs: p.elapsed.as_secs_f64(),
            throughput: completed as f64 / p.elapsed.as_secs_f64().max(1e-9),
            latency_ms: Latency {
                p50: ms(quantile(l, 0.50)),
                p90: ms(quantile(l, 0.90)),
                p99: ms(quantile(l, 0.99)),
                max: ms(quantile(l, 1.0)),
            },
            stalled: p.stalled,
        }
    }
}

impl LoadReport {
    pub fn new(i: Inputs<'_>) -> Self {
        let worker = PhaseReport::from_phase(&i.worker);
        let relay = i.relay.as_ref().map(PhaseReport::from_phase);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let legs = i.args.legs as f64;
        let core_ms = legs
            * (f64::from(RSA_SIGNS_PER_LEG) * ms(i.rsa_sign)
                + f64::from(RSA_VERIFIES_PER_LEG) * ms(i.rsa_verify));
        let completed = worker.completed.max(1) as f64;
        Self {
            options: Options {
                withdrawals: i.args.withdrawals,
                channel: i.args.channel,
                legs: i.args.legs,
                rate: i.args.rate,
                prefetch: i.args.prefetch,
                latency_ms: i.args.latency_ms,
                settle_ms: i.args.settle_ms,
                worker_log_level: i.args.worker_log_level.clone(),
            },
            machine: Machine {
                cores,
                build: if cfg!(debug_assertions) {
                    "debug"
                } else {
                    "release"
                },
            },
            ratio_to_relay: relay
                .as_ref()
                .map(|r| worker.throughput / r.throughput.max(1e-9)),
            worker_peak_rss_mib: i.peak_rss_kib.map(|k| k as f64 / 1024.0),
            worker_cpu_ms_per_withdrawal: ms(i.worker_cpu) / completed,
            worker_stages_ms: i.stages_ms,
            redis: RedisReport {
                round_trips_per_withdrawal: i.round_trips.values().sum::<u64>() as f64 / completed,
                round_trips: i.round_trips,
                server_commands: i.redis_commands,
            },
            rsa: RsaReport {
                sign_us: i.rsa_sign.as_secs_f64() * 1e6,
                verify_us: i.rsa_verify.as_secs_f64() * 1e6,
                core_ms_per_withdrawal: core_ms,
                bound_per_sec: cores as f64 * 1000.0 / core_ms.max(1e-9),
            },
            worker,
            relay,
        }
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        let o = &self.options;
        let _ = writeln!(
            s,
            "load: {} × {} leg(s) via {:?}, prefetch {}, latency {} ms, {} ({} build, {} cores)",
            o.withdrawals,
            o.legs,
            o.channel,
            o.prefetch,
            o.latency_ms,
            if o.rate > 0.0 {
                format!("offered {} /s", o.rate)
            } else {
                "as fast as possible".into()
            },
            self.machine.build,
            self.machine.cores
        );
        let phase = |s: &mut String, name: &str, p: &PhaseReport| {
            let _ = writeln!(
                s,
                "  {name:<7} {:>8.1} /s  {}/{} done in {:.2}s  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms  {:?}{}",
                p.throughput,
                p.completed,
                p.published,
                p.elapsed_secs,
                p.latency_ms.p50,
                p.latency_ms.p90,
                p.latency_ms.p99,
                p.latency_ms.max,
                p.outcomes,
                if p.stalled { "  STALLED" } else { "" }
            );
        };
        phase(&mut s, "worker", &self.worker);
        if let Some(r) = &self.relay {
            phase(&mut s, "relay", r);
        }
        if let Some(r) = self.ratio_to_relay {
            let _ = writeln!(s, "  worker / relay throughput: {:.2}", r);
        }
        let _ = writeln!(
            s,
            "  worker: peak RSS {}, CPU {:.2} ms per withdrawal",
            self.worker_peak_rss_mib
                .map_or("unknown".into(), |m| format!("{m:.1} MiB")),
            self.worker_cpu_ms_per_withdrawal
        );
        let _ = writeln!(
            s,
            "  worker stages, mean ms: {}",
            self.worker_stages_ms
                .iter()
                .map(|(name, ms)| format!("{name} {ms:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let _ = writeln!(
            s,
            "  redis: {:.2} round trips per withdrawal {:?}",
            self.redis.round_trips_per_withdrawal, self.redis.round_trips
        );
        let _ = writeln!(
            s,
            "  rsa-2048: sign {:.0} µs, verify {:.0} µs; {:.2} core-ms per withdrawal, bound {:.0} /s",
            self.rsa.sign_us, self.rsa.verify_us, self.rsa.core_ms_per_withdrawal, self.rsa.bound_per_sec
        );
        s
    }
}
