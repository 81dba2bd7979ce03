//! Instants as text, in UTC — the one formatter of the workspace: RFC 3339 (`2026-01-01T00:00:00Z`, what Kubernetes
//! objects, image configs and SPDX use), the form `status` and error messages show (`2026-12-01 20:17:04 UTC`), a
//! compact form for file names, and the time of day `status` shows for recent events (`20:17:04.123Z`). Unix
//! seconds (or milliseconds) in; the calendar arithmetic is the `time` crate's. Instants outside years 0–9999
//! (which no certificate or build here has) are shown as their Unix seconds.

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

const HUMAN: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");

const COMPACT: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

fn instant(unix: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(unix).ok()
}

/// `2026-01-01T00:00:00Z` for `unix` seconds.
pub fn rfc3339(unix: i64) -> String {
    instant(unix)
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// `2026-01-01T00:00:00Z` for `secs` seconds since the epoch (the builder's `SOURCE_DATE_EPOCH`, unsigned).
pub fn rfc3339_secs(secs: u64) -> String {
    rfc3339(i64::try_from(secs).unwrap_or(i64::MAX))
}

/// `HH:MM:SS.mmmZ` of a unix-ms instant (the date is rarely what an operator needs on a host that just booted).
pub fn time_of_day_ms(ms: u64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}.{:03}Z",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60,
        ms % 1000
    )
}

/// `2026-12-01 20:17:04 UTC` for `unix` seconds.
pub fn human(unix: i64) -> String {
    instant(unix)
        .and_then(|t| t.format(HUMAN).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// `20261201T201704Z` for `unix` seconds (for file names).
pub fn compact(unix: i64) -> String {
    instant(unix)
        .and_then(|t| t.format(COMPACT).ok())
        .unwrap_or_else(|| format!("{unix}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(compact(1_767_225_600), "20260101T000000Z");
        assert_eq!(rfc3339(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_798_761_599), "2026-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(human(1_796_156_224), "2026-12-01 20:17:04 UTC");
        assert_eq!(rfc3339(i64::MAX), format!("@{}", i64::MAX));
    }

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(951_827_696), "2000-02-29T12:34:56Z");
    }

    #[test]
    fn utc_formats_time_of_day() {
        assert_eq!(
            time_of_day_ms(1_767_225_600_123 + 3_723_000),
            "01:02:03.123Z"
        );
    }
}
