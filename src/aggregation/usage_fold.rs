//! Folding raw usage events into a day's figures: totals and subcount items with exact
//! distinct counts. The usage delta reads the events of a span of days (only the fields
//! below) and folds them here, instead of asking the cluster for nested terms and
//! cardinality aggregations per day: on a busy instance those cost seconds per day and
//! approximate their distinct counts, while reading a day's events costs milliseconds.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashSet;

use chrono::NaiveDate;
use serde_json::{json, Value};

use super::subcounts::{label_from_source, title_text, LabelKind, Subcount, USAGE_SUBCOUNTS};
use super::usage::{Item, Items, Metrics, Pair};
use crate::dates::parse_timestamp;

/// The event fields the delta reads (of the subcount objects only the id and the label:
/// not the rights' descriptions and links, nor the funders' identifiers).
pub fn source_fields() -> Vec<String> {
    let mut fields: Vec<String> = [
        "timestamp",
        "community_ids",
        "visitor_id",
        "recid",
        "parent_recid",
        "file_id",
        "size",
    ]
    .map(String::from)
    .to_vec();
    for s in USAGE_SUBCOUNTS {
        match s.label {
            LabelKind::Id => fields.push(s.base.to_string()),
            LabelKind::Title => {
                fields.extend([format!("{}.id", s.base), format!("{}.title", s.base)])
            }
            LabelKind::Name => {
                fields.extend([format!("{}.id", s.base), format!("{}.name", s.base)])
            }
        }
    }
    fields
}

/// Distinct values and sums behind one [`Metrics`]. The values borrow from the events of
/// the span being folded (no copy per event).
#[derive(Default, Debug)]
struct Counter<'a> {
    events: u64,
    visitors: FxHashSet<Cow<'a, str>>,
    records: FxHashSet<Cow<'a, str>>,
    parents: FxHashSet<Cow<'a, str>>,
    files: FxHashSet<Cow<'a, str>>,
    volume: f64,
}

fn text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

/// One subcount's items of an event: the ids, and the names of elements without an id.
type ItemKeys<'a> = (BTreeSet<Cow<'a, str>>, BTreeSet<Cow<'a, str>>);

/// The values of an event that every counter it reaches counts, read once per event.
#[derive(Debug)]
pub struct EventKeys<'a> {
    visitor: Option<Cow<'a, str>>,
    record: Option<Cow<'a, str>>,
    parent: Option<Cow<'a, str>>,
    file: Option<Cow<'a, str>>,
    size: f64,
    download: bool,
    /// Per subcount (in [`USAGE_SUBCOUNTS`] order): the ids (with the event's value at
    /// the subcount's base, for the label) and the names of elements without an id.
    items: Vec<ItemKeys<'a>>,
    values: Vec<&'a Value>,
}

impl<'a> EventKeys<'a> {
    /// Reads one event (`_source`) of the given type.
    pub fn of(event: &'a Value, download: bool) -> Self {
        let values: Vec<&'a Value> = USAGE_SUBCOUNTS.iter().map(|s| &event[s.base]).collect();
        Self {
            visitor: text(&event["visitor_id"]),
            record: text(&event["recid"]),
            parent: text(&event["parent_recid"]),
            file: if download {
                text(&event["file_id"])
            } else {
                None
            },
            size: if download {
                event["size"].as_f64().unwrap_or(0.0)
            } else {
                0.0
            },
            download,
            items: USAGE_SUBCOUNTS
                .iter()
                .zip(&values)
                .map(|(sub, value)| event_items(sub, value))
                .collect(),
            values,
        }
    }
}

impl<'a> Counter<'a> {
    fn add(&mut self, keys: &EventKeys<'a>) {
        self.events += 1;
        let put = |set: &mut FxHashSet<Cow<'a, str>>, v: &Option<Cow<'a, str>>| {
            if let Some(v) = v {
                if !set.contains(v.as_ref()) {
                    set.insert(v.clone());
                }
            }
        };
        put(&mut self.visitors, &keys.visitor);
        put(&mut self.records, &keys.record);
        put(&mut self.parents, &keys.parent);
        if keys.download {
            put(&mut self.files, &keys.file);
            self.volume += keys.size;
        }
    }

