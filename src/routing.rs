//! The business rules of CONTRACT.md §3 that decide, before any channel call, where a
//! leg's money goes: the original route while its refund window is open, else the
//! fallback bank card, else a failure the user can act on; and only ever to the verified
//! owner. Pure functions over the command, the configured windows and a clock reading.

use crate::channels::{PayoutOrder, Target};
use crate::config::RulesSettings;
use crate::domain::{ChannelKind, IdempotencyKey, Leg, Payee, Route, Withdrawal};
use chrono::{DateTime, Days, Months, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Which way a leg is actually paid; stored with the leg so a later attempt never
/// switches route after money may have moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteTaken {
    Original,
    Fallback,
    Designated,
}

impl RouteTaken {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Original => "original",
            Self::Fallback => "fallback",
            Self::Designated => "designated",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Pay(RouteTaken),
    Refuse { code: &'static str, reason: String },
}

#[derive(Debug, Clone)]
pub struct Rules {
    alipay_months: u32,
    wechat_months: u32,
    unionpay_months: u32,
    bank_days: u32,
    /// Lower-cased bank name → window in days.
    bank_days_by_bank: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Window {
    Months(u32),
    Days(u32),
}

impl Rules {
    pub fn from_settings(s: &RulesSettings) -> Self {
        Self {
            alipay_months: s.alipay_window_months,
            wechat_months: s.wechat_pay_window_months,
            unionpay_months: s.unionpay_window_months,
            bank_days: s.bank_window_days,
            bank_days_by_bank: s
                .bank_window_days_by_bank
                .iter()
                .map(|(k, v)| (k.to_lowercase(), *v))
                .collect(),
        }
    }

    fn window(&self, channel: ChannelKind, bank: Option<&str>) -> Window {
        match channel {
            ChannelKind::Alipay => Window::Months(self.alipay_months),
            ChannelKind::WechatPay => Window::Months(self.wechat_months),
            ChannelKind::Unionpay => Window::Months(self.unionpay_months),
            ChannelKind::Bank => Window::Days(
                bank.and_then(|b| self.bank_days_by_bank.get(&b.to_lowercase()).copied())
                    .unwrap_or(self.bank_days),
            ),
        }
    }

    /// The last instant (exclusive) a top-up paid at `paid_at` can be refunded to its
    /// original route. Month arithmetic is calendar arithmetic: 31 Jan + 1 month is the
    /// end of February.
    pub fn deadline(
        &self,
        channel: ChannelKind,
        bank: Option<&str>,
        paid_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self.window(channel, bank) {
            Window::Months(m) => paid_at.checked_add_months(Months::new(m)),
            Window::Days(d) => paid_at.checked_add_days(Days::new(u64::from(d))),
        }
    }

    /// Decides how `leg` is paid. The plan is a function of the command alone: the
    /// windows are judged at the withdrawal's `approved_at`, never at the worker's
    /// clock, so a re-plan after any loss of state (Redis emptied, a record expired)
    /// gives the same route, the same channel and the same key as the first plan did.
    /// Judged by the clock, a refund window that closed between a send and a re-plan
    /// would move the leg to the fallback card and pay it a second time, or refuse it
    /// and release money the first channel had paid. A refund sent after its window
    /// closed is refused by the channel itself, definitively: then it fails and the
    /// funds are released, correctly, since nothing moved.
    pub fn plan_for(&self, w: &Withdrawal, leg: &Leg) -> Plan {
        // Deliberately broken build (the old behaviour, for the chaos suite's own tests).
        #[cfg(feature = "broken-replan-with-clock")]
        return self.plan(w, leg, Utc::now());
        #[cfg(not(feature = "broken-replan-with-clock"))]
        self.plan(w, leg, w.approved_at)
    }

