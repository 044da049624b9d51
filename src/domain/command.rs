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
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
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

/// The command's fields as the JSON holds them, before their meaning is checked.
struct WireCommand<'a> {
    kind: &'a str,
    withdrawal_id: &'a str,
    account_id: &'a str,
    verified_name: &'a str,
    currency: &'a str,
    amount: &'a str,
    approved_at: &'a str,
    legs: Vec<WireLeg<'a>>,
}

struct WireLeg<'a> {
    leg_id: &'a str,
    amount: &'a str,
    route: &'a str,
    channel: &'a str,
    source: Option<WireSource<'a>>,
    payee: Option<WirePayee<'a>>,
    fallback_payee: Option<WirePayee<'a>>,
}

struct WireSource<'a> {
    topup_id: &'a str,
    channel_txn_id: &'a str,
    paid_at: &'a str,
    bank: Option<&'a str>,
}

struct WirePayee<'a> {
    kind: &'a str,
    name: &'a str,
    account_no: &'a str,
    bank_name: Option<&'a str>,
    branch: Option<&'a str>,
}

/// One JSON object of the command, read field by field. A field of the wrong shape is
/// refused naming its path and what was expected, never the value found: any field may
/// hold a card number (serde's own messages quote it). `null` counts as absent; fields
/// the contract does not name are ignored.
struct Fields<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn of(path: String, v: &'a Value) -> Result<Self, Rejection> {
        match v {
            Value::Object(map) => Ok(Self { path, map }),
            other => Err(schema(format!(
                "{} must be an object, not {}",
                if path.is_empty() {
                    "the command"
                } else {
                    &path
                },
                shape(other)
            ))),
        }
    }

    fn name(&self, field: &str) -> String {
        if self.path.is_empty() {
            field.to_owned()
        } else {
            format!("{}.{field}", self.path)
        }
    }

    fn present(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn string(&self, field: &str) -> Result<&'a str, Rejection> {
        self.opt_string(field)?
            .ok_or_else(|| schema(format!("missing field `{}`", self.name(field))))
    }

    fn opt_string(&self, field: &str) -> Result<Option<&'a str>, Rejection> {
        match self.present(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(schema(format!(
                "{} must be a string, not {}",
                self.name(field),
                shape(other)
            ))),
        }
    }

    fn opt_object(&self, field: &str) -> Result<Option<Fields<'a>>, Rejection> {
        self.present(field)
            .map(|v| Fields::of(self.name(field), v))
            .transpose()
    }

    fn array(&self, field: &str) -> Result<&'a [Value], Rejection> {
        match self.present(field) {
            None => Err(schema(format!("missing field `{}`", self.name(field)))),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(schema(format!(
                "{} must be an array, not {}",
                self.name(field),
                shape(other)
            ))),
        }
    }
}

/// What kind of JSON value this is (never the value itself).
fn shape(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_command(value: &Value) -> Result<WireCommand<'_>, Rejection> {
    let top = Fields::of(String::new(), value)?;
    let wire = WireCommand {
        kind: top.string("type")?,
        withdrawal_id: top.string("withdrawal_id")?,
        account_id: top.string("account_id")?,
        verified_name: top.string("verified_name")?,
        currency: top.string("currency")?,
        amount: top.string("amount")?,
        approved_at: top.string("approved_at")?,
        legs: top
            .array("legs")?
            .iter()
            .enumerate()
            .map(|(i, leg)| read_leg(Fields::of(format!("legs[{i}]"), leg)?))
            .collect::<Result<_, _>>()?,
    };
    Ok(wire)
}

fn read_leg(leg: Fields<'_>) -> Result<WireLeg<'_>, Rejection> {
    Ok(WireLeg {
        leg_id: leg.string("leg_id")?,
        amount: leg.string("amount")?,
        route: leg.string("route")?,
        channel: leg.string("channel")?,
        source: leg
            .opt_object("source")?
            .map(|s| {
                Ok::<_, Rejection>(WireSource {
                    topup_id: s.string("topup_id")?,
                    channel_txn_id: s.string("channel_txn_id")?,
                    paid_at: s.string("paid_at")?,
                    bank: s.opt_string("bank")?,
                })
            })
            .transpose()?,
        payee: leg.opt_object("payee")?.map(read_payee).transpose()?,
        fallback_payee: leg
            .opt_object("fallback_payee")?
            .map(read_payee)
            .transpose()?,
    })
}

fn read_payee(p: Fields<'_>) -> Result<WirePayee<'_>, Rejection> {
    Ok(WirePayee {
        kind: p.string("kind")?,
        name: p.string("name")?,
        account_no: p.string("account_no")?,
        bank_name: p.opt_string("bank_name")?,
        branch: p.opt_string("branch")?,
    })
}

// ---- parsing -----------------------------------------------------------------------
//
// No message names a value from the command (it may be a card number, in any field):
// each names the field's path and what was expected. The exceptions are `withdrawal_id`
// and `leg_id`, echoed as identifiers once they are valid ids (a repeated leg id).

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
        .ok_or_else(|| {
            schema(format!(
                "{field} is not an RFC 3339 timestamp within years 0000–9999 UTC"
            ))
        })
}

fn text(field: &str, s: &str, max: usize) -> Result<String, Rejection> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(schema(format!(
            "{field} must be 1–{max} printable characters"
        )));
    }
    Ok(s.to_owned())
}

