//! What the records aggregators know about a record: whether it has files, its file count
//! and volume, parent, uploader, and its subcount items (from the same field table as the
//! usage events' enrichment, so the two never disagree). Also the records aggregations'
//! index templates, built from the subcount table.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::subcounts::{title_text, SnapshotKind};

/// How a records subcount labels its items.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordLabel {
    /// A multilingual `title` object.
    Title,
    /// A `name` string (items without id counted by name).
    Name,
    /// A `subject` string (items without id counted by subject).
    Subject,
    /// No label: `""` (as the reference writes).
    Empty,
}

/// One records subcount: document key, enrichment field, label, snapshot kind.
#[derive(Debug)]
pub struct RecordSubcount {
    /// Key under `subcounts`.
    pub key: &'static str,
    /// The field of [`crate::enrich::record_fields`].
    pub field: &'static str,
    /// The label source.
    pub label: RecordLabel,
    /// How the snapshot keeps it.
    pub snapshot: SnapshotKind,
}

/// The records subcounts, in document order.
pub const RECORD_SUBCOUNTS: &[RecordSubcount] = &[
    RecordSubcount {
        key: "resource_types",
        field: "resource_type",
        label: RecordLabel::Title,
        snapshot: SnapshotKind::All,
    },
    RecordSubcount {
        key: "access_statuses",
        field: "access_status",
        label: RecordLabel::Empty,
        snapshot: SnapshotKind::All,
    },
    RecordSubcount {
        key: "languages",
        field: "languages",
        label: RecordLabel::Title,
        snapshot: SnapshotKind::Top,
    },
    RecordSubcount {
        key: "subjects",
        field: "subjects",
        label: RecordLabel::Subject,
        snapshot: SnapshotKind::Top,
    },
    RecordSubcount {
        key: "rights",
        field: "rights",
        label: RecordLabel::Title,
        snapshot: SnapshotKind::Top,
    },
    RecordSubcount {
        key: "funders",
        field: "funders",
        label: RecordLabel::Name,
        snapshot: SnapshotKind::Top,
    },
    RecordSubcount {
        key: "periodicals",
        field: "journal_title",
        label: RecordLabel::Empty,
        snapshot: SnapshotKind::Top,
    },
    RecordSubcount {
        key: "publishers",
        field: "publisher",
        label: RecordLabel::Empty,
        snapshot: SnapshotKind::Top,
    },
    RecordSubcount {
        key: "affiliations",
        field: "affiliations",
        label: RecordLabel::Name,
        snapshot: SnapshotKind::Top,
    },
    RecordSubcount {
        key: "file_types",
        field: "file_types",
        label: RecordLabel::Empty,
        snapshot: SnapshotKind::All,
    },
];

/// The record fields the records aggregators read.
pub fn record_source() -> Vec<&'static str> {
    let mut s: Vec<&'static str> = crate::enrich::RECORD_SOURCE.to_vec();
    s.extend([
        "parent.id",
        "files.enabled",
        "files.count",
        "files.totalbytes",
        "files.entries.size",
        "files.entries.key",
        "parent.access.owned_by",
        "created",
        "is_published",
        "is_deleted",
        "tombstone.removal_date",
    ]);
    s
}

