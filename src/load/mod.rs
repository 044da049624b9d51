//! `payout-worker load`: a load generator and benchmark.
//!
//! A run owns what it measures, like a chaos run ([`crate::chaos`]): a RabbitMQ vhost
//! of its own, a redis-server of its own (so every Redis command counted is the
//! worker's), the simulator in process (no faults, `--latency-ms` added to every call)
//! and one worker process (this executable with `run`, so its memory and CPU are its
//! own). It publishes `--withdrawals` signed commands ([`commands`]) at `--rate` or as
//! fast as the broker confirms them, taps the events into a quorum queue (as the funds
//! service would consume them), and measures throughput, time from publish to terminal
//! event, the worker's peak RSS and CPU, and Redis commands per withdrawal. Then, in the
//! same run, the [`relay`] baseline on the same broker with the same prefetch and the
//! same publishing, and the cost of RSA-2048 on this machine: ratios in one run hold
//! where absolute numbers on a shared machine drift.

mod commands;
mod measure;
pub mod options;
mod relay;
mod report;

pub use options::LoadArgs;
pub use report::LoadReport;

use crate::auth::{KeyRing, KEY_ID_HEADER, SIGNATURE_HEADER};
use crate::broker::headers::long_string;
use crate::broker::{self, topology, Publisher};
use crate::chaos::{env as run_env, infra, workers};
use crate::config::Settings;
use crate::shutdown;
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Publishes outstanding at once when publishing as fast as possible.
const PUBLISH_WINDOW: usize = 512;
/// A phase gives up when nothing finishes for this long.
const STALL: Duration = Duration::from_secs(30);
/// The event types that end a withdrawal.
const TERMINAL: [&str; 3] = [
    "withdrawal.succeeded",
    "withdrawal.failed",
    "withdrawal.review_required",
];

