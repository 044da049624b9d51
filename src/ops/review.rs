//! Operators' decisions on withdrawals in review: after checking the channel by hand, an
//! operator records what happened to a leg. The decision goes through the same
//! compare-and-set as the worker's own transitions, never contradicts a final state the
//! worker already knows, and when it completes the withdrawal the terminal event is
//! stored and published exactly as the worker would.

use crate::broker::Publisher;
use crate::channels::{ChannelOutcome, Channels};
use crate::config::Settings;
use crate::domain::command::parse_command;
use crate::domain::{ChannelKind, LegId, Withdrawal, WithdrawalId};
use crate::events::{self, Event, ReviewKind};
use crate::routing::RouteTaken;
use crate::store::{
    LeaseOwner, LeaseRenewal, LegRecord, LegState, Store, Transition, WithdrawalRecord,
};
use crate::worker::probe::{ask_every_route, combine, Probe};
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

/// Whether a verdict may be given on a leg in this state (checked before the channel
/// is asked). `in_review`: the withdrawal has a review open (or its outcome, which
/// `decide` then holds the verdict to); `unknown_past_cap`: its outcome-unknown review
/// was raised; `held_by_limit`: a containment limit held it before anything was sent.
pub fn may_decide(
    current: Option<&LegRecord>,
    in_review: bool,
    unknown_past_cap: bool,
    held_by_limit: bool,
) -> Result<(), String> {
    if cfg!(feature = "broken-unguarded-resolve") {
        return Ok(()); // the old behaviour, for the chaos suite's own tests
    }
    if !in_review {
        return Err("the withdrawal is not in review: the worker is still settling it".into());
    }
    match current.map(|c| c.state) {
        None if held_by_limit => Ok(()),
        None => Err(
            "the worker could not yet tell whether this leg was sent: wait for it to find out"
                .into(),
        ),
        Some(LegState::Review) => Ok(()),
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

/// Whether the channels' own answers for the leg's key, one per route it could have
/// taken, allow the verdict. `sent`: our record says a request may have left.
///
/// `paid` needs a channel that says it paid. `failed` is refused when any channel says
/// it paid or is settling, or gives an answer that is not a refusal; "not found"
/// everywhere allows it only for a leg never sent (a channel that accepted a payout
/// and then forgot it is not trusted to have forgotten the money). An answer that tells
/// nothing (the channel cannot be asked) allows no verdict.
pub fn channel_allows(
    answers: &[(RouteTaken, ChannelKind, ChannelOutcome)],
    verdict: Verdict,
    sent: bool,
) -> Result<(), String> {
    if cfg!(feature = "broken-unguarded-resolve") {
        return Ok(());
    }
    let on = |c: &ChannelKind, r: &RouteTaken| format!("{c} ({})", r.as_str());
    let mut paid = None;
    let mut refused = None;
    let mut other = None;
    for (route, channel, answer) in answers {
        match answer {
            ChannelOutcome::NotFound => {}
            ChannelOutcome::Unknown { .. } | ChannelOutcome::RetryLater { .. } => {
                return Err(format!(
                    "{} could not be asked ({answer:?}): try again when it answers",
                    on(channel, route)
                ))
            }
            ChannelOutcome::Pending => {
                return Err(format!(
                    "{} accepted the leg and is still settling it: wait for its outcome",
                    on(channel, route)
                ))
            }
            ChannelOutcome::Succeeded { reference } => {
                paid.get_or_insert(format!("{} (reference {reference})", on(channel, route)));
            }
            ChannelOutcome::Failed { code, .. } => {
                refused.get_or_insert(format!("{} ({code})", on(channel, route)));
            }
            ChannelOutcome::Review { reason } => {
                other.get_or_insert(format!("{}: {reason}", on(channel, route)));
            }
        }
    }
    match (verdict, paid, refused, other) {
        (Verdict::Paid, Some(_), _, _) => Ok(()),
        (Verdict::Paid, None, Some(r), _) => Err(format!(
            "{r} says it refused this leg, and no channel says it paid"
        )),
        (Verdict::Paid, None, None, _) => Err(
            "no channel the leg could have gone through says it paid (never sent, or not paid)"
                .into(),
        ),
        (Verdict::Failed, Some(p), _, _) => {
            Err(format!("{p} says it paid this leg: it cannot be released"))
        }
        (Verdict::Failed, None, _, Some(o)) => Err(format!(
            "{o}: not a refusal, so the money may have moved; it cannot be released"
        )),
        (Verdict::Failed, None, Some(_), None) => Ok(()),
        (Verdict::Failed, None, None, None) if !sent => Ok(()),
        (Verdict::Failed, None, None, None) => Err(
            "the leg was sent and no channel has a record of it now: only the channel's own refusal can release it (reconcile against its statement)".into(),
        ),
    }
}

/// Records the operator's verdict on one leg; publishes the terminal event if that
/// completes the withdrawal. Returns the event published, if any.
///
/// An operator cannot contradict the machine: the decision takes the withdrawal's lease
/// (no worker is working on it meanwhile; renewed while the channels are asked), needs
/// the withdrawal to be in review and the leg to need a person ([`may_decide`]), and
/// asks every channel the leg could have gone through first ([`channel_allows`]). A
/// refused verdict says why. Run again after a failure, it finishes what the first run
/// stored (publishes the stored outcome).
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
    let renewal = LeaseRenewal::start(store, id, &owner);
    let decided = decide_under_lease(
        settings, store, publisher, channels, id, leg_id, verdict, reason, &owner,
    )
    .await;
    drop(renewal);
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
    let current = record.legs.get(leg_id.as_str()).map(|(_, r)| r);
    let raised = |kind: ReviewKind| record.reviews_raised.iter().any(|k| k == kind.as_str());
    let in_review =
        record.outcome.is_some() || record.in_review || !record.reviews_raised.is_empty();
    may_decide(
        current,
        in_review,
        raised(ReviewKind::OutcomeUnknown),
        raised(ReviewKind::Limit),
    )
    .map_err(ReviewError::Refused)?;
    let now = Utc::now();
    let next = decide(current, leg.channel, verdict, reason, now).map_err(|state| {
        ReviewError::Contradicts {
            leg: leg_id.to_string(),
            state,
            verdict,
        }
    })?;
    if let Some(mut next) = next {
        let planned = current
            .and_then(|r| r.route)
            .unwrap_or_else(|| crate::routing::possible_routes(leg)[0]);
        let answers = ask_every_route(channels, &w, leg, planned).await;
        tracing::info!(withdrawal_id = %id, leg_id = %leg_id, ?answers, "asked the channels before the operator's decision");
        let sent = current.is_some_and(|r| r.route.is_some());
        channel_allows(&answers, verdict, sent).map_err(ReviewError::Refused)?;
        if let Probe::Found {
            route,
            channel,
            answer,
        } = combine(answers)
        {
            next.route = Some(route);
            next.channel = channel;
            if let ChannelOutcome::Succeeded { reference } = answer {
                next.reference = Some(reference);
            }
        }
        let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        tracing::warn!(withdrawal_id = %id, leg_id = %leg_id, ?verdict, %reason, %operator, "operator decision recorded");
        let expected = record
            .legs
            .get(leg_id.as_str())
            .map(|(raw, _)| raw.as_str())
            .unwrap_or("");
        match store
            .transition(id, leg_id, expected, &next, None, owner)
            .await?
            .0
        {
            Transition::Applied { .. } => {}
            Transition::Stale { .. } | Transition::Lost => return Err(ReviewError::Changed),
        }
    }
    // The outcome follows from the legs as stored now (read again, under the lease):
    // stored once when every leg is final, and published (again, after a failed run).
    let record = store
        .load(id)
        .await?
        .ok_or_else(|| ReviewError::Unknown(id.to_string()))?;
    let stored = match record.outcome {
        Some(stored) => Some(stored),
        None => {
            let legs: Option<Vec<LegRecord>> = w
                .legs
                .iter()
                .map(|l| record.legs.get(l.id.as_str()).map(|(_, r)| r.clone()))
                .collect();
            match legs {
                Some(legs) if legs.iter().all(|r| r.state.is_final()) => {
                    let view: Vec<_> = w.legs.iter().zip(legs.iter()).collect();
                    let outcome = events::terminal(&w, &view, now).body;
                    store.finish(id, &outcome, owner).await?
                }
                _ => None,
            }
        }
    };
    let Some(stored) = stored else {
        return Ok(None);
    };
    let event = Event::from_stored(&stored)
        .ok_or_else(|| ReviewError::Unreadable("stored outcome".into()))?;
    store.unlist_review(id).await?;
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
        // Not in review: the worker is still on it.
        assert!(may_decide(Some(&rec(Review)), false, false, false).is_err());
        assert!(may_decide(Some(&rec(Review)), true, false, false).is_ok());
        assert!(may_decide(Some(&rec(Sending)), true, true, true).is_err());
        assert!(may_decide(Some(&rec(Pending)), true, true, true).is_err());
        assert!(may_decide(Some(&rec(Unknown)), true, false, false).is_err());
        assert!(may_decide(Some(&rec(Unknown)), true, true, false).is_ok());
        // No record: only a leg a limit held (nothing sent) can be decided; otherwise the
        // worker could not tell yet whether it was sent.
        assert!(may_decide(None, true, false, true).is_ok());
        assert!(may_decide(None, true, true, false).is_err());
    }

    fn answer(
        route: RouteTaken,
        outcome: ChannelOutcome,
    ) -> (RouteTaken, ChannelKind, ChannelOutcome) {
        let channel = match route {
            RouteTaken::Fallback => ChannelKind::Bank,
            _ => ChannelKind::Alipay,
        };
        (route, channel, outcome)
    }

    /// A verdict the channels contradict is refused, as is one they cannot speak to.
    #[test]
    fn the_channels_judge_the_verdict() {
        use RouteTaken::*;
        let paid = || ChannelOutcome::Succeeded {
            reference: "T1".into(),
        };
        let refused = || ChannelOutcome::Failed {
            code: "PAYEE_NOT_EXIST".into(),
            reason: "r".into(),
        };
        let nf = || ChannelOutcome::NotFound;
        let allows = |a: Vec<_>, v, sent| channel_allows(&a, v, sent);
        assert!(allows(
            vec![answer(Original, paid()), answer(Fallback, nf())],
            Verdict::Paid,
            true
        )
        .is_ok());
        let err = allows(vec![answer(Original, paid())], Verdict::Failed, true).unwrap_err();
        assert!(err.contains("T1"), "{err}");
        assert!(allows(vec![answer(Original, refused())], Verdict::Failed, true).is_ok());
        assert!(allows(vec![answer(Original, refused())], Verdict::Paid, true).is_err());
        // Known on two routes, one paid: it cannot be released, whatever the other says.
        assert!(allows(
            vec![answer(Original, refused()), answer(Fallback, paid())],
            Verdict::Failed,
            true
        )
        .is_err());
        for v in [Verdict::Paid, Verdict::Failed] {
            assert!(allows(vec![answer(Original, ChannelOutcome::Pending)], v, true).is_err());
            let unknown = ChannelOutcome::Unknown { reason: "x".into() };
            assert!(allows(
                vec![answer(Original, paid()), answer(Fallback, unknown)],
                v,
                true
            )
            .is_err());
        }
        // Not a refusal: may have moved, cannot be released; paid only with a payer.
        let odd = || ChannelOutcome::Review {
            reason: "key reused".into(),
        };
        assert!(allows(vec![answer(Original, odd())], Verdict::Failed, true).is_err());
        // Not found anywhere: never sent may be released, sent may not; nothing is paid.
        let nowhere = || vec![answer(Original, nf()), answer(Fallback, nf())];
        assert!(allows(nowhere(), Verdict::Failed, false).is_ok());
        assert!(allows(nowhere(), Verdict::Failed, true).is_err());
        assert!(allows(nowhere(), Verdict::Paid, false)
            .unwrap_err()
            .contains("never sent"));
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
