//! The transport: what a signed (or unsigned, or stale) answer means, and round trips
//! against the real simulator over HTTP. The listener is bound before the server
//! starts, and settlement is chosen per simulator (at once, or after an hour), so
//! nothing sleeps to synchronise.

use super::*;
use crate::config::Settings;
use crate::domain::{
    AccountNo, ChannelKind, Currency, IdempotencyKey, LegId, Money, Payee, PayeeKind, PersonName,
    WithdrawalId,
};
use crate::sim::{serve, SimOptions};
use proptest::prelude::*;
use tokio::sync::oneshot;

/// A refund order for leg 1 of `withdrawal`.
pub(super) fn order(withdrawal: &str, channel_txn_id: &str, amount: &str) -> PayoutOrder {
    PayoutOrder {
        key: IdempotencyKey::for_leg(
            &WithdrawalId::parse(withdrawal).unwrap(),
            &LegId::parse("1").unwrap(),
        ),
        channel: ChannelKind::WechatPay,
        amount: Money::parse(amount).unwrap(),
        currency: Currency::parse("CNY", &["CNY".to_owned()]).unwrap(),
        target: Target::Refund {
            channel_txn_id: channel_txn_id.to_owned(),
            bank: None,
        },
        memo: format!("Balance withdrawal {withdrawal}"),
        requested_at: "2026-11-20T08:00:00Z".parse().unwrap(),
    }
}

/// The order behind the signing fixtures (`tests/fixtures/wechat_pay/`).
pub(super) fn sample_order(channel_txn_id: &str) -> PayoutOrder {
    order("wd-20261120-000123", channel_txn_id, "1000.00")
}

fn settings(base_url: &str) -> WechatPaySettings {
    let mut s = Settings::defaults().channels.wechat_pay;
    s.base_url = base_url.to_owned();
    s.timeout_ms = 5000;
    s
}

fn client(base_url: &str) -> WechatPayClient {
    WechatPayClient::from_settings(&settings(base_url)).unwrap()
}

const TEST_PRIVATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/keys/test_rsa_private.pem"
);
const TEST_PUBLIC: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/keys/test_rsa_public.pem"
);
const NOW: i64 = 1_795_161_600;

