//! Reading and writing the AMQP headers this service uses.

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
}
