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
