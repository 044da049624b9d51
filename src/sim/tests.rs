//! Tests of the simulator as a whole: settings, what each fault kind does, and real HTTP
//! (signed calls from a hand-built form and from the worker's own Alipay adapter, answers
//! verified with Alipay's public key, the ledger read back). The listener is bound before
//! the server starts, so nothing sleeps to synchronise.

use super::*;
use crate::channels::alipay::protocol::{GatewayResponse, REFUND};
use crate::channels::alipay::{sign, AlipayClient, DEV_APP_PRIVATE_KEY, DEV_PLATFORM_PUBLIC_KEY};
use crate::channels::{ChannelOutcome, PayoutOrder, Target};
use crate::domain::{
    AccountNo, ChannelKind, Currency, IdempotencyKey, LegId, Money, Payee, PayeeKind, PersonName,
    WithdrawalId,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn opts(settle_ms: u64) -> SimOptions {
    let mut s = crate::config::Settings::defaults().sim;
    s.settle_ms = settle_ms;
    SimOptions::from_settings(&s).unwrap()
}

/// A simulator on an ephemeral port: its base URL, the stop switch, the server task.
async fn start(settle_ms: u64) -> (String, oneshot::Sender<()>, JoinHandle<std::io::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve(opts(settle_ms), listener, async {
        let _ = stopped.await;
    }));
    (base, stop, server)
}