/// Reads the JSON object out of a body: `malformed_json` if it is not one,
/// `schema_invalid` if an object in it repeats a key (at any depth: a signed body is
/// read one way only, never "the last one wins").
pub fn parse_json(body: &[u8]) -> Result<serde_json::Value, Rejection> {
    let value = match serde_json::from_slice::<Unambiguous>(body) {
        Ok(Unambiguous(v)) => v,
        // Only the check below raises a data error: everything else is syntax. Neither
        // names a value (serde_json's syntax messages are fixed texts plus a position).
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            return Err(schema(format!(
                "the body is JSON, but {e}: a signed body must read one way only"
            )))
        }
        Err(e) => {
            return Err(Rejection::new(
                RejectCode::MalformedJson,
                format!("body is not valid UTF-8 JSON: {e}"),
            ))
        }
    };
    if !value.is_object() {
        return Err(Rejection::new(
            RejectCode::MalformedJson,
            "body is JSON but not an object",
        ));
    }
    Ok(value)
}

/// A JSON value read so that an object repeating a key is an error (serde_json's own
/// `Value` keeps the last one silently). Depth stays bounded by serde_json's recursion
/// limit, as for `Value`.
struct Unambiguous(Value);

const REPEATED_KEY: &str = "an object in it repeats a key";

impl<'de> Deserialize<'de> for Unambiguous {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UnambiguousVisitor).map(Unambiguous)
    }
}

struct UnambiguousVisitor;

