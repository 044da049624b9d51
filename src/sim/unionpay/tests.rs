//! Tests of the simulated UnionPay gateway, called directly (no HTTP) with an injected
//! clock. Requests are built and signed by the worker's own adapter code, and every
//! answer is signed, rendered and read back by the adapter's `interpret`, so the
//! simulator and the adapter are checked to be counterparts.

use super::gateway::{handle, not_processed, Answer, Endpoint};
use super::*;
use crate::channels::unionpay::protocol::{query_params, refund_params, Call, Merchant, OrderRef};
use crate::channels::unionpay::{interpret, DEV_MERCHANT_PRIVATE_KEY, DEV_PLATFORM_PUBLIC_KEY};
use crate::channels::ChannelOutcome;

const SETTLE: Duration = Duration::from_millis(300);
const KEY: &str = "PO73e67d6185226a979fda4140e4128b";
const TXN_TIME: &str = "20261120160000";
const ORIG: &str = "202603151000001234567";

fn sim() -> UnionpaySim {
    UnionpaySim::from_settings(&crate::config::Settings::defaults().sim).unwrap()
}

fn merchant() -> Merchant {
    Merchant {
        mer_id: "777290058110048".into(),
        cert_id: "69629715588".into(),
    }
}

fn order(key: &str) -> OrderRef {
    OrderRef {
        order_id: key.into(),
        txn_time: TXN_TIME.into(),
    }
}

fn signed(mut params: BTreeMap<String, String>) -> BTreeMap<String, String> {
    sign::sign(
        &mut params,
        &RsaSigner::from_pem(DEV_MERCHANT_PRIVATE_KEY).unwrap(),
    );
    params
}

fn refund_req(key: &str, fen: i64, orig: &str) -> BTreeMap<String, String> {
    signed(refund_params(&merchant(), &order(key), fen, "156", orig))
}

fn query_req(key: &str) -> BTreeMap<String, String> {
    signed(query_params(&merchant(), &order(key)))
}

/// A gateway and its ledger, called at chosen moments.
struct Gateway {
    sim: UnionpaySim,
    ledger: Ledger,
}

impl Gateway {
    fn new() -> Self {
        Self {
            sim: sim(),
            ledger: Ledger::new(),
        }
    }

    fn refund(&self, req: &BTreeMap<String, String>, now: Instant) -> Answer {
        handle(
            &self.sim.merchant_key,
            &self.ledger,
            SETTLE,
            Endpoint::BackTrans,
            req,
            now,
        )
    }

    fn query(&self, key: &str, now: Instant) -> Answer {
        handle(
            &self.sim.merchant_key,
            &self.ledger,
            SETTLE,
            Endpoint::Query,
            &query_req(key),
            now,
        )
    }

    /// What the worker's adapter makes of an answer about `key`'s order.
    fn worker_sees(&self, call: Call, key: &str, a: &Answer) -> ChannelOutcome {
        let verifier = RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap();
        interpret(call, &order(key), 200, &self.sim.sign(a), &verifier)
    }

    fn moves(&self, key: &str, now: Instant) -> Option<u32> {
        let lines = self.ledger.snapshot(now);
        lines.iter().find(|l| l.key == key).map(|l| l.moves)
    }
}

fn code(a: &Answer) -> (&str, Option<&str>) {
    (
        a.fields["respCode"].as_str(),
        a.fields.get("origRespCode").map(String::as_str),
    )
}

#[test]
fn a_refund_is_accepted_then_paid_after_settlement() {
    let g = Gateway::new();
    let t0 = Instant::now();
    let accepted = g.refund(&refund_req(KEY, 100_000, ORIG), t0);
    assert_eq!(code(&accepted), ("00", None));
    assert_eq!(
        g.worker_sees(Call::Refund, KEY, &accepted),
        ChannelOutcome::Pending
    );
    assert_eq!(g.moves(KEY, t0), Some(0));

    let early = g.query(KEY, t0 + SETTLE / 2);
    assert_eq!(code(&early), ("00", Some("05")));
    assert_eq!(
        g.worker_sees(Call::Query, KEY, &early),
        ChannelOutcome::Pending
    );

    let late = g.query(KEY, t0 + SETTLE);
    assert_eq!(code(&late), ("00", Some("00")));
    assert_eq!(
        g.worker_sees(Call::Query, KEY, &late),
        ChannelOutcome::Succeeded {
            reference: accepted.fields["queryId"].clone()
        }
    );
    assert_eq!(late.fields["queryId"].len(), 21);
    assert_eq!(g.moves(KEY, t0 + SETTLE), Some(1));
}

#[test]
fn a_repeat_gets_the_same_answer_and_pays_nothing_more() {
    let g = Gateway::new();
    let t0 = Instant::now();
    let first = g.refund(&refund_req(KEY, 100_000, ORIG), t0);
    let again = g.refund(&refund_req(KEY, 100_000, ORIG), t0 + SETTLE * 2);
    assert_eq!(first, again);
    assert_eq!(g.moves(KEY, t0 + SETTLE * 2), Some(1));
}

