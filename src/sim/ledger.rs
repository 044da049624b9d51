//! The simulator's ledger: one record per (channel, idempotency key), shared by every
//! simulated channel.
//!
//! It exists for two reasons: each channel's idempotency (a repeated key is answered from
//! the record, never paid again) and the test oracle behind `GET /sim/ledger` (how many
//! times money really went out under a key). The record is channel-neutral: a channel
//! module turns its request into a fingerprint, an amount and a [`Fate`], and renders its
//! own wire answers from the record's [`State`] at a given moment. Time is always passed
//! in, so settlement can be tested without sleeping.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// A channel's name in the ledger ("alipay", later "wechat_pay", "unionpay", "bank").
pub type Channel = &'static str;

/// What became of the money for a key, decided when the key is first seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Paid out at once.
    Paid,
    /// Refused at once; nothing moved.
    Refused,
    /// Accepted; at `at` it becomes `then`. Until then nothing counts as paid.
    Settles { at: Instant, then: Settled },
}

/// How an asynchronous payout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Paid,
    /// Refused after acceptance (a refund the channel declines, a bank's `RJCT`).
    Refused,
    /// Apparently paid, then returned by the destination (Alipay's `REFUND` status).
    Bounced,
}

/// The state of a key at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Paid,
    Refused,
    Pending,
    Bounced,
}

/// One idempotency key as the channel remembers it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub channel: Channel,
    pub key: String,
    /// Which operation created the key (e.g. "refund", "transfer"): a query for another
    /// operation does not see it.
    pub op: &'static str,
    /// Digest of the parameters a repeat must match (channel-defined; see [`fingerprint`]).
    pub fingerprint: String,
    /// The amount exactly as the caller sent it.
    pub amount: String,
    /// The channel's own reference for this payout (an order id, a trade number).
    pub reference: String,
    /// Wall-clock acceptance time as the channel prints it (display only).
    pub accepted_on: String,
    pub fate: Fate,
    /// How many times money was sent out under this key. The channel logic answers
    /// repeats from the record, so this stays at most 1; it is a counter, not a flag, so
    /// that a bug that pays a key twice shows up as `moves: 2` instead of being hidden.
    pub payouts: u32,
}

impl Entry {
    pub fn state(&self, now: Instant) -> State {
        match self.fate {
            Fate::Paid => State::Paid,
            Fate::Refused => State::Refused,
            Fate::Settles { at, .. } if now < at => State::Pending,
            Fate::Settles { then, .. } => match then {
                Settled::Paid => State::Paid,
                Settled::Refused => State::Refused,
                Settled::Bounced => State::Bounced,
            },
        }
    }

    /// Times money was paid out under this key and stayed paid.
    pub fn moves(&self, now: Instant) -> u32 {
        match self.state(now) {
            State::Paid => self.payouts,
            State::Refused | State::Pending | State::Bounced => 0,
        }
    }

    /// Whether a repeat with `fingerprint` is the same request.
    pub fn same_request(&self, op: &str, fingerprint: &str) -> bool {
        self.op == op && self.fingerprint == fingerprint
    }
}

/// A digest of the parameters that identify a request. Each part is length-prefixed, so
/// two different parameter lists never collide; only the digest is kept, so the ledger
/// never holds payee names or account numbers (nor can it print them).
pub fn fingerprint(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// One line of `GET /sim/ledger`. Only these four fields: the ledger never exposes payee
/// data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerLine {
    pub channel: String,
    pub key: String,
    pub amount: String,
    pub moves: u32,
}

/// All channels' records behind one lock.
#[derive(Debug, Default)]
pub struct Ledger {
    // A std Mutex: held only for in-memory work, never across an await.
    entries: Mutex<HashMap<(Channel, String), Entry>>,
    /// Records the channel forgot (a chaos fault): no longer found by queries or
    /// idempotency, but their money still moves and still counts in the view.
    forgotten: Mutex<Vec<Entry>>,
    /// Original-route refund deadlines by the top-up's channel transaction id, as the
    /// provider knows them (`POST /sim/windows`): a refund of it from then on is
    /// refused, as the real provider refuses it. Top-ups not listed: no deadline.
    windows: Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
}

