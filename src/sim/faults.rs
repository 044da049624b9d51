//! Fault injection for the simulator: which calls go wrong, and how.
//!
//! The worker's hardest paths (a 5xx after the money moved, an ambiguous "system busy")
//! only show up when the channel misbehaves, so the simulator misbehaves on purpose. The
//! draw comes from a ChaCha8 generator seeded from `--seed`, so a failing run can be
//! replayed exactly with the same seed (given the same order of calls).
//!
//! The rate and the kinds can be changed while the simulator runs (`POST /sim/faults`,
//! used by `payout-worker chaos` for error storms and lost answers): only those change,
//! the seeded generator keeps its sequence, so a run stays reproducible for its seed and
//! its schedule of changes. The injector also counts calls and injected faults, so a
//! chaos report can say how hard the channels were hit without looking into the worker.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// One way a call goes wrong. Channel modules decide what each looks like on their wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A proxy in front of the channel answers HTTP 502; the request never arrived.
    BadGateway,
    /// The channel says it is unavailable (Alipay `20000`); nothing was done.
    ServiceUnavailable,
    /// The channel's business layer reports a system error (Alipay `SYSTEM_ERROR`);
    /// nothing was done.
    SystemError,
    /// The request is carried out (money may move) and then the answer is lost: HTTP 500.
    /// The case that makes "query before resend" necessary.
    LostAnswer,
    /// A latency spike of [`SPIKE_MS`], then a normal answer.
    LatencySpike,
}

/// How long a [`Fault::LatencySpike`] holds the answer back.
pub const SPIKE_MS: u64 = 1500;

impl Fault {
    /// Every kind, in the order the draw indexes them.
    pub const ALL: [Fault; 5] = [
        Fault::BadGateway,
        Fault::ServiceUnavailable,
        Fault::SystemError,
        Fault::LostAnswer,
        Fault::LatencySpike,
    ];

    /// Whether the request is carried out at all under this fault.
    pub fn processes_request(self) -> bool {
        matches!(self, Fault::LostAnswer | Fault::LatencySpike)
    }

    /// The names `--fault-kinds` takes.
    pub fn name(self) -> &'static str {
        match self {
            Fault::BadGateway => "bad_gateway",
            Fault::ServiceUnavailable => "unavailable",
            Fault::SystemError => "system_error",
            Fault::LostAnswer => "lost_answer",
            Fault::LatencySpike => "latency_spike",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Its position in [`Fault::ALL`].
    fn index(self) -> usize {
        Self::ALL
            .iter()
            .position(|f| *f == self)
            .expect("every kind is in ALL")
    }

    pub fn label(self) -> &'static str {
        match self {
            Fault::BadGateway => "fault:502",
            Fault::ServiceUnavailable => "fault:unavailable",
            Fault::SystemError => "fault:system-error",
            Fault::LostAnswer => "fault:500-after-processing",
            Fault::LatencySpike => "fault:latency-spike",
        }
    }
}

/// Draws faults for a fraction `rate` of calls, reproducibly for a seed.
#[derive(Debug)]
pub struct FaultInjector {
    // A std Mutex: the lock is never held across an await.
    state: Mutex<Draws>,
}

/// Everything behind the injector's lock: what to draw, the generator, the counters.
#[derive(Debug)]
struct Draws {
    rate: f64,
    /// The kinds drawn from (all by default; tests and chaos runs narrow it).
    kinds: Vec<Fault>,
    rng: ChaCha8Rng,
    calls: u64,
    /// Injected faults, indexed like [`Fault::ALL`].
    injected: [u64; Fault::ALL.len()],
}

/// The body of `POST /sim/faults`: each field given replaces the current value, each
/// field left out keeps it. `kinds` uses the `--fault-kinds` names; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultControl {
    pub rate: Option<f64>,
    pub kinds: Option<Vec<String>>,
    /// Latency added to every call, in milliseconds (the simulator applies it).
    pub latency_ms: Option<u64>,
}

/// What `GET /sim/faults` (and a successful `POST`) answers: the current settings and
/// the counters since the simulator started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultStatus {
    pub rate: f64,
    pub kinds: Vec<String>,
    pub latency_ms: u64,
    /// Channel calls that went through the fault draw.
    pub calls: u64,
    /// Faults injected, by kind name.
    pub injected: BTreeMap<String, u64>,
}

impl FaultInjector {
    pub fn new(rate: f64, seed: u64) -> Self {
        Self::with_kinds(rate, seed, Fault::ALL.to_vec())
    }

