//! Usage-event documents in the shape invenio-stats indexes them (after anonymisation),
//! with `_id`s in invenio-stats' form, so re-writing the same event is idempotent.

use chrono::{DateTime, Timelike, Utc};

use crate::bulk::push_json_str;
use crate::dates::{push_digits, push_second_timestamp, second_timestamp};
use serde_json::Value;

/// The two kinds of usage event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A record page view (`record-view`).
    View,
    /// A file download (`file-download`).
    Download,
}

impl EventType {
    /// Both types, views first.
    pub const ALL: [EventType; 2] = [EventType::View, EventType::Download];

    /// `record-view` / `file-download`: the invenio-stats event name.
    pub fn stats_name(self) -> &'static str {
        match self {
            EventType::View => "record-view",
            EventType::Download => "file-download",
        }
    }

    /// `view` / `download`: the name operators type.
    pub fn short_name(self) -> &'static str {
        match self {
            EventType::View => "view",
            EventType::Download => "download",
        }
    }

    /// Parses `view` or `download` (also the invenio-stats names).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "view" | "record-view" => Some(EventType::View),
            "download" | "file-download" => Some(EventType::Download),
            _ => None,
        }
    }

    /// The legacy monthly index (without prefix): `events-stats-record-view-YYYY-MM`.
    pub fn monthly_index(self, month: &str) -> String {
        format!("events-stats-{}-{}", self.stats_name(), month)
    }

    /// The read alias (without prefix): `events-stats-record-view`.
    pub fn alias(self) -> String {
        format!("events-stats-{}", self.stats_name())
    }
}

/// Appends the lowercase hex of `bytes` to `out`.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

/// The SHA-1 of the concatenated parts (with the CPU's SHA instructions where it has them:
/// the portable code was a tenth of a generator's CPU).
pub fn sha1_digest(parts: &[&[u8]]) -> [u8; 20] {
    use sha1::Digest;
    let mut sha = sha1::Sha1::new();
    for part in parts {
        sha.update(part);
    }
    sha.finalize().into()
}

/// The hex SHA-1 of the concatenated parts.
pub fn sha1_hex(parts: &[&[u8]]) -> String {
    let mut out = String::with_capacity(40);
    push_hex(&mut out, &sha1_digest(parts));
    out
}

/// invenio-stats' `hash_id`: `<timestamp rounded down to 10 s>-<sha1(unique_id + visitor_id)>`.
pub fn event_id(timestamp: DateTime<Utc>, unique_id: &str, visitor_id: &str) -> String {
    let second = timestamp.second() - timestamp.second() % 10;
    let windowed = timestamp
        .with_second(second)
        .unwrap_or(timestamp)
        .with_nanosecond(0)
        .unwrap_or(timestamp);
    let mut id = String::with_capacity(60);
    push_second_timestamp(&mut id, windowed);
    id.push('-');
    push_hex(
        &mut id,
        &sha1_digest(&[unique_id.as_bytes(), visitor_id.as_bytes()]),
    );
    id
}

/// RFC 4122 name-based UUID, version 5 (SHA-1), of `name` in `namespace`.
pub fn uuid5(namespace: &[u8; 16], name: &str) -> String {
    let mut b: [u8; 16] = sha1_digest(&[namespace, name.as_bytes()])[..16]
        .try_into()
        .expect("20 bytes");
    b[6] = (b[6] & 0x0f) | 0x50;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, chunk) in [&b[0..4], &b[4..6], &b[6..8], &b[8..10], &b[10..16]]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push('-');
        }
        push_hex(&mut out, chunk);
    }
    out
}

/// The RFC 4122 URL namespace (`uuid.NAMESPACE_URL` in Python).
const NAMESPACE_URL: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// A stable files-bucket id for a record whose index document has none (a real records
/// index never has one): `uuid5(NAMESPACE_URL, "invenio-community-stats:bucket:<record id>")`,
/// i.e. in Python `uuid.uuid5(uuid.NAMESPACE_URL, f"invenio-community-stats:bucket:{recid}")`.
pub fn derived_bucket_id(recid: &str) -> String {
    uuid5(
        &NAMESPACE_URL,
        &format!("invenio-community-stats:bucket:{recid}"),
    )
}

