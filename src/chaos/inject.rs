//! Carrying out the fault schedule against what the run owns: its worker processes, its
//! redis-server, its vhost's worker connections, and its simulator (through
//! `POST /sim/faults`). Faults that last (storms, latency, Redis downtime) run in their
//! own tasks, so they overlap as the schedule says; each one is recorded with its kind,
//! planned and actual time, and what happened.

use super::infra::{OwnRedis, OwnVhost};
use super::invariants::{LedgerLine, OperatorVerdict};
use super::observe;
use super::options::FaultKind;
use super::schedule::{PlannedFault, LOST_RATE_PERCENT, STORM_RATE_PERCENT};
use super::workers::{self, Pool};
use crate::shutdown::Shutdown;
use crate::sim::faults::FaultControl;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// One fault as it happened.
#[derive(Debug, Clone, Serialize)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// Seconds from the start of the run: planned, started, over (restarted, calm again).
    pub planned_at: f64,
    pub at: f64,
    pub ended_at: f64,
    pub target: Option<usize>,
    pub detail: String,
    /// Injected as planned (false: it could not be, see `detail`).
    pub injected: bool,
}

/// A SIGTERM's outcome: the contract wants exit status 0 after draining.
#[derive(Debug, Clone, Serialize)]
pub struct TermExit {
    pub worker: usize,
    pub at: f64,
    /// `None`: still running after the patience, killed.
    pub code: Option<i32>,
}

/// The simulator's fault settings as the sum of the faults active now.
#[derive(Debug, Default)]
struct Active {
    errors: u32,
    lost: u32,
    latencies: Vec<u64>,
}

impl Active {
    /// A storm, lost-answer spell or latency spike of `level` begins (`on`) or ends.
    fn apply(&mut self, kind: FaultKind, level: u64, on: bool) {
        let count = match kind {
            FaultKind::Errors => &mut self.errors,
            FaultKind::LostAnswers => &mut self.lost,
            FaultKind::Latency if on => return self.latencies.push(level),
            FaultKind::Latency => {
                if let Some(p) = self.latencies.iter().position(|l| *l == level) {
                    self.latencies.remove(p);
                }
                return;
            }
            _ => return,
        };
        *count = if on {
            *count + 1
        } else {
            count.saturating_sub(1)
        };
    }

    fn control(&self) -> FaultControl {
        let mut kinds = Vec::new();
        if self.errors > 0 {
            kinds.extend(["bad_gateway", "unavailable", "system_error"].map(String::from));
        }
        if self.lost > 0 {
            kinds.push("lost_answer".to_owned());
        }
        let rate = if self.errors > 0 {
            STORM_RATE_PERCENT
        } else if self.lost > 0 {
            LOST_RATE_PERCENT
        } else {
            0
        };
        FaultControl {
            rate: Some(rate as f64 / 100.0),
            kinds: Some(kinds),
            latency_ms: Some(self.latencies.iter().copied().max().unwrap_or(0)),
        }
    }
}

/// Drives the simulator's `/sim/faults`.
#[derive(Debug)]
pub struct SimControl {
    http: reqwest::Client,
    url: String,
    // A tokio Mutex: held across the request, so changes reach the simulator in order.
    active: Mutex<Active>,
}

