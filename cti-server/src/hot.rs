//! Hot-lead reporting, the software vendor's flow (DOMAIN "Hot-lead reporting"): a lead is
//! hot when all five criteria hold; the telemarketer reports it with what the customer said
//! for each, and the sales manager accepts or rejects it within a number of working days.
//! Silence until then counts as accepted; a rejection carries a reason and gives the lead back
//! to its telemarketer.
//!
//! The rules here are pure (the wall clock comes in as an argument); the store keeps the
//! reports ([`crate::store::hot_leads`]) and the API serves them ([`crate::api_hot_leads`]).

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// The five criteria, by key, with what each means.
pub const CRITERIA: [(&str, &str); 5] = [
    ("timeline", "a clear timeline"),
    ("selection_team", "a selection team"),
    ("owner", "a named owner"),
    ("go_live", "a go-live date"),
    ("fit", "it fits the product"),
];

/// Longest answer to one criterion.
pub const MAX_ANSWER: usize = 300;

/// What the customer said for each criterion: the evidence the sales manager reviews.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Criteria {
    pub timeline: String,
    pub selection_team: String,
    pub owner: String,
    /// `YYYY-MM-DD`.
    pub go_live: String,
    pub fit: String,
}

impl Criteria {
    fn answers(&self) -> [&str; 5] {
        [
            &self.timeline,
            &self.selection_team,
            &self.owner,
            &self.go_live,
            &self.fit,
        ]
    }

    /// The criteria trimmed, or every problem with them: a hot lead needs all five, and the
    /// go-live date must be a date.
    pub fn checked(&self) -> Result<Criteria, String> {
        let mut missing = Vec::new();
        let mut problems = Vec::new();
        for ((key, meaning), answer) in CRITERIA.iter().zip(self.answers()) {
            let answer = answer.trim();
            if answer.is_empty() {
                missing.push(format!("{key} ({meaning})"));
            } else if answer.chars().count() > MAX_ANSWER {
                problems.push(format!("{key}: {MAX_ANSWER} characters at most"));
            }
        }
        let go_live = self.go_live.trim();
        if !go_live.is_empty() && go_live.parse::<Date>().is_err() {
            problems.push(format!("go_live {go_live:?}: a date as YYYY-MM-DD"));
        }
        if !missing.is_empty() {
            problems.insert(
                0,
                format!(
                    "a hot lead needs all five criteria; missing: {}",
                    missing.join(", ")
                ),
            );
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Criteria {
            timeline: self.timeline.trim().into(),
            selection_team: self.selection_team.trim().into(),
            owner: self.owner.trim().into(),
            go_live: go_live.into(),
            fit: self.fit.trim().into(),
        })
    }
}

/// The sales managers' working days: Monday to Friday in a time zone, less holidays; and how
/// many of them a review may take.
#[derive(Debug, Clone)]
pub struct ReviewCalendar {
    time_zone: TimeZone,
    holidays: BTreeSet<Date>,
    days: u32,
}

impl ReviewCalendar {
    /// `days` working days in `time_zone` (IANA), `holidays` as `YYYY-MM-DD`.
    pub fn new(time_zone: &str, holidays: &[String], days: u32) -> Result<Self, String> {
        let time_zone =
            TimeZone::get(time_zone).map_err(|e| format!("time zone {time_zone:?}: {e}"))?;
        let holidays = holidays
            .iter()
            .map(|h| {
                h.parse::<Date>()
                    .map_err(|e| format!("holiday {h:?} is not a YYYY-MM-DD date: {e}"))
            })
            .collect::<Result<_, _>>()?;
        if days == 0 {
            return Err("hot_lead_review_days: at least 1".into());
        }
        Ok(ReviewCalendar {
            time_zone,
            holidays,
            days,
        })
    }

    pub fn days(&self) -> u32 {
        self.days
    }

