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
        "EXCEED_LIMIT_SM_AMOUNT",
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

proptest! {
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
