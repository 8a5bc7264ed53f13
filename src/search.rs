//! Search access: one client per job, round robin over the configured hosts, JSON requests
//! with bounded retries on connection errors and back-pressure (429/502/503/504), and
//! errors that name the host but never the credentials.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opensearch::auth::Credentials;
use opensearch::cert::{Certificate, CertificateValidation};
use opensearch::http::headers::{HeaderMap, HeaderValue, CONTENT_TYPE};
use opensearch::http::transport::{Connection, ConnectionPool, TransportBuilder};
use opensearch::http::Method;
use opensearch::OpenSearch;
use serde_json::Value;

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::settings::SearchSettings;

/// Round robin over the configured nodes.
#[derive(Debug, Clone)]
struct RoundRobinPool {
    connections: Arc<Vec<Connection>>,
    next: Arc<AtomicUsize>,
}

impl ConnectionPool for RoundRobinPool {
    fn next(&self) -> Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        self.connections[i].clone()
    }
}

/// A connected client plus the settings it was built from.
#[derive(Clone)]
pub struct SearchClient {
    client: OpenSearch,
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
    /// Builds a client; does not connect.
    pub fn new(settings: &SearchSettings, cancel: CancelToken) -> Result<Self> {
        settings.validate()?;
        let connections = settings
            .hosts
            .iter()
            .map(|h| h.url().map(Connection::new))
            .collect::<Result<Vec<_>>>()?;
        let pool = RoundRobinPool {
            connections: Arc::new(connections),
            next: Arc::new(AtomicUsize::new(0)),
        };
        let mut builder = TransportBuilder::new(pool)
            .disable_proxy()
            .timeout(Duration::from_secs_f64(settings.timeout_seconds));
        if let (Some(user), Some(password)) = (&settings.username, &settings.password) {
            builder = builder.auth(Credentials::Basic(user.clone(), password.clone()));
        }
        if !settings.verify_certs {
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(path) = &settings.ca_certs {
            let pem = std::fs::read(path).map_err(|e| {
                Error::Config(format!("cannot read ca_certs {}: {e}", path.display()))
            })?;
            let cert = Certificate::from_pem(&pem).map_err(|e| {
                Error::Config(format!(
                    "ca_certs {} is not a PEM certificate: {e}",
                    path.display()
                ))
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(cert));
        }
        let transport = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build the search client: {e}")))?;
        Ok(Self {
            client: OpenSearch::new(transport),
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

    /// A JSON request; 404 gives `None`.
    pub async fn json_opt(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        let bytes = body.map(|b| serde_json::to_vec(b).expect("JSON value serialises"));
        self.raw(method, path, bytes, "application/json").await
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
        let what = describe(method, path);
        let Some(text) = self.raw_text(method, path, body, content_type).await? else {
            return Ok(None);
        };
        if text.trim().is_empty() {
            return Ok(Some(Value::Null));
        }
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| invalid_reply(what, &e))
    }

    /// [`Self::raw`] without the parse: the text of a 2xx reply, `None` for 404.
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
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            let sent = self
                .client
                .transport()
                .send(
                    method,
                    &format!("/{}", path.trim_start_matches('/')),
                    headers,
                    None::<&()>,
                    body.clone(),
                    None,
                )
                .await;
            let retry_reason = match sent {
                Ok(response) => {
                    let status = response.status_code().as_u16();
                    let text = response.text().await.unwrap_or_default();
                    match status {
                        200..=299 => return Ok(Some(text)),
                        404 => return Ok(None),
                        401 | 403 => {
                            return Err(Error::Auth {
                                host: self.settings.hosts_display(),
                                status,
                            });
                        }
                        429 | 502 | 503 | 504 => format!("HTTP {status}: {}", error_reason(&text)),
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
                    if let Some(status) = e.status_code() {
                        format!("HTTP {}", status.as_u16())
                    } else {
                        connection_reason(&e)
                    }
                }
            };
            if started.elapsed() >= budget || self.cancel.is_cancelled() {
                if retry_reason.starts_with("HTTP ") {
                    return Err(Error::Search {
                        status: 503,
                        what,
                        kind: String::new(),
                        reason: retry_reason,
                    });
                }
                return Err(Error::Connection {
                    host: self.settings.hosts_display(),
                    reason: retry_reason,
                });
            }
            log::warn!(
                "{what} on {}: {retry_reason}; retrying in {:.1}s",
                self.settings.hosts_display(),
                delay.as_secs_f64()
            );
            if !self.cancel.sleep(delay).await {
                return Err(Error::Connection {
                    host: self.settings.hosts_display(),
                    reason: retry_reason,
                });
            }
            delay = (delay * 2).min(Duration::from_secs(10));
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
            .raw(Method::Post, "_msearch", Some(body), "application/x-ndjson")
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

fn connection_reason(e: &opensearch::Error) -> String {
    // Walk the source chain for the most specific text; reqwest puts the URL (never
    // credentials: they travel in a header) in the top-level message.
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    if e.is_timeout() {
        "request timed out".to_string()
    } else {
        reason
    }
}

/// What an OpenSearch error body says: the type of its root cause (the most specific error:
/// for `search_phase_execution_exception: all shards failed` the shard's own error) and a
/// one-line reason that ends with that root cause. A body that is not an OpenSearch error
/// gives an empty type and the body itself (shortened).
pub fn parse_error(text: &str) -> (String, String) {
    let one_line = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let err = &v["error"];
        if let Some(reason) = err["reason"].as_str() {
            let kind = err["type"].as_str().unwrap_or("error");
            let root = err["root_cause"]
                .as_array()
                .and_then(|r| r.first())
                .filter(|r| r["reason"].is_string());
            // A search that failed on its shards names the cause in `failed_shards`.
            let shard = err["failed_shards"]
                .as_array()
                .and_then(|f| f.first())
                .map(|f| &f["reason"])
                .filter(|r| r["reason"].is_string());
            let cause = shard
                .filter(|_| kind == "search_phase_execution_exception")
                .or(root);
            return match cause {
                Some(c)
                    if c["reason"].as_str() != Some(reason) || c["type"].as_str() != Some(kind) =>
                {
                    let ckind = c["type"].as_str().unwrap_or("error");
                    (
                        ckind.to_string(),
                        one_line(&format!(
                            "{kind}: {reason}; caused by {ckind}: {}",
                            c["reason"].as_str().unwrap_or_default()
                        )),
                    )
                }
                _ => (kind.to_string(), one_line(&format!("{kind}: {reason}"))),
            };
        }
        if let Some(s) = err.as_str() {
            return (String::new(), one_line(s));
        }
    }
    let mut t = one_line(text);
    if t.len() > 300 {
        let mut end = 300;
        while !t.is_char_boundary(end) {
            end -= 1;
        }
        t.truncate(end);
        t.push('…');
    }
    (String::new(), t)
}

/// The one-line reason of an OpenSearch error body (see [`parse_error`]).
pub fn error_reason(text: &str) -> String {
    parse_error(text).1
}

/// Sorts a `_bulk` reply's items.
/// Sorts the items of a `_bulk` reply (its text) into written / already present /
/// retryable / failed; a failure is given with its position in the request.
pub fn parse_bulk_text(text: &str) -> std::result::Result<BulkOutcome, serde_json::Error> {
    let reply: BulkReply = serde_json::from_str(text)?;
    let mut out = BulkOutcome::default();
    for (i, item) in reply.items.iter().enumerate() {
        let Some(result) = item
            .index
            .as_ref()
            .or(item.create.as_ref())
            .or(item.update.as_ref())
            .or(item.delete.as_ref())
        else {
            continue;
        };
        match result.status {
            200..=299 => out.written += 1,
            409 => out.already_present += 1,
            429 | 502 | 503 | 504 => out.retryable.push(i),
            _ => {
                out.failed += 1;
                if out.failures.len() < 5 {
                    let e = result.error.as_ref();
                    let field = |name: &str| e.and_then(|e| e[name].as_str()).map(str::to_string);
                    let reason = format!(
                        "{}: {}",
                        field("type").unwrap_or_else(|| format!("status {}", result.status)),
                        field("reason").unwrap_or_else(|| "unknown".into())
                    );
                    out.failures.push((i, reason));
                }
            }
        }
    }
    Ok(out)
}

/// A `_bulk` reply filtered to `errors,items.*.status,items.*.error`.
#[derive(serde::Deserialize)]
struct BulkReply {
    #[serde(default)]
    items: Vec<BulkReplyItem>,
}

/// One item of a `_bulk` reply: its action name holds its result.
#[derive(serde::Deserialize)]
struct BulkReplyItem {
    index: Option<BulkItemResult>,
    create: Option<BulkItemResult>,
    update: Option<BulkItemResult>,
    delete: Option<BulkItemResult>,
}

/// One item of a filtered `_bulk` reply.
#[derive(serde::Deserialize)]
struct BulkItemResult {
    #[serde(default)]
    status: u16,
    #[serde(default)]
    error: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bulk_reply_is_sorted_by_status() {
        let reply = json!({"errors": true, "items": [
            {"index": {"status": 201}},
            {"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}},
            {"index": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}},
            {"index": {"status": 400, "error": {"type": "strict_dynamic_mapping_exception", "reason": "field x"}}},
            {"update": {"status": 200}},
        ]});
        let out = parse_bulk_text(&reply.to_string()).unwrap();
        assert_eq!(out.written, 2);
        assert_eq!(out.already_present, 1);
        assert_eq!(out.retryable, vec![2]);
        assert_eq!(out.failed, 1);
        assert_eq!(
            out.failures,
            vec![(3, "strict_dynamic_mapping_exception: field x".to_string())]
        );
        // A reply without failures is filtered down to `errors` only.
        let out =
            parse_bulk_text(r#"{"errors":false,"items":[{"create":{"status":201}}]}"#).unwrap();
        assert_eq!(out.written, 1);
    }

    #[test]
    fn error_reason_reads_opensearch_errors() {
        let body = r#"{"error":{"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}"#;
        assert_eq!(
            error_reason(body),
            "index_not_found_exception: no such index [x]"
        );
        assert_eq!(error_reason("plain"), "plain");
    }

    #[test]
    fn a_failed_search_names_its_root_cause() {
        let body = r#"{"error":{"root_cause":[{"type":"illegal_argument_exception","reason":"Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default."}],
            "type":"search_phase_execution_exception","reason":"all shards failed","phase":"query","grouped":true,
            "failed_shards":[{"shard":0,"index":"x","node":"n","reason":{"type":"illegal_argument_exception","reason":"Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default."}}]},"status":400}"#;
        let (kind, reason) = parse_error(body);
        assert_eq!(kind, "illegal_argument_exception");
        assert!(reason.starts_with("search_phase_execution_exception: all shards failed; caused by illegal_argument_exception: Text fields are not optimised"), "{reason}");
        let (kind, _) = parse_error(
            r#"{"error":{"root_cause":[{"type":"resource_already_exists_exception","reason":"index [x/1] already exists"}],"type":"resource_already_exists_exception","reason":"index [x/1] already exists"},"status":400}"#,
        );
        assert_eq!(kind, "resource_already_exists_exception");
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
