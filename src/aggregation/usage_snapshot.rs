//! Usage snapshot: per community and day, the cumulative usage up to the end of that day
//! (`<prefix>stats-community-usage-snapshot-YYYY`), built from the usage deltas.
//!
//! Incremental: the running state (cumulative totals and every subcount item, not only the
//! top N) is saved per community in `<prefix>stats-community-aggregation-state` as of the
//! day before the last snapshot written, so the next run (which starts again at its
//! bookmark, the last day) continues from it; only a run that goes back in time replays
//! the deltas from the first one. `unique_*` figures are sums of the daily distinct counts
//! (the reference's semantics; a distinct count over a whole history is not additive).

use chrono::NaiveDate;
use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::usage::{items_from_delta, snapshot_subcounts, Items, Pair};
use super::{day_start, now_stamp, parse_day_prefix, AggContext, CommunityOutcome};
use crate::error::{Error, Result};
use crate::pit::PitReader;

/// The aggregator's name (bookmarks, `--aggregation-type`).
pub const NAME: &str = "community-usage-snapshot-agg";
/// Its index (without prefix and year).
pub const INDEX: &str = "stats-community-usage-snapshot";
/// Where running states are kept (without prefix).
pub const STATE_INDEX: &str = "stats-community-aggregation-state";

/// Cumulative usage of one community.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunningState {
    /// Cumulative totals.
    pub totals: Pair,
    /// Every subcount item with its cumulative figures.
    pub items: Items,
}

impl RunningState {
    /// Adds one day's delta document.
    pub fn add_delta(&mut self, delta: &Value) {
        self.totals.add(&Pair::from_json(&delta["totals"]));
        for (key, items) in items_from_delta(&delta["subcounts"]) {
            let these = self.items.entry(key).or_default();
            for (id, item) in items {
                match these.get_mut(&id) {
                    Some(have) => {
                        have.figures.add(&item.figures);
                        have.label = item.label;
                    }
                    None => {
                        these.insert(id, item);
                    }
                }
            }
        }
    }

    /// Takes one day's delta document back out (the state as of the day before).
    pub fn subtract_delta(&mut self, delta: &Value) {
        let sub = |a: &mut Pair, b: &Pair| {
            for (x, y) in [(&mut a.view, &b.view), (&mut a.download, &b.download)] {
                x.total_events = x.total_events.saturating_sub(y.total_events);
                x.unique_visitors = x.unique_visitors.saturating_sub(y.unique_visitors);
                x.unique_records = x.unique_records.saturating_sub(y.unique_records);
                x.unique_parents = x.unique_parents.saturating_sub(y.unique_parents);
                x.unique_files = x.unique_files.saturating_sub(y.unique_files);
                x.total_volume = x.total_volume.saturating_sub(y.total_volume);
            }
        };
        sub(&mut self.totals, &Pair::from_json(&delta["totals"]));
        for (key, items) in items_from_delta(&delta["subcounts"]) {
            let Some(these) = self.items.get_mut(&key) else { continue };
            for (id, item) in items {
                if let Some(have) = these.get_mut(&id) {
                    sub(&mut have.figures, &item.figures);
                    if have.figures == Pair::default() {
                        these.remove(&id);
                    }
                }
            }
        }
    }

    /// The snapshot document of `day`.
    pub fn snapshot_doc(&self, community_id: &str, day: NaiveDate, top_n: usize) -> Value {
        let now = now_stamp();
        json!({
            "community_id": community_id,
            "snapshot_date": day_start(day),
            "timestamp": now, "updated_timestamp": now,
            "totals": self.totals.to_json(),
            "subcounts": snapshot_subcounts(&self.items, top_n),
        })
    }
}

fn delta_alias(ctx: &AggContext) -> String {
    ctx.client.index(super::usage_delta::INDEX)
}

/// The first and last days with a usage delta for the community.
pub async fn delta_bounds(ctx: &AggContext, community_id: &str) -> Result<Option<(NaiveDate, NaiveDate)>> {
    let body = json!({"size": 0, "query": {"term": {"community_id": community_id}}, "aggs": {
        "first": {"min": {"field": "period_start", "format": "yyyy-MM-dd"}},
        "last": {"max": {"field": "period_start", "format": "yyyy-MM-dd"}},
    }});
    let reply = ctx.search(&delta_alias(ctx), &body).await?;
    let day = |k: &str| reply["aggregations"][k]["value_as_string"].as_str().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
    Ok(day("first").zip(day("last")))
}

