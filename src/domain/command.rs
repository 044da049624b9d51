//! `withdrawal.approved` version 1, parsed into types that cannot hold invalid values.
//!
//! Parsing runs in stages so every refusal gets the most useful code: bytes → JSON
//! (`malformed_json`), `version` (`unsupported_version`), shape (`schema_invalid`),
//! then the business meaning (amounts, currency, legs adding up, routes).

use super::money::{Currency, Money, MoneyError};
use super::party::{AccountNo, PersonName};
use super::reject::{RejectCode, Rejection};
use super::{ChannelKind, LegId, WithdrawalId};
use chrono::{DateTime, Datelike, Utc};
use rust_decimal::Decimal;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashSet;

pub const COMMAND_TYPE: &str = "withdrawal.approved";
pub const SUPPORTED_VERSION: u64 = 1;
/// More legs than this is not a withdrawal, it is a mistake upstream.
pub const MAX_LEGS: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub struct Withdrawal {
    pub id: WithdrawalId,
    pub account_id: String,
    pub verified_name: PersonName,
    pub currency: Currency,
    pub amount: Money,
    pub approved_at: DateTime<Utc>,
    pub legs: Vec<Leg>,
    /// SHA-256 of the command's canonical JSON: tells a true duplicate from a conflicting
    /// reuse of the same withdrawal id.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub id: LegId,
    pub amount: Money,
    pub channel: ChannelKind,
    pub route: Route,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// Refund a top-up to where it came from; past its window, pay the fallback instead.
    Original {
        source: Source,
        fallback_payee: Option<Payee>,
    },
    /// Pay a designated account.
    Designated { payee: Payee },
}

impl Route {
    pub fn name(&self) -> &'static str {
        match self {
            Route::Original { .. } => "original",
            Route::Designated { .. } => "designated",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub topup_id: String,
    pub channel_txn_id: String,
    pub paid_at: DateTime<Utc>,
    /// The bank of an online-banking top-up (decides its refund window).
    pub bank: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayeeKind {
    BankCard,
    Alipay,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Payee {
    pub kind: PayeeKind,
    pub name: PersonName,
    pub account_no: AccountNo,
    pub bank_name: Option<String>,
    pub branch: Option<String>,
}

// ---- wire shapes -------------------------------------------------------------------

#[derive(Deserialize)]
struct WireCommand {
    #[serde(rename = "type")]
    kind: String,
    withdrawal_id: String,
    account_id: String,
    verified_name: String,
    currency: String,
    amount: String,
    approved_at: String,
    legs: Vec<WireLeg>,
}

#[derive(Deserialize)]
struct WireLeg {
    leg_id: String,
    amount: String,
    route: String,
    channel: String,
    source: Option<WireSource>,
    payee: Option<WirePayee>,
    fallback_payee: Option<WirePayee>,
}

#[derive(Deserialize)]
struct WireSource {
    topup_id: String,
    channel_txn_id: String,
    paid_at: String,
    bank: Option<String>,
}

#[derive(Deserialize)]
struct WirePayee {
    kind: String,
    name: String,
    account_no: String,
    bank_name: Option<String>,
    branch: Option<String>,
}

// ---- parsing -----------------------------------------------------------------------

fn schema(msg: impl Into<String>) -> Rejection {
    Rejection::new(RejectCode::SchemaInvalid, msg)
}

fn money(field: &str, s: &str) -> Result<Money, Rejection> {
    Money::parse(s)
        .map_err(|e: MoneyError| Rejection::new(RejectCode::InvalidAmount, format!("{field}: {e}")))
}

/// An RFC 3339 time whose UTC instant is still writable as RFC 3339 (years 0000–9999):
/// an offset may push a valid-looking text outside that range, and such an instant could
/// not be echoed back in an event or compared with a channel's own dates.
fn timestamp(field: &str, s: &str) -> Result<DateTime<Utc>, Rejection> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
        .filter(|t| (0..=9999).contains(&t.year()))
        .ok_or_else(|| schema(format!("{field}: {s:?} is not an RFC 3339 timestamp")))
}

fn text(field: &str, s: &str, max: usize) -> Result<String, Rejection> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(schema(format!(
            "{field} must be 1–{max} printable characters"
        )));
    }
    Ok(s.to_owned())
}

