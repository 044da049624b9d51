//! Test harness: each `TestApp` gets its own exchanges, queues, Redis key prefix and a
//! simulator on a free port, so tests run in parallel against the real RabbitMQ and
//! Redis and never see what another test (or an earlier run) left behind.
#![allow(dead_code)]

use futures_util::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection};
use payout_worker::broker::{self, topology, Publisher};
use payout_worker::config::Settings;
use payout_worker::shutdown::{self, ShutdownTrigger};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Long enough for a slow CI machine, short enough that a hang fails the test.
pub const WAIT: Duration = Duration::from_secs(60);

pub fn unique(name: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{name}-{}-{n}-{nanos:x}", std::process::id())
}

pub struct Message {
    pub body: Vec<u8>,
    pub props: BasicProperties,
}

impl Message {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("event bodies are JSON")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        payout_worker::broker::headers::text(&self.props, name)
    }
}

pub struct TestApp {
    pub settings: Settings,
    pub sim_url: String,
    pub conn: Connection,
    pub channel: Channel,
    pub publisher: Publisher,
    pub events: mpsc::UnboundedReceiver<Message>,
    pub dead: mpsc::UnboundedReceiver<Message>,
    sim_stop: ShutdownTrigger,
    workers: Vec<(ShutdownTrigger, JoinHandle<()>)>,
    events_queue: String,
    pub vhost: Option<String>,
    pub redis: Option<OwnRedis>,
}

pub struct Options {
    pub sim_latency_ms: u64,
    pub settle_ms: u64,
    pub prefetch: u16,
    /// Fraction of simulator calls that fault, and which kinds (empty: all).
    pub sim_faults: f64,
    pub sim_fault_kinds: Vec<&'static str>,
    /// A RabbitMQ vhost of its own (for tests that cut connections).
    pub own_vhost: bool,
    /// A redis-server of its own on a free port (for tests that flush, stop or restart it).
    pub own_redis: bool,
    /// Consume the dead-letter queue into `dead` (off for tests of the dlq tooling).
    pub tap_dead: bool,
    /// The work queue's delivery limit, if not the default.
    pub delivery_limit: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sim_latency_ms: 0,
            settle_ms: 200,
            prefetch: 32,
            sim_faults: 0.0,
            sim_fault_kinds: Vec::new(),
            own_vhost: false,
            own_redis: false,
            tap_dead: true,
            delivery_limit: None,
        }
    }
}

pub fn rabbitmqctl(args: &[&str]) -> String {
    run_ok(std::process::Command::new("rabbitmqctl").args(args))
}

/// Runs a tool to completion and returns its standard output; fails the test, with the
/// command and its standard error, if it does not succeed.
pub fn run_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A redis-server of a test's own, on a free port, keeping nothing on disk.
pub struct OwnRedis {
    pub port: u16,
    /// Besides the defaults; with `--tls-port {port}` the server speaks only TLS.
    extra_args: Vec<String>,
    child: Option<std::process::Child>,
}

impl OwnRedis {
    pub fn start() -> Self {
        Self::start_with(|_| Vec::new())
    }

    /// A server whose extra arguments are made from its port (e.g. a TLS-only server:
    /// `--port 0 --tls-port {port} ...`).
    pub fn start_with(extra_args: impl FnOnce(u16) -> Vec<String>) -> Self {
        let port = free_port();
        let mut r = Self {
            port,
            extra_args: extra_args(port),
            child: None,
        };
        r.resume();
        r
    }

