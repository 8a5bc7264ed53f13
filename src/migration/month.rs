//! One month of one event type: copy (enriched, same `_id`s) from the checkpoint on,
//! verify, switch the read alias atomically, optionally delete the source.
//!
//! Safety rules: the target is kept out of the read alias until its month is verified (no
//! double counting); the checkpoint only moves after a batch is acknowledged; a month is
//! switched only when the source is exhausted *and* the counts and a field-by-field sample
//! agree; the source is deleted only after that, and only on request.

use chrono::Utc;
use opensearch::http::Method;
use serde::Serialize;
use serde_json::{json, Value};

use super::documents::{enrich_page, verify_sample, SourceHit};
use super::live;
use super::state::{self, MonthRecord, MonthState};
use super::{MigrationOptions, MonthPlan};
use crate::bulk::{BulkOp, BulkPipeline};
use crate::dates::utc_seconds;
use crate::enrich::RecordCache;
use crate::error::{Error, Result};
use crate::events::EventType;
use crate::pit::PitReader;
use crate::progress::Progress;
use crate::search::SearchClient;

/// What happened to one month in this run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MonthOutcome {
    /// `view` or `download`.
    pub event_type: String,
    /// `YYYY-MM`.
    pub month: String,
    /// State after this run.
    pub state: MonthState,
    /// Documents in the source.
    pub source_count: u64,
    /// Documents in the target.
    pub target_count: u64,
    /// Documents written in this run.
    pub written: u64,
    /// Batches done in this run.
    pub batches: u64,
    /// Events whose record is not in the records index (kept, without record fields).
    pub records_missing: u64,
    /// The checkpoint after this run.
    pub checkpoint: Option<String>,
    /// True if the read alias now points at the target.
    pub switched: bool,
    /// True if the source index was deleted.
    pub source_deleted: bool,
    /// Why the month stopped or failed.
    pub message: Option<String>,
    /// Seconds spent.
    pub seconds: f64,
}

fn memory_percent() -> f64 {
    let Ok(mut system) = sysinfo::System::new() else {
        return 0.0;
    };
    system.refresh_memory();
    let total = system.total_memory();
    if total == 0 {
        return 0.0;
    }
    system.used_memory() as f64 * 100.0 / total as f64
}

/// Pages written between two checkpoints (their bulk requests overlap).
const PAGES_PER_CHECKPOINT: u64 = 2;

/// A month still receiving events: the current UTC month, or the previous one on the first
/// day of a month (invenio-stats indexes queued events up to ~an hour late).
pub fn is_live(month: &str) -> bool {
    let now = Utc::now();
    let current = now.format("%Y-%m").to_string();
    let previous = (now - chrono::Duration::days(1))
        .format("%Y-%m")
        .to_string();
    month >= current.as_str() || (month == previous && now.format("%d").to_string() == "01")
}

async fn set_refresh(client: &SearchClient, index: &str, interval: &str) -> Result<()> {
    client
        .json(
            Method::Put,
            &format!("{index}/_settings"),
            Some(&json!({"index": {"refresh_interval": interval}})),
        )
        .await?;
    Ok(())
}

/// Creates the target (from the v2 template, not refreshed until the copy ends) and takes it
/// out of the read alias before it holds a single document; on resume, makes sure it is
/// still out. Returns whether it created the target.
async fn prepare_target(client: &SearchClient, target: &str, alias: &str) -> Result<bool> {
    let created = !client.exists(target).await?;
    if created {
        // Refresh off from the start: one settings update (a cluster state change) less per
        // month than turning it off after creating the index.
        let body = json!({"settings": {"index": {"refresh_interval": COPY_REFRESH}}});
        client.json(Method::Put, target, Some(&body)).await?;
    }
    if client.in_alias(target, alias).await? {
        let body = json!({"actions": [{"remove": {"index": target, "alias": alias}}]});
        client.json(Method::Post, "_aliases", Some(&body)).await?;
    }
    Ok(created)
}

/// The target's refresh interval while the copy writes into it (off).
const COPY_REFRESH: &str = "-1";