/// The ledger, locked: look-up and insert happen under one lock, so two concurrent
/// requests with the same new key cannot both pay.
pub struct Book<'a> {
    entries: MutexGuard<'a, HashMap<(Channel, String), Entry>>,
    windows: &'a Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn lock(&self) -> Book<'_> {
        Book {
            // A panic elsewhere must not take the simulator down with it.
            entries: self.entries.lock().unwrap_or_else(|p| p.into_inner()),
            windows: &self.windows,
        }
    }

    /// Records original-route refund deadlines by channel transaction id.
    pub fn close_windows(
        &self,
        deadlines: impl IntoIterator<Item = (String, chrono::DateTime<chrono::Utc>)>,
    ) {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(deadlines);
    }

    fn forgotten(&self) -> MutexGuard<'_, Vec<Entry>> {
        self.forgotten.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `GET /sim/ledger` view, sorted by channel and key so it reads the same each
    /// time. A forgotten record and a new one under the same key are one line whose
    /// moves add up (a key paid again after the channel forgot it shows `moves: 2`).
    pub fn snapshot(&self, now: Instant) -> Vec<LedgerLine> {
        let book = self.lock();
        let forgotten = self.forgotten();
        let mut merged: HashMap<(Channel, &str), LedgerLine> = HashMap::new();
        for e in book.entries.values().chain(forgotten.iter()) {
            merged
                .entry((e.channel, e.key.as_str()))
                .and_modify(|l| l.moves += e.moves(now))
                .or_insert_with(|| LedgerLine {
                    channel: e.channel.to_owned(),
                    key: e.key.clone(),
                    amount: in_yuan(e.channel, &e.amount),
                    moves: e.moves(now),
                });
        }
        let mut lines: Vec<LedgerLine> = merged.into_values().collect();
        lines.sort_by(|a, b| (&a.channel, &a.key).cmp(&(&b.channel, &b.key)));
        lines
    }

    /// Forgets every record still pending at `now` (accepted, not settled): queries and
    /// repeats no longer find it, its money still moves when it settles. Returns how
    /// many were forgotten.
    pub fn forget_pending(&self, now: Instant) -> usize {
        self.forget_pending_of(None, now)
    }

    /// [`Ledger::forget_pending`], for the records under `only` of these keys (all
    /// channels) when given.
    pub fn forget_pending_of(&self, only: Option<&[String]>, now: Instant) -> usize {
        let mut book = self.lock();
        let keys: Vec<(Channel, String)> = book
            .entries
            .iter()
            .filter(|(_, e)| e.state(now) == State::Pending)
            .filter(|((_, key), _)| only.is_none_or(|keys| keys.contains(key)))
            .map(|(k, _)| k.clone())
            .collect();
        let mut forgotten = self.forgotten();
        for k in &keys {
            if let Some(e) = book.entries.remove(k) {
                forgotten.push(e);
            }
        }
        keys.len()
    }

    /// Remembers every forgotten record again whose key has no new record since (a
    /// resend that opened one stays as it is). Returns how many.
    pub fn remember_all(&self) -> usize {
        let mut book = self.lock();
        let mut forgotten = self.forgotten();
        let mut n = 0;
        forgotten.retain(|e| {
            let slot = (e.channel, e.key.clone());
            if book.entries.contains_key(&slot) {
                return true;
            }
            book.entries.insert(slot, e.clone());
            n += 1;
            false
        });
        n
    }

    /// Settles every pending record now, as if its settlement time had passed (the end
    /// of a chaos run: what would move later is counted). Returns how many.
    pub fn settle_all(&self, now: Instant) -> usize {
        let mut book = self.lock();
        let mut forgotten = self.forgotten();
        let mut n = 0;
        for e in book.entries.values_mut().chain(forgotten.iter_mut()) {
            if let Fate::Settles { at, then } = e.fate {
                if at > now {
                    e.fate = Fate::Settles { at: now, then };
                    n += 1;
                }
            }
        }
        n
    }
}

/// Channels whose wire (and so their records) count in fen.
const FEN_CHANNELS: [Channel; 2] = ["wechat_pay", "unionpay"];

/// The ledger view shows every amount the same way, in yuan with two places, so totals
/// add up across channels; a record keeps the amount exactly as its channel sent it.
fn in_yuan(channel: Channel, amount: &str) -> String {
    match amount.parse::<i64>() {
        Ok(fen) if FEN_CHANNELS.contains(&channel) => {
            format!("{}.{:02}", fen / 100, fen % 100)
        }
        _ => amount.to_owned(),
    }
}

impl Book<'_> {
    /// Whether a refund of the top-up `txn` is past its provider's refund window now.
    pub fn past_window(&self, txn: &str) -> bool {
        self.windows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(txn)
            .is_some_and(|deadline| chrono::Utc::now() >= *deadline)
    }

    pub fn get(&self, channel: Channel, key: &str) -> Option<&Entry> {
        self.entries.get(&(channel, key.to_owned()))
    }

    /// Records a key seen for the first time. Should the key exist already (a bug in a
    /// channel module), the new payout is added to the old record rather than replacing
    /// it, so the ledger still shows the double payout.
    pub fn open(&mut self, entry: Entry) -> &Entry {
        use std::collections::hash_map::Entry as Slot;
        match self.entries.entry((entry.channel, entry.key.clone())) {
            Slot::Occupied(slot) => {
                let existing = slot.into_mut();
                existing.payouts += entry.payouts;
                existing
            }
            Slot::Vacant(slot) => slot.insert(entry),
        }
    }
}

