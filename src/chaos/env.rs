//! The run's settings and the environment its worker processes get.
//!
//! Every broker name, the Redis key prefix and the connection names are the run's own;
//! Redis is the run's redis-server, RabbitMQ the run's vhost, every channel points at
//! the run's simulator. Timings, and why:
//! - delay tiers 100, 300, 1000, 3000 ms and channel poll schedules 200, 500, 1000 ms:
//!   a run lasts minutes, not days;
//! - channel timeouts 3 s: a latency spike (up to 4 s) times some calls out, which
//!   must be resolved by querying, never by failing;
//! - `retry.max_deferrals` 1000 (about 50 minutes at the slowest tier, far beyond any
//!   run): a withdrawal is never sent to review merely because storms and Redis
//!   outages made it wait; review then only comes from answers no machine can resolve,
//!   and a withdrawal stuck "unknown" shows up as unfinished, a violation;
//! - `limits.max_age_secs` 3600: the `age_limit` design ages withdrawals past it
//!   during the run; `retry.max_deferrals` is lowered to 6 when the run has the
//!   `stuck_unknown` design, so that outcomes unknown for good reach review in time;
//! - every channel's expected settlement 30 s with no margin: a payout still pending
//!   after that (accepted, then forgotten by the channel) raises `settlement_overdue`
//!   review within the run;
//! - Redis lease 3 s: a SIGKILLed worker's lease does not hold others up for long;
//! - shutdown grace 5 s: a SIGTERMed worker drains quickly and must exit 0;
//! - metrics: each worker process gets a port of its own (`workers.rs`), scraped for
//!   the report's retry counts.

use super::infra;
use crate::config::Settings;
use secrecy::{ExposeSecret, SecretString};

/// Delay tiers of the run's workers (milliseconds).
pub const DELAY_TIERS_MS: [u64; 4] = [100, 300, 1000, 3000];
/// Every channel's poll schedule in a run (milliseconds).
pub const POLL_SCHEDULE_MS: [u64; 3] = [200, 500, 1000];
pub const CHANNEL_TIMEOUT_MS: u64 = 3000;
/// Every channel's expected settlement time in a run, with no margin: time is compressed
/// (the simulator settles in seconds), so a payout still pending after it (one the
/// channel accepted and forgot, say) raises `settlement_overdue` review within the run,
/// as it would after days in production.
pub const SETTLEMENT_SECS: u64 = 30;
pub const MAX_DEFERRALS: u32 = 1000;
pub const LEASE_MS: u64 = 3000;
pub const SHUTDOWN_GRACE_MS: u64 = 5000;
pub const PREFETCH: u16 = 32;
/// `limits.max_age_secs` of the run's workers: the `age_limit` design approves
/// withdrawals so that they age past it during the run (everything else is approved
/// when the run starts, far from it).
pub const MAX_AGE_SECS: u64 = 3600;
/// `retry.max_deferrals` when the run has the `stuck_unknown` design: low enough that
/// an outcome unknown for good reaches review within a run (an error storm may then
/// send an ordinary withdrawal to review too, which is allowed: polling goes on).
pub const STUCK_MAX_DEFERRALS: u32 = 6;

/// The user in an AMQP URL (`guest` if none is given).
pub fn amqp_user(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    match after_scheme.split_once('@') {
        Some((userinfo, _)) => {
            let user = userinfo.split(':').next().unwrap_or("guest");
            if user.is_empty() {
                "guest".into()
            } else {
                user.to_owned()
            }
        }
        None => "guest".into(),
    }
}

