//! The simulated bank's payment book, with no I/O: accepts a payment initiation against
//! the shared [`Ledger`](super::super::ledger::Ledger), enforces end_to_end_id
//! idempotency, and renders status reports from the record at a given moment.
//!
//! Settlement is asynchronous as at a real bank: a new payment is acknowledged `ACTC`,
//! reports `ACSP` until `settle` has passed, then `ACSC`; with no settlement time
//! (`settle_ms = 0`) it is an instant payment, `ACSC` in the initiation's answer. The request chooses a business
//! failure: a creditor account or original transaction id ending in `0000` is rejected at
//! once (`RJCT AC04`, nothing moved); ending in `0001` is acknowledged and rejected after
//! settlement (`RJCT AC01`).

use crate::channels::bank::protocol::{
    ErrorBody, PaymentInitiation, StatusReport, MAX_END_TO_END_ID,
};
use crate::domain::Money;
use crate::sim::ledger::{fingerprint, Book, Entry, Fate, Settled, State};
use std::time::{Duration, Instant};

pub const CHANNEL: &str = "bank";
/// A credit transfer to a creditor account.
const OP_TRANSFER: &str = "credit_transfer";
/// A return of funds to where an online-banking top-up came from.
const OP_RETURN: &str = "return";

/// An answer before signing: HTTP status, the exact body, and what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub key: Option<String>,
    /// Status and reason code, or the error code: safe to log (no payee data).
    pub outcome: String,
}

impl Answer {
    pub fn report(status: u16, r: &StatusReport) -> Self {
        let outcome = match &r.reason_code {
            Some(code) => format!("{} {code}", r.status),
            None => r.status.clone(),
        };
        Self {
            status,
            body: serde_json::to_string(r).expect("a status report serialises"),
            key: Some(r.end_to_end_id.clone()),
            outcome,
        }
    }

    pub fn error(status: u16, code: &str, message: &str, key: Option<&str>) -> Self {
        let body = ErrorBody {
            code: code.to_owned(),
            message: message.to_owned(),
        };
        Self {
            status,
            body: serde_json::to_string(&body).expect("an error body serialises"),
            key: key.map(str::to_owned),
            outcome: code.to_owned(),
        }
    }
}

/// What identifies a request: its operation, the value that chooses its fate, and the
/// fingerprint a repeat must match.
struct Checked<'a> {
    op: &'static str,
    target: &'a str,
    print: String,
}

/// Schema checks a bank runs before anything else; `None` means HTTP 400.
fn checked(p: &PaymentInitiation) -> Option<Checked<'_>> {
    let id_ok = (1..=MAX_END_TO_END_ID).contains(&p.end_to_end_id.len())
        && p.end_to_end_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let amount = &p.instructed_amount;
    // Exactly two places, as the protocol says: "10.5" and "10" are refused.
    let amount_ok = Money::parse(&amount.value).is_ok_and(|m| m.to_yuan_string() == amount.value);
    let currency_ok =
        amount.currency.len() == 3 && amount.currency.bytes().all(|b| b.is_ascii_uppercase());
    if !id_ok || !amount_ok || !currency_ok || p.debtor_account.is_empty() {
        return None;
    }
    let common = [
        amount.value.as_str(),
        amount.currency.as_str(),
        p.debtor_account.as_str(),
    ];
    // The remittance text is not part of "the same payment": it moves no money.
    match (&p.creditor, &p.original_transaction_id) {
        (Some(c), None) if !c.name.trim().is_empty() && !c.account.is_empty() => {
            let bank = c.bank_name.as_deref().unwrap_or_default();
            let branch = c.branch.as_deref().unwrap_or_default();
            let parts = [
                &common[..],
                &[
                    OP_TRANSFER,
                    c.name.as_str(),
                    c.account.as_str(),
                    bank,
                    branch,
                ],
            ]
            .concat();
            Some(Checked {
                op: OP_TRANSFER,
                target: c.account.as_str(),
                print: fingerprint(&parts),
            })
        }
        (None, Some(original)) if !original.is_empty() => {
            let parts = [&common[..], &[OP_RETURN, original.as_str()]].concat();
            Some(Checked {
                op: OP_RETURN,
                target: original.as_str(),
                print: fingerprint(&parts),
            })
        }
        _ => None,
    }
}

