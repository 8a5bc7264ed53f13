//! Our own index templates (JSON files in `src/templates/`), installed as composable
//! `_index_template`s with `__SEARCH_INDEX_PREFIX__` replaced by the configured prefix.

use opensearch::http::Method;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::search::SearchClient;

/// The placeholder that stands for `SEARCH_INDEX_PREFIX` in template files.
pub const PREFIX_PLACEHOLDER: &str = "__SEARCH_INDEX_PREFIX__";

/// Every template we ship: (template name without prefix, JSON text).
pub const TEMPLATES: &[(&str, &str)] = &[
    ("record-view-v1.0.0", include_str!("templates/record-view-v1.0.0.json")),
    ("file-download-v1.0.0", include_str!("templates/file-download-v1.0.0.json")),
    ("record-view-v2.0.0", include_str!("templates/record-view-v2.0.0.json")),
    ("file-download-v2.0.0", include_str!("templates/file-download-v2.0.0.json")),
    ("stats-community-events-v1.0.0", include_str!("templates/stats-community-events-v1.0.0.json")),
];

/// Templates built from the subcount table (`aggregation::subcounts`), not from files.
pub const GENERATED: &[(&str, fn() -> Value)] = &[
    ("stats-community-usage-delta-v1.0.0", crate::aggregation::subcounts::usage_delta_template),
    ("stats-community-usage-snapshot-v1.0.0", crate::aggregation::subcounts::usage_snapshot_template),
    ("stats-community-records-delta-added-v1.0.0", crate::aggregation::records::records_delta_template),
    ("stats-community-records-snapshot-added-v1.0.0", crate::aggregation::records::records_snapshot_template),
];

/// The names of every template we ship.
pub fn names() -> Vec<&'static str> {
    TEMPLATES.iter().map(|(n, _)| *n).chain(GENERATED.iter().map(|(n, _)| *n)).collect()
}

/// The template `name` with the prefix applied, as JSON.
pub fn template(name: &str, prefix: &str) -> Result<Value> {
    let text = match TEMPLATES.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => text.to_string(),
        None => match GENERATED.iter().find(|(n, _)| *n == name) {
            Some((_, build)) => build().to_string(),
            None => return Err(Error::invalid(format!("unknown index template {name:?}"))),
        },
    };
    let text = text.replace(PREFIX_PLACEHOLDER, prefix);
    serde_json::from_str(&text).map_err(|e| Error::Config(format!("template {name} is not valid JSON: {e}")))
}

/// Installs (or replaces) the named templates.
pub async fn install(client: &SearchClient, names: &[&str]) -> Result<()> {
    for name in names {
        let body = template(name, &client.settings().index_prefix)?;
        let path = format!("_index_template/{}", client.index(name));
        client.json(Method::Put, &path, Some(&body)).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses_and_takes_the_prefix() {
        for name in names() {
            let t = template(name, "kc-").unwrap();
            let text = t.to_string();
            assert!(!text.contains(PREFIX_PLACEHOLDER), "{name}");
            assert!(t["index_patterns"][0].as_str().unwrap().starts_with("kc-"), "{name}");
            assert_eq!(t["template"]["mappings"]["dynamic"], "strict", "{name}");
        }
    }
}
