//! Buffered `_bulk` writes with deterministic `_id`s: items rejected with back-pressure
//! (429/503) are resent with back-off; permanent item errors are counted with their reasons.

use std::time::Duration;

use serde_json::{json, Value};

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

/// Buffers items and sends them in bulk requests of `batch_size` items.
pub struct BulkWriter {
    client: SearchClient,
    op: BulkOp,
    batch_size: usize,
    items: Vec<(Vec<u8>, Vec<u8>)>,
    totals: BulkTotals,
}

const MAX_BACKPRESSURE_ROUNDS: u32 = 12;

impl BulkWriter {
    /// A writer that flushes every `batch_size` items.
    pub fn new(client: SearchClient, op: BulkOp, batch_size: usize) -> Self {
        Self { client, op, batch_size: batch_size.max(1), items: Vec::new(), totals: BulkTotals::default() }
    }

    /// Adds one document; flushes when the batch is full.
    pub async fn add(&mut self, index: &str, id: &str, doc: &Value) -> Result<()> {
        let action = match self.op {
            BulkOp::Index => json!({"index": {"_index": index, "_id": id}}),
            BulkOp::Create => json!({"create": {"_index": index, "_id": id}}),
        };
        let action = serde_json::to_vec(&action).expect("serialises");
        let doc = serde_json::to_vec(doc).expect("serialises");
        self.items.push((action, doc));
        if self.items.len() >= self.batch_size {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what is buffered; returns once every item is acknowledged (written, present or failed).
    pub async fn flush(&mut self) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        let items = std::mem::take(&mut self.items);
        let mut pending: Vec<usize> = (0..items.len()).collect();
        let mut delay = Duration::from_millis(200);
        for _ in 0..MAX_BACKPRESSURE_ROUNDS {
            let mut body = Vec::with_capacity(pending.iter().map(|i| items[*i].0.len() + items[*i].1.len() + 2).sum());
            for i in &pending {
                body.extend_from_slice(&items[*i].0);
                body.push(b'\n');
                body.extend_from_slice(&items[*i].1);
                body.push(b'\n');
            }
            let outcome = self.client.bulk(body, None).await?;
            self.totals.requests += 1;
            self.totals.written += outcome.written;
            self.totals.already_present += outcome.already_present;
            self.totals.failed += outcome.failed;
            for r in outcome.failure_reasons {
                if self.totals.failure_reasons.len() < 5 {
                    self.totals.failure_reasons.push(r);
                }
            }
            if outcome.retryable.is_empty() {
                return Ok(());
            }
            pending = outcome.retryable.iter().map(|i| pending[*i]).collect();
            log::warn!("bulk: {} items rejected with back-pressure; resending in {:.1}s", pending.len(), delay.as_secs_f64());
            if !self.client.cancel_token().sleep(delay).await && self.client.cancel_token().is_cancelled() {
                // Even when cancelled we must not drop acknowledged work silently: report it.
                return Err(Error::Cancelled(format!("{} bulk items not written", pending.len())));
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
        Err(Error::Search { status: 429, what: "bulk".into(), reason: format!("{} items kept being rejected", pending.len()) })
    }

    /// Flushes and returns the totals.
    pub async fn finish(mut self) -> Result<BulkTotals> {
        self.flush().await?;
        Ok(self.totals)
    }

    /// Totals so far.
    pub fn totals(&self) -> &BulkTotals {
        &self.totals
    }
}
