//! The ACD actor: one task owning the [`Acd`] engine. Call actors send it events
//! ([`AcdInput`]); it runs the engine's timers, hands each call its actions through the
//! call's own channel, stores every queue event, and answers the API's questions.
//!
//! It only moves things: decisions are the engine's. A call whose channel is closed or full
//! is taken for gone: the engine hears it abandoned, so no agent is left ringing for it.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::{
    Acd, AcdAction, AcdEvent, AgentStatus, CallRef, QueueEvent, QueueEventKind, QueueSnapshot,
};
use crate::call::actor::CallEvent;
use crate::store::{QueueEventRow, StoreEvent};

/// What the ACD actor is told.
pub enum AcdInput {
    /// A call will take part: its actions go to `events`.
    Attach(CallRef, mpsc::Sender<CallEvent>),
    /// An engine event.
    Event(AcdEvent),
    /// The call is over (after its last event): forget its channel.
    Detach(CallRef),
    /// For the API.
    Agent(String, oneshot::Sender<Option<AgentStatus>>),
    Queue(String, oneshot::Sender<Option<QueueSnapshot>>),
    /// Every queue and agent, counted (the metrics).
    Floor(oneshot::Sender<crate::metrics::FloorFigures>),
}

/// The senders' side.
#[derive(Clone)]
pub struct AcdHandle {
    tx: mpsc::Sender<AcdInput>,
}

impl AcdHandle {
    /// Sends without waiting; false when the actor is gone or its queue is full (the event
    /// is lost and logged: the call path never waits on the ACD).
    pub fn send(&self, input: AcdInput) -> bool {
        match self.tx.try_send(input) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "ACD input dropped");
                false
            }
        }
    }

    /// Sends, waiting for room (for inputs that must not be lost, like an agent's state).
    pub async fn send_wait(&self, input: AcdInput) -> bool {
        self.tx.send(input).await.is_ok()
    }

    pub async fn agent(&self, agent: &str) -> Option<AgentStatus> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AcdInput::Agent(agent.to_string(), tx))
            .await
            .ok()?;
        rx.await.ok().flatten()
    }

    pub async fn floor(&self) -> Option<crate::metrics::FloorFigures> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(AcdInput::Floor(tx)).await.ok()?;
        rx.await.ok()
    }

    pub async fn queue(&self, queue: &str) -> Option<QueueSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(AcdInput::Queue(queue.to_string(), tx))
            .await
            .ok()?;
        rx.await.ok().flatten()
    }
}

/// Starts the actor.
pub fn spawn(
    acd: Acd,
    store: Option<mpsc::Sender<StoreEvent>>,
) -> (AcdHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(4096);
    let task = tokio::spawn(run(acd, rx, store));
    (AcdHandle { tx }, task)
}

