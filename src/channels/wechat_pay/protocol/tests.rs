//! The classification table, row by row (every status, every code, both calls), the
//! refund body in fen, and properties: nothing unrecognised is ever a failure, and no
//! input makes the reader panic.

use super::*;
use crate::channels::wechat_pay::tests::sample_order;
use proptest::prelude::*;

const KEY: &str = "PO73e67d6185226a979fda4140e4128b";

fn refund_with(status: &str) -> Reply {
    Reply::Refund(RefundObject {
        refund_id: "50000000382026112000000000001".into(),
        out_refund_no: KEY.into(),
        transaction_id: "4200002026031522001456".into(),
        channel: None,
        user_received_account: None,
        success_time: None,
        create_time: None,
        status: status.into(),
        amount: None,
    })
}

fn error(http: u16, code: &str) -> Reply {
    Reply::Error {
        http,
        body: Some(ErrorBody {
            code: code.into(),
            message: format!("message for {code}"),
        }),
    }
}

fn is_unknown(o: &ChannelOutcome) -> bool {
    matches!(o, ChannelOutcome::Unknown { .. })
}

#[test]
fn refund_body_is_in_fen_with_total_equal_to_refund() {
    let order = sample_order("4200002026031522001456");
    let r = RefundRequest::for_order(&order, "4200002026031522001456");
    assert_eq!(
        serde_json::to_value(&r).unwrap(),
        serde_json::json!({
            "transaction_id": "4200002026031522001456",
            "out_refund_no": KEY,
            "reason": "Balance withdrawal wd-20261120-000123",
            "amount": {"refund": 100000, "total": 100000, "currency": "CNY"},
        })
    );
}

#[test]
fn a_long_memo_is_cut_to_eighty_characters_and_an_empty_one_is_left_out() {
    let mut order = sample_order("4200002026031522001456");
    order.memo = "退".repeat(100);
    let r = RefundRequest::for_order(&order, "4200002026031522001456");
    assert_eq!(r.reason.unwrap().chars().count(), MAX_REASON_CHARS);
    order.memo.clear();
    let r = RefundRequest::for_order(&order, "4200002026031522001456");
    assert!(!serde_json::to_string(&r).unwrap().contains("reason"));
}

#[test]
fn every_status_on_both_calls() {
    for call in [Call::Refund, Call::Query] {
        assert_eq!(
            classify(call, KEY, &refund_with("SUCCESS")),
            ChannelOutcome::Succeeded {
                reference: "50000000382026112000000000001".into()
            }
        );
        assert_eq!(
            classify(call, KEY, &refund_with("PROCESSING")),
            ChannelOutcome::Pending
        );
        assert!(matches!(
            classify(call, KEY, &refund_with("CLOSED")),
            ChannelOutcome::Failed { code, .. } if code == "REFUND_CLOSED"
        ));
        assert!(matches!(
            classify(call, KEY, &refund_with("ABNORMAL")),
            ChannelOutcome::Review { .. }
        ));
        assert!(is_unknown(&classify(
            call,
            KEY,
            &refund_with("REFUNDING_SOON")
        )));
        assert!(is_unknown(&classify(call, KEY, &refund_with(""))));
    }
}

#[test]
fn an_answer_about_another_refund_is_unknown() {
    let other = match refund_with("SUCCESS") {
        Reply::Refund(mut r) => {
            r.out_refund_no = "PO-someone-else".into();
            Reply::Refund(r)
        }
        _ => unreachable!(),
    };
    assert!(is_unknown(&classify(Call::Refund, KEY, &other)));
}

