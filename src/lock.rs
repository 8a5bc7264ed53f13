//! The cluster locks (one aggregation at a time, one event migration at a time per index
//! prefix, whatever host runs them): one document each in `<prefix>stats-community-locks`,
//! created only if absent, renewed by the running job (heartbeat), released by
//! compare-and-delete. A crashed run's lock expires after its TTL, or is taken over at once
//! when its holder ran on this host and is gone; `clear-lock` removes it at once. No Redis
//! needed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opensearch::http::Method;
use serde_json::{json, Value};

use crate::dates::now_stamp;
use crate::error::{Error, Result};
use crate::search::SearchClient;

/// The lock index name (without prefix).
pub const LOCK_INDEX: &str = "stats-community-locks";

/// The locks this package takes (a closed set: one document id each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterLock {
    /// Held by `aggregate` (and checked by `destroy-indices`).
    Aggregation,
    /// Held by `migrate-events` and `clear-migration-checkpoints`.
    Migration,
}

impl ClusterLock {
    /// Every lock, in the order `clear-lock --list-locks` shows them.
    pub const ALL: [ClusterLock; 2] = [ClusterLock::Aggregation, ClusterLock::Migration];

    /// The lock's document id.
    pub fn id(self) -> &'static str {
        match self {
            ClusterLock::Aggregation => "aggregation",
            ClusterLock::Migration => "migration",
        }
    }

    /// What its holder does, for messages.
    pub fn what(self) -> &'static str {
        match self {
            ClusterLock::Aggregation => "aggregation",
            ClusterLock::Migration => "event migration",
        }
    }

    /// The lock `--lock-name` names: ours (`aggregation`, `migration`) or the reference's
    /// (`community_stats_aggregation`). The reference's cache lock has no counterpart here.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "aggregation" | "community_stats_aggregation" => Ok(ClusterLock::Aggregation),
            "migration" => Ok(ClusterLock::Migration),
            "community_stats_cache_generation" => Err(Error::invalid(
                "lock community_stats_cache_generation belongs to invenio-stats-dashboard's response cache, which this \
                 package does not have (its locks: aggregation, migration)",
            )),
            other => Err(Error::invalid(format!(
                "unknown lock {other:?} (use aggregation or migration)"
            ))),
        }
    }
}

/// A held lock; dropping it without [`HeldLock::release`] leaves it to expire.
pub struct HeldLock {
    client: SearchClient,
    path: String,
    version: Arc<Mutex<(u64, u64)>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

fn now_millis() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn lock_doc(ttl: Duration, acquired: &str) -> Value {
    json!({
        "owner": format!("{}:{}", hostname(), std::process::id()),
        "pid": std::process::id(),
        "acquired": acquired,
        "expires": now_millis() + ttl.as_millis() as i64,
    })
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown-host".into())
}

async fn ensure_index(client: &SearchClient) -> Result<()> {
    let mappings = json!({"dynamic": "strict", "properties": {
        "owner": {"type": "keyword"}, "pid": {"type": "long"},
        "acquired": {"type": "date", "format": "strict_date_hour_minute_second"},
        "expires": {"type": "date", "format": "epoch_millis"},
    }});
    client
        .ensure_index(&client.index(LOCK_INDEX), &mappings)
        .await
}

/// True if the lock's holder ran on this host and its process is gone (killed, crashed):
/// its lock is then taken over at once instead of after its TTL. A holder on another host,
/// or a PID in use again, is left to expire.
fn holder_gone(lock: &Value) -> bool {
    let (Some(owner), Some(pid)) = (lock["owner"].as_str(), lock["pid"].as_i64()) else {
        return false;
    };
    let on_this_host = owner
        .rsplit_once(':')
        .is_some_and(|(host, _)| host == hostname());
    on_this_host
        && pid > 0
        && pid != i64::from(std::process::id())
        && matches!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None),
            Err(nix::errno::Errno::ESRCH)
        )
}

fn version_of(reply: &Value) -> (u64, u64) {
    (
        reply["_seq_no"].as_u64().unwrap_or(0),
        reply["_primary_term"].as_u64().unwrap_or(0),
    )
}

