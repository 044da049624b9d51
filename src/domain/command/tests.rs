//! Tests of the command parser: every reject code, the digest, and any input never panics.

use super::*;
use proptest::prelude::*;
use serde_json::json;

pub(crate) fn contract_example() -> serde_json::Value {
    json!({
      "type": "withdrawal.approved", "version": 1,
      "withdrawal_id": "wd-20261120-000123", "account_id": "acct-42",
      "verified_name": "Zhang San", "currency": "CNY", "amount": "1500.00",
      "approved_at": "2026-11-20T08:00:00Z",
      "legs": [
        { "leg_id": "1", "amount": "1000.00", "route": "original", "channel": "alipay",
          "source": { "topup_id": "tp-9", "channel_txn_id": "2026031522001456", "paid_at": "2026-03-15T10:00:00Z" },
          "fallback_payee": { "kind": "bank_card", "name": "Zhang San", "account_no": "6222020200112233445", "bank_name": "ICBC", "branch": "Hangzhou Xihu Sub-branch" } },
        { "leg_id": "2", "amount": "500.00", "route": "designated", "channel": "bank",
          "payee": { "kind": "bank_card", "name": "Zhang San", "account_no": "6222020200112233445", "bank_name": "ICBC", "branch": "Hangzhou Xihu Sub-branch" } }
      ]
    })
}

fn cny() -> Vec<String> {
    vec!["CNY".into()]
}

fn code_of(v: serde_json::Value) -> RejectCode {
    parse_command(v.to_string().as_bytes(), &cny())
        .unwrap_err()
        .code
}

#[test]
fn parses_the_contract_example() {
    let w = parse_command(contract_example().to_string().as_bytes(), &cny()).unwrap();
    assert_eq!(w.id.as_str(), "wd-20261120-000123");
    assert_eq!(w.legs.len(), 2);
    assert!(matches!(
        w.legs[0].route,
        Route::Original {
            fallback_payee: Some(_),
            ..
        }
    ));
    assert!(matches!(w.legs[1].route, Route::Designated { .. }));
    assert_eq!(w.amount.to_yuan_string(), "1500.00");
}

#[test]
fn digest_ignores_key_order_but_not_content() {
    let a = parse_command(contract_example().to_string().as_bytes(), &cny()).unwrap();
    let reordered = r#"{"version":1,"type":"withdrawal.approved","withdrawal_id":"wd-20261120-000123","account_id":"acct-42","verified_name":"Zhang San","currency":"CNY","amount":"1500.00","approved_at":"2026-11-20T08:00:00Z","legs":[{"amount":"1000.00","leg_id":"1","route":"original","channel":"alipay","source":{"topup_id":"tp-9","channel_txn_id":"2026031522001456","paid_at":"2026-03-15T10:00:00Z"},"fallback_payee":{"kind":"bank_card","name":"Zhang San","account_no":"6222020200112233445","bank_name":"ICBC","branch":"Hangzhou Xihu Sub-branch"}},{"leg_id":"2","amount":"500.00","route":"designated","channel":"bank","payee":{"kind":"bank_card","name":"Zhang San","account_no":"6222020200112233445","bank_name":"ICBC","branch":"Hangzhou Xihu Sub-branch"}}]}"#;
    let b = parse_command(reordered.as_bytes(), &cny()).unwrap();
    assert_eq!(a.digest, b.digest);
    let mut other = contract_example();
    other["account_id"] = json!("acct-43");
    let c = parse_command(other.to_string().as_bytes(), &cny()).unwrap();
    assert_ne!(a.digest, c.digest);
}

