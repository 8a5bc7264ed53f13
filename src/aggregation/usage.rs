//! The usage figures both usage aggregators work with: per event type metrics, subcount
//! items, and their JSON form in the aggregation documents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::subcounts::{SnapshotKind, USAGE_SUBCOUNTS};

/// Usage metrics of one event type. Views have no files or volume (always 0, not written).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Events.
    pub total_events: u64,
    /// Distinct visitors (a day's distinct count; summed over days in snapshots).
    pub unique_visitors: u64,
    /// Distinct records (`recid`).
    pub unique_records: u64,
    /// Distinct parents (`parent_recid`).
    pub unique_parents: u64,
    /// Distinct files (downloads).
    pub unique_files: u64,
    /// Bytes downloaded (downloads).
    pub total_volume: u64,
}

impl Metrics {
    /// Adds `other` (snapshots: cumulative sums of the daily figures).
    pub fn add(&mut self, other: &Metrics) {
        self.total_events += other.total_events;
        self.unique_visitors += other.unique_visitors;
        self.unique_records += other.unique_records;
        self.unique_parents += other.unique_parents;
        self.unique_files += other.unique_files;
        self.total_volume += other.total_volume;
    }

    /// The document form (`download` adds files and volume).
    pub fn to_json(&self, download: bool) -> Value {
        let mut v = json!({
            "total_events": self.total_events, "unique_visitors": self.unique_visitors,
            "unique_records": self.unique_records, "unique_parents": self.unique_parents,
        });
        if download {
            v["unique_files"] = json!(self.unique_files);
            v["total_volume"] = json!(self.total_volume);
        }
        v
    }

    /// Reads the document form (missing fields are 0).
    pub fn from_json(v: &Value) -> Metrics {
        let n = |k: &str| {
            v[k].as_u64()
                .or_else(|| v[k].as_f64().map(|f| f.round() as u64))
                .unwrap_or(0)
        };
        Metrics {
            total_events: n("total_events"),
            unique_visitors: n("unique_visitors"),
            unique_records: n("unique_records"),
            unique_parents: n("unique_parents"),
            unique_files: n("unique_files"),
            total_volume: n("total_volume"),
        }
    }
}

/// Views and downloads side by side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pair {
    /// Views.
    pub view: Metrics,
    /// Downloads.
    pub download: Metrics,
}

impl Pair {
    /// Adds both sides.
    pub fn add(&mut self, other: &Pair) {
        self.view.add(&other.view);
        self.download.add(&other.download);
    }

    /// `{"view": ..., "download": ...}`.
    pub fn to_json(&self) -> Value {
        json!({"view": self.view.to_json(false), "download": self.download.to_json(true)})
    }

    /// Reads `{"view": ..., "download": ...}`.
    pub fn from_json(v: &Value) -> Pair {
        Pair {
            view: Metrics::from_json(&v["view"]),
            download: Metrics::from_json(&v["download"]),
        }
    }
}

/// One subcount item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Its label (a string, or a title object).
    pub label: Value,
    /// Its figures.
    #[serde(flatten)]
    pub figures: Pair,
}

/// Subcount key -> item id -> item.
pub type Items = BTreeMap<String, BTreeMap<String, Item>>;

/// One subcount's items as the documents list them: busiest first, then by id.
pub fn item_list<'a>(items: impl Iterator<Item = (&'a String, &'a Item)>) -> Vec<Value> {
    let mut list: Vec<(&String, &Item)> = items.collect();
    list.sort_by(|a, b| {
        let ta = a.1.figures.view.total_events + a.1.figures.download.total_events;
        let tb = b.1.figures.view.total_events + b.1.figures.download.total_events;
        tb.cmp(&ta).then_with(|| a.0.cmp(b.0))
    });
    list.into_iter()
        .map(|(id, item)| item_json(id, item))
        .collect()
}

/// One item's document form.
pub fn item_json(id: &str, item: &Item) -> Value {
    let mut v = item.figures.to_json();
    v["id"] = json!(id);
    v["label"] = item.label.clone();
    v
}

/// The top `n` items by `pick` (views or downloads), items with events only.
pub fn top_items(items: &BTreeMap<String, Item>, n: usize, pick: fn(&Pair) -> u64) -> Vec<Value> {
    let mut list: Vec<(&String, &Item)> =
        items.iter().filter(|(_, i)| pick(&i.figures) > 0).collect();
    list.sort_by(|a, b| {
        pick(&b.1.figures)
            .cmp(&pick(&a.1.figures))
            .then_with(|| a.0.cmp(b.0))
    });
    list.into_iter()
        .take(n)
        .map(|(id, item)| item_json(id, item))
        .collect()
}

/// A snapshot's `subcounts`: every item of the "all" kinds, the top `n` of the others.
pub fn snapshot_subcounts(items: &Items, n: usize) -> Value {
    let empty = BTreeMap::new();
    let mut out = serde_json::Map::new();
    for s in USAGE_SUBCOUNTS {
        let these = items.get(s.key).unwrap_or(&empty);
        let v = match s.snapshot {
            SnapshotKind::All => Value::Array(item_list(these.iter())),
            SnapshotKind::Top => json!({
                "by_view": top_items(these, n, |p| p.view.total_events),
                "by_download": top_items(these, n, |p| p.download.total_events),
            }),
        };
        out.insert(s.key.into(), v);
    }
    Value::Object(out)
}

/// Reads a delta document's `subcounts` back into items.
pub fn items_from_delta(subcounts: &Value) -> Items {
    let mut out = Items::new();
    for s in USAGE_SUBCOUNTS {
        let mut these = BTreeMap::new();
        for v in subcounts[s.key].as_array().into_iter().flatten() {
            let Some(id) = v["id"].as_str() else { continue };
            these.insert(
                id.to_string(),
                Item {
                    label: v["label"].clone(),
                    figures: Pair::from_json(v),
                },
            );
        }
        out.insert(s.key.into(), these);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_lists_keep_items_with_events_busiest_first() {
        let mut m = BTreeMap::new();
        for (id, views, downloads) in [("a", 5, 0), ("b", 9, 1), ("c", 0, 0), ("d", 5, 3)] {
            let mut p = Pair::default();
            p.view.total_events = views;
            p.download.total_events = downloads;
            m.insert(
                id.to_string(),
                Item {
                    label: json!(id),
                    figures: p,
                },
            );
        }
        let ids = |l: Vec<Value>| {
            l.iter()
                .map(|v| v["id"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(top_items(&m, 2, |p| p.view.total_events)), ["b", "a"]);
        assert_eq!(
            ids(top_items(&m, 5, |p| p.download.total_events)),
            ["d", "b"]
        );
        assert_eq!(
            top_items(&m, 5, |p| p.view.total_events)[0]["view"]["total_events"],
            9
        );
        assert!(top_items(&m, 5, |p| p.view.total_events)[0]["view"]
            .get("total_volume")
            .is_none());
    }
}
