//! Late writes and the live month.
//!
//! *Catch-up.* The copy reads the source in timestamp order from a point in time, but
//! invenio-stats indexes queued events up to an hour late, with their own (older)
//! timestamps: a timestamp checkpoint alone would miss them. Every write to a shard gets the
//! next `_seq_no`, so the copy records, per shard, the highest `_seq_no` its point in time
//! covers (the *watermark*); afterwards everything above the watermark is copied, whatever
//! its timestamp.
//!
//! *Switchover of the live month.* invenio-stats writes to the concrete legacy name
//! (`events-stats-record-view-YYYY-MM`), so the month still receiving events is switched by
//! making that name an alias of the target, without a moment in which a write is lost:
//! 1. a one-processor ingest pipeline (`set _index`) becomes the source's
//!    `index.default_pipeline`: from then on every write to the legacy name lands in the
//!    target (with its own `_id`), and the source no longer changes;
//! 2. once the source's sequence numbers stand still, it is write-blocked and the writes
//!    since the watermark are caught up;
//! 3. the target is verified (it holds at least the source's documents; a sample compared
//!    field by field);
//! 4. without `--delete-old-indices` the source is cloned to `<source>-backup` (write-blocked,
//!    out of every alias);
//! 5. one `_aliases` request removes the source index, adds the target to the read alias,
//!    and makes the legacy name an alias of the target (its write index).
//!
//! If anything fails between 1 and 5 the reroute stays in place (writes are kept in the
//! target), the month is left `switching`, and the next run finishes the switchover.

use opensearch::http::Method;
use serde_json::{json, Value};

use super::documents::{enrich_page, verify_sample, SourceHit};
use super::month::MonthRun;
use super::state::{self, MonthRecord, MonthState};
use super::MonthPlan;
use crate::bulk::BulkPipeline;
use crate::enrich::RecordCache;
use crate::error::{Error, Result};
use crate::search::SearchClient;

/// Per shard (by shard number) of `index`, the primary's highest `_seq_no`. A shard
/// without a started primary (its node left the cluster) is waited for, within the job's
/// retry budget.
pub async fn shard_seq_nos(client: &SearchClient, index: &str) -> Result<Vec<i64>> {
    client
        .until_available(|| shard_seq_nos_once(client, index))
        .await
}

async fn shard_seq_nos_once(client: &SearchClient, index: &str) -> Result<Vec<i64>> {
    let reply = client
        .json(
            Method::Get,
            &format!("{index}/_stats/docs?level=shards"),
            None,
        )
        .await?;
    let mut out: Vec<i64> = Vec::new();
    let shards = reply["indices"]
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|i| i["shards"].as_object())
        .ok_or_else(|| {
            Error::Unavailable(format!(
                "no shard statistics for {index} (a node holding it is not available)"
            ))
        })?;
    for (number, copies) in shards {
        let n: usize = number
            .parse()
            .map_err(|_| Error::Data(format!("shard number {number:?} of {index}")))?;
        let primary = copies
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["routing"]["primary"].as_bool() == Some(true));
        let Some(max) = primary.and_then(|c| c["seq_no"]["max_seq_no"].as_i64()) else {
            return Err(Error::Unavailable(format!(
                "shard {n} of {index} has no started primary (its node is not available)"
            )));
        };
        if out.len() <= n {
            out.resize(n + 1, -1);
        }
        out[n] = max;
    }
    Ok(out)
}

/// Records the watermark before the copy's point in time opens: the source is refreshed
/// after the sequence numbers are read, so every write at or below them is visible to it.
pub async fn mark(client: &SearchClient, source: &str) -> Result<Vec<i64>> {
    let marks = shard_seq_nos(client, source).await?;
    client.refresh(source).await?;
    Ok(marks)
}

/// Where [`copy_seq_range`] writes the enriched documents.
#[derive(Clone, Copy, Debug)]
pub enum Destination<'a> {
    /// Into this index (the month's target).
    Index(&'a str),
    /// Back into the concrete index each document was read from.
    SameIndex,
}

