//! Retries as the workers count them, read the way ops reads them: each worker process
//! serves `/metrics` on a port of its own, scraped about once a second. A counter lives
//! as long as its process, so the run keeps the last value seen from every process
//! ("incarnation") and adds them up: a lower bound, since what a SIGKILLed worker counted
//! after its last scrape is lost with it. The invariants never use these numbers.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The counters the report shows, from one scrape or summed over processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Retries {
    /// Commands re-published to a delay queue (`payout_deferrals_total`).
    pub deferrals: u64,
    /// Of which: waiting for another worker's lease (`payout_lease_conflicts_total`).
    pub lease_waits: u64,
    /// Channel calls by operation (`payout_channel_call_seconds_count`): every pay
    /// beyond one per leg is a resend, every query a check before one.
    pub channel_pays: u64,
    pub channel_queries: u64,
    pub broker_reconnects: u64,
    pub redis_errors: u64,
}

impl Retries {
    /// Reads the counters from Prometheus text exposition.
    pub fn parse(text: &str) -> Self {
        let mut r = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let value = value.max(0.0) as u64;
            let (name, labels) = series.split_once('{').unwrap_or((series, ""));
            match name {
                "payout_deferrals_total" => r.deferrals += value,
                "payout_lease_conflicts_total" => r.lease_waits += value,
                "payout_broker_reconnects_total" => r.broker_reconnects += value,
                "payout_redis_errors_total" => r.redis_errors += value,
                "payout_channel_call_seconds_count" if labels.contains("operation=\"pay\"") => {
                    r.channel_pays += value
                }
                "payout_channel_call_seconds_count" if labels.contains("operation=\"query\"") => {
                    r.channel_queries += value
                }
                _ => {}
            }
        }
        r
    }

    fn add(&mut self, o: &Self) {
        self.deferrals += o.deferrals;
        self.lease_waits += o.lease_waits;
        self.channel_pays += o.channel_pays;
        self.channel_queries += o.channel_queries;
        self.broker_reconnects += o.broker_reconnects;
        self.redis_errors += o.redis_errors;
    }
}

/// The last scrape of every worker process the run started, by its metrics port.
#[derive(Debug, Default)]
pub struct Tally {
    last: HashMap<u16, Retries>,
}

impl Tally {
    pub fn record(&mut self, port: u16, seen: Retries) {
        self.last.insert(port, seen);
    }

    /// Summed over every process, and how many processes were ever scraped.
    pub fn total(&self) -> (Retries, usize) {
        let mut sum = Retries::default();
        for r in self.last.values() {
            sum.add(r);
        }
        (sum, self.last.len())
    }
}

/// Scrapes one worker's `/metrics` (half a second at most).
pub async fn scrape(http: &reqwest::Client, port: u16) -> Option<Retries> {
    let text = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(Retries::parse(&text))
}

/// For the report.
#[derive(Debug, Clone, Serialize)]
pub struct RetriesReport {
    #[serde(flatten)]
    pub counts: Retries,
    pub processes_scraped: usize,
    pub note: &'static str,
}

pub const NOTE: &str = "scraped from each worker process's /metrics about once a second and summed over processes: a lower bound, since a SIGKILLed worker's counts after its last scrape die with it";

impl RetriesReport {
    pub fn from_tally(t: &Tally) -> Self {
        let (counts, processes_scraped) = t.total();
        Self {
            counts,
            processes_scraped,
            note: NOTE,
        }
    }

    pub fn line(&self) -> String {
        let c = &self.counts;
        let fields = BTreeMap::from([
            ("deferrals", c.deferrals),
            ("lease waits", c.lease_waits),
            ("channel pays", c.channel_pays),
            ("channel queries", c.channel_queries),
            ("broker reconnects", c.broker_reconnects),
            ("redis errors", c.redis_errors),
        ]);
        let list: Vec<String> = fields.iter().map(|(k, v)| format!("{k} {v}")).collect();
        format!(
            "{} (from {} worker processes; at least)",
            list.join(", "),
            self.processes_scraped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = "# HELP payout_deferrals_total Commands deferred.\n\
# TYPE payout_deferrals_total counter\n\
payout_deferrals_total{tier_ms=\"100\"} 7\n\
payout_deferrals_total{tier_ms=\"1000\"} 3\n\
payout_lease_conflicts_total 2\n\
payout_channel_call_seconds_count{channel=\"alipay\",operation=\"pay\"} 40\n\
payout_channel_call_seconds_count{channel=\"bank\",operation=\"pay\"} 10\n\
payout_channel_call_seconds_count{channel=\"bank\",operation=\"query\"} 5\n\
payout_channel_call_seconds_sum{channel=\"bank\",operation=\"query\"} 0.5\n\
payout_broker_reconnects_total 1\n\
payout_redis_errors_total 4\n";

    #[test]
    fn counters_are_read_from_the_exposition_format() {
        let r = Retries::parse(SCRAPE);
        assert_eq!(
            r,
            Retries {
                deferrals: 10,
                lease_waits: 2,
                channel_pays: 50,
                channel_queries: 5,
                broker_reconnects: 1,
                redis_errors: 4,
            }
        );
        assert_eq!(Retries::parse("garbage\n{ 1\n"), Retries::default());
    }

    #[test]
    fn the_tally_keeps_the_last_scrape_per_process_and_sums_them() {
        let mut t = Tally::default();
        let r = Retries::parse(SCRAPE);
        t.record(9001, Retries { deferrals: 3, ..r });
        t.record(9001, r);
        t.record(9002, r);
        let (sum, n) = t.total();
        assert_eq!(n, 2);
        assert_eq!(sum.deferrals, 20);
        assert_eq!(sum.channel_pays, 100);
    }
}