fn state_id(community_id: &str) -> String {
    format!("usage-snapshot_{community_id}")
}

async fn load_state(ctx: &AggContext, community_id: &str) -> Result<Option<(NaiveDate, RunningState)>> {
    let path = format!("{}/_doc/{}", ctx.client.index(STATE_INDEX), state_id(community_id));
    let Some(doc) = ctx.client.json_opt(Method::Get, &path, None).await? else {
        return Ok(None);
    };
    let src = &doc["_source"];
    let Some(as_of) = src["as_of"].as_str().and_then(parse_day_prefix) else { return Ok(None) };
    match serde_json::from_value::<RunningState>(src["state"].clone()) {
        Ok(state) => Ok(Some((as_of, state))),
        Err(e) => {
            log::warn!("ignoring an unreadable snapshot state of {community_id} ({e}): replaying the deltas");
            Ok(None)
        }
    }
}

/// Forgets the saved state of `community_id` if it includes days from `from` on (their
/// deltas were just rewritten, so it may be stale); the next snapshot run replays instead.
pub async fn invalidate_state_from(ctx: &AggContext, community_id: &str, from: NaiveDate) -> Result<()> {
    if let Some((as_of, _)) = load_state(ctx, community_id).await? {
        if as_of >= from {
            let path = format!("{}/_doc/{}", ctx.client.index(STATE_INDEX), state_id(community_id));
            ctx.client.json_opt(Method::Delete, &path, None).await?;
        }
    }
    Ok(())
}

async fn save_state(ctx: &AggContext, community_id: &str, as_of: NaiveDate, state: &RunningState) -> Result<()> {
    let index = ctx.client.index(STATE_INDEX);
    if !ctx.client.exists(&index).await? {
        let body = json!({"mappings": {"dynamic": "strict", "properties": {
            "community_id": {"type": "keyword"}, "aggregator": {"type": "keyword"},
            "as_of": {"type": "date", "format": "strict_date"}, "state": {"type": "object", "enabled": false},
        }}});
        match ctx.client.json(Method::Put, &index, Some(&body)).await {
            Ok(_) => {}
            Err(Error::Search { status: 400, reason, .. }) if reason.contains("already_exists") => {}
            Err(e) => return Err(e),
        }
    }
    let body = json!({
        "community_id": community_id, "aggregator": NAME,
        "as_of": as_of.format("%Y-%m-%d").to_string(), "state": state,
    });
    ctx.client.json(Method::Put, &format!("{index}/_doc/{}", state_id(community_id)), Some(&body)).await?;
    Ok(())
}

/// The community's deltas of `[from, to]` in day order, page by page; reading stops at
/// the first missing day (a gap), which [`DeltaReader::gap`] then names.
struct DeltaReader {
    reader: Option<PitReader>,
    expected: NaiveDate,
    to: NaiveDate,
    gap: Option<NaiveDate>,
}

impl DeltaReader {
    async fn open(ctx: &AggContext, community_id: &str, from: NaiveDate, to: NaiveDate) -> Result<Self> {
        let query = json!({"bool": {"filter": [
            {"term": {"community_id": community_id}},
            {"range": {"period_start": {"gte": day_start(from), "lte": day_start(to)}}},
        ]}});
        let reader = PitReader::open(&ctx.client, &delta_alias(ctx), query, json!([{"period_start": "asc"}]), 100, json!(true)).await?;
        Ok(Self { reader: Some(reader), expected: from, to, gap: None })
    }

    /// The next deltas (day, document), or `None` at the end or at a gap.
    async fn next_page(&mut self, ctx: &AggContext) -> Result<Option<Vec<(NaiveDate, Value)>>> {
        let Some(reader) = self.reader.as_mut() else { return Ok(None) };
        let page = reader.next_page().await;
        ctx.count_search();
        let mut out = Vec::new();
        match page? {
            Some(hits) => {
                for mut hit in hits {
                    let src = hit["_source"].take();
                    let Some(day) = src["period_start"].as_str().and_then(parse_day_prefix) else { continue };
                    if day != self.expected {
                        self.gap = Some(self.expected);
                        self.close().await;
                        break;
                    }
                    out.push((day, src));
                    self.expected = self.expected.succ_opt().expect("date in range");
                }
            }
            None => {
                if self.expected <= self.to {
                    self.gap = Some(self.expected);
                }
                self.close().await;
            }
        }
        if out.is_empty() && self.reader.is_none() {
            return Ok(None);
        }
        Ok(Some(out))
    }

