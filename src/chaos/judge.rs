//! From what a run collected to its [`Report`]: the invariants (plus the run's own
//! completeness), outcomes, times to a terminal event, faults by kind; and the files
//! kept for a post-mortem (the report, and the ledger, events and dead letters the
//! verdicts were drawn from).

use super::inject::{FaultRecord, TermExit};
use super::invariants::{self, Inputs, LedgerLine};
use super::mix::Mix;
use super::observe::Observed;
use super::options::{ChaosArgs, FaultKind};
use super::publish::Sent;
use super::report::{self, Report};
use crate::sim::faults::FaultStatus;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Everything a finished run hands over.
pub struct Collected<'a> {
    pub args: &'a ChaosArgs,
    pub kinds: &'a [FaultKind],
    pub reproduce: String,
    pub started_at: DateTime<Utc>,
    pub elapsed: Duration,
    pub mix: &'a Mix,
    pub sent: Sent,
    pub observed: Observed,
    pub ledger: Vec<LedgerLine>,
    pub channel_calls: Option<FaultStatus>,
    pub retries: super::retries::RetriesReport,
    pub faults: Vec<FaultRecord>,
    pub term_exits: Vec<TermExit>,
    pub starts: usize,
    pub unexpected_exits: Vec<String>,
    pub notes: Vec<String>,
    pub logs: &'a Path,
    /// Verdicts the operator process had accepted.
    pub verdicts: Vec<invariants::OperatorVerdict>,
}

pub fn judge(c: Collected<'_>) -> Report {
    let events: Vec<invariants::Event> = c.observed.events.iter().map(|(_, e)| e.clone()).collect();
    let mut verdicts = invariants::check_all(&Inputs {
        authentic: &c.mix.authentic,
        bad: &c.mix.bad,
        events: &events,
        dead: &c.observed.dead,
        ledger: &c.ledger,
        verdicts: &c.verdicts,
    });
    let exits: Vec<(usize, f64, Option<i32>)> = c
        .term_exits
        .iter()
        .map(|e| (e.worker, e.at, e.code))
        .collect();
    verdicts.push(invariants::sigterm_exits_zero(&exits));
    let to_publish = c.mix.messages.len();
    verdicts.push(invariants::harness_complete(
        to_publish,
        harness_problems(&c.observed, &c.sent, to_publish),
    ));

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for o in invariants::outcomes(&c.mix.authentic, &events).values() {
        *outcomes.entry(o.name().to_owned()).or_default() += 1;
    }
    let samples: Vec<(String, Duration)> = c
        .mix
        .authentic
        .iter()
        .filter_map(|w| {
            let done = c.observed.first_terminal.get(&w.id)?;
            let start = c.sent.first.get(&w.id)?;
            Some((w.id.clone(), done.saturating_duration_since(*start)))
        })
        .collect();
    let mut faults = c.faults;
    faults.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut faults_by_kind: BTreeMap<String, usize> = BTreeMap::new();
    for f in faults.iter().filter(|f| f.injected) {
        *faults_by_kind.entry(f.kind.name().to_owned()).or_default() += 1;
    }
    let moved: rust_decimal::Decimal = c.ledger.iter().filter_map(LedgerLine::moved).sum();
    let passed = verdicts.iter().all(|v| v.passed);
    Report {
        verdict: if passed { "PASS" } else { "FAIL" },
        reproduce: c.reproduce,
        seed: c.args.seed,
        options: report::Options {
            workers: c.args.workers,
            withdrawals: c.args.withdrawals,
            duration_secs: c.args.duration,
            faults: c.kinds.iter().map(|k| k.name().to_owned()).collect(),
            fault_interval_secs: c.args.fault_interval,
        },
        started_at: c.started_at.to_rfc3339(),
        elapsed_secs: (c.elapsed.as_secs_f64() * 10.0).round() / 10.0,
        published: report::Published {
            messages: c.sent.count,
            authentic: c.mix.authentic.len(),
            duplicates: c.mix.messages.iter().filter(|m| m.duplicate).count(),
            bad_inputs: c.mix.bad.len(),
            designs: c
                .mix
                .designs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
        },
        faults_by_kind,
        faults,
        outcomes,
        time_to_terminal: report::timing(samples),
        channel_calls: c.channel_calls,
        ledger: report::LedgerSummary {
            keys: c.ledger.len(),
            keys_moved: c.ledger.iter().filter(|l| l.moves > 0).count(),
            moved_total: format!("{moved:.2}"),
        },
        retries: c.retries,
        workers: report::Workers {
            starts: c.starts,
            sigterm_exits: c.term_exits,
            unexpected_exits: c.unexpected_exits,
        },
        invariants: verdicts,
        notes: c.notes,
        logs: c.logs.display().to_string(),
    }
}

