//! Records snapshot, "added" basis: per community and day, the records in the community at
//! the end of that day (`<prefix>stats-community-records-snapshot-added-YYYY`): the
//! previous day's totals plus the day's net change from the records delta, computed
//! incrementally (see [`super::snapshot`]). Deleted and removed records leave the totals.
//! `total_uploaders` and `total_parents` are sums of the daily distinct counts (the
//! reference's semantics).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::records::RECORD_SUBCOUNTS;
use super::snapshot::CumulativeState;
use super::subcounts::SnapshotKind;
use crate::dates::{day_start, now_stamp};

/// Net counts (added minus removed) of records, parents and files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Net {
    /// Records without / with files.
    pub records: [i64; 2],
    /// Parents without / with files.
    pub parents: [i64; 2],
    /// Files.
    pub file_count: i64,
    /// Bytes.
    pub volume: i64,
}

fn n(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_f64().map(|f| f.round() as i64))
        .unwrap_or(0)
}

impl Net {
    /// Adds `sign` times a delta's (`records`, `parents`, `files`) change.
    fn apply(&mut self, change: &Value, sign: i64) {
        for (side, s) in [("added", sign), ("removed", -sign)] {
            self.records[0] += s * n(&change["records"][side]["metadata_only"]);
            self.records[1] += s * n(&change["records"][side]["with_files"]);
            self.parents[0] += s * n(&change["parents"][side]["metadata_only"]);
            self.parents[1] += s * n(&change["parents"][side]["with_files"]);
            self.file_count += s * n(&change["files"][side]["file_count"]);
            self.volume += s * n(&change["files"][side]["data_volume"]);
        }
    }

    fn size(&self) -> i64 {
        self.records[0].max(0) + self.records[1].max(0)
    }

    fn to_json(self) -> (Value, Value, Value) {
        let split = |a: [i64; 2]| json!({"metadata_only": a[0].max(0), "with_files": a[1].max(0)});
        (
            split(self.records),
            split(self.parents),
            json!({"file_count": self.file_count.max(0), "data_volume": self.volume.max(0)}),
        )
    }
}

/// One subcount item's running figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NetItem {
    /// Latest label.
    pub label: Value,
    /// Net figures.
    pub net: Net,
}

/// Records in a community, cumulatively.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RecordsState {
    /// Totals.
    pub totals: Net,
    /// Sum of the daily distinct uploaders.
    pub uploaders: i64,
    /// Subcount key -> item id -> figures.
    pub items: BTreeMap<String, BTreeMap<String, NetItem>>,
}

impl RecordsState {
    fn apply(&mut self, delta: &Value, sign: i64) {
        self.totals.apply(delta, sign);
        self.uploaders += sign * n(&delta["uploaders"]);
        for s in RECORD_SUBCOUNTS {
            let these = self.items.entry(s.key.to_string()).or_default();
            for item in delta["subcounts"][s.key].as_array().into_iter().flatten() {
                let Some(id) = item["id"].as_str() else {
                    continue;
                };
                let e = these.entry(id.to_string()).or_default();
                e.net.apply(item, sign);
                if sign > 0 {
                    e.label = item["label"].clone();
                }
                if e.net == Net::default() {
                    these.remove(id);
                }
            }
        }
    }
}

fn item_json(id: &str, item: &NetItem) -> Value {
    let (records, parents, files) = item.net.to_json();
    json!({"id": id, "label": item.label, "records": records, "parents": parents, "files": files})
}

impl CumulativeState for RecordsState {
    fn add_delta(&mut self, delta: &Value) {
        self.apply(delta, 1);
    }

    fn subtract_delta(&mut self, delta: &Value) {
        self.apply(delta, -1);
    }

    fn snapshot_doc(&self, community_id: &str, day: NaiveDate, top_n: usize) -> Value {
        let mut subcounts = serde_json::Map::new();
        let empty = BTreeMap::new();
        for s in RECORD_SUBCOUNTS {
            let these = self.items.get(s.key).unwrap_or(&empty);
            let mut list: Vec<(&String, &NetItem)> =
                these.iter().filter(|(_, i)| i.net.size() > 0).collect();
            list.sort_by(|a, b| {
                b.1.net
                    .size()
                    .cmp(&a.1.net.size())
                    .then_with(|| a.0.cmp(b.0))
            });
            if s.snapshot == SnapshotKind::Top {
                list.truncate(top_n);
            }
            subcounts.insert(
                s.key.into(),
                Value::Array(list.into_iter().map(|(id, i)| item_json(id, i)).collect()),
            );
        }
        let (records, parents, files) = self.totals.to_json();
        let now = now_stamp();
        json!({
            "community_id": community_id,
            "snapshot_date": day_start(day),
            "timestamp": now, "updated_timestamp": now,
            "total_records": records, "total_parents": parents, "total_files": files,
            "total_uploaders": self.uploaders.max(0),
            "subcounts": subcounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(added_wf: i64, removed_wf: i64, pdf: i64) -> Value {
        let change = |a: i64, r: i64| {
            json!({
                "records": {"added": {"metadata_only": 0, "with_files": a}, "removed": {"metadata_only": 0, "with_files": r}},
                "parents": {"added": {"metadata_only": 0, "with_files": a}, "removed": {"metadata_only": 0, "with_files": r}},
                "files": {"added": {"file_count": a, "data_volume": 100 * a}, "removed": {"file_count": r, "data_volume": 100 * r}},
            })
        };
        let mut d = change(added_wf, removed_wf);
        d["uploaders"] = json!(1);
        let mut item = change(pdf, 0);
        item["id"] = json!("pdf");
        item["label"] = json!("");
        d["subcounts"] = json!({"file_types": [item]});
        d
    }

    #[test]
    fn removals_leave_the_totals_and_subtract_undoes_add() {
        let mut s = RecordsState::default();
        s.add_delta(&delta(3, 0, 2));
        let before = s.clone();
        s.add_delta(&delta(0, 1, 0));
        let doc = s.snapshot_doc("c", NaiveDate::from_ymd_opt(2025, 1, 2).unwrap(), 20);
        assert_eq!(doc["total_records"]["with_files"], 2);
        assert_eq!(doc["total_files"]["data_volume"], 200);
        assert_eq!(doc["total_uploaders"], 2);
        assert_eq!(
            doc["subcounts"]["file_types"][0]["records"]["with_files"],
            2
        );
        s.subtract_delta(&delta(0, 1, 0));
        assert_eq!(s, before);
    }
}
