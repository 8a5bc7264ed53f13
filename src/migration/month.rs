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

use super::live;
use super::state::{self, MonthRecord, MonthState};
use super::{MigrationOptions, MonthPlan};
use crate::bulk::{BulkOp, BulkPipeline};
use crate::dates::{parse_timestamp, utc_seconds};
use crate::enrich::{RecordCache, RecordInfo};
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

/// Pages written between two checkpoints (their bulk requests overlap).
const PAGES_PER_CHECKPOINT: u64 = 2;

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

/// Creates the target (from the v2 template) and takes it out of the read alias before it
/// holds a single document; on resume, makes sure it is still out.
async fn prepare_target(client: &SearchClient, target: &str, alias: &str) -> Result<()> {
    if !client.exists(target).await? {
        client.json(Method::Put, target, Some(&json!({}))).await?;
    }
    if client.in_alias(target, alias).await? {
        let body = json!({"actions": [{"remove": {"index": target, "alias": alias}}]});
        client.json(Method::Post, "_aliases", Some(&body)).await?;
    }
    Ok(())
}

/// Field-by-field comparison of a sample: every source field must be in the target, equal.
pub(crate) async fn verify_sample(client: &SearchClient, source: &str, target: &str, sample: usize) -> Result<Option<String>> {
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
            let expected = match (field.as_str(), value) {
                ("timestamp", Value::String(t)) => utc_seconds(t).map(Value::String).unwrap_or_else(|| value.clone()),
                _ => value.clone(),
            };
            if doc["_source"][field] != expected {
                return Ok(Some(format!("document {} differs in field {field}", hit["_id"])));
            }
        }
    }
    Ok(None)
}

/// The v2 document of one legacy event: its fields (except those the record replaces), the
/// record's serialised fields, and `community_ids`.
pub(crate) fn splice_document(source: &Value, info: Option<&RecordInfo>, communities: &[String]) -> Vec<u8> {
    let replaced: &[&str] = info.map(|r| r.field_names.as_slice()).unwrap_or_default();
    let mut doc = Vec::with_capacity(512 + info.map(|r| r.fields_json.len()).unwrap_or(0));
    doc.push(b'{');
    for (k, v) in source.as_object().into_iter().flatten() {
        if k == "community_ids" || replaced.contains(&k.as_str()) {
            continue;
        }
        serde_json::to_writer(&mut doc, k).expect("serialises");
        doc.push(b':');
        match (k.as_str(), v) {
            // The legacy mapping takes any `strict_date_optional_time` (fractions, `Z`,
            // offsets, a bare date); the v2 mapping only UTC seconds.
            ("timestamp", Value::String(t)) => serde_json::to_writer(&mut doc, &utc_seconds(t).unwrap_or_else(|| t.clone())),
            _ => serde_json::to_writer(&mut doc, v),
        }
        .expect("serialises");
        doc.push(b',');
    }
    if let Some(r) = info.filter(|r| !r.fields_json.is_empty()) {
        doc.extend_from_slice(&r.fields_json);
        doc.push(b',');
    }
    doc.extend_from_slice(b"\"community_ids\":");
    serde_json::to_writer(&mut doc, communities).expect("serialises");
    doc.push(b'}');
    doc
}

