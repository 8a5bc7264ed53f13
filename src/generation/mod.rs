//! Event generation: backfilling `stats-community-events` from the records index, and
//! synthetic usage events for tests and demos.

pub mod community_events;
pub mod usage_events;

use serde_json::{json, Value};

use crate::bulk::{BulkPipeline, BulkTotals};
use crate::error::{Error, Result};
use crate::pit::PitReader;
use crate::search::SearchClient;

/// Ends a generator's loop: closes the point in time and waits for every queued write,
/// whether the loop succeeded or failed (a cancelled loop has already dropped what it had
/// not sent: `stop_if_cancelled`); then returns the loop's error, if any, or the write totals.
pub(crate) async fn finish(
    reader: PitReader,
    pipeline: BulkPipeline,
    result: Result<()>,
) -> Result<BulkTotals> {
    let _ = reader.close().await;
    let totals = pipeline.finish().await;
    result?;
    totals
}

/// When the job was asked to stop: wait for the requests under way, drop the documents not
/// yet sent (every generated document has a deterministic `_id` and is written create-only,
/// so the re-run writes exactly the missing ones), then stop with `message`.
pub(crate) async fn stop_if_cancelled(
    client: &SearchClient,
    pipeline: &mut BulkPipeline,
    message: impl FnOnce() -> String,
) -> Result<()> {
    if client.cancel_token().is_cancelled() {
        let dropped = pipeline.discard_unsent().await?;
        log::info!("cancelled: {dropped} generated documents not yet sent are left to the re-run");
        return Err(Error::Cancelled(message()));
    }
    Ok(())
}

/// The records query shared by both generators.
pub(crate) fn records_query(
    record_ids: &[String],
    created_from: Option<chrono::NaiveDate>,
    created_to: Option<chrono::NaiveDate>,
    communities: &[String],
    published_only: bool,
) -> Value {
    let mut filter = Vec::new();
    if published_only {
        filter.push(json!({"term": {"is_published": true}}));
    }
    if !record_ids.is_empty() {
        filter.push(json!({"terms": {"id": record_ids}}));
    }
    let mut range = serde_json::Map::new();
    if let Some(d) = created_from {
        range.insert(
            "gte".into(),
            json!(format!("{}T00:00:00", d.format("%Y-%m-%d"))),
        );
    }
    if let Some(d) = created_to {
        range.insert(
            "lte".into(),
            json!(format!("{}T23:59:59.999", d.format("%Y-%m-%d"))),
        );
    }
    if !range.is_empty() {
        filter.push(json!({"range": {"created": range}}));
    }
    if !communities.is_empty() {
        filter.push(json!({"terms": {"parent.communities.ids": communities}}));
    }
    json!({"bool": {"filter": filter}})
}