#[test]
fn error_codes_on_a_refund() {
    let on_refund = |http, code| classify(Call::Refund, KEY, &error(http, code));
    // Retry with the same key, after a query.
    assert!(is_unknown(&on_refund(500, "SYSTEM_ERROR")));
    assert!(is_unknown(&on_refund(429, "FREQUENCY_LIMITED")));
    assert!(is_unknown(&on_refund(400, "SYSTEM_ERROR")));
    assert!(is_unknown(&on_refund(403, "FREQUENCY_LIMITED")));
    // Definitive refusals carry the code and WeChat's message.
    for (http, code) in [
        (403, "USER_ACCOUNT_ABNORMAL"),
        (400, "PARAM_ERROR"),
        (404, "RESOURCE_NOT_EXISTS"),
    ] {
        assert_eq!(
            on_refund(http, code),
            ChannelOutcome::Failed {
                code: code.into(),
                reason: format!("message for {code}")
            }
        );
    }
    // Our key with another body: our bug, never a failure.
    assert!(matches!(
        on_refund(400, "INVALID_REQUEST"),
        ChannelOutcome::Review { .. }
    ));
    // Our merchant balance or setup refused: nothing was carried out, and it is ours to
    // fix. Retry later, then review; never a failure of the user's withdrawal.
    for (http, code) in [
        (403, "NOT_ENOUGH"),
        (401, "SIGN_ERROR"),
        (403, "NO_AUTH"),
        (400, "MCH_NOT_EXISTS"),
    ] {
        assert!(
            matches!(on_refund(http, code), ChannelOutcome::RetryLater { .. }),
            "{code}"
        );
    }
    assert!(is_unknown(&on_refund(400, "SOMETHING_NEW")));
}

#[test]
fn error_codes_on_a_query() {
    let on_query = |http, code| classify(Call::Query, KEY, &error(http, code));
    assert_eq!(
        on_query(404, "RESOURCE_NOT_EXISTS"),
        ChannelOutcome::NotFound
    );
    // A query that errs says nothing about the refund: never a failure or a review.
    for (http, code) in [
        (500, "SYSTEM_ERROR"),
        (429, "FREQUENCY_LIMITED"),
        (403, "NOT_ENOUGH"),
        (403, "USER_ACCOUNT_ABNORMAL"),
        (400, "PARAM_ERROR"),
        (400, "INVALID_REQUEST"),
        (400, "SOMETHING_NEW"),
    ] {
        assert!(is_unknown(&on_query(http, code)), "{code}");
    }
    assert!(matches!(
        on_query(401, "SIGN_ERROR"),
        ChannelOutcome::RetryLater { .. }
    ));
}

#[test]
fn the_http_status_overrides_a_definitive_code() {
    // A 5xx or 429 may have been carried out; its body must not release funds.
    for http in [429, 500, 502, 503, 504] {
        for code in ["RESOURCE_NOT_EXISTS", "NOT_ENOUGH", "PARAM_ERROR"] {
            assert!(is_unknown(&classify(Call::Refund, KEY, &error(http, code))));
            assert!(is_unknown(&classify(Call::Query, KEY, &error(http, code))));
        }
    }
    // Nor does a status outside 4xx carry a refusal, whatever the body says.
    for http in [100, 302, 304, 399, 600, 999] {
        for code in [
            "RESOURCE_NOT_EXISTS",
            "USER_ACCOUNT_ABNORMAL",
            "PARAM_ERROR",
        ] {
            assert!(is_unknown(&classify(Call::Refund, KEY, &error(http, code))));
            assert!(is_unknown(&classify(Call::Query, KEY, &error(http, code))));
        }
    }
    let bare = Reply::Error {
        http: 404,
        body: None,
    };
    assert!(is_unknown(&classify(Call::Refund, KEY, &bare)));
    assert!(is_unknown(&classify(Call::Query, KEY, &bare)));
}

