//! The aggregation lock: one document in `<prefix>stats-community-locks`, created only if
//! absent, renewed by the running job (heartbeat), released by compare-and-delete. A crashed
//! run's lock expires after its TTL, or is taken over at once when its holder ran on this
//! host and is gone; `clear-lock` removes it at once. No Redis needed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opensearch::http::Method;
use serde_json::{json, Value};

use crate::dates::now_stamp;
use crate::error::{Error, Result};
use crate::search::SearchClient;

/// The lock index name (without prefix).
pub const LOCK_INDEX: &str = "stats-community-locks";
/// The aggregation lock's document id.
pub const AGGREGATION_LOCK: &str = "aggregation";

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

fn held_message(doc: &Value) -> String {
    let s = &doc["_source"];
    let expires = s["expires"]
        .as_i64()
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string());
    format!(
        "another aggregation is running ({} since {}); its lock expires at {} unless renewed. If that run crashed, \
         remove the lock with 'clear-lock'",
        s["owner"].as_str().unwrap_or("?"),
        s["acquired"].as_str().unwrap_or("?"),
        expires.unwrap_or_else(|| "?".into()),
    )
}

/// Takes the lock, or fails with a clear message naming the holder. An expired lock is
/// taken over (atomically: only one contender wins). While held, a background task renews
/// it every third of `ttl`; if it is lost (taken over after a stall), the job is cancelled.
pub async fn acquire(client: &SearchClient, name: &str, ttl: Duration) -> Result<HeldLock> {
    ensure_index(client).await?;
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
                    "another aggregation took the lock just now".into()
                } else {
                    held_message(&current)
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
                        "took over the aggregation lock of a run that expired or ended without releasing it ({})",
                        current["_source"]["owner"].as_str().unwrap_or("?")
                    );
                    version_of(&reply)
                }
                Err(Error::Search { status: 409, .. }) => {
                    return Err(Error::Conflict(
                        "another aggregation took the expired lock just now".into(),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let version = Arc::new(Mutex::new(version));
    let heartbeat = tokio::spawn(renew(
        client.clone(),
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
                log::error!("the aggregation lock was taken over or removed: stopping after the batch in hand");
                client.cancel_token().cancel();
                return;
            }
            Err(e) => log::warn!("could not renew the aggregation lock (will retry): {e}"),
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

/// The lock document's source while it is held and unexpired (a running aggregation),
/// else `None`.
pub async fn live(client: &SearchClient, name: &str) -> Result<Option<Value>> {
    let path = format!("{}/_doc/{name}", client.index(LOCK_INDEX));
    let held = client.json_opt(Method::Get, &path, None).await?;
    Ok(held
        .map(|mut h| h["_source"].take())
        .filter(|s| s["expires"].as_i64().is_some_and(|e| e > now_millis())))
}

/// Removes the lock whoever holds it (`clear-lock`); returns the removed lock's owner and
/// acquisition time, or `None` when there was no lock.
pub async fn clear(client: &SearchClient, name: &str) -> Result<Option<Value>> {
    let path = format!("{}/_doc/{name}", client.index(LOCK_INDEX));
    let Some(current) = client.json_opt(Method::Get, &path, None).await? else {
        return Ok(None);
    };
    client
        .json_opt(Method::Delete, &format!("{path}?refresh=true"), None)
        .await?;
    Ok(Some(current["_source"].clone()))
}