/// A creditor account (a credit transfer's, not a return's original transaction id)
/// ending in this settles only after [`SLOW_SETTLE`] (a payout that takes days at a real
/// bank; chaos runs use it).
pub const SLOW_SUFFIX: &str = "0002";
/// How long a [`SLOW_SUFFIX`] payment stays `ACSP`.
pub const SLOW_SETTLE: Duration = Duration::from_secs(20);
/// A creditor account ending in this: the gateway answers `503 SERVICE_UNAVAILABLE` to
/// every initiation, for good; nothing is recorded (an outcome no machine can resolve).
pub const STUCK_SUFFIX: &str = "0003";

/// `POST /payments`: a new end_to_end_id is recorded (201), a repeat with the same content
/// gets the current status (200), a repeat with other content gets 409 `DUPL`.
pub fn initiate(
    book: &mut Book<'_>,
    p: &PaymentInitiation,
    settle: Duration,
    now: Instant,
) -> Answer {
    let key = p.end_to_end_id.as_str();
    let Some(req) = checked(p) else {
        return Answer::error(
            400,
            "INVALID_REQUEST",
            "the payment initiation failed schema validation",
            Some(key),
        );
    };
    let account = |suffix: &str| req.op == OP_TRANSFER && req.target.ends_with(suffix);
    if account(STUCK_SUFFIX) {
        return Answer::error(503, "SERVICE_UNAVAILABLE", "try again later", Some(key));
    }
    if let Some(seen) = book.get(CHANNEL, key) {
        if !seen.same_request(req.op, &req.print) {
            return Answer::error(
                409,
                "DUPL",
                "end_to_end_id already used for a different payment",
                Some(key),
            );
        }
        return Answer::report(200, &report(seen, now, false));
    }
    let at = now
        + if account(SLOW_SUFFIX) {
            SLOW_SETTLE.max(settle)
        } else {
            settle
        };
    // A return past the top-up's refund window is refused like a closed account.
    let past_window = req.op == OP_RETURN && book.past_window(req.target);
    let (fate, payouts) = if req.target.ends_with("0000") || past_window {
        (Fate::Refused, 0)
    } else if req.target.ends_with("0001") {
        let then = Settled::Refused;
        (Fate::Settles { at, then }, 0)
    } else if settle.is_zero() && !account(SLOW_SUFFIX) {
        // No settlement time: an instant payment, settled in the initiation's answer.
        (Fate::Paid, 1)
    } else {
        let then = Settled::Paid;
        (Fate::Settles { at, then }, 1)
    };
    let entry = book.open(Entry {
        channel: CHANNEL,
        key: key.to_owned(),
        op: req.op,
        fingerprint: req.print,
        amount: p.instructed_amount.value.clone(),
        reference: bank_reference(key),
        accepted_on: chrono::Utc::now().to_rfc3339(),
        fate,
        payouts,
    });
    Answer::report(201, &report(entry, now, true))
}

/// `GET /payments/{end_to_end_id}`: the status report now, or 404 `NOT_FOUND`.
pub fn status(book: &Book<'_>, end_to_end_id: &str, now: Instant) -> Answer {
    match book.get(CHANNEL, end_to_end_id) {
        Some(e) => Answer::report(200, &report(e, now, false)),
        None => Answer::error(
            404,
            "NOT_FOUND",
            "no payment with this end_to_end_id",
            Some(end_to_end_id),
        ),
    }
}

/// The report for a record. `first`: the acknowledgement of a new payment, which is a
/// technical acceptance (`ACTC`) however soon it will settle.
fn report(e: &Entry, now: Instant, first: bool) -> StatusReport {
    let accepted = |status: &str| StatusReport {
        end_to_end_id: e.key.clone(),
        status: status.to_owned(),
        bank_reference: Some(e.reference.clone()),
        ..StatusReport::default()
    };
    let rejected = |code: &str, reason: &str| StatusReport {
        reason_code: Some(code.to_owned()),
        reason: Some(reason.to_owned()),
        ..accepted("RJCT")
    };
    if first && matches!(e.fate, Fate::Settles { .. }) {
        return accepted("ACTC");
    }
    match (e.state(now), e.fate) {
        // Rejected at once: never accepted, so no bank reference.
        (State::Refused, Fate::Refused) => StatusReport {
            bank_reference: None,
            ..rejected("AC04", "Account number is closed")
        },
        (State::Refused | State::Bounced, _) => rejected("AC01", "Account number is incorrect"),
        (State::Pending, _) => accepted("ACSP"),
        (State::Paid, _) => accepted("ACSC"),
    }
}

/// A stable bank-looking reference for a key, so repeats and queries agree.
fn bank_reference(key: &str) -> String {
    format!(
        "BR{}",
        fingerprint(&["bank_reference", key])[..16].to_uppercase()
    )
}
