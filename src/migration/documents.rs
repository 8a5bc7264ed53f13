//! The v2 document of a legacy event (its fields, the record's enrichment, the communities
//! of the event's day, the timestamp as UTC seconds), and the field-by-field check of a
//! sample of copies. Used by the copy, the `_seq_no` catch-ups and the late enrichment.

use std::borrow::Cow;

use opensearch::http::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::bulk::{push_json_str, push_json_str_array};
use crate::dates::{parse_timestamp, utc_seconds};
use crate::enrich::{RecordCache, RecordInfo};
use crate::error::{Error, Result};
use crate::pit::PageHit;
use crate::search::SearchClient;

/// Field-by-field comparison of a sample: every source field must be in the target, equal.
pub(crate) async fn verify_sample(
    client: &SearchClient,
    source: &str,
    target: &str,
    sample: usize,
) -> Result<Option<String>> {
    if sample == 0 {
        return Ok(None);
    }
    let body = json!({"size": sample, "query": {"function_score": {"random_score": {"seed": 7, "field": "_seq_no"}}}});
    let reply = client
        .json(Method::Post, &format!("{source}/_search"), Some(&body))
        .await?;
    let hits = reply["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if hits.is_empty() {
        return Ok(None);
    }
    let ids: Vec<&str> = hits.iter().filter_map(|h| h["_id"].as_str()).collect();
    let got = client
        .json(
            Method::Post,
            &format!("{target}/_mget"),
            Some(&json!({"ids": ids})),
        )
        .await?;
    let docs = got["docs"].as_array().cloned().unwrap_or_default();
    for (hit, doc) in hits.iter().zip(docs.iter()) {
        if doc["found"].as_bool() != Some(true) {
            return Ok(Some(format!(
                "document {} is missing from {target}",
                hit["_id"]
            )));
        }
        for (field, value) in hit["_source"].as_object().into_iter().flatten() {
            let expected = match (field.as_str(), value) {
                ("timestamp", Value::String(t)) => utc_seconds(t)
                    .map(Value::String)
                    .unwrap_or_else(|| value.clone()),
                _ => value.clone(),
            };
            if doc["_source"][field] != expected {
                return Ok(Some(format!(
                    "document {} differs in field {field}",
                    hit["_id"]
                )));
            }
        }
    }
    Ok(None)
}

/// A legacy event as the copy reads it: its `_source` kept as raw JSON text, so that its
/// fields are written back as they were read, without a JSON tree in between (parsing
/// pages into trees and writing them back was a third of a migration's client CPU).
#[derive(Debug, Deserialize)]
pub(crate) struct SourceHit {
    /// The event's `_id` (kept: the copy is idempotent).
    #[serde(rename = "_id")]
    pub id: String,
    /// The index the event was read from.
    #[serde(rename = "_index", default)]
    pub index: Option<String>,
    /// The event, as stored.
    #[serde(rename = "_source")]
    pub source: Box<RawValue>,
    /// Where the next page starts.
    #[serde(default)]
    pub sort: Value,
}

impl PageHit for SourceHit {
    fn sort_value(&self) -> Value {
        self.sort.clone()
    }
}

impl SourceHit {
    /// The same hit read as a JSON tree (the `_seq_no` catch-ups read a few pages so).
    pub fn from_value(hit: &Value) -> Result<Self> {
        serde_json::from_value(hit.clone())
            .map_err(|e| Error::Data(format!("a hit without its _id or _source: {e}")))
    }

    /// The fields of the event, in stored order, each value as raw JSON text.
    fn fields(&self) -> Result<Vec<(Cow<'_, str>, &RawValue)>> {
        serde_json::from_str::<Fields<'_>>(self.source.get())
            .map(|f| f.0)
            .map_err(|e| Error::Data(format!("event {}: _source is not an object: {e}", self.id)))
    }

    /// A string field of the event (`None` when absent or not a string).
    pub fn str_field(&self, name: &str) -> Option<String> {
        str_field(&self.fields().ok()?, name)
    }
}