    async fn close(&mut self) {
        if let Some(r) = self.reader.take() {
            let _ = r.close().await;
        }
    }
}

/// Writes the community's snapshots for `[from, to]`. `first_delta` is the community's
/// first delta day: the state before `from` comes from the saved state, else from the
/// deltas since then.
pub async fn run_community(ctx: &AggContext, community_id: &str, first_delta: NaiveDate, from: NaiveDate, to: NaiveDate) -> Result<CommunityOutcome> {
    let mut outcome = CommunityOutcome::default();
    let before = from.pred_opt().expect("date in range");
    let mut state = RunningState::default();
    if from > first_delta {
        let (replay_from, base) = match load_state(ctx, community_id).await? {
            Some((as_of, saved)) if as_of <= before && as_of >= first_delta => (as_of.succ_opt().expect("date"), saved),
            _ => (first_delta, RunningState::default()),
        };
        state = base;
        if replay_from <= before {
            log::info!("{community_id}: reading usage deltas {replay_from}..{before} to rebuild the snapshot state");
            let mut reader = DeltaReader::open(ctx, community_id, replay_from, before).await?;
            while let Some(page) = reader.next_page(ctx).await? {
                for (_, delta) in &page {
                    state.add_delta(delta);
                }
            }
            if let Some(day) = reader.gap {
                outcome.error = Some(format!("no usage delta for {day}: run the usage delta for that day first"));
                return Ok(outcome);
            }
        }
    }
    let mut pipeline = ctx.pipeline();
    let mut last_delta: Option<Value> = None;
    let cancel = ctx.client.cancel_token().clone();
    let mut reader = DeltaReader::open(ctx, community_id, from, to).await?;
    let read: Result<()> = async {
        while let Some(page) = reader.next_page(ctx).await? {
            for (day, delta) in page {
                state.add_delta(&delta);
                let doc = state.snapshot_doc(community_id, day, ctx.top_n);
                let index = ctx.client.index(&format!("{INDEX}-{}", day.format("%Y")));
                pipeline.add(&index, &format!("{community_id}-{}", day.format("%Y-%m-%d")), &doc).await?;
                outcome.days.push(day);
                last_delta = Some(delta);
                ctx.progress.advance(1);
            }
            if cancel.is_cancelled() {
                outcome.interrupted = true;
                break;
            }
        }
        Ok(())
    }
    .await;
    reader.close().await;
    outcome.writes = pipeline.finish().await?;
    read?;
    if let Some(day) = reader.gap.filter(|_| !outcome.interrupted) {
        outcome.error = Some(format!("no usage delta for {day}: snapshots stop at the gap (run the usage delta for that day)"));
    }
    if let (Some(last), Some(delta)) = (outcome.days.last(), last_delta) {
        if outcome.writes.failed == 0 {
            state.subtract_delta(&delta);
            save_state(ctx, community_id, last.pred_opt().expect("date"), &state).await?;
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(views: u64, lang: &str) -> Value {
        json!({"totals": {"view": {"total_events": views, "unique_visitors": 1}, "download": {"total_events": 1, "total_volume": 10}},
               "subcounts": {"languages": [{"id": lang, "label": {"en": lang}, "view": {"total_events": views}, "download": {"total_events": 1}}]}})
    }

    #[test]
    fn subtracting_the_last_delta_gives_the_state_of_the_day_before() {
        let mut s = RunningState::default();
        s.add_delta(&delta(3, "eng"));
        let before = s.clone();
        s.add_delta(&delta(5, "fra"));
        assert_eq!(s.totals.view.total_events, 8);
        assert_eq!(s.totals.download.total_volume, 20);
        s.subtract_delta(&delta(5, "fra"));
        assert_eq!(s, before);
    }

    #[test]
    fn snapshot_lists_top_items_by_views_and_downloads() {
        let mut s = RunningState::default();
        s.add_delta(&delta(3, "eng"));
        s.add_delta(&delta(5, "fra"));
        s.add_delta(&delta(1, "eng"));
        let doc = s.snapshot_doc("global", NaiveDate::from_ymd_opt(2025, 6, 1).unwrap(), 20);
        let by_view = &doc["subcounts"]["languages"]["by_view"];
        assert_eq!(by_view[0]["id"], "fra");
        assert_eq!(by_view[1]["view"]["total_events"], 4);
        assert_eq!(doc["subcounts"]["languages"]["by_download"][0]["id"], "eng");
        assert_eq!(doc["snapshot_date"], "2025-06-01T00:00:00");
    }
}