/// Copies (enriched) every document of `index` written after `from` up to `to` (per shard
/// `_seq_no`s), shard by shard in `_seq_no` order, to `destination`. `filter` narrows what
/// is read; `skip` drops a read document (it is not written). Returns the documents written.
#[allow(clippy::too_many_arguments)]
pub async fn copy_seq_range(
    client: &SearchClient,
    index: &str,
    destination: Destination<'_>,
    from: &[i64],
    to: &[i64],
    filter: Option<&Value>,
    skip: impl Fn(&Value) -> bool,
    batch_size: usize,
    cache: &mut RecordCache,
    pipeline: &mut BulkPipeline,
    records_missing: &mut u64,
) -> Result<u64> {
    if from.len() != to.len() {
        return Err(Error::Data(format!(
            "{index}: the shard count changed during the run"
        )));
    }
    client.refresh(index).await?;
    let mut copied = 0u64;
    for (shard, (&low, &high)) in from.iter().zip(to).enumerate() {
        let mut after = low;
        while after < high {
            let mut query =
                json!({"bool": {"filter": [{"range": {"_seq_no": {"gt": after, "lte": high}}}]}});
            if let Some(f) = filter {
                query["bool"]["filter"]
                    .as_array_mut()
                    .expect("array")
                    .push(f.clone());
            }
            let body = json!({"size": batch_size, "seq_no_primary_term": true, "sort": [{"_seq_no": "asc"}], "query": query});
            let path = format!("{index}/_search?preference=_shards:{shard}");
            let reply = client.json(Method::Post, &path, Some(&body)).await?;
            let mut page: Vec<Value> = reply["hits"]["hits"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let Some(last) = page.last().and_then(|h| h["_seq_no"].as_i64()) else {
                break;
            };
            page.retain(|h| !skip(h));
            let page = page
                .iter()
                .map(SourceHit::from_value)
                .collect::<Result<Vec<_>>>()?;
            for ((id, doc), hit) in enrich_page(client, cache, &page, records_missing)
                .await?
                .into_iter()
                .zip(&page)
            {
                let target = match destination {
                    Destination::Index(name) => name,
                    Destination::SameIndex => hit.index.as_deref().unwrap_or(index),
                };
                pipeline.add_raw(target, &id, doc).await?;
            }
            pipeline.drain().await?;
            let totals = pipeline.totals();
            if totals.failed > 0 {
                return Err(Error::Data(format!(
                    "{index}: {} documents were rejected: {}",
                    totals.failed,
                    totals.failure_reasons.join("; ")
                )));
            }
            copied += page.len() as u64;
            after = last;
        }
    }
    Ok(copied)
}

impl MonthRun<'_> {
    /// Copies (enriched) every source document written after `from` up to `to` (per shard
    /// `_seq_no`s) to the month's target. Returns the number of documents written.
    pub(crate) async fn catch_up(
        &mut self,
        from: &[i64],
        to: &[i64],
        pipeline: &mut BulkPipeline,
    ) -> Result<u64> {
        let (client, plan) = (self.client, self.plan);
        let dest = Destination::Index(&plan.target);
        let batch = self.options.batch_size;
        let copied = copy_seq_range(
            client,
            &plan.source,
            dest,
            from,
            to,
            None,
            |_| false,
            batch,
            self.cache,
            pipeline,
            &mut self.out.records_missing,
        )
        .await
        .map_err(|e| match e {
            Error::Data(reason) => Error::Data(format!(
                "while catching up writes made after the copy started: {reason}"
            )),
            other => other,
        })?;
        if copied > 0 {
            log::info!(
                "{}: caught up {copied} documents written after the copy started",
                plan.source
            );
        }
        Ok(copied)
    }

    /// Copies everything written to the source above the month's watermark (all of it when
    /// there is none) up to now, then moves the watermark and saves the state. Returns the
    /// number of documents copied.
    pub(crate) async fn catch_up_since_watermark(
        &mut self,
        pipeline: &mut BulkPipeline,
    ) -> Result<u64> {
        let now = mark(self.client, &self.plan.source).await?;
        let from = self
            .record
            .seq_watermark
            .clone()
            .unwrap_or_else(|| vec![-1; now.len()]);
        let copied = self.catch_up(&from, &now, pipeline).await?;
        self.record.seq_watermark = Some(now);
        self.save().await?;
        Ok(copied)
    }

    /// Steps 1 to 5 (see the module documentation) for a month whose copy is complete up to
    /// its watermark.
    pub(crate) async fn switch_over(&mut self, pipeline: &mut BulkPipeline) -> Result<()> {
        let (client, plan) = (self.client, self.plan);
        let alias = client.index(&self.event_type.alias());
        self.record.state = MonthState::Switching;
        self.record.error = Some(format!(
            "switching over: new writes to {} go to {}",
            plan.source, plan.target
        ));
        self.save().await?;
        reroute(client, plan).await?;
        let settled = settle_and_block(client, &plan.source).await?;
        let from = self
            .record
            .seq_watermark
            .clone()
            .unwrap_or_else(|| vec![-1; settled.len()]);
        self.catch_up(&from, &settled, pipeline).await?;
        self.record.seq_watermark = Some(settled);
        self.save().await?;

        client.refresh(&plan.target).await?;
        client.refresh(&plan.source).await?;
        let source_count = client.count(&plan.source, None).await?;
        let target_count = client.count(&plan.target, None).await?;
        // The target may hold more: the writes rerouted to it since step 1.
        if target_count < source_count {
            return Err(Error::Data(format!("verification failed: the target holds {target_count} documents, the source {source_count}")));
        }
        let verify = self.options.verify_sample;
        if let Some(reason) = verify_sample(client, &plan.source, &plan.target, verify).await? {
            return Err(Error::Data(format!("verification failed: {reason}")));
        }
        self.record.verified = Some(format!(
            "{source_count} documents (and {} written during the switchover); sample of {} compared field by field",
            target_count - source_count,
            verify.min(source_count as usize)
        ));
        if !self.options.delete_old_indices {
            self.record.backup = Some(backup(client, plan, source_count).await?);
            self.save().await?;
        }
        let actions = json!({"actions": [
            {"remove_index": {"index": plan.source}},
            {"add": {"index": plan.target, "alias": alias}},
            {"add": {"index": plan.target, "alias": plan.source, "is_write_index": true}},
        ]});
        client
            .json(Method::Post, "_aliases", Some(&actions))
            .await?;
        if let Err(e) = client
            .json_opt(
                Method::Delete,
                &format!("_ingest/pipeline/{}", reroute_pipeline(plan)),
                None,
            )
            .await
        {
            log::warn!(
                "could not delete the ingest pipeline {}: {e}",
                reroute_pipeline(plan)
            );
        }
        self.record.source_deleted = true;
        log::info!(
            "{}: switched over; the name is now an alias of {}",
            plan.source,
            plan.target
        );
        Ok(())
    }
}

