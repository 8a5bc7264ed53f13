//! A small InvenioRDM instance's worth of data for demos, the Quick start and tests:
//! communities, records and legacy monthly view/download event indices, created with the
//! mappings and templates that InvenioRDM itself ships (read from its packages, see
//! [`crate::invenio_packages`]) and in the shapes a real instance holds: versions sharing a
//! parent, public records with restricted or embargoed files whose index document says only
//! `files: {"enabled": true}`, no bucket id on records, `parent.communities` as `{}`,
//! licences, subjects, funders and affiliations without an id, multilingual vocabulary
//! titles with `props`, `custom_fields: {}`, events with a null `referrer` or `country`,
//! `api_` unique ids and `updated_timestamp` with microseconds and an offset.
//! Deterministic for a given seed and end date.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::bulk::{BulkOp, BulkPipeline};
use crate::error::{Error, Result};
use crate::events::{build_event, EventType, FileRef, Visitor};
use crate::invenio_packages::{self as packages, PackageFiles};
use crate::progress::Progress;
use crate::rng::SeededRng;
use crate::search::SearchClient;

/// What to generate (every value given by the caller: the defaults are the CLI's).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SampleOptions {
    /// Number of communities.
    pub communities: u32,
    /// Number of records (every version counts as one).
    pub records: u32,
    /// Usage events per record (views and downloads together), on average.
    pub events_per_record: u32,
    /// How many months of events, ending with the month of `end_date`.
    pub months: u32,
    /// The last day of the sample (`YYYY-MM-DD`); `None`: today (UTC).
    pub end_date: Option<String>,
    /// Random seed.
    pub seed: u64,
    /// Directories laid out like site-packages where InvenioRDM's packages (their mapping
    /// files) are looked up, in order.
    pub package_roots: Vec<String>,
}

/// What was written.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SampleReport {
    /// Index prefix used.
    pub index_prefix: String,
    /// Communities written.
    pub communities: u64,
    /// Records written (every version, tombstones included).
    pub records: u64,
    /// Records that are deleted (tombstones).
    pub deleted_records: u64,
    /// Records whose files are restricted or embargoed (indexed without file entries).
    pub records_with_hidden_files: u64,
    /// Records that are not the first version of their parent.
    pub new_versions: u64,
    /// View events written.
    pub view_events: u64,
    /// Download events written.
    pub download_events: u64,
    /// Monthly event indices written to.
    pub event_indices: Vec<String>,
    /// The records and communities indices created (invenio-search's names).
    pub created_indices: Vec<String>,
}

/// (id, English title, German title, props.type, props.subtype)
const RESOURCE_TYPES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "publication-article",
        "Journal article",
        "Zeitschriftenartikel",
        "publication",
        "publication-article",
    ),
    ("dataset", "Dataset", "Datensatz", "dataset", ""),
    ("software", "Software", "Software", "software", ""),
    (
        "image-figure",
        "Figure",
        "Abbildung",
        "image",
        "image-figure",
    ),
    (
        "publication-book",
        "Book",
        "Buch",
        "publication",
        "publication-book",
    ),
];
const LANGUAGES: &[(&str, &str, &str)] = &[
    ("eng", "English", "Englisch"),
    ("fra", "French", "Französisch"),
    ("deu", "German", "Deutsch"),
    ("spa", "Spanish", "Spanisch"),
];
const SUBJECTS: &[(&str, &str)] = &[
    ("https://w3id.org/oecd-fos-2007/1", "Natural sciences"),
    (
        "https://w3id.org/oecd-fos-2007/2",
        "Engineering and technology",
    ),
    ("https://w3id.org/oecd-fos-2007/5", "Social sciences"),
    ("https://w3id.org/oecd-fos-2007/6", "Humanities"),
];
const KEYWORDS: &[&str] = &[
    "open data",
    "climate",
    "digital humanities",
    "software citation",
];
/// (id, title, spdx url, icon)
const RIGHTS: &[(&str, &str, &str, &str)] = &[
    (
        "cc-by-4.0",
        "Creative Commons Attribution 4.0 International",
        "https://creativecommons.org/licenses/by/4.0/legalcode",
        "cc-by-icon",
    ),
    (
        "cc0-1.0",
        "Creative Commons Zero v1.0 Universal",
        "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
        "cc-cc0-icon",
    ),
    (
        "mit",
        "MIT License",
        "https://opensource.org/licenses/MIT",
        "",
    ),
];
const CUSTOM_LICENCES: &[&str] = &["All rights reserved", "Licence agreed with the publisher"];
const FUNDERS: &[(&str, &str)] = &[
    ("00k4n6c32", "European Commission"),
    ("021nxhr62", "National Science Foundation"),
    ("01cwqze88", "National Institutes of Health"),
];
const FREE_FUNDERS: &[&str] = &["Local Heritage Trust", "Departmental seed fund"];
const AFFILIATIONS: &[(&str, &str)] = &[
    ("01ggx4157", "CERN"),
    ("05a28rw58", "ETH Zurich"),
    ("052gg0110", "University of Oxford"),
    ("042nb2s44", "Massachusetts Institute of Technology"),
];
const FREE_AFFILIATIONS: &[&str] = &["Independent researcher", "Institute for Open Things"];
const PUBLISHERS: &[&str] = &["Zenodo", "Knowledge Commons", "Springer", "Elsevier"];
const JOURNALS: &[&str] = &[
    "Journal of Open Research",
    "Digital Humanities Quarterly",
    "Data in Brief",
];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "BR", "IN", "JP", "ZA"];
/// Extensions and MIME types of files (`bin` and `gz` are what real uploads often have).
const EXTENSIONS: &[(&str, &str)] = &[
    ("pdf", "application/pdf"),
    ("csv", "text/csv"),
    ("zip", "application/zip"),
    ("png", "image/png"),
    ("bin", "application/octet-stream"),
    ("gz", "application/gzip"),
];

