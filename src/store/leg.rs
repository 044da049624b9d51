//! A leg's life, as stored. The transitions are pure so they can be tested exhaustively;
//! the worker applies them with a compare-and-set script.
//!
//! ```text
//!  (none) ──plan refuses──────────────────────────────▶ Failed
//!  (none) ──about to send──▶ Sending ──answer──▶ Succeeded | Failed | Pending | Unknown | Review
//!  Sending | Unknown | Pending ──query──▶ same answers; NotFound ──▶ Sending (resend, same key)
//!  Pending ──query: NotFound (the channel forgot what it accepted)──▶ Review
//! ```
//! `Succeeded`, `Failed` and `Review` are never left by the worker (an operator resolves
//! `Review`). `Sending` is written *before* the request leaves, so a crash mid-call is
//! seen as "maybe sent" and resolved by a query, never by a blind resend.

use crate::channels::ChannelOutcome;
use crate::domain::ChannelKind;
use crate::routing::RouteTaken;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegState {
    Sending,
    Pending,
    Unknown,
    Succeeded,
    Failed,
    Review,
}

impl LegState {
    /// No automatic step will change it again.
    pub fn is_settled(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Review)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegRecord {
    pub state: LegState,
    /// `None` only when the routing rules refused the leg before any channel was chosen.
    pub route: Option<RouteTaken>,
    pub channel: ChannelKind,
    /// Requests sent under the leg's idempotency key so far.
    pub sends: u32,
    /// When the first request left: settlement deadlines count from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_sent_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl LegRecord {
    pub fn refused(channel: ChannelKind, code: &str, reason: &str, now: DateTime<Utc>) -> Self {
        Self {
            state: LegState::Failed,
            route: None,
            channel,
            sends: 0,
            first_sent_at: None,
            reference: None,
            code: Some(code.to_owned()),
            reason: Some(reason.to_owned()),
            updated_at: now,
        }
    }

    /// A leg held before any send (a containment limit), for the review event only:
    /// never stored.
    pub fn held(channel: ChannelKind, reason: &str, now: DateTime<Utc>) -> Self {
        Self {
            state: LegState::Review,
            route: None,
            channel,
            sends: 0,
            first_sent_at: None,
            reference: None,
            code: None,
            reason: Some(reason.to_owned()),
            updated_at: now,
        }
    }

    /// The record to store just before a (re)send.
    pub fn sending(
        prev: Option<&LegRecord>,
        route: RouteTaken,
        channel: ChannelKind,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            state: LegState::Sending,
            route: Some(route),
            channel,
            sends: prev.map_or(0, |p| p.sends) + 1,
            first_sent_at: Some(prev.and_then(|p| p.first_sent_at).unwrap_or(now)),
            reference: None,
            code: None,
            reason: None,
            updated_at: now,
        }
    }

    /// Recorded as sent once and not answered since: the request may not have left yet
    /// (what the claim of a fresh withdrawal records for each leg).
    pub fn is_unanswered_send(&self) -> bool {
        self.state == LegState::Sending && self.sends <= 1
    }

    /// The record after the channel answered a send or a query. `NotFound` never gets
    /// here: the caller resends instead. An answer that tells nothing keeps the leg in
    /// a "query first" state.
    pub fn after(&self, outcome: &ChannelOutcome, now: DateTime<Utc>) -> Self {
        let mut next = Self {
            updated_at: now,
            ..self.clone()
        };
        match outcome {
            ChannelOutcome::Succeeded { reference } => {
                next.state = LegState::Succeeded;
                next.reference = Some(reference.clone());
                next.code = None;
                next.reason = None;
            }
            ChannelOutcome::Failed { code, reason } => {
                next.state = LegState::Failed;
                next.code = Some(code.clone());
                next.reason = Some(reason.clone());
            }
            ChannelOutcome::Pending => next.state = LegState::Pending,
            ChannelOutcome::Review { reason } => {
                next.state = LegState::Review;
                next.reason = Some(reason.clone());
            }
            // Nothing learned. Pending stays pending (the channel accepted it); anything
            // else becomes Unknown: maybe sent, so query before any resend.
            ChannelOutcome::Unknown { reason } | ChannelOutcome::RetryLater { reason } => {
                if self.state != LegState::Pending {
                    next.state = LegState::Unknown;
                }
                next.reason = Some(reason.clone());
            }
            ChannelOutcome::NotFound => {
                next.state = LegState::Unknown;
                next.reason = Some("the channel has no record of the payout yet".into());
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn outcome_strategy() -> impl Strategy<Value = ChannelOutcome> {
        prop_oneof![
            Just(ChannelOutcome::Succeeded {
                reference: "r".into()
            }),
            Just(ChannelOutcome::Failed {
                code: "c".into(),
                reason: "r".into()
            }),
            Just(ChannelOutcome::Pending),
            Just(ChannelOutcome::Unknown { reason: "u".into() }),
            Just(ChannelOutcome::NotFound),
            Just(ChannelOutcome::RetryLater { reason: "l".into() }),
            Just(ChannelOutcome::Review { reason: "v".into() }),
        ]
    }

    fn sending() -> LegRecord {
        LegRecord::sending(None, RouteTaken::Original, ChannelKind::Alipay, Utc::now())
    }

    #[test]
    fn sends_count_up_and_answers_map() {
        let s = sending();
        assert_eq!(s.sends, 1);
        assert_eq!(
            LegRecord::sending(
                Some(&s),
                RouteTaken::Original,
                ChannelKind::Alipay,
                Utc::now()
            )
            .sends,
            2
        );
        let done = s.after(
            &ChannelOutcome::Succeeded {
                reference: "T".into(),
            },
            Utc::now(),
        );
        assert_eq!(done.state, LegState::Succeeded);
        assert_eq!(done.reference.as_deref(), Some("T"));
        let pending = s.after(&ChannelOutcome::Pending, Utc::now());
        assert_eq!(
            pending
                .after(&ChannelOutcome::Unknown { reason: "x".into() }, Utc::now())
                .state,
            LegState::Pending
        );
    }

    proptest! {
        /// Only a definitive channel answer can make a leg Failed; nothing that tells
        /// nothing ever lets the worker skip the query.
        #[test]
        fn only_definitive_answers_fail(outcomes in proptest::collection::vec(outcome_strategy(), 1..8)) {
            let mut rec = sending();
            for o in &outcomes {
                if rec.state.is_settled() { break; }
                let next = rec.after(o, Utc::now());
                if next.state == LegState::Failed {
                    let definitive = matches!(o, ChannelOutcome::Failed { .. });
                    prop_assert!(definitive);
                }
                if matches!(o, ChannelOutcome::Unknown { .. } | ChannelOutcome::RetryLater { .. } | ChannelOutcome::NotFound) {
                    let still_open = matches!(next.state, LegState::Unknown | LegState::Pending);
                    prop_assert!(still_open);
                }
                prop_assert_eq!(next.sends, rec.sends);
                rec = next;
            }
        }
    }
}
