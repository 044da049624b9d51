//! When to look at an unsettled withdrawal again, and when it has taken too long.
//! Pure: settings, the legs, how often the command was deferred, and the time.
//!
//! - Pending legs (the channel accepted, settlement is asynchronous) follow their
//!   channel's `poll_schedule_ms`; a pending leg older than the channel's
//!   `expected_settlement_secs` plus `retry.settlement_margin_secs` raises review.
//! - Legs whose outcome is unknown back off through the delay tiers; past
//!   `retry.max_deferrals` checks they raise review.
//! - Either way polling goes on: review never stops the worker from finding out.

use crate::config::Settings;
use crate::domain::Leg;
use crate::events::ReviewKind;
use crate::store::{LegRecord, LegState};
use chrono::{DateTime, Utc};

#[derive(Debug, PartialEq, Eq)]
pub struct PollPlan {
    /// The wait to ask for; `None` means back off by the deferral count.
    pub delay_ms: Option<u64>,
    pub review: Option<(ReviewKind, String)>,
}

pub fn plan(
    s: &Settings,
    legs: &[(&Leg, &LegRecord)],
    deferrals: u32,
    now: DateTime<Utc>,
) -> PollPlan {
    let open: Vec<&LegRecord> = legs
        .iter()
        .map(|(_, r)| *r)
        .filter(|r| !r.state.is_settled())
        .collect();
    let all_pending = !open.is_empty() && open.iter().all(|r| r.state == LegState::Pending);
    let delay_ms = all_pending.then(|| {
        open.iter()
            .map(|r| {
                let schedule = &s.channels.settlement(r.channel).poll_schedule_ms;
                schedule[(deferrals as usize).min(schedule.len() - 1)]
            })
            .min()
            .expect("open is not empty")
    });

    let margin = chrono::Duration::seconds(s.retry.settlement_margin_secs as i64);
    let overdue = open.iter().find(|r| {
        let expected = chrono::Duration::seconds(
            s.channels.settlement(r.channel).expected_settlement_secs as i64,
        );
        r.state == LegState::Pending
            && r.first_sent_at
                .is_some_and(|sent| now - sent > expected + margin)
    });
    let review = if let Some(r) = overdue {
        Some((
            ReviewKind::SettlementOverdue,
            format!(
                "a {} payout accepted at {} has not settled in its expected time; funds stay frozen while polling continues",
                r.channel,
                r.first_sent_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ),
        ))
    } else if deferrals + 1 >= s.retry.max_deferrals && !all_pending {
        Some((
            ReviewKind::OutcomeUnknown,
            format!(
                "outcome still unknown after {} checks; funds stay frozen while checking continues",
                deferrals + 1
            ),
        ))
    } else {
        None
    };
    PollPlan { delay_ms, review }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChannelKind;
    use crate::routing::RouteTaken;

    fn leg() -> Leg {
        let body = serde_json::json!({"type":"withdrawal.approved","version":1,"withdrawal_id":"wd-p","account_id":"a",
            "verified_name":"Zhang San","currency":"CNY","amount":"1.00","approved_at":"2026-11-20T08:00:00Z",
            "legs":[{"leg_id":"1","amount":"1.00","route":"designated","channel":"bank",
                     "payee":{"kind":"bank_card","name":"Zhang San","account_no":"6222020200112233445","bank_name":"ICBC"}}]});
        crate::domain::command::parse_command(body.to_string().as_bytes(), &["CNY".into()])
            .unwrap()
            .legs
            .remove(0)
    }

    fn record(state: LegState, channel: ChannelKind, sent: DateTime<Utc>) -> LegRecord {
        let mut r = LegRecord::sending(None, RouteTaken::Designated, channel, sent);
        r.state = state;
        r
    }

    #[test]
    fn pending_legs_follow_their_channel_schedule() {
        let s = Settings::defaults();
        let now = Utc::now();
        let l = leg();
        let r = record(LegState::Pending, ChannelKind::Bank, now);
        let p = plan(&s, &[(&l, &r)], 0, now);
        assert_eq!(
            p.delay_ms,
            Some(s.channels.bank.settlement.poll_schedule_ms[0])
        );
        assert_eq!(p.review, None);
        let p = plan(&s, &[(&l, &r)], 99, now);
        assert_eq!(
            p.delay_ms,
            s.channels.bank.settlement.poll_schedule_ms.last().copied()
        );
        assert_eq!(p.review, None, "pending is not unknown: no review by count");
    }

    #[test]
    fn overdue_settlement_raises_review_one_second_past_the_margin() {
        let s = Settings::defaults();
        let l = leg();
        let sent = Utc::now();
        let limit = chrono::Duration::seconds(
            (s.channels.bank.settlement.expected_settlement_secs + s.retry.settlement_margin_secs)
                as i64,
        );
        let r = record(LegState::Pending, ChannelKind::Bank, sent);
        assert_eq!(plan(&s, &[(&l, &r)], 3, sent + limit).review, None);
        let p = plan(
            &s,
            &[(&l, &r)],
            3,
            sent + limit + chrono::Duration::seconds(1),
        );
        assert_eq!(
            p.review.map(|(k, _)| k),
            Some(ReviewKind::SettlementOverdue)
        );
        assert!(p.delay_ms.is_some(), "polling continues");
    }

    #[test]
    fn unknown_outcomes_back_off_and_review_after_the_budget() {
        let s = Settings::defaults();
        let l = leg();
        let now = Utc::now();
        let r = record(LegState::Unknown, ChannelKind::Alipay, now);
        let p = plan(&s, &[(&l, &r)], 0, now);
        assert_eq!(
            p,
            PollPlan {
                delay_ms: None,
                review: None
            }
        );
        let p = plan(&s, &[(&l, &r)], s.retry.max_deferrals - 1, now);
        assert_eq!(p.review.map(|(k, _)| k), Some(ReviewKind::OutcomeUnknown));
    }
}