async fn run(
    mut acd: Acd,
    mut rx: mpsc::Receiver<AcdInput>,
    store: Option<mpsc::Sender<StoreEvent>>,
) {
    let mut calls: HashMap<CallRef, mpsc::Sender<CallEvent>> = HashMap::new();
    // Engine times are Instants; the store wants wall-clock milliseconds.
    let clock = (Instant::now(), SystemTime::now());
    loop {
        while let Some(action) = acd.poll_action() {
            deliver(&mut acd, &mut calls, &store, clock, action);
        }
        let deadline = acd
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            input = rx.recv() => {
                let Some(input) = input else { break };
                let now = Instant::now();
                match input {
                    AcdInput::Attach(call, tx) => { calls.insert(call, tx); }
                    AcdInput::Detach(call) => { calls.remove(&call); }
                    AcdInput::Event(e) => acd.handle(e, now),
                    AcdInput::Agent(a, reply) => { let _ = reply.send(acd.agent_state(&a)); }
                    AcdInput::Queue(q, reply) => { let _ = reply.send(acd.queue_snapshot_at(&q, now)); }
                    AcdInput::Floor(reply) => { let _ = reply.send(acd.floor_figures(now)); }
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => acd.handle_timeout(Instant::now()),
        }
    }
}

fn deliver(
    acd: &mut Acd,
    calls: &mut HashMap<CallRef, mpsc::Sender<CallEvent>>,
    store: &Option<mpsc::Sender<StoreEvent>>,
    clock: (Instant, SystemTime),
    action: AcdAction,
) {
    let call = match &action {
        AcdAction::Event(e) => {
            if let Some(s) = store
                && s.try_send(StoreEvent::Queue(row(e, clock))).is_err()
            {
                tracing::warn!("store writer lagging: queue event dropped");
            }
            return;
        }
        AcdAction::Offer { call, .. }
        | AcdAction::CancelOffer { call, .. }
        | AcdAction::Overflow { call, .. }
        | AcdAction::Requeued { call, .. }
        | AcdAction::Announce { call, .. } => *call,
    };
    let offer = match &action {
        AcdAction::Offer { agent, .. } => Some(agent.clone()),
        _ => None,
    };
    let gone = match calls.get(&call) {
        Some(tx) => tx.try_send(CallEvent::Acd(action)).is_err(),
        None => true,
    };
    if gone {
        // The call cannot hear us: for the engine it abandoned (an offer fails first, so
        // the agent is not left ringing).
        calls.remove(&call);
        if let Some(agent) = offer {
            acd.handle(
                AcdEvent::OfferFailed {
                    call,
                    agent,
                    reason: super::OfferFailure::Unreachable,
                },
                Instant::now(),
            );
        }
        acd.handle(AcdEvent::CallAbandoned { call }, Instant::now());
    }
}

/// A queue event as a `queue_events` row.
fn row(e: &QueueEvent, (base, wall): (Instant, SystemTime)) -> QueueEventRow {
    let at = if e.time >= base {
        wall + (e.time - base)
    } else {
        wall - (base - e.time)
    };
    let at_ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let ms = |d: Duration| Some(d.as_millis() as i64);
    let (kind, reason, waited_ms, detail): (
        &'static str,
        Option<String>,
        Option<i64>,
        Option<String>,
    ) = match &e.kind {
        QueueEventKind::Enter {
            priority, caller, ..
        } => (
            "enter",
            None,
            None,
            Some(format!("priority={priority} caller={caller}")),
        ),
        QueueEventKind::Offer => ("offer", None, None, None),
        QueueEventKind::Ringing => ("ringing", None, None, None),
        QueueEventKind::RingNoAnswer => ("ring_no_answer", None, None, None),
        QueueEventKind::OfferFailed(f) => (
            "offer_failed",
            Some(format!("{f:?}").to_lowercase()),
            None,
            None,
        ),
        QueueEventKind::OfferCancelled => ("offer_cancelled", None, None, None),
        QueueEventKind::Answer { waited } => ("answer", None, ms(*waited), None),
        QueueEventKind::Abandon { waited } => ("abandon", None, ms(*waited), None),
        QueueEventKind::Refused { target, reason } => (
            "refused",
            Some(format!("{reason:?}")),
            None,
            Some(format!("{target:?}")),
        ),
        QueueEventKind::Overflow { target, reason } => (
            "overflow",
            Some(format!("{reason:?}")),
            None,
            Some(format!("{target:?}")),
        ),
        QueueEventKind::Leave { reason, waited } => {
            ("leave", Some(format!("{reason:?}")), ms(*waited), None)
        }
        QueueEventKind::CallEnded { talk } => ("call_ended", None, ms(*talk), None),
        QueueEventKind::AgentState { state } => {
            ("agent_state", Some(format!("{state:?}")), None, None)
        }
    };
    QueueEventRow {
        at_ms,
        queue: e.queue.clone(),
        call_id: e.call.map(|c| c.0 as i64),
        agent: e.agent.clone(),
        kind,
        reason,
        waited_ms,
        detail,
    }
}
