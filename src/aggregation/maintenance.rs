//! Maintenance of the aggregations: `status` (per community and aggregator),
//! `clear-bookmarks`, `destroy-indices` (prefix-aware, explicit index names only).

use std::collections::BTreeMap;

use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{bookmarks, Aggregator, GLOBAL};
use crate::error::{Error, Result};
use crate::pit::PitReader;
use crate::search::SearchClient;

/// One row of `status`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusRow {
    /// Community id or `global`.
    pub community_id: String,
    /// The community's slug (`None` for `global` or a community no longer indexed).
    pub slug: Option<String>,
    /// Aggregator name.
    pub aggregator: String,
    /// Bookmark (`YYYY-MM-DD`), if any.
    pub bookmark: Option<String>,
    /// Documents.
    pub documents: u64,
    /// First day with a document.
    pub first_day: Option<String>,
    /// Last day with a document.
    pub last_day: Option<String>,
    /// Documents / days from the first to the last day (1.0 = no gap).
    pub completeness: Option<f64>,
    /// Days from the last document to today.
    pub days_behind: Option<i64>,
}

/// Options of `status` and `clear-bookmarks` (JSON from Python).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectOptions {
    /// Community ids or slugs, or `global` (empty: all).
    pub community_ids: Vec<String>,
    /// Aggregator names (empty: all).
    pub aggregation_types: Vec<String>,
    /// `clear-bookmarks`: every bookmark (required when nothing is selected).
    pub all: bool,
}

async fn communities(client: &SearchClient, given: &[String]) -> Result<Vec<String>> {
    super::select_communities(client, given, false).await
}

/// Per (community, aggregator): bookmark, documents, first/last day, completeness.
pub async fn status(client: &SearchClient, options: &SelectOptions) -> Result<Vec<StatusRow>> {
    let aggs = Aggregator::parse_list(&options.aggregation_types)?;
    let communities = communities(client, &options.community_ids).await?;
    let slugs = crate::communities::slugs(client, &communities).await?;
    let today = chrono::Utc::now().date_naive();
    // Bookmarks, all at once.
    let mut marks: BTreeMap<(String, String), String> = BTreeMap::new();
    let index = client.index(bookmarks::BOOKMARK_INDEX);
    if client.exists(&index).await? {
        client.refresh(&index).await?; // bookmarks are written without a refresh
        let mut reader = PitReader::open(
            client,
            &index,
            json!({"match_all": {}}),
            json!([{"aggregation_type": "asc"}, {"community_id": "asc"}]),
            1000,
            json!(true),
        )
        .await?;
        while let Some(page) = reader.next_page().await? {
            for h in page {
                let s = &h["_source"];
                if let (Some(a), Some(c), Some(d)) = (
                    s["aggregation_type"].as_str(),
                    s["community_id"].as_str(),
                    s["date"].as_str(),
                ) {
                    marks.insert(
                        (a.to_string(), c.to_string()),
                        d.get(..10).unwrap_or(d).to_string(),
                    );
                }
            }
        }
        let _ = reader.close().await;
    }
    let mut rows = Vec::new();
    for agg in aggs {
        let alias = client.index(agg.index());
        let field = agg.date_field();
        // One composite aggregation per aggregator: per community, count and first/last day.
        let per = if client.exists(&alias).await? {
            client
                .day_span_by_term(
                    &alias,
                    "community_id",
                    field,
                    json!({"terms": {"community_id": communities}}),
                )
                .await?
        } else {
            BTreeMap::new()
        };
        for c in &communities {
            let crate::search::DaySpan {
                documents,
                first,
                last,
            } = per.get(c).copied().unwrap_or_default();
            let completeness = first
                .zip(last)
                .map(|(f, l)| documents as f64 / ((l - f).num_days() + 1) as f64);
            rows.push(StatusRow {
                community_id: c.clone(),
                slug: slugs.get(c).cloned(),
                aggregator: agg.name().to_string(),
                bookmark: marks.get(&(agg.name().to_string(), c.clone())).cloned(),
                documents,
                first_day: first.map(|d| d.to_string()),
                last_day: last.map(|d| d.to_string()),
                completeness,
                days_behind: last.map(|l| (today - l).num_days()),
            });
        }
    }
    Ok(rows)
}

