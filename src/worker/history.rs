//! What a delivery says about its own past, read only from what can be trusted.
//!
//! The worker keeps its bookkeeping in headers of the copies it re-publishes
//! (`x-payout-attempt`: deferrals, which schedule settlement checks and the review of an
//! outcome still unknown; `x-payout-lease-waits`). A publisher holds the command keys,
//! not the workers' own (`auth.worker_keys`), so those counts are honoured only under a
//! valid seal ([`crate::auth::Seal`]) bound to the command's signature; unsealed, they
//! count as zero. The broker's `x-delivery-count` is honoured only on a delivery the
//! broker itself flags as redelivered (on a first delivery the header is the
//! publisher's). Any sign of an earlier delivery, trusted or not, still makes the worker
//! query a leg before sending it: a forged sign can only make it more careful.

use crate::auth::{Seal, SEAL_HEADER, SIGNATURE_HEADER};
use crate::broker::headers::{self, ATTEMPT, DELIVERY_COUNT, LEASE_WAITS};
use lapin::BasicProperties;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct History {
    /// Deferrals through the delay queues so far.
    pub attempt: u32,
    /// Waits for another worker's lease so far.
    pub lease_waits: u32,
    /// Earlier deliveries of this very message, as the broker counts them.
    pub delivery_count: u32,
    /// Delivered before, as far as anything says: legs without a record are queried
    /// before any send.
    pub seen_before: bool,
}

impl History {
    pub fn read(props: &BasicProperties, redelivered: bool, seal: &Seal) -> Self {
        let claimed = [
            headers::count(props, ATTEMPT),
            headers::count(props, LEASE_WAITS),
        ];
        let sealed = match (
            headers::text(props, SEAL_HEADER),
            headers::text(props, SIGNATURE_HEADER),
        ) {
            (Some(s), Some(signature)) => seal.verify(&s, &signature, &claimed),
            _ => false,
        };
        let [attempt, lease_waits] = if sealed { claimed } else { [0, 0] };
        let forwarded = headers::count(props, DELIVERY_COUNT);
        Self {
            attempt,
            lease_waits,
            delivery_count: if redelivered { forwarded } else { 0 },
            seen_before: redelivered || forwarded > 0 || claimed.iter().any(|c| *c > 0),
        }
    }

    /// The seal for these counts on the command signed `signature`, as a header value.
    pub fn sealed(self, seal: &Seal, signature: &str) -> String {
        seal.seal(signature, &[self.attempt, self.lease_waits])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::headers::{long_string, with_headers};
    use lapin::types::AMQPValue;

    fn props(pairs: &[(&str, AMQPValue)]) -> BasicProperties {
        with_headers(&BasicProperties::default(), pairs)
    }

    #[test]
    fn only_sealed_counts_and_broker_redeliveries_are_honoured() {
        let seal = Seal::parse("w:k").unwrap();
        let sig = "v1=00ff";
        let n = |v: i64| AMQPValue::LongLongInt(v);
        let counts = History {
            attempt: 7,
            lease_waits: 2,
            ..History::default()
        };
        let good = counts.sealed(&seal, sig);
        let sealed = props(&[
            (SIGNATURE_HEADER, long_string(sig)),
            (ATTEMPT, n(7)),
            (LEASE_WAITS, n(2)),
            (SEAL_HEADER, long_string(&good)),
        ]);
        let h = History::read(&sealed, false, &seal);
        assert_eq!((h.attempt, h.lease_waits, h.seen_before), (7, 2, true));

        // The publisher's own counts: ignored, but the worker stays careful.
        let forged = with_headers(&sealed, &[(ATTEMPT, n(1000))]);
        let h = History::read(&forged, false, &seal);
        assert_eq!((h.attempt, h.lease_waits, h.seen_before), (0, 0, true));
        let unsealed = props(&[(SIGNATURE_HEADER, long_string(sig)), (ATTEMPT, n(3))]);
        assert_eq!(History::read(&unsealed, false, &seal).attempt, 0);
        // A seal lifted onto another command does not carry its counts.
        let moved = with_headers(&sealed, &[(SIGNATURE_HEADER, long_string("v1=01"))]);
        assert_eq!(History::read(&moved, false, &seal).attempt, 0);

        // x-delivery-count counts only when the broker says it redelivered.
        let counted = props(&[(DELIVERY_COUNT, n(49))]);
        let first = History::read(&counted, false, &seal);
        assert_eq!((first.delivery_count, first.seen_before), (0, true));
        assert_eq!(History::read(&counted, true, &seal).delivery_count, 49);
        let fresh = History::read(&BasicProperties::default(), false, &seal);
        assert_eq!(fresh, History::default());
    }
}
