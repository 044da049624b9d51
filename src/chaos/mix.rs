//! The seeded mix of commands a chaos run publishes, and what each one must come to.
//!
//! Pure: the seed, the count, the publishing window and the clock give the same
//! commands in the same order at the same offsets. The mix covers every channel and
//! route (Alipay refunds and transfers, WeChat Pay and UnionPay refunds, bank cards and
//! online-banking refunds), multi-leg withdrawals, refusals chosen through the
//! simulator's `0000` / `0001` suffixes (CONTRACT.md §7), top-ups past their refund
//! window with and without a fallback card, payees who are not the verified owner,
//! exact duplicates (the same bytes published again) and bad inputs that must be
//! dead-lettered. Refund windows assume the contract's defaults (`config/default.toml`):
//! dates are chosen far from every boundary.

use super::invariants::{BadInput, BadKind, Expect, ExpectedLeg, ExpectedWithdrawal};
use crate::domain::{ChannelKind, IdempotencyKey, LegId, WithdrawalId};
use crate::routing::Rules;
use crate::sim::bank::payments::{SLOW_SUFFIX, STUCK_SUFFIX};
use chrono::{DateTime, Duration as Days, Months, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The verified owner every withdrawal names.
const OWNER: &str = "Zhang San";

/// How a message is signed when published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// With the configured publish key, as upstream billing does.
    Signed,
    /// No signature headers at all.
    Unsigned,
    /// Signature headers computed with a wrong secret.
    Forged,
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Offset from the start of publishing.
    pub at: Duration,
    pub withdrawal_id: String,
    pub body: Vec<u8>,
    pub signing: Signing,
    /// The same bytes as an earlier message.
    pub duplicate: bool,
}

/// Everything published, and what it must come to.
#[derive(Debug, Clone)]
pub struct Mix {
    /// Sorted by `at`.
    pub messages: Vec<Outgoing>,
    pub authentic: Vec<ExpectedWithdrawal>,
    pub bad: Vec<BadInput>,
    /// How many of each design (for the report).
    pub designs: BTreeMap<&'static str, usize>,
    /// The `window_closing` top-ups' refund deadlines by channel transaction id: the
    /// simulator refuses their refunds from then on, as the providers do.
    pub windows: BTreeMap<String, DateTime<Utc>>,
}

/// The channel and route of one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegKind {
    AlipayRefund,
    AlipayTransfer,
    WechatRefund,
    UnionpayRefund,
    BankCard,
    BankRefund,
}

const LEG_KINDS: [LegKind; 6] = [
    LegKind::AlipayRefund,
    LegKind::AlipayTransfer,
    LegKind::WechatRefund,
    LegKind::UnionpayRefund,
    LegKind::BankCard,
    LegKind::BankRefund,
];

impl LegKind {
    fn name(self) -> &'static str {
        match self {
            LegKind::AlipayRefund => "alipay_refund",
            LegKind::AlipayTransfer => "alipay_transfer",
            LegKind::WechatRefund => "wechat_pay_refund",
            LegKind::UnionpayRefund => "unionpay_refund",
            LegKind::BankCard => "bank_card",
            LegKind::BankRefund => "bank_refund",
        }
    }

    fn channel(self) -> &'static str {
        match self {
            LegKind::AlipayRefund | LegKind::AlipayTransfer => "alipay",
            LegKind::WechatRefund => "wechat_pay",
            LegKind::UnionpayRefund => "unionpay",
            LegKind::BankCard | LegKind::BankRefund => "bank",
        }
    }

    fn is_refund(self) -> bool {
        !matches!(self, LegKind::AlipayTransfer | LegKind::BankCard)
    }
}

