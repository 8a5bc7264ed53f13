//! Usage delta: one document per community and UTC day with the day's views and downloads
//! (`<prefix>stats-community-usage-delta-YYYY`, `_id` `<community>-<YYYY-MM-DD>`).
//!
//! One request finds the days that have events at all; each span of a week with events is
//! one `_msearch` (views and downloads), a daily histogram whose buckets carry each day's
//! totals (exact `doc_count`s) and subcounts; a few spans run at a time; quiet days get zero
//! documents without a search. Day bounds are `[00:00:00, next 00:00:00)` UTC, so an event
//! at 23:59:59 counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use futures::StreamExt;
use serde_json::{json, Value};

use super::subcounts::{label_from_source, LabelKind, USAGE_SUBCOUNTS};
use super::usage::{item_list, Item, Items, Metrics, Pair};
use super::{day_start, days, now_stamp, AggContext, CommunityOutcome, GLOBAL};
use crate::error::Result;

/// The aggregator's name (bookmarks, `--aggregation-type`).
pub const NAME: &str = "community-usage-delta-agg";
/// Its index (without prefix and year).
pub const INDEX: &str = "stats-community-usage-delta";
/// The buckets a subcount returns per day at most (the reference stopped at 1,000).
const TERMS_SIZE: usize = 10_000;
/// Day totals: distinct counts exact up to this many values (OpenSearch's maximum).
const TOTALS_PRECISION: u32 = 40_000;
/// Subcount items: exact up to this many values per item and day (OpenSearch's default;
/// 40,000 per bucket made each day's search ten times slower).
const ITEM_PRECISION: u32 = 3_000;

/// The event indices (read aliases) for views and downloads.
pub fn event_aliases(ctx: &AggContext) -> (String, String) {
    (ctx.client.index("events-stats-record-view"), ctx.client.index("events-stats-file-download"))
}

fn community_filter(community_id: &str) -> Option<Value> {
    (community_id != GLOBAL).then(|| json!({"term": {"community_ids": community_id}}))
}

fn range_query(community_id: &str, from: NaiveDate, to_inclusive: NaiveDate) -> Value {
    let mut filter = vec![json!({"range": {"timestamp": {
        "gte": day_start(from), "lt": day_start(to_inclusive.succ_opt().expect("date in range")),
    }}})];
    filter.extend(community_filter(community_id));
    json!({"bool": {"filter": filter}})
}

/// The day of the community's first view or download, if it has any.
pub async fn first_event_day(ctx: &AggContext, community_id: &str) -> Result<Option<NaiveDate>> {
    let (views, downloads) = event_aliases(ctx);
    let mut q = json!({"match_all": {}});
    if let Some(f) = community_filter(community_id) {
        q = json!({"bool": {"filter": [f]}});
    }
    let body = json!({"size": 0, "query": q, "aggs": {"first": {"min": {"field": "timestamp", "format": "yyyy-MM-dd"}}}});
    let reply = ctx.search(&format!("{views},{downloads}"), &body).await?;
    Ok(reply["aggregations"]["first"]["value_as_string"].as_str().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()))
}

async fn active_days(ctx: &AggContext, community_id: &str, from: NaiveDate, to: NaiveDate) -> Result<BTreeSet<NaiveDate>> {
    let (views, downloads) = event_aliases(ctx);
    let body = json!({"size": 0, "query": range_query(community_id, from, to), "aggs": {"days": {"date_histogram": {
        "field": "timestamp", "calendar_interval": "day", "min_doc_count": 1, "format": "yyyy-MM-dd", "time_zone": "UTC",
    }}}});
    let reply = ctx.search(&format!("{views},{downloads}"), &body).await?;
    Ok(reply["aggregations"]["days"]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["key_as_string"].as_str().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()))
        .collect())
}

fn metric_aggs(download: bool, precision: u32, direct: bool) -> Value {
    // `execution_hint: direct` (OpenSearch >= 2.18) hashes values instead of keeping a
    // bit set of the field's global ordinals per bucket: ten times faster here.
    let card = |f: &str| {
        let mut c = json!({"cardinality": {"field": f, "precision_threshold": precision}});
        if direct {
            c["cardinality"]["execution_hint"] = json!("direct");
        }
        c
    };
    let mut aggs = json!({
        "unique_visitors": card("visitor_id"), "unique_records": card("recid"), "unique_parents": card("parent_recid"),
    });
    if download {
        aggs["unique_files"] = card("file_id");
        aggs["total_volume"] = json!({"sum": {"field": "size"}});
    }
    aggs
}

