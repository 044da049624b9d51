//! Tests of the UnionPay mapping: `orderId` and `txnTime` derivation, the request
//! fields (tied to the signing known answer), and every code of the three tables.

use super::*;
use crate::channels::unionpay::sign::string_to_sign;
use crate::domain::{LegId, WithdrawalId};
use chrono::TimeZone;
use proptest::prelude::*;

/// The outcome's kind, so the tables below fit on one line per code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Succeeded,
    Failed,
    Pending,
    Unknown,
    NotFound,
    RetryLater,
    Review,
}

fn kind(o: &ChannelOutcome) -> Kind {
    match o {
        ChannelOutcome::Succeeded { .. } => Kind::Succeeded,
        ChannelOutcome::Failed { .. } => Kind::Failed,
        ChannelOutcome::Pending => Kind::Pending,
        ChannelOutcome::Unknown { .. } => Kind::Unknown,
        ChannelOutcome::NotFound => Kind::NotFound,
        ChannelOutcome::RetryLater { .. } => Kind::RetryLater,
        ChannelOutcome::Review { .. } => Kind::Review,
    }
}

fn refund_answer(code: &str) -> Answer {
    Answer {
        resp_code: Some(code.into()),
        resp_msg: format!("msg {code}"),
        ..Default::default()
    }
}

fn query_answer(code: &str, orig: Option<&str>) -> Answer {
    Answer {
        resp_code: Some(code.into()),
        resp_msg: "成功[0000000]".into(),
        orig_resp_code: orig.map(Into::into),
        orig_resp_msg: orig.map(|o| format!("orig {o}")).unwrap_or_default(),
        query_id: Some("202611201600001234567".into()),
        ..Default::default()
    }
}

/// Every code we name, plus three unrecognised ones.
const ALL_CODES: [&str; 30] = [
    "00", "A6", "01", "02", "03", "04", "05", "06", "10", "11", "12", "13", "30", "31", "32", "33",
    "34", "35", "36", "37", "38", "39", "43", "60", "61", "62", "63", "77", "A9", "",
];

/// The refusals UnionPay documents: the only codes that may fail a refund.
const REFUSALS: [&str; 10] = ["01", "30", "33", "35", "36", "38", "60", "61", "62", "63"];

fn merchant() -> Merchant {
    Merchant {
        mer_id: "777290058110048".into(),
        cert_id: "69629715588".into(),
    }
}

fn order_ref() -> OrderRef {
    OrderRef {
        order_id: "PO73e67d6185226a979fda4140e4128b".into(),
        txn_time: "20261120160000".into(),
    }
}

#[test]
fn refund_table_covers_every_code() {
    use Kind::*;
    let expected = |code: &str| match code {
        // A6 ("success with defects") is accepted like 00 and confirmed by a query.
        "00" | "A6" => Pending,
        "03" | "04" | "05" => Unknown,
        "12" => Review,
        "02" | "06" | "37" | "39" => RetryLater,
        "10" | "11" | "13" | "31" | "32" | "43" => RetryLater,
        c if REFUSALS.contains(&c) => Failed,
        // 34 is a query's answer, and anything unrecognised proves nothing: unknown.
        _ => Unknown,
    };
    for code in ALL_CODES {
        let got = classify(Call::Refund, &refund_answer(code));
        assert_eq!(kind(&got), expected(code), "respCode {code}: {got:?}");
        if let ChannelOutcome::Failed { code: c, reason } = got {
            assert_eq!(c, code);
            assert_eq!(reason, format!("msg {code}"));
        }
    }
}

