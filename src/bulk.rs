//! Buffered `_bulk` writes with deterministic `_id`s: items rejected with back-pressure
//! (429/503) are resent with back-off; permanent item errors are counted with their reasons.

use std::time::Duration;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::search::SearchClient;

/// The bulk action used for every item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkOp {
    /// Create or overwrite (idempotent for deterministic content).
    Index,
    /// Create only: an existing `_id` is left alone (counted as already present).
    Create,
}

/// Totals over all flushed batches.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BulkTotals {
    /// Items written.
    pub written: u64,
    /// Create-only items whose `_id` already existed.
    pub already_present: u64,
    /// Items that failed for good.
    pub failed: u64,
    /// The first failure reasons.
    pub failure_reasons: Vec<String>,
    /// Bulk requests sent.
    pub requests: u64,
}

const MAX_BACKPRESSURE_ROUNDS: u32 = 12;

impl BulkTotals {
    /// Adds another batch's totals.
    pub fn merge(&mut self, other: BulkTotals) {
        self.written += other.written;
        self.already_present += other.already_present;
        self.failed += other.failed;
        self.requests += other.requests;
        for r in other.failure_reasons {
            if self.failure_reasons.len() < 5 {
                self.failure_reasons.push(r);
            }
        }
    }
}

/// One encoded bulk item: (action line, document line).
pub type BulkItem = (Vec<u8>, Vec<u8>);

/// Encodes one item.
pub fn encode(op: BulkOp, index: &str, id: &str, doc: &Value) -> BulkItem {
    (
        encode_action(op, index, id),
        serde_json::to_vec(doc).expect("serialises"),
    )
}

/// The action line of one item.
pub fn encode_action(op: BulkOp, index: &str, id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.len() + id.len() + 40);
    out.extend_from_slice(match op {
        BulkOp::Index => b"{\"index\":{\"_index\":",
        BulkOp::Create => b"{\"create\":{\"_index\":",
    });
    push_json_str(&mut out, index);
    out.extend_from_slice(b",\"_id\":");
    push_json_str(&mut out, id);
    out.extend_from_slice(b"}}");
    out
}

/// Appends `text` as a JSON string, byte for byte as serde_json writes it: copied as it is
/// when nothing in it needs escaping (the ids, digests and timestamps events are made of),
/// else escaped by serde_json.
pub fn push_json_str(out: &mut Vec<u8>, text: &str) {
    // Without a short cut, so that the compiler checks many bytes at once.
    let needs_escaping = text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if !needs_escaping {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("a string serialises");
    }
}

/// Appends a JSON array of strings, as serde_json writes it.
pub fn push_json_str_array(out: &mut Vec<u8>, items: &[String]) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_json_str(out, item);
    }
    out.push(b']');
}

