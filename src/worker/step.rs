//! The step function: one command in, one [`Decision`] out. Tests drive it directly.
//!
//! Order of work, and why:
//! 1. authenticity before anything is parsed (forged input produces nothing but a dead letter);
//! 2. parse, don't validate: past this point the command cannot hold invalid values;
//! 3. claim the withdrawal id in Redis (a true duplicate resumes, a conflicting one is
//!    refused); a first delivery checks the account's daily limits just before, so that
//!    its claim can record the legs as `sending` (three Redis round trips for a one-leg
//!    withdrawal in all: limits, claim, the leg's answer with the terminal event);
//! 4. a stored terminal outcome is republished as is (the outbox);
//! 5. `withdrawal.processing` is published as the legs start and confirmed before any
//!    leg's answer is stored, so the confirm's wait overlaps the channel calls;
//! 6. legs, concurrently; then the terminal event is stored, published, confirmed;
//! 7. anything unsettled is deferred through the broker, and past the cap goes to review.

use super::legs::{Announced, LegStart, Pass};
use super::probe::{probe, Probe};
use super::{Decision, History, StepError, Worker};
use crate::auth::{KEY_ID_HEADER, SIGNATURE_HEADER};
use crate::broker::headers;
use crate::domain::command::{
    check_clock, named_fields, named_withdrawal, parse_json, parse_value,
};
use crate::domain::{Leg, LegId, RejectCode, Rejection, Withdrawal};
use crate::events::{self, Event, ReviewKind};
use crate::limits::{Breach, DailyReservation};
use crate::ops::METRICS;
use crate::routing::{order_for, Plan, RouteTaken};
use crate::store::{
    Claim, LeaseOwner, LeaseRenewal, LegRecord, LegState, Rejected, WithdrawalRecord,
};
use chrono::Utc;
use futures_util::future::{self, join_all, FutureExt};
use lapin::BasicProperties;
use tracing::Instrument;

impl Worker {
    /// Processes one command and says what to do with its delivery. Never panics on
    /// input; errors from Redis or the broker become a deferral. `history`: what the
    /// delivery's trusted headers and the broker say of its past.
    pub async fn process(
        &self,
        body: &[u8],
        props: &BasicProperties,
        history: &History,
    ) -> Decision {
        match self.try_process(body, props, history).await {
            Ok(decision) => decision,
            Err(e) => {
                if matches!(e, StepError::Store(_) | StepError::StateLost) {
                    METRICS.redis_errors.inc();
                }
                tracing::warn!(error = %e, "step failed; the command will come back later");
                Decision::Defer {
                    reason: e.to_string(),
                    delay_ms: None,
                    counter: headers::ATTEMPT,
                }
            }
        }
    }

    async fn try_process(
        &self,
        body: &[u8],
        props: &BasicProperties,
        history: &History,
    ) -> Result<Decision, StepError> {
        let key_id = headers::text(props, KEY_ID_HEADER);
        let signature = headers::text(props, SIGNATURE_HEADER);
        if !self
            .keys
            .verify(key_id.as_deref(), signature.as_deref(), body)
        {
            let why = match (key_id, signature) {
                (None, _) | (_, None) => {
                    "the command is not signed (x-payout-key-id / x-payout-signature missing)"
                }
                _ => "the signature does not match the body under the named key",
            };
            return Ok(Decision::DeadLetter(Rejection::new(
                RejectCode::SignatureInvalid,
                why,
            )));
        }
        // Authentic, so its size is checked next, before anything of it is parsed whole
        // or stored: an unsigned message is `signature_invalid` whatever it weighs.
        let bounds = &self.settings.amqp;
        let header_bytes = headers::publisher_header_bytes(props);
        let too_large = if body.len() > bounds.max_command_bytes {
            Some(format!(
                "the body is {} bytes, more than amqp.max_command_bytes ({})",
                body.len(),
                bounds.max_command_bytes
            ))
        } else if header_bytes > bounds.max_header_bytes {
            Some(format!(
                "the AMQP headers weigh {header_bytes} bytes, more than amqp.max_header_bytes ({})",
                bounds.max_header_bytes
            ))
        } else {
            None
        };
        if let Some(why) = too_large {
            let named = named_fields(body);
            return self
                .reject(&named, Rejection::new(RejectCode::TooLarge, why))
                .await;
        }
        let value = match parse_json(body) {
            Ok(v) => v,
            // JSON whose objects repeat a key: refused, and its funds released when it
            // names its withdrawal unambiguously (nothing else of it is read).
            Err(why) if why.code == RejectCode::SchemaInvalid => {
                return self.reject(&named_fields(body), why).await;
            }
            Err(why) => return Ok(Decision::DeadLetter(why)),
        };
        let parsed = parse_value(value.clone(), &self.settings.rules.currencies).and_then(|w| {
            check_clock(&w, Utc::now(), self.settings.limits.max_clock_skew_secs).map(|()| w)
        });
        let w = match parsed {
            Ok(w) => w,
            Err(why) => return self.reject(&value, why).await,
        };
        tracing::Span::current().record("withdrawal_id", w.id.as_str());
        self.pay_withdrawal(&w, body, history).await
    }

