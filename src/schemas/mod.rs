//! The JSON Schemas of the command and the events, as published in `docs/asyncapi.yaml`
//! and printed by `payout-worker schema`, so upstream teams validate what they send.

/// (message type, JSON Schema text).
pub const ALL: [(&str, &str); 5] = [
    (
        "withdrawal.approved",
        include_str!("withdrawal.approved.json"),
    ),
    (
        "withdrawal.processing",
        include_str!("withdrawal.processing.json"),
    ),
    (
        "withdrawal.succeeded",
        include_str!("withdrawal.succeeded.json"),
    ),
    ("withdrawal.failed", include_str!("withdrawal.failed.json")),
    (
        "withdrawal.review_required",
        include_str!("withdrawal.review_required.json"),
    ),
];

pub fn get(name: &str) -> Option<&'static str> {
    ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
}
