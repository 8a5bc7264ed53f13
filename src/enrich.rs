//! Enrichment of usage events: the record metadata fields of the v2 event templates
//! (one table, used by migration, generation and aggregation) and community membership
//! as of the end of an event's day, from `stats-community-events`.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use opensearch::http::Method;
use serde_json::{json, Map, Value};

use crate::dates::{end_of_day, parse_timestamp};
use crate::error::Result;
use crate::search::SearchClient;

/// One enrichment field: where it lives on a record and which sub-keys the strict v2
/// mapping accepts (`None` = a plain value).
struct FieldRule {
    /// Event field name.
    event_field: &'static str,
    /// Sub-keys copied from each item (objects), `None` for scalars.
    keys: Option<&'static [&'static str]>,
}

/// The record-side enrichment table (defaults of the reference's `COMMUNITY_STATS_SUBCOUNTS`).
const RULES: &[FieldRule] = &[
    FieldRule {
        event_field: "resource_type",
        keys: Some(&["id", "title", "props"]),
    },
    FieldRule {
        event_field: "access_status",
        keys: None,
    },
    FieldRule {
        event_field: "publisher",
        keys: None,
    },
    FieldRule {
        event_field: "languages",
        keys: Some(&["id", "title"]),
    },
    FieldRule {
        event_field: "subjects",
        keys: Some(&["id", "subject", "scheme"]),
    },
    FieldRule {
        event_field: "rights",
        keys: Some(&["id", "title", "description", "props", "link", "icon"]),
    },
    FieldRule {
        event_field: "funders",
        keys: Some(&["id", "name", "identifiers"]),
    },
    FieldRule {
        event_field: "affiliations",
        keys: Some(&["id", "name", "identifiers"]),
    },
    FieldRule {
        event_field: "journal_title",
        keys: None,
    },
    FieldRule {
        event_field: "file_types",
        keys: None,
    },
];

fn pick(item: &Value, keys: &[&str]) -> Option<Value> {
    let obj = item.as_object()?;
    let mut out = Map::new();
    for k in keys {
        if let Some(v) = obj.get(*k) {
            if !v.is_null() {
                out.insert((*k).to_string(), v.clone());
            }
        }
    }
    if out.is_empty() {
        None
    } else {
        Some(Value::Object(out))
    }
}

fn as_items(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => Vec::new(),
    }
}

/// The raw source value of an event field on a record document.
fn source(record: &Value, field: &str) -> Value {
    let md = &record["metadata"];
    match field {
        "resource_type" => md["resource_type"].clone(),
        "access_status" => record["access"]["status"].clone(),
        "publisher" => md["publisher"].clone(),
        "languages" => md["languages"].clone(),
        "subjects" => md["subjects"].clone(),
        "rights" => md["rights"].clone(),
        "funders" => Value::Array(
            as_items(&md["funding"])
                .into_iter()
                .map(|f| f["funder"].clone())
                .filter(|f| !f.is_null())
                .collect(),
        ),
        "affiliations" => {
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for who in ["creators", "contributors"] {
                for person in as_items(&md[who]) {
                    for aff in as_items(&person["affiliations"]) {
                        let key = aff["id"]
                            .as_str()
                            .or_else(|| aff["name"].as_str())
                            .unwrap_or_default()
                            .to_string();
                        if !key.is_empty() && seen.insert(key) {
                            out.push(aff.clone());
                        }
                    }
                }
            }
            Value::Array(out)
        }
        "journal_title" => record["custom_fields"]["journal:journal"]["title"].clone(),
        "file_types" => {
            // `files.types` where the index has it (RDM writes it beside the entries), else
            // the entries' extensions; a record with restricted files has neither.
            let listed = match &record["files"]["types"] {
                Value::Array(types) => types.iter().collect(),
                _ => as_items(&record["files"]["entries"])
                    .into_iter()
                    .map(|e| &e["ext"])
                    .collect::<Vec<_>>(),
            };
            let exts: BTreeSet<String> = listed
                .into_iter()
                .filter_map(|e| e.as_str().map(str::to_lowercase))
                .collect();
            if exts.is_empty() {
                Value::Null
            } else {
                Value::Array(exts.into_iter().map(Value::String).collect())
            }
        }
        _ => Value::Null,
    }
}

/// The record metadata fields of a v2 event, read once per record.
pub fn record_fields(record: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for rule in RULES {
        let raw = source(record, rule.event_field);
        let value = match rule.keys {
            None => match raw {
                Value::String(s) if s.is_empty() => Value::Null,
                other => other,
            },
            Some(keys) => match &raw {
                Value::Array(items) => {
                    Value::Array(items.iter().filter_map(|i| pick(i, keys)).collect())
                }
                Value::Object(_) => pick(&raw, keys).unwrap_or(Value::Null),
                _ => Value::Null,
            },
        };
        let empty = value.is_null() || value.as_array().map(|a| a.is_empty()).unwrap_or(false);
        if !empty {
            out.insert(rule.event_field.to_string(), value);
        }
    }
    out
}

