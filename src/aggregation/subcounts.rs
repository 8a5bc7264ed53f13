//! The usage subcounts: which event field each one counts, where its label comes from, and
//! how the snapshot keeps it ("all" items, or the top N by views and by downloads). The
//! index templates of the usage aggregations are built from this table too, so the two
//! cannot drift apart.

use serde_json::{json, Value};

/// Where an item's label comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelKind {
    /// No label in the events: the label is the id itself (a keyword).
    Id,
    /// A multilingual `title` object beside the id (`{"en": ...}`).
    Title,
    /// A `name` string beside the id.
    Name,
}

/// How the snapshot keeps a subcount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Every item (few distinct values: resource types, access statuses, file types).
    All,
    /// The top N items `by_view` and `by_download`.
    Top,
}

/// One usage subcount.
#[derive(Debug)]
pub struct Subcount {
    /// Key under `subcounts` in the aggregation documents.
    pub key: &'static str,
    /// The event field holding the item: `<base>.id` (or `<base>` when `label` is `Id`).
    pub base: &'static str,
    /// The label source.
    pub label: LabelKind,
    /// Items without an id (free text) are counted by their text: `<base>.name` for
    /// funders and affiliations, the title (English, else the first) for licences.
    pub name_fallback: bool,
    /// How the snapshot keeps it.
    pub snapshot: SnapshotKind,
}

impl Subcount {
    /// The keyword field the terms aggregation runs on.
    pub fn id_field(&self) -> String {
        match self.label {
            LabelKind::Id => self.base.to_string(),
            _ => format!("{}.id", self.base),
        }
    }
}

/// The subcounts the usage aggregators compute, in document order.
pub const USAGE_SUBCOUNTS: &[Subcount] = &[
    Subcount {
        key: "resource_types",
        base: "resource_type",
        label: LabelKind::Title,
        name_fallback: false,
        snapshot: SnapshotKind::All,
    },
    Subcount {
        key: "access_statuses",
        base: "access_status",
        label: LabelKind::Id,
        name_fallback: false,
        snapshot: SnapshotKind::All,
    },
    Subcount {
        key: "file_types",
        base: "file_types",
        label: LabelKind::Id,
        name_fallback: false,
        snapshot: SnapshotKind::All,
    },
    Subcount {
        key: "languages",
        base: "languages",
        label: LabelKind::Title,
        name_fallback: false,
        snapshot: SnapshotKind::Top,
    },
    Subcount {
        key: "rights",
        base: "rights",
        label: LabelKind::Title,
        name_fallback: true,
        snapshot: SnapshotKind::Top,
    },
    Subcount {
        key: "funders",
        base: "funders",
        label: LabelKind::Name,
        name_fallback: true,
        snapshot: SnapshotKind::Top,
    },
    Subcount {
        key: "periodicals",
        base: "journal_title",
        label: LabelKind::Id,
        name_fallback: false,
        snapshot: SnapshotKind::Top,
    },
    Subcount {
        key: "publishers",
        base: "publisher",
        label: LabelKind::Id,
        name_fallback: false,
        snapshot: SnapshotKind::Top,
    },
    Subcount {
        key: "affiliations",
        base: "affiliations",
        label: LabelKind::Name,
        name_fallback: true,
        snapshot: SnapshotKind::Top,
    },
    Subcount {
        key: "countries",
        base: "country",
        label: LabelKind::Id,
        name_fallback: false,
        snapshot: SnapshotKind::Top,
    },
];

/// Subcounts declared in the documents' mappings (for compatibility with the dashboards'
/// templates) that are not computed: (key, in delta, in snapshot).
const DECLARED_ONLY: &[(&str, bool, bool)] = &[
    ("subjects", true, true),
    ("referrers", true, true),
    ("user_agents", false, true),
];

/// The text of a multilingual title: English, else the first language's.
pub fn title_text(title: &Value) -> Option<&str> {
    title["en"].as_str().or_else(|| {
        title
            .as_object()
            .and_then(|o| o.values().find_map(Value::as_str))
    })
}

/// Label of an item: the matching array element's title or name in an event's `_source`
/// (`source` is the event's value at `base`, an object or an array of objects), else the
/// id (as `{"en": id}` for titles).
pub fn label_from_source(sub: &Subcount, source: &Value, id: &str) -> Value {
    let items: Vec<&Value> = match source {
        Value::Array(a) => a.iter().collect(),
        Value::Object(_) => vec![source],
        _ => Vec::new(),
    };
    let by_id = items.iter().find(|i| i["id"].as_str() == Some(id));
    match sub.label {
        LabelKind::Id => json!(id),
        LabelKind::Title => match by_id.map(|i| &i["title"]) {
            Some(t @ Value::Object(_)) => t.clone(),
            _ => json!({"en": id}),
        },
        LabelKind::Name => {
            let named = by_id.or_else(|| items.iter().find(|i| i["name"].as_str() == Some(id)));
            match named.and_then(|i| i["name"].as_str()) {
                Some(n) => json!(n),
                None => json!(id),
            }
        }
    }
}

