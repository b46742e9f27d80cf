//! Showroom appointments and their handover (DOMAIN: "Appointment handover"): the agent
//! books a visit from the call; at the visit a direct-sales person receives the customer and
//! signs the handover, and the lead's follow-up is theirs from then on (it leaves the agent's
//! work list); a no-show goes back on the agent's work list at once.

use serde::Serialize;
use serde_json::json;

use super::crm::add_event;
use super::{Store, StoreError, now_ms};

/// One appointment with its lead's name, as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AppointmentRow {
    pub id: i64,
    pub lead_id: i64,
    pub lead_name: String,
    pub lead_owner: Option<String>,
    pub at_ms: i64,
    pub place: Option<String>,
    pub note: Option<String>,
    pub booked_by: String,
    pub booked_at_ms: i64,
    pub call_id: Option<i64>,
    pub state: String,
    pub receiver: Option<String>,
    pub outcome_by: Option<String>,
    pub outcome_at_ms: Option<i64>,
}

const COLUMNS: &str = "a.id, a.lead_id, l.name AS lead_name, l.owner_agent AS lead_owner,
    a.at_ms, a.place, a.note, a.booked_by, a.booked_at_ms, a.call_id, a.state, a.receiver,
    a.outcome_by, a.outcome_at_ms";

/// A visit to book.
#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    pub lead: i64,
    pub at_ms: i64,
    pub place: Option<String>,
    pub note: Option<String>,
    pub call: Option<i64>,
}

/// How a visit went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The customer came and was handed over to `receiver`.
    Shown,
    NoShow,
    Cancelled,
}

impl Outcome {
    pub fn parse(s: &str) -> Option<Outcome> {
        match s {
            "shown" => Some(Outcome::Shown),
            "no_show" => Some(Outcome::NoShow),
            "cancelled" => Some(Outcome::Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Shown => "shown",
            Outcome::NoShow => "no_show",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Why an outcome was not recorded.
#[derive(Debug)]
pub enum OutcomeError {
    NotFound,
    /// Recorded already: the state it has.
    Settled(String),
    Store(StoreError),
}

impl From<sqlx::Error> for OutcomeError {
    fn from(e: sqlx::Error) -> Self {
        OutcomeError::Store(e.into())
    }
}

impl From<StoreError> for OutcomeError {
    fn from(e: StoreError) -> Self {
        OutcomeError::Store(e)
    }
}

impl Store {
    /// Books a visit for a lead (which must exist): a new or contacted lead becomes
    /// `appointment`, and the booking goes on its timeline. `None` without such a lead.
    pub async fn book_appointment(
        &self,
        b: &Booking,
        by: &str,
    ) -> Result<Option<AppointmentRow>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let lead = sqlx::query(
            "UPDATE leads SET status = CASE WHEN status IN ('new', 'contacted') THEN 'appointment'
               ELSE status END, updated_at_ms = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(b.lead)
        .execute(&mut *tx)
        .await?;
        if lead.rows_affected() != 1 {
            return Ok(None);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO appointments (lead_id, at_ms, place, note, booked_by, booked_at_ms, call_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(b.lead)
        .bind(b.at_ms)
        .bind(&b.place)
        .bind(&b.note)
        .bind(by)
        .bind(now)
        .bind(b.call)
        .fetch_one(&mut *tx)
        .await?;
        let detail = json!({
            "appointment": id, "at_ms": b.at_ms, "place": b.place, "note": b.note, "call_id": b.call,
        });
        add_event(&mut tx, b.lead, by, "appointment", Some(&detail), now).await?;
        tx.commit().await?;
        self.appointment(id).await
    }

    pub async fn appointment(&self, id: i64) -> Result<Option<AppointmentRow>, StoreError> {
        Ok(sqlx::query_as::<_, AppointmentRow>(&format!(
            "SELECT {COLUMNS} FROM appointments a JOIN leads l ON l.id = a.lead_id WHERE a.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Appointments expected in `[from_ms, to_ms)`, optionally in one state, by time.
    pub async fn appointments(
        &self,
        from_ms: i64,
        to_ms: i64,
        state: Option<&str>,
    ) -> Result<Vec<AppointmentRow>, StoreError> {
        Ok(sqlx::query_as::<_, AppointmentRow>(&format!(
            "SELECT {COLUMNS} FROM appointments a JOIN leads l ON l.id = a.lead_id
             WHERE a.at_ms >= $1 AND a.at_ms < $2 AND ($3 IS NULL OR a.state = $4)
             ORDER BY a.at_ms, a.id"
        ))
        .bind(from_ms)
        .bind(to_ms)
        .bind(state)
        .bind(state)
        .fetch_all(self.pool())
        .await?)
    }

    /// Records how a booked visit went, once. Shown: the handover to `receiver` is signed,
    /// the lead is `visited` and off its agent's follow-ups. No-show: the lead's follow-up is
    /// due now (back on the agent's work list). Cancelled: the lead is `contacted` again if
    /// the visit was what it waited for. Each goes on the lead's timeline.
    pub async fn appointment_outcome(
        &self,
        id: i64,
        outcome: Outcome,
        receiver: Option<&str>,
        by: &str,
    ) -> Result<AppointmentRow, OutcomeError> {
        let mut tx = self.pool().begin().await?;
        let now = now_ms();
        let current: Option<(i64, String)> =
            sqlx::query_as("SELECT lead_id, state FROM appointments WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let (lead, state) = current.ok_or(OutcomeError::NotFound)?;
        if state != "booked" {
            return Err(OutcomeError::Settled(state));
        }
        sqlx::query(
            "UPDATE appointments SET state = $1, receiver = $2, outcome_by = $3, outcome_at_ms = $4
             WHERE id = $5",
        )
        .bind(outcome.as_str())
        .bind(receiver)
        .bind(by)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let lead_update = match outcome {
            Outcome::Shown => {
                "UPDATE leads SET status = CASE WHEN status IN ('won', 'lost', 'invalid')
                   THEN status ELSE 'visited' END, next_follow_up_ms = NULL, updated_at_ms = $1
                 WHERE id = $2"
            }
            Outcome::NoShow => {
                "UPDATE leads SET status = CASE status WHEN 'appointment' THEN 'contacted'
                   ELSE status END, next_follow_up_ms = $1, updated_at_ms = $1 WHERE id = $2"
            }
            Outcome::Cancelled => {
                "UPDATE leads SET status = CASE status WHEN 'appointment' THEN 'contacted'
                   ELSE status END, updated_at_ms = $1 WHERE id = $2"
            }
        };
        sqlx::query(lead_update)
            .bind(now)
            .bind(lead)
            .execute(&mut *tx)
            .await?;
        let (kind, detail) = match outcome {
            Outcome::Shown => (
                "handover",
                json!({ "appointment": id, "receiver": receiver }),
            ),
            Outcome::NoShow => ("no_show", json!({ "appointment": id })),
            Outcome::Cancelled => ("appointment_cancelled", json!({ "appointment": id })),
        };
        add_event(&mut tx, lead, by, kind, Some(&detail), now).await?;
        tx.commit().await?;
        self.appointment(id).await?.ok_or(OutcomeError::NotFound)
    }
}
