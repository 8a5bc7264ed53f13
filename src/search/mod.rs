//! Search access: one client per job over the configured hosts (round robin; a host that
//! cannot be reached is set aside for a while and the request goes to the next one), JSON
//! requests with bounded retries on connection errors and back-pressure
//! (429/502/503/504), and errors that name the host but never the credentials.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opensearch::auth::Credentials;
use opensearch::cert::{Certificate, CertificateValidation};
use opensearch::http::headers::{HeaderMap, HeaderValue, ACCEPT_ENCODING, CONTENT_TYPE};
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::http::Method;
use opensearch::OpenSearch;
use serde_json::Value;

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::settings::SearchSettings;

mod replies;
use replies::{connection_reason, permanent_tls_failure, shards_unavailable};
pub use replies::{error_reason, parse_bulk_text, parse_error};
pub(crate) use replies::{Reply, Shards};

/// How long a host that could not be reached is set aside (tried only when every other
/// host is set aside too).
const SET_ASIDE: Duration = Duration::from_secs(30);

/// One configured node: its client and, once it could not be reached, until when it is
/// set aside.
struct Node {
    url: String,
    client: OpenSearch,
    set_aside_until: Mutex<Option<Instant>>,
}

/// The nodes, in round robin.
struct Nodes {
    nodes: Vec<Node>,
    next: AtomicUsize,
}

impl Nodes {
    /// The order in which this request tries the nodes: the next ones in round robin that
    /// are not set aside, then those set aside (the soonest back first).
    fn order(&self) -> Vec<usize> {
        let n = self.nodes.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = Instant::now();
        let mut live = Vec::new();
        let mut aside = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            match *self.nodes[i].set_aside_until.lock().expect("node lock") {
                Some(until) if until > now => aside.push((until, i)),
                _ => live.push(i),
            }
        }
        aside.sort();
        live.extend(aside.into_iter().map(|(_, i)| i));
        live
    }

    fn set_aside(&self, i: usize) {
        *self.nodes[i].set_aside_until.lock().expect("node lock") =
            Some(Instant::now() + SET_ASIDE);
    }

    fn back(&self, i: usize) {
        let mut until = self.nodes[i].set_aside_until.lock().expect("node lock");
        if until.is_some() {
            *until = None;
        }
    }
}

/// A connected client plus the settings it was built from.
#[derive(Clone)]
pub struct SearchClient {
    nodes: Arc<Nodes>,
    settings: Arc<SearchSettings>,
    cancel: CancelToken,
}

/// What one bulk request did.
#[derive(Debug, Default, Clone)]
pub struct BulkOutcome {
    /// Items written (created or updated).
    pub written: u64,
    /// Create-only items that already existed (409): nothing written, nothing lost.
    pub already_present: u64,
    /// Items that failed with a retryable status (429/503...): the caller may resend them.
    pub retryable: Vec<usize>,
    /// Items that failed for good, with their reasons (first few kept).
    pub failed: u64,
    /// The first failures: (position in the request, reason).
    pub failures: Vec<(usize, String)>,
}

/// What [`SearchClient::day_span_by_term`] finds for one value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DaySpan {
    /// Documents with the value.
    pub documents: u64,
    /// Their first day.
    pub first: Option<chrono::NaiveDate>,
    /// Their last day.
    pub last: Option<chrono::NaiveDate>,
}

