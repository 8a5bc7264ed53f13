//! What OpenSearch (or whatever answered in its place) replied: error bodies read into a
//! type and a one-line reason, transient and permanent failures told apart, and `_bulk`
//! replies sorted by item status.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::BulkOutcome;

/// An error body that says shards or nodes are not available now (a node left the
/// cluster, a shard is being recovered): transient. A search that failed on its shards for
/// another reason (a bad query) is not.
pub(super) fn shards_unavailable(text: &str) -> bool {
    const TRANSIENT: [&str; 6] = [
        "no_shard_available_action_exception",
        "node_not_connected_exception",
        "node_disconnected_exception",
        "node_closed_exception",
        "unavailable_shards_exception",
        "shard_not_found_exception",
    ];
    let (kind, _) = parse_error(text);
    TRANSIENT.contains(&kind.as_str())
        // "all shards failed" with no shard failure to name: none of them was reachable.
        || (kind == "search_phase_execution_exception" && text.contains("all shards failed"))
}

/// A TLS failure that no retry can fix (the certificate, the host name, TLS against a
/// plain HTTP port), said as the operator can act on it; `None` for anything else.
pub(super) fn permanent_tls_failure(e: &opensearch::Error) -> Option<String> {
    let mut chain = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        chain.push_str(" | ");
        chain.push_str(&s.to_string());
        source = s.source();
    }
    let reason = if chain.contains("UnknownIssuer") || chain.contains("unknown issuer") {
        "the server's TLS certificate is not signed by a CA this client trusts (give the CA with \
         SEARCH_CLIENT_CONFIG's ca_certs or --ca-certs)"
    } else if chain.contains("certificate")
        && (chain.contains("Expired") || chain.contains("expired"))
    {
        "the server's TLS certificate has expired (or is not valid yet)"
    } else if chain.contains("NotValidForName") || chain.contains("not valid for name") {
        "the server's TLS certificate is not valid for this host name"
    } else if chain.contains("InvalidContentType")
        || chain.contains("corrupt message")
        || chain.contains("wrong version number")
    {
        "the server does not speak TLS on this port (use http:// for a plain port)"
    } else if chain.contains("invalid peer certificate") || chain.contains("HandshakeFailure") {
        "the TLS handshake failed on the server's certificate"
    } else {
        return None;
    };
    Some(reason.to_string())
}

pub(super) fn connection_reason(e: &opensearch::Error) -> String {
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
                _ if reason.trim().is_empty() => {
                    // No reason (a search that no shard could answer): name what caused it,
                    // if the body says, rather than end on an empty colon.
                    let caused = &err["caused_by"];
                    let why = match (caused["type"].as_str(), caused["reason"].as_str()) {
                        (Some(t), Some(r)) if !r.trim().is_empty() => format!("caused by {t}: {r}"),
                        _ => "no reason given".to_string(),
                    };
                    (kind.to_string(), one_line(&format!("{kind} ({why})")))
                }
                _ => (kind.to_string(), one_line(&format!("{kind}: {reason}"))),
            };
        }
        if let Some(s) = err.as_str() {
            return (String::new(), one_line(s));
        }
    }
    if text.trim().is_empty() {
        return (String::new(), "(an empty reply)".into());
    }
    if let Some(title) = html_title(text) {
        return (
            String::new(),
            format!("{title} (an HTML page: a proxy answered, not OpenSearch)"),
        );
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

/// The title of an HTML error page (a proxy's: nginx, Apache, a load balancer), or its
/// first heading; `None` for anything that is not HTML.
pub(super) fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let head = lower.trim_start();
    if !(head.starts_with("<!doctype html") || head.starts_with("<html") || lower.contains("<body"))
    {
        return None;
    }
    let inner = |tag: &str| {
        let open = lower.find(&format!("<{tag}"))?;
        let start = open + lower[open..].find('>')? + 1;
        let end = start + lower[start..].find(&format!("</{tag}>"))?;
        let t = text[start..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        (!t.is_empty()).then_some(t)
    };
    Some(
        inner("title")
            .or_else(|| inner("h1"))
            .unwrap_or_else(|| "an error page".into()),
    )
}

/// The one-line reason of an OpenSearch error body (see [`parse_error`]).
pub fn error_reason(text: &str) -> String {
    parse_error(text).1
}

/// Sorts a `_bulk` reply's items.
/// Sorts the items of a `_bulk` reply (its text) into written / already present /
/// retryable / failed; a failure is given with its position in the request.
pub fn parse_bulk_text(text: &str) -> std::result::Result<BulkOutcome, serde_json::Error> {
    // Most replies say `"errors": false`: every item was written, and counting them is
    // enough (reading each item's status was a twentieth of a generator's CPU).
    let summary: BulkSummary = serde_json::from_str(text)?;
    if !summary.errors {
        return Ok(BulkOutcome {
            written: summary.items.0,
            ..BulkOutcome::default()
        });
    }
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

/// A `_bulk` reply's `errors` flag (taken as true when absent) and its items, counted.
#[derive(serde::Deserialize)]
struct BulkSummary {
    #[serde(default = "absent_errors")]
    errors: bool,
    #[serde(default)]
    items: ItemCount,
}

fn absent_errors() -> bool {
    true
}

/// How many elements an array has (the elements are skipped, not parsed).
#[derive(Default)]
struct ItemCount(u64);

impl<'de> serde::Deserialize<'de> for ItemCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Count;
        impl<'de> serde::de::Visitor<'de> for Count {
            type Value = ItemCount;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<ItemCount, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(ItemCount(n))
            }
        }
        d.deserialize_seq(Count)
    }
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

