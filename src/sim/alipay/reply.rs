//! Alipay's answers as the simulator writes them: the response object (fields in
//! Alipay's order, rendered once so the signature covers exactly the bytes sent), the
//! answers to injected faults, and the small value rules and id formats the gateway uses.

use super::MAX_KEY_LEN;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// An answer before signing: which `<method>_response` it goes in, the inner object's
/// exact text, and what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub method: String,
    pub inner: String,
    pub key: Option<String>,
    pub outcome: String,
}

impl Answer {
    pub(super) fn new(method: &str, key: Option<&str>, inner: Inner) -> Self {
        Self {
            method: method.to_owned(),
            outcome: inner.summary(),
            inner: inner.render(),
            key: key.map(str::to_owned),
        }
    }
}

/// A response object under construction. Fields keep their insertion order (code first,
/// as Alipay writes them); the signature covers the rendered bytes.
#[derive(Debug, Clone)]
pub(super) struct Inner(Vec<(&'static str, String)>);

impl Inner {
    pub(super) fn ok() -> Self {
        Self(vec![("code", "10000".into()), ("msg", "Success".into())])
    }

    pub(super) fn fail(code: &str, msg: &str, sub_code: &str, sub_msg: &str) -> Self {
        Self(vec![
            ("code", code.into()),
            ("msg", msg.into()),
            ("sub_code", sub_code.into()),
            ("sub_msg", sub_msg.into()),
        ])
    }

    pub(super) fn business(sub_code: &str, sub_msg: &str) -> Self {
        Self::fail("40004", "Business Failed", sub_code, sub_msg)
    }

    pub(super) fn with(mut self, field: &'static str, value: impl Into<String>) -> Self {
        self.0.push((field, value.into()));
        self
    }

    fn render(&self) -> String {
        let fields: Vec<String> = self
            .0
            .iter()
            .map(|(k, v)| format!("\"{k}\":{}", serde_json::Value::String(v.clone())))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    /// Code plus whatever decides the outcome: safe to log (no payee data).
    fn summary(&self) -> String {
        let mut parts = Vec::new();
        for (k, v) in &self.0 {
            match *k {
                "code" | "sub_code" | "status" | "refund_status" => parts.push(v.clone()),
                "fund_change" => parts.push(format!("fund_change={v}")),
                _ => {}
            }
        }
        parts.join(" ")
    }
}

/// Answers a call whose request was never carried out because of an injected fault.
pub fn service_unavailable(method: &str) -> Answer {
    let inner = Inner::fail(
        "20000",
        "Service Currently Unavailable",
        "isp.unknow-error",
        "系统繁忙",
    );
    Answer::new(method, None, inner)
}

/// Alipay's business-layer system error; trade APIs prefix their sub-codes with `ACQ.`.
pub fn system_error(method: &str) -> Answer {
    let sub_code = if method.starts_with("alipay.trade.") {
        "ACQ.SYSTEM_ERROR"
    } else {
        "SYSTEM_ERROR"
    };
    Answer::new(method, None, Inner::business(sub_code, "系统繁忙"))
}

/// The method a form names, or Alipay's generic `error` when it names none.
pub fn method_of(params: &BTreeMap<String, String>) -> &str {
    params
        .get("method")
        .map(String::as_str)
        .filter(|m| !m.is_empty())
        .unwrap_or("error")
}

pub(super) fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN
}

/// Yuan as Alipay accepts it: digits, at most two decimals, more than zero.
pub(super) fn valid_yuan(s: &str) -> bool {
    let (whole, frac) = match s.split_once('.') {
        // "10." is not an amount.
        Some((_, "")) => return false,
        Some(parts) => parts,
        None => (s, ""),
    };
    let digits_only = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && whole.len() <= 11
        && digits_only(whole)
        && frac.len() <= 2
        && digits_only(frac)
        && s.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// A stable Alipay-looking id ("2026" and 16 digits) for a key: the same key gets the
/// same id on every run, so repeats and queries agree without storing it.
pub(super) fn digits(salt: &str, key: &str) -> String {
    let hash = Sha256::new()
        .chain_update(salt.as_bytes())
        .chain_update([0u8])
        .chain_update(key.as_bytes())
        .finalize();
    let mut n = [0u8; 8];
    n.copy_from_slice(&hash[..8]);
    format!("2026{:016}", u64::from_be_bytes(n) % 10_000_000_000_000_000)
}

/// Now on Alipay's clock (UTC+8), as its `*_date` fields print it.
pub(super) fn wall_clock() -> String {
    let china = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset");
    chrono::Utc::now()
        .with_timezone(&china)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}
