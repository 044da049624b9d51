//! Tests of the UnionPay transport: the adapter against the running simulator over real
//! HTTP (listeners are bound before anything connects, so nothing sleeps to
//! synchronise; settlement is chosen through `settle_ms`, 0 or an hour), the network
//! failures (refused connection, silence past the timeout, 5xx), and the rule that only
//! an answer verified with UnionPay's key can fail or pay a refund.

use super::*;
use crate::config::Settings;
use crate::domain::{
    AccountNo, ChannelKind, Currency, IdempotencyKey, LegId, Money, Payee, PayeeKind, PersonName,
    WithdrawalId,
};
use crate::sim::{serve, SimOptions};
use chrono::TimeZone;
use proptest::prelude::*;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A simulator on an ephemeral port; dropping the guard stops it.
struct RunningSim {
    base: String,
    _stop: oneshot::Sender<()>,
}

async fn start_sim(settle_ms: u64) -> RunningSim {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let mut s = Settings::defaults().sim;
    s.settle_ms = settle_ms;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(
        SimOptions::from_settings(&s).unwrap(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    RunningSim { base, _stop: stop }
}

fn client_for(base: &str, timeout_ms: u64) -> UnionpayClient {
    let mut s = Settings::defaults().channels.unionpay;
    s.back_url = format!("{base}/gateway/api/backTransReq.do");
    s.query_url = format!("{base}/gateway/api/queryTrans.do");
    s.timeout_ms = timeout_ms;
    UnionpayClient::from_settings(&s).unwrap()
}

fn key(leg: &str) -> IdempotencyKey {
    let w = WithdrawalId::parse(&crate::sim::ledger::fingerprint(&[leg])[..20]).unwrap();
    IdempotencyKey::for_leg(&w, &LegId::parse(leg).unwrap())
}

fn refund_order(leg: &str, amount: &str, channel_txn_id: &str) -> PayoutOrder {
    PayoutOrder {
        key: key(leg),
        channel: ChannelKind::Unionpay,
        amount: Money::parse(amount).unwrap(),
        currency: Currency::parse("CNY", &["CNY".to_owned()]).unwrap(),
        target: Target::Refund {
            channel_txn_id: channel_txn_id.into(),
            bank: None,
        },
        memo: "Balance withdrawal".into(),
        requested_at: chrono::Utc.with_ymd_and_hms(2026, 11, 20, 8, 0, 0).unwrap(),
    }
}

async fn ledger(base: &str) -> Vec<serde_json::Value> {
    reqwest::get(format!("{base}/sim/ledger"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_refund_is_accepted_then_paid_once_and_repeats_change_nothing() {
    let sim = start_sim(0).await;
    let client = client_for(&sim.base, 5000);
    let order = refund_order("paid", "1000.00", "202603151000001234567");
    // 34 before the first send: "not known yet", never NotFound (issue 14).
    assert!(matches!(
        client.query(&order).await,
        ChannelOutcome::Unknown { .. }
    ));
    assert_eq!(client.pay(&order).await, ChannelOutcome::Pending);
    assert_eq!(client.pay(&order).await, ChannelOutcome::Pending);
    let ChannelOutcome::Succeeded { reference } = client.query(&order).await else {
        panic!("settled at once with settle_ms = 0")
    };
    assert_eq!(reference.len(), 21);
    let lines = ledger(&sim.base).await;
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["channel"], "unionpay");
    assert_eq!(lines[0]["key"], order.key.as_str());
    assert_eq!(lines[0]["amount"], "1000.00", "the ledger view is in yuan");
    assert_eq!(lines[0]["moves"], 1);
}

#[tokio::test]
async fn a_refund_stays_pending_until_it_settles() {
    let sim = start_sim(3_600_000).await;
    let client = client_for(&sim.base, 5000);
    let order = refund_order("slow", "12.34", "202603151000001234567");
    assert_eq!(client.pay(&order).await, ChannelOutcome::Pending);
    assert_eq!(client.query(&order).await, ChannelOutcome::Pending);
    assert_eq!(ledger(&sim.base).await[0]["moves"], 0);
}

#[tokio::test]
async fn business_failures_chosen_by_the_original_id() {
    let sim = start_sim(0).await;
    let client = client_for(&sim.base, 5000);
    let refused = refund_order("r0", "5.00", "20260315220014560000");
    match client.pay(&refused).await {
        ChannelOutcome::Failed { code, reason } => {
            assert_eq!(code, "35");
            assert!(!reason.is_empty());
        }
        other => panic!("{other:?}"),
    }
    let bounced = refund_order("r1", "5.00", "20260315220014560001");
    assert_eq!(client.pay(&bounced).await, ChannelOutcome::Pending);
    assert!(matches!(
        client.query(&bounced).await,
        ChannelOutcome::Failed { code, .. } if code == "60"
    ));
    assert!(ledger(&sim.base).await.iter().all(|l| l["moves"] == 0));
}

#[tokio::test]
async fn the_same_key_with_other_parameters_goes_to_review() {
    let sim = start_sim(0).await;
    let client = client_for(&sim.base, 5000);
    let order = refund_order("dup", "5.00", "202603151000001234567");
    assert_eq!(client.pay(&order).await, ChannelOutcome::Pending);
    let mut other_amount = order.clone();
    other_amount.amount = Money::parse("6.00").unwrap();
    assert!(matches!(
        client.pay(&other_amount).await,
        ChannelOutcome::Review { .. }
    ));
    // A leg time that moved would make another order: refused as a duplicate, and a
    // query at that time finds nothing.
    let mut moved = order.clone();
    moved.requested_at += chrono::Duration::seconds(1);
    assert!(matches!(
        client.pay(&moved).await,
        ChannelOutcome::Review { .. }
    ));
    assert!(matches!(
        client.query(&moved).await,
        ChannelOutcome::Unknown { .. }
    ));
}

#[tokio::test]
async fn a_client_with_the_wrong_key_is_retried_later_never_failed() {
    let sim = start_sim(0).await;
    let mut s = Settings::defaults().channels.unionpay;
    s.back_url = format!("{}/gateway/api/backTransReq.do", sim.base);
    s.query_url = format!("{}/gateway/api/queryTrans.do", sim.base);
    let dir = std::env::temp_dir().join(format!("unionpay-wrong-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wrong.pem");
    std::fs::write(&path, DEV_PLATFORM_PRIVATE_KEY).unwrap();
    s.merchant_private_key_file = path.to_string_lossy().into_owned();
    let client = UnionpayClient::from_settings(&s).unwrap();
    let order = refund_order("wrongkey", "5.00", "202603151000001234567");
    assert!(matches!(
        client.pay(&order).await,
        ChannelOutcome::RetryLater { .. }
    ));
    assert!(matches!(
        client.query(&order).await,
        ChannelOutcome::Unknown { .. }
    ));
    assert!(ledger(&sim.base).await.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_account_payout_or_a_foreign_currency_is_never_sent() {
    // Nothing listens here: a request would come back as RetryLater, not Review.
    let client = client_for("http://127.0.0.1:9", 1000);
    let mut order = refund_order("acct", "5.00", "1");
    order.target = Target::Account(Payee {
        kind: PayeeKind::BankCard,
        name: PersonName::parse("Zhang San").unwrap(),
        account_no: AccountNo::parse("6222020200112233445").unwrap(),
        bank_name: Some("ICBC".into()),
        branch: None,
    });
    assert!(matches!(
        client.pay(&order).await,
        ChannelOutcome::Review { .. }
    ));
    assert!(matches!(
        client.query(&order).await,
        ChannelOutcome::Review { .. }
    ));
    let mut usd = refund_order("usd", "5.00", "1");
    usd.currency = Currency::parse("USD", &["USD".to_owned()]).unwrap();
    assert!(matches!(
        client.pay(&usd).await,
        ChannelOutcome::Review { .. }
    ));
}

#[tokio::test]
async fn a_refused_connection_is_retry_later() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = client_for(&base, 2000);
    let order = refund_order("refused", "5.00", "202603151000001234567");
    assert!(matches!(
        client.pay(&order).await,
        ChannelOutcome::RetryLater { .. }
    ));
}

#[tokio::test]
async fn silence_past_the_timeout_is_unknown() {
    // Accepts connections and never answers: the request may have been carried out.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let _ = held_tx.send(socket);
        }
    });
    let client = client_for(&base, 200);
    let order = refund_order("silent", "5.00", "202603151000001234567");
    assert!(matches!(
        client.pay(&order).await,
        ChannelOutcome::Unknown { .. }
    ));
    assert!(
        held_rx.try_recv().is_ok(),
        "the request did reach the server"
    );
}

fn verifier() -> RsaVerifier {
    RsaVerifier::from_pem(DEV_PLATFORM_PUBLIC_KEY).unwrap()
}

fn our_order() -> OrderRef {
    order_ref(&refund_order("x", "5.00", "1"))
}

/// A refusal as UnionPay would send it, signed with `key`.
fn answer_signed_by(key: &str, fields: &[(&str, &str)]) -> String {
    let o = our_order();
    let mut p: BTreeMap<String, String> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    p.insert("orderId".into(), o.order_id);
    p.insert("txnTime".into(), o.txn_time);
    sign::sign(&mut p, &RsaSigner::from_pem(key).unwrap());
    sign::render_message(&p)
}

#[test]
fn only_a_verified_answer_about_our_order_is_classified() {
    let o = our_order();
    let refusal = [("respCode", "35"), ("respMsg", "原交易不存在或状态不正确")];
    let genuine = answer_signed_by(DEV_PLATFORM_PRIVATE_KEY, &refusal);
    assert!(matches!(
        interpret(Call::Refund, &o, 200, &genuine, &verifier()),
        ChannelOutcome::Failed { .. }
    ));
    let forged = answer_signed_by(DEV_MERCHANT_PRIVATE_KEY, &refusal);
    for (status, body) in [
        (200, forged.as_str()),
        (500, genuine.as_str()),
        (502, "Bad Gateway"),
        (200, ""),
    ] {
        assert!(
            matches!(
                interpret(Call::Refund, &o, status, body, &verifier()),
                ChannelOutcome::Unknown { .. }
            ),
            "HTTP {status} {body}"
        );
    }
    let mut elsewhere = o.clone();
    elsewhere.order_id = "PO00000000000000000000000000000z".into();
    assert!(matches!(
        interpret(Call::Refund, &elsewhere, 200, &genuine, &verifier()),
        ChannelOutcome::Unknown { .. }
    ));
}

#[test]
fn setup_refuses_unreadable_keys_and_a_missing_merchant_id() {
    let mut s = Settings::defaults().channels.unionpay;
    s.unionpay_public_key_file = "/nonexistent/unionpay.pem".into();
    assert!(UnionpayClient::from_settings(&s).is_err());
    let mut s = Settings::defaults().channels.unionpay;
    s.mer_id = String::new();
    assert!(UnionpayClient::from_settings(&s).is_err());
    assert!(UnionpayClient::from_settings(&Settings::defaults().channels.unionpay).is_ok());
}

proptest! {
    /// Whatever comes back, a refund is failed or paid only on an answer that verified.
    #[test]
    fn unverified_answers_never_fail_or_pay(
        code in prop_oneof![Just("00".to_owned()), Just("35".to_owned()), "[0-9]{2}"],
        status in prop_oneof![Just(200u16), 100u16..600],
        noise in "\\PC{0,120}",
    ) {
        let o = our_order();
        let forged = answer_signed_by(DEV_MERCHANT_PRIVATE_KEY, &[("respCode", &code), ("origRespCode", &code), ("queryId", "1")]);
        for body in [forged.as_str(), noise.as_str()] {
            for call in [Call::Refund, Call::Query] {
                let outcome = interpret(call, &o, status, body, &verifier());
                let decisive = matches!(outcome, ChannelOutcome::Failed { .. } | ChannelOutcome::Succeeded { .. });
                prop_assert!(!decisive, "{:?}", outcome);
            }
        }
    }

    /// A genuine 03/04/05 never fails a refund, as the refund's or the query's code.
    #[test]
    fn verified_status_unknown_never_fails(uncertain in prop_oneof![Just("03"), Just("04"), Just("05")], orig in "[0-9]{2}") {
        let o = our_order();
        for fields in [[("respCode", uncertain), ("origRespCode", orig.as_str())], [("respCode", "00"), ("origRespCode", uncertain)]] {
            let body = answer_signed_by(DEV_PLATFORM_PRIVATE_KEY, &fields);
            for call in [Call::Refund, Call::Query] {
                let outcome = interpret(call, &o, 200, &body, &verifier());
                let failed = matches!(outcome, ChannelOutcome::Failed { .. });
                prop_assert!(!failed, "{:?}", outcome);
            }
        }
    }
}