#[test]
fn replies_are_read_by_http_status() {
    let body = br#"{"refund_id":"5","out_refund_no":"K","status":"SUCCESS","extra":1}"#;
    assert!(matches!(parse_reply(200, body), Reply::Refund(r) if r.status == "SUCCESS"));
    assert_eq!(parse_reply(200, b"<html>"), Reply::Unreadable { http: 200 });
    assert_eq!(
        parse_reply(404, br#"{"code":"RESOURCE_NOT_EXISTS","message":"no"}"#),
        Reply::Error {
            http: 404,
            body: Some(ErrorBody {
                code: "RESOURCE_NOT_EXISTS".into(),
                message: "no".into()
            })
        }
    );
    assert_eq!(
        parse_reply(502, b"502 Bad Gateway"),
        Reply::Error {
            http: 502,
            body: None
        }
    );
    assert!(is_unknown(&classify(
        Call::Refund,
        KEY,
        &parse_reply(200, b"{}")
    )));
}

const KNOWN_CODES: [&str; 10] = [
    "SYSTEM_ERROR",
    "FREQUENCY_LIMITED",
    "NOT_ENOUGH",
    "USER_ACCOUNT_ABNORMAL",
    "PARAM_ERROR",
    "RESOURCE_NOT_EXISTS",
    "INVALID_REQUEST",
    "SIGN_ERROR",
    "NO_AUTH",
    "MCH_NOT_EXISTS",
];
const KNOWN_STATUSES: [&str; 4] = ["SUCCESS", "PROCESSING", "CLOSED", "ABNORMAL"];

proptest! {
    /// Whatever WeChat says, only a recognised definitive answer can release funds.
    #[test]
    fn unrecognised_codes_and_statuses_never_fail(
        code in "[A-Z_]{0,24}",
        status in "[A-Z_]{0,12}",
        http in 100u16..600,
    ) {
        prop_assume!(!KNOWN_CODES.contains(&code.as_str()));
        prop_assume!(!KNOWN_STATUSES.contains(&status.as_str()));
        for call in [Call::Refund, Call::Query] {
            for reply in [error(http, &code), refund_with(&status), Reply::Error { http, body: None }] {
                let outcome = classify(call, KEY, &reply);
                // Unknown exactly: query, then review. Never Failed, NotFound or settled.
                prop_assert!(matches!(outcome, ChannelOutcome::Unknown { .. }), "{call:?} {reply:?}: {outcome:?}");
            }
        }
    }

    /// A known code under an HTTP status that is not a 4xx is unknown on both calls.
    #[test]
    fn known_codes_outside_4xx_are_unknown(
        code in proptest::sample::select(KNOWN_CODES.to_vec()),
        http in prop_oneof![100u16..400, 500u16..1000, Just(429u16)],
    ) {
        for call in [Call::Refund, Call::Query] {
            let outcome = classify(call, KEY, &error(http, code));
            prop_assert!(matches!(outcome, ChannelOutcome::Unknown { .. }), "{call:?} {http} {code}: {outcome:?}");
        }
    }

    /// NOT_ENOUGH (our merchant balance) never fails the user's withdrawal.
    #[test]
    fn not_enough_never_fails(http in 100u16..1000) {
        for call in [Call::Refund, Call::Query] {
            let outcome = classify(call, KEY, &error(http, "NOT_ENOUGH"));
            prop_assert!(
                matches!(outcome, ChannelOutcome::RetryLater { .. } | ChannelOutcome::Unknown { .. }),
                "{call:?} {http}: {outcome:?}"
            );
        }
    }

    /// On a query, no error code is ever a failure: only a CLOSED refund is.
    #[test]
    fn query_errors_never_fail(code in prop_oneof![proptest::sample::select(KNOWN_CODES.to_vec()).prop_map(str::to_owned), "[A-Z_]{0,24}"], http in 100u16..600) {
        let outcome = classify(Call::Query, KEY, &error(http, &code));
        let failed = matches!(outcome, ChannelOutcome::Failed { .. });
        prop_assert!(!failed, "{:?}", outcome);
    }

    #[test]
    fn the_reply_reader_never_panics(http in any::<u16>(), body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let reply = parse_reply(http, &body);
        let _ = classify(Call::Refund, KEY, &reply);
        let _ = classify(Call::Query, KEY, &reply);
    }

    #[test]
    fn json_shaped_replies_never_panic(http in 100u16..600, code in ".{0,20}", status in ".{0,20}", id in ".{0,20}") {
        let body = serde_json::json!({"code": code, "message": "m", "refund_id": id, "out_refund_no": KEY, "status": status});
        let reply = parse_reply(http, body.to_string().as_bytes());
        let _ = classify(Call::Refund, KEY, &reply);
    }
}
