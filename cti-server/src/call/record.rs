//! The call record (CDR): who called whom, when it rang, was answered and ended, why and by
//! whom, with each leg's codec and media figures. Written to the store off the call path.

use std::time::Duration;

use crate::sdp::Codec;
use crate::sip::message::{Request, SipHeaders};

use super::{CallKey, Target};

/// Which leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Caller,
    Agent,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Agent => "agent",
        }
    }
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndCause {
    CallerHangup,
    AgentHangup,
    CallerCancelled,
    NoAnswer,
    AgentBusy,
    AgentRejected(u16),
    AgentUnreachable,
    MediaTimeout,
    MediaError,
    NoAck,
    /// RFC 4028: the session was not refreshed in time.
    SessionExpired,
    Shutdown,
    /// A service ended the call as planned (IVR hang-up node, voicemail left, goodbye).
    Completed,
    Failed,
}

impl EndCause {
    pub fn as_str(self) -> String {
        match self {
            EndCause::CallerHangup => "caller_hangup".into(),
            EndCause::AgentHangup => "agent_hangup".into(),
            EndCause::CallerCancelled => "caller_cancelled".into(),
            EndCause::NoAnswer => "no_answer".into(),
            EndCause::AgentBusy => "agent_busy".into(),
            EndCause::AgentRejected(code) => format!("agent_rejected_{code}"),
            EndCause::AgentUnreachable => "agent_unreachable".into(),
            EndCause::MediaTimeout => "media_timeout".into(),
            EndCause::MediaError => "media_error".into(),
            EndCause::NoAck => "no_ack".into(),
            EndCause::SessionExpired => "session_expired".into(),
            EndCause::Shutdown => "shutdown".into(),
            EndCause::Completed => "completed".into(),
            EndCause::Failed => "failed".into(),
        }
    }
}

/// Media figures of one leg.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LegRecord {
    pub codec: Option<Codec>,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    /// Interarrival jitter in milliseconds (RFC 3550 A.8).
    pub jitter_ms: f64,
    /// Loss the far end reported for our stream in its RTCP receiver reports (0–1).
    pub remote_loss_fraction: Option<f64>,
    /// Round-trip time from RTCP (RFC 3550 §6.4.1).
    pub round_trip_ms: Option<f64>,
}

/// One call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub key: CallKey,
    /// The caller leg's Call-ID.
    pub sip_call_id: String,
    pub from: String,
    pub to: String,
    /// The dialed number (Request-URI user).
    pub dialed: String,
    /// Where the call was put through last (agent or trunk); `None` when it never was.
    pub target: Option<Target>,
    /// When an agent answered a hosted call (the caller was answered by the server earlier).
    pub connect_after: Option<Duration>,
    /// The IVR flow, queue or voicemail box that handled a hosted call, in order.
    pub services: Vec<String>,
    /// Wall-clock milliseconds when the INVITE arrived; the rest are offsets from it.
    pub offered_at_ms: i64,
    pub ring_after: Option<Duration>,
    pub answer_after: Option<Duration>,
    pub end_after: Option<Duration>,
    pub end_cause: Option<EndCause>,
    /// Who ended it; `None` for the server itself (timeouts, shutdown).
    pub ended_by: Option<Side>,
    pub caller: LegRecord,
    pub agent: LegRecord,
    /// Time one party held the other (re-INVITE or the console's Hold).
    pub hold: Duration,
}

impl CallRecord {
    pub fn new(key: CallKey, invite: &Request, offered_at_ms: i64) -> CallRecord {
        let uri_of =
            |n: Option<crate::sip::NameAddr>| n.map(|n| n.uri.to_string()).unwrap_or_default();
        CallRecord {
            key,
            sip_call_id: invite.call_id().map(|c| c.to_string()).unwrap_or_default(),
            from: uri_of(invite.from_header()),
            to: uri_of(invite.to_header()),
            dialed: invite
                .uri
                .as_sip()
                .and_then(|u| u.user_unescaped())
                .unwrap_or_default(),
            target: None,
            connect_after: None,
            services: Vec::new(),
            offered_at_ms,
            ring_after: None,
            answer_after: None,
            end_after: None,
            end_cause: None,
            ended_by: None,
            caller: LegRecord::default(),
            agent: LegRecord::default(),
            hold: Duration::ZERO,
        }
    }

    /// A call put straight through the trunk goes out; everything else came in (a hosted
    /// call forwarded to an external number came in first).
    pub fn is_outbound(&self) -> bool {
        self.services.is_empty() && matches!(self.target, Some(Target::Trunk { .. }))
    }

    /// The customer's number: the one dialed for a call out through the trunk, else the
    /// caller's (From user).
    pub fn customer_number(&self) -> Option<String> {
        if self.is_outbound()
            && let Some(Target::Trunk { number, .. }) = &self.target
        {
            return Some(number.clone());
        }
        self.caller_user()
    }

    /// The user part of the caller's From URI.
    fn caller_user(&self) -> Option<String> {
        let from = self.from.split_once("sip:")?.1;
        let user = from.split(['@', ';', '>']).next()?;
        (!user.is_empty()).then(|| user.to_string())
    }

    /// The agent who placed a call out through the trunk (the caller's From user), from a
    /// desk phone or the console.
    pub fn placed_by(&self) -> Option<String> {
        if !self.is_outbound() {
            return None;
        }
        self.caller_user()
    }

    /// The agent the call went to; `None` for a call out through the trunk.
    pub fn agent_extension(&self) -> Option<&str> {
        self.target.as_ref().and_then(|t| t.agent_extension())
    }
}