impl SimControl {
    pub fn new(sim_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            url: format!("{sim_url}/sim/faults"),
            active: Mutex::new(Active::default()),
        }
    }

    async fn change(&self, f: impl FnOnce(&mut Active)) -> Result<(), String> {
        let mut active = self.active.lock().await;
        f(&mut active);
        self.send(&active.control()).await
    }

    async fn send(&self, control: &FaultControl) -> Result<(), String> {
        let r = self
            .http
            .post(&self.url)
            .json(control)
            .send()
            .await
            .map_err(|e| format!("POST /sim/faults: {e}"))?;
        if r.status().is_success() {
            Ok(())
        } else {
            Err(format!("POST /sim/faults: HTTP {}", r.status()))
        }
    }

    /// Calm: no faults, no added latency, whatever was active.
    pub async fn calm(&self) -> Result<(), String> {
        let mut active = self.active.lock().await;
        *active = Active::default();
        self.send(&active.control()).await
    }

    /// `GET /sim/ledger`.
    pub async fn ledger(&self) -> Result<Vec<LedgerLine>, String> {
        let url = self.url.replace("/sim/faults", "/sim/ledger");
        self.http
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())
    }

    /// `POST /sim/forget`: the channels forget these payouts if they are still pending.
    pub async fn forget(&self, keys: &[String]) -> Result<usize, String> {
        self.post_count("/sim/forget", Some(keys)).await
    }

    /// `POST /sim/remember`: the channels remember what they forgot.
    pub async fn remember(&self) -> Result<usize, String> {
        self.post_count("/sim/remember", None::<&()>).await
    }

    /// `POST /sim/windows`: refund deadlines of top-ups, enforced by the channels.
    pub async fn close_windows(
        &self,
        deadlines: &std::collections::BTreeMap<String, chrono::DateTime<chrono::Utc>>,
    ) -> Result<usize, String> {
        self.post_count("/sim/windows", Some(deadlines)).await
    }

    /// `POST /sim/settle`: every pending payout settles now.
    pub async fn settle_all(&self) -> Result<usize, String> {
        self.post_count("/sim/settle", None::<&()>).await
    }

    /// A `POST` to one of the simulator's control paths (with a JSON body, if given)
    /// whose answer is a count.
    async fn post_count<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: Option<&T>,
    ) -> Result<usize, String> {
        let mut request = self.http.post(self.url.replace("/sim/faults", path));
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("POST {path}: {e}"))
    }

    /// Calls seen and faults injected so far.
    pub async fn status(&self) -> Option<crate::sim::faults::FaultStatus> {
        self.http
            .get(&self.url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()
    }
}

/// Seconds, rounded to the millisecond (for the report).
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// Resolves one operator fault runs: on random withdrawals and legs...
const OPERATOR_RANDOM: usize = 4;
/// ...and on withdrawals seen in review.
const OPERATOR_REVIEWS: usize = 2;
/// How long one `review resolve` may take.
const OPERATOR_PATIENCE: Duration = Duration::from_secs(20);

/// The operator: runs the real `payout-worker review resolve` with the run's
/// environment (as the workers get it) and keeps every verdict it accepted.
pub struct Operator {
    pub exe: PathBuf,
    pub config: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    /// Every authentic withdrawal and its leg ids.
    pub plan: Vec<(String, Vec<String>)>,
    pub observed: observe::Shared,
    /// One line per resolve tried, with what it answered.
    pub log: PathBuf,
    pub rng: Mutex<ChaCha8Rng>,
    pub accepted: Mutex<Vec<OperatorVerdict>>,
}