/// The ingest pipeline that reroutes writes from the legacy name to the target.
pub fn reroute_pipeline(plan: &MonthPlan) -> String {
    format!("{}-reroute", plan.target)
}

/// Name of the write-blocked copy of a live month's source.
pub fn backup_name(plan: &MonthPlan) -> String {
    format!("{}-backup", plan.source)
}

async fn default_pipeline(client: &SearchClient, index: &str) -> Result<Option<String>> {
    let reply = client
        .json(
            Method::Get,
            &format!("{index}/_settings/index.default_pipeline"),
            None,
        )
        .await?;
    Ok(reply
        .as_object()
        .and_then(|o| o.values().next())
        .and_then(|i| i["settings"]["index"]["default_pipeline"].as_str())
        .filter(|p| *p != "_none")
        .map(str::to_string))
}

/// True if the month's switchover took effect: the legacy name is no index any more but
/// an alias of the target.
pub async fn switched(client: &SearchClient, plan: &MonthPlan) -> Result<bool> {
    Ok(client.is_alias(&plan.source).await? && client.in_alias(&plan.target, &plan.source).await?)
}

/// Records a month whose switchover took effect but whose run was stopped before it could
/// say so (killed right after the atomic swap, or after deleting the reroute pipeline):
/// the pipeline is removed if left, the month saved as done.
pub async fn finish_switched(
    client: &SearchClient,
    plan: &MonthPlan,
    event_type: crate::events::EventType,
    record: &mut MonthRecord,
) -> Result<()> {
    client
        .json_opt(
            Method::Delete,
            &format!("_ingest/pipeline/{}", reroute_pipeline(plan)),
            None,
        )
        .await?;
    record.state = MonthState::Done;
    record.source_deleted = true;
    record.error = None;
    if record.verified.is_none() {
        record.verified =
            Some("verified before the switchover, which a later run found done".into());
    }
    state::save(client, event_type, record).await?;
    log::info!(
        "{}: the switchover had taken effect; the month is recorded as done",
        plan.source
    );
    Ok(())
}

