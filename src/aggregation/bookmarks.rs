//! Bookmarks: the last day each (aggregator, community) finished, in
//! `<prefix>stats-bookmarks-community` (the dashboards' index and document shape:
//! `_id` = `<aggregator>_<community>`, `{date, aggregation_type, community_id}`).

use chrono::NaiveDate;
use opensearch::http::Method;
use serde_json::json;

use super::Aggregator;
use crate::error::Result;
use crate::search::SearchClient;

/// The bookmark index name (without prefix).
pub const BOOKMARK_INDEX: &str = "stats-bookmarks-community";

fn doc_id(aggregator: Aggregator, community_id: &str) -> String {
    format!("{}_{community_id}", aggregator.name())
}

/// Creates the bookmark index (strict mapping) unless it exists.
pub async fn ensure_index(client: &SearchClient) -> Result<()> {
    let mappings = json!({"dynamic": "strict", "properties": {
        "date": {"type": "date", "format": "date_optional_time"},
        "aggregation_type": {"type": "keyword"},
        "community_id": {"type": "keyword"},
    }});
    client
        .ensure_index(&client.index(BOOKMARK_INDEX), &mappings)
        .await
}

/// The bookmarked day, if any.
pub async fn get(
    client: &SearchClient,
    aggregator: Aggregator,
    community_id: &str,
) -> Result<Option<NaiveDate>> {
    let path = format!(
        "{}/_doc/{}",
        client.index(BOOKMARK_INDEX),
        doc_id(aggregator, community_id)
    );
    let Some(doc) = client.json_opt(Method::Get, &path, None).await? else {
        return Ok(None);
    };
    Ok(doc["_source"]["date"]
        .as_str()
        .and_then(|d| d.get(..10))
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()))
}

/// Sets the bookmark to midnight of `day`.
pub async fn set(
    client: &SearchClient,
    aggregator: Aggregator,
    community_id: &str,
    day: NaiveDate,
) -> Result<()> {
    let path = format!(
        "{}/_doc/{}",
        client.index(BOOKMARK_INDEX),
        doc_id(aggregator, community_id)
    );
    let body = json!({"date": format!("{}T00:00:00", day.format("%Y-%m-%d")), "aggregation_type": aggregator.name(), "community_id": community_id});
    client.json(Method::Put, &path, Some(&body)).await?;
    Ok(())
}