/// How a record's files can be seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileAccess {
    Open,
    Restricted,
    Embargoed,
    MetadataOnly,
}

impl FileAccess {
    fn status(self) -> &'static str {
        match self {
            FileAccess::Open => "open",
            FileAccess::Restricted => "restricted",
            FileAccess::Embargoed => "embargoed",
            FileAccess::MetadataOnly => "metadata-only",
        }
    }
}

/// One community as the sample knows it.
struct Community {
    id: String,
    slug: String,
    title: String,
    created: String,
}

/// A parent (a concept record) shared by its versions: communities belong to it.
struct Parent {
    id: String,
    uuid: String,
    owner: u64,
    communities: Vec<usize>,
    access: FileAccess,
}

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

/// RDM's timestamps: microseconds and an offset.
fn rdm_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// 1 to `max` distinct items of `items`, built by `make`.
fn some_of<T: PartialEq + Copy>(
    rng: &mut SeededRng,
    items: &[T],
    max: u64,
    make: impl Fn(T) -> Value,
) -> Vec<Value> {
    let mut used: Vec<T> = Vec::new();
    for _ in 0..1 + rng.below(max) {
        let item = *rng.pick(items);
        if !used.contains(&item) {
            used.push(item);
        }
    }
    used.into_iter().map(make).collect()
}