    /// Steps 3–7 for a parsed, authentic command.
    async fn pay_withdrawal(
        &self,
        w: &Withdrawal,
        body: &[u8],
        history: &History,
    ) -> Result<Decision, StepError> {
        let seen_before = history.seen_before;
        let owner = LeaseOwner::new();
        // A first delivery checks the containment limits before the claim, so that a
        // withdrawal within them is claimed with its legs already recorded as `sending`
        // (one Redis round trip for both). A redelivery's record says how far it got,
        // so it is claimed first and checked only if nothing was recorded yet.
        let early = if seen_before {
            None
        } else {
            Some(self.breached_limit(w).await?)
        };
        let fresh_legs = match early {
            Some(None) => self.sending_records(w, Utc::now()),
            _ => Vec::new(),
        };
        let claimed = self
            .store
            .claim(&w.id, &w.digest, body, &owner, &fresh_legs)
            .await?;
        let record = match claimed {
            Claim::Conflict => {
                return Ok(Decision::DeadLetter(Rejection::new(
                    RejectCode::DuplicateConflict,
                    format!(
                        "withdrawal {} was already received with different content",
                        w.id
                    ),
                )))
            }
            Claim::Busy => {
                // Another worker is on it (a duplicate delivery): look again shortly,
                // without spinning and without dropping the message.
                METRICS.lease_conflicts.inc();
                tracing::info!(withdrawal_id = %w.id, "lease held by another worker; deferring");
                return Ok(Decision::Defer {
                    reason: format!("withdrawal {} is being worked on elsewhere", w.id),
                    delay_ms: None,
                    counter: headers::LEASE_WAITS,
                });
            }
            Claim::Owned(record) => record,
        };
        if let Some(stored) = &record.outcome {
            // Finished before: republish the stored event (no lease was taken).
            if !record.reviews_raised.is_empty() {
                self.store.unlist_review(&w.id).await?;
            }
            self.publish_stored(stored).await?;
            return Ok(Decision::Ack);
        }
        if record
            .reviews_raised
            .iter()
            .any(|k| k == ReviewKind::Limit.as_str())
        {
            // Held by a containment limit: nothing is paid until a person decides.
            tracing::info!(withdrawal_id = %w.id, "held by a containment limit; not paying");
            if let Err(e) = self.store.release(&w.id, &owner).await {
                tracing::warn!(error = %e, "could not release the lease; it expires by itself");
            }
            return Ok(Decision::Ack);
        }
        // We hold the lease: keep it alive while channel calls run, give it back after.
        // Storing the terminal outcome releases it in the same script; every other
        // ending releases it here.
        let _renewal = LeaseRenewal::start(&self.store, &w.id, &owner);
        let worked = self.work(w, &owner, record, history, early).await;
        if !matches!(worked, Ok((_, Released::WithOutcome))) {
            if let Err(e) = self.store.release(&w.id, &owner).await {
                tracing::warn!(error = %e, "could not release the lease; it expires by itself");
            }
        }
        worked.map(|(decision, _)| decision)
    }

