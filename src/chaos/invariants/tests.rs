//! The checker on hand-made inputs: a consistent run passes every invariant, and each
//! invariant fails on the one thing it guards.

use super::*;
use serde_json::json;

fn key(w: &str, leg: &str) -> String {
    leg_key(w, leg).unwrap()
}

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// wd-ok: two legs paid (alipay 10.00, wechat 5.00). wd-part: alipay 7.00 paid, bank
/// 3.00 refused by the channel. wd-rev: one alipay leg in review, 4.00 moved.
fn plan() -> (Vec<ExpectedWithdrawal>, Vec<BadInput>) {
    let paid = |channel, route| Expect::Paid { channel, route };
    let leg = |w: &str, id: &str, amount: &str, expect| ExpectedLeg {
        leg_id: id.into(),
        amount: d(amount),
        key: key(w, id),
        expect,
    };
    let authentic = vec![
        ExpectedWithdrawal {
            id: "wd-ok".into(),
            amount: d("15.00"),
            legs: vec![
                leg("wd-ok", "1", "10.00", paid("alipay", "original")),
                leg("wd-ok", "2", "5.00", paid("wechat_pay", "original")),
            ],
        },
        ExpectedWithdrawal {
            id: "wd-part".into(),
            amount: d("10.00"),
            legs: vec![
                leg("wd-part", "1", "7.00", paid("alipay", "designated")),
                leg("wd-part", "2", "3.00", Expect::Refused { code: None }),
            ],
        },
        ExpectedWithdrawal {
            id: "wd-rev".into(),
            amount: d("4.00"),
            legs: vec![leg("wd-rev", "1", "4.00", paid("alipay", "designated"))],
        },
        // An outcome no machine can resolve: in review, nothing moved.
        ExpectedWithdrawal {
            id: "wd-stuck".into(),
            amount: d("2.00"),
            legs: vec![leg("wd-stuck", "1", "2.00", Expect::Unresolved)],
        },
        // Held by a limit before any leg was sent.
        ExpectedWithdrawal {
            id: "wd-lim".into(),
            amount: d("6.00"),
            legs: vec![leg("wd-lim", "1", "6.00", paid("bank", "designated"))],
        },
    ];
    let bad = vec![
        BadInput {
            withdrawal_id: "bad-00001".into(),
            kind: BadKind::Forged,
            keys: vec![key("bad-00001", "1")],
        },
        BadInput {
            withdrawal_id: "bad-00002".into(),
            kind: BadKind::ThreeDecimals,
            keys: vec![key("bad-00002", "1")],
        },
    ];
    (authentic, bad)
}

fn event(kind: &str, subject: &str, data: Value) -> Event {
    let id = if kind == REVIEW {
        format!("{subject}:{kind}:outcome_unknown")
    } else {
        format!("{subject}:{kind}")
    };
    Event {
        id,
        kind: kind.into(),
        subject: subject.into(),
        data,
    }
}

fn events() -> Vec<Event> {
    vec![
        event("withdrawal.processing", "wd-ok", json!({})),
        event(
            SUCCEEDED,
            "wd-ok",
            json!({"amount": "15.00", "paid_amount": "15.00", "legs": [
            {"leg_id": "1", "amount": "10.00", "channel": "alipay", "route": "original", "status": "succeeded"},
            {"leg_id": "2", "amount": "5.00", "channel": "wechat_pay", "route": "original", "status": "succeeded"}]}),
        ),
        // Republished: same id.
        event(
            SUCCEEDED,
            "wd-ok",
            json!({"amount": "15.00", "paid_amount": "15.00", "legs": [
            {"leg_id": "1", "amount": "10.00", "channel": "alipay", "route": "original", "status": "succeeded"},
            {"leg_id": "2", "amount": "5.00", "channel": "wechat_pay", "route": "original", "status": "succeeded"}]}),
        ),
        event(
            FAILED,
            "wd-part",
            json!({"amount": "10.00", "paid_amount": "7.00", "unfreeze_amount": "3.00", "legs": [
            {"leg_id": "1", "amount": "7.00", "channel": "alipay", "route": "designated", "status": "succeeded"},
            {"leg_id": "2", "amount": "3.00", "channel": "bank", "route": "designated", "status": "failed", "failure_code": "AC04"}]}),
        ),
        event(
            REVIEW,
            "wd-rev",
            json!({"amount": "4.00", "legs": [{"leg_id": "1", "status": "unknown"}]}),
        ),
        event(
            REVIEW,
            "wd-stuck",
            json!({"amount": "2.00", "review_kind": "outcome_unknown", "legs": [{"leg_id": "1", "status": "unknown"}]}),
        ),
        Event {
            id: "wd-lim:review:limit".into(),
            kind: REVIEW.into(),
            subject: "wd-lim".into(),
            data: json!({"amount": "6.00", "review_kind": "limit", "reason": "max_age_secs", "legs": []}),
        },
        event(
            FAILED,
            "bad-00002",
            json!({"amount": "1.005", "paid_amount": "0.00", "unfreeze_amount": "1.005", "unfreeze_all": true, "legs": []}),
        ),
    ]
}

