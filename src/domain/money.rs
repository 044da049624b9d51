//! Money as the contract writes it: a decimal string, more than zero, at most two places.

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A positive amount with at most two decimal places. Arithmetic stays in `Decimal`;
/// a float never touches money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(Decimal);

/// Integer digits allowed before the point: far above any withdrawal, far below
/// `Decimal`'s 28 digits, so sums of legs can never overflow.
const MAX_INTEGER_DIGITS: usize = 15;

/// Why a text is not an amount. The messages name no value: an amount field may hold
/// anything a publisher put there, a card number included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(
        "not a decimal amount like \"1500.00\" (digits, no leading zero, no sign or exponent)"
    )]
    NotDecimal,
    #[error("more than two decimal places")]
    TooPrecise,
    #[error("not more than zero")]
    NotPositive,
    #[error("more than 15 integer digits")]
    TooLarge,
}

impl Money {
    /// Exactly the contract's pattern, `^(0|[1-9][0-9]{0,14})(\.[0-9]{1,2})?$` (as the
    /// published JSON Schema states it), and more than zero.
    pub fn parse(s: &str) -> Result<Self, MoneyError> {
        let (int, frac) = match s.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (s, None),
        };
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(int)
            || frac.is_some_and(|f| !digits(f))
            || (int.len() > 1 && int.starts_with('0'))
        {
            return Err(MoneyError::NotDecimal);
        }
        if frac.is_some_and(|f| f.len() > 2) {
            return Err(MoneyError::TooPrecise);
        }
        if int.len() > MAX_INTEGER_DIGITS {
            return Err(MoneyError::TooLarge);
        }
        let value = Decimal::from_str(s).map_err(|_| MoneyError::NotDecimal)?;
        if value <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        Ok(Self(value))
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    /// Whole fen (1/100 yuan), for channels that count in minor units.
    pub fn minor_units(self) -> i64 {
        let fen = (self.0 * Decimal::ONE_HUNDRED).trunc();
        i64::try_from(fen).expect("at most 15 integer digits fit in i64 fen")
    }

    /// Always two places: "1500.00", the form Alipay and the events use.
    pub fn to_yuan_string(self) -> String {
        format!("{:.2}", self.0)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_yuan_string())
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_yuan_string())
    }
}

/// Renders any decimal sum (which may be zero) as a two-place money string.
pub fn format_amount(value: Decimal) -> String {
    format!("{value:.2}")
}

/// An ISO 4217 code from the configured list.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Currency(String);

impl Currency {
    pub fn parse(s: &str, allowed: &[String]) -> Option<Self> {
        allowed.iter().any(|a| a == s).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_contract_amounts() {
        assert_eq!(Money::parse("1500.00").unwrap().to_yuan_string(), "1500.00");
        assert_eq!(Money::parse("0.01").unwrap().minor_units(), 1);
        assert_eq!(Money::parse("12.5").unwrap().to_yuan_string(), "12.50");
        assert_eq!(Money::parse("7").unwrap().minor_units(), 700);
    }

    #[test]
    fn rejects_what_the_contract_forbids() {
        for bad in [
            "", ".5", "5.", "-1.00", "+1", "1e3", " 1", "1,00", "NaN", "1.2.3", "01.00", "00",
            "007", "1\n", "１",
        ] {
            assert_eq!(Money::parse(bad), Err(MoneyError::NotDecimal), "{bad}");
        }
        assert_eq!(Money::parse("10.005"), Err(MoneyError::TooPrecise));
        assert_eq!(Money::parse("0.00"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse("0"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse("1234567890123456"), Err(MoneyError::TooLarge));
        assert!(Money::parse("0.5").is_ok());
        assert!(Money::parse("999999999999999.99").is_ok());
    }

    proptest! {
        #[test]
        fn fen_round_trip(fen in 1i64..10_000_000_000_000) {
            let s = format!("{}.{:02}", fen / 100, fen % 100);
            let m = Money::parse(&s).unwrap();
            prop_assert_eq!(m.minor_units(), fen);
            prop_assert_eq!(m.to_yuan_string(), s);
        }

        #[test]
        fn never_panics_on_any_string(s in ".{0,40}") {
            let _ = Money::parse(&s);
        }

        #[test]
        fn three_places_always_rejected(int in 0u32..100000, frac in 0u32..1000) {
            let s = format!("{int}.{frac:03}");
            prop_assert!(Money::parse(&s).is_err());
        }
    }
}