    fn metrics(&self) -> Metrics {
        Metrics {
            total_events: self.events,
            unique_visitors: self.visitors.len() as u64,
            unique_records: self.records.len() as u64,
            unique_parents: self.parents.len() as u64,
            unique_files: self.files.len() as u64,
            total_volume: self.volume.round() as u64,
        }
    }
}

/// Views and downloads of one item or of the whole day.
#[derive(Default, Debug)]
struct PairCounter<'a> {
    view: Counter<'a>,
    download: Counter<'a>,
}

impl<'a> PairCounter<'a> {
    fn side(&mut self, download: bool) -> &mut Counter<'a> {
        if download {
            &mut self.download
        } else {
            &mut self.view
        }
    }

    fn pair(&self) -> Pair {
        Pair {
            view: self.view.metrics(),
            download: self.download.metrics(),
        }
    }
}

/// One subcount's items of a day: by id, and (funders, affiliations) those without an id by
/// name.
#[derive(Default, Debug)]
struct SubcountDay<'a> {
    by_id: BTreeMap<Cow<'a, str>, (Value, PairCounter<'a>)>,
    by_name: BTreeMap<Cow<'a, str>, PairCounter<'a>>,
}

/// The figures of one day, built event by event (borrowing from the events).
#[derive(Default, Debug)]
pub struct DayFold<'a> {
    totals: PairCounter<'a>,
    /// Per subcount, in [`USAGE_SUBCOUNTS`] order (empty until the first item).
    subcounts: Vec<SubcountDay<'a>>,
}

/// The items an event holds for one subcount: ids (with the event's value at `base`, for the
/// label) and names of elements without an id. Each counted once per event.
fn event_items<'a>(sub: &Subcount, value: &'a Value) -> ItemKeys<'a> {
    let mut ids = BTreeSet::new();
    let mut names = BTreeSet::new();
    let elements: &[Value] = match value {
        Value::Array(a) => a,
        Value::Null => &[],
        other => std::slice::from_ref(other),
    };
    for e in elements {
        match sub.label {
            LabelKind::Id => {
                if let Some(id) = text(e) {
                    ids.insert(id);
                }
            }
            _ => {
                if let Some(id) = text(&e["id"]) {
                    ids.insert(id);
                } else if sub.name_fallback {
                    let name = match sub.label {
                        LabelKind::Title => title_text(&e["title"]).map(Cow::Borrowed),
                        _ => text(&e["name"]),
                    };
                    if let Some(name) = name {
                        names.insert(name);
                    }
                }
            }
        }
    }
    (ids, names)
}

impl<'a> DayFold<'a> {
    /// Adds one event of the day (its keys, see [`EventKeys::of`]).
    pub fn add(&mut self, keys: &EventKeys<'a>) {
        let download = keys.download;
        self.totals.side(download).add(keys);
        if self.subcounts.is_empty() {
            self.subcounts
                .resize_with(USAGE_SUBCOUNTS.len(), Default::default);
        }
        for (k, sub) in USAGE_SUBCOUNTS.iter().enumerate() {
            let (ids, names) = &keys.items[k];
            let day = &mut self.subcounts[k];
            for id in ids {
                let counter = match day.by_id.get_mut(id.as_ref()) {
                    Some(entry) => &mut entry.1,
                    None => {
                        let label = label_from_source(sub, keys.values[k], id);
                        &mut day
                            .by_id
                            .entry(id.clone())
                            .or_insert((label, PairCounter::default()))
                            .1
                    }
                };
                counter.side(download).add(keys);
            }
            for name in names {
                match day.by_name.get_mut(name.as_ref()) {
                    Some(counter) => counter.side(download).add(keys),
                    None => day
                        .by_name
                        .entry(name.clone())
                        .or_default()
                        .side(download)
                        .add(keys),
                }
            }
        }
    }

