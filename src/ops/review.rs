//! Operators' decisions on withdrawals in review: after checking the channel by hand, an
//! operator records what happened to a leg. The decision goes through the same
//! compare-and-set as the worker's own transitions, never contradicts a final state the
//! worker already knows, and when it completes the withdrawal the terminal event is
//! stored and published exactly as the worker would.

use crate::broker::Publisher;
use crate::channels::{ChannelOutcome, Channels};
use crate::config::Settings;
use crate::domain::command::parse_command;
use crate::domain::{LegId, Withdrawal, WithdrawalId};
use crate::events::{self, Event, ReviewKind};
use crate::store::{LeaseOwner, LegRecord, LegState, Store, Transition, WithdrawalRecord};
use crate::worker::probe::{probe, Probe};
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
    #[error("a worker is working on this withdrawal right now; try again in a moment")]
    Busy,
    #[error("refused: {0}")]
    Refused(String),
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

/// Why a verdict is allowed on a leg in this state, or why not (checked before the
/// channel is asked). `in_review`: the withdrawal has a review open; `unknown_past_cap`:
/// its outcome-unknown review was raised.
pub fn may_decide(
    current: Option<&LegRecord>,
    verdict: Verdict,
    in_review: bool,
    unknown_past_cap: bool,
) -> Result<(), String> {
    if cfg!(feature = "broken-unguarded-resolve") {
        return Ok(()); // the old behaviour, for the chaos suite's own tests
    }
    if !in_review {
        return Err("the withdrawal is not in review: the worker is still settling it".into());
    }
    match current.map(|c| c.state) {
        None if verdict == Verdict::Paid => Err(
            "the leg was never sent: it cannot have been paid (resolve it as failed to release it)"
                .into(),
        ),
        None | Some(LegState::Review) => Ok(()),
        Some(LegState::Unknown) if unknown_past_cap => Ok(()),
        Some(LegState::Unknown) => Err(
            "the leg's outcome is unknown but still being checked (below its cap): wait for the worker".into(),
        ),
        Some(LegState::Sending) => {
            Err("the leg's request may be in flight right now: wait for its answer".into())
        }
        Some(LegState::Pending) => Err(
            "the channel accepted the leg and it is settling: the worker will learn the outcome"
                .into(),
        ),
        // Final: `decide` says whether the verdict agrees.
        Some(LegState::Succeeded | LegState::Failed) => Ok(()),
    }
}

/// Whether the channels' own answer for the leg's key allows the verdict.
pub fn channel_allows(probe: &Probe, verdict: Verdict) -> Result<(), String> {
    if cfg!(feature = "broken-unguarded-resolve") {
        return Ok(());
    }
    match (probe, verdict) {
        (Probe::Found { answer, .. }, _) => match (answer, verdict) {
            (ChannelOutcome::Succeeded { .. }, Verdict::Paid)
            | (ChannelOutcome::Failed { .. }, Verdict::Failed)
            | (ChannelOutcome::Review { .. }, _) => Ok(()),
            (ChannelOutcome::Succeeded { reference }, Verdict::Failed) => Err(format!(
                "the channel says it paid this leg (reference {reference}): it cannot be released"
            )),
            (ChannelOutcome::Failed { code, .. }, Verdict::Paid) => Err(format!(
                "the channel says it refused this leg ({code}): it was not paid"
            )),
            (ChannelOutcome::Pending, _) => Err(
                "the channel accepted the leg and is still settling it: wait for its outcome"
                    .into(),
            ),
            (other, _) => Err(format!("the channel's answer is not final: {other:?}")),
        },
        (Probe::NotFound, Verdict::Paid) => {
            Err("no channel the leg could have gone through has a record of its key".into())
        }
        (Probe::NotFound, Verdict::Failed) => Ok(()),
        (Probe::Inconclusive(answer), _) => Err(format!(
            "the channel could not be asked ({answer:?}): try again when it answers"
        )),
    }
}

/// Records the operator's verdict on one leg; publishes the terminal event if that
/// completes the withdrawal. Returns the event published, if any.
///
/// An operator cannot contradict the machine: the decision takes the withdrawal's lease
/// (no worker is working on it meanwhile), needs the withdrawal to be in review and the
/// leg to be in `review` (or `unknown` past its cap, or never sent), and asks every
/// channel the leg could have gone through first; a verdict the channel contradicts, or
/// `paid` for a leg no channel knows, is refused with the reason.
#[allow(clippy::too_many_arguments)]
pub async fn resolve(
    settings: &Settings,
    store: &Store,
    publisher: &Publisher,
    channels: &Channels,
    id: &WithdrawalId,
    leg_id: &LegId,
    verdict: Verdict,
    reason: &str,
) -> Result<Option<Event>, ReviewError> {
    let owner = LeaseOwner::new();
    if !cfg!(feature = "broken-unguarded-resolve") && !store.take_lease(id, &owner).await? {
        return Err(ReviewError::Busy);
    }
    let decided = decide_under_lease(
        settings, store, publisher, channels, id, leg_id, verdict, reason, &owner,
    )
    .await;
    // Storing the outcome gave the lease back; every other ending gives it back here.
    if let Err(e) = store.release(id, &owner).await {
        tracing::warn!(error = %e, "could not release the lease; it expires by itself");
    }
    decided
}