/// The field `name` of parsed fields, when it is a string.
fn str_field(fields: &[(Cow<'_, str>, &RawValue)], name: &str) -> Option<String> {
    let (_, raw) = fields.iter().find(|(k, _)| k == name)?;
    raw_str(raw).map(Cow::into_owned)
}

/// An object's fields with their values as raw JSON text.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Fields<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> std::result::Result<Fields<'a>, M::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(16));
                while let Some((Text(k), v)) = map.next_entry::<Text<'a>, &'a RawValue>()? {
                    out.push((k, v));
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(Visit(std::marker::PhantomData))
    }
}

/// A JSON string, borrowed from the text unless it has escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// A raw JSON value as a string (`None` when it is not one).
fn raw_str(raw: &RawValue) -> Option<Cow<'_, str>> {
    serde_json::from_str::<Text<'_>>(raw.get())
        .ok()
        .map(|t| t.0)
}

/// Appends a raw JSON value. Stored sources keep the whitespace they were sent with, and a
/// line break in one would end the bulk line: such a value is rewritten compactly.
fn push_raw(doc: &mut Vec<u8>, raw: &RawValue) {
    let text = raw.get().as_bytes();
    if text.iter().any(|b| *b == b'\n' || *b == b'\r') {
        let value: Value = serde_json::from_str(raw.get()).expect("raw values are valid JSON");
        serde_json::to_writer(doc, &value).expect("serialises");
    } else {
        doc.extend_from_slice(text);
    }
}

