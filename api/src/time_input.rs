//! The one time format assay accepts wherever a person or a system types a time, on the
//! command line, in a JSON body or a query string: RFC 3339 (`2026-10-05T12:00:00Z`) or
//! a date (`2026-10-05`). An instant given as a date means the end of that day (UTC),
//! so "as of 2026-10-05" includes the whole day; a day given as an instant means its
//! UTC date.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Deserializer};

const EXPECTED: &str = "expected RFC 3339 (2026-10-05T12:00:00Z) or a date (2026-10-05)";

/// An instant: RFC 3339, or a date meaning the last microsecond of that day (UTC).
pub fn instant(text: &str) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_micro_opt(23, 59, 59, 999_999))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{text}` is not a time: {EXPECTED}"))
}

/// A day: a date, or RFC 3339 meaning that instant's UTC date.
pub fn day(text: &str) -> Result<NaiveDate, String> {
    let text = text.trim();
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&Utc).date_naive())
        })
        .ok_or_else(|| format!("`{text}` is not a day: {EXPECTED}"))
}

/// [`instant`] for an optional field of a JSON body (`null` or absent: unset; an empty
/// string is not a time).
pub fn optional_instant<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .map(|text| instant(&text).map_err(serde::de::Error::custom))
        .transpose()
}

/// [`day`] for an optional query-string parameter; `?launched_from=` (empty) is unset,
/// as for the other filters.
pub fn optional_day<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<NaiveDate>, D::Error> {
    Option::<String>::deserialize(deserializer)?
        .filter(|text| !text.is_empty())
        .map(|text| day(&text).map_err(serde::de::Error::custom))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_and_an_instant_are_both_accepted_for_each() {
        let end_of_day = instant("2026-10-05").unwrap();
        assert_eq!(end_of_day.to_rfc3339(), "2026-10-05T23:59:59.999999+00:00");
        assert_eq!(
            instant("2026-10-05T14:00:00+02:00").unwrap().to_rfc3339(),
            "2026-10-05T12:00:00+00:00"
        );
        let d = NaiveDate::from_ymd_opt(2026, 10, 5).unwrap();
        assert_eq!(day("2026-10-05"), Ok(d));
        assert_eq!(day("2026-10-05T23:30:00Z"), Ok(d));
        assert_eq!(day("2026-10-06T01:00:00+02:00"), Ok(d), "the UTC date");
        for bad in ["05/10/2026", "2026-13-01", "yesterday"] {
            let e = instant(bad).unwrap_err();
            assert!(e.contains(bad) && e.contains("RFC 3339"), "{e}");
            assert!(day(bad).unwrap_err().contains("a date (2026-10-05)"));
        }
    }
}
