//! Hostile and malformed input against the real broker and Redis (issue 15): no message
//! can stall the worker, erase its own dead letter, steer processing without a key or
//! slip past the age limit, and no account number leaks.
//!
//! `transport`: what the broker carries (headers, sizes, properties, forged bookkeeping);
//! `body`: what the signed body says (times, amounts, duplicate keys, sensitive values).

#[path = "../common/mod.rs"]
mod common;

mod body;
mod transport;