/// One record as the records aggregators count it.
#[derive(Clone, Debug, Default)]
pub struct RecordFacts {
    /// Record id.
    pub id: String,
    /// Parent id (the record id when missing).
    pub parent: String,
    /// The record has files (`files.enabled`), whether or not the index lists them: a
    /// public record with restricted or embargoed files is indexed as `{"enabled": true}`.
    pub with_files: bool,
    /// Files: `files.count`, else the listed entries (0 when the index does not say).
    pub file_count: u64,
    /// Bytes: `files.totalbytes`, else the listed entries' sizes (0 when the index does not say).
    pub volume: u64,
    /// The owner (uploader), if known.
    pub uploader: Option<String>,
    /// Per subcount key: the record's (id, label) items, each once.
    pub items: Vec<(&'static str, Vec<(String, Value)>)>,
}

fn entries(files: &Value) -> Vec<&Value> {
    match &files["entries"] {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => Vec::new(),
    }
}

fn items_of(sub: &RecordSubcount, value: &Value) -> Vec<(String, Value)> {
    let list: Vec<&Value> = match value {
        Value::Array(a) => a.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for v in list {
        let pair = match (sub.label, v) {
            (RecordLabel::Empty, Value::String(s)) if !s.is_empty() => Some((s.clone(), json!(""))),
            (RecordLabel::Title, Value::Object(_)) => match v["id"].as_str() {
                Some(id) => {
                    let label = if v["title"].is_object() {
                        v["title"].clone()
                    } else {
                        json!({"en": id})
                    };
                    Some((id.to_string(), label))
                }
                // A free-text item (a licence without an id): counted by its title.
                None => title_text(&v["title"]).map(|t| (t.to_string(), v["title"].clone())),
            },
            (RecordLabel::Name | RecordLabel::Subject, Value::Object(_)) => {
                let text_key = if sub.label == RecordLabel::Name {
                    "name"
                } else {
                    "subject"
                };
                let text = v[text_key].as_str();
                match (v["id"].as_str(), text) {
                    (Some(id), t) => Some((id.to_string(), json!(t.unwrap_or(id)))),
                    (None, Some(t)) => Some((t.to_string(), json!(t))),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some((id, label)) = pair {
            if seen.insert(id.clone()) {
                out.push((id, label));
            }
        }
    }
    out
}

/// Reads a record document (its `_source`).
pub fn facts(record: &Value) -> RecordFacts {
    let id = record["id"].as_str().unwrap_or_default().to_string();
    let parent = record["parent"]["id"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| id.clone());
    let files = &record["files"];
    let listed = entries(files);
    let file_count = files["count"].as_u64().unwrap_or(listed.len() as u64);
    let volume = files["totalbytes"]
        .as_u64()
        .unwrap_or_else(|| listed.iter().filter_map(|e| e["size"].as_u64()).sum());
    let with_files = files["enabled"].as_bool().unwrap_or(!listed.is_empty());
    let owner = &record["parent"]["access"]["owned_by"];
    let uploader = match owner {
        Value::Array(a) => a.first().and_then(|o| {
            o["user"]
                .as_str()
                .map(String::from)
                .or_else(|| o["user"].as_u64().map(|u| u.to_string()))
        }),
        o => o["user"]
            .as_str()
            .map(String::from)
            .or_else(|| o["user"].as_u64().map(|u| u.to_string())),
    };
    let fields: Map<String, Value> = crate::enrich::record_fields(record);
    let items = RECORD_SUBCOUNTS
        .iter()
        .map(|s| {
            (
                s.key,
                items_of(s, fields.get(s.field).unwrap_or(&Value::Null)),
            )
        })
        .collect();
    RecordFacts {
        id,
        parent,
        with_files,
        file_count,
        volume,
        uploader,
        items,
    }
}

fn int() -> Value {
    json!({"type": "integer"})
}
fn long() -> Value {
    json!({"type": "long"})
}
fn split(t: Value) -> Value {
    json!({"type": "object", "properties": {"metadata_only": t.clone(), "with_files": t}})
}
fn files(count: Value) -> Value {
    json!({"type": "object", "properties": {"file_count": count, "data_volume": long()}})
}
fn label_mapping(l: RecordLabel) -> Value {
    match l {
        RecordLabel::Title => json!({"type": "object", "dynamic": true}),
        _ => json!({"type": "keyword"}),
    }
}
fn date(format: &str) -> Value {
    json!({"type": "date", "format": format})
}

fn template(kind: &str, description: &str, properties: Value) -> Value {
    let p = crate::templates::PREFIX_PLACEHOLDER;
    json!({
        "index_patterns": [format!("{p}stats-community-records-{kind}-added-*")],
        "template": {
            "settings": {"index": {"refresh_interval": "5s", "number_of_shards": 1, "number_of_replicas": 1}},
            "mappings": {"date_detection": false, "dynamic": "strict", "numeric_detection": false, "properties": properties},
            "aliases": {format!("{p}stats-community-records-{kind}-added"): {}},
        },
        "priority": 100,
        "version": 1,
        "_meta": {"description": description},
    })
}

/// The records-delta ("added" basis) index template.
pub fn records_delta_template() -> Value {
    let change = |t: fn() -> Value| json!({"type": "object", "properties": {"added": split(t()), "removed": split(t())}});
    let file_change =
        json!({"type": "object", "properties": {"added": files(int()), "removed": files(int())}});
    let mut subcounts = Map::new();
    for s in RECORD_SUBCOUNTS {
        subcounts.insert(
            s.key.into(),
            json!({"type": "nested", "properties": {
                "id": {"type": "keyword"}, "label": label_mapping(s.label),
                "records": change(int), "parents": change(int), "files": file_change,
            }}),
        );
    }
    template("delta", "Records and files added to and removed from a community per day (the day a record was added), with subcounts by record metadata.", json!({
        "timestamp": date("strict_date_hour_minute_second"), "updated_timestamp": date("strict_date_hour_minute_second"),
        "community_id": {"type": "keyword"},
        "period_start": date("date_optional_time"), "period_end": date("date_optional_time"),
        "records": change(int), "parents": change(int), "files": file_change, "uploaders": int(),
        "subcounts": {"type": "object", "properties": subcounts},
    }))
}

/// The records-snapshot ("added" basis) index template.
pub fn records_snapshot_template() -> Value {
    let mut subcounts = Map::new();
    for s in RECORD_SUBCOUNTS {
        let mut item = json!({"type": "nested", "properties": {
            "id": {"type": "keyword"}, "label": label_mapping(s.label),
            "records": split(long()), "parents": split(long()), "files": files(long()),
        }});
        if s.key == "resource_types" {
            // Declared by the dashboards' template, not computed.
            item["properties"]["parent_files"] = files(long());
        }
        subcounts.insert(s.key.into(), item);
    }
    template("snapshot", "Records in a community at the end of a day (counted from the day each was added), with subcounts by record metadata.", json!({
        "timestamp": date("strict_date_hour_minute_second"), "updated_timestamp": date("strict_date_hour_minute_second"),
        "community_id": {"type": "keyword"}, "snapshot_date": date("date_optional_time"),
        "total_records": split(int()), "total_parents": split(int()), "total_files": files(long()), "total_uploaders": int(),
        "subcounts": {"type": "object", "properties": subcounts},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_read_files_owner_and_items() {
        let record = json!({
            "id": "r1", "parent": {"id": "p1", "access": {"owned_by": {"user": 7}}},
            "files": {"enabled": true, "entries": [{"key": "a.pdf", "ext": "pdf", "size": 10}, {"key": "b.PDF", "ext": "PDF", "size": 5}]},
            "access": {"status": "open"},
            "metadata": {"resource_type": {"id": "dataset", "title": {"en": "Dataset"}},
                         "funding": [{"funder": {"id": "f1", "name": "EC"}}, {"funder": {"name": "Trust"}}],
                         "subjects": [{"subject": "Physics"}]},
        });
        let f = facts(&record);
        assert_eq!(
            (f.parent.as_str(), f.with_files, f.file_count, f.volume),
            ("p1", true, 2, 15)
        );
        assert_eq!(f.uploader.as_deref(), Some("7"));
        let get = |k: &str| f.items.iter().find(|(key, _)| *key == k).unwrap().1.clone();
        assert_eq!(
            get("funders"),
            vec![
                ("f1".to_string(), json!("EC")),
                ("Trust".to_string(), json!("Trust"))
            ]
        );
        assert_eq!(get("file_types"), vec![("pdf".to_string(), json!(""))]);
        assert_eq!(
            get("access_statuses"),
            vec![("open".to_string(), json!(""))]
        );
        assert_eq!(
            get("subjects"),
            vec![("Physics".to_string(), json!("Physics"))]
        );
        assert_eq!(get("resource_types")[0].1, json!({"en": "Dataset"}));
    }
}
