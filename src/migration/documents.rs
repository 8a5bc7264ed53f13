//! The v2 document of a legacy event (its fields, the record's enrichment, the communities
//! of the event's day, the timestamp as UTC seconds), and the field-by-field check of a
//! sample of copies. Used by the copy, the `_seq_no` catch-ups and the late enrichment.

use opensearch::http::Method;
use serde_json::{json, Value};

use crate::dates::{parse_timestamp, utc_seconds};
use crate::enrich::{RecordCache, RecordInfo};
use crate::error::Result;
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

/// The v2 document of one legacy event: its fields (except those the record replaces), the
/// record's serialised fields, and `community_ids`.
pub(crate) fn splice_document(
    source: &Value,
    info: Option<&RecordInfo>,
    communities: &[String],
) -> Vec<u8> {
    let replaced: &[&str] = info.map(|r| r.field_names.as_slice()).unwrap_or_default();
    let mut doc = Vec::with_capacity(512 + info.map(|r| r.fields_json.len()).unwrap_or(0));
    doc.push(b'{');
    for (k, v) in source.as_object().into_iter().flatten() {
        if k == "community_ids" || replaced.contains(&k.as_str()) {
            continue;
        }
        serde_json::to_writer(&mut doc, k).expect("serialises");
        doc.push(b':');
        match (k.as_str(), v) {
            // The legacy mapping takes any `strict_date_optional_time` (fractions, `Z`,
            // offsets, a bare date); the v2 mapping only UTC seconds.
            ("timestamp", Value::String(t)) => {
                serde_json::to_writer(&mut doc, &utc_seconds(t).unwrap_or_else(|| t.clone()))
            }
            _ => serde_json::to_writer(&mut doc, v),
        }
        .expect("serialises");
        doc.push(b',');
    }
    if let Some(r) = info.filter(|r| !r.fields_json.is_empty()) {
        doc.extend_from_slice(&r.fields_json);
        doc.push(b',');
    }
    doc.extend_from_slice(b"\"community_ids\":");
    serde_json::to_writer(&mut doc, communities).expect("serialises");
    doc.push(b'}');
    doc
}

/// Enriches one page of source hits: `(_id, document)` pairs, the document serialised with
/// the record fields (spliced in from the cache's serialised form) and the communities of the
/// event's day. Events whose record is unknown are kept as they are (counted).
pub(crate) async fn enrich_page(
    client: &SearchClient,
    cache: &mut RecordCache,
    page: &[Value],
    records_missing: &mut u64,
) -> Result<Vec<(String, Vec<u8>)>> {
    let recids: Vec<String> = page
        .iter()
        .filter_map(|h| h["_source"]["recid"].as_str().map(str::to_string))
        .collect();
    cache.fetch(client, &recids).await?;
    let mut out = Vec::with_capacity(page.len());
    for hit in page {
        let source = &hit["_source"];
        let recid = source["recid"].as_str().unwrap_or_default();
        let day = source["timestamp"]
            .as_str()
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
        let doc = splice_document(source, info, &communities);
        out.push((hit["_id"].as_str().unwrap_or_default().to_string(), doc));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spliced_documents_are_the_source_with_the_record_fields() {
        let record = json!({"access": {"status": "open"}, "metadata": {"publisher": "P", "resource_type": {"id": "dataset", "title": {"en": "Dataset"}}}});
        let info = RecordInfo::new(&crate::enrich::record_fields(&record), vec![]);
        let source = json!({"recid": "r1", "timestamp": "2025-05-01T00:00:00", "publisher": "stale", "community_ids": ["x"], "country": "CH"});
        let doc: Value =
            serde_json::from_slice(&splice_document(&source, Some(&info), &["c1".to_string()]))
                .unwrap();
        assert_eq!(
            doc,
            json!({
                "recid": "r1", "timestamp": "2025-05-01T00:00:00", "country": "CH", "publisher": "P", "access_status": "open",
                "resource_type": {"id": "dataset", "title": {"en": "Dataset"}}, "community_ids": ["c1"],
            })
        );
        // Unknown record: the event is kept as it is, with its communities.
        let doc: Value = serde_json::from_slice(&splice_document(&source, None, &[])).unwrap();
        assert_eq!(doc["publisher"], "stale");
        assert_eq!(doc["community_ids"], json!([]));
        // A record without any of the fields.
        let bare = RecordInfo::new(&serde_json::Map::new(), vec![]);
        let doc: Value =
            serde_json::from_slice(&splice_document(&json!({}), Some(&bare), &[])).unwrap();
        assert_eq!(doc, json!({"community_ids": []}));
    }
}
