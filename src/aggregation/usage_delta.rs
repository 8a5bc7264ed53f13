//! Usage delta: one document per community and UTC day with the day's views and downloads
//! (`<prefix>stats-community-usage-delta-YYYY`, `_id` `<community>-<YYYY-MM-DD>`).
//!
//! Every community of a run is done in one shared pass over the events: each event is
//! read once and counted for `global` and for each of its communities whose days to do
//! hold it (a query per distinct range of days selects only events someone needs). One
//! request counts the selected events per day; days are grouped into spans of at most a
//! week and [`SPAN_EVENTS`] events (a busier day is a span of its own); each span's events
//! (only the fields the figures need) are read in one request per event type and folded
//! here (`usage_fold`): exact totals and distinct counts, every subcount item with its
//! label. A few spans run at a time; days without events get zero documents. Day bounds
//! are `[00:00:00, next 00:00:00)` UTC, so an event at 23:59:59 counts. The cost grows with
//! the events read, not with communities × days.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;
use futures::StreamExt;
use serde_json::{json, Value};

use super::subcounts::USAGE_SUBCOUNTS;
use super::usage::{item_list, Items, Pair};
use super::usage_fold::{self, DayFold, EventKeys};
use super::{delta_document, AggContext, Aggregator, CommunityOutcome, GLOBAL};
use crate::dates::{day_start, days};
use crate::error::{Error, Result};

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

fn day_range(from: NaiveDate, to_inclusive: NaiveDate) -> Value {
    json!({"range": {"timestamp": {
        "gte": day_start(from), "lt": day_start(to_inclusive.succ_opt().expect("date in range")),
    }}})
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

/// One community's days to do in a shared pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommunityRange {
    /// The community id, or `global`.
    pub community_id: String,
    /// First day.
    pub from: NaiveDate,
    /// Last day (inclusive).
    pub to: NaiveDate,
}

impl CommunityRange {
    fn holds(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

/// Which of the pass's communities an event counts for.
struct Targets<'r> {
    ranges: &'r [CommunityRange],
    global: Option<usize>,
    by_id: HashMap<&'r str, usize>,
}

impl<'r> Targets<'r> {
    fn new(ranges: &'r [CommunityRange]) -> Self {
        let global = ranges.iter().position(|r| r.community_id == GLOBAL);
        let by_id = ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.community_id != GLOBAL)
            .map(|(i, r)| (r.community_id.as_str(), i))
            .collect();
        Self {
            ranges,
            global,
            by_id,
        }
    }

    /// The positions (in `ranges`) of the communities `event` of `day` counts for, each
    /// once: `global`, and each of its `community_ids` whose range holds the day.
    fn of(&self, event: &Value, day: NaiveDate, out: &mut Vec<usize>) {
        out.clear();
        if let Some(g) = self.global.filter(|g| self.ranges[*g].holds(day)) {
            out.push(g);
        }
        let ids: &[Value] = match &event["community_ids"] {
            Value::Array(a) => a,
            one @ Value::String(_) => std::slice::from_ref(one),
            _ => &[],
        };
        for id in ids.iter().filter_map(Value::as_str) {
            if let Some(&i) = self.by_id.get(id) {
                if self.ranges[i].holds(day) && !out.contains(&i) {
                    out.push(i);
                }
            }
        }
    }

    /// The query clause selecting the events some community needs: per distinct range
    /// of days, its communities (no community filter for a range `global` has).
    fn scope(&self) -> Value {
        let mut groups: BTreeMap<(NaiveDate, NaiveDate), Vec<&str>> = BTreeMap::new();
        for r in self.ranges {
            groups
                .entry((r.from, r.to))
                .or_default()
                .push(r.community_id.as_str());
        }
        let should: Vec<Value> = groups
            .into_iter()
            .map(|((from, to), ids)| {
                let mut filter = vec![day_range(from, to)];
                if !ids.contains(&GLOBAL) {
                    filter.push(json!({"terms": {"community_ids": ids}}));
                }
                json!({"bool": {"filter": filter}})
            })
            .collect();
        json!({"bool": {"should": should, "minimum_should_match": 1}})
    }

    /// The first and last day of the pass.
    fn bounds(&self) -> Option<(NaiveDate, NaiveDate)> {
        let from = self.ranges.iter().map(|r| r.from).min()?;
        let to = self.ranges.iter().map(|r| r.to).max()?;
        Some((from, to))
    }
}