/// The `_id` named in an action line (for failure reasons).
fn action_id(action: &[u8]) -> String {
    serde_json::from_slice::<Value>(action)
        .ok()
        .and_then(|v| {
            v.as_object()
                .and_then(|o| o.values().next())
                .and_then(|m| m["_id"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

/// Sends items in one bulk request, resending those rejected with back-pressure (with
/// back-off) until every item is acknowledged: written, already present, or failed for good.
/// A request refused as too large (HTTP 413: the server's `http.max_content_length`, or a
/// proxy's body limit) is split in two halves, each sent the same way.
pub async fn send_items(client: &SearchClient, items: Vec<BulkItem>) -> Result<BulkTotals> {
    let all: Vec<usize> = (0..items.len()).collect();
    send_part(client, &items, all).await
}

fn send_part<'a>(
    client: &'a SearchClient,
    items: &'a [BulkItem],
    part: Vec<usize>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<BulkTotals>> + Send + 'a>> {
    Box::pin(async move {
        match send_acknowledged(client, items, part.clone()).await {
            Err(Error::Search { status: 413, .. }) if part.len() > 1 => {
                let bytes: usize = part
                    .iter()
                    .map(|i| items[*i].0.len() + items[*i].1.len() + 2)
                    .sum();
                log::warn!(
                    "bulk: a request of {} items ({bytes} bytes) is too large for the server or a proxy (HTTP 413): \
                     sending it in two halves (lower COMMUNITY_STATS_BULK_MAX_BYTES to avoid this)",
                    part.len()
                );
                let (first, second) = part.split_at(part.len() / 2);
                let mut totals = send_part(client, items, first.to_vec()).await?;
                totals.merge(send_part(client, items, second.to_vec()).await?);
                Ok(totals)
            }
            Err(Error::Search { status: 413, .. }) => {
                let (action, doc) = &items[part[0]];
                Err(Error::Search {
                    status: 413,
                    what: "bulk".into(),
                    kind: String::new(),
                    reason: format!(
                        "document {} ({} bytes) alone is larger than the server or a proxy accepts",
                        action_id(action),
                        doc.len()
                    ),
                })
            }
            other => other,
        }
    })
}

/// One part's request(s): resends back-pressured items until all are acknowledged.
async fn send_acknowledged(
    client: &SearchClient,
    items: &[BulkItem],
    part: Vec<usize>,
) -> Result<BulkTotals> {
    let mut totals = BulkTotals::default();
    let mut pending = part;
    let mut delay = Duration::from_millis(200);
    for _ in 0..MAX_BACKPRESSURE_ROUNDS {
        let mut body = Vec::with_capacity(
            pending
                .iter()
                .map(|i| items[*i].0.len() + items[*i].1.len() + 2)
                .sum(),
        );
        for i in &pending {
            body.extend_from_slice(&items[*i].0);
            body.push(b'\n');
            body.extend_from_slice(&items[*i].1);
            body.push(b'\n');
        }
        let outcome = client.bulk(body, None).await?;
        totals.merge(BulkTotals {
            written: outcome.written,
            already_present: outcome.already_present,
            failed: outcome.failed,
            failure_reasons: outcome
                .failures
                .iter()
                .map(|(i, reason)| format!("{} {reason}", action_id(&items[pending[*i]].0)))
                .collect(),
            requests: 1,
        });
        if outcome.retryable.is_empty() {
            return Ok(totals);
        }
        pending = outcome.retryable.iter().map(|i| pending[*i]).collect();
        log::warn!(
            "bulk: {} items rejected with back-pressure; resending in {:.1}s",
            pending.len(),
            delay.as_secs_f64()
        );
        // Back-off even when cancelled: acknowledged work must not be dropped silently.
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
    Err(Error::Search {
        status: 429,
        what: "bulk".into(),
        kind: String::new(),
        reason: format!("{} items kept being rejected", pending.len()),
    })
}

/// Bulk writes with up to `max_in_flight` requests under way while the caller goes on
/// producing documents (reads and writes overlap); back-pressure through the bound.
pub struct BulkPipeline {
    client: SearchClient,
    op: BulkOp,
    batch_size: usize,
    max_in_flight: usize,
    /// Buffered items by target index: a request then touches one shard, not dozens
    /// (each shard-level write syncs its translog).
    buffers: std::collections::HashMap<String, (Vec<BulkItem>, usize)>,
    buffered: usize,
    buffered_bytes: usize,
    /// Documents buffered (all indices together) before the fullest buffer is sent.
    buffer_limit: usize,
    tasks: tokio::task::JoinSet<Result<BulkTotals>>,
    totals: BulkTotals,
    /// A request is sent once it holds this many bytes, whatever its document count (big
    /// documents, such as a busy community's daily aggregation, would otherwise pile up):
    /// the connection settings' `bulk_max_bytes`.
    max_bytes: usize,
}

impl BulkPipeline {
    /// A pipeline sending `batch_size` items per request, `max_in_flight` requests at once.
    pub fn new(client: SearchClient, op: BulkOp, batch_size: usize, max_in_flight: usize) -> Self {
        let max_bytes = client.settings().bulk_max_bytes as usize;
        Self {
            client,
            max_bytes,
            op,
            batch_size: batch_size.max(1),
            max_in_flight: max_in_flight.max(1),
            buffers: std::collections::HashMap::new(),
            buffered: 0,
            buffered_bytes: 0,
            buffer_limit: 2 * batch_size.max(1),
            tasks: tokio::task::JoinSet::new(),
            totals: BulkTotals::default(),
        }
    }

    /// Buffers up to `documents` (all target indices together) before sending the fullest
    /// buffer early: writers spreading documents over many indices (monthly event indices)
    /// then still send full, single-index requests.
    pub fn with_buffer_limit(mut self, documents: usize) -> Self {
        self.buffer_limit = documents.max(self.batch_size);
        self
    }

    /// Queues one document.
    pub async fn add(&mut self, index: &str, id: &str, doc: &Value) -> Result<()> {
        let item = encode(self.op, index, id, doc);
        self.push(index, item).await
    }

    /// Queues one document already serialised as JSON (one line, no newline).
    pub async fn add_raw(&mut self, index: &str, id: &str, doc: Vec<u8>) -> Result<()> {
        let item = (encode_action(self.op, index, id), doc);
        self.push(index, item).await
    }

    async fn push(&mut self, index: &str, item: BulkItem) -> Result<()> {
        let size = item.0.len() + item.1.len() + 2;
        let full = {
            if !self.buffers.contains_key(index) {
                self.buffers.insert(
                    index.to_string(),
                    (Vec::with_capacity(self.batch_size.min(4096)), 0),
                );
            }
            let (buffer, bytes) = self.buffers.get_mut(index).expect("inserted above");
            buffer.push(item);
            *bytes += size;
            buffer.len() >= self.batch_size || *bytes >= self.max_bytes
        };
        self.buffered += 1;
        self.buffered_bytes += size;
        if full {
            self.send_index(index).await?;
        } else if self.buffered >= self.buffer_limit || self.buffered_bytes >= 2 * self.max_bytes {
            // Bound memory: send the fullest buffer.
            let largest = self
                .buffers
                .iter()
                .max_by_key(|(_, v)| v.1)
                .map(|(k, _)| k.clone());
            if let Some(index) = largest {
                self.send_index(&index).await?;
            }
        }
        Ok(())
    }

    async fn send_index(&mut self, index: &str) -> Result<()> {
        let (items, bytes) = self.buffers.remove(index).unwrap_or_default();
        self.buffered -= items.len();
        self.buffered_bytes -= bytes;
        self.send(items).await
    }

    async fn send(&mut self, mut items: Vec<BulkItem>) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        // In `_id` order (the action lines sort by index, then id; a stable sort keeps
        // repeated ids in their order): the node's id lookups then walk its terms in order,
        // which indexes a shuffled batch ~10% faster.
        items.sort_by(|a, b| a.0.cmp(&b.0));
        while self.tasks.len() >= self.max_in_flight {
            self.join_one().await?;
        }
        let client = self.client.clone();
        self.tasks
            .spawn(async move { send_items(&client, items).await });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        if let Some(joined) = self.tasks.join_next().await {
            let totals =
                joined.map_err(|e| Error::Internal(format!("bulk task failed: {e}")))??;
            self.totals.merge(totals);
        }
        Ok(())
    }

    /// Sends everything buffered, up to `batch_size` items per request (waiting while
    /// `max_in_flight` requests are under way).
    pub async fn dispatch(&mut self) -> Result<()> {
        let mut all: Vec<(String, (Vec<BulkItem>, usize))> = self.buffers.drain().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        self.buffered = 0;
        self.buffered_bytes = 0;
        let mut batch: Vec<BulkItem> = Vec::new();
        let mut batch_bytes = 0;
        for (_, (items, _)) in all {
            for item in items {
                batch_bytes += item.0.len() + item.1.len() + 2;
                batch.push(item);
                if batch.len() >= self.batch_size || batch_bytes >= self.max_bytes {
                    let full = std::mem::take(&mut batch);
                    batch_bytes = 0;
                    self.send(full).await?;
                }
            }
        }
        self.send(batch).await
    }

    /// Waits until everything queued so far is acknowledged (a checkpoint boundary).
    pub async fn drain(&mut self) -> Result<()> {
        self.dispatch().await?;
        self.wait_in_flight().await
    }

    /// Waits for the requests under way.
    async fn wait_in_flight(&mut self) -> Result<()> {
        while !self.tasks.is_empty() {
            self.join_one().await?;
        }
        Ok(())
    }

    /// Drops the documents buffered but not yet sent and waits for the requests under way:
    /// how a generator stops when cancelled (its re-run makes the dropped documents again,
    /// with the same `_id`s), so that a cancel waits for at most `max_in_flight` requests,
    /// not for a buffer of many batches. Returns how many documents were dropped.
    pub async fn discard_unsent(&mut self) -> Result<usize> {
        let dropped = self.buffered;
        self.buffers.clear();
        self.buffered = 0;
        self.buffered_bytes = 0;
        self.wait_in_flight().await?;
        Ok(dropped)
    }

    /// Totals of the acknowledged requests so far.
    pub fn totals(&self) -> &BulkTotals {
        &self.totals
    }

    /// Drains and returns the totals.
    pub async fn finish(mut self) -> Result<BulkTotals> {
        self.drain().await?;
        Ok(self.totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_what_serde_writes() {
        let odd = "https://example.org/?q=\"quoted\"\\back\nline\u{1}\u{7f}é中";
        for text in ["", "plain-id_1", odd] {
            let mut ours = Vec::new();
            push_json_str(&mut ours, text);
            assert_eq!(ours, serde_json::to_vec(text).unwrap());
        }
        let mut ours = Vec::new();
        push_json_str_array(&mut ours, &["a".into(), odd.into(), String::new()]);
        assert_eq!(ours, serde_json::to_vec(&["a", odd, ""]).unwrap());
        let mut empty = Vec::new();
        push_json_str_array(&mut empty, &[]);
        assert_eq!(empty, b"[]");
        let action = encode_action(BulkOp::Create, "ev-2024-01", "id\"1");
        assert_eq!(
            serde_json::from_slice::<Value>(&action).unwrap(),
            serde_json::json!({"create": {"_index": "ev-2024-01", "_id": "id\"1"}})
        );
    }
}
