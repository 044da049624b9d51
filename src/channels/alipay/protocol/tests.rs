//! The Alipay classification table, answer by answer.

use super::*;
use proptest::prelude::*;

fn resp(code: &str, sub: Option<&str>) -> GatewayResponse {
    GatewayResponse {
        code: code.into(),
        sub_code: sub.map(Into::into),
        ..Default::default()
    }
}

#[test]
fn refund_succeeds_only_with_fund_change() {
    let mut r = resp("10000", None);
    r.fund_change = Some("Y".into());
    r.trade_no = Some("T1".into());
    assert_eq!(
        classify(Call::Refund, &r),
        ChannelOutcome::Succeeded {
            reference: "T1".into()
        }
    );
    r.fund_change = Some("N".into());
    assert!(matches!(
        classify(Call::Refund, &r),
        ChannelOutcome::Unknown { .. }
    ));
}

#[test]
fn refund_query_table() {
    let mut r = resp("10000", None);
    assert_eq!(classify(Call::RefundQuery, &r), ChannelOutcome::NotFound);
    r.refund_status = Some("REFUND_SUCCESS".into());
    assert!(matches!(
        classify(Call::RefundQuery, &r),
        ChannelOutcome::Succeeded { .. }
    ));
    r.refund_status = Some("SOMETHING_NEW".into());
    assert!(matches!(
        classify(Call::RefundQuery, &r),
        ChannelOutcome::Unknown { .. }
    ));
}

#[test]
fn transfer_statuses() {
    let with = |s: &str| {
        let mut r = resp("10000", None);
        r.status = Some(s.into());
        r
    };
    assert!(matches!(
        classify(Call::Transfer, &with("SUCCESS")),
        ChannelOutcome::Succeeded { .. }
    ));
    assert_eq!(
        classify(Call::Transfer, &with("DEALING")),
        ChannelOutcome::Pending
    );
    assert_eq!(
        classify(Call::TransferQuery, &with("WAIT_PAY")),
        ChannelOutcome::Pending
    );
    for s in ["FAIL", "CLOSED", "REFUND"] {
        assert!(
            matches!(
                classify(Call::TransferQuery, &with(s)),
                ChannelOutcome::Failed { .. }
            ),
            "{s}"
        );
    }
    assert!(matches!(
        classify(Call::TransferQuery, &with("WEIRD")),
        ChannelOutcome::Unknown { .. }
    ));
}

#[test]
fn codes_from_channels_md() {
    assert!(matches!(
        classify(Call::Refund, &resp("20000", None)),
        ChannelOutcome::Unknown { .. }
    ));
    for sub in ["ACQ.SYSTEM_ERROR", "SYSTEM_ERROR"] {
        assert!(matches!(
            classify(Call::Refund, &resp("40004", Some(sub))),
            ChannelOutcome::Unknown { .. }
        ));
    }
    for sub in [
        "ACQ.DISCORDANT_REPEAT_REQUEST",
        "PAYMENT_INFO_INCONSISTENCY",
    ] {
        assert!(matches!(
            classify(Call::Transfer, &resp("40004", Some(sub))),
            ChannelOutcome::Review { .. }
        ));
    }
    for sub in [
        "ACQ.TRADE_NOT_EXIST",
        "ACQ.TRADE_HAS_FINISHED",
        "ACQ.TRADE_NOT_ALLOW_REFUND",
        "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL",
        "ACQ.REASON_TRADE_BEEN_FREEZEN",
        "PAYEE_NOT_EXIST",
        "PAYEE_USER_INFO_ERROR",
        // The payee's (or the withdrawal amount's own) limits stay definitive.
        "EXCEED_LIMIT_PERSONAL_SM_AMOUNT",
        "EXCEED_LIMIT_UNRN_DM_AMOUNT",
        "EXCEED_LIMIT_SM_MIN_AMOUNT",
    ] {
        match classify(Call::Refund, &resp("40004", Some(sub))) {
            ChannelOutcome::Failed { code, .. } => assert_eq!(code, sub),
            other => panic!("{sub}: {other:?}"),
        }
    }
    for sub in ["ACQ.SELLER_BALANCE_NOT_ENOUGH", "PAYER_BALANCE_NOT_ENOUGH"] {
        assert!(matches!(
            classify(Call::Transfer, &resp("40004", Some(sub))),
            ChannelOutcome::RetryLater { .. }
        ));
    }
    for code in ["40001", "40002", "40006", "20001"] {
        assert!(matches!(
            classify(Call::Refund, &resp(code, None)),
            ChannelOutcome::RetryLater { .. }
        ));
    }
    assert_eq!(
        classify(Call::TransferQuery, &resp("40004", Some("ORDER_NOT_EXIST"))),
        ChannelOutcome::NotFound
    );
    assert!(matches!(
        classify(Call::Refund, &resp("40004", Some("NEW.CODE"))),
        ChannelOutcome::Unknown { .. }
    ));
    assert!(matches!(
        classify(Call::Refund, &resp("99999", None)),
        ChannelOutcome::Unknown { .. }
    ));
}

