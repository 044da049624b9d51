//! The adapter against the real simulator over HTTP (both sides' signatures, the status
//! table end to end, the ledger read back), and the transport's failure modes: connection
//! refused, a gateway that never answers, answers that do not verify. Listeners are bound
//! before anything connects, so nothing sleeps to synchronise; settlement time is chosen
//! per test through the simulator's `settle_ms` (1: settled by the first query, which
//! comes after two RSA signatures, well past a millisecond; an hour:
//! still in progress).

use super::*;
use crate::channels::Target;
use crate::config::Settings;
use crate::domain::{
    AccountNo, ChannelKind, Currency, IdempotencyKey, LegId, Money, Payee, PayeeKind, PersonName,
    WithdrawalId,
};
use crate::sim::{serve, SimOptions};
use proptest::prelude::*;
use tokio::sync::oneshot;

/// A bank order with a key of its own (derived from `leg`, so tests never share one).
pub(crate) fn order(leg: &str, amount: &str, target: Target) -> PayoutOrder {
    let w = WithdrawalId::parse("wd-test").unwrap();
    PayoutOrder {
        key: IdempotencyKey::for_leg(&w, &LegId::parse(leg).unwrap()),
        channel: ChannelKind::Bank,
        amount: Money::parse(amount).unwrap(),
        currency: Currency::parse("CNY", &["CNY".into()]).unwrap(),
        target,
        memo: "Balance withdrawal wd-test".into(),
        requested_at: chrono::Utc::now(),
    }
}

pub(crate) fn card(account: &str) -> Target {
    Target::Account(Payee {
        kind: PayeeKind::BankCard,
        name: PersonName::parse("Zhang San").unwrap(),
        account_no: AccountNo::parse(account).unwrap(),
        bank_name: Some("ICBC".into()),
        branch: Some("Hangzhou Xihu Sub-branch".into()),
    })
}

pub(crate) fn refund(channel_txn_id: &str) -> Target {
    Target::Refund {
        channel_txn_id: channel_txn_id.into(),
        bank: Some("Some Bank".into()),
    }
}

fn settings(base_url: &str) -> BankSettings {
    let mut s = Settings::defaults().channels.bank;
    s.base_url = base_url.to_owned();
    s.timeout_ms = 5000;
    s
}

/// A simulator on an ephemeral port; its base URL and its stop switch.
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

async fn client_for_sim(settle_ms: u64) -> (BankClient, String, oneshot::Sender<()>) {
    let (base, stop) = start_sim(settle_ms).await;
    let client = BankClient::from_settings(&settings(&format!("{base}/bank"))).unwrap();
    (client, base, stop)
}