/// What makes the run's own observations incomplete.
fn harness_problems(o: &Observed, sent: &Sent, to_publish: usize) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(b) = &o.broken {
        problems.push(format!("observation broke off: {b}"));
    }
    if o.unreadable_events > 0 {
        problems.push(format!(
            "{} message(s) on the events exchange were not CloudEvents",
            o.unreadable_events
        ));
    }
    problems.extend(sent.errors.iter().map(|e| format!("not published: {e}")));
    if sent.count < to_publish && sent.errors.is_empty() {
        problems.push(format!(
            "only {} of {to_publish} messages were published",
            sent.count
        ));
    }
    problems
}

/// What the verdicts were drawn from, kept next to the logs for a post-mortem:
/// `ledger.json`, `events.jsonl` (arrival order), `dead-letters.jsonl`.
pub fn write_evidence(dir: &Path, ledger: &[LedgerLine], o: &Observed) -> std::io::Result<()> {
    std::fs::write(dir.join("ledger.json"), serde_json::to_vec_pretty(ledger)?)?;
    let lines = |values: Vec<serde_json::Value>| {
        values.iter().map(|v| format!("{v}\n")).collect::<String>()
    };
    std::fs::write(
        dir.join("events.jsonl"),
        lines(
            o.events
                .iter()
                .map(|(_, e)| {
                    serde_json::json!({"id": e.id, "type": e.kind, "subject": e.subject, "data": e.data})
                })
                .collect(),
        ),
    )?;
    std::fs::write(
        dir.join("dead-letters.jsonl"),
        lines(
            o.dead
                .iter()
                .map(|d| {
                    serde_json::json!({"x-payout-error-code": d.error_code,
                                       "body": String::from_utf8_lossy(&d.body)})
                })
                .collect(),
        ),
    )
}

pub fn write_report(path: &Path, json: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, json).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ChaosArgs,
    }

    /// A run where nothing was observed: every withdrawal unfinished, every bad input
    /// missing, and the harness notices the unpublished messages.
    #[test]
    fn an_empty_run_fails_and_says_why() {
        let args = Cli::parse_from(["chaos", "--withdrawals", "20"]).args;
        let now = Utc::now();
        let mix = super::super::mix::build(1, 20, Duration::from_secs(10), now);
        let dir = std::env::temp_dir();
        let report = judge(Collected {
            args: &args,
            kinds: &FaultKind::ALL,
            reproduce: "payout-worker chaos --seed 1".into(),
            started_at: now,
            elapsed: Duration::from_secs(3),
            mix: &mix,
            sent: Sent::default(),
            observed: Observed::default(),
            ledger: Vec::new(),
            channel_calls: None,
            retries: super::super::retries::RetriesReport::from_tally(&Default::default()),
            faults: Vec::new(),
            term_exits: Vec::new(),
            starts: 0,
            unexpected_exits: Vec::new(),
            notes: Vec::new(),
            logs: &dir,
            verdicts: Vec::new(),
        });
        assert_eq!(report.verdict, "FAIL");
        let failing: Vec<&str> = report
            .invariants
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.name)
            .collect();
        assert_eq!(
            failing,
            vec![
                "one_outcome_each",
                "dead_letters_exactly_once",
                "bad_inputs_move_nothing",
                "harness_complete"
            ]
        );
        assert_eq!(report.outcomes["unfinished"], mix.authentic.len());
        assert!(report
            .render()
            .contains("reproduce: payout-worker chaos --seed 1"));
    }
}
