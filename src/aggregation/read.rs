//! `read`: the aggregation documents of one community over a date range, in date order,
//! every one of them (no 10,000 cap), per kind; a kind without an index is an empty list.

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{Aggregator, GLOBAL};
use crate::dates::{check_range, day_start, parse_day_opt};
use crate::error::{Error, Result};
use crate::pit::PitReader;
use crate::search::SearchClient;

/// Options of `read` (JSON from Python).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOptions {
    /// A community id or slug, or `global`.
    pub community_id: String,
    /// First day (default: yesterday).
    pub start_date: Option<String>,
    /// Last day (default: today).
    pub end_date: Option<String>,
    /// Kinds to read (default: all).
    pub query_types: Vec<String>,
}

/// Reads the documents.
pub async fn read(client: &SearchClient, options: &ReadOptions) -> Result<Value> {
    let mut kinds = options
        .query_types
        .iter()
        .map(|t| Aggregator::parse_read_kind(t))
        .collect::<Result<Vec<_>>>()?;
    if kinds.is_empty() {
        kinds = vec![
            Aggregator::UsageDelta,
            Aggregator::UsageSnapshot,
            Aggregator::RecordsDelta,
            Aggregator::RecordsSnapshot,
        ];
    }
    let today = chrono::Utc::now().date_naive();
    let start = parse_day_opt("--start-date", options.start_date.as_deref())?;
    let end = parse_day_opt("--end-date", options.end_date.as_deref())?;
    check_range("--start-date/--end-date", start, end)?;
    let end = end.unwrap_or(today);
    let start: NaiveDate = start.unwrap_or_else(|| end.pred_opt().expect("date"));
    let community = if options.community_id == GLOBAL {
        GLOBAL.to_string()
    } else {
        crate::communities::resolve(client, std::slice::from_ref(&options.community_id))
            .await?
            .remove(0)
    };
    let mut out = serde_json::Map::new();
    out.insert("community_id".into(), json!(community));
    out.insert("start_date".into(), json!(start.to_string()));
    out.insert("end_date".into(), json!(end.to_string()));
    for kind in kinds {
        let (field, key) = (kind.date_field(), kind.read_kind().1);
        let index = client.index(kind.index());
        let mut docs = Vec::new();
        if client.exists(&index).await? {
            let query = json!({"bool": {"filter": [
                {"term": {"community_id": community}},
                {"range": {field: {"gte": day_start(start), "lte": day_start(end)}}},
            ]}});
            let mut reader = PitReader::open(
                client,
                &index,
                query,
                json!([{field: "asc"}]),
                500,
                json!(true),
            )
            .await?;
            let result = async {
                while let Some(page) = reader.next_page().await? {
                    docs.extend(page.into_iter().map(|mut h| h["_source"].take()));
                }
                Ok::<_, Error>(())
            }
            .await;
            let _ = reader.close().await;
            result?;
        }
        out.insert(key.into(), Value::Array(docs));
    }
    Ok(Value::Object(out))
}