    /// (Re)starts the server on the same port, empty.
    pub fn resume(&mut self) {
        let port = self.port.to_string();
        let mut args = vec![
            "--bind",
            "127.0.0.1",
            "--port",
            &port,
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend(self.extra_args.iter().map(String::as_str));
        let child = std::process::Command::new("redis-server")
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_listening(self.port, "redis-server");
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn flush(&self) {
        let ok = std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string(), "FLUSHALL"])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Settings with every broker name and the Redis prefix made unique.
pub fn isolated_settings(tag: &str) -> Settings {
    let id = unique(tag);
    let mut s = Settings::defaults();
    let t = &mut s.topology;
    t.commands_exchange = format!("test.{id}.commands");
    t.work_queue = format!("test.{id}.approved");
    t.events_exchange = format!("test.{id}.events");
    t.dead_letter = format!("test.{id}.dead");
    t.events_audit_queue = String::new();
    t.delay_prefix = format!("test.{id}.delay");
    t.delay_tiers_ms = vec![100, 300, 600];
    s.redis.key_prefix = format!("test:{id}");
    s.amqp.connection_name = format!("test-{id}");
    s.retry.max_deferrals = 200;
    // Tests that want the ops endpoint pick a free port themselves.
    s.ops.listen = String::new();
    s
}

/// Waits (up to 5 s) until a server just started by the test accepts connections on
/// `port`; `what` names it if it never does.
pub fn wait_listening(port: u16, what: &str) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{what} did not listen on {port}");
}

/// A free local port (bound and released: good enough on a test machine).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn consume_into(channel: &Channel, queue: &str) -> mpsc::UnboundedReceiver<Message> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    tokio::spawn(async move {
        while let Some(Ok(d)) = consumer.next().await {
            let _ = tx.send(Message {
                body: d.data,
                props: d.properties,
            });
        }
    });
    rx
}

