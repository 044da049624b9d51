//! The retry policy, in one place.
//!
//! Two levels, so that no delivery is held for long and a killed worker loses nothing:
//! 1. **In process**: a leg whose outcome is unknown (timeout, 5xx, rate limit, system
//!    error, connection refused) is looked at again after an exponential backoff with
//!    jitter (the `backoff` crate), within a short budget. Each look is a query with the
//!    leg's key first; only "not found" leads to a resend, with the same key.
//! 2. **Through the broker**: past the budget the command is deferred to the delay
//!    queues (`Decision::Defer`), with the attempt count in a header; the polling plan
//!    (`polling.rs`) decides the wait and when review is raised.
//!
//! The backoff's clock is tokio's, so tests run the schedule on a paused clock.

use crate::config::RetrySettings;
use backoff::backoff::Backoff;
use backoff::exponential::ExponentialBackoff;
use backoff::Clock;
use std::future::Future;
use std::time::{Duration, Instant};

/// `backoff`'s clock, read from tokio (which tests can pause and advance).
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    initial: Duration,
    max_interval: Duration,
    budget: Duration,
}

impl RetryPolicy {
    pub fn from_settings(s: &RetrySettings) -> Self {
        Self {
            initial: Duration::from_millis(s.initial_backoff_ms),
            max_interval: Duration::from_millis(s.max_backoff_ms),
            budget: Duration::from_millis(s.in_process_budget_ms),
        }
    }

    /// A fresh in-process schedule: exponential ×2 with ±50% jitter, capped per wait,
    /// ending when the budget is spent.
    pub fn schedule(&self) -> ExponentialBackoff<TokioClock> {
        let mut b = ExponentialBackoff {
            current_interval: self.initial,
            initial_interval: self.initial,
            randomization_factor: 0.5,
            multiplier: 2.0,
            max_interval: self.max_interval,
            start_time: TokioClock.now(),
            max_elapsed_time: Some(self.budget),
            clock: TokioClock,
        };
        b.reset();
        b
    }

    /// Runs `step` again, after each wait of the schedule, while `again` says the result
    /// is still open and the budget lasts. Returns the last result.
    pub async fn retry_while<T, E, F, Fut>(
        &self,
        first: T,
        again: impl Fn(&T) -> bool,
        mut step: F,
    ) -> Result<T, E>
    where
        F: FnMut(T) -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut schedule = self.schedule();
        let mut current = first;
        while again(&current) {
            let Some(wait) = schedule.next_backoff() else {
                break;
            };
            tokio::time::sleep(wait).await;
            current = step(current).await?;
        }
        Ok(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn policy() -> RetryPolicy {
        RetryPolicy::from_settings(&Settings::defaults().retry)
    }

    #[tokio::test(start_paused = true)]
    async fn stops_when_the_answer_settles() {
        let start = tokio::time::Instant::now();
        let out: Result<u32, ()> = policy()
            .retry_while(0, |n| *n < 3, |n| async move { Ok(n + 1) })
            .await;
        assert_eq!(out, Ok(3));
        // Three waits of at most 50, 100, 200 ms × 1.5 jitter.
        assert!(
            start.elapsed() <= Duration::from_millis(525),
            "{:?}",
            start.elapsed()
        );
        assert!(start.elapsed() >= Duration::from_millis(25 + 50 + 100));
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_when_the_budget_is_spent() {
        let s = Settings::defaults().retry;
        let start = tokio::time::Instant::now();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let out: Result<bool, ()> = policy()
            .retry_while(
                false,
                |done| !done,
                |_| {
                    attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    async { Ok(false) }
                },
            )
            .await;
        assert_eq!(out, Ok(false));
        let elapsed = start.elapsed();
        let budget = Duration::from_millis(s.in_process_budget_ms);
        // Never more than one capped wait past the budget.
        assert!(
            elapsed >= budget / 2
                && elapsed <= budget + Duration::from_millis(s.max_backoff_ms * 3 / 2),
            "{elapsed:?}"
        );
        let n = attempts.load(std::sync::atomic::Ordering::Relaxed);
        assert!((4..=40).contains(&n), "{n} attempts");
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_ends_the_retries_at_once() {
        let out: Result<u32, &str> = policy()
            .retry_while(0, |_| true, |_| async { Err("redis down") })
            .await;
        assert_eq!(out, Err("redis down"));
    }
}
