//! The events the funds service consumes: CloudEvents 1.0, structured JSON mode.
//!
//! `id` is deterministic (`<withdrawal_id>:<type>`), so a republished event is the same
//! event and consumers deduplicate by `id`. A terminal event is stored in Redis before it
//! is first published and republished from there byte-for-byte, `time` included.

use crate::domain::money::format_amount;
use crate::domain::{Leg, Money, Rejection, Withdrawal, WithdrawalId};
use crate::store::{LegRecord, LegState};
use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

pub const CONTENT_TYPE: &str = "application/cloudevents+json";
pub const SOURCE: &str = "urn:payout-worker";

pub const PROCESSING: &str = "withdrawal.processing";
pub const SUCCEEDED: &str = "withdrawal.succeeded";
pub const FAILED: &str = "withdrawal.failed";
pub const REVIEW_REQUIRED: &str = "withdrawal.review_required";

/// A built event: its routing key (= its type) and exact JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: String,
    pub id: String,
    pub body: String,
}

impl Event {
    fn new(kind: &str, subject: &WithdrawalId, time: DateTime<Utc>, data: Value) -> Self {
        Self::with_id(
            format!("{}:{kind}", subject.as_str()),
            kind,
            subject,
            time,
            data,
        )
    }

    fn with_id(
        id: String,
        kind: &str,
        subject: &WithdrawalId,
        time: DateTime<Utc>,
        data: Value,
    ) -> Self {
        let body = json!({
            "specversion": "1.0",
            "id": id,
            "source": SOURCE,
            "type": kind,
            "subject": subject.as_str(),
            "time": time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "datacontenttype": "application/json",
            "data": data,
        })
        .to_string();
        Self {
            kind: kind.to_owned(),
            id,
            body,
        }
    }

    /// An event read back from the outbox.
    pub fn from_stored(body: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(body).ok()?;
        Some(Self {
            kind: v.get("type")?.as_str()?.to_owned(),
            id: v.get("id")?.as_str()?.to_owned(),
            body: body.to_owned(),
        })
    }
}

pub fn processing(w: &Withdrawal, now: DateTime<Utc>) -> Event {
    let legs: Vec<Value> = w
        .legs
        .iter()
        .map(|l| {
            json!({"leg_id": l.id, "amount": l.amount, "channel": l.channel, "route": l.route.name()})
        })
        .collect();
    Event::new(
        PROCESSING,
        &w.id,
        now,
        json!({
            "withdrawal_id": w.id, "account_id": w.account_id, "currency": w.currency,
            "amount": w.amount, "legs": legs,
        }),
    )
}

fn leg_json(leg: &Leg, rec: &LegRecord) -> Value {
    let mut v = json!({
        "leg_id": leg.id,
        "amount": leg.amount,
        "channel": rec.channel,
        "route": rec.route.map(|r| r.as_str()).unwrap_or(leg.route.name()),
        "status": rec.state,
    });
    match rec.state {
        LegState::Succeeded => {
            v["channel_reference"] = json!(rec.reference);
            v["completed_at"] = json!(rec.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true));
        }
        LegState::Failed => {
            v["failure_code"] = json!(rec.code);
            v["failure_reason"] = json!(rec.reason);
            v["completed_at"] = json!(rec.updated_at.to_rfc3339_opts(SecondsFormat::Millis, true));
        }
        LegState::Sending | LegState::Pending | LegState::Unknown | LegState::Review => {
            v["sends"] = json!(rec.sends);
            if let Some(reason) = &rec.reason {
                v["note"] = json!(reason);
            }
        }
    }
    v
}