/// One month of one event type being migrated in this run: what its steps share.
pub(crate) struct MonthRun<'a> {
    pub(crate) client: &'a SearchClient,
    pub(crate) plan: &'a MonthPlan,
    pub(crate) event_type: EventType,
    pub(crate) options: &'a MigrationOptions,
    progress: &'a Progress,
    pub(crate) cache: &'a mut RecordCache,
    /// The month's saved state: checkpoints, `_seq_no` watermark, state, error.
    pub(crate) record: MonthRecord,
    /// What this run reports.
    pub(crate) out: MonthOutcome,
    /// The read alias of the event type.
    alias: String,
    started: std::time::Instant,
}

/// How the copy ended.
enum CopyEnd {
    /// Every document of the source's point in time is in the target.
    Exhausted,
    /// Stopped early (cancel, --max-batches, memory, rejected documents), checkpointed.
    Stopped {
        state: MonthState,
        message: String,
        cancelled: bool,
    },
}

/// Migrates one month. Returns its outcome; a cancel returns `Error::Cancelled` after the
/// checkpoint is saved.
pub async fn migrate(
    client: &SearchClient,
    plan: &MonthPlan,
    event_type: EventType,
    options: &MigrationOptions,
    progress: &Progress,
    cache: &mut RecordCache,
) -> Result<MonthOutcome> {
    MonthRun::load(client, plan, event_type, options, progress, cache)
        .await?
        .run()
        .await
}

impl<'a> MonthRun<'a> {
    /// The month's state (forgotten with `--fresh-start`) and its source's size.
    async fn load(
        client: &'a SearchClient,
        plan: &'a MonthPlan,
        event_type: EventType,
        options: &'a MigrationOptions,
        progress: &'a Progress,
        cache: &'a mut RecordCache,
    ) -> Result<Self> {
        let mut record = if options.fresh_start {
            if !options.dry_run {
                state::reset(client, event_type, &plan.month).await?;
            }
            MonthRecord {
                event_type: plan.event_type.clone(),
                month: plan.month.clone(),
                ..Default::default()
            }
        } else {
            state::load(client, event_type, &plan.month).await?
        };
        let mut out = MonthOutcome {
            event_type: plan.event_type.clone(),
            month: plan.month.clone(),
            ..Default::default()
        };
        out.source_count = client.count(&plan.source, None).await?;
        record.source_count = out.source_count;
        Ok(MonthRun {
            client,
            plan,
            event_type,
            options,
            progress,
            cache,
            record,
            out,
            alias: client.index(&event_type.alias()),
            started: std::time::Instant::now(),
        })
    }

    /// Saves the month's state.
    pub(crate) async fn save(&mut self) -> Result<()> {
        state::save(self.client, self.event_type, &mut self.record).await
    }

    /// The outcome, with the state and message recorded.
    async fn outcome(mut self, state: MonthState, message: Option<String>) -> Result<MonthOutcome> {
        self.out.state = state;
        self.out.message = message;
        self.out.checkpoint = self.record.checkpoint.clone();
        self.out.target_count = self.client.count(&self.plan.target, None).await?;
        self.out.seconds = self.started.elapsed().as_secs_f64();
        Ok(self.out)
    }

    /// The steps, in the order that keeps every event counted once and none lost: the
    /// target out of the read alias; the source's `_seq_no`s marked; the copy from the
    /// checkpoints; then either the switchover (the live month, or `--delete-old-indices`:
    /// writes rerouted, caught up, verified, one atomic `_aliases` swap) or, for a closed
    /// month, the late writes caught up, the copy verified, and the read alias moved.
    async fn run(mut self) -> Result<MonthOutcome> {
        if self.record.state == MonthState::Done {
            return self.rerun_done().await;
        }
        if self.options.dry_run {
            let state = self.record.state;
            return self.outcome(state, None).await;
        }
        let created = prepare_target(self.client, &self.plan.target, &self.alias).await?;
        // A month whose switchover began (writes rerouted to the target) must finish it, live or not.
        let live = is_live(&self.plan.month) || live::is_rerouted(self.client, self.plan).await?;
        if self.record.seq_watermark.is_none() {
            self.record.seq_watermark = Some(live::mark(self.client, &self.plan.source).await?);
            self.save().await?;
        }
        if let CopyEnd::Stopped {
            state,
            message,
            cancelled,
        } = self.copy(created).await?
        {
            self.record.state = state;
            self.record.error = Some(message.clone());
            self.save().await?;
            if cancelled {
                return Err(Error::Cancelled(format!(
                    "{} {}: {message}",
                    self.plan.event_type, self.plan.month
                )));
            }
            return self.outcome(state, Some(message)).await;
        }
        let mut catch = BulkPipeline::new(
            self.client.clone(),
            BulkOp::Index,
            self.options.batch_size,
            2,
        );
        if live || self.options.delete_old_indices {
            // The month still receives events, or its source is to be deleted: reroute,
            // catch up, verify, swap (see `live`). Deleting a closed month's source the same
            // way leaves no moment in which a late write could land in it and go with it.
            return self.switch_over_step(&mut catch).await;
        }
        // Late writes (older timestamps, indexed after the copy started) are copied by `_seq_no`.
        for _ in 0..3 {
            if self.catch_up_since_watermark(&mut catch).await? == 0 {
                break;
            }
        }
        self.out.written += catch.finish().await?.written;
        self.client.refresh(&self.plan.target).await?;
        self.verify_and_switch().await
    }

