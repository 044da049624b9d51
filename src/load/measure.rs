//! What a load run reads off the machine: a process's peak memory and CPU time from
//! `/proc`, Redis's command counters, the cost of RSA-2048, percentiles.

use crate::channels::rsa::{RsaSigner, RsaVerifier};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Peak resident set size (`VmHWM`) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_field_kib(&status, "VmHWM:")
}

fn status_field_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// User plus system CPU time a process has used (Linux's `USER_HZ` is 100).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_ticks(&stat).map(|ticks| Duration::from_millis(ticks * 10))
}

/// `utime + stime` from a `/proc/<pid>/stat` line (fields 14 and 15; the command name,
/// field 2, may contain spaces and parentheses, so fields are counted after its `)`).
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Calls per command since the server started (`INFO commandstats`), without `info`.
pub async fn redis_calls(url: &str) -> Result<BTreeMap<String, u64>, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let mut conn = tokio::time::timeout(
        Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| "redis: connect timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    let info: String = tokio::time::timeout(
        Duration::from_secs(5),
        redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn),
    )
    .await
    .map_err(|_| "redis: INFO timed out".to_owned())?
    .map_err(|e| e.to_string())?;
    Ok(parse_commandstats(&info))
}

fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))?
                .parse()
                .ok()?;
            (name != "info" && !name.starts_with("client") && name != "hello")
                .then(|| (name.to_owned(), calls))
        })
        .collect()
}

/// Per-command difference `after - before` (commands first seen after count in full).
pub fn calls_between(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0).min(*v)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// What a load run reads from the worker's `/metrics`.
#[derive(Debug, Default, Clone)]
pub struct WorkerMetrics {
    /// `payout_redis_round_trips_total`, by operation.
    pub round_trips: BTreeMap<String, u64>,
    /// Seconds spent and observations made in each timed stage (see [`STAGES`]).
    pub stages: BTreeMap<&'static str, (f64, f64)>,
}

/// The worker's timed stages on a withdrawal's path, and their histograms.
const STAGES: [(&str, &str); 2] = [
    ("event_confirm", "payout_event_confirm_seconds"),
    ("channel_call", "payout_channel_call_seconds"),
];

impl WorkerMetrics {
    /// Mean milliseconds per observation of each stage between two scrapes.
    pub fn stage_means_ms(before: &Self, after: &Self) -> BTreeMap<String, f64> {
        after
            .stages
            .iter()
            .filter_map(|(name, (secs, n))| {
                let (secs0, n0) = before.stages.get(name).copied().unwrap_or_default();
                (n - n0 > 0.0).then(|| (name.to_string(), (secs - secs0) * 1000.0 / (n - n0)))
            })
            .collect()
    }
}

/// The worker's round trips and stage times, from its `/metrics`.
pub async fn worker_metrics(port: u16) -> Result<WorkerMetrics, String> {
    let text = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("worker metrics: {e}"))?
        .text()
        .await
        .map_err(|e| format!("worker metrics: {e}"))?;
    Ok(WorkerMetrics {
        round_trips: by_label(&text, "payout_redis_round_trips_total", "op"),
        stages: STAGES
            .iter()
            .map(|(name, metric)| {
                let sum = total(&text, &format!("{metric}_sum"));
                (*name, (sum, total(&text, &format!("{metric}_count"))))
            })
            .collect(),
    })
}

/// A metric's value summed over all its label sets.
fn total(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(metric)?;
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .sum()
}

