//! Where state lives: one Redis hash per withdrawal, `<prefix>:{<withdrawal_id>}`. The
//! braces are a hash tag, so everything about one withdrawal sits in one Redis Cluster
//! slot and every script touches keys of one slot only.
//!
//! Fields: `digest` (which command claimed the id, or `rejected`), `leg:<id>` (a JSON
//! [`LegRecord`]), `outcome` (the terminal event's exact bytes: the outbox). Every change
//! is one Lua script: compare-and-set on the exact stored text, never read-then-write from
//! Rust.

pub mod leg;
mod scripts;

pub use leg::{LegRecord, LegState};

use crate::config::RedisSettings;
use crate::domain::{LegId, WithdrawalId};
use crate::ops::METRICS;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis returned an unexpected reply: {0}")]
    Protocol(String),
    #[error("Redis TLS: {0}")]
    Tls(String),
    #[error("only {acked} of {wanted} Redis replicas acknowledged the record in time (redis.wait_replicas)")]
    NotReplicated { acked: i64, wanted: u32 },
}

/// A single server or a cluster, behind one type.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// What a withdrawal's record holds.
#[derive(Debug, Default, Clone)]
pub struct WithdrawalRecord {
    /// Leg id → (exact stored text, parsed record).
    pub legs: HashMap<String, (String, LegRecord)>,
    /// The terminal event, exactly as first stored.
    pub outcome: Option<String>,
    /// Review events already published (`review:<kind>` fields), so each is raised once.
    pub reviews_raised: Vec<String>,
    /// The command that claimed the withdrawal, exactly as received.
    pub command: Option<String>,
    /// This claim created the record (with the legs it was given): nothing about the
    /// withdrawal existed before.
    pub fresh: bool,
    /// A review was raised and the withdrawal has no outcome yet: kept until resolved.
    pub in_review: bool,
}

#[derive(Debug)]
pub enum Claim {
    /// This command owns the id (first time, or a true duplicate): here is the state.
    Owned(WithdrawalRecord),
    /// Another command with different content owns the id.
    Conflict,
    /// Another worker holds the lease: come back later.
    Busy,
}

#[derive(Debug)]
pub enum Transition {
    Applied {
        outcome: Option<String>,
    },
    /// The leg changed under us: here is what it is now.
    Stale {
        current: String,
    },
    /// The record is gone (expired, or Redis restarted empty).
    Lost,
}

#[derive(Debug)]
pub enum Rejected {
    /// Stored as this withdrawal's terminal outcome: publish it.
    Stored(String),
    /// A valid command already owns the id: release nothing.
    AlreadyClaimed,
}

#[derive(Clone)]
pub struct Store {
    conn: Conn,
    prefix: String,
    timeout: Duration,
    retention_secs: u64,
    lease_ms: u64,
    wait_replicas: u32,
    wait_timeout_ms: u64,
}

/// Who holds a lease: unique per process and delivery, so one worker's expired lease is
/// never released by another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner(String);