/// Issue 14 item 9: our own quotas, balance and paying account are merchant-side
/// problems. They never fail the user's withdrawal: retry later, then review.
#[test]
fn merchant_side_codes_retry_later_on_every_call() {
    for sub in [
        // Our contract's quotas (alipay.fund.trans.uni.transfer error table).
        "EXCEED_LIMIT_SM_AMOUNT",
        "EXCEED_LIMIT_DM_AMOUNT",
        "EXCEED_LIMIT_MM_AMOUNT",
        "EXCEED_LIMIT_DM_MAX_AMOUNT",
        "EXCEED_LIMIT_MM_MAX_AMOUNT",
        "EXCEED_LIMIT_ENT_SM_AMOUNT",
        // A daily count that resets tomorrow.
        "EXCEED_LIMIT_DC_RECEIVED",
        // Any other quota name Alipay may add.
        "EXCEED_LIMIT_SOMETHING_NEW",
        // Our balance and paying account.
        "ACQ.SELLER_BALANCE_NOT_ENOUGH",
        "PAYER_BALANCE_NOT_ENOUGH",
        "BALANCE_IS_NOT_ENOUGH",
        "PAYCARD_UNABLE_PAYMENT",
        "PAYER_STATUS_ERROR",
        "PAYER_NOT_EXIST",
        "PRODUCT_NOT_SIGN",
        "NO_ACCOUNT_PAYMENT_PERMISSION",
        "INVALID_PAYER_ACCOUNT",
        "MONEY_PAY_CLOSED",
        "INVALID_PARAMETER",
        // Alipay's load or its bank channel.
        "RESOURCE_LIMIT_EXCEED",
        "INST_PAY_UNABLE",
    ] {
        for call in [
            Call::Refund,
            Call::RefundQuery,
            Call::Transfer,
            Call::TransferQuery,
        ] {
            let outcome = classify(call, &resp("40004", Some(sub)));
            assert!(
                matches!(outcome, ChannelOutcome::RetryLater { .. }),
                "{sub} on {call:?}: {outcome:?}"
            );
        }
    }
}

fn is_unknown(o: &ChannelOutcome) -> bool {
    matches!(o, ChannelOutcome::Unknown { .. })
}

const ALL_CALLS: [Call; 4] = [
    Call::Refund,
    Call::RefundQuery,
    Call::Transfer,
    Call::TransferQuery,
];

proptest! {
    /// Any gateway code we do not know is unknown on every call (query, then review).
    #[test]
    fn an_unrecognised_gateway_code_is_unknown(code in ".{0,8}", sub in proptest::option::of(".{0,30}")) {
        prop_assume!(Code::parse(&code) == Code::Other);
        let r = resp(&code, sub.as_deref());
        for call in ALL_CALLS {
            let outcome = classify(call, &r);
            prop_assert!(is_unknown(&outcome), "{call:?} {r:?}: {outcome:?}");
        }
    }

    /// Any 40004 sub_code we do not know is unknown on every call.
    #[test]
    fn an_unrecognised_sub_code_is_unknown(sub in prop_oneof![".{0,30}", "[A-Z._]{0,30}", "ACQ\\.[A-Z_]{1,20}"]) {
        prop_assume!(SubCode::parse(&sub) == SubCode::Other);
        for call in ALL_CALLS {
            for r in [resp("40004", Some(&sub)), resp("40004", None)] {
                let outcome = classify(call, &r);
                prop_assert!(is_unknown(&outcome), "{call:?} {r:?}: {outcome:?}");
            }
        }
    }

    /// Any transfer or refund status we do not know, in a 10000 answer, is unknown.
    #[test]
    fn an_unrecognised_status_is_unknown(status in ".{1,12}") {
        prop_assume!(TransferStatus::parse(Some(&status)) == TransferStatus::Other);
        prop_assume!(status != "REFUND_SUCCESS");
        let mut r = resp("10000", None);
        r.status = Some(status.clone());
        for call in [Call::Transfer, Call::TransferQuery] {
            let outcome = classify(call, &r);
            prop_assert!(is_unknown(&outcome), "{call:?} {r:?}: {outcome:?}");
        }
        r.status = None;
        r.refund_status = Some(status);
        let outcome = classify(Call::RefundQuery, &r);
        prop_assert!(is_unknown(&outcome), "{r:?}: {outcome:?}");
    }

    /// Every EXCEED_LIMIT_* but the payee's own three keeps funds frozen.
    #[test]
    fn our_quotas_never_fail(suffix in "[A-Z_]{0,24}") {
        let sub = format!("EXCEED_LIMIT{suffix}");
        prop_assume!(SubCode::parse(&sub) != SubCode::PayeeLimit);
        for call in ALL_CALLS {
            let outcome = classify(call, &resp("40004", Some(&sub)));
            prop_assert!(matches!(outcome, ChannelOutcome::RetryLater { .. }), "{sub} {call:?}: {outcome:?}");
        }
    }

    /// Whatever Alipay says, only a recognised definitive code can produce a failure.
    #[test]
    fn unrecognised_answers_never_fail(code in "[0-9]{5}", sub in "[A-Z._]{0,30}", status in "[A-Z_]{0,10}") {
        let mut r = resp(&code, Some(&sub));
        r.status = Some(status.clone());
        for call in [Call::Refund, Call::RefundQuery, Call::Transfer, Call::TransferQuery] {
            if let ChannelOutcome::Failed { .. } = classify(call, &r) {
                let definitive_sub = !matches!(SubCode::parse(&sub), SubCode::Other | SubCode::AcqSystemError | SubCode::SystemError);
                let definitive_status = matches!(TransferStatus::parse(Some(&status)), TransferStatus::Fail | TransferStatus::Closed | TransferStatus::Refund);
                prop_assert!(definitive_sub || definitive_status);
            }
        }
    }
}