fn held_message(lock: ClusterLock, doc: &Value) -> String {
    let s = &doc["_source"];
    let expires = s["expires"]
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    format!(
        "another {} is running (host:PID {} since {}); its lock expires at {} unless renewed. If that run crashed, \
         remove the lock with 'clear-lock --lock-name {}'",
        lock.what(),
        s["owner"].as_str().unwrap_or("?"),
        s["acquired"].as_str().unwrap_or("?"),
        expires.unwrap_or_else(|| "?".into()),
        lock.id(),
    )
}

/// Takes the lock, or fails with a clear message naming the holder. An expired lock is
/// taken over (atomically: only one contender wins). While held, a background task renews
/// it every third of `ttl`; if it is lost (taken over after a stall), the job is cancelled.
pub async fn acquire(client: &SearchClient, lock: ClusterLock, ttl: Duration) -> Result<HeldLock> {
    ensure_index(client).await?;
    let name = lock.id();
    let path = format!("{}/_doc/{name}", client.index(LOCK_INDEX));
    let create = format!("{}/_create/{name}?refresh=true", client.index(LOCK_INDEX));
    let acquired = now_stamp();
    let version = match client
        .json(Method::Put, &create, Some(&lock_doc(ttl, &acquired)))
        .await
    {
        Ok(reply) => version_of(&reply),
        Err(Error::Search { status: 409, .. }) => {
            let current = client
                .json_opt(Method::Get, &path, None)
                .await?
                .unwrap_or(Value::Null);
            let expired = current["_source"]["expires"]
                .as_i64()
                .is_some_and(|e| e < now_millis())
                || holder_gone(&current["_source"]);
            if current.is_null() || !expired {
                return Err(Error::Conflict(if current.is_null() {
                    format!("another {} took the lock just now", lock.what())
                } else {
                    held_message(lock, &current)
                }));
            }
            let (seq, term) = version_of(&current);
            let take = format!("{path}?if_seq_no={seq}&if_primary_term={term}&refresh=true");
            match client
                .json(Method::Put, &take, Some(&lock_doc(ttl, &acquired)))
                .await
            {
                Ok(reply) => {
                    log::warn!(
                        "took over the {} lock of a run that expired or ended without releasing it ({})",
                        lock.what(),
                        current["_source"]["owner"].as_str().unwrap_or("?")
                    );
                    version_of(&reply)
                }
                Err(Error::Search { status: 409, .. }) => {
                    return Err(Error::Conflict(format!(
                        "another {} took the expired lock just now",
                        lock.what()
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let version = Arc::new(Mutex::new(version));
    let heartbeat = tokio::spawn(renew(
        client.clone(),
        lock,
        path.clone(),
        version.clone(),
        ttl,
        acquired,
    ));
    Ok(HeldLock {
        client: client.clone(),
        path,
        version,
        heartbeat,
    })
}

async fn renew(
    client: SearchClient,
    lock: ClusterLock,
    path: String,
    version: Arc<Mutex<(u64, u64)>>,
    ttl: Duration,
    acquired: String,
) {
    loop {
        tokio::time::sleep(ttl / 3).await;
        let (seq, term) = *version.lock().expect("lock version");
        let url = format!("{path}?if_seq_no={seq}&if_primary_term={term}");
        match client
            .json(Method::Put, &url, Some(&lock_doc(ttl, &acquired)))
            .await
        {
            Ok(reply) => *version.lock().expect("lock version") = version_of(&reply),
            Err(Error::Search { status: 409, .. }) | Err(Error::Search { status: 404, .. }) => {
                log::error!(
                    "the {} lock was taken over or removed: stopping after the batch in hand",
                    lock.what()
                );
                client.cancel_token().cancel();
                return;
            }
            Err(e) => log::warn!("could not renew the {} lock (will retry): {e}", lock.what()),
        }
    }
}

impl HeldLock {
    /// Releases the lock if it is still ours (compare-and-delete).
    pub async fn release(self) -> Result<()> {
        self.heartbeat.abort();
        let (seq, term) = *self.version.lock().expect("lock version");
        let url = format!(
            "{}?if_seq_no={seq}&if_primary_term={term}&refresh=true",
            self.path
        );
        match self.client.json_opt(Method::Delete, &url, None).await {
            Ok(_) | Err(Error::Search { status: 409, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The lock document's source while it is held and unexpired (a running job), else `None`.
pub async fn live(client: &SearchClient, lock: ClusterLock) -> Result<Option<Value>> {
    if !client.exists(&client.index(LOCK_INDEX)).await? {
        return Ok(None);
    }
    let path = format!("{}/_doc/{}", client.index(LOCK_INDEX), lock.id());
    let held = client.json_opt(Method::Get, &path, None).await?;
    Ok(held
        .map(|mut h| h["_source"].take())
        .filter(|s| s["expires"].as_i64().is_some_and(|e| e > now_millis())))
}

/// The lock document's source whether or not it has expired (`clear-lock --list-locks`),
/// `None` when there is none.
pub async fn current(client: &SearchClient, lock: ClusterLock) -> Result<Option<Value>> {
    if !client.exists(&client.index(LOCK_INDEX)).await? {
        return Ok(None);
    }
    let path = format!("{}/_doc/{}", client.index(LOCK_INDEX), lock.id());
    Ok(client
        .json_opt(Method::Get, &path, None)
        .await?
        .map(|mut h| h["_source"].take()))
}

/// Removes the lock whoever holds it (`clear-lock`); returns the removed lock's owner and
/// acquisition time, or `None` when there was no lock.
pub async fn clear(client: &SearchClient, lock: ClusterLock) -> Result<Option<Value>> {
    let path = format!("{}/_doc/{}", client.index(LOCK_INDEX), lock.id());
    let Some(current) = current(client, lock).await? else {
        return Ok(None);
    };
    client
        .json_opt(Method::Delete, &format!("{path}?refresh=true"), None)
        .await?;
    Ok(Some(current))
}

/// Options of `clear-lock`.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClearLockOptions {
    /// The lock (see [`ClusterLock::parse`]).
    pub lock_name: String,
    /// List every lock instead of removing one.
    pub list_locks: bool,
    /// Say what would be removed; remove nothing.
    pub dry_run: bool,
}

/// `clear-lock`: lists the locks (`{"locks": [{name, lock, live}]}`), or removes one
/// (`{name, removed, lock}`; with `dry_run`, `would_remove` instead).
pub async fn clear_command(client: &SearchClient, options: &ClearLockOptions) -> Result<Value> {
    if options.list_locks {
        let mut locks = Vec::new();
        for lock in ClusterLock::ALL {
            let held = current(client, lock).await?;
            let live = held
                .as_ref()
                .is_some_and(|h| h["expires"].as_i64().is_some_and(|e| e > now_millis()));
            locks.push(json!({"name": lock.id(), "lock": held, "live": live}));
        }
        return Ok(json!({ "locks": locks }));
    }
    let lock = ClusterLock::parse(&options.lock_name)?;
    if options.dry_run {
        let held = current(client, lock).await?;
        return Ok(
            json!({"name": lock.id(), "removed": false, "would_remove": held.is_some(), "lock": held}),
        );
    }
    Ok(match clear(client, lock).await? {
        Some(held) => json!({"name": lock.id(), "removed": true, "lock": held}),
        None => json!({"name": lock.id(), "removed": false}),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_ours_and_the_references() {
        assert_eq!(
            ClusterLock::parse("aggregation").unwrap(),
            ClusterLock::Aggregation
        );
        assert_eq!(
            ClusterLock::parse("community_stats_aggregation").unwrap(),
            ClusterLock::Aggregation
        );
        assert_eq!(
            ClusterLock::parse("migration").unwrap(),
            ClusterLock::Migration
        );
        let cache = ClusterLock::parse("community_stats_cache_generation").unwrap_err();
        assert!(cache.to_string().contains("response cache"), "{cache}");
        assert!(ClusterLock::parse("nope").is_err());
        for lock in ClusterLock::ALL {
            assert_eq!(ClusterLock::parse(lock.id()).unwrap(), lock);
        }
    }
}
