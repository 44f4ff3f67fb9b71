//! `--decide-at HH:MM --tz ZONE`: when a scheduled decision run is due.

use std::str::FromStr;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// A daily time in a time zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecideAt {
    pub time: NaiveTime,
    pub tz: Tz,
}

impl DecideAt {
    /// `time` as `HH:MM` and an IANA zone name (`Europe/Berlin`, `UTC`).
    ///
    /// # Errors
    /// A time or zone that does not parse, said in words.
    pub fn parse(time: &str, tz: &str) -> Result<Self, String> {
        let time = NaiveTime::parse_from_str(time, "%H:%M")
            .map_err(|_| format!("decide-at `{time}`: expected a time of day as HH:MM (24 h)"))?;
        let tz = Tz::from_str(tz).map_err(|_| {
            format!("tz `{tz}`: expected an IANA time zone name such as UTC or Europe/Berlin")
        })?;
        Ok(Self { time, tz })
    }

    /// The newest due time at or before `now`: today's in the zone, or yesterday's
    /// when today's is still ahead.
    pub fn latest_due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let today = now.with_timezone(&self.tz).date_naive();
        let due = self.on(today);
        if due <= now {
            due
        } else {
            self.on(today - Days::new(1))
        }
    }

    /// The first due time after `now`.
    pub fn next_due(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let latest = self.latest_due(now);
        let date = latest.with_timezone(&self.tz).date_naive() + Days::new(1);
        self.on(date)
    }

    /// The time on `date` in the zone. A time that a clock change skips (02:30 on the
    /// spring-forward night) is taken an hour later; one it repeats, the first time.
    fn on(&self, date: chrono::NaiveDate) -> DateTime<Utc> {
        let local = date.and_time(self.time);
        self.tz
            .from_local_datetime(&local)
            .earliest()
            .or_else(|| {
                self.tz
                    .from_local_datetime(&(local + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map_or_else(|| local.and_utc(), |t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn due_times_follow_the_zone_and_its_clock_changes() {
        let berlin = DecideAt::parse("06:00", "Europe/Berlin").unwrap();
        // Winter: 06:00 in Berlin is 05:00 UTC.
        assert_eq!(
            berlin.latest_due(utc("2026-12-07T05:30:00Z")),
            utc("2026-12-07T05:00:00Z")
        );
        assert_eq!(
            berlin.latest_due(utc("2026-12-07T04:59:00Z")),
            utc("2026-12-06T05:00:00Z")
        );
        assert_eq!(
            berlin.next_due(utc("2026-12-07T05:00:00Z")),
            utc("2026-12-08T05:00:00Z")
        );
        // Summer: 04:00 UTC.
        assert_eq!(
            berlin.next_due(utc("2026-07-01T12:00:00Z")),
            utc("2026-07-02T04:00:00Z")
        );
        // 02:30 does not exist on 2026-03-29 in Berlin: taken at 03:30 CEST.
        let skipped = DecideAt::parse("02:30", "Europe/Berlin").unwrap();
        assert_eq!(
            skipped.next_due(utc("2026-03-28T12:00:00Z")),
            utc("2026-03-29T01:30:00Z")
        );
    }

    #[test]
    fn bad_times_and_zones_are_named() {
        assert!(DecideAt::parse("6am", "UTC").unwrap_err().contains("HH:MM"));
        assert!(
            DecideAt::parse("25:00", "UTC")
                .unwrap_err()
                .contains("HH:MM")
        );
        assert!(
            DecideAt::parse("06:00", "Mars/Olympus")
                .unwrap_err()
                .contains("Mars/Olympus")
        );
    }
}