    /// A month migrated earlier: a kept source (closed month, no --delete-old-indices) that
    /// took writes after its switch has them copied (by `_seq_no`, above the watermark).
    async fn rerun_done(mut self) -> Result<MonthOutcome> {
        if !self.options.dry_run
            && !self.record.source_deleted
            && self.client.exists(&self.plan.source).await?
        {
            self.out.written = self.catch_up_after_switch().await?;
        }
        self.out.switched = true;
        self.progress.advance(self.out.source_count);
        let message = if self.out.written > 0 {
            format!(
                "already migrated; {} events written to the old index since were copied",
                self.out.written
            )
        } else {
            "already migrated".into()
        };
        self.outcome(MonthState::Done, Some(message)).await
    }

    /// Copies the writes a kept source took after its month was switched. A state from
    /// before the watermark existed gets one now (its earlier late writes cannot be told apart).
    async fn catch_up_after_switch(&mut self) -> Result<u64> {
        if self.record.seq_watermark.is_none() {
            self.record.seq_watermark = Some(live::mark(self.client, &self.plan.source).await?);
            self.save().await?;
            return Ok(0);
        }
        let mut pipeline = BulkPipeline::new(
            self.client.clone(),
            BulkOp::Index,
            self.options.batch_size,
            2,
        );
        self.catch_up_since_watermark(&mut pipeline).await?;
        let written = pipeline.finish().await?.written;
        if written > 0 {
            self.client.refresh(&self.plan.target).await?;
            log::info!(
                "{}: {written} events written to it after its switch copied to {}",
                self.plan.source,
                self.plan.target
            );
        }
        Ok(written)
    }

