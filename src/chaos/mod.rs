//! `payout-worker chaos`: a seeded, reproducible storm of faults against real RabbitMQ,
//! Redis, several worker processes and the channel simulator, with a verdict.
//!
//! A run owns everything it breaks ([`infra`]): a redis-server on a free port, a vhost
//! of its own, its workers' connections, an in-process simulator. It publishes a seeded
//! [`mix`] of withdrawals ([`publish`]) over the first half of `--duration`, injects a
//! seeded [`schedule`] of faults ([`inject`]) over the first three quarters, waits until
//! every authentic withdrawal is settled (terminal event or review) and every bad input
//! is dead-lettered — or the duration plus a grace runs out — then calms everything,
//! stops the workers and checks the [`invariants`] on the simulator's ledger, the
//! events and the dead letters ([`observe`]). The [`report`] goes to the terminal and to
//! a JSON file; the exit status is non-zero on any violation, and the command that
//! reproduces the run is printed.
//!
//! The settings the workers get, and why, are in [`env`]; turning what was collected
//! into verdicts and the report is [`judge`].

pub(crate) mod env;
pub(crate) mod infra;
mod inject;
pub mod invariants;
mod judge;
mod mix;
mod observe;
pub mod options;
mod progress;
mod publish;
mod report;
mod retries;
mod schedule;
pub(crate) mod workers;

pub use options::ChaosArgs;

use crate::broker::{self, topology, Publisher};
use crate::config::Settings;
use crate::shutdown::{self, ShutdownTrigger};
use infra::{OwnRedis, OwnVhost};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Connection;
use progress::{Progress, Snapshot};
use secrecy::ExposeSecret;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Faults start this long after the first publish.
const FAULTS_FROM: Duration = Duration::from_secs(2);

/// Runs the chaos suite. `Ok(true)` when every invariant held.
pub async fn run(
    settings: Settings,
    args: ChaosArgs,
    config: Option<PathBuf>,
) -> Result<bool, String> {
    let kinds = args.validate()?;
    let reproduce = args.reproduce(&kinds, config.as_deref());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let run_id = format!("chaos-{}-{nanos:08x}", std::process::id());
    let logs = std::env::temp_dir().join(&run_id);
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    eprintln!(
        "chaos: run {run_id}, seed {}; vhost {run_id}, own redis-server, logs in {}",
        args.seed,
        logs.display()
    );

    let user = env::amqp_user(settings.amqp.url.expose_secret());
    let vhost = Arc::new(OwnVhost::create(&run_id, &user).await?);
    let redis = match OwnRedis::start(&logs.join("redis.log")).await {
        Ok(r) => Arc::new(Mutex::new(r)),
        Err(e) => {
            vhost.delete().await;
            return Err(e);
        }
    };
    let (sim_stop, sim_stopped) = shutdown::channel();
    let mut parts = Parts {
        run_id,
        logs,
        vhost,
        redis,
        sim_stop,
        pool: None,
        conn: None,
        channels: Vec::new(),
    };
    // SIGINT/SIGTERM at any point: stop, and still clean up. Dropping the run drops
    // its stop trigger, which ends the publisher and the fault injector.
    let result = {
        let drive = parts.drive(&settings, &args, &kinds, reproduce, config, sim_stopped);
        tokio::select! {
            r = drive => r,
            _ = shutdown::os_signal() => Err("interrupted; cleaning up".into()),
        }
    };
    parts.teardown().await;
    if matches!(result, Ok(true)) && !args.keep_logs && std::fs::remove_dir_all(&parts.logs).is_ok()
    {
        println!("logs removed: the run passed (--keep-logs keeps them)");
    }
    result
}

/// What has to be cleaned up whatever happens.
struct Parts {
    run_id: String,
    logs: PathBuf,
    vhost: Arc<OwnVhost>,
    redis: Arc<Mutex<OwnRedis>>,
    sim_stop: ShutdownTrigger,
    pool: Option<Arc<Mutex<workers::Pool>>>,
    conn: Option<Connection>,
    /// Our channels on it, closed before it.
    channels: Vec<lapin::Channel>,
}

