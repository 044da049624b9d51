//! The `payout-worker chaos` options, the fault kinds they name, and the command line
//! that reproduces a run.

use clap::Args;
use std::fmt;
use std::path::{Path, PathBuf};

/// A seeded storm of faults against real RabbitMQ, Redis, worker processes and the
/// simulator, with a verdict.
#[derive(Debug, Clone, Args)]
pub struct ChaosArgs {
    /// Seeds the mix of withdrawals and the fault schedule: the same seed and options
    /// give the same commands and the same faults at the same times.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Worker processes (this executable with `run`).
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Distinct commands to publish: authentic withdrawals plus about 5% bad inputs;
    /// exact duplicates of about 10% of the authentic ones come on top.
    #[arg(long, default_value_t = 2000)]
    pub withdrawals: usize,
    /// Seconds. Commands are published over the first half, faults fall in the first
    /// three quarters; the run ends when every withdrawal is settled, or at the latest
    /// after the duration plus a grace (a quarter of it, at least 30 s).
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    /// Fault kinds, comma-separated, or `all` or `none`: kill, term, close_conns,
    /// redis_flush, redis_restart, latency, errors, lost_answers, forget_keys, operator;
    /// and the mix designs window_closing, age_limit, stuck_unknown.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    pub faults: Vec<String>,
    /// Mean seconds between two faults.
    #[arg(long, default_value_t = 5.0)]
    pub fault_interval: f64,
    /// Where the JSON report goes.
    #[arg(long, default_value = "chaos-report.json")]
    pub report: PathBuf,
    /// Log level of the worker processes (their logs go to files, see the report).
    #[arg(long, default_value = "warn")]
    pub worker_log_level: String,
    /// Keep the logs and evidence directory after a run that passed (a failed run
    /// always keeps it).
    #[arg(long)]
    pub keep_logs: bool,
}

/// One kind of fault the scheduler can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    /// SIGKILL a worker process, then start a new one.
    Kill,
    /// SIGTERM a worker (it drains and must exit 0), then start a new one.
    Term,
    /// Close every broker connection of this run's workers.
    CloseConns,
    /// FLUSHALL on this run's own redis-server.
    RedisFlush,
    /// Stop this run's redis-server for a moment, start it again empty.
    RedisRestart,
    /// Added latency on every channel call for a few seconds.
    Latency,
    /// Half of all channel calls fail (502, unavailable, system error) for a few seconds.
    Errors,
    /// Channel calls carried out and their answers lost, for a few seconds.
    LostAnswers,
    /// The simulator forgets every payout it accepted and has not settled yet (for
    /// queries and idempotency; the money still moves).
    ForgetKeys,
    /// `payout-worker review resolve` run as an operator would: on random withdrawals
    /// and legs (most must be refused) and on real reviews.
    Operator,
    /// Mix design: top-ups whose original-route refund window closes during the run,
    /// each with a slow-settling bank leg (not scheduled: it shapes the mix).
    WindowClosing,
    /// Mix design: withdrawals that age past `limits.max_age_secs` during the run while
    /// a slow bank leg settles (not scheduled: it shapes the mix).
    AgeLimit,
    /// Mix design: bank legs whose outcome stays unknown for good, published three
    /// times so copies wait on each other's lease; they must reach review
    /// (`retry.max_deferrals` is lowered for the run). Not scheduled.
    StuckUnknown,
}