    /// The copy: each point-in-time slice read from its checkpoint in timestamp order,
    /// pages enriched and written while the next ones are read; every few pages, once their
    /// documents are acknowledged, the slices' checkpoints move and the state is saved.
    async fn copy(&mut self, target_created: bool) -> Result<CopyEnd> {
        let (client, plan, options) = (self.client, self.plan, self.options);
        if !target_created {
            set_refresh(client, &plan.target, COPY_REFRESH).await?;
        }
        self.progress
            .set_task(format!("{} {}: copying", plan.event_type, plan.month));
        // The slices are fixed when the month's copy starts: a resume reads with the layout
        // its checkpoints belong to (a checkpoint of an older version is one slice).
        if self.record.slice_checkpoints.is_empty() {
            let slices = if self.record.checkpoint.is_some() {
                1
            } else {
                options.slices.max(1) as usize
            };
            self.record.slice_checkpoints = vec![self.record.checkpoint.clone(); slices];
        }
        let queries: Vec<Value> = self
            .record
            .slice_checkpoints
            .iter()
            .map(|cp| match cp {
                Some(cp) => json!({"range": {"timestamp": {"gte": cp}}}),
                None => json!({"match_all": {}}),
            })
            .collect();
        let slices = queries.len();
        let sort = json!([{"timestamp": "asc"}, {"visitor_id": {"order": "asc", "missing": "_last"}}, {"unique_id": {"order": "asc", "missing": "_last"}}]);
        let (readers, pit_id) = PitReader::open_slices(
            client,
            &plan.source,
            queries,
            sort,
            options.batch_size,
            json!(true),
        )
        .await?;
        // One reader per slice, reading ahead while pages are enriched and written; each
        // slice's pages arrive in its sort order.
        let (page_tx, mut pages) =
            tokio::sync::mpsc::channel::<Result<(usize, Vec<SourceHit>)>>(2 * slices);
        let mut read_ahead = tokio::task::JoinSet::new();
        for (slice, mut reader) in readers.into_iter().enumerate() {
            let page_tx = page_tx.clone();
            read_ahead.spawn(async move {
                loop {
                    let (item, more) = match reader.next_page_of::<SourceHit>().await {
                        Ok(Some(page)) => (Ok((slice, page)), true),
                        Ok(None) => break,
                        Err(e) => (Err(e), false),
                    };
                    if page_tx.send(item).await.is_err() || !more {
                        break;
                    }
                }
                let _ = reader.close().await;
            });
        }
        drop(page_tx);
        let mut pipeline = BulkPipeline::new(client.clone(), BulkOp::Index, options.batch_size, 2);
        // Pages read but not yet checkpointed: their documents are on their way (two bulk
        // requests in flight); the checkpoint moves once all of them are acknowledged.
        let (mut pending_pages, mut pending_docs) = (0u64, 0u64);
        let mut pending_checkpoints: Vec<Option<String>> = vec![None; slices];
        let pages_per_checkpoint = PAGES_PER_CHECKPOINT.max(slices as u64);
        let loop_result: Result<CopyEnd> = async {
            loop {
                let reason = if client.cancel_token().is_cancelled() {
                    Some((MonthState::Interrupted, "cancelled; resumes from the checkpoint".to_string(), true))
                } else if options.max_batches > 0 && self.out.batches + pending_pages >= options.max_batches {
                    Some((MonthState::Interrupted, format!("--max-batches {} reached; resumes from the checkpoint", options.max_batches), false))
                } else {
                    let used = memory_percent();
                    (used > options.max_memory_percent).then(|| {
                        (MonthState::Interrupted, format!("memory use {used:.0}% passed --max-memory-percent {}; resumes from the checkpoint", options.max_memory_percent), false)
                    })
                };
                let page = if reason.is_none() { pages.recv().await.transpose()? } else { None };
                if let Some((slice, page)) = &page {
                    for (id, doc) in enrich_page(client, self.cache, page, &mut self.out.records_missing).await? {
                        pipeline.add_raw(&plan.target, &id, doc).await?;
                    }
                    pipeline.dispatch().await?;
                    pending_pages += 1;
                    pending_docs += page.len() as u64;
                    // Checkpoints are UTC seconds (floored), so that they compare as text
                    // and a resumed `gte` query includes the event they name.
                    if let Some(ts) = page.last().and_then(|h| h.str_field("timestamp")).and_then(|t| utc_seconds(&t)) {
                        pending_checkpoints[*slice] = Some(ts);
                    }
                }
                if pending_pages > 0 && (page.is_none() || pending_pages >= pages_per_checkpoint) {
                    pipeline.drain().await?;
                    let totals = pipeline.totals().clone();
                    if totals.failed > 0 {
                        let message = format!("{} documents were rejected: {}", totals.failed, totals.failure_reasons.join("; "));
                        return Ok(CopyEnd::Stopped { state: MonthState::Failed, message, cancelled: false });
                    }
                    self.out.batches += pending_pages;
                    self.out.written = totals.written;
                    self.record.migrated += pending_docs;
                    for (slice, cp) in pending_checkpoints.iter_mut().enumerate() {
                        if let Some(cp) = cp.take() {
                            self.record.slice_checkpoints[slice] = Some(cp);
                        }
                    }
                    self.record.checkpoint = self.record.slice_checkpoints.iter().flatten().min().cloned();
                    if self.record.state != MonthState::Switching {
                        self.record.state = MonthState::Copying;
                        self.record.error = None;
                    }
                    self.save().await?;
                    self.progress.advance(pending_docs);
                    (pending_pages, pending_docs) = (0, 0);
                }
                if let Some((state, message, cancelled)) = reason {
                    return Ok(CopyEnd::Stopped { state, message, cancelled });
                }
                if page.is_none() {
                    return Ok(CopyEnd::Exhausted);
                }
            }
        }
        .await;
        drop(pages);
        while read_ahead.join_next().await.is_some() {}
        crate::pit::close_pit(client, &pit_id).await;
        let _ = pipeline.finish().await;
        let end = match loop_result {
            Ok(end) => end,
            Err(e) => {
                self.record.state = MonthState::Interrupted;
                self.record.error = Some(e.to_string());
                let _ = self.save().await;
                let _ = set_refresh(client, &plan.target, "5s").await;
                return Err(e);
            }
        };
        set_refresh(client, &plan.target, "5s").await?;
        client.refresh(&plan.target).await?;
        Ok(end)
    }