fn metrics_mapping(download: bool) -> Value {
    let int = json!({"type": "integer"});
    let mut p = json!({"total_events": int, "unique_visitors": int, "unique_records": int, "unique_parents": int});
    if download {
        p["unique_files"] = int.clone();
        p["total_volume"] = json!({"type": "long"});
    }
    json!({"type": "object", "properties": p})
}

fn item_mapping(label: LabelKind) -> Value {
    let label = match label {
        LabelKind::Title => json!({"type": "object", "dynamic": true}),
        _ => json!({"type": "keyword"}),
    };
    json!({"type": "nested", "properties": {
        "id": {"type": "keyword"}, "label": label, "view": metrics_mapping(false), "download": metrics_mapping(true),
    }})
}

fn totals_mapping() -> Value {
    json!({"type": "object", "properties": {"view": metrics_mapping(false), "download": metrics_mapping(true)}})
}

fn date() -> Value {
    json!({"type": "date", "format": "strict_date_hour_minute_second"})
}

fn template(kind: &str, description: &str, properties: Value) -> Value {
    json!({
        "index_patterns": [format!("{}stats-community-usage-{kind}-*", crate::templates::PREFIX_PLACEHOLDER)],
        "template": {
            "settings": {"index": {"refresh_interval": "5s", "number_of_shards": 1, "number_of_replicas": 1}},
            "mappings": {"date_detection": false, "dynamic": "strict", "numeric_detection": false, "properties": properties},
            "aliases": {format!("{}stats-community-usage-{kind}", crate::templates::PREFIX_PLACEHOLDER): {}},
        },
        "priority": 100,
        "version": 1,
        "_meta": {"description": description},
    })
}

/// The usage-delta index template (with the prefix placeholder).
pub fn usage_delta_template() -> Value {
    let mut subcounts = serde_json::Map::new();
    for s in USAGE_SUBCOUNTS {
        subcounts.insert(s.key.into(), item_mapping(s.label));
    }
    for (key, delta, _) in DECLARED_ONLY {
        if *delta {
            subcounts.insert((*key).into(), item_mapping(LabelKind::Id));
        }
    }
    template(
        "delta",
        "Daily usage (views, downloads) of a community's records, with subcounts by record metadata.",
        json!({
            "timestamp": date(), "updated_timestamp": date(), "community_id": {"type": "keyword"},
            "period_start": date(), "period_end": date(), "totals": totals_mapping(),
            "subcounts": {"type": "object", "properties": subcounts},
        }),
    )
}

/// The usage-snapshot index template (with the prefix placeholder).
pub fn usage_snapshot_template() -> Value {
    let top = |label| json!({"type": "nested", "properties": {"by_view": item_mapping(label), "by_download": item_mapping(label)}});
    let mut subcounts = serde_json::Map::new();
    for s in USAGE_SUBCOUNTS {
        let m = match s.snapshot {
            SnapshotKind::All => item_mapping(s.label),
            SnapshotKind::Top => top(s.label),
        };
        subcounts.insert(s.key.into(), m);
    }
    for (key, _, snapshot) in DECLARED_ONLY {
        if *snapshot {
            subcounts.insert((*key).into(), top(LabelKind::Id));
        }
    }
    template(
        "snapshot",
        "Cumulative usage of a community's records at the end of a day, with subcounts by record metadata.",
        json!({
            "timestamp": date(), "updated_timestamp": date(), "community_id": {"type": "keyword"},
            "community_parent_id": {"type": "keyword"}, "snapshot_date": date(), "totals": totals_mapping(),
            "subcounts": {"type": "object", "properties": subcounts},
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_the_matching_item_or_fall_back_to_the_id() {
        let rt = &USAGE_SUBCOUNTS[0];
        assert_eq!(
            label_from_source(
                rt,
                &json!({"id": "image", "title": {"en": "Image"}}),
                "image"
            ),
            json!({"en": "Image"})
        );
        assert_eq!(
            label_from_source(rt, &json!(null), "image"),
            json!({"en": "image"})
        );
        let funders = USAGE_SUBCOUNTS.iter().find(|s| s.key == "funders").unwrap();
        let src = json!([{"id": "f1", "name": "EC"}, {"name": "Local trust"}]);
        assert_eq!(label_from_source(funders, &src, "f1"), json!("EC"));
        assert_eq!(
            label_from_source(funders, &src, "Local trust"),
            json!("Local trust")
        );
        let access = &USAGE_SUBCOUNTS[1];
        assert_eq!(
            label_from_source(access, &json!("open"), "open"),
            json!("open")
        );
    }
}