    /// Pays the legs of a claimed withdrawal and decides what happens to the delivery.
    /// `early`: the containment limits, if this delivery checked them before the claim.
    async fn work(
        &self,
        w: &Withdrawal,
        owner: &LeaseOwner,
        record: WithdrawalRecord,
        history: &History,
        early: Option<Option<Breach>>,
    ) -> Result<(Decision, Released), StepError> {
        if self.near_delivery_limit(history) {
            // It kept coming back unsettled (requeues after failed re-publishes count
            // towards the broker's limit): tell a person before the broker dead-letters
            // it. The review keeps the record in Redis until it is resolved; the work
            // goes on, and a deferral's re-publish starts the count again.
            let held = as_recorded(w, &record, "not started");
            let view: Vec<(&Leg, &LegRecord)> = w.legs.iter().zip(held.iter()).collect();
            let reason = format!(
                "delivered {} times without being settled, near the work queue's delivery limit of {}; funds stay frozen",
                history.delivery_count + 1,
                self.settings.topology.delivery_limit
            );
            self.raise_review(
                w,
                &record.reviews_raised,
                &view,
                ReviewKind::DeliveryLimit,
                &reason,
            )
            .await?;
        }
        let announce = if record.legs.is_empty() {
            // Nothing recorded yet: the containment limits, then `processing`.
            let breach = match early {
                Some(breach) => breach,
                None => self.breached_limit(w).await?,
            };
            if let Some(breach) = breach {
                // A limit holds a withdrawal only if it provably never reached a channel:
                // its record may be missing because Redis lost it (a redelivery, an exact
                // duplicate), with a leg sent and still settling. Every channel each leg
                // could have gone through is asked first.
                match self.reached_a_channel(w).await {
                    Reached::Never => {}
                    Reached::Yes(probes) => {
                        tracing::warn!(withdrawal_id = %w.id, limit = breach.limit,
                            "past a containment limit, but a channel already has a leg: following it, holding the others");
                        self.hold_unseen_legs(w, owner, &probes, &breach).await?;
                        let record = match self.store.load(&w.id).await? {
                            Some(r) => WithdrawalRecord { fresh: false, ..r },
                            None => return Err(StepError::StateLost),
                        };
                        return self
                            .work_legs(w, owner, &record, history, true, LegStart::SeenBefore)
                            .await;
                    }
                    Reached::CannotTell(why) => {
                        return self.cannot_tell_yet(w, &record, history, &why).await;
                    }
                }
                METRICS.limit_holds.with_label_values(&[breach.limit]).inc();
                let held = as_recorded(w, &record, &breach.reason());
                let view: Vec<(&Leg, &LegRecord)> = w.legs.iter().zip(held.iter()).collect();
                self.raise_review(
                    w,
                    &record.reviews_raised,
                    &view,
                    ReviewKind::Limit,
                    &breach.reason(),
                )
                .await?;
                return Ok((Decision::Ack, Released::No));
            }
            true
        } else {
            // A leg still an unanswered first send: this claim recorded it (the limits
            // passed before), or an earlier pass did and may have stopped before
            // `processing` was confirmed (answers are stored only after it is). So it is
            // published, again if need be: consumers deduplicate by its id.
            record.legs.values().any(|(_, r)| r.is_unanswered_send())
        };
        let start = if history.seen_before {
            LegStart::SeenBefore
        } else {
            LegStart::New
        };
        self.work_legs(w, owner, &record, history, announce, start)
            .await
    }

