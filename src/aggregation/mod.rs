//! Community statistics aggregation (`aggregate`): for each selected community and the
//! `global` pseudo-community, daily usage deltas and cumulative usage snapshots, with
//! bookmarks, a catch-up limit, a lock against overlapping runs, and a report.

pub mod bookmarks;
pub mod lock;
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
use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bulk::{BulkOp, BulkPipeline, BulkTotals};
use crate::dates::{check_range, parse_day_opt};
use crate::error::{Error, Result};
use crate::pit::PitReader;
use crate::progress::Progress;
use crate::search::SearchClient;

/// The pseudo-community covering every record.
pub const GLOBAL: &str = "global";

/// The aggregators this package runs, in run order (each snapshot after its delta).
pub const AGGREGATORS: &[&str] = &[usage_delta::NAME, records_delta::NAME, records_snapshot::NAME, usage_snapshot::NAME];

/// The snapshot aggregator fed by a delta aggregator, or the one named.
fn snapshot_spec(aggregator: &str) -> Option<snapshot::SnapshotSpec> {
    match aggregator {
        usage_delta::NAME | usage_snapshot::NAME => Some(usage_snapshot::SPEC),
        records_delta::NAME | records_snapshot::NAME => Some(records_snapshot::SPEC),
        _ => None,
    }
}

/// The index (alias, without prefix) an aggregator writes.
fn written_index(aggregator: &str) -> &'static str {
    match aggregator {
        usage_delta::NAME => usage_delta::INDEX,
        records_delta::NAME => records_delta::INDEX,
        records_snapshot::NAME => records_snapshot::INDEX,
        _ => usage_snapshot::INDEX,
    }
}

fn is_delta(aggregator: &str) -> bool {
    aggregator == usage_delta::NAME || aggregator == records_delta::NAME
}

fn default_true() -> bool {
    true
}
fn default_catchup() -> u32 {
    365
}
fn default_concurrency() -> usize {
    4
}
fn default_ttl() -> u64 {
    600
}
fn default_top() -> usize {
    20
}

/// Options of `aggregate` (JSON from Python).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateOptions {
    /// Community ids or slugs, or `global`; empty: every opted-in community and `global`.
    #[serde(default)]
    pub community_ids: Vec<String>,
    /// Aggregator names; empty: all, in order.
    #[serde(default)]
    pub aggregation_types: Vec<String>,
    /// First day (`YYYY-MM-DD`); given, it wins over the bookmark.
    #[serde(default)]
    pub start_date: Option<String>,
    /// Last day (default: today, UTC).
    #[serde(default)]
    pub end_date: Option<String>,
    /// Without a start date, start at the first event instead of the bookmark.
    #[serde(default)]
    pub ignore_bookmark: bool,
    /// Move the bookmarks forward after a complete run.
    #[serde(default = "default_true")]
    pub update_bookmark: bool,
    /// Only communities whose `custom_fields["stats:dashboard_enabled"]` is true.
    #[serde(default = "default_true")]
    pub opt_in: bool,
    /// Most days per community and run.
    #[serde(default = "default_catchup")]
    pub catchup_days: u32,
    /// Days searched concurrently per community.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Lock lifetime without renewal, in seconds.
    #[serde(default = "default_ttl")]
    pub lock_ttl_seconds: u64,
    /// Items in the snapshots' top lists.
    #[serde(default = "default_top")]
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
    /// Seconds spent.
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

