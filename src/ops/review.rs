//! Operators' decisions on withdrawals in review: after checking the channel by hand, an
//! operator records what happened to a leg. The decision goes through the same
//! compare-and-set as the worker's own transitions, never contradicts a final state the
//! worker already knows, and when it completes the withdrawal the terminal event is
//! stored and published exactly as the worker would.

use crate::broker::Publisher;
use crate::config::Settings;
use crate::domain::command::parse_command;
use crate::domain::{LegId, Withdrawal, WithdrawalId};
use crate::events::{self, Event};
use crate::store::{LeaseOwner, LegRecord, LegState, Store, Transition, WithdrawalRecord};
use chrono::{DateTime, Utc};
use lapin::BasicProperties;

/// What the operator found at the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Paid,
    Failed,
}

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no record of withdrawal {0} (never received, or expired)")]
    Unknown(String),
    #[error("withdrawal {0} has no leg {1}")]
    NoSuchLeg(String, String),
    #[error(
        "leg {leg} is already {state:?}; the decision {verdict:?} contradicts it and is refused"
    )]
    Contradicts {
        leg: String,
        state: LegState,
        verdict: Verdict,
    },
    #[error("the leg changed while deciding; look again")]
    Changed,
    #[error("the stored command is unreadable: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Publish(#[from] crate::broker::PublishError),
}