/// True if the month's switchover began: the source reroutes its writes to the target.
pub async fn is_rerouted(client: &SearchClient, plan: &MonthPlan) -> Result<bool> {
    if !client.exists(&plan.source).await? || client.is_alias(&plan.source).await? {
        return Ok(false);
    }
    Ok(default_pipeline(client, &plan.source).await?.as_deref()
        == Some(reroute_pipeline(plan).as_str()))
}

/// Step 1: reroutes new writes of the legacy name to the target. Idempotent.
async fn reroute(client: &SearchClient, plan: &MonthPlan) -> Result<()> {
    let name = reroute_pipeline(plan);
    match default_pipeline(client, &plan.source).await? {
        Some(p) if p == name => return Ok(()),
        Some(p) => {
            return Err(Error::Data(format!(
                "{} has its own default ingest pipeline {p:?}; the live-month switchover would replace it (remove it, or migrate this month once it has closed)",
                plan.source
            )))
        }
        None => {}
    }
    let body = json!({
        "description": format!("invenio-community-stats: writes to {} go to {} while the live month is switched over", plan.source, plan.target),
        "processors": [{"set": {"field": "_index", "value": plan.target}}],
    });
    client.json(Method::Put, &format!("_ingest/pipeline/{name}"), Some(&body)).await.map_err(|e| match e {
        // Our one-processor pipeline can only fail to parse for want of the `set` processor.
        Error::Search { kind, reason, .. } if kind == "parse_exception" => Error::Data(format!(
            "the live-month switchover needs the cluster's ingest-common module (the `set` processor): {reason}"
        )),
        other => other,
    })?;
    let settings = json!({"index": {"default_pipeline": name}});
    client
        .json(
            Method::Put,
            &format!("{}/_settings", plan.source),
            Some(&settings),
        )
        .await?;
    log::info!(
        "{}: new writes now go to {} (ingest pipeline {name})",
        plan.source,
        plan.target
    );
    Ok(())
}

/// Step 2a: waits until no write is still landing in the source (a request resolved before
/// the reroute may still be on its way to a shard), then write-blocks it.
async fn settle_and_block(client: &SearchClient, source: &str) -> Result<Vec<i64>> {
    let mut last = shard_seq_nos(client, source).await?;
    for _ in 0..30 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = shard_seq_nos(client, source).await?;
        if now == last {
            break;
        }
        last = now;
    }
    client
        .json(
            Method::Put,
            &format!("{source}/_settings"),
            Some(&json!({"index": {"blocks": {"write": true}}})),
        )
        .await?;
    shard_seq_nos(client, source).await
}

/// Step 4: a write-blocked clone of the source, out of every alias. Reuses a complete one.
async fn backup(client: &SearchClient, plan: &MonthPlan, source_count: u64) -> Result<String> {
    let name = backup_name(plan);
    let complete = client.exists(&name).await? && {
        client.refresh(&name).await?;
        client.count(&name, None).await? == source_count
    };
    if !complete {
        if client.exists(&name).await? {
            client.json(Method::Delete, &name, None).await?;
        }
        client
            .json(
                Method::Post,
                &format!("{}/_clone/{name}?wait_for_active_shards=1", plan.source),
                Some(&json!({})),
            )
            .await?;
        client
            .json(
                Method::Get,
                &format!("_cluster/health/{name}?wait_for_status=yellow&timeout=60s"),
                None,
            )
            .await?;
    }
    // Hardened every time, also a backup an interrupted run cloned and left as it was:
    // the clone inherits the reroute; a backup is read-only and reroutes nothing.
    let settings = json!({"index": {"default_pipeline": "_none", "blocks": {"write": true}}});
    client
        .json(Method::Put, &format!("{name}/_settings"), Some(&settings))
        .await?;
    let aliases = client
        .json_opt(Method::Get, &format!("{name}/_alias"), None)
        .await?;
    let names: Vec<String> = aliases
        .as_ref()
        .and_then(|v| v[&name]["aliases"].as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if !names.is_empty() {
        let actions: Vec<Value> = names
            .iter()
            .map(|a| json!({"remove": {"index": name, "alias": a}}))
            .collect();
        client
            .json(Method::Post, "_aliases", Some(&json!({"actions": actions})))
            .await?;
    }
    client.refresh(&name).await?;
    let copied = client.count(&name, None).await?;
    if copied != source_count {
        return Err(Error::Data(format!(
            "backup {name} holds {copied} documents, the source {source_count}"
        )));
    }
    Ok(name)
}
