//! Community statistics aggregation (`aggregate`): for each selected community and the
//! `global` pseudo-community, daily usage deltas and cumulative usage snapshots, with
//! bookmarks, a catch-up limit, a lock against overlapping runs, and a report.

pub mod aggregator;
pub mod bookmarks;
pub mod maintenance;
pub mod read;
pub mod records;
pub mod records_delta;
pub mod records_snapshot;
pub mod snapshot;
pub mod subcounts;
pub mod usage;
pub mod usage_delta;
pub mod usage_fold;
pub mod usage_snapshot;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use futures::StreamExt;
use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bulk::{BulkOp, BulkPipeline, BulkTotals};
use crate::dates::{check_range, day_start, parse_day_opt};
use crate::error::{Error, Result};
use crate::pit::PitReader;
use crate::progress::Progress;
use crate::search::SearchClient;

/// The pseudo-community covering every record.
pub const GLOBAL: &str = "global";

pub use aggregator::Aggregator;

/// Options of `aggregate` (JSON from Python; every value given: the defaults are the
/// `COMMUNITY_STATS_*` settings of the Python package's `config.py`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateOptions {
    /// Community ids or slugs, or `global`; empty: every opted-in community and `global`.
    pub community_ids: Vec<String>,
    /// Aggregator names; empty: all, in order.
    pub aggregation_types: Vec<String>,
    /// First day (`YYYY-MM-DD`); given, it wins over the bookmark.
    pub start_date: Option<String>,
    /// Last day (default: today, UTC).
    pub end_date: Option<String>,
    /// Without a start date, start at the first event instead of the bookmark.
    pub ignore_bookmark: bool,
    /// Move the bookmarks forward after a complete run.
    pub update_bookmark: bool,
    /// Only communities whose `custom_fields["stats:dashboard_enabled"]` is true.
    pub opt_in: bool,
    /// Most days per community and run.
    pub catchup_days: u32,
    /// Spans of days read concurrently by the usage delta; communities run concurrently
    /// by the other aggregators.
    pub concurrency: usize,
    /// Lock lifetime without renewal, in seconds.
    pub lock_ttl_seconds: u64,
    /// Items in the snapshots' top lists.
    pub top_n: usize,
}

/// What one aggregator did for one community.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CommunityReport {
    /// The community id (or `global`).
    pub community_id: String,
    /// First and last day written.
    pub first_day: Option<String>,
    /// Last day written.
    pub last_day: Option<String>,
    /// Days (documents) written.
    pub days_written: u64,
    /// Documents written.
    pub documents: u64,
    /// Documents that failed, and failures of the community as a whole.
    pub errors: u64,
    /// The first error reasons.
    pub error_details: Vec<String>,
    /// The bookmark after the run.
    pub bookmark: Option<String>,
    /// Why nothing or less was done (no events, catch-up limit, ...).
    pub note: Option<String>,
    /// Seconds spent (the usage delta's communities share one pass, timed in the
    /// aggregator's report: here only the community's bookkeeping).
    pub duration_seconds: f64,
}

/// What one aggregator did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AggregatorReport {
    /// The aggregator name.
    pub aggregator: String,
    /// Per community.
    pub communities: Vec<CommunityReport>,
    /// Documents written.
    pub documents: u64,
    /// Errors.
    pub errors: u64,
    /// Seconds spent.
    pub duration_seconds: f64,
}

/// The report of `aggregate`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AggregateReport {
    /// Per aggregator, in run order.
    pub aggregators: Vec<AggregatorReport>,
    /// Communities aggregated.
    pub communities: Vec<String>,
    /// Search requests issued (an `_msearch` counts its searches).
    pub searches: u64,
    /// Documents written.
    pub documents: u64,
    /// Errors.
    pub errors: u64,
    /// Communities that stopped at the catch-up limit (run again to continue).
    pub incomplete: Vec<String>,
    /// Events that invenio-stats wrote unenriched since the migration (to a switched
    /// month's legacy name, or a month created since), enriched before the usage delta.
    pub late_enrichment: Option<crate::migration::late_events::LateEnrichmentReport>,
    /// Seconds spent.
    pub duration_seconds: f64,
}