/// The v2 document of one legacy event: its fields (except those the record replaces), the
/// record's serialised fields, and `community_ids`.
fn splice_document(
    fields: &[(Cow<'_, str>, &RawValue)],
    info: Option<&RecordInfo>,
    communities: &[String],
) -> Vec<u8> {
    let replaced: &[&str] = info.map(|r| r.field_names.as_slice()).unwrap_or_default();
    let mut doc = Vec::with_capacity(512 + info.map(|r| r.fields_json.len()).unwrap_or(0));
    doc.push(b'{');
    for (k, v) in fields {
        if k == "community_ids" || replaced.contains(&k.as_ref()) {
            continue;
        }
        push_json_str(&mut doc, k);
        doc.push(b':');
        // The legacy mapping takes any `strict_date_optional_time` (fractions, `Z`,
        // offsets, a bare date); the v2 mapping only UTC seconds.
        match (k == "timestamp").then(|| raw_str(v)).flatten() {
            Some(t) => {
                serde_json::to_writer(&mut doc, &utc_seconds(&t).unwrap_or_else(|| t.into_owned()))
                    .expect("serialises")
            }
            None => push_raw(&mut doc, v),
        }
        doc.push(b',');
    }
    if let Some(r) = info.filter(|r| !r.fields_json.is_empty()) {
        doc.extend_from_slice(&r.fields_json);
        doc.push(b',');
    }
    doc.extend_from_slice(b"\"community_ids\":");
    push_json_str_array(&mut doc, communities);
    doc.push(b'}');
    doc
}

/// Enriches one page of source hits: `(_id, document)` pairs, the document serialised with
/// the record fields (spliced in from the cache's serialised form) and the communities of the
/// event's day. Events whose record is unknown are kept as they are (counted).
pub(crate) async fn enrich_page(
    client: &SearchClient,
    cache: &mut RecordCache,
    page: &[SourceHit],
    records_missing: &mut u64,
) -> Result<Vec<(String, Vec<u8>)>> {
    let events: Vec<Vec<(Cow<'_, str>, &RawValue)>> =
        page.iter().map(SourceHit::fields).collect::<Result<_>>()?;
    let keys: Vec<(Option<String>, Option<String>)> = events
        .iter()
        .map(|f| (str_field(f, "recid"), str_field(f, "timestamp")))
        .collect();
    let recids: Vec<String> = keys.iter().filter_map(|(r, _)| r.clone()).collect();
    cache.fetch(client, &recids).await?;
    let mut out = Vec::with_capacity(page.len());
    for ((hit, fields), (recid, timestamp)) in page.iter().zip(&events).zip(&keys) {
        let recid = recid.as_deref().unwrap_or_default();
        let day = timestamp
            .as_deref()
            .and_then(parse_timestamp)
            .map(|t| t.date_naive());
        let info = cache.get(recid);
        if info.is_none() {
            *records_missing += 1;
        }
        let fallback: &[String] = info.map(|r| r.communities.as_slice()).unwrap_or_default();
        let communities = match day {
            Some(d) => cache.membership().communities_on(recid, d, fallback),
            None => fallback.to_vec(),
        };
        out.push((hit.id.clone(), splice_document(fields, info, &communities)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(source: &str) -> SourceHit {
        serde_json::from_str(&format!(
            r#"{{"_id": "e1", "_source": {source}, "sort": [1]}}"#
        ))
        .unwrap()
    }

    fn splice(source: &str, info: Option<&RecordInfo>, communities: &[String]) -> Vec<u8> {
        let hit = hit(source);
        splice_document(&hit.fields().unwrap(), info, communities)
    }

    #[test]
    fn spliced_documents_are_the_source_with_the_record_fields() {
        let record = json!({"access": {"status": "open"}, "metadata": {"publisher": "P", "resource_type": {"id": "dataset", "title": {"en": "Dataset"}}}});
        let info = RecordInfo::new(&crate::enrich::record_fields(&record), vec![]);
        let source = r#"{"recid": "r1", "timestamp": "2025-05-01T00:00:00", "publisher": "stale", "community_ids": ["x"], "country": "CH"}"#;
        let doc: Value =
            serde_json::from_slice(&splice(source, Some(&info), &["c1".to_string()])).unwrap();
        assert_eq!(
            doc,
            json!({
                "recid": "r1", "timestamp": "2025-05-01T00:00:00", "country": "CH", "publisher": "P", "access_status": "open",
                "resource_type": {"id": "dataset", "title": {"en": "Dataset"}}, "community_ids": ["c1"],
            })
        );
        // Unknown record: the event is kept as it is, with its communities.
        let doc: Value = serde_json::from_slice(&splice(source, None, &[])).unwrap();
        assert_eq!(doc["publisher"], "stale");
        assert_eq!(doc["community_ids"], json!([]));
        // A record without any of the fields.
        let bare = RecordInfo::new(&serde_json::Map::new(), vec![]);
        let doc: Value = serde_json::from_slice(&splice("{}", Some(&bare), &[])).unwrap();
        assert_eq!(doc, json!({"community_ids": []}));
    }

    #[test]
    fn raw_sources_are_written_back_on_one_line_as_they_were_read() {
        // Stored with line breaks and escapes: one bulk line, the same values.
        let source = "{\n  \"timestamp\": \"2025-05-01T12:00:00.5+02:00\",\n  \"recid\": \"r\\u0031\",\n  \"we\\\"ird\": {\"a\": [1,\n 2.50, null]},\n  \"text\": \"line\\nbreak \\u00e9\", \"n\": 1e3}";
        let doc = splice(source, None, &[]);
        assert!(!doc.contains(&b'\n'), "{}", String::from_utf8_lossy(&doc));
        let doc: Value = serde_json::from_slice(&doc).unwrap();
        let original: Value = serde_json::from_str(source).unwrap();
        assert_eq!(doc["timestamp"], "2025-05-01T10:00:00");
        for field in ["recid", "we\"ird", "text", "n"] {
            assert_eq!(doc[field], original[field], "{field}");
        }
        assert_eq!(hit(source).str_field("recid").as_deref(), Some("r1"));
        assert_eq!(hit(source).str_field("n"), None);
        // A timestamp that is not a string is kept as it is.
        let doc: Value = serde_json::from_slice(&splice(r#"{"timestamp": 5}"#, None, &[])).unwrap();
        assert_eq!(doc["timestamp"], 5);
        // A hit read as a tree reads the same.
        let tree = json!({"_id": "e2", "_index": "i", "_source": {"recid": "r2"}});
        let from_tree = SourceHit::from_value(&tree).unwrap();
        assert_eq!(
            (from_tree.id.as_str(), from_tree.index.as_deref()),
            ("e2", Some("i"))
        );
        assert_eq!(from_tree.str_field("recid").as_deref(), Some("r2"));
        // A source that is not an object is an error naming the event, not a panic.
        let odd: SourceHit = serde_json::from_str(r#"{"_id": "e3", "_source": [1]}"#).unwrap();
        assert!(matches!(odd.fields(), Err(Error::Data(m)) if m.contains("e3")));
        // A hit read as a tree without its source (a catch-up's page) is an error, not a panic.
        assert!(matches!(
            SourceHit::from_value(&json!({"_id": "e4"})),
            Err(Error::Data(m)) if m.contains("_source")
        ));
    }
}
