//! Tests of the simulated bank gateway, called directly (no HTTP) with an injected clock:
//! authentication, asynchronous settlement, the business failures a request can choose,
//! idempotency, schema checks and every fault. Every answer is verified with the
//! gateway's public key and read by the worker's own adapter, so the simulator and the
//! adapter are checked to be counterparts.

use super::*;
use crate::channels::bank::protocol::{Call, StatusReport};
use crate::channels::bank::{read_answer, DEV_CLIENT_PRIVATE_KEY, DEV_GATEWAY_PUBLIC_KEY};
use crate::channels::ChannelOutcome;

const SETTLE: Duration = Duration::from_millis(300);
const ACCOUNT: &str = "6222020200112233445";

fn sim() -> BankSim {
    BankSim::from_settings(&crate::config::Settings::defaults().sim).unwrap()
}

fn client_key() -> RsaSigner {
    RsaSigner::from_pem(DEV_CLIENT_PRIVATE_KEY).unwrap()
}

fn transfer(key: &str, account: &str, amount: &str) -> Vec<u8> {
    serde_json::json!({
        "end_to_end_id": key,
        "instructed_amount": {"value": amount, "currency": "CNY"},
        "debtor_account": "6222000000000000001",
        "creditor": {"name": "Zhang San", "account": account, "bank_name": "ICBC"},
        "remittance_information": "Balance withdrawal wd-1",
    })
    .to_string()
    .into_bytes()
}

fn return_of_funds(key: &str, original: &str) -> Vec<u8> {
    serde_json::json!({
        "end_to_end_id": key,
        "instructed_amount": {"value": "30.00", "currency": "CNY"},
        "debtor_account": "6222000000000000001",
        "original_transaction_id": original,
        "remittance_information": "Balance withdrawal wd-1",
    })
    .to_string()
    .into_bytes()
}

/// A request and the path it goes to, signed by the client; owned for the test's sake.
struct Signed {
    path: String,
    body: Vec<u8>,
    signature: String,
}

fn post(body: Vec<u8>) -> Signed {
    let path = "/bank/payments".to_owned();
    let signature = sign::sign_request(&client_key(), "POST", &path, &body);
    Signed {
        path,
        body,
        signature,
    }
}

fn get(key: &str) -> Signed {
    let path = format!("/bank/payments/{key}");
    let signature = sign::sign_request(&client_key(), "GET", &path, b"");
    Signed {
        path,
        body: Vec::new(),
        signature,
    }
}

fn request<'a>(s: &'a Signed, key: &'a str) -> GatewayRequest<'a> {
    let (op, method) = match s.body.is_empty() {
        true => (Op::Status(key), "GET"),
        false => (Op::Initiate, "POST"),
    };
    GatewayRequest {
        op,
        method,
        path: &s.path,
        key_id: Some("payout-dev-1"),
        signature: Some(&s.signature),
        body: &s.body,
    }
}

fn send(sim: &BankSim, ledger: &Ledger, s: &Signed, key: &str, now: Instant) -> Reply {
    sim.handle(ledger, SETTLE, &request(s, key), now)
}

/// What the worker's adapter makes of a reply (signature checked against its path).
fn worker_sees(r: &Reply, path: &str, key: &str) -> ChannelOutcome {
    let call = match path.ends_with("/payments") {
        true => Call::Initiation,
        false => Call::StatusQuery,
    };
    let verifier = RsaVerifier::from_pem(DEV_GATEWAY_PUBLIC_KEY).unwrap();
    read_answer(
        &verifier,
        call,
        key,
        path,
        r.status,
        r.signature.as_deref(),
        r.body.as_bytes(),
    )
}

fn status_of(r: &Reply) -> (String, Option<String>) {
    let report: StatusReport = serde_json::from_str(&r.body).unwrap();
    (report.status, report.reason_code)
}

fn moves(ledger: &Ledger, key: &str, now: Instant) -> Option<u32> {
    ledger
        .snapshot(now)
        .into_iter()
        .find(|l| l.key == key)
        .map(|l| l.moves)
}

#[test]
fn with_no_settlement_time_a_payment_settles_in_its_answer() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let pay = post(transfer("PO9", ACCOUNT, "20.00"));
    let first = sim.handle(&ledger, Duration::ZERO, &request(&pay, "PO9"), t0);
    assert_eq!((first.status, status_of(&first).0), (201, "ACSC".into()));
    assert!(matches!(
        worker_sees(&first, &pay.path, "PO9"),
        ChannelOutcome::Succeeded { .. }
    ));
    assert_eq!(moves(&ledger, "PO9", t0), Some(1));
    // A refusal stays a refusal.
    let refused = post(transfer("PO8", "6222000000000000", "20.00"));
    let answer = sim.handle(&ledger, Duration::ZERO, &request(&refused, "PO8"), t0);
    assert_eq!(status_of(&answer).0, "RJCT");
}

