//! Records delta, "added" basis: per community and UTC day, the records (and their parents,
//! files, uploaders, subcount items) added to and removed from the community
//! (`<prefix>stats-community-records-delta-added-YYYY`, `_id` `<community>-<YYYY-MM-DD>`).
//!
//! A community's changes come from `stats-community-events`: `added` events on their day,
//! `removed` events and deletions (`is_deleted` + `deleted_date`) on theirs; every event of
//! the window is read (point in time, no 10,000 cap), then the records involved are read
//! once each. `global` reads the records index: added on `created`, removed on the
//! tombstone's `removal_date`. No day is skipped for lack of newly created records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::records::{facts, record_source, RecordFacts, RECORD_SUBCOUNTS};
use super::{delta_document, AggContext, Aggregator, CommunityOutcome, GLOBAL};
use crate::dates::{day_start, days, parse_timestamp};
use crate::error::Result;
use crate::pit::PitReader;

/// Record ids per lookup request.
const LOOKUP_CHUNK: usize = 2000;

/// Records, parents and files on one side (added or removed) of a day.
#[derive(Default, Clone, Debug)]
struct Side {
    records: [u64; 2],
    parents: [BTreeSet<String>; 2],
    file_count: u64,
    volume: u64,
}

impl Side {
    fn count(&mut self, f: &RecordFacts) {
        let k = usize::from(f.with_files);
        self.records[k] += 1;
        self.parents[k].insert(f.parent.clone());
        self.file_count += f.file_count;
        self.volume += f.volume;
    }
}

fn split(a: u64, b: u64) -> Value {
    json!({"metadata_only": a, "with_files": b})
}

fn sides(added: &Side, removed: &Side) -> (Value, Value, Value) {
    let parents = |s: &Side| split(s.parents[0].len() as u64, s.parents[1].len() as u64);
    (
        json!({"added": split(added.records[0], added.records[1]), "removed": split(removed.records[0], removed.records[1])}),
        json!({"added": parents(added), "removed": parents(removed)}),
        json!({"added": {"file_count": added.file_count, "data_volume": added.volume},
               "removed": {"file_count": removed.file_count, "data_volume": removed.volume}}),
    )
}

/// One day's changes.
#[derive(Default, Debug)]
struct DayChanges {
    added: Side,
    removed: Side,
    uploaders: BTreeSet<String>,
    items: BTreeMap<&'static str, BTreeMap<String, (Value, Side, Side)>>,
}

impl DayChanges {
    fn count(&mut self, f: &RecordFacts, added: bool) {
        if added {
            self.added.count(f);
            if let Some(u) = &f.uploader {
                self.uploaders.insert(u.clone());
            }
        } else {
            self.removed.count(f);
        }
        for (key, items) in &f.items {
            let these = self.items.entry(key).or_default();
            for (id, label) in items {
                let e = these
                    .entry(id.clone())
                    .or_insert_with(|| (label.clone(), Side::default(), Side::default()));
                if added {
                    e.1.count(f)
                } else {
                    e.2.count(f)
                }
            }
        }
    }

    fn doc(&self, community_id: &str, day: NaiveDate) -> Value {
        let (records, parents, files) = sides(&self.added, &self.removed);
        let mut subcounts = serde_json::Map::new();
        for s in RECORD_SUBCOUNTS {
            let mut list: Vec<(&String, &(Value, Side, Side))> = self
                .items
                .get(s.key)
                .map(|m| m.iter().collect())
                .unwrap_or_default();
            let weight = |e: &(Value, Side, Side)| {
                e.1.records[0] + e.1.records[1] + e.2.records[0] + e.2.records[1]
            };
            list.sort_by(|a, b| weight(b.1).cmp(&weight(a.1)).then_with(|| a.0.cmp(b.0)));
            let items: Vec<Value> = list
                .into_iter()
                .map(|(id, (label, added, removed))| {
                    let (records, parents, files) = sides(added, removed);
                    json!({"id": id, "label": label, "records": records, "parents": parents, "files": files})
                })
                .collect();
            subcounts.insert(s.key.into(), Value::Array(items));
        }
        delta_document(
            community_id,
            day,
            json!({
                "records": records, "parents": parents, "files": files,
                "uploaders": self.uploaders.len(),
                "subcounts": subcounts,
            }),
        )
    }
}

fn window(field: &str, from: NaiveDate, to: NaiveDate) -> Value {
    json!({"range": {field: {"gte": day_start(from), "lt": day_start(to.succ_opt().expect("date"))}}})
}

fn day_of(v: &Value) -> Option<NaiveDate> {
    v.as_str().and_then(parse_timestamp).map(|t| t.date_naive())
}

/// The first day the community (or `global`) has a change: its first community event, or
/// for `global` the first record's creation.
pub async fn first_change_day(ctx: &AggContext, community_id: &str) -> Result<Option<NaiveDate>> {
    if community_id == GLOBAL {
        let records = ctx.client.index("rdmrecords-records");
        ctx.first_day(&records, json!({"term": {"is_published": true}}), "created")
            .await
    } else {
        let events = ctx.client.index("stats-community-events");
        ctx.first_day(
            &events,
            json!({"term": {"community_id": community_id}}),
            "event_date",
        )
        .await
    }
}

async fn scan(
    ctx: &AggContext,
    index: &str,
    query: Value,
    sort: Value,
    source: Value,
    mut each: impl FnMut(Value),
) -> Result<()> {
    if !ctx.client.exists(index).await? {
        return Ok(());
    }
    let mut reader = PitReader::open(&ctx.client, index, query, sort, 1000, source).await?;
    let result = async {
        while let Some(page) = reader.next_page().await? {
            ctx.count_search();
            for mut hit in page {
                each(hit["_source"].take());
            }
        }
        Ok(())
    }
    .await;
    let _ = reader.close().await;
    result
}