/// Why a search's reply is incomplete: shards that failed (in the reply or, for
/// `_msearch`, in any of its replies), named with the first failure's reason.
pub(super) fn shard_failure(reply: &Value) -> Option<String> {
    let one = |r: &Value| -> Option<String> { Shards::deserialize(&r["_shards"]).ok()?.failure() };
    match reply["responses"].as_array() {
        Some(responses) => responses.iter().find_map(one),
        None => one(reply),
    }
}

/// A reply's `_shards`: how many shards answered.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Shards {
    #[serde(default)]
    total: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    failures: Vec<Value>,
}

impl Shards {
    /// What went wrong when some shards did not answer (`None` when all did).
    pub(crate) fn failure(&self) -> Option<String> {
        if self.failed == 0 {
            return None;
        }
        let reason = self
            .failures
            .first()
            .and_then(|f| f["reason"]["reason"].as_str())
            .unwrap_or("no reason given");
        Some(format!(
            "{} of {} shards did not answer ({reason}); a node is not available",
            self.failed, self.total
        ))
    }
}

/// A reply the client parses: a JSON tree, or a typed reply that says whether every shard
/// answered.
pub(crate) trait Reply: DeserializeOwned {
    /// What an empty body reads as (`None`: an empty body is not this reply).
    fn empty() -> Option<Self> {
        None
    }
    /// Why the reply of a read is incomplete, when some shards did not answer.
    fn shard_failure(&self) -> Option<String>;
}

impl Reply for Value {
    fn empty() -> Option<Self> {
        Some(Value::Null)
    }
    fn shard_failure(&self) -> Option<String> {
        shard_failure(self)
    }
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
        // `"errors": false`: the items are counted, not read.
        let out = parse_bulk_text(
            r#"{"errors":false,"items":[{"index":{"status":201}},{"index":{"status":200}},{"index":{}}]}"#,
        )
        .unwrap();
        assert_eq!((out.written, out.failed, out.retryable.len()), (3, 0, 0));
        // Without the flag, each item is read.
        let mut unflagged = reply.clone();
        unflagged.as_object_mut().unwrap().remove("errors");
        let out = parse_bulk_text(&unflagged.to_string()).unwrap();
        assert_eq!((out.written, out.already_present, out.failed), (2, 1, 1));
        assert!(parse_bulk_text(r#"{"errors":false,"items":{}}"#).is_err());
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
    fn an_error_without_a_reason_says_so() {
        let none = r#"{"error":{"root_cause":[],"type":"search_phase_execution_exception","reason":"","phase":"query","grouped":true,"failed_shards":[]},"status":503}"#;
        assert_eq!(
            parse_error(none).1,
            "search_phase_execution_exception (no reason given)"
        );
        let caused = r#"{"error":{"root_cause":[],"type":"search_phase_execution_exception","reason":"","caused_by":{"type":"no_shard_available_action_exception","reason":"shard 0 unassigned"}},"status":503}"#;
        assert_eq!(
            parse_error(caused).1,
            "search_phase_execution_exception (caused by no_shard_available_action_exception: shard 0 unassigned)"
        );
    }

    #[test]
    fn unavailable_shards_are_transient_but_a_failing_query_is_not() {
        let none_reachable = r#"{"error":{"root_cause":[],"type":"search_phase_execution_exception","reason":"all shards failed","phase":"query","grouped":true,"failed_shards":[]},"status":500}"#;
        assert!(shards_unavailable(none_reachable));
        let no_copy = r#"{"error":{"root_cause":[{"type":"no_shard_available_action_exception","reason":"No shard available for [get [x][_doc][1]]"}],"type":"no_shard_available_action_exception","reason":"No shard available"},"status":500}"#;
        assert!(shards_unavailable(no_copy));
        let bad_script = r#"{"error":{"root_cause":[{"type":"script_exception","reason":"runtime error"}],"type":"search_phase_execution_exception","reason":"all shards failed","phase":"query","grouped":true,"failed_shards":[{"shard":0,"index":"x","node":"n","reason":{"type":"script_exception","reason":"runtime error"}}]},"status":500}"#;
        assert!(!shards_unavailable(bad_script));
        assert!(!shards_unavailable(
            "<html><title>500 Internal Server Error</title></html>"
        ));
    }
}
