//! Dates as operators type them (`YYYY-MM-DD`) and as InvenioRDM stores publication dates
//! (EDTF: `2020`, `2020-10`, `2020-10-13`, intervals `2020/2021`, qualifiers `2020?`).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};

use crate::error::{Error, Result};

/// The earliest year an operator's date may name: usage statistics start with the web, and
/// the event templates' dates have four-digit years (year 0 would poison every later run).
pub const FIRST_YEAR: i32 = 1900;

/// Parses an option value `YYYY-MM-DD` (years 1900 to 9999), naming the option in the error.
pub fn parse_day(option: &str, text: &str) -> Result<NaiveDate> {
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").map_err(|_| {
        Error::invalid(format!(
            "{option} {text:?} is not a date (expected YYYY-MM-DD)"
        ))
    })?;
    if !(FIRST_YEAR..=9999).contains(&day.year()) {
        return Err(Error::invalid(format!(
            "{option} {text:?} is out of range (years {FIRST_YEAR} to 9999)"
        )));
    }
    Ok(day)
}

/// Parses an optional `YYYY-MM-DD` option.
pub fn parse_day_opt(option: &str, text: Option<&str>) -> Result<Option<NaiveDate>> {
    text.filter(|t| !t.trim().is_empty())
        .map(|t| parse_day(option, t))
        .transpose()
}

/// Checks `start <= end` when both are given.
pub fn check_range(what: &str, start: Option<NaiveDate>, end: Option<NaiveDate>) -> Result<()> {
    if let (Some(s), Some(e)) = (start, end) {
        if e < s {
            return Err(Error::invalid(format!(
                "{what}: end date {e} is before start date {s}"
            )));
        }
    }
    Ok(())
}

/// 00:00:00 UTC of `day`.
pub fn start_of_day(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// 23:59:59 UTC of `day` (event timestamps have second resolution).
pub fn end_of_day(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(23, 59, 59).expect("valid time"))
}

/// Parses a stored timestamp (`2024-06-01T10:00:00+00:00`, `...Z`, `2024-06-01T10:00:00`,
/// with or without fractions, or a bare date) as UTC.
/// Every form OpenSearch's `strict_date_optional_time` takes is read: fractions, `Z`,
/// `+02:00` or `+0200` offsets, minutes or hours only. A time without an offset is UTC.
pub fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let t = text.trim();
    match parse_stored_form(t) {
        Some(naive) => Some(Utc.from_utc_datetime(&naive)),
        None => parse_any_form(t),
    }
}

/// [`parse_timestamp`] of a trimmed text by chrono's parsers, one form after another.
fn parse_any_form(t: &str) -> Option<DateTime<Utc>> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, fmt) {
            return Some(dt.with_timezone(&Utc));
        }
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
            return Some(Utc.from_utc_datetime(&naive));
        }
    }
    if t.len() == 13 && t.as_bytes()[10] == b'T' {
        // `2024-06-01T10`: the hour only.
        return NaiveDateTime::parse_from_str(&format!("{t}:00"), "%Y-%m-%dT%H:%M")
            .ok()
            .map(|n| Utc.from_utc_datetime(&n));
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .map(start_of_day)
}

/// A stored timestamp in the form the v2 event mapping takes
/// (`strict_date_hour_minute_second`): UTC, to the second (fractions dropped). `None` when
/// it cannot be read.
pub fn utc_seconds(text: &str) -> Option<String> {
    let t = text.trim();
    if parse_stored_form(t).is_some() {
        // Already UTC to the second, after any fraction: the first 19 characters.
        return Some(t[..19].to_string());
    }
    parse_any_form(t).map(second_timestamp)
}