async fn moves(sim: &str, key: &IdempotencyKey) -> Option<u64> {
    let ledger: Vec<serde_json::Value> = reqwest::get(format!("{sim}/sim/ledger"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    ledger
        .iter()
        .find(|l| l["channel"] == "bank" && l["key"] == key.as_str())
        .map(|l| l["moves"].as_u64().unwrap())
}

fn succeeded(o: &ChannelOutcome) -> bool {
    matches!(o, ChannelOutcome::Succeeded { reference } if reference.starts_with("BR"))
}

#[tokio::test]
async fn a_card_payment_is_acknowledged_then_settled_and_paid_once() {
    let (client, sim, _stop) = client_for_sim(1).await;
    let o = order("card", "500.00", card("6222020200112233445"));
    assert_eq!(client.pay(&o).await, ChannelOutcome::Pending);
    let settled = client.query(&o).await;
    assert!(succeeded(&settled), "{settled:?}");
    // A resend with the same key gets the current status, never a second payment.
    assert_eq!(client.pay(&o).await, settled);
    assert_eq!(moves(&sim, &o.key).await, Some(1));
}

#[tokio::test]
async fn a_payment_stays_in_progress_until_the_bank_settles_it() {
    let (client, sim, _stop) = client_for_sim(3_600_000).await;
    let o = order("slow", "20.00", card("6222020200112233445"));
    assert_eq!(client.pay(&o).await, ChannelOutcome::Pending);
    assert_eq!(client.query(&o).await, ChannelOutcome::Pending);
    assert_eq!(client.pay(&o).await, ChannelOutcome::Pending);
    assert_eq!(moves(&sim, &o.key).await, Some(0));
}

#[tokio::test]
async fn an_online_banking_refund_is_returned_to_its_source() {
    let (client, sim, _stop) = client_for_sim(1).await;
    let o = order("refund", "88.00", refund("2026031522001456"));
    assert_eq!(client.pay(&o).await, ChannelOutcome::Pending);
    assert!(succeeded(&client.query(&o).await));
    assert_eq!(moves(&sim, &o.key).await, Some(1));
}

#[tokio::test]
async fn a_closed_account_is_rejected_at_once_and_nothing_moves() {
    let (client, sim, _stop) = client_for_sim(1).await;
    for (leg, target) in [
        ("c0", card("62220202001122330000")),
        ("r0", refund("20260315220014560000")),
    ] {
        let o = order(leg, "10.00", target);
        let failed = ChannelOutcome::Failed {
            code: "AC04".into(),
            reason: "bank rejected the payment: the receiving account is closed".into(),
        };
        assert_eq!(client.pay(&o).await, failed);
        assert_eq!(client.query(&o).await, failed);
        assert_eq!(moves(&sim, &o.key).await, Some(0));
    }
}

#[tokio::test]
async fn a_wrong_account_is_rejected_only_after_acceptance() {
    let (client, sim, _stop) = client_for_sim(1).await;
    let o = order("c1", "10.00", card("62220202001122330001"));
    assert_eq!(client.pay(&o).await, ChannelOutcome::Pending);
    assert!(
        matches!(client.query(&o).await, ChannelOutcome::Failed { code, .. } if code == "AC01")
    );
    assert_eq!(moves(&sim, &o.key).await, Some(0));
}

#[tokio::test]
async fn our_key_with_other_content_needs_a_person_and_unknown_keys_are_not_found() {
    let (client, _sim, _stop) = client_for_sim(1).await;
    let o = order("dupl", "10.00", card("6222020200112233445"));
    assert_eq!(client.query(&o).await, ChannelOutcome::NotFound);
    assert_eq!(client.pay(&o).await, ChannelOutcome::Pending);
    let changed = PayoutOrder {
        amount: Money::parse("11.00").unwrap(),
        ..o.clone()
    };
    assert!(matches!(
        client.pay(&changed).await,
        ChannelOutcome::Review { .. }
    ));
}

#[tokio::test]
async fn a_request_signed_with_the_wrong_key_is_refused_and_nothing_moves() {
    let (base, _stop) = start_sim(1).await;
    let mut s = settings(&format!("{base}/bank"));
    s.client_private_key_file = "tests/fixtures/keys/test_rsa_private.pem".into();
    let client = BankClient::from_settings(&s).unwrap();
    let o = order("wrongkey", "10.00", card("6222020200112233445"));
    assert!(matches!(
        client.pay(&o).await,
        ChannelOutcome::RetryLater { .. }
    ));
    assert_eq!(moves(&base, &o.key).await, None);
}

#[tokio::test]
async fn an_answer_we_cannot_verify_is_unknown() {
    // Instant settlement: the money has moved by the time the (unverifiable) answer comes.
    let (base, _stop) = start_sim(0).await;
    let mut s = settings(&format!("{base}/bank"));
    s.gateway_public_key_file = "tests/fixtures/keys/test_rsa_public.pem".into();
    let client = BankClient::from_settings(&s).unwrap();
    let o = order("unverified", "10.00", card("6222020200112233445"));
    assert!(matches!(
        client.pay(&o).await,
        ChannelOutcome::Unknown { .. }
    ));
    // The bank did take it: exactly why an unverifiable answer is never a failure.
    assert_eq!(moves(&base, &o.key).await, Some(1));
}

#[tokio::test]
async fn a_refused_connection_is_retry_later() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = BankClient::from_settings(&settings(&format!("http://{addr}/bank"))).unwrap();
    let o = order("refused", "10.00", card("6222020200112233445"));
    assert!(matches!(
        client.pay(&o).await,
        ChannelOutcome::RetryLater { .. }
    ));
}

#[tokio::test]
async fn a_gateway_that_never_answers_times_out_as_unknown() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds connections, never answers: the request may have arrived.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut s = settings(&format!("http://{addr}/bank"));
    s.timeout_ms = 200;
    let client = BankClient::from_settings(&s).unwrap();
    let o = order("silent", "10.00", card("6222020200112233445"));
    assert!(matches!(
        client.pay(&o).await,
        ChannelOutcome::Unknown { .. }
    ));
}