fn signed_refund(key: &str, amount: &str) -> BTreeMap<String, String> {
    let biz = serde_json::json!({
        "trade_no": "2026031522001456", "refund_amount": amount,
        "out_request_no": key, "refund_reason": "withdrawal",
    });
    let mut params: BTreeMap<String, String> = [
        ("app_id", "2021000000000001".to_owned()),
        ("method", REFUND.to_owned()),
        ("format", "JSON".to_owned()),
        ("charset", "utf-8".to_owned()),
        ("sign_type", "RSA2".to_owned()),
        ("timestamp", "2026-11-20 08:00:00".to_owned()),
        ("version", "1.0".to_owned()),
        ("biz_content", biz.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    sign::sign_request(
        &mut params,
        &RsaSigner::from_pem(DEV_APP_PRIVATE_KEY).unwrap(),
    );
    params
}

#[test]
fn settings_with_a_bad_fault_rate_or_key_file_are_refused() {
    let mut s = crate::config::Settings::defaults().sim;
    s.faults = 1.5;
    assert!(SimOptions::from_settings(&s)
        .unwrap_err()
        .contains("sim.faults"));
    s.faults = 0.0;
    s.alipay_platform_private_key_file = "/nonexistent/key.pem".into();
    assert!(SimOptions::from_settings(&s).is_err());
}

#[test]
fn each_fault_kind_does_what_it_says() {
    let sim = Sim::new(opts(300));
    let now = Instant::now();
    let moved = |key: &str| {
        sim.ledger
            .snapshot(now)
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.moves)
    };
    let code_of = |reply: &Reply| match reply {
        Reply::Signed(body) => {
            let v = sign::verify_response(
                body,
                REFUND,
                &RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap(),
            )
            .unwrap();
            let r: GatewayResponse = serde_json::from_str(&v.inner).unwrap();
            format!("{} {}", r.code, r.sub_code.unwrap_or_default())
        }
        Reply::Plain(status, _) => status.as_str().to_owned(),
    };
    let cases = [
        (Fault::BadGateway, "a", "502", None),
        (
            Fault::ServiceUnavailable,
            "b",
            "20000 isp.unknow-error",
            None,
        ),
        (Fault::SystemError, "c", "40004 ACQ.SYSTEM_ERROR", None),
        (Fault::LostAnswer, "d", "500", Some(1)),
        (Fault::LatencySpike, "e", "10000 ", Some(1)),
    ];
    for (fault, key, code, moves) in cases {
        let (reply, _) = sim.alipay_call(Some(fault), &signed_refund(key, "1.00"), now);
        assert_eq!(code_of(&reply), code, "{fault:?}");
        assert_eq!(moved(key), moves, "{fault:?}");
    }
    // After the lost answer, the resend is answered from the record: still one move.
    let (reply, _) = sim.alipay_call(None, &signed_refund("d", "1.00"), now);
    assert_eq!(code_of(&reply), "10000 ");
    assert_eq!(moved("d"), Some(1));
}

async fn ledger_of(http: &reqwest::Client, base: &str) -> serde_json::Value {
    http.get(format!("{base}/sim/ledger"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One real signed refund over HTTP, answered, verified, and visible in the ledger.
#[tokio::test]
async fn serves_signed_alipay_calls_and_the_ledger_over_http() {
    let (base, stop, server) = start(300).await;
    let http = reqwest::Client::new();
    let post = |params: BTreeMap<String, String>| {
        http.post(format!("{base}/gateway.do"))
            .header(
                "content-type",
                "application/x-www-form-urlencoded;charset=utf-8",
            )
            .body(serde_urlencoded::to_string(&params).unwrap())
            .send()
    };
    let platform = RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap();

    let response = post(signed_refund("PO-HTTP-1", "12.34")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let verified =
        sign::verify_response(&response.text().await.unwrap(), REFUND, &platform).unwrap();
    let r: GatewayResponse = serde_json::from_str(&verified.inner).unwrap();
    assert_eq!(
        (r.code.as_str(), r.fund_change.as_deref()),
        ("10000", Some("Y"))
    );

    assert_eq!(
        ledger_of(&http, &base).await,
        serde_json::json!([{"channel": "alipay", "key": "PO-HTTP-1", "amount": "12.34", "moves": 1}])
    );

    let mut tampered = signed_refund("PO-HTTP-2", "12.34");
    tampered.insert("timestamp".into(), "2026-11-20 08:00:01".into());
    let body = post(tampered).await.unwrap().text().await.unwrap();
    let verified = sign::verify_response(&body, REFUND, &platform).unwrap();
    let r: GatewayResponse = serde_json::from_str(&verified.inner).unwrap();
    assert_eq!(
        (r.code.as_str(), r.sub_code.as_deref()),
        ("40002", Some("isv.invalid-signature"))
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// `POST /sim/faults` changes rate, kinds and latency while the simulator runs; `GET`
/// reads them back with the counters; a bad request changes nothing.
#[tokio::test]
async fn faults_and_latency_are_adjustable_at_run_time() {
    let (base, stop, server) = start(300).await;
    let http = reqwest::Client::new();
    let control =
        |body: serde_json::Value| http.post(format!("{base}/sim/faults")).json(&body).send();
    let call = |key: &'static str| {
        http.post(format!("{base}/gateway.do"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(signed_refund(key, "1.00")).unwrap())
            .send()
    };

    let r = control(serde_json::json!({"rate": 1.0, "kinds": ["bad_gateway"]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let status: FaultStatus = r.json().await.unwrap();
    assert_eq!(
        (status.rate, status.kinds.clone()),
        (1.0, vec!["bad_gateway".to_owned()])
    );
    assert_eq!(call("PO-STORM-1").await.unwrap().status(), 502);

    for bad in [
        serde_json::json!({"rate": 2.0}),
        serde_json::json!({"kinds": ["meteor"]}),
    ] {
        assert_eq!(control(bad).await.unwrap().status(), 400);
    }
    let r = control(serde_json::json!({"rate": 0.0, "latency_ms": 300}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started = Instant::now();
    assert_eq!(call("PO-CALM-1").await.unwrap().status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    let status: FaultStatus = http
        .get(format!("{base}/sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The kinds were kept when only the rate changed; the 400s changed nothing.
    assert_eq!(status.kinds, vec!["bad_gateway".to_owned()]);
    assert_eq!((status.rate, status.latency_ms), (0.0, 300));
    assert_eq!((status.calls, status.injected["bad_gateway"]), (2, 1));
    let ledger = ledger_of(&http, &base).await;
    assert_eq!(
        ledger.as_array().unwrap().len(),
        1,
        "only the calm call reached Alipay"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

fn order(leg: &str, target: Target) -> PayoutOrder {
    let (w, l) = (
        WithdrawalId::parse("w-sim-1").unwrap(),
        LegId::parse(leg).unwrap(),
    );
    PayoutOrder {
        key: IdempotencyKey::for_leg(&w, &l),
        channel: ChannelKind::Alipay,
        amount: Money::parse("10.00").unwrap(),
        currency: Currency::parse("CNY", &["CNY".to_owned()]).unwrap(),
        target,
        memo: "withdrawal".into(),
        requested_at: chrono::Utc::now(),
    }
}

fn to_account(account_no: &str) -> Target {
    Target::Account(Payee {
        kind: PayeeKind::Alipay,
        name: PersonName::parse("Zhang San").unwrap(),
        account_no: AccountNo::parse(account_no).unwrap(),
        bank_name: None,
        branch: None,
    })
}

/// The worker's real adapter against the simulator: the two are counterparts.
#[tokio::test]
async fn the_worker_adapter_and_the_simulator_agree() {
    // A long settle time: the pending cases must still be pending when queried.
    let (base, stop, server) = start(600_000).await;
    let mut settings = crate::config::Settings::defaults().channels.alipay;
    settings.gateway_url = format!("{base}/gateway.do");
    let client = AlipayClient::from_settings(&settings).unwrap();

    let refund = order(
        "refund",
        Target::Refund {
            channel_txn_id: "2026031522001456".into(),
            bank: None,
        },
    );
    let paid = ChannelOutcome::Succeeded {
        reference: "2026031522001456".into(),
    };
    assert_eq!(client.pay(&refund).await, paid);
    assert_eq!(
        client.pay(&refund).await,
        paid,
        "a resend is answered from the record"
    );
    assert_eq!(client.query(&refund).await, paid);

    let unknown_trade = order(
        "no-trade",
        Target::Refund {
            channel_txn_id: "2026031522000000".into(),
            bank: None,
        },
    );
    assert_eq!(client.query(&unknown_trade).await, ChannelOutcome::NotFound);
    assert!(
        matches!(client.pay(&unknown_trade).await, ChannelOutcome::Failed { code, .. } if code == "ACQ.TRADE_NOT_EXIST")
    );

    let transfer = order("transfer", to_account("payee@example.com"));
    assert!(matches!(
        client.pay(&transfer).await,
        ChannelOutcome::Succeeded { .. }
    ));
    assert!(matches!(
        client.query(&transfer).await,
        ChannelOutcome::Succeeded { .. }
    ));

    let bouncing = order("bouncing", to_account("6222020200110001"));
    assert_eq!(client.pay(&bouncing).await, ChannelOutcome::Pending);
    assert_eq!(client.query(&bouncing).await, ChannelOutcome::Pending);

    let closed = order("closed", to_account("6222020200110000"));
    assert!(
        matches!(client.pay(&closed).await, ChannelOutcome::Failed { code, .. } if code == "PAYEE_NOT_EXIST")
    );
    assert_eq!(client.query(&closed).await, ChannelOutcome::NotFound);

    let http = reqwest::Client::new();
    let moves: BTreeMap<String, u64> = ledger_of(&http, &base)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_owned(),
                l["moves"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = [
        (&refund, 1),
        (&unknown_trade, 0),
        (&transfer, 1),
        (&bouncing, 0),
        (&closed, 0),
    ];
    assert_eq!(moves.len(), expect.len());
    for (o, n) in expect {
        assert_eq!(moves[o.key.as_str()], n, "{}", o.key);
    }
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}