    /// Decides how `leg` is paid, judging the refund windows at `at`.
    pub fn plan(&self, w: &Withdrawal, leg: &Leg, at: DateTime<Utc>) -> Plan {
        match &leg.route {
            Route::Designated { payee } => check_owner(w, payee, RouteTaken::Designated),
            Route::Original {
                source,
                fallback_payee,
            } => {
                let open = self
                    .deadline(leg.channel, source.bank.as_deref(), source.paid_at)
                    .is_some_and(|deadline| at < deadline);
                match (open, fallback_payee) {
                    (true, _) => Plan::Pay(RouteTaken::Original),
                    (false, Some(payee)) => check_owner(w, payee, RouteTaken::Fallback),
                    (false, None) => Plan::Refuse {
                        code: "original_route_expired",
                        reason: format!(
                            "the {} top-up {} is past its original-route refund window and no fallback account was given; supply a designated account",
                            leg.channel, source.topup_id
                        ),
                    },
                }
            }
        }
    }
}

fn check_owner(w: &Withdrawal, payee: &Payee, route: RouteTaken) -> Plan {
    if payee.name == w.verified_name {
        Plan::Pay(route)
    } else {
        Plan::Refuse {
            code: "payee_name_mismatch",
            reason: "the payee's name is not the account's verified name".into(),
        }
    }
}

/// Every route `leg` could have been paid along, whatever a plan said: the original
/// route and the fallback card for a refund that has one, the designated payee
/// otherwise. A leg whose record is missing is asked about on all of them before it is
/// planned and sent (they share one idempotency key).
pub fn possible_routes(leg: &Leg) -> Vec<RouteTaken> {
    match &leg.route {
        Route::Designated { .. } => vec![RouteTaken::Designated],
        Route::Original {
            fallback_payee: Some(_),
            ..
        } => vec![RouteTaken::Original, RouteTaken::Fallback],
        Route::Original { .. } => vec![RouteTaken::Original],
    }
}

/// The channel order for a leg paid along `route`. `None` when the route does not fit
/// the leg (a stored route from a different command: never pay then).
pub fn order_for(w: &Withdrawal, leg: &Leg, route: RouteTaken) -> Option<PayoutOrder> {
    let (channel, target) = match (&leg.route, route) {
        (Route::Original { source, .. }, RouteTaken::Original) => (
            leg.channel,
            Target::Refund {
                channel_txn_id: source.channel_txn_id.clone(),
                bank: source.bank.clone(),
            },
        ),
        (
            Route::Original {
                fallback_payee: Some(payee),
                ..
            },
            RouteTaken::Fallback,
        ) => (ChannelKind::Bank, Target::Account(payee.clone())),
        (Route::Designated { payee }, RouteTaken::Designated) => {
            (leg.channel, Target::Account(payee.clone()))
        }
        _ => return None,
    };
    Some(PayoutOrder {
        key: IdempotencyKey::for_leg(&w.id, &leg.id),
        channel,
        amount: leg.amount,
        currency: w.currency.clone(),
        target,
        memo: format!("Balance withdrawal {}", w.id),
        requested_at: w.approved_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;
    use crate::domain::command::parse_command;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn rules() -> Rules {
        Rules::from_settings(&Settings::defaults().rules)
    }

    fn withdrawal(
        channel: &str,
        paid_at: &str,
        bank: Option<&str>,
        fallback: bool,
        name: &str,
    ) -> Withdrawal {
        let mut source =
            json!({"topup_id": "tp-1", "channel_txn_id": "2026031522001456", "paid_at": paid_at});
        if let Some(b) = bank {
            source["bank"] = json!(b);
        }
        let mut leg = json!({"leg_id": "1", "amount": "10.00", "route": "original", "channel": channel, "source": source});
        if fallback {
            leg["fallback_payee"] = json!({"kind": "bank_card", "name": name, "account_no": "6222020200112233445", "bank_name": "ICBC"});
        }
        // Approved 2026-11-20, or when the top-up was paid if later (never before it).
        let approved_at = at(paid_at).max(at("2026-11-20T08:00:00Z")).to_rfc3339();
        let cmd = json!({"type": "withdrawal.approved", "version": 1, "withdrawal_id": "wd-1", "account_id": "a",
            "verified_name": "Zhang San", "currency": "CNY", "amount": "10.00",
            "approved_at": approved_at, "legs": [leg]});
        parse_command(cmd.to_string().as_bytes(), &["CNY".into()]).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn alipay_window_is_eleven_calendar_months() {
        let w = withdrawal("alipay", "2026-01-15T10:00:00Z", None, true, "Zhang San");
        let r = rules();
        assert_eq!(
            r.plan(&w, &w.legs[0], at("2026-12-15T09:59:59Z")),
            Plan::Pay(RouteTaken::Original)
        );
        assert_eq!(
            r.plan(&w, &w.legs[0], at("2026-12-15T10:00:00Z")),
            Plan::Pay(RouteTaken::Fallback)
        );
    }

    #[test]
    fn month_end_and_leap_day_clamp() {
        let r = rules();
        // UnionPay, 3 months from 30 Nov 2027 → 29 Feb 2028 (leap year).
        assert_eq!(
            r.deadline(ChannelKind::Unionpay, None, at("2027-11-30T00:00:00Z")),
            Some(at("2028-02-29T00:00:00Z"))
        );
        // Alipay, 11 months from 31 Mar 2026 → 28 Feb 2027.
        assert_eq!(
            r.deadline(ChannelKind::Alipay, None, at("2026-03-31T12:00:00Z")),
            Some(at("2027-02-28T12:00:00Z"))
        );
        // Leap day itself: 29 Feb 2028 + 3 months → 29 May 2028.
        assert_eq!(
            r.deadline(ChannelKind::Unionpay, None, at("2028-02-29T00:00:00Z")),
            Some(at("2028-05-29T00:00:00Z"))
        );
    }

    #[test]
    fn bank_windows_by_bank() {
        let r = rules();
        let paid = at("2026-01-01T00:00:00Z");
        assert_eq!(
            r.deadline(ChannelKind::Bank, Some("ICBC"), paid),
            Some(at("2026-01-31T00:00:00Z"))
        );
        assert_eq!(
            r.deadline(ChannelKind::Bank, Some("china merchants bank"), paid),
            Some(at("2026-04-01T00:00:00Z"))
        );
        assert_eq!(
            r.deadline(ChannelKind::Bank, Some("Some Other Bank"), paid),
            Some(at("2026-06-30T00:00:00Z"))
        );
    }

    #[test]
    fn expired_without_fallback_and_name_mismatch_refuse() {
        let r = rules();
        let w = withdrawal("alipay", "2020-01-01T00:00:00Z", None, false, "Zhang San");
        assert!(matches!(
            r.plan(&w, &w.legs[0], Utc::now()),
            Plan::Refuse {
                code: "original_route_expired",
                ..
            }
        ));
        let w = withdrawal("alipay", "2020-01-01T00:00:00Z", None, true, "Li Si");
        assert!(matches!(
            r.plan(&w, &w.legs[0], Utc::now()),
            Plan::Refuse {
                code: "payee_name_mismatch",
                ..
            }
        ));
    }

    #[test]
    fn orders_follow_the_stored_route() {
        let w = withdrawal("alipay", "2026-01-15T10:00:00Z", None, true, "Zhang San");
        let o = order_for(&w, &w.legs[0], RouteTaken::Original).unwrap();
        assert_eq!(o.channel, ChannelKind::Alipay);
        assert!(matches!(o.target, Target::Refund { .. }));
        let o = order_for(&w, &w.legs[0], RouteTaken::Fallback).unwrap();
        assert_eq!(o.channel, ChannelKind::Bank);
        assert!(order_for(&w, &w.legs[0], RouteTaken::Designated).is_none());
    }

    /// Issue 14, case 1: the plan is the command's, not the clock's. A top-up whose
    /// window was open at approval keeps its original route however late the leg is
    /// (re)planned, and every route the leg could have taken is named for the probe.
    #[test]
    fn the_plan_is_judged_at_approval_not_at_the_clock() {
        let r = rules();
        // approved 2026-11-20; the Alipay window (11 months from 2026-01-15) closes
        // 2026-12-15: open at approval.
        let w = withdrawal("alipay", "2026-01-15T10:00:00Z", None, true, "Zhang San");
        assert_eq!(r.plan_for(&w, &w.legs[0]), Plan::Pay(RouteTaken::Original));
        // The same plan judged by a clock after the deadline would switch to the card:
        // that is what a re-plan must never do.
        assert_eq!(
            r.plan(&w, &w.legs[0], at("2026-12-16T00:00:00Z")),
            Plan::Pay(RouteTaken::Fallback)
        );
        assert_eq!(
            possible_routes(&w.legs[0]),
            vec![RouteTaken::Original, RouteTaken::Fallback]
        );
        let w = withdrawal("alipay", "2026-01-15T10:00:00Z", None, false, "Zhang San");
        assert_eq!(r.plan_for(&w, &w.legs[0]), Plan::Pay(RouteTaken::Original));
        assert_eq!(possible_routes(&w.legs[0]), vec![RouteTaken::Original]);
    }

    /// The cases of issue #3's acceptance list, against the default configuration.
    #[test]
    fn contract_rule_cases() {
        let r = rules();
        let now = at("2026-11-22T00:00:00Z");
        let ago = |days: i64| (now - chrono::Duration::days(days)).to_rfc3339();
        // Alipay top-up 13 months old, with a fallback card: paid to the card.
        let w = withdrawal("alipay", "2025-10-22T00:00:00Z", None, true, "Zhang San");
        assert_eq!(r.plan(&w, &w.legs[0], now), Plan::Pay(RouteTaken::Fallback));
        let order = order_for(&w, &w.legs[0], RouteTaken::Fallback).unwrap();
        assert_eq!(order.channel, ChannelKind::Bank);
        // UnionPay top-up 4 months old, no fallback: original_route_expired.
        let w = withdrawal("unionpay", "2026-07-22T00:00:00Z", None, false, "Zhang San");
        assert!(matches!(
            r.plan(&w, &w.legs[0], now),
            Plan::Refuse {
                code: "original_route_expired",
                ..
            }
        ));
        // Online banking: CMB at 100 days and ICBC at 40 days expire; ICBC at 20 days is paid.
        let w = withdrawal(
            "bank",
            &ago(100),
            Some("China Merchants Bank"),
            false,
            "Zhang San",
        );
        assert!(matches!(
            r.plan(&w, &w.legs[0], now),
            Plan::Refuse {
                code: "original_route_expired",
                ..
            }
        ));
        let w = withdrawal("bank", &ago(40), Some("ICBC"), false, "Zhang San");
        assert!(matches!(
            r.plan(&w, &w.legs[0], now),
            Plan::Refuse {
                code: "original_route_expired",
                ..
            }
        ));
        let w = withdrawal("bank", &ago(20), Some("ICBC"), false, "Zhang San");
        assert_eq!(r.plan(&w, &w.legs[0], now), Plan::Pay(RouteTaken::Original));
        // CMB at 80 days is still inside its 90.
        let w = withdrawal(
            "bank",
            &ago(80),
            Some("China Merchants Bank"),
            false,
            "Zhang San",
        );
        assert_eq!(r.plan(&w, &w.legs[0], now), Plan::Pay(RouteTaken::Original));
    }

    proptest! {
        /// One second either side of any deadline decides the route, for every channel.
        #[test]
        fn boundary_seconds(secs in 0i64..(10 * 365 * 86400), ch in 0usize..3) {
            let channel = ["alipay", "wechat_pay", "unionpay"][ch];
            let paid = Utc.timestamp_opt(1_600_000_000 + secs, 0).unwrap();
            let w = withdrawal(channel, &paid.to_rfc3339(), None, true, "Zhang San");
            let r = rules();
            let deadline = r.deadline(w.legs[0].channel, None, paid).unwrap();
            prop_assert_eq!(r.plan(&w, &w.legs[0], deadline - chrono::Duration::seconds(1)), Plan::Pay(RouteTaken::Original));
            prop_assert_eq!(r.plan(&w, &w.legs[0], deadline), Plan::Pay(RouteTaken::Fallback));
            prop_assert!(deadline > paid);
        }
    }
}
