//! Usage-event migration: copy the legacy monthly indices
//! (`events-stats-record-view-YYYY-MM`, `...file-download-YYYY-MM`) into enriched
//! `-v2.0.0` indices with the same `_id`s, checkpointed per month and event type, verified,
//! then switched in the read alias with one atomic `_aliases` request.

pub mod documents;
pub mod late_events;
pub mod live;
pub mod month;
pub mod state;

use std::collections::BTreeMap;

use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::events::EventType;
use crate::search::SearchClient;

/// Which months and event types (`migration-status`; a migration's options hold the same).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonthSelection {
    /// `view`, `download` (empty: both).
    pub event_types: Vec<String>,
    /// Each `YYYY-MM` or `YYYY-MM:YYYY-MM` (empty: every month found).
    pub months: Vec<String>,
}

/// Options of `migrate-events` / `migrate-month` (every value given by the caller: the
/// defaults live in the Python package's `config.py`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationOptions {
    /// `view`, `download` (empty: both).
    pub event_types: Vec<String>,
    /// Each `YYYY-MM` or `YYYY-MM:YYYY-MM` (empty: every month found).
    pub months: Vec<String>,
    /// Events per batch (1..=10,000).
    pub batch_size: usize,
    /// At most this many batches per month in this run (0 = no limit).
    pub max_batches: u64,
    /// Stop cleanly (checkpointed) when system memory use passes this percentage.
    pub max_memory_percent: f64,
    /// Delete a source index once its month is verified and switched.
    pub delete_old_indices: bool,
    /// Forget checkpoints and start the selected months again.
    pub fresh_start: bool,
    /// Plan and count only.
    pub dry_run: bool,
    /// Documents compared field by field when verifying a month.
    pub verify_sample: usize,
    /// Point-in-time slices read in parallel (1..=16), shared by the months migrated at the
    /// same time (at least one each); a month resumes with the slices its checkpoints were
    /// taken with.
    pub slices: u32,
    /// Seconds the migration lock lives without renewal (a running migration renews it).
    pub lock_ttl_seconds: u64,
    /// Closed months migrated at the same time (1..=8): their fixed work (index creation,
    /// refreshes, verification, alias switch) overlaps with the others' copying. Live months
    /// come after them, one at a time.
    pub parallel_months: usize,
}

impl MigrationOptions {
    /// The months and event types these options select.
    pub fn selection(&self) -> MonthSelection {
        MonthSelection {
            event_types: self.event_types.clone(),
            months: self.months.clone(),
        }
    }
}

/// One month of one event type to migrate.
#[derive(Clone, Debug, Serialize)]
pub struct MonthPlan {
    /// `view` or `download`.
    pub event_type: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The legacy index.
    pub source: String,
    /// The `-v2.0.0` index.
    pub target: String,
}

/// Parses `YYYY-MM` or `YYYY-MM:YYYY-MM` into an inclusive range.
pub fn parse_months(text: &str) -> Result<(String, String)> {
    let valid = |m: &str| {
        m.len() == 7
            && m.as_bytes()[4] == b'-'
            && crate::dates::parse_day("--months", &format!("{m}-01")).is_ok()
    };
    let (a, b) = match text.split_once(':') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (text.trim(), text.trim()),
    };
    if !valid(a) || !valid(b) {
        return Err(Error::invalid(format!(
            "months {text:?}: expected YYYY-MM or YYYY-MM:YYYY-MM"
        )));
    }
    if b < a {
        return Err(Error::invalid(format!(
            "months {text:?}: the end month is before the start month"
        )));
    }
    Ok((a.to_string(), b.to_string()))
}

/// The months a selection names: the union of its `YYYY-MM[:YYYY-MM]` ranges (none: all).
#[derive(Clone, Debug, Default)]
pub struct MonthFilter {
    ranges: Vec<(String, String)>,
}

impl MonthFilter {
    /// Parses every value (an error names the bad one).
    pub fn parse(values: &[String]) -> Result<Self> {
        Ok(Self {
            ranges: values
                .iter()
                .map(|v| parse_months(v))
                .collect::<Result<_>>()?,
        })
    }

