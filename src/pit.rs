//! Reading a whole index (or a filtered part of it) in a stable order with a point in
//! time and `search_after`: no scroll contexts, no 10,000 cap, resumable from a sort value.

use std::time::{Duration, Instant};

use opensearch::http::Method;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::search::{Reply, SearchClient, Shards};

/// Opens a point in time on every shard of `index` (never a partial one: its reads would
/// silently miss the absent shards), waiting within the retry budget for shards that are
/// not available.
async fn open_pit(client: &SearchClient, index: &str) -> Result<String> {
    let reply = client
        .json_opt(
            Method::Post,
            &format!(
                "{index}/_search/point_in_time?keep_alive={KEEP_ALIVE}&allow_partial_pit_creation=false"
            ),
            None,
        )
        .await?
        .ok_or_else(|| Error::Data(format!("index {index} does not exist")))?;
    Ok(reply["pit_id"]
        .as_str()
        .ok_or_else(|| Error::Search {
            status: 200,
            what: "point in time".into(),
            kind: String::new(),
            reason: "no pit_id in reply".into(),
        })?
        .to_string())
}

/// A point-in-time search that failed because the point in time, or part of it, is gone:
/// its search contexts expired or left with a node. A 400 (a bad query, a text field
/// sorted on) is the request's own fault and is not.
fn pit_lost(e: &Error) -> bool {
    match e {
        Error::Unavailable(_) => true,
        Error::Search {
            status,
            kind,
            reason,
            ..
        } => {
            *status != 400
                && (*status == 404
                    || kind == "search_context_missing_exception"
                    || reason.contains("no node found for id"))
        }
        _ => false,
    }
}

/// A hit of a page read with a point in time: its sort value is where the next page starts.
pub trait PageHit: DeserializeOwned + Send {
    /// The hit's `sort` value.
    fn sort_value(&self) -> Value;
}

impl PageHit for Value {
    fn sort_value(&self) -> Value {
        self["sort"].clone()
    }
}

/// A page of a point-in-time search.
#[derive(Deserialize)]
#[serde(bound(deserialize = "H: PageHit"))]
struct PageReply<H> {
    #[serde(default)]
    pit_id: Option<String>,
    #[serde(default)]
    _shards: Shards,
    #[serde(default)]
    hits: PageHits<H>,
}

#[derive(Deserialize)]
#[serde(bound(deserialize = "H: PageHit"))]
struct PageHits<H> {
    #[serde(default = "Vec::new")]
    hits: Vec<H>,
}

impl<H> Default for PageHits<H> {
    fn default() -> Self {
        Self { hits: Vec::new() }
    }
}

impl<H: PageHit> Reply for PageReply<H> {
    fn shard_failure(&self) -> Option<String> {
        self._shards.failure()
    }
}

/// Closes a point in time (best effort: it expires anyway after its keep-alive).
pub async fn close_pit(client: &SearchClient, id: &str) {
    let body = json!({"pit_id": [id]});
    let _ = client
        .json_opt(Method::Delete, "_search/point_in_time", Some(&body))
        .await;
}

/// A point-in-time reader over `index`.
pub struct PitReader {
    client: SearchClient,
    index: String,
    pit_id: Option<String>,
    query: Value,
    sort: Value,
    page_size: usize,
    source: Value,
    after: Option<Value>,
    slice: Option<(u32, u32)>,
    /// False for a slice reader on a point in time shared with other slices (whoever opened
    /// it closes it); true once a lost point in time was reopened by this reader.
    owns_pit: bool,
    done: bool,
}

const KEEP_ALIVE: &str = "5m";

impl PitReader {
    /// Opens a point in time on `index` (an alias or pattern). `sort` must end with a
    /// unique field so that `search_after` never skips or repeats a document.
    pub async fn open(
        client: &SearchClient,
        index: &str,
        query: Value,
        sort: Value,
        page_size: usize,
        source: Value,
    ) -> Result<Self> {
        let (mut readers, _) =
            Self::open_slices(client, index, vec![query], sort, page_size, source).await?;
        let mut reader = readers.remove(0);
        reader.owns_pit = true;
        Ok(reader)
    }

    /// `queries.len()` readers of one point in time on `index`, reader `i` reading slice `i`
    /// with `queries[i]` (each slice resumes from its own checkpoint). Slices are cut by the
    /// hash of each document's `_seq_no`, not by Lucene's doc ids: a document stays in its
    /// slice when a run resumes on a new point in time (a document rewritten since gets a
    /// new `_seq_no`; callers that resume catch those up by `_seq_no`). Returns the readers
    /// and the point in time, to be closed with [`close_pit`] once every reader is done.
    pub async fn open_slices(
        client: &SearchClient,
        index: &str,
        queries: Vec<Value>,
        sort: Value,
        page_size: usize,
        source: Value,
    ) -> Result<(Vec<Self>, String)> {
        let pit_id = open_pit(client, index).await?;
        let max = queries.len() as u32;
        let readers = queries
            .into_iter()
            .enumerate()
            .map(|(i, query)| Self {
                client: client.clone(),
                index: index.to_string(),
                pit_id: Some(pit_id.clone()),
                query,
                sort: sort.clone(),
                page_size: page_size.max(1),
                source: source.clone(),
                after: None,
                slice: (max > 1).then_some((i as u32, max)),
                owns_pit: false,
                done: false,
            })
            .collect();
        Ok((readers, pit_id))
    }