/// What one community's run of one aggregator did.
#[derive(Debug, Default)]
pub struct CommunityOutcome {
    /// Days written, in order.
    pub days: Vec<NaiveDate>,
    /// Write totals.
    pub writes: BulkTotals,
    /// Stopped early because the job was cancelled.
    pub interrupted: bool,
    /// Stopped early for this reason.
    pub error: Option<String>,
}

/// A delta document of `community_id` for `day`: `fields` (an object) with the
/// community, the day's bounds and the write time every delta carries.
pub fn delta_document(community_id: &str, day: NaiveDate, mut fields: Value) -> Value {
    let now = crate::dates::now_stamp();
    fields["community_id"] = json!(community_id);
    fields["period_start"] = json!(day_start(day));
    fields["period_end"] = json!(format!("{}T23:59:59", day.format("%Y-%m-%d")));
    fields["timestamp"] = json!(now);
    fields["updated_timestamp"] = json!(now);
    fields
}

impl CommunityOutcome {
    /// Queues `doc`, the document of `aggregator` for `community_id` and `day` (`_id`
    /// `<community>-<YYYY-MM-DD>`, in the day's yearly index), and counts the day done.
    /// Returns false once the job is cancelled (the outcome is then `interrupted`).
    pub async fn write_day(
        &mut self,
        ctx: &AggContext,
        pipeline: &mut BulkPipeline,
        aggregator: Aggregator,
        community_id: &str,
        day: NaiveDate,
        doc: &Value,
    ) -> Result<bool> {
        let doc = serde_json::to_vec(doc).expect("a JSON value serialises");
        self.write_day_raw(ctx, pipeline, aggregator, community_id, day, doc)
            .await
    }

    /// [`Self::write_day`] with the document already serialised (one JSON line).
    pub async fn write_day_raw(
        &mut self,
        ctx: &AggContext,
        pipeline: &mut BulkPipeline,
        aggregator: Aggregator,
        community_id: &str,
        day: NaiveDate,
        doc: Vec<u8>,
    ) -> Result<bool> {
        let index = ctx
            .client
            .index(&format!("{}-{}", aggregator.index(), day.format("%Y")));
        pipeline
            .add_raw(
                &index,
                &format!("{community_id}-{}", day.format("%Y-%m-%d")),
                doc,
            )
            .await?;
        self.days.push(day);
        ctx.progress.advance(1);
        self.interrupted = ctx.client.cancel_token().is_cancelled();
        Ok(!self.interrupted)
    }
}

/// Shared state of one run.
pub struct AggContext {
    /// The client.
    pub client: SearchClient,
    /// Progress (days done / days to do).
    pub progress: Progress,
    /// Spans of days (usage delta) or communities (the others) done concurrently.
    pub concurrency: usize,
    /// Top-list length.
    pub top_n: usize,
    searches: AtomicU64,
}

impl AggContext {
    /// A context over `client`.
    pub fn new(client: SearchClient, progress: Progress, concurrency: usize, top_n: usize) -> Self {
        Self {
            client,
            progress,
            concurrency: concurrency.max(1),
            top_n,
            searches: AtomicU64::new(0),
        }
    }

    /// Counts one search request made elsewhere.
    pub fn count_search(&self) {
        self.searches.fetch_add(1, Ordering::Relaxed);
    }

    /// Searches issued so far.
    pub fn searches(&self) -> u64 {
        self.searches.load(Ordering::Relaxed)
    }

    /// A search on `index` (missing indices are skipped, not errors).
    pub async fn search(&self, index: &str, body: &Value) -> Result<Value> {
        self.count_search();
        self.client
            .json(
                Method::Post,
                &format!("{index}/_search?ignore_unavailable=true&allow_no_indices=true"),
                Some(body),
            )
            .await
    }

    /// Several searches in one `_msearch` request (see [`SearchClient::msearch`]), counted.
    pub async fn msearch(&self, searches: &[(String, Value)]) -> Result<Vec<Value>> {
        self.searches
            .fetch_add(searches.len() as u64, Ordering::Relaxed);
        self.client.msearch(searches).await
    }