    /// The live month's (or a deleted source's) switchover, and what it leaves recorded.
    async fn switch_over_step(mut self, catch: &mut BulkPipeline) -> Result<MonthOutcome> {
        self.progress.set_task(format!(
            "{} {}: switching over",
            self.plan.event_type, self.plan.month
        ));
        let switched = self.switch_over(catch).await;
        self.out.written += catch.totals().written;
        self.client.refresh(&self.plan.target).await?;
        match switched {
            Ok(()) => {
                self.record.state = MonthState::Done;
                self.record.error = None;
                self.out.switched = true;
                self.out.source_deleted = true;
                self.out.message = Some(match &self.record.backup {
                    Some(b) => format!("switched over; the legacy name is now an alias of the target; the old index is kept as {b}"),
                    None => "switched over; the legacy name is now an alias of the target; the old index is deleted".into(),
                });
            }
            Err(Error::Cancelled(m)) => {
                self.record.error = Some(format!(
                    "cancelled during the switchover ({m}); run again to finish it"
                ));
                self.save().await?;
                return Err(Error::Cancelled(m));
            }
            Err(e) => {
                let rerouted = live::is_rerouted(self.client, self.plan)
                    .await
                    .unwrap_or(true);
                self.record.state = if rerouted {
                    MonthState::Switching
                } else {
                    MonthState::Failed
                };
                self.record.error = Some(if rerouted {
                    format!("switchover not finished ({e}); new writes go to the target; run again to finish it")
                } else {
                    format!("switchover failed before anything changed: {e}")
                });
                self.out.message = self.record.error.clone();
            }
        }
        self.save().await?;
        let (state, message) = (self.record.state, self.out.message.clone());
        self.outcome(state, message).await
    }

    /// A closed month: the copy verified (equal counts, a sample equal field by field),
    /// then the target added to the read alias and the source removed, in one request.
    async fn verify_and_switch(mut self) -> Result<MonthOutcome> {
        let (client, plan) = (self.client, self.plan);
        self.progress
            .set_task(format!("{} {}: verifying", plan.event_type, plan.month));
        let source_now = client.count(&plan.source, None).await?;
        let target_now = client.count(&plan.target, None).await?;
        let failure = if source_now != target_now {
            Some(format!(
                "counts differ: source {source_now}, target {target_now}"
            ))
        } else {
            verify_sample(
                client,
                &plan.source,
                &plan.target,
                self.options.verify_sample,
            )
            .await?
        };
        if let Some(reason) = failure {
            self.record.state = MonthState::Failed;
            self.record.error = Some(format!(
                "verification failed: {reason}; nothing switched or deleted"
            ));
            self.save().await?;
            let message = self.record.error.clone();
            return self.outcome(MonthState::Failed, message).await;
        }
        let mut actions = vec![json!({"add": {"index": plan.target, "alias": self.alias}})];
        if client.in_alias(&plan.source, &self.alias).await? {
            actions.push(json!({"remove": {"index": plan.source, "alias": self.alias}}));
        }
        client
            .json(Method::Post, "_aliases", Some(&json!({"actions": actions})))
            .await?;
        self.out.switched = true;
        self.record.state = MonthState::Done;
        self.record.error = None;
        self.record.verified = Some(format!(
            "{source_now} documents; sample of {} compared field by field",
            self.options.verify_sample.min(source_now as usize)
        ));
        self.save().await?;
        self.outcome(MonthState::Done, None).await
    }
}
