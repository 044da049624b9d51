//! The invariant checker of a chaos run: pure functions over what anyone outside the
//! worker can see — the simulator's ledger (`GET /sim/ledger`), the events received on
//! the run's events exchange, and the dead-letter queue's contents — and over the plan
//! (what was published and what each leg was designed to come to). Nothing here looks
//! into Redis or the workers.
//!
//! Each check returns a [`Verdict`]: its name, the rule in words, PASS/FAIL and the
//! violations found (the first [`MAX_LISTED`] of them, plus their count).

use crate::domain::{IdempotencyKey, LegId, WithdrawalId};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Violations listed per invariant; the count is always complete.
pub const MAX_LISTED: usize = 20;

pub const SUCCEEDED: &str = "withdrawal.succeeded";
pub const FAILED: &str = "withdrawal.failed";
pub const REVIEW: &str = "withdrawal.review_required";

mod inputs;

pub use inputs::{
    BadInput, BadKind, DeadLetter, Event, Expect, ExpectedLeg, ExpectedWithdrawal, Inputs,
    LedgerLine, OperatorVerdict,
};

// ---- verdicts ----------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub name: &'static str,
    pub rule: &'static str,
    pub passed: bool,
    /// How many things were checked (keys, withdrawals, events, inputs).
    pub checked: usize,
    pub violation_count: usize,
    pub violations: Vec<String>,
}

impl Verdict {
    fn new(name: &'static str, rule: &'static str, checked: usize, all: Vec<String>) -> Self {
        Self {
            name,
            rule,
            passed: all.is_empty(),
            checked,
            violation_count: all.len(),
            violations: all.into_iter().take(MAX_LISTED).collect(),
        }
    }
}

/// How an authentic withdrawal ended, as the events tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    /// `review_required` and no terminal event: funds stay frozen.
    Review,
    /// Both `succeeded` and `failed` (a violation).
    Conflicting,
    /// Nothing conclusive arrived.
    Unfinished,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Review => "review_required",
            Outcome::Conflicting => "conflicting",
            Outcome::Unfinished => "unfinished",
        }
    }
}

/// Events grouped by subject.
fn by_subject(events: &[Event]) -> HashMap<&str, Vec<&Event>> {
    let mut map: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in events {
        map.entry(e.subject.as_str()).or_default().push(e);
    }
    map
}

/// Each authentic withdrawal's outcome.
pub fn outcomes(authentic: &[ExpectedWithdrawal], events: &[Event]) -> BTreeMap<String, Outcome> {
    let grouped = by_subject(events);
    authentic
        .iter()
        .map(|w| {
            let evs = grouped.get(w.id.as_str()).map_or(&[][..], Vec::as_slice);
            let kinds: BTreeSet<&str> = evs.iter().map(|e| e.kind.as_str()).collect();
            let outcome = match (kinds.contains(SUCCEEDED), kinds.contains(FAILED)) {
                (true, true) => Outcome::Conflicting,
                (true, false) => Outcome::Succeeded,
                (false, true) => Outcome::Failed,
                (false, false) if kinds.contains(REVIEW) => Outcome::Review,
                (false, false) => Outcome::Unfinished,
            };
            (w.id.clone(), outcome)
        })
        .collect()
}

/// The first terminal event of each subject.
fn first_terminal(events: &[Event]) -> HashMap<&str, &Event> {
    let mut map = HashMap::new();
    for e in events.iter().filter(|e| e.is_terminal()) {
        map.entry(e.subject.as_str()).or_insert(e);
    }
    map
}

fn leg_key(withdrawal: &str, leg: &str) -> Option<String> {
    Some(
        IdempotencyKey::for_leg(&WithdrawalId::parse(withdrawal)?, &LegId::parse(leg)?)
            .as_str()
            .to_owned(),
    )
}

