//! `generate-community-events`: an `added` event for `global` and for each community of
//! every published record version, into `stats-community-events-YYYY` (by event year).
//!
//! Decisions: every published version gets events (membership belongs to the parent, so
//! all versions share it; usage events of any version can then be attributed);
//! `event_date` is the record's `created` (the real add date is unknown for a backfill);
//! tombstoned records carry `is_deleted` and `deleted_date`. Idempotent by construction:
//! `_id` = `<record_id>-<community_id>-added`, written create-only; and a record and
//! community that already have an `added` event under another `_id` (written by another
//! tool) get none from the backfill.

use std::collections::HashSet;

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{finish, records_query, stop_if_cancelled};
use crate::bulk::{BulkOp, BulkPipeline};
use crate::dates::{check_range, edtf_start, millis_stamp, parse_day_opt, parse_timestamp};
use crate::enrich::current_communities;
use crate::error::{Error, Result};
use crate::pit::PitReader;
use crate::progress::Progress;
use crate::search::SearchClient;
use crate::{communities, templates};

/// Options of `generate-community-events`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityEventsOptions {
    /// Only these communities (ids or slugs); their events only, no `global`.
    pub community_ids: Vec<String>,
    /// Only these records (ids).
    pub record_ids: Vec<String>,
    /// Records created on or after this day.
    pub start_date: Option<String>,
    /// Records created on or before this day.
    pub end_date: Option<String>,
    /// Count what would be written; write nothing.
    pub dry_run: bool,
    /// Records per page (and per bulk request of events, roughly).
    pub batch_size: usize,
}

impl CommunityEventsOptions {
    /// The records' creation range, checked (with the batch size).
    fn record_dates(&self) -> Result<(Option<NaiveDate>, Option<NaiveDate>)> {
        let start = parse_day_opt("--start-date", self.start_date.as_deref())?;
        let end = parse_day_opt("--end-date", self.end_date.as_deref())?;
        check_range("record dates", start, end)?;
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(Error::invalid("batch size must be between 1 and 10,000"));
        }
        Ok((start, end))
    }
}

impl crate::options::Validate for CommunityEventsOptions {
    fn validate(&self) -> Result<()> {
        self.record_dates().map(|_| ())
    }
}

/// What a run did (or, dry, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct CommunityEventsReport {
    /// Records read.
    pub records_processed: u64,
    /// Events written (dry run: that would be written).
    pub events_created: u64,
    /// Events already present (nothing written for them).
    pub events_existing: u64,
    /// Events that failed, with the first reasons.
    pub events_failed: u64,
    /// First failure reasons.
    pub failure_reasons: Vec<String>,
    /// Records that are deleted (tombstones).
    pub deleted_records: u64,
    /// Publication dates that could not be read (the field is then left out).
    pub unreadable_publication_dates: u64,
    /// A few of them, as `record: value`.
    pub unreadable_examples: Vec<String>,
    /// The communities selected (resolved ids), empty for all.
    pub communities: Vec<String>,
    /// Dry run: the missing events per community id (`global` included).
    pub missing_by_community: std::collections::BTreeMap<String, u64>,
    /// True for a dry run.
    pub dry_run: bool,
}

/// The events of one record: (index, _id, document).
fn record_events(
    client: &SearchClient,
    record: &Value,
    selected: &[String],
    now: &str,
    report: &mut CommunityEventsReport,
) -> Vec<(String, String, Value)> {
    let Some(record_id) = record["id"].as_str() else {
        return Vec::new();
    };
    let Some(created) = record["created"].as_str().and_then(parse_timestamp) else {
        log::warn!("record {record_id} has no readable `created` date; no community events for it");
        return Vec::new();
    };
    let mut targets: Vec<String> = Vec::new();
    if selected.is_empty() {
        targets.push("global".into());
        targets.extend(current_communities(record));
    } else {
        targets.extend(
            current_communities(record)
                .into_iter()
                .filter(|c| selected.contains(c)),
        );
    }
    targets.dedup();
    let deleted = record["is_deleted"].as_bool().unwrap_or(false)
        || record["deletion_status"].as_str() == Some("D");
    if deleted {
        report.deleted_records += 1;
    }
    let published = match record["metadata"]["publication_date"].as_str() {
        Some(text) => match edtf_start(text) {
            Some(d) => Some(format!("{}T00:00:00", d.format("%Y-%m-%d"))),
            None => {
                report.unreadable_publication_dates += 1;
                if report.unreadable_examples.len() < 5 {
                    report
                        .unreadable_examples
                        .push(format!("{record_id}: {text:?}"));
                }
                log::warn!("record {record_id}: publication date {text:?} is not an EDTF date; record_published_date left out");
                None
            }
        },
        None => None,
    };
    let year = created.format("%Y").to_string();
    let index = client.index(&format!("stats-community-events-{year}"));
    targets
        .into_iter()
        .map(|community| {
            let mut doc = json!({
                "record_id": record_id,
                "community_id": community,
                "event_type": "added",
                "event_date": millis_stamp(created),
                "record_created_date": millis_stamp(created),
                "is_deleted": deleted,
                "timestamp": now,
                "updated_timestamp": now,
            });
            if let Some(p) = &published {
                doc["record_published_date"] = json!(p);
            }
            if deleted {
                if let Some(d) = record["tombstone"]["removal_date"]
                    .as_str()
                    .and_then(parse_timestamp)
                {
                    doc["deleted_date"] = json!(millis_stamp(d));
                }
            }
            (index.clone(), format!("{record_id}-{community}-added"), doc)
        })
        .collect()
}