    /// True when `month` (`YYYY-MM`) is selected.
    pub fn contains(&self, month: &str) -> bool {
        self.ranges.is_empty()
            || self
                .ranges
                .iter()
                .any(|(a, b)| a.as_str() <= month && month <= b.as_str())
    }

    /// ` in 2024-01, 2024-03:2024-05` for messages (empty when every month is selected).
    pub fn describe(&self) -> String {
        if self.ranges.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = self
            .ranges
            .iter()
            .map(|(a, b)| {
                if a == b {
                    a.clone()
                } else {
                    format!("{a}:{b}")
                }
            })
            .collect();
        format!(" in {}", parts.join(", "))
    }
}

/// Checks the copy's own options (before anything is read or written).
pub fn validate_copy(options: &MigrationOptions) -> Result<()> {
    if options.batch_size == 0 || options.batch_size > 10_000 {
        return Err(Error::invalid(format!(
            "batch size {} is not between 1 and 10,000",
            options.batch_size
        )));
    }
    if options.parallel_months == 0 || options.parallel_months > 8 {
        return Err(Error::Config(format!(
            "parallel_months {} is not between 1 and 8",
            options.parallel_months
        )));
    }
    if options.slices == 0 || options.slices > 16 {
        return Err(Error::invalid(format!(
            "slices {} is not between 1 and 16",
            options.slices
        )));
    }
    if !(options.max_memory_percent > 0.0 && options.max_memory_percent <= 100.0) {
        return Err(Error::invalid(format!(
            "max memory percent {} is not between 1 and 100",
            options.max_memory_percent
        )));
    }
    Ok(())
}

impl crate::options::Validate for MigrationOptions {
    fn validate(&self) -> Result<()> {
        validate_copy(self)?;
        validate(&self.selection()).map(|_| ())
    }
}

/// Checks a month selection; returns its event types (both when none is named).
pub fn validate(options: &MonthSelection) -> Result<Vec<EventType>> {
    MonthFilter::parse(&options.months)?;
    let mut types = Vec::new();
    for t in &options.event_types {
        let parsed = EventType::parse(t).ok_or_else(|| {
            Error::invalid(format!("unknown event type {t:?} (use view or download)"))
        })?;
        if !types.contains(&parsed) {
            types.push(parsed);
        }
    }
    if types.is_empty() {
        types = EventType::ALL.to_vec();
    }
    Ok(types)
}

/// The legacy monthly indices that exist, by event type, filtered by the month range.
pub async fn plan(
    client: &SearchClient,
    types: &[EventType],
    months: &MonthFilter,
) -> Result<Vec<MonthPlan>> {
    let mut out = Vec::new();
    for t in types {
        let base = client.index(&format!("events-stats-{}-", t.stats_name()));
        let mut found: BTreeMap<String, String> = BTreeMap::new();
        for (name, _) in client.cat_indices(&format!("{base}*")).await? {
            let Some(month) = name.strip_prefix(&base) else {
                continue;
            };
            // Only the legacy monthly names: YYYY-MM exactly (not -v2.0.0, not backups).
            if month.len() == 7 && parse_months(month).is_ok() {
                if !months.contains(month) {
                    continue;
                }
                found.insert(month.to_string(), name.to_string());
            }
        }
        for (month, source) in found {
            out.push(MonthPlan {
                event_type: t.short_name().into(),
                month: month.clone(),
                target: format!("{source}-v2.0.0"),
                source,
            });
        }
    }
    Ok(out)
}