fn dead() -> Vec<DeadLetter> {
    vec![
        DeadLetter {
            body: br#"{"withdrawal_id":"bad-00001","forged":true}"#.to_vec(),
            error_code: Some("signature_invalid".into()),
        },
        DeadLetter {
            body: br#"{"withdrawal_id":"bad-00002","amount":"1.005"}"#.to_vec(),
            error_code: Some("invalid_amount".into()),
        },
    ]
}

fn line(channel: &str, key: String, amount: &str, moves: u32) -> LedgerLine {
    LedgerLine {
        channel: channel.into(),
        key,
        amount: amount.into(),
        moves,
    }
}

fn ledger() -> Vec<LedgerLine> {
    vec![
        line("alipay", key("wd-ok", "1"), "10.00", 1),
        line("wechat_pay", key("wd-ok", "2"), "5.00", 1),
        line("alipay", key("wd-part", "1"), "7.00", 1),
        line("bank", key("wd-part", "2"), "3.00", 0),
        line("alipay", key("wd-rev", "1"), "4.00", 1),
    ]
}

/// The operator confirmed by hand that wd-stuck's leg never reached the bank: failed
/// (nothing moved).
fn operator() -> Vec<OperatorVerdict> {
    vec![OperatorVerdict {
        withdrawal: "wd-stuck".into(),
        leg: "1".into(),
        outcome: "failed".into(),
    }]
}

struct Case {
    authentic: Vec<ExpectedWithdrawal>,
    bad: Vec<BadInput>,
    events: Vec<Event>,
    dead: Vec<DeadLetter>,
    ledger: Vec<LedgerLine>,
    operator: Vec<OperatorVerdict>,
}

impl Case {
    fn good() -> Self {
        let (authentic, bad) = plan();
        Self {
            authentic,
            bad,
            events: events(),
            dead: dead(),
            ledger: ledger(),
            operator: operator(),
        }
    }

    fn verdicts(&self) -> Vec<Verdict> {
        check_all(&Inputs {
            authentic: &self.authentic,
            bad: &self.bad,
            events: &self.events,
            dead: &self.dead,
            ledger: &self.ledger,
            verdicts: &self.operator,
        })
    }

    /// The names of the failing invariants.
    fn failing(&self) -> Vec<&'static str> {
        self.verdicts()
            .into_iter()
            .filter(|v| !v.passed)
            .map(|v| v.name)
            .collect()
    }

    fn violations(&self, name: &str) -> Vec<String> {
        self.verdicts()
            .into_iter()
            .find(|v| v.name == name)
            .unwrap()
            .violations
    }
}

#[test]
fn a_consistent_run_passes_everything() {
    let case = Case::good();
    for v in case.verdicts() {
        assert!(v.passed, "{v:?}");
        assert!(v.checked > 0, "{} checked nothing", v.name);
    }
    let o = outcomes(&case.authentic, &case.events);
    assert_eq!(o["wd-ok"], Outcome::Succeeded);
    assert_eq!(o["wd-part"], Outcome::Failed);
    assert_eq!(o["wd-rev"], Outcome::Review);
}

#[test]
fn a_key_paid_twice_fails_no_double_payout() {
    let mut case = Case::good();
    case.ledger[0].moves = 2;
    assert!(case.failing().contains(&"no_double_payout"));
    assert!(case.violations("no_double_payout")[0].contains("paid 2 times"));
    // The same key paid once through each of two channels is a double payout too.
    let mut case = Case::good();
    case.ledger
        .push(line("bank", key("wd-ok", "1"), "10.00", 1));
    assert!(case.failing().contains(&"no_double_payout"));
}

