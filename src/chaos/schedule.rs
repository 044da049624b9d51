//! The fault schedule: which faults, when, against which worker, for how long. Pure and
//! seeded: the same seed and options give the same schedule. Every selected kind is
//! injected at least once; the rest are drawn at random; times are uniform over the
//! fault window.

use super::options::FaultKind;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::time::Duration;

/// One fault to inject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedFault {
    /// Offset from the start of the run.
    #[serde(serialize_with = "secs")]
    pub at: Duration,
    pub kind: FaultKind,
    /// The worker (kill, term).
    pub target: usize,
    /// How long it lasts: storm and latency length, Redis downtime, pause before a
    /// killed worker is restarted.
    #[serde(serialize_with = "secs")]
    pub hold: Duration,
    /// Latency in milliseconds (latency); fault rate in percent (errors, lost answers).
    pub level: u64,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Error storms hit this share of calls.
pub const STORM_RATE_PERCENT: u64 = 50;
/// Lost-answer spells hit this share of calls.
pub const LOST_RATE_PERCENT: u64 = 30;

/// The schedule for faults of `kinds` between `start` and `end`, one every
/// `mean_gap_secs` on average (at least one of each kind).
pub fn plan(
    seed: u64,
    kinds: &[FaultKind],
    start: Duration,
    end: Duration,
    mean_gap_secs: f64,
    workers: usize,
) -> Vec<PlannedFault> {
    // Mix designs shape the withdrawals; they are not injected.
    let kinds: Vec<FaultKind> = kinds.iter().copied().filter(|k| !k.is_design()).collect();
    if kinds.is_empty() || end <= start {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6661_756c_7473_2121);
    let span = (end - start).as_secs_f64();
    let count = ((span / mean_gap_secs).round() as usize).max(kinds.len());
    let mut chosen: Vec<FaultKind> = kinds.to_vec();
    while chosen.len() < count {
        chosen.push(kinds[rng.random_range(0..kinds.len())]);
    }
    chosen.shuffle(&mut rng);
    let mut times: Vec<Duration> = (0..count)
        .map(|_| start + Duration::from_secs_f64(rng.random_range(0.0..span)))
        .collect();
    times.sort();
    times
        .into_iter()
        .zip(chosen)
        .map(|(at, kind)| {
            let target = rng.random_range(0..workers.max(1));
            let (hold_ms, level) = match kind {
                FaultKind::Latency => (rng.random_range(3000..=8000), rng.random_range(300..=4000)),
                FaultKind::Errors => (rng.random_range(3000..=8000), STORM_RATE_PERCENT),
                FaultKind::LostAnswers => (rng.random_range(3000..=8000), LOST_RATE_PERCENT),
                FaultKind::RedisRestart => (rng.random_range(500..=3000), 0),
                FaultKind::Kill => (rng.random_range(0..=1000), 0),
                FaultKind::Term
                | FaultKind::CloseConns
                | FaultKind::RedisFlush
                | FaultKind::ForgetKeys
                | FaultKind::Operator
                | FaultKind::WindowClosing
                | FaultKind::AgeLimit
                | FaultKind::StuckUnknown => (0, 0),
            };
            PlannedFault {
                at,
                kind,
                target,
                hold: Duration::from_millis(hold_ms),
                level,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sorted_inside_the_window_and_every_kind_present() {
        let (start, end) = (Duration::from_secs(2), Duration::from_secs(60));
        let a = plan(9, &FaultKind::ALL, start, end, 5.0, 3);
        assert_eq!(a, plan(9, &FaultKind::ALL, start, end, 5.0, 3));
        assert_ne!(a, plan(10, &FaultKind::ALL, start, end, 5.0, 3));
        assert_eq!(a.len(), 12);
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(a
            .iter()
            .all(|f| f.at >= start && f.at < end && f.target < 3));
        for kind in FaultKind::ALL {
            assert_eq!(
                a.iter().any(|f| f.kind == kind),
                !kind.is_design(),
                "{kind}: scheduled iff not a mix design"
            );
        }
    }

    #[test]
    fn short_windows_still_get_each_kind_and_no_kinds_get_nothing() {
        let few = plan(
            1,
            &[FaultKind::Kill, FaultKind::Errors],
            Duration::ZERO,
            Duration::from_secs(3),
            10.0,
            1,
        );
        assert_eq!(few.len(), 2);
        assert!(plan(1, &[], Duration::ZERO, Duration::from_secs(60), 5.0, 3).is_empty());
        let storms = plan(
            2,
            &[FaultKind::Errors],
            Duration::ZERO,
            Duration::from_secs(60),
            5.0,
            3,
        );
        assert!(storms
            .iter()
            .all(|f| f.level == STORM_RATE_PERCENT && f.hold >= Duration::from_secs(3)));
    }

    #[test]
    fn the_schedule_serialises_with_names_and_seconds() {
        let f = PlannedFault {
            at: Duration::from_millis(1500),
            kind: FaultKind::RedisRestart,
            target: 0,
            hold: Duration::from_millis(700),
            level: 0,
        };
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            serde_json::json!({"at": 1.5, "kind": "redis_restart", "target": 0, "hold": 0.7, "level": 0})
        );
    }
}
