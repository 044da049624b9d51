//! Containment limits: what a leaked publishing key can make the worker pay.
//!
//! A command past any limit is not paid: it is held with `withdrawal.review_required`
//! (review kind `limit`, the limit named in `reason` and `limit`), its funds stay
//! frozen, and a person decides (`review resolve`). Checked on a withdrawal's first
//! claim only, before any leg is sent:
//! - per command ([`check_command`], pure): `approved_at` no further ahead of the clock
//!   than the allowed skew (a future approval would otherwise dodge the age limit for as
//!   long as it lies), each leg's amount, the withdrawal's amount, and the age of
//!   `approved_at` (which also stops an authentic command replayed after its idempotency
//!   record expired from Redis);
//! - per account and UTC day ([`crate::store::Store::reserve_daily`], one Lua script on
//!   the account's own keys): the amount and the number of withdrawals, counted against
//!   the day the withdrawal is first claimed, once per withdrawal id however often (and
//!   on whichever day) it is delivered again: the script looks for the id on every day
//!   since its approval (less the allowed skew: it may have been counted while its
//!   approval was still ahead of the clock), which `max_age_secs` bounds.

use crate::config::LimitsSettings;
use crate::domain::command::ahead_beyond_skew;
use crate::domain::{Withdrawal, WithdrawalId};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// A limit a command goes past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breach {
    /// The setting's name under `[limits]`.
    pub limit: &'static str,
    /// For a person: what was asked against what is allowed (no account data).
    pub detail: String,
}

impl Breach {
    pub fn reason(&self) -> String {
        format!(
            "containment limit `{}` exceeded: {}",
            self.limit, self.detail
        )
    }
}

/// The limits one command can be checked against alone.
pub fn check_command(
    w: &Withdrawal,
    limits: &LimitsSettings,
    now: DateTime<Utc>,
) -> Option<Breach> {
    if let Some(ahead) = ahead_beyond_skew(w.approved_at, now, limits.max_clock_skew_secs) {
        return Some(Breach {
            limit: "max_clock_skew_secs",
            detail: format!(
                "approved_at is {ahead}s in the future, at most {}s allowed",
                limits.max_clock_skew_secs
            ),
        });
    }
    let age = now.signed_duration_since(w.approved_at);
    if age.num_seconds() > i64::try_from(limits.max_age_secs).unwrap_or(i64::MAX) {
        return Some(Breach {
            limit: "max_age_secs",
            detail: format!(
                "approved {}s ago, at most {}s allowed",
                age.num_seconds(),
                limits.max_age_secs
            ),
        });
    }
    if let Some(leg) = w
        .legs
        .iter()
        .find(|l| l.amount.decimal() > limits.max_leg_amount)
    {
        return Some(Breach {
            limit: "max_leg_amount",
            detail: format!(
                "leg {} pays {}, at most {} allowed",
                leg.id, leg.amount, limits.max_leg_amount
            ),
        });
    }
    if w.amount.decimal() > limits.max_withdrawal_amount {
        return Some(Breach {
            limit: "max_withdrawal_amount",
            detail: format!(
                "{} asked, at most {} allowed",
                w.amount, limits.max_withdrawal_amount
            ),
        });
    }
    None
}

/// An amount in cents (the Redis counters are integers): amounts have at most two places.
pub fn cents(amount: Decimal) -> i64 {
    (amount * Decimal::ONE_HUNDRED)
        .trunc()
        .try_into()
        .unwrap_or(i64::MAX)
}

/// The UTC day a withdrawal counts against.
pub fn day(now: DateTime<Utc>) -> String {
    now.format("%Y%m%d").to_string()
}

/// The most days `max_age_secs` may span (config validation holds it to this, and
/// `max_clock_skew_secs` to one more day).
pub const MAX_AGE_DAYS: u64 = 30;