/// What a leg is designed to come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Twist {
    /// Paid along its own route.
    None,
    /// Source or payee ending in `0000`: refused at once.
    Refused0000,
    /// Ending in `0001`: refused after apparent acceptance (bounce, late rejection).
    Refused0001,
    /// A top-up past its window, with a fallback card: paid to the card by the bank.
    ExpiredFallback,
    /// Past its window, no fallback: `original_route_expired`, no channel call.
    ExpiredNoFallback,
    /// A payee who is not the verified owner: `payee_name_mismatch`, no channel call.
    NameMismatch,
    /// A bank account ending in `0002`: accepted, settles only after the simulator's
    /// slow settlement (paid in the end).
    Slow,
    /// A bank account ending in `0003`: the gateway is unavailable for it for good.
    Stuck,
}

/// A withdrawal design and its weight in the mix.
const DESIGNS: [(&str, u32); 12] = [
    ("alipay_refund", 10),
    ("alipay_transfer", 10),
    ("wechat_pay_refund", 10),
    ("unionpay_refund", 10),
    ("bank_card", 10),
    ("bank_refund", 8),
    ("multi_leg", 15),
    ("refused_0000", 6),
    ("refused_0001", 6),
    ("expired_fallback", 5),
    ("expired_no_fallback", 5),
    ("name_mismatch", 3),
];

/// Designs that only some runs get (their fault kinds turn them on), and their weights.
const EXTRA_DESIGNS: [(&str, u32); 4] = [
    ("window_closing", 10),
    ("age_limit", 8),
    ("slow_bank", 6),
    ("stuck_unknown", 2),
];

/// Which of the [`EXTRA_DESIGNS`] a run gets, and the settings they are shaped by.
#[derive(Debug, Clone)]
pub struct Extras {
    /// Names from [`EXTRA_DESIGNS`].
    pub designs: Vec<&'static str>,
    /// The workers' refund windows: a `window_closing` top-up's `paid_at` is chosen so
    /// that its deadline falls a few seconds after it is published.
    pub rules: Rules,
    /// The workers' `limits.max_age_secs`: an `age_limit` withdrawal's `approved_at` is
    /// chosen so that it ages past it a few seconds after it is published.
    pub max_age_secs: u64,
}

impl Extras {
    #[cfg(test)]
    pub fn none() -> Self {
        Self {
            designs: Vec::new(),
            rules: Rules::from_settings(&crate::config::Settings::defaults().rules),
            max_age_secs: 86_400,
        }
    }
}

/// Copies of a `stuck_unknown` command published after the first (so that copies wait
/// on each other's lease), and their lags.
const STUCK_COPY_LAGS_MS: [u64; 2] = [300, 800];

/// Share of authentic withdrawals published a second time.
const DUPLICATE_SHARE: f64 = 0.10;
/// A duplicate follows its original by up to this much (0: at once, racing it).
const DUPLICATE_LAG_MS: u64 = 8000;

struct Builder {
    rng: ChaCha8Rng,
    now: DateTime<Utc>,
    extras: Extras,
    /// The `approved_at` of the command being built, when not `now`.
    approved_at: Option<DateTime<Utc>>,
    windows: BTreeMap<String, DateTime<Utc>>,
}

/// Builds the mix: `count` distinct commands (bad inputs included), spread evenly over
/// `window` in a seeded order, duplicates on top.
#[cfg(test)]
pub fn build(seed: u64, count: usize, window: Duration, now: DateTime<Utc>) -> Mix {
    build_with(seed, count, window, now, Extras::none())
}