    /// The first day (the smallest `field`) of the documents of `index` matching `query`.
    pub async fn first_day(
        &self,
        index: &str,
        query: Value,
        field: &str,
    ) -> Result<Option<NaiveDate>> {
        let body = json!({"size": 0, "query": query, "aggs": {"first": {"min": {"field": field, "format": "yyyy-MM-dd"}}}});
        let reply = self.search(index, &body).await?;
        Ok(crate::dates::parse_day_prefix(
            reply["aggregations"]["first"]["value_as_string"]
                .as_str()
                .unwrap_or_default(),
        ))
    }

    /// A bulk pipeline for aggregation documents (index: re-runs overwrite).
    pub fn pipeline(&self) -> BulkPipeline {
        BulkPipeline::new(self.client.clone(), BulkOp::Index, 100, 2)
    }
}

struct Validated {
    aggregators: Vec<Aggregator>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
}

fn validate(options: &AggregateOptions) -> Result<Validated> {
    let aggregators = Aggregator::parse_list(&options.aggregation_types)?;
    let start = parse_day_opt("--start-date", options.start_date.as_deref())?;
    let end = parse_day_opt("--end-date", options.end_date.as_deref())?;
    check_range("--start-date/--end-date", start, end)?;
    if options.catchup_days == 0 {
        return Err(Error::invalid("the catch-up limit must be at least 1 day"));
    }
    if options.concurrency == 0 || options.concurrency > 64 {
        return Err(Error::invalid(format!(
            "concurrency must be between 1 and 64, not {}",
            options.concurrency
        )));
    }
    if options.top_n == 0 {
        return Err(Error::invalid("the top-N length must be at least 1"));
    }
    Ok(Validated {
        aggregators,
        start,
        end,
    })
}

impl crate::options::Validate for AggregateOptions {
    fn validate(&self) -> Result<()> {
        validate(self).map(|_| ())
    }
}

/// The communities to aggregate: the given ones (ids, slugs or `global`) resolved, else
/// every (opted-in) community, then `global`.
pub async fn select_communities(
    client: &SearchClient,
    given: &[String],
    opt_in: bool,
) -> Result<Vec<String>> {
    if !given.is_empty() {
        let named: Vec<String> = given
            .iter()
            .filter(|g| g.as_str() != GLOBAL)
            .cloned()
            .collect();
        let resolved = crate::communities::resolve(client, &named).await?;
        let mut out = Vec::new();
        for g in given {
            if g == GLOBAL && !out.iter().any(|x| x == GLOBAL) {
                out.push(GLOBAL.to_string());
            }
        }
        out.splice(0..0, resolved);
        return Ok(out);
    }
    let index = client.index("communities");
    let mut out = Vec::new();
    if client.exists(&index).await? {
        let query = if opt_in {
            json!({"term": {"custom_fields.stats:dashboard_enabled": true}})
        } else {
            json!({"match_all": {}})
        };
        let mut reader = PitReader::open(
            client,
            &index,
            query,
            json!([{"id": "asc"}]),
            1000,
            json!(["id"]),
        )
        .await?;
        while let Some(page) = reader.next_page().await? {
            out.extend(page.iter().filter_map(|h| {
                h["_source"]["id"]
                    .as_str()
                    .or(h["_id"].as_str())
                    .map(String::from)
            }));
        }
        let _ = reader.close().await;
    } else {
        log::info!("no communities index ({index}): aggregating global only");
    }
    out.push(GLOBAL.to_string());
    Ok(out)
}