/// The run's settings: the configured ones with this run's names, its vhost, its
/// Redis, its simulator, and the short timings described in the module doc.
pub fn run_settings(
    base: &Settings,
    run_id: &str,
    vhost: &str,
    redis_url: &str,
    sim_url: &str,
) -> Settings {
    let mut s = base.clone();
    let t = &mut s.topology;
    t.commands_exchange = format!("{run_id}.commands");
    t.work_queue = format!("{run_id}.approved");
    t.events_exchange = format!("{run_id}.events");
    t.dead_letter = format!("{run_id}.dead");
    t.events_audit_queue = String::new();
    t.delay_prefix = format!("{run_id}.delay");
    t.delay_tiers_ms = DELAY_TIERS_MS.to_vec();
    s.amqp.url = SecretString::from(infra::url_with_vhost(base.amqp.url.expose_secret(), vhost));
    s.amqp.prefetch = PREFETCH;
    s.amqp.shutdown_grace_ms = SHUTDOWN_GRACE_MS;
    s.amqp.connection_name = run_id.to_owned();
    s.redis.urls = vec![SecretString::from(redis_url.to_owned())];
    s.redis.cluster = false;
    s.redis.key_prefix = run_id.to_owned();
    s.redis.lease_ms = LEASE_MS;
    s.retry.max_deferrals = MAX_DEFERRALS;
    s.limits.max_age_secs = MAX_AGE_SECS;
    let c = &mut s.channels;
    c.alipay.gateway_url = format!("{sim_url}/gateway.do");
    c.wechat_pay.base_url = sim_url.to_owned();
    c.unionpay.back_url = format!("{sim_url}/gateway/api/backTransReq.do");
    c.unionpay.query_url = format!("{sim_url}/gateway/api/queryTrans.do");
    c.bank.base_url = format!("{sim_url}/bank");
    c.alipay.timeout_ms = CHANNEL_TIMEOUT_MS;
    c.wechat_pay.timeout_ms = CHANNEL_TIMEOUT_MS;
    c.unionpay.timeout_ms = CHANNEL_TIMEOUT_MS;
    c.bank.timeout_ms = CHANNEL_TIMEOUT_MS;
    for settlement in [
        &mut c.alipay.settlement,
        &mut c.wechat_pay.settlement,
        &mut c.unionpay.settlement,
        &mut c.bank.settlement,
    ] {
        settlement.poll_schedule_ms = POLL_SCHEDULE_MS.to_vec();
        settlement.expected_settlement_secs = SETTLEMENT_SECS;
    }
    s.retry.settlement_margin_secs = 0;
    s
}

