//! Typed settings: `config/default.toml` (compiled in, so the binary runs with no
//! configuration at all), then an optional file, then `PAYOUT__SECTION__KEY` variables
//! and `PAYOUT_HMAC_KEYS`. Validated once at start with an error that names the key.
//! Secrets are `SecretString`: their `Debug` prints `[REDACTED]`.

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const DEFAULTS: &str = include_str!("../config/default.toml");
pub const DEV_HMAC_KEYS: &str = "dev:dev-secret-do-not-use-in-production";
/// The development seal key compiled into `config/default.toml`.
pub const DEV_WORKER_KEYS: &str = "dev-worker:dev-worker-secret-do-not-use-in-production";

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub amqp: AmqpSettings,
    pub topology: TopologySettings,
    pub redis: RedisSettings,
    pub auth: AuthSettings,
    pub rules: RulesSettings,
    pub retry: RetrySettings,
    pub limits: LimitsSettings,
    pub channels: ChannelSettings,
    pub sim: SimSettings,
    pub log: LogSettings,
    pub ops: OpsSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OpsSettings {
    /// Metrics and health endpoint; empty: none.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    pub url: SecretString,
    pub prefetch: u16,
    pub connect_timeout_ms: u64,
    pub heartbeat_secs: u16,
    pub connection_name: String,
    pub shutdown_grace_ms: u64,
    /// The largest command body the worker takes (bytes); a larger one is refused
    /// `too_large` before anything of it is stored.
    pub max_command_bytes: usize,
    /// The most the publisher's AMQP headers may weigh, encoded (bytes; the broker's own
    /// `x-death` and `x-delivery-count` bookkeeping not counted). Heavier: `too_large`.
    /// Far below the broker's frame size, so every copy the worker re-publishes, with its
    /// own headers added, fits in one frame.
    pub max_header_bytes: usize,
    /// Used with an `amqps://` URL.
    #[serde(default)]
    pub tls: TlsSettings,
}