/// A simulator on an ephemeral port; it stops when the sender drops.
async fn start_sim(settle_ms: u64) -> (String, oneshot::Sender<()>) {
    let mut s = Settings::defaults().sim;
    s.settle_ms = settle_ms;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(
        SimOptions::from_settings(&s).unwrap(),
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    (base, stop)
}

async fn ledger_moves(base: &str) -> Vec<(String, u64)> {
    let lines: Vec<serde_json::Value> = reqwest::get(format!("{base}/sim/ledger"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    lines
        .iter()
        .filter(|l| l["channel"] == "wechat_pay")
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_owned(),
                l["moves"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// An answer signed with the development platform key, as the simulator signs it.
fn signed(body: &str, timestamp: i64) -> (String, String, String) {
    let key = RsaSigner::from_pem(DEV_PLATFORM_PRIVATE_KEY).unwrap();
    let (ts, nonce) = (timestamp.to_string(), sign::nonce());
    let sig = sign::sign_response(&key, &ts, &nonce, body.as_bytes());
    (ts, nonce, sig)
}

fn headers<'a>(ts: &'a str, nonce: &'a str, sig: &'a str) -> ResponseHeaders<'a> {
    ResponseHeaders {
        timestamp: Some(ts),
        nonce: Some(nonce),
        signature: Some(sig),
        serial: Some(DEV_PLATFORM_SERIAL_NO),
    }
}

#[test]
fn only_signed_fresh_answers_reach_the_table() {
    let c = client("http://127.0.0.1:1");
    let key = "PO73e67d6185226a979fda4140e4128b";
    let not_found = r#"{"code":"RESOURCE_NOT_EXISTS","message":"订单不存在"}"#;
    let (ts, nonce, sig) = signed(not_found, NOW);
    let h = headers(&ts, &nonce, &sig);
    assert!(matches!(
        c.interpret(Call::Refund, key, 404, &h, not_found.as_bytes(), NOW),
        ChannelOutcome::Failed { code, .. } if code == "RESOURCE_NOT_EXISTS"
    ));
    assert_eq!(
        c.interpret(Call::Query, key, 404, &h, not_found.as_bytes(), NOW),
        ChannelOutcome::NotFound
    );
    // The same 404 unsigned, stale, or from a key we do not hold must not release funds.
    let unknown = |o: ChannelOutcome| matches!(o, ChannelOutcome::Unknown { .. });
    let bare = ResponseHeaders::default();
    assert!(unknown(c.interpret(
        Call::Refund,
        key,
        404,
        &bare,
        not_found.as_bytes(),
        NOW
    )));
    assert!(unknown(c.interpret(
        Call::Refund,
        key,
        404,
        &h,
        not_found.as_bytes(),
        NOW + 301
    )));
    assert!(unknown(c.interpret(
        Call::Refund,
        key,
        404,
        &h,
        not_found.as_bytes(),
        NOW - 301
    )));
    assert!(matches!(
        c.interpret(Call::Refund, key, 404, &h, not_found.as_bytes(), NOW + 300),
        ChannelOutcome::Failed { .. }
    ));
    let elsewhere = ResponseHeaders {
        serial: Some("1234"),
        ..h
    };
    assert!(unknown(c.interpret(
        Call::Refund,
        key,
        404,
        &elsewhere,
        not_found.as_bytes(),
        NOW
    )));
    // A 5xx is unknown whether signed or not.
    assert!(unknown(c.interpret(
        Call::Refund,
        key,
        502,
        &bare,
        b"502 Bad Gateway",
        NOW
    )));
    let busy = r#"{"code":"SYSTEM_ERROR","message":"系统繁忙"}"#;
    let (ts, nonce, sig) = signed(busy, NOW);
    assert!(unknown(c.interpret(
        Call::Refund,
        key,
        500,
        &headers(&ts, &nonce, &sig),
        busy.as_bytes(),
        NOW
    )));
}

#[tokio::test]
async fn an_account_payout_goes_to_review_without_a_call() {
    let c = client("http://127.0.0.1:1");
    let mut o = sample_order("4200002026031522001456");
    o.target = Target::Account(Payee {
        kind: PayeeKind::BankCard,
        name: PersonName::parse("Zhang San").unwrap(),
        account_no: AccountNo::parse("6222020200112233445").unwrap(),
        bank_name: Some("ICBC".into()),
        branch: None,
    });
    assert!(matches!(c.pay(&o).await, ChannelOutcome::Review { .. }));
    assert!(matches!(c.query(&o).await, ChannelOutcome::Review { .. }));
}

#[tokio::test]
async fn a_refused_connection_is_retry_later() {
    // Bind, learn the port, close it: nothing listens there now.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let o = sample_order("4200002026031522001456");
    assert!(matches!(
        client(&base).pay(&o).await,
        ChannelOutcome::RetryLater { .. }
    ));
    assert!(matches!(
        client(&base).query(&o).await,
        ChannelOutcome::RetryLater { .. }
    ));
}

#[test]
fn settings_are_checked() {
    // The simulator signs with the development platform key under this serial.
    assert_eq!(
        Settings::defaults().channels.wechat_pay.platform_serial_no,
        DEV_PLATFORM_SERIAL_NO
    );
    let mut s = settings("not a url");
    assert!(WechatPayClient::from_settings(&s).is_err());
    s = settings("http://127.0.0.1:1");
    s.mchid.clear();
    assert!(WechatPayClient::from_settings(&s).is_err());
    s = settings("http://127.0.0.1:1");
    s.merchant_private_key_file = TEST_PUBLIC.into();
    assert!(WechatPayClient::from_settings(&s).is_err());
}

#[tokio::test]
async fn round_trip_paid_refused_and_closed_when_settling_at_once() {
    let (base, _stop) = start_sim(0).await;
    let c = client(&base);
    let paid = order("wd-paid", "4200002026031522001456", "12.34");
    let first = c.pay(&paid).await;
    let ChannelOutcome::Succeeded { reference } = &first else {
        panic!("{first:?}");
    };
    assert!(
        reference.starts_with("50") && reference.len() == 29,
        "{reference}"
    );
    // A resend and a query give the same refund, and it was paid once.
    assert_eq!(c.pay(&paid).await, first);
    assert_eq!(c.query(&paid).await, first);

    let refused = order("wd-refused", "42000020260315220014560000", "5.00");
    assert!(matches!(
        c.pay(&refused).await,
        ChannelOutcome::Failed { code, .. } if code == "RESOURCE_NOT_EXISTS"
    ));
    assert_eq!(c.query(&refused).await, ChannelOutcome::NotFound);

    let closed = order("wd-closed", "42000020260315220014560001", "5.00");
    assert!(matches!(
        c.pay(&closed).await,
        ChannelOutcome::Failed { code, .. } if code == "REFUND_CLOSED"
    ));
    assert!(matches!(
        c.query(&closed).await,
        ChannelOutcome::Failed { .. }
    ));

    let mut moves = ledger_moves(&base).await;
    moves.sort();
    let mut expected = vec![
        (paid.key.to_string(), 1),
        (refused.key.to_string(), 0),
        (closed.key.to_string(), 0),
    ];
    expected.sort();
    assert_eq!(moves, expected);
}

#[tokio::test]
async fn round_trip_pending_conflict_and_unknown_key_when_settling_later() {
    let (base, _stop) = start_sim(3_600_000).await;
    let c = client(&base);
    let o = order("wd-pending", "4200002026031522001456", "88.00");
    assert_eq!(c.pay(&o).await, ChannelOutcome::Pending);
    assert_eq!(c.query(&o).await, ChannelOutcome::Pending);
    assert_eq!(c.pay(&o).await, ChannelOutcome::Pending);
    // Our key with another amount: the channel's own error, and a person looks.
    let mut other = o.clone();
    other.amount = Money::parse("88.01").unwrap();
    assert!(matches!(c.pay(&other).await, ChannelOutcome::Review { .. }));
    let never_sent = order("wd-never-sent", "4200002026031522001456", "1.00");
    assert_eq!(c.query(&never_sent).await, ChannelOutcome::NotFound);
    assert_eq!(ledger_moves(&base).await, vec![(o.key.to_string(), 0)]);
}

#[tokio::test]
async fn wrong_keys_are_caught_on_both_sides() {
    let (base, _stop) = start_sim(0).await;
    // Our requests signed with a key the simulator does not hold: SIGN_ERROR, nothing done.
    let mut s = settings(&base);
    s.merchant_private_key_file = TEST_PRIVATE.into();
    let bad_merchant = WechatPayClient::from_settings(&s).unwrap();
    let o = order("wd-badkey", "4200002026031522001456", "3.00");
    assert!(matches!(
        bad_merchant.pay(&o).await,
        ChannelOutcome::RetryLater { .. }
    ));
    assert!(ledger_moves(&base).await.is_empty());
    // Answers we cannot verify: the refund went through, but we cannot tell.
    let mut s = settings(&base);
    s.platform_public_key_file = TEST_PUBLIC.into();
    let bad_platform = WechatPayClient::from_settings(&s).unwrap();
    assert!(matches!(
        bad_platform.pay(&o).await,
        ChannelOutcome::Unknown { .. }
    ));
    assert_eq!(client(&base).query(&o).await, client(&base).pay(&o).await);
    assert_eq!(ledger_moves(&base).await, vec![(o.key.to_string(), 1)]);
}

proptest! {
    /// Whatever comes back over the wire, reading it never panics and an unsigned answer
    /// never releases funds.
    #[test]
    fn the_response_reader_never_panics(
        http in 100u16..600,
        ts in proptest::option::of(".{0,16}"),
        sig in proptest::option::of(".{0,40}"),
        body in proptest::collection::vec(any::<u8>(), 0..300),
        now in any::<i64>(),
    ) {
        let c = client("http://127.0.0.1:1");
        let h = ResponseHeaders { timestamp: ts.as_deref(), nonce: Some("n"), signature: sig.as_deref(), serial: Some(DEV_PLATFORM_SERIAL_NO) };
        for call in [Call::Refund, Call::Query] {
            let outcome = c.interpret(call, "PO1", http, &h, &body, now);
            prop_assert!(matches!(outcome, ChannelOutcome::Unknown { .. }), "{outcome:?}");
        }
    }
}
