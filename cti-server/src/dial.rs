//! Click-to-dial: an agent calls a customer from their console, from a lead or the work
//! list, or by typing a number.
//!
//! The browser places the call ([`crate::call::Call::new_placed`]): the agent's console
//! phone is the calling party and the customer is reached through the outbound trunk. Before
//! anything is dialed the rules a call center answers for are checked, in this order: the
//! number is a phone number (normalised to E.164 with the default country), the lead is one
//! the agent may work, it is inside the calling hours (`[dialing]`, in the customers' time
//! zone), the number is not on the do-not-call list, and the agent's console phone is up.
//! A refusal says which rule, and refusals by rule (hours, do-not-call) go to the audit log.
//!
//! The same path serves the console's WebSocket (`{"op":"dial","number":..,"lead":..}`) and
//! the REST API (`POST /api/calls`).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot};

use crate::call::{CallKey, Placer, Target};
use crate::config::DialingConfig;
use crate::ivr::hours::BusinessHours;
use crate::sip::core::Placement;
use crate::sip::service::PlaceRequest;
use crate::store::Store;

/// When customers may be called, and how the agents are told.
pub struct CallingHours {
    hours: Option<BusinessHours>,
    /// `Mon-Fri 08:00-20:00, Sat 10:00-16:00 (Europe/Berlin)`.
    text: String,
}

impl CallingHours {
    /// From `[dialing]` (checked when the configuration loaded).
    pub fn from_config(c: &DialingConfig) -> Result<CallingHours, String> {
        let periods: Vec<String> = c
            .calling_hours
            .iter()
            .map(|p| format!("{} {}-{}", p.days.join(","), p.from, p.to))
            .collect();
        Ok(CallingHours {
            hours: c.calling_hours()?,
            text: format!("{} ({})", periods.join(", "), c.time_zone),
        })
    }

    /// At any time.
    pub fn always() -> CallingHours {
        CallingHours {
            hours: None,
            text: String::new(),
        }
    }

    /// `Err` with the hours when `wall` is outside them.
    pub fn check(&self, wall: SystemTime) -> Result<(), DialRefusal> {
        match &self.hours {
            Some(h) if !h.is_open(wall) => Err(DialRefusal::OutsideHours(self.text.clone())),
            _ => Ok(()),
        }
    }
}

/// Why a call was not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialRefusal {
    /// Not something a phone can dial.
    BadNumber(String),
    /// No number given, and the lead has no phone.
    NoNumber,
    /// No such lead, or not one the agent may work.
    NoSuchLead(i64),
    OutsideHours(String),
    /// On the do-not-call list, with the reason recorded there.
    DoNotCall(Option<String>),
    /// The agent's console phone is not connected (or busy monitoring).
    NoPhone,
    /// The server refused it: (status, why) — no trunk, lines in use, call limit.
    Refused(u16, &'static str),
    /// Click-to-dial is not running (no SIP task) or the store failed.
    Unavailable(String),
}

impl DialRefusal {
    /// The HTTP status the REST API answers with.
    pub fn status(&self) -> u16 {
        match self {
            DialRefusal::BadNumber(_) | DialRefusal::NoNumber => 400,
            DialRefusal::NoSuchLead(_) => 404,
            DialRefusal::OutsideHours(_) | DialRefusal::DoNotCall(_) => 403,
            DialRefusal::NoPhone => 409,
            DialRefusal::Refused(486, _) => 409,
            DialRefusal::Refused(code, _) => *code,
            DialRefusal::Unavailable(_) => 503,
        }
    }

    /// What the agent reads.
    pub fn message(&self) -> String {
        match self {
            DialRefusal::BadNumber(n) => format!("{n:?} is not a phone number"),
            DialRefusal::NoNumber => "no number to call".into(),
            DialRefusal::NoSuchLead(id) => format!("no lead {id}"),
            DialRefusal::OutsideHours(h) => {
                format!("outside the calling hours: customers may be called {h}")
            }
            DialRefusal::DoNotCall(Some(why)) => {
                format!("the number is on the do-not-call list ({why})")
            }
            DialRefusal::DoNotCall(None) => "the number is on the do-not-call list".into(),
            DialRefusal::NoPhone => {
                "your console's phone is not connected (allow the microphone, or finish \
                 monitoring first)"
                    .into()
            }
            DialRefusal::Refused(_, why) => (*why).to_string(),
            DialRefusal::Unavailable(why) => why.clone(),
        }
    }

    /// A refusal by a call-center rule, for the audit log.
    fn audited(&self) -> Option<&'static str> {
        match self {
            DialRefusal::OutsideHours(_) => Some("outside calling hours"),
            DialRefusal::DoNotCall(_) => Some("do-not-call list"),
            _ => None,
        }
    }
}

/// What placing calls needs; one per server, shared by the consoles' sockets and the API.
pub struct Dialing {
    pub places: mpsc::Sender<PlaceRequest>,
    pub store: Store,
    pub hours: CallingHours,
    /// Country calling code for national numbers.
    pub country: String,
    /// Agents' names for the record, by extension.
    pub names: std::collections::HashMap<String, String>,
}

/// A call to place: who, to what number, from which lead (without a number: the lead's
/// primary phone).
#[derive(Debug, Clone)]
pub struct DialRequest<'a> {
    pub user: &'a str,
    pub number: Option<&'a str>,
    pub lead: Option<i64>,
    /// Where the request came from (audit).
    pub source: &'a str,
}

