//! Asking the channels about a leg's key: one timed, counted channel call, and the
//! probe that asks every channel a leg could have been paid through. Used by the worker
//! before any (re)send of a leg that may have left, and by `review resolve` before an
//! operator's verdict is recorded.

use crate::channels::{ChannelOutcome, Channels, PayoutOrder};
use crate::domain::{ChannelKind, Leg, Withdrawal};
use crate::ops::METRICS;
use crate::routing::{order_for, possible_routes, RouteTaken};

/// What the channels know of a leg's key, asked on every route it could have taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Every channel says it never saw the key.
    NotFound,
    /// One channel knows it (or more than one: then `answer` is a review).
    Found {
        route: RouteTaken,
        channel: ChannelKind,
        answer: ChannelOutcome,
    },
    /// No channel knows it, but at least one could not say (`Unknown`/`RetryLater`).
    Inconclusive(ChannelOutcome),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Pay,
    Query,
}

/// Asks every channel `leg` could have been paid through (see [`possible_routes`])
/// what became of its key, one after the other. Only when all of them say "not found"
/// may the leg be (re)sent; a key known on two routes goes to a person. `planned`: the
/// route the leg's record or plan names.
pub async fn probe(channels: &Channels, w: &Withdrawal, leg: &Leg, planned: RouteTaken) -> Probe {
    combine(ask_every_route(channels, w, leg, planned).await)
}

/// Each route's answer for the leg's key (see [`probe`]), uncombined: what an
/// operator's verdict is judged against.
pub async fn ask_every_route(
    channels: &Channels,
    w: &Withdrawal,
    leg: &Leg,
    planned: RouteTaken,
) -> Vec<(RouteTaken, ChannelKind, ChannelOutcome)> {
    // Deliberately broken build (the old behaviour): only the planned route is asked.
    let routes = if cfg!(feature = "broken-replan-with-clock") {
        vec![planned]
    } else {
        possible_routes(leg)
    };
    let orders: Vec<(RouteTaken, PayoutOrder)> = routes
        .into_iter()
        .filter_map(|route| order_for(w, leg, route).map(|order| (route, order)))
        .collect();
    let mut answers = Vec::new();
    for (route, order) in &orders {
        // Two routes through one channel (a bank top-up with a bank card as fallback)
        // share the key there: the channel is asked once, and what it knows is the
        // planned route's.
        let same_channel = |r: &RouteTaken| {
            orders
                .iter()
                .any(|(other, o)| other == r && o.channel == order.channel)
        };
        if *route != planned && same_channel(&planned) {
            continue;
        }
        let (route, order) = (*route, order);
        let answer = call_channel(channels, order, Operation::Query).await;
        tracing::info!(leg = %leg.id, channel = %order.channel, route = route.as_str(), answer = ?answer, "queried channel");
        answers.push((route, order.channel, answer));
    }
    answers
}

/// The probe's verdict from each route's answer.
pub fn combine(answers: Vec<(RouteTaken, ChannelKind, ChannelOutcome)>) -> Probe {
    let mut inconclusive = None;
    let mut found = Vec::new();
    for (route, channel, answer) in answers {
        match answer {
            ChannelOutcome::NotFound => {}
            ChannelOutcome::Unknown { .. } | ChannelOutcome::RetryLater { .. } => {
                inconclusive.get_or_insert(answer);
            }
            answer => found.push((route, channel, answer)),
        }
    }
    match (found.len(), inconclusive) {
        (0, None) => Probe::NotFound,
        (0, Some(answer)) => Probe::Inconclusive(answer),
        // A refusal on one route says nothing of a route that could not answer: the
        // money may have moved there, so nothing is released on it.
        (1, Some(answer)) if matches!(found[0].2, ChannelOutcome::Failed { .. }) => {
            Probe::Inconclusive(answer)
        }
        (1, _) => {
            let (route, channel, answer) = found.remove(0);
            Probe::Found {
                route,
                channel,
                answer,
            }
        }
        _ => {
            let seen: Vec<String> = found
                .iter()
                .map(|(r, c, a)| format!("{c} ({}): {a:?}", r.as_str()))
                .collect();
            let (route, channel, _) = found.remove(0);
            Probe::Found {
                route,
                channel,
                answer: ChannelOutcome::Review {
                    reason: format!(
                        "the leg's key is known on more than one route: {}",
                        seen.join("; ")
                    ),
                },
            }
        }
    }
}

