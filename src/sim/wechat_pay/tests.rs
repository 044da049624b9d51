//! The simulated WeChat refund API with the clock injected: settlement, idempotency,
//! the business failures a request can ask for, signature checks, and what each
//! injected fault looks like on the wire.

use super::*;
use crate::channels::wechat_pay::protocol::{refund_path, ErrorBody, RefundObject};
use crate::channels::wechat_pay::sign::{RequestToSign, ResponseHeaders};
use crate::channels::wechat_pay::{DEV_MERCHANT_PRIVATE_KEY, DEV_PLATFORM_PUBLIC_KEY};
use crate::sim::ledger::LedgerLine;

const SETTLE: Duration = Duration::from_secs(60);
const UNIX: i64 = 1_795_161_600;
const KEY: &str = "PO73e67d6185226a979fda4140e4128b";

fn sim() -> WechatSim {
    WechatSim::new(
        RsaSigner::from_pem(DEV_PLATFORM_PRIVATE_KEY).unwrap(),
        RsaVerifier::from_pem(DEV_MERCHANT_PUBLIC_KEY).unwrap(),
    )
}

fn at(t0: Instant, secs: u64) -> Now {
    Now {
        instant: t0 + Duration::from_secs(secs),
        unix: UNIX + secs as i64,
    }
}

fn body(key: &str, txn: &str, refund: i64) -> String {
    serde_json::json!({
        "transaction_id": txn, "out_refund_no": key, "reason": "withdrawal",
        "amount": {"refund": refund, "total": refund, "currency": "CNY"},
    })
    .to_string()
}

/// A request signed with the development merchant key at `unix`; (authorization, path).
fn signed(method: &str, path: &str, body: &[u8], unix: i64) -> String {
    let nonce = sign::nonce();
    sign::authorization(
        &RsaSigner::from_pem(DEV_MERCHANT_PRIVATE_KEY).unwrap(),
        "1900000001",
        "3775B6A45ACD588826D15E583A95F5DD00000001",
        &RequestToSign {
            method,
            path_with_query: path,
            timestamp: unix,
            nonce: &nonce,
            body,
        },
    )
}

/// A world: the simulator, its ledger, and the moment it started.
struct World {
    sim: WechatSim,
    ledger: Ledger,
    t0: Instant,
}

impl World {
    fn new() -> Self {
        Self {
            sim: sim(),
            ledger: Ledger::new(),
            t0: Instant::now(),
        }
    }

    fn create(&self, body: &str, secs: u64) -> Answer {
        let now = at(self.t0, secs);
        let auth = signed("POST", REFUNDS_PATH, body.as_bytes(), now.unix);
        let req = Request {
            method: "POST",
            path_with_query: REFUNDS_PATH,
            authorization: Some(&auth),
            body: body.as_bytes(),
        };
        self.sim
            .handle(&self.ledger, SETTLE, &Endpoint::CreateRefund, &req, now)
    }

    fn get(&self, key: &str, secs: u64) -> Answer {
        let now = at(self.t0, secs);
        let path = refund_path(key);
        let auth = signed("GET", &path, b"", now.unix);
        let req = Request {
            method: "GET",
            path_with_query: &path,
            authorization: Some(&auth),
            body: b"",
        };
        let endpoint = Endpoint::GetRefund {
            out_refund_no: key.to_owned(),
        };
        self.sim.handle(&self.ledger, SETTLE, &endpoint, &req, now)
    }

    fn moves(&self, secs: u64) -> Vec<LedgerLine> {
        self.ledger.snapshot(at(self.t0, secs).instant)
    }
}

fn status_of(a: &Answer) -> String {
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    serde_json::from_str::<RefundObject>(&a.body)
        .unwrap()
        .status
}

fn code_of(a: &Answer) -> (StatusCode, String) {
    (
        a.status,
        serde_json::from_str::<ErrorBody>(&a.body).unwrap().code,
    )
}

#[test]
fn a_refund_is_processing_then_succeeds_after_settle_and_pays_once() {
    let w = World::new();
    let b = body(KEY, "4200002026031522001456", 100_000);
    assert_eq!(status_of(&w.create(&b, 0)), "PROCESSING");
    assert_eq!(
        w.moves(0)[0].moves,
        0,
        "nothing counts as paid before settlement"
    );
    assert_eq!(status_of(&w.create(&b, 59)), "PROCESSING");
    assert_eq!(status_of(&w.get(KEY, 59)), "PROCESSING");
    let done = w.get(KEY, 60);
    let r: RefundObject = serde_json::from_str(&done.body).unwrap();
    assert_eq!(r.status, "SUCCESS");
    assert_eq!(r.out_refund_no, KEY);
    assert_eq!(r.transaction_id, "4200002026031522001456");
    assert_eq!(r.refund_id, refunds::refund_id(KEY));
    assert_eq!(r.create_time.as_deref(), Some("2026-11-20T16:00:00+08:00"));
    assert_eq!(r.success_time.as_deref(), Some("2026-11-20T16:01:00+08:00"));
    assert_eq!(
        r.amount.as_ref().map(|a| (a.refund, a.total)),
        Some((100_000, 100_000))
    );
    // A resend after settlement answers from the record and pays nothing more.
    assert_eq!(status_of(&w.create(&b, 61)), "SUCCESS");
    let lines = w.moves(61);
    assert_eq!(lines.len(), 1);
    assert_eq!(
        (
            lines[0].channel.as_str(),
            lines[0].amount.as_str(),
            lines[0].moves
        ),
        ("wechat_pay", "1000.00", 1)
    );
}