/// What an event needs to know about its visitor.
#[derive(Clone, Debug)]
pub struct Visitor {
    /// Anonymised visitor id (sha224-shaped hex).
    pub visitor_id: String,
    /// ISO country code; `None` where GeoIP knows none (written as `null`, as invenio-stats does).
    pub country: Option<String>,
    /// Referrer URL; `None` is written as `null` (a request without a referrer).
    pub referrer: Option<String>,
    /// Flagged as a robot (invenio-stats' `filter_robots` drops robots, so real events say false).
    pub is_robot: bool,
    /// Flagged as a machine client.
    pub is_machine: bool,
    /// Made through the REST API (views then have the unique id `api_<recid>`).
    pub via_api: bool,
}

/// The file of a download event.
#[derive(Clone, Debug)]
pub struct FileRef {
    /// The record's files bucket.
    pub bucket_id: String,
    /// The file object's id.
    pub file_id: String,
    /// The file name.
    pub file_key: String,
    /// Size in bytes.
    pub size: f64,
}

/// A download's `size`: a whole number of bytes is written as an integer.
#[derive(Clone, Copy, Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Size {
    /// Whole bytes.
    Bytes(i64),
    /// Anything else, as given.
    Other(f64),
}

/// One legacy (v1) event document, serialised straight into bulk bodies (fields in
/// alphabetical order, as a JSON object tree would write them).
#[derive(Clone, Debug, serde::Serialize)]
pub struct LegacyEvent<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket_id: Option<&'a str>,
    country: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_key: Option<&'a str>,
    is_machine: bool,
    is_robot: bool,
    parent_recid: &'a str,
    recid: &'a str,
    referrer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<Size>,
    timestamp: String,
    unique_id: String,
    unique_session_id: String,
    updated_timestamp: String,
    via_api: bool,
    visitor_id: &'a str,
}

impl LegacyEvent<'_> {
    /// Appends the document as JSON, byte for byte what serde_json writes for it (a unit
    /// test compares them), without serde's escaping pass over keys and values that need
    /// none: that pass was a tenth of a generator's CPU.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        fn text(out: &mut Vec<u8>, key: &[u8], value: Option<&str>) {
            out.extend_from_slice(key);
            match value {
                Some(v) => push_json_str(out, v),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b',');
        }
        fn flag(out: &mut Vec<u8>, key: &[u8], value: bool) {
            out.extend_from_slice(key);
            out.extend_from_slice(if value { b"true," } else { b"false," });
        }
        out.push(b'{');
        if let Some(bucket_id) = self.bucket_id {
            text(out, b"\"bucket_id\":", Some(bucket_id));
        }
        text(out, b"\"country\":", self.country);
        if let Some(file_id) = self.file_id {
            text(out, b"\"file_id\":", Some(file_id));
        }
        if let Some(file_key) = self.file_key {
            text(out, b"\"file_key\":", Some(file_key));
        }
        flag(out, b"\"is_machine\":", self.is_machine);
        flag(out, b"\"is_robot\":", self.is_robot);
        text(out, b"\"parent_recid\":", Some(self.parent_recid));
        text(out, b"\"recid\":", Some(self.recid));
        text(out, b"\"referrer\":", self.referrer);
        if let Some(size) = self.size {
            out.extend_from_slice(b"\"size\":");
            serde_json::to_writer(&mut *out, &size).expect("a number serialises");
            out.push(b',');
        }
        // Digits and hex written by `legacy_event`: nothing to escape.
        let made = |out: &mut Vec<u8>, key: &[u8], value: &str| {
            debug_assert!(value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-:.+T".contains(&b)));
            out.extend_from_slice(key);
            out.push(b'"');
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\",");
        };
        made(out, b"\"timestamp\":", &self.timestamp);
        text(out, b"\"unique_id\":", Some(&self.unique_id));
        made(out, b"\"unique_session_id\":", &self.unique_session_id);
        made(out, b"\"updated_timestamp\":", &self.updated_timestamp);
        flag(out, b"\"via_api\":", self.via_api);
        text(out, b"\"visitor_id\":", Some(self.visitor_id));
        // The last field's comma closes the object instead.
        *out.last_mut().expect("fields written") = b'}';
    }
}