#[allow(clippy::too_many_arguments)]
async fn decide_under_lease(
    settings: &Settings,
    store: &Store,
    publisher: &Publisher,
    channels: &Channels,
    id: &WithdrawalId,
    leg_id: &LegId,
    verdict: Verdict,
    reason: &str,
    owner: &LeaseOwner,
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
    let in_review =
        record.outcome.is_some() || record.in_review || !record.reviews_raised.is_empty();
    let unknown_past_cap = record
        .reviews_raised
        .iter()
        .any(|k| k == ReviewKind::OutcomeUnknown.as_str());
    may_decide(
        current.map(|(_, r)| r),
        verdict,
        in_review,
        unknown_past_cap,
    )
    .map_err(ReviewError::Refused)?;
    let next =
        decide(current.map(|(_, r)| r), leg.channel, verdict, reason, now).map_err(|state| {
            ReviewError::Contradicts {
                leg: leg_id.to_string(),
                state,
                verdict,
            }
        })?;
    let Some(mut next) = next else {
        return Ok(None); // the record already says so
    };
    let planned = next
        .route
        .unwrap_or_else(|| crate::routing::possible_routes(leg)[0]);
    let asked = probe(channels, &w, leg, planned).await;
    tracing::info!(withdrawal_id = %id, leg_id = %leg_id, answer = ?asked, "asked the channels before the operator's decision");
    channel_allows(&asked, verdict).map_err(ReviewError::Refused)?;
    if let Probe::Found {
        route,
        channel,
        answer,
    } = &asked
    {
        next.route = Some(*route);
        next.channel = *channel;
        if let ChannelOutcome::Succeeded { reference } = answer {
            next.reference = Some(reference.clone());
        }
    }
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    tracing::warn!(withdrawal_id = %id, leg_id = %leg_id, ?verdict, %reason, %operator, "operator decision recorded");
    let mut legs: Vec<LegRecord> = Vec::new();
    for l in &w.legs {
        let r = if &l.id == leg_id {
            Some(next.clone())
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
    let expected = current.map(|(raw, _)| raw.as_str()).unwrap_or("");
    match store
        .transition(id, leg_id, expected, &next, outcome.as_deref(), owner)
        .await?
        .0
    {
        Transition::Applied { .. } => {}
        Transition::Stale { .. } | Transition::Lost => return Err(ReviewError::Changed),
    }
    let stored = match outcome {
        Some(o) => store.finish(id, &o, owner).await?,
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

    /// Which leg states an operator may decide on (issue 14, case 3).
    #[test]
    fn only_legs_that_need_a_person_take_a_verdict() {
        use LegState::*;
        for verdict in [Verdict::Paid, Verdict::Failed] {
            // Not in review: the worker is still on it.
            assert!(may_decide(Some(&rec(Review)), verdict, false, false).is_err());
            assert!(may_decide(Some(&rec(Review)), verdict, true, false).is_ok());
            assert!(may_decide(Some(&rec(Sending)), verdict, true, true).is_err());
            assert!(may_decide(Some(&rec(Pending)), verdict, true, true).is_err());
            assert!(may_decide(Some(&rec(Unknown)), verdict, true, false).is_err());
            assert!(may_decide(Some(&rec(Unknown)), verdict, true, true).is_ok());
        }
        assert!(may_decide(None, Verdict::Paid, true, true)
            .unwrap_err()
            .contains("never sent"));
        assert!(may_decide(None, Verdict::Failed, true, false).is_ok());
    }

    /// A verdict the channel contradicts is refused; one it cannot speak to is too.
    #[test]
    fn the_channel_judges_the_verdict() {
        let found = |answer| Probe::Found {
            route: RouteTaken::Designated,
            channel: ChannelKind::Alipay,
            answer,
        };
        let paid = found(ChannelOutcome::Succeeded {
            reference: "T1".into(),
        });
        let refused = found(ChannelOutcome::Failed {
            code: "PAYEE_NOT_EXIST".into(),
            reason: "r".into(),
        });
        assert!(channel_allows(&paid, Verdict::Paid).is_ok());
        assert!(channel_allows(&paid, Verdict::Failed)
            .unwrap_err()
            .contains("T1"));
        assert!(channel_allows(&refused, Verdict::Failed).is_ok());
        assert!(channel_allows(&refused, Verdict::Paid).is_err());
        for v in [Verdict::Paid, Verdict::Failed] {
            assert!(channel_allows(&found(ChannelOutcome::Pending), v).is_err());
            assert!(channel_allows(
                &Probe::Inconclusive(ChannelOutcome::Unknown { reason: "x".into() }),
                v
            )
            .is_err());
            assert!(
                channel_allows(&found(ChannelOutcome::Review { reason: "x".into() }), v).is_ok()
            );
        }
        assert!(channel_allows(&Probe::NotFound, Verdict::Paid).is_err());
        assert!(channel_allows(&Probe::NotFound, Verdict::Failed).is_ok());
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