/// Enriches one page of source hits: `(_id, document)` pairs, the document serialised with
/// the record fields (spliced in from the cache's serialised form) and the communities of the
/// event's day. Events whose record is unknown are kept as they are (counted).
pub(crate) async fn enrich_page(client: &SearchClient, cache: &mut RecordCache, page: &[Value], records_missing: &mut u64) -> Result<Vec<(String, Vec<u8>)>> {
    let recids: Vec<String> = page.iter().filter_map(|h| h["_source"]["recid"].as_str().map(str::to_string)).collect();
    cache.fetch(client, &recids).await?;
    let mut out = Vec::with_capacity(page.len());
    for hit in page {
        let source = &hit["_source"];
        let recid = source["recid"].as_str().unwrap_or_default();
        let day = source["timestamp"].as_str().and_then(parse_timestamp).map(|t| t.date_naive());
        let info = cache.get(recid);
        if info.is_none() {
            *records_missing += 1;
        }
        let fallback: &[String] = info.map(|r| r.communities.as_slice()).unwrap_or_default();
        let communities = match day {
            Some(d) => cache.membership().communities_on(recid, d, fallback),
            None => fallback.to_vec(),
        };
        let doc = splice_document(source, info, &communities);
        out.push((hit["_id"].as_str().unwrap_or_default().to_string(), doc));
    }
    Ok(out)
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
        // A kept source (closed month, no --delete-old-indices) that took writes after its
        // switch: a re-run copies them (by `_seq_no`, above the month's watermark).
        if !options.dry_run && !record.source_deleted && client.exists(&plan.source).await? {
            out.written = catch_up_after_switch(client, plan, event_type, &mut record, options, cache, &mut out.records_missing).await?;
        }
        out.state = MonthState::Done;
        out.switched = true;
        out.target_count = client.count(&plan.target, None).await?;
        out.checkpoint = record.checkpoint.clone();
        out.message = Some(if out.written > 0 {
            format!("already migrated; {} events written to the old index since were copied", out.written)
        } else {
            "already migrated".into()
        });
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
    // A month whose switchover began (writes rerouted to the target) must finish it, live or not.
    let live = is_live(&plan.month) || live::is_rerouted(client, plan).await?;
    if record.seq_watermark.is_none() {
        record.seq_watermark = Some(live::mark(client, &plan.source).await?);
        state::save(client, event_type, &mut record).await?;
    }
    set_refresh(client, &plan.target, "-1").await?;
    progress.set_task(format!("{} {}: copying", plan.event_type, plan.month));

    // The slices are fixed when the month's copy starts: a resume reads with the layout its
    // checkpoints belong to (a checkpoint of an older version is one slice).
    if record.slice_checkpoints.is_empty() {
        let slices = if record.checkpoint.is_some() { 1 } else { options.slices.max(1) as usize };
        record.slice_checkpoints = vec![record.checkpoint.clone(); slices];
    }
    let queries: Vec<Value> = record
        .slice_checkpoints
        .iter()
        .map(|cp| match cp {
            Some(cp) => json!({"range": {"timestamp": {"gte": cp}}}),
            None => json!({"match_all": {}}),
        })
        .collect();
    let slices = queries.len();
    let sort = json!([{"timestamp": "asc"}, {"visitor_id": {"order": "asc", "missing": "_last"}}, {"unique_id": {"order": "asc", "missing": "_last"}}]);
    let (readers, pit_id) = PitReader::open_slices(client, &plan.source, queries, sort, options.batch_size, json!(true)).await?;
    // One reader per slice, reading ahead while pages are enriched and written; each
    // slice's pages arrive in its sort order.
    let (page_tx, mut pages) = tokio::sync::mpsc::channel::<Result<(usize, Vec<Value>)>>(2 * slices);
    let mut read_ahead = tokio::task::JoinSet::new();
    for (slice, mut reader) in readers.into_iter().enumerate() {
        let page_tx = page_tx.clone();
        read_ahead.spawn(async move {
            loop {
                let (item, more) = match reader.next_page().await {
                    Ok(Some(page)) => (Ok((slice, page)), true),
                    Ok(None) => break,
                    Err(e) => (Err(e), false),
                };
                if page_tx.send(item).await.is_err() || !more {
                    break;
                }
            }
            let _ = reader.close().await;
        });
    }
    drop(page_tx);
    let mut pipeline = BulkPipeline::new(client.clone(), BulkOp::Index, options.batch_size, 2);
    let mut stop: Option<(MonthState, String)> = None;
    let mut cancelled = false;
    // Pages read but not yet checkpointed: their documents are on their way (two bulk
    // requests in flight); the checkpoint moves once all of them are acknowledged.
    let (mut pending_pages, mut pending_docs) = (0u64, 0u64);
    let mut pending_checkpoints: Vec<Option<String>> = vec![None; slices];
    let pages_per_checkpoint = PAGES_PER_CHECKPOINT.max(slices as u64);
    let loop_result: Result<bool> = async {
        loop {
            let reason = if client.cancel_token().is_cancelled() {
                cancelled = true;
                Some((MonthState::Interrupted, "cancelled; resumes from the checkpoint".to_string()))
            } else if options.max_batches > 0 && out.batches + pending_pages >= options.max_batches {
                Some((MonthState::Interrupted, format!("--max-batches {} reached; resumes from the checkpoint", options.max_batches)))
            } else {
                let used = memory_percent();
                (used > options.max_memory_percent).then(|| {
                    (MonthState::Interrupted, format!("memory use {used:.0}% passed --max-memory-percent {}; resumes from the checkpoint", options.max_memory_percent))
                })
            };
            let page = if reason.is_none() { pages.recv().await.transpose()? } else { None };
            if let Some((slice, page)) = &page {
                for (id, doc) in enrich_page(client, cache, page, &mut out.records_missing).await? {
                    pipeline.add_raw(&plan.target, &id, doc).await?;
                }
                pipeline.dispatch().await?;
                pending_pages += 1;
                pending_docs += page.len() as u64;
                // Checkpoints are UTC seconds (floored), so that they compare as text and a
                // resumed `gte` query includes the event they name.
                if let Some(ts) = page.last().and_then(|h| h["_source"]["timestamp"].as_str()).and_then(utc_seconds) {
                    pending_checkpoints[*slice] = Some(ts);
                }
            }
            if pending_pages > 0 && (page.is_none() || pending_pages >= pages_per_checkpoint) {
                pipeline.drain().await?;
                let totals = pipeline.totals().clone();
                if totals.failed > 0 {
                    stop = Some((MonthState::Failed, format!("{} documents were rejected: {}", totals.failed, totals.failure_reasons.join("; "))));
                    return Ok(false);
                }
                out.batches += pending_pages;
                out.written = totals.written;
                record.migrated += pending_docs;
                for (slice, cp) in pending_checkpoints.iter_mut().enumerate() {
                    if let Some(cp) = cp.take() {
                        record.slice_checkpoints[slice] = Some(cp);
                    }
                }
                record.checkpoint = record.slice_checkpoints.iter().flatten().min().cloned();
                if record.state != MonthState::Switching {
                    record.state = MonthState::Copying;
                    record.error = None;
                }
                state::save(client, event_type, &mut record).await?;
                progress.advance(pending_docs);
                (pending_pages, pending_docs) = (0, 0);
            }
            if let Some(r) = reason {
                stop = Some(r);
                return Ok(false);
            }
            if page.is_none() {
                return Ok(true);
            }
        }
    }
    .await;
    drop(pages);
    while read_ahead.join_next().await.is_some() {}
    crate::pit::close_pit(client, &pit_id).await;
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

    let mut catch = BulkPipeline::new(client.clone(), BulkOp::Index, options.batch_size, 2);
    if live || options.delete_old_indices {
        // The month still receives events, or its source is to be deleted: reroute, catch
        // up, verify, swap (see `live`). Deleting a closed month's source the same way
        // leaves no moment in which a late write could land in it and go with it.
        progress.set_task(format!("{} {}: switching over", plan.event_type, plan.month));
        let switched = live::switch_over(
            client,
            plan,
            event_type,
            &mut record,
            options.batch_size,
            options.verify_sample,
            options.delete_old_indices,
            cache,
            &mut catch,
            &mut out.records_missing,
        )
        .await;
        out.written += catch.totals().written;
        let _ = catch.finish().await;
        client.refresh(&plan.target).await?;
        out.target_count = client.count(&plan.target, None).await?;
        out.seconds = started.elapsed().as_secs_f64();
        match switched {
            Ok(()) => {
                record.state = MonthState::Done;
                record.error = None;
                out.switched = true;
                out.source_deleted = true;
                out.message = Some(match &record.backup {
                    Some(b) => format!("switched over; the legacy name is now an alias of the target; the old index is kept as {b}"),
                    None => "switched over; the legacy name is now an alias of the target; the old index is deleted".into(),
                });
            }
            Err(Error::Cancelled(m)) => {
                record.error = Some(format!("cancelled during the switchover ({m}); run again to finish it"));
                state::save(client, event_type, &mut record).await?;
                return Err(Error::Cancelled(m));
            }
            Err(e) => {
                let rerouted = live::is_rerouted(client, plan).await.unwrap_or(true);
                record.state = if rerouted { MonthState::Switching } else { MonthState::Failed };
                record.error = Some(if rerouted {
                    format!("switchover not finished ({e}); new writes go to the target; run again to finish it")
                } else {
                    format!("switchover failed before anything changed: {e}")
                });
                out.message = record.error.clone();
            }
        }
        state::save(client, event_type, &mut record).await?;
        out.state = record.state;
        out.checkpoint = record.checkpoint.clone();
        return Ok(out);
    }
    // Late writes (older timestamps, indexed after the copy started) are copied by `_seq_no`.
    for _ in 0..3 {
        let copied = live::catch_up_since_watermark(client, plan, event_type, &mut record, options.batch_size, cache, &mut catch, &mut out.records_missing).await?;
        if copied == 0 {
            break;
        }
    }
    out.written += catch.finish().await?.written;
    client.refresh(&plan.target).await?;
    out.target_count = client.count(&plan.target, None).await?;

    // Verify, then switch.
    progress.set_task(format!("{} {}: verifying", plan.event_type, plan.month));
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
    // (With --delete-old-indices the month took the switchover above.)
    let mut actions = vec![json!({"add": {"index": plan.target, "alias": alias}})];
    if client.in_alias(&plan.source, &alias).await? {
        actions.push(json!({"remove": {"index": plan.source, "alias": alias}}));
    }
    client.json(Method::Post, "_aliases", Some(&json!({"actions": actions}))).await?;
    out.switched = true;
    record.state = MonthState::Done;
    record.error = None;
    record.verified = Some(format!("{source_now} documents; sample of {} compared field by field", options.verify_sample.min(source_now as usize)));
    state::save(client, event_type, &mut record).await?;
    out.state = MonthState::Done;
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// Copies the writes a kept source took after its month was switched (everything above
/// the month's `_seq_no` watermark). A state from before the watermark existed gets one
/// now (its earlier late writes cannot be told apart).
async fn catch_up_after_switch(
    client: &SearchClient,
    plan: &MonthPlan,
    event_type: EventType,
    record: &mut MonthRecord,
    options: &MigrationOptions,
    cache: &mut RecordCache,
    records_missing: &mut u64,
) -> Result<u64> {
    if record.seq_watermark.is_none() {
        record.seq_watermark = Some(live::mark(client, &plan.source).await?);
        state::save(client, event_type, record).await?;
        return Ok(0);
    }
    let mut pipeline = BulkPipeline::new(client.clone(), BulkOp::Index, options.batch_size, 2);
    live::catch_up_since_watermark(client, plan, event_type, record, options.batch_size, cache, &mut pipeline, records_missing).await?;
    let written = pipeline.finish().await?.written;
    if written > 0 {
        client.refresh(&plan.target).await?;
        log::info!("{}: {written} events written to it after its switch copied to {}", plan.source, plan.target);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_documents_are_the_source_with_the_record_fields() {
        let record = json!({"access": {"status": "open"}, "metadata": {"publisher": "P", "resource_type": {"id": "dataset", "title": {"en": "Dataset"}}}});
        let info = RecordInfo::new(&crate::enrich::record_fields(&record), vec![]);
        let source = json!({"recid": "r1", "timestamp": "2025-05-01T00:00:00", "publisher": "stale", "community_ids": ["x"], "country": "CH"});
        let doc: Value = serde_json::from_slice(&splice_document(&source, Some(&info), &["c1".to_string()])).unwrap();
        assert_eq!(doc, json!({
            "recid": "r1", "timestamp": "2025-05-01T00:00:00", "country": "CH", "publisher": "P", "access_status": "open",
            "resource_type": {"id": "dataset", "title": {"en": "Dataset"}}, "community_ids": ["c1"],
        }));
        // Unknown record: the event is kept as it is, with its communities.
        let doc: Value = serde_json::from_slice(&splice_document(&source, None, &[])).unwrap();
        assert_eq!(doc["publisher"], "stale");
        assert_eq!(doc["community_ids"], json!([]));
        // A record without any of the fields.
        let bare = RecordInfo::new(&serde_json::Map::new(), vec![]);
        let doc: Value = serde_json::from_slice(&splice_document(&json!({}), Some(&bare), &[])).unwrap();
        assert_eq!(doc, json!({"community_ids": []}));
    }
}