/// Shared state of one run.
pub struct AggContext {
    /// The client.
    pub client: SearchClient,
    /// Progress (days done / days to do).
    pub progress: Progress,
    /// Days searched concurrently.
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
            .json(Method::Post, &format!("{index}/_search?ignore_unavailable=true&allow_no_indices=true"), Some(body))
            .await
    }

    /// Several searches in one `_msearch` request; each reply in order (an error reply is
    /// an error).
    pub async fn msearch(&self, searches: &[(String, Value)]) -> Result<Vec<Value>> {
        let mut body = Vec::new();
        for (index, search) in searches {
            self.count_search();
            serde_json::to_writer(&mut body, &json!({"index": index, "ignore_unavailable": true, "allow_no_indices": true})).expect("JSON");
            body.push(b'\n');
            serde_json::to_writer(&mut body, search).expect("JSON");
            body.push(b'\n');
        }
        let reply = self
            .client
            .raw(Method::Post, "_msearch", Some(body), "application/x-ndjson")
            .await?
            .ok_or_else(|| Error::Search { status: 404, what: "POST /_msearch".into(), kind: String::new(), reason: "not found".into() })?;
        let responses = reply["responses"].as_array().cloned().unwrap_or_default();
        if responses.len() != searches.len() {
            return Err(Error::Search { status: 200, what: "POST /_msearch".into(), kind: String::new(), reason: format!("{} replies to {} searches", responses.len(), searches.len()) });
        }
        for r in &responses {
            if !r["error"].is_null() {
                let (kind, reason) = crate::search::parse_error(&json!({"error": r["error"]}).to_string());
                return Err(Error::Search { status: r["status"].as_u64().unwrap_or(500) as u16, what: "POST /_msearch".into(), kind, reason });
            }
        }
        Ok(responses)
    }

    /// A bulk pipeline for aggregation documents (index: re-runs overwrite).
    pub fn pipeline(&self) -> BulkPipeline {
        BulkPipeline::new(self.client.clone(), BulkOp::Index, 100, 2)
    }
}

/// `YYYY-MM-DDT00:00:00`.
pub fn day_start(day: NaiveDate) -> String {
    format!("{}T00:00:00", day.format("%Y-%m-%d"))
}

