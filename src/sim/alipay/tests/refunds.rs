//! Refunds to the original payment: paid once, repeats answered from the record, the
//! `0000` (no such trade) and `0001` (accepted, refused after settling) cases.

use super::*;

#[test]
fn a_refund_is_paid_once_and_a_repeat_gets_the_same_answer() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let first = sim.business(
        &ledger,
        REFUND,
        &refund("K1", "2026031522001456", "10.00"),
        t0,
    );
    let r = parsed(&first);
    assert_eq!(
        (r.code.as_str(), r.fund_change.as_deref()),
        ("10000", Some("Y"))
    );
    assert!(
        first.inner.contains(r#""refund_fee":"10.00""#),
        "{}",
        first.inner
    );
    assert_eq!(
        worker_sees(Call::Refund, &first),
        ChannelOutcome::Succeeded {
            reference: "2026031522001456".into()
        }
    );
    let again = sim.business(
        &ledger,
        REFUND,
        &refund("K1", "2026031522001456", "10.00"),
        t0 + SETTLE * 2,
    );
    assert_eq!(again.inner, first.inner);
    assert_eq!(moves(&ledger, "K1", t0 + SETTLE * 2), Some(1));
    let q = sim.business(
        &ledger,
        REFUND_QUERY,
        &refund_query("K1", "2026031522001456"),
        t0,
    );
    assert_eq!(parsed(&q).refund_status.as_deref(), Some("REFUND_SUCCESS"));
    assert!(matches!(
        worker_sees(Call::RefundQuery, &q),
        ChannelOutcome::Succeeded { .. }
    ));
}

#[test]
fn a_refund_key_reused_with_other_parameters_is_discordant() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    sim.business(
        &ledger,
        REFUND,
        &refund("K1", "2026031522001456", "10.00"),
        t0,
    );
    for other in [
        refund("K1", "2026031522001456", "10.01"),
        refund("K1", "2026031522009999", "10.00"),
    ] {
        let a = sim.business(&ledger, REFUND, &other, t0);
        assert_eq!(
            parsed(&a).sub_code.as_deref(),
            Some("ACQ.DISCORDANT_REPEAT_REQUEST")
        );
        assert!(matches!(
            worker_sees(Call::Refund, &a),
            ChannelOutcome::Review { .. }
        ));
    }
    let lines = ledger.snapshot(t0);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].amount.as_str(), lines[0].moves), ("10.00", 1));
}

#[test]
fn a_trade_ending_0000_does_not_exist() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let a = sim.business(
        &ledger,
        REFUND,
        &refund("K0", "2026031522000000", "5.00"),
        t0,
    );
    let r = parsed(&a);
    assert_eq!(
        (r.code.as_str(), r.sub_code.as_deref()),
        ("40004", Some("ACQ.TRADE_NOT_EXIST"))
    );
    assert_eq!(r.sub_msg.as_deref(), Some("交易不存在"));
    assert!(matches!(
        worker_sees(Call::Refund, &a),
        ChannelOutcome::Failed { .. }
    ));
    assert_eq!(
        sim.business(
            &ledger,
            REFUND,
            &refund("K0", "2026031522000000", "5.00"),
            t0
        )
        .inner,
        a.inner
    );
    let q = sim.business(
        &ledger,
        REFUND_QUERY,
        &refund_query("K0", "2026031522000000"),
        t0,
    );
    assert_eq!(worker_sees(Call::RefundQuery, &q), ChannelOutcome::NotFound);
    assert_eq!(moves(&ledger, "K0", t0), Some(0));
}

#[test]
fn a_trade_ending_0001_is_accepted_then_refused_after_settling() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let body = refund("K2", "2026031522000001", "7.50");
    let first = sim.business(&ledger, REFUND, &body, t0);
    let r = parsed(&first);
    assert_eq!(
        (r.code.as_str(), r.fund_change.as_deref()),
        ("10000", Some("N"))
    );
    assert!(matches!(
        worker_sees(Call::Refund, &first),
        ChannelOutcome::Unknown { .. }
    ));
    // Before settling: the same answer again, and the query finds no refund.
    let before = t0 + SETTLE - Duration::from_millis(1);
    assert_eq!(
        sim.business(&ledger, REFUND, &body, before).inner,
        first.inner
    );
    let q = sim.business(
        &ledger,
        REFUND_QUERY,
        &refund_query("K2", "2026031522000001"),
        before,
    );
    assert_eq!(worker_sees(Call::RefundQuery, &q), ChannelOutcome::NotFound);
    // After: still no refund, and a resend is refused definitively.
    let after = t0 + SETTLE;
    let q = sim.business(
        &ledger,
        REFUND_QUERY,
        &refund_query("K2", "2026031522000001"),
        after,
    );
    assert_eq!(parsed(&q).refund_status, None);
    let resend = sim.business(&ledger, REFUND, &body, after);
    assert_eq!(
        parsed(&resend).sub_code.as_deref(),
        Some("ACQ.TRADE_NOT_ALLOW_REFUND")
    );
    assert!(matches!(
        worker_sees(Call::Refund, &resend),
        ChannelOutcome::Failed { .. }
    ));
    assert_eq!(moves(&ledger, "K2", before), Some(0));
    assert_eq!(moves(&ledger, "K2", after), Some(0));
}
