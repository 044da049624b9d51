//! `dlq list` and `dlq replay` against the real broker: a command dead-lettered for a key
//! the worker did not hold yet is replayed after the fix and paid.

mod common;

use common::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use payout_worker::cli::dlq;

#[tokio::test]
async fn a_dead_letter_is_listed_then_replayed_unchanged_and_paid() {
    let mut app = TestApp::spawn(
        "dlq",
        Options {
            tap_dead: false,
            ..Options::default()
        },
    )
    .await;
    app.start_worker();
    // Signed with a rotated-in key the worker does not know yet.
    let id = unique("wd-dlq");
    let body = withdrawal(&id, vec![transfer_leg("1", "15.00", "zs@example.com")]);
    let ring = payout_worker::auth::KeyRing::parse("k2026:next-secret").unwrap();
    let mut h = FieldTable::default();
    let s = |v: &str| AMQPValue::LongString(LongString::from(v.as_bytes().to_vec()));
    h.insert("x-payout-key-id".into(), s("k2026"));
    h.insert(
        "x-payout-signature".into(),
        s(&ring.sign("k2026", &body).unwrap()),
    );
    app.publish_raw(&body, h).await;
    // A second, unrelated dead letter that must stay where it is.
    app.publish_raw(b"{broken", FieldTable::default()).await;

    // Poll until both have been dead-lettered (a condition with a deadline).
    let deadline = tokio::time::Instant::now() + WAIT;
    let letters = loop {
        let letters = dlq::list(&app.settings).await.unwrap();
        if letters.len() == 2 {
            break letters;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dead letters never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let ours = letters
        .iter()
        .find(|l| l.withdrawal_id.as_deref() == Some(id.as_str()))
        .expect("listed with its withdrawal id");
    assert_eq!(ours.code.as_deref(), Some("signature_invalid"));
    assert!(ours.age_secs.is_some());
    // Listing is not consuming.
    assert_eq!(dlq::list(&app.settings).await.unwrap().len(), 2);

    // The fix: the worker learns the new key. Then replay just that withdrawal.
    app.stop_workers().await;
    app.settings.auth.hmac_keys = "dev:dev-secret-do-not-use-in-production,k2026:next-secret"
        .to_string()
        .into();
    app.start_worker();
    let n = dlq::replay(
        &app.settings,
        &dlq::Selection {
            withdrawal_ids: vec![id.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let (terminal, _) = app.terminal_events(1).await;
    assert_eq!(terminal[0]["subject"], id.as_str());
    assert_eq!(terminal[0]["type"], "withdrawal.succeeded");
    let left = dlq::list(&app.settings).await.unwrap();
    assert_eq!(left.len(), 1);
    // Unsigned: refused for authenticity before it was even parsed.
    assert_eq!(left[0].code.as_deref(), Some("signature_invalid"));
    assert_eq!(left[0].withdrawal_id, None);
    assert_eq!(dlq::purge(&app.settings).await.unwrap(), 1);
    assert!(dlq::list(&app.settings).await.unwrap().is_empty());
    app.teardown().await;
}