impl SearchClient {
    /// Builds a client (one transport per configured host); does not connect.
    pub fn new(settings: &SearchSettings, cancel: CancelToken) -> Result<Self> {
        settings.validate()?;
        if !settings.verify_certs && settings.hosts.iter().any(|h| h.scheme == "https") {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                log::warn!(
                    "TLS certificates of {} are not verified (verify_certs is off): anyone between here and \
                     the cluster can read and change the traffic, credentials included",
                    settings.hosts_display()
                )
            });
        }
        // The CA's PEM, checked once (a certificate is parsed for each host's transport).
        let ca_pem = match (&settings.ca_certs, settings.verify_certs) {
            (Some(path), true) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::Config(format!("cannot read ca_certs {}: {e}", path.display()))
                })?;
                Certificate::from_pem(&pem).map_err(|e| {
                    Error::Config(format!(
                        "ca_certs {} is not a PEM certificate: {e}",
                        path.display()
                    ))
                })?;
                Some(pem)
            }
            _ => None,
        };
        let mut nodes = Vec::new();
        for host in &settings.hosts {
            let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(host.url()?))
                .disable_proxy()
                .timeout(Duration::from_secs_f64(settings.timeout_seconds));
            if !settings.http_compress {
                builder = builder.header(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            }
            if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
                builder = builder.auth(Credentials::Basic(user.clone(), password.clone()));
            }
            if !settings.verify_certs {
                builder = builder.cert_validation(CertificateValidation::None);
            } else if let Some(pem) = &ca_pem {
                let cert = Certificate::from_pem(pem).map_err(|e| {
                    Error::Config(format!("ca_certs is not a PEM certificate: {e}"))
                })?;
                builder = builder.cert_validation(CertificateValidation::Full(cert));
            }
            let transport = builder
                .build()
                .map_err(|e| Error::Config(format!("cannot build the search client: {e}")))?;
            nodes.push(Node {
                url: host.display_url(),
                client: OpenSearch::new(transport),
                set_aside_until: Mutex::new(None),
            });
        }
        Ok(Self {
            nodes: Arc::new(Nodes {
                nodes,
                next: AtomicUsize::new(0),
            }),
            settings: Arc::new(settings.clone()),
            cancel,
        })
    }

    /// The settings this client uses.
    pub fn settings(&self) -> &SearchSettings {
        &self.settings
    }

    /// The cancellation token shared with the job.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// `prefix + name`.
    pub fn index(&self, name: &str) -> String {
        self.settings.index(name)
    }

    /// A JSON request; 404 is an error.
    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value> {
        match self.json_opt(method, path, body).await? {
            Some(v) => Ok(v),
            None => Err(not_found(describe(method, path))),
        }
    }

    /// A JSON request; 404 gives `None`. A search that some shards could not answer (their
    /// node left the cluster) is repeated while the job's retry budget lasts: its reply
    /// would be incomplete.
    pub async fn json_opt(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        self.until_available(|| self.json_once(method, path, body))
            .await
    }

    /// [`Self::json_opt`] without the repeat: a search that some shards could not answer
    /// is [`Error::Unavailable`] at once (a point-in-time reader reopens its point in time
    /// instead of repeating it).
    pub async fn json_once(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        self.json_once_as(method, path, body).await
    }

    /// [`Self::json_once`] parsed into `T` (see [`Self::raw_as`]).
    pub(crate) async fn json_once_as<T: Reply>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<T>> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON value serialises"));
        self.raw_as(method, path, bytes, "application/json").await
    }

    /// Sends an NDJSON `_bulk` body and sorts its items into written / already present /
    /// retryable / failed. `refresh` is `None` (default), `Some("wait_for")`, ...
    /// The reply is filtered to each item's status and error (`filter_path`) and parsed
    /// into typed items: a full reply of a 2,000-item request parsed into a JSON tree took
    /// a fifth of a generator's CPU.
    pub async fn bulk(&self, ndjson: Vec<u8>, refresh: Option<&str>) -> Result<BulkOutcome> {
        let filter = "filter_path=errors,items.*.status,items.*.error";
        let path = match refresh {
            Some(r) => format!("_bulk?refresh={r}&{filter}"),
            None => format!("_bulk?{filter}"),
        };
        let text = self
            .raw_text(Method::Post, &path, Some(ndjson), "application/x-ndjson")
            .await?
            .ok_or_else(|| not_found("bulk".into()))?;
        parse_bulk_text(&text).map_err(|e| invalid_reply("bulk".into(), &e))
    }

    /// The core request loop: retries connection errors and back-pressure while the
    /// job's retry budget lasts, stops waiting when cancelled.
    pub(crate) async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &'static str,
    ) -> Result<Option<Value>> {
        self.raw_as(method, path, body, content_type).await
    }

    /// [`Self::raw`] parsed into `T`: a JSON tree, or a typed reply (a page of hits whose
    /// sources stay raw text: parsing them into trees was a fifth of a migration's CPU).
    /// A search that some shards could not answer is [`Error::Unavailable`].
    pub(crate) async fn raw_as<T: Reply>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &'static str,
    ) -> Result<Option<T>> {
        let what = describe(method, path);
        let Some(text) = self.raw_text(method, path, body, content_type).await? else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            if let Some(empty) = T::empty() {
                return Ok(Some(empty));
            }
        }
        let reply: T = serde_json::from_str(&text).map_err(|e| invalid_reply(what.clone(), &e))?;
        if is_read(method, path) {
            if let Some(failure) = reply.shard_failure() {
                return Err(Error::Unavailable(format!("{what}: {failure}")));
            }
        }
        Ok(Some(reply))
    }

    /// [`Self::raw`] without the parse: the text of a 2xx reply, `None` for 404. Each round
    /// tries the nodes in turn: one that cannot be reached is set aside (for
    /// [`SET_ASIDE`]) and the request goes to the next at once. When no node answered, or
    /// one answered with back-pressure, the round is repeated after a back-off while the
    /// job's retry budget lasts.
    async fn raw_text(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        content_type: &'static str,
    ) -> Result<Option<String>> {
        let started = Instant::now();
        let budget = Duration::from_secs_f64(self.settings.retry_seconds.max(0.0));
        let mut delay = Duration::from_millis(200);
        let what = describe(method, path);
        let url_path = format!("/{}", path.trim_start_matches('/'));
        // Shared, not copied, by each attempt and by the HTTP client (a `Vec` body was
        // copied twice per attempt: a bulk request is megabytes).
        let body = body.map(bytes::Bytes::from);
        loop {
            let mut unreachable: Vec<(String, String)> = Vec::new();
            let mut pressure: Option<(String, String)> = None;
            for i in self.nodes.order() {
                let node = &self.nodes.nodes[i];
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
                let sent = node
                    .client
                    .transport()
                    .send(method, &url_path, headers, None::<&()>, body.clone(), None)
                    .await;
                match sent {
                    Ok(response) => {
                        self.nodes.back(i);
                        let status = response.status_code().as_u16();
                        let text = response.text().await.unwrap_or_default();
                        match status {
                            200..=299 => return Ok(Some(text)),
                            404 => return Ok(None),
                            401 | 403 => {
                                return Err(Error::Auth {
                                    host: node.url.clone(),
                                    status,
                                })
                            }
                            429 | 502 | 503 | 504 => {
                                pressure = Some((
                                    node.url.clone(),
                                    format!("HTTP {status}: {}", error_reason(&text)),
                                ));
                                break;
                            }
                            500 if shards_unavailable(&text) => {
                                pressure = Some((
                                    node.url.clone(),
                                    format!(
                                        "HTTP {status}: {} (shards unavailable)",
                                        error_reason(&text)
                                    ),
                                ));
                                break;
                            }
                            _ => {
                                let (kind, reason) = parse_error(&text);
                                return Err(Error::Search {
                                    status,
                                    what,
                                    kind,
                                    reason,
                                });
                            }
                        }
                    }
                    Err(e) => {
                        if let Some(reason) = permanent_tls_failure(&e) {
                            return Err(Error::Connection {
                                host: node.url.clone(),
                                reason,
                            });
                        }
                        if let Some(status) = e.status_code() {
                            pressure =
                                Some((node.url.clone(), format!("HTTP {}", status.as_u16())));
                            break;
                        }
                        let reason = connection_reason(&e);
                        self.nodes.set_aside(i);
                        if self.nodes.nodes.len() > 1 {
                            log::warn!(
                                "{what}: {} cannot be reached ({reason}); set aside for {}s, trying the next host",
                                node.url,
                                SET_ASIDE.as_secs()
                            );
                        }
                        unreachable.push((node.url.clone(), reason));
                    }
                }
            }
            let (host, reason) = match &pressure {
                Some(p) => p.clone(),
                None => {
                    let hosts: Vec<&str> = unreachable.iter().map(|(h, _)| h.as_str()).collect();
                    let reason = unreachable
                        .last()
                        .map(|(_, r)| r.clone())
                        .unwrap_or_default();
                    (hosts.join(", "), reason)
                }
            };
            if started.elapsed() >= budget || self.cancel.is_cancelled() {
                return Err(match pressure {
                    Some(_) => Error::Search {
                        status: 503,
                        what,
                        kind: String::new(),
                        reason: format!("{reason} (from {host})"),
                    },
                    None => Error::Connection { host, reason },
                });
            }
            log::warn!(
                "{what} on {host}: {reason}; retrying in {:.1}s",
                delay.as_secs_f64()
            );
            if !self.cancel.sleep(delay).await {
                return Err(Error::Connection { host, reason });
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    /// Runs `attempt` again, with back-off, while it fails with [`Error::Unavailable`] (a
    /// shard or node not available now) and the job's retry budget lasts.
    pub async fn until_available<T, F, Fut>(&self, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = Instant::now();
        let budget = Duration::from_secs_f64(self.settings.retry_seconds.max(0.0));
        let mut delay = Duration::from_millis(500);
        loop {
            match attempt().await {
                Err(Error::Unavailable(reason))
                    if started.elapsed() < budget && !self.cancel.is_cancelled() =>
                {
                    log::warn!("{reason}; retrying in {:.1}s", delay.as_secs_f64());
                    if !self.cancel.sleep(delay).await {
                        return Err(Error::Unavailable(reason));
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                other => return other,
            }
        }
    }

    /// True if `index` is in `alias`.
    pub async fn in_alias(&self, index: &str, alias: &str) -> Result<bool> {
        self.names_something(&format!("{index}/_alias/{alias}"))
            .await
    }

    /// True if `name` is an alias (not a concrete index).
    pub async fn is_alias(&self, name: &str) -> Result<bool> {
        self.names_something(&format!("_alias/{name}")).await
    }

    /// A `GET` of an alias lookup answers with a non-empty object.
    async fn names_something(&self, path: &str) -> Result<bool> {
        let reply = self.json_opt(Method::Get, path, None).await?;
        Ok(reply
            .as_ref()
            .and_then(Value::as_object)
            .is_some_and(|o| !o.is_empty()))
    }

    /// Creates `index` (one of our own: states, bookmarks, locks) with `mappings`, or adds
    /// `mappings` to the existing one (additive: the fields of a newer version). Our own
    /// indices get a replica where the cluster has a second node (`auto_expand_replicas`).
    /// Two runs racing to create it are fine; any other error is returned.
    pub async fn ensure_index(&self, index: &str, mappings: &Value) -> Result<()> {
        if self.exists(index).await? {
            self.json(Method::Put, &format!("{index}/_mapping"), Some(mappings))
                .await?;
            return Ok(());
        }
        let body = serde_json::json!({
            "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
            "mappings": mappings,
        });
        match self.json(Method::Put, index, Some(&body)).await {
            Err(Error::Search { kind, .. }) if kind == "resource_already_exists_exception" => {
                Ok(())
            }
            other => other.map(|_| ()),
        }
    }

    /// Several searches in one `_msearch` request: `(index, body)` each, missing indices
    /// skipped; the replies in order (a search that failed is an error).
    pub async fn msearch(&self, searches: &[(String, Value)]) -> Result<Vec<Value>> {
        let mut body = Vec::new();
        for (index, search) in searches {
            serde_json::to_writer(&mut body, &serde_json::json!({"index": index, "ignore_unavailable": true, "allow_no_indices": true}))
                .expect("JSON");
            body.push(b'\n');
            serde_json::to_writer(&mut body, search).expect("JSON");
            body.push(b'\n');
        }
        let what = "POST /_msearch";
        let reply = self
            .until_available(|| {
                self.raw(
                    Method::Post,
                    "_msearch",
                    Some(body.clone()),
                    "application/x-ndjson",
                )
            })
            .await?
            .ok_or_else(|| not_found(what.into()))?;
        let responses = match reply {
            Value::Object(mut o) => match o.remove("responses") {
                Some(Value::Array(r)) => r,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if responses.len() != searches.len() {
            return Err(Error::Search {
                status: 200,
                what: what.into(),
                kind: String::new(),
                reason: format!("{} replies to {} searches", responses.len(), searches.len()),
            });
        }
        for r in &responses {
            if !r["error"].is_null() {
                let (kind, reason) =
                    parse_error(&serde_json::json!({"error": r["error"]}).to_string());
                return Err(Error::Search {
                    status: r["status"].as_u64().unwrap_or(500) as u16,
                    what: what.into(),
                    kind,
                    reason,
                });
            }
        }
        Ok(responses)
    }

    /// The hits of a search on `index` (each `_id`, `_source`, `sort`), taken from the reply.
    pub async fn search_hits(&self, index: &str, body: &Value) -> Result<Vec<Value>> {
        let mut reply = self
            .json(Method::Post, &format!("{index}/_search"), Some(body))
            .await?;
        Ok(match reply["hits"]["hits"].take() {
            Value::Array(hits) => hits,
            _ => Vec::new(),
        })
    }

    /// Every hit of a sorted search (`body` has `size` and a `sort` that ends on a field
    /// unique per hit), page by page with `search_after`; `each` gets every page.
    pub async fn for_each_page(
        &self,
        index: &str,
        mut body: Value,
        mut each: impl FnMut(&[Value]),
    ) -> Result<()> {
        let size = body["size"].as_u64().unwrap_or(10) as usize;
        loop {
            let hits = self.search_hits(index, &body).await?;
            each(&hits);
            match hits.last() {
                Some(last) if hits.len() >= size => body["search_after"] = last["sort"].clone(),
                _ => return Ok(()),
            }
        }
    }

    /// Per value of the keyword `field` among the documents `query` selects: how many, and
    /// the first and last day of `date_field`. Every value, a page of 1,000 at a time (a
    /// composite aggregation).
    pub async fn day_span_by_term(
        &self,
        index: &str,
        field: &str,
        date_field: &str,
        query: Value,
    ) -> Result<std::collections::BTreeMap<String, DaySpan>> {
        let mut out = std::collections::BTreeMap::new();
        let mut after: Option<Value> = None;
        loop {
            let mut composite =
                serde_json::json!({"size": 1000, "sources": [{"t": {"terms": {"field": field}}}]});
            if let Some(a) = after.take() {
                composite["after"] = a;
            }
            let body = serde_json::json!({"size": 0, "query": query, "aggs": {"by": {
                "composite": composite,
                "aggs": {
                    "first": {"min": {"field": date_field, "format": "yyyy-MM-dd"}},
                    "last": {"max": {"field": date_field, "format": "yyyy-MM-dd"}},
                },
            }}});
            let mut reply = self
                .json(Method::Post, &format!("{index}/_search"), Some(&body))
                .await?;
            let by = reply["aggregations"]["by"].take();
            let buckets = by["buckets"].as_array().cloned().unwrap_or_default();
            for b in &buckets {
                let day = |k: &str| {
                    b[k]["value_as_string"]
                        .as_str()
                        .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                };
                if let Some(term) = b["key"]["t"].as_str() {
                    out.insert(
                        term.to_string(),
                        DaySpan {
                            documents: b["doc_count"].as_u64().unwrap_or(0),
                            first: day("first"),
                            last: day("last"),
                        },
                    );
                }
            }
            match by["after_key"].as_object() {
                Some(key) if !buckets.is_empty() => after = Some(Value::Object(key.clone())),
                _ => return Ok(out),
            }
        }
    }

    /// True if the index or alias exists (one `HEAD` request).
    pub async fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.json_opt(Method::Head, name, None).await?.is_some())
    }

    /// The open indices matching `pattern` (`_cat/indices`), each with its document count.
    pub async fn cat_indices(&self, pattern: &str) -> Result<Vec<(String, u64)>> {
        let path =
            format!("_cat/indices/{pattern}?format=json&h=index,docs.count&expand_wildcards=open");
        let reply = self
            .json_opt(Method::Get, &path, None)
            .await?
            .unwrap_or(Value::Array(vec![]));
        Ok(reply
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| {
                let name = row["index"].as_str()?.to_string();
                let docs = row["docs.count"]
                    .as_str()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0);
                Some((name, docs))
            })
            .collect())
    }

    /// `_count` of an index pattern (0 when nothing matches).
    pub async fn count(&self, index: &str, query: Option<&Value>) -> Result<u64> {
        let body = query.map(|q| serde_json::json!({ "query": q }));
        let path = format!("{index}/_count?ignore_unavailable=true&allow_no_indices=true");
        let reply = self.json_opt(Method::Post, &path, body.as_ref()).await?;
        Ok(reply.and_then(|r| r["count"].as_u64()).unwrap_or(0))
    }

    /// Refreshes an index pattern so that just-written documents are searchable.
    pub async fn refresh(&self, index: &str) -> Result<()> {
        self.json_opt(
            Method::Post,
            &format!("{index}/_refresh?ignore_unavailable=true&allow_no_indices=true"),
            None,
        )
        .await?;
        Ok(())
    }
}

/// A search (`_search`, `_msearch`, `_count`, opening a point in time): a reply from only
/// some of its shards is incomplete. (A write's `_shards.failed` counts replica copies; the
/// write itself succeeded, so writes are not checked.)
fn is_read(method: Method, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    matches!(method, Method::Get | Method::Post)
        && ["_search", "_msearch", "_count", "_search/point_in_time"]
            .iter()
            .any(|end| path.ends_with(end))
}

/// A 404 where the caller needs the thing.
fn not_found(what: String) -> Error {
    Error::Search {
        status: 404,
        what,
        kind: String::new(),
        reason: "not found".into(),
    }
}

/// A 2xx reply whose body is not the JSON expected.
fn invalid_reply(what: String, e: &serde_json::Error) -> Error {
    Error::Search {
        status: 200,
        what,
        kind: String::new(),
        reason: format!("invalid JSON in reply: {e}"),
    }
}

fn describe(method: Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or(path);
    format!("{} /{}", method_name(method), path.trim_start_matches('/'))
}

fn method_name(method: Method) -> &'static str {
    match method {
        Method::Get => "GET",
        Method::Put => "PUT",
        Method::Post => "POST",
        Method::Delete => "DELETE",
        Method::Head => "HEAD",
    }
}

#[cfg(test)]
mod tests {
    use super::replies::shard_failure;
    use super::*;

    #[test]
    fn a_search_answered_by_only_some_shards_is_incomplete_but_a_write_is_not_checked() {
        let partial = serde_json::json!({"_shards": {"total": 2, "successful": 1, "failed": 1,
            "failures": [{"shard": 1, "reason": {"type": "node_not_connected_exception", "reason": "node left"}}]},
            "hits": {"hits": []}});
        assert_eq!(
            shard_failure(&partial).as_deref(),
            Some("1 of 2 shards did not answer (node left); a node is not available")
        );
        let whole = serde_json::json!({"_shards": {"total": 2, "successful": 2, "failed": 0}});
        assert_eq!(shard_failure(&whole), None);
        let msearch = serde_json::json!({"responses": [whole, partial]});
        assert!(shard_failure(&msearch).is_some());
        assert!(is_read(Method::Post, "x/_search?ignore_unavailable=true"));
        assert!(is_read(Method::Post, "x/_count"));
        assert!(is_read(Method::Post, "_msearch"));
        assert!(is_read(
            Method::Post,
            "x/_search/point_in_time?keep_alive=5m"
        ));
        assert!(!is_read(Method::Delete, "_search/point_in_time"));
        // A write whose replica copy failed succeeded on the primary: not a read.
        assert!(!is_read(Method::Put, "x/_doc/1"));
        assert!(!is_read(Method::Post, "_bulk"));
    }

    #[test]
    fn unreachable_host_is_a_connection_error_naming_the_host_not_the_password() {
        let settings =
            SearchSettings::from_json(&crate::settings::tests::settings_json(serde_json::json!({
            "hosts": [{"scheme": "http", "host": "127.0.0.1", "port": 1, "url_prefix": ""}],
            "username": "u", "password": "pw-secret", "timeout_seconds": 2})))
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = SearchClient::new(&settings, CancelToken::new()).unwrap();
        let err = rt.block_on(client.json(Method::Get, "", None)).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Connection { .. }), "{text}");
        assert!(text.contains("http://127.0.0.1:1"), "{text}");
        assert!(!text.contains("pw-secret"), "{text}");
    }
}