#[test]
fn our_order_id_with_other_parameters_is_a_duplicate_transaction() {
    let g = Gateway::new();
    let t0 = Instant::now();
    g.refund(&refund_req(KEY, 100_000, ORIG), t0);
    let other_amount = g.refund(&refund_req(KEY, 100_001, ORIG), t0);
    assert_eq!(code(&other_amount), ("12", None));
    assert!(matches!(
        g.worker_sees(Call::Refund, KEY, &other_amount),
        ChannelOutcome::Review { .. }
    ));
    // A fresh txnTime on a retry is another order with our orderId: refused, not paid.
    let mut params = refund_params(&merchant(), &order(KEY), 100_000, "156", ORIG);
    params.insert("txnTime".into(), "20261120160001".into());
    assert_eq!(code(&g.refund(&signed(params), t0)), ("12", None));
    assert_eq!(g.moves(KEY, t0 + SETTLE), Some(1));
}

#[test]
fn an_original_ending_0000_is_refused_at_once_and_stays_refused() {
    let g = Gateway::new();
    let t0 = Instant::now();
    let refused = g.refund(&refund_req(KEY, 5_000, "20260315220014560000"), t0);
    assert_eq!(code(&refused), ("35", None));
    match g.worker_sees(Call::Refund, KEY, &refused) {
        ChannelOutcome::Failed { code, reason } => {
            assert_eq!(code, "35");
            assert_eq!(reason, "原交易不存在或状态不正确");
        }
        other => panic!("{other:?}"),
    }
    let q = g.query(KEY, t0 + SETTLE);
    assert_eq!(code(&q), ("00", Some("35")));
    assert!(matches!(
        g.worker_sees(Call::Query, KEY, &q),
        ChannelOutcome::Failed { .. }
    ));
    assert_eq!(g.moves(KEY, t0 + SETTLE), Some(0));
}

#[test]
fn an_original_ending_0001_is_accepted_then_refused() {
    let g = Gateway::new();
    let t0 = Instant::now();
    let accepted = g.refund(&refund_req(KEY, 5_000, "20260315220014560001"), t0);
    assert_eq!(code(&accepted), ("00", None));
    assert_eq!(code(&g.query(KEY, t0)), ("00", Some("05")));
    let q = g.query(KEY, t0 + SETTLE);
    assert_eq!(code(&q), ("00", Some("60")));
    assert!(matches!(
        g.worker_sees(Call::Query, KEY, &q),
        ChannelOutcome::Failed { code, .. } if code == "60"
    ));
    assert_eq!(g.moves(KEY, t0 + SETTLE), Some(0));
}

#[test]
fn an_original_ending_0003_is_accepted_with_defects_then_paid() {
    let g = Gateway::new();
    let t0 = Instant::now();
    let accepted = g.refund(&refund_req(KEY, 5_000, "20260315220014560003"), t0);
    assert_eq!(code(&accepted), ("A6", None));
    // The worker reads A6 like 00: accepted, to be confirmed by a query.
    assert_eq!(
        g.worker_sees(Call::Refund, KEY, &accepted),
        ChannelOutcome::Pending
    );
    // A repeat gets the same answer.
    let again = g.refund(&refund_req(KEY, 5_000, "20260315220014560003"), t0);
    assert_eq!(code(&again), ("A6", None));
    let q = g.query(KEY, t0 + SETTLE);
    assert_eq!(code(&q), ("00", Some("00")));
    assert!(matches!(
        g.worker_sees(Call::Query, KEY, &q),
        ChannelOutcome::Succeeded { .. }
    ));
    assert_eq!(g.moves(KEY, t0 + SETTLE), Some(1));
}

#[test]
fn a_query_finds_only_our_order_id_at_our_txn_time() {
    let g = Gateway::new();
    let t0 = Instant::now();
    let unknown = g.query(KEY, t0);
    assert_eq!(code(&unknown), ("34", None));
    // The worker reads 34 as "not known yet: query again later" (issue 14).
    assert!(matches!(
        g.worker_sees(Call::Query, KEY, &unknown),
        ChannelOutcome::Unknown { .. }
    ));
    g.refund(&refund_req(KEY, 100, ORIG), t0);
    let mut params = query_params(&merchant(), &order(KEY));
    params.insert("txnTime".into(), "20261120160001".into());
    let elsewhen = handle(
        &g.sim.merchant_key,
        &g.ledger,
        SETTLE,
        Endpoint::Query,
        &signed(params),
        t0,
    );
    assert_eq!(code(&elsewhen), ("34", None));
}