#[cfg(test)]
mod yuan_tests {
    use super::in_yuan;

    #[test]
    fn fen_channels_show_yuan() {
        assert_eq!(in_yuan("unionpay", "100000"), "1000.00");
        assert_eq!(in_yuan("wechat_pay", "5"), "0.05");
        assert_eq!(in_yuan("alipay", "12.30"), "12.30");
        assert_eq!(in_yuan("bank", "7.00"), "7.00");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(key: &str, fate: Fate, payouts: u32) -> Entry {
        Entry {
            channel: "alipay",
            key: key.into(),
            op: "refund",
            fingerprint: fingerprint(&["T1", "10.00"]),
            amount: "10.00".into(),
            reference: "T1".into(),
            accepted_on: "2026-01-01 00:00:00".into(),
            fate,
            payouts,
        }
    }

    #[test]
    fn settlement_follows_the_clock() {
        let t0 = Instant::now();
        let at = t0 + Duration::from_millis(300);
        let bounced = entry(
            "k",
            Fate::Settles {
                at,
                then: Settled::Bounced,
            },
            1,
        );
        assert_eq!(bounced.state(t0), State::Pending);
        assert_eq!(bounced.moves(t0), 0);
        assert_eq!(bounced.state(at), State::Bounced);
        assert_eq!(bounced.moves(at), 0);
        let paid_later = entry(
            "k",
            Fate::Settles {
                at,
                then: Settled::Paid,
            },
            1,
        );
        assert_eq!(paid_later.moves(t0), 0);
        assert_eq!(paid_later.moves(at), 1);
    }

    #[test]
    fn a_second_open_of_a_key_is_counted_not_hidden() {
        let ledger = Ledger::new();
        ledger.lock().open(entry("k", Fate::Paid, 1));
        ledger.lock().open(entry("k", Fate::Paid, 1));
        assert_eq!(ledger.snapshot(Instant::now())[0].moves, 2);
    }

    #[test]
    fn a_forgotten_key_paid_again_shows_two_moves_and_settle_all_counts_pending() {
        let ledger = Ledger::new();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(60);
        let slow = Fate::Settles {
            at: later,
            then: Settled::Paid,
        };
        ledger.lock().open(entry("k", slow, 1));
        ledger.lock().open(entry("done", Fate::Paid, 1));
        assert_eq!(ledger.forget_pending_of(Some(&["other".to_owned()]), t0), 0);
        assert_eq!(ledger.forget_pending(t0), 1);
        assert!(ledger.lock().get("alipay", "k").is_none());
        assert!(ledger.lock().get("alipay", "done").is_some());
        // Paid again under the same key: a new record.
        ledger.lock().open(entry("k", Fate::Paid, 1));
        let moves = |l: &Ledger, now| {
            l.snapshot(now)
                .into_iter()
                .find(|x| x.key == "k")
                .unwrap()
                .moves
        };
        assert_eq!(moves(&ledger, t0), 1);
        assert_eq!(moves(&ledger, later), 2);
        assert_eq!(ledger.settle_all(t0), 1);
        assert_eq!(moves(&ledger, t0), 2);
        assert_eq!(ledger.snapshot(t0).len(), 2);
    }

    #[test]
    fn refund_windows_close_at_their_deadline() {
        let ledger = Ledger::new();
        let now = chrono::Utc::now();
        ledger.close_windows([
            ("T-closed".to_owned(), now - chrono::Duration::seconds(1)),
            ("T-open".to_owned(), now + chrono::Duration::hours(1)),
        ]);
        let book = ledger.lock();
        assert!(book.past_window("T-closed"));
        assert!(!book.past_window("T-open"));
        assert!(!book.past_window("T-unknown"));
    }

    #[test]
    fn ledger_json_has_exactly_the_contract_fields() {
        let ledger = Ledger::new();
        let now = Instant::now();
        ledger.lock().open(entry("b", Fate::Paid, 1));
        ledger.lock().open(entry("a", Fate::Refused, 0));
        let json = serde_json::to_value(ledger.snapshot(now)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"channel": "alipay", "key": "a", "amount": "10.00", "moves": 0},
                {"channel": "alipay", "key": "b", "amount": "10.00", "moves": 1},
            ])
        );
    }

    #[test]
    fn fingerprints_of_different_lists_differ() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert!(entry("k", Fate::Paid, 1).same_request("refund", &fingerprint(&["T1", "10.00"])));
        assert!(!entry("k", Fate::Paid, 1).same_request("transfer", &fingerprint(&["T1", "10.00"])));
    }
}