/// Ledger moves per key (summed over channels: one key paid through two channels is
/// still one leg paid twice).
fn moves_by_key(ledger: &[LedgerLine]) -> HashMap<&str, u32> {
    let mut m: HashMap<&str, u32> = HashMap::new();
    for l in ledger {
        *m.entry(l.key.as_str()).or_default() += l.moves;
    }
    m
}

// ---- the invariants ----------------------------------------------------------------

/// Every check, in report order.
pub fn check_all(inputs: &Inputs<'_>) -> Vec<Verdict> {
    vec![
        no_double_payout(inputs.ledger),
        one_outcome_each(inputs.authentic, inputs.events),
        failed_events_add_up(inputs.authentic, inputs.events, inputs.ledger),
        ledger_matches_events(inputs.authentic, inputs.events, inputs.ledger),
        dead_letters_exactly_once(inputs.bad, inputs.dead),
        bad_inputs_move_nothing(inputs.bad, inputs.events, inputs.ledger),
        outcomes_as_designed(inputs.authentic, inputs.events, inputs.verdicts),
        operator_verdicts_match_ledger(inputs.verdicts, inputs.ledger),
        one_channel_per_key(inputs.ledger),
        failed_releases_only_unmoved(inputs.authentic, inputs.events, inputs.ledger),
        limit_reviews_only_unsent(inputs.authentic, inputs.events, inputs.ledger),
        unknown_outcomes_reach_review(inputs.authentic, inputs.events, inputs.verdicts),
    ]
}

/// An operator's accepted verdict never contradicts the ledger: `paid` ⇒ the leg's key
/// moved; `failed` ⇒ it did not (read after every pending payout settled).
pub fn operator_verdicts_match_ledger(
    verdicts: &[OperatorVerdict],
    ledger: &[LedgerLine],
) -> Verdict {
    let moves = moves_by_key(ledger);
    let mut violations = Vec::new();
    for v in verdicts {
        let Some(key) = leg_key(&v.withdrawal, &v.leg) else {
            violations.push(format!(
                "{} leg {:?}: accepted a verdict on a leg id that is not valid",
                v.withdrawal, v.leg
            ));
            continue;
        };
        let m = moves.get(key.as_str()).copied().unwrap_or(0);
        match v.outcome.as_str() {
            "paid" if m == 0 => violations.push(format!(
                "{} leg {}: operator verdict paid accepted, but key {key} never moved",
                v.withdrawal, v.leg
            )),
            "failed" if m > 0 => violations.push(format!(
                "{} leg {}: operator verdict failed accepted (funds released), but key {key} moved {m} time(s)",
                v.withdrawal, v.leg
            )),
            "paid" | "failed" => {}
            other => violations.push(format!(
                "{} leg {}: accepted verdict {other:?} is neither paid nor failed",
                v.withdrawal, v.leg
            )),
        }
    }
    Verdict::new(
        "operator_verdicts_match_ledger",
        "an accepted `review resolve` never contradicts the ledger: paid => the leg's key moved, failed => it did not",
        verdicts.len(),
        violations,
    )
}

/// No leg's key moved money through two channels (a re-plan that changed the route).
pub fn one_channel_per_key(ledger: &[LedgerLine]) -> Verdict {
    let mut channels: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for l in ledger.iter().filter(|l| l.moves > 0) {
        channels
            .entry(l.key.as_str())
            .or_default()
            .insert(l.channel.as_str());
    }
    let violations = channels
        .iter()
        .filter(|(_, c)| c.len() > 1)
        .map(|(k, c)| format!("key {k} moved money through {c:?}"))
        .collect();
    Verdict::new(
        "one_channel_per_key",
        "no leg's idempotency key moved money through more than one channel",
        channels.len(),
        violations,
    )
}

