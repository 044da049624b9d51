//! Transfers to an account: paid once with a stable order id, the `0000` (no such payee)
//! and `0001` (dealing, then bounced) cases.

use super::*;

#[test]
fn a_transfer_is_paid_once_with_a_stable_order_id() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let body = transfer("T1", "payee@example.com", "Zhang San", "100.00");
    let first = sim.business(&ledger, TRANSFER, &body, t0);
    let r = parsed(&first);
    assert_eq!(
        (r.code.as_str(), r.status.as_deref()),
        ("10000", Some("SUCCESS"))
    );
    let order_id = r.order_id.clone().unwrap();
    assert!(
        order_id.starts_with("2026") && order_id.len() == 20,
        "{order_id}"
    );
    assert_eq!(order_id, digits("order_id", "T1"));
    assert_eq!(
        worker_sees(Call::Transfer, &first),
        ChannelOutcome::Succeeded {
            reference: order_id.clone()
        }
    );
    assert_eq!(
        sim.business(&ledger, TRANSFER, &body, t0 + SETTLE).inner,
        first.inner
    );
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T1"), t0);
    assert_eq!(
        worker_sees(Call::TransferQuery, &q),
        ChannelOutcome::Succeeded {
            reference: order_id
        }
    );
    assert_eq!(moves(&ledger, "T1", t0 + SETTLE), Some(1));
    // The log line names the outcome, never the payee.
    assert!(!first.outcome.contains("payee@") && !first.outcome.contains("Zhang"));
}

#[test]
fn a_transfer_key_reused_with_other_parameters_is_inconsistent() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    sim.business(
        &ledger,
        TRANSFER,
        &transfer("T1", "payee@example.com", "Zhang San", "100.00"),
        t0,
    );
    for other in [
        transfer("T1", "payee@example.com", "Zhang San", "100.01"),
        transfer("T1", "other@example.com", "Zhang San", "100.00"),
        transfer("T1", "payee@example.com", "Li Si", "100.00"),
    ] {
        let a = sim.business(&ledger, TRANSFER, &other, t0);
        assert_eq!(
            parsed(&a).sub_code.as_deref(),
            Some("PAYMENT_INFO_INCONSISTENCY")
        );
        assert!(matches!(
            worker_sees(Call::Transfer, &a),
            ChannelOutcome::Review { .. }
        ));
    }
    assert_eq!(moves(&ledger, "T1", t0), Some(1));
}

#[test]
fn a_payee_ending_0000_does_not_exist() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let a = sim.business(
        &ledger,
        TRANSFER,
        &transfer("T0", "6222000000000000", "Zhang San", "1.00"),
        t0,
    );
    assert_eq!(parsed(&a).sub_code.as_deref(), Some("PAYEE_NOT_EXIST"));
    assert!(matches!(
        worker_sees(Call::Transfer, &a),
        ChannelOutcome::Failed { .. }
    ));
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T0"), t0);
    assert_eq!(
        worker_sees(Call::TransferQuery, &q),
        ChannelOutcome::NotFound
    );
    assert_eq!(moves(&ledger, "T0", t0), Some(0));
}

#[test]
fn a_payee_ending_0001_is_dealing_then_bounces() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let body = transfer("T2", "6222000000000001", "Zhang San", "3.00");
    let a = sim.business(&ledger, TRANSFER, &body, t0);
    assert_eq!(parsed(&a).status.as_deref(), Some("DEALING"));
    assert_eq!(worker_sees(Call::Transfer, &a), ChannelOutcome::Pending);
    let before = t0 + SETTLE - Duration::from_millis(1);
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T2"), before);
    assert_eq!(
        worker_sees(Call::TransferQuery, &q),
        ChannelOutcome::Pending
    );
    let after = t0 + SETTLE;
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T2"), after);
    assert_eq!(parsed(&q).status.as_deref(), Some("REFUND"));
    assert!(matches!(
        worker_sees(Call::TransferQuery, &q),
        ChannelOutcome::Failed { .. }
    ));
    assert_eq!(moves(&ledger, "T2", before), Some(0));
    assert_eq!(moves(&ledger, "T2", after), Some(0));
}

#[test]
fn a_payee_ending_0002_finds_our_daily_quota_used_up_on_every_attempt() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let body = transfer("T2", "13800130002", "Zhang San", "100.00");
    for at in [t0, t0 + SETTLE] {
        let a = sim.business(&ledger, TRANSFER, &body, at);
        assert_eq!(
            parsed(&a).sub_code.as_deref(),
            Some("EXCEED_LIMIT_DM_AMOUNT")
        );
        // Our quota, not the user's fault: retried later, never a failure.
        assert!(matches!(
            worker_sees(Call::Transfer, &a),
            ChannelOutcome::RetryLater { .. }
        ));
    }
    // Nothing was created: the query says not found, nothing moved.
    let q = sim.business(&ledger, TRANSFER_QUERY, &transfer_query("T2"), t0 + SETTLE);
    assert_eq!(
        worker_sees(Call::TransferQuery, &q),
        ChannelOutcome::NotFound
    );
    assert!(ledger.snapshot(t0 + SETTLE).is_empty());
}