/// The form InvenioRDM stores event timestamps in, `YYYY-MM-DDTHH:MM:SS` with an optional
/// fraction (1 to 9 digits) and an optional `Z`, read without chrono's format parser: it
/// was about a tenth of a migration's client CPU, trying four formats per event. `None`
/// for any other form (the general path reads those) or an invalid date or time.
fn parse_stored_form(t: &str) -> Option<NaiveDateTime> {
    let b = t.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let rest = &b[19..];
    let rest = rest.strip_suffix(b"Z").unwrap_or(rest);
    let fraction = match rest {
        [] => &[][..],
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => digits,
        _ => return None,
    };
    let number = |digits: &[u8]| -> Option<u32> {
        digits.iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let nanos = number(fraction)? * 10u32.pow(9 - fraction.len() as u32);
    let date = NaiveDate::from_ymd_opt(
        i32::try_from(number(&b[0..4])?).ok()?,
        number(&b[5..7])?,
        number(&b[8..10])?,
    )?;
    let time = NaiveTime::from_hms_nano_opt(
        number(&b[11..13])?,
        number(&b[14..16])?,
        number(&b[17..19])?,
        nanos,
    )?;
    Some(date.and_time(time))
}

/// The first day an EDTF date or interval stands for: `2020` -> 2020-01-01, `2020-10` ->
/// 2020-10-01, `2020/2021` -> 2020-01-01, `../2021` -> 2021-01-01, `2020-21` (spring) ->
/// 2020-03-01, qualifiers (`?`, `~`, `%`) ignored. `None` when nothing can be read.
pub fn edtf_start(text: &str) -> Option<NaiveDate> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    let (first, second) = match t.split_once('/') {
        Some((a, b)) => (a.trim(), Some(b.trim())),
        None => (t, None),
    };
    let first = if first.is_empty() || first == ".." {
        second?
    } else {
        first
    };
    let cleaned: String = first
        .chars()
        .filter(|c| !matches!(c, '?' | '~' | '%'))
        .collect();
    // A timestamp: take its date.
    let date_part = cleaned.split('T').next().unwrap_or("");
    let parts: Vec<&str> = date_part.split('-').collect();
    let year: i32 = parts.first()?.parse().ok()?;
    let month: u32 = match parts.get(1) {
        None => 1,
        Some(m) => {
            let m: u32 = m.parse().ok()?;
            match m {
                1..=12 => m,
                21 | 25 | 29 => 3,
                22 | 26 | 30 => 6,
                23 | 27 | 31 => 9,
                24 | 28 | 32 => 12,
                // "2020-2021" (a year range written with a hyphen)
                _ if parts.len() == 2 && parts[1].len() == 4 => 1,
                _ => return None,
            }
        }
    };
    let day: u32 = match parts.get(2) {
        None => 1,
        Some(d) => d.parse().ok()?,
    };
    NaiveDate::from_ymd_opt(year, month, day)
}

/// `YYYY-MM-DDT00:00:00`: a day as the aggregation documents and bookmarks write it.
pub fn day_start(day: NaiveDate) -> String {
    format!("{}T00:00:00", day.format("%Y-%m-%d"))
}

/// Now, UTC, to the second (the documents' `timestamp` format).
pub fn now_stamp() -> String {
    Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// A time with milliseconds (`YYYY-MM-DDTHH:MM:SS.mmm`), as community events write it.
pub fn millis_stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string()
}

