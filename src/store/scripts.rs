//! The Lua scripts behind every state change. Each touches one key (one hash slot) and
//! runs atomically on the server, so two workers can never interleave inside a change.

use redis::Script;
use std::sync::LazyLock;

// The lease (KEYS[2], `<record>:lease`, same hash tag) names the worker working on the
// withdrawal. It is only ever released by its owner, checked on the server: never by a
// read-compare-delete from the client.

/// KEYS[1] record, KEYS[2] lease; ARGV: digest, ttl, owner, lease ms, command body
/// (kept so an operator's decision can rebuild the withdrawal's events), then pairs of
/// leg field and record written only when the record is new (a fresh withdrawal's legs
/// recorded as `sending` in the claim itself: one round trip fewer per leg).
/// → {"fresh"} (new record, pairs written) | {"owned", field, value, ...} | {"conflict"}
///   | {"busy"}
pub static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local d = redis.call('HGET', KEYS[1], 'digest')
if d and d ~= ARGV[1] then return {'conflict'} end
if redis.call('HEXISTS', KEYS[1], 'outcome') == 1 then
  -- Finished: nothing left to work on, so no lease is needed to republish.
  local all = redis.call('HGETALL', KEYS[1])
  table.insert(all, 1, 'owned')
  return all
end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[3] then return {'busy'} end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
if not d then
  redis.call('HSET', KEYS[1], 'digest', ARGV[1], 'cmd', ARGV[5])
  for i = 6, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {'fresh'}
end
local all = redis.call('HGETALL', KEYS[1])
table.insert(all, 1, 'owned')
return all
"#,
    )
});

/// KEYS[1] record, KEYS[2] lease; ARGV: field, expected ("" = absent), new, ttl,
/// outcome ("" = none), owner. Storing an outcome also releases our lease.
/// → {"applied", stored outcome or ""} | {"stale", current} | {"lost"}
pub static TRANSITION: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HEXISTS', KEYS[1], 'digest') == 0 then return {'lost'} end
local cur = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if cur ~= ARGV[2] then return {'stale', cur} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
if ARGV[5] ~= '' then
  redis.call('HSETNX', KEYS[1], 'outcome', ARGV[5])
  redis.call('HDEL', KEYS[1], 'in_review')
  if redis.call('GET', KEYS[2]) == ARGV[6] then redis.call('DEL', KEYS[2]) end
end
if redis.call('HEXISTS', KEYS[1], 'in_review') == 1 then
  redis.call('PERSIST', KEYS[1])
else
  redis.call('EXPIRE', KEYS[1], ARGV[4])
end
return {'applied', redis.call('HGET', KEYS[1], 'outcome') or ''}
"#,
    )
});

// A record in review (`in_review`, set when a review event is raised) never expires: an
// operator may take days, and `review resolve` needs the command and the legs. Storing
// the terminal outcome ends the review and starts the retention clock again.

/// KEYS[1] record, KEYS[2] lease; ARGV: outcome, ttl, owner. Releases our lease.
/// → {"stored", outcome} | {"lost"}
pub static FINISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[2]) == ARGV[3] then redis.call('DEL', KEYS[2]) end
if redis.call('HEXISTS', KEYS[1], 'digest') == 0 then return {'lost'} end
redis.call('HSETNX', KEYS[1], 'outcome', ARGV[1])
redis.call('HDEL', KEYS[1], 'in_review')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return {'stored', redis.call('HGET', KEYS[1], 'outcome')}
"#,
    )
});

/// KEYS[1] lease; ARGV: owner. → 1 released | 0 not ours
pub static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#,
    )
});

/// KEYS[1] lease; ARGV: owner, lease ms. → 1 renewed | 0 lost
pub static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"#,
    )
});

/// KEYS[1] record; ARGV: failure event, ttl. → {"stored", outcome} | {"claimed"}
pub static REJECT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local d = redis.call('HGET', KEYS[1], 'digest')
if not d then
  redis.call('HSET', KEYS[1], 'digest', 'rejected', 'outcome', ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return {'stored', ARGV[1]}
end
if d == 'rejected' then return {'stored', redis.call('HGET', KEYS[1], 'outcome')} end
return {'claimed'}
"#,
    )
});

/// KEYS[1] record; ARGV: the review's field (`review:<kind>`). Marks a review raised on
/// an existing record only (a marker must never create a record without its digest);
/// unless the withdrawal already has its outcome, the record is then kept until the
/// review ends (`in_review`, no expiry). → 1 | 0
pub static NOTE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HEXISTS', KEYS[1], 'digest') == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], '1')
if redis.call('HEXISTS', KEYS[1], 'outcome') == 0 then
  redis.call('HSET', KEYS[1], 'in_review', '1')
  redis.call('PERSIST', KEYS[1])
end
return 1
"#,
    )
});

/// KEYS[1] lease; ARGV: owner, lease ms. Takes the lease if it is free (or ours).
/// → 1 taken | 0 held by another
pub static TAKE_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#,
    )
});

/// Counts a withdrawal against its account's daily limits, once per withdrawal id.
/// KEYS[1] the day's totals (hash: cents, count), KEYS[2] the ids counted that day (set),
/// KEYS[3..] the id sets of the earlier days the withdrawal could have been counted on
/// (since its approval), all tagged with the account; ARGV: withdrawal id, cents, max
/// cents, max count, ttl.
/// → {"ok"} (counted now or before) | {"over", "amount"|"count", total so far}
pub static RESERVE_DAILY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
for i = 2, #KEYS do
  if redis.call('SISMEMBER', KEYS[i], ARGV[1]) == 1 then return {'ok'} end
end
local cents = tonumber(redis.call('HGET', KEYS[1], 'cents') or '0')
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
if count + 1 > tonumber(ARGV[4]) then return {'over', 'count', tostring(count)} end
if cents + tonumber(ARGV[2]) > tonumber(ARGV[3]) then return {'over', 'amount', tostring(cents)} end
redis.call('HINCRBY', KEYS[1], 'cents', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'count', 1)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
return {'ok'}
"#,
    )
});
