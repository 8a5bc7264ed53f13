//! `generate-usage-events`: synthetic view and download events shaped like real
//! InvenioRDM events after anonymisation, for tests and demos.
//!
//! Per record: `events_per_record` views, and as many downloads when the record has files;
//! timestamps stratified over the record's whole window (so they spread over every month)
//! and always inside it: from max(event start 00:00:00, record created) to min(event end
//! 23:59:59, now). The same seed gives byte-identical documents (also
//! `updated_timestamp`, set to the event's time); `_id`s are invenio-stats' and writes
//! are create-only, so a re-run with the same seed adds nothing.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{finish, records_query, stop_if_cancelled};
use crate::bulk::{push_json_str_array, BulkOp, BulkPipeline};
use crate::dates::{check_range, end_of_day, parse_day_opt, parse_timestamp, start_of_day};
use crate::enrich::{current_communities, record_fields, Membership, RecordInfo};
use crate::error::{Error, Result};
use crate::events::{derived_bucket_id, legacy_event, EventType, FileRef, Visitor};
use crate::pit::PitReader;
use crate::progress::Progress;
use crate::rng::SeededRng;
use crate::search::SearchClient;
use crate::templates;

/// Options of `generate-usage-events`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageEventsOptions {
    /// Records created on or after this day.
    pub start_date: Option<String>,
    /// Records created on or before this day.
    pub end_date: Option<String>,
    /// Events not before this day (default: each record's creation).
    pub event_start_date: Option<String>,
    /// Events not after this day (default: now).
    pub event_end_date: Option<String>,
    /// Views per record (and downloads per record with files).
    pub events_per_record: u32,
    /// At most this many records (0 = all).
    pub max_records: u64,
    /// Add the v2 fields (community membership as of the event's day, record metadata).
    pub enrich_events: bool,
    /// Write to the migrated `-v2.0.0` monthly indices.
    pub use_migrated_indices: bool,
    /// Random seed (the same seed gives the same documents).
    pub seed: u64,
    /// Count, write nothing.
    pub dry_run: bool,
    /// Documents per bulk request.
    pub batch_size: usize,
    /// The current time (tests pin it; default: now).
    pub now: Option<String>,
}

/// The options' dates, parsed and checked.
struct Checked {
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    ev_start: Option<NaiveDate>,
    ev_end: Option<NaiveDate>,
    now: DateTime<Utc>,
}

impl UsageEventsOptions {
    fn checked(&self) -> Result<Checked> {
        let start = parse_day_opt("--start-date", self.start_date.as_deref())?;
        let end = parse_day_opt("--end-date", self.end_date.as_deref())?;
        check_range("record dates", start, end)?;
        let ev_start = parse_day_opt("--event-start-date", self.event_start_date.as_deref())?;
        let ev_end = parse_day_opt("--event-end-date", self.event_end_date.as_deref())?;
        check_range("event dates", ev_start, ev_end)?;
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(Error::invalid("batch size must be between 1 and 10,000"));
        }
        let now = match &self.now {
            Some(t) => parse_timestamp(t)
                .ok_or_else(|| Error::invalid(format!("now {t:?} is not a timestamp")))?,
            None => Utc::now(),
        };
        Ok(Checked {
            start,
            end,
            ev_start,
            ev_end,
            now,
        })
    }
}