/// Months known only from their state documents (their legacy index is gone: deleted after
/// verification, or an alias of the target after a live switchover), within the selection.
async fn months_from_state(
    client: &SearchClient,
    types: &[EventType],
    months: &MonthFilter,
    known: &[MonthPlan],
) -> Result<Vec<MonthPlan>> {
    let mut out = Vec::new();
    let state_index = client.index(state::STATE_INDEX);
    if !client.exists(&state_index).await? {
        return Ok(out);
    }
    client.refresh(&state_index).await?;
    let reply = client
        .json(
            Method::Post,
            &format!("{state_index}/_search"),
            Some(&serde_json::json!({"size": 10000})),
        )
        .await?;
    for hit in reply["hits"]["hits"].as_array().into_iter().flatten() {
        let s = &hit["_source"];
        let (Some(t), Some(m)) = (s["event_type"].as_str(), s["month"].as_str()) else {
            continue;
        };
        let Some(et) = EventType::parse(t) else {
            continue;
        };
        if !types.contains(&et) || known.iter().any(|p| p.event_type == t && p.month == m) {
            continue;
        }
        if !months.contains(m) {
            continue;
        }
        let source = client.index(&et.monthly_index(m));
        out.push(MonthPlan {
            event_type: t.into(),
            month: m.into(),
            target: format!("{source}-v2.0.0"),
            source,
        });
    }
    Ok(out)
}

/// What a run did, month by month.
#[derive(Clone, Debug, Default, Serialize)]
pub struct MigrationReport {
    /// Every month planned, in order.
    pub months: Vec<month::MonthOutcome>,
    /// Months now done (switched).
    pub done: u64,
    /// Months stopped early (resumable).
    pub interrupted: u64,
    /// Months that failed verification or had rejected documents.
    pub failed: u64,
    /// Documents written in this run.
    pub written: u64,
    /// True for a dry run.
    pub dry_run: bool,
}

/// Runs the migration for the planned months (sequentially, each checkpointed).
pub async fn run(
    client: &SearchClient,
    options: &MigrationOptions,
    progress: &crate::progress::Progress,
) -> Result<MigrationReport> {
    validate_copy(options)?;
    let types = validate(&options.selection())?;
    let records = client.index("rdmrecords-records");
    if !client.exists(&records).await? {
        return Err(Error::Data(format!(
            "the records index {records} does not exist (events are enriched from it)"
        )));
    }
    let months = MonthFilter::parse(&options.months)?;
    let plans = plan(client, &types, &months).await?;
    let gone = months_from_state(client, &types, &months, &plans).await?;
    if plans.is_empty() && gone.is_empty() {
        return Err(Error::Data(format!(
            "no legacy event indices to migrate ({}events-stats-{{record-view,file-download}}-YYYY-MM{})",
            client.settings().index_prefix,
            months.describe()
        )));
    }
    if options.dry_run {
        return run_planned(client, options, &plans, &gone, progress).await;
    }
    // One migration per index prefix at a time, whatever host runs it.
    let held = crate::lock::acquire(
        client,
        crate::lock::ClusterLock::Migration,
        std::time::Duration::from_secs(options.lock_ttl_seconds.max(3)),
    )
    .await?;
    let result = async {
        crate::templates::install(client, &["record-view-v2.0.0", "file-download-v2.0.0"]).await?;
        state::ensure_index(client).await?;
        run_planned(client, options, &plans, &gone, progress).await
    }
    .await;
    let released = held.release().await;
    let report = result?;
    released?;
    Ok(report)
}

