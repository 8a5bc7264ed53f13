//! Events that arrive unenriched after the migration.
//!
//! After a month is switched, invenio-stats goes on writing to the legacy name (now a write
//! alias of the `-v2.0.0` index), and it creates each new month's index from our v2 template:
//! either way its events carry neither `community_ids` nor the record's metadata, so they
//! would count for `global` only. Before each aggregation, every v2-mapped index of the two
//! read aliases is brought up to date with the migration's own mechanism, the `_seq_no`
//! catch-up: per index and shard, everything written above the index's *enrichment
//! watermark* that lacks the enrichment is enriched and written back under its `_id`; then
//! the watermark moves to where the index stood when the pass began. The watermarks live in
//! the migration's state index (`enrich-<index>` documents), with the index's UUID, so an
//! index deleted and created again under the same name is read from its start.

use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::live::{copy_seq_range, shard_seq_nos, Destination};
use super::state::{self, STATE_INDEX};
use crate::bulk::{BulkOp, BulkPipeline};
use crate::enrich::RecordCache;
use crate::error::Result;
use crate::events::EventType;
use crate::search::SearchClient;

/// Documents read per request.
const BATCH: usize = 1000;

/// What one pass did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LateEnrichmentReport {
    /// v2-mapped indices looked at.
    pub indices: u64,
    /// Events enriched and written back.
    pub events_enriched: u64,
    /// Of those, events whose record is not in the records index (kept as they were, with
    /// an empty `community_ids`).
    pub records_missing: u64,
}

/// The enrichment watermark of one index.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Watermark {
    index: String,
    index_uuid: String,
    seq_watermark: Vec<i64>,
    enriched: u64,
    updated: String,
}

fn doc_path(client: &SearchClient, index: &str) -> String {
    format!("{}/_doc/enrich-{index}", client.index(STATE_INDEX))
}

/// The concrete indices of `alias` whose mapping has the v2 fields, with their UUIDs.
async fn v2_indices(client: &SearchClient, alias: &str) -> Result<Vec<(String, String)>> {
    let Some(mappings) = client
        .json_opt(Method::Get, &format!("{alias}/_mapping"), None)
        .await?
    else {
        return Ok(Vec::new());
    };
    let settings = client
        .json(Method::Get, &format!("{alias}/_settings/index.uuid"), None)
        .await?;
    let mut out = Vec::new();
    for (index, m) in mappings.as_object().into_iter().flatten() {
        if m["mappings"]["properties"]["community_ids"].is_null() {
            continue; // a legacy (v1) index: the migration copies it
        }
        let uuid = settings[index]["settings"]["index"]["uuid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        out.push((index.clone(), uuid));
    }
    out.sort();
    Ok(out)
}

/// Enriches what arrived unenriched in the v2 indices since the last pass (see the module
/// documentation). Cheap when nothing arrived: one `_stats` request per index.
pub async fn enrich_late_events(client: &SearchClient) -> Result<LateEnrichmentReport> {
    let mut report = LateEnrichmentReport::default();
    let mut cache = RecordCache::default();
    let mut pipeline = BulkPipeline::new(client.clone(), BulkOp::Index, BATCH, 2);
    // Unenriched: no `community_ids` and no `access_status` (every known record has one).
    let filter = json!({"bool": {"must_not": [{"exists": {"field": "community_ids"}}, {"exists": {"field": "access_status"}}]}});
    let mut state_ready = false;
    for event_type in EventType::ALL {
        for (index, uuid) in v2_indices(client, &client.index(&event_type.alias())).await? {
            report.indices += 1;
            let saved: Option<Watermark> = client
                .json_opt(Method::Get, &doc_path(client, &index), None)
                .await?
                .filter(|v| v["found"].as_bool() == Some(true))
                .and_then(|v| serde_json::from_value(v["_source"].clone()).ok());
            let now = shard_seq_nos(client, &index).await?;
            let from = match &saved {
                Some(w) if w.index_uuid == uuid && w.seq_watermark.len() == now.len() => {
                    w.seq_watermark.clone()
                }
                _ => vec![-1; now.len()],
            };
            if from == now {
                continue;
            }
            let mut missing = 0;
            // Written enriched with an empty `community_ids` (a record in no community, or
            // unknown): the filter cannot tell those from unenriched ones, the source can.
            let enriched_before = |hit: &Value| hit["_source"].get("community_ids").is_some();
            let n = copy_seq_range(
                client,
                &index,
                Destination::SameIndex,
                &from,
                &now,
                Some(&filter),
                enriched_before,
                BATCH,
                &mut cache,
                &mut pipeline,
                &mut missing,
            )
            .await?;
            if n > 0 {
                log::info!("{index}: enriched {n} events written since the last pass");
            }
            report.events_enriched += n;
            report.records_missing += missing;
            if !state_ready {
                state::ensure_index(client).await?;
                state_ready = true;
            }
            let mark = Watermark {
                index: index.clone(),
                index_uuid: uuid,
                seq_watermark: now,
                enriched: saved.map(|w| w.enriched).unwrap_or(0) + n,
                updated: chrono::Utc::now().to_rfc3339(),
            };
            client
                .json(
                    Method::Put,
                    &doc_path(client, &index),
                    Some(&serde_json::to_value(&mark).expect("serialises")),
                )
                .await?;
        }
    }
    if report.events_enriched > 0 {
        client.refresh(&client.index("events-stats-*")).await?;
    }
    Ok(report)
}
