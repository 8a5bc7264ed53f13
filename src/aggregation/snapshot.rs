//! Snapshots from deltas, for any aggregator pair: per community and day, a running
//! cumulative state plus that day's delta gives the day's snapshot document.
//!
//! Incremental: the running state (every subcount item, not only the top N) is saved per
//! community in `<prefix>stats-community-aggregation-state` as of the day before the last
//! snapshot written, so the next run (which starts again at its bookmark, the last day)
//! continues from it; only a run that goes back in time replays the deltas from the first
//! one. A delta run that rewrites days the saved state covers forgets that state.

use chrono::NaiveDate;
use opensearch::http::Method;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

use super::{AggContext, Aggregator, CommunityOutcome};
use crate::dates::{day_start, parse_day_prefix};
use crate::error::Result;
use crate::pit::PitReader;

/// Where running states are kept (without prefix).
pub const STATE_INDEX: &str = "stats-community-aggregation-state";

/// A cumulative state built from delta documents.
pub trait CumulativeState: Default + Clone + Serialize + DeserializeOwned + Send + Sync {
    /// Adds one day's delta document.
    fn add_delta(&mut self, delta: &Value);
    /// Takes one day's delta document back out (the state as of the day before).
    fn subtract_delta(&mut self, delta: &Value);
    /// The snapshot document of `day`.
    fn snapshot_doc(&self, community_id: &str, day: NaiveDate, top_n: usize) -> Value;
}

fn delta_alias(ctx: &AggContext, snapshot: Aggregator) -> String {
    ctx.client.index(snapshot.delta().index())
}