/// `withdrawal.succeeded` or `withdrawal.failed`, for legs that are all final.
/// `paid_amount + unfreeze_amount = amount` holds by construction: every leg is in one sum.
pub fn terminal(w: &Withdrawal, legs: &[(&Leg, &LegRecord)], now: DateTime<Utc>) -> Event {
    debug_assert!(legs.iter().all(|(_, r)| r.state.is_final()));
    let sum = |state: LegState| -> Decimal {
        legs.iter()
            .filter(|(_, r)| r.state == state)
            .map(|(l, _)| l.amount.decimal())
            .sum()
    };
    let unfreeze = w.amount.decimal() - sum(LegState::Succeeded);
    let kind = if unfreeze.is_zero() {
        SUCCEEDED
    } else {
        FAILED
    };
    let mut data = json!({
        "withdrawal_id": w.id, "account_id": w.account_id, "currency": w.currency,
        "amount": w.amount,
        "paid_amount": format_amount(sum(LegState::Succeeded)),
        "legs": legs.iter().map(|(l, r)| leg_json(l, r)).collect::<Vec<_>>(),
    });
    if kind == FAILED {
        data["unfreeze_amount"] = json!(format_amount(unfreeze));
    }
    Event::new(kind, &w.id, now, data)
}

/// Why a withdrawal needs a person; part of the review event's id, so each kind of
/// review is one event however often it is republished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewKind {
    /// A leg the channel put in a state no machine can resolve.
    Leg,
    /// A pending payout outlived its channel's expected settlement time.
    SettlementOverdue,
    /// An outcome still unknown after the retry budget.
    OutcomeUnknown,
    /// Past a containment limit (`crate::limits`): held before any leg was sent.
    Limit,
    /// The delivery is near the broker's delivery limit (it kept coming back without
    /// being settled): before the broker dead-letters it, a person is told, with the
    /// withdrawal's state kept in Redis until the review is resolved.
    DeliveryLimit,
}

impl ReviewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Leg => "leg",
            Self::SettlementOverdue => "settlement_overdue",
            Self::OutcomeUnknown => "outcome_unknown",
            Self::Limit => "limit",
            Self::DeliveryLimit => "delivery_limit",
        }
    }
}

/// `withdrawal.review_required`: funds stay frozen until a person decides.
pub fn review(
    w: &Withdrawal,
    legs: &[(&Leg, &LegRecord)],
    kind: ReviewKind,
    reason: &str,
    now: DateTime<Utc>,
) -> Event {
    Event::with_id(
        format!("{}:{REVIEW_REQUIRED}:{}", w.id.as_str(), kind.as_str()),
        REVIEW_REQUIRED,
        &w.id,
        now,
        json!({
            "withdrawal_id": w.id, "account_id": w.account_id, "currency": w.currency,
            "amount": w.amount, "reason": reason, "review_kind": kind.as_str(),
            "legs": legs.iter().map(|(l, r)| leg_json(l, r)).collect::<Vec<_>>(),
        }),
    )
}