impl Operator {
    pub fn new(
        seed: u64,
        exe: PathBuf,
        config: Option<PathBuf>,
        env: Vec<(String, String)>,
        plan: Vec<(String, Vec<String>)>,
        observed: observe::Shared,
        log: PathBuf,
    ) -> Self {
        Self {
            exe,
            config,
            env,
            plan,
            observed,
            log,
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed ^ 0x6f70_6572_6174_6f72)),
            accepted: Mutex::default(),
        }
    }

    /// What to try this time: (withdrawal, leg, outcome). Random withdrawals, legs
    /// (now and then one that does not exist) and verdicts, plus withdrawals in review.
    async fn picks(&self) -> Vec<(String, String, &'static str)> {
        let mut reviewed: Vec<String> = observe::lock(&self.observed)
            .reviewed
            .iter()
            .cloned()
            .collect();
        reviewed.sort();
        let mut rng = self.rng.lock().await;
        let mut picks = Vec::new();
        let outcome = |rng: &mut ChaCha8Rng| {
            if rng.random_bool(0.5) {
                "paid"
            } else {
                "failed"
            }
        };
        for _ in 0..OPERATOR_RANDOM {
            if self.plan.is_empty() {
                break;
            }
            let (id, legs) = &self.plan[rng.random_range(0..self.plan.len())];
            let leg = if rng.random_bool(0.1) {
                "9".to_owned()
            } else {
                legs[rng.random_range(0..legs.len())].clone()
            };
            picks.push((id.clone(), leg, outcome(&mut rng)));
        }
        for _ in 0..OPERATOR_REVIEWS {
            if reviewed.is_empty() {
                break;
            }
            let id = reviewed[rng.random_range(0..reviewed.len())].clone();
            let Some((_, legs)) = self.plan.iter().find(|(w, _)| *w == id) else {
                continue;
            };
            let leg = legs[rng.random_range(0..legs.len())].clone();
            picks.push((id, leg, outcome(&mut rng)));
        }
        picks
    }

    /// One round of resolves; says how many were accepted.
    async fn round(&self, at: f64) -> Result<String, String> {
        let picks = self.picks().await;
        let mut accepted = 0;
        for (id, leg, outcome) in &picks {
            let mut cmd = tokio::process::Command::new(&self.exe);
            if let Some(config) = &self.config {
                cmd.arg("--config").arg(config);
            }
            cmd.args(["review", "resolve", id, "--leg", leg, "--outcome", outcome])
                .args(["--reason", "chaos operator"])
                .envs(self.env.iter().map(|(k, v)| (k, v)))
                .env_remove("RUST_LOG")
                .stdin(std::process::Stdio::null())
                .kill_on_drop(true);
            let said = match tokio::time::timeout(OPERATOR_PATIENCE, cmd.output()).await {
                Err(_) => "timed out (killed)".to_owned(),
                Ok(Err(e)) => format!("could not run: {e}"),
                Ok(Ok(out)) => {
                    if out.status.success() {
                        accepted += 1;
                        self.accepted.lock().await.push(OperatorVerdict {
                            withdrawal: id.clone(),
                            leg: leg.clone(),
                            outcome: (*outcome).to_owned(),
                        });
                    }
                    let text = String::from_utf8_lossy(if out.status.success() {
                        &out.stdout
                    } else {
                        &out.stderr
                    })
                    .lines()
                    .last()
                    .unwrap_or("")
                    .to_owned();
                    format!(
                        "{} {text}",
                        if out.status.success() {
                            "ACCEPTED"
                        } else {
                            "refused"
                        }
                    )
                }
            };
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
            {
                let _ = writeln!(
                    f,
                    "{at:.1}s resolve {id} --leg {leg} --outcome {outcome}: {said}"
                );
            }
        }
        Ok(format!(
            "{} review resolve(s), {accepted} accepted",
            picks.len()
        ))
    }
}

/// What the injector works on.
pub struct Ctx {
    pub pool: Arc<Mutex<Pool>>,
    pub redis: Arc<Mutex<OwnRedis>>,
    pub vhost: Arc<OwnVhost>,
    pub sim: Arc<SimControl>,
    pub t0: Instant,
    /// How long a SIGTERMed worker may take to drain before it is killed.
    pub term_patience: Duration,
    pub records: Mutex<Vec<FaultRecord>>,
    pub term_exits: Mutex<Vec<TermExit>>,
    /// The operator process (fault kind `operator`).
    pub operator: Option<Arc<Operator>>,
    /// The workers' Redis key prefix (to read which legs they recorded as pending).
    pub key_prefix: String,
}

