//! Lead rules from the call centers' manuals (`shared/DOMAIN.md`): grades and their
//! follow-up cadence, the 24-hour first-contact rule for HQ-delivered and web leads, phone
//! numbers in E.164. Pure functions; the store and the API apply them.

use serde::Deserialize;

/// A day in milliseconds.
pub const DAY_MS: i64 = 86_400_000;

/// Lead grades (DOMAIN.md "Lead grades and follow-up cadence").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grade {
    /// Intends to buy within 7 days.
    H,
    /// Within a month.
    A,
    /// Within 3 months.
    B,
    /// Beyond 3 months: automated messages only, no agent calls.
    C,
    /// No valid contact: out of work lists.
    Invalid,
}

impl Grade {
    pub fn parse(s: &str) -> Option<Grade> {
        match s.trim() {
            "H" | "h" => Some(Grade::H),
            "A" | "a" => Some(Grade::A),
            "B" | "b" => Some(Grade::B),
            "C" | "c" => Some(Grade::C),
            "invalid" | "INVALID" | "Invalid" => Some(Grade::Invalid),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Grade::H => "H",
            Grade::A => "A",
            Grade::B => "B",
            Grade::C => "C",
            Grade::Invalid => "invalid",
        }
    }
}

/// Where leads come from; HQ-delivered and web leads fall under the 24-hour rule.
pub const SOURCES: &[&str] = &[
    "hq",
    "web",
    "inbound_call",
    "showroom",
    "event",
    "own_ads",
    "campaign",
    "other",
];

/// A lead's life, in order.
pub const STATUSES: &[&str] = &[
    "new",
    "contacted",
    "hot",
    "appointment",
    "visited",
    "won",
    "lost",
    "invalid",
];

/// Days between follow-ups per grade (`[leads.cadence_days]`); C and invalid leads get no
/// agent calls.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Cadence {
    #[serde(rename = "H")]
    pub h: u32,
    #[serde(rename = "A")]
    pub a: u32,
    #[serde(rename = "B")]
    pub b: u32,
}

impl Default for Cadence {
    fn default() -> Self {
        Cadence { h: 3, a: 7, b: 15 }
    }
}

impl Cadence {
    /// When a lead of `grade` last contacted at `from_ms` is due again; `None` for C and
    /// invalid leads (no agent calls) and leads without a grade.
    pub fn next_follow_up(&self, grade: Option<Grade>, from_ms: i64) -> Option<i64> {
        let days = match grade? {
            Grade::H => self.h,
            Grade::A => self.a,
            Grade::B => self.b,
            Grade::C | Grade::Invalid => return None,
        };
        Some(from_ms + i64::from(days) * DAY_MS)
    }
}

/// The first-contact deadline of a new lead: 24 hours for HQ-delivered and web leads.
pub fn first_contact_due(source: Option<&str>, created_ms: i64) -> Option<i64> {
    matches!(source, Some("hq" | "web")).then_some(created_ms + DAY_MS)
}

/// A phone number in E.164 (`+` and up to 15 digits), with `country` (digits, e.g. `49`)
/// for national numbers: `+49 30 1234-56`, `0049 30 123456` and `030 123456` are all
/// `+4930123456`. `None` when it is no phone number.
pub fn e164(raw: &str, country: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty()
        || !raw
            .chars()
            .all(|c| c.is_ascii_digit() || " +-()./".contains(c))
    {
        return None;
    }
    let plus = raw.starts_with('+');
    if raw[usize::from(plus)..].contains('+') {
        return None;
    }
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    let international = if plus {
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_string()
    } else if let Some(rest) = digits.strip_prefix('0') {
        format!("{country}{rest}")
    } else {
        // No trunk prefix: a number already without it (as carriers often send).
        format!("{country}{digits}")
    };
    let ok = (7..=15).contains(&international.len()) && !international.starts_with('0');
    ok.then(|| format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_every_usual_spelling_are_one_e164_number() {
        for raw in [
            "+49 30 1234-56",
            "0049 30 123456",
            "030 123456",
            "(030) 12 34 56",
            "+49301234 56",
            "30123456",
        ] {
            assert_eq!(e164(raw, "49").as_deref(), Some("+4930123456"), "{raw}");
        }
        assert_eq!(
            e164("+1 415 555 0100", "49").as_deref(),
            Some("+14155550100")
        );
        for bad in ["", "12", "abc", "+49 30 12345678901234", "1001x", "+49+30"] {
            assert_eq!(e164(bad, "49"), None, "{bad}");
        }
    }

    #[test]
    fn the_grade_sets_the_next_follow_up_and_c_gets_no_calls() {
        let c = Cadence::default();
        assert_eq!(c.next_follow_up(Some(Grade::H), 0), Some(3 * DAY_MS));
        assert_eq!(c.next_follow_up(Some(Grade::A), 0), Some(7 * DAY_MS));
        assert_eq!(c.next_follow_up(Some(Grade::B), 0), Some(15 * DAY_MS));
        assert_eq!(c.next_follow_up(Some(Grade::C), 0), None);
        assert_eq!(c.next_follow_up(Some(Grade::Invalid), 0), None);
        assert_eq!(c.next_follow_up(None, 0), None);
        assert_eq!(Grade::parse("h"), Some(Grade::H));
        assert_eq!(Grade::parse("X"), None);
    }

    #[test]
    fn hq_and_web_leads_are_due_within_a_day() {
        assert_eq!(first_contact_due(Some("hq"), 5), Some(5 + DAY_MS));
        assert_eq!(first_contact_due(Some("web"), 5), Some(5 + DAY_MS));
        assert_eq!(first_contact_due(Some("showroom"), 5), None);
        assert_eq!(first_contact_due(None, 5), None);
    }
}
