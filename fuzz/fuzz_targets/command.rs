//! The command parser on arbitrary bytes: never panics; an accepted command keeps the
//! promises its types make (legs add up to the amount, leg ids unique).
#![no_main]

use libfuzzer_sys::fuzz_target;
use payout_worker::domain::command::parse_command;
use std::collections::HashSet;

fuzz_target!(|data: &[u8]| {
    if let Ok(w) = parse_command(data, &["CNY".to_owned()]) {
        let sum = w.legs.iter().map(|l| l.amount.minor_units()).sum::<i64>();
        assert_eq!(sum, w.amount.minor_units(), "legs do not add up");
        let ids: HashSet<&str> = w.legs.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(ids.len(), w.legs.len(), "duplicate leg ids accepted");
        assert!(!w.legs.is_empty());
    }
});