impl Parts {
    async fn teardown(&mut self) {
        if let Some(pool) = self.pool.take() {
            let mut pool = pool.lock().await;
            for i in 0..pool.len() {
                if let Some(mut c) = pool.take(i) {
                    workers::kill(&mut c).await;
                }
            }
        }
        for channel in self.channels.drain(..) {
            let _ = channel.close(200, "chaos run over".into()).await;
        }
        if let Some(conn) = self.conn.take() {
            let _ = conn.close(200, "chaos run over".into()).await;
        }
        self.sim_stop.trigger();
        self.redis.lock().await.stop().await;
        self.vhost.delete().await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn drive(
        &mut self,
        base: &Settings,
        args: &ChaosArgs,
        kinds: &[options::FaultKind],
        reproduce: String,
        config: Option<PathBuf>,
        mut sim_stopped: shutdown::Shutdown,
    ) -> Result<bool, String> {
        let started_at = chrono::Utc::now();
        let redis_url = self.redis.lock().await.url();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("simulator: {e}"))?;
        let sim_url = format!(
            "http://{}",
            listener
                .local_addr()
                .map_err(|e| format!("simulator: {e}"))?
        );
        let mut rs = env::run_settings(base, &self.run_id, &self.vhost.name, &redis_url, &sim_url);
        if kinds.contains(&options::FaultKind::StuckUnknown) {
            rs.retry.max_deferrals = env::STUCK_MAX_DEFERRALS;
        }

        // The simulator, calm to begin with.
        let mut sim_settings = base.sim.clone();
        sim_settings.faults = 0.0;
        sim_settings.fault_kinds = Vec::new();
        sim_settings.latency_ms = 0;
        sim_settings.seed = args.seed;
        let sim_opts = crate::sim::SimOptions::from_settings(&sim_settings)?;
        tokio::spawn(crate::sim::serve(sim_opts, listener, async move {
            sim_stopped.wait().await
        }));
        let sim = Arc::new(inject::SimControl::new(&sim_url));

        // Our own connection: topology, publishing, the taps.
        let conn = broker::connect(&rs.amqp, &format!("{}-harness", self.run_id))
            .await
            .map_err(|e| format!("RabbitMQ: {e}"))?;
        let publisher = Publisher::open(&conn, Duration::from_secs(30))
            .await
            .map_err(|e| format!("RabbitMQ: {e}"))?;
        topology::declare(&conn, publisher.channel(), &rs.topology)
            .await
            .map_err(|e| format!("declaring the run's topology: {e}"))?;
        let tap_channel = conn.create_channel().await.map_err(|e| e.to_string())?;
        let observed = observe::start(&tap_channel, &rs.topology)
            .await
            .map_err(|e| format!("binding the event tap: {e}"))?;
        let probe = conn.create_channel().await.map_err(|e| e.to_string())?;
        self.conn = Some(conn);
        self.channels = vec![publisher.channel().clone(), tap_channel, probe.clone()];

        // The workers.
        let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
        let run_env = env::worker_env(&rs, &args.worker_log_level);
        let launch = workers::Launch {
            exe: exe.clone(),
            config: config.clone(),
            env: run_env.clone(),
            base_name: self.run_id.clone(),
            logs: self.logs.clone(),
        };
        let pool = Arc::new(Mutex::new(workers::Pool::start(launch, args.workers)?));
        self.pool = Some(pool.clone());
        let t_ready = Instant::now();
        loop {
            let consumers = probe
                .queue_declare(
                    rs.topology.work_queue.as_str().into(),
                    QueueDeclareOptions {
                        passive: true,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await
                .map(|q| q.consumer_count() as usize)
                .unwrap_or(0);
            if consumers >= args.workers {
                break;
            }
            pool.lock().await.supervise(t_ready.elapsed());
            if t_ready.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "the workers did not start consuming within 60 s (logs: {})",
                    self.logs.display()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        eprintln!(
            "chaos: {} workers consuming after {:.1}s; simulator at {sim_url}",
            args.workers,
            t_ready.elapsed().as_secs_f64()
        );

        // The plan.
        let duration = Duration::from_secs(args.duration);
        let grace = (duration / 4).max(Duration::from_secs(30));
        use options::FaultKind as K;
        let mut designs = Vec::new();
        for (kind, design) in [
            (K::WindowClosing, "window_closing"),
            (K::AgeLimit, "age_limit"),
            (K::StuckUnknown, "stuck_unknown"),
        ] {
            if kinds.contains(&kind) {
                designs.push(design);
            }
        }
        if kinds.contains(&K::Operator) || kinds.contains(&K::ForgetKeys) {
            designs.push("slow_bank");
        }
        let mix = mix::build_with(
            args.seed,
            args.withdrawals,
            duration / 2,
            chrono::Utc::now(),
            mix::Extras {
                designs,
                rules: crate::routing::Rules::from_settings(&rs.rules),
                max_age_secs: rs.limits.max_age_secs,
            },
        );
        sim.close_windows(&mix.windows)
            .await
            .map_err(|e| format!("simulator: {e}"))?;
        let fault_plan = schedule::plan(
            args.seed,
            kinds,
            FAULTS_FROM,
            duration * 3 / 4,
            args.fault_interval,
            args.workers,
        );
        let authentic_ids: Vec<String> = mix.authentic.iter().map(|w| w.id.clone()).collect();
        let bad_ids: Vec<String> = mix.bad.iter().map(|b| b.withdrawal_id.clone()).collect();
        let to_publish = mix.messages.len();

        // Go.
        let t0 = Instant::now();
        let (stop_all, stopping) = shutdown::channel();
        let sent: publish::Shared = Arc::default();
        let publishing = tokio::spawn(publish::run(
            Arc::new(rs.clone()),
            publisher,
            mix.messages.clone(),
            t0,
            format!("forged-secret-{}", args.seed),
            sent.clone(),
            stopping.clone(),
        ));
        let ctx = Arc::new(inject::Ctx {
            pool: pool.clone(),
            redis: self.redis.clone(),
            vhost: self.vhost.clone(),
            sim: sim.clone(),
            t0,
            term_patience: Duration::from_millis(env::SHUTDOWN_GRACE_MS) + Duration::from_secs(10),
            records: Mutex::default(),
            term_exits: Mutex::default(),
            key_prefix: rs.redis.key_prefix.clone(),
            operator: kinds.contains(&K::Operator).then(|| {
                Arc::new(inject::Operator::new(
                    args.seed,
                    exe,
                    config.clone(),
                    run_env,
                    mix.authentic
                        .iter()
                        .map(|w| {
                            (
                                w.id.clone(),
                                w.legs.iter().map(|l| l.leg_id.clone()).collect(),
                            )
                        })
                        .collect(),
                    observed.clone(),
                    self.logs.join("operator.log"),
                ))
            }),
        });
        let planned_faults = fault_plan.len();
        let injecting = tokio::spawn(inject::run(ctx.clone(), fault_plan, stopping.clone()));

        // Retry counts, from the workers' own metrics endpoints.
        let tally: Arc<Mutex<retries::Tally>> = Arc::default();
        let http = reqwest::Client::new();
        let scrape_all = |ports: Vec<u16>| {
            let (http, tally) = (http.clone(), tally.clone());
            async move {
                let seen = futures_util::future::join_all(
                    ports.iter().map(|p| retries::scrape(&http, *p)),
                )
                .await;
                let mut t = tally.lock().await;
                for (port, r) in ports.into_iter().zip(seen) {
                    if let Some(r) = r {
                        t.record(port, r);
                    }
                }
            }
        };
        let mut progress = Progress::new();
        let mut ticks: u64 = 0;
        let snapshot = |phase: &'static str,
                        last_fault: Option<String>,
                        faults_done: usize,
                        running: usize| {
            let o = observe::lock(&observed);
            let settled = authentic_ids
                .iter()
                .filter(|id| o.first_terminal.contains_key(*id) || o.reviewed.contains(*id))
                .count();
            let dead_found = o.dead_found(&bad_ids);
            Snapshot {
                phase,
                elapsed: t0.elapsed(),
                duration,
                published: publish::lock(&sent).count,
                to_publish,
                settled,
                authentic: authentic_ids.len(),
                dead: dead_found,
                bad: bad_ids.len(),
                faults_done,
                faults_planned: planned_faults,
                last_fault,
                workers_running: running,
                workers: args.workers,
            }
        };
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (running, ports) = {
                let mut p = pool.lock().await;
                p.supervise(t0.elapsed());
                (p.running().len(), p.metrics_ports())
            };
            ticks += 1;
            if ticks.is_multiple_of(4) {
                scrape_all(ports).await;
            }
            let (faults_done, last_fault) = {
                let r = ctx.records.lock().await;
                (r.len(), r.last().map(|f| f.kind.name().to_owned()))
            };
            let phase = if !publishing.is_finished() {
                "publishing"
            } else if !injecting.is_finished() {
                "faulting"
            } else {
                "settling"
            };
            let snap = snapshot(phase, last_fault, faults_done, running);
            progress.draw(&snap);
            let done = publishing.is_finished()
                && injecting.is_finished()
                && snap.settled == snap.authentic
                && snap.dead >= snap.bad;
            if done || t0.elapsed() >= duration + grace {
                break;
            }
        }

        // Calm everything down.
        stop_all.trigger();
        let _ = publishing.await;
        let _ = injecting.await;
        progress.finish();
        let mut notes = Vec::new();
        if t0.elapsed() >= duration + grace {
            notes.push(format!(
                "stopped waiting at the deadline ({}s + {}s grace)",
                duration.as_secs(),
                grace.as_secs()
            ));
        }
        if let Err(e) = sim.calm().await {
            notes.push(format!("could not calm the simulator: {e}"));
        }
        if let Err(e) = self.redis.lock().await.resume().await {
            notes.push(format!("could not restart redis-server: {e}"));
        }
        {
            let mut p = pool.lock().await;
            p.supervise(t0.elapsed());
            for i in 0..p.len() {
                if let Err(e) = p.restart(i) {
                    notes.push(e);
                }
            }
        }
        // Let late repeats arrive: quiet for 2 s (at most 20 s).
        observe::wait_quiet(&observed, Duration::from_secs(2), Duration::from_secs(20)).await;
        // Stop the workers (they must drain and exit 0), then read the ledger.
        let ports = pool.lock().await.metrics_ports();
        scrape_all(ports).await;
        let final_exits = {
            let mut p = pool.lock().await;
            p.supervise(t0.elapsed());
            let children: Vec<(usize, tokio::process::Child)> = (0..p.len())
                .filter_map(|i| p.take(i).map(|c| (i, c)))
                .collect();
            drop(p);
            let mut exits = Vec::new();
            for (i, mut c) in children {
                let status = workers::terminate(&mut c, ctx.term_patience).await;
                exits.push(inject::TermExit {
                    worker: i,
                    at: inject::millis(t0.elapsed()),
                    code: status.and_then(|s| s.code()),
                });
            }
            exits
        };
        tokio::time::sleep(
            Duration::from_millis(base.sim.settle_ms * 2).max(Duration::from_secs(1)),
        )
        .await;
        // What is still settling (slow bank payouts) would move later: count it now.
        if let Err(e) = sim.settle_all().await {
            notes.push(format!("could not settle the pending payouts: {e}"));
        }
        let ledger = sim.ledger().await;
        let channel_calls = sim.status().await;
        observe::wait_quiet(&observed, Duration::from_secs(1), Duration::from_secs(5)).await;
        let elapsed = t0.elapsed();

        // Judge.
        let observed = std::mem::take(&mut *observe::lock(&observed));
        let ledger = match ledger {
            Ok(l) => l,
            Err(e) => {
                notes.push(format!("could not read the ledger: {e}"));
                Vec::new()
            }
        };
        if let Err(e) = judge::write_evidence(&self.logs, &ledger, &observed) {
            notes.push(format!("could not keep the evidence: {e}"));
        }
        let mut term_exits = ctx.term_exits.lock().await.clone();
        term_exits.extend(final_exits);
        let (starts, unexpected_exits) = {
            let p = pool.lock().await;
            (p.starts, p.unexpected_exits.clone())
        };
        let sent = std::mem::take(&mut *publish::lock(&sent));
        let faults = ctx.records.lock().await.clone();
        let verdicts = match &ctx.operator {
            Some(op) => op.accepted.lock().await.clone(),
            None => Vec::new(),
        };
        if ctx.operator.is_some() {
            notes.push(format!(
                "operator: {} verdict(s) accepted by review resolve (log: {})",
                verdicts.len(),
                self.logs.join("operator.log").display()
            ));
        }
        let report = judge::judge(judge::Collected {
            verdicts,
            args,
            kinds,
            reproduce: reproduce.clone(),
            started_at,
            elapsed,
            mix: &mix,
            sent,
            observed,
            ledger,
            channel_calls,
            retries: retries::RetriesReport::from_tally(&*tally.lock().await),
            faults,
            term_exits,
            starts,
            unexpected_exits,
            notes,
            logs: &self.logs,
        });
        println!("{}", report.render());
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        judge::write_report(&args.report, &json)?;
        println!("report written to {}", args.report.display());
        if !report.passed() {
            println!("FAILED: reproduce this run with:\n  {reproduce}\n  (from a checkout: cargo run -- {})", reproduce.trim_start_matches("payout-worker "));
        }
        Ok(report.passed())
    }
}