#[test]
fn each_violation_has_its_code() {
    assert_eq!(
        parse_command(b"not json", &cny()).unwrap_err().code,
        RejectCode::MalformedJson
    );
    assert_eq!(
        parse_command(b"[1]", &cny()).unwrap_err().code,
        RejectCode::MalformedJson
    );
    let mut v = contract_example();
    v["version"] = json!(2);
    assert_eq!(code_of(v), RejectCode::UnsupportedVersion);
    let mut v = contract_example();
    v["amount"] = json!(1500);
    assert_eq!(code_of(v), RejectCode::SchemaInvalid);
    let mut v = contract_example();
    v["legs"][1]["amount"] = json!("500.001");
    assert_eq!(code_of(v), RejectCode::InvalidAmount);
    let mut v = contract_example();
    v["legs"][1]["amount"] = json!("400.00");
    assert_eq!(code_of(v), RejectCode::AmountMismatch);
    let mut v = contract_example();
    v["currency"] = json!("USD");
    assert_eq!(code_of(v), RejectCode::UnsupportedCurrency);
    let mut v = contract_example();
    v["withdrawal_id"] = json!("wd/1");
    assert_eq!(code_of(v), RejectCode::SchemaInvalid);
    let mut v = contract_example();
    v["legs"][1]["leg_id"] = json!("1");
    assert_eq!(code_of(v), RejectCode::SchemaInvalid);
    let mut v = contract_example();
    v["legs"][1]["channel"] = json!("paypal");
    assert_eq!(code_of(v), RejectCode::SchemaInvalid);
    let mut v = contract_example();
    v["legs"][1]["channel"] = json!("wechat_pay");
    assert_eq!(code_of(v), RejectCode::SchemaInvalid);
    let mut v = contract_example();
    v["legs"][0]["fallback_payee"]["kind"] = json!("alipay");
    assert_eq!(code_of(v), RejectCode::SchemaInvalid);
    let mut v = contract_example();
    v.as_object_mut().unwrap().remove("version");
    assert_eq!(code_of(v), RejectCode::SchemaInvalid);
}

#[test]
fn times_outside_years_0000_to_9999_in_utc_are_refused() {
    // Found by the fuzz targets: valid RFC 3339 text whose offset moves the instant out of range.
    for at in ["0000-01-01T00:30:00+01:00", "9999-12-31T23:59:59-23:59"] {
        let mut v = contract_example();
        v["approved_at"] = json!(at);
        assert_eq!(code_of(v), RejectCode::SchemaInvalid, "{at}");
        let mut v = contract_example();
        v["legs"][0]["source"]["paid_at"] = json!(at);
        assert_eq!(code_of(v), RejectCode::SchemaInvalid, "{at}");
    }
}

#[test]
fn named_withdrawal_reads_only_valid_ids() {
    let v = json!({"withdrawal_id": "wd-1", "amount": 3});
    assert_eq!(named_withdrawal(&v).unwrap().as_str(), "wd-1");
    assert!(named_withdrawal(&json!({"withdrawal_id": "bad id"})).is_none());
    assert!(named_withdrawal(&json!({"withdrawal_id": 5})).is_none());
}

proptest! {
    #[test]
    fn any_bytes_give_a_value_or_a_classified_error(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_command(&body, &cny());
    }

    #[test]
    fn any_json_mutation_is_classified(path in 0usize..12, val in prop_oneof![
        Just(json!(null)), Just(json!("")), Just(json!("0.001")), Just(json!(-1)),
        Just(json!([])), Just(json!({})), ".{0,20}".prop_map(serde_json::Value::String)
    ]) {
        let mut v = contract_example();
        let fields = ["type","withdrawal_id","account_id","verified_name","currency","amount","approved_at","legs"];
        if path < fields.len() { v[fields[path]] = val; } else {
            let leg_fields = ["leg_id","amount","route","channel"];
            v["legs"][0][leg_fields[path - fields.len()]] = val;
        }
        // Must not panic; an error always carries a message.
        if let Err(e) = parse_value(v, &cny()) { prop_assert!(!e.message.is_empty()); }
    }
}

// ---- no message echoes a value (issue 15, row 7) ------------------------------------

const CARD: &str = "6222020200112233445";
const CARD_NUMBER: u64 = 6_222_020_200_112_233_445;