/// The migration of the planned months (under the lock unless a dry run).
async fn run_planned(
    client: &SearchClient,
    options: &MigrationOptions,
    plans: &[MonthPlan],
    gone: &[MonthPlan],
    progress: &crate::progress::Progress,
) -> Result<MigrationReport> {
    let mut total = 0;
    for p in plans {
        total += client.count(&p.source, None).await?;
    }
    progress.set_total(total);
    let mut report = MigrationReport {
        dry_run: options.dry_run,
        ..Default::default()
    };
    // Months whose legacy index is gone are reported from their state (done ones stay done).
    for p in gone {
        let et = EventType::parse(&p.event_type).expect("planned types parse");
        let mut record = state::load(client, et, &p.month).await?;
        // A run stopped (killed) right after the switchover's atomic swap: the legacy name
        // is already the target's alias, so the month is done; its leftovers are removed.
        if record.state != state::MonthState::Done
            && !options.dry_run
            && live::switched(client, p).await?
        {
            live::finish_switched(client, p, et, &mut record).await?;
        }
        let done = record.state == state::MonthState::Done;
        report.done += u64::from(done);
        report.failed += u64::from(!done);
        report.months.push(month::MonthOutcome {
            event_type: p.event_type.clone(),
            month: p.month.clone(),
            state: record.state,
            source_count: record.source_count,
            target_count: client.count(&p.target, None).await.unwrap_or(0),
            checkpoint: record.checkpoint.clone(),
            switched: done,
            source_deleted: record.source_deleted,
            message: Some(if done {
                "already migrated".into()
            } else {
                format!(
                    "the legacy index {} is gone: nothing left to copy",
                    p.source
                )
            }),
            ..Default::default()
        });
    }
    // Closed months in `parallel_months` lanes (each with its own record cache), then the
    // live ones one at a time; reported in plan order.
    let (live, closed): (Vec<_>, Vec<_>) = plans
        .iter()
        .enumerate()
        .partition(|(_, p)| month::is_live(&p.month));
    // After an error (or a cancel) no lane starts another month, and the months under way
    // end as they would alone (a cancel checkpoints them); the first error is returned.
    // The `--slices` point-in-time readers are shared by the lanes (at least one each), so
    // running months side by side does not multiply the readers or the memory they hold.
    let lanes = options.parallel_months.min(closed.len()).max(1);
    let lane_options = MigrationOptions {
        slices: (options.slices / lanes as u32).max(1),
        ..options.clone()
    };
    let queue = std::sync::Mutex::new(closed.into_iter());
    let stopped = std::sync::atomic::AtomicBool::new(false);
    let lane = || async {
        let mut cache = crate::enrich::RecordCache::default();
        let mut done = Vec::new();
        loop {
            if stopped.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok::<_, Error>(done);
            }
            let next = queue.lock().expect("month queue").next();
            let Some((i, p)) = next else {
                return Ok(done);
            };
            match migrate_one(client, p, &lane_options, progress, &mut cache).await {
                Ok(outcome) => done.push((i, outcome)),
                Err(e) => {
                    stopped.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
    };
    let mut outcomes: Vec<(usize, month::MonthOutcome)> = Vec::new();
    for lane_result in futures::future::join_all((0..lanes).map(|_| lane())).await {
        outcomes.extend(lane_result?);
    }
    let mut cache = crate::enrich::RecordCache::default();
    for (i, p) in live {
        outcomes.push((
            i,
            migrate_one(client, p, options, progress, &mut cache).await?,
        ));
    }
    outcomes.sort_by_key(|(i, _)| *i);
    for (_, outcome) in outcomes {
        match outcome.state {
            state::MonthState::Done => report.done += 1,
            // An unfinished switchover is resumed by the next run, like an interrupted copy.
            state::MonthState::Interrupted | state::MonthState::Switching => {
                report.interrupted += 1
            }
            state::MonthState::Failed => report.failed += 1,
            _ => {}
        }
        report.written += outcome.written;
        report.months.push(outcome);
    }
    progress.flush();
    Ok(report)
}

/// Migrates one month (see [`month::migrate`]) and logs how it ended; a month stopped by an
/// error records why before the error is returned.
async fn migrate_one(
    client: &SearchClient,
    p: &MonthPlan,
    options: &MigrationOptions,
    progress: &crate::progress::Progress,
    cache: &mut crate::enrich::RecordCache,
) -> Result<month::MonthOutcome> {
    let et = EventType::parse(&p.event_type).expect("planned types parse");
    let outcome = match month::migrate(client, p, et, options, progress, cache).await {
        Ok(outcome) => outcome,
        Err(e) => {
            state::record_failure(client, et, &p.month, &e).await;
            return Err(e);
        }
    };
    log::info!(
        "{} {}: {:?}, {} of {} documents in the target{}",
        outcome.event_type,
        outcome.month,
        outcome.state,
        outcome.target_count,
        outcome.source_count,
        outcome
            .message
            .as_deref()
            .map(|m| format!(" ({m})"))
            .unwrap_or_default()
    );
    Ok(outcome)
}

/// `clear-migration-checkpoints` (the reference's `usage-events clear-bookmarks`): forgets
/// the state of the selected months so that the next run copies them again from the start
/// (writes are idempotent: nothing is duplicated). Under the migration lock (refused while a
/// migration runs). A month in the middle of its switchover is left alone (the next run
/// finishes it), and so is a done month whose legacy index is gone (nothing to copy again).
pub async fn clear_checkpoints(client: &SearchClient, options: &MonthSelection) -> Result<Value> {
    let types = validate(options)?;
    let months = MonthFilter::parse(&options.months)?;
    let mut plans = plan(client, &types, &months).await?;
    let gone = months_from_state(client, &types, &months, &plans).await?;
    let state_index = client.index(state::STATE_INDEX);
    let mut cleared = Vec::new();
    let mut skipped = Vec::new();
    if !client.exists(&state_index).await? {
        return Ok(serde_json::json!({"cleared": cleared, "skipped": skipped}));
    }
    let held = crate::lock::acquire(
        client,
        crate::lock::ClusterLock::Migration,
        std::time::Duration::from_secs(60),
    )
    .await?;
    let result: Result<()> = async {
        for p in &gone {
            skipped.push(serde_json::json!({"event_type": p.event_type, "month": p.month,
                "reason": format!("its legacy index {} is gone (migrated): nothing to copy again", p.source)}));
        }
        plans.sort_by(|a, b| (&a.event_type, &a.month).cmp(&(&b.event_type, &b.month)));
        for p in &plans {
            let et = EventType::parse(&p.event_type).expect("planned types parse");
            let record = state::load(client, et, &p.month).await?;
            let row = |reason: &str| serde_json::json!({"event_type": p.event_type, "month": p.month, "reason": reason});
            match record.state {
                state::MonthState::Pending if record.checkpoint.is_none() => {
                    skipped.push(row("no checkpoint"))
                }
                state::MonthState::Switching => skipped.push(row(
                    "in the middle of its switchover: run migrate-events to finish it first",
                )),
                before => {
                    state::reset(client, et, &p.month).await?;
                    cleared.push(serde_json::json!({"event_type": p.event_type, "month": p.month,
                        "state_before": before, "checkpoint_before": record.checkpoint}));
                }
            }
        }
        Ok(())
    }
    .await;
    let released = held.release().await;
    result?;
    released?;
    Ok(serde_json::json!({"cleared": cleared, "skipped": skipped}))
}

/// One row of `migration-status`.
#[derive(Clone, Debug, Serialize)]
pub struct StatusRow {
    /// `view` or `download`.
    pub event_type: String,
    /// `YYYY-MM`.
    pub month: String,
    /// Documents in the legacy index (None once deleted).
    pub source_count: Option<u64>,
    /// Documents in the `-v2.0.0` index.
    pub migrated: u64,
    /// Resume point.
    pub checkpoint: Option<String>,
    /// `pending`, `copying`, `interrupted`, `done`, `failed`.
    pub state: state::MonthState,
    /// Last error or note.
    pub error: Option<String>,
    /// Which index the read alias points at for this month: `source`, `target`, `both` or `none`.
    pub read_alias: String,
}

/// Per month and type: source count, migrated, checkpoint, state.
pub async fn status(client: &SearchClient, options: &MonthSelection) -> Result<Vec<StatusRow>> {
    let types = validate(options)?;
    let mut rows = Vec::new();
    let months = MonthFilter::parse(&options.months)?;
    let mut plans = plan(client, &types, &months).await?;
    // Months whose source was deleted after migration are known from their state docs.
    let gone = months_from_state(client, &types, &months, &plans).await?;
    plans.extend(gone);
    plans.sort_by(|a, b| {
        (a.event_type.as_str(), a.month.as_str()).cmp(&(b.event_type.as_str(), b.month.as_str()))
    });
    for p in plans {
        let et = EventType::parse(&p.event_type).expect("parses");
        let record = state::load(client, et, &p.month).await?;
        // After a live switchover the legacy name is an alias of the target.
        let source_exists = client.exists(&p.source).await? && !client.is_alias(&p.source).await?;
        let alias = client.index(&et.alias());
        let in_src = source_exists && client.in_alias(&p.source, &alias).await?;
        let in_tgt = client.in_alias(&p.target, &alias).await?;
        rows.push(StatusRow {
            source_count: if source_exists {
                Some(client.count(&p.source, None).await?)
            } else {
                None
            },
            migrated: client.count(&p.target, None).await?,
            checkpoint: record.checkpoint,
            state: record.state,
            error: record.error,
            read_alias: match (in_src, in_tgt) {
                (true, true) => "both",
                (true, false) => "source",
                (false, true) => "target",
                (false, false) => "none",
            }
            .into(),
            event_type: p.event_type,
            month: p.month,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_ranges() {
        assert_eq!(
            parse_months("2024-05").unwrap(),
            ("2024-05".into(), "2024-05".into())
        );
        assert_eq!(
            parse_months("2024-01:2024-12").unwrap(),
            ("2024-01".into(), "2024-12".into())
        );
        for bad in [
            "2024-13",
            "2024-1",
            "24-01",
            "2024-05:2024-01",
            "2024/05",
            "",
        ] {
            assert!(parse_months(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn month_filters_join_their_ranges() {
        let f = MonthFilter::parse(&["2024-01".into(), "2024-03:2024-05".into()]).unwrap();
        for (m, selected) in [
            ("2023-12", false),
            ("2024-01", true),
            ("2024-02", false),
            ("2024-03", true),
            ("2024-05", true),
            ("2024-06", false),
        ] {
            assert_eq!(f.contains(m), selected, "{m}");
        }
        assert_eq!(f.describe(), " in 2024-01, 2024-03:2024-05");
        assert!(MonthFilter::parse(&[]).unwrap().contains("1999-01"));
        assert!(MonthFilter::parse(&["2024-01".into(), "2024-13".into()]).is_err());
    }

    #[test]
    fn options_are_validated() {
        let base = serde_json::json!({"event_types": [], "months": [], "batch_size": 1000, "max_batches": 0,
            "max_memory_percent": 85.0, "delete_old_indices": false, "fresh_start": false, "dry_run": false,
            "verify_sample": 100, "slices": 2, "lock_ttl_seconds": 600, "parallel_months": 2});
        let with = |key: &str, value: serde_json::Value| {
            let mut o = base.clone();
            o[key] = value;
            serde_json::from_value::<MigrationOptions>(o).unwrap()
        };
        let ok = with("slices", serde_json::json!(2));
        assert_eq!(validate(&ok.selection()).unwrap(), EventType::ALL.to_vec());
        assert!(validate_copy(&ok).is_ok());
        for (key, value) in [
            ("batch_size", 0),
            ("batch_size", 10001),
            ("max_memory_percent", 0),
            ("max_memory_percent", 101),
            ("slices", 0),
            ("slices", 17),
            ("parallel_months", 0),
            ("parallel_months", 9),
        ] {
            assert!(
                validate_copy(&with(key, serde_json::json!(value))).is_err(),
                "{key} {value}"
            );
        }
        assert!(validate(&with("event_types", serde_json::json!(["click"])).selection()).is_err());
        assert!(
            validate(&with("months", serde_json::json!(["2024-01", "2024-13"])).selection())
                .is_err()
        );
        // Every value is given by the caller: a missing or unknown key is refused.
        assert!(serde_json::from_str::<MigrationOptions>("{}").is_err());
        let mut unknown = base.clone();
        unknown["batchsize"] = serde_json::json!(5);
        assert!(serde_json::from_value::<MigrationOptions>(unknown).is_err());
    }
}