/// Runs a load test and writes its report.
pub async fn run(
    settings: Settings,
    args: LoadArgs,
    config: Option<PathBuf>,
) -> Result<LoadReport, String> {
    args.validate()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let run_id = format!("load-{}-{nanos:08x}", std::process::id());
    let logs = std::env::temp_dir().join(&run_id);
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    eprintln!(
        "load: run {run_id}: {} {} withdrawal(s) of {} leg(s), prefetch {}, channel latency {} ms, {}; logs in {}",
        args.withdrawals,
        args.channel.kind(),
        args.legs,
        args.prefetch,
        args.latency_ms,
        if args.rate > 0.0 {
            format!("{} /s offered", args.rate)
        } else {
            "as fast as possible".into()
        },
        logs.display()
    );
    let user = run_env::amqp_user(settings.amqp.url.expose_secret());
    let vhost = infra::OwnVhost::create(&run_id, &user).await?;
    let mut redis = match infra::OwnRedis::start(&logs.join("redis.log")).await {
        Ok(r) => r,
        Err(e) => {
            vhost.delete().await;
            return Err(e);
        }
    };
    let (sim_stop, sim_stopped) = shutdown::channel();
    let mut pool = None;
    let redis_url = redis.url();
    let result = tokio::select! {
        r = drive(&settings, &args, config, &run_id, &vhost.name, &redis_url, &logs, sim_stopped, &mut pool) => r,
        _ = shutdown::os_signal() => Err("interrupted; cleaning up".into()),
    };
    if let Some(mut p) = pool {
        if let Some(mut c) = p.take(0) {
            workers::kill(&mut c).await;
        }
    }
    sim_stop.trigger();
    redis.stop().await;
    vhost.delete().await;
    let report = result?;
    println!("{}", report.render());
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&args.report, json)
        .map_err(|e| format!("cannot write {}: {e}", args.report.display()))?;
    println!("report written to {}", args.report.display());
    let incomplete = [Some(&report.worker), report.relay.as_ref()]
        .into_iter()
        .flatten()
        .any(|p| p.completed < args.withdrawals);
    if incomplete {
        return Err(format!(
            "not every withdrawal reached a terminal event (worker log kept in {})",
            logs.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&logs);
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    base: &Settings,
    args: &LoadArgs,
    config: Option<PathBuf>,
    run_id: &str,
    vhost: &str,
    redis_url: &str,
    logs: &std::path::Path,
    mut sim_stopped: shutdown::Shutdown,
    pool_slot: &mut Option<workers::Pool>,
) -> Result<LoadReport, String> {
    // The simulator: no faults, the latency asked for.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|e| format!("simulator: {e}"))?;
    let sim_url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| format!("simulator: {e}"))?
    );
    let mut sim_settings = base.sim.clone();
    sim_settings.faults = 0.0;
    sim_settings.fault_kinds = Vec::new();
    sim_settings.latency_ms = args.latency_ms;
    sim_settings.settle_ms = args.settle_ms;
    let sim_opts = crate::sim::SimOptions::from_settings(&sim_settings)?;
    // On a runtime of its own threads, as a channel is a system of its own: its RSA work
    // must not hold up this runtime's consumer of the events, whose clock measures the
    // latency.
    std::thread::Builder::new()
        .name("load-sim".into())
        .spawn(move || {
            let served =
                tokio::runtime::Builder::new_multi_thread()
                    .thread_name("load-sim")
                    .enable_all()
                    .build()
                    .and_then(|rt| {
                        rt.block_on(async move {
                            let listener = tokio::net::TcpListener::from_std(listener)?;
                            crate::sim::serve(sim_opts, listener, async move {
                                sim_stopped.wait().await
                            })
                            .await
                        })
                    });
            if let Err(e) = served {
                eprintln!("load: the simulator stopped: {e}");
            }
        })
        .map_err(|e| format!("simulator: {e}"))?;

    // The worker's settings: the run's names, prefetch and lease as configured.
    let mut rs = run_env::run_settings(base, run_id, vhost, redis_url, &sim_url);
    rs.amqp.prefetch = args.prefetch;
    rs.redis.lease_ms = base.redis.lease_ms;
    let conn = broker::connect(&rs.amqp, &format!("{run_id}-harness"))
        .await
        .map_err(|e| format!("RabbitMQ: {e}"))?;
    let publisher = Publisher::open(&conn, Duration::from_secs(30))
        .await
        .map_err(|e| format!("RabbitMQ: {e}"))?;
    topology::declare(&conn, publisher.channel(), &rs.topology)
        .await
        .map_err(|e| format!("declaring the run's topology: {e}"))?;
    let taps = conn.create_channel().await.map_err(|e| e.to_string())?;
    let events_tap = format!("{run_id}.events-tap");
    declare_tap(&taps, &events_tap, &rs.topology.events_exchange).await?;
    let relay_names = relay::RelayNames::new(run_id);
    let relay_tap = format!("{run_id}.relay-tap");
    relay::declare(&taps, &relay_names)
        .await
        .map_err(|e| format!("relay: {e}"))?;
    declare_tap(&taps, &relay_tap, &relay_names.output).await?;

    // The worker process, with a metrics port of its own.
    let exe = std::env::current_exe().map_err(|e| format!("current executable: {e}"))?;
    let launch = workers::Launch {
        exe,
        config,
        env: run_env::worker_env(&rs, &args.worker_log_level),
        base_name: run_id.to_owned(),
        logs: logs.to_owned(),
    };
    let pool = pool_slot.insert(workers::Pool::start(launch, 1)?);
    let pid = pool.pid(0).ok_or("the worker did not start")?;
    wait_for_consumer(&taps, &rs.topology.work_queue, pool).await?;
    let metrics_port = pool.metrics_ports()[0];
    let redis_before = measure::redis_calls(redis_url).await?;
    let metrics_before = measure::worker_metrics(metrics_port).await?;
    let cpu_before = measure::cpu_time(pid).unwrap_or_default();

    // The worker, measured.
    let now = chrono::Utc::now();
    let keys = KeyRing::parse(rs.auth.hmac_keys.expose_secret())?;
    let key_id = rs.auth.publish_key_id.clone();
    let messages: Vec<Outgoing> = (0..args.withdrawals)
        .map(|n| {
            let id = commands::withdrawal_id(run_id, n);
            let body = commands::command(run_id, n, args.channel, args.legs, now);
            let signature = keys
                .sign(&key_id, &body)
                .ok_or_else(|| format!("no HMAC key with id {key_id:?}"))?;
            let mut headers = FieldTable::default();
            headers.insert(KEY_ID_HEADER.into(), long_string(&key_id));
            headers.insert(SIGNATURE_HEADER.into(), long_string(&signature));
            Ok(Outgoing { id, body, headers })
        })
        .collect::<Result<_, String>>()?;
    let worker_phase = phase(
        "worker",
        &publisher,
        &taps,
        &events_tap,
        (
            rs.topology.commands_exchange.as_str(),
            topology::APPROVED_ROUTING_KEY,
        ),
        &messages,
        args.rate,
        worker_event,
    )
    .await?;
    let redis_after = measure::redis_calls(redis_url).await?;
    let metrics_after = measure::worker_metrics(metrics_port).await?;
    let cpu = measure::cpu_time(pid)
        .unwrap_or_default()
        .saturating_sub(cpu_before);
    let peak_rss_kib = measure::peak_rss_kib(pid);
    if let Some(mut c) = pool.take(0) {
        workers::terminate(&mut c, Duration::from_secs(15)).await;
    }

    // The relay, on the same broker, with the same prefetch and publishing.
    let relay_phase = if args.no_relay {
        None
    } else {
        let relay_conn = relay::start(
            &rs.amqp,
            &relay_names,
            &format!("{run_id}-relay"),
            args.prefetch,
        )
        .await?;
        let relay_phase = phase(
            "relay",
            &publisher,
            &taps,
            &relay_tap,
            ("", relay_names.input.as_str()),
            &messages,
            args.rate,
            relay_event,
        )
        .await;
        let _ = relay_conn.close(200, "load run over".into()).await;
        Some(relay_phase?)
    };
    let _ = conn.close(200, "load run over".into()).await;

    // RSA-2048 on this machine, one core.
    let (rsa_sign, rsa_verify) = tokio::task::spawn_blocking(|| measure::rsa_cost(200))
        .await
        .map_err(|e| e.to_string())?;
    Ok(LoadReport::new(report::Inputs {
        args,
        worker: worker_phase,
        relay: relay_phase,
        redis_commands: measure::calls_between(&redis_before, &redis_after),
        round_trips: measure::calls_between(
            &metrics_before.round_trips,
            &metrics_after.round_trips,
        ),
        stages_ms: measure::WorkerMetrics::stage_means_ms(&metrics_before, &metrics_after),
        worker_cpu: cpu,
        peak_rss_kib,
        rsa_sign,
        rsa_verify,
    }))
}