/// The community's changes in `[from, to]`: (day, record id, added?) from its events.
async fn community_changes(
    ctx: &AggContext,
    community_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(NaiveDate, String, bool)>> {
    let query = json!({"bool": {"filter": [{"term": {"community_id": community_id}}], "minimum_should_match": 1, "should": [
        {"bool": {"filter": [{"terms": {"event_type": ["added", "removed"]}}, window("event_date", from, to)]}},
        {"bool": {"filter": [{"term": {"is_deleted": true}}, window("deleted_date", from, to)]}},
    ]}});
    let sort = json!([{"record_id": "asc"}, {"event_type": "asc"}, {"event_date": "asc"}]);
    let source = json!([
        "record_id",
        "event_type",
        "event_date",
        "is_deleted",
        "deleted_date"
    ]);
    let mut events: Vec<Value> = Vec::new();
    scan(
        ctx,
        &ctx.client.index("stats-community-events"),
        query,
        sort,
        source,
        |e| events.push(e),
    )
    .await?;
    let mut changes = BTreeSet::new();
    // Per record: its removal days from `removed` events (a deletion after a removal is not
    // a second removal from the community).
    let mut removed_on: HashMap<String, Vec<NaiveDate>> = HashMap::new();
    for e in &events {
        if e["event_type"] == "removed" {
            if let (Some(r), Some(d)) = (e["record_id"].as_str(), day_of(&e["event_date"])) {
                removed_on.entry(r.to_string()).or_default().push(d);
            }
        }
    }
    for e in &events {
        let Some(record) = e["record_id"].as_str() else {
            continue;
        };
        let deleted = if e["is_deleted"].as_bool() == Some(true) {
            day_of(&e["deleted_date"])
        } else {
            None
        };
        if let Some(d) = day_of(&e["event_date"]).filter(|d| *d >= from && *d <= to) {
            match e["event_type"].as_str() {
                Some("added") if deleted.is_none_or(|del| del >= d) => {
                    changes.insert((d, record.to_string(), true));
                }
                Some("removed") => {
                    changes.insert((d, record.to_string(), false));
                }
                _ => {}
            }
        }
        if let Some(del) = deleted.filter(|d| *d >= from && *d <= to) {
            let removed_before = removed_on
                .get(record)
                .is_some_and(|days| days.iter().any(|r| *r <= del));
            if !removed_before {
                changes.insert((del, record.to_string(), false));
            }
        }
    }
    Ok(changes.into_iter().collect())
}

async fn lookup(ctx: &AggContext, ids: Vec<String>) -> Result<HashMap<String, RecordFacts>> {
    let index = ctx.client.index("rdmrecords-records");
    let mut out = HashMap::new();
    for chunk in ids.chunks(LOOKUP_CHUNK) {
        let body = json!({"size": chunk.len(), "query": {"terms": {"id": chunk}}, "_source": record_source()});
        let reply = ctx.search(&index, &body).await?;
        for hit in reply["hits"]["hits"].as_array().into_iter().flatten() {
            let f = facts(&hit["_source"]);
            out.insert(f.id.clone(), f);
        }
    }
    Ok(out)
}

/// Writes the records deltas of `[from, to]` for one community (or `global`).
pub async fn run_community(
    ctx: &AggContext,
    community_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<CommunityOutcome> {
    let mut by_day: BTreeMap<NaiveDate, DayChanges> = BTreeMap::new();
    let mut missing = 0u64;
    if community_id == GLOBAL {
        let records = ctx.client.index("rdmrecords-records");
        let source = json!(record_source());
        let added = json!({"bool": {"filter": [{"term": {"is_published": true}}, window("created", from, to)]}});
        scan(
            ctx,
            &records,
            added,
            json!([{"id": "asc"}]),
            source.clone(),
            |r| {
                if let Some(d) = day_of(&r["created"]) {
                    by_day.entry(d).or_default().count(&facts(&r), true);
                }
            },
        )
        .await?;
        let removed = json!({"bool": {"filter": [{"term": {"is_deleted": true}}, window("tombstone.removal_date", from, to)]}});
        scan(
            ctx,
            &records,
            removed,
            json!([{"id": "asc"}]),
            source,
            |r| {
                if let Some(d) = day_of(&r["tombstone"]["removal_date"]) {
                    by_day.entry(d).or_default().count(&facts(&r), false);
                }
            },
        )
        .await?;
    } else {
        let changes = community_changes(ctx, community_id, from, to).await?;
        let ids: Vec<String> = changes
            .iter()
            .map(|c| c.1.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let known = lookup(ctx, ids).await?;
        for (day, record, added) in changes {
            match known.get(&record) {
                Some(f) => by_day.entry(day).or_default().count(f, added),
                None => {
                    // The record is gone from the index: counted, without metadata.
                    missing += 1;
                    let f = RecordFacts {
                        id: record.clone(),
                        parent: record,
                        ..Default::default()
                    };
                    by_day.entry(day).or_default().count(&f, added);
                }
            }
        }
    }
    if missing > 0 {
        log::warn!("{} {community_id}: {missing} changed records are not in the records index (counted without metadata)", Aggregator::RecordsDelta);
    }
    let mut outcome = CommunityOutcome::default();
    let mut pipeline = ctx.pipeline();
    let empty = DayChanges::default();
    for day in days(from, to) {
        let doc = by_day.get(&day).unwrap_or(&empty).doc(community_id, day);
        if !outcome
            .write_day(
                ctx,
                &mut pipeline,
                Aggregator::RecordsDelta,
                community_id,
                day,
                &doc,
            )
            .await?
        {
            break;
        }
    }
    outcome.writes = pipeline.finish().await?;
    Ok(outcome)
}