/// `withdrawal.failed` for an authentic command that cannot be processed: nothing was
/// paid, so everything frozen for it is released. `amount` (and `unfreeze_amount`) is
/// copied only when the command states a valid amount (the contract's pattern, more
/// than zero), `currency` only when it is a currency code; otherwise they are null.
/// `unfreeze_all` tells the funds service to release the whole frozen sum whatever the
/// command said.
pub fn rejected(command: &Value, id: &WithdrawalId, why: &Rejection, now: DateTime<Utc>) -> Event {
    let text = |f: &str| command.get(f).and_then(Value::as_str).map(str::to_owned);
    // Verbatim, not rounded: the funds service matches it against what it froze.
    let amount = text("amount").filter(|a| Money::parse(a).is_ok());
    let currency =
        text("currency").filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
    // Only an account id the contract allows: a refused command's may be anything (a
    // megabyte of text in a `too_large` one), and this event is stored.
    let account_id = text("account_id").filter(|a| crate::domain::command::valid_account_id(a));
    Event::new(
        FAILED,
        id,
        now,
        json!({
            "withdrawal_id": id,
            "account_id": account_id,
            "currency": currency,
            "amount": amount,
            "paid_amount": "0.00",
            "unfreeze_amount": amount,
            "unfreeze_all": true,
            "failure_code": why.code.as_str(),
            "failure_reason": why.message,
            "legs": [],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::command::parse_command;
    use crate::domain::{ChannelKind, RejectCode};
    use crate::routing::RouteTaken;

    fn two_legs() -> Withdrawal {
        let body = serde_json::json!({"type":"withdrawal.approved","version":1,"withdrawal_id":"wd-e1","account_id":"a",
            "verified_name":"Zhang San","currency":"CNY","amount":"15.00","approved_at":"2026-11-20T08:00:00Z",
            "legs":[{"leg_id":"1","amount":"10.00","route":"designated","channel":"alipay",
                     "payee":{"kind":"alipay","name":"Zhang San","account_no":"zs@example.com"}},
                    {"leg_id":"2","amount":"5.00","route":"designated","channel":"alipay",
                     "payee":{"kind":"alipay","name":"Zhang San","account_no":"zs@example.com"}}]});
        parse_command(body.to_string().as_bytes(), &["CNY".into()]).unwrap()
    }

    fn rec(state: LegState) -> LegRecord {
        let mut r = LegRecord::sending(
            None,
            RouteTaken::Designated,
            ChannelKind::Alipay,
            Utc::now(),
        );
        r.state = state;
        r.reference = Some("T".into());
        r.code = Some("PAYEE_NOT_EXIST".into());
        r.reason = Some("closed".into());
        r
    }

    #[test]
    fn succeeded_when_every_leg_paid() {
        let w = two_legs();
        let (a, b) = (rec(LegState::Succeeded), rec(LegState::Succeeded));
        let e = terminal(&w, &[(&w.legs[0], &a), (&w.legs[1], &b)], Utc::now());
        assert_eq!(e.kind, SUCCEEDED);
        assert_eq!(e.id, "wd-e1:withdrawal.succeeded");
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(v["data"]["paid_amount"], "15.00");
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["subject"], "wd-e1");
    }

    #[test]
    fn failed_adds_up() {
        let w = two_legs();
        let (a, b) = (rec(LegState::Succeeded), rec(LegState::Failed));
        let e = terminal(&w, &[(&w.legs[0], &a), (&w.legs[1], &b)], Utc::now());
        assert_eq!(e.kind, FAILED);
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(v["data"]["paid_amount"], "10.00");
        assert_eq!(v["data"]["unfreeze_amount"], "5.00");
        assert_eq!(v["data"]["legs"][1]["failure_code"], "PAYEE_NOT_EXIST");
        assert_eq!(Event::from_stored(&e.body).unwrap(), e);
    }

    /// The data of the `withdrawal.failed` for a refused `cmd`, checked against the
    /// published schema.
    fn rejected_data(cmd: Value) -> Value {
        let why = Rejection::new(RejectCode::InvalidAmount, "too precise");
        let e = rejected(
            &cmd,
            &WithdrawalId::parse("wd-x").unwrap(),
            &why,
            Utc::now(),
        );
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(v["type"], FAILED);
        let schema: Value = serde_json::from_str(crate::schemas::get(FAILED).unwrap()).unwrap();
        let errors: Vec<String> = jsonschema::validator_for(&schema)
            .unwrap()
            .iter_errors(&v)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{v}");
        v["data"].clone()
    }

    #[test]
    fn rejected_releases_everything() {
        let d =
            rejected_data(json!({"withdrawal_id": "wd-x", "amount": "12.5", "currency": "CNY"}));
        assert_eq!(d["unfreeze_all"], true);
        assert_eq!(d["failure_code"], "invalid_amount");
        assert_eq!(d["paid_amount"], "0.00");
        // Verbatim, as the funds service froze it.
        assert_eq!(d["amount"], "12.5");
        assert_eq!(d["unfreeze_amount"], "12.5");
        assert_eq!(d["currency"], "CNY");
    }

    /// Only a valid amount is repeated: anything else (a decimal `Decimal` would read
    /// included) leaves `amount` and `unfreeze_amount` null, with `unfreeze_all`.
    #[test]
    fn rejected_repeats_no_invalid_amount() {
        for bad in [
            json!("-1"),
            json!("1e3"),
            json!("+1.00"),
            json!("12.345"),
            json!("01.00"),
            json!("0.00"),
            json!(" 1.00"),
            json!("1234567890123456"),
            json!(12),
            json!(null),
        ] {
            let d = rejected_data(
                json!({"withdrawal_id": "wd-x", "amount": bad, "currency": "6222020200112233445"}),
            );
            assert_eq!(d["amount"], Value::Null, "{bad}");
            assert_eq!(d["unfreeze_amount"], Value::Null, "{bad}");
            assert_eq!(d["currency"], Value::Null, "{bad}");
            assert_eq!(d["unfreeze_all"], true);
        }
    }
}