/// Deletes the selected bookmarks (communities may be slugs or `global`); returns how many.
pub async fn clear_bookmarks(client: &SearchClient, options: &SelectOptions) -> Result<u64> {
    if options.community_ids.is_empty() && options.aggregation_types.is_empty() && !options.all {
        return Err(Error::invalid(
            "say which bookmarks: --community-id, --aggregation-type, or --all",
        ));
    }
    let aggs = Aggregator::parse_list(&options.aggregation_types)?;
    let names: Vec<&str> = aggs.iter().map(|a| a.name()).collect();
    let mut filter = vec![json!({"terms": {"aggregation_type": names}})];
    if !options.community_ids.is_empty() {
        let named: Vec<String> = options
            .community_ids
            .iter()
            .filter(|c| c.as_str() != GLOBAL)
            .cloned()
            .collect();
        let mut ids = crate::communities::resolve(client, &named).await?;
        if options.community_ids.iter().any(|c| c == GLOBAL) {
            ids.push(GLOBAL.to_string());
        }
        filter.push(json!({"terms": {"community_id": ids}}));
    }
    let index = client.index(bookmarks::BOOKMARK_INDEX);
    client.refresh(&index).await?; // bookmarks are written without a refresh
    let body = json!({"query": {"bool": {"filter": filter}}});
    let reply = client
        .json_opt(
            Method::Post,
            &format!("{index}/_delete_by_query?refresh=true&conflicts=proceed"),
            Some(&body),
        )
        .await?;
    Ok(reply.and_then(|r| r["deleted"].as_u64()).unwrap_or(0))
}

/// The aggregation indices under the prefix (what `destroy-indices` deletes), by name.
/// Community events are included only when asked; migrated usage events never are.
pub async fn aggregation_indices(
    client: &SearchClient,
    include_community_events: bool,
) -> Result<Vec<(String, u64)>> {
    let mut patterns: Vec<String> = Aggregator::ALL
        .iter()
        .map(|a| format!("{}-*", client.index(a.index())))
        .collect();
    for single in [
        bookmarks::BOOKMARK_INDEX,
        super::snapshot::STATE_INDEX,
        crate::lock::LOCK_INDEX,
    ] {
        patterns.push(client.index(single));
    }
    if include_community_events {
        patterns.push(format!("{}-*", client.index("stats-community-events")));
    }
    let mut out = Vec::new();
    for p in patterns {
        out.extend(client.cat_indices(&p).await?);
    }
    out.sort();
    out.dedup();
    // `_cat/indices` counts nested subcount items as documents; `_count` does not.
    for (name, docs) in out.iter_mut() {
        *docs = client.count(name, None).await?;
    }
    Ok(out)
}

/// Deletes the indices `aggregation_indices` lists (refused while an aggregation holds
/// its lock), or with `dry_run` only lists them; returns them.
pub async fn destroy_indices(
    client: &SearchClient,
    include_community_events: bool,
    dry_run: bool,
) -> Result<Vec<(String, u64)>> {
    if dry_run {
        return aggregation_indices(client, include_community_events).await;
    }
    // The lock index goes too: refused while any job holds a lock in it.
    for lock in crate::lock::ClusterLock::ALL {
        if let Some(held) = crate::lock::live(client, lock).await? {
            return Err(Error::Conflict(format!(
                "an {} is running ({}): not deleting the aggregation indices (cancel it, or 'clear-lock --lock-name {}' \
                 if it crashed)",
                lock.what(),
                held["owner"].as_str().unwrap_or("?"),
                lock.id()
            )));
        }
    }
    let indices = aggregation_indices(client, include_community_events).await?;
    for chunk in indices.chunks(50) {
        let names: Vec<&str> = chunk.iter().map(|(n, _)| n.as_str()).collect();
        client.json(Method::Delete, &names.join(","), None).await?;
    }
    Ok(indices)
}
