//! Paying one leg: plan it, record "sending" before the request leaves, call the
//! channel, record the answer. A leg that may already have been sent is always queried
//! with its idempotency key first, on every route it could have taken (`probe.rs`); only
//! "not found" everywhere allows a resend, with the same key, and never for a leg the
//! channel had accepted (that goes to review).

use super::probe::{call_channel, probe, Operation, Probe};
use super::{StepError, Worker};
use crate::channels::{ChannelOutcome, PayoutOrder};
use crate::domain::{Leg, Withdrawal};
use crate::events;
use crate::routing::{order_for, Plan, RouteTaken};
use crate::store::{LeaseOwner, LegRecord, LegState, Transition};
use chrono::Utc;
use futures_util::future::{BoxFuture, Shared};

/// A leg after this pass: its record and, if this pass stored the withdrawal's terminal
/// event along with it, that event.
pub(crate) struct LegPass {
    /// The record's exact stored text (what the next compare-and-set expects).
    pub raw: String,
    pub record: LegRecord,
    pub outcome: Option<String>,
}

enum Next {
    Store(LegRecord),
    Send(RouteTaken),
    /// The `sending` record is stored already: call the channel.
    Deliver(RouteTaken),
    Query(RouteTaken),
}

/// What a leg's first pass in this delivery may assume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegStart {
    /// A first delivery: a leg without a record was never sent.
    New,
    /// The claim of this delivery created the withdrawal's record with this leg as
    /// `sending`: nothing has left yet, so the request goes out without a query.
    Claimed,
    /// Delivered before (a broker redelivery or one of our deferrals): even a leg with no
    /// record is queried before the first send, since its record may have been lost
    /// with Redis.
    SeenBefore,
}

/// One withdrawal's pass over its legs in one delivery.
pub(crate) struct Pass<'a> {
    pub w: &'a Withdrawal,
    pub owner: &'a LeaseOwner,
    /// `withdrawal.processing`'s confirm, when it is published in this pass alongside
    /// the first channel calls: no answer is stored before it is confirmed, so a stored
    /// answer always means `processing` is out (a pass that dies sooner leaves its legs
    /// unanswered, and the next one publishes it again).
    pub announced: Announced<'a>,
}

/// A publish confirm several legs wait on (ready at once when nothing was published).
pub(crate) type Announced<'a> = Shared<BoxFuture<'a, Result<(), String>>>;

/// Compare-and-set retries when another worker changes the leg at the same moment.
const MAX_RACES: usize = 4;

impl Worker {
    /// One leg, with in-process retries while its outcome is unknown (see `retry.rs`).
    pub(crate) async fn pay_leg(
        &self,
        p: &Pass<'_>,
        leg: &Leg,
        prior: Option<&(String, LegRecord)>,
        start: LegStart,
    ) -> Result<LegPass, StepError> {
        let first = self.drive_leg(p, leg, prior, start).await?;
        self.retry
            .retry_while(
                first,
                |pass| pass.record.state == LegState::Unknown,
                |pass| async move {
                    self.drive_leg(p, leg, Some(&(pass.raw, pass.record)), LegStart::SeenBefore)
                        .await
                },
            )
            .await
    }

