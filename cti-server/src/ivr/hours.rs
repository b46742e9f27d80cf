//! Business hours: weekly opening periods in a named time zone, minus holidays.
//!
//! The wall clock comes in as an argument ([`BusinessHours::is_open`]); the time zone database
//! is bundled into the binary (jiff's `tzdb-bundle-always`), so a flow gives the same answer on
//! every host and the tests can pin DST transitions.

use std::collections::BTreeSet;
use std::time::SystemTime;

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;

/// One opening period: on each of `days`, from `from` (inclusive) to `to` (exclusive), in
/// minutes after local midnight. `to` may be 1440 (`"24:00"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub days: BTreeSet<WeekdayIndex>,
    pub from: u16,
    pub to: u16,
}

/// Monday = 0 .. Sunday = 6 (ordered, so a period's days print in week order).
pub type WeekdayIndex = u8;

/// Opening hours of one business-hours node.
#[derive(Debug, Clone)]
pub struct BusinessHours {
    pub time_zone: TimeZone,
    pub periods: Vec<Period>,
    /// Local dates on which the business is closed all day.
    pub holidays: BTreeSet<Date>,
}

impl BusinessHours {
    /// Whether `wall` falls inside an opening period, in the local time of the time zone.
    ///
    /// A wall clock before 1970 or beyond jiff's range (a broken host clock) counts as
    /// closed: the caller then gets the after-hours branch rather than a panic.
    pub fn is_open(&self, wall: SystemTime) -> bool {
        let Ok(ts) = Timestamp::try_from(wall) else {
            return false;
        };
        let local = ts.to_zoned(self.time_zone.clone());
        if self.holidays.contains(&local.date()) {
            return false;
        }
        let day = weekday_index(local.weekday());
        let t = local.time();
        let minute = u16::from(t.hour().unsigned_abs()) * 60 + u16::from(t.minute().unsigned_abs());
        self.periods
            .iter()
            .any(|p| p.days.contains(&day) && p.from <= minute && minute < p.to)
    }
}

/// One opening period as written in a flow or the configuration:
/// `{ days = ["Mon-Fri"], from = "08:00", to = "20:00" }`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodSpec {
    pub days: Vec<String>,
    pub from: String,
    pub to: String,
}

impl BusinessHours {
    /// Opening hours from their written form, with every problem found (empty when the
    /// hours are usable). A period past midnight (`from = "22:00"`, `to = "06:00"`) ends on
    /// the next day.
    pub fn from_spec(
        time_zone: &str,
        specs: &[PeriodSpec],
        holidays: &[String],
    ) -> (BusinessHours, Vec<String>) {
        let mut problems = Vec::new();
        let time_zone = TimeZone::get(time_zone).unwrap_or_else(|e| {
            problems.push(format!("`time_zone` {time_zone:?}: {e}"));
            TimeZone::UTC
        });
        if specs.is_empty() {
            problems.push("`periods` is empty: the business would never be open".into());
        }
        let mut periods = Vec::with_capacity(specs.len());
        for (i, p) in specs.iter().enumerate() {
            let mut days = BTreeSet::new();
            if p.days.is_empty() {
                problems.push(format!("`periods[{i}].days` is empty"));
            }
            for d in &p.days {
                match parse_days(d) {
                    Ok(ds) => days.extend(ds),
                    Err(e) => problems.push(format!("`periods[{i}].days`: {e}")),
                }
            }
            match (parse_clock(&p.from), parse_clock(&p.to)) {
                (Ok(from), Ok(to)) if from < to => periods.push(Period { days, from, to }),
                (Ok(from), Ok(to)) if from > to && to > 0 => {
                    // A night shift: from `from` on each day to `to` on the next.
                    let next = days.iter().map(|d| (d + 1) % 7).collect();
                    periods.push(Period {
                        days,
                        from,
                        to: 24 * 60,
                    });
                    periods.push(Period {
                        days: next,
                        from: 0,
                        to,
                    });
                }
                (Ok(_), Ok(_)) => problems.push(format!(
                    "`periods[{i}]`: from {:?} and to {:?} make an empty period (a period past \
                     midnight ends on the next day: from \"22:00\" to \"06:00\")",
                    p.from, p.to
                )),
                (Err(e), _) | (_, Err(e)) => problems.push(format!("`periods[{i}]`: {e}")),
            }
        }
        let mut dates = BTreeSet::new();
        for h in holidays {
            match h.parse::<Date>() {
                Ok(d) => {
                    dates.insert(d);
                }
                Err(e) => problems.push(format!("`holidays`: {h:?} is not a YYYY-MM-DD date: {e}")),
            }
        }
        let hours = BusinessHours {
            time_zone,
            periods,
            holidays: dates,
        };
        (hours, problems)
    }
}

