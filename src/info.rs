//! `info`: what the configured cluster and index prefix hold, for operators and the Quick start.

use std::collections::BTreeMap;

use opensearch::http::Method;
use serde::Serialize;

use crate::error::Result;
use crate::search::SearchClient;

/// A summary of one family of indices.
#[derive(Debug, Default, Serialize)]
pub struct IndexFamily {
    /// Number of indices.
    pub indices: u64,
    /// Documents over those indices.
    pub documents: u64,
}

/// The cluster and what the prefix holds.
#[derive(Debug, Serialize)]
pub struct ClusterInfo {
    /// Hosts used (no credentials).
    pub hosts: String,
    /// `cluster_name`.
    pub cluster_name: String,
    /// Server version number.
    pub version: String,
    /// Distribution (`opensearch`).
    pub distribution: String,
    /// `green` / `yellow` / `red`.
    pub health: String,
    /// `SEARCH_INDEX_PREFIX`.
    pub index_prefix: String,
    /// Index families under the prefix, by kind.
    pub indices: BTreeMap<String, IndexFamily>,
}

/// The families we report, matched on the name after the prefix (first match wins).
const FAMILIES: &[(&str, &str)] = &[
    ("rdmrecords-records", "records"),
    ("communities", "communities"),
    ("events-stats-record-view-", "view events"),
    ("events-stats-file-download-", "download events"),
    ("stats-community-events", "community events"),
    ("stats-community-", "community statistics"),
    ("stats-bookmarks", "bookmarks"),
];

fn family_of(name: &str) -> Option<&'static str> {
    let kind = FAMILIES
        .iter()
        .find(|(p, _)| name.starts_with(p))
        .map(|(_, k)| *k)?;
    if name.ends_with("-v2.0.0") && kind.ends_with("events") && kind != "community events" {
        return Some(if kind.starts_with("view") {
            "view events (migrated v2)"
        } else {
            "download events (migrated v2)"
        });
    }
    Some(kind)
}

/// Reads cluster info, health and the index families under the prefix.
pub async fn cluster_info(client: &SearchClient) -> Result<ClusterInfo> {
    let root = client.json(Method::Get, "", None).await?;
    let health = client.json(Method::Get, "_cluster/health", None).await?;
    let prefix = client.settings().index_prefix.clone();
    let mut indices: BTreeMap<String, IndexFamily> = BTreeMap::new();
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, _) in client.cat_indices(&format!("{prefix}*")).await? {
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rest.starts_with('.') {
            continue;
        }
        let Some(kind) = family_of(rest) else {
            continue;
        };
        indices.entry(kind.to_string()).or_default().indices += 1;
        names.entry(kind.to_string()).or_default().push(name);
    }
    // `_cat/indices` counts nested documents too (the aggregations' subcount items):
    // documents are counted with `_count`, one request per family.
    for (kind, family_names) in names {
        let mut documents = 0;
        for chunk in family_names.chunks(100) {
            documents += client.count(&chunk.join(","), None).await?;
        }
        indices.entry(kind).or_default().documents = documents;
    }
    Ok(ClusterInfo {
        hosts: client.settings().hosts_display(),
        cluster_name: root["cluster_name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        version: root["version"]["number"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        distribution: root["version"]["distribution"]
            .as_str()
            .unwrap_or("elasticsearch")
            .to_string(),
        health: health["status"].as_str().unwrap_or("unknown").to_string(),
        index_prefix: prefix,
        indices,
    })
}

#[cfg(test)]
mod tests {
    use super::family_of;

    #[test]
    fn families_are_recognised() {
        assert_eq!(
            family_of("rdmrecords-records-record-v7.0.0"),
            Some("records")
        );
        assert_eq!(
            family_of("events-stats-record-view-2024-05"),
            Some("view events")
        );
        assert_eq!(
            family_of("events-stats-record-view-2024-05-v2.0.0"),
            Some("view events (migrated v2)")
        );
        assert_eq!(
            family_of("stats-community-events-2024"),
            Some("community events")
        );
        assert_eq!(
            family_of("stats-community-usage-delta-2024"),
            Some("community statistics")
        );
        assert_eq!(family_of("something-else"), None);
    }
}