#[test]
fn gateway_checks_answer_with_unionpay_codes() {
    let g = Gateway::new();
    let t0 = Instant::now();
    // Signed with a key that is not the merchant's.
    let mut forged = refund_params(&merchant(), &order(KEY), 100, "156", ORIG);
    sign::sign(
        &mut forged,
        &RsaSigner::from_pem(DEV_PLATFORM_PRIVATE_KEY).unwrap(),
    );
    let answer = g.refund(&forged, t0);
    assert_eq!(code(&answer), ("11", None));
    assert!(matches!(
        g.worker_sees(Call::Refund, KEY, &answer),
        ChannelOutcome::RetryLater { .. }
    ));
    // Tampered after signing.
    let mut tampered = refund_req(KEY, 100, ORIG);
    tampered.insert("txnAmt".into(), "999999".into());
    assert_eq!(code(&g.refund(&tampered, t0)), ("11", None));
    // Unsigned, empty, wrong version.
    let unsigned = refund_params(&merchant(), &order(KEY), 100, "156", ORIG);
    assert_eq!(code(&g.refund(&unsigned, t0)), ("11", None));
    assert_eq!(code(&g.refund(&BTreeMap::new(), t0)), ("10", None));
    let mut old = refund_params(&merchant(), &order(KEY), 100, "156", ORIG);
    old.insert("version".into(), "5.0.0".into());
    assert_eq!(code(&g.refund(&signed(old), t0)), ("10", None));
    // A missing field, a query sent to the refund address, a bad orderId or amount.
    let mut missing = refund_params(&merchant(), &order(KEY), 100, "156", ORIG);
    missing.remove("origQryId");
    assert_eq!(code(&g.refund(&signed(missing), t0)), ("13", None));
    assert_eq!(code(&g.refund(&query_req(KEY), t0)), ("10", None));
    assert_eq!(
        code(&g.refund(&refund_req("short", 100, ORIG), t0)),
        ("10", None)
    );
    assert_eq!(code(&g.refund(&refund_req(KEY, 0, ORIG), t0)), ("10", None));
    // None of that recorded anything.
    assert_eq!(g.moves(KEY, t0), None);
}

#[test]
fn answers_echo_only_what_cannot_break_the_message() {
    let g = Gateway::new();
    let mut params = refund_params(&merchant(), &order(KEY), 100, "156", ORIG);
    params.insert("merId".into(), "a&respCode=00".into());
    let answer = g.refund(&signed(params), Instant::now());
    assert!(!answer.fields.contains_key("merId"));
    let body = g.sim.sign(&answer);
    assert!(sign::verify_message(
        &body,
        &RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap()
    )
    .is_ok());
}

#[test]
fn faults_look_like_unionpay_and_only_a_lost_answer_is_processed() {
    let s = sim();
    let ledger = Ledger::new();
    let t0 = Instant::now();
    let call = |fault, key: &str| {
        s.call(
            Some(fault),
            &ledger,
            SETTLE,
            Endpoint::BackTrans,
            &refund_req(key, 100, ORIG),
            t0,
        )
    };
    let keys = [
        "PO00000000000000000000000000000a",
        "PO00000000000000000000000000000b",
    ];
    let (reply, answer) = call(Fault::BadGateway, keys[0]);
    assert_eq!(
        reply,
        Reply::Plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway")
    );
    assert!(answer.is_none());
    for (fault, busy) in [
        (Fault::ServiceUnavailable, "03"),
        (Fault::SystemError, "04"),
    ] {
        let (reply, answer) = call(fault, keys[0]);
        assert_eq!(code(answer.as_ref().unwrap()), (busy, None));
        let Reply::Signed(body) = reply else {
            panic!("a signed answer")
        };
        let verifier = RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap();
        assert!(matches!(
            interpret(Call::Refund, &order(keys[0]), 200, &body, &verifier),
            ChannelOutcome::Unknown { .. }
        ));
    }
    assert!(ledger.snapshot(t0).is_empty(), "nothing processed so far");
    let (reply, answer) = call(Fault::LostAnswer, keys[1]);
    assert!(matches!(
        reply,
        Reply::Plain(StatusCode::INTERNAL_SERVER_ERROR, _)
    ));
    assert_eq!(code(answer.as_ref().unwrap()), ("00", None));
    assert_eq!(ledger.snapshot(t0 + SETTLE)[0].moves, 1);
    let (_, answer) = call(Fault::LatencySpike, keys[1]);
    assert_eq!(code(answer.as_ref().unwrap()), ("00", None));
    assert_eq!(code(&not_processed(&BTreeMap::new(), "03")), ("03", None));
}

#[test]
fn concurrent_refunds_with_one_new_order_id_pay_once() {
    let g = Gateway::new();
    let t0 = Instant::now();
    let req = refund_req(KEY, 100_000, ORIG);
    let answers: Vec<Answer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8).map(|_| scope.spawn(|| g.refund(&req, t0))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| *a == answers[0]));
    assert_eq!(g.moves(KEY, t0 + SETTLE), Some(1));
}