    async fn drive_leg(
        &self,
        p: &Pass<'_>,
        leg: &Leg,
        prior: Option<&(String, LegRecord)>,
        mut start: LegStart,
    ) -> Result<LegPass, StepError> {
        let w = p.w;
        let (mut raw, mut rec) = match prior {
            Some((raw, rec)) => (raw.clone(), Some(rec.clone())),
            None => (String::new(), None),
        };
        for _ in 0..MAX_RACES {
            let now = Utc::now();
            let next = match &rec {
                Some(r) if r.state.is_settled() => {
                    return Ok(LegPass {
                        raw: raw.clone(),
                        record: r.clone(),
                        outcome: None,
                    })
                }
                Some(r) => match r.route {
                    Some(route) if start == LegStart::Claimed && r.state == LegState::Sending => {
                        Next::Deliver(route)
                    }
                    // Deliberately broken build for the chaos checker's own tests: a
                    // leg that may have been sent is resent at once, never queried.
                    #[cfg(feature = "broken-fresh-key-resend")]
                    Some(route) if r.state != LegState::Pending => Next::Send(route),
                    Some(route) => Next::Query(route),
                    // A stored non-final leg always has a route; if not, a person looks.
                    None => Next::Store(r.after(
                        &ChannelOutcome::Review {
                            reason: "leg record has no route".into(),
                        },
                        now,
                    )),
                },
                None => match self.rules.plan_for(w, leg) {
                    Plan::Refuse { code, reason } => {
                        Next::Store(LegRecord::refused(leg.channel, code, &reason, now))
                    }
                    Plan::Pay(route) if start == LegStart::SeenBefore => Next::Query(route),
                    Plan::Pay(route) => Next::Send(route),
                },
            };
            let result = match next {
                Next::Store(record) => self.store_leg(p, leg, &raw, record).await?,
                Next::Send(route) => self.send(p, leg, &raw, rec.as_ref(), route).await?,
                Next::Deliver(route) => {
                    let (Some(sending), Some(order)) = (rec.clone(), order_for(w, leg, route))
                    else {
                        return Err(StepError::Inconsistent(
                            "the route recorded at the claim does not fit the leg",
                        ));
                    };
                    self.deliver(p, leg, &raw, sending, order, route).await?
                }
                Next::Query(route) => {
                    let Some(order) = order_for(w, leg, route) else {
                        return Err(StepError::Inconsistent("stored route does not fit the leg"));
                    };
                    // A leg without a record (lost with Redis) is queried as if it might
                    // have been sent; its first record then says what the channel knows.
                    // The channel is the order's: a fallback card is paid by the bank,
                    // whatever channel the top-up came through.
                    let current = rec.clone().unwrap_or_else(|| {
                        let mut unknown = LegRecord::sending(None, route, order.channel, now);
                        unknown.sends = 0;
                        unknown.state = LegState::Unknown;
                        unknown
                    });
                    match probe(&self.channels, w, leg, route).await {
                        Probe::NotFound if current.state == LegState::Pending => {
                            // The channel accepted this key and now says it never saw it:
                            // a resend would rely on it never forgetting a key during a
                            // settlement of days. A person looks; funds stay frozen.
                            let answer = ChannelOutcome::Review {
                                reason: format!(
                                    "the {} accepted this payout and now has no record of it; not resending",
                                    current.channel
                                ),
                            };
                            self.store_leg(p, leg, &raw, current.after(&answer, Utc::now()))
                                .await?
                        }
                        Probe::NotFound => self.send(p, leg, &raw, Some(&current), route).await?,
                        Probe::Found {
                            route: found,
                            channel,
                            answer,
                        } => {
                            // The money went the way the channels say, whatever the record
                            // (or a plan) said: from now on the leg follows that route.
                            let at = LegRecord {
                                route: Some(found),
                                channel,
                                ..current
                            };
                            self.store_leg(p, leg, &raw, at.after(&answer, Utc::now()))
                                .await?
                        }
                        Probe::Inconclusive(answer) => {
                            self.store_leg(p, leg, &raw, current.after(&answer, Utc::now()))
                                .await?
                        }
                    }
                }
            };
            match result {
                Ok(pass) => return Ok(pass),
                Err((current_raw, current)) => {
                    // Changed under us: whatever it is now, it may have been sent.
                    raw = current_raw;
                    rec = current;
                    start = LegStart::SeenBefore;
                }
            }
        }
        Err(StepError::Contended)
    }