impl LeaseOwner {
    pub fn new() -> Self {
        Self(format!(
            "{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ))
    }
}

impl Default for LeaseOwner {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub async fn connect(s: &RedisSettings) -> Result<Self, StoreError> {
        let timeout = Duration::from_millis(s.timeout_ms);
        let urls: Vec<String> = s
            .urls
            .iter()
            .map(|u| u.expose_secret().to_owned())
            .collect();
        // rediss:// URLs with the configured CA / client certificate (`crate::tls`).
        let certs = if s.tls.is_empty() {
            None
        } else {
            Some(s.tls.for_redis().map_err(StoreError::Tls)?)
        };
        let connecting = async {
            if s.cluster {
                let mut builder = redis::cluster::ClusterClientBuilder::new(urls)
                    .connection_timeout(timeout)
                    .response_timeout(timeout);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                let client = builder.build()?;
                Ok::<_, redis::RedisError>(Conn::Cluster(client.get_async_connection().await?))
            } else {
                let client = match certs {
                    Some(certs) => redis::Client::build_with_tls(urls[0].as_str(), certs)?,
                    None => redis::Client::open(urls[0].as_str())?,
                };
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(timeout))
                    .set_response_timeout(Some(timeout))
                    .set_number_of_retries(2);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config(client, config).await?,
                ))
            }
        };
        let conn = tokio::time::timeout(timeout * 2, connecting)
            .await
            .map_err(|_| StoreError::Timeout(timeout * 2))??;
        Ok(Self {
            conn,
            prefix: s.key_prefix.clone(),
            timeout,
            retention_secs: u64::from(s.retention_days) * 86_400,
            lease_ms: s.lease_ms,
            wait_replicas: s.wait_replicas,
            wait_timeout_ms: s.wait_timeout_ms,
        })
    }

    pub fn key(&self, id: &WithdrawalId) -> String {
        format!("{}:{{{}}}", self.prefix, id.as_str())
    }

    fn lease_key(&self, id: &WithdrawalId) -> String {
        format!("{}:lease", self.key(id))
    }

    pub fn lease_ms(&self) -> u64 {
        self.lease_ms
    }

    /// Runs one script: one round trip (two if Redis lost the script and it is loaded
    /// again), counted by `op` in `payout_redis_round_trips_total`.
    async fn run(
        &self,
        op: &'static str,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<Value, StoreError> {
        METRICS.redis_round_trips.with_label_values(&[op]).inc();
        let mut conn = self.conn.clone();
        tokio::time::timeout(self.timeout, invocation.invoke_async(&mut conn))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
            .map_err(StoreError::from)
    }

    /// Sends one plain command, counted like [`Store::run`].
    async fn query<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T, StoreError> {
        METRICS.redis_round_trips.with_label_values(&[op]).inc();
        let mut conn = self.conn.clone();
        Ok(
            tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
                .await
                .map_err(|_| StoreError::Timeout(self.timeout))??,
        )
    }

    /// Claims the id for the command with `digest` and takes the lease for `owner`, or
    /// says who is in the way; returns what is already known. When the claim creates the
    /// record, `fresh_legs` are stored with it (and returned as its legs).
    pub async fn claim(
        &self,
        id: &WithdrawalId,
        digest: &str,
        command: &[u8],
        owner: &LeaseOwner,
        fresh_legs: &[(&LegId, LegRecord)],
    ) -> Result<Claim, StoreError> {
        let (key, lease) = (self.key(id), self.lease_key(id));
        let mut inv = scripts::CLAIM.key(&key);
        inv.key(&lease)
            .arg(digest)
            .arg(self.retention_secs)
            .arg(&owner.0)
            .arg(self.lease_ms)
            .arg(command);
        let texts: Vec<String> = fresh_legs
            .iter()
            .map(|(_, record)| serde_json::to_string(record).expect("leg records serialise"))
            .collect();
        for ((leg, _), text) in fresh_legs.iter().zip(&texts) {
            inv.arg(leg_field(leg)).arg(text);
        }
        let reply: Vec<String> = strings(self.run("claim", inv).await?)?;
        match reply.split_first() {
            Some((status, _)) if status == "conflict" => Ok(Claim::Conflict),
            Some((status, _)) if status == "busy" => Ok(Claim::Busy),
            Some((status, [])) if status == "fresh" => Ok(Claim::Owned(WithdrawalRecord {
                legs: fresh_legs
                    .iter()
                    .zip(texts)
                    .map(|((leg, record), text)| (leg.as_str().to_owned(), (text, record.clone())))
                    .collect(),
                command: Some(String::from_utf8_lossy(command).into_owned()),
                fresh: true,
                ..WithdrawalRecord::default()
            })),
            Some((status, fields)) if status == "owned" => Ok(Claim::Owned(parse_record(fields)?)),
            _ => Err(StoreError::Protocol(format!("claim: {reply:?}"))),
        }
    }

    /// Sets a leg's record if it still reads `expected` ("" for absent); with `outcome`,
    /// also stores the terminal event unless one is stored already, and releases the lease.
    pub async fn transition(
        &self,
        id: &WithdrawalId,
        leg: &LegId,
        expected: &str,
        new: &LegRecord,
        outcome: Option<&str>,
        owner: &LeaseOwner,
    ) -> Result<(Transition, String), StoreError> {
        let (key, lease) = (self.key(id), self.lease_key(id));
        let new_text = serde_json::to_string(new).expect("leg records serialise");
        let mut inv = scripts::TRANSITION.key(&key);
        inv.key(&lease)
            .arg(leg_field(leg))
            .arg(expected)
            .arg(&new_text)
            .arg(self.retention_secs)
            .arg(outcome.unwrap_or(""))
            .arg(&owner.0);
        let reply: Vec<String> = strings(self.run("transition", inv).await?)?;
        let t = match reply.as_slice() {
            [status, outcome] if status == "applied" => Transition::Applied {
                outcome: (!outcome.is_empty()).then(|| outcome.clone()),
            },
            [status, current] if status == "stale" => Transition::Stale {
                current: current.clone(),
            },
            [status] if status == "lost" => Transition::Lost,
            _ => return Err(StoreError::Protocol(format!("transition: {reply:?}"))),
        };
        Ok((t, new_text))
    }

    /// Stores the terminal event unless one is stored; returns the stored one. Releases
    /// the lease.
    pub async fn finish(
        &self,
        id: &WithdrawalId,
        outcome: &str,
        owner: &LeaseOwner,
    ) -> Result<Option<String>, StoreError> {
        let (key, lease) = (self.key(id), self.lease_key(id));
        let mut inv = scripts::FINISH.key(&key);
        inv.key(&lease)
            .arg(outcome)
            .arg(self.retention_secs)
            .arg(&owner.0);
        let reply: Vec<String> = strings(self.run("finish", inv).await?)?;
        match reply.as_slice() {
            [status, stored] if status == "stored" => Ok(Some(stored.clone())),
            [status] if status == "lost" => Ok(None),
            _ => Err(StoreError::Protocol(format!("finish: {reply:?}"))),
        }
    }

    /// Records that an authentic but invalid command ended this withdrawal, unless a
    /// valid command already owns the id.
    pub async fn reject(&self, id: &WithdrawalId, event: &str) -> Result<Rejected, StoreError> {
        let key = self.key(id);
        let mut inv = scripts::REJECT.key(&key);
        inv.arg(event).arg(self.retention_secs);
        let reply: Vec<String> = strings(self.run("reject", inv).await?)?;
        match reply.as_slice() {
            [status, stored] if status == "stored" => Ok(Rejected::Stored(stored.clone())),
            [status] if status == "claimed" => Ok(Rejected::AlreadyClaimed),
            _ => Err(StoreError::Protocol(format!("reject: {reply:?}"))),
        }
    }

    /// Gives the lease up if we still hold it.
    pub async fn release(&self, id: &WithdrawalId, owner: &LeaseOwner) -> Result<(), StoreError> {
        let lease = self.lease_key(id);
        let mut inv = scripts::RELEASE.key(&lease);
        inv.arg(&owner.0);
        self.run("release", inv).await?;
        Ok(())
    }

    /// With `redis.wait_replicas` > 0: waits until that many replicas have every write
    /// made so far on this connection, the withdrawal's record among them (`WAIT`, sent
    /// in a cluster to the primary of the record's slot). Fewer in time is an error: the
    /// caller must not let a request leave on a record a failover could lose.
    pub async fn replicated(&self, id: &WithdrawalId) -> Result<(), StoreError> {
        if self.wait_replicas == 0 {
            return Ok(());
        }
        let mut cmd = redis::cmd("WAIT");
        cmd.arg(self.wait_replicas).arg(self.wait_timeout_ms);
        METRICS.redis_round_trips.with_label_values(&["wait"]).inc();
        let budget = self.timeout + Duration::from_millis(self.wait_timeout_ms);
        let reply = match &self.conn {
            Conn::Single(c) => {
                let mut c = c.clone();
                tokio::time::timeout(budget, cmd.query_async::<Value>(&mut c)).await
            }
            Conn::Cluster(c) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let mut c = c.clone();
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::with_key(self.key(id), SlotAddr::Master),
                ));
                tokio::time::timeout(budget, c.route_command(cmd, route)).await
            }
        }
        .map_err(|_| StoreError::Timeout(budget))??;
        let acked: i64 =
            redis::from_redis_value(reply).map_err(|e| StoreError::Protocol(e.to_string()))?;
        if acked < i64::from(self.wait_replicas) {
            return Err(StoreError::NotReplicated {
                acked,
                wanted: self.wait_replicas,
            });
        }
        Ok(())
    }

    /// Takes the withdrawal's lease for `owner` (an operator's decision, say); `false`
    /// when a worker holds it.
    pub async fn take_lease(
        &self,
        id: &WithdrawalId,
        owner: &LeaseOwner,
    ) -> Result<bool, StoreError> {
        let lease = self.lease_key(id);
        let mut inv = scripts::TAKE_LEASE.key(&lease);
        inv.arg(&owner.0).arg(self.lease_ms);
        let taken: i64 = redis::from_redis_value(self.run("take_lease", inv).await?)
            .map_err(|e| StoreError::Protocol(e.to_string()))?;
        Ok(taken == 1)
    }

    /// Extends our lease; `false` when it is no longer ours (expired, or Redis lost it).
    pub async fn renew(&self, id: &WithdrawalId, owner: &LeaseOwner) -> Result<bool, StoreError> {
        let lease = self.lease_key(id);
        let mut inv = scripts::RENEW.key(&lease);
        inv.arg(&owner.0).arg(self.lease_ms);
        let renewed: i64 = redis::from_redis_value(self.run("renew", inv).await?)
            .map_err(|e| StoreError::Protocol(e.to_string()))?;
        Ok(renewed == 1)
    }

    /// Notes that the review event of `kind` has been published for this withdrawal.
    pub async fn note_review(&self, id: &WithdrawalId, kind: &str) -> Result<(), StoreError> {
        let key = self.key(id);
        let mut inv = scripts::NOTE.key(&key);
        inv.arg(format!("review:{kind}"));
        self.run("note_review", inv).await?;
        Ok(())
    }

    /// Counts a withdrawal against its account's limits for today (see
    /// [`crate::limits`]): `None` when it fits (or was counted before, today or on an
    /// earlier day of its window), else the breach. The account's keys share one hash
    /// tag, so the check and the count are one script.
    pub async fn reserve_daily(
        &self,
        r: &crate::limits::DailyReservation<'_>,
    ) -> Result<Option<crate::limits::Breach>, StoreError> {
        // Braces would move the hash tag: the account id is hashed for the key.
        let tag = hex::encode(&Sha256::digest(r.account_id.as_bytes())[..12]);
        let totals = |day: &str| format!("{}:account:{{{tag}}}:{day}", self.prefix);
        let Some(today) = r.days.first() else {
            return Err(StoreError::Protocol("reserve_daily: no day".into()));
        };
        let mut inv = scripts::RESERVE_DAILY.key(totals(today));
        for day in &r.days {
            inv.key(format!("{}:ids", totals(day)));
        }
        inv.arg(r.id.as_str())
            .arg(r.cents)
            .arg(r.max_cents)
            .arg(r.max_count)
            .arg(r.ttl_secs);
        let reply: Vec<String> = strings(self.run("reserve_daily", inv).await?)?;
        let yuan = |c: &str| rust_decimal::Decimal::new(c.parse().unwrap_or(0), 2);
        match reply.as_slice() {
            [status] if status == "ok" => Ok(None),
            [status, which, so_far] if status == "over" && which == "count" => {
                Ok(Some(crate::limits::Breach {
                    limit: "account_daily_count",
                    detail: format!(
                        "the account already has {so_far} withdrawal(s) today, at most {} allowed",
                        r.max_count
                    ),
                }))
            }
            [status, which, so_far] if status == "over" && which == "amount" => {
                Ok(Some(crate::limits::Breach {
                    limit: "account_daily_amount",
                    detail: format!(
                        "{} asked on top of {} today, at most {} allowed",
                        yuan(&r.cents.to_string()),
                        yuan(so_far),
                        yuan(&r.max_cents.to_string())
                    ),
                }))
            }
            _ => Err(StoreError::Protocol(format!("reserve_daily: {reply:?}"))),
        }
    }

    /// Puts a withdrawal on the index `review list` reads. Its own key (another cluster
    /// slot), so a plain command, written before the review event is published: an entry
    /// whose event was not published yet is harmless, `review list` shows the record.
    pub async fn index_review(&self, id: &WithdrawalId) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.review_index())
            .arg(chrono::Utc::now().timestamp())
            .arg(id.as_str());
        self.query::<i64>("index_review", &cmd).await?;
        Ok(())
    }

    fn review_index(&self) -> String {
        format!("{}:reviews", self.prefix)
    }

    /// Withdrawals that raised review, oldest first, with the time they did (unix secs).
    pub async fn reviews(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut cmd = redis::cmd("ZRANGE");
        cmd.arg(self.review_index())
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES");
        self.query("reviews", &cmd).await
    }

    /// Takes a withdrawal off the review index.
    pub async fn unlist_review(&self, id: &WithdrawalId) -> Result<(), StoreError> {
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(self.review_index()).arg(id.as_str());
        self.query::<i64>("unlist_review", &cmd).await?;
        Ok(())
    }

    /// Everything stored about a withdrawal (`None`: no record).
    pub async fn load(&self, id: &WithdrawalId) -> Result<Option<WithdrawalRecord>, StoreError> {
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(self.key(id));
        let fields: Vec<String> = self.query("load", &cmd).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        parse_record(&fields).map(Some)
    }

    /// Round-trip check for readiness.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.query::<String>("ping", &redis::cmd("PING")).await?;
        Ok(())
    }
}