/// The day of a `YYYY-MM-DD...` string.
pub fn parse_day_prefix(text: &str) -> Option<NaiveDate> {
    text.get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

/// Every day of `[from, to]`.
pub fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

/// `YYYY-MM-DDTHH:MM:SS` (what the event templates' `strict_date_hour_minute_second` takes),
/// written digit by digit (this runs several times for every event; `format!` was a
/// tenth of a generator's CPU).
pub fn second_timestamp(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(26);
    push_second_timestamp(&mut out, t);
    out
}

/// Appends [`second_timestamp`] to `out`.
pub fn push_second_timestamp(out: &mut String, t: DateTime<Utc>) {
    // The naive UTC value: each accessor of a `DateTime` applies the (zero) offset again.
    let t = t.naive_utc();
    let year = t.year();
    if !(0..=9999).contains(&year) {
        out.push_str(&format!(
            "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ));
        return;
    }
    let digits = push_digits;
    digits(out, year as u32, 4);
    out.push('-');
    digits(out, t.month(), 2);
    out.push('-');
    digits(out, t.day(), 2);
    out.push('T');
    digits(out, t.hour(), 2);
    out.push(':');
    digits(out, t.minute(), 2);
    out.push(':');
    digits(out, t.second(), 2);
}

/// Appends `value` as `width` decimal digits (zero-padded, higher digits dropped).
pub fn push_digits(out: &mut String, value: u32, width: u32) {
    for k in (0..width).rev() {
        out.push(char::from(b'0' + (value / 10u32.pow(k) % 10) as u8));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_reads_as_the_general_parsers_read_it() {
        let texts = [
            "2025-03-05T12:34:56",
            "2025-03-05T12:34:56Z",
            "2025-03-05T12:34:56.1",
            "2025-03-05T12:34:56.123456",
            "2025-03-05T12:34:56.123456789Z",
            "2024-02-29T23:59:59.999",
            "1999-12-31T00:00:00",
        ];
        for t in texts {
            let fast = parse_stored_form(t).map(|n| Utc.from_utc_datetime(&n));
            assert!(fast.is_some(), "{t}");
            assert_eq!(fast, parse_any_form(t), "{t}");
            assert_eq!(
                utc_seconds(t),
                parse_any_form(t).map(second_timestamp),
                "{t}"
            );
        }
        // Not the stored form (or not valid): left to the general parsers.
        let others = [
            "2025-03-05T12:34:56+02:00",
            "2025-03-05T12:34:56.5-0130",
            "2025-03-05T12:34",
            "2025-03-05",
            "2025-02-30T00:00:00",
            "2025-13-01T00:00:00",
            "2025-03-05T24:00:00",
            "2025-03-05T23:59:60",
            "2025-03-05T12:34:56.",
            "2025-03-05T12:34:56.1234567890",
            "2025-03-05T12:34:5x",
            "+025-03-05T12:34:56",
            "2025-03-05 12:34:56",
            "2025-03-05T12:34:56ZZ",
        ];
        for t in others {
            assert_eq!(parse_stored_form(t), None, "{t}");
            assert_eq!(
                utc_seconds(t),
                parse_any_form(t).map(second_timestamp),
                "{t}"
            );
        }
        assert_eq!(
            utc_seconds(" 2025-03-05T12:34:56.7Z "),
            Some("2025-03-05T12:34:56".into())
        );
    }

    #[test]
    fn every_form_of_strict_date_optional_time_becomes_utc_seconds() {
        for (text, utc) in [
            ("2025-05-01T10:00:00", "2025-05-01T10:00:00"),
            ("2025-05-01T10:00:00.987654", "2025-05-01T10:00:00"),
            ("2025-05-01T10:00:00.123Z", "2025-05-01T10:00:00"),
            ("2025-05-01T10:00:00+02:00", "2025-05-01T08:00:00"),
            ("2025-05-01T10:00:00.5+0200", "2025-05-01T08:00:00"),
            ("2025-05-01T01:30:00-03:00", "2025-05-01T04:30:00"),
            ("2025-05-01T00:30:00+01:00", "2025-04-30T23:30:00"),
            ("2025-05-01T10:15", "2025-05-01T10:15:00"),
            ("2025-05-01T10:15Z", "2025-05-01T10:15:00"),
            ("2025-05-01T10", "2025-05-01T10:00:00"),
            ("2025-05-01", "2025-05-01T00:00:00"),
        ] {
            assert_eq!(utc_seconds(text).as_deref(), Some(utc), "{text}");
        }
        assert_eq!(utc_seconds("yesterday"), None);
    }

    fn d(y: i32, m: u32, day: u32) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(y, m, day)
    }

    #[test]
    fn edtf_dates_and_intervals_give_their_start() {
        assert_eq!(edtf_start("2010"), d(2010, 1, 1));
        assert_eq!(edtf_start("2020-10"), d(2020, 10, 1));
        assert_eq!(edtf_start("2020-10-13"), d(2020, 10, 13));
        assert_eq!(edtf_start("2020/2021"), d(2020, 1, 1));
        assert_eq!(edtf_start("2020-01/2020-06"), d(2020, 1, 1));
        assert_eq!(edtf_start("../2021"), d(2021, 1, 1));
        assert_eq!(edtf_start("2020/.."), d(2020, 1, 1));
        assert_eq!(edtf_start("2020-2021"), d(2020, 1, 1));
        assert_eq!(edtf_start("2020?"), d(2020, 1, 1));
        assert_eq!(edtf_start("2020-21"), d(2020, 3, 1));
        assert_eq!(edtf_start("2020-10-13T12:00:00Z"), d(2020, 10, 13));
        assert_eq!(edtf_start("garbage"), None);
        assert_eq!(edtf_start(""), None);
        assert_eq!(edtf_start("2020-13-40"), None);
    }

    #[test]
    fn option_dates() {
        assert!(parse_day("--start-date", "2024-02-30").is_err());
        assert_eq!(
            parse_day("--start-date", "2024-02-29").unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
        );
        let s = parse_day_opt("--a", Some("2024-05-02")).unwrap();
        let e = parse_day_opt("--b", Some("2024-05-01")).unwrap();
        assert!(check_range("records", s, e).is_err());
        assert!(check_range("records", e, s).is_ok());
    }

    #[test]
    fn timestamps_in_every_stored_shape() {
        let want = Utc.with_ymd_and_hms(2024, 6, 1, 10, 0, 0).unwrap();
        for t in [
            "2024-06-01T10:00:00+00:00",
            "2024-06-01T10:00:00Z",
            "2024-06-01T10:00:00",
            "2024-06-01T10:00:00.000",
        ] {
            assert_eq!(parse_timestamp(t), Some(want), "{t}");
        }
        assert_eq!(
            parse_timestamp("2024-06-01"),
            Some(start_of_day(NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()))
        );
        assert_eq!(
            end_of_day(NaiveDate::from_ymd_opt(2024, 6, 1).unwrap()).to_rfc3339(),
            "2024-06-01T23:59:59+00:00"
        );
    }
}