/// [`build`] with the extra designs of `extras`. Those are published at a seeded
/// offset of their own (their times are part of their design: a deadline or an age
/// limit a few seconds after publishing), within the first 80% of `window`.
pub fn build_with(
    seed: u64,
    count: usize,
    window: Duration,
    now: DateTime<Utc>,
    extras: Extras,
) -> Mix {
    let mut b = Builder {
        rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6d69_785f_6d69_7821),
        now,
        extras,
        approved_at: None,
        windows: BTreeMap::new(),
    };
    let mut pinned: Vec<Outgoing> = Vec::new();
    let bad_count = (count / 20).max(BadKind::ALL.len()).min(count / 2);
    let authentic_count = count - bad_count;
    let mut designs: BTreeMap<&'static str, usize> = BTreeMap::new();
    // (id, body, signing, authentic)
    let mut originals: Vec<(String, Vec<u8>, Signing, bool)> = Vec::with_capacity(count);
    let mut authentic = Vec::with_capacity(authentic_count);
    for i in 0..authentic_count {
        let id = format!("c{seed}-w{i:06}");
        let design = b.pick_design();
        *designs.entry(design).or_default() += 1;
        if EXTRA_DESIGNS.iter().any(|(d, _)| *d == design) {
            let at = window.mul_f64(b.rng.random_range(0.0..0.8));
            let (body, expected) = b.extra(&id, design, at);
            let copies: &[u64] = if design == "stuck_unknown" {
                &STUCK_COPY_LAGS_MS
            } else {
                &[]
            };
            for lag in copies {
                pinned.push(Outgoing {
                    at: at + Duration::from_millis(*lag),
                    withdrawal_id: id.clone(),
                    body: body.clone(),
                    signing: Signing::Signed,
                    duplicate: true,
                });
            }
            pinned.push(Outgoing {
                at,
                withdrawal_id: id,
                body,
                signing: Signing::Signed,
                duplicate: false,
            });
            authentic.push(expected);
            continue;
        }
        let (body, expected) = b.authentic(&id, design);
        originals.push((id, body, Signing::Signed, true));
        authentic.push(expected);
    }
    let mut bad_kinds: Vec<BadKind> = (0..bad_count)
        .map(|i| BadKind::ALL[i % BadKind::ALL.len()])
        .collect();
    bad_kinds.shuffle(&mut b.rng);
    let mut bad = Vec::with_capacity(bad_count);
    for (i, kind) in bad_kinds.into_iter().enumerate() {
        let id = format!("c{seed}-x{i:06}");
        *designs.entry(kind.name()).or_default() += 1;
        let (body, signing, keys) = b.bad(&id, kind);
        originals.push((id.clone(), body, signing, false));
        bad.push(BadInput {
            withdrawal_id: id,
            kind,
            keys,
        });
    }
    originals.shuffle(&mut b.rng);
    let step = window.as_secs_f64() / originals.len().max(1) as f64;
    let mut messages = Vec::with_capacity(originals.len() * 11 / 10 + pinned.len());
    messages.append(&mut pinned);
    for (i, (id, body, signing, is_authentic)) in originals.into_iter().enumerate() {
        let at = Duration::from_secs_f64(step * i as f64);
        if is_authentic && b.rng.random_bool(DUPLICATE_SHARE) {
            let lag = Duration::from_millis(b.rng.random_range(0..=DUPLICATE_LAG_MS));
            *designs.entry("duplicate").or_default() += 1;
            messages.push(Outgoing {
                at: at + lag,
                withdrawal_id: id.clone(),
                body: body.clone(),
                signing,
                duplicate: true,
            });
        }
        messages.push(Outgoing {
            at,
            withdrawal_id: id,
            body,
            signing,
            duplicate: false,
        });
    }
    // Stable: an original comes before a duplicate published at the same offset.
    messages.sort_by_key(|m| (m.at, m.duplicate));
    Mix {
        messages,
        authentic,
        bad,
        designs,
        windows: b.windows,
    }
}

fn key(withdrawal: &str, leg: &str) -> String {
    IdempotencyKey::for_leg(
        &WithdrawalId::parse(withdrawal).expect("mix ids follow the contract"),
        &LegId::parse(leg).expect("mix leg ids follow the contract"),
    )
    .as_str()
    .to_owned()
}

fn yuan(d: Decimal) -> String {
    format!("{d:.2}")
}

