//! The report of a chaos run: faults by kind and time, withdrawals by outcome, channel
//! calls, time from publish to terminal event, and each invariant PASS/FAIL. Written as
//! JSON and printed for a person.

use super::inject::{FaultRecord, TermExit};
use super::invariants::Verdict;
use crate::sim::faults::FaultStatus;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `PASS` when every invariant holds.
    pub verdict: &'static str,
    /// The command line that runs this again.
    pub reproduce: String,
    pub seed: u64,
    pub options: Options,
    pub started_at: String,
    pub elapsed_secs: f64,
    pub published: Published,
    pub faults_by_kind: BTreeMap<String, usize>,
    pub faults: Vec<FaultRecord>,
    pub outcomes: BTreeMap<String, usize>,
    pub time_to_terminal: Timing,
    /// Calls the simulator saw and the faults it injected (channel-side view of the
    /// retries and queries).
    pub channel_calls: Option<FaultStatus>,
    pub ledger: LedgerSummary,
    /// Deferrals, channel calls and reconnects, as the workers counted them.
    pub retries: super::retries::RetriesReport,
    pub workers: Workers,
    pub invariants: Vec<Verdict>,
    pub notes: Vec<String>,
    /// Worker and redis-server logs of this run, and the evidence the verdicts were
    /// drawn from (`ledger.json`, `events.jsonl`, `dead-letters.jsonl`).
    pub logs: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    pub workers: usize,
    pub withdrawals: usize,
    pub duration_secs: u64,
    pub faults: Vec<String>,
    pub fault_interval_secs: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Published {
    pub messages: usize,
    pub authentic: usize,
    pub duplicates: usize,
    pub bad_inputs: usize,
    /// By design (single-leg channels, multi-leg, refusals, expired windows, bad kinds).
    pub designs: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Timing {
    /// Withdrawals with a terminal event.
    pub count: usize,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    pub slowest: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LedgerSummary {
    pub keys: usize,
    pub keys_moved: usize,
    pub moved_total: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Workers {
    pub starts: usize,
    pub sigterm_exits: Vec<TermExit>,
    pub unexpected_exits: Vec<String>,
}

/// Nearest-rank percentile of sorted values (`p` in 0..=100).
pub fn percentile(sorted: &[u64], p: u64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p as usize * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Timing from (withdrawal, time to its first terminal event).
pub fn timing(mut samples: Vec<(String, Duration)>) -> Timing {
    samples.sort_by_key(|(_, d)| *d);
    let ms: Vec<u64> = samples.iter().map(|(_, d)| d.as_millis() as u64).collect();
    Timing {
        count: ms.len(),
        p50_ms: percentile(&ms, 50),
        p99_ms: percentile(&ms, 99),
        max_ms: ms.last().copied().unwrap_or(0),
        slowest: samples.last().map(|(id, _)| id.clone()),
    }
}

impl Report {
    pub fn passed(&self) -> bool {
        self.invariants.iter().all(|v| v.passed)
    }

    /// The report for a person.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "chaos run, seed {}: {}", self.seed, self.verdict);
        let o = &self.options;
        let _ =
            writeln!(
            s,
            "  {} workers, {} withdrawals, {}s (+ grace), faults: {} (one every ~{}s); took {:.0}s",
            o.workers,
            o.withdrawals,
            o.duration_secs,
            if o.faults.is_empty() { "none".to_owned() } else { o.faults.join(",") },
            o.fault_interval_secs,
            self.elapsed_secs
        );
        let p = &self.published;
        let _ = writeln!(
            s,
            "published: {} messages = {} authentic + {} exact duplicates + {} bad inputs",
            p.messages, p.authentic, p.duplicates, p.bad_inputs
        );
        let designs: Vec<String> = p.designs.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(s, "  designs: {}", designs.join(", "));
        let by_kind: Vec<String> = self
            .faults_by_kind
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "faults injected: {} ({})",
            self.faults.iter().filter(|f| f.injected).count(),
            by_kind.join(", ")
        );
        for f in &self.faults {
            let _ = writeln!(
                s,
                "  {:>7.1}s {:<13} {}{}",
                f.at,
                f.kind.name(),
                if f.injected { "" } else { "NOT INJECTED: " },
                f.detail
            );
        }
        let outcomes: Vec<String> = self
            .outcomes
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let _ = writeln!(
            s,
            "outcomes (authentic withdrawals): {}",
            outcomes.join(", ")
        );
        let t = &self.time_to_terminal;
        let _ = writeln!(
            s,
            "publish -> terminal event: p50 {} ms, p99 {} ms, max {} ms{}",
            t.p50_ms,
            t.p99_ms,
            t.max_ms,
            t.slowest
                .as_ref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        );
        if let Some(c) = &self.channel_calls {
            let injected: Vec<String> = c
                .injected
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "channel calls: {} for {} keys; faulted by the simulator: {}",
                c.calls,
                self.ledger.keys,
                if injected.is_empty() {
                    "none".to_owned()
                } else {
                    injected.join(", ")
                }
            );
        }
        let _ = writeln!(
            s,
            "ledger: {} keys, {} moved, {} moved in total",
            self.ledger.keys, self.ledger.keys_moved, self.ledger.moved_total
        );
        let _ = writeln!(s, "retries: {}", self.retries.line());
        let _ = writeln!(
            s,
            "workers: {} started (restarts included), {} SIGTERM exits, {} unexpected exits",
            self.workers.starts,
            self.workers.sigterm_exits.len(),
            self.workers.unexpected_exits.len()
        );
        for u in &self.workers.unexpected_exits {
            let _ = writeln!(s, "  {u}");
        }
        let _ = writeln!(s, "invariants:");
        for v in &self.invariants {
            let _ = writeln!(
                s,
                "  {} {:<26} ({} checked) {}",
                if v.passed { "PASS" } else { "FAIL" },
                v.name,
                v.checked,
                v.rule
            );
            for x in &v.violations {
                let _ = writeln!(s, "         - {x}");
            }
            if v.violation_count > v.violations.len() {
                let _ = writeln!(
                    s,
                    "         … and {} more (see the JSON report)",
                    v.violation_count - v.violations.len()
                );
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        let _ = writeln!(
            s,
            "logs and evidence (ledger.json, events.jsonl, dead-letters.jsonl): {}",
            self.logs
        );
        let _ = writeln!(s, "reproduce: {}", self.reproduce);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&v, 100), 100);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 99), 0);
        assert_eq!(percentile(&[1, 2, 3], 99), 3);
    }

    #[test]
    fn timing_names_the_slowest() {
        let t = timing(vec![
            ("a".into(), Duration::from_millis(30)),
            ("b".into(), Duration::from_millis(900)),
            ("c".into(), Duration::from_millis(10)),
        ]);
        assert_eq!((t.count, t.p50_ms, t.max_ms), (3, 30, 900));
        assert_eq!(t.slowest.as_deref(), Some("b"));
    }
}