    /// Faults of the given kinds only (an empty list means all).
    pub fn with_kinds(rate: f64, seed: u64, kinds: Vec<Fault>) -> Self {
        Self {
            state: Mutex::new(Draws {
                rate: rate.clamp(0.0, 1.0),
                kinds: all_if_empty(kinds),
                rng: ChaCha8Rng::seed_from_u64(seed),
                calls: 0,
                injected: [0; Fault::ALL.len()],
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Draws> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The fault for the next call, if any. Every call consumes the same amount of
    /// randomness whether it faults or not, so one seed gives one sequence.
    pub fn draw(&self) -> Option<Fault> {
        let mut d = self.lock();
        let kinds = d.kinds.len();
        let roll: f64 = d.rng.random();
        let kind = d.rng.random_range(0..kinds);
        d.calls += 1;
        let fault = (roll < d.rate).then(|| d.kinds[kind]);
        if let Some(f) = fault {
            d.injected[f.index()] += 1;
        }
        fault
    }

    /// Changes the rate and the kinds from now on (an empty list means all). The
    /// generator is untouched: the same seed and the same changes give the same draws.
    pub fn adjust(&self, rate: f64, kinds: Vec<Fault>) {
        let mut d = self.lock();
        d.rate = rate.clamp(0.0, 1.0);
        d.kinds = all_if_empty(kinds);
    }

    /// The current rate and kinds.
    pub fn current(&self) -> (f64, Vec<Fault>) {
        let d = self.lock();
        (d.rate, d.kinds.clone())
    }

    /// The current settings and counters (`latency_ms` is the simulator's, passed in).
    pub fn status(&self, latency_ms: u64) -> FaultStatus {
        let d = self.lock();
        FaultStatus {
            rate: d.rate,
            kinds: d.kinds.iter().map(|k| k.name().to_owned()).collect(),
            latency_ms,
            calls: d.calls,
            injected: Fault::ALL
                .iter()
                .map(|k| (k.name().to_owned(), d.injected[k.index()]))
                .collect(),
        }
    }
}

impl FaultControl {
    /// Checks the request: a rate between 0 and 1, known kind names.
    pub fn parsed(&self) -> Result<(Option<f64>, Option<Vec<Fault>>), String> {
        if let Some(rate) = self.rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("rate must be between 0 and 1, not {rate}"));
            }
        }
        let kinds = self
            .kinds
            .as_ref()
            .map(|names| names.iter().map(|n| parse_kind(n)).collect())
            .transpose()?;
        Ok((self.rate, kinds))
    }
}

/// A kind by its `--fault-kinds` name, or an error listing the known names.
pub fn parse_kind(name: &str) -> Result<Fault, String> {
    Fault::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
        format!("unknown fault {name:?} (known: {})", known.join(", "))
    })
}

fn all_if_empty(kinds: Vec<Fault>) -> Vec<Fault> {
    if kinds.is_empty() {
        Fault::ALL.to_vec()
    } else {
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(rate: f64, seed: u64) -> Vec<Option<Fault>> {
        let f = FaultInjector::new(rate, seed);
        (0..200).map(|_| f.draw()).collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        assert_eq!(sequence(0.3, 42), sequence(0.3, 42));
        assert_ne!(sequence(0.3, 42), sequence(0.3, 43));
    }

    #[test]
    fn rate_zero_never_faults_and_rate_one_always_does() {
        assert!(sequence(0.0, 7).iter().all(Option::is_none));
        let all = sequence(1.0, 7);
        assert!(all.iter().all(Option::is_some));
        // Every kind shows up in a long enough run.
        for kind in Fault::ALL {
            assert!(all.contains(&Some(kind)), "{kind:?} never drawn");
        }
    }

    #[test]
    fn kinds_narrow_the_draw_and_names_round_trip() {
        let f = FaultInjector::with_kinds(1.0, 3, vec![Fault::LostAnswer]);
        assert!((0..50).all(|_| f.draw() == Some(Fault::LostAnswer)));
        for kind in Fault::ALL {
            assert_eq!(Fault::parse(kind.name()), Some(kind));
        }
        assert_eq!(Fault::parse("nope"), None);
    }

    #[test]
    fn adjusting_changes_rate_and_kinds_but_not_the_seeded_sequence() {
        // The same seed and the same adjustments at the same points give the same draws.
        let run = || {
            let f = FaultInjector::new(0.0, 11);
            let mut seen: Vec<Option<Fault>> = (0..20).map(|_| f.draw()).collect();
            f.adjust(1.0, vec![Fault::BadGateway, Fault::SystemError]);
            seen.extend((0..20).map(|_| f.draw()));
            f.adjust(0.0, Vec::new());
            seen.extend((0..20).map(|_| f.draw()));
            (seen, f.status(250))
        };
        let (a, status) = run();
        assert_eq!(a, run().0);
        assert!(a[..20].iter().all(Option::is_none));
        assert!(a[20..40]
            .iter()
            .all(|f| matches!(f, Some(Fault::BadGateway | Fault::SystemError))));
        assert!(a[40..].iter().all(Option::is_none));
        // Empty kinds went back to all; the counters saw every call and fault.
        assert_eq!(status.kinds.len(), Fault::ALL.len());
        assert_eq!(
            (status.calls, status.latency_ms, status.rate),
            (60, 250, 0.0)
        );
        assert_eq!(status.injected.values().sum::<u64>(), 20);
        assert_eq!(
            status.injected["bad_gateway"] + status.injected["system_error"],
            20
        );
    }

    #[test]
    fn control_requests_are_checked() {
        let ok = FaultControl {
            rate: Some(0.5),
            kinds: Some(vec!["lost_answer".into()]),
            latency_ms: None,
        };
        assert_eq!(
            ok.parsed().unwrap(),
            (Some(0.5), Some(vec![Fault::LostAnswer]))
        );
        let bad_rate = FaultControl {
            rate: Some(1.5),
            ..FaultControl::default()
        };
        assert!(bad_rate.parsed().unwrap_err().contains("rate"));
        let bad_kind = FaultControl {
            kinds: Some(vec!["meteor".into()]),
            ..FaultControl::default()
        };
        assert!(bad_kind.parsed().unwrap_err().contains("meteor"));
        assert_eq!(FaultControl::default().parsed().unwrap(), (None, None));
    }

    #[test]
    fn the_rate_is_roughly_honoured() {
        let faulted = sequence(0.25, 9).iter().filter(|f| f.is_some()).count();
        assert!((20..=80).contains(&faulted), "{faulted} of 200");
    }
}