    /// Pays the legs (each from its record, or from `start` when it has none) and
    /// decides the delivery; `announce`: publish `withdrawal.processing` first.
    async fn work_legs(
        &self,
        w: &Withdrawal,
        owner: &LeaseOwner,
        record: &WithdrawalRecord,
        history: &History,
        announce: bool,
        start: LegStart,
    ) -> Result<(Decision, Released), StepError> {
        // `processing` goes out first and its confirm overlaps the legs' channel calls;
        // each leg waits for it before storing an answer (see `Pass::announced`).
        let processing = announce.then(|| events::processing(w, Utc::now()));
        let announced: Announced = match &processing {
            Some(event) => self
                .publish(event)
                .map(|r| r.map_err(|e| e.to_string()))
                .boxed()
                .shared(),
            None => future::ready(Ok(())).boxed().shared(),
        };
        let pass = Pass {
            w,
            owner,
            announced: announced.clone(),
        };
        let legs = join_all(w.legs.iter().map(|leg| {
            let span = tracing::info_span!("leg", leg_id = %leg.id, channel = %leg.channel);
            let prior = record.legs.get(leg.id.as_str());
            let start = match prior {
                Some(_) if record.fresh => LegStart::Claimed,
                _ => start,
            };
            self.pay_leg(&pass, leg, prior, start).instrument(span)
        }));
        // Polled first, so the publish is on its way before the first request leaves.
        let (confirmed, passes) = future::join(announced, legs).await;
        confirmed.map_err(StepError::ProcessingUnconfirmed)?;
        let mut legs: Vec<(&Leg, LegRecord)> = Vec::with_capacity(w.legs.len());
        let mut stored_outcome = None;
        for (leg, pass) in w.legs.iter().zip(passes) {
            let pass = pass?;
            stored_outcome = stored_outcome.or(pass.outcome);
            legs.push((leg, pass.record));
        }
        let view: Vec<(&Leg, &LegRecord)> = legs.iter().map(|(l, r)| (*l, r)).collect();

        if legs.iter().all(|(_, r)| r.state.is_final()) {
            let stored = match stored_outcome {
                Some(s) => s,
                None => self
                    .store
                    .finish(&w.id, &events::terminal(w, &view, Utc::now()).body, owner)
                    .await?
                    .ok_or(StepError::StateLost)?,
            };
            if !record.reviews_raised.is_empty() {
                // It settled by itself after a review was raised: off the list (its
                // outcome is stored, so it is no longer waiting for anyone).
                self.store.unlist_review(&w.id).await?;
            }
            self.publish_stored(&stored).await?;
            tracing::info!(withdrawal_id = %w.id, "withdrawal complete");
            return Ok((Decision::Ack, Released::WithOutcome));
        }
        if let Some((_, r)) = legs.iter().find(|(_, r)| r.state == LegState::Review) {
            // A leg only a person can resolve: raised now, while other legs may still
            // be settling (a bank leg can take days), not when they are all done.
            let reason = r
                .reason
                .clone()
                .unwrap_or_else(|| "a leg needs a person".into());
            self.raise_review(w, &record.reviews_raised, &view, ReviewKind::Leg, &reason)
                .await?;
        }
        if legs.iter().all(|(_, r)| r.state.is_settled()) {
            // Final legs plus legs only a person can resolve: nothing left to poll.
            return Ok((Decision::Ack, Released::No));
        }

        // Something is still settling or unknown: look again later through the broker,
        // raising review (once per kind) when it takes too long, and keep looking.
        let deferrals = history.attempt;
        let plan = super::polling::plan(&self.settings, &view, deferrals, Utc::now());
        if let Some((kind, reason)) = plan.review {
            self.raise_review(w, &record.reviews_raised, &view, kind, &reason)
                .await?;
        }
        Ok((
            Decision::Defer {
                reason: format!("withdrawal {} has legs still settling", w.id),
                delay_ms: plan.delay_ms,
                counter: headers::ATTEMPT,
            },
            Released::No,
        ))
    }

    /// The containment limit this withdrawal goes past, if any: the command's own
    /// limits, then its account's daily ones (counted in Redis once per withdrawal).
    async fn breached_limit(&self, w: &Withdrawal) -> Result<Option<Breach>, StepError> {
        let l = &self.settings.limits;
        let now = Utc::now();
        if let Some(b) = crate::limits::check_command(w, l, now) {
            return Ok(Some(b));
        }
        Ok(self
            .store
            .reserve_daily(&DailyReservation::new(w, l, now))
            .await?)
    }

    /// The broker gives this delivery at most one more return before it dead-letters
    /// it (`x-delivery-count` counts the earlier deliveries; the broker dead-letters a
    /// message returned once it was delivered more than `delivery_limit` times).
    fn near_delivery_limit(&self, history: &History) -> bool {
        let limit = self.settings.topology.delivery_limit;
        let count = history.delivery_count;
        count > 0 && count + 1 >= limit
    }