#[test]
fn a_new_payment_is_acknowledged_in_progress_then_settled() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let pay = post(transfer("PO1", ACCOUNT, "500.00"));
    let first = send(&sim, &ledger, &pay, "PO1", t0);
    assert_eq!(
        (first.status, status_of(&first)),
        (201, ("ACTC".into(), None))
    );
    assert_eq!(
        worker_sees(&first, &pay.path, "PO1"),
        ChannelOutcome::Pending
    );
    assert_eq!(moves(&ledger, "PO1", t0), Some(0));

    let query = get("PO1");
    let during = send(
        &sim,
        &ledger,
        &query,
        "PO1",
        t0 + SETTLE - Duration::from_millis(1),
    );
    assert_eq!(status_of(&during).0, "ACSP");
    assert_eq!(
        worker_sees(&during, &query.path, "PO1"),
        ChannelOutcome::Pending
    );

    let after = send(&sim, &ledger, &query, "PO1", t0 + SETTLE);
    assert_eq!(status_of(&after).0, "ACSC");
    assert!(
        matches!(worker_sees(&after, &query.path, "PO1"), ChannelOutcome::Succeeded { reference } if reference.starts_with("BR"))
    );
    assert_eq!(moves(&ledger, "PO1", t0 + SETTLE), Some(1));
    // A repeat after settlement: the current status, still one payment.
    let again = send(&sim, &ledger, &pay, "PO1", t0 + SETTLE);
    assert_eq!((again.status, status_of(&again).0), (200, "ACSC".into()));
    assert_eq!(moves(&ledger, "PO1", t0 + SETTLE), Some(1));
}

#[test]
fn a_return_of_funds_settles_like_a_transfer() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let first = send(
        &sim,
        &ledger,
        &post(return_of_funds("PO2", "2026031522001456")),
        "PO2",
        t0,
    );
    assert_eq!(status_of(&first).0, "ACTC");
    let after = send(&sim, &ledger, &get("PO2"), "PO2", t0 + SETTLE);
    assert_eq!(status_of(&after).0, "ACSC");
    assert_eq!(moves(&ledger, "PO2", t0 + SETTLE), Some(1));
}

#[test]
fn an_account_ending_0000_is_rejected_at_once() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    for (key, body) in [
        ("PO3", transfer("PO3", "62220202001122330000", "10.00")),
        ("PO4", return_of_funds("PO4", "20260315220014560000")),
    ] {
        let pay = post(body);
        let r = send(&sim, &ledger, &pay, key, t0);
        assert_eq!(status_of(&r), ("RJCT".into(), Some("AC04".into())));
        assert!(
            matches!(worker_sees(&r, &pay.path, key), ChannelOutcome::Failed { code, .. } if code == "AC04")
        );
        let later = send(&sim, &ledger, &get(key), key, t0 + SETTLE);
        assert_eq!(status_of(&later), ("RJCT".into(), Some("AC04".into())));
        assert_eq!(moves(&ledger, key, t0 + SETTLE), Some(0));
    }
}

#[test]
fn an_account_ending_0001_is_accepted_then_rejected() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let first = send(
        &sim,
        &ledger,
        &post(transfer("PO5", "62220202001122330001", "10.00")),
        "PO5",
        t0,
    );
    assert_eq!(status_of(&first).0, "ACTC");
    let during = send(&sim, &ledger, &get("PO5"), "PO5", t0);
    assert_eq!(status_of(&during).0, "ACSP");
    let query = get("PO5");
    let after = send(&sim, &ledger, &query, "PO5", t0 + SETTLE);
    assert_eq!(status_of(&after), ("RJCT".into(), Some("AC01".into())));
    assert!(
        matches!(worker_sees(&after, &query.path, "PO5"), ChannelOutcome::Failed { code, .. } if code == "AC01")
    );
    assert_eq!(moves(&ledger, "PO5", t0 + SETTLE), Some(0));
}

#[test]
fn the_same_id_with_other_content_is_a_duplicate_and_unknown_ids_are_not_found() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let q = get("PO6");
    let missing = send(&sim, &ledger, &q, "PO6", t0);
    assert_eq!(missing.status, 404);
    assert_eq!(
        worker_sees(&missing, &q.path, "PO6"),
        ChannelOutcome::NotFound
    );
    send(
        &sim,
        &ledger,
        &post(transfer("PO6", ACCOUNT, "10.00")),
        "PO6",
        t0,
    );
    for other in [
        transfer("PO6", ACCOUNT, "10.01"),
        return_of_funds("PO6", "2026031522001456"),
    ] {
        let pay = post(other);
        let r = send(&sim, &ledger, &pay, "PO6", t0);
        assert_eq!(r.status, 409);
        assert!(r.body.contains("DUPL"));
        assert!(matches!(
            worker_sees(&r, &pay.path, "PO6"),
            ChannelOutcome::Review { .. }
        ));
    }
    assert_eq!(ledger.snapshot(t0).len(), 1);
}