    /// The day's totals and items. An item without an id is counted under its name, unless
    /// that name is the label of an item with an id the same day (then it is the same item,
    /// already counted under its id).
    pub fn finish(self) -> (Pair, Items) {
        let mut items = Items::new();
        for (k, sub) in USAGE_SUBCOUNTS.iter().enumerate() {
            let mut these = BTreeMap::new();
            if let Some(day) = self.subcounts.get(k) {
                for (id, (label, counter)) in &day.by_id {
                    these.insert(
                        id.to_string(),
                        Item {
                            label: label.clone(),
                            figures: counter.pair(),
                        },
                    );
                }
                let id_labels: BTreeSet<&str> = day
                    .by_id
                    .values()
                    .filter_map(|(l, _)| l.as_str().or_else(|| title_text(l)))
                    .collect();
                for (name, counter) in &day.by_name {
                    if !id_labels.contains(name.as_ref()) && !these.contains_key(name.as_ref()) {
                        let label = if sub.label == LabelKind::Title {
                            json!({"en": name})
                        } else {
                            json!(name)
                        };
                        these.insert(
                            name.to_string(),
                            Item {
                                label,
                                figures: counter.pair(),
                            },
                        );
                    }
                }
            }
            items.insert(sub.key.to_string(), these);
        }
        (self.totals.pair(), items)
    }
}

/// The UTC day of an event (`_source`), if its timestamp parses.
pub fn event_day(event: &Value) -> Option<NaiveDate> {
    event["timestamp"]
        .as_str()
        .and_then(parse_timestamp)
        .map(|t| t.date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(v: Value) -> Value {
        json!({"_source": v})
    }

    #[test]
    fn exact_totals_items_and_name_fallback() {
        let events = vec![
            hit(
                json!({"timestamp": "2025-06-04T23:59:59", "visitor_id": "a", "recid": "r1", "parent_recid": "p1", "file_id": "f1", "size": 10,
                "funders": [{"id": "f1", "name": "EC"}, {"name": "Nameless"}], "country": "CH", "file_types": ["pdf", "pdf", "csv"]}),
            ),
            hit(
                json!({"timestamp": "2025-06-04T10:00:00", "visitor_id": "a", "recid": "r2", "parent_recid": "p1", "file_id": "f2", "size": 5.5,
                "funders": [{"name": "EC"}], "country": "CH", "resource_type": {"id": "dataset", "title": {"en": "Dataset"}}}),
            ),
            hit(json!({"timestamp": "2025-06-05T00:00:00", "visitor_id": "b", "recid": "r1"})),
        ];
        let mut days: BTreeMap<NaiveDate, DayFold> = BTreeMap::new();
        for hit in &events {
            let event = &hit["_source"];
            days.entry(event_day(event).unwrap())
                .or_default()
                .add(&EventKeys::of(event, true));
        }
        assert_eq!(days.len(), 2);
        let (totals, items) = days
            .remove(&NaiveDate::from_ymd_opt(2025, 6, 4).unwrap())
            .unwrap()
            .finish();
        assert_eq!(
            totals.download,
            Metrics {
                total_events: 2,
                unique_visitors: 1,
                unique_records: 2,
                unique_parents: 1,
                unique_files: 2,
                total_volume: 16
            }
        );
        assert_eq!(totals.view, Metrics::default());
        let funders = &items["funders"];
        // "EC" without an id is the item with id f1 (its label): not counted twice.
        assert_eq!(funders.keys().collect::<Vec<_>>(), ["Nameless", "f1"]);
        assert_eq!(funders["f1"].label, json!("EC"));
        assert_eq!(funders["f1"].figures.download.total_events, 1);
        assert_eq!(items["file_types"]["pdf"].figures.download.total_events, 1);
        assert_eq!(items["countries"]["CH"].figures.download.unique_records, 2);
        assert_eq!(
            items["resource_types"]["dataset"].label,
            json!({"en": "Dataset"})
        );
        assert!(items["languages"].is_empty());
    }
}
