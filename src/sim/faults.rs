//! Fault injection for the simulator: which calls go wrong, and how.
//!
//! The worker's hardest paths (a 5xx after the money moved, an ambiguous "system busy")
//! only show up when the channel misbehaves, so the simulator misbehaves on purpose. The
//! draw comes from a ChaCha8 generator seeded from `--seed`, so a failing run can be
//! replayed exactly with the same seed (given the same order of calls).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
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
    rate: f64,
    /// The kinds drawn from (all by default; tests and chaos runs narrow it).
    kinds: Vec<Fault>,
    // A std Mutex: the lock is never held across an await.
    rng: Mutex<ChaCha8Rng>,
}

impl FaultInjector {
    pub fn new(rate: f64, seed: u64) -> Self {
        Self::with_kinds(rate, seed, Fault::ALL.to_vec())
    }

    /// Faults of the given kinds only (an empty list means all).
    pub fn with_kinds(rate: f64, seed: u64, kinds: Vec<Fault>) -> Self {
        Self {
            rate: rate.clamp(0.0, 1.0),
            kinds: if kinds.is_empty() {
                Fault::ALL.to_vec()
            } else {
                kinds
            },
            rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
        }
    }

    /// The fault for the next call, if any. Every call consumes the same amount of
    /// randomness whether it faults or not, so one seed gives one sequence.
    pub fn draw(&self) -> Option<Fault> {
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let roll: f64 = rng.random();
        let kind = rng.random_range(0..self.kinds.len());
        (roll < self.rate).then(|| self.kinds[kind])
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
    fn the_rate_is_roughly_honoured() {
        let faulted = sequence(0.25, 9).iter().filter(|f| f.is_some()).count();
        assert!((20..=80).contains(&faulted), "{faulted} of 200");
    }
}