impl crate::options::Validate for UsageEventsOptions {
    fn validate(&self) -> Result<()> {
        self.checked().map(|_| ())
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UsageEventsReport {
    /// Records read.
    pub records_processed: u64,
    /// Records whose window was empty (created after the event end).
    pub records_skipped: u64,
    /// Records with files the index does not list (restricted or embargoed files are indexed
    /// as `files: {"enabled": true}` only): no download can name them, so they get views only.
    pub records_with_unlisted_files: u64,
    /// View events generated.
    pub view_events: u64,
    /// Download events generated.
    pub download_events: u64,
    /// Documents written.
    pub written: u64,
    /// Documents already present (same seed as an earlier run).
    pub already_present: u64,
    /// Documents that failed.
    pub failed: u64,
    /// First failure reasons.
    pub failure_reasons: Vec<String>,
    /// Monthly indices written to.
    pub indices: Vec<String>,
    /// The last moment of the event window (UTC): `--event-end-date` (or now, if earlier);
    /// without it, the time of the first run with the same options (recorded).
    pub window_end: Option<String>,
    /// True for a dry run.
    pub dry_run: bool,
}

const COUNTRIES: &[&str] = &[
    "US", "DE", "FR", "GB", "BR", "IN", "JP", "ZA", "CA", "MX", "NG", "AU",
];

fn visitor(rng: &mut SeededRng) -> Visitor {
    Visitor {
        visitor_id: rng.hex(56),
        country: if rng.below(20) == 0 {
            None
        } else {
            Some(rng.pick(COUNTRIES).to_string())
        },
        referrer: if rng.below(3) == 0 {
            None
        } else {
            Some(format!(
                "https://example.org/search?q=topic-{}",
                rng.below(50)
            ))
        },
        // invenio-stats drops robots before indexing: real events are never flagged.
        is_robot: false,
        is_machine: rng.below(50) == 0,
        via_api: rng.below(10) == 0,
    }
}

fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t - Duration::nanoseconds(i64::from(t.timestamp_subsec_nanos()))
}

fn ceil_second(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.timestamp_subsec_nanos() == 0 {
        t
    } else {
        floor_second(t) + Duration::seconds(1)
    }
}

/// `n` timestamps, one in each of `n` equal slots of [start, end] (seconds).
fn stratified(
    rng: &mut SeededRng,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    n: u32,
) -> Vec<DateTime<Utc>> {
    let span = (end - start).num_seconds() + 1;
    (0..i64::from(n))
        .map(|j| {
            let lo = span * j / i64::from(n);
            let hi = (span * (j + 1) / i64::from(n)).max(lo + 1);
            start + Duration::seconds(lo + rng.below((hi - lo) as u64) as i64)
        })
        .collect()
}

/// The files a record's download events can name. A real records index has no bucket id
/// (its strict mapping has none), so one is derived from the record id
/// ([`derived_bucket_id`]) unless the document carries one. A record whose files are
/// restricted or embargoed is indexed as `files: {"enabled": true}` without entries: its
/// files cannot be named, and the second value says so.
fn files_of(record: &Value) -> (Vec<FileRef>, bool) {
    let files = &record["files"];
    if files["enabled"].as_bool() == Some(false) {
        return (Vec::new(), false);
    }
    let recid = record["id"].as_str().unwrap_or_default();
    let bucket = record["bucket_id"]
        .as_str()
        .or_else(|| files["bucket_id"].as_str())
        .map(String::from)
        .unwrap_or_else(|| derived_bucket_id(recid));
    let entries: Vec<&Value> = match &files["entries"] {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => Vec::new(),
    };
    let refs: Vec<FileRef> = entries
        .into_iter()
        .filter_map(|e| {
            Some(FileRef {
                bucket_id: bucket.clone(),
                file_id: e["file_id"]
                    .as_str()
                    .or_else(|| e["id"].as_str())?
                    .to_string(),
                file_key: e["key"].as_str()?.to_string(),
                size: e["size"].as_f64().unwrap_or(0.0),
            })
        })
        .collect();
    let unlisted = refs.is_empty() && files["enabled"].as_bool() == Some(true);
    (refs, unlisted)
}

/// An existing monthly index created with the strict v1 mapping cannot take enriched
/// events: add the v2 fields to its mapping (adding fields never changes existing data).
/// A missing index is created later from the v2 template.
async fn ensure_v2_fields(client: &SearchClient, index: &str, event_type: EventType) -> Result<()> {
    let Some(mapping) = client
        .json_opt(
            opensearch::http::Method::Get,
            &format!("{index}/_mapping"),
            None,
        )
        .await?
    else {
        return Ok(());
    };
    let has_v2 = mapping
        .as_object()
        .and_then(|m| m.values().next())
        .map(|m| !m["mappings"]["properties"]["community_ids"].is_null())
        .unwrap_or(false);
    if has_v2 {
        return Ok(());
    }
    let name = match event_type {
        EventType::View => "record-view-v2.0.0",
        EventType::Download => "file-download-v2.0.0",
    };
    let template = templates::template(name, &client.settings().index_prefix)?;
    let mut properties = template["template"]["mappings"]["properties"].clone();
    // Existing fields keep their mapping (a type cannot change); only new ones are added.
    if let (Some(new), Some(old)) = (
        properties.as_object_mut(),
        mapping
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(|m| m["mappings"]["properties"].as_object()),
    ) {
        new.retain(|k, _| !old.contains_key(k));
    }
    log::info!("adding the v2 enrichment fields to the mapping of {index}");
    client
        .json(
            opensearch::http::Method::Put,
            &format!("{index}/_mapping"),
            Some(&json!({"properties": properties})),
        )
        .await?;
    Ok(())
}

/// `--use-migrated-indices` writes into the `-v2.0.0` indices. A month whose legacy index
/// still holds events and is not switched yet must not get them: the migration would then
/// find more documents in the new index than in the old one and refuse to switch the
/// month (and until then the generated events would not be read at all).
async fn refuse_unmigrated_months(
    client: &SearchClient,
    first: Option<&str>,
    last: &str,
) -> Result<()> {
    let mut blocked = Vec::new();
    for event_type in EventType::ALL {
        let base = client.index(&format!("events-stats-{}-", event_type.stats_name()));
        let alias = client.index(&event_type.alias());
        for (name, docs) in client.cat_indices(&format!("{base}*")).await? {
            let Some(month) = name.strip_prefix(&base) else {
                continue;
            };
            if month.len() != 7 || docs == 0 || month > last || first.is_some_and(|f| month < f) {
                continue;
            }
            let target = format!("{name}-v2.0.0");
            if !client.in_alias(&target, &alias).await? {
                blocked.push(format!("{name} ({docs} events)"));
            }
        }
    }
    if blocked.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "--use-migrated-indices: these months are not migrated yet, their events would be hidden from reads and fail the migration's verification: {}; migrate them first (migrate-events), or generate into the legacy indices",
        blocked.join(", ")
    )))
}

