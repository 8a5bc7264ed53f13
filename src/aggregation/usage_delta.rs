//! Usage delta: one document per community and UTC day with the day's views and downloads
//! (`<prefix>stats-community-usage-delta-YYYY`, `_id` `<community>-<YYYY-MM-DD>`).
//!
//! One request counts the community's events per day. Days are grouped into spans of at
//! most a week and 2,000 events (a busier day is a span of its own); each span's events (only the fields the figures need) are
//! read in one request per event type and folded here (`usage_fold`): exact totals and
//! distinct counts, every subcount item with its label. A few spans run at a time; quiet
//! days get zero documents without a search. Day bounds are `[00:00:00, next 00:00:00)` UTC,
//! so an event at 23:59:59 counts.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::StreamExt;
use serde_json::{json, Value};

use super::subcounts::USAGE_SUBCOUNTS;
use super::usage::{item_list, Items, Pair};
use super::usage_fold;
use super::{delta_document, AggContext, Aggregator, CommunityOutcome, GLOBAL};
use crate::dates::{day_start, days};
use crate::error::Result;

/// The event indices (read aliases) for views and downloads.
pub fn event_aliases(ctx: &AggContext) -> (String, String) {
    (
        ctx.client.index("events-stats-record-view"),
        ctx.client.index("events-stats-file-download"),
    )
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
    ctx.first_day(&format!("{views},{downloads}"), q, "timestamp")
        .await
}

/// Events per day (views and downloads together) of the days with events in `[from, to]`.
async fn active_days(
    ctx: &AggContext,
    community_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<BTreeMap<NaiveDate, u64>> {
    let (views, downloads) = event_aliases(ctx);
    let body = json!({"size": 0, "query": range_query(community_id, from, to), "aggs": {"days": {"date_histogram": {
        "field": "timestamp", "calendar_interval": "day", "min_doc_count": 1, "format": "yyyy-MM-dd", "time_zone": "UTC",
    }}}});
    let reply = ctx.search(&format!("{views},{downloads}"), &body).await?;
    Ok(reply["aggregations"]["days"]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| {
            let day = b["key_as_string"]
                .as_str()
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())?;
            Some((day, b["doc_count"].as_u64().unwrap_or(0)))
        })
        .collect())
}

/// Events read per request at most (OpenSearch's default result window).
const PAGE: u64 = 10_000;
/// Events (views and downloads together) a span holds at most, unless one day has more: the
/// memory of a span in flight (a few MB), times the concurrency.
const SPAN_EVENTS: u64 = 2_000;

/// The events (`_source` with the fields the figures need) of `index` in `[from, to)`
/// (timestamps, second resolution): one request when they fit in a page, else the range
/// is halved until they do.
fn fetch_events<'a>(
    ctx: &'a AggContext,
    index: &'a str,
    community_id: &'a str,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Value>>> + Send + 'a>> {
    Box::pin(async move {
        let stamp = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let mut filter =
            vec![json!({"range": {"timestamp": {"gte": stamp(from), "lt": stamp(to)}}})];
        filter.extend(community_filter(community_id));
        let body = json!({
            "size": PAGE, "track_total_hits": true, "sort": ["_doc"],
            "_source": usage_fold::source_fields(),
            "query": {"bool": {"filter": filter}},
        });
        let mut reply = ctx.search(index, &body).await?;
        let total = reply["hits"]["total"]["value"].as_u64().unwrap_or(0);
        let hits = match reply["hits"]["hits"].take() {
            Value::Array(hits) => hits,
            _ => Vec::new(),
        };
        if total <= hits.len() as u64 {
            return Ok(hits);
        }
        let seconds = (to - from).num_seconds();
        if seconds <= 1 {
            return Err(crate::error::Error::Data(format!(
                "{index}: more than {PAGE} events of {community_id} in the second starting {}",
                stamp(from)
            )));
        }
        let mid = from + chrono::Duration::seconds(seconds / 2);
        let mut out = fetch_events(ctx, index, community_id, from, mid).await?;
        out.extend(fetch_events(ctx, index, community_id, mid, to).await?);
        Ok(out)
    })
}