/// A `withdrawal.failed` never releases money the ledger shows as moved: judged by the
/// ledger alone (whatever the worker's state said, across Redis wipes), the unfrozen
/// amount plus everything that moved under the withdrawal's keys is at most its amount.
pub fn failed_releases_only_unmoved(
    authentic: &[ExpectedWithdrawal],
    events: &[Event],
    ledger: &[LedgerLine],
) -> Verdict {
    let planned: HashMap<&str, &ExpectedWithdrawal> =
        authentic.iter().map(|w| (w.id.as_str(), w)).collect();
    let mut moved_by_key: HashMap<&str, Decimal> = HashMap::new();
    for l in ledger {
        *moved_by_key.entry(l.key.as_str()).or_default() += l.moved().unwrap_or_default();
    }
    let mut violations = Vec::new();
    let mut seen = BTreeSet::new();
    for e in events.iter().filter(|e| e.kind == FAILED) {
        let Some(w) = planned.get(e.subject.as_str()) else {
            continue;
        };
        if !seen.insert(e.id.as_str()) {
            continue;
        }
        let moved = moved_under(w, &moved_by_key);
        let released = e.money("unfreeze_amount").unwrap_or_default();
        if released + moved > w.amount {
            violations.push(format!(
                "{}: {} releases {released} but the ledger moved {moved} of its {}",
                w.id, e.id, w.amount
            ));
        }
    }
    Verdict::new(
        "failed_releases_only_unmoved",
        "a withdrawal.failed never releases money the ledger shows as moved (unfreeze_amount + moved <= amount)",
        seen.len(),
        violations,
    )
}

/// A `limit` review is raised only for a withdrawal no channel has seen: once a leg was
/// sent, a limit can no longer stop anything, and the review would show a leg that is
/// settling as not started.
pub fn limit_reviews_only_unsent(
    authentic: &[ExpectedWithdrawal],
    events: &[Event],
    ledger: &[LedgerLine],
) -> Verdict {
    let planned: HashMap<&str, &ExpectedWithdrawal> =
        authentic.iter().map(|w| (w.id.as_str(), w)).collect();
    let seen_keys: BTreeSet<&str> = ledger.iter().map(|l| l.key.as_str()).collect();
    let mut violations = Vec::new();
    let mut checked = BTreeSet::new();
    for e in events.iter().filter(|e| {
        e.kind == REVIEW && e.data.get("review_kind").and_then(Value::as_str) == Some("limit")
    }) {
        let Some(w) = planned.get(e.subject.as_str()) else {
            continue;
        };
        if !checked.insert(w.id.as_str()) {
            continue;
        }
        let sent: Vec<&str> = w
            .legs
            .iter()
            .filter(|l| seen_keys.contains(l.key.as_str()))
            .map(|l| l.leg_id.as_str())
            .collect();
        if !sent.is_empty() {
            violations.push(format!(
                "{}: limit review ({}) although the channels had seen leg(s) {sent:?}",
                w.id,
                e.data.get("reason").and_then(Value::as_str).unwrap_or("?")
            ));
        }
    }
    Verdict::new(
        "limit_reviews_only_unsent",
        "a `limit` review never names a withdrawal whose keys a channel has seen",
        checked.len(),
        violations,
    )
}

/// A leg whose outcome no machine can resolve ends in review (funds frozen), never in a
/// terminal event (unless an operator's accepted verdict settled it).
pub fn unknown_outcomes_reach_review(
    authentic: &[ExpectedWithdrawal],
    events: &[Event],
    verdicts: &[OperatorVerdict],
) -> Verdict {
    let grouped = by_subject(events);
    let resolved: BTreeSet<&str> = verdicts.iter().map(|v| v.withdrawal.as_str()).collect();
    let mut violations = Vec::new();
    let mut checked = 0;
    for w in authentic
        .iter()
        .filter(|w| w.legs.iter().any(|l| l.expect == Expect::Unresolved))
    {
        checked += 1;
        let evs = grouped.get(w.id.as_str()).map_or(&[][..], Vec::as_slice);
        if let Some(t) = evs.iter().find(|e| e.is_terminal()) {
            if !resolved.contains(w.id.as_str()) {
                violations.push(format!(
                    "{}: outcome unknown for good, yet {} was published",
                    w.id, t.kind
                ));
            }
        } else if !evs.iter().any(|e| e.kind == REVIEW) {
            violations.push(format!(
                "{}: outcome unknown for good and never sent to review (attempt count never reached retry.max_deferrals)",
                w.id
            ));
        }
    }
    Verdict::new(
        "unknown_outcomes_reach_review",
        "a leg whose outcome stays unknown for good ends in review_required, not in a terminal event",
        checked,
        violations,
    )
}