/// The search of one span of days and one event type: a daily histogram whose buckets hold
/// the totals and subcounts of each day with events.
pub fn span_search(community_id: &str, from: NaiveDate, to: NaiveDate, download: bool, direct: bool) -> Value {
    let mut day_aggs = metric_aggs(download, TOTALS_PRECISION, direct);
    // Labels once per span and item (a `top_hits` per day and item cost more than all
    // the counting).
    let mut label_aggs = serde_json::Map::new();
    for s in USAGE_SUBCOUNTS {
        let sub = metric_aggs(download, ITEM_PRECISION, direct);
        day_aggs[format!("sc_{}", s.key)] = json!({"terms": {"field": s.id_field(), "size": TERMS_SIZE}, "aggs": sub.clone()});
        if s.name_fallback {
            day_aggs[format!("scn_{}", s.key)] = json!({"terms": {"field": format!("{}.name", s.base), "size": TERMS_SIZE}, "aggs": sub});
        }
        if s.label != LabelKind::Id {
            label_aggs.insert(format!("lb_{}", s.key), json!({"terms": {"field": s.id_field(), "size": TERMS_SIZE}, "aggs": {
                "label": {"top_hits": {"size": 1, "_source": {"includes": [s.base]}}},
            }}));
        }
    }
    let mut aggs = Value::Object(label_aggs);
    aggs["days"] = json!({"date_histogram": {
        "field": "timestamp", "calendar_interval": "day", "min_doc_count": 1, "format": "yyyy-MM-dd", "time_zone": "UTC",
    }, "aggs": day_aggs});
    json!({"size": 0, "query": range_query(community_id, from, to), "aggs": aggs})
}

/// Subcount key -> item id -> the item's source value (for its label), from a span reply.
pub type Labels = HashMap<&'static str, HashMap<String, Value>>;

/// Adds the labels of a span reply to `labels`.
pub fn collect_labels(reply: &Value, labels: &mut Labels) {
    for s in USAGE_SUBCOUNTS.iter().filter(|s| s.label != LabelKind::Id) {
        let these = labels.entry(s.key).or_default();
        for b in reply["aggregations"][format!("lb_{}", s.key)]["buckets"].as_array().into_iter().flatten() {
            if let Some(id) = b["key"].as_str() {
                these.entry(id.to_string()).or_insert_with(|| b["label"]["hits"]["hits"][0]["_source"][s.base].clone());
            }
        }
    }
}

fn metrics_of(agg: &Value, events: u64) -> Metrics {
    let n = |k: &str| agg[k]["value"].as_f64().map(|f| f.round() as u64).unwrap_or(0);
    Metrics {
        total_events: events,
        unique_visitors: n("unique_visitors"),
        unique_records: n("unique_records"),
        unique_parents: n("unique_parents"),
        unique_files: n("unique_files"),
        total_volume: n("total_volume"),
    }
}

/// Folds one day's bucket (of one event type) into the day's totals and items. A bucket's
/// `doc_count` is exact, whatever the number of events.
pub fn fold_day(aggs: &Value, download: bool, labels: &Labels, totals: &mut Pair, items: &mut Items) {
    let events = aggs["doc_count"].as_u64().unwrap_or(0);
    let m = metrics_of(aggs, events);
    if download { totals.download = m } else { totals.view = m }
    for s in USAGE_SUBCOUNTS {
        let these = items.entry(s.key.to_string()).or_default();
        let mut fold = |bucket: &Value, id: &str| {
            let label = if s.label == LabelKind::Id {
                json!(id)
            } else {
                let source = labels.get(s.key).and_then(|m| m.get(id)).unwrap_or(&Value::Null);
                label_from_source(s, source, id)
            };
            let m = metrics_of(bucket, bucket["doc_count"].as_u64().unwrap_or(0));
            let item = these.entry(id.to_string()).or_insert_with(|| Item { label: label.clone(), figures: Pair::default() });
            if download { item.figures.download = m } else { item.figures.view = m }
        };
        let buckets = |name: String| aggs[name]["buckets"].as_array().cloned().unwrap_or_default();
        let by_id = buckets(format!("sc_{}", s.key));
        for b in &by_id {
            let Some(id) = b["key"].as_str() else { continue };
            fold(b, id);
        }
        if s.name_fallback {
            // Names of items that have an id are already counted under the id.
            // (Name-only items have their name as id and label; they are not skipped.)
            let these_labels: BTreeSet<String> = these
                .iter()
                .filter_map(|(id, i)| i.label.as_str().filter(|l| l != id).map(String::from))
                .collect();
            let mut fold = |bucket: &Value, id: &str| {
                let m = metrics_of(bucket, bucket["doc_count"].as_u64().unwrap_or(0));
                let item = these.entry(id.to_string()).or_insert_with(|| Item { label: json!(id), figures: Pair::default() });
                if download { item.figures.download = m } else { item.figures.view = m }
            };
            for b in buckets(format!("scn_{}", s.key)) {
                let Some(name) = b["key"].as_str() else { continue };
                if !these_labels.contains(name) {
                    fold(&b, name);
                }
            }
        }
    }
}