#[test]
fn a_trade_ending_0000_is_unknown_to_wechat_at_once() {
    let w = World::new();
    let b = body(KEY, "42000020260315220014560000", 500);
    let not_found = (StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS".to_owned());
    assert_eq!(code_of(&w.create(&b, 0)), not_found);
    assert_eq!(code_of(&w.create(&b, 120)), not_found);
    assert_eq!(code_of(&w.get(KEY, 120)), not_found);
    assert_eq!(w.moves(120)[0].moves, 0);
}

#[test]
fn a_trade_ending_0002_finds_our_balance_too_low_on_every_attempt() {
    let w = World::new();
    let b = body(KEY, "42000020260315220014560002", 500);
    let not_enough = (StatusCode::FORBIDDEN, "NOT_ENOUGH".to_owned());
    assert_eq!(code_of(&w.create(&b, 0)), not_enough);
    assert_eq!(code_of(&w.create(&b, 120)), not_enough);
    // Nothing was created: a query finds no refund, and nothing moved.
    assert_eq!(
        code_of(&w.get(KEY, 120)),
        (StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS".to_owned())
    );
    assert!(w.moves(120).is_empty());
}

#[test]
fn a_trade_ending_0001_is_accepted_then_closed() {
    let w = World::new();
    let b = body(KEY, "42000020260315220014560001", 500);
    assert_eq!(status_of(&w.create(&b, 0)), "PROCESSING");
    assert_eq!(status_of(&w.get(KEY, 60)), "CLOSED");
    assert_eq!(status_of(&w.create(&b, 61)), "CLOSED");
    assert_eq!(w.moves(61)[0].moves, 0);
}

#[test]
fn the_same_key_with_other_parameters_is_invalid_request() {
    let w = World::new();
    w.create(&body(KEY, "4200002026031522001456", 500), 0);
    for other in [
        body(KEY, "4200002026031522001456", 501),
        body(KEY, "4200002026031522009999", 500),
    ] {
        assert_eq!(
            code_of(&w.create(&other, 1)),
            (StatusCode::BAD_REQUEST, "INVALID_REQUEST".to_owned())
        );
    }
    // The reason is display text: changing it is still the same refund.
    let reworded = body(KEY, "4200002026031522001456", 500).replace("withdrawal", "refund");
    assert_eq!(status_of(&w.create(&reworded, 2)), "PROCESSING");
    assert_eq!(w.moves(120)[0].moves, 1);
}

#[test]
fn bad_parameters_and_unknown_keys() {
    let w = World::new();
    let param_error = (StatusCode::BAD_REQUEST, "PARAM_ERROR".to_owned());
    for bad in [
        "not json".to_owned(),
        body("", "4200002026031522001456", 500),
        body(&"K".repeat(65), "4200002026031522001456", 500),
        body("PO with spaces", "4200002026031522001456", 500),
        body(KEY, "", 500),
        body(KEY, "4200002026031522001456", 0),
        body(KEY, "4200002026031522001456", 500).replace("CNY", "USD"),
        body(KEY, "4200002026031522001456", 500).replace("\"total\":500", "\"total\":499"),
    ] {
        assert_eq!(code_of(&w.create(&bad, 0)), param_error, "{bad}");
    }
    assert!(w.moves(0).is_empty());
    assert_eq!(
        code_of(&w.get("PO-never-seen", 0)),
        (StatusCode::NOT_FOUND, "RESOURCE_NOT_EXISTS".to_owned())
    );
}

#[test]
fn unsigned_forged_or_stale_requests_are_sign_error_and_do_nothing() {
    let w = World::new();
    let b = body(KEY, "4200002026031522001456", 500);
    let now = at(w.t0, 0);
    let good = signed("POST", REFUNDS_PATH, b.as_bytes(), now.unix);
    let stale = signed("POST", REFUNDS_PATH, b.as_bytes(), now.unix - 301);
    let for_other_path = signed(
        "POST",
        "/v3/refund/domestic/refunds?x=1",
        b.as_bytes(),
        now.unix,
    );
    for auth in [
        None,
        Some(stale.as_str()),
        Some(for_other_path.as_str()),
        Some("WECHATPAY2-SHA256-RSA2048 garbage"),
    ] {
        let req = Request {
            method: "POST",
            path_with_query: REFUNDS_PATH,
            authorization: auth,
            body: b.as_bytes(),
        };
        let a = w
            .sim
            .handle(&w.ledger, SETTLE, &Endpoint::CreateRefund, &req, now);
        assert_eq!(
            code_of(&a),
            (StatusCode::UNAUTHORIZED, "SIGN_ERROR".to_owned())
        );
    }
    // Signed over another body.
    let req = Request {
        method: "POST",
        path_with_query: REFUNDS_PATH,
        authorization: Some(&good),
        body: b"{}",
    };
    let a = w
        .sim
        .handle(&w.ledger, SETTLE, &Endpoint::CreateRefund, &req, now);
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(w.moves(0).is_empty());
}

#[test]
fn every_answer_is_signed_with_the_platform_key() {
    let w = World::new();
    let answer = w.create(&body(KEY, "4200002026031522001456", 500), 0);
    let Wire::Signed {
        status,
        body,
        timestamp,
        nonce,
        signature,
    } = w.sim.sign(&answer, UNIX)
    else {
        panic!("not signed");
    };
    assert_eq!(status, StatusCode::OK);
    let h = ResponseHeaders {
        timestamp: Some(&timestamp),
        nonce: Some(&nonce),
        signature: Some(&signature),
        serial: Some(&w.sim.platform_serial),
    };
    let platform = RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap();
    assert_eq!(
        sign::verify_response(&h, body.as_bytes(), &platform, DEV_PLATFORM_SERIAL_NO, UNIX),
        Ok(())
    );
}

#[test]
fn each_fault_looks_like_wechat_and_only_a_lost_answer_is_carried_out() {
    let b = body(KEY, "4200002026031522001456", 500);
    let call = |fault: Option<Fault>| {
        let w = World::new();
        let now = at(w.t0, 0);
        let auth = signed("POST", REFUNDS_PATH, b.as_bytes(), now.unix);
        let req = Request {
            method: "POST",
            path_with_query: REFUNDS_PATH,
            authorization: Some(&auth),
            body: b.as_bytes(),
        };
        let (wire, answer) =
            w.sim
                .call(fault, &w.ledger, SETTLE, &Endpoint::CreateRefund, &req, now);
        let recorded = w.moves(120).len();
        (wire, answer, recorded)
    };
    let signed_error = |wire: &Wire| match wire {
        Wire::Signed { status, body, .. } => (
            *status,
            serde_json::from_str::<ErrorBody>(body).unwrap().code,
        ),
        Wire::Plain(..) => panic!("unsigned: {wire:?}"),
    };

    let (wire, answer, recorded) = call(Some(Fault::BadGateway));
    assert_eq!(
        wire,
        Wire::Plain(StatusCode::BAD_GATEWAY, "502 Bad Gateway")
    );
    assert!(answer.is_none() && recorded == 0);

    let (wire, answer, recorded) = call(Some(Fault::ServiceUnavailable));
    assert_eq!(
        signed_error(&wire),
        (StatusCode::TOO_MANY_REQUESTS, "FREQUENCY_LIMITED".into())
    );
    assert!(answer.is_none() && recorded == 0);

    let (wire, answer, recorded) = call(Some(Fault::SystemError));
    assert_eq!(
        signed_error(&wire),
        (StatusCode::INTERNAL_SERVER_ERROR, "SYSTEM_ERROR".into())
    );
    assert!(answer.is_none() && recorded == 0);

    let (wire, answer, recorded) = call(Some(Fault::LostAnswer));
    assert!(matches!(
        wire,
        Wire::Plain(StatusCode::INTERNAL_SERVER_ERROR, _)
    ));
    assert_eq!(answer.unwrap().outcome, "PROCESSING");
    assert_eq!(
        recorded, 1,
        "the refund was created before the answer was lost"
    );

    for fault in [Some(Fault::LatencySpike), None] {
        let (wire, answer, recorded) = call(fault);
        assert!(matches!(
            wire,
            Wire::Signed {
                status: StatusCode::OK,
                ..
            }
        ));
        assert_eq!(answer.unwrap().outcome, "PROCESSING");
        assert_eq!(recorded, 1);
    }
}

#[test]
fn refund_ids_are_stable_and_look_like_wechat_ones() {
    let id = refunds::refund_id(KEY);
    assert_eq!(id, refunds::refund_id(KEY));
    assert_ne!(id, refunds::refund_id("PO-other"));
    assert_eq!(id.len(), 29);
    assert!(id.starts_with("50") && id.bytes().all(|b| b.is_ascii_digit()));
}