#[test]
fn both_terminal_kinds_or_nothing_fails_one_outcome_each() {
    let mut case = Case::good();
    case.events.push(event(
        FAILED,
        "wd-ok",
        json!({"amount": "15.00", "paid_amount": "0.00", "unfreeze_amount": "15.00", "legs": []}),
    ));
    assert_eq!(
        outcomes(&case.authentic, &case.events)["wd-ok"],
        Outcome::Conflicting
    );
    assert!(case.violations("one_outcome_each")[0].contains("several terminal events"));

    let mut case = Case::good();
    case.events.retain(|e| e.subject != "wd-part");
    assert_eq!(
        outcomes(&case.authentic, &case.events)["wd-part"],
        Outcome::Unfinished
    );
    assert!(case.violations("one_outcome_each")[0].contains("no terminal event"));
}

#[test]
fn a_failed_event_that_does_not_add_up_or_released_moved_money_fails() {
    let mut case = Case::good();
    case.events[3].data["unfreeze_amount"] = json!("2.00");
    assert_eq!(case.failing(), vec!["failed_events_add_up"]);

    // The refused leg's money moved after all: funds released for money that left.
    let mut case = Case::good();
    case.ledger[3].moves = 1;
    assert!(case.failing().contains(&"failed_events_add_up"));
    assert!(case.violations("failed_events_add_up")[0].contains("moved 1 time"));

    // A succeeded event that did not pay everything.
    let mut case = Case::good();
    case.events[1].data["paid_amount"] = json!("14.00");
    assert!(case.failing().contains(&"failed_events_add_up"));
}

#[test]
fn money_moved_that_no_event_accounts_for_fails_ledger_matches_events() {
    // A payout under a key that belongs to no withdrawal.
    let mut case = Case::good();
    case.ledger
        .push(line("alipay", "PO-STRAY".into(), "1.00", 1));
    assert_eq!(case.failing(), vec!["ledger_matches_events"]);
    let v = case.violations("ledger_matches_events");
    assert!(
        v[0].starts_with(
            "ledger total 27.00 != terminal events' paid total 22.00 + in review 4.00"
        ),
        "{v:?}"
    );
    assert!(v.iter().any(|s| s.contains("PO-STRAY")));

    // The ledger paid a different amount than the event says.
    let mut case = Case::good();
    case.ledger[1].amount = "4.00".into();
    assert_eq!(case.failing(), vec!["ledger_matches_events"]);
    assert!(case.violations("ledger_matches_events")[1].contains("wd-ok"));

    // An unreadable amount is reported, not skipped.
    let mut case = Case::good();
    case.ledger[1].amount = "5,00".into();
    assert!(case.failing().contains(&"ledger_matches_events"));
}

#[test]
fn a_bad_input_missing_repeated_or_miscoded_fails_dead_letters_exactly_once() {
    let mut case = Case::good();
    case.dead.remove(0);
    assert_eq!(case.failing(), vec!["dead_letters_exactly_once"]);
    assert!(case.violations("dead_letters_exactly_once")[0].contains("0 copies"));

    let mut case = Case::good();
    case.dead.push(case.dead[1].clone());
    assert!(case.violations("dead_letters_exactly_once")[0].contains("2 copies"));

    let mut case = Case::good();
    case.dead[1].error_code = None;
    assert!(case.violations("dead_letters_exactly_once")[0].contains("expected \"invalid_amount\""));

    // A valid withdrawal has no business in the dead-letter queue.
    let mut case = Case::good();
    case.dead.push(DeadLetter {
        body: br#"{"withdrawal_id":"wd-ok"}"#.to_vec(),
        error_code: Some("duplicate_conflict".into()),
    });
    assert!(case.violations("dead_letters_exactly_once")[0].starts_with("unexpected dead letter"));
}

#[test]
fn a_forged_input_with_an_event_or_a_paid_bad_input_fails_bad_inputs_move_nothing() {
    let mut case = Case::good();
    case.events
        .push(event(FAILED, "bad-00001", json!({"paid_amount": "0.00"})));
    assert_eq!(case.failing(), vec!["bad_inputs_move_nothing"]);

    let mut case = Case::good();
    case.ledger
        .push(line("alipay", key("bad-00002", "1"), "1.00", 1));
    assert!(case.failing().contains(&"bad_inputs_move_nothing"));

    // An authentic invalid command must release its funds.
    let mut case = Case::good();
    case.events.retain(|e| e.subject != "bad-00002");
    assert_eq!(case.failing(), vec!["bad_inputs_move_nothing"]);
}

