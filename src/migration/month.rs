//! One month of one event type: copy (enriched, same `_id`s) from the checkpoint on,
//! verify, switch the read alias atomically, optionally delete the source.
//!
//! Safety rules: the target is kept out of the read alias until its month is verified (no
//! double counting); the checkpoint only moves after a batch is acknowledged; a month is
//! switched only when the source is exhausted *and* the counts and a field-by-field sample
//! agree; the source is deleted only after that, and only on request.

use chrono::Utc;
use opensearch::http::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::state::{self, MonthRecord, MonthState};
use super::{MigrationOptions, MonthPlan};
use crate::bulk::{BulkOp, BulkPipeline};
use crate::dates::parse_timestamp;
use crate::enrich::RecordCache;
use crate::error::{Error, Result};
use crate::events::EventType;
use crate::pit::PitReader;
use crate::progress::Progress;
use crate::search::SearchClient;

/// What happened to one month in this run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MonthOutcome {
    /// `view` or `download`.
    pub event_type: String,
    /// `YYYY-MM`.
    pub month: String,
    /// State after this run.
    pub state: MonthState,
    /// Documents in the source.
    pub source_count: u64,
    /// Documents in the target.
    pub target_count: u64,
    /// Documents written in this run.
    pub written: u64,
    /// Batches done in this run.
    pub batches: u64,
    /// Events whose record is not in the records index (kept, without record fields).
    pub records_missing: u64,
    /// The checkpoint after this run.
    pub checkpoint: Option<String>,
    /// True if the read alias now points at the target.
    pub switched: bool,
    /// True if the source index was deleted.
    pub source_deleted: bool,
    /// Why the month stopped or failed.
    pub message: Option<String>,
    /// Seconds spent.
    pub seconds: f64,
}

fn memory_percent() -> f64 {
    let Ok(mut system) = sysinfo::System::new() else { return 0.0 };
    system.refresh_memory();
    let total = system.total_memory();
    if total == 0 {
        return 0.0;
    }
    system.used_memory() as f64 * 100.0 / total as f64
}

/// A month still receiving events: the current UTC month, or the previous one on the first
/// day of a month (invenio-stats indexes queued events up to ~an hour late).
pub fn is_live(month: &str) -> bool {
    let now = Utc::now();
    let current = now.format("%Y-%m").to_string();
    let previous = (now - chrono::Duration::days(1)).format("%Y-%m").to_string();
    month >= current.as_str() || (month == previous && now.format("%d").to_string() == "01")
}

async fn set_refresh(client: &SearchClient, index: &str, interval: &str) -> Result<()> {
    client
        .json(Method::Put, &format!("{index}/_settings"), Some(&json!({"index": {"refresh_interval": interval}})))
        .await?;
    Ok(())
}

pub(crate) async fn in_alias(client: &SearchClient, index: &str, alias: &str) -> Result<bool> {
    Ok(client.json_opt(Method::Get, &format!("{index}/_alias/{alias}"), None).await?.map(|v| v.as_object().map(|o| !o.is_empty()).unwrap_or(false)).unwrap_or(false))
}

/// Creates the target (from the v2 template) and takes it out of the read alias before it
/// holds a single document; on resume, makes sure it is still out.
async fn prepare_target(client: &SearchClient, target: &str, alias: &str) -> Result<()> {
    if !client.exists(target).await? {
        client.json(Method::Put, target, Some(&json!({}))).await?;
    }
    if in_alias(client, target, alias).await? {
        let body = json!({"actions": [{"remove": {"index": target, "alias": alias}}]});
        client.json(Method::Post, "_aliases", Some(&body)).await?;
    }
    Ok(())
}

/// Field-by-field comparison of a sample: every source field must be in the target, equal.
async fn verify_sample(client: &SearchClient, source: &str, target: &str, sample: usize) -> Result<Option<String>> {
    if sample == 0 {
        return Ok(None);
    }
    let body = json!({"size": sample, "query": {"function_score": {"random_score": {"seed": 7, "field": "_seq_no"}}}});
    let reply = client.json(Method::Post, &format!("{source}/_search"), Some(&body)).await?;
    let hits = reply["hits"]["hits"].as_array().cloned().unwrap_or_default();
    if hits.is_empty() {
        return Ok(None);
    }
    let ids: Vec<&str> = hits.iter().filter_map(|h| h["_id"].as_str()).collect();
    let got = client.json(Method::Post, &format!("{target}/_mget"), Some(&json!({"ids": ids}))).await?;
    let docs = got["docs"].as_array().cloned().unwrap_or_default();
    for (hit, doc) in hits.iter().zip(docs.iter()) {
        if doc["found"].as_bool() != Some(true) {
            return Ok(Some(format!("document {} is missing from {target}", hit["_id"])));
        }
        for (field, value) in hit["_source"].as_object().into_iter().flatten() {
            if &doc["_source"][field] != value {
                return Ok(Some(format!("document {} differs in field {field}", hit["_id"])));
            }
        }
    }
    Ok(None)
}