#[test]
fn settings_that_cannot_work_are_refused() {
    for bad in [
        "not a url",
        "ftp://127.0.0.1/bank",
        "http://127.0.0.1/bank?x=1",
    ] {
        assert!(BankClient::from_settings(&settings(bad)).is_err(), "{bad}");
    }
    let mut s = settings("http://127.0.0.1:8700/bank");
    s.debtor_account = String::new();
    assert!(BankClient::from_settings(&s).is_err());
    for key_id in ["", "a\nb"] {
        let mut s = settings("http://127.0.0.1:8700/bank");
        s.key_id = key_id.into();
        assert!(BankClient::from_settings(&s).is_err(), "{key_id:?}");
    }
    let mut s = settings("http://127.0.0.1:8700/bank");
    s.gateway_public_key_file = "tests/fixtures/keys/test_rsa_private.pem".into();
    assert!(BankClient::from_settings(&s).is_err());
}

#[test]
fn debug_output_shows_no_keys_or_full_accounts() {
    let client = BankClient::from_settings(&settings("http://127.0.0.1:8700/bank/")).unwrap();
    let shown = format!("{client:?}");
    assert!(
        !shown.contains("6222000000000000001") && !shown.contains("PRIVATE"),
        "{shown}"
    );
    // A trailing slash on base_url does not double the slash in the signed path.
    assert_eq!(client.url("/payments").path(), "/bank/payments");
}

fn gateway_signer() -> RsaSigner {
    RsaSigner::from_pem(DEV_GATEWAY_PRIVATE_KEY).unwrap()
}

fn gateway_verifier() -> RsaVerifier {
    RsaVerifier::from_pem(DEV_GATEWAY_PUBLIC_KEY).unwrap()
}

const KEY: &str = "PO0123456789abcdef0123456789abcd";
const PATH: &str = "/bank/payments/PO0123456789abcdef0123456789abcd";

#[test]
fn answers_are_read_only_when_the_gateway_signed_them_for_this_request() {
    let body = format!(r#"{{"end_to_end_id":"{KEY}","status":"RJCT","reason_code":"AC04"}}"#);
    let read = |status: u16, path: &str, sig: Option<&str>| {
        read_answer(
            &gateway_verifier(),
            Call::StatusQuery,
            KEY,
            path,
            status,
            sig,
            body.as_bytes(),
        )
    };
    let good = sign::sign_response(&gateway_signer(), 200, PATH, body.as_bytes());
    assert!(matches!(
        read(200, PATH, Some(&good)),
        ChannelOutcome::Failed { .. }
    ));
    assert!(matches!(
        read(200, PATH, None),
        ChannelOutcome::Unknown { .. }
    ));
    // Signed for another request, or with another status: not ours to believe.
    let other_path = sign::sign_response(
        &gateway_signer(),
        200,
        "/bank/payments/PO1",
        body.as_bytes(),
    );
    assert!(matches!(
        read(200, PATH, Some(&other_path)),
        ChannelOutcome::Unknown { .. }
    ));
    assert!(matches!(
        read(201, PATH, Some(&good)),
        ChannelOutcome::Unknown { .. }
    ));
    // A 5xx is unknown even when signed: the payment may have been carried out.
    let busy = sign::sign_response(&gateway_signer(), 503, PATH, body.as_bytes());
    assert!(matches!(
        read(503, PATH, Some(&busy)),
        ChannelOutcome::Unknown { .. }
    ));
}

proptest! {
    /// Arbitrary bytes, status and signature header: no panic, and nothing unverified
    /// can decide an outcome.
    #[test]
    fn reader_never_panics_and_trusts_nothing_unsigned(
        http in 0u16..1000,
        bytes in proptest::collection::vec(any::<u8>(), 0..300),
        sig in proptest::option::of(".{0,400}"),
    ) {
        let outcome = read_answer(&gateway_verifier(), Call::StatusQuery, KEY, PATH, http, sig.as_deref(), &bytes);
        let unknown = matches!(outcome, ChannelOutcome::Unknown { .. });
        prop_assert!(unknown, "{:?}", outcome);
    }

    /// Correctly signed arbitrary answers: still no panic, and never a failure unless
    /// the body is a RJCT report for our key.
    #[test]
    fn signed_garbage_never_fails(http in 100u16..600, bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let sig = sign::sign_response(&gateway_signer(), http, PATH, &bytes);
        let outcome = read_answer(&gateway_verifier(), Call::StatusQuery, KEY, PATH, http, Some(&sig), &bytes);
        let decided = matches!(outcome, ChannelOutcome::Failed { .. } | ChannelOutcome::Succeeded { .. });
        prop_assert!(!decided, "{:?}", outcome);
    }
}