impl Dialing {
    /// Checks the rules and places the call from `phone` (the user's console phone, if up).
    /// `may_work` says whether the user may work a lead owned by the given agent (`None`:
    /// unowned).
    pub async fn dial(
        &self,
        r: DialRequest<'_>,
        phone: Option<Target>,
        may_work: impl Fn(Option<&str>) -> bool,
    ) -> Result<CallKey, DialRefusal> {
        let refusal = match self.check(&r, phone, may_work).await {
            Ok(placement) => return self.place(placement).await,
            Err(refusal) => refusal,
        };
        if let Some(rule) = refusal.audited() {
            let number = r.number.unwrap_or_default();
            tracing::info!(agent = r.user, number, lead = r.lead, rule, "call refused");
            let target = crate::leads::e164(number, &self.country)
                .or_else(|| r.lead.map(|id| format!("lead {id}")));
            let detail = format!("{rule}: {}", refusal.message());
            if let Err(e) = self
                .store
                .audit(
                    r.user,
                    "dial_refused",
                    target.as_deref(),
                    Some(&detail),
                    Some(r.source),
                )
                .await
            {
                tracing::warn!(error = %e, "audit entry for a refused call not written");
            }
        }
        Err(refusal)
    }

    async fn check(
        &self,
        r: &DialRequest<'_>,
        phone: Option<Target>,
        may_work: impl Fn(Option<&str>) -> bool,
    ) -> Result<Placement, DialRefusal> {
        let unavailable = |e: crate::store::StoreError| DialRefusal::Unavailable(e.to_string());
        let mut raw = r.number.map(str::to_string);
        if let Some(id) = r.lead {
            let lead = self.store.lead(id).await.map_err(unavailable)?;
            if !lead.is_some_and(|l| may_work(l.owner_agent.as_deref())) {
                return Err(DialRefusal::NoSuchLead(id));
            }
            if raw.is_none() {
                let phones = self.store.lead_phones(id).await.map_err(unavailable)?;
                raw = phones.into_iter().next().map(|p| p.phone);
            }
        }
        let raw = raw.ok_or(DialRefusal::NoNumber)?;
        let number = crate::leads::e164(&raw, &self.country).ok_or(DialRefusal::BadNumber(raw))?;
        self.hours.check(SystemTime::now())?;
        if let Some(entry) = self.store.dnc_entry(&number).await.map_err(unavailable)? {
            return Err(DialRefusal::DoNotCall(entry.reason));
        }
        let Some(Target::Browser {
            extension,
            session,
            leg,
        }) = phone
        else {
            return Err(DialRefusal::NoPhone);
        };
        let name = self.names.get(&extension).cloned().unwrap_or_default();
        Ok(Placement {
            placer: Placer {
                extension,
                name,
                session,
                leg,
            },
            number,
            lead: r.lead,
        })
    }

    async fn place(&self, placement: Placement) -> Result<CallKey, DialRefusal> {
        let gone = || DialRefusal::Unavailable("the call plane is not running".into());
        let (reply, answer) = oneshot::channel();
        self.places
            .send(PlaceRequest { placement, reply })
            .await
            .map_err(|_| gone())?;
        answer
            .await
            .map_err(|_| gone())?
            .map_err(|(code, why)| DialRefusal::Refused(code, why))
    }
}

/// Shared handle.
pub type DialingHandle = Arc<Dialing>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ivr::hours::PeriodSpec;

    fn weekdays_9_to_17() -> CallingHours {
        CallingHours::from_config(&DialingConfig {
            time_zone: "Europe/Berlin".into(),
            calling_hours: vec![PeriodSpec {
                days: vec!["Mon-Fri".into()],
                from: "09:00".into(),
                to: "17:00".into(),
            }],
            holidays: vec!["2026-12-24".into()],
        })
        .unwrap()
    }

    fn wall(utc: &str) -> SystemTime {
        let ts: jiff::Timestamp = utc.parse().unwrap();
        SystemTime::from(ts)
    }

    #[test]
    fn calls_outside_the_hours_or_on_a_holiday_are_refused_with_the_hours() {
        let h = weekdays_9_to_17();
        // Monday 23 November 2026, 10:00 in Berlin (CET, UTC+1).
        assert_eq!(h.check(wall("2026-11-23T09:00:00Z")), Ok(()));
        // 08:59 local and 17:00 local: closed.
        let early = h.check(wall("2026-11-23T07:59:00Z")).unwrap_err();
        assert_eq!(
            early.message(),
            "outside the calling hours: customers may be called Mon-Fri 09:00-17:00 \
             (Europe/Berlin)"
        );
        assert!(h.check(wall("2026-11-23T16:00:00Z")).is_err());
        // Saturday, and Christmas Eve (a Thursday) as a holiday.
        assert!(h.check(wall("2026-11-28T10:00:00Z")).is_err());
        assert!(h.check(wall("2026-12-24T10:00:00Z")).is_err());
        assert_eq!(early.status(), 403);
        assert_eq!(
            CallingHours::always().check(wall("2026-11-28T03:00:00Z")),
            Ok(())
        );
    }

    #[test]
    fn refusals_map_to_statuses_and_rules_are_audited() {
        assert_eq!(DialRefusal::BadNumber("x".into()).status(), 400);
        assert_eq!(DialRefusal::NoPhone.status(), 409);
        assert_eq!(
            DialRefusal::Refused(486, "all your lines are in use").status(),
            409
        );
        assert_eq!(
            DialRefusal::Refused(503, "no outbound trunk is configured").status(),
            503
        );
        assert_eq!(
            DialRefusal::DoNotCall(Some("asked on 2026-11-20".into())).message(),
            "the number is on the do-not-call list (asked on 2026-11-20)"
        );
        assert!(DialRefusal::DoNotCall(None).audited().is_some());
        assert!(DialRefusal::NoPhone.audited().is_none());
    }
}