/// True if the prefix holds anything the aggregators read: usage events, records or
/// community events.
async fn has_sources(client: &SearchClient) -> Result<bool> {
    for name in [
        "events-stats-record-view",
        "events-stats-file-download",
        "rdmrecords-records",
        "stats-community-events",
    ] {
        if client.exists(&client.index(name)).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Runs the aggregation under the lock and returns its report.
pub async fn run(
    client: &SearchClient,
    options: &AggregateOptions,
    progress: &Progress,
) -> Result<AggregateReport> {
    let v = validate(options)?;
    let started = Instant::now();
    let communities = select_communities(client, &options.community_ids, options.opt_in).await?;
    if !has_sources(client).await? {
        // An index prefix with nothing to aggregate (a typo, a new instance): say so and
        // create nothing (no templates, bookmarks or lock).
        let mut report = AggregateReport {
            communities: communities.clone(),
            ..Default::default()
        };
        for aggregator in &v.aggregators {
            let mut agg = AggregatorReport {
                aggregator: aggregator.name().to_string(),
                ..Default::default()
            };
            for cid in &communities {
                let note = Some(aggregator.nothing_to_do(cid == GLOBAL).to_string());
                agg.communities.push(CommunityReport {
                    community_id: cid.clone(),
                    note,
                    ..Default::default()
                });
            }
            report.aggregators.push(agg);
        }
        report.duration_seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    crate::templates::install(client, &Aggregator::ALL.map(Aggregator::template_name)).await?;
    bookmarks::ensure_index(client).await?;
    let held = crate::lock::acquire(
        client,
        crate::lock::ClusterLock::Aggregation,
        Duration::from_secs(options.lock_ttl_seconds.max(3)),
    )
    .await?;
    let ctx = AggContext::new(
        client.clone(),
        progress.clone(),
        options.concurrency,
        options.top_n,
    );
    let mut report = AggregateReport {
        communities: communities.clone(),
        ..Default::default()
    };
    let result = async {
        if v.aggregators.contains(&Aggregator::UsageDelta) {
            progress.set_task("enriching events written since the migration");
            report.late_enrichment =
                Some(crate::migration::late_events::enrich_late_events(client).await?);
        }
        run_locked(&ctx, options, &v, &communities, &mut report).await
    }
    .await;
    let released = held.release().await;
    report.searches = ctx.searches();
    report.duration_seconds = started.elapsed().as_secs_f64();
    result?;
    released?;
    progress.flush();
    Ok(report)
}

async fn run_locked(
    ctx: &AggContext,
    options: &AggregateOptions,
    v: &Validated,
    communities: &[String],
    report: &mut AggregateReport,
) -> Result<()> {
    let today = chrono::Utc::now().date_naive();
    let end = v.end.unwrap_or(today);
    for &aggregator in &v.aggregators {
        let started = Instant::now();
        ctx.progress.set_task(format!("{aggregator}: planning"));
        let mut agg = AggregatorReport {
            aggregator: aggregator.name().to_string(),
            ..Default::default()
        };
        // Plan every community's range first, so progress knows the days to do.
        let mut plans = Vec::new();
        for cid in communities {
            let plan = plan_range(ctx, aggregator, cid, options, v.start, end).await;
            plans.push((cid.clone(), plan));
        }
        let to_do: u64 = plans
            .iter()
            .filter_map(|(_, p)| p.as_ref().ok().and_then(|p| p.range))
            .map(|(f, t)| (t - f).num_days() as u64 + 1)
            .sum();
        ctx.progress.set_total(ctx.progress.processed() + to_do);
        // The usage delta does every community in one pass over the events.
        let mut shared = match aggregator {
            Aggregator::UsageDelta => {
                let ranges: Vec<usage_delta::CommunityRange> = plans
                    .iter()
                    .filter_map(|(cid, p)| {
                        let (from, to) = p.as_ref().ok()?.range?;
                        Some(usage_delta::CommunityRange {
                            community_id: cid.clone(),
                            from,
                            to,
                        })
                    })
                    .collect();
                let outcomes = usage_delta::run_all(ctx, &ranges).await?;
                ranges
                    .into_iter()
                    .map(|r| r.community_id)
                    .zip(outcomes)
                    .collect()
            }
            _ => std::collections::HashMap::new(),
        };
        // Each community's run (its plan first); several at a time, reported in order.
        let mut entries = Vec::new();
        for (cid, plan) in plans {
            let t0 = Instant::now();
            let mut cr = CommunityReport {
                community_id: cid.clone(),
                ..Default::default()
            };
            let plan = match plan {
                Ok(p) => p,
                Err(e) if matches!(e, Error::Cancelled(_)) => return Err(e),
                Err(e) => {
                    log::error!("{aggregator} {cid}: {e}");
                    cr.errors = 1;
                    cr.error_details.push(e.to_string());
                    entries.push(Entry::Done(cr, t0));
                    continue;
                }
            };
            cr.note = plan.note.clone();
            cr.bookmark = plan.bookmark.map(day_start);
            let Some((from, to)) = plan.range else {
                entries.push(Entry::Done(cr, t0));
                continue;
            };
            if plan.capped {
                report.incomplete.push(format!("{aggregator} {cid}"));
            }
            log::info!("{aggregator}: {cid} {from}..{to}");
            entries.push(match shared.remove(&cid) {
                Some(outcome) => Entry::Ran(cr, t0, Ok(outcome)),
                None if aggregator.shares_pass() => Entry::Ran(
                    cr,
                    t0,
                    Err(Error::Data(format!("{cid} missing from the shared pass"))),
                ),
                None => Entry::ToRun {
                    cr,
                    t0,
                    from,
                    to,
                    first: plan.first.unwrap_or(from),
                },
            });
        }
        let mut runs = futures::stream::iter(entries)
            .map(|entry| run_entry(ctx, aggregator, entry))
            .buffered(ctx.concurrency);
        let mut cancelled_at = None;
        while let Some(entry) = runs.next().await {
            let (mut cr, t0, outcome) = match entry {
                Entry::Done(cr, t0) => {
                    push(&mut agg, cr, t0);
                    continue;
                }
                Entry::Ran(cr, t0, outcome) => (cr, t0, outcome),
                // Not started: the job was cancelled first.
                Entry::ToRun { .. } => continue,
            };
            let cid = cr.community_id.clone();
            let outcome = match outcome {
                Ok(o) => o,
                Err(e) if matches!(e, Error::Cancelled(_)) => return Err(e),
                Err(e) => {
                    log::error!("{aggregator} {cid}: {e}");
                    cr.errors += 1;
                    cr.error_details.push(e.to_string());
                    push(&mut agg, cr, t0);
                    continue;
                }
            };
            if let (true, Some(first)) = (aggregator.is_delta(), outcome.days.first()) {
                snapshot::invalidate_state_from(ctx, aggregator.snapshot(), &cid, *first).await?;
            }
            cr.days_written = outcome.days.len() as u64;
            cr.documents = outcome.writes.written;
            cr.errors += outcome.writes.failed;
            cr.error_details
                .extend(outcome.writes.failure_reasons.iter().cloned());
            cr.first_day = outcome.days.first().map(|d| d.to_string());
            cr.last_day = outcome.days.last().map(|d| d.to_string());
            if let Some(e) = &outcome.error {
                cr.errors += 1;
                cr.error_details.push(e.clone());
            }
            // Days are written in order and acknowledged before this point: the last one is
            // a safe bookmark unless a document failed.
            if let (true, 0, Some(last)) = (
                options.update_bookmark,
                outcome.writes.failed,
                outcome.days.last(),
            ) {
                bookmarks::set(&ctx.client, aggregator, &cid, *last).await?;
                cr.bookmark = Some(day_start(*last));
            }
            push(&mut agg, cr, t0);
            if outcome.interrupted {
                // The communities under way stop after their day in hand and are recorded;
                // none starts after the cancel.
                cancelled_at.get_or_insert(cid);
            }
        }
        drop(runs);
        if let Some(cid) = cancelled_at {
            report.aggregators.push(agg);
            return Err(Error::Cancelled(format!(
                "{aggregator} stopped at {cid}; the bookmarks are saved, a re-run continues"
            )));
        }
        // The next aggregator reads what this one wrote.
        ctx.client
            .refresh(&ctx.client.index(aggregator.index()))
            .await?;
        agg.duration_seconds = started.elapsed().as_secs_f64();
        report.documents += agg.documents;
        report.errors += agg.errors;
        report.aggregators.push(agg);
    }
    Ok(())
}

/// One community's place in an aggregator's run: reported as planned (nothing to do or a
/// planning error), run (its outcome), or still to run.
enum Entry {
    Done(CommunityReport, Instant),
    Ran(CommunityReport, Instant, Result<CommunityOutcome>),
    ToRun {
        cr: CommunityReport,
        t0: Instant,
        from: NaiveDate,
        to: NaiveDate,
        first: NaiveDate,
    },
}

/// Runs an entry still to run (unless the job is cancelled: then it is returned as it is).
async fn run_entry(ctx: &AggContext, aggregator: Aggregator, entry: Entry) -> Entry {
    let Entry::ToRun {
        cr,
        t0,
        from,
        to,
        first,
    } = entry
    else {
        return entry;
    };
    if ctx.client.cancel_token().is_cancelled() {
        return Entry::ToRun {
            cr,
            t0,
            from,
            to,
            first,
        };
    }
    let cid = cr.community_id.as_str();
    ctx.progress
        .set_task(format!("{aggregator}: {cid} {from}..{to}"));
    let outcome = match aggregator {
        Aggregator::UsageDelta => Err(Error::Data(format!("{cid} missing from the shared pass"))),
        Aggregator::RecordsDelta => records_delta::run_community(ctx, cid, from, to).await,
        Aggregator::RecordsSnapshot => {
            snapshot::run_community::<records_snapshot::RecordsState>(
                ctx, aggregator, cid, first, from, to,
            )
            .await
        }
        Aggregator::UsageSnapshot => {
            snapshot::run_community::<usage_snapshot::RunningState>(
                ctx, aggregator, cid, first, from, to,
            )
            .await
        }
    };
    Entry::Ran(cr, t0, outcome)
}

fn push(agg: &mut AggregatorReport, mut cr: CommunityReport, t0: Instant) {
    cr.duration_seconds = t0.elapsed().as_secs_f64();
    agg.documents += cr.documents;
    agg.errors += cr.errors;
    agg.communities.push(cr);
}

struct Plan {
    range: Option<(NaiveDate, NaiveDate)>,
    first: Option<NaiveDate>,
    bookmark: Option<NaiveDate>,
    capped: bool,
    note: Option<String>,
}

/// The days to do for one aggregator and community: from `--start-date`, else the
/// bookmark (unless ignored), else the first source day; to `--end-date` (or today), at
/// most `catchup_days` days.
async fn plan_range(
    ctx: &AggContext,
    aggregator: Aggregator,
    cid: &str,
    options: &AggregateOptions,
    start: Option<NaiveDate>,
    end: NaiveDate,
) -> Result<Plan> {
    let bookmark = bookmarks::get(&ctx.client, aggregator, cid).await?;
    let (first, last_source) = match aggregator {
        Aggregator::UsageDelta => (usage_delta::first_event_day(ctx, cid).await?, None),
        Aggregator::RecordsDelta => (records_delta::first_change_day(ctx, cid).await?, None),
        Aggregator::RecordsSnapshot | Aggregator::UsageSnapshot => {
            match snapshot::delta_bounds(ctx, aggregator, cid).await? {
                Some((f, l)) => (Some(f), Some(l)),
                None => (None, None),
            }
        }
    };
    let mut plan = Plan {
        range: None,
        first,
        bookmark,
        capped: false,
        note: None,
    };
    let Some(first) = first else {
        plan.note = Some(aggregator.nothing_to_do(cid == GLOBAL).to_string());
        return Ok(plan);
    };
    let mut from = match (start, bookmark, options.ignore_bookmark) {
        (Some(s), _, _) => s,
        (None, Some(b), false) => b,
        _ => first,
    };
    if !aggregator.is_delta() {
        from = from.max(first);
    }
    let mut to = end;
    if let Some(l) = last_source {
        to = to.min(l);
    }
    let limit = from + chrono::Duration::days(i64::from(options.catchup_days) - 1);
    if limit < to {
        to = limit;
        plan.capped = true;
        plan.note = Some(format!(
            "stopped at {to} after {} days (COMMUNITY_STATS_CATCHUP_DAYS): run again to continue",
            options.catchup_days
        ));
    }
    if from > to {
        plan.note = Some(format!("nothing to do ({from} is after {to})"));
        return Ok(plan);
    }
    plan.range = Some((from, to));
    Ok(plan)
}