/// The idempotency keys of the legs the run's Redis records as `pending`.
async fn pending_keys(port: u16, prefix: &str) -> Result<Vec<String>, String> {
    use crate::domain::{IdempotencyKey, LegId, WithdrawalId};
    let client =
        redis::Client::open(format!("redis://127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    let read = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        let records: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:{{*}}"))
            .query_async(&mut conn)
            .await?;
        let mut keys = Vec::new();
        for record in records {
            let id = record
                .strip_prefix(&format!("{prefix}:{{"))
                .and_then(|r| r.strip_suffix('}'))
                .and_then(WithdrawalId::parse);
            let Some(id) = id else { continue };
            let fields: Vec<(String, String)> = redis::cmd("HGETALL")
                .arg(&record)
                .query_async(&mut conn)
                .await?;
            for (field, value) in fields {
                let Some(leg) = field.strip_prefix("leg:").and_then(LegId::parse) else {
                    continue;
                };
                if value.contains("\"state\":\"pending\"") {
                    keys.push(IdempotencyKey::for_leg(&id, &leg).to_string());
                }
            }
        }
        Ok::<_, redis::RedisError>(keys)
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| "reading the run's Redis timed out".to_owned())?
        .map_err(|e| e.to_string())
}

impl Ctx {
    fn now(&self) -> f64 {
        millis(self.t0.elapsed())
    }
}

/// Injects `plan` at its times until done or `stop`; faults under way finish (they are
/// short) before this returns.
pub async fn run(ctx: Arc<Ctx>, plan: Vec<PlannedFault>, mut stop: Shutdown) {
    let mut under_way = tokio::task::JoinSet::new();
    for fault in plan {
        let when = tokio::time::Instant::from_std(ctx.t0 + fault.at);
        tokio::select! {
            _ = stop.wait() => break,
            _ = tokio::time::sleep_until(when) => {}
        }
        let ctx = ctx.clone();
        under_way.spawn(async move {
            let record = inject(&ctx, &fault).await;
            ctx.records.lock().await.push(record);
        });
    }
    while under_way.join_next().await.is_some() {}
}