/// One withdrawal counted against its account's daily limits (see
/// [`crate::store::Store::reserve_daily`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyReservation<'a> {
    pub account_id: &'a str,
    pub id: &'a WithdrawalId,
    /// Today first (where it is counted), then every earlier day back to the day it was
    /// approved, less the allowed clock skew (where an earlier delivery may have counted
    /// it already: one approved just after midnight may be counted just before).
    pub days: Vec<String>,
    pub cents: i64,
    pub max_cents: i64,
    pub max_count: u32,
    /// How long a day's counters are kept: long enough to still be there for the
    /// latest redelivery the age limit lets through.
    pub ttl_secs: u64,
}

impl<'a> DailyReservation<'a> {
    pub fn new(w: &'a Withdrawal, limits: &LimitsSettings, now: DateTime<Utc>) -> Self {
        let skew = chrono::Duration::seconds(
            i64::try_from(limits.max_clock_skew_secs).unwrap_or(i64::MAX),
        );
        let oldest = w
            .approved_at
            .checked_sub_signed(skew)
            .unwrap_or(w.approved_at)
            .min(now);
        let days = (0..=MAX_AGE_DAYS + 1)
            .map(|back| now - chrono::Duration::days(back as i64))
            .take_while(|d| d.date_naive() >= oldest.date_naive())
            .map(day)
            .collect();
        Self {
            account_id: &w.account_id,
            id: &w.id,
            days,
            cents: w.amount.minor_units(),
            max_cents: cents(limits.account_daily_amount),
            max_count: limits.account_daily_count,
            ttl_secs: limits.max_age_secs + 2 * 86_400,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::parse_command;
    use chrono::Duration;
    use proptest::prelude::*;

    fn limits() -> LimitsSettings {
        LimitsSettings {
            max_leg_amount: Decimal::new(500_000, 2),
            max_withdrawal_amount: Decimal::new(800_000, 2),
            account_daily_amount: Decimal::new(1_000_000, 2),
            account_daily_count: 5,
            max_age_secs: 3600,
            max_clock_skew_secs: 300,
        }
    }

    fn command(legs: &[&str], approved_at: DateTime<Utc>) -> Withdrawal {
        let total: Decimal = legs.iter().map(|a| a.parse::<Decimal>().unwrap()).sum();
        let legs: Vec<serde_json::Value> = legs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                serde_json::json!({"leg_id": (i + 1).to_string(), "amount": a,
                "route": "designated", "channel": "alipay",
                "payee": {"kind": "alipay", "name": "Zhang San", "account_no": "zs@example.com"}})
            })
            .collect();
        let body = serde_json::json!({"type": "withdrawal.approved", "version": 1,
            "withdrawal_id": "wd-1", "account_id": "acct-1", "verified_name": "Zhang San",
            "currency": "CNY", "amount": total.to_string(), "approved_at": approved_at.to_rfc3339(),
            "legs": legs});
        parse_command(body.to_string().as_bytes(), &["CNY".to_owned()]).unwrap()
    }

    #[test]
    fn each_limit_is_named_when_passed() {
        let now = Utc::now();
        let l = limits();
        assert_eq!(check_command(&command(&["100.00"], now), &l, now), None);
        let old = command(&["100.00"], now - Duration::seconds(3601));
        assert_eq!(check_command(&old, &l, now).unwrap().limit, "max_age_secs");
        let edge = command(&["100.00"], now - Duration::seconds(3600));
        assert_eq!(check_command(&edge, &l, now), None);
        let ahead = command(&["100.00"], now + Duration::seconds(301));
        let b = check_command(&ahead, &l, now).unwrap();
        assert_eq!(b.limit, "max_clock_skew_secs");
        assert!(b.reason().contains("301s in the future"), "{}", b.reason());
        let edge = command(&["100.00"], now + Duration::seconds(300));
        assert_eq!(check_command(&edge, &l, now), None);
        let far: DateTime<Utc> = "9999-12-31T23:59:59Z".parse().unwrap();
        assert_eq!(
            check_command(&command(&["100.00"], far), &l, now)
                .unwrap()
                .limit,
            "max_clock_skew_secs"
        );
        let big_leg = command(&["5000.01"], now);
        assert_eq!(
            check_command(&big_leg, &l, now).unwrap().limit,
            "max_leg_amount"
        );
        let big = command(&["5000.00", "3000.01"], now);
        let b = check_command(&big, &l, now).unwrap();
        assert_eq!(b.limit, "max_withdrawal_amount");
        assert!(b.reason().contains("8000.01"), "{}", b.reason());
        assert_eq!(
            check_command(&command(&["5000.00", "3000.00"], now), &l, now),
            None
        );
    }