/// A signed command, ready to publish.
struct Outgoing {
    id: String,
    body: Vec<u8>,
    headers: FieldTable,
}

/// A durable quorum queue bound to everything `exchange` routes, as a consumer of the
/// events would have (the confirm the publisher waits for includes its write).
async fn declare_tap(channel: &Channel, queue: &str, exchange: &str) -> Result<(), String> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .map_err(|e| format!("tap {queue}: {e}"))?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("tap {queue}: {e}"))
}

async fn wait_for_consumer(
    channel: &Channel,
    queue: &str,
    pool: &mut workers::Pool,
) -> Result<(), String> {
    let t = Instant::now();
    loop {
        let consumers = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|q| q.consumer_count())
            .unwrap_or(0);
        if consumers >= 1 {
            return Ok(());
        }
        pool.supervise(t.elapsed());
        if let Some(why) = pool.unexpected_exits.first() {
            return Err(why.clone());
        }
        if t.elapsed() > Duration::from_secs(60) {
            return Err("the worker did not start consuming within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The worker's events carry `<withdrawal id>:<type>` as their message id.
fn worker_event(message_id: &str) -> Option<(&str, &str)> {
    let (id, kind) = message_id.split_once(':')?;
    // A review event's id has its kind appended: `<id>:withdrawal.review_required:<kind>`.
    let kind = kind.split(':').next()?;
    Some((id, kind))
}

/// The relay copies the command's message id: every relayed message ends it.
fn relay_event(message_id: &str) -> Option<(&str, &str)> {
    Some((message_id, "relayed"))
}

/// What one phase (worker or relay) measured.
#[derive(Debug, Clone)]
pub struct Phase {
    pub name: &'static str,
    pub published: usize,
    /// Withdrawals that reached an end, by how they ended.
    pub ended: HashMap<String, usize>,
    pub events: usize,
    pub elapsed: Duration,
    /// Publish to terminal event, sorted.
    pub latencies: Vec<Duration>,
    pub stalled: bool,
}

#[derive(Default)]
struct Track {
    published: HashMap<String, Instant>,
    ended: HashMap<String, (Instant, String)>,
    events: usize,
}

/// Publishes `messages` to `target`, consumes `tap`, and times every message from its
/// publish to the event that ends it (`classify` reads the event's message id).
#[allow(clippy::too_many_arguments)]
async fn phase(
    name: &'static str,
    publisher: &Publisher,
    channel: &Channel,
    tap: &str,
    target: (&str, &str),
    messages: &[Outgoing],
    rate: f64,
    classify: fn(&str) -> Option<(&str, &str)>,
) -> Result<Phase, String> {
    let track: Arc<Mutex<Track>> = Arc::default();
    let mut consumer = channel
        .basic_consume(
            tap.into(),
            format!("load-{name}").as_str().into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .map_err(|e| format!("tap {tap}: {e}"))?;
    let tapping = {
        let track = track.clone();
        tokio::spawn(async move {
            while let Some(Ok(d)) = consumer.next().await {
                let now = Instant::now();
                let Some(message_id) = d.properties.message_id() else {
                    continue;
                };
                let mut t = lock(&track);
                t.events += 1;
                if let Some((id, kind)) = classify(message_id.as_str()) {
                    if (kind == "relayed" || TERMINAL.contains(&kind)) && !t.ended.contains_key(id)
                    {
                        t.ended.insert(id.to_owned(), (now, kind.to_owned()));
                    }
                }
            }
        })
    };

    let started = Instant::now();
    let publishing = async {
        if rate > 0.0 {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut outstanding = futures_util::stream::FuturesUnordered::new();
            for m in messages {
                tick.tick().await;
                outstanding.push(send(&track, publisher, target, m));
                while let Some(Some(r)) = futures_util::FutureExt::now_or_never(outstanding.next())
                {
                    r?;
                }
            }
            while let Some(r) = outstanding.next().await {
                r?;
            }
            Ok::<(), String>(())
        } else {
            let mut results = futures_util::stream::iter(messages)
                .map(|m| send(&track, publisher, target, m))
                .buffer_unordered(PUBLISH_WINDOW);
            while let Some(r) = results.next().await {
                r?;
            }
            Ok(())
        }
    };
    let progress = async {
        let tty = std::io::stderr().is_terminal();
        let mut last_change = Instant::now();
        let mut last_count = 0;
        let mut last_plain = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let (published, ended) = {
                let t = lock(&track);
                (t.published.len(), t.ended.len())
            };
            if ended != last_count {
                last_count = ended;
                last_change = Instant::now();
            }
            let line = progress_line(name, published, ended, messages.len(), started.elapsed());
            if tty {
                eprint!("\r{line}\x1b[K");
            } else if last_plain.elapsed() >= Duration::from_secs(5) {
                eprintln!("{line}");
                last_plain = Instant::now();
            }
            if ended >= messages.len() {
                return false;
            }
            if last_change.elapsed() >= STALL {
                return true;
            }
        }
    };
    let (published, stalled) = tokio::join!(publishing, progress);
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    tapping.abort();
    published?;
    let t = std::mem::take(&mut *lock(&track));
    let last_end = t.ended.values().map(|(at, _)| *at).max().unwrap_or(started);
    let mut latencies: Vec<Duration> = t
        .ended
        .iter()
        .filter_map(|(id, (at, _))| Some(at.saturating_duration_since(*t.published.get(id)?)))
        .collect();
    latencies.sort_unstable();
    let mut ended = HashMap::new();
    for (_, kind) in t.ended.values() {
        *ended.entry(kind.clone()).or_insert(0) += 1;
    }
    Ok(Phase {
        name,
        published: t.published.len(),
        ended,
        events: t.events,
        elapsed: last_end.saturating_duration_since(started),
        latencies,
        stalled,
    })
}

/// Publishes one message, noting when it left.
async fn send(
    track: &Mutex<Track>,
    publisher: &Publisher,
    target: (&str, &str),
    m: &Outgoing,
) -> Result<(), String> {
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(m.id.as_str().into())
        .with_headers(m.headers.clone());
    lock(track).published.insert(m.id.clone(), Instant::now());
    publisher
        .publish(target.0, target.1, &m.body, props)
        .await
        .map_err(|e| format!("publishing {}: {e}", m.id))
}

fn progress_line(name: &str, published: usize, ended: usize, total: usize, t: Duration) -> String {
    const BAR: usize = 24;
    let filled = (ended * BAR).checked_div(total).unwrap_or(0).min(BAR);
    format!(
        "load {name:<6} [{}{}] {ended}/{total} done, {published} published, {:.1}s, {:.0}/s",
        "#".repeat(filled),
        "-".repeat(BAR - filled),
        t.as_secs_f64(),
        ended as f64 / t.as_secs_f64().max(0.001)
    )
}

fn lock(t: &Mutex<Track>) -> std::sync::MutexGuard<'_, Track> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_read_as_withdrawal_and_type() {
        assert_eq!(
            worker_event("ld-x-1:withdrawal.succeeded"),
            Some(("ld-x-1", "withdrawal.succeeded"))
        );
        assert_eq!(
            worker_event("ld-x-1:withdrawal.review_required:leg"),
            Some(("ld-x-1", "withdrawal.review_required"))
        );
        assert_eq!(worker_event("no-colon"), None);
        assert_eq!(relay_event("ld-x-2"), Some(("ld-x-2", "relayed")));
    }

    #[test]
    fn the_progress_line_shows_the_share_done() {
        let line = progress_line("worker", 100, 50, 100, Duration::from_secs(2));
        assert!(
            line.contains("[############------------] 50/100 done"),
            "{line}"
        );
        assert!(line.contains("25/s"), "{line}");
    }
}
