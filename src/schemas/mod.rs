//! The JSON Schemas of the command and the events, as published in `docs/asyncapi.yaml`
//! and printed by `payout-worker schema`, so upstream teams validate what they send.

/// (message type, JSON Schema text).
pub const ALL: [(&str, &str); 5] = [
    (
        "withdrawal.approved",
        include_str!("withdrawal.approved.json"),
    ),
    (
        "withdrawal.processing",
        include_str!("withdrawal.processing.json"),
    ),
    (
        "withdrawal.succeeded",
        include_str!("withdrawal.succeeded.json"),
    ),
    ("withdrawal.failed", include_str!("withdrawal.failed.json")),
    (
        "withdrawal.review_required",
        include_str!("withdrawal.review_required.json"),
    ),
];

pub fn get(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}

/// The parsers and the published command schema agree: each pattern the schema states
/// is read from the schema itself and compared with what the parser accepts.
#[cfg(test)]
mod tests {
    use crate::domain::{Money, WithdrawalId};
    use proptest::prelude::*;
    use rust_decimal::Decimal;
    use serde_json::{json, Value};

    fn command_schema() -> Value {
        serde_json::from_str(super::get("withdrawal.approved").expect("published"))
            .expect("the schema is JSON")
    }

    /// Every `pattern` the command schema states for `field`, at the top level and in
    /// each kind of leg.
    fn patterns(field: &str) -> Vec<String> {
        let s = command_schema();
        let mut found: Vec<&Value> = vec![&s["properties"][field]["pattern"]];
        for leg in s["properties"]["legs"]["items"]["oneOf"]
            .as_array()
            .expect("leg kinds")
        {
            found.push(&leg["properties"][field]["pattern"]);
        }
        found
            .into_iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect()
    }

    /// A validator for one string against `pattern`, as the schema applies it.
    fn pattern_validator(pattern: &str) -> jsonschema::Validator {
        jsonschema::validator_for(&json!({"type": "string", "pattern": pattern}))
            .expect("a valid pattern")
    }

    fn amount_validator() -> jsonschema::Validator {
        let amounts = patterns("amount");
        assert_eq!(amounts.len(), 3, "top-level amount and each leg kind's");
        assert!(amounts.iter().all(|p| *p == amounts[0]), "{amounts:?}");
        pattern_validator(&amounts[0])
    }

    /// What the schema says of an amount: its pattern, and (in prose) more than zero.
    fn schema_accepts_amount(v: &jsonschema::Validator, s: &str) -> bool {
        v.is_valid(&json!(s)) && s.parse::<Decimal>().is_ok_and(|d| d > Decimal::ZERO)
    }

    fn amount_candidate() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{0,18}(\\.[0-9]{0,4})?",
            "[-+ ]?0{0,3}[0-9]{0,16}(\\.[0-9]{0,3})?([eE][-+]?[0-9]{1,2})?[ \n]?",
            "[0-9.,+eE _\\-]{0,12}",
            "[0٣１]{0,2}[1-9]?\\.?[0-9]{0,2}",
            "\\PC{0,6}",
        ]
    }

    #[test]
    fn amount_edge_cases_agree() {
        let v = amount_validator();
        for s in [
            "1",
            "0.01",
            "0.5",
            "10",
            "1500.00",
            "999999999999999.99",
            "0",
            "0.0",
            "0.00",
            "01.00",
            "00.01",
            "007",
            "1.",
            ".5",
            "1.001",
            "-1",
            "+1.00",
            "1e3",
            " 1",
            "1 ",
            "1\n",
            "1000000000000000",
            "1,00",
            "１",
            "NaN",
            "",
        ] {
            assert_eq!(
                Money::parse(s).is_ok(),
                schema_accepts_amount(&v, s),
                "{s:?}"
            );
        }
    }

    #[test]
    fn ids_and_currencies_agree() {
        let id = pattern_validator(
            command_schema()["properties"]["withdrawal_id"]["pattern"]
                .as_str()
                .expect("an id pattern"),
        );
        assert_eq!(
            patterns("leg_id").len(),
            2,
            "each leg kind states leg_id's pattern"
        );
        assert!(patterns("leg_id").iter().all(|p| Some(p.as_str())
            == command_schema()["properties"]["withdrawal_id"]["pattern"].as_str()));
        for s in [
            "wd-1",
            "a",
            &"a".repeat(64),
            &"a".repeat(65),
            "",
            "wd 1",
            "wd/1",
            "é",
        ] {
            assert_eq!(
                WithdrawalId::parse(s).is_some(),
                id.is_valid(&json!(s)),
                "{s:?}"
            );
        }
        let currency = pattern_validator(
            command_schema()["properties"]["currency"]["pattern"]
                .as_str()
                .expect("a currency pattern"),
        );
        for c in crate::config::Settings::defaults().rules.currencies {
            assert!(
                currency.is_valid(&json!(c)),
                "configured {c:?} breaks the schema"
            );
        }
    }

    proptest! {
        /// The parser accepts an amount exactly when the schema's pattern does and it
        /// is more than zero.
        #[test]
        fn money_parse_agrees_with_the_schema(s in amount_candidate()) {
            let v = amount_validator();
            prop_assert_eq!(Money::parse(&s).is_ok(), schema_accepts_amount(&v, &s), "{:?}", s);
        }

        #[test]
        fn id_parse_agrees_with_the_schema(s in prop_oneof!["[A-Za-z0-9_-]{0,66}", "[A-Za-z0-9_ ./é\\-]{0,8}", "\\PC{0,4}"]) {
            let id = pattern_validator(
                command_schema()["properties"]["withdrawal_id"]["pattern"].as_str().expect("an id pattern"),
            );
            prop_assert_eq!(WithdrawalId::parse(&s).is_some(), id.is_valid(&json!(s)), "{:?}", s);
        }
    }
}
