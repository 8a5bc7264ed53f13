//! A small InvenioRDM-shaped sample for demos, the Quick start and tests: communities,
//! records (with `parent.communities.ids`, files, metadata, a few tombstones) and legacy
//! monthly view/download event indices. Deterministic for a given seed and end date.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use opensearch::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::events::{build_event, EventType, FileRef, Visitor};
use crate::progress::Progress;
use crate::rng::SeededRng;
use crate::bulk::{BulkOp, BulkPipeline};
use crate::search::SearchClient;
use crate::templates;

/// What to generate.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct SampleOptions {
    /// Number of communities.
    #[serde(default = "d_communities")]
    pub communities: u32,
    /// Number of records.
    #[serde(default = "d_records")]
    pub records: u32,
    /// Usage events per record (views and downloads together), on average.
    #[serde(default = "d_events")]
    pub events_per_record: u32,
    /// How many months of events, ending with the month of `end_date`.
    #[serde(default = "d_months")]
    pub months: u32,
    /// The last day of the sample (`YYYY-MM-DD`); default today (UTC).
    #[serde(default)]
    pub end_date: Option<String>,
    /// Random seed.
    #[serde(default = "d_seed")]
    pub seed: u64,
}

fn d_communities() -> u32 {
    5
}
fn d_records() -> u32 {
    200
}
fn d_events() -> u32 {
    20
}
fn d_months() -> u32 {
    12
}
fn d_seed() -> u64 {
    42
}

impl Default for SampleOptions {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults")
    }
}

/// What was written.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SampleReport {
    /// Index prefix used.
    pub index_prefix: String,
    /// Communities written.
    pub communities: u64,
    /// Records written (including tombstones).
    pub records: u64,
    /// Records that are deleted (tombstones).
    pub deleted_records: u64,
    /// View events written.
    pub view_events: u64,
    /// Download events written.
    pub download_events: u64,
    /// Monthly event indices written to.
    pub event_indices: Vec<String>,
}

const RESOURCE_TYPES: &[(&str, &str)] = &[
    ("publication-article", "Journal article"),
    ("dataset", "Dataset"),
    ("software", "Software"),
    ("image-figure", "Figure"),
    ("publication-book", "Book"),
];
const LANGUAGES: &[(&str, &str)] = &[("eng", "English"), ("fra", "French"), ("deu", "German"), ("spa", "Spanish")];
const SUBJECTS: &[(&str, &str)] = &[
    ("fos-1", "Natural sciences"),
    ("fos-2", "Engineering and technology"),
    ("fos-5", "Social sciences"),
    ("fos-6", "Humanities"),
];
const RIGHTS: &[(&str, &str)] = &[
    ("cc-by-4.0", "Creative Commons Attribution 4.0 International"),
    ("cc0-1.0", "Creative Commons Zero v1.0 Universal"),
    ("mit", "MIT License"),
];
const FUNDERS: &[(&str, &str)] = &[
    ("00k4n6c32", "European Commission"),
    ("021nxhr62", "National Science Foundation"),
    ("01cwqze88", "National Institutes of Health"),
];
const AFFILIATIONS: &[(&str, &str)] = &[
    ("01ggx4157", "CERN"),
    ("05a28rw58", "ETH Zurich"),
    ("052gg0110", "University of Oxford"),
    ("042nb2s44", "Massachusetts Institute of Technology"),
];
const PUBLISHERS: &[&str] = &["Zenodo", "Knowledge Commons", "Springer", "Elsevier"];
const JOURNALS: &[&str] = &["Journal of Open Research", "Digital Humanities Quarterly", "Data in Brief"];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "BR", "IN", "JP", "ZA"];
const EXTENSIONS: &[(&str, &str)] = &[("pdf", "application/pdf"), ("csv", "text/csv"), ("zip", "application/zip"), ("png", "image/png")];
const ACCESS: &[&str] = &["open", "open", "open", "restricted", "embargoed"];

/// An InvenioRDM-style persistent id: `abcde-12345`.
fn rdm_id(rng: &mut SeededRng) -> String {
    const ALPHA: &[u8] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut s = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            s.push('-');
        }
        s.push(ALPHA[rng.below(ALPHA.len() as u64) as usize] as char);
    }
    s
}

fn vocab_list(rng: &mut SeededRng, items: &[(&str, &str)], max: u64, make: impl Fn(&str, &str) -> Value) -> Vec<Value> {
    let n = 1 + rng.below(max);
    let mut out: Vec<Value> = Vec::new();
    let mut used = Vec::new();
    for _ in 0..n {
        let (id, title) = rng.pick(items);
        if !used.contains(id) {
            used.push(*id);
            out.push(make(id, title));
        }
    }
    out
}