/// TLS files for RabbitMQ or Redis (`crate::tls`); empty strings: none.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TlsSettings {
    /// PEM CA certificate(s) that sign the server's certificate, besides the system's roots.
    pub ca_file: String,
    /// PEM client certificate (chain) and private key, for mutual TLS: both or neither.
    pub client_cert_file: String,
    pub client_key_file: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TopologySettings {
    pub commands_exchange: String,
    pub work_queue: String,
    pub events_exchange: String,
    pub dead_letter: String,
    pub events_audit_queue: String,
    pub events_audit_max_length: u32,
    pub delivery_limit: u32,
    pub delay_prefix: String,
    pub delay_tiers_ms: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub urls: Vec<SecretString>,
    pub cluster: bool,
    pub key_prefix: String,
    pub timeout_ms: u64,
    pub retention_days: u32,
    pub lease_ms: u64,
    /// Replicas that must acknowledge a leg's `sending` record (`WAIT`) before its
    /// request leaves; 0: none.
    pub wait_replicas: u32,
    pub wait_timeout_ms: u64,
    /// Used with `rediss://` URLs.
    #[serde(default)]
    pub tls: TlsSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub hmac_keys: SecretString,
    pub publish_key_id: String,
    /// `id:secret[,id:secret...]`: the workers' own keys for sealing the bookkeeping
    /// headers of the copies they re-publish ([`crate::auth::Seal`]); the first seals.
    /// Every worker needs the same list; no publisher may hold it.
    pub worker_keys: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RulesSettings {
    pub currencies: Vec<String>,
    pub alipay_window_months: u32,
    pub wechat_pay_window_months: u32,
    pub unionpay_window_months: u32,
    pub bank_window_days: u32,
    pub bank_window_days_by_bank: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RetrySettings {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub in_process_budget_ms: u64,
    pub max_deferrals: u32,
    pub settlement_margin_secs: u64,
}

/// Containment limits (`crate::limits`): a command past one is held for review, not paid.
#[derive(Debug, Clone, Deserialize)]
pub struct LimitsSettings {
    #[serde(deserialize_with = "decimal")]
    pub max_leg_amount: rust_decimal::Decimal,
    #[serde(deserialize_with = "decimal")]
    pub max_withdrawal_amount: rust_decimal::Decimal,
    /// Per account and UTC day, over the withdrawals that passed the other limits.
    #[serde(deserialize_with = "decimal")]
    pub account_daily_amount: rust_decimal::Decimal,
    pub account_daily_count: u32,
    /// How old `approved_at` may be when a withdrawal is first claimed.
    pub max_age_secs: u64,
    /// How far ahead of the worker's clock `approved_at` (held for review past it) and a
    /// top-up's `paid_at` (refused past it) may be.
    pub max_clock_skew_secs: u64,
}

/// A decimal from a TOML string, or from an environment variable (which the loader may
/// have read as a number).
fn decimal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<rust_decimal::Decimal, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Any {
        Text(String),
        Int(i64),
        Float(f64),
    }
    let text = match Any::deserialize(d)? {
        Any::Text(s) => s,
        Any::Int(i) => i.to_string(),
        Any::Float(f) => f.to_string(),
    };
    text.trim()
        .parse()
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a decimal amount")))
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChannelSettings {
    pub alipay: AlipaySettings,
    pub wechat_pay: WechatPaySettings,
    pub unionpay: UnionpaySettings,
    pub bank: BankSettings,
}

/// What every channel has besides its protocol's own settings.
#[derive(Debug, Clone, Deserialize)]
pub struct Settlement {
    pub expected_settlement_secs: u64,
    /// Behind `#[serde(flatten)]` the configuration's own text-to-number conversion does
    /// not reach list items, so `PAYOUT__CHANNELS__<C>__POLL_SCHEDULE_MS=200,500` arrives
    /// as texts: both numbers and numeric texts are accepted.
    #[serde(deserialize_with = "whole_numbers")]
    pub poll_schedule_ms: Vec<u64>,
}

fn whole_numbers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Number(u64),
        Text(String),
    }
    Vec::<Item>::deserialize(d)?
        .into_iter()
        .map(|item| match item {
            Item::Number(n) => Ok(n),
            Item::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a whole number"))),
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize)]
pub struct AlipaySettings {
    pub gateway_url: String,
    pub app_id: String,
    pub app_private_key_file: String,
    pub alipay_public_key_file: String,
    pub timeout_ms: u64,
    #[serde(flatten)]
    pub settlement: Settlement,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WechatPaySettings {
    pub base_url: String,
    pub mchid: String,
    pub merchant_serial_no: String,
    pub merchant_private_key_file: String,
    pub platform_public_key_file: String,
    pub platform_serial_no: String,
    pub timeout_ms: u64,
    #[serde(flatten)]
    pub settlement: Settlement,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UnionpaySettings {
    pub back_url: String,
    pub query_url: String,
    pub mer_id: String,
    pub cert_id: String,
    pub merchant_private_key_file: String,
    pub unionpay_public_key_file: String,
    pub timeout_ms: u64,
    #[serde(flatten)]
    pub settlement: Settlement,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BankSettings {
    pub base_url: String,
    pub debtor_account: String,
    pub key_id: String,
    pub client_private_key_file: String,
    pub gateway_public_key_file: String,
    pub timeout_ms: u64,
    #[serde(flatten)]
    pub settlement: Settlement,
}

impl ChannelSettings {
    pub fn settlement(&self, channel: crate::domain::ChannelKind) -> &Settlement {
        use crate::domain::ChannelKind;
        match channel {
            ChannelKind::Alipay => &self.alipay.settlement,
            ChannelKind::WechatPay => &self.wechat_pay.settlement,
            ChannelKind::Unionpay => &self.unionpay.settlement,
            ChannelKind::Bank => &self.bank.settlement,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SimSettings {
    pub listen: String,
    pub faults: f64,
    pub fault_kinds: Vec<String>,
    pub seed: u64,
    pub latency_ms: u64,
    pub settle_ms: u64,
    pub alipay_platform_private_key_file: String,
    pub alipay_app_public_key_file: String,
    pub wechat_platform_private_key_file: String,
    pub wechat_merchant_public_key_file: String,
    pub unionpay_platform_private_key_file: String,
    pub unionpay_merchant_public_key_file: String,
    pub bank_gateway_private_key_file: String,
    pub bank_client_public_key_file: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        key,
        message: message.into(),
    }
}

impl Settings {
    /// The compiled-in defaults alone: what tests start from.
    pub fn defaults() -> Self {
        Self::build(None, false).expect("the compiled-in defaults are valid")
    }

    /// Defaults, then `config/default.toml` in the working directory if present, then
    /// `extra_file`, then the environment.
    pub fn load(extra_file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::build(extra_file, true)
    }

    fn build(extra_file: Option<&Path>, with_env: bool) -> Result<Self, SettingsError> {
        let mut builder = config::Config::builder()
            .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
        if with_env {
            builder =
                builder.add_source(config::File::with_name("config/default.toml").required(false));
        }
        if let Some(path) = extra_file {
            builder = builder.add_source(config::File::from(path).required(true));
        }
        if with_env {
            builder = builder.add_source(
                config::Environment::with_prefix("PAYOUT")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("redis.urls")
                    .with_list_parse_key("rules.currencies")
                    .with_list_parse_key("topology.delay_tiers_ms")
                    .with_list_parse_key("sim.fault_kinds")
                    .with_list_parse_key("channels.alipay.poll_schedule_ms")
                    .with_list_parse_key("channels.wechat_pay.poll_schedule_ms")
                    .with_list_parse_key("channels.unionpay.poll_schedule_ms")
                    .with_list_parse_key("channels.bank.poll_schedule_ms"),
            );
            if let Ok(keys) = std::env::var("PAYOUT_HMAC_KEYS") {
                builder = builder.set_override("auth.hmac_keys", keys)?;
            }
            if let Ok(keys) = std::env::var("PAYOUT_WORKER_KEYS") {
                builder = builder.set_override("auth.worker_keys", keys)?;
            }
        }
        let settings: Settings = builder.build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.amqp.prefetch == 0 {
            return Err(invalid("amqp.prefetch", "must be at least 1"));
        }
        let url = self.amqp.url.expose_secret();
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(invalid("amqp.url", "must start with amqp:// or amqps://"));
        }
        if self.redis.urls.is_empty() {
            return Err(invalid("redis.urls", "needs at least one URL"));
        }
        for u in &self.redis.urls {
            let u = u.expose_secret();
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                return Err(invalid(
                    "redis.urls",
                    "each must start with redis:// or rediss://",
                ));
            }
        }
        self.amqp
            .tls
            .check("amqp.tls")
            .map_err(|e| invalid("amqp.tls", e))?;
        self.redis
            .tls
            .check("redis.tls")
            .map_err(|e| invalid("redis.tls", e))?;
        if !self.amqp.tls.is_empty() && !url.starts_with("amqps://") {
            return Err(invalid(
                "amqp.tls",
                "TLS files are named but amqp.url is not amqps://",
            ));
        }
        if !self.redis.tls.is_empty()
            && !self
                .redis
                .urls
                .iter()
                .all(|u| u.expose_secret().starts_with("rediss://"))
        {
            return Err(invalid(
                "redis.tls",
                "TLS files are named but redis.urls are not all rediss://",
            ));
        }
        if !self.redis.cluster && self.redis.urls.len() != 1 {
            return Err(invalid(
                "redis.urls",
                "several URLs need redis.cluster = true",
            ));
        }
        if self.redis.key_prefix.is_empty() || self.redis.key_prefix.contains(['{', '}']) {
            return Err(invalid(
                "redis.key_prefix",
                "must be non-empty and without braces",
            ));
        }
        if self.topology.delay_tiers_ms.is_empty() || self.topology.delay_tiers_ms.contains(&0) {
            return Err(invalid(
                "topology.delay_tiers_ms",
                "needs at least one tier, each > 0",
            ));
        }
        if self.topology.delivery_limit == 0 {
            return Err(invalid("topology.delivery_limit", "must be at least 1"));
        }
        crate::auth::KeyRing::parse(self.auth.hmac_keys.expose_secret())
            .map_err(|e| invalid("auth.hmac_keys", e))?;
        crate::auth::Seal::parse(self.auth.worker_keys.expose_secret())
            .map_err(|e| invalid("auth.worker_keys", e))?;
        if self.amqp.max_command_bytes == 0 {
            return Err(invalid("amqp.max_command_bytes", "must be at least 1"));
        }
        // A frame is at least 128 KiB less a little on every broker we support
        // (RabbitMQ's default frame_max is 131072): room for the worker's own headers.
        if !(1024..=65_536).contains(&self.amqp.max_header_bytes) {
            return Err(invalid(
                "amqp.max_header_bytes",
                "must be 1024–65536, well below the broker's frame size",
            ));
        }
        if self.rules.currencies.is_empty() {
            return Err(invalid("rules.currencies", "needs at least one currency"));
        }
        if !(0.0..=1.0).contains(&self.sim.faults) {
            return Err(invalid("sim.faults", "must be a fraction between 0 and 1"));
        }
        for kind in [
            crate::domain::ChannelKind::Alipay,
            crate::domain::ChannelKind::WechatPay,
            crate::domain::ChannelKind::Unionpay,
            crate::domain::ChannelKind::Bank,
        ] {
            let s = self.channels.settlement(kind);
            if s.poll_schedule_ms.is_empty() || s.poll_schedule_ms.contains(&0) {
                return Err(invalid(
                    "channels.*.poll_schedule_ms",
                    format!("{kind}: needs at least one delay, each > 0"),
                ));
            }
        }
        let l = &self.limits;
        for (key, amount) in [
            ("limits.max_leg_amount", l.max_leg_amount),
            ("limits.max_withdrawal_amount", l.max_withdrawal_amount),
            ("limits.account_daily_amount", l.account_daily_amount),
        ] {
            if amount <= rust_decimal::Decimal::ZERO || amount.scale() > 2 {
                return Err(invalid(
                    key,
                    "must be an amount above zero, at most two places",
                ));
            }
        }
        if l.account_daily_count == 0 || l.max_age_secs == 0 {
            return Err(invalid(
                "limits.account_daily_count / limits.max_age_secs",
                "must be at least 1",
            ));
        }
        if l.max_age_secs > crate::limits::MAX_AGE_DAYS * 86_400 {
            return Err(invalid(
                "limits.max_age_secs",
                "must be at most 30 days (2592000)",
            ));
        }
        if l.max_clock_skew_secs > 86_400 {
            return Err(invalid(
                "limits.max_clock_skew_secs",
                "must be at most 1 day (86400): the daily counters look back that far before an approval",
            ));
        }
        if self.retry.max_deferrals == 0 {
            return Err(invalid("retry.max_deferrals", "must be at least 1"));
        }
        Ok(())
    }

    pub fn uses_dev_hmac_key(&self) -> bool {
        self.auth.hmac_keys.expose_secret().contains(DEV_HMAC_KEYS)
    }

    /// The settings still on a development secret: the compiled-in HMAC key, and every
    /// channel key file left empty (the adapters then use the compiled-in key pair, so a
    /// forged channel answer signed with the public development key would be trusted).
    pub fn development_secrets(&self) -> Vec<&'static str> {
        let c = &self.channels;
        let mut found: Vec<&'static str> = [
            (
                "channels.alipay.app_private_key_file",
                &c.alipay.app_private_key_file,
            ),
            (
                "channels.alipay.alipay_public_key_file",
                &c.alipay.alipay_public_key_file,
            ),
            (
                "channels.wechat_pay.merchant_private_key_file",
                &c.wechat_pay.merchant_private_key_file,
            ),
            (
                "channels.wechat_pay.platform_public_key_file",
                &c.wechat_pay.platform_public_key_file,
            ),
            (
                "channels.unionpay.merchant_private_key_file",
                &c.unionpay.merchant_private_key_file,
            ),
            (
                "channels.unionpay.unionpay_public_key_file",
                &c.unionpay.unionpay_public_key_file,
            ),
            (
                "channels.bank.client_private_key_file",
                &c.bank.client_private_key_file,
            ),
            (
                "channels.bank.gateway_public_key_file",
                &c.bank.gateway_public_key_file,
            ),
        ]
        .into_iter()
        .filter(|(_, path)| path.trim().is_empty())
        .map(|(key, _)| key)
        .collect();
        if self
            .auth
            .worker_keys
            .expose_secret()
            .contains(DEV_WORKER_KEYS)
        {
            found.insert(0, "auth.worker_keys");
        }
        if self.uses_dev_hmac_key() {
            found.insert(0, "auth.hmac_keys");
        }
        found
    }

    /// The broker and Redis URLs that are plain text to a host that is not loopback:
    /// (setting, host).
    pub fn plaintext_remotes(&self) -> Vec<(&'static str, String)> {
        std::iter::once(("amqp.url", &self.amqp.url))
            .chain(self.redis.urls.iter().map(|u| ("redis.urls", u)))
            .filter_map(|(setting, url)| {
                crate::tls::plaintext_remote_host(url.expose_secret()).map(|h| (setting, h))
            })
            .collect()
    }

    /// With `PAYOUT_ENV=production` (the value of [`ENVIRONMENT_VAR`] given as
    /// `environment`), refuses to run on any development secret, or with the broker or
    /// Redis reached in plain text over a network. Outside production the latter is a
    /// warning.
    pub fn check_production(&self, environment: Option<&str>) -> Result<(), SettingsError> {
        let plaintext = self.plaintext_remotes();
        if !environment.is_some_and(|e| e.trim().eq_ignore_ascii_case("production")) {
            for (setting, host) in plaintext {
                tracing::warn!(%setting, %host, "plain text (no TLS) to a host that is not loopback: never in production");
            }
            return Ok(());
        }
        if let Some((setting, host)) = plaintext.first() {
            return Err(invalid(
                setting,
                format!("{ENVIRONMENT_VAR}=production, but {host} is reached without TLS; use amqps:// / rediss://"),
            ));
        }
        match self.development_secrets().as_slice() {
            [] => Ok(()),
            [first, ..] => Err(invalid(
                first,
                format!(
                    "{ENVIRONMENT_VAR}=production, but these settings still use development secrets compiled into the binary: {}",
                    self.development_secrets().join(", ")
                ),
            )),
        }
    }
}

/// Marks the deployment: `production` refuses development secrets.
pub const ENVIRONMENT_VAR: &str = "PAYOUT_ENV";

pub fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_validate() {
        let s = Settings::defaults();
        assert_eq!(s.amqp.prefetch, 128);
        assert_eq!(s.topology.work_queue, "payout.withdrawals.approved");
        assert_eq!(s.rules.bank_window_days_by_bank["ICBC"], 30);
        assert!(s.uses_dev_hmac_key());
        // Development secrets everywhere: fine until the deployment says production.
        assert_eq!(s.development_secrets().len(), 10);
        assert!(s.check_production(None).is_ok());
        assert!(s.check_production(Some("staging")).is_ok());
        let refused = s
            .check_production(Some("Production"))
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("auth.hmac_keys")
                && refused.contains("channels.bank.gateway_public_key_file"),
            "{refused}"
        );
        let mut real = s.clone();
        real.auth.hmac_keys = SecretString::from("k1:a-real-secret".to_owned());
        real.auth.worker_keys = SecretString::from("w1:a-workers-only-secret".to_owned());
        for path in [
            &mut real.channels.alipay.app_private_key_file,
            &mut real.channels.alipay.alipay_public_key_file,
            &mut real.channels.wechat_pay.merchant_private_key_file,
            &mut real.channels.wechat_pay.platform_public_key_file,
            &mut real.channels.unionpay.merchant_private_key_file,
            &mut real.channels.unionpay.unionpay_public_key_file,
            &mut real.channels.bank.client_private_key_file,
            &mut real.channels.bank.gateway_public_key_file,
        ] {
            *path = "/etc/payout/key.pem".into();
        }
        assert!(real.check_production(Some("production")).is_ok());
        // ...but not with the broker or Redis in plain text over a network.
        for (setting, url) in [
            ("amqp.url", "amqp://payout:pw@rabbit.internal:5672/%2f"),
            ("redis.urls", "redis://:pw@cache.internal:6379"),
        ] {
            let mut remote = real.clone();
            let url = SecretString::from(url.to_owned());
            if setting == "amqp.url" {
                remote.amqp.url = url;
            } else {
                remote.redis.urls = vec![url];
            }
            assert_eq!(remote.plaintext_remotes().len(), 1);
            let refused = remote
                .check_production(Some("production"))
                .unwrap_err()
                .to_string();
            assert!(
                refused.contains(setting) && !refused.contains("pw"),
                "{refused}"
            );
            assert!(remote.check_production(None).is_ok());
        }
    }

    #[test]
    fn tls_files_need_a_tls_url() {
        let mut s = Settings::defaults();
        s.amqp.tls.ca_file = "tests/fixtures/tls/ca.pem".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("amqp.tls") && e.contains("amqps://"), "{e}");
        s.amqp.url = SecretString::from("amqps://u:p@localhost:5671/%2f".to_owned());
        assert!(s.validate().is_ok());
        s.redis.tls.client_cert_file = "tests/fixtures/tls/ca.pem".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("redis.tls.client_key_file"), "{e}");
        s.redis.tls.client_key_file = "tests/fixtures/tls/ca.key".into();
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("rediss://"), "{e}");
        s.redis.urls = vec![SecretString::from("rediss://localhost:6380".to_owned())];
        assert!(s.validate().is_ok());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let s = Settings::defaults();
        let text = format!("{s:?}");
        assert!(!text.contains("dev-secret-do-not-use-in-production"));
        assert!(!text.contains("guest:guest"));
    }

    #[test]
    fn validation_names_the_bad_key() {
        let mut s = Settings::defaults();
        s.amqp.prefetch = 0;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`amqp.prefetch`"));
        let mut s = Settings::defaults();
        s.auth.hmac_keys = SecretString::from("no-colon");
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`auth.hmac_keys`"));
        // The daily counters look back at most 30 days for a redelivery.
        let mut s = Settings::defaults();
        s.limits.max_age_secs = 30 * 86_400;
        assert!(s.validate().is_ok());
        s.limits.max_age_secs += 1;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`limits.max_age_secs`"));
        let mut s = Settings::defaults();
        assert_eq!(s.limits.max_clock_skew_secs, 300);
        s.limits.max_clock_skew_secs = 86_400;
        assert!(s.validate().is_ok());
        s.limits.max_clock_skew_secs += 1;
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`limits.max_clock_skew_secs`"));
    }

    /// What `PAYOUT__CHANNELS__BANK__POLL_SCHEDULE_MS=100,250` hands over: texts.
    #[test]
    fn poll_schedules_given_as_texts_are_read_as_numbers() {
        let dir = std::env::temp_dir().join(format!("payout-cfg-poll-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("poll.toml");
        std::fs::write(
            &file,
            "[channels.bank]\npoll_schedule_ms = [\"100\", \" 250\"]\n",
        )
        .unwrap();
        let s = Settings::build(Some(&file), false).unwrap();
        assert_eq!(s.channels.bank.settlement.poll_schedule_ms, vec![100, 250]);
        std::fs::write(&file, "[channels.bank]\npoll_schedule_ms = [\"soon\"]\n").unwrap();
        let err = Settings::build(Some(&file), false).unwrap_err().to_string();
        assert!(err.contains("soon"), "{err}");
    }

    #[test]
    fn a_file_with_a_wrong_type_names_the_key() {
        let dir = std::env::temp_dir().join(format!("payout-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.toml");
        std::fs::write(&file, "[amqp]\nprefetch = \"lots\"\n").unwrap();
        let err = Settings::build(Some(&file), false).unwrap_err().to_string();
        assert!(err.contains("prefetch"), "{err}");
    }
}