#[test]
fn a_failure_without_a_message_still_reads_well() {
    let mut a = refund_answer("35");
    a.resp_msg = "  ".into();
    match classify(Call::Refund, &a) {
        ChannelOutcome::Failed { code, reason } => {
            assert_eq!(code, "35");
            assert!(reason.contains("respCode 35"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    a.resp_msg = "长".repeat(500);
    let ChannelOutcome::Failed { reason, .. } = classify(Call::Refund, &a) else {
        panic!("a refusal")
    };
    assert_eq!(reason.chars().count(), 200);
}

#[test]
fn query_table_covers_every_code() {
    for code in ALL_CODES {
        let got = kind(&classify(Call::Query, &query_answer(code, Some("00"))));
        // Only 00 means the query ran; 34 is "not known yet, query again later"
        // (never NotFound, which would resend at once); everything else says nothing.
        let expected = match code {
            "00" => Kind::Succeeded,
            _ => Kind::Unknown,
        };
        assert_eq!(got, expected, "query respCode {code}");
    }
}

#[test]
fn original_table_covers_every_code() {
    for code in ALL_CODES {
        let got = classify(Call::Query, &query_answer("00", Some(code)));
        let expected = match code {
            "00" | "A6" => Kind::Succeeded,
            "03" | "04" | "05" => Kind::Pending,
            "12" => Kind::Review,
            "02" | "06" | "37" | "39" => Kind::RetryLater,
            "10" | "11" | "13" | "31" | "32" | "43" => Kind::RetryLater,
            c if REFUSALS.contains(&c) => Kind::Failed,
            _ => Kind::Unknown,
        };
        assert_eq!(kind(&got), expected, "origRespCode {code}: {got:?}");
        match got {
            ChannelOutcome::Succeeded { reference } => {
                assert_eq!(reference, "202611201600001234567")
            }
            ChannelOutcome::Failed { code: c, reason } => {
                assert_eq!(c, code);
                assert_eq!(reason, format!("orig {code}"));
            }
            _ => {}
        }
    }
}

#[test]
fn missing_fields_are_unknown_never_failed_or_paid() {
    assert!(matches!(
        classify(Call::Refund, &Answer::default()),
        ChannelOutcome::Unknown { .. }
    ));
    assert!(matches!(
        classify(Call::Query, &query_answer("00", None)),
        ChannelOutcome::Unknown { .. }
    ));
    let mut paid_without_id = query_answer("00", Some("00"));
    paid_without_id.query_id = None;
    assert!(matches!(
        classify(Call::Query, &paid_without_id),
        ChannelOutcome::Unknown { .. }
    ));
    // An empty respCode reads as absent.
    let params: BTreeMap<String, String> = [("respCode".to_owned(), String::new())].into();
    assert_eq!(Answer::from_params(&params).resp_code, None);
}

#[test]
fn an_answer_about_another_order_is_detected() {
    let o = order_ref();
    let mut a = Answer::default();
    assert!(a.is_about(&o));
    a.order_id = Some(o.order_id.clone());
    a.txn_time = Some(o.txn_time.clone());
    assert!(a.is_about(&o));
    a.txn_time = Some("20261120160001".into());
    assert!(!a.is_about(&o));
    a.txn_time = None;
    a.order_id = Some("PO00000000000000000000000000000".into());
    assert!(!a.is_about(&o));
}

#[test]
fn refund_fields_are_the_signing_known_answer() {
    let params = refund_params(
        &merchant(),
        &order_ref(),
        100_000,
        "156",
        "202603151000001234567",
    );
    assert_eq!(
        string_to_sign(&params),
        include_str!("../../../../tests/fixtures/unionpay/refund_request.txt")
    );
}

#[test]
fn query_fields_name_the_same_order() {
    let params = query_params(&merchant(), &order_ref());
    let expected: BTreeMap<String, String> = [
        ("version", "5.1.0"),
        ("encoding", "UTF-8"),
        ("signMethod", "01"),
        ("txnType", "00"),
        ("txnSubType", "00"),
        ("bizType", "000000"),
        ("accessType", "0"),
        ("merId", "777290058110048"),
        ("orderId", "PO73e67d6185226a979fda4140e4128b"),
        ("txnTime", "20261120160000"),
        ("certId", "69629715588"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(params, expected);
}

#[test]
fn blank_values_are_not_sent() {
    let mut m = merchant();
    m.cert_id = String::new();
    assert!(!query_params(&m, &order_ref()).contains_key("certId"));
}

#[test]
fn txn_time_is_beijing_time_of_the_fixed_leg_time() {
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap();
    assert_eq!(txn_time(at), "20261120160000");
    // Past 16:00 UTC it is already the next day in Beijing.
    let late = Utc.with_ymd_and_hms(2026, 12, 31, 20, 30, 5).unwrap();
    assert_eq!(txn_time(late), "20270101043005");
}

#[test]
fn only_cny_has_a_currency_code() {
    let allowed = vec!["CNY".to_owned(), "USD".to_owned()];
    assert_eq!(
        currency_code(&Currency::parse("CNY", &allowed).unwrap()),
        Some("156")
    );
    assert_eq!(
        currency_code(&Currency::parse("USD", &allowed).unwrap()),
        None
    );
}

#[test]
fn our_key_is_the_order_id() {
    let key = IdempotencyKey::for_leg(
        &WithdrawalId::parse("wd-20261120-000123").unwrap(),
        &LegId::parse("1").unwrap(),
    );
    assert_eq!(order_id(&key), key.as_str());
    assert_eq!(normalise_order_id("short"), normalise_order_id("short"));
    assert!(normalise_order_id("short").starts_with("UP"));
    assert!(normalise_order_id(&"a".repeat(33)).starts_with("UP"));
    assert_eq!(normalise_order_id("abcd1234"), "abcd1234");
}

fn is_order_id(s: &str) -> bool {
    (8..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

proptest! {
    #[test]
    fn order_ids_of_keys_are_8_to_32_alphanumerics(w in "[A-Za-z0-9_-]{1,64}", l in "[A-Za-z0-9_-]{1,64}") {
        let key = IdempotencyKey::for_leg(&WithdrawalId::parse(&w).unwrap(), &LegId::parse(&l).unwrap());
        let id = order_id(&key);
        prop_assert!(is_order_id(&id), "{}", id);
        prop_assert_eq!(id, order_id(&key));
    }

    #[test]
    fn any_text_normalises_to_a_valid_order_id(raw in "\\PC{0,80}") {
        let id = normalise_order_id(&raw);
        prop_assert!(is_order_id(&id), "{}", id);
        prop_assert_eq!(&id, &normalise_order_id(&raw));
    }

    /// Any code we do not know, in any field of either call, is unknown: never Failed,
    /// never NotFound, never paid.
    #[test]
    fn unrecognised_codes_are_unknown(code in prop_oneof!["[0-9A-Z]{1,3}", ".{0,6}"], known in proptest::sample::select(ALL_CODES.to_vec())) {
        prop_assume!(RespCode::parse(&code) == RespCode::Other);
        let unknown = |o: ChannelOutcome| kind(&o) == Kind::Unknown;
        prop_assert!(unknown(classify(Call::Refund, &refund_answer(&code))));
        // As the query's own code, whatever the original's.
        prop_assert!(unknown(classify(Call::Query, &query_answer(&code, Some(known)))));
        // As the original's code in a query that ran.
        prop_assert!(unknown(classify(Call::Query, &query_answer("00", Some(&code)))));
    }

    /// No UnionPay answer is ever NotFound: a refund that may be on its way is queried
    /// again later, then reviewed, never resent at once.
    #[test]
    fn nothing_is_not_found(code in prop_oneof!["[0-9A-Z]{2}", Just("34".to_owned())], orig in proptest::option::of("[0-9A-Z]{2}")) {
        for call in [Call::Refund, Call::Query] {
            let o = classify(call, &query_answer(&code, orig.as_deref()));
            prop_assert_ne!(kind(&o), Kind::NotFound);
        }
    }

    /// Only the refusals UnionPay documents fail, on a refund's answer or as the
    /// original's code in a query.
    #[test]
    fn only_documented_refusals_fail(code in "[0-9A-Z]{2}") {
        let fails = |o: ChannelOutcome| kind(&o) == Kind::Failed;
        let refusal = REFUSALS.contains(&code.as_str());
        prop_assert_eq!(fails(classify(Call::Refund, &refund_answer(&code))), refusal);
        prop_assert_eq!(fails(classify(Call::Query, &query_answer("00", Some(&code)))), refusal);
    }

    /// 03/04/05 never fail, whichever call and field they come in; a query's own code
    /// fails nothing; only a recognised refusal fails.
    #[test]
    fn status_unknown_codes_never_fail(code in "[0-9A-Z]{2}", orig in "[0-9A-Z]{2}") {
        let fails = |o: ChannelOutcome| kind(&o) == Kind::Failed;
        for uncertain in ["03", "04", "05"] {
            prop_assert!(!fails(classify(Call::Refund, &refund_answer(uncertain))));
            prop_assert!(!fails(classify(Call::Query, &query_answer(uncertain, Some(&orig)))));
            prop_assert!(!fails(classify(Call::Query, &query_answer(&code, Some(uncertain)))));
        }
        if fails(classify(Call::Query, &query_answer(&code, Some(&orig)))) {
            prop_assert_eq!(code.as_str(), "00");
        }
    }
}