async fn inject(ctx: &Ctx, f: &PlannedFault) -> FaultRecord {
    let at = ctx.now();
    let mut target = None;
    let result: Result<String, String> = match f.kind {
        FaultKind::Kill | FaultKind::Term => {
            let taken = {
                let mut pool = ctx.pool.lock().await;
                let running = pool.running();
                let pick = if running.contains(&f.target) {
                    Some(f.target)
                } else {
                    running.first().copied()
                };
                pick.and_then(|i| pool.take(i).map(|c| (i, c)))
            };
            match taken {
                None => Err("no worker running to stop".into()),
                Some((i, mut child)) => {
                    target = Some(i);
                    let said = if f.kind == FaultKind::Kill {
                        workers::kill(&mut child).await;
                        tokio::time::sleep(f.hold).await;
                        format!(
                            "worker {i} SIGKILLed; restarted after {} ms",
                            f.hold.as_millis()
                        )
                    } else {
                        let status = workers::terminate(&mut child, ctx.term_patience).await;
                        let code = status.and_then(|s| s.code());
                        ctx.term_exits.lock().await.push(TermExit {
                            worker: i,
                            at,
                            code,
                        });
                        match status {
                            Some(s) => format!("worker {i} SIGTERMed, drained and exited ({s}) after {:.1}s; restarted", ctx.now() - at),
                            None => format!("worker {i} SIGTERMed, still running after {:?}: killed; restarted", ctx.term_patience),
                        }
                    };
                    let restarted = ctx.pool.lock().await.restart(i);
                    restarted.map(|()| said)
                }
            }
        }
        FaultKind::CloseConns => {
            let names = ctx.pool.lock().await.connection_names();
            ctx.vhost
                .close_connections(&names, "chaos: connection closed by fault injection")
                .await
                .map(|n| format!("closed {n} worker connection(s)"))
        }
        FaultKind::RedisFlush => match ctx.sim.remember().await {
            Err(e) => Err(e),
            Ok(remembered) => ctx.redis.lock().await.flush().await.map(|()| {
                format!("FLUSHALL (the channels remembered {remembered} forgotten payout(s) first)")
            }),
        },
        FaultKind::RedisRestart => {
            if let Err(e) = ctx.sim.remember().await {
                tracing::warn!(error = %e, "the channels could not be made to remember");
            }
            let mut redis = ctx.redis.lock().await;
            redis.stop().await;
            tokio::time::sleep(f.hold).await;
            redis.resume().await.map(|()| {
                format!(
                    "redis-server stopped, back empty after {} ms",
                    f.hold.as_millis()
                )
            })
        }
        FaultKind::ForgetKeys => {
            // Only payouts the workers have recorded as pending: what the worker can
            // know the channel accepted. With Redis losing that record as well, no
            // evidence would be left anywhere, so the channels remember again before
            // any Redis state loss (above): the two never destroy one key's evidence
            // together.
            let port = ctx.redis.lock().await.port;
            match pending_keys(port, &ctx.key_prefix).await {
                Err(e) => Err(e),
                Ok(keys) => ctx
                    .sim
                    .forget(&keys)
                    .await
                    .map(|n| format!("the channels forgot {n} pending payout(s)")),
            }
        }
        FaultKind::Operator => match &ctx.operator {
            Some(op) => op.round(at).await,
            None => Err("no operator configured".into()),
        },
        FaultKind::WindowClosing | FaultKind::AgeLimit | FaultKind::StuckUnknown => {
            Err("a mix design, not a fault".into())
        }
        FaultKind::Latency | FaultKind::Errors | FaultKind::LostAnswers => {
            match ctx.sim.change(|a| a.apply(f.kind, f.level, true)).await {
                Err(e) => Err(e),
                Ok(()) => {
                    tokio::time::sleep(f.hold).await;
                    let calmed = ctx.sim.change(|a| a.apply(f.kind, f.level, false)).await;
                    let what = match f.kind {
                        FaultKind::Latency => format!("+{} ms on every channel call", f.level),
                        FaultKind::Errors => {
                            format!("{}% of calls: 502, unavailable, system error", f.level)
                        }
                        _ => format!("{}% of calls carried out, answer lost (HTTP 500)", f.level),
                    };
                    calmed.map(|()| format!("{what} for {:.1}s", f.hold.as_secs_f64()))
                }
            }
        }
    };
    let (injected, detail) = match result {
        Ok(d) => (true, d),
        Err(e) => (false, e),
    };
    FaultRecord {
        kind: f.kind,
        planned_at: millis(f.at),
        at,
        ended_at: ctx.now(),
        target,
        detail,
        injected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_faults_add_up_in_the_simulator_settings() {
        let mut a = Active::default();
        assert_eq!(a.control().rate, Some(0.0));
        a.apply(FaultKind::LostAnswers, LOST_RATE_PERCENT, true);
        assert_eq!(a.control().rate, Some(0.3));
        assert_eq!(a.control().kinds.unwrap(), vec!["lost_answer"]);
        a.apply(FaultKind::Errors, STORM_RATE_PERCENT, true);
        a.apply(FaultKind::Latency, 800, true);
        a.apply(FaultKind::Latency, 2000, true);
        let c = a.control();
        assert_eq!(c.rate, Some(0.5));
        assert_eq!(c.kinds.as_ref().map(Vec::len), Some(4));
        assert_eq!(c.latency_ms, Some(2000));
        // Every control the injector sends is one the simulator accepts.
        assert!(c.parsed().is_ok());
        assert!(Active::default().control().parsed().is_ok());
        // Each ends on its own; what is left stays in force.
        a.apply(FaultKind::Latency, 2000, false);
        a.apply(FaultKind::Errors, STORM_RATE_PERCENT, false);
        let c = a.control();
        assert_eq!((c.rate, c.latency_ms), (Some(0.3), Some(800)));
        a.apply(FaultKind::LostAnswers, LOST_RATE_PERCENT, false);
        a.apply(FaultKind::LostAnswers, LOST_RATE_PERCENT, false);
        a.apply(FaultKind::Latency, 800, false);
        assert_eq!(a.control(), Active::default().control());
    }
}