/// Builds one legacy (v1) event and its `_id`.
pub fn legacy_event<'a>(
    event_type: EventType,
    timestamp: DateTime<Utc>,
    recid: &'a str,
    parent_recid: &'a str,
    visitor: &'a Visitor,
    file: Option<&'a FileRef>,
    updated: DateTime<Utc>,
) -> (String, LegacyEvent<'a>) {
    let timestamp = timestamp.with_nanosecond(0).unwrap_or(timestamp);
    let download = match (event_type, file) {
        (EventType::Download, Some(f)) => Some(f),
        _ => None,
    };
    let unique_id = match download {
        Some(f) => [f.bucket_id.as_str(), "_", f.file_id.as_str()].concat(),
        None => [if visitor.via_api { "api_" } else { "ui_" }, recid].concat(),
    };
    let timestamp_text = second_timestamp(timestamp);
    // The hour time-slice of invenio-stats' unique_session_id: YYYYMMDDHH (event years have
    // four digits: the templates' date format takes no other).
    let t = timestamp_text.as_bytes();
    let unique_session_id = sha1_hex(&[
        visitor.visitor_id.as_bytes(),
        &t[0..4],
        &t[5..7],
        &t[8..10],
        &t[11..13],
    ]);
    let id = event_id(timestamp, &unique_id, &visitor.visitor_id);
    // As invenio-stats writes it: `datetime.now(timezone.utc).isoformat()`.
    let mut updated_timestamp = String::with_capacity(32);
    push_second_timestamp(&mut updated_timestamp, updated);
    updated_timestamp.push('.');
    push_digits(
        &mut updated_timestamp,
        updated.timestamp_subsec_micros().min(999_999),
        6,
    );
    updated_timestamp.push_str("+00:00");
    let event = LegacyEvent {
        bucket_id: download.map(|f| f.bucket_id.as_str()),
        country: visitor.country.as_deref(),
        file_id: download.map(|f| f.file_id.as_str()),
        file_key: download.map(|f| f.file_key.as_str()),
        is_machine: visitor.is_machine,
        is_robot: visitor.is_robot,
        parent_recid,
        recid,
        referrer: visitor.referrer.as_deref(),
        size: download.map(|f| {
            if f.size.fract() == 0.0 && f.size.abs() < 9e15 {
                Size::Bytes(f.size as i64)
            } else {
                Size::Other(f.size)
            }
        }),
        timestamp: timestamp_text,
        unique_id,
        unique_session_id,
        updated_timestamp,
        via_api: visitor.via_api,
        visitor_id: &visitor.visitor_id,
    };
    (id, event)
}

