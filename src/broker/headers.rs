//! Reading and writing the AMQP headers this service uses.

use lapin::types::generation::gen_field_table;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;

pub const ERROR_CODE: &str = "x-payout-error-code";
pub const ERROR_MESSAGE: &str = "x-payout-error";
/// How many times a command has been deferred through the delay queues.
pub const ATTEMPT: &str = "x-payout-attempt";
/// How many times a command waited for another worker's lease.
pub const LEASE_WAITS: &str = "x-payout-lease-waits";
/// Set by quorum queues on a redelivered message.
pub const DELIVERY_COUNT: &str = "x-delivery-count";
/// On a re-published copy whose publisher headers did not fit: how many bytes of them
/// were left out.
pub const HEADERS_DROPPED: &str = "x-payout-headers-dropped";
/// On a dead letter: the publisher's `expiration` property, which the copy does not keep.
pub const ORIGINAL_EXPIRATION: &str = "x-payout-original-expiration";
/// Set by the broker on a message it dead-lettered by itself: why.
pub const FIRST_DEATH_REASON: &str = "x-first-death-reason";

/// The broker's own per-delivery bookkeeping: not the publisher's, not carried over to
/// a copy (the broker writes its own on each), not counted against `max_header_bytes`.
pub const BROKER_OWNED: &[&str] = &[
    DELIVERY_COUNT,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    FIRST_DEATH_REASON,
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// The headers a copy always keeps, whatever it weighs: the command's signature and the
/// worker's own bookkeeping (all small).
const ESSENTIAL: &[&str] = &[
    crate::auth::KEY_ID_HEADER,
    crate::auth::SIGNATURE_HEADER,
    crate::auth::SEAL_HEADER,
    ATTEMPT,
    LEASE_WAITS,
];

/// A header as text, whichever string type the publisher used.
pub fn text(props: &BasicProperties, name: &str) -> Option<String> {
    let headers = props.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// A header as a non-negative integer, whichever integer type the publisher used.
pub fn count(props: &BasicProperties, name: &str) -> u32 {
    let Some(headers) = props.headers().as_ref() else {
        return 0;
    };
    let n: i64 = match headers.inner().get(name) {
        Some(AMQPValue::ShortShortUInt(v)) => (*v).into(),
        Some(AMQPValue::ShortUInt(v)) => (*v).into(),
        Some(AMQPValue::LongUInt(v)) => (*v).into(),
        Some(AMQPValue::ShortShortInt(v)) => (*v).into(),
        Some(AMQPValue::ShortInt(v)) => (*v).into(),
        Some(AMQPValue::LongInt(v)) => (*v).into(),
        Some(AMQPValue::LongLongInt(v)) => *v,
        _ => 0,
    };
    u32::try_from(n).unwrap_or(0)
}

/// The same properties with headers added or replaced; everything else is unchanged.
pub fn with_headers(props: &BasicProperties, add: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut table: FieldTable = props.headers().clone().unwrap_or_default();
    for (k, v) in add {
        table.insert((*k).into(), v.clone());
    }
    props.clone().with_headers(table)
}

/// The same properties without the named headers.
pub fn without_headers(props: &BasicProperties, remove: &[&str]) -> BasicProperties {
    let Some(table) = props.headers().as_ref() else {
        return props.clone();
    };
    let kept: std::collections::BTreeMap<_, _> = table
        .inner()
        .iter()
        .filter(|(k, _)| !remove.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    props.clone().with_headers(FieldTable::from(kept))
}

/// What a header table weighs on the wire (AMQP field-table encoding).
pub fn encoded_len(table: &FieldTable) -> usize {
    gen_field_table::<Vec<u8>>(table)(Vec::new().into())
        .map(|w| w.write.len())
        // A table that cannot be encoded could not have been received: weigh it as
        // too much rather than as nothing.
        .unwrap_or(usize::MAX)
}

/// What the publisher's headers weigh, the broker's bookkeeping left out.
pub fn publisher_header_bytes(props: &BasicProperties) -> usize {
    match props.headers() {
        None => 0,
        Some(_) => encoded_len(
            without_headers(props, BROKER_OWNED)
                .headers()
                .as_ref()
                .expect("kept"),
        ),
    }
}

/// The properties of a copy the worker re-publishes (a deferral, a dead letter), built
/// so that it always fits in one frame and the broker treats it like any other:
/// - headers: the publisher's, without the broker's bookkeeping, plus `add` (replacing);
///   if the publisher's would weigh more than `max_header_bytes`, only the signature
///   and the worker's own survive, and `x-payout-headers-dropped` says how many bytes went;
/// - persistent; without `expiration` (a dead letter must never expire: on a dead
///   letter its value is kept as `x-payout-original-expiration`), `priority`, `user_id`
///   (the broker refuses a `user_id` that is not the publishing connection's own) and
///   `cluster_id`; every other property as published.
pub fn republished(
    props: &BasicProperties,
    add: &[(&str, AMQPValue)],
    max_header_bytes: usize,
) -> BasicProperties {
    let mut table = without_headers(props, BROKER_OWNED)
        .headers()
        .clone()
        .unwrap_or_default();
    let dropped = encoded_len(&table);
    if dropped > max_header_bytes {
        let kept: std::collections::BTreeMap<_, _> = table
            .inner()
            .iter()
            .filter(|(k, _)| ESSENTIAL.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        table = FieldTable::from(kept);
        let left_out = dropped.saturating_sub(encoded_len(&table));
        table.insert(
            HEADERS_DROPPED.into(),
            AMQPValue::LongLongInt(i64::try_from(left_out).unwrap_or(i64::MAX)),
        );
    }
    for (k, v) in add {
        table.insert((*k).into(), v.clone());
    }
    let mut copy = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(table);
    if let Some(v) = props.content_type() {
        copy = copy.with_content_type(v.clone());
    }
    if let Some(v) = props.content_encoding() {
        copy = copy.with_content_encoding(v.clone());
    }
    if let Some(v) = props.correlation_id() {
        copy = copy.with_correlation_id(v.clone());
    }
    if let Some(v) = props.reply_to() {
        copy = copy.with_reply_to(v.clone());
    }
    if let Some(v) = props.message_id() {
        copy = copy.with_message_id(v.clone());
    }
    if let Some(v) = props.timestamp() {
        copy = copy.with_timestamp(*v);
    }
    if let Some(v) = props.kind() {
        copy = copy.with_type(v.clone());
    }
    if let Some(v) = props.app_id() {
        copy = copy.with_app_id(v.clone());
    }
    copy
}

pub fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tolerance() {
        let p = BasicProperties::default().with_content_type("application/json".into());
        assert_eq!(count(&p, ATTEMPT), 0);
        let p = with_headers(
            &p,
            &[
                (ATTEMPT, AMQPValue::LongLongInt(3)),
                (ERROR_CODE, long_string("x")),
            ],
        );
        assert_eq!(count(&p, ATTEMPT), 3);
        assert_eq!(text(&p, ERROR_CODE).as_deref(), Some("x"));
        assert_eq!(
            p.content_type().as_ref().map(|c| c.as_str()),
            Some("application/json")
        );
        let p = with_headers(&p, &[(ATTEMPT, AMQPValue::LongLongInt(-5))]);
        assert_eq!(count(&p, ATTEMPT), 0);
        let p = with_headers(&p, &[(DELIVERY_COUNT, AMQPValue::LongLongInt(7))]);
        let p = without_headers(&p, &[DELIVERY_COUNT]);
        assert_eq!(count(&p, DELIVERY_COUNT), 0);
        assert_eq!(text(&p, ERROR_CODE).as_deref(), Some("x"));
    }

    #[test]
    fn a_copy_never_expires_and_always_fits() {
        let big = "h".repeat(120_000);
        let published = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_message_id("m-1".into())
            .with_expiration("3000".into())
            .with_priority(9)
            .with_user_id("billing".into())
            .with_delivery_mode(1);
        let published = with_headers(
            &published,
            &[
                ("x-billing-trace", long_string("t-1")),
                (crate::auth::SIGNATURE_HEADER, long_string("v1=ab")),
                (ATTEMPT, AMQPValue::LongLongInt(4)),
                ("x-death", long_string("the broker's")),
                (DELIVERY_COUNT, AMQPValue::LongLongInt(3)),
            ],
        );
        let add = [
            (ERROR_CODE, long_string("too_large")),
            (ATTEMPT, AMQPValue::LongLongInt(5)),
        ];
        let copy = republished(&published, &add, 16_384);
        assert_eq!(copy.expiration(), &None);
        assert_eq!(copy.priority(), &None);
        assert_eq!(copy.user_id(), &None);
        assert_eq!(copy.delivery_mode(), &Some(2));
        assert_eq!(copy.message_id().as_ref().map(|m| m.as_str()), Some("m-1"));
        assert_eq!(text(&copy, "x-billing-trace").as_deref(), Some("t-1"));
        assert_eq!(text(&copy, ERROR_CODE).as_deref(), Some("too_large"));
        assert_eq!(count(&copy, ATTEMPT), 5, "replaced");
        assert_eq!(count(&copy, DELIVERY_COUNT), 0, "the broker's own");
        assert_eq!(text(&copy, "x-death"), None);
        assert_eq!(count(&copy, HEADERS_DROPPED), 0);

        // Publisher headers past the bound: only the signature and ours survive.
        let heavy = with_headers(&published, &[("x-junk", long_string(&big))]);
        assert!(publisher_header_bytes(&heavy) > 120_000);
        let copy = republished(&heavy, &add[..1], 16_384);
        let weight = encoded_len(copy.headers().as_ref().unwrap());
        assert!(weight < 1_024, "{weight}");
        assert_eq!(text(&copy, "x-junk"), None);
        assert_eq!(text(&copy, "x-billing-trace"), None);
        assert_eq!(
            text(&copy, crate::auth::SIGNATURE_HEADER).as_deref(),
            Some("v1=ab")
        );
        assert_eq!(count(&copy, ATTEMPT), 4);
        assert!(count(&copy, HEADERS_DROPPED) > 120_000);
    }
}
