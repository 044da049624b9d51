//! Contract §3 through the worker: the routing rules decide before any channel call.

mod common;

use chrono::{Duration, Utc};
use common::*;
use serde_json::json;

fn original_leg(
    channel: &str,
    txn: &str,
    paid_days_ago: i64,
    bank: Option<&str>,
    fallback: Option<&str>,
) -> serde_json::Value {
    let mut source = json!({"topup_id": "tp-1", "channel_txn_id": txn,
        "paid_at": (Utc::now() - Duration::days(paid_days_ago)).to_rfc3339()});
    if let Some(b) = bank {
        source["bank"] = json!(b);
    }
    let mut leg = json!({"leg_id": "1", "amount": "40.00", "route": "original", "channel": channel, "source": source});
    if let Some(name) = fallback {
        leg["fallback_payee"] = json!({"kind": "bank_card", "name": name,
            "account_no": "6222020200112233445", "bank_name": "ICBC"});
    }
    leg
}

async fn app(tag: &str) -> TestApp {
    let mut app = TestApp::spawn(tag, Options::default()).await;
    let url = app.sim_url.clone();
    let c = &mut app.settings.channels;
    c.bank.base_url = format!("{url}/bank");
    c.wechat_pay.base_url = url.clone();
    c.unionpay.back_url = format!("{url}/gateway/api/backTransReq.do");
    c.unionpay.query_url = format!("{url}/gateway/api/queryTrans.do");
    app.start_worker();
    app
}

async fn failure_code(app: &mut TestApp, body: Vec<u8>) -> String {
    app.publish_signed(&body).await;
    let (terminal, _) = app.terminal_events(1).await;
    let e = &terminal[0];
    assert_eq!(e["type"], "withdrawal.failed", "{e}");
    assert_eq!(e["data"]["unfreeze_amount"], "40.00");
    e["data"]["legs"][0]["failure_code"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn expired_windows_without_fallback_fail_before_any_channel_call() {
    let mut app = app("rules-expired").await;
    // UnionPay, 4 months old.
    let code = failure_code(
        &mut app,
        withdrawal(
            &unique("wd-up"),
            vec![original_leg(
                "unionpay",
                "2026031500001234",
                122,
                None,
                None,
            )],
        ),
    )
    .await;
    assert_eq!(code, "original_route_expired");
    // Online banking: CMB at 100 days, ICBC at 40 days.
    let code = failure_code(
        &mut app,
        withdrawal(
            &unique("wd-cmb"),
            vec![original_leg(
                "bank",
                "B2026000001",
                100,
                Some("China Merchants Bank"),
                None,
            )],
        ),
    )
    .await;
    assert_eq!(code, "original_route_expired");
    let code = failure_code(
        &mut app,
        withdrawal(
            &unique("wd-icbc"),
            vec![original_leg("bank", "B2026000002", 40, Some("ICBC"), None)],
        ),
    )
    .await;
    assert_eq!(code, "original_route_expired");
    assert!(app.ledger().await.is_empty(), "no channel was called");
    app.teardown().await;
}

#[tokio::test]
async fn a_payee_who_is_not_the_verified_owner_is_refused_without_a_channel_call() {
    let mut app = app("rules-name").await;
    let leg = json!({"leg_id": "1", "amount": "40.00", "route": "designated", "channel": "alipay",
        "payee": {"kind": "alipay", "name": "Li Si", "account_no": "lisi@example.com"}});
    let code = failure_code(&mut app, withdrawal(&unique("wd-name"), vec![leg])).await;
    assert_eq!(code, "payee_name_mismatch");
    // A fallback card in someone else's name is refused the same way.
    let code = failure_code(
        &mut app,
        withdrawal(
            &unique("wd-fb-name"),
            vec![original_leg(
                "alipay",
                "2025101500001234",
                400,
                None,
                Some("Li Si"),
            )],
        ),
    )
    .await;
    assert_eq!(code, "payee_name_mismatch");
    assert!(app.ledger().await.is_empty(), "no channel was called");
    app.teardown().await;
}

#[tokio::test]
async fn an_old_alipay_top_up_is_paid_to_the_fallback_card_and_a_recent_icbc_one_to_its_source() {
    let mut app = app("rules-fallback").await;
    let fallback = unique("wd-fallback");
    let icbc = unique("wd-icbc-20");
    // Alipay, 13 months old, with a fallback card in the owner's name.
    app.publish_signed(&withdrawal(
        &fallback,
        vec![original_leg(
            "alipay",
            "2025101500001234",
            396,
            None,
            Some("Zhang San"),
        )],
    ))
    .await;
    // ICBC online banking, 20 days old: inside its 30-day window.
    app.publish_signed(&withdrawal(
        &icbc,
        vec![original_leg("bank", "B2026000003", 20, Some("ICBC"), None)],
    ))
    .await;
    let (terminal, _) = app.terminal_events(2).await;
    for e in &terminal {
        assert_eq!(e["type"], "withdrawal.succeeded", "{e}");
        let leg = &e["data"]["legs"][0];
        assert_eq!(leg["channel"], "bank");
        let expected_route = if e["subject"] == fallback.as_str() {
            "fallback"
        } else {
            "original"
        };
        assert_eq!(leg["route"], expected_route);
    }
    let ledger = app.ledger().await;
    assert_eq!(ledger.len(), 2);
    assert!(
        ledger
            .iter()
            .all(|l| l["channel"] == "bank" && l["moves"] == 1),
        "{ledger:?}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn a_fallback_leg_whose_record_was_lost_is_still_reported_through_the_bank() {
    let mut app = app("rules-lost-fallback").await;
    let id = unique("wd-lost-fallback");
    let body = withdrawal(
        &id,
        vec![original_leg(
            "alipay",
            "2025101500001234",
            396,
            None,
            Some("Zhang San"),
        )],
    );
    app.publish_signed(&body).await;
    let (first, _) = app.terminal_events(1).await;
    assert_eq!(first[0]["data"]["legs"][0]["channel"], "bank");

    // Redis loses the record; the command comes back (as after a deferral).
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{}:{{{id}}}", app.settings.redis.key_prefix))
        .query_async(&mut c)
        .await
        .unwrap();
    let ring =
        payout_worker::auth::KeyRing::parse("dev:dev-secret-do-not-use-in-production").unwrap();
    let s = |v: &str| lapin::types::AMQPValue::LongString(v.as_bytes().to_vec().into());
    let mut h = lapin::types::FieldTable::default();
    h.insert("x-payout-key-id".into(), s("dev"));
    h.insert(
        "x-payout-signature".into(),
        s(&ring.sign("dev", &body).unwrap()),
    );
    h.insert(
        "x-payout-attempt".into(),
        lapin::types::AMQPValue::LongLongInt(1),
    );
    app.publish_raw(&body, h).await;

    let (again, _) = app.terminal_events(1).await;
    assert_eq!(again[0]["id"], first[0]["id"]);
    let leg = &again[0]["data"]["legs"][0];
    assert_eq!(leg["channel"], "bank", "{leg}");
    assert_eq!(leg["route"], "fallback");
    // Found by the query, not paid again.
    assert!(moves(&app.ledger().await).values().all(|m| *m == 1));
    app.teardown().await;
}