/// No idempotency key paid more than once.
pub fn no_double_payout(ledger: &[LedgerLine]) -> Verdict {
    let mut violations = Vec::new();
    for (key, moves) in moves_by_key(ledger) {
        if moves > 1 {
            violations.push(format!("key {key} paid {moves} times"));
        }
    }
    violations.sort();
    Verdict::new(
        "no_double_payout",
        "no idempotency key in the ledger has moves > 1",
        ledger.len(),
        violations,
    )
}

/// What the ledger shows as moved under a withdrawal's leg keys.
fn moved_under(w: &ExpectedWithdrawal, moved_by_key: &HashMap<&str, Decimal>) -> Decimal {
    w.legs
        .iter()
        .map(|l| {
            moved_by_key
                .get(l.key.as_str())
                .copied()
                .unwrap_or_default()
        })
        .sum()
}

/// Every authentic withdrawal ends in exactly one of succeeded/failed (repeats carry
/// the same event id), or in review_required with nothing released.
pub fn one_outcome_each(authentic: &[ExpectedWithdrawal], events: &[Event]) -> Verdict {
    let grouped = by_subject(events);
    let mut violations = Vec::new();
    for w in authentic {
        let evs = grouped.get(w.id.as_str()).map_or(&[][..], Vec::as_slice);
        let terminal_ids: BTreeSet<&str> = evs
            .iter()
            .filter(|e| e.is_terminal())
            .map(|e| e.id.as_str())
            .collect();
        let reviewed = evs.iter().any(|e| e.kind == REVIEW);
        match terminal_ids.len() {
            0 if reviewed => {}
            0 => violations.push(format!(
                "{}: no terminal event and no review_required",
                w.id
            )),
            1 => {}
            _ => violations.push(format!(
                "{}: several terminal events {:?}",
                w.id, terminal_ids
            )),
        }
    }
    Verdict::new(
        "one_outcome_each",
        "every authentic withdrawal ends in exactly one of succeeded/failed (same event id when repeated) or in review_required",
        authentic.len(),
        violations,
    )
}

/// For every failed event, `paid_amount + unfreeze_amount = amount` and no failed leg's
/// money moved; a succeeded event pays exactly the amount.
pub fn failed_events_add_up(
    authentic: &[ExpectedWithdrawal],
    events: &[Event],
    ledger: &[LedgerLine],
) -> Verdict {
    let planned: HashMap<&str, &ExpectedWithdrawal> =
        authentic.iter().map(|w| (w.id.as_str(), w)).collect();
    let moves = moves_by_key(ledger);
    let mut violations = Vec::new();
    let mut checked = 0;
    for e in events.iter().filter(|e| e.is_terminal()) {
        let Some(w) = planned.get(e.subject.as_str()) else {
            continue; // bad inputs: see bad_inputs_move_nothing
        };
        checked += 1;
        let (amount, paid) = (e.money("amount"), e.money("paid_amount"));
        if amount != Some(w.amount) {
            violations.push(format!(
                "{}: event amount {:?} is not the published {}",
                e.id,
                e.data.get("amount"),
                w.amount
            ));
        }
        if e.kind == SUCCEEDED {
            if paid != Some(w.amount) {
                violations.push(format!(
                    "{}: succeeded but paid_amount {:?} is not the amount {}",
                    e.id,
                    e.data.get("paid_amount"),
                    w.amount
                ));
            }
            continue;
        }
        match (paid, e.money("unfreeze_amount"), amount) {
            (Some(p), Some(u), Some(a)) if p + u == a => {}
            _ => violations.push(format!(
                "{}: paid_amount {:?} + unfreeze_amount {:?} != amount {:?}",
                e.id,
                e.data.get("paid_amount"),
                e.data.get("unfreeze_amount"),
                e.data.get("amount")
            )),
        }
        for leg in e.legs() {
            if leg.get("status").and_then(Value::as_str) != Some("failed") {
                continue;
            }
            let leg_id = leg.get("leg_id").and_then(Value::as_str).unwrap_or("?");
            match leg_key(&e.subject, leg_id) {
                Some(key) => {
                    let m = moves.get(key.as_str()).copied().unwrap_or(0);
                    if m != 0 {
                        violations.push(format!(
                            "{}: leg {leg_id} reported failed (funds released) but its key {key} moved {m} time(s)",
                            e.id
                        ));
                    }
                }
                None => violations.push(format!("{}: leg id {leg_id:?} is not valid", e.id)),
            }
        }
    }
    Verdict::new(
        "failed_events_add_up",
        "for every failed event no refused leg's money moved and paid_amount + unfreeze_amount = amount; a succeeded event pays the amount",
        checked,
        violations,
    )
}