/// One channel call, timed and counted.
pub async fn call_channel(
    channels: &Channels,
    order: &PayoutOrder,
    operation: Operation,
) -> ChannelOutcome {
    let channel = order.channel.as_str();
    let op = match operation {
        Operation::Pay => "pay",
        Operation::Query => "query",
    };
    METRICS.legs_in_flight.inc();
    let started = std::time::Instant::now();
    let answer = match operation {
        Operation::Pay => channels.pay(order).await,
        Operation::Query => channels.query(order).await,
    };
    METRICS.legs_in_flight.dec();
    METRICS
        .channel_call_seconds
        .with_label_values(&[channel, op])
        .observe(started.elapsed().as_secs_f64());
    let result = match &answer {
        ChannelOutcome::Succeeded { .. } => "succeeded".to_owned(),
        // Codes come from the channels' fixed tables: a bounded label set.
        ChannelOutcome::Failed { code, .. } => format!("failed:{code}"),
        ChannelOutcome::Pending => "pending".into(),
        ChannelOutcome::Unknown { .. } => "unknown".into(),
        ChannelOutcome::NotFound => "not_found".into(),
        ChannelOutcome::RetryLater { .. } => "retry_later".into(),
        ChannelOutcome::Review { .. } => "review".into(),
    };
    METRICS
        .leg_outcomes
        .with_label_values(&[channel, &result])
        .inc();
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn answer(n: u8) -> ChannelOutcome {
        match n % 7 {
            0 => ChannelOutcome::NotFound,
            1 => ChannelOutcome::Unknown { reason: "u".into() },
            2 => ChannelOutcome::RetryLater { reason: "l".into() },
            3 => ChannelOutcome::Pending,
            4 => ChannelOutcome::Failed {
                code: "c".into(),
                reason: "r".into(),
            },
            5 => ChannelOutcome::Succeeded {
                reference: "t".into(),
            },
            _ => ChannelOutcome::Review { reason: "v".into() },
        }
    }

    #[test]
    fn a_key_found_on_the_fallback_follows_the_fallback() {
        let p = combine(vec![
            (
                RouteTaken::Original,
                ChannelKind::Alipay,
                ChannelOutcome::NotFound,
            ),
            (
                RouteTaken::Fallback,
                ChannelKind::Bank,
                ChannelOutcome::Succeeded {
                    reference: "B1".into(),
                },
            ),
        ]);
        assert_eq!(
            p,
            Probe::Found {
                route: RouteTaken::Fallback,
                channel: ChannelKind::Bank,
                answer: ChannelOutcome::Succeeded {
                    reference: "B1".into()
                }
            }
        );
    }

    proptest! {
        /// "Not found" only when every route says so; a key known on two routes is
        /// never taken as one route's answer; an answer that tells nothing is never
        /// taken for "not found".
        #[test]
        fn only_unanimous_not_found_allows_a_send(a in 0u8..7, b in 0u8..7) {
            let (x, y) = (answer(a), answer(b));
            let p = combine(vec![
                (RouteTaken::Original, ChannelKind::Alipay, x.clone()),
                (RouteTaken::Fallback, ChannelKind::Bank, y.clone()),
            ]);
            let tells_nothing = |o: &ChannelOutcome| matches!(o, ChannelOutcome::Unknown { .. } | ChannelOutcome::RetryLater { .. });
            let knows = |o: &ChannelOutcome| !tells_nothing(o) && *o != ChannelOutcome::NotFound;
            prop_assert_eq!(p == Probe::NotFound, x == ChannelOutcome::NotFound && y == ChannelOutcome::NotFound);
            if knows(&x) && knows(&y) {
                let is_review = matches!(p, Probe::Found { answer: ChannelOutcome::Review { .. }, .. });
                prop_assert!(is_review);
            }
            if tells_nothing(&x) || tells_nothing(&y) {
                prop_assert!(p != Probe::NotFound);
                let released = matches!(p, Probe::Found { answer: ChannelOutcome::Failed { .. }, .. });
                prop_assert!(!released, "a refusal beside an unanswered route");
            }
        }
    }
}