impl FaultKind {
    pub const ALL: [FaultKind; 13] = [
        FaultKind::Kill,
        FaultKind::Term,
        FaultKind::CloseConns,
        FaultKind::RedisFlush,
        FaultKind::RedisRestart,
        FaultKind::Latency,
        FaultKind::Errors,
        FaultKind::LostAnswers,
        FaultKind::ForgetKeys,
        FaultKind::Operator,
        FaultKind::WindowClosing,
        FaultKind::AgeLimit,
        FaultKind::StuckUnknown,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Term => "term",
            FaultKind::CloseConns => "close_conns",
            FaultKind::RedisFlush => "redis_flush",
            FaultKind::RedisRestart => "redis_restart",
            FaultKind::Latency => "latency",
            FaultKind::Errors => "errors",
            FaultKind::LostAnswers => "lost_answers",
            FaultKind::ForgetKeys => "forget_keys",
            FaultKind::Operator => "operator",
            FaultKind::WindowClosing => "window_closing",
            FaultKind::AgeLimit => "age_limit",
            FaultKind::StuckUnknown => "stuck_unknown",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Whether the kind only shapes the mix of withdrawals (never scheduled).
    pub fn is_design(self) -> bool {
        matches!(
            self,
            FaultKind::WindowClosing | FaultKind::AgeLimit | FaultKind::StuckUnknown
        )
    }

    /// Whether the fault lasts a while (and then is taken back).
    pub fn holds(self) -> bool {
        matches!(
            self,
            FaultKind::RedisRestart
                | FaultKind::Latency
                | FaultKind::Errors
                | FaultKind::LostAnswers
        )
    }
}

impl serde::Serialize for FaultKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--faults`: names, `all` or `none`, without repeats, in the canonical order.
pub fn parse_fault_kinds(names: &[String]) -> Result<Vec<FaultKind>, String> {
    let mut kinds = Vec::new();
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        match name {
            "all" => kinds.extend(FaultKind::ALL),
            "none" => {}
            _ => kinds.push(FaultKind::parse(name).ok_or_else(|| {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "--faults: unknown kind {name:?} (known: {}, all, none)",
                    known.join(", ")
                )
            })?),
        }
    }
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

impl ChaosArgs {
    /// Checks the options; returns the fault kinds.
    pub fn validate(&self) -> Result<Vec<FaultKind>, String> {
        if !(1..=16).contains(&self.workers) {
            return Err("--workers must be between 1 and 16".into());
        }
        if self.withdrawals < 10 {
            return Err("--withdrawals must be at least 10".into());
        }
        if self.duration < 20 {
            return Err("--duration must be at least 20 seconds".into());
        }
        if self.fault_interval.is_nan() || self.fault_interval < 0.5 {
            return Err("--fault-interval must be at least 0.5 seconds".into());
        }
        parse_fault_kinds(&self.faults)
    }

    /// The command line that runs this again: same seed, same options.
    pub fn reproduce(&self, kinds: &[FaultKind], config: Option<&Path>) -> String {
        let faults = if kinds.is_empty() {
            "none".to_owned()
        } else if kinds == FaultKind::ALL {
            "all".to_owned()
        } else {
            kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
        };
        let mut line = String::from("payout-worker");
        if let Some(path) = config {
            line.push_str(&format!(
                " --config {}",
                shell_word(&path.display().to_string())
            ));
        }
        line.push_str(&format!(
            " chaos --seed {} --workers {} --withdrawals {} --duration {} --faults {} --fault-interval {} --report {}",
            self.seed,
            self.workers,
            self.withdrawals,
            self.duration,
            faults,
            self.fault_interval,
            shell_word(&self.report.display().to_string()),
        ));
        if self.worker_log_level != "warn" {
            line.push_str(&format!(
                " --worker-log-level {}",
                shell_word(&self.worker_log_level)
            ));
        }
        if self.keep_logs {
            line.push_str(" --keep-logs");
        }
        line
    }
}

/// Quotes a word for a POSIX shell when it needs it.
fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@+".contains(&b));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
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

    fn parse(line: &str) -> ChaosArgs {
        Cli::parse_from(std::iter::once("chaos").chain(line.split_whitespace())).args
    }

    #[test]
    fn fault_lists_parse_with_all_and_none() {
        let all = parse_fault_kinds(&["all".into()]).unwrap();
        assert_eq!(all, FaultKind::ALL);
        assert!(parse_fault_kinds(&["none".into()]).unwrap().is_empty());
        let some = parse_fault_kinds(&["errors".into(), "kill".into(), "kill".into()]).unwrap();
        assert_eq!(some, vec![FaultKind::Kill, FaultKind::Errors]);
        assert!(parse_fault_kinds(&["meteor".into()])
            .unwrap_err()
            .contains("meteor"));
        for k in FaultKind::ALL {
            assert_eq!(FaultKind::parse(k.name()), Some(k));
        }
    }

    #[test]
    fn the_reproduce_line_parses_back_to_the_same_options() {
        let args = parse("--seed 42 --workers 2 --withdrawals 200 --duration 60 --faults kill,errors --report out/r.json");
        let kinds = args.validate().unwrap();
        let line = args.reproduce(&kinds, None);
        assert_eq!(
            line,
            "payout-worker chaos --seed 42 --workers 2 --withdrawals 200 --duration 60 --faults kill,errors --fault-interval 5 --report out/r.json"
        );
        let again = parse(line.trim_start_matches("payout-worker chaos"));
        assert_eq!(again.validate().unwrap(), kinds);
        assert_eq!(
            (again.seed, again.workers, again.withdrawals, again.duration),
            (42, 2, 200, 60)
        );
        let defaults = parse("");
        assert_eq!(defaults.validate().unwrap(), FaultKind::ALL);
        assert!(defaults.reproduce(&FaultKind::ALL, Some(Path::new("my conf.toml")))
            .starts_with("payout-worker --config 'my conf.toml' chaos --seed 1 --workers 3 --withdrawals 2000 --duration 300 --faults all"));
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(parse("--workers 0").validate().is_err());
        assert!(parse("--duration 5").validate().is_err());
        assert!(parse("--fault-interval 0").validate().is_err());
    }
}