/// The environment that gives a worker process the run's settings
/// (`PAYOUT__SECTION__KEY`; lists comma-separated).
pub fn worker_env(s: &Settings, log_level: &str) -> Vec<(String, String)> {
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    let t = &s.topology;
    let c = &s.channels;
    let redis_urls: Vec<&str> = s.redis.urls.iter().map(|u| u.expose_secret()).collect();
    let mut env: Vec<(String, String)> = [
        ("AMQP__URL", s.amqp.url.expose_secret().to_owned()),
        ("AMQP__PREFETCH", s.amqp.prefetch.to_string()),
        (
            "AMQP__SHUTDOWN_GRACE_MS",
            s.amqp.shutdown_grace_ms.to_string(),
        ),
        ("TOPOLOGY__COMMANDS_EXCHANGE", t.commands_exchange.clone()),
        ("TOPOLOGY__WORK_QUEUE", t.work_queue.clone()),
        ("TOPOLOGY__EVENTS_EXCHANGE", t.events_exchange.clone()),
        ("TOPOLOGY__DEAD_LETTER", t.dead_letter.clone()),
        ("TOPOLOGY__EVENTS_AUDIT_QUEUE", t.events_audit_queue.clone()),
        ("TOPOLOGY__DELAY_PREFIX", t.delay_prefix.clone()),
        ("TOPOLOGY__DELAY_TIERS_MS", list(&t.delay_tiers_ms)),
        ("REDIS__URLS", redis_urls.join(",")),
        ("REDIS__CLUSTER", s.redis.cluster.to_string()),
        ("REDIS__KEY_PREFIX", s.redis.key_prefix.clone()),
        ("REDIS__LEASE_MS", s.redis.lease_ms.to_string()),
        ("RETRY__MAX_DEFERRALS", s.retry.max_deferrals.to_string()),
        ("LIMITS__MAX_AGE_SECS", s.limits.max_age_secs.to_string()),
        (
            "CHANNELS__ALIPAY__GATEWAY_URL",
            c.alipay.gateway_url.clone(),
        ),
        (
            "CHANNELS__WECHAT_PAY__BASE_URL",
            c.wechat_pay.base_url.clone(),
        ),
        ("CHANNELS__UNIONPAY__BACK_URL", c.unionpay.back_url.clone()),
        (
            "CHANNELS__UNIONPAY__QUERY_URL",
            c.unionpay.query_url.clone(),
        ),
        ("CHANNELS__BANK__BASE_URL", c.bank.base_url.clone()),
        // Each worker process gets a metrics port of its own when it starts.
        ("OPS__LISTEN", String::new()),
        ("LOG__FORMAT", "json".into()),
        ("LOG__LEVEL", log_level.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("PAYOUT__{k}"), v))
    .collect();
    for (name, settlement, timeout) in [
        ("ALIPAY", &c.alipay.settlement, c.alipay.timeout_ms),
        (
            "WECHAT_PAY",
            &c.wechat_pay.settlement,
            c.wechat_pay.timeout_ms,
        ),
        ("UNIONPAY", &c.unionpay.settlement, c.unionpay.timeout_ms),
        ("BANK", &c.bank.settlement, c.bank.timeout_ms),
    ] {
        env.push((
            format!("PAYOUT__CHANNELS__{name}__POLL_SCHEDULE_MS"),
            list(&settlement.poll_schedule_ms),
        ));
        env.push((
            format!("PAYOUT__CHANNELS__{name}__TIMEOUT_MS"),
            timeout.to_string(),
        ));
        env.push((
            format!("PAYOUT__CHANNELS__{name}__EXPECTED_SETTLEMENT_SECS"),
            settlement.expected_settlement_secs.to_string(),
        ));
    }
    env.push((
        "PAYOUT__RETRY__SETTLEMENT_MARGIN_SECS".into(),
        s.retry.settlement_margin_secs.to_string(),
    ));
    env.push((
        "PAYOUT_HMAC_KEYS".into(),
        s.auth.hmac_keys.expose_secret().to_owned(),
    ));
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_amqp_user_is_read_from_the_url() {
        assert_eq!(amqp_user("amqp://guest:guest@127.0.0.1:5672/%2f"), "guest");
        assert_eq!(amqp_user("amqps://payout:pw@host/vh"), "payout");
        assert_eq!(amqp_user("amqp://127.0.0.1:5672"), "guest");
    }

    /// The environment, read back through the real configuration loader's rules, gives
    /// a worker exactly the run's settings.
    #[test]
    fn the_worker_environment_carries_the_run_settings() {
        let base = Settings::defaults();
        let rs = run_settings(
            &base,
            "chaos-1-ab",
            "chaos-1-ab",
            "redis://127.0.0.1:7000",
            "http://127.0.0.1:9000",
        );
        let env: BTreeMap<String, String> = worker_env(&rs, "warn").into_iter().collect();
        assert_eq!(
            env["PAYOUT__AMQP__URL"],
            "amqp://guest:guest@127.0.0.1:5672/chaos-1-ab"
        );
        assert_eq!(env["PAYOUT__TOPOLOGY__DELAY_TIERS_MS"], "100,300,1000,3000");
        assert_eq!(
            env["PAYOUT__CHANNELS__WECHAT_PAY__POLL_SCHEDULE_MS"],
            "200,500,1000"
        );
        assert_eq!(
            env["PAYOUT__CHANNELS__UNIONPAY__QUERY_URL"],
            "http://127.0.0.1:9000/gateway/api/queryTrans.do"
        );
        assert_eq!(env["PAYOUT__REDIS__URLS"], "redis://127.0.0.1:7000");
        assert_eq!(env["PAYOUT__RETRY__MAX_DEFERRALS"], "1000");
        assert!(rs.validate().is_ok());
        // Every variable names a real setting (PAYOUT_HMAC_KEYS is the contract's own).
        let known = serde_json::to_value(toml_keys()).unwrap();
        for k in env.keys().filter(|k| k.starts_with("PAYOUT__")) {
            let path: Vec<String> = k["PAYOUT__".len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect();
            let mut v = &known;
            for p in &path {
                v = v.get(p).unwrap_or_else(|| panic!("{k} names no setting"));
            }
        }
    }

    /// `config/default.toml` as a tree of keys.
    fn toml_keys() -> serde_json::Value {
        let text = include_str!("../../config/default.toml");
        let mut root = serde_json::Map::new();
        let mut section: Vec<String> = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line
                    .trim_matches(['[', ']'])
                    .split('.')
                    .map(str::to_owned)
                    .collect();
            } else if let Some((k, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
                let mut node = &mut root;
                for s in &section {
                    node = node
                        .entry(s.clone())
                        .or_insert_with(|| serde_json::json!({}))
                        .as_object_mut()
                        .unwrap();
                }
                node.insert(
                    k.trim().trim_matches('"').to_owned(),
                    serde_json::json!(true),
                );
            }
        }
        serde_json::Value::Object(root)
    }
}