/// Migrates one month. Returns its outcome; a cancel returns `Error::Cancelled` after the
/// checkpoint is saved.
pub async fn migrate(
    client: &SearchClient,
    plan: &MonthPlan,
    event_type: EventType,
    options: &MigrationOptions,
    progress: &Progress,
    cache: &mut RecordCache,
) -> Result<MonthOutcome> {
    let started = std::time::Instant::now();
    let alias = client.index(&event_type.alias());
    let mut record = if options.fresh_start {
        if !options.dry_run {
            state::reset(client, event_type, &plan.month).await?;
        }
        MonthRecord { event_type: plan.event_type.clone(), month: plan.month.clone(), ..Default::default() }
    } else {
        state::load(client, event_type, &plan.month).await?
    };
    let mut out = MonthOutcome { event_type: plan.event_type.clone(), month: plan.month.clone(), ..Default::default() };
    out.source_count = client.count(&plan.source, None).await?;
    record.source_count = out.source_count;
    if record.state == MonthState::Done {
        out.state = MonthState::Done;
        out.switched = true;
        out.target_count = client.count(&plan.target, None).await?;
        out.checkpoint = record.checkpoint.clone();
        out.message = Some("already migrated".into());
        progress.advance(out.source_count);
        return Ok(out);
    }
    if options.dry_run {
        out.state = record.state;
        out.target_count = client.count(&plan.target, None).await?;
        out.checkpoint = record.checkpoint.clone();
        return Ok(out);
    }
    prepare_target(client, &plan.target, &alias).await?;
    set_refresh(client, &plan.target, "-1").await?;
    progress.set_task(format!("{} {}: copying", plan.event_type, plan.month));

    let query = match &record.checkpoint {
        Some(cp) => json!({"range": {"timestamp": {"gte": cp}}}),
        None => json!({"match_all": {}}),
    };
    let sort = json!([{"timestamp": "asc"}, {"visitor_id": {"order": "asc", "missing": "_last"}}, {"unique_id": {"order": "asc", "missing": "_last"}}]);
    let reader = PitReader::open(client, &plan.source, query, sort, options.batch_size, json!(true)).await?;
    // Read-ahead: the next page is read while this one is enriched and written.
    let (page_tx, mut pages) = tokio::sync::mpsc::channel::<Result<Vec<Value>>>(2);
    let read_ahead = tokio::spawn(async move {
        let mut reader = reader;
        loop {
            let next = reader.next_page().await;
            let more = matches!(next, Ok(Some(_)));
            let item = match next {
                Ok(Some(page)) => Ok(page),
                Ok(None) => break,
                Err(e) => Err(e),
            };
            if page_tx.send(item).await.is_err() || !more {
                break;
            }
        }
        let _ = reader.close().await;
    });
    let mut pipeline = BulkPipeline::new(client.clone(), BulkOp::Index, options.batch_size, 2);
    let mut stop: Option<(MonthState, String)> = None;
    let mut cancelled = false;
    let loop_result: Result<bool> = async {
        loop {
            if client.cancel_token().is_cancelled() {
                cancelled = true;
                stop = Some((MonthState::Interrupted, "cancelled; resumes from the checkpoint".into()));
                return Ok(false);
            }
            if options.max_batches > 0 && out.batches >= options.max_batches {
                stop = Some((MonthState::Interrupted, format!("--max-batches {} reached; resumes from the checkpoint", options.max_batches)));
                return Ok(false);
            }
            let used = memory_percent();
            if used > options.max_memory_percent {
                stop = Some((MonthState::Interrupted, format!("memory use {used:.0}% passed --max-memory-percent {}; resumes from the checkpoint", options.max_memory_percent)));
                return Ok(false);
            }
            let Some(page) = pages.recv().await.transpose()? else { return Ok(true) };
            let recids: Vec<String> = page.iter().filter_map(|h| h["_source"]["recid"].as_str().map(str::to_string)).collect();
            cache.fetch(client, &recids).await?;
            for hit in &page {
                let mut doc = hit["_source"].clone();
                let recid = doc["recid"].as_str().unwrap_or_default().to_string();
                let day = doc["timestamp"].as_str().and_then(parse_timestamp).map(|t| t.date_naive());
                let info = cache.get(&recid);
                if let Some(r) = info {
                    for (k, v) in &r.fields {
                        doc[k] = v.clone();
                    }
                } else {
                    out.records_missing += 1;
                }
                let fallback: Vec<String> = info.map(|r| r.communities.clone()).unwrap_or_default();
                let communities = match day {
                    Some(d) => cache.membership().communities_on(&recid, d, &fallback),
                    None => fallback,
                };
                doc["community_ids"] = json!(communities);
                let id = hit["_id"].as_str().unwrap_or_default();
                pipeline.add(&plan.target, id, &doc).await?;
            }
            // The checkpoint moves only once the batch is acknowledged.
            pipeline.drain().await?;
            let totals = pipeline.totals().clone();
            if totals.failed > 0 {
                stop = Some((MonthState::Failed, format!("{} documents were rejected: {}", totals.failed, totals.failure_reasons.join("; "))));
                return Ok(false);
            }
            out.batches += 1;
            out.written = totals.written;
            record.migrated += page.len() as u64;
            record.checkpoint = page.last().and_then(|h| h["_source"]["timestamp"].as_str()).map(str::to_string);
            record.state = MonthState::Copying;
            record.error = None;
            state::save(client, event_type, &mut record).await?;
            progress.advance(page.len() as u64);
        }
    }
    .await;
    drop(pages);
    let _ = read_ahead.await;
    let _ = pipeline.finish().await;
    let exhausted = match loop_result {
        Ok(e) => e,
        Err(e) => {
            record.state = MonthState::Interrupted;
            record.error = Some(e.to_string());
            let _ = state::save(client, event_type, &mut record).await;
            let _ = set_refresh(client, &plan.target, "5s").await;
            return Err(e);
        }
    };
    set_refresh(client, &plan.target, "5s").await?;
    client.refresh(&plan.target).await?;
    out.checkpoint = record.checkpoint.clone();
    out.target_count = client.count(&plan.target, None).await?;

    if let Some((state_now, message)) = stop {
        record.state = state_now;
        record.error = Some(message.clone());
        state::save(client, event_type, &mut record).await?;
        out.state = state_now;
        out.message = Some(message.clone());
        out.seconds = started.elapsed().as_secs_f64();
        if cancelled {
            return Err(Error::Cancelled(format!("{} {}: {message}", plan.event_type, plan.month)));
        }
        return Ok(out);
    }
    debug_assert!(exhausted);

    // Verify, then switch.
    progress.set_task(format!("{} {}: verifying", plan.event_type, plan.month));
    if is_live(&plan.month) {
        record.state = MonthState::Interrupted;
        let msg = "copied up to now, but the month still receives events: not switched (run again once the month has closed)".to_string();
        record.error = Some(msg.clone());
        state::save(client, event_type, &mut record).await?;
        out.state = MonthState::Interrupted;
        out.message = Some(msg);
        out.seconds = started.elapsed().as_secs_f64();
        return Ok(out);
    }
    let source_now = client.count(&plan.source, None).await?;
    let failure = if source_now != out.target_count {
        Some(format!("counts differ: source {source_now}, target {}", out.target_count))
    } else {
        verify_sample(client, &plan.source, &plan.target, options.verify_sample).await?
    };
    if let Some(reason) = failure {
        record.state = MonthState::Failed;
        record.error = Some(format!("verification failed: {reason}; nothing switched or deleted"));
        state::save(client, event_type, &mut record).await?;
        out.state = MonthState::Failed;
        out.message = record.error.clone();
        out.seconds = started.elapsed().as_secs_f64();
        return Ok(out);
    }
    let mut actions = vec![json!({"add": {"index": plan.target, "alias": alias}})];
    if in_alias(client, &plan.source, &alias).await? {
        actions.push(json!({"remove": {"index": plan.source, "alias": alias}}));
    }
    client.json(Method::Post, "_aliases", Some(&json!({"actions": actions}))).await?;
    out.switched = true;
    record.state = MonthState::Done;
    record.error = None;
    record.verified = Some(format!("{source_now} documents; sample of {} compared field by field", options.verify_sample.min(source_now as usize)));
    if options.delete_old_indices {
        client.json(Method::Delete, &plan.source, None).await?;
        record.source_deleted = true;
        out.source_deleted = true;
    }
    state::save(client, event_type, &mut record).await?;
    out.state = MonthState::Done;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}
