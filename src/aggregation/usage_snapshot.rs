//! Usage snapshot: per community and day, the cumulative usage up to the end of that day
//! (`<prefix>stats-community-usage-snapshot-YYYY`), built incrementally from the usage
//! deltas (see [`super::snapshot`]). `unique_*` figures are sums of the daily distinct
//! counts (the reference's semantics; a distinct count over a whole history is not additive).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::snapshot::CumulativeState;
use super::usage::{items_from_delta, snapshot_subcounts, Items, Pair};
use crate::dates::{day_start, now_stamp};

/// Cumulative usage of one community.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RunningState {
    /// Cumulative totals.
    pub totals: Pair,
    /// Every subcount item with its cumulative figures.
    pub items: Items,
}

impl CumulativeState for RunningState {
    fn add_delta(&mut self, delta: &Value) {
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

    fn subtract_delta(&mut self, delta: &Value) {
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
            let Some(these) = self.items.get_mut(&key) else {
                continue;
            };
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

    fn snapshot_doc(&self, community_id: &str, day: NaiveDate, top_n: usize) -> Value {
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