/// Community membership over time for a set of records.
#[derive(Default, Debug)]
pub struct Membership {
    /// record id -> (event time, community id, added?) sorted by time.
    events: HashMap<String, Vec<(DateTime<Utc>, String, bool)>>,
}

impl Membership {
    /// Loads the `added`/`removed` events of `record_ids` (all pages; `global` skipped).
    pub async fn load(client: &SearchClient, record_ids: &[String]) -> Result<Self> {
        let mut m = Membership::default();
        if record_ids.is_empty() {
            return Ok(m);
        }
        let index = client.index("stats-community-events");
        if !client.exists(&index).await? {
            return Ok(m);
        }
        for chunk in record_ids.chunks(1000) {
            let body = json!({
                "size": 5000,
                "query": {"bool": {"filter": [
                    {"terms": {"record_id": chunk}},
                    {"terms": {"event_type": ["added", "removed"]}},
                ]}},
                "sort": [{"record_id": "asc"}, {"event_date": "asc"}, {"community_id": "asc"}, {"event_type": "asc"}],
                "_source": ["record_id", "community_id", "event_type", "event_date"],
            });
            client
                .for_each_page(&index, body, |hits| {
                    for h in hits {
                        let s = &h["_source"];
                        let (Some(rec), Some(comm), Some(kind), Some(date)) = (
                            s["record_id"].as_str(),
                            s["community_id"].as_str(),
                            s["event_type"].as_str(),
                            s["event_date"].as_str(),
                        ) else {
                            continue;
                        };
                        if comm == "global" {
                            continue;
                        }
                        if let Some(t) = parse_timestamp(date) {
                            m.events.entry(rec.to_string()).or_default().push((
                                t,
                                comm.to_string(),
                                kind == "added",
                            ));
                        }
                    }
                })
                .await?;
        }
        for list in m.events.values_mut() {
            list.sort();
        }
        Ok(m)
    }

    /// The communities `record_id` belonged to at the end of `day`; `fallback` (the
    /// record's current `parent.communities.ids`) when the record has no events.
    pub fn communities_on(
        &self,
        record_id: &str,
        day: NaiveDate,
        fallback: &[String],
    ) -> Vec<String> {
        let Some(events) = self.events.get(record_id) else {
            let mut f = fallback.to_vec();
            f.sort();
            f.dedup();
            return f;
        };
        let until = end_of_day(day);
        let mut current = BTreeSet::new();
        for (t, comm, added) in events {
            if *t > until {
                break;
            }
            if *added {
                current.insert(comm.clone());
            } else {
                current.remove(comm);
            }
        }
        current.into_iter().collect()
    }

    /// Records the membership of a record by hand (tests).
    pub fn insert(&mut self, record_id: &str, at: DateTime<Utc>, community: &str, added: bool) {
        let list = self.events.entry(record_id.to_string()).or_default();
        list.push((at, community.to_string(), added));
        list.sort();
    }
}

/// The record's current communities (`parent.communities.ids`).
pub fn current_communities(record: &Value) -> Vec<String> {
    record["parent"]["communities"]["ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn record_fields_follow_the_strict_mapping() {
        let record = json!({
            "access": {"status": "open"},
            "files": {"entries": [{"ext": "PDF"}, {"ext": "csv"}, {"ext": "pdf"}]},
            "custom_fields": {"journal:journal": {"title": "J"}},
            "metadata": {
                "resource_type": {"id": "dataset", "title": {"en": "Dataset"}, "extra": 1},
                "publisher": "Zenodo",
                "languages": [{"id": "eng", "title": {"en": "English"}, "junk": true}],
                "subjects": [{"id": "s1", "subject": "Physics", "scheme": "FOS"}],
                "rights": [{"id": "cc-by-4.0", "title": {"en": "CC BY"}}],
                "funding": [{"funder": {"id": "f1", "name": "EC"}, "award": {"id": "a"}}],
                "creators": [{"affiliations": [{"id": "a1", "name": "CERN"}]}],
                "contributors": [{"affiliations": [{"id": "a1", "name": "CERN"}, {"name": "Elsewhere"}]}],
            }
        });
        let f = record_fields(&record);
        assert_eq!(
            f["resource_type"],
            json!({"id": "dataset", "title": {"en": "Dataset"}})
        );
        assert_eq!(
            f["languages"],
            json!([{"id": "eng", "title": {"en": "English"}}])
        );
        assert_eq!(f["funders"], json!([{"id": "f1", "name": "EC"}]));
        assert_eq!(
            f["affiliations"],
            json!([{"id": "a1", "name": "CERN"}, {"name": "Elsewhere"}])
        );
        assert_eq!(f["file_types"], json!(["csv", "pdf"]));
        assert_eq!(f["journal_title"], "J");
        assert_eq!(f["access_status"], "open");
        let empty = record_fields(&json!({"metadata": {}}));
        assert!(empty.is_empty(), "{empty:?}");
    }

    #[test]
    fn membership_at_the_end_of_a_day() {
        let mut m = Membership::default();
        let day = |d| NaiveDate::from_ymd_opt(2025, 6, d).unwrap();
        m.insert(
            "r1",
            Utc.with_ymd_and_hms(2025, 6, 5, 10, 0, 0).unwrap(),
            "c1",
            true,
        );
        m.insert(
            "r1",
            Utc.with_ymd_and_hms(2025, 6, 10, 23, 59, 59).unwrap(),
            "c1",
            false,
        );
        m.insert(
            "r1",
            Utc.with_ymd_and_hms(2025, 6, 8, 0, 0, 0).unwrap(),
            "c2",
            true,
        );
        assert!(m.communities_on("r1", day(4), &[]).is_empty());
        assert_eq!(m.communities_on("r1", day(5), &[]), vec!["c1"]);
        assert_eq!(m.communities_on("r1", day(9), &[]), vec!["c1", "c2"]);
        assert_eq!(m.communities_on("r1", day(10), &[]), vec!["c2"]);
        assert_eq!(
            m.communities_on("r2", day(10), &["c9".to_string()]),
            vec!["c9"]
        );
    }
}