/// The ledger's moved total equals the terminal events' paid total plus what moved for
/// withdrawals in review; and per withdrawal, what moved under its keys is what its
/// terminal event says was paid.
pub fn ledger_matches_events(
    authentic: &[ExpectedWithdrawal],
    events: &[Event],
    ledger: &[LedgerLine],
) -> Verdict {
    let mut violations = Vec::new();
    let mut moved_by_key: HashMap<&str, Decimal> = HashMap::new();
    let mut ledger_total = Decimal::ZERO;
    for line in ledger {
        match line.moved() {
            Some(m) => {
                ledger_total += m;
                *moved_by_key.entry(line.key.as_str()).or_default() += m;
            }
            None => violations.push(format!(
                "ledger line {} ({}) has an unreadable amount {:?}",
                line.key, line.channel, line.amount
            )),
        }
    }
    let terminal = first_terminal(events);
    let outcome = outcomes(authentic, events);
    let mut known_keys = BTreeSet::new();
    let (mut paid_total, mut review_total, mut unfinished_total) =
        (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    for w in authentic {
        let moved = moved_under(w, &moved_by_key);
        known_keys.extend(w.legs.iter().map(|l| l.key.as_str()));
        match terminal.get(w.id.as_str()) {
            Some(e) => {
                let paid = e.money("paid_amount").unwrap_or_default();
                paid_total += paid;
                if moved != paid {
                    violations.push(format!(
                        "{}: the ledger moved {moved} under its keys, its {} event says paid {paid}",
                        w.id, e.kind
                    ));
                }
            }
            None if outcome.get(&w.id) == Some(&Outcome::Review) => review_total += moved,
            None => unfinished_total += moved,
        }
    }
    let stray: Decimal = moved_by_key
        .iter()
        .filter(|(k, _)| !known_keys.contains(*k))
        .map(|(k, m)| {
            if !m.is_zero() {
                violations.push(format!(
                    "key {k} moved {m} but belongs to no authentic withdrawal"
                ));
            }
            *m
        })
        .sum();
    if ledger_total != paid_total + review_total {
        violations.insert(
            0,
            format!(
                "ledger total {ledger_total} != terminal events' paid total {paid_total} + in review {review_total} (unfinished withdrawals moved {unfinished_total}, keys of no authentic withdrawal {stray})"
            ),
        );
    }
    Verdict::new(
        "ledger_matches_events",
        "ledger total of moved money = paid totals of terminal events + what moved for withdrawals in review (and per withdrawal: moved = paid)",
        ledger.len(),
        violations,
    )
}

/// Every bad input is in the dead-letter queue exactly once, with its error code; and
/// nothing else is there.
pub fn dead_letters_exactly_once(bad: &[BadInput], dead: &[DeadLetter]) -> Verdict {
    let mut found: HashMap<&str, Vec<&DeadLetter>> = HashMap::new();
    let mut violations = Vec::new();
    for d in dead {
        let owner = bad
            .iter()
            .find(|b| contains(&d.body, b.withdrawal_id.as_bytes()));
        match owner {
            Some(b) => found.entry(b.withdrawal_id.as_str()).or_default().push(d),
            None => violations.push(format!(
                "unexpected dead letter (code {:?}): {}",
                d.error_code,
                preview(&d.body)
            )),
        }
    }
    for b in bad {
        let copies = found
            .get(b.withdrawal_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        if copies.len() != 1 {
            violations.push(format!(
                "{} ({}): {} cop{} in the dead-letter queue, expected exactly 1",
                b.withdrawal_id,
                b.kind.name(),
                copies.len(),
                if copies.len() == 1 { "y" } else { "ies" }
            ));
        }
        for d in copies {
            if d.error_code.as_deref() != Some(b.kind.expected_code()) {
                violations.push(format!(
                    "{} ({}): x-payout-error-code {:?}, expected {:?}",
                    b.withdrawal_id,
                    b.kind.name(),
                    d.error_code,
                    b.kind.expected_code()
                ));
            }
        }
    }
    Verdict::new(
        "dead_letters_exactly_once",
        "every bad input is in the dead-letter queue exactly once with its x-payout-error-code, and nothing else is",
        bad.len(),
        violations,
    )
}

/// Bad inputs move no money; forged, unsigned and unreadable ones produce no events;
/// authentic readable ones release their funds with one `withdrawal.failed`, paid 0.
pub fn bad_inputs_move_nothing(
    bad: &[BadInput],
    events: &[Event],
    ledger: &[LedgerLine],
) -> Verdict {
    let grouped = by_subject(events);
    let moves = moves_by_key(ledger);
    let mut violations = Vec::new();
    for b in bad {
        let evs = grouped
            .get(b.withdrawal_id.as_str())
            .map_or(&[][..], Vec::as_slice);
        for key in &b.keys {
            if moves.get(key.as_str()).copied().unwrap_or(0) > 0 {
                violations.push(format!("{}: key {key} moved money", b.withdrawal_id));
            }
        }
        if !b.kind.releases_funds() {
            if let Some(e) = evs.first() {
                violations.push(format!(
                    "{} ({}): produced event {} though it must produce none",
                    b.withdrawal_id,
                    b.kind.name(),
                    e.id
                ));
            }
            continue;
        }
        let ids: BTreeSet<&str> = evs.iter().map(|e| e.id.as_str()).collect();
        let all_failed_unpaid = evs
            .iter()
            .all(|e| e.kind == FAILED && e.money("paid_amount") == Some(Decimal::ZERO));
        if ids.len() != 1 || !all_failed_unpaid {
            violations.push(format!(
                "{} ({}): expected one withdrawal.failed with paid_amount 0.00, got {:?}",
                b.withdrawal_id,
                b.kind.name(),
                evs.iter().map(|e| e.id.as_str()).collect::<Vec<_>>()
            ));
        }
    }
    Verdict::new(
        "bad_inputs_move_nothing",
        "bad inputs move no money; forged, unsigned and unreadable ones produce no event; authentic readable ones one withdrawal.failed paying 0",
        bad.len(),
        violations,
    )
}

/// Each terminal event's legs came out as the mix designed them: paid legs paid
/// through the designed channel and route, refused legs failed (with the rule's code
/// when the routing rules refused them). Catches funds released on an unknown outcome
/// (a storm's 502 reported as a failure) and money routed the wrong way.
pub fn outcomes_as_designed(
    authentic: &[ExpectedWithdrawal],
    events: &[Event],
    verdicts: &[OperatorVerdict],
) -> Verdict {
    let terminal = first_terminal(events);
    // An operator's accepted verdict decides instead of the design (whether it was
    // right is operator_verdicts_match_ledger's question).
    let resolved: BTreeSet<&str> = verdicts.iter().map(|v| v.withdrawal.as_str()).collect();
    let mut violations = Vec::new();
    let mut checked = 0;
    for w in authentic {
        let Some(e) = terminal.get(w.id.as_str()) else {
            continue;
        };
        if resolved.contains(w.id.as_str()) {
            continue;
        }
        checked += 1;
        let all_paid = w
            .legs
            .iter()
            .all(|l| matches!(l.expect, Expect::Paid { .. }));
        let flexible = w
            .legs
            .iter()
            .any(|l| matches!(l.expect, Expect::WindowClosing { .. }));
        let want_kind = if all_paid { SUCCEEDED } else { FAILED };
        if !flexible && e.kind != want_kind {
            violations.push(format!("{}: {} but designed {want_kind}", w.id, e.kind));
        }
        for leg in &w.legs {
            let Some(got) = e
                .legs()
                .iter()
                .find(|l| l.get("leg_id").and_then(Value::as_str) == Some(leg.leg_id.as_str()))
            else {
                violations.push(format!(
                    "{}: leg {} missing from {}",
                    w.id, leg.leg_id, e.id
                ));
                continue;
            };
            let field = |f: &str| got.get(f).and_then(Value::as_str).unwrap_or("");
            let ok = match &leg.expect {
                Expect::Paid { channel, route } => {
                    field("status") == "succeeded"
                        && field("channel") == *channel
                        && field("route") == *route
                }
                Expect::Refused { code } => {
                    field("status") == "failed" && code.is_none_or(|c| field("failure_code") == c)
                }
                Expect::WindowClosing { channel, fallback } => match field("status") {
                    "succeeded" => {
                        (field("channel") == *channel && field("route") == "original")
                            || (*fallback
                                && field("channel") == "bank"
                                && field("route") == "fallback")
                    }
                    // Refused by the channel past its window, or by the rules.
                    "failed" => true,
                    _ => false,
                },
                // unknown_outcomes_reach_review says what is wrong with it.
                Expect::Unresolved => true,
            };
            if !ok {
                violations.push(format!(
                    "{}: leg {} designed {:?}, got status {:?} channel {:?} route {:?} failure_code {:?}",
                    w.id,
                    leg.leg_id,
                    leg.expect,
                    field("status"),
                    field("channel"),
                    field("route"),
                    field("failure_code")
                ));
            }
        }
    }
    Verdict::new(
        "outcomes_as_designed",
        "every terminal leg came out as designed: paid through the planned channel and route, or refused (with the routing rule's code)",
        checked,
        violations,
    )
}

/// Every worker asked to stop with SIGTERM drained and exited 0 (contract §6).
/// `exits`: (worker, seconds into the run, exit code; `None` if it had to be killed).
pub fn sigterm_exits_zero(exits: &[(usize, f64, Option<i32>)]) -> Verdict {
    let violations = exits
        .iter()
        .filter(|(_, _, code)| *code != Some(0))
        .map(|(worker, at, code)| match code {
            Some(c) => format!("worker {worker} SIGTERMed at {at:.1}s exited with status {c}"),
            None => format!("worker {worker} SIGTERMed at {at:.1}s did not exit in time (killed, or killed by a signal)"),
        })
        .collect();
    Verdict::new(
        "sigterm_exits_zero",
        "a worker stopped with SIGTERM drains and exits 0",
        exits.len(),
        violations,
    )
}

/// The run itself saw everything: every message published, the taps never broke off.
/// Without that the other verdicts mean little.
pub fn harness_complete(messages: usize, problems: Vec<String>) -> Verdict {
    Verdict::new(
        "harness_complete",
        "every planned message was published and the event and dead-letter taps saw the whole run",
        messages,
        problems,
    )
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn preview(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut p: String = text.chars().take(120).collect();
    if text.chars().count() > 120 {
        p.push('…');
    }
    p
}

#[cfg(test)]
mod tests;