impl TestApp {
    pub async fn spawn(tag: &str, opts: Options) -> Self {
        let mut settings = isolated_settings(tag);
        payout_worker::telemetry::init(&settings.log);
        settings.amqp.prefetch = opts.prefetch;
        settings.sim.latency_ms = opts.sim_latency_ms;
        settings.sim.settle_ms = opts.settle_ms;
        settings.sim.faults = opts.sim_faults;
        settings.sim.fault_kinds = opts.sim_fault_kinds.iter().map(|k| k.to_string()).collect();
        if let Some(limit) = opts.delivery_limit {
            settings.topology.delivery_limit = limit;
        }
        let vhost = opts.own_vhost.then(|| {
            let vhost = unique("vh");
            rabbitmqctl(&["add_vhost", &vhost]);
            rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);
            settings.amqp.url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}").into();
            vhost
        });
        let redis = opts.own_redis.then(|| {
            let r = OwnRedis::start();
            settings.redis.urls = vec![r.url().into()];
            r
        });

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sim_url = format!("http://{addr}");
        settings.sim.listen = addr.to_string();
        settings.channels.alipay.gateway_url = format!("{sim_url}/gateway.do");
        settings.channels.wechat_pay.base_url = sim_url.clone();
        settings.channels.unionpay.back_url = format!("{sim_url}/gateway/api/backTransReq.do");
        settings.channels.unionpay.query_url = format!("{sim_url}/gateway/api/queryTrans.do");
        settings.channels.bank.base_url = format!("{sim_url}/bank");
        let (sim_stop, mut sim_shutdown) = shutdown::channel();
        let sim_opts = payout_worker::sim::SimOptions::from_settings(&settings.sim).unwrap();
        tokio::spawn(payout_worker::sim::serve(sim_opts, listener, async move {
            sim_shutdown.wait().await
        }));

        let conn = broker::connect(
            &settings.amqp,
            &format!("{}-harness", settings.amqp.connection_name),
        )
        .await
        .expect("RabbitMQ must be running on 127.0.0.1:5672");
        let publisher = Publisher::open(&conn, Duration::from_secs(30))
            .await
            .unwrap();
        let channel = conn.create_channel().await.unwrap();
        topology::declare(&conn, &channel, &settings.topology)
            .await
            .unwrap();
        let events_queue = format!("{}.events-tap", settings.topology.events_exchange);
        channel
            .queue_declare(
                events_queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                events_queue.as_str().into(),
                settings.topology.events_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let events = consume_into(&channel, &events_queue).await;
        let dead = if opts.tap_dead {
            consume_into(&channel, &settings.topology.dead_letter).await
        } else {
            mpsc::unbounded_channel().1
        };
        Self {
            settings,
            sim_url,
            conn,
            channel,
            publisher,
            events,
            dead,
            sim_stop,
            workers: Vec::new(),
            events_queue,
            vhost,
            redis,
        }
    }

    /// Closes every broker connection of this test's workers (not the harness's own),
    /// as an operator or a network fault would.
    pub fn close_worker_connections(&self) -> usize {
        let pids = self.worker_connections();
        for pid in &pids {
            rabbitmqctl(&["close_connection", pid, "fault injected by test"]);
        }
        pids.len()
    }

    /// The broker's ids of this test's worker connections (not the harness's own).
    pub fn worker_connections(&self) -> Vec<String> {
        let name = format!(
            "{{\"connection_name\",\"{}\"}}",
            self.settings.amqp.connection_name
        );
        rabbitmqctl(&["list_connections", "pid", "client_properties", "--quiet"])
            .lines()
            .filter(|l| l.contains(&name))
            .filter_map(|l| l.split('\t').next().map(str::to_owned))
            .collect()
    }

    /// Starts a worker in this process (its own broker connection).
    pub fn start_worker(&mut self) {
        let (trigger, shutdown) = shutdown::channel();
        let settings = self.settings.clone();
        let handle = tokio::spawn(async move {
            payout_worker::run(settings, shutdown)
                .await
                .expect("worker ran");
        });
        self.workers.push((trigger, handle));
    }

    pub async fn stop_workers(&mut self) {
        for (trigger, handle) in self.workers.drain(..) {
            trigger.trigger();
            handle.await.unwrap();
        }
    }

    pub async fn publish_signed(&self, body: &[u8]) {
        payout_worker::cli::publish_command(&self.settings, &self.publisher, "dev", body)
            .await
            .unwrap();
    }

    pub async fn publish_raw(&self, body: &[u8], headers: FieldTable) {
        self.publisher
            .publish(
                &self.settings.topology.commands_exchange,
                topology::APPROVED_ROUTING_KEY,
                body,
                BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_delivery_mode(2)
                    .with_headers(headers),
            )
            .await
            .unwrap();
    }

    pub async fn next_event(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event within the wait")
            .expect("event stream open")
    }

    /// Reads events until `n` terminal (succeeded/failed) ones arrived; returns them all.
    pub async fn terminal_events(&mut self, n: usize) -> (Vec<Value>, Vec<Value>) {
        let (mut terminal, mut other) = (Vec::new(), Vec::new());
        while terminal.len() < n {
            let e = self.next_event().await.json();
            match e["type"].as_str() {
                Some("withdrawal.succeeded" | "withdrawal.failed") => terminal.push(e),
                _ => other.push(e),
            }
        }
        (terminal, other)
    }

    pub async fn next_dead(&mut self) -> Message {
        tokio::time::timeout(WAIT, self.dead.recv())
            .await
            .expect("a dead letter within the wait")
            .expect("dead stream open")
    }

    pub async fn ledger(&self) -> Vec<Value> {
        reqwest::get(format!("{}/sim/ledger", self.sim_url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Stops everything and deletes this test's broker objects and Redis keys.
    pub async fn teardown(mut self) {
        self.stop_workers().await;
        self.sim_stop.trigger();
        let t = &self.settings.topology;
        let mut queues = vec![
            t.work_queue.clone(),
            t.dead_letter.clone(),
            self.events_queue.clone(),
        ];
        for i in 0..t.delay_tiers_ms.len() as u32 {
            queues.push(topology::delay_queue(t, i).0);
        }
        for q in queues {
            let _ = self
                .channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for x in [&t.commands_exchange, &t.events_exchange, &t.dead_letter] {
            let _ = self
                .channel
                .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = self.conn.close(200, "test done".into()).await;
        if let Some(vhost) = &self.vhost {
            rabbitmqctl(&["delete_vhost", vhost]);
        }
        if self.redis.is_some() {
            return; // its own server goes away with it
        }
        if let Ok(client) = redis::Client::open("redis://127.0.0.1:6379") {
            if let Ok(mut c) = client.get_multiplexed_async_connection().await {
                let keys: Vec<String> = redis::cmd("KEYS")
                    .arg(format!("{}:*", self.settings.redis.key_prefix))
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
                }
            }
        }
    }
}

/// A withdrawal with the given legs (amount = their sum).
pub fn withdrawal(id: &str, legs: Vec<Value>) -> Vec<u8> {
    let total: rust_decimal::Decimal = legs
        .iter()
        .map(|l| {
            l["amount"]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        })
        .sum();
    json!({
        "type": "withdrawal.approved", "version": 1, "withdrawal_id": id, "account_id": format!("acct-{id}"),
        "verified_name": "Zhang San", "currency": "CNY", "amount": format!("{total:.2}"),
        "approved_at": chrono::Utc::now().to_rfc3339(), "legs": legs,
    })
    .to_string()
    .into_bytes()
}

pub fn refund_leg(leg_id: &str, amount: &str, channel_txn_id: &str) -> Value {
    json!({"leg_id": leg_id, "amount": amount, "route": "original", "channel": "alipay",
           "source": {"topup_id": format!("tp-{leg_id}"), "channel_txn_id": channel_txn_id,
                      "paid_at": (chrono::Utc::now() - chrono::Duration::days(20)).to_rfc3339()}})
}

pub fn transfer_leg(leg_id: &str, amount: &str, account: &str) -> Value {
    json!({"leg_id": leg_id, "amount": amount, "route": "designated", "channel": "alipay",
           "payee": {"kind": "alipay", "name": "Zhang San", "account_no": account}})
}

/// `moves` per ledger key.
pub fn moves(ledger: &[Value]) -> std::collections::HashMap<String, u64> {
    ledger
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_owned(),
                e["moves"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// The environment that makes the `payout-worker` binary use `s`'s names, exercising the
/// `PAYOUT__SECTION__KEY` layer on the way.
pub fn env_for(s: &Settings) -> Vec<(String, String)> {
    let t = &s.topology;
    let tiers: Vec<String> = t.delay_tiers_ms.iter().map(u64::to_string).collect();
    [
        (
            "PAYOUT__TOPOLOGY__COMMANDS_EXCHANGE",
            t.commands_exchange.clone(),
        ),
        ("PAYOUT__TOPOLOGY__WORK_QUEUE", t.work_queue.clone()),
        (
            "PAYOUT__TOPOLOGY__EVENTS_EXCHANGE",
            t.events_exchange.clone(),
        ),
        ("PAYOUT__TOPOLOGY__DEAD_LETTER", t.dead_letter.clone()),
        (
            "PAYOUT__TOPOLOGY__EVENTS_AUDIT_QUEUE",
            t.events_audit_queue.clone(),
        ),
        ("PAYOUT__TOPOLOGY__DELAY_PREFIX", t.delay_prefix.clone()),
        ("PAYOUT__TOPOLOGY__DELAY_TIERS_MS", tiers.join(",")),
        ("PAYOUT__REDIS__KEY_PREFIX", s.redis.key_prefix.clone()),
        (
            "PAYOUT__AMQP__CONNECTION_NAME",
            s.amqp.connection_name.clone(),
        ),
        ("PAYOUT__AMQP__PREFETCH", s.amqp.prefetch.to_string()),
        (
            "PAYOUT__CHANNELS__ALIPAY__GATEWAY_URL",
            s.channels.alipay.gateway_url.clone(),
        ),
        (
            "PAYOUT__RETRY__MAX_DEFERRALS",
            s.retry.max_deferrals.to_string(),
        ),
        ("PAYOUT__LOG__FORMAT", "json".into()),
        ("PAYOUT__OPS__LISTEN", s.ops.listen.clone()),
        ("PAYOUT__AMQP__URL", s.amqp.url.expose_secret().to_owned()),
        (
            "PAYOUT__REDIS__URLS",
            s.redis
                .urls
                .iter()
                .map(|u| u.expose_secret().to_owned())
                .collect::<Vec<_>>()
                .join(","),
        ),
        (
            "PAYOUT__CHANNELS__WECHAT_PAY__BASE_URL",
            s.channels.wechat_pay.base_url.clone(),
        ),
        (
            "PAYOUT__CHANNELS__UNIONPAY__BACK_URL",
            s.channels.unionpay.back_url.clone(),
        ),
        (
            "PAYOUT__CHANNELS__UNIONPAY__QUERY_URL",
            s.channels.unionpay.query_url.clone(),
        ),
        (
            "PAYOUT__CHANNELS__BANK__BASE_URL",
            s.channels.bank.base_url.clone(),
        ),
        (
            "PAYOUT__AMQP__SHUTDOWN_GRACE_MS",
            s.amqp.shutdown_grace_ms.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The real binary as a worker for an app, logging JSON at `debug` to a file of its own.
pub struct LoggedWorker {
    child: tokio::process::Child,
    log_path: std::path::PathBuf,
}

impl LoggedWorker {
    pub fn start(s: &Settings, tag: &str) -> Self {
        let log_path = std::env::temp_dir().join(format!("{}.log", unique(tag)));
        let log_file = std::fs::File::create(&log_path).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_payout-worker"))
            .arg("run")
            .envs(env_for(s))
            .env("PAYOUT__LOG__FORMAT", "json")
            .env(
                "RUST_LOG",
                "debug,lapin=info,hyper=info,reqwest=info,h2=info,amq_protocol=info",
            )
            .stdout(log_file)
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { child, log_path }
    }

    /// Stops it with SIGTERM (it must exit 0) and returns everything it logged.
    pub async fn stop_and_read_log(mut self) -> String {
        let pid = self.child.id().unwrap().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(self.child.wait().await.unwrap().success());
        let log = std::fs::read_to_string(&self.log_path).unwrap();
        let _ = std::fs::remove_file(&self.log_path);
        log
    }
}

/// Starts the real binary as a worker for this app.
pub fn spawn_binary_worker(s: &Settings) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_payout-worker"))
        .arg("run")
        .envs(env_for(s))
        .env_remove("PAYOUT_HMAC_KEYS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the payout-worker binary starts")
}

impl TestApp {
    /// Reads events until every id in `ids` has had a terminal event; returns them.
    /// Publishes `n` signed one-leg Alipay transfers and waits until every one has
    /// succeeded; returns their ids.
    pub async fn pays_transfers(
        &mut self,
        tag: &str,
        n: usize,
    ) -> std::collections::HashSet<String> {
        let ids: std::collections::HashSet<String> =
            (0..n).map(|i| unique(&format!("wd-{tag}-{i}"))).collect();
        for id in &ids {
            self.publish_signed(&withdrawal(
                id,
                vec![transfer_leg("1", "12.00", "zs@example.com")],
            ))
            .await;
        }
        let terminal = self.until_terminal(&ids).await;
        assert!(
            terminal.iter().all(|e| e["type"] == "withdrawal.succeeded"),
            "{terminal:?}"
        );
        ids
    }

    pub async fn until_terminal(&mut self, ids: &std::collections::HashSet<String>) -> Vec<Value> {
        let mut seen = std::collections::HashSet::new();
        let mut terminal = Vec::new();
        while !ids.iter().all(|id| seen.contains(id)) {
            let Ok(Some(e)) = tokio::time::timeout(WAIT, self.events.recv()).await else {
                let missing: Vec<&String> = ids.iter().filter(|id| !seen.contains(*id)).collect();
                panic!("no terminal event for {missing:?}");
            };
            let e = e.json();
            if matches!(
                e["type"].as_str(),
                Some("withdrawal.succeeded" | "withdrawal.failed")
            ) {
                seen.insert(e["subject"].as_str().unwrap().to_owned());
                terminal.push(e);
            }
        }
        terminal
    }
}

/// The ids in `ids` that none of `seen` (terminal events) is about yet.
pub fn not_yet_terminal(
    ids: &std::collections::HashSet<String>,
    seen: &[Value],
) -> std::collections::HashSet<String> {
    ids.iter()
        .filter(|id| !seen.iter().any(|e| e["subject"] == id.as_str()))
        .cloned()
        .collect()
}

/// The idempotency key a leg is paid under: how the simulator's ledger knows it.
pub fn leg_key(withdrawal: &str, leg: &str) -> String {
    payout_worker::domain::IdempotencyKey::for_leg(
        &payout_worker::domain::WithdrawalId::parse(withdrawal).unwrap(),
        &payout_worker::domain::LegId::parse(leg).unwrap(),
    )
    .to_string()
}

/// `moves` per key for one channel's ledger lines, after checking that no key of any
/// channel was paid twice.
pub async fn channel_moves(app: &TestApp, channel: &str) -> std::collections::HashMap<String, u64> {
    let ledger = app.ledger().await;
    assert!(
        moves(&ledger).values().all(|m| *m <= 1),
        "double payout: {ledger:?}"
    );
    let lines: Vec<Value> = ledger
        .into_iter()
        .filter(|l| l["channel"] == channel)
        .collect();
    moves(&lines)
}

/// The partial failure every channel is tested with: one `withdrawal.failed` whose
/// amounts add up, leg 1 paid and leg 2 refused with `code`.
pub fn assert_first_paid_second_refused(e: &Value, paid: &str, unfreeze: &str, code: &str) {
    assert_eq!(e["type"], "withdrawal.failed", "{e}");
    assert_eq!(e["data"]["paid_amount"], paid);
    assert_eq!(e["data"]["unfreeze_amount"], unfreeze);
    let legs = e["data"]["legs"].as_array().unwrap();
    assert_eq!(legs[0]["status"], "succeeded");
    assert_eq!(legs[1]["failure_code"], code);
}

/// A one-leg Alipay transfer of `amount` whose every answer is lost (the simulator pays
/// it, then answers 500 to the payment and to every query), worked by one worker with a
/// small deferral cap until it raises `withdrawal.review_required`. Returns the app, the
/// withdrawal id and the review event; no terminal event came before it.
pub async fn unknown_until_review(tag: &str, amount: &str) -> (TestApp, String, Value) {
    let mut app = TestApp::spawn(
        tag,
        Options {
            sim_faults: 1.0,
            sim_fault_kinds: vec!["lost_answer"],
            ..Options::default()
        },
    )
    .await;
    app.settings.retry.max_deferrals = 3;
    app.settings.retry.in_process_budget_ms = 100;
    app.start_worker();
    let id = unique(&format!("wd-{tag}"));
    app.publish_signed(&withdrawal(
        &id,
        vec![transfer_leg("1", amount, "zs@example.com")],
    ))
    .await;
    let review = review_before_any_terminal(&mut app, &id).await;
    (app, id, review)
}

/// Reads events until `id`'s `withdrawal.review_required`; no terminal event may come
/// before it (an app with one withdrawal: its funds stay frozen until the review).
pub async fn review_before_any_terminal(app: &mut TestApp, id: &str) -> Value {
    loop {
        let e = app.next_event().await.json();
        assert_ne!(
            e["type"], "withdrawal.failed",
            "nothing may be released before the review: {e}"
        );
        assert_ne!(
            e["type"], "withdrawal.succeeded",
            "nothing was paid before the review: {e}"
        );
        if e["type"] == "withdrawal.review_required" && e["subject"] == id {
            return e;
        }
    }
}

/// Asserts that no terminal event about `id` arrives within `wait` (after a review,
/// the funds stay frozen for a person: nothing may follow by itself).
pub async fn assert_no_terminal_event(app: &mut TestApp, id: &str, wait: Duration) {
    let terminal = tokio::time::timeout(wait, async {
        loop {
            let e = app.next_event().await.json();
            if e["subject"] == id
                && matches!(
                    e["type"].as_str(),
                    Some("withdrawal.failed" | "withdrawal.succeeded")
                )
            {
                return e;
            }
        }
    })
    .await;
    assert!(
        terminal.is_err(),
        "a terminal event after the review: {terminal:?}"
    );
}