    #[test]
    fn days_are_utc_calendar_days() {
        let t: DateTime<Utc> = "2026-11-22T23:59:59Z".parse().unwrap();
        assert_eq!(day(t), "20261122");
        assert_eq!(day(t + Duration::seconds(1)), "20261123");
    }

    #[test]
    fn a_reservation_looks_back_to_the_approval_day() {
        let now: DateTime<Utc> = "2026-11-22T00:10:00Z".parse().unwrap();
        let l = limits();
        let today = command(&["1.00"], now - Duration::seconds(60));
        assert_eq!(DailyReservation::new(&today, &l, now).days, ["20261122"]);
        let yesterday = command(&["1.00"], now - Duration::minutes(30));
        let r = DailyReservation::new(&yesterday, &l, now);
        assert_eq!(r.days, ["20261122", "20261121"]);
        assert_eq!((r.cents, r.max_cents, r.max_count), (100, 1_000_000, 5));
        assert_eq!(r.ttl_secs, 3600 + 2 * 86_400);
        // Approved "in the future" (a skewed clock): counted today only.
        let ahead = command(&["1.00"], now + Duration::days(2));
        assert_eq!(DailyReservation::new(&ahead, &l, now).days, ["20261122"]);
        // Approved at 00:02 within the skew, counted at 23:59 the day before: a
        // redelivery after midnight still finds it there.
        let approved: DateTime<Utc> = "2026-11-23T00:02:00Z".parse().unwrap();
        let early = command(&["1.00"], approved);
        let first = DailyReservation::new(&early, &l, approved - Duration::minutes(3));
        assert_eq!(first.days, ["20261122"]);
        let again = DailyReservation::new(&early, &l, approved + Duration::minutes(1));
        assert_eq!(again.days, ["20261123", "20261122"]);
        // Even at 9999-12-31 the window stays today only.
        let far = command(&["1.00"], "9999-12-31T23:59:59Z".parse().unwrap());
        assert_eq!(DailyReservation::new(&far, &l, now).days, ["20261122"]);
    }

    proptest! {
        /// Today first, one entry per UTC day back to the approval day (never more
        /// than the age limit allows), each day once.
        #[test]
        fn reservation_days_cover_the_age_window(
            now_secs in 0i64..4_000_000_000,
            age in 0i64..=(MAX_AGE_DAYS as i64 * 86_400),
        ) {
            let now = DateTime::<Utc>::from_timestamp(now_secs, 0).unwrap();
            let w = command(&["1.00"], now - Duration::seconds(age));
            let r = DailyReservation::new(&w, &limits(), now);
            let oldest = (w.approved_at - Duration::seconds(300)).min(now);
            prop_assert_eq!(&r.days[0], &day(now));
            prop_assert_eq!(r.days.last().unwrap(), &day(oldest));
            let span = (now.date_naive() - oldest.date_naive()).num_days();
            prop_assert_eq!(r.days.len() as i64, span + 1);
            prop_assert!(r.days.len() as u64 <= MAX_AGE_DAYS + 2);
        }

        #[test]
        fn cents_are_exact_for_contract_amounts(c in 1i64..=999_999_999_999_999) {
            prop_assert_eq!(cents(Decimal::new(c, 2)), c);
        }

        /// A command under every limit passes; one cent over the leg limit never does.
        #[test]
        fn the_leg_limit_is_exact(c in 1i64..=1_000_000) {
            let now = Utc::now();
            let amount = Decimal::new(c, 2);
            let w = command(&[&amount.to_string()], now);
            let breach = check_command(&w, &limits(), now);
            prop_assert_eq!(breach.is_some(), amount > limits().max_leg_amount);
        }
    }
}