/// A counter's values by one label, from Prometheus text exposition.
fn by_label(text: &str, metric: &str, label: &str) -> BTreeMap<String, u64> {
    let prefix = format!("{metric}{{");
    let key = format!("{label}=\"");
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (labels, value) = rest.split_once("} ")?;
            let start = labels.find(&key)? + key.len();
            let name = &labels[start..start + labels[start..].find('"')?];
            Some((name.to_owned(), value.trim().parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// Mean cost of one RSA-2048 PKCS#1 v1.5 SHA-256 signature and one verification on this
/// machine, one core (the channel adapters' scheme), over a request-sized message.
pub fn rsa_cost(rounds: u32) -> (Duration, Duration) {
    let signer = RsaSigner::from_pem(crate::channels::alipay::DEV_APP_PRIVATE_KEY)
        .expect("the development key parses");
    let verifier = RsaVerifier::from_pem(crate::channels::alipay::DEV_APP_PUBLIC_KEY)
        .expect("the development key parses");
    let message = vec![b'x'; 600];
    let signature = signer.sign_base64(&message);
    let t = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(signer.sign_base64(std::hint::black_box(&message)));
    }
    let sign = t.elapsed() / rounds;
    let t = Instant::now();
    for _ in 0..rounds {
        assert!(verifier.verify_base64(std::hint::black_box(&message), &signature));
    }
    (sign, t.elapsed() / rounds)
}

/// The `q` quantile (0..=1) of sorted values: the smallest value at or above that share.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_cpu_fields_are_counted_after_the_command_name() {
        let stat = "4242 (payout (w) 1) S 1 4242 4242 0 -1 4194560 2000 0 0 0 \
                    150 25 0 0 20 0 9 0 1234 123456 789 18446744073709551615";
        assert_eq!(cpu_ticks(stat), Some(175));
        assert_eq!(cpu_ticks("garbage"), None);
    }

    #[test]
    fn peak_rss_is_read_from_vmhwm() {
        let status = "Name:\tpayout-worker\nVmPeak:\t  900000 kB\nVmHWM:\t   41234 kB\nVmRSS:\t   40000 kB\n";
        assert_eq!(status_field_kib(status, "VmHWM:"), Some(41234));
        assert_eq!(status_field_kib("Name:\tx\n", "VmHWM:"), None);
        // This very process has one.
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn commandstats_are_parsed_without_info_and_connection_setup() {
        let info = "# Commandstats\r\ncmdstat_evalsha:calls=300,usec=900,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_info:calls=4,usec=1\r\ncmdstat_client|setinfo:calls=2,usec=1\r\ncmdstat_ping:calls=1,usec=1\r\n";
        let m = parse_commandstats(info);
        assert_eq!(m.get("evalsha"), Some(&300));
        assert_eq!(m.get("ping"), Some(&1));
        assert_eq!(m.len(), 2);
        let before = BTreeMap::from([("evalsha".to_owned(), 100)]);
        let d = calls_between(&before, &m);
        assert_eq!(d.get("evalsha"), Some(&200));
        assert_eq!(d.get("ping"), Some(&1));
    }

    #[test]
    fn stage_times_are_summed_over_labels_and_averaged_between_scrapes() {
        let text = "payout_channel_call_seconds_sum{channel=\"bank\",operation=\"pay\"} 1.5\n\
                    payout_channel_call_seconds_sum{channel=\"alipay\",operation=\"pay\"} 0.5\n\
                    payout_channel_call_seconds_count{channel=\"bank\",operation=\"pay\"} 300\n\
                    payout_channel_call_seconds_count{channel=\"alipay\",operation=\"pay\"} 100\n\
                    payout_event_confirm_seconds_sum 0.8\n\
                    payout_event_confirm_seconds_count 400\n";
        assert_eq!(total(text, "payout_channel_call_seconds_sum"), 2.0);
        assert_eq!(total(text, "payout_channel_call_seconds_count"), 400.0);
        assert_eq!(total(text, "payout_event_confirm_seconds_count"), 400.0);
        let after = WorkerMetrics {
            round_trips: BTreeMap::new(),
            stages: [
                ("channel_call", (2.0, 400.0)),
                ("event_confirm", (0.8, 400.0)),
            ]
            .into(),
        };
        let before = WorkerMetrics {
            round_trips: BTreeMap::new(),
            stages: [
                ("channel_call", (1.0, 200.0)),
                ("event_confirm", (0.8, 400.0)),
            ]
            .into(),
        };
        // 1 s over 200 calls; no confirms in between, so no mean for them.
        assert_eq!(
            WorkerMetrics::stage_means_ms(&before, &after),
            [("channel_call".to_string(), 5.0)].into()
        );
    }

    #[test]
    fn round_trips_are_read_by_operation() {
        let text = "# TYPE payout_redis_round_trips_total counter\n\
                    payout_redis_round_trips_total{op=\"claim\"} 500\n\
                    payout_redis_round_trips_total{op=\"transition\"} 1000\n\
                    payout_redis_errors_total 0\n";
        let m = by_label(text, "payout_redis_round_trips_total", "op");
        assert_eq!(m.get("claim"), Some(&500));
        assert_eq!(m.get("transition"), Some(&1000));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn the_rsa_cost_is_measured() {
        let (sign, verify) = rsa_cost(3);
        assert!(sign > Duration::ZERO && verify > Duration::ZERO);
    }

    proptest! {
        #[test]
        fn a_quantile_is_a_sample_with_that_share_at_or_below_it(
            mut v in proptest::collection::vec(0u64..10_000, 1..300), q in 0.0f64..=1.0
        ) {
            v.sort_unstable();
            let d: Vec<Duration> = v.iter().map(|ms| Duration::from_millis(*ms)).collect();
            let x = quantile(&d, q);
            prop_assert!(d.contains(&x));
            let at_or_below = d.iter().filter(|y| **y <= x).count() as f64;
            prop_assert!(at_or_below >= q * d.len() as f64);
            prop_assert_eq!(quantile(&d, 1.0), *d.last().unwrap());
        }
    }
}