/// The sample's last day.
fn end_day(options: &SampleOptions) -> Result<NaiveDate> {
    match &options.end_date {
        Some(text) => crate::dates::parse_day("--end-date", text),
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

impl crate::options::Validate for SampleOptions {
    fn validate(&self) -> Result<()> {
        validate(self)?;
        end_day(self).map(|_| ())
    }
}

/// The first day of the event window: the first of the month `months - 1` before `end`'s.
fn first_month(end: NaiveDate, months: u32) -> NaiveDate {
    let index = end.format("%Y").to_string().parse::<i32>().unwrap_or(2000) * 12
        + end.format("%m").to_string().parse::<i32>().unwrap_or(1)
        - 1
        - (months as i32 - 1);
    NaiveDate::from_ymd_opt(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)
        .expect("valid month")
}

/// Loads the sample into the cluster. Refuses to touch a prefix that already has a records index.
pub async fn load(client: &SearchClient, options: &SampleOptions) -> Result<SampleReport> {
    validate(options)?;
    let end = end_day(options)?;
    let files = PackageFiles::new(&options.package_roots);
    // Read every file first: a missing package changes nothing.
    files.read(packages::RECORDS_MAPPING, "")?;
    files.read(packages::COMMUNITIES_MAPPING, "")?;
    for template in packages::EVENT_TEMPLATES {
        files.read(template, "")?;
    }
    let records_alias = client.index("rdmrecords-records");
    if client.exists(&records_alias).await? {
        return Err(Error::Data(format!(
            "{records_alias} already exists: the sample is only loaded into an empty index prefix"
        )));
    }
    let now = Utc::now();
    // The end of the last day, or now when that is today: no event is in the future.
    let end_ts = Utc
        .from_utc_datetime(&end.and_hms_opt(23, 59, 59).expect("valid time"))
        .min(now);
    let events_start = Utc.from_utc_datetime(
        &first_month(end, options.months)
            .and_hms_opt(0, 0, 0)
            .expect("valid time"),
    );

    let mut report = SampleReport {
        index_prefix: client.settings().index_prefix.clone(),
        ..Default::default()
    };
    // invenio-search's index suffix is the creation time; a fixed one keeps the sample deterministic.
    let suffix = "1700000000";
    report
        .created_indices
        .push(packages::create_index(client, &files, packages::RECORDS_MAPPING, suffix).await?);
    report
        .created_indices
        .push(packages::create_index(client, &files, packages::COMMUNITIES_MAPPING, suffix).await?);
    packages::add_dashboard_flag(client).await?;
    for template in packages::EVENT_TEMPLATES {
        packages::install_legacy_template(client, &files, template).await?;
    }

    let progress = Progress::from_env("load-sample-data");
    progress.set_total(u64::from(options.records));
    progress.set_task("writing communities");
    let mut rng = SeededRng::new(options.seed);
    let mut writer = BulkPipeline::new(client.clone(), BulkOp::Index, 1000, 2);

    let mut communities = Vec::new();
    for i in 0..options.communities {
        let id = rng.uuid();
        let created = rdm_time(events_start - Duration::days(400 + i64::from(i)));
        let community = Community {
            id: id.clone(),
            slug: format!("sample-community-{}", i + 1),
            title: format!("Sample community {}", i + 1),
            created: created.clone(),
        };
        // Every second community has never had the custom field set: `custom_fields: {}`.
        let custom_fields = if i % 2 == 0 {
            json!({packages::DASHBOARD_FLAG: true})
        } else {
            json!({})
        };
        let doc = json!({
            "id": id, "uuid": id, "slug": community.slug, "created": created, "updated": created,
            "version_id": 2, "is_verified": true, "deletion_status": "P", "is_deleted": false,
            "access": {"visibility": "public", "members_visibility": "public", "record_submission_policy": "open",
                       "review_policy": "open"},
            "metadata": {"title": community.title, "type": {"id": "organization", "title": {"en": "Organization", "de": "Organisation"}}},
            "custom_fields": custom_fields,
            "children": {"allow": false},
        });
        writer.add(&client.index("communities"), &id, &doc).await?;
        communities.push(community);
        report.communities += 1;
    }

    let span_secs = (end_ts - events_start).num_seconds().max(1);
    let mut versions: Vec<(String, DateTime<Utc>, Vec<FileRef>)> = Vec::new();
    while report.records < u64::from(options.records) {
        if client.cancel_token().is_cancelled() {
            let done = writer.finish().await?;
            return Err(Error::Cancelled(format!(
                "sample loading stopped after {} records ({} documents written)",
                report.records, done.written
            )));
        }
        // A parent and its versions (about one parent in five has two or three), which share
        // its communities, owner and file access.
        let parent_id = rdm_id(&mut rng);
        let mut prng = SeededRng::for_key(options.seed, &parent_id);
        let member_of = if communities.is_empty() || prng.below(5) == 0 {
            Vec::new()
        } else {
            let mut c = vec![prng.below(communities.len() as u64) as usize];
            let other = prng.below(communities.len() as u64) as usize;
            if prng.below(4) == 0 && !c.contains(&other) {
                c.push(other);
            }
            c
        };
        let access = match prng.below(20) {
            0..=11 => FileAccess::Open,
            12..=14 => FileAccess::Restricted,
            15..=16 => FileAccess::Embargoed,
            _ => FileAccess::MetadataOnly,
        };
        let parent = Parent {
            id: parent_id,
            uuid: prng.uuid(),
            owner: 1 + prng.below(40),
            communities: member_of,
            access,
        };
        let count = match prng.below(10) {
            0 => 3,
            1 => 2,
            _ => 1,
        }
        .min(u64::from(options.records) - report.records);
        // Created between 6 months before the event window and its end; later versions after.
        let mut created = events_start - Duration::days(180)
            + Duration::seconds(prng.below((span_secs + 180 * 86400) as u64) as i64)
            + Duration::microseconds(prng.below(1_000_000) as i64);
        versions.clear();
        for version in 1..=count {
            if version > 1 {
                created = (created + Duration::days(1 + prng.below(60) as i64))
                    .min(end_ts - Duration::minutes(version as i64));
                report.new_versions += 1;
            }
            let recid = rdm_id(&mut rng);
            let mut rrng = SeededRng::for_key(options.seed, &recid);
            let deleted = rrng.below(30) == 0;
            let (mut record, record_files) = record_document(
                &mut rrng,
                &recid,
                &parent,
                &communities,
                created,
                deleted,
                end_ts,
            );
            record["versions"] =
                json!({"index": version, "is_latest": version == count, "latest_index": count});
            if matches!(
                parent.access,
                FileAccess::Restricted | FileAccess::Embargoed
            ) {
                report.records_with_hidden_files += 1;
            }
            if deleted {
                report.deleted_records += 1;
            }
            writer.add(&records_alias, &recid, &record).await?;
            report.records += 1;
            progress.advance(1);
            if report.records % 1000 == 1 {
                progress.set_task(format!(
                    "writing records and their events ({} of {})",
                    report.records, options.records
                ));
            }
            versions.push((recid, created, record_files));
        }
        for (recid, created, record_files) in &versions {
            let created = *created;
            let mut rrng = SeededRng::for_key(options.seed.wrapping_add(1), recid);
            // Usage events between max(created, window start) and the end. Downloads name the
            // record's files, also those the index does not list (restricted or embargoed files
            // are downloaded by the people allowed to), in a bucket the index never shows.
            let first = created.max(events_start);
            let window = (end_ts - first).num_seconds();
            if window <= 0 || options.events_per_record == 0 {
                continue;
            }
            let n_events = 1 + rrng.below(u64::from(options.events_per_record) * 2);
            for _ in 0..n_events {
                let ts: DateTime<Utc> = first + Duration::seconds(rrng.below(window as u64) as i64);
                let event_type = if !record_files.is_empty() && rrng.below(3) == 0 {
                    EventType::Download
                } else {
                    EventType::View
                };
                let visitor = Visitor {
                    visitor_id: rrng.hex(56),
                    country: if rrng.below(10) == 0 {
                        None
                    } else {
                        Some(rrng.pick(COUNTRIES).to_string())
                    },
                    referrer: if rrng.below(2) == 0 {
                        Some(format!("https://example.org/search?q={}", rrng.below(100)))
                    } else {
                        None
                    },
                    is_robot: false,
                    is_machine: rrng.below(40) == 0,
                    via_api: rrng.below(12) == 0,
                };
                let file = if event_type == EventType::Download {
                    Some(rrng.pick(record_files))
                } else {
                    None
                };
                let updated = ts + Duration::microseconds(1 + rrng.below(3_000_000_000) as i64);
                let (id, doc) = build_event(
                    event_type,
                    ts,
                    recid,
                    &parent.id,
                    &visitor,
                    file,
                    updated.min(now.max(ts)),
                );
                let index =
                    client.index(&event_type.monthly_index(&ts.format("%Y-%m").to_string()));
                if !report.event_indices.contains(&index) {
                    report.event_indices.push(index.clone());
                }
                writer.add(&index, &id, &doc).await?;
            }
        }
    }
    let written = writer.finish().await?;
    if written.failed > 0 {
        return Err(Error::Data(format!(
            "the cluster refused {} sample documents: {}",
            written.failed,
            written.failure_reasons.join("; ")
        )));
    }
    progress.set_task("refreshing indices");
    progress.flush();
    client.refresh(&format!("{}*", client.index(""))).await?;
    report.event_indices.sort();
    // Duplicate event ids (same visitor, same 10 s window) collapse, as in invenio-stats: count what is there.
    report.view_events = client
        .count(&client.index("events-stats-record-view-*"), None)
        .await?;
    report.download_events = client
        .count(&client.index("events-stats-file-download-*"), None)
        .await?;
    Ok(report)
}

/// One record version as RDM's dumper indexes it, and the files its events may name (all of
/// its files, also those the index does not list).
#[allow(clippy::too_many_arguments)]
fn record_document(
    rng: &mut SeededRng,
    recid: &str,
    parent: &Parent,
    communities: &[Community],
    created: DateTime<Utc>,
    deleted: bool,
    end_ts: DateTime<Utc>,
) -> (Value, Vec<FileRef>) {
    let bucket_id = rng.uuid();
    let file_refs: Vec<FileRef> = if parent.access == FileAccess::MetadataOnly {
        Vec::new()
    } else {
        (0..1 + rng.below(3))
            .map(|n| {
                let (ext, _) = rng.pick(EXTENSIONS);
                FileRef {
                    bucket_id: bucket_id.clone(),
                    file_id: rng.uuid(),
                    file_key: format!("data-{}.{ext}", n + 1),
                    size: (1000 + rng.below(50_000_000)) as f64,
                }
            })
            .collect()
    };
    let files = match parent.access {
        FileAccess::MetadataOnly => json!({"enabled": false}),
        // What RDM indexes for a public record whose files are restricted or embargoed.
        FileAccess::Restricted | FileAccess::Embargoed => json!({"enabled": true}),
        FileAccess::Open => {
            let mime = |key: &str| {
                let ext = key.rsplit('.').next().unwrap_or_default();
                EXTENSIONS
                    .iter()
                    .find(|(e, _)| *e == ext)
                    .map(|(_, m)| *m)
                    .unwrap_or("application/octet-stream")
            };
            let entries: Vec<Value> = file_refs
                .iter()
                .map(|f| {
                    let ext = f.file_key.rsplit('.').next().unwrap_or_default();
                    json!({"key": f.file_key, "ext": ext, "size": f.size as u64, "mimetype": mime(&f.file_key),
                           "checksum": format!("md5:{}", rng.hex(32)), "file_id": f.file_id,
                           "object_version_id": rng.uuid(), "version_id": 1, "metadata": {}, "access": {"hidden": false}})
                })
                .collect();
            let mut types: Vec<&str> = file_refs
                .iter()
                .map(|f| f.file_key.rsplit('.').next().unwrap_or_default())
                .collect();
            types.sort_unstable();
            types.dedup();
            let mut mimetypes: Vec<&str> = file_refs.iter().map(|f| mime(&f.file_key)).collect();
            mimetypes.sort_unstable();
            mimetypes.dedup();
            json!({"enabled": true, "count": entries.len(), "totalbytes": file_refs.iter().map(|f| f.size as u64).sum::<u64>(),
                   "types": types, "mimetypes": mimetypes, "entries": entries,
                   "default_preview": file_refs.first().map(|f| f.file_key.clone())})
        }
    };
    let member: Vec<&Community> = parent
        .communities
        .iter()
        .map(|&i| &communities[i])
        .collect();
    let parent_communities = if member.is_empty() {
        json!({})
    } else {
        json!({
            "ids": member.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
            "default": member[0].id,
            "entries": member.iter().map(|c| json!({"id": c.id, "uuid": c.id, "slug": c.slug, "created": c.created,
                "updated": c.created, "version_id": 2, "is_verified": true, "metadata": {"title": c.title}})).collect::<Vec<_>>(),
        })
    };
    let affiliations = |r: &mut SeededRng| -> Vec<Value> {
        if r.below(4) == 0 {
            vec![json!({"name": r.pick(FREE_AFFILIATIONS)})]
        } else {
            some_of(
                r,
                AFFILIATIONS,
                2,
                |(id, name)| json!({"id": id, "name": name}),
            )
        }
    };
    let creators: Vec<Value> = (0..1 + rng.below(3))
        .map(|n| {
            json!({"person_or_org": {"type": "personal", "name": format!("Author{n}, Sam"), "given_name": "Sam",
                                     "family_name": format!("Author{n}")},
                   "affiliations": affiliations(rng)})
        })
        .collect();
    let contributors: Vec<Value> = (0..rng.below(2))
        .map(|n| {
            json!({"person_or_org": {"type": "personal", "name": format!("Editor{n}, Kim"), "family_name": format!("Editor{n}")},
                   "role": {"id": "editor", "title": {"en": "Editor"}}, "affiliations": affiliations(rng)})
        })
        .collect();
    let (rt_id, rt_en, rt_de, rt_type, rt_subtype) = *rng.pick(RESOURCE_TYPES);
    let rights = if rng.below(5) == 0 {
        vec![
            json!({"title": {"en": rng.pick(CUSTOM_LICENCES)}, "description": {"en": "See the record's notes."}}),
        ]
    } else {
        some_of(rng, RIGHTS, 1, |(id, title, url, icon)| {
            let mut r = json!({"id": id, "title": {"en": title}, "description": {"en": format!("{title}.")},
                               "props": {"url": url, "scheme": "spdx"}});
            if !icon.is_empty() {
                r["icon"] = json!(icon);
            }
            r
        })
    };
    let mut subjects = some_of(
        rng,
        SUBJECTS,
        2,
        |(id, s)| json!({"id": id, "subject": s, "scheme": "FOS"}),
    );
    if rng.below(2) == 0 {
        subjects.push(json!({"subject": rng.pick(KEYWORDS)}));
    }
    let funding = if rng.below(3) == 0 {
        Vec::new()
    } else if rng.below(4) == 0 {
        vec![json!({"funder": {"name": rng.pick(FREE_FUNDERS)}})]
    } else {
        some_of(
            rng,
            FUNDERS,
            2,
            |(id, name)| json!({"funder": {"id": id, "name": name}}),
        )
    };
    let mut access = json!({"record": "public", "files": if parent.access == FileAccess::Open { "public" } else { "restricted" },
                            "status": parent.access.status(), "embargo": {"active": false, "reason": null}});
    if parent.access == FileAccess::Embargoed {
        access["embargo"] = json!({"active": true, "until": (end_ts + Duration::days(365)).format("%Y-%m-%d").to_string(), "reason": null});
    }
    let publication = match rng.below(3) {
        0 => created.format("%Y").to_string(),
        1 => created.format("%Y-%m").to_string(),
        _ => created.format("%Y-%m-%d").to_string(),
    };
    let custom_fields = if rng.below(3) == 0 {
        json!({"journal:journal": {"title": rng.pick(JOURNALS), "volume": "12"}})
    } else {
        json!({})
    };
    let mut record = json!({
        "id": recid, "uuid": rng.uuid(), "version_id": 3,
        "pid": {"pk": rng.below(1_000_000), "pid_type": "recid", "obj_type": "rec", "status": "R"},
        "created": rdm_time(created), "updated": rdm_time(created),
        "is_published": true, "is_deleted": deleted, "deletion_status": if deleted { "D" } else { "P" },
        "has_draft": false,
            "parent": {"id": parent.id, "uuid": parent.uuid,
                   "pid": {"pk": 1, "pid_type": "recid", "obj_type": "rec", "status": "R"},
                   "access": {"owned_by": {"user": parent.owner.to_string()},
                              "settings": {"allow_user_requests": false, "allow_guest_requests": false, "secret_link_expiration": 0}},
                   "communities": parent_communities, "pids": {}},
        "pids": {},
        "access": access,
        "files": files,
        "media_files": {"enabled": false},
        "metadata": {
            "title": format!("Sample record {recid}"),
            "publication_date": publication,
            "resource_type": {"id": rt_id, "title": {"en": rt_en, "de": rt_de}, "props": {"type": rt_type, "subtype": rt_subtype}},
            "languages": some_of(rng, LANGUAGES, 2, |(id, en, de)| json!({"id": id, "title": {"en": en, "de": de}})),
            "subjects": subjects,
            "rights": rights,
            "funding": funding,
            "publisher": rng.pick(PUBLISHERS),
            "creators": creators,
            "contributors": contributors,
        },
        "custom_fields": custom_fields,
    });
    if deleted {
        let removal = (created + Duration::days(1 + rng.below(60) as i64)).min(end_ts);
        record["tombstone"] = json!({"removal_date": rdm_time(removal), "removal_reason": {"id": "spam-record"},
                                     "note": "", "removed_by": {"user": "1"}, "citation_text": "", "is_visible": true});
    }
    (record, file_refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_month_counts_back_over_year_ends() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).unwrap();
        assert_eq!(first_month(d(2025, 6, 30), 3), d(2025, 4, 1));
        assert_eq!(first_month(d(2025, 2, 10), 3), d(2024, 12, 1));
        assert_eq!(first_month(d(2025, 1, 1), 25), d(2023, 1, 1));
    }

    #[test]
    fn hidden_files_are_not_listed_but_still_downloadable() {
        let parent = Parent {
            id: "p".into(),
            uuid: "u".into(),
            owner: 1,
            communities: vec![],
            access: FileAccess::Restricted,
        };
        let end = Utc.with_ymd_and_hms(2025, 6, 30, 23, 59, 59).unwrap();
        let (doc, files) = record_document(
            &mut SeededRng::new(1),
            "r",
            &parent,
            &[],
            end - Duration::days(3),
            false,
            end,
        );
        assert_eq!(doc["files"], json!({"enabled": true}));
        assert!(!files.is_empty());
        assert!(doc.get("bucket_id").is_none());
        assert_eq!(doc["parent"]["communities"], json!({}));
    }
}