/// The sample's last day.
fn end_day(options: &SampleOptions) -> Result<NaiveDate> {
    match &options.end_date {
        Some(text) => NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map_err(|_| Error::invalid(format!("end date {text:?} is not a YYYY-MM-DD date"))),
        None => Ok(Utc::now().date_naive()),
    }
}

fn validate(options: &SampleOptions) -> Result<()> {
    if options.records == 0 || options.records > 1_000_000 {
        return Err(Error::invalid("records must be between 1 and 1,000,000"));
    }
    if options.communities > 10_000 {
        return Err(Error::invalid("communities must be at most 10,000"));
    }
    if options.months == 0 || options.months > 120 {
        return Err(Error::invalid("months must be between 1 and 120"));
    }
    if options.events_per_record > 100_000 {
        return Err(Error::invalid("events per record must be at most 100,000"));
    }
    Ok(())
}

/// Loads the sample into the cluster. Refuses to touch a prefix that already has a records index.
pub async fn load(client: &SearchClient, options: &SampleOptions) -> Result<SampleReport> {
    validate(options)?;
    let end = end_day(options)?;
    let records_alias = client.index("rdmrecords-records");
    if client.exists(&records_alias).await? {
        return Err(Error::Data(format!(
            "{records_alias} already exists: the sample is only loaded into an empty index prefix"
        )));
    }
    let now = Utc::now();
    let end_ts = Utc.from_utc_datetime(&end.and_hms_opt(23, 59, 59).expect("valid time"));
    let first_month = {
        let mut y = end.format("%Y").to_string().parse::<i32>().unwrap_or(2000);
        let mut m = end.format("%m").to_string().parse::<i32>().unwrap_or(1) - (options.months as i32 - 1);
        while m <= 0 {
            m += 12;
            y -= 1;
        }
        NaiveDate::from_ymd_opt(y, m as u32, 1).expect("valid month")
    };
    let events_start = Utc.from_utc_datetime(&first_month.and_hms_opt(0, 0, 0).expect("valid time"));

    create_sample_indices(client).await?;
    templates::install(client, &["record-view-v1.0.0", "file-download-v1.0.0"]).await?;

    let progress = Progress::from_env("load-sample-data");
    progress.set_total(u64::from(options.records));
    progress.set_task("writing communities");
    let mut rng = SeededRng::new(options.seed);
    let mut report = SampleReport { index_prefix: client.settings().index_prefix.clone(), ..Default::default() };
    let mut writer = BulkPipeline::new(client.clone(), BulkOp::Index, 1000, 2);

    // Communities.
    let mut community_ids = Vec::new();
    for i in 0..options.communities {
        let id = rng.uuid();
        let created = events_start - Duration::days(400 + i64::from(i));
        let doc = json!({
            "id": id, "uuid": id, "slug": format!("sample-community-{}", i + 1),
            "created": created.to_rfc3339(), "updated": created.to_rfc3339(),
            "metadata": {"title": format!("Sample community {}", i + 1)},
            "access": {"visibility": "public"},
            "custom_fields": {"stats:dashboard_enabled": true},
        });
        writer.add(&client.index("communities"), &id, &doc).await?;
        community_ids.push(id);
        report.communities += 1;
    }

    // Records, and their events.
    let span_secs = (end_ts - events_start).num_seconds().max(1);
    for _ in 0..options.records {
        if client.cancel_token().is_cancelled() {
            let done = writer.finish().await?;
            return Err(Error::Cancelled(format!(
                "sample loading stopped after {} records ({} documents written)",
                report.records, done.written
            )));
        }
        let recid = rdm_id(&mut rng);
        let parent = rdm_id(&mut rng);
        let mut rrng = SeededRng::for_key(options.seed, &recid);
        // Created between 6 months before the event window and its end.
        let created = events_start - Duration::days(180) + Duration::seconds(rrng.below((span_secs + 180 * 86400) as u64) as i64);
        let communities: Vec<String> = if community_ids.is_empty() || rrng.below(5) == 0 {
            Vec::new()
        } else {
            let mut c = vec![rrng.pick(&community_ids).clone()];
            if rrng.below(4) == 0 {
                let other = rrng.pick(&community_ids).clone();
                if !c.contains(&other) {
                    c.push(other);
                }
            }
            c
        };
        let has_files = rrng.below(10) != 0;
        let deleted = rrng.below(30) == 0;
        let bucket_id = rrng.uuid();
        let files: Vec<Value> = if has_files {
            (0..1 + rrng.below(3))
                .map(|n| {
                    let (ext, mime) = rrng.pick(EXTENSIONS);
                    json!({"key": format!("file{}.{ext}", n + 1), "ext": ext, "mimetype": mime,
                           "size": 1000 + rrng.below(50_000_000), "file_id": rrng.uuid(), "id": rrng.uuid()})
                })
                .collect()
        } else {
            Vec::new()
        };
        let (rt_id, rt_title) = rrng.pick(RESOURCE_TYPES);
        let access = *rrng.pick(if has_files { ACCESS } else { &["metadata-only"] });
        let affiliation = |r: &mut SeededRng| {
            vocab_list(r, AFFILIATIONS, 2, |id, name| json!({"id": id, "name": name}))
        };
        let creators: Vec<Value> = (0..1 + rrng.below(3))
            .map(|n| json!({"person_or_org": {"type": "personal", "name": format!("Author {n}")}, "affiliations": affiliation(&mut rrng)}))
            .collect();
        let contributors: Vec<Value> = (0..rrng.below(2))
            .map(|n| json!({"person_or_org": {"type": "personal", "name": format!("Editor {n}")}, "affiliations": affiliation(&mut rrng)}))
            .collect();
        let publication_year = created.format("%Y").to_string();
        let mut record = json!({
            "id": recid, "uuid": rrng.uuid(), "pid": {"pk": rrng.below(1_000_000), "status": "R"},
            "created": created.to_rfc3339(), "updated": created.to_rfc3339(),
            "is_published": true, "is_deleted": deleted, "deletion_status": if deleted {"D"} else {"P"},
            "versions": {"index": 1, "is_latest": true},
            "parent": {"id": parent, "communities": {"ids": communities, "default": communities.first()}},
            "access": {"status": access, "record": "public", "files": if access == "open" {"public"} else {"restricted"}},
            "bucket_id": bucket_id,
            "files": {"enabled": has_files, "count": files.len(), "entries": files,
                      "total_bytes": files.iter().map(|f| f["size"].as_u64().unwrap_or(0)).sum::<u64>()},
            "metadata": {
                "title": format!("Sample record {recid}"),
                "publication_date": publication_year,
                "resource_type": {"id": rt_id, "title": {"en": rt_title}},
                "languages": vocab_list(&mut rrng, LANGUAGES, 2, |id, t| json!({"id": id, "title": {"en": t}})),
                "subjects": vocab_list(&mut rrng, SUBJECTS, 2, |id, t| json!({"id": id, "subject": t, "scheme": "FOS"})),
                "rights": vocab_list(&mut rrng, RIGHTS, 1, |id, t| json!({"id": id, "title": {"en": t}})),
                "funding": vocab_list(&mut rrng, FUNDERS, 2, |id, n| json!({"funder": {"id": id, "name": n}})),
                "publisher": rrng.pick(PUBLISHERS),
                "creators": creators,
                "contributors": contributors,
            },
            "custom_fields": {"journal:journal": {"title": rrng.pick(JOURNALS)}},
        });
        if deleted {
            let removal = created + Duration::days(1 + rrng.below(60) as i64);
            let removal = removal.min(end_ts);
            record["tombstone"] = json!({"removal_date": removal.to_rfc3339(), "removal_reason": {"id": "spam"}});
            report.deleted_records += 1;
        }
        writer.add(&records_alias, &recid, &record).await?;
        report.records += 1;
        progress.advance(1);
        if report.records % 1000 == 1 {
            progress.set_task(format!("writing records and their events ({} of {})", report.records, options.records));
        }

        // Usage events between max(created, window start) and the end.
        let first = created.max(events_start);
        let window = (end_ts - first).num_seconds();
        if window <= 0 || options.events_per_record == 0 {
            continue;
        }
        let files_refs: Vec<FileRef> = record["files"]["entries"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|f| FileRef {
                        bucket_id: bucket_id.clone(),
                        file_id: f["file_id"].as_str().unwrap_or_default().into(),
                        file_key: f["key"].as_str().unwrap_or_default().into(),
                        size: f["size"].as_f64().unwrap_or(0.0),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let n_events = 1 + rrng.below(u64::from(options.events_per_record) * 2);
        for _ in 0..n_events {
            let ts: DateTime<Utc> = first + Duration::seconds(rrng.below(window as u64) as i64);
            let event_type = if !files_refs.is_empty() && rrng.below(3) == 0 { EventType::Download } else { EventType::View };
            let visitor = Visitor {
                visitor_id: format!("{}", rrng.hex(56)),
                country: rrng.pick(COUNTRIES).to_string(),
                referrer: if rrng.below(2) == 0 { Some(format!("https://example.org/search?q={}", rrng.below(100))) } else { None },
                is_robot: rrng.below(50) == 0,
                is_machine: rrng.below(40) == 0,
            };
            let file = if event_type == EventType::Download { Some(rrng.pick(&files_refs)) } else { None };
            let (id, doc) = build_event(event_type, ts, &recid, &parent, &visitor, file, now);
            let month = ts.format("%Y-%m").to_string();
            let index = client.index(&event_type.monthly_index(&month));
            if !report.event_indices.contains(&index) {
                report.event_indices.push(index.clone());
            }
            writer.add(&index, &id, &doc).await?;
            match event_type {
                EventType::View => report.view_events += 1,
                EventType::Download => report.download_events += 1,
            }
        }
    }
    let written = writer.finish().await?;
    if written.failed > 0 {
        return Err(Error::Search { status: 400, what: "sample bulk write".into(), reason: written.failure_reasons.join("; ") });
    }
    progress.set_task("refreshing indices");
    progress.flush();
    client.refresh(&format!("{}*", client.index(""))).await?;
    report.event_indices.sort();
    // Duplicate event ids (same visitor, same 10 s window) collapse, as in invenio-stats: count what is there.
    report.view_events = client.count(&client.index("events-stats-record-view-*"), None).await?;
    report.download_events = client.count(&client.index("events-stats-file-download-*"), None).await?;
    Ok(report)
}

async fn create_sample_indices(client: &SearchClient) -> Result<()> {
    let kw = json!({"type": "keyword"});
    let records = json!({
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
        "aliases": {client.index("rdmrecords-records"): {}},
        "mappings": {"dynamic": true, "properties": {
            "id": kw, "uuid": kw, "created": {"type": "date"}, "updated": {"type": "date"},
            "is_published": {"type": "boolean"}, "is_deleted": {"type": "boolean"}, "deletion_status": kw,
            "bucket_id": kw,
            "parent": {"properties": {"id": kw, "communities": {"properties": {"ids": kw, "default": kw}}}},
            "access": {"properties": {"status": kw, "record": kw, "files": kw}},
            "tombstone": {"properties": {"removal_date": {"type": "date"}}},
            "files": {"properties": {"enabled": {"type": "boolean"}, "count": {"type": "integer"},
                "total_bytes": {"type": "long"},
                "entries": {"properties": {"key": kw, "ext": kw, "mimetype": kw, "size": {"type": "long"}, "file_id": kw, "id": kw}}}},
            "metadata": {"properties": {
                "title": {"type": "text"},
                "publication_date": kw,
                "resource_type": {"properties": {"id": kw, "title": {"properties": {"en": kw}}}},
                "languages": {"properties": {"id": kw, "title": {"properties": {"en": kw}}}},
                "subjects": {"properties": {"id": kw, "subject": kw, "scheme": kw}},
                "rights": {"properties": {"id": kw, "title": {"properties": {"en": kw}}}},
                "funding": {"properties": {"funder": {"properties": {"id": kw, "name": {"type": "text", "fields": {"keyword": kw}}}}}},
                "publisher": {"type": "text", "fields": {"keyword": kw}},
                "creators": {"properties": {"affiliations": {"properties": {"id": kw, "name": {"type": "text", "fields": {"keyword": kw}}}}}},
                "contributors": {"properties": {"affiliations": {"properties": {"id": kw, "name": {"type": "text", "fields": {"keyword": kw}}}}}},
            }},
            "custom_fields": {"properties": {"journal:journal": {"properties": {"title": {"type": "text", "fields": {"keyword": kw}}}}}},
        }}
    });
    let communities = json!({
        "settings": {"index": {"number_of_shards": 1, "number_of_replicas": 0}},
        "aliases": {client.index("communities"): {}},
        "mappings": {"dynamic": true, "properties": {"id": kw, "uuid": kw, "slug": kw, "created": {"type": "date"}}}
    });
    client.json(Method::Put, &client.index("rdmrecords-records-record-v7.0.0"), Some(&records)).await?;
    client.json(Method::Put, &client.index("communities-communities-v1.0.0"), Some(&communities)).await?;
    Ok(())
}