/// Wrong shapes, each holding the card number somewhere.
fn planted() -> Vec<serde_json::Value> {
    vec![
        json!(CARD_NUMBER),
        json!(CARD),
        json!(format!("{CARD}.00")),
        json!(format!("-{CARD}")),
        json!(format!("{CARD}e3")),
        json!(format!("2026-11-20T08:00:00Z{CARD}")),
        json!({ "value": CARD }),
        json!({ CARD: 1 }),
        json!([CARD_NUMBER]),
        json!([CARD]),
        json!([{ "account_no": CARD_NUMBER }]),
    ]
}

/// Every field of the command, as a path from the top (`None`: the example has no such
/// field there yet; it is added).
fn every_field() -> Vec<Vec<&'static str>> {
    let mut paths: Vec<Vec<&str>> = [
        "type",
        "version",
        "withdrawal_id",
        "account_id",
        "verified_name",
        "currency",
        "amount",
        "approved_at",
        "legs",
    ]
    .iter()
    .map(|f| vec![*f])
    .collect();
    for leg in ["0", "1"] {
        for f in [
            "leg_id",
            "amount",
            "route",
            "channel",
            "source",
            "payee",
            "fallback_payee",
        ] {
            paths.push(vec!["legs", leg, f]);
        }
        paths.push(vec!["legs", leg]);
    }
    for f in ["topup_id", "channel_txn_id", "paid_at", "bank"] {
        paths.push(vec!["legs", "0", "source", f]);
    }
    for (leg, payee) in [("0", "fallback_payee"), ("1", "payee")] {
        for f in ["kind", "name", "account_no", "bank_name", "branch"] {
            paths.push(vec!["legs", leg, payee, f]);
        }
    }
    paths
}

fn set(v: &mut serde_json::Value, path: &[&str], new: serde_json::Value) {
    let mut at = v;
    for step in path {
        at = match step.parse::<usize>() {
            Ok(i) => &mut at[i],
            Err(_) => &mut at[*step],
        };
    }
    *at = new;
}