/// The first and last days with a usage delta for the community.
pub async fn delta_bounds(
    ctx: &AggContext,
    snapshot: Aggregator,
    community_id: &str,
) -> Result<Option<(NaiveDate, NaiveDate)>> {
    let body = json!({"size": 0, "query": {"term": {"community_id": community_id}}, "aggs": {
        "first": {"min": {"field": "period_start", "format": "yyyy-MM-dd"}},
        "last": {"max": {"field": "period_start", "format": "yyyy-MM-dd"}},
    }});
    let reply = ctx.search(&delta_alias(ctx, snapshot), &body).await?;
    let day = |k: &str| {
        reply["aggregations"][k]["value_as_string"]
            .as_str()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    Ok(day("first").zip(day("last")))
}

fn state_id(snapshot: Aggregator, community_id: &str) -> String {
    format!("{}_{community_id}", snapshot.name())
}

async fn load_state<S: CumulativeState>(
    ctx: &AggContext,
    snapshot: Aggregator,
    community_id: &str,
) -> Result<Option<(NaiveDate, S)>> {
    let path = format!(
        "{}/_doc/{}",
        ctx.client.index(STATE_INDEX),
        state_id(snapshot, community_id)
    );
    let Some(doc) = ctx.client.json_opt(Method::Get, &path, None).await? else {
        return Ok(None);
    };
    let src = &doc["_source"];
    let Some(as_of) = src["as_of"].as_str().and_then(parse_day_prefix) else {
        return Ok(None);
    };
    match serde_json::from_value::<S>(src["state"].clone()) {
        Ok(state) => Ok(Some((as_of, state))),
        Err(e) => {
            log::warn!("ignoring an unreadable snapshot state of {community_id} ({e}): replaying the deltas");
            Ok(None)
        }
    }
}

/// Forgets the saved state of `community_id` if it includes days from `from` on (their
/// deltas were just rewritten, so it may be stale); the next snapshot run replays instead.
pub async fn invalidate_state_from(
    ctx: &AggContext,
    snapshot: Aggregator,
    community_id: &str,
    from: NaiveDate,
) -> Result<()> {
    let path = format!(
        "{}/_doc/{}",
        ctx.client.index(STATE_INDEX),
        state_id(snapshot, community_id)
    );
    let Some(doc) = ctx.client.json_opt(Method::Get, &path, None).await? else {
        return Ok(());
    };
    if let Some(as_of) = doc["_source"]["as_of"].as_str().and_then(parse_day_prefix) {
        if as_of >= from {
            ctx.client.json_opt(Method::Delete, &path, None).await?;
        }
    }
    Ok(())
}

async fn save_state<S: CumulativeState>(
    ctx: &AggContext,
    snapshot: Aggregator,
    community_id: &str,
    as_of: NaiveDate,
    state: &S,
) -> Result<()> {
    let index = ctx.client.index(STATE_INDEX);
    let mappings = json!({"dynamic": "strict", "properties": {
        "community_id": {"type": "keyword"}, "aggregator": {"type": "keyword"},
        "as_of": {"type": "date", "format": "strict_date"}, "state": {"type": "object", "enabled": false},
    }});
    ctx.client.ensure_index(&index, &mappings).await?;
    let body = json!({
        "community_id": community_id, "aggregator": snapshot.name(),
        "as_of": as_of.format("%Y-%m-%d").to_string(), "state": state,
    });
    ctx.client
        .json(
            Method::Put,
            &format!("{index}/_doc/{}", state_id(snapshot, community_id)),
            Some(&body),
        )
        .await?;
    Ok(())
}

/// The community's deltas of `[from, to]` in day order, page by page; reading stops at
/// the first missing day (a gap), which [`DeltaReader::gap`] then names.
/// Delta documents read per request: a busy community's delta (every item of the day) is
/// a few hundred KB, so pages stay small.
const DELTA_PAGE: usize = 10;

struct DeltaReader {
    reader: Option<PitReader>,
    expected: NaiveDate,
    to: NaiveDate,
    gap: Option<NaiveDate>,
}

impl DeltaReader {
    async fn open(
        ctx: &AggContext,
        snapshot: Aggregator,
        community_id: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Self> {
        let query = json!({"bool": {"filter": [
            {"term": {"community_id": community_id}},
            {"range": {"period_start": {"gte": day_start(from), "lte": day_start(to)}}},
        ]}});
        let reader = PitReader::open(
            &ctx.client,
            &delta_alias(ctx, snapshot),
            query,
            json!([{"period_start": "asc"}]),
            DELTA_PAGE,
            json!(true),
        )
        .await?;
        Ok(Self {
            reader: Some(reader),
            expected: from,
            to,
            gap: None,
        })
    }

    /// The next deltas (day, document), or `None` at the end or at a gap.
    async fn next_page(&mut self, ctx: &AggContext) -> Result<Option<Vec<(NaiveDate, Value)>>> {
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let page = reader.next_page().await;
        ctx.count_search();
        let mut out = Vec::new();
        match page? {
            Some(hits) => {
                for mut hit in hits {
                    let src = hit["_source"].take();
                    let Some(day) = src["period_start"].as_str().and_then(parse_day_prefix) else {
                        continue;
                    };
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
pub async fn run_community<S: CumulativeState>(
    ctx: &AggContext,
    snapshot: Aggregator,
    community_id: &str,
    first_delta: NaiveDate,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<CommunityOutcome> {
    let mut outcome = CommunityOutcome::default();
    let before = from.pred_opt().expect("date in range");
    let mut state = S::default();
    if from > first_delta {
        let (replay_from, base) = match load_state::<S>(ctx, snapshot, community_id).await? {
            Some((as_of, saved)) if as_of <= before && as_of >= first_delta => {
                (as_of.succ_opt().expect("date"), saved)
            }
            _ => (first_delta, S::default()),
        };
        state = base;
        if replay_from <= before {
            log::info!(
                "{} {community_id}: reading deltas {replay_from}..{before} to rebuild the state",
                snapshot.name()
            );
            let mut reader =
                DeltaReader::open(ctx, snapshot, community_id, replay_from, before).await?;
            while let Some(page) = reader.next_page(ctx).await? {
                for (_, delta) in &page {
                    state.add_delta(delta);
                }
            }
            if let Some(day) = reader.gap {
                outcome.error = Some(format!(
                    "no delta for {day} in {}: run the delta aggregator for that day first",
                    snapshot.delta().index()
                ));
                return Ok(outcome);
            }
        }
    }
    let mut pipeline = ctx.pipeline();
    let mut last_delta: Option<Value> = None;
    let cancel = ctx.client.cancel_token().clone();
    let mut reader = DeltaReader::open(ctx, snapshot, community_id, from, to).await?;
    let read: Result<()> = async {
        while let Some(page) = reader.next_page(ctx).await? {
            for (day, delta) in page {
                state.add_delta(&delta);
                let doc = state.snapshot_doc(community_id, day, ctx.top_n);
                outcome
                    .write_day(ctx, &mut pipeline, snapshot, community_id, day, &doc)
                    .await?;
                last_delta = Some(delta);
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
        outcome.error = Some(format!("no delta for {day} in {}: snapshots stop at the gap (run the delta aggregator for that day)", snapshot.delta().index()));
    }
    if let (Some(last), Some(delta)) = (outcome.days.last(), last_delta) {
        if outcome.writes.failed == 0 {
            state.subtract_delta(&delta);
            save_state(
                ctx,
                snapshot,
                community_id,
                last.pred_opt().expect("date"),
                &state,
            )
            .await?;
        }
    }
    Ok(outcome)
}