/// Events per day (views and downloads together) of the days with events in `[from, to]`
/// that `scope` selects.
async fn active_days(
    ctx: &AggContext,
    scope: &Value,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<BTreeMap<NaiveDate, u64>> {
    let (views, downloads) = event_aliases(ctx);
    let query = json!({"bool": {"filter": [day_range(from, to), scope]}});
    let body = json!({"size": 0, "query": query, "aggs": {"days": {"date_histogram": {
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
/// (timestamps, second resolution) that `scope` selects: one request when they fit in a
/// page, else the range is halved until they do.
fn fetch_events<'a>(
    ctx: &'a AggContext,
    index: &'a str,
    scope: &'a Value,
    from: chrono::NaiveDateTime,
    to: chrono::NaiveDateTime,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<Value>>> + Send + 'a>> {
    Box::pin(async move {
        let stamp = |t: chrono::NaiveDateTime| t.format("%Y-%m-%dT%H:%M:%S").to_string();
        let filter =
            json!([{"range": {"timestamp": {"gte": stamp(from), "lt": stamp(to)}}}, scope]);
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
            return Err(Error::Data(format!(
                "{index}: more than {PAGE} events in the second starting {}",
                stamp(from)
            )));
        }
        let mid = from + chrono::Duration::seconds(seconds / 2);
        let mut out = fetch_events(ctx, index, scope, from, mid).await?;
        out.extend(fetch_events(ctx, index, scope, mid, to).await?);
        Ok(out)
    })
}

/// The documents of one day: (position in the pass's ranges, the document serialised), in
/// range order. Serialised at once: a day's documents as JSON values would take several
/// times their size while they wait for the writer.
type DayDocs = (NaiveDate, Vec<(usize, Vec<u8>)>);

/// The delta documents of the days of `[from, to]` for every community whose range holds
/// them (zero documents for days without events); the events are read only if `searched`.
async fn aggregate_span(
    ctx: &AggContext,
    targets: &Targets<'_>,
    scope: &Value,
    (from, to, searched): (NaiveDate, NaiveDate, bool),
) -> Result<Vec<DayDocs>> {
    let (view_events, download_events) = if searched {
        let (views, downloads) = event_aliases(ctx);
        let start = from.and_hms_opt(0, 0, 0).expect("midnight");
        let end = to
            .succ_opt()
            .expect("date in range")
            .and_hms_opt(0, 0, 0)
            .expect("midnight");
        futures::try_join!(
            fetch_events(ctx, &views, scope, start, end),
            fetch_events(ctx, &downloads, scope, start, end),
        )?
    } else {
        (Vec::new(), Vec::new())
    };
    let mut folds: BTreeMap<(NaiveDate, usize), DayFold> = BTreeMap::new();
    let mut these = Vec::new();
    for (events, download) in [(&view_events, false), (&download_events, true)] {
        for hit in events {
            let event = &hit["_source"];
            let Some(day) = usage_fold::event_day(event) else {
                continue;
            };
            targets.of(event, day, &mut these);
            if these.is_empty() {
                continue;
            }
            let keys = EventKeys::of(event, download);
            for &i in &these {
                folds.entry((day, i)).or_default().add(&keys);
            }
        }
    }
    Ok(days(from, to)
        .map(|day| {
            let docs = (0..targets.ranges.len())
                .filter(|&i| targets.ranges[i].holds(day))
                .map(|i| {
                    let (totals, items) = folds
                        .remove(&(day, i))
                        .map(DayFold::finish)
                        .unwrap_or_default();
                    let doc = delta_doc(&targets.ranges[i].community_id, day, &totals, &items);
                    (
                        i,
                        serde_json::to_vec(&doc).expect("a JSON value serialises"),
                    )
                })
                .collect();
            (day, docs)
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

/// Writes the delta documents of every community of `ranges` (their outcomes, in the same
/// order), day by day and, within a day, in range order; a few spans' searches at a time.
/// Cancelled, it stops after the day in hand; a failed search stops the pass, and each
/// community not done keeps the days written before (its outcome names the error).
pub async fn run_all(ctx: &AggContext, ranges: &[CommunityRange]) -> Result<Vec<CommunityOutcome>> {
    let mut outcomes: Vec<CommunityOutcome> =
        ranges.iter().map(|_| CommunityOutcome::default()).collect();
    let targets = Targets::new(ranges);
    let Some((from, to)) = targets.bounds() else {
        return Ok(outcomes);
    };
    let scope = targets.scope();
    ctx.progress.set_task(format!(
        "{}: {} communities, {from}..{to}",
        Aggregator::UsageDelta,
        ranges.len()
    ));
    let mut failure = None;
    let mut pipeline = ctx.pipeline();
    match active_days(ctx, &scope, from, to).await {
        Err(e) => failure = Some(e),
        Ok(counts) => {
            let mut stream = futures::stream::iter(plan_spans(from, to, &counts))
                .map(|span| aggregate_span(ctx, &targets, &scope, span))
                .buffered(ctx.concurrency);
            'spans: while let Some(next) = stream.next().await {
                let span = match next {
                    Ok(span) => span,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                for (day, docs) in span {
                    if ctx.client.cancel_token().is_cancelled() {
                        break 'spans;
                    }
                    for (i, doc) in docs {
                        outcomes[i]
                            .write_day_raw(
                                ctx,
                                &mut pipeline,
                                Aggregator::UsageDelta,
                                &ranges[i].community_id,
                                day,
                                doc,
                            )
                            .await?;
                    }
                }
            }
        }
    }
    let totals = pipeline.finish().await?;
    let cancelled =
        ctx.client.cancel_token().is_cancelled() || matches!(failure, Some(Error::Cancelled(_)));
    attribute_writes(ranges, &mut outcomes, totals);
    for (range, outcome) in ranges.iter().zip(&mut outcomes) {
        let done = outcome.days.last() == Some(&range.to);
        outcome.interrupted = !done && cancelled;
        if !done && !cancelled {
            outcome.error = failure.as_ref().map(Error::to_string);
        }
    }
    Ok(outcomes)
}

/// Shares the pass's write totals out: each community's documents, minus the failures
/// whose `_id` names it. Failures beyond the named ones (only the first few reasons are
/// kept) are counted against every community, so that no bookmark moves past them.
fn attribute_writes(
    ranges: &[CommunityRange],
    outcomes: &mut [CommunityOutcome],
    totals: crate::bulk::BulkTotals,
) {
    let owner = |reason: &str| {
        let id = reason.split(' ').next().unwrap_or_default();
        ranges.iter().position(|r| {
            id.strip_prefix(r.community_id.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").is_ok())
        })
    };
    let mut named = 0;
    for reason in &totals.failure_reasons {
        if let Some(i) = owner(reason) {
            outcomes[i].writes.failed += 1;
            outcomes[i].writes.failure_reasons.push(reason.clone());
            named += 1;
        }
    }
    let unnamed = totals.failed.saturating_sub(named);
    for outcome in outcomes.iter_mut() {
        outcome.writes.written = (outcome.days.len() as u64).saturating_sub(outcome.writes.failed);
        if unnamed > 0 {
            outcome.writes.failed += unnamed;
            outcome.writes.failure_reasons.push(format!(
                "{unnamed} documents of the shared pass failed without naming their community"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, n).unwrap()
    }

    fn range(id: &str, from: u32, to: u32) -> CommunityRange {
        CommunityRange {
            community_id: id.into(),
            from: d(from),
            to: d(to),
        }
    }

    #[test]
    fn spans_hold_a_week_and_a_page_at_most() {
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

    #[test]
    fn an_event_counts_once_for_global_and_each_community_whose_days_hold_it() {
        let ranges = [range("c1", 1, 31), range(GLOBAL, 1, 10), range("c2", 5, 6)];
        let targets = Targets::new(&ranges);
        let mut out = Vec::new();
        let event = json!({"community_ids": ["c2", "c1", "c2", "other"]});
        targets.of(&event, d(5), &mut out);
        assert_eq!(out, [1, 2, 0]);
        targets.of(&event, d(7), &mut out);
        assert_eq!(out, [1, 0]);
        targets.of(&event, d(20), &mut out);
        assert_eq!(out, [0]);
        // A single id as a string, and no ids at all.
        targets.of(&json!({"community_ids": "c2"}), d(6), &mut out);
        assert_eq!(out, [1, 2]);
        targets.of(&json!({}), d(20), &mut out);
        assert!(out.is_empty());
        assert_eq!(targets.bounds(), Some((d(1), d(31))));
    }

    #[test]
    fn the_scope_selects_per_range_of_days_and_global_needs_no_community_filter() {
        let ranges = [
            range("c1", 1, 31),
            range("c3", 1, 31),
            range(GLOBAL, 1, 10),
            range("c2", 5, 6),
        ];
        let scope = Targets::new(&ranges).scope();
        let should = scope["bool"]["should"].as_array().unwrap();
        assert_eq!(should.len(), 3);
        let with = |from: u32, to: u32| {
            should
                .iter()
                .find(|c| c["bool"]["filter"][0] == day_range(d(from), d(to)))
                .unwrap()
        };
        assert_eq!(
            with(1, 31)["bool"]["filter"][1],
            json!({"terms": {"community_ids": ["c1", "c3"]}})
        );
        assert_eq!(
            with(5, 6)["bool"]["filter"][1],
            json!({"terms": {"community_ids": ["c2"]}})
        );
        // The global range [1, 10] needs no community filter.
        assert_eq!(with(1, 10)["bool"]["filter"].as_array().unwrap().len(), 1);
    }
    #[test]
    fn write_failures_are_shared_out_by_the_community_their_id_names() {
        let ranges = [range("c-1", 1, 2), range("c", 1, 2)];
        let mut outcomes: Vec<CommunityOutcome> =
            (0..2).map(|_| CommunityOutcome::default()).collect();
        for o in &mut outcomes {
            o.days = vec![d(1), d(2)];
        }
        let totals = crate::bulk::BulkTotals {
            written: 3,
            failed: 1,
            failure_reasons: vec!["c-1-2025-01-02 mapper_parsing_exception: x".into()],
            ..Default::default()
        };
        attribute_writes(&ranges, &mut outcomes, totals.clone());
        assert_eq!(
            (outcomes[0].writes.written, outcomes[0].writes.failed),
            (1, 1)
        );
        assert_eq!(
            (outcomes[1].writes.written, outcomes[1].writes.failed),
            (2, 0)
        );
        // More failures than reasons kept: every community counts them (no bookmark moves).
        let mut outcomes: Vec<CommunityOutcome> =
            (0..2).map(|_| CommunityOutcome::default()).collect();
        attribute_writes(
            &ranges,
            &mut outcomes,
            crate::bulk::BulkTotals {
                failed: 7,
                ..totals
            },
        );
        assert!(outcomes.iter().all(|o| o.writes.failed >= 6));
    }
}