    /// Whether any leg of a withdrawal with no leg records has reached a channel, asked
    /// on every route each leg could have taken.
    async fn reached_a_channel(&self, w: &Withdrawal) -> Reached {
        // Deliberately broken build (the old behaviour): no one is asked.
        if cfg!(feature = "broken-no-probe-before-limits") {
            return Reached::Never;
        }
        let mut probes = Vec::with_capacity(w.legs.len());
        for leg in &w.legs {
            let planned = self.planned_route(w, leg);
            probes.push((planned, probe(&self.channels, w, leg, planned).await));
        }
        if probes.iter().any(|(_, p)| matches!(p, Probe::Found { .. })) {
            return Reached::Yes(probes);
        }
        match probes.iter().find_map(|(_, p)| match p {
            Probe::Inconclusive(answer) => Some(format!("{answer:?}")),
            _ => None,
        }) {
            None => Reached::Never,
            Some(why) => Reached::CannotTell(why),
        }
    }

    /// The route a leg's plan names (the first it could take, if the rules refuse it).
    fn planned_route(&self, w: &Withdrawal, leg: &Leg) -> RouteTaken {
        match self.rules.plan_for(w, leg) {
            Plan::Pay(route) => route,
            Plan::Refuse { .. } => crate::routing::possible_routes(leg)[0],
        }
    }

    /// A withdrawal past a limit that a channel has seen: its legs a channel knows are
    /// followed to their end, and every other leg is held for a person, never sent (the
    /// limit still applies to them). A leg no channel knows is recorded as held before
    /// any send; one a channel could not answer for as in review on its planned route
    /// (it may have left: a release needs the channel's own refusal).
    async fn hold_unseen_legs(
        &self,
        w: &Withdrawal,
        owner: &LeaseOwner,
        probes: &[(RouteTaken, Probe)],
        breach: &Breach,
    ) -> Result<(), StepError> {
        for (leg, (planned, probed)) in w.legs.iter().zip(probes) {
            let reason = format!(
                "{}; another leg reached a channel, this one was not sent and is held",
                breach.reason()
            );
            let held = match probed {
                Probe::Found { .. } => continue,
                Probe::NotFound => LegRecord::held(leg.channel, &reason, Utc::now()),
                Probe::Inconclusive(_) => {
                    let mut r = LegRecord::held(leg.channel, &reason, Utc::now());
                    r.route = Some(*planned);
                    r
                }
            };
            // Only where nothing is recorded yet ("" expected): a stale answer means
            // another pass recorded the leg, and its record stands.
            self.store
                .transition(&w.id, &leg.id, "", &held, None, owner)
                .await?;
        }
        Ok(())
    }

    /// A withdrawal past a limit whose channels could not all be asked: nothing is
    /// sent and nothing is held yet; look again later, and past the deferral cap a
    /// person is told (funds stay frozen either way).
    async fn cannot_tell_yet(
        &self,
        w: &Withdrawal,
        record: &WithdrawalRecord,
        history: &History,
        why: &str,
    ) -> Result<(Decision, Released), StepError> {
        let deferrals = history.attempt;
        if deferrals + 1 >= self.settings.retry.max_deferrals {
            let reason = format!(
                "past a containment limit, and whether a leg reached a channel is still unknown after {} checks ({why}); funds stay frozen",
                deferrals + 1
            );
            let held = as_recorded(w, record, &reason);
            let view: Vec<(&Leg, &LegRecord)> = w.legs.iter().zip(held.iter()).collect();
            self.raise_review(
                w,
                &record.reviews_raised,
                &view,
                ReviewKind::OutcomeUnknown,
                &reason,
            )
            .await?;
        }
        Ok((
            Decision::Defer {
                reason: format!(
                    "withdrawal {}: cannot tell yet whether a leg was sent",
                    w.id
                ),
                delay_ms: None,
                counter: headers::ATTEMPT,
            },
            Released::No,
        ))
    }