/// Reads the JSON object out of a body: `malformed_json` if it is not one.
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, Rejection> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        Rejection::new(
            RejectCode::MalformedJson,
            format!("body is not valid UTF-8 JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(Rejection::new(
            RejectCode::MalformedJson,
            "body is JSON but not an object",
        ));
    }
    Ok(value)
}

/// The withdrawal a (possibly invalid) command names, if it names one validly: used to
/// release the funds of an authentic command that cannot be processed.
pub fn named_withdrawal(value: &serde_json::Value) -> Option<WithdrawalId> {
    value
        .get("withdrawal_id")
        .and_then(|v| v.as_str())
        .and_then(WithdrawalId::parse)
}

/// Parses a whole command body.
pub fn parse_command(body: &[u8], currencies: &[String]) -> Result<Withdrawal, Rejection> {
    parse_value(parse_json(body)?, currencies)
}

pub fn parse_value(
    value: serde_json::Value,
    currencies: &[String],
) -> Result<Withdrawal, Rejection> {
    match value.get("version") {
        Some(v) if v.as_u64() == Some(SUPPORTED_VERSION) => {}
        Some(v) => {
            return Err(Rejection::new(
                RejectCode::UnsupportedVersion,
                format!(
                    "version {v} is not supported; this worker speaks version {SUPPORTED_VERSION}"
                ),
            ))
        }
        None => return Err(schema("missing field `version`")),
    }
    // serde_json's map keeps keys sorted, so this text is canonical for the content.
    let digest = hex::encode(Sha256::digest(value.to_string().as_bytes()));
    let wire: WireCommand = serde_json::from_value(value).map_err(|e| schema(e.to_string()))?;
    if wire.kind != COMMAND_TYPE {
        return Err(schema(format!(
            "type is {:?}, expected {COMMAND_TYPE:?}",
            wire.kind
        )));
    }
    let id = WithdrawalId::parse(&wire.withdrawal_id)
        .ok_or_else(|| schema("withdrawal_id must be 1–64 of [A-Za-z0-9_-]"))?;
    let account_id = text("account_id", &wire.account_id, 128)?;
    let verified_name = PersonName::parse(&wire.verified_name)
        .ok_or_else(|| schema("verified_name must be a non-empty printable name"))?;
    let currency = Currency::parse(&wire.currency, currencies).ok_or_else(|| {
        Rejection::new(
            RejectCode::UnsupportedCurrency,
            format!(
                "currency {:?} is not one of {}",
                wire.currency,
                currencies.join(", ")
            ),
        )
    })?;
    let amount = money("amount", &wire.amount)?;
    let approved_at = timestamp("approved_at", &wire.approved_at)?;
    if wire.legs.is_empty() || wire.legs.len() > MAX_LEGS {
        return Err(schema(format!("legs must hold 1–{MAX_LEGS} entries")));
    }
    let mut seen = HashSet::new();
    let mut legs = Vec::with_capacity(wire.legs.len());
    for (i, wl) in wire.legs.into_iter().enumerate() {
        let leg = parse_leg(i, wl)?;
        if !seen.insert(leg.id.clone()) {
            return Err(schema(format!(
                "leg_id {:?} appears twice",
                leg.id.as_str()
            )));
        }
        legs.push(leg);
    }
    let sum: Decimal = legs.iter().map(|l| l.amount.decimal()).sum();
    if sum != amount.decimal() {
        return Err(Rejection::new(
            RejectCode::AmountMismatch,
            format!("legs add up to {sum:.2}, but amount is {amount}"),
        ));
    }
    Ok(Withdrawal {
        id,
        account_id,
        verified_name,
        currency,
        amount,
        approved_at,
        legs,
        digest,
    })
}