/// Now, UTC, to the second (the documents' `timestamp` format).
pub fn now_stamp() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// The day of a `YYYY-MM-DD...` string.
pub fn parse_day_prefix(text: &str) -> Option<NaiveDate> {
    text.get(..10).and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// Every day of `[from, to]`.
pub fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

struct Validated {
    aggregators: Vec<&'static str>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
}

fn validate(options: &AggregateOptions) -> Result<Validated> {
    let mut aggregators = Vec::new();
    for t in &options.aggregation_types {
        match AGGREGATORS.iter().find(|a| **a == t.as_str()) {
            Some(a) => aggregators.push(*a),
            None => return Err(Error::invalid(format!("unknown aggregation type {t:?} (known: {})", AGGREGATORS.join(", ")))),
        }
    }
    if aggregators.is_empty() {
        aggregators = AGGREGATORS.to_vec();
    }
    aggregators.sort_by_key(|a| AGGREGATORS.iter().position(|x| x == a));
    aggregators.dedup();
    let start = parse_day_opt("--start-date", options.start_date.as_deref())?;
    let end = parse_day_opt("--end-date", options.end_date.as_deref())?;
    check_range("--start-date/--end-date", start, end)?;
    if options.catchup_days == 0 {
        return Err(Error::invalid("the catch-up limit must be at least 1 day"));
    }
    if options.concurrency == 0 || options.concurrency > 64 {
        return Err(Error::invalid(format!("concurrency must be between 1 and 64, not {}", options.concurrency)));
    }
    if options.top_n == 0 {
        return Err(Error::invalid("the top-N length must be at least 1"));
    }
    Ok(Validated { aggregators, start, end })
}

/// The communities to aggregate: the given ones (ids, slugs or `global`) resolved, else
/// every (opted-in) community, then `global`.
pub async fn select_communities(client: &SearchClient, given: &[String], opt_in: bool) -> Result<Vec<String>> {
    if !given.is_empty() {
        let named: Vec<String> = given.iter().filter(|g| g.as_str() != GLOBAL).cloned().collect();
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
        let query = if opt_in { json!({"term": {"custom_fields.stats:dashboard_enabled": true}}) } else { json!({"match_all": {}}) };
        let mut reader = PitReader::open(client, &index, query, json!([{"id": "asc"}]), 1000, json!(["id"])).await?;
        while let Some(page) = reader.next_page().await? {
            out.extend(page.iter().filter_map(|h| h["_source"]["id"].as_str().or(h["_id"].as_str()).map(String::from)));
        }
        let _ = reader.close().await;
    } else {
        log::info!("no communities index ({index}): aggregating global only");
    }
    out.push(GLOBAL.to_string());
    Ok(out)
}

/// Runs the aggregation under the lock and returns its report.
pub async fn run(client: &SearchClient, options: &AggregateOptions, progress: &Progress) -> Result<AggregateReport> {
    let v = validate(options)?;
    let started = Instant::now();
    let communities = select_communities(client, &options.community_ids, options.opt_in).await?;
    crate::templates::install(client, &crate::templates::GENERATED.iter().map(|(n, _)| *n).collect::<Vec<_>>()).await?;
    bookmarks::ensure_index(client).await?;
    let held = lock::acquire(client, lock::AGGREGATION_LOCK, Duration::from_secs(options.lock_ttl_seconds.max(3))).await?;
    let ctx = AggContext::new(client.clone(), progress.clone(), options.concurrency, options.top_n);
    let mut report = AggregateReport { communities: communities.clone(), ..Default::default() };
    let result = async {
        if v.aggregators.contains(&usage_delta::NAME) {
            progress.set_task("enriching events written since the migration");
            report.late_enrichment = Some(crate::migration::late_events::enrich_late_events(client).await?);
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

async fn run_locked(ctx: &AggContext, options: &AggregateOptions, v: &Validated, communities: &[String], report: &mut AggregateReport) -> Result<()> {
    let today = chrono::Utc::now().date_naive();
    let end = v.end.unwrap_or(today);
    for &aggregator in &v.aggregators {
        let started = Instant::now();
        ctx.progress.set_task(format!("{aggregator}: planning"));
        let mut agg = AggregatorReport { aggregator: aggregator.to_string(), ..Default::default() };
        // Plan every community's range first, so progress knows the days to do.
        let mut plans = Vec::new();
        for cid in communities {
            let plan = plan_range(ctx, aggregator, cid, options, v.start, end).await;
            plans.push((cid.clone(), plan));
        }
        let to_do: u64 = plans.iter().filter_map(|(_, p)| p.as_ref().ok().and_then(|p| p.range)).map(|(f, t)| (t - f).num_days() as u64 + 1).sum();
        ctx.progress.set_total(ctx.progress.processed() + to_do);
        for (cid, plan) in plans {
            let t0 = Instant::now();
            let mut cr = CommunityReport { community_id: cid.clone(), ..Default::default() };
            let plan = match plan {
                Ok(p) => p,
                Err(e) if matches!(e, Error::Cancelled(_)) => return Err(e),
                Err(e) => {
                    log::error!("{aggregator} {cid}: {e}");
                    cr.errors = 1;
                    cr.error_details.push(e.to_string());
                    push(&mut agg, cr, t0);
                    continue;
                }
            };
            cr.note = plan.note.clone();
            cr.bookmark = plan.bookmark.map(day_start);
            let Some((from, to)) = plan.range else {
                push(&mut agg, cr, t0);
                continue;
            };
            if plan.capped {
                report.incomplete.push(format!("{aggregator} {cid}"));
            }
            ctx.progress.set_task(format!("{aggregator}: {cid} {from}..{to}"));
            log::info!("{aggregator}: {cid} {from}..{to}");
            let first = plan.first.unwrap_or(from);
            let outcome = match aggregator {
                usage_delta::NAME => usage_delta::run_community(ctx, &cid, from, to).await,
                records_delta::NAME => records_delta::run_community(ctx, &cid, from, to).await,
                records_snapshot::NAME => {
                    snapshot::run_community::<records_snapshot::RecordsState>(ctx, &records_snapshot::SPEC, &cid, first, from, to).await
                }
                _ => snapshot::run_community::<usage_snapshot::RunningState>(ctx, &usage_snapshot::SPEC, &cid, first, from, to).await,
            };
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
            if let (true, Some(spec), Some(first)) = (is_delta(aggregator), snapshot_spec(aggregator), outcome.days.first()) {
                snapshot::invalidate_state_from(ctx, &spec, &cid, *first).await?;
            }
            cr.days_written = outcome.days.len() as u64;
            cr.documents = outcome.writes.written;
            cr.errors += outcome.writes.failed;
            cr.error_details.extend(outcome.writes.failure_reasons.iter().cloned());
            cr.first_day = outcome.days.first().map(|d| d.to_string());
            cr.last_day = outcome.days.last().map(|d| d.to_string());
            if let Some(e) = &outcome.error {
                cr.errors += 1;
                cr.error_details.push(e.clone());
            }
            // Days are written in order and acknowledged before this point: the last one is
            // a safe bookmark unless a document failed.
            if let (true, 0, Some(last)) = (options.update_bookmark, outcome.writes.failed, outcome.days.last()) {
                bookmarks::set(&ctx.client, aggregator, &cid, *last).await?;
                cr.bookmark = Some(day_start(*last));
            }
            let interrupted = outcome.interrupted;
            push(&mut agg, cr, t0);
            if interrupted {
                report.aggregators.push(agg);
                return Err(Error::Cancelled(format!("{aggregator} stopped at {cid}; the bookmarks are saved, a re-run continues")));
            }
        }
        // The next aggregator reads what this one wrote.
        ctx.client.refresh(&ctx.client.index(written_index(aggregator))).await?;
        agg.duration_seconds = started.elapsed().as_secs_f64();
        report.documents += agg.documents;
        report.errors += agg.errors;
        report.aggregators.push(agg);
    }
    Ok(())
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
async fn plan_range(ctx: &AggContext, aggregator: &str, cid: &str, options: &AggregateOptions, start: Option<NaiveDate>, end: NaiveDate) -> Result<Plan> {
    let bookmark = bookmarks::get(&ctx.client, aggregator, cid).await?;
    let (first, last_source) = match aggregator {
        usage_delta::NAME => (usage_delta::first_event_day(ctx, cid).await?, None),
        records_delta::NAME => (records_delta::first_change_day(ctx, cid).await?, None),
        other => match snapshot::delta_bounds(ctx, &snapshot_spec(other).expect("a snapshot aggregator"), cid).await? {
            Some((f, l)) => (Some(f), Some(l)),
            None => (None, None),
        },
    };
    let mut plan = Plan { range: None, first, bookmark, capped: false, note: None };
    let Some(first) = first else {
        plan.note = Some(match aggregator {
            usage_delta::NAME => "no usage events".to_string(),
            records_delta::NAME if cid == GLOBAL => "no records".to_string(),
            records_delta::NAME => "no community events (run generate-community-events)".to_string(),
            usage_snapshot::NAME => "no usage deltas".to_string(),
            _ => "no records deltas".to_string(),
        });
        return Ok(plan);
    };
    let mut from = match (start, bookmark, options.ignore_bookmark) {
        (Some(s), _, _) => s,
        (None, Some(b), false) => b,
        _ => first,
    };
    if !is_delta(aggregator) {
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
        plan.note = Some(format!("stopped at {to} after {} days (COMMUNITY_STATS_CATCHUP_DAYS): run again to continue", options.catchup_days));
    }
    if from > to {
        plan.note = Some(format!("nothing to do ({from} is after {to})"));
        return Ok(plan);
    }
    plan.range = Some((from, to));
    Ok(plan)
}

/// `clear-lock`: removes the aggregation lock; reports what was removed.
pub async fn clear_lock(client: &SearchClient) -> Result<Value> {
    Ok(match lock::clear(client, lock::AGGREGATION_LOCK).await? {
        Some(held) => json!({"removed": true, "lock": held}),
        None => json!({"removed": false}),
    })
}