/// Where the generators record the windows of their runs (without prefix).
pub const STATE_INDEX: &str = "stats-community-generation";

/// The end of the event window of the first run with these options (everything that
/// decides which events a run makes, but the window's end), or `now` recorded as such.
async fn window_end_of_first_run(
    client: &SearchClient,
    options: &UsageEventsOptions,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>> {
    let key = serde_json::to_string(&json!({
        "seed": options.seed, "events_per_record": options.events_per_record, "start_date": options.start_date,
        "end_date": options.end_date, "event_start_date": options.event_start_date,
        "enrich_events": options.enrich_events, "use_migrated_indices": options.use_migrated_indices,
        "max_records": options.max_records,
    }))
    .expect("JSON");
    let path = format!(
        "{}/_doc/usage-events-{}",
        client.index(STATE_INDEX),
        crate::events::sha1_hex(&[key.as_bytes()])
    );
    if let Some(found) = client.json_opt(Method::Get, &path, None).await? {
        if let Some(end) = found["_source"]["window_end"]
            .as_str()
            .and_then(parse_timestamp)
        {
            log::info!("the event window ends at {end} as in the first run with these options (give --event-end-date to choose)");
            return Ok(end);
        }
    }
    let end = floor_second(now);
    if !options.dry_run {
        let mappings = json!({"dynamic": "strict", "properties": {
            "key": {"type": "keyword", "index": false}, "window_end": {"type": "date"}, "created": {"type": "date"},
        }});
        client
            .ensure_index(&client.index(STATE_INDEX), &mappings)
            .await?;
        let doc =
            json!({"key": key, "window_end": end.to_rfc3339(), "created": Utc::now().to_rfc3339()});
        client
            .json(Method::Put, &format!("{path}?refresh=true"), Some(&doc))
            .await?;
    }
    Ok(end)
}

/// How many of `(index, _id)` exist (one `_mget`).
async fn count_present(client: &SearchClient, ids: &[(String, String)]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let docs: Vec<Value> = ids
        .iter()
        .map(|(index, id)| json!({"_index": index, "_id": id, "_source": false}))
        .collect();
    let reply = client
        .json_opt(Method::Post, "_mget", Some(&json!({"docs": docs})))
        .await?;
    Ok(reply
        .and_then(|r| {
            r["docs"].as_array().map(|d| {
                d.iter()
                    .filter(|x| x["found"].as_bool() == Some(true))
                    .count() as u64
            })
        })
        .unwrap_or(0))
}

/// Runs the generator.
pub async fn generate(
    client: &SearchClient,
    options: &UsageEventsOptions,
    progress: &Progress,
) -> Result<UsageEventsReport> {
    let Checked {
        start,
        end,
        ev_start,
        ev_end,
        now,
    } = options.checked()?;
    let records = client.index("rdmrecords-records");
    if !client.exists(&records).await? {
        return Err(Error::Data(format!(
            "the records index {records} does not exist"
        )));
    }
    let window_first_month = ev_start.map(|d| d.format("%Y-%m").to_string());
    let window_last_month = floor_second(ev_end.map(end_of_day).map(|e| e.min(now)).unwrap_or(now))
        .format("%Y-%m")
        .to_string();
    if options.use_migrated_indices {
        refuse_unmigrated_months(client, window_first_month.as_deref(), &window_last_month).await?;
    }
    let mut report = UsageEventsReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    // Without --event-end-date the window ends "now": the now of the first run with these
    // options, recorded, so that a re-run (or the resume of a killed run) makes the same
    // events, not new ones.
    let now = if options.now.is_none() && ev_end.is_none() {
        window_end_of_first_run(client, options, now).await?
    } else {
        now
    };
    report.window_end = Some(crate::dates::second_timestamp(floor_second(
        ev_end.map(end_of_day).map(|e| e.min(now)).unwrap_or(now),
    )));
    if !options.dry_run {
        let mut names = vec!["record-view-v1.0.0", "file-download-v1.0.0"];
        if options.enrich_events || options.use_migrated_indices {
            names.extend(["record-view-v2.0.0", "file-download-v2.0.0"]);
        }
        templates::install(client, &names).await?;
    }
    let query = records_query(&[], start, end, &[], true);
    let mut total = client.count(&records, Some(&query)).await?;
    if options.max_records > 0 {
        total = total.min(options.max_records);
    }
    progress.set_total(total);
    progress.set_task("generating usage events");
    let window_start = ev_start.map(start_of_day);
    let window_end = floor_second(ev_end.map(end_of_day).map(|e| e.min(now)).unwrap_or(now));
    let source = if options.enrich_events {
        json!(true)
    } else {
        json!(["id", "created", "parent", "bucket_id", "files"])
    };
    let page_size = 500;
    let mut reader = PitReader::open(
        client,
        &records,
        query,
        json!([{"id": "asc"}]),
        page_size,
        source,
    )
    .await?;
    // Events of one record spread over every month of the window: buffers per monthly index
    // (up to 24 batches in all, a few MB) so that each request is one full batch for one
    // index; three requests in flight. A cancel waits for those three, not for the buffer
    // (`stop_if_cancelled` drops it: the re-run makes the same documents again).
    let mut pipeline = BulkPipeline::new(client.clone(), BulkOp::Create, options.batch_size, 3)
        .with_buffer_limit(24 * options.batch_size);
    let mut index_names: std::collections::HashMap<(i32, u32, bool), String> =
        std::collections::HashMap::new();
    let suffix = if options.use_migrated_indices {
        "-v2.0.0"
    } else {
        ""
    };
    // A dry run counts what is already present (by `_id`), a thousand at a time.
    let mut planned: Vec<(String, String)> = Vec::new();
    let result: Result<()> = async {
        'pages: while let Some(page) = reader.next_page().await? {
            let membership = if options.enrich_events {
                let ids: Vec<String> = page.iter().filter_map(|h| h["_source"]["id"].as_str().map(str::to_string)).collect();
                Membership::load(client, &ids).await?
            } else {
                Membership::default()
            };
            for hit in &page {
                if options.max_records > 0 && report.records_processed >= options.max_records {
                    break 'pages;
                }
                if client.cancel_token().is_cancelled() {
                    break 'pages;
                }
                let record = &hit["_source"];
                report.records_processed += 1;
                progress.advance(1);
                let (Some(recid), Some(created)) = (record["id"].as_str(), record["created"].as_str().and_then(parse_timestamp)) else {
                    report.records_skipped += 1;
                    continue;
                };
                let from = ceil_second(window_start.map(|s| s.max(created)).unwrap_or(created));
                if window_end < from || options.events_per_record == 0 {
                    report.records_skipped += 1;
                    continue;
                }
                let parent = record["parent"]["id"].as_str().unwrap_or(recid);
                let mut rng = SeededRng::for_key(options.seed, recid);
                let (files, unlisted) = files_of(record);
                if unlisted {
                    report.records_with_unlisted_files += 1;
                }
                let fields = if options.enrich_events { Some(RecordInfo::new(&record_fields(record), Vec::new())) } else { None };
                let fallback = current_communities(record);
                let mut emit = Vec::new();
                for ts in stratified(&mut rng, from, window_end, options.events_per_record) {
                    emit.push((EventType::View, ts, None));
                }
                if !files.is_empty() {
                    for ts in stratified(&mut rng, from, window_end, options.events_per_record) {
                        let file = &files[rng.below(files.len() as u64) as usize];
                        emit.push((EventType::Download, ts, Some(file)));
                    }
                }
                for (event_type, ts, file) in emit {
                    let v = visitor(&mut rng);
                    let (id, event) = legacy_event(event_type, ts, recid, parent, &v, file, ts);
                    // Serialised straight into the bulk body; enriched events get the
                    // record's serialised fields and their day's communities spliced in.
                    let mut doc = Vec::with_capacity(512 + fields.as_ref().map(|f| f.fields_json.len()).unwrap_or(0));
                    event.write_json(&mut doc);
                    if let Some(fields) = &fields {
                        doc.pop(); // the closing brace
                        if !fields.fields_json.is_empty() {
                            doc.push(b',');
                            doc.extend_from_slice(&fields.fields_json);
                        }
                        doc.extend_from_slice(b",\"community_ids\":");
                        push_json_str_array(&mut doc, &membership.communities_on(recid, ts.date_naive(), &fallback));
                        doc.push(b'}');
                    }
                    match event_type {
                        EventType::View => report.view_events += 1,
                        EventType::Download => report.download_events += 1,
                    }
                    let month = (ts.year(), ts.month(), event_type == EventType::View);
                    let index: &str = match index_names.entry(month) {
                        std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                        std::collections::hash_map::Entry::Vacant(new) => {
                            let name = client.index(&format!("{}{suffix}", event_type.monthly_index(&format!("{:04}-{:02}", month.0, month.1))));
                            if !options.dry_run && options.enrich_events {
                                ensure_v2_fields(client, &name, event_type).await?;
                            }
                            new.insert(name)
                        }
                    };
                    if options.dry_run {
                        planned.push((index.to_string(), id));
                        if planned.len() >= 1000 {
                            report.already_present += count_present(client, &std::mem::take(&mut planned)).await?;
                        }
                    } else {
                        pipeline.add_raw(index, &id, doc).await?;
                    }
                }
            }
        }
        report.already_present += count_present(client, &std::mem::take(&mut planned)).await?;
        let done = report.records_processed;
        stop_if_cancelled(client, &mut pipeline, || {
            format!("usage event generation stopped after {done} records (re-run with the same seed to finish; nothing is written twice)")
        })
        .await
    }
    .await;
    let totals = finish(reader, pipeline, result).await?;
    report.written = totals.written;
    report.already_present += totals.already_present;
    report.failed = totals.failed;
    report.failure_reasons = totals.failure_reasons;
    report.indices = index_names.into_values().collect();
    report.indices.sort();
    if !options.dry_run && !report.indices.is_empty() {
        // The indices written to, not every event index of the instance (a few names per
        // request: a request line is limited to 4 KB).
        for names in report.indices.chunks(40) {
            client.refresh(&names.join(",")).await?;
        }
    }
    progress.flush();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeSet;

    #[test]
    fn stratified_times_cover_the_window_and_stay_inside() {
        let mut rng = SeededRng::new(3);
        let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let end = Utc.with_ymd_and_hms(2024, 12, 31, 23, 59, 59).unwrap();
        let times = stratified(&mut rng, start, end, 12);
        assert_eq!(times.len(), 12);
        assert!(times.iter().all(|t| *t >= start && *t <= end));
        let months: BTreeSet<u32> = times
            .iter()
            .map(|t| t.format("%m").to_string().parse().unwrap())
            .collect();
        assert_eq!(months.len(), 12, "{times:?}");
        // A one-second window still works.
        assert_eq!(stratified(&mut rng, start, start, 3), vec![start; 3]);
    }
}