#[test]
fn bad_or_missing_authentication_is_refused_before_anything_happens() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let pay = post(transfer("PO7", ACCOUNT, "10.00"));
    let wrong_key = RsaSigner::from_pem(include_str!(
        "../../../tests/fixtures/keys/test_rsa_private.pem"
    ))
    .unwrap();
    let forged = sign::sign_request(&wrong_key, "POST", &pay.path, &pay.body);
    let other_path = sign::sign_request(&client_key(), "POST", "/bank/payments/x", &pay.body);
    let cases = [
        GatewayRequest {
            key_id: None,
            ..request(&pay, "PO7")
        },
        GatewayRequest {
            signature: None,
            ..request(&pay, "PO7")
        },
        GatewayRequest {
            signature: Some(&forged),
            ..request(&pay, "PO7")
        },
        GatewayRequest {
            signature: Some(&other_path),
            ..request(&pay, "PO7")
        },
        GatewayRequest {
            body: b"{}",
            ..request(&pay, "PO7")
        },
    ];
    for req in cases {
        let r = sim.handle(&ledger, SETTLE, &req, t0);
        assert_eq!(r.status, 401, "{}", r.body);
        assert!(matches!(
            worker_sees(&r, &pay.path, "PO7"),
            ChannelOutcome::RetryLater { .. }
        ));
    }
    assert!(ledger.snapshot(t0).is_empty());
}

#[test]
fn malformed_payments_are_refused_with_400() {
    let (sim, ledger, t0) = (sim(), Ledger::new(), Instant::now());
    let mut both =
        serde_json::from_slice::<serde_json::Value>(&transfer("PO8", ACCOUNT, "1.00")).unwrap();
    both["original_transaction_id"] = "2026031522001456".into();
    let mut neither = both.clone();
    neither.as_object_mut().unwrap().remove("creditor");
    neither
        .as_object_mut()
        .unwrap()
        .remove("original_transaction_id");
    for body in [
        b"not json".to_vec(),
        transfer("PO8", ACCOUNT, "10.5"),
        transfer("PO8", ACCOUNT, "0.00"),
        transfer("PO8", ACCOUNT, "-1.00"),
        transfer(&"P".repeat(36), ACCOUNT, "1.00"),
        transfer("PO/8", ACCOUNT, "1.00"),
        transfer("PO8", "", "1.00"),
        both.to_string().into_bytes(),
        neither.to_string().into_bytes(),
    ] {
        let pay = post(body);
        let r = send(&sim, &ledger, &pay, "PO8", t0);
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&pay.body));
        assert!(matches!(
            worker_sees(&r, &pay.path, "PO8"),
            ChannelOutcome::RetryLater { .. }
        ));
    }
    assert!(ledger.snapshot(t0).is_empty());
}

#[test]
fn faults_look_like_the_real_thing_and_only_a_lost_answer_moves_money() {
    let (sim, t0) = (sim(), Instant::now());
    for fault in Fault::ALL {
        let ledger = Ledger::new();
        let pay = post(transfer("PO9", ACCOUNT, "10.00"));
        let r = sim.call(&ledger, SETTLE, Some(fault), &request(&pay, "PO9"), t0);
        let seen = worker_sees(&r, &pay.path, "PO9");
        let recorded = moves(&ledger, "PO9", t0 + SETTLE);
        match fault {
            Fault::BadGateway => assert_eq!((r.status, r.signature.is_none()), (502, true)),
            Fault::ServiceUnavailable | Fault::SystemError => {
                assert_eq!((r.status, r.signature.is_some()), (503, true))
            }
            Fault::LostAnswer => assert_eq!((r.status, r.signature.is_none()), (500, true)),
            Fault::LatencySpike => assert_eq!(seen, ChannelOutcome::Pending),
        }
        assert_eq!(recorded.is_some(), fault.processes_request(), "{fault:?}");
        if r.status >= 500 {
            assert!(matches!(seen, ChannelOutcome::Unknown { .. }), "{fault:?}");
        }
        if fault == Fault::LostAnswer {
            // Carried out for real: the query that follows finds the payment.
            assert_eq!(recorded, Some(1));
        }
    }
}
