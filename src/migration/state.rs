//! The migration's state: one document per (event type, month) in
//! `<prefix>stats-community-migration` — state, counts, checkpoint, last error — written
//! after every acknowledged batch, so a re-run resumes and a failure keeps its reason.

use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::events::EventType;
use crate::search::SearchClient;

/// Where a month stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MonthState {
    /// Nothing copied yet.
    #[default]
    Pending,
    /// Copying; resumable from `checkpoint`.
    Copying,
    /// Stopped before the end (cancel, --max-batches, memory); resumable.
    Interrupted,
    /// Live month being switched over: new writes to the legacy name are rerouted to the
    /// target; the next run finishes the switchover.
    Switching,
    /// Copied and verified; the read alias points at the new index.
    Done,
    /// Verification or the alias switch failed; nothing was switched or deleted.
    Failed,
}

/// The state document of one (event type, month).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MonthRecord {
    /// `view` or `download`.
    pub event_type: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The state.
    pub state: MonthState,
    /// Source documents when last counted.
    pub source_count: u64,
    /// Documents written into the target so far (acknowledged).
    pub migrated: u64,
    /// The earliest of the slice checkpoints (for display): the copy is acknowledged up to
    /// here at least.
    pub checkpoint: Option<String>,
    /// Per point-in-time slice, the timestamp (`YYYY-MM-DDTHH:MM:SS`) up to which the
    /// slice's documents are acknowledged: a re-run reads each slice from its checkpoint
    /// (inclusive; re-writing the same `_id` is harmless). Its length is the month's slice
    /// count, fixed when its copy starts.
    #[serde(default)]
    pub slice_checkpoints: Vec<Option<String>>,
    /// The last error, kept after a failure.
    pub error: Option<String>,
    /// Verification summary.
    pub verified: Option<String>,
    /// Source index deleted after verification (`--delete-old-indices`), or replaced by an
    /// alias of the target (live month).
    #[serde(default)]
    pub source_deleted: bool,
    /// Per shard of the source, the highest `_seq_no` already copied or covered by the copy's
    /// point in time: later writes (whatever their timestamp) are caught up by `_seq_no`.
    #[serde(default)]
    pub seq_watermark: Option<Vec<i64>>,
    /// A write-blocked clone of the live month's source, kept when the source name became an
    /// alias (without `--delete-old-indices`).
    #[serde(default)]
    pub backup: Option<String>,
    /// Last write (ISO time).
    pub updated: String,
}

/// The state index (without prefix).
pub const STATE_INDEX: &str = "stats-community-migration";

fn doc_id(event_type: EventType, month: &str) -> String {
    format!("{}-{month}", event_type.short_name())
}

/// Reads the state of one month (default: pending).
pub async fn load(
    client: &SearchClient,
    event_type: EventType,
    month: &str,
) -> Result<MonthRecord> {
    let path = format!(
        "{}/_doc/{}",
        client.index(STATE_INDEX),
        doc_id(event_type, month)
    );
    let found = client.json_opt(Method::Get, &path, None).await?;
    let record = found
        .filter(|v| v["found"].as_bool() == Some(true))
        .and_then(|v| serde_json::from_value::<MonthRecord>(v["_source"].clone()).ok());
    Ok(record.unwrap_or_else(|| MonthRecord {
        event_type: event_type.short_name().into(),
        month: month.into(),
        ..Default::default()
    }))
}

fn mapping() -> Value {
    json!({"dynamic": "strict", "properties": {
        "event_type": {"type": "keyword"}, "month": {"type": "keyword"}, "state": {"type": "keyword"},
        "source_count": {"type": "long"}, "migrated": {"type": "long"}, "checkpoint": {"type": "keyword"},
        "slice_checkpoints": {"type": "keyword"},
        "error": {"type": "text"}, "verified": {"type": "text"}, "source_deleted": {"type": "boolean"},
        "seq_watermark": {"type": "long"}, "backup": {"type": "keyword"},
        "updated": {"type": "date"},
        "index": {"type": "keyword"}, "index_uuid": {"type": "keyword"}, "enriched": {"type": "long"},
    }})
}

/// Creates the state index, or adds the fields of this version to an older one (additive).
pub async fn ensure_index(client: &SearchClient) -> Result<()> {
    client
        .ensure_index(&client.index(STATE_INDEX), &mapping())
        .await
}

/// Writes the state of one month (the index is made by [`ensure_index`] at the start of a run).
pub async fn save(
    client: &SearchClient,
    event_type: EventType,
    record: &mut MonthRecord,
) -> Result<()> {
    record.updated = chrono::Utc::now().to_rfc3339();
    let index = client.index(STATE_INDEX);
    // Reads go by _id (real time): no refresh needed.
    let path = format!("{index}/_doc/{}", doc_id(event_type, &record.month));
    let body: Value = serde_json::to_value(&*record).expect("serialises");
    client.json(Method::Put, &path, Some(&body)).await?;
    Ok(())
}

/// Records, best effort (the cluster may be the problem), that a month stopped on `error`:
/// a month that was copying becomes `interrupted` (a re-run resumes it) and keeps the reason.
pub async fn record_failure(
    client: &SearchClient,
    event_type: EventType,
    month: &str,
    error: &Error,
) {
    if matches!(error, Error::Cancelled(_)) {
        return; // the month saved its own state when it stopped
    }
    let Ok(mut record) = load(client, event_type, month).await else {
        return;
    };
    if record.state == MonthState::Copying {
        record.state = MonthState::Interrupted;
    }
    record.error = Some(format!("stopped by an error (a re-run resumes): {error}"));
    let _ = save(client, event_type, &mut record).await;
}

/// Deletes the state of one month (`--fresh-start`).
pub async fn reset(client: &SearchClient, event_type: EventType, month: &str) -> Result<()> {
    let path = format!(
        "{}/_doc/{}?refresh=wait_for",
        client.index(STATE_INDEX),
        doc_id(event_type, month)
    );
    client.json_opt(Method::Delete, &path, None).await?;
    Ok(())
}