/// The leg record after the operator's verdict; `Ok(None)` when it already says so.
pub fn decide(
    current: Option<&LegRecord>,
    fallback_channel: crate::domain::ChannelKind,
    verdict: Verdict,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Option<LegRecord>, LegState> {
    let (state, code) = match verdict {
        Verdict::Paid => (LegState::Succeeded, None),
        Verdict::Failed => (LegState::Failed, Some("operator_decision".to_owned())),
    };
    match current.map(|c| c.state) {
        Some(s) if s == state => return Ok(None),
        Some(s @ (LegState::Succeeded | LegState::Failed)) => return Err(s),
        _ => {}
    }
    let mut next = current
        .cloned()
        .unwrap_or_else(|| LegRecord::refused(fallback_channel, "operator_decision", reason, now));
    next.state = state;
    next.code = code;
    next.reason = Some(format!("operator: {reason}"));
    next.reference = (verdict == Verdict::Paid).then(|| "operator-confirmed".to_owned());
    next.updated_at = now;
    Ok(Some(next))
}

/// A withdrawal in review as ops see it.
pub struct InReview {
    pub id: String,
    pub since: i64,
    pub withdrawal: Option<Withdrawal>,
    pub record: Option<WithdrawalRecord>,
}

pub async fn list(settings: &Settings, store: &Store) -> Result<Vec<InReview>, ReviewError> {
    let mut out = Vec::new();
    for (id, since) in store.reviews().await? {
        let record = match WithdrawalId::parse(&id) {
            Some(wid) => store.load(&wid).await?,
            None => None,
        };
        let withdrawal = record
            .as_ref()
            .and_then(|r| r.command.as_ref())
            .and_then(|c| parse_command(c.as_bytes(), &settings.rules.currencies).ok());
        out.push(InReview {
            id,
            since,
            withdrawal,
            record,
        });
    }
    Ok(out)
}

/// Records the operator's verdict on one leg; publishes the terminal event if that
/// completes the withdrawal. Returns the event published, if any.
pub async fn resolve(
    settings: &Settings,
    store: &Store,
    publisher: &Publisher,
    id: &WithdrawalId,
    leg_id: &LegId,
    verdict: Verdict,
    reason: &str,
) -> Result<Option<Event>, ReviewError> {
    let record = store
        .load(id)
        .await?
        .ok_or_else(|| ReviewError::Unknown(id.to_string()))?;
    let w = parse_command(
        record
            .command
            .as_deref()
            .ok_or_else(|| ReviewError::Unreadable("no command stored".into()))?
            .as_bytes(),
        &settings.rules.currencies,
    )
    .map_err(|e| ReviewError::Unreadable(e.to_string()))?;
    let leg = w
        .legs
        .iter()
        .find(|l| &l.id == leg_id)
        .ok_or_else(|| ReviewError::NoSuchLeg(id.to_string(), leg_id.to_string()))?;
    let current = record.legs.get(leg_id.as_str());
    let now = Utc::now();
    let next =
        decide(current.map(|(_, r)| r), leg.channel, verdict, reason, now).map_err(|state| {
            ReviewError::Contradicts {
                leg: leg_id.to_string(),
                state,
                verdict,
            }
        })?;
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    tracing::warn!(withdrawal_id = %id, leg_id = %leg_id, ?verdict, %reason, %operator, "operator decision recorded");
    let owner = LeaseOwner::new();
    let mut legs: Vec<LegRecord> = Vec::new();
    for l in &w.legs {
        let r = if &l.id == leg_id {
            next.clone().or_else(|| current.map(|(_, r)| r.clone()))
        } else {
            record.legs.get(l.id.as_str()).map(|(_, r)| r.clone())
        };
        match r {
            Some(r) => legs.push(r),
            None => legs.push(LegRecord::refused(
                l.channel,
                "not_started",
                "leg never started",
                now,
            )),
        }
    }
    let all_final = legs.iter().all(|r| r.state.is_final())
        && w.legs
            .iter()
            .all(|l| record.legs.contains_key(l.id.as_str()) || &l.id == leg_id);
    let outcome = all_final.then(|| {
        let view: Vec<_> = w.legs.iter().zip(legs.iter()).collect();
        events::terminal(&w, &view, now).body
    });
    if let Some(next) = &next {
        let expected = current.map(|(raw, _)| raw.as_str()).unwrap_or("");
        match store
            .transition(id, leg_id, expected, next, outcome.as_deref(), &owner)
            .await?
            .0
        {
            Transition::Applied { .. } => {}
            Transition::Stale { .. } | Transition::Lost => return Err(ReviewError::Changed),
        }
    }
    let stored = match outcome {
        Some(o) => store.finish(id, &o, &owner).await?,
        None => None,
    };
    let Some(stored) = stored else {
        return Ok(None);
    };
    let event = Event::from_stored(&stored)
        .ok_or_else(|| ReviewError::Unreadable("stored outcome".into()))?;
    publisher
        .publish(
            &settings.topology.events_exchange,
            &event.kind,
            event.body.as_bytes(),
            BasicProperties::default()
                .with_content_type(events::CONTENT_TYPE.into())
                .with_delivery_mode(2)
                .with_message_id(event.id.as_str().into()),
        )
        .await?;
    store.unlist_review(id).await?;
    Ok(Some(event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChannelKind;
    use crate::routing::RouteTaken;

    fn rec(state: LegState) -> LegRecord {
        let mut r = LegRecord::sending(None, RouteTaken::Original, ChannelKind::Alipay, Utc::now());
        r.state = state;
        r
    }

    #[test]
    fn a_decision_never_contradicts_a_final_state() {
        let now = Utc::now();
        assert_eq!(
            decide(
                Some(&rec(LegState::Succeeded)),
                ChannelKind::Alipay,
                Verdict::Failed,
                "x",
                now
            ),
            Err(LegState::Succeeded)
        );
        assert_eq!(
            decide(
                Some(&rec(LegState::Failed)),
                ChannelKind::Alipay,
                Verdict::Paid,
                "x",
                now
            ),
            Err(LegState::Failed)
        );
        assert_eq!(
            decide(
                Some(&rec(LegState::Succeeded)),
                ChannelKind::Alipay,
                Verdict::Paid,
                "x",
                now
            ),
            Ok(None)
        );
    }

    #[test]
    fn unresolved_legs_take_the_verdict_with_the_reason() {
        let now = Utc::now();
        for state in [
            LegState::Unknown,
            LegState::Review,
            LegState::Pending,
            LegState::Sending,
        ] {
            let paid = decide(
                Some(&rec(state)),
                ChannelKind::Alipay,
                Verdict::Paid,
                "seen in the merchant portal",
                now,
            )
            .unwrap()
            .unwrap();
            assert_eq!(paid.state, LegState::Succeeded);
            assert!(paid.reason.unwrap().contains("merchant portal"));
            let failed = decide(
                Some(&rec(state)),
                ChannelKind::Alipay,
                Verdict::Failed,
                "refund closed",
                now,
            )
            .unwrap()
            .unwrap();
            assert_eq!(failed.state, LegState::Failed);
            assert_eq!(failed.code.as_deref(), Some("operator_decision"));
        }
    }
}