impl Builder {
    fn pick_design(&mut self) -> &'static str {
        let extras: Vec<(&'static str, u32)> = EXTRA_DESIGNS
            .into_iter()
            .filter(|(d, _)| self.extras.designs.contains(d))
            .collect();
        let all: Vec<(&'static str, u32)> = DESIGNS.into_iter().chain(extras).collect();
        let total: u32 = all.iter().map(|(_, w)| w).sum();
        let mut roll = self.rng.random_range(0..total);
        for (name, weight) in all {
            if roll < weight {
                return name;
            }
            roll -= weight;
        }
        unreachable!("the roll is below the total weight")
    }

    fn amount(&mut self) -> Decimal {
        Decimal::new(self.rng.random_range(100..=200_000), 2)
    }

    /// Four digits that never read as a refusal suffix.
    fn tail(&mut self) -> String {
        self.rng.random_range(1000..=9999).to_string()
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.rng.random_range(0..10u8)))
            .collect()
    }

    fn days_ago(&mut self, range: std::ops::RangeInclusive<i64>) -> String {
        let days = self.rng.random_range(range);
        (self.now - Days::days(days)).to_rfc3339()
    }

    fn card(&mut self, tail: &str) -> String {
        format!("6222{}{tail}", self.digits(11))
    }

    fn any_leg_kind(&mut self) -> LegKind {
        LEG_KINDS[self.rng.random_range(0..LEG_KINDS.len())]
    }

    fn refund_kind(&mut self) -> LegKind {
        const REFUNDS: [LegKind; 4] = [
            LegKind::AlipayRefund,
            LegKind::WechatRefund,
            LegKind::UnionpayRefund,
            LegKind::BankRefund,
        ];
        REFUNDS[self.rng.random_range(0..REFUNDS.len())]
    }

    fn authentic(&mut self, id: &str, design: &'static str) -> (Vec<u8>, ExpectedWithdrawal) {
        let mut legs: Vec<(LegKind, Twist)> = Vec::new();
        match design {
            "multi_leg" => {
                for _ in 0..self.rng.random_range(2..=4) {
                    let kind = self.any_leg_kind();
                    let roll = self.rng.random_range(0..100);
                    let twist = match roll {
                        0..=4 => Twist::Refused0000,
                        5..=9 => Twist::Refused0001,
                        10..=13 if kind.is_refund() => Twist::ExpiredFallback,
                        _ => Twist::None,
                    };
                    legs.push((kind, twist));
                }
            }
            "refused_0000" | "refused_0001" => {
                let twist = if design == "refused_0000" {
                    Twist::Refused0000
                } else {
                    Twist::Refused0001
                };
                let kind = self.any_leg_kind();
                legs.push((kind, twist));
            }
            "expired_fallback" => {
                let kind = self.refund_kind();
                legs.push((kind, Twist::ExpiredFallback));
            }
            "expired_no_fallback" => {
                let kind = self.refund_kind();
                legs.push((kind, Twist::ExpiredNoFallback));
            }
            "name_mismatch" => {
                let kind = if self.rng.random_bool(0.5) {
                    LegKind::AlipayTransfer
                } else {
                    LegKind::BankCard
                };
                legs.push((kind, Twist::NameMismatch));
            }
            single => {
                let kind = LEG_KINDS
                    .into_iter()
                    .find(|k| k.name() == single)
                    .expect("every single-leg design names a leg kind");
                legs.push((kind, Twist::None));
            }
        }
        let built: Vec<(Value, Decimal, Expect)> = legs
            .into_iter()
            .enumerate()
            .map(|(n, (kind, twist))| {
                let amount = self.amount();
                let (value, expect) = self.leg(id, &(n + 1).to_string(), kind, twist, amount);
                (value, amount, expect)
            })
            .collect();
        self.assemble(id, built)
    }

    /// The command carrying these legs (numbered from 1, in order), and what each is
    /// designed to come to.
    fn assemble(
        &mut self,
        id: &str,
        legs: Vec<(Value, Decimal, Expect)>,
    ) -> (Vec<u8>, ExpectedWithdrawal) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (n, (value, amount, expect)) in legs.into_iter().enumerate() {
            let leg_id = (n + 1).to_string();
            wire.push(value);
            expected.push(ExpectedLeg {
                key: key(id, &leg_id),
                leg_id,
                amount,
                expect,
            });
        }
        let total: Decimal = expected.iter().map(|l| l.amount).sum();
        let body = self.command(id, yuan(total), json!(wire), 1);
        (
            body,
            ExpectedWithdrawal {
                id: id.to_owned(),
                amount: total,
                legs: expected,
            },
        )
    }

    /// One of the [`EXTRA_DESIGNS`], published at `at`:
    /// - `window_closing`: an Alipay, WeChat Pay or UnionPay refund whose original-route
    ///   window closes 3–10 s after publishing (half of them with a fallback card), and
    ///   a slow bank leg that keeps the withdrawal in flight past the deadline, so a
    ///   Redis wipe in between makes the worker plan the refund again;
    /// - `age_limit`: approved so that it ages past `max_age_secs` 3–8 s after
    ///   publishing, with a slow bank leg (and sometimes an Alipay transfer): a Redis
    ///   wipe while the bank settles must not turn it into a limit review;
    /// - `slow_bank`: one slow bank leg (in flight for the operator and for
    ///   `forget_keys`);
    /// - `stuck_unknown`: one bank leg the gateway never answers; three copies.
    fn extra(
        &mut self,
        id: &str,
        design: &'static str,
        at: Duration,
    ) -> (Vec<u8>, ExpectedWithdrawal) {
        let publish = self.now + Days::milliseconds(at.as_millis() as i64);
        let mut legs: Vec<(Value, Decimal, Expect)> = Vec::new();
        fn add(
            b: &mut Builder,
            legs: &mut Vec<(Value, Decimal, Expect)>,
            id: &str,
            kind: LegKind,
            twist: Twist,
        ) {
            let leg_id = (legs.len() + 1).to_string();
            let amount = b.amount();
            let (value, expect) = b.leg(id, &leg_id, kind, twist, amount);
            legs.push((value, amount, expect));
        }
        match design {
            "window_closing" => {
                const KINDS: [(LegKind, ChannelKind); 3] = [
                    (LegKind::AlipayRefund, ChannelKind::Alipay),
                    (LegKind::WechatRefund, ChannelKind::WechatPay),
                    (LegKind::UnionpayRefund, ChannelKind::Unionpay),
                ];
                let (kind, channel) = KINDS[self.rng.random_range(0..KINDS.len())];
                let fallback = self.rng.random_bool(0.5);
                let deadline = publish + Days::milliseconds(self.rng.random_range(3000..=10_000));
                let paid_at = self.paid_at_for(channel, deadline);
                add(self, &mut legs, id, kind, Twist::None);
                let first = &mut legs[0];
                first.0["source"]["paid_at"] = json!(paid_at.to_rfc3339());
                if let (Some(txn), Some(closes)) = (
                    first.0["source"]["channel_txn_id"].as_str(),
                    self.extras.rules.deadline(channel, None, paid_at),
                ) {
                    self.windows.insert(txn.to_owned(), closes);
                }
                if fallback {
                    let fallback_tail = self.tail();
                    first.0["fallback_payee"] = json!({"kind": "bank_card", "name": OWNER,
                        "account_no": self.card(&fallback_tail), "bank_name": "ICBC",
                        "branch": "Hangzhou Xihu Sub-branch"});
                }
                first.2 = Expect::WindowClosing {
                    channel: kind.channel(),
                    fallback,
                };
                add(self, &mut legs, id, LegKind::BankCard, Twist::Slow);
            }
            "age_limit" => {
                let ages_at = publish + Days::milliseconds(self.rng.random_range(3000..=8000));
                self.approved_at = Some(ages_at - Days::seconds(self.extras.max_age_secs as i64));
                add(self, &mut legs, id, LegKind::BankCard, Twist::Slow);
                if self.rng.random_bool(0.5) {
                    add(self, &mut legs, id, LegKind::AlipayTransfer, Twist::None);
                }
            }
            "slow_bank" => add(self, &mut legs, id, LegKind::BankCard, Twist::Slow),
            "stuck_unknown" => add(self, &mut legs, id, LegKind::BankCard, Twist::Stuck),
            other => unreachable!("{other} is not an extra design"),
        }
        let assembled = self.assemble(id, legs);
        self.approved_at = None;
        assembled
    }

    /// A `paid_at` whose original-route deadline under the run's rules is `deadline`
    /// (calendar months: checked against the rules themselves).
    fn paid_at_for(&self, channel: ChannelKind, deadline: DateTime<Utc>) -> DateTime<Utc> {
        // The rules' window in months, found by asking them.
        for months in 1..=24u32 {
            let Some(paid_at) = deadline.checked_sub_months(Months::new(months)) else {
                break;
            };
            if self.extras.rules.deadline(channel, None, paid_at) == Some(deadline) {
                return paid_at;
            }
        }
        // Month-end clamping made no exact month fit: take the closest earlier day.
        (1..=3)
            .filter_map(|extra| {
                (1..=24u32).find_map(|months| {
                    let paid_at =
                        deadline.checked_sub_months(Months::new(months))? + Days::days(extra);
                    (self.extras.rules.deadline(channel, None, paid_at) == Some(deadline))
                        .then_some(paid_at)
                })
            })
            .next()
            .unwrap_or(deadline - Days::days(300))
    }

    fn command(
        &mut self,
        id: &str,
        amount: impl Into<Value>,
        legs: Value,
        version: u64,
    ) -> Vec<u8> {
        let account = self.rng.random_range(1..=500);
        let approved_at = self.approved_at.unwrap_or(self.now);
        json!({
            "type": "withdrawal.approved", "version": version, "withdrawal_id": id,
            "account_id": format!("acct-{account}"), "verified_name": OWNER,
            "currency": "CNY", "amount": amount.into(),
            "approved_at": approved_at.to_rfc3339(), "legs": legs,
        })
        .to_string()
        .into_bytes()
    }

    fn leg(
        &mut self,
        id: &str,
        leg_id: &str,
        kind: LegKind,
        twist: Twist,
        amount: Decimal,
    ) -> (Value, Expect) {
        let tail = match twist {
            Twist::Refused0000 => "0000".to_owned(),
            Twist::Refused0001 => "0001".to_owned(),
            Twist::Slow => SLOW_SUFFIX.to_owned(),
            Twist::Stuck => STUCK_SUFFIX.to_owned(),
            _ => self.tail(),
        };
        let expired = matches!(twist, Twist::ExpiredFallback | Twist::ExpiredNoFallback);
        let name = if twist == Twist::NameMismatch {
            "Li Si"
        } else {
            OWNER
        };
        let mut leg = json!({"leg_id": leg_id, "amount": yuan(amount), "channel": kind.channel()});
        if kind.is_refund() {
            // Inside the window: far from it; past it: well past it.
            let (txn, paid_at, bank) = match kind {
                LegKind::AlipayRefund => (
                    format!("2026{}{tail}", self.digits(12)),
                    if expired {
                        self.days_ago(380..=600)
                    } else {
                        self.days_ago(3..=300)
                    },
                    None,
                ),
                LegKind::WechatRefund => (
                    format!("4200{}{tail}", self.digits(20)),
                    if expired {
                        self.days_ago(380..=600)
                    } else {
                        self.days_ago(3..=300)
                    },
                    None,
                ),
                LegKind::UnionpayRefund => (
                    format!("{}{tail}", self.digits(17)),
                    if expired {
                        self.days_ago(100..=300)
                    } else {
                        self.days_ago(3..=60)
                    },
                    None,
                ),
                _ => {
                    let (bank, inside, past) = [
                        ("ICBC", 3..=20, 45..=120),
                        ("China Merchants Bank", 3..=80, 100..=170),
                        ("Ping An Bank", 3..=170, 200..=400),
                    ][self.rng.random_range(0..3)]
                    .clone();
                    (
                        format!("B{}{tail}", self.digits(12)),
                        if expired {
                            self.days_ago(past)
                        } else {
                            self.days_ago(inside)
                        },
                        Some(bank),
                    )
                }
            };
            let mut source = json!({"topup_id": format!("tp-{id}-{leg_id}"),
                                    "channel_txn_id": txn, "paid_at": paid_at});
            if let Some(bank) = bank {
                source["bank"] = json!(bank);
            }
            leg["route"] = json!("original");
            leg["source"] = source;
            if twist == Twist::ExpiredFallback {
                let fallback_tail = self.tail();
                leg["fallback_payee"] = json!({"kind": "bank_card", "name": OWNER,
                    "account_no": self.card(&fallback_tail), "bank_name": "ICBC",
                    "branch": "Hangzhou Xihu Sub-branch"});
            }
        } else {
            let payee = if kind == LegKind::AlipayTransfer {
                let account = if tail.starts_with("000") || self.rng.random_bool(0.5) {
                    format!("1380013{tail}")
                } else {
                    format!("zs{}@example.com", self.digits(6))
                };
                json!({"kind": "alipay", "name": name, "account_no": account})
            } else {
                json!({"kind": "bank_card", "name": name, "account_no": self.card(&tail),
                       "bank_name": "China Construction Bank", "branch": "Beijing Branch"})
            };
            leg["route"] = json!("designated");
            leg["payee"] = payee;
        }
        let route = if kind.is_refund() {
            "original"
        } else {
            "designated"
        };
        let expect = match twist {
            Twist::None | Twist::Slow => Expect::Paid {
                channel: kind.channel(),
                route,
            },
            Twist::Refused0000 | Twist::Refused0001 => Expect::Refused { code: None },
            Twist::ExpiredFallback => Expect::Paid {
                channel: "bank",
                route: "fallback",
            },
            Twist::ExpiredNoFallback => Expect::Refused {
                code: Some("original_route_expired"),
            },
            Twist::NameMismatch => Expect::Refused {
                code: Some("payee_name_mismatch"),
            },
            Twist::Stuck => Expect::Unresolved,
        };
        (leg, expect)
    }

    /// A bad input: its body, how it is signed, and the keys of the legs it names.
    fn bad(&mut self, id: &str, kind: BadKind) -> (Vec<u8>, Signing, Vec<String>) {
        let transfer = |leg_id: &str, amount: &str| {
            json!({"leg_id": leg_id, "amount": amount, "route": "designated", "channel": "alipay",
                   "payee": {"kind": "alipay", "name": OWNER, "account_no": "zs-chaos@example.com"}})
        };
        let one = || json!([transfer("1", "12.50")]);
        let (body, signing, legs) = match kind {
            BadKind::NotJson => (
                format!("{{\"withdrawal_id\": \"{id}\", \"amount\": 12.50 this is not JSON")
                    .into_bytes(),
                Signing::Signed,
                vec![],
            ),
            BadKind::WrongTypes => (
                self.command(id, json!(12.5), one(), 1),
                Signing::Signed,
                vec!["1"],
            ),
            BadKind::ThreeDecimals => (
                self.command(id, "12.505", json!([transfer("1", "12.505")]), 1),
                Signing::Signed,
                vec!["1"],
            ),
            BadKind::LegsNotAddingUp => (
                self.command(
                    id,
                    "30.00",
                    json!([transfer("1", "10.00"), transfer("2", "15.00")]),
                    1,
                ),
                Signing::Signed,
                vec!["1", "2"],
            ),
            BadKind::UnsupportedVersion => (
                self.command(id, "12.50", one(), 2),
                Signing::Signed,
                vec!["1"],
            ),
            BadKind::Unsigned => (
                self.command(id, "12.50", one(), 1),
                Signing::Unsigned,
                vec!["1"],
            ),
            BadKind::Forged => (
                self.command(id, "12.50", one(), 1),
                Signing::Forged,
                vec!["1"],
            ),
        };
        (
            body,
            signing,
            legs.into_iter().map(|l| key(id, l)).collect(),
        )
    }
}

#[cfg(test)]
mod tests;