/// The delta document of one community and day.
pub fn delta_doc(community_id: &str, day: NaiveDate, totals: &Pair, items: &Items) -> Value {
    let mut subcounts = serde_json::Map::new();
    for s in USAGE_SUBCOUNTS {
        let list = items.get(s.key).map(|m| item_list(m.iter())).unwrap_or_default();
        subcounts.insert(s.key.into(), Value::Array(list));
    }
    let now = now_stamp();
    json!({
        "community_id": community_id,
        "period_start": day_start(day),
        "period_end": format!("{}T23:59:59", day.format("%Y-%m-%d")),
        "timestamp": now, "updated_timestamp": now,
        "totals": totals.to_json(),
        "subcounts": subcounts,
    })
}

/// Days searched together (one `_msearch` per span); a span whose histogram would exceed
/// the cluster's bucket limit is split in halves.
const SPAN_DAYS: i64 = 7;

/// The delta documents of the days of `[from, to]` that have events, by day.
fn aggregate_span<'a>(
    ctx: &'a AggContext,
    community_id: &'a str,
    from: NaiveDate,
    to: NaiveDate,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<BTreeMap<NaiveDate, Value>>> + Send + 'a>> {
    Box::pin(async move {
        let (views, downloads) = event_aliases(ctx);
        let direct = ctx.cardinality_hint();
        let searches = [
            (views, span_search(community_id, from, to, false, direct)),
            (downloads, span_search(community_id, from, to, true, direct)),
        ];
        let replies = match ctx.msearch(&searches).await {
            Err(crate::error::Error::Search { status: 400, reason, .. }) if direct && reason.contains("execution_hint") => {
                log::info!("this cluster does not know the cardinality execution hint: counting without it");
                ctx.disable_cardinality_hint();
                return aggregate_span(ctx, community_id, from, to).await;
            }
            Err(crate::error::Error::Search { reason, .. }) if reason.contains("too_many_buckets") && from < to => {
                let mid = from + chrono::Duration::days((to - from).num_days() / 2);
                let mut out = aggregate_span(ctx, community_id, from, mid).await?;
                out.extend(aggregate_span(ctx, community_id, mid.succ_opt().expect("date"), to).await?);
                return Ok(out);
            }
            other => other?,
        };
        let mut labels = Labels::new();
        for reply in &replies {
            collect_labels(reply, &mut labels);
        }
        let mut by_day: BTreeMap<NaiveDate, (Pair, Items)> = BTreeMap::new();
        for (reply, download) in replies.iter().zip([false, true]) {
            for bucket in reply["aggregations"]["days"]["buckets"].as_array().into_iter().flatten() {
                let Some(day) = bucket["key_as_string"].as_str().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()) else { continue };
                let (totals, items) = by_day.entry(day).or_default();
                fold_day(bucket, download, &labels, totals, items);
            }
        }
        Ok(by_day.into_iter().map(|(day, (totals, items))| (day, delta_doc(community_id, day, &totals, &items))).collect())
    })
}

/// Writes the community's delta documents for `[from, to]`, in day order, a few days'
/// searches at a time; stops after the day in hand when cancelled.
pub async fn run_community(ctx: &AggContext, community_id: &str, from: NaiveDate, to: NaiveDate) -> Result<CommunityOutcome> {
    let active = active_days(ctx, community_id, from, to).await?;
    let mut outcome = CommunityOutcome::default();
    // Spans of up to SPAN_DAYS calendar days; only spans with events are searched.
    let mut spans = Vec::new();
    let mut start = from;
    while start <= to {
        let end = (start + chrono::Duration::days(SPAN_DAYS - 1)).min(to);
        spans.push((start, end, active.range(start..=end).next().is_some()));
        start = end.succ_opt().expect("date");
    }
    let mut stream = futures::stream::iter(spans)
        .map(|(start, end, searched)| async move {
            let mut found = if searched { aggregate_span(ctx, community_id, start, end).await? } else { BTreeMap::new() };
            let docs: Vec<(NaiveDate, Value)> = days(start, end)
                .map(|day| {
                    let doc = found.remove(&day).unwrap_or_else(|| delta_doc(community_id, day, &Pair::default(), &BTreeMap::new()));
                    (day, doc)
                })
                .collect();
            Ok::<_, crate::error::Error>(docs)
        })
        .buffered(ctx.concurrency)
        .map(|r| futures::stream::iter(match r {
            Ok(docs) => docs.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        }))
        .flatten();
    let mut pipeline = ctx.pipeline();
    while let Some(next) = stream.next().await {
        let (day, doc) = next?;
        let index = ctx.client.index(&format!("{INDEX}-{}", day.format("%Y")));
        pipeline.add(&index, &format!("{community_id}-{}", day.format("%Y-%m-%d")), &doc).await?;
        outcome.days.push(day);
        ctx.progress.advance(1);
        if ctx.client.cancel_token().is_cancelled() {
            outcome.interrupted = true;
            break;
        }
    }
    drop(stream);
    outcome.writes = pipeline.finish().await?;
    Ok(outcome)
}