    /// Starts after this sort value (a checkpoint).
    pub fn resume_after(mut self, after: Option<Value>) -> Self {
        self.after = after;
        self
    }

    /// The sort value of the last hit returned (the checkpoint to resume from).
    pub fn position(&self) -> Option<&Value> {
        self.after.as_ref()
    }

    /// The next page of hits (`_id`, `_source`, `sort`), or `None` at the end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>> {
        self.next_page_of::<Value>().await
    }

    /// [`Self::next_page`] with hits of type `H` (e.g. sources kept as raw text).
    pub async fn next_page_of<H: PageHit>(&mut self) -> Result<Option<Vec<H>>> {
        if self.done {
            return Ok(None);
        }
        let pit_id = self.pit_id.clone().expect("open");
        let mut body = json!({
            "size": self.page_size,
            "query": self.query,
            "sort": self.sort,
            "pit": {"id": pit_id, "keep_alive": KEEP_ALIVE},
            "_source": self.source,
            "track_total_hits": false,
        });
        if let Some(after) = &self.after {
            body["search_after"] = after.clone();
        }
        if let Some((id, max)) = self.slice {
            body["slice"] = json!({"id": id, "max": max, "field": "_seq_no"});
        }
        let started = Instant::now();
        let budget = Duration::from_secs_f64(self.client.settings().retry_seconds.max(0.0));
        let mut reply = loop {
            let failure = match self
                .client
                .json_once_as::<PageReply<H>>(Method::Post, "_search", Some(&body))
                .await
            {
                Ok(Some(r)) => break r,
                Ok(None) => "the point in time is gone (404)".to_string(),
                Err(e) if pit_lost(&e) => e.to_string(),
                Err(e) => return Err(e),
            };
            // A cluster restart, a node that left (its shards' search contexts went with
            // it) or an expired keep-alive: open a new point in time, once the shards are
            // available again, and go on from the same search_after position.
            if started.elapsed() >= budget || self.client.cancel_token().is_cancelled() {
                return Err(Error::Unavailable(format!(
                    "point in time on {}: {failure}",
                    self.index
                )));
            }
            log::warn!(
                "point in time on {} was lost ({failure}); reopening it and continuing",
                self.index
            );
            if !self
                .client
                .cancel_token()
                .sleep(Duration::from_millis(500))
                .await
            {
                return Err(Error::Unavailable(failure));
            }
            let new_id = open_pit(&self.client, &self.index).await?;
            if self.owns_pit {
                if let Some(old) = self.pit_id.take() {
                    close_pit(&self.client, &old).await;
                }
            }
            body["pit"]["id"] = json!(new_id);
            self.pit_id = Some(new_id);
            self.owns_pit = true;
        };
        if let Some(new_id) = reply.pit_id.take() {
            self.pit_id = Some(new_id);
        }
        let hits = reply.hits.hits;
        if hits.len() < self.page_size {
            self.done = true;
        }
        if let Some(last) = hits.last() {
            self.after = Some(last.sort_value());
        }
        if hits.is_empty() {
            return Ok(None);
        }
        Ok(Some(hits))
    }

    /// Closes the point in time (if this reader opened it). A reader dropped without
    /// closing leaves its point in time to expire after its keep-alive (5 minutes).
    pub async fn close(mut self) -> Result<()> {
        if let Some(id) = self.pit_id.take() {
            if self.owns_pit {
                close_pit(&self.client, &id).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_answered_by_only_some_shards_is_not_used() {
        let whole: PageReply<Value> = serde_json::from_value(json!({
            "pit_id": "p2", "_shards": {"total": 2, "failed": 0},
            "hits": {"hits": [{"_id": "a", "sort": [1]}]},
        }))
        .unwrap();
        assert_eq!(whole.shard_failure(), None);
        assert_eq!(whole.pit_id.as_deref(), Some("p2"));
        assert_eq!(whole.hits.hits[0].sort_value(), json!([1]));
        let partial: PageReply<Value> = serde_json::from_value(json!({
            "_shards": {"total": 2, "failed": 1, "failures": [{"reason": {"reason": "node left"}}]},
            "hits": {"hits": []},
        }))
        .unwrap();
        assert!(partial
            .shard_failure()
            .unwrap()
            .contains("1 of 2 shards did not answer (node left)"));
        // A reply without hits reads as an empty page.
        let empty: PageReply<Value> = serde_json::from_value(json!({})).unwrap();
        assert!(empty.hits.hits.is_empty() && empty.shard_failure().is_none());
    }
}