    pub fn is_working_day(&self, d: Date) -> bool {
        !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) && !self.holidays.contains(&d)
    }

    /// Until when a report made at `reported_ms` may be reviewed: the end (local midnight) of
    /// the `days`-th working day after the day it was made. A report on Friday afternoon with
    /// five days is due by the end of the next Friday. A time out of range (a broken clock)
    /// gets `days` calendar days.
    pub fn deadline(&self, reported_ms: i64) -> i64 {
        let fallback = reported_ms.saturating_add(i64::from(self.days) * crate::leads::DAY_MS);
        let Ok(ts) = Timestamp::from_millisecond(reported_ms) else {
            return fallback;
        };
        let mut day = ts.to_zoned(self.time_zone.clone()).date();
        let mut left = self.days;
        while left > 0 {
            let Ok(next) = day.tomorrow() else {
                return fallback;
            };
            day = next;
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day.tomorrow()
            .and_then(|d| d.to_zoned(self.time_zone.clone()))
            .map_or(fallback, |z| z.timestamp().as_millisecond())
    }
}

/// A sales manager's answer to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject,
}

impl Decision {
    pub fn parse(s: &str) -> Option<Decision> {
        match s {
            "accept" => Some(Decision::Accept),
            "reject" => Some(Decision::Reject),
            _ => None,
        }
    }

    /// The report's state after it.
    pub fn state(self) -> &'static str {
        match self {
            Decision::Accept => "accepted",
            Decision::Reject => "rejected",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(utc: &str) -> i64 {
        utc.parse::<Timestamp>().unwrap().as_millisecond()
    }

    fn full() -> Criteria {
        Criteria {
            timeline: " decision by March ".into(),
            selection_team: "CFO and two accountants".into(),
            owner: "Ms Weber (CFO)".into(),
            go_live: "2027-04-01".into(),
            fit: "payroll for 40 staff".into(),
        }
    }

    #[test]
    fn all_five_criteria_are_needed_and_trimmed() {
        let c = full().checked().unwrap();
        assert_eq!(c.timeline, "decision by March");
        let mut two_missing = full();
        two_missing.selection_team = "  ".into();
        two_missing.fit = String::new();
        let e = two_missing.checked().unwrap_err();
        assert!(
            e.contains("missing: selection_team (a selection team), fit (it fits the product)"),
            "{e}"
        );
        let mut bad_date = full();
        bad_date.go_live = "next spring".into();
        assert!(bad_date.checked().unwrap_err().contains("go_live"));
        let mut long = full();
        long.owner = "x".repeat(MAX_ANSWER + 1);
        assert!(long.checked().unwrap_err().contains("owner: 300"));
    }

    #[test]
    fn five_working_days_skip_weekends_and_holidays_and_end_at_local_midnight() {
        let berlin = ReviewCalendar::new("Europe/Berlin", &[], 5).unwrap();
        // Friday 2026-11-20 15:00 Berlin: Mon 23 .. Fri 27, due at Sat 28 00:00 Berlin.
        assert_eq!(
            berlin.deadline(ms("2026-11-20T14:00:00Z")),
            ms("2026-11-27T23:00:00Z")
        );
        // Reported on a Sunday: the five days are Mon .. Fri of the next week.
        assert_eq!(
            berlin.deadline(ms("2026-11-22T10:00:00Z")),
            ms("2026-11-27T23:00:00Z")
        );
        // Christmas: the 24th, 25th and 26th (a Saturday) are off when configured.
        let holidays = ["2026-12-24", "2026-12-25"].map(String::from);
        let xmas = ReviewCalendar::new("Europe/Berlin", &holidays, 5).unwrap();
        // Monday 21st: Tue 22, Wed 23, (24, 25 off, 26/27 weekend) Mon 28, Tue 29, Wed 30.
        assert_eq!(
            xmas.deadline(ms("2026-12-21T09:00:00Z")),
            ms("2026-12-30T23:00:00Z")
        );
        // Across the change to summer time (29 March 2026): midnight is UTC+2 then.
        assert_eq!(
            berlin.deadline(ms("2026-03-27T09:00:00Z")),
            ms("2026-04-03T22:00:00Z")
        );
        // A broken clock gets calendar days rather than a panic.
        assert_eq!(berlin.deadline(i64::MAX), i64::MAX);
    }

    #[test]
    fn a_calendar_refuses_bad_settings() {
        assert!(ReviewCalendar::new("Mars/Olympus", &[], 5).is_err());
        assert!(ReviewCalendar::new("UTC", &["24.12.".into()], 5).is_err());
        assert!(ReviewCalendar::new("UTC", &[], 0).is_err());
    }
}