/// What enrichment needs of one record, extracted once.
#[derive(Debug, Default)]
pub struct RecordInfo {
    /// The record metadata fields of a v2 event, serialised once: `"key":value` pairs joined
    /// by commas, ready to be spliced into an event document (compact in memory too).
    pub fields_json: Vec<u8>,
    /// The keys present in `fields_json`.
    pub field_names: Vec<&'static str>,
    /// The record's current communities (the fallback when it has no community events).
    pub communities: Vec<String>,
}

impl RecordInfo {
    /// Serialises the fields of [`record_fields`] once.
    pub fn new(fields: &Map<String, Value>, communities: Vec<String>) -> Self {
        let mut fields_json = Vec::with_capacity(256);
        let mut field_names = Vec::with_capacity(fields.len());
        for rule in RULES {
            let Some(v) = fields.get(rule.event_field) else {
                continue;
            };
            if !fields_json.is_empty() {
                fields_json.push(b',');
            }
            serde_json::to_writer(&mut fields_json, rule.event_field).expect("serialises");
            fields_json.push(b':');
            serde_json::to_writer(&mut fields_json, v).expect("serialises");
            field_names.push(rule.event_field);
        }
        fields_json.shrink_to_fit();
        Self {
            fields_json,
            field_names,
            communities,
        }
    }
}

/// The record fields the enrichment reads (so that lookups fetch only these).
pub const RECORD_SOURCE: &[&str] = &[
    "id",
    "access.status",
    "parent.communities.ids",
    "custom_fields.journal:journal.title",
    "files.types",
    "files.entries.ext",
    "metadata.resource_type",
    "metadata.publisher",
    "metadata.languages",
    "metadata.subjects",
    "metadata.rights",
    "metadata.funding.funder",
    "metadata.creators.affiliations",
    "metadata.contributors.affiliations",
];

/// Enrichment data by record id, fetched in batched `terms` queries (only the fields
/// needed) and kept for the run: usage is skewed towards popular records, so most lookups
/// hit the cache, and the cache holds extracted fields, not whole records.
#[derive(Default)]
pub struct RecordCache {
    records: HashMap<String, Option<RecordInfo>>,
    membership: Membership,
}

impl RecordCache {
    /// Makes sure every id in `ids` is cached (missing records are cached as `None`), with
    /// its community events.
    pub async fn fetch(&mut self, client: &SearchClient, ids: &[String]) -> Result<()> {
        let missing: Vec<String> = ids
            .iter()
            .filter(|id| !self.records.contains_key(*id))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if self.records.len() + missing.len() > 500_000 {
            // Bound memory on huge runs: start over (the next lookups refill it).
            self.records.clear();
            self.membership = Membership::default();
        }
        let index = client.index("rdmrecords-records");
        for chunk in missing.chunks(1000) {
            let body = json!({"size": chunk.len(), "query": {"terms": {"id": chunk}}, "_source": RECORD_SOURCE});
            let reply = client
                .json(Method::Post, &format!("{index}/_search"), Some(&body))
                .await?;
            for id in chunk {
                self.records.insert(id.clone(), None);
            }
            for hit in reply["hits"]["hits"].as_array().into_iter().flatten() {
                let source = &hit["_source"];
                if let Some(id) = source["id"].as_str() {
                    let info = RecordInfo::new(&record_fields(source), current_communities(source));
                    self.records.insert(id.to_string(), Some(info));
                }
            }
        }
        let loaded = Membership::load(client, &missing).await?;
        self.membership.events.extend(loaded.events);
        Ok(())
    }

    /// The cached record, if it exists.
    pub fn get(&self, id: &str) -> Option<&RecordInfo> {
        self.records.get(id).and_then(|r| r.as_ref())
    }

    /// Community membership of the cached records.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }
}
