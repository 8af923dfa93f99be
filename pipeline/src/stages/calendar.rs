//! Working days (工作日) from the configured holiday calendar: weekends are rest days unless
//! listed as 调休 workdays, listed holidays are rest days. Pure.

use crate::config::catalogue::CalendarFile;
use chrono::{Datelike, NaiveDate, Weekday};
use std::collections::HashSet;

/// The compiled calendar.
pub struct WorkCalendar {
    zone: chrono_tz::Tz,
    holidays: HashSet<NaiveDate>,
    workdays: HashSet<NaiveDate>,
    covered_until: NaiveDate,
}

impl WorkCalendar {
    /// Builds the calendar; dates were validated with the catalogue.
    pub fn new(file: &CalendarFile) -> WorkCalendar {
        let parse = |s: &String| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
        WorkCalendar {
            // Validated with the catalogue; the default is the shipped one.
            zone: file.time_zone.parse().unwrap_or(chrono_tz::Asia::Shanghai),
            holidays: file.holidays.iter().filter_map(parse).collect(),
            workdays: file.workdays.iter().filter_map(parse).collect(),
            covered_until: parse(&file.covered_until).unwrap_or(NaiveDate::MIN),
        }
    }

    /// The organ's time zone.
    pub fn zone(&self) -> chrono_tz::Tz {
        self.zone
    }

    /// The organ's day at a Unix-millisecond time (today's for a time out of range).
    pub fn day_of(&self, ms: i64) -> NaiveDate {
        chrono::DateTime::from_timestamp_millis(ms)
            .unwrap_or_else(chrono::Utc::now)
            .with_timezone(&self.zone)
            .date_naive()
    }

    /// The first instant of a day in the organ's zone, as Unix milliseconds.
    pub fn start_of(&self, day: NaiveDate) -> Option<i64> {
        use chrono::TimeZone;
        let midnight = day.and_hms_opt(0, 0, 0)?;
        self.zone.from_local_datetime(&midnight).earliest().map(|t| t.timestamp_millis())
    }

    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.workdays.contains(&d) {
            return true;
        }
        !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) && !self.holidays.contains(&d)
    }

    /// The `n`th working day after `from` (the day of receipt does not count), and whether
    /// the calendar covers every day up to it.
    pub fn add_working_days(&self, from: NaiveDate, n: u32) -> (NaiveDate, bool) {
        let mut d = from;
        let mut left = n;
        while left > 0 {
            match d.succ_opt() {
                Some(next) => d = next,
                None => break,
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        (d, d <= self.covered_until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn national_day_week_and_makeup_saturday() {
        let cal = WorkCalendar::new(&CalendarFile {
            time_zone: "Asia/Shanghai".into(),
            covered_until: "2026-12-31".into(),
            holidays: ["2026-10-01", "2026-10-02", "2026-10-05", "2026-10-06", "2026-10-07"].map(String::from).into(),
            workdays: vec!["2026-10-10".into()],
        });
        let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
        // Received Wednesday 30 Sep: 8 and 9 Oct are working days, then Saturday 10 Oct (调休).
        assert_eq!(cal.add_working_days(d("2026-09-30"), 3), (d("2026-10-10"), true));
        assert!(!cal.add_working_days(d("2026-12-30"), 5).1, "past covered_until");
    }
}
