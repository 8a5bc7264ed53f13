//! Connection settings handed over from Python (already normalised there from
//! `SEARCH_HOSTS` / `SEARCH_CLIENT_CONFIG` / `SEARCH_INDEX_PREFIX` or the standalone options).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One OpenSearch node as the operator configured it.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// `http` or `https`.
    pub scheme: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Path prefix behind a proxy, e.g. `/search`; empty for none.
    pub url_prefix: String,
}

impl HostSpec {
    /// The base URL without credentials (safe to print and log).
    pub fn display_url(&self) -> String {
        let prefix = self.url_prefix.trim_matches('/');
        if prefix.is_empty() {
            format!("{}://{}:{}", self.scheme, self.host, self.port)
        } else {
            format!("{}://{}:{}/{}", self.scheme, self.host, self.port, prefix)
        }
    }

    /// The base URL as a parsed [`url::Url`] with a trailing slash, for the HTTP client.
    pub fn url(&self) -> Result<url::Url> {
        if self.scheme != "http" && self.scheme != "https" {
            return Err(Error::Config(format!(
                "search host {}: scheme must be http or https",
                self.display_url()
            )));
        }
        if self.host.is_empty() {
            return Err(Error::Config("search host has an empty host name".into()));
        }
        let text = format!("{}/", self.display_url());
        url::Url::parse(&text)
            .map_err(|e| Error::Config(format!("search host {}: {}", self.display_url(), e)))
    }
}

/// Everything the core needs to talk to the cluster. Credentials are never printed:
/// `Debug` redacts the password.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SearchSettings {
    /// The nodes to use, round robin.
    pub hosts: Vec<HostSpec>,
    /// Basic-auth user name.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// Verify TLS certificates.
    pub verify_certs: bool,
    /// A PEM file with the CA certificate(s) to trust.
    pub ca_certs: Option<PathBuf>,
    /// `SEARCH_INDEX_PREFIX`: prepended to every index, alias and template name.
    pub index_prefix: String,
    /// Per-request timeout in seconds.
    pub timeout_seconds: f64,
    /// How long a job keeps retrying while the cluster is unreachable or overloaded
    /// (seconds; 0 = fail on the first connection error).
    pub retry_seconds: f64,
    /// The largest bulk request body sent (bytes); a request the server or a proxy refuses
    /// as too large (HTTP 413) is split in two and resent.
    pub bulk_max_bytes: u64,
    /// `SEARCH_CLIENT_CONFIG`'s `http_compress` (opensearch-py's default: off): let the
    /// nodes gzip their replies. Off, every request asks for them plain (`Accept-Encoding:
    /// identity`): on a near network, compressing costs the nodes and unpacking costs us
    /// more than the bytes saved. Request bodies are sent plain either way.
    #[serde(default)]
    pub http_compress: bool,
}

impl fmt::Debug for SearchSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchSettings")
            .field(
                "hosts",
                &self
                    .hosts
                    .iter()
                    .map(HostSpec::display_url)
                    .collect::<Vec<_>>(),
            )
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("verify_certs", &self.verify_certs)
            .field("ca_certs", &self.ca_certs)
            .field("index_prefix", &self.index_prefix)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("retry_seconds", &self.retry_seconds)
            .field("bulk_max_bytes", &self.bulk_max_bytes)
            .field("http_compress", &self.http_compress)
            .finish()
    }
}