/// Renews a lease every third of its time until dropped. If the lease is lost anyway
/// (Redis restarted, a pause longer than the lease), another worker may start on the
/// withdrawal: correctness does not rest on the lease, because every leg is queried by
/// its idempotency key before any resend and the channel refuses to pay a key twice.
pub struct LeaseRenewal(tokio::task::JoinHandle<()>);

impl LeaseRenewal {
    pub fn start(store: &Store, id: &WithdrawalId, owner: &LeaseOwner) -> Self {
        let (store, id, owner) = (store.clone(), id.clone(), owner.clone());
        let every = std::time::Duration::from_millis((store.lease_ms() / 3).max(1));
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match store.renew(&id, &owner).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(withdrawal_id = %id, "lease lost while working; idempotency keys still guard every leg");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(withdrawal_id = %id, error = %e, "could not renew the lease")
                    }
                }
            }
        }))
    }
}

impl Drop for LeaseRenewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A leg's field in the withdrawal's hash.
fn leg_field(leg: &LegId) -> String {
    format!("leg:{}", leg.as_str())
}

fn strings(v: Value) -> Result<Vec<String>, StoreError> {
    redis::from_redis_value(v).map_err(|e| StoreError::Protocol(e.to_string()))
}

fn parse_record(fields: &[String]) -> Result<WithdrawalRecord, StoreError> {
    let mut record = WithdrawalRecord::default();
    for pair in fields.chunks(2) {
        let [name, value] = pair else {
            return Err(StoreError::Protocol("odd HGETALL reply".into()));
        };
        if let Some(leg) = name.strip_prefix("leg:") {
            let parsed: LegRecord = serde_json::from_str(value)
                .map_err(|e| StoreError::Protocol(format!("leg {leg} record unreadable: {e}")))?;
            record.legs.insert(leg.to_owned(), (value.clone(), parsed));
        } else if name == "outcome" {
            record.outcome = Some(value.clone());
        } else if name == "cmd" {
            record.command = Some(value.clone());
        } else if let Some(kind) = name.strip_prefix("review:") {
            record.reviews_raised.push(kind.to_owned());
        } else if name == "in_review" {
            record.in_review = true;
        }
    }
    Ok(record)
}