/// The delta documents of the days of `[from, to]` that have events, by day.
async fn aggregate_span(
    ctx: &AggContext,
    community_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<BTreeMap<NaiveDate, Value>> {
    let (views, downloads) = event_aliases(ctx);
    let start = from.and_hms_opt(0, 0, 0).expect("midnight");
    let end = to
        .succ_opt()
        .expect("date in range")
        .and_hms_opt(0, 0, 0)
        .expect("midnight");
    let (view_events, download_events) = futures::try_join!(
        fetch_events(ctx, &views, community_id, start, end),
        fetch_events(ctx, &downloads, community_id, start, end),
    )?;
    let mut folds = BTreeMap::new();
    usage_fold::fold_events(&mut folds, &view_events, false);
    usage_fold::fold_events(&mut folds, &download_events, true);
    Ok(folds
        .into_iter()
        .filter(|(day, _)| *day >= from && *day <= to)
        .map(|(day, fold)| {
            let (totals, items) = fold.finish();
            (day, delta_doc(community_id, day, &totals, &items))
        })
        .collect())
}

/// The delta document of one community and day.
pub fn delta_doc(community_id: &str, day: NaiveDate, totals: &Pair, items: &Items) -> Value {
    let mut subcounts = serde_json::Map::new();
    for s in USAGE_SUBCOUNTS {
        let list = items
            .get(s.key)
            .map(|m| item_list(m.iter()))
            .unwrap_or_default();
        subcounts.insert(s.key.into(), Value::Array(list));
    }
    delta_document(
        community_id,
        day,
        json!({"totals": totals.to_json(), "subcounts": subcounts}),
    )
}

/// Days read together at most.
const SPAN_DAYS: i64 = 7;

/// Spans of consecutive days: at most [`SPAN_DAYS`] days and [`SPAN_EVENTS`] events each (a day
/// with more is a span of its own); `true` for spans with events.
fn plan_spans(
    from: NaiveDate,
    to: NaiveDate,
    counts: &BTreeMap<NaiveDate, u64>,
) -> Vec<(NaiveDate, NaiveDate, bool)> {
    let mut spans: Vec<(NaiveDate, NaiveDate, bool)> = Vec::new();
    let mut current: Option<(NaiveDate, NaiveDate, u64)> = None;
    for day in days(from, to) {
        let n = counts.get(&day).copied().unwrap_or(0);
        current = match current {
            Some((start, _, sum))
                if (day - start).num_days() < SPAN_DAYS && sum + n <= SPAN_EVENTS =>
            {
                Some((start, day, sum + n))
            }
            Some((start, end, sum)) => {
                spans.push((start, end, sum > 0));
                Some((day, day, n))
            }
            None => Some((day, day, n)),
        };
    }
    if let Some((start, end, sum)) = current {
        spans.push((start, end, sum > 0));
    }
    spans
}

/// Writes the community's delta documents for `[from, to]`, in day order, a few days'
/// searches at a time; stops after the day in hand when cancelled.
pub async fn run_community(
    ctx: &AggContext,
    community_id: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<CommunityOutcome> {
    let counts = active_days(ctx, community_id, from, to).await?;
    let mut outcome = CommunityOutcome::default();
    let spans = plan_spans(from, to, &counts);
    let mut stream = futures::stream::iter(spans)
        .map(|(start, end, searched)| async move {
            let mut found = if searched {
                aggregate_span(ctx, community_id, start, end).await?
            } else {
                BTreeMap::new()
            };
            let docs: Vec<(NaiveDate, Value)> = days(start, end)
                .map(|day| {
                    let doc = found.remove(&day).unwrap_or_else(|| {
                        delta_doc(community_id, day, &Pair::default(), &BTreeMap::new())
                    });
                    (day, doc)
                })
                .collect();
            Ok::<_, crate::error::Error>(docs)
        })
        .buffered(ctx.concurrency)
        .map(|r| {
            futures::stream::iter(match r {
                Ok(docs) => docs.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            })
        })
        .flatten();
    let mut pipeline = ctx.pipeline();
    while let Some(next) = stream.next().await {
        let (day, doc) = next?;
        if !outcome
            .write_day(
                ctx,
                &mut pipeline,
                Aggregator::UsageDelta,
                community_id,
                day,
                &doc,
            )
            .await?
        {
            break;
        }
    }
    drop(stream);
    outcome.writes = pipeline.finish().await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_hold_a_week_and_a_page_at_most() {
        let d = |n| NaiveDate::from_ymd_opt(2025, 1, n).unwrap();
        let mut counts = BTreeMap::new();
        counts.insert(d(2), 1_200);
        counts.insert(d(3), 1_000);
        counts.insert(d(4), 12_000);
        counts.insert(d(20), 1);
        let spans = plan_spans(d(1), d(31), &counts);
        assert_eq!(spans[0], (d(1), d(2), true));
        assert_eq!(spans[1], (d(3), d(3), true));
        assert_eq!(spans[2], (d(4), d(4), true));
        assert_eq!(spans[3], (d(5), d(11), false));
        assert!(spans.iter().any(|s| s.0 <= d(20) && d(20) <= s.1 && s.2));
        // Every day once, in order.
        let covered: Vec<NaiveDate> = spans.iter().flat_map(|(a, b, _)| days(*a, *b)).collect();
        assert_eq!(covered, days(d(1), d(31)).collect::<Vec<_>>());
    }
}