/// Runs the backfill (or its dry count).
pub async fn generate(
    client: &SearchClient,
    options: &CommunityEventsOptions,
    progress: &Progress,
) -> Result<CommunityEventsReport> {
    let (start, end) = options.record_dates()?;
    let batch = options.batch_size;
    let records = client.index("rdmrecords-records");
    if !client.exists(&records).await? {
        return Err(Error::Data(format!(
            "the records index {records} does not exist"
        )));
    }
    let selected = communities::resolve(client, &options.community_ids).await?;
    if !options.record_ids.is_empty() {
        // Every record named must exist: an unknown id is bad input, refused before anything is written.
        let body = json!({"size": options.record_ids.len(), "query": {"terms": {"id": options.record_ids}}, "_source": ["id"]});
        let found: std::collections::HashSet<String> = client
            .search_hits(&records, &body)
            .await?
            .iter()
            .filter_map(|h| h["_source"]["id"].as_str().map(String::from))
            .collect();
        let unknown: Vec<&str> = options
            .record_ids
            .iter()
            .filter(|r| !found.contains(r.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(Error::invalid(format!(
                "unknown record ids (not in {records}): {}",
                unknown.join(", ")
            )));
        }
    }
    let mut report = CommunityEventsReport {
        communities: selected.clone(),
        dry_run: options.dry_run,
        ..Default::default()
    };
    if !options.dry_run {
        templates::install(client, &["stats-community-events-v1.0.0"]).await?;
    }
    let query = records_query(&options.record_ids, start, end, &selected, true);
    progress.set_total(client.count(&records, Some(&query)).await?);
    progress.set_task("reading records");
    let now = millis_stamp(Utc::now());
    let source = json!([
        "id",
        "created",
        "parent.communities.ids",
        "is_deleted",
        "deletion_status",
        "tombstone.removal_date",
        "metadata.publication_date"
    ]);
    let mut reader = PitReader::open(
        client,
        &records,
        query,
        json!([{"id": "asc"}]),
        batch,
        source,
    )
    .await?;
    let mut pipeline = BulkPipeline::new(client.clone(), BulkOp::Create, batch * 2, 2);
    let result: Result<()> = async {
        while let Some(page) = reader.next_page().await? {
            let mut events = Vec::new();
            for hit in &page {
                events.extend(record_events(client, &hit["_source"], &selected, &now, &mut report));
            }
            report.records_processed += page.len() as u64;
            // An `added` event of the same record and community already recorded (ours, or
            // another tool's under another `_id`) is not written again.
            let recorded = recorded_additions(client, &page).await?;
            let before = events.len();
            events.retain(|(_, _, doc)| {
                let key = (doc["record_id"].as_str().unwrap_or_default(), doc["community_id"].as_str().unwrap_or_default());
                !recorded.contains(&(key.0.to_string(), key.1.to_string()))
            });
            report.events_existing += (before - events.len()) as u64;
            if options.dry_run {
                report.events_created += events.len() as u64;
                for (_, _, doc) in &events {
                    let community = doc["community_id"].as_str().unwrap_or_default();
                    *report.missing_by_community.entry(community.to_string()).or_default() += 1;
                }
            } else {
                for (index, id, doc) in &events {
                    pipeline.add(index, id, doc).await?;
                }
                pipeline.dispatch().await?;
            }
            progress.advance(page.len() as u64);
            let done = report.records_processed;
            stop_if_cancelled(client, &mut pipeline, || {
                format!("community event generation stopped after {done} records; run it again to finish (nothing is written twice)")
            })
            .await?;
        }
        Ok(())
    }
    .await;
    let totals = finish(reader, pipeline, result).await?;
    if !options.dry_run {
        report.events_created = totals.written;
        report.events_existing += totals.already_present;
        report.events_failed = totals.failed;
        report.failure_reasons = totals.failure_reasons;
        client
            .refresh(&client.index("stats-community-events-*"))
            .await?;
    }
    progress.flush();
    Ok(report)
}

/// The (record, community) pairs of `page`'s records that already have an `added` event,
/// whatever its `_id` or day (an instance that ran invenio-stats-dashboard has them under
/// generated ids, dated when the record joined). One search per page of records.
async fn recorded_additions(
    client: &SearchClient,
    page: &[Value],
) -> Result<HashSet<(String, String)>> {
    let mut out = HashSet::new();
    let ids: Vec<&str> = page
        .iter()
        .filter_map(|h| h["_source"]["id"].as_str())
        .collect();
    let index = client.index("stats-community-events");
    if ids.is_empty() || !client.exists(&index).await? {
        return Ok(out);
    }
    let body = json!({
        "size": 10_000,
        "query": {"bool": {"filter": [{"terms": {"record_id": ids}}, {"term": {"event_type": "added"}}]}},
        "sort": [{"record_id": "asc"}, {"community_id": "asc"}, {"event_date": "asc"}],
        "_source": ["record_id", "community_id"],
    });
    client
        .for_each_page(&index, body, |hits| {
            for h in hits {
                if let (Some(r), Some(c)) = (
                    h["_source"]["record_id"].as_str(),
                    h["_source"]["community_id"].as_str(),
                ) {
                    out.insert((r.to_string(), c.to_string()));
                }
            }
        })
        .await?;
    Ok(out)
}