fn weekday_index(w: Weekday) -> WeekdayIndex {
    // to_monday_zero_offset is 0..=6 by construction.
    w.to_monday_zero_offset().unsigned_abs()
}

/// Parses a day name (`"mon"` .. `"sun"`, or the full English name, any case) or a range of
/// them (`"mon-fri"`; a range may wrap past Sunday, `"fri-mon"`).
pub fn parse_days(s: &str) -> Result<Vec<WeekdayIndex>, String> {
    let one = |d: &str| -> Result<WeekdayIndex, String> {
        const NAMES: [&str; 7] = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ];
        let d = d.trim().to_ascii_lowercase();
        NAMES
            .iter()
            .position(|n| d.len() >= 3 && n.starts_with(d.as_str()))
            .map(|i| i as WeekdayIndex)
            .ok_or_else(|| format!("unknown day {d:?} (mon, tue, wed, thu, fri, sat, sun)"))
    };
    match s.split_once('-') {
        None => Ok(vec![one(s)?]),
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            let mut days = vec![a];
            let mut d = a;
            while d != b {
                d = (d + 1) % 7;
                days.push(d);
            }
            Ok(days)
        }
    }
}

/// Parses `"HH:MM"` (00:00 .. 24:00) into minutes after midnight.
pub fn parse_clock(s: &str) -> Result<u16, String> {
    let bad = || format!("time {s:?} is not HH:MM between 00:00 and 24:00");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn wall(utc: &str) -> SystemTime {
        let ts: Timestamp = utc.parse().expect("test timestamp");
        SystemTime::from(ts)
    }

    fn berlin_weekdays_8_to_20(holidays: &[&str]) -> BusinessHours {
        BusinessHours {
            time_zone: TimeZone::get("Europe/Berlin").expect("bundled tzdb"),
            periods: vec![Period {
                days: parse_days("mon-fri").unwrap().into_iter().collect(),
                from: parse_clock("08:00").unwrap(),
                to: parse_clock("20:00").unwrap(),
            }],
            holidays: holidays.iter().map(|d| d.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn open_inside_and_closed_at_the_edges_in_local_time() {
        let h = berlin_weekdays_8_to_20(&[]);
        // Wednesday 2026-01-14, CET = UTC+1.
        assert!(!h.is_open(wall("2026-01-14T06:59:59Z")), "07:59:59 local");
        assert!(h.is_open(wall("2026-01-14T07:00:00Z")), "08:00 local");
        assert!(h.is_open(wall("2026-01-14T18:59:59Z")), "19:59:59 local");
        assert!(
            !h.is_open(wall("2026-01-14T19:00:00Z")),
            "20:00 local is closed"
        );
    }

    #[test]
    fn weekends_are_closed_by_local_date_not_utc_date() {
        let h = berlin_weekdays_8_to_20(&[]);
        assert!(!h.is_open(wall("2026-01-17T10:00:00Z")), "Saturday");
        assert!(!h.is_open(wall("2026-01-18T10:00:00Z")), "Sunday");
        // Friday 19:30 local is still Friday in UTC; Monday 08:30 local = 07:30 UTC Monday.
        assert!(h.is_open(wall("2026-01-16T18:30:00Z")));
        assert!(h.is_open(wall("2026-01-19T07:30:00Z")));
        // Tokyo: Monday 08:30 local is Sunday 23:30 UTC: open although UTC says Sunday.
        let tokyo = BusinessHours {
            time_zone: TimeZone::get("Asia/Tokyo").unwrap(),
            ..berlin_weekdays_8_to_20(&[])
        };
        assert!(tokyo.is_open(wall("2026-01-18T23:30:00Z")));
        assert!(
            !tokyo.is_open(wall("2026-01-17T23:30:00Z")),
            "Sunday 08:30 Tokyo"
        );
    }

    #[test]
    fn holidays_close_the_whole_local_day() {
        let h = berlin_weekdays_8_to_20(&["2026-12-24", "2026-12-31"]);
        assert!(
            !h.is_open(wall("2026-12-24T10:00:00Z")),
            "Thursday, a holiday"
        );
        assert!(
            h.is_open(wall("2026-12-23T10:00:00Z")),
            "the day before is not"
        );
        assert!(!h.is_open(wall("2026-12-31T12:00:00Z")));
        // 2027-01-01 00:30 local (a Friday, not listed) is 2026-12-31 23:30 UTC: the holiday
        // is judged by the local date, and it is closed anyway by the hour.
        assert!(
            h.is_open(wall("2027-01-01T07:00:00Z")),
            "08:00 local, not a holiday"
        );
    }

    #[test]
    fn dst_transitions_shift_the_utc_opening_time() {
        let h = berlin_weekdays_8_to_20(&[]);
        // Spring: Sunday 2026-03-29 02:00 CET -> 03:00 CEST. Monday 08:00 local is 06:00 UTC.
        assert!(h.is_open(wall("2026-03-30T06:00:00Z")));
        assert!(!h.is_open(wall("2026-03-30T05:59:00Z")));
        // The Monday before, 06:00 UTC was 07:00 local: closed.
        assert!(!h.is_open(wall("2026-03-23T06:00:00Z")));
        // Autumn: Sunday 2026-10-25 03:00 CEST -> 02:00 CET. Monday 08:00 local is 07:00 UTC.
        assert!(!h.is_open(wall("2026-10-26T06:30:00Z")));
        assert!(h.is_open(wall("2026-10-26T07:00:00Z")));
        // A period through the repeated hour: 02:00-03:00 on the autumn Sunday is open for
        // both of its occurrences (two real hours).
        let night = BusinessHours {
            time_zone: TimeZone::get("Europe/Berlin").unwrap(),
            periods: vec![Period {
                days: [6].into_iter().collect(),
                from: 120,
                to: 180,
            }],
            holidays: BTreeSet::new(),
        };
        assert!(night.is_open(wall("2026-10-25T00:30:00Z")), "02:30 CEST");
        assert!(night.is_open(wall("2026-10-25T01:30:00Z")), "02:30 CET");
        assert!(!night.is_open(wall("2026-10-25T02:00:00Z")), "03:00 CET");
        // The skipped spring hour never happens, so such a period is never open that night.
        let spring = wall("2026-03-29T00:59:59Z");
        assert!(!night.is_open(spring), "01:59:59 CET");
        assert!(
            !night.is_open(spring + Duration::from_secs(1)),
            "03:00 CEST"
        );
    }

    #[test]
    fn a_pre_epoch_clock_counts_as_closed() {
        let h = berlin_weekdays_8_to_20(&[]);
        let broken = SystemTime::UNIX_EPOCH - Duration::from_secs(3600 * 24 * 365 * 100_000);
        assert!(!h.is_open(broken));
    }

    #[test]
    fn days_and_clock_parse_strictly() {
        assert_eq!(parse_days("Mon-Fri").unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(parse_days("fri-mon").unwrap(), vec![4, 5, 6, 0]);
        assert_eq!(parse_days("sunday").unwrap(), vec![6]);
        assert_eq!(parse_days("sat-sat").unwrap(), vec![5]);
        assert!(parse_days("mo").is_err());
        assert!(parse_days("funday").is_err());
        assert_eq!(parse_clock("24:00").unwrap(), 1440);
        assert_eq!(parse_clock("08:30").unwrap(), 510);
        for bad in ["8:00", "24:01", "12:60", "1200", "ab:cd", ""] {
            assert!(parse_clock(bad).is_err(), "{bad}");
        }
    }
}
