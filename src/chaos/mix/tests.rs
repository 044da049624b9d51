//! The mix: seeded, covering, and agreeing with the parser and the routing rules.

use super::*;
use crate::domain::command::parse_command;

fn mix(seed: u64, n: usize) -> Mix {
    let now = DateTime::parse_from_rfc3339("2026-11-20T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    build(seed, n, Duration::from_secs(100), now)
}

#[test]
fn the_same_seed_gives_the_same_mix() {
    let (a, b) = (mix(7, 300), mix(7, 300));
    let bodies = |m: &Mix| {
        m.messages
            .iter()
            .map(|o| (o.at, o.body.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(bodies(&a), bodies(&b));
    assert_ne!(bodies(&a), bodies(&mix(8, 300)));
}

#[test]
fn counts_coverage_and_order() {
    let m = mix(3, 400);
    assert_eq!(m.authentic.len() + m.bad.len(), 400);
    assert_eq!(m.bad.len(), 20);
    let originals = m.messages.iter().filter(|o| !o.duplicate).count();
    let duplicates = m.messages.len() - originals;
    assert_eq!(originals, 400);
    assert!((15..=70).contains(&duplicates), "{duplicates}");
    assert!(m.messages.windows(2).all(|w| w[0].at <= w[1].at));
    for design in DESIGNS.iter().map(|(d, _)| *d) {
        assert!(
            m.designs.get(design).copied().unwrap_or(0) > 0,
            "{design} missing"
        );
    }
    for kind in BadKind::ALL {
        assert!(m.bad.iter().any(|b| b.kind == kind), "{kind:?} missing");
    }
    // Every channel is paid somewhere, and refused somewhere.
    for channel in ["alipay", "wechat_pay", "unionpay", "bank"] {
        assert!(m
            .authentic
            .iter()
            .flat_map(|w| &w.legs)
            .any(|l| matches!(l.expect, Expect::Paid { channel: c, .. } if c == channel)));
    }
    // A duplicate has the exact bytes of its original.
    let dup = m.messages.iter().find(|o| o.duplicate).unwrap();
    let orig = m
        .messages
        .iter()
        .find(|o| !o.duplicate && o.withdrawal_id == dup.withdrawal_id)
        .unwrap();
    assert_eq!(dup.body, orig.body);
    assert!(dup.at >= orig.at);
}

#[test]
fn authentic_commands_parse_and_match_their_expectations() {
    let m = mix(11, 300);
    let currencies = ["CNY".to_owned()];
    for w in &m.authentic {
        let body = &m
            .messages
            .iter()
            .find(|o| o.withdrawal_id == w.id)
            .unwrap()
            .body;
        let parsed = parse_command(body, &currencies).unwrap();
        assert_eq!(parsed.amount.decimal(), w.amount);
        assert_eq!(parsed.legs.len(), w.legs.len());
        for (leg, exp) in parsed.legs.iter().zip(&w.legs) {
            assert_eq!(leg.amount.decimal(), exp.amount);
            assert_eq!(
                IdempotencyKey::for_leg(&parsed.id, &leg.id).as_str(),
                exp.key
            );
        }
    }
}

#[test]
fn the_routing_rules_agree_with_the_designed_routes() {
    use crate::routing::{Plan, RouteTaken, Rules};
    let now = DateTime::parse_from_rfc3339("2026-11-20T08:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let rules = Rules::from_settings(&crate::config::Settings::defaults().rules);
    let m = mix(5, 400);
    for w in &m.authentic {
        let body = &m
            .messages
            .iter()
            .find(|o| o.withdrawal_id == w.id)
            .unwrap()
            .body;
        let parsed = parse_command(body, &["CNY".to_owned()]).unwrap();
        for (leg, exp) in parsed.legs.iter().zip(&w.legs) {
            match (rules.plan(&parsed, leg, now), &exp.expect) {
                (Plan::Pay(route), Expect::Paid { route: r, .. }) => {
                    assert_eq!(route.as_str(), *r, "{}", w.id)
                }
                (Plan::Refuse { code, .. }, Expect::Refused { code: Some(c) }) => {
                    assert_eq!(code, *c, "{}", w.id)
                }
                // The channel refuses these; the rules let them through.
                (
                    Plan::Pay(RouteTaken::Original | RouteTaken::Designated),
                    Expect::Refused { code: None },
                ) => {}
                (plan, exp) => panic!("{}: rules say {plan:?}, designed {exp:?}", w.id),
            }
        }
    }
}

#[test]
fn bad_inputs_are_refused_with_their_codes_and_carry_their_marker() {
    let m = mix(2, 200);
    let currencies = ["CNY".to_owned()];
    for b in &m.bad {
        let out = m
            .messages
            .iter()
            .find(|o| o.withdrawal_id == b.withdrawal_id)
            .unwrap();
        assert!(String::from_utf8_lossy(&out.body).contains(&b.withdrawal_id));
        let parsed = parse_command(&out.body, &currencies);
        match b.kind {
            BadKind::Unsigned | BadKind::Forged => assert!(parsed.is_ok()),
            kind => assert_eq!(
                parsed.unwrap_err().code.as_str(),
                kind.expected_code(),
                "{kind:?}"
            ),
        }
    }
    // No marker occurs inside another message.
    for b in &m.bad {
        let holders = m
            .messages
            .iter()
            .filter(|o| {
                o.body
                    .windows(b.withdrawal_id.len())
                    .any(|w| w == b.withdrawal_id.as_bytes())
            })
            .count();
        assert_eq!(holders, 1, "{}", b.withdrawal_id);
    }
}

#[test]
fn extra_designs_close_windows_and_age_during_the_run() {
    use crate::limits::check_command;
    use crate::routing::{Plan, RouteTaken, Rules};
    let now = DateTime::parse_from_rfc3339("2026-12-02T01:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let settings = crate::config::Settings::defaults();
    let rules = Rules::from_settings(&settings.rules);
    let mut limits = settings.limits.clone();
    limits.max_age_secs = 3600;
    let window = Duration::from_secs(30);
    let extras = Extras {
        designs: EXTRA_DESIGNS.iter().map(|(d, _)| *d).collect(),
        rules: rules.clone(),
        max_age_secs: 3600,
    };
    let m = build_with(4, 600, window, now, extras.clone());
    let again = build_with(4, 600, window, now, extras);
    assert_eq!(
        m.messages
            .iter()
            .map(|o| (o.at, &o.body))
            .collect::<Vec<_>>(),
        again
            .messages
            .iter()
            .map(|o| (o.at, &o.body))
            .collect::<Vec<_>>()
    );
    for (d, _) in EXTRA_DESIGNS {
        assert!(m.designs.get(d).copied().unwrap_or(0) > 0, "{d} missing");
    }
    assert!(m.messages.windows(2).all(|w| w[0].at <= w[1].at));
    let currencies = ["CNY".to_owned()];
    let (mut windows, mut aging, mut stuck) = (0, 0, 0);
    for w in &m.authentic {
        let copies: Vec<&Outgoing> = m
            .messages
            .iter()
            .filter(|o| o.withdrawal_id == w.id)
            .collect();
        let first = copies.iter().find(|o| !o.duplicate).unwrap();
        let published = now + Days::milliseconds(first.at.as_millis() as i64);
        let parsed = parse_command(&first.body, &currencies).unwrap();
        let leg_expects: Vec<&Expect> = w.legs.iter().map(|l| &l.expect).collect();
        if leg_expects.contains(&&Expect::Unresolved) {
            stuck += 1;
            assert_eq!(copies.len(), 3, "{}", w.id);
        }
        if let Some(Expect::WindowClosing { .. }) = leg_expects.first() {
            windows += 1;
            let leg = &parsed.legs[0];
            // Open when published (and approved), closed 3-10 s later.
            let at = |secs| published + Days::seconds(secs);
            assert_eq!(
                rules.plan(&parsed, leg, at(0)),
                Plan::Pay(RouteTaken::Original)
            );
            assert_ne!(
                rules.plan(&parsed, leg, at(11)),
                Plan::Pay(RouteTaken::Original),
                "{}",
                w.id
            );
            let txn = first_txn(&first.body);
            let closes = m.windows[&txn];
            assert!(closes > at(2) && closes <= at(10), "{}", w.id);
            // The slow bank leg keeps it in flight past the deadline.
            assert!(String::from_utf8_lossy(&first.body).contains("0002\""));
        }
        if parsed.approved_at < now {
            aging += 1;
            assert!(check_command(&parsed, &limits, published).is_none());
            assert!(check_command(&parsed, &limits, published + Days::seconds(9)).is_some());
        }
    }
    assert!(windows > 0 && aging > 0 && stuck > 0);
    // Without extras the mix is what it always was.
    let plain = build_with(4, 200, window, now, Extras::none());
    assert!(plain.windows.is_empty());
    assert_eq!(
        plain.messages.iter().map(|o| &o.body).collect::<Vec<_>>(),
        build(4, 200, window, now)
            .messages
            .iter()
            .map(|o| &o.body)
            .collect::<Vec<_>>()
    );
}

fn first_txn(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    v["legs"][0]["source"]["channel_txn_id"]
        .as_str()
        .unwrap()
        .to_owned()
}
