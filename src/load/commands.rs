//! The withdrawals a load run publishes: every leg paid (no `0000`/`0001` suffix, every
//! date inside its refund window), all through one channel.

use super::options::LoadChannel;
use chrono::{DateTime, Duration as Days, Utc};
use serde_json::{json, Value};

/// The verified owner every withdrawal names (and every payee is).
const OWNER: &str = "Zhang San";
/// Every leg pays this much.
pub const LEG_AMOUNT: &str = "10.00";

/// The id of the `n`th withdrawal of a run.
pub fn withdrawal_id(run_id: &str, n: usize) -> String {
    format!("ld-{run_id}-{n}")
}

/// The `n`th command of a run: `legs` legs of [`LEG_AMOUNT`] through `channel`.
pub fn command(
    run_id: &str,
    n: usize,
    channel: LoadChannel,
    legs: usize,
    now: DateTime<Utc>,
) -> Vec<u8> {
    let id = withdrawal_id(run_id, n);
    let legs: Vec<Value> = (1..=legs).map(|l| leg(&id, n, l, channel, now)).collect();
    let cents = 1000 * legs.len() as i64;
    json!({
        "type": "withdrawal.approved", "version": 1, "withdrawal_id": id,
        "account_id": format!("acct-{}", n % 997), "verified_name": OWNER,
        "currency": "CNY", "amount": rust_decimal::Decimal::new(cents, 2).to_string(),
        "approved_at": now.to_rfc3339(), "legs": legs,
    })
    .to_string()
    .into_bytes()
}

fn leg(id: &str, n: usize, l: usize, channel: LoadChannel, now: DateTime<Utc>) -> Value {
    // Four digits never ending in the simulator's refusal suffixes 0000 / 0001.
    let tail = 1000 + (n * 4 + l) % 9000;
    let serial = format!("{:011}", n * 4 + l);
    let refund = |txn: String, days: i64| {
        json!({"leg_id": l.to_string(), "amount": LEG_AMOUNT, "route": "original",
               "channel": channel.kind().as_str(),
               "source": {"topup_id": format!("tp-{id}-{l}"), "channel_txn_id": txn,
                          "paid_at": (now - Days::days(days)).to_rfc3339()}})
    };
    match channel {
        LoadChannel::Bank => json!({
            "leg_id": l.to_string(), "amount": LEG_AMOUNT, "route": "designated",
            "channel": "bank",
            "payee": {"kind": "bank_card", "name": OWNER, "account_no": format!("6222{serial}{tail}"),
                      "bank_name": "China Construction Bank", "branch": "Beijing Branch"}}),
        LoadChannel::Alipay => json!({
            "leg_id": l.to_string(), "amount": LEG_AMOUNT, "route": "designated",
            "channel": "alipay",
            "payee": {"kind": "alipay", "name": OWNER, "account_no": format!("zs{serial}{tail}@example.com")}}),
        LoadChannel::WechatPay => refund(format!("4200{serial}{serial}{tail}"), 30),
        LoadChannel::Unionpay => refund(format!("{serial}{tail}99"), 10),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::parse_command;
    use proptest::prelude::*;

    const CHANNELS: [LoadChannel; 4] = [
        LoadChannel::Bank,
        LoadChannel::Alipay,
        LoadChannel::WechatPay,
        LoadChannel::Unionpay,
    ];

    proptest! {
        /// Every command the load generator makes is one the worker accepts, through the
        /// channel asked for, adding up, and never designed to be refused.
        #[test]
        fn every_load_command_is_valid(n in 0usize..1_000_000, legs in 1usize..=4, c in 0usize..4) {
            let channel = CHANNELS[c];
            let body = command("run1", n, channel, legs, Utc::now());
            let w = parse_command(&body, &["CNY".to_owned()]).expect("the worker accepts it");
            prop_assert_eq!(w.id.as_str(), withdrawal_id("run1", n));
            prop_assert_eq!(w.legs.len(), legs);
            prop_assert_eq!(w.amount.to_string(), format!("{}.00", legs * 10));
            for leg in &w.legs {
                prop_assert_eq!(leg.channel, channel.kind());
            }
            // The simulator refuses accounts and transactions ending in 0000 / 0001.
            let v: Value = serde_json::from_slice(&body).unwrap();
            for leg in v["legs"].as_array().unwrap() {
                let target = leg["payee"]["account_no"]
                    .as_str()
                    .or(leg["source"]["channel_txn_id"].as_str())
                    .unwrap();
                prop_assert!(!target.ends_with("0000") && !target.ends_with("0001"), "{}", target);
            }
        }
    }
}
