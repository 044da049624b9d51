//! People and accounts money goes to. Their `Debug` and `Display` mask what logs must not
//! hold: full account numbers and full names.

use serde::Serialize;
use std::fmt;

/// An account number (bank card, Alipay login). Shown as `6222 **** 3445`.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AccountNo(String);

impl AccountNo {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (4..=64).contains(&s.chars().count())
            && s.chars().all(|c| !c.is_control() && !c.is_whitespace());
        ok.then(|| Self(s.to_owned()))
    }

    /// The full number, for the channel request only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 8 {
            let tail: String = chars[chars.len().saturating_sub(2)..].iter().collect();
            return format!("**** {tail}");
        }
        let head: String = chars[..4].iter().collect();
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{head} **** {tail}")
    }
}

impl fmt::Debug for AccountNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for AccountNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// A person's or company's name. Shown as `Z*** San`: first letter of each word but the last.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(s: &str) -> Option<Self> {
        let ok =
            !s.trim().is_empty() && s.chars().count() <= 128 && s.chars().all(|c| !c.is_control());
        ok.then(|| Self(s.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        let words: Vec<&str> = self.0.split_whitespace().collect();
        match words.as_slice() {
            [] => String::new(),
            // One word (e.g. 张三): keep the first character only.
            [one] => {
                let first: String = one.chars().take(1).collect();
                format!("{first}***")
            }
            [init @ .., last] => {
                let mut out: Vec<String> = init
                    .iter()
                    .map(|w| format!("{}***", w.chars().next().unwrap_or('*')))
                    .collect();
                out.push((*last).to_owned());
                out.join(" ")
            }
        }
    }
}

impl fmt::Debug for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_as_ops_expect() {
        let acct = AccountNo::parse("6222020200112233445").unwrap();
        assert_eq!(format!("{acct:?}"), "6222 **** 3445");
        assert_eq!(acct.to_string(), "6222 **** 3445");
        assert_eq!(acct.expose(), "6222020200112233445");
        let name = PersonName::parse("Zhang San").unwrap();
        assert_eq!(format!("{name:?}"), "Z*** San");
        assert_eq!(PersonName::parse("张三").unwrap().masked(), "张***");
        assert_eq!(AccountNo::parse("a@b.cn").unwrap().masked(), "**** cn");
    }

    #[test]
    fn rejects_blank_and_control_characters() {
        assert!(PersonName::parse("  ").is_none());
        assert!(PersonName::parse("a\nb").is_none());
        assert!(AccountNo::parse("12").is_none());
        assert!(AccountNo::parse("1234 5678").is_none());
    }
}