/// A card number planted in any field, in any wrong shape, never appears in the
/// refusal's message (which goes to the log, `x-payout-error` and `failure_reason`).
/// The one exception is by design: `withdrawal_id` and `leg_id` are identifiers and are
/// echoed as such once valid (a card number is a valid id: a repeated leg id names it).
#[test]
fn no_refusal_echoes_a_planted_card_number() {
    let mut refused = 0;
    for path in every_field() {
        for shape in planted() {
            let mut v = contract_example();
            set(&mut v, &path, shape.clone());
            if let Err(e) = parse_command(v.to_string().as_bytes(), &cny()) {
                refused += 1;
                assert!(!e.to_string().contains(CARD), "{path:?} = {shape}: {e}");
            }
        }
    }
    assert!(
        refused > 300,
        "only {refused} refusals: the sweep lost its reach"
    );

    // Unknown keys and values anywhere are ignored, never quoted.
    let mut v = contract_example();
    v[CARD] = json!(CARD_NUMBER);
    v["legs"][1]["payee"][CARD] = json!(CARD);
    assert!(parse_command(v.to_string().as_bytes(), &cny()).is_ok());
    // Bodies that are not JSON, or repeat a key, with the number in them.
    for body in [
        format!(r#"{{"account_no": {CARD}x}}"#),
        format!(r#"{{"account_no": "{CARD}"#),
        format!(r#"{{"account_no": {CARD}, "account_no": "{CARD}"}}"#),
        format!(r#"{{"{CARD}": 1, "{CARD}": 2}}"#),
        format!(r#"["{CARD}"]"#),
        CARD.to_string(),
        format!("\"{CARD}\""),
    ] {
        let e = parse_command(body.as_bytes(), &cny()).unwrap_err();
        assert!(!e.to_string().contains(CARD), "{body}: {e}");
    }
    // The exception: two legs with the same (valid) id.
    let mut v = contract_example();
    v["legs"][0]["leg_id"] = json!(CARD);
    v["legs"][1]["leg_id"] = json!(CARD);
    let e = parse_command(v.to_string().as_bytes(), &cny()).unwrap_err();
    assert!(e.message.contains(CARD), "ids are echoed as ids: {e}");
}

/// A wrong shape names the field's path and what was expected.
#[test]
fn a_wrong_shape_names_the_field_and_the_shape() {
    let mut v = contract_example();
    v["legs"][1]["payee"]["account_no"] = json!(CARD_NUMBER);
    let e = parse_command(v.to_string().as_bytes(), &cny()).unwrap_err();
    assert_eq!(e.code, RejectCode::SchemaInvalid);
    assert_eq!(
        e.message,
        "legs[1].payee.account_no must be a string, not a number"
    );
    let mut v = contract_example();
    v["legs"][0]["source"] = json!([1]);
    let e = parse_command(v.to_string().as_bytes(), &cny()).unwrap_err();
    assert_eq!(e.message, "legs[0].source must be an object, not an array");
    let mut v = contract_example();
    v["legs"][0]["source"]
        .as_object_mut()
        .unwrap()
        .remove("paid_at");
    let e = parse_command(v.to_string().as_bytes(), &cny()).unwrap_err();
    assert_eq!(e.message, "missing field `legs[0].source.paid_at`");
    let mut v = contract_example();
    v["amount"] = json!("01.00");
    let e = parse_command(v.to_string().as_bytes(), &cny()).unwrap_err();
    assert_eq!(e.code, RejectCode::InvalidAmount);
    assert!(e.message.starts_with("amount: not a decimal amount"), "{e}");
}

// ---- a body is read one way only (row 9) --------------------------------------------

#[test]
fn a_repeated_key_at_any_depth_is_refused() {
    let example = contract_example().to_string();
    // Each edit repeats one key: top level, in a leg, in a source, in a payee, in an
    // object the contract does not name, in an array, and spelled with an escape.
    for (find, repeat) in [
        (
            r#""amount":"1500.00""#,
            r#""amount":"1500.00","amount":"1.00""#,
        ),
        (
            r#""amount":"500.00""#,
            r#""amount":"500.00","amount":"500.00""#,
        ),
        (
            r#""paid_at":"2026-03-15T10:00:00Z""#,
            r#""paid_at":"2026-03-15T10:00:00Z","paid_at":"2026-03-15T10:00:00Z""#,
        ),
        (
            r#""kind":"bank_card","#,
            r#""kind":"bank_card","kind":"alipay","#,
        ),
        (r#""version":1"#, r#""version":1,"extra":{"a":1,"a":1}"#),
        (
            r#""version":1"#,
            r#""version":1,"extra":[{"b":[{"a":1,"a":2}]}]"#,
        ),
        (
            r#""currency":"CNY""#,
            r#""currency":"CNY","\u0063urrency":"CNY""#,
        ),
    ] {
        assert!(example.contains(find), "{find}");
        let body = example.replacen(find, repeat, 1);
        let e = parse_command(body.as_bytes(), &cny()).unwrap_err();
        assert_eq!(e.code, RejectCode::SchemaInvalid, "{body}: {e}");
        assert!(e.message.contains("repeats a key"), "{e}");
        assert_eq!(named(&body), Some("wd-20261120-000123".to_owned()));
        // A top-level field written twice is left out; one written once is read.
        let fields = named_fields(body.as_bytes());
        for (field, twice) in [
            ("amount", repeat.contains(r#""amount":"1500.00","amount""#)),
            ("currency", repeat.contains("urrency")),
        ] {
            assert_eq!(fields.get(field).is_none(), twice, "{field}: {fields}");
        }
    }
    // The same keys in different objects are not repeats.
    assert!(parse_command(example.as_bytes(), &cny()).is_ok());
    // The id itself twice: nothing is read from the body.
    let body = example.replacen(
        r#""withdrawal_id":"wd-20261120-000123""#,
        r#""withdrawal_id":"wd-20261120-000123","withdrawal_id":"wd-other""#,
        1,
    );
    assert_eq!(
        parse_command(body.as_bytes(), &cny()).unwrap_err().code,
        RejectCode::SchemaInvalid
    );
    assert_eq!(named(&body), None);
    assert_eq!(named("{\"withdrawal_id\": 1}"), None);
    assert_eq!(named("not json"), None);
    assert_eq!(named("[\"withdrawal_id\"]"), None);
}

/// The withdrawal [`named_fields`] reads from a body, as refusals use it.
fn named(body: &str) -> Option<String> {
    named_withdrawal(&named_fields(body.as_bytes())).map(|id| id.to_string())
}

// ---- impossible times (row 6) -------------------------------------------------------

#[test]
fn a_top_up_paid_after_its_approval_is_refused() {
    let mut v = contract_example();
    v["legs"][0]["source"]["paid_at"] = json!("2026-11-20T08:00:01Z");
    let e = parse_command(v.to_string().as_bytes(), &cny()).unwrap_err();
    assert_eq!(e.code, RejectCode::InvalidTimestamp);
    assert!(
        e.message
            .starts_with("legs[0].source.paid_at is after approved_at"),
        "{e}"
    );
    // The same instant, written in another offset, is not after it.
    v["legs"][0]["source"]["paid_at"] = json!("2026-11-20T16:00:00+08:00");
    assert!(parse_command(v.to_string().as_bytes(), &cny()).is_ok());
}

#[test]
fn a_top_up_paid_in_the_future_is_refused_past_the_skew() {
    let now: DateTime<Utc> = "2026-11-20T08:00:00Z".parse().unwrap();
    let at = |secs: i64| (now + chrono::Duration::seconds(secs)).to_rfc3339();
    let mut v = contract_example();
    v["approved_at"] = json!(at(86_400));
    v["legs"][0]["source"]["paid_at"] = json!(at(301));
    let w = parse_command(v.to_string().as_bytes(), &cny()).unwrap();
    let e = check_clock(&w, now, 300).unwrap_err();
    assert_eq!(e.code, RejectCode::InvalidTimestamp);
    assert!(
        e.message.contains("301s in the future, at most 300s"),
        "{e}"
    );
    v["legs"][0]["source"]["paid_at"] = json!(at(300));
    let w = parse_command(v.to_string().as_bytes(), &cny()).unwrap();
    assert_eq!(check_clock(&w, now, 300), Ok(()));
    // Designated legs have no top-up; the example's own times pass.
    let w = parse_command(contract_example().to_string().as_bytes(), &cny()).unwrap();
    assert_eq!(check_clock(&w, now, 0), Ok(()));
}

/// `amqp.max_command_bytes` refuses no command the schema allows, written compactly: the
/// largest (64 legs, each with a source and a fallback card, every text at its longest
/// in 4-byte characters) parses and fits.
#[test]
fn the_largest_valid_command_fits_the_default_size_bound() {
    let wide = |n: usize| "\u{20000}".repeat(n);
    let ascii = |n: usize| "w".repeat(n);
    let legs: Vec<serde_json::Value> = (0..MAX_LEGS)
        .map(|i| {
            json!({
                "leg_id": format!("{i:0>64}"), "amount": "15000000000000.00",
                "route": "original", "channel": "wechat_pay",
                "source": {"topup_id": wide(64), "channel_txn_id": wide(64),
                           "paid_at": "2026-11-01T08:00:00.123456789+08:00", "bank": wide(64)},
                "fallback_payee": {"kind": "bank_card", "name": wide(128), "account_no": wide(64),
                                   "bank_name": wide(64), "branch": wide(128)},
            })
        })
        .collect();
    let command = json!({
        "type": "withdrawal.approved", "version": 1, "withdrawal_id": ascii(64),
        "account_id": wide(128), "verified_name": wide(128), "currency": "CNY",
        "amount": "960000000000000.00", "approved_at": "2026-11-20T08:00:00.123456789+08:00",
        "legs": legs,
    });
    let body = serde_json::to_vec(&command).unwrap();
    parse_command(&body, &cny()).expect("the largest valid command");
    let bound = crate::config::Settings::defaults().amqp.max_command_bytes;
    assert!(body.len() <= bound, "{} bytes > {bound}", body.len());
}
