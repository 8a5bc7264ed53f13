//! Communities: resolving what operators type (a UUID or a slug) to community ids.

use serde_json::json;

use crate::error::{Error, Result};
use crate::search::SearchClient;

/// Resolves each given id or slug to a community id; an unknown one is an error (before
/// anything is written). Returns the ids in the order given, without duplicates.
pub async fn resolve(client: &SearchClient, given: &[String]) -> Result<Vec<String>> {
    if given.is_empty() {
        return Ok(Vec::new());
    }
    let index = client.index("communities");
    if !client.exists(&index).await? {
        return Err(Error::Data(format!(
            "the communities index {index} does not exist, so {:?} cannot be resolved",
            given[0]
        )));
    }
    let body = json!({
        "size": given.len() * 2,
        "query": {"bool": {"should": [
            {"terms": {"id": given}},
            {"terms": {"slug": given}},
        ]}},
        "_source": ["id", "slug"],
    });
    let hits = client.search_hits(&index, &body).await?;
    let mut out: Vec<String> = Vec::new();
    for g in given {
        let found = hits.iter().find(|h| {
            let s = &h["_source"];
            s["id"].as_str() == Some(g.as_str())
                || s["slug"].as_str() == Some(g.as_str())
                || h["_id"].as_str() == Some(g.as_str())
        });
        match found {
            Some(h) => {
                let id = h["_source"]["id"]
                    .as_str()
                    .or_else(|| h["_id"].as_str())
                    .unwrap_or_default()
                    .to_string();
                if !out.contains(&id) {
                    out.push(id);
                }
            }
            None => {
                return Err(Error::invalid(format!(
                    "unknown community {g:?} (neither a community id nor a slug)"
                )))
            }
        }
    }
    Ok(out)
}

/// The slug of each of `ids` that the communities index knows (`global` and unknown ids
/// are absent from the map).
pub async fn slugs(
    client: &SearchClient,
    ids: &[String],
) -> Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    let index = client.index("communities");
    if ids.is_empty() || !client.exists(&index).await? {
        return Ok(out);
    }
    for chunk in ids.chunks(1000) {
        let body = json!({"size": chunk.len(), "query": {"terms": {"id": chunk}}, "_source": ["id", "slug"]});
        for h in client.search_hits(&index, &body).await? {
            if let (Some(id), Some(slug)) =
                (h["_source"]["id"].as_str(), h["_source"]["slug"].as_str())
            {
                out.insert(id.to_string(), slug.to_string());
            }
        }
    }
    Ok(out)
}

/// Options of `enable-dashboards`: the communities named, or those the filters select
/// from their community events.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardSelection {
    /// Community ids or slugs (when given, the filters are not used).
    pub community_ids: Vec<String>,
    /// Only communities whose first record was added on or before this day.
    pub first_active: Option<String>,
    /// Only communities with a record added or removed on or after this day.
    pub active_since: Option<String>,
    /// Only communities with at least this many community events.
    pub record_threshold: u64,
}

impl crate::options::Validate for DashboardSelection {
    fn validate(&self) -> Result<()> {
        crate::dates::parse_day_opt("--first-active", self.first_active.as_deref())?;
        crate::dates::parse_day_opt("--active-since", self.active_since.as_deref())?;
        Ok(())
    }
}

/// The communities `enable-dashboards` acts on: `[{id, slug, enabled, events, first_event,
/// last_event}]` (`enabled`: the dashboard flag as indexed now). Named ones are resolved
/// (ids or slugs); otherwise every community with community events that passes the filters
/// (`global` is never one).
pub async fn dashboard_candidates(
    client: &SearchClient,
    options: &DashboardSelection,
) -> Result<Vec<serde_json::Value>> {
    use crate::options::Validate;
    options.validate()?;
    let first_active =
        crate::dates::parse_day_opt("--first-active", options.first_active.as_deref())?;
    let active_since =
        crate::dates::parse_day_opt("--active-since", options.active_since.as_deref())?;
    let named = !options.community_ids.is_empty();
    let events = client.index("stats-community-events");
    let activity = if client.exists(&events).await? {
        client
            .day_span_by_term(
                &events,
                "community_id",
                "event_date",
                json!({"match_all": {}}),
            )
            .await?
    } else {
        std::collections::BTreeMap::new()
    };
    let ids: Vec<String> = if named {
        resolve(client, &options.community_ids).await?
    } else {
        activity
            .iter()
            .filter(|(id, span)| {
                id.as_str() != "global"
                    && span.documents >= options.record_threshold
                    && first_active.is_none_or(|d| span.first.is_some_and(|f| f <= d))
                    && active_since.is_none_or(|d| span.last.is_some_and(|l| l >= d))
            })
            .map(|(id, _)| id.clone())
            .collect()
    };
    let index = client.index("communities");
    let mut flags = std::collections::BTreeMap::new();
    let mut slugs = std::collections::BTreeMap::new();
    if !ids.is_empty() && client.exists(&index).await? {
        for chunk in ids.chunks(1000) {
            let body = json!({"size": chunk.len(), "query": {"terms": {"id": chunk}},
                "_source": ["id", "slug", "custom_fields.stats:dashboard_enabled"]});
            for h in client.search_hits(&index, &body).await? {
                let s = &h["_source"];
                if let Some(id) = s["id"].as_str() {
                    slugs.insert(id.to_string(), s["slug"].clone());
                    flags.insert(
                        id.to_string(),
                        s["custom_fields"][crate::invenio_packages::DASHBOARD_FLAG]
                            .as_bool()
                            .unwrap_or(false),
                    );
                }
            }
        }
    }
    Ok(ids
        .into_iter()
        .filter(|id| named || slugs.contains_key(id))
        .map(|id| {
            let span = activity.get(&id).copied().unwrap_or_default();
            json!({"id": id, "slug": slugs.get(&id).cloned().unwrap_or(serde_json::Value::Null),
                "enabled": flags.get(&id).copied().unwrap_or(false),
                "events": span.documents, "first_event": span.first.map(|d| d.to_string()),
                "last_event": span.last.map(|d| d.to_string())})
        })
        .collect())
}