fn parse_leg(i: usize, wl: WireLeg) -> Result<Leg, Rejection> {
    let at = |f: &str| format!("legs[{i}].{f}");
    let id = LegId::parse(&wl.leg_id)
        .ok_or_else(|| schema(format!("{} must be 1–64 of [A-Za-z0-9_-]", at("leg_id"))))?;
    let amount = money(&at("amount"), &wl.amount)?;
    let channel = ChannelKind::parse(&wl.channel).ok_or_else(|| {
        schema(format!(
            "{} {:?} is not one of alipay, wechat_pay, unionpay, bank",
            at("channel"),
            wl.channel
        ))
    })?;
    let route = match wl.route.as_str() {
        "original" => {
            if wl.payee.is_some() {
                return Err(schema(format!(
                    "{} is only for designated legs",
                    at("payee")
                )));
            }
            let ws = wl.source.ok_or_else(|| {
                schema(format!("{} is required for route original", at("source")))
            })?;
            let source = Source {
                topup_id: text(&at("source.topup_id"), &ws.topup_id, 64)?,
                channel_txn_id: text(&at("source.channel_txn_id"), &ws.channel_txn_id, 64)?,
                paid_at: timestamp(&at("source.paid_at"), &ws.paid_at)?,
                bank: ws
                    .bank
                    .map(|b| text(&at("source.bank"), &b, 64))
                    .transpose()?,
            };
            if channel == ChannelKind::Bank && source.bank.is_none() {
                return Err(schema(format!(
                    "{} is required for an online-banking top-up",
                    at("source.bank")
                )));
            }
            let fallback_payee = wl
                .fallback_payee
                .map(|p| parse_payee(&at("fallback_payee"), p))
                .transpose()?;
            if fallback_payee
                .as_ref()
                .is_some_and(|p| p.kind != PayeeKind::BankCard)
            {
                return Err(schema(format!(
                    "{} must be a bank_card",
                    at("fallback_payee")
                )));
            }
            Route::Original {
                source,
                fallback_payee,
            }
        }
        "designated" => {
            if wl.source.is_some() || wl.fallback_payee.is_some() {
                return Err(schema(format!(
                    "{} takes a payee, not a source or fallback_payee",
                    at("route")
                )));
            }
            let payee = parse_payee(
                &at("payee"),
                wl.payee.ok_or_else(|| {
                    schema(format!("{} is required for route designated", at("payee")))
                })?,
            )?;
            let fits = matches!(
                (payee.kind, channel),
                (PayeeKind::BankCard, ChannelKind::Bank) | (PayeeKind::Alipay, ChannelKind::Alipay)
            );
            if !fits {
                return Err(schema(format!(
                    "{}: a designated payout goes to a bank_card through bank or an alipay account through alipay",
                    at("channel")
                )));
            }
            Route::Designated { payee }
        }
        other => {
            return Err(schema(format!(
                "{} {other:?} is not original or designated",
                at("route")
            )))
        }
    };
    Ok(Leg {
        id,
        amount,
        channel,
        route,
    })
}

fn parse_payee(field: &str, wp: WirePayee) -> Result<Payee, Rejection> {
    let kind = match wp.kind.as_str() {
        "bank_card" => PayeeKind::BankCard,
        "alipay" => PayeeKind::Alipay,
        other => {
            return Err(schema(format!(
                "{field}.kind {other:?} is not bank_card or alipay"
            )))
        }
    };
    let name = PersonName::parse(&wp.name)
        .ok_or_else(|| schema(format!("{field}.name must be a non-empty printable name")))?;
    let account_no = AccountNo::parse(&wp.account_no).ok_or_else(|| {
        schema(format!(
            "{field}.account_no must be 4–64 characters without spaces"
        ))
    })?;
    let bank_name = wp
        .bank_name
        .map(|b| text(&format!("{field}.bank_name"), &b, 64))
        .transpose()?;
    if kind == PayeeKind::BankCard && bank_name.is_none() {
        return Err(schema(format!(
            "{field}.bank_name is required for a bank_card"
        )));
    }
    let branch = wp
        .branch
        .map(|b| text(&format!("{field}.branch"), &b, 128))
        .transpose()?;
    Ok(Payee {
        kind,
        name,
        account_no,
        bank_name,
        branch,
    })
}

#[cfg(test)]
mod tests;