    /// The `sending` record each leg the routing rules let pay gets in the claim of a
    /// fresh withdrawal. A refused leg gets none here: its pass records the refusal.
    fn sending_records<'w>(
        &self,
        w: &'w Withdrawal,
        now: chrono::DateTime<Utc>,
    ) -> Vec<(&'w LegId, LegRecord)> {
        w.legs
            .iter()
            .filter_map(|leg| match self.rules.plan_for(w, leg) {
                Plan::Pay(route) => order_for(w, leg, route)
                    .map(|order| (&leg.id, LegRecord::sending(None, route, order.channel, now))),
                Plan::Refuse { .. } => None,
            })
            .collect()
    }

    /// Publishes `withdrawal.review_required` of `kind` unless it was raised before.
    async fn raise_review(
        &self,
        w: &Withdrawal,
        raised: &[String],
        view: &[(&Leg, &LegRecord)],
        kind: ReviewKind,
        reason: &str,
    ) -> Result<(), StepError> {
        if raised.iter().any(|k| k == kind.as_str()) {
            return Ok(());
        }
        tracing::warn!(withdrawal_id = %w.id, review = kind.as_str(), %reason, "withdrawal needs review; funds stay frozen");
        self.store.index_review(&w.id).await?;
        self.publish(&events::review(w, view, kind, reason, Utc::now()))
            .await?;
        // Marked after the publish is confirmed: a crash in between republishes the
        // same event id, which consumers deduplicate.
        self.store.note_review(&w.id, kind.as_str()).await?;
        Ok(())
    }

    /// An authentic command that cannot be processed: release its funds with a
    /// `withdrawal.failed` unless a valid command already owns the id (then money may
    /// be moving, and nothing is released).
    async fn reject(
        &self,
        value: &serde_json::Value,
        why: Rejection,
    ) -> Result<Decision, StepError> {
        if let Some(id) = named_withdrawal(value) {
            tracing::Span::current().record("withdrawal_id", id.as_str());
            let event = events::rejected(value, &id, &why, Utc::now());
            match self.store.reject(&id, &event.body).await? {
                Rejected::Stored(stored) => self.publish_stored(&stored).await?,
                Rejected::AlreadyClaimed => tracing::warn!(
                    withdrawal_id = %id,
                    "an invalid command names a withdrawal already being paid; releasing nothing"
                ),
            }
        }
        Ok(Decision::DeadLetter(why))
    }

    async fn publish_stored(&self, stored: &str) -> Result<(), StepError> {
        let event = Event::from_stored(stored)
            .ok_or(StepError::Inconsistent("stored outcome is not an event"))?;
        self.publish(&event).await
    }

    pub(crate) async fn publish(&self, event: &Event) -> Result<(), StepError> {
        let started = std::time::Instant::now();
        let props = BasicProperties::default()
            .with_content_type(events::CONTENT_TYPE.into())
            .with_delivery_mode(2)
            .with_message_id(event.id.as_str().into())
            .with_type(event.kind.as_str().into());
        self.publisher
            .publish(
                &self.settings.topology.events_exchange,
                &event.kind,
                event.body.as_bytes(),
                props,
            )
            .await?;
        METRICS
            .event_confirm_seconds
            .observe(started.elapsed().as_secs_f64());
        METRICS
            .events_published
            .with_label_values(&[&event.kind])
            .inc();
        tracing::info!(event = %event.kind, id = %event.id, "event published");
        Ok(())
    }
}

/// Each leg as its record says, for a review event; a leg with no record is shown held
/// (`review`, nothing sent) with `reason`.
fn as_recorded(w: &Withdrawal, record: &WithdrawalRecord, reason: &str) -> Vec<LegRecord> {
    w.legs
        .iter()
        .map(|l| match record.legs.get(l.id.as_str()) {
            Some((_, r)) => r.clone(),
            None => LegRecord::held(l.channel, reason, Utc::now()),
        })
        .collect()
}

/// Whether a withdrawal with no leg records has been seen by a channel.
enum Reached {
    Never,
    /// At least one leg was found: every leg's planned route and probe.
    Yes(Vec<(RouteTaken, Probe)>),
    CannotTell(String),
}

/// Whether storing the outcome already gave the lease back.
enum Released {
    WithOutcome,
    No,
}
