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