    /// Records "sending", calls the channel, records the answer.
    async fn send(
        &self,
        p: &Pass<'_>,
        leg: &Leg,
        raw: &str,
        prev: Option<&LegRecord>,
        route: RouteTaken,
    ) -> Result<Result<LegPass, (String, Option<LegRecord>)>, StepError> {
        let w = p.w;
        let Some(order) = order_for(w, leg, route) else {
            return Err(StepError::Inconsistent(
                "planned route does not fit the leg",
            ));
        };
        let sending = LegRecord::sending(prev, route, order.channel, Utc::now());
        let sending_raw = match self.cas(p, leg, raw, &sending, None).await? {
            Ok((stored_raw, _)) => stored_raw,
            Err(stale) => return Ok(Err(stale)),
        };
        self.deliver(p, leg, &sending_raw, sending, order, route)
            .await
    }

    /// Calls the channel for a leg whose `sending` record (`sending_raw`) is stored,
    /// then records the answer.
    async fn deliver(
        &self,
        p: &Pass<'_>,
        leg: &Leg,
        sending_raw: &str,
        sending: LegRecord,
        order: PayoutOrder,
        route: RouteTaken,
    ) -> Result<Result<LegPass, (String, Option<LegRecord>)>, StepError> {
        // Deliberately broken build: every resend mints a fresh reference (the classic
        // double-payment bug). Never enabled outside `tests/broken_builds.rs`.
        #[cfg(feature = "broken-fresh-key-resend")]
        let order = PayoutOrder {
            key: order.key.broken_fresh_variant(sending.sends),
            ..order
        };
        // The `sending` record must outlive a failover before the request leaves
        // (`redis.wait_replicas`; nothing to wait for by default).
        self.store.replicated(&p.w.id).await?;
        let answer = call_channel(&self.channels, &order, Operation::Pay).await;
        tracing::info!(leg = %leg.id, channel = %order.channel, route = route.as_str(),
            sends = sending.sends, answer = ?answer, "paid through channel");
        let after = sending.after(&answer, Utc::now());
        self.store_leg(p, leg, sending_raw, after).await
    }

    /// Stores `record`; for a one-leg withdrawal whose leg just became final, stores the
    /// terminal event in the same script (one round trip fewer on the hot path).
    async fn store_leg(
        &self,
        p: &Pass<'_>,
        leg: &Leg,
        raw: &str,
        record: LegRecord,
    ) -> Result<Result<LegPass, (String, Option<LegRecord>)>, StepError> {
        p.announced
            .clone()
            .await
            .map_err(StepError::ProcessingUnconfirmed)?;
        let w = p.w;
        let outcome = (w.legs.len() == 1 && record.state.is_final())
            .then(|| events::terminal(w, &[(leg, &record)], Utc::now()).body);
        Ok(self
            .cas(p, leg, raw, &record, outcome.as_deref())
            .await?
            .map(|(raw, stored_outcome)| LegPass {
                raw,
                record,
                outcome: stored_outcome,
            }))
    }

    /// One compare-and-set. `Ok(Ok((new text, stored outcome)))` when applied,
    /// `Ok(Err(current))` when the leg changed under us.
    #[allow(clippy::type_complexity)]
    async fn cas(
        &self,
        p: &Pass<'_>,
        leg: &Leg,
        expected: &str,
        record: &LegRecord,
        outcome: Option<&str>,
    ) -> Result<Result<(String, Option<String>), (String, Option<LegRecord>)>, StepError> {
        let (w, owner) = (p.w, p.owner);
        let (t, new_text) = self
            .store
            .transition(&w.id, &leg.id, expected, record, outcome, owner)
            .await?;
        match t {
            Transition::Applied { outcome } => Ok(Ok((new_text, outcome))),
            Transition::Stale { current } => {
                let parsed = if current.is_empty() {
                    None
                } else {
                    Some(serde_json::from_str(&current).map_err(|_| {
                        StepError::Inconsistent("leg record in Redis is unreadable")
                    })?)
                };
                Ok(Err((current, parsed)))
            }
            Transition::Lost => Err(StepError::StateLost),
        }
    }
}