impl<'de> Visitor<'de> for UnambiguousVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Unambiguous(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(REPEATED_KEY));
            }
            let Unambiguous(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// What a command refused before it could be parsed whole (objects repeating a key, a
/// body too large) says unambiguously about itself, for its `withdrawal.failed`: its
/// top-level `withdrawal_id`, `account_id`, `currency` and `amount`, each only when its
/// key appears exactly once. Read in one pass that keeps nothing else of the body (any
/// other field may read two ways, or be huge). An empty object if the body is not a
/// JSON object.
pub fn named_fields(body: &[u8]) -> Value {
    const NAMED: [&str; 4] = ["withdrawal_id", "account_id", "currency", "amount"];
    struct Named(Map<String, Value>);
    struct NamedVisitor;
    impl<'de> Visitor<'de> for NamedVisitor {
        type Value = Named;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
            let mut seen: Vec<(String, Value)> = Vec::new();
            while let Some(key) = map.next_key::<String>()? {
                if NAMED.contains(&key.as_str()) {
                    let value = map.next_value::<Value>()?;
                    seen.push((key, value));
                } else {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
            let once = |k: &str| seen.iter().filter(|(key, _)| key == k).count() == 1;
            Ok(Named(
                seen.iter()
                    .filter(|(k, _)| once(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ))
        }
    }
    impl<'de> Deserialize<'de> for Named {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(NamedVisitor)
        }
    }
    Value::Object(
        serde_json::from_slice::<Named>(body)
            .map(|n| n.0)
            .unwrap_or_default(),
    )
}

/// Whether `s` is an `account_id` as the contract allows it (1–128 printable characters).
pub fn valid_account_id(s: &str) -> bool {
    text("account_id", s, 128).is_ok()
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

/// Parses a command read by [`parse_json`]. Pure: the same value always gives the same
/// answer (`review resolve` re-reads stored commands); the one check that needs the
/// clock is [`check_clock`].
pub fn parse_value(
    value: serde_json::Value,
    currencies: &[String],
) -> Result<Withdrawal, Rejection> {
    match value.get("version") {
        Some(v) if v.as_u64() == Some(SUPPORTED_VERSION) => {}
        Some(_) => {
            return Err(Rejection::new(
                RejectCode::UnsupportedVersion,
                format!("version is not supported; this worker speaks version {SUPPORTED_VERSION}"),
            ))
        }
        None => return Err(schema("missing field `version`")),
    }
    // serde_json's map keeps keys sorted, so this text is canonical for the content.
    let digest = hex::encode(Sha256::digest(value.to_string().as_bytes()));
    let wire = read_command(&value)?;
    if wire.kind != COMMAND_TYPE {
        return Err(schema(format!("type must be {COMMAND_TYPE:?}")));
    }
    let id = WithdrawalId::parse(wire.withdrawal_id)
        .ok_or_else(|| schema("withdrawal_id must be 1–64 of [A-Za-z0-9_-]"))?;
    let account_id = text("account_id", wire.account_id, 128)?;
    let verified_name = PersonName::parse(wire.verified_name)
        .ok_or_else(|| schema("verified_name must be a non-empty printable name"))?;
    let currency = Currency::parse(wire.currency, currencies).ok_or_else(|| {
        Rejection::new(
            RejectCode::UnsupportedCurrency,
            format!("currency is not one of {}", currencies.join(", ")),
        )
    })?;
    let amount = money("amount", wire.amount)?;
    let approved_at = timestamp("approved_at", wire.approved_at)?;
    if wire.legs.is_empty() || wire.legs.len() > MAX_LEGS {
        return Err(schema(format!("legs must hold 1–{MAX_LEGS} entries")));
    }
    let mut seen = HashSet::new();
    let mut legs = Vec::with_capacity(wire.legs.len());
    for (i, wl) in wire.legs.into_iter().enumerate() {
        let leg = parse_leg(i, wl, approved_at)?;
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
            "the legs' amounts do not add up to amount",
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

/// How many seconds `t` is ahead of `now`, when that is more than `max_skew_secs`: a
/// time the publisher's clock cannot honestly have written yet.
pub fn ahead_beyond_skew(t: DateTime<Utc>, now: DateTime<Utc>, max_skew_secs: u64) -> Option<i64> {
    let ahead = t.signed_duration_since(now).num_seconds();
    (ahead > i64::try_from(max_skew_secs).unwrap_or(i64::MAX)).then_some(ahead)
}

/// The check of a parsed command that needs the clock, kept out of [`parse_value`] so
/// that parsing stays pure: a top-up paid later than `now` plus the allowed clock skew
/// (`limits.max_clock_skew_secs`) is impossible, `invalid_timestamp`. (A top-up paid
/// after its own approval is refused by [`parse_value`]; `approved_at` itself in the
/// future is a containment limit, held for review: `crate::limits::check_command`.)
pub fn check_clock(
    w: &Withdrawal,
    now: DateTime<Utc>,
    max_skew_secs: u64,
) -> Result<(), Rejection> {
    for (i, leg) in w.legs.iter().enumerate() {
        if let Route::Original { source, .. } = &leg.route {
            if let Some(ahead) = ahead_beyond_skew(source.paid_at, now, max_skew_secs) {
                return Err(Rejection::new(
                    RejectCode::InvalidTimestamp,
                    format!(
                        "legs[{i}].source.paid_at is {ahead}s in the future, at most {max_skew_secs}s allowed (limits.max_clock_skew_secs): a top-up cannot be paid in the future"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn parse_leg(i: usize, wl: WireLeg<'_>, approved_at: DateTime<Utc>) -> Result<Leg, Rejection> {
    let at = |f: &str| format!("legs[{i}].{f}");
    let id = LegId::parse(wl.leg_id)
        .ok_or_else(|| schema(format!("{} must be 1–64 of [A-Za-z0-9_-]", at("leg_id"))))?;
    let amount = money(&at("amount"), wl.amount)?;
    let channel = ChannelKind::parse(wl.channel).ok_or_else(|| {
        schema(format!(
            "{} is not one of alipay, wechat_pay, unionpay, bank",
            at("channel"),
        ))
    })?;
    let route = match wl.route {
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
                topup_id: text(&at("source.topup_id"), ws.topup_id, 64)?,
                channel_txn_id: text(&at("source.channel_txn_id"), ws.channel_txn_id, 64)?,
                paid_at: timestamp(&at("source.paid_at"), ws.paid_at)?,
                bank: ws
                    .bank
                    .map(|b| text(&at("source.bank"), b, 64))
                    .transpose()?,
            };
            if source.paid_at > approved_at {
                return Err(Rejection::new(
                    RejectCode::InvalidTimestamp,
                    format!(
                        "{} is after approved_at: a top-up is paid before its refund is approved",
                        at("source.paid_at")
                    ),
                ));
            }
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
        _ => {
            return Err(schema(format!(
                "{} is not original or designated",
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

fn parse_payee(field: &str, wp: WirePayee<'_>) -> Result<Payee, Rejection> {
    let kind = match wp.kind {
        "bank_card" => PayeeKind::BankCard,
        "alipay" => PayeeKind::Alipay,
        _ => return Err(schema(format!("{field}.kind is not bank_card or alipay"))),
    };
    let name = PersonName::parse(wp.name)
        .ok_or_else(|| schema(format!("{field}.name must be a non-empty printable name")))?;
    let account_no = AccountNo::parse(wp.account_no).ok_or_else(|| {
        schema(format!(
            "{field}.account_no must be 4–64 characters without spaces"
        ))
    })?;
    let bank_name = wp
        .bank_name
        .map(|b| text(&format!("{field}.bank_name"), b, 64))
        .transpose()?;
    if kind == PayeeKind::BankCard && bank_name.is_none() {
        return Err(schema(format!(
            "{field}.bank_name is required for a bank_card"
        )));
    }
    let branch = wp
        .branch
        .map(|b| text(&format!("{field}.branch"), b, 128))
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