/// Builds one legacy (v1) event document and its `_id`.
pub fn build_event(
    event_type: EventType,
    timestamp: DateTime<Utc>,
    recid: &str,
    parent_recid: &str,
    visitor: &Visitor,
    file: Option<&FileRef>,
    updated: DateTime<Utc>,
) -> (String, Value) {
    let (id, event) = legacy_event(
        event_type,
        timestamp,
        recid,
        parent_recid,
        visitor,
        file,
        updated,
    );
    (id, serde_json::to_value(&event).expect("serialises"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn id_has_invenio_stats_form() {
        let ts = Utc.with_ymd_and_hms(2024, 5, 1, 12, 34, 57).unwrap();
        let id = event_id(ts, "ui_abc", "v1");
        let mut sha = sha1_smol::Sha1::new();
        sha.update(b"ui_abcv1");
        assert_eq!(id, format!("2024-05-01T12:34:50-{}", sha.digest()));
    }

    #[test]
    fn manual_formats_match_chrono_and_format() {
        let mut rng = crate::rng::SeededRng::new(7);
        for _ in 0..2000 {
            let ts = Utc
                .timestamp_opt(
                    rng.below(8_000_000_000) as i64 - 1_000_000_000,
                    rng.below(1_000_000_000) as u32,
                )
                .unwrap();
            assert_eq!(
                second_timestamp(ts),
                ts.format("%Y-%m-%dT%H:%M:%S").to_string()
            );
            let v = Visitor {
                visitor_id: rng.hex(56),
                country: Some("DE".into()),
                referrer: None,
                is_robot: false,
                is_machine: false,
                via_api: false,
            };
            let (id, event) = build_event(EventType::View, ts, "r", "p", &v, None, ts);
            // The fields as the straightforward `format!` versions write them.
            let mut sha = sha1_smol::Sha1::new();
            sha.update(v.visitor_id.as_bytes());
            sha.update(ts.format("%Y%m%d%H").to_string().as_bytes());
            assert_eq!(event["unique_session_id"], sha.digest().to_string());
            assert_eq!(
                event["updated_timestamp"],
                ts.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
            );
            let mut sha = sha1_smol::Sha1::new();
            sha.update(format!("ui_r{}", v.visitor_id).as_bytes());
            let window = ts.with_second(ts.second() / 10 * 10).unwrap();
            assert_eq!(
                id,
                format!("{}-{}", window.format("%Y-%m-%dT%H:%M:%S"), sha.digest())
            );
        }
    }

    #[test]
    fn written_json_is_what_serde_writes() {
        let ts = Utc.with_ymd_and_hms(2024, 5, 1, 10, 11, 12).unwrap();
        let updated = Utc.timestamp_opt(1_714_558_272, 123_456_789).unwrap();
        let odd = "https://example.org/?q=\"quoted\"\\back\nline\u{1}\u{7f}é中";
        let visitors = [
            Visitor {
                visitor_id: "v1".into(),
                country: Some("DE".into()),
                referrer: Some(odd.into()),
                is_robot: false,
                is_machine: true,
                via_api: false,
            },
            Visitor {
                visitor_id: "v\"2".into(),
                country: None,
                referrer: None,
                is_robot: true,
                is_machine: false,
                via_api: true,
            },
        ];
        let files = [
            FileRef {
                bucket_id: "b".into(),
                file_id: "f".into(),
                file_key: "data \"v2\"\t.csv".into(),
                size: 10.0,
            },
            FileRef {
                bucket_id: "b2".into(),
                file_id: "f2".into(),
                file_key: "plain.csv".into(),
                size: 2.5,
            },
        ];
        for v in &visitors {
            for event_type in EventType::ALL {
                for file in [None, Some(&files[0]), Some(&files[1])] {
                    for recid in ["r1", "r\\1"] {
                        let (_, event) =
                            legacy_event(event_type, ts, recid, "p\u{2}", v, file, updated);
                        let mut ours = Vec::new();
                        event.write_json(&mut ours);
                        let serde = serde_json::to_vec(&event).unwrap();
                        assert_eq!(
                            String::from_utf8(ours).unwrap(),
                            String::from_utf8(serde).unwrap()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn derived_bucket_ids_are_python_uuid5() {
        // uuid.uuid5(uuid.NAMESPACE_URL, "python.org") == 7af94e2b-4dd9-50f0-9c9a-8a48519bdef0
        assert_eq!(
            uuid5(&NAMESPACE_URL, "python.org"),
            "7af94e2b-4dd9-50f0-9c9a-8a48519bdef0"
        );
        assert_eq!(
            derived_bucket_id("abcde-12345"),
            derived_bucket_id("abcde-12345")
        );
        assert_ne!(
            derived_bucket_id("abcde-12345"),
            derived_bucket_id("abcde-12346")
        );
    }

    #[test]
    fn download_carries_its_file_and_view_does_not() {
        let ts = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap();
        let v = Visitor {
            visitor_id: "x".into(),
            country: None,
            referrer: None,
            is_robot: false,
            is_machine: false,
            via_api: true,
        };
        let f = FileRef {
            bucket_id: "b".into(),
            file_id: "f".into(),
            file_key: "a.csv".into(),
            size: 10.0,
        };
        let (_, view) = build_event(EventType::View, ts, "r", "p", &v, Some(&f), ts);
        assert!(view.get("file_id").is_none());
        assert_eq!(view["unique_id"], "api_r");
        assert!(view["country"].is_null() && view["referrer"].is_null() && view["via_api"] == true);
        let (_, dl) = build_event(EventType::Download, ts, "r", "p", &v, Some(&f), ts);
        assert_eq!(dl["unique_id"], "b_f");
        assert_eq!(dl["size"], 10.0);
        assert_eq!(
            EventType::View.monthly_index("2024-05"),
            "events-stats-record-view-2024-05"
        );
    }
}