#[test]
fn a_leg_failed_on_an_unknown_or_routed_elsewhere_fails_outcomes_as_designed() {
    // A storm's 502 turned into a failure: nothing moved, the amounts add up, and yet
    // funds were released for a leg that should have been paid.
    let mut case = Case::good();
    case.events[1] = event(
        FAILED,
        "wd-ok",
        json!({"amount": "15.00", "paid_amount": "10.00", "unfreeze_amount": "5.00", "legs": [
        {"leg_id": "1", "channel": "alipay", "route": "original", "status": "succeeded"},
        {"leg_id": "2", "channel": "wechat_pay", "route": "original", "status": "failed", "failure_code": "SYSTEM_ERROR"}]}),
    );
    case.events.remove(2);
    case.ledger[1].moves = 0;
    assert_eq!(case.failing(), vec!["outcomes_as_designed"]);

    let mut case = Case::good();
    case.events[3].data["legs"][0]["route"] = json!("fallback");
    assert_eq!(case.failing(), vec!["outcomes_as_designed"]);

    // A routing refusal must carry the rule's code.
    let mut case = Case::good();
    case.authentic[1].legs[1].expect = Expect::Refused {
        code: Some("original_route_expired"),
    };
    assert!(case.violations("outcomes_as_designed")[0].contains("original_route_expired"));
}

#[test]
fn ledger_amounts_are_read_in_yuan() {
    assert_eq!(
        line("alipay", "k".into(), "12.34", 1).yuan(),
        Some(d("12.34"))
    );
    assert_eq!(
        line("wechat_pay", "k".into(), "12.34", 1).moved(),
        Some(d("12.34"))
    );
    assert_eq!(
        line("unionpay", "k".into(), "12.34", 0).moved(),
        Some(Decimal::ZERO)
    );
    assert_eq!(line("bank", "k".into(), "twelve", 1).yuan(), None);
}

#[test]
fn events_parse_from_cloudevents_bodies() {
    let body = br#"{"specversion":"1.0","id":"w:withdrawal.failed","type":"withdrawal.failed","subject":"w","data":{"paid_amount":"0.00"}}"#;
    let e = Event::parse(body).unwrap();
    assert_eq!(
        (e.id.as_str(), e.kind.as_str(), e.subject.as_str()),
        ("w:withdrawal.failed", FAILED, "w")
    );
    assert_eq!(e.money("paid_amount"), Some(Decimal::ZERO));
    assert!(Event::parse(b"not json").is_none());
}

#[test]
fn listed_violations_are_capped_but_counted() {
    let ledger: Vec<LedgerLine> = (0..30)
        .map(|i| line("alipay", format!("K{i}"), "1.00", 2))
        .collect();
    let v = no_double_payout(&ledger);
    assert_eq!((v.violation_count, v.violations.len()), (30, MAX_LISTED));
}

#[test]
fn an_accepted_verdict_the_ledger_contradicts_fails_operator_verdicts_match_ledger() {
    // failed, but the key moved (the bank settled after the operator released it).
    let mut case = Case::good();
    case.operator.push(OperatorVerdict {
        withdrawal: "wd-rev".into(),
        leg: "1".into(),
        outcome: "failed".into(),
    });
    assert_eq!(case.failing(), vec!["operator_verdicts_match_ledger"]);
    assert!(case.violations("operator_verdicts_match_ledger")[0].contains("moved 1 time"));
    // paid, but nothing moved (a never-sent leg marked paid).
    let mut case = Case::good();
    case.operator.push(OperatorVerdict {
        withdrawal: "wd-lim".into(),
        leg: "1".into(),
        outcome: "paid".into(),
    });
    assert_eq!(case.failing(), vec!["operator_verdicts_match_ledger"]);
    assert!(case.violations("operator_verdicts_match_ledger")[0].contains("never moved"));
    // paid and moved is fine.
    let ok = [OperatorVerdict {
        withdrawal: "wd-rev".into(),
        leg: "1".into(),
        outcome: "paid".into(),
    }];
    assert!(operator_verdicts_match_ledger(&ok, &ledger()).passed);
}

