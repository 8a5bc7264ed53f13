//! Our own index templates (JSON files in `src/templates/`), installed as composable
//! `_index_template`s with `__SEARCH_INDEX_PREFIX__` replaced by the configured prefix.

use opensearch::http::Method;
use serde_json::Value;

use crate::aggregation::Aggregator;
use crate::error::{Error, Result};
use crate::search::SearchClient;

/// The placeholder that stands for `SEARCH_INDEX_PREFIX` in template files.
pub const PREFIX_PLACEHOLDER: &str = "__SEARCH_INDEX_PREFIX__";

/// Every template we ship: (template name without prefix, JSON text).
pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "record-view-v1.0.0",
        include_str!("templates/record-view-v1.0.0.json"),
    ),
    (
        "file-download-v1.0.0",
        include_str!("templates/file-download-v1.0.0.json"),
    ),
    (
        "record-view-v2.0.0",
        include_str!("templates/record-view-v2.0.0.json"),
    ),
    (
        "file-download-v2.0.0",
        include_str!("templates/file-download-v2.0.0.json"),
    ),
    (
        "stats-community-events-v1.0.0",
        include_str!("templates/stats-community-events-v1.0.0.json"),
    ),
];

/// The names of every template we ship: the files', then the aggregators' (built from the
/// subcount tables, see [`Aggregator::template`]).
pub fn names() -> Vec<&'static str> {
    TEMPLATES
        .iter()
        .map(|(n, _)| *n)
        .chain(Aggregator::ALL.map(Aggregator::template_name))
        .collect()
}

/// The template `name` with the prefix applied, as JSON.
pub fn template(name: &str, prefix: &str) -> Result<Value> {
    let text = match TEMPLATES.iter().find(|(n, _)| *n == name) {
        Some((_, text)) => text.to_string(),
        None => match Aggregator::ALL
            .into_iter()
            .find(|a| a.template_name() == name)
        {
            Some(aggregator) => aggregator.template().to_string(),
            None => return Err(Error::invalid(format!("unknown index template {name:?}"))),
        },
    };
    let text = text.replace(PREFIX_PLACEHOLDER, prefix);
    serde_json::from_str(&text)
        .map_err(|e| Error::Config(format!("template {name} is not valid JSON: {e}")))
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
            assert!(
                t["index_patterns"][0].as_str().unwrap().starts_with("kc-"),
                "{name}"
            );
            assert_eq!(t["template"]["mappings"]["dynamic"], "strict", "{name}");
        }
    }
}