impl SearchSettings {
    /// Parses the JSON document that the Python side builds.
    pub fn from_json(text: &str) -> Result<Self> {
        let settings: SearchSettings = serde_json::from_str(text)
            .map_err(|e| Error::Config(format!("invalid connection settings: {e}")))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<()> {
        if self.hosts.is_empty() {
            return Err(Error::Config("no search host configured".into()));
        }
        for host in &self.hosts {
            host.url()?;
        }
        // NaN is refused too.
        if self.timeout_seconds.is_nan() || self.timeout_seconds <= 0.0 {
            return Err(Error::Config("search timeout must be positive".into()));
        }
        if self.retry_seconds < 0.0 {
            return Err(Error::Config("retry time must not be negative".into()));
        }
        if self.bulk_max_bytes < 1024 {
            return Err(Error::Config(
                "the largest bulk request must be at least 1024 bytes".into(),
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(Error::Config(
                "a search password is set without a user name".into(),
            ));
        }
        let bad = |c: char| {
            c.is_whitespace()
                || matches!(
                    c,
                    '/' | '\\' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#'
                )
        };
        if self.index_prefix.chars().any(bad) || self.index_prefix.starts_with(['_', '-', '+']) {
            return Err(Error::Config(format!(
                "SEARCH_INDEX_PREFIX {:?} is not a valid index name prefix",
                self.index_prefix
            )));
        }
        Ok(())
    }

    /// `prefix + name`: every index, alias and template name goes through here.
    pub fn index(&self, name: &str) -> String {
        format!("{}{}", self.index_prefix, name)
    }

    /// The configured hosts, for messages.
    pub fn hosts_display(&self) -> String {
        self.hosts
            .iter()
            .map(HostSpec::display_url)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Complete settings as the Python side sends them, with `changes` applied.
    pub(crate) fn settings_json(changes: serde_json::Value) -> String {
        let mut s = serde_json::json!({
            "hosts": [{"scheme": "http", "host": "127.0.0.1", "port": 9200, "url_prefix": ""}],
            "username": null, "password": null, "verify_certs": true, "ca_certs": null,
            "index_prefix": "", "timeout_seconds": 60.0, "retry_seconds": 0.0,
            "bulk_max_bytes": 4194304,
        });
        for (k, v) in changes.as_object().expect("an object") {
            s[k] = v.clone();
        }
        s.to_string()
    }

    #[test]
    fn debug_never_shows_the_password() {
        let s = SearchSettings::from_json(&settings_json(serde_json::json!({
            "hosts": [{"scheme": "https", "host": "os.example", "port": 443, "url_prefix": ""}],
            "username": "admin", "password": "s3cret-pw", "index_prefix": "kc-"})))
        .unwrap();
        let text = format!("{s:?}");
        assert!(!text.contains("s3cret-pw"), "{text}");
        assert!(text.contains("https://os.example:443"));
        assert_eq!(
            s.index("events-stats-record-view"),
            "kc-events-stats-record-view"
        );
    }

    #[test]
    fn rejects_bad_settings() {
        assert!(SearchSettings::from_json(&settings_json(serde_json::json!({}))).is_ok());
        let host = |scheme: &str, host: &str, port: u64| serde_json::json!([{"scheme": scheme, "host": host, "port": port, "url_prefix": ""}]);
        for bad in [
            serde_json::json!({"hosts": []}),
            serde_json::json!({"hosts": host("ftp", "x", 9200)}),
            serde_json::json!({"hosts": host("http", "", 9200)}),
            serde_json::json!({"hosts": host("http", "x", 70000)}),
            serde_json::json!({"index_prefix": "a b"}),
            serde_json::json!({"timeouts": 5}),
        ] {
            assert!(
                SearchSettings::from_json(&settings_json(bad.clone())).is_err(),
                "{bad}"
            );
        }
        assert!(SearchSettings::from_json("not json").is_err());
        assert!(
            SearchSettings::from_json(r#"{"hosts":[{"host":"x"}]}"#).is_err(),
            "every field is given by the caller"
        );
    }

    #[test]
    fn url_prefix_is_kept() {
        let h = HostSpec {
            scheme: "https".into(),
            host: "h".into(),
            port: 443,
            url_prefix: "/search/".into(),
        };
        assert_eq!(h.display_url(), "https://h:443/search");
        assert_eq!(h.url().unwrap().as_str(), "https://h/search/");
    }
}