#[test]
fn a_key_paid_through_two_channels_fails_one_channel_per_key() {
    let mut case = Case::good();
    case.ledger
        .push(line("bank", key("wd-ok", "1"), "10.00", 1));
    let failing = case.failing();
    assert!(failing.contains(&"one_channel_per_key"), "{failing:?}");
    assert!(case.violations("one_channel_per_key")[0].contains("alipay"));
    // Seen by a second channel without moving there is not a second payment.
    let mut ledger = ledger();
    ledger.push(line("bank", key("wd-ok", "1"), "10.00", 0));
    assert!(one_channel_per_key(&ledger).passed);
}

#[test]
fn a_release_of_moved_money_fails_failed_releases_only_unmoved() {
    // Redis wiped, the leg re-planned and refused: the event calls the alipay leg
    // failed and releases all of it, but the ledger shows it paid.
    let mut case = Case::good();
    case.events.push(event(
        FAILED,
        "wd-rev",
        json!({"amount": "4.00", "paid_amount": "0.00", "unfreeze_amount": "4.00", "legs": [
            {"leg_id": "1", "amount": "4.00", "channel": "alipay", "route": "original", "status": "failed",
             "failure_code": "original_route_expired"}]}),
    ));
    assert!(case.failing().contains(&"failed_releases_only_unmoved"));
    assert!(case.violations("failed_releases_only_unmoved")[0].contains("moved 4.00"));
    // Releasing exactly what did not move holds.
    let events = events();
    let (authentic, _) = plan();
    assert!(failed_releases_only_unmoved(&authentic, &events, &ledger()).passed);
}

#[test]
fn a_limit_review_of_a_sent_withdrawal_fails_limit_reviews_only_unsent() {
    let mut case = Case::good();
    // The bank had accepted wd-lim's leg (pending: no move yet) before the review.
    case.ledger
        .push(line("bank", key("wd-lim", "1"), "6.00", 0));
    assert_eq!(case.failing(), vec!["limit_reviews_only_unsent"]);
    assert!(case.violations("limit_reviews_only_unsent")[0].contains("wd-lim"));
}

#[test]
fn an_unknown_outcome_without_review_or_released_fails_unknown_outcomes_reach_review() {
    let mut case = Case::good();
    case.events.retain(|e| e.subject != "wd-stuck");
    assert!(case.failing().contains(&"unknown_outcomes_reach_review"));
    assert!(case.violations("unknown_outcomes_reach_review")[0].contains("never sent to review"));
    // Released with no operator verdict: the worker gave up on an unknown outcome.
    let mut case = Case::good();
    case.operator.clear();
    case.events.push(event(
        FAILED,
        "wd-stuck",
        json!({"amount": "2.00", "paid_amount": "0.00", "unfreeze_amount": "2.00", "legs": [
            {"leg_id": "1", "amount": "2.00", "channel": "bank", "route": "designated", "status": "failed"}]}),
    ));
    assert!(case.failing().contains(&"unknown_outcomes_reach_review"));
}

#[test]
fn a_window_closing_leg_may_go_either_legitimate_way() {
    let w = ExpectedWithdrawal {
        id: "wd-win".into(),
        amount: d("5.00"),
        legs: vec![ExpectedLeg {
            leg_id: "1".into(),
            amount: d("5.00"),
            key: key("wd-win", "1"),
            expect: Expect::WindowClosing {
                channel: "alipay",
                fallback: true,
            },
        }],
    };
    let ended = |kind: &str, channel: &str, route: &str, status: &str| {
        vec![event(
            kind,
            "wd-win",
            json!({"amount": "5.00", "paid_amount": "5.00", "legs": [
                {"leg_id": "1", "amount": "5.00", "channel": channel, "route": route, "status": status}]}),
        )]
    };
    let ok = |evs: Vec<Event>| outcomes_as_designed(std::slice::from_ref(&w), &evs, &[]).passed;
    assert!(ok(ended(SUCCEEDED, "alipay", "original", "succeeded")));
    assert!(ok(ended(SUCCEEDED, "bank", "fallback", "succeeded")));
    assert!(ok(ended(FAILED, "alipay", "original", "failed")));
    assert!(!ok(ended(SUCCEEDED, "wechat_pay", "original", "succeeded")));
}
