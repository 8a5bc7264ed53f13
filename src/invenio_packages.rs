//! InvenioRDM's own index mappings and templates, read from its Python packages (installed in
//! an instance, or extracted from the PyPI wheels by `scripts/fetch-invenio-packages`), and
//! created the way invenio-search creates them. Used where we create InvenioRDM's indices
//! ourselves: the sample data of `load-sample-data`.
//!
//! Nothing of these files is copied into this project: a job that needs them fails with a
//! one-line error naming the file and how to make it available.

use std::path::{Path, PathBuf};

use opensearch::http::Method;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::search::SearchClient;
use crate::templates::PREFIX_PLACEHOLDER;

/// invenio-rdm-records' records mapping (strict; `metadata.locations.features.geometry` is a
/// `geo_shape`).
pub const RECORDS_MAPPING: &str =
    "invenio_rdm_records/records/mappings/os-v2/rdmrecords/records/record-v7.0.0.json";
/// invenio-communities' communities mapping (strict).
pub const COMMUNITIES_MAPPING: &str =
    "invenio_communities/communities/records/mappings/os-v2/communities/communities-v2.0.0.json";
/// invenio-rdm-records' legacy event templates (record views, file downloads).
pub const EVENT_TEMPLATES: [&str; 2] = [
    "invenio_rdm_records/records/stats/templates/events/record_view/os-v2/record-view-v1.0.0.json",
    "invenio_rdm_records/records/stats/templates/events/file_download/os-v2/file-download-v1.0.0.json",
];
/// The communities custom field that opts a community into the dashboards, with the mapping
/// `invenio communities custom-fields init` gives a `BooleanCF`.
pub const DASHBOARD_FLAG: &str = "stats:dashboard_enabled";

/// Where InvenioRDM's package files are looked up: directories laid out like
/// site-packages (`<root>/invenio_rdm_records/...`), searched in order.
#[derive(Clone, Debug, Default)]
pub struct PackageFiles {
    roots: Vec<PathBuf>,
}

impl PackageFiles {
    /// Looks in `roots`, in order.
    pub fn new(roots: impl IntoIterator<Item = impl Into<PathBuf>>) -> Self {
        PackageFiles {
            roots: roots.into_iter().map(Into::into).collect(),
        }
    }

    /// The first root that holds `relative`.
    pub fn find(&self, relative: &str) -> Option<PathBuf> {
        self.roots
            .iter()
            .map(|root| root.join(relative))
            .find(|p| p.is_file())
    }

    /// The JSON file `relative` with `__SEARCH_INDEX_PREFIX__` replaced by `prefix`.
    pub fn read(&self, relative: &str, prefix: &str) -> Result<Value> {
        let package = relative
            .split('/')
            .next()
            .unwrap_or(relative)
            .replace('_', "-");
        let Some(path) = self.find(relative) else {
            return Err(Error::Config(format!(
                "InvenioRDM's {relative} was not found ({} places searched): install {package}, or run \
                 scripts/fetch-invenio-packages and set COMMUNITY_STATS_INVENIO_PACKAGES_DIR to its site directory",
                self.roots.len()
            )));
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        serde_json::from_str(&text.replace(PREFIX_PLACEHOLDER, prefix))
            .map_err(|e| Error::Config(format!("{} is not valid JSON: {e}", path.display())))
    }
}

/// The alias path of a mapping file, as invenio-search derives it: the directories after
/// `os-v2/` and the file stem (`["rdmrecords", "records", "record-v7.0.0"]`).
pub fn alias_parts(relative: &str) -> Vec<String> {
    let tail = relative
        .split_once("/os-v2/")
        .map(|(_, t)| t)
        .unwrap_or(relative);
    let tail = tail.strip_suffix(".json").unwrap_or(tail);
    tail.split('/').map(String::from).collect()
}

/// Creates the index of mapping file `relative` as invenio-search does: the index
/// `{prefix}{parts joined by -}-{suffix}` with one alias per path level
/// (`{prefix}rdmrecords`, `{prefix}rdmrecords-records`, `{prefix}rdmrecords-records-record-v7.0.0`).
/// Returns the index name.
pub async fn create_index(
    client: &SearchClient,
    files: &PackageFiles,
    relative: &str,
    suffix: &str,
) -> Result<String> {
    let prefix = client.settings().index_prefix.clone();
    let mut body = files.read(relative, &prefix)?;
    let parts = alias_parts(relative);
    let mut aliases = serde_json::Map::new();
    for level in 1..=parts.len() {
        aliases.insert(format!("{prefix}{}", parts[..level].join("-")), json!({}));
    }
    body["aliases"] = Value::Object(aliases);
    let index = format!("{prefix}{}-{suffix}", parts.join("-"));
    client.json(Method::Put, &index, Some(&body)).await?;
    Ok(index)
}

/// Installs the legacy (`_template`) index template of file `relative` under
/// `{prefix}{file stem}`, as invenio-search registers invenio-stats' templates.
pub async fn install_legacy_template(
    client: &SearchClient,
    files: &PackageFiles,
    relative: &str,
) -> Result<()> {
    let body = files.read(relative, &client.settings().index_prefix)?;
    let stem = Path::new(relative)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(relative);
    client
        .json(
            Method::Put,
            &format!("_template/{}", client.index(stem)),
            Some(&body),
        )
        .await?;
    Ok(())
}

/// Adds the dashboards' opt-in custom field to the communities mapping, as
/// `invenio communities custom-fields init` does for a `BooleanCF`.
pub async fn add_dashboard_flag(client: &SearchClient) -> Result<()> {
    let body = json!({"properties": {"custom_fields": {"properties": {DASHBOARD_FLAG: {"type": "boolean"}}}}});
    client
        .json(
            Method::Put,
            &format!("{}/_mapping", client.index("communities")),
            Some(&body),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_parts_follow_invenio_search() {
        assert_eq!(
            alias_parts(RECORDS_MAPPING),
            ["rdmrecords", "records", "record-v7.0.0"]
        );
        assert_eq!(
            alias_parts(COMMUNITIES_MAPPING),
            ["communities", "communities-v2.0.0"]
        );
    }

    #[test]
    fn a_missing_file_names_the_package_and_the_remedy() {
        let files = PackageFiles::new(["/nonexistent"]);
        let err = files.read(RECORDS_MAPPING, "x-").unwrap_err().to_string();
        assert!(err.contains("install invenio-rdm-records"), "{err}");
        assert!(err.contains("scripts/fetch-invenio-packages"), "{err}");
        assert!(!err.contains('\n'));
    }
}
