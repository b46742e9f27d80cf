//! The SIP task: owns the [`SipCore`], feeds it transport input and time, sends its output.
//!
//! One task, no locks: the transports hand it parsed messages over a bounded channel; it arms a
//! single timer at the core's next deadline; after every input it drains the core's transmits.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::core::{CallDispatch, Placement, SipCore};
use super::registrar::{Credentials, RegistrationEvent, RemovedWhy};
use super::transaction::Peer;
use super::transport::{self, Connections, Inbound, TransportConfig, Transports};
use super::types::Transport;
use crate::call::actor::{ActorConfig, ActorMessage, CallActor, CallEvent, call_of_leg, legs_of};
use crate::call::router::{Route, Service};
use crate::call::{Call, CallConfig, CallKey, Linked, SipInput};
use crate::metrics::Way;
use crate::store::{StoreEvent, now_ms};
use media::engine::{EngineEvent, MediaHandle};

/// Figures the HTTP side can read without talking to the SIP task.
#[derive(Default, Debug)]
pub struct SipHealth {
    pub requests: AtomicU64,
    pub responses: AtomicU64,
    pub malformed: AtomicU64,
    pub transactions: AtomicU64,
    pub registrations: AtomicU64,
    pub tcp_connections: AtomicU64,
    pub active_calls: AtomicU64,
    pub calls_started: AtomicU64,
    pub client_timeouts: AtomicU64,
    pub ack_timeouts: AtomicU64,
}

impl SipHealth {
    fn publish(&self, core: &SipCore, tcp_connections: usize, active_calls: usize) {
        let set = |cell: &AtomicU64, v: u64| cell.store(v, Ordering::Relaxed);
        set(&self.requests, core.stats.requests);
        set(&self.responses, core.stats.responses);
        set(&self.malformed, core.stats.malformed);
        set(&self.transactions, core.transaction_count() as u64);
        set(&self.registrations, core.registrar().binding_count() as u64);
        set(&self.tcp_connections, tcp_connections as u64);
        set(&self.active_calls, active_calls as u64);
        set(&self.calls_started, core.stats.calls_started);
        set(&self.client_timeouts, core.stats.client_timeouts);
        set(&self.ack_timeouts, core.stats.ack_timeouts);
    }
}

/// Agents and their passwords, from the configuration.
pub struct AgentDirectory {
    passwords: HashMap<String, String>,
}

impl AgentDirectory {
    pub fn new(agents: &[crate::config::AgentConfig]) -> Self {
        AgentDirectory {
            passwords: agents
                .iter()
                .map(|a| (a.extension.clone(), a.password.clone()))
                .collect(),
        }
    }
}

impl Credentials for AgentDirectory {
    fn password(&self, user: &str) -> Option<String> {
        self.passwords.get(user).cloned()
    }
}

pub struct SipService {
    pub core: SipCore,
    pub transports: Transports,
    pub transport_config: TransportConfig,
    pub directory: Arc<AgentDirectory>,
    pub health: Arc<SipHealth>,
    pub store: Option<mpsc::Sender<StoreEvent>>,
    pub calls: CallPlane,
    /// Calls agents place from their browser consoles.
    pub placements: mpsc::Receiver<PlaceRequest>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The transports' channel to this task ([`transport::channel`]): the HTTP listener's
    /// SIP WebSockets send into it too.
    pub inbound: (mpsc::Sender<Inbound>, mpsc::Receiver<Inbound>),
    /// For SIP over TLS (`transports.tls`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// An agent's console asks to place a call; the answer is the call's key or why not.
#[derive(Debug)]
pub struct PlaceRequest {
    pub placement: Placement,
    pub reply: tokio::sync::oneshot::Sender<Result<CallKey, (u16, &'static str)>>,
}

/// Starts the actor of a new call.
fn spawn_actor(
    plane: &CallPlane,
    calls: &mut HashMap<CallKey, mpsc::Sender<CallEvent>>,
    to_sip: &mpsc::Sender<(CallKey, ActorMessage)>,
    store: &Option<mpsc::Sender<StoreEvent>>,
    call: Call,
    host: Option<crate::call::host::Host>,
    lead: Option<i64>,
) {
    let (events_tx, events_rx) = mpsc::channel(64);
    calls.insert(call.key(), events_tx.clone());
    tokio::spawn(
        CallActor {
            call,
            media: plane.media.clone(),
            events: events_rx,
            to_sip: to_sip.clone(),
            store: store.clone(),
            config: plane.actor_config.clone(),
            recorded: Vec::new(),
            recording_started_ms: None,
            recording_not_started: None,
            recording_markers: Vec::new(),
            tracks: Vec::new(),
            call_recordings: Vec::new(),
            host,
            inbox: events_tx,
            lead,
        }
        .run(),
    );
}

/// What the SIP task needs to run calls.
pub struct CallPlane {
    pub media: MediaHandle,
    pub media_events: mpsc::Receiver<EngineEvent>,
    pub call_config: CallConfig,
    pub actor_config: ActorConfig,
    /// On shutdown, calls get this long to end by themselves before they are ended.
    pub shutdown_grace: Duration,
}

impl SipService {
    /// Runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let SipService {
            mut core,
            transports,
            transport_config,
            directory,
            health,
            store,
            calls: mut plane,
            mut placements,
            metrics,
            inbound: (to_core, mut inbound),
            tls,
        } = self;
        let (to_sip, mut from_calls) = mpsc::channel::<(CallKey, ActorMessage)>(4096);
        let mut calls: HashMap<CallKey, mpsc::Sender<CallEvent>> = HashMap::new();
        let mut draining_since: Option<Instant> = None;
        let mut ended_calls = false;
        let mut placements_open = true;
        let udp = transports.udp.clone();
        let udp_task = tokio::spawn(transport::run_udp(
            udp.clone(),
            to_core.clone(),
            core.overload_backlog(),
        ));
        let tcp_task = tokio::spawn(transport::run_tcp_listener(
            transports.tcp,
            transport_config.clone(),
            to_core.clone(),
        ));
        let tls_task = match (transports.tls, tls) {
            (Some(listener), Some(config)) => Some(tokio::spawn(transport::run_tls_listener(
                listener,
                config,
                transport_config.clone(),
                to_core.clone(),
                metrics.clone(),
            ))),
            _ => None,
        };
        let mut conns = Connections::default();
        let mut pending: HashMap<Peer, Vec<Vec<u8>>> = HashMap::new();
        let far_future = Duration::from_secs(3600);

        loop {
            let deadline = core
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + far_future);
            if let Some(since) = draining_since {
                if calls.is_empty() {
                    break;
                }
                // Grace over: end the remaining calls cleanly (BYE both legs), then wait a
                // little for their last messages.
                if !ended_calls && since.elapsed() >= plane.shutdown_grace {
                    ended_calls = true;
                    tracing::info!(calls = calls.len(), "ending remaining calls");
                    for tx in calls.values() {
                        let _ = tx.try_send(CallEvent::Shutdown);
                    }
                }
                if since.elapsed() >= plane.shutdown_grace + Duration::from_secs(10) {
                    tracing::warn!(calls = calls.len(), "calls still open at shutdown deadline");
                    break;
                }
            }
            let deadline = if draining_since.is_some() {
                deadline.min(Instant::now() + Duration::from_millis(200))
            } else {
                deadline
            };
            tokio::select! {
                biased;
                _ = shutdown.changed(), if draining_since.is_none() => {
                    if *shutdown.borrow() {
                        tracing::info!(calls = calls.len(), "draining: new calls refused");
                        core.begin_drain();
                        draining_since = Some(Instant::now());
                    }
                }
                // Closed when the HTTP side is gone (shutdown): not polled after that, or
                // its `None` would win every turn of this biased select.
                request = placements.recv(), if placements_open => {
                    match request {
                        Some(PlaceRequest { placement, reply }) => {
                            let _ = reply.send(core.place_call(Instant::now(), placement));
                        }
                        None => placements_open = false,
                    }
                }
                msg = from_calls.recv() => {
                    if let Some((key, msg)) = msg {
                        match msg {
                            ActorMessage::Sip(cmd) => core.handle_call_command(Instant::now(), key, *cmd),
                            ActorMessage::Ended => {
                                core.call_ended(key);
                                calls.remove(&key);
                            }
                        }
                    }
                }
                ev = plane.media_events.recv() => {
                    let routed = match ev {
                        Some(EngineEvent::Leg { leg, event }) => Some((leg, CallEvent::Media(leg, event))),
                        Some(EngineEvent::PromptEnded { leg, end, id }) => {
                            Some((leg, CallEvent::PromptEnded(leg, id, end)))
                        }
                        None => None,
                    };
                    if let Some((leg, event)) = routed
                        && let Some(tx) = calls.get(&call_of_leg(leg))
                    {
                        let _ = tx.try_send(event);
                    }
                }
                ev = inbound.recv() => {
                    let Some(ev) = ev else { break };
                    match ev {
                        Inbound::Message { message, peer } => {
                            if let Ok(m) = &message {
                                metrics.sip.message(Way::In, m);
                            }
                            core.set_backlog(inbound.len());
                            core.handle_message(Instant::now(), now_ms() as u64, message, peer, directory.as_ref());
                        }
                        Inbound::Connected { peer, sender } => {
                            conns.insert(peer, sender);
                            for bytes in pending.remove(&peer).unwrap_or_default() {
                                conns.send(&peer, bytes);
                            }
                        }
                        Inbound::Disconnected { peer } => {
                            conns.remove(&peer);
                            pending.remove(&peer);
                            // Phones and browsers on TLS or WebSocket are reached over their
                            // own connection only: with it their registrations go.
                            if matches!(peer.transport, Transport::Tls | Transport::Ws | Transport::Wss) {
                                core.connection_closed(peer);
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    core.handle_timeout(Instant::now(), now_ms() as u64, directory.as_ref());
                }
            }

            // Figures first: a peer that reads /healthz on our answer must see its own effect.
            health.publish(&core, conns.count(Transport::Tcp), calls.len());
            while let Some(t) = core.poll_transmit() {
                metrics.sip.message(Way::Out, &t.message);
                send_transmit(
                    &udp,
                    &mut conns,
                    &mut pending,
                    &transport_config,
                    &to_core,
                    t,
                )
                .await;
            }
            while let Some(d) = core.poll_call_dispatch() {
                match d {
                    CallDispatch::New {
                        key,
                        tx,
                        request,
                        source,
                        route,
                    } => {
                        let now = Instant::now();
                        let config = plane.call_config.clone();
                        let mut route = *route;
                        // A supervisor monitors the agent's call in progress, if there is one.
                        if let Route::Hosted(Service::Monitor(m)) = &mut route {
                            m.call = plane.actor_config.live.agent_call(&m.agent);
                            if m.call.is_none() {
                                let response = request.response(
                                    480,
                                    "Temporarily Unavailable (the agent is not on a call)",
                                    Some(crate::sip::types::Tag::generate().as_str()),
                                );
                                core.handle_call_command(
                                    now,
                                    key,
                                    crate::call::SipCommand::Respond { tx, response },
                                );
                                core.call_ended(key);
                                continue;
                            }
                        }
                        let (call, service) = match route {
                            Route::Direct(target) => (
                                Call::new(
                                    key,
                                    config,
                                    now,
                                    now_ms(),
                                    tx,
                                    request,
                                    source,
                                    target,
                                    legs_of(key),
                                ),
                                None,
                            ),
                            Route::Hosted(service) => (
                                Call::new_hosted(
                                    key,
                                    config,
                                    now,
                                    now_ms(),
                                    tx,
                                    request,
                                    source,
                                    legs_of(key),
                                    service.to_string(),
                                ),
                                Some(service),
                            ),
                        };
                        match call {
                            Ok(call) => {
                                // A caller put straight through to an agent: their screen
                                // pops while the phone rings.
                                if service.is_none()
                                    && let Some(agent) = call.agent_extension()
                                    && let Some(h) = plane.actor_config.hosting.as_ref()
                                {
                                    let (caller, dialed) = call.caller_and_dialed();
                                    h.pop_direct(key, agent, caller, dialed, None, false);
                                }
                                let host = service.and_then(|s| {
                                    plane.actor_config.hosting.as_ref().map(|h| h.host(key, s))
                                });
                                spawn_actor(&plane, &mut calls, &to_sip, &store, call, host, None);
                            }
                            Err(response) => {
                                core.handle_call_command(
                                    now,
                                    key,
                                    crate::call::SipCommand::Respond { tx, response },
                                );
                                core.call_ended(key);
                            }
                        }
                    }
                    CallDispatch::Placed {
                        key,
                        placement,
                        target,
                    } => {
                        let Placement {
                            placer,
                            number,
                            lead,
                        } = *placement;
                        if let Some(h) = plane.actor_config.hosting.as_ref() {
                            // The agent sees the lead they are calling at dial.
                            let n = number.clone();
                            h.pop_direct(key, &placer.extension, n.clone(), n, lead, true);
                        }
                        let call = Call::new_placed(
                            key,
                            plane.call_config.clone(),
                            Instant::now(),
                            now_ms(),
                            placer,
                            &number,
                            *target,
                            legs_of(key).1,
                        );
                        spawn_actor(&plane, &mut calls, &to_sip, &store, call, None, lead);
                    }
                    CallDispatch::To(key, input) => match calls.get(&key) {
                        Some(tx) => {
                            if tx.try_send(CallEvent::Sip(input)).is_err() {
                                tracing::warn!(%key, "call actor lagging: SIP input dropped");
                            }
                        }
                        None if crate::softphone::is_monitor_key(key) => {
                            // A supervisor's browser console monitoring a call.
                            if let (SipInput::Linked(msg), Some(h)) =
                                (input, plane.actor_config.hosting.as_ref())
                            {
                                h.softphones.linked(key, msg);
                            }
                        }
                        None => {
                            tracing::debug!(%key, "input for a finished call dropped");
                            // A call asking to be joined with this one, or to monitor it,
                            // must not wait forever.
                            let refusal = match input {
                                SipInput::Linked(Linked::JoinRequest { partner, .. }) => Some((
                                    partner,
                                    Linked::JoinRefused {
                                        code: 481,
                                        reason: "Call/Transaction Does Not Exist",
                                    },
                                )),
                                SipInput::Linked(Linked::MonitorRequest { monitor, .. }) => Some((
                                    monitor,
                                    Linked::MonitorOver {
                                        code: 481,
                                        reason: "Call/Transaction Does Not Exist",
                                    },
                                )),
                                _ => None,
                            };
                            if let Some((to, msg)) = refusal
                                && let Some(tx) = calls.get(&to)
                            {
                                let _ = tx.try_send(CallEvent::Sip(SipInput::Linked(msg)));
                            }
                        }
                    },
                }
            }
            // Commands answered above may have queued transmits.
            while let Some(t) = core.poll_transmit() {
                metrics.sip.message(Way::Out, &t.message);
                send_transmit(
                    &udp,
                    &mut conns,
                    &mut pending,
                    &transport_config,
                    &to_core,
                    t,
                )
                .await;
            }
            while let Some((agent, started)) = core.poll_line_event() {
                tell_acd_direct_call(&plane, agent, started);
            }
            while let Some(ev) = core.poll_registration_event() {
                tell_acd_reachability(&core, &plane, &ev);
                record_registration(&store, ev);
            }
            while let Some(note) = core.poll_audit() {
                if let Some(s) = &store
                    && s.try_send(StoreEvent::Audit(Box::new(note))).is_err()
                {
                    tracing::warn!("store writer lagging: audit entry dropped");
                }
            }
            health.publish(&core, conns.count(Transport::Tcp), calls.len());
        }
        udp_task.abort();
        tcp_task.abort();
        if let Some(t) = tls_task {
            t.abort();
        }
    }
}

async fn send_transmit(
    udp: &tokio::net::UdpSocket,
    conns: &mut Connections,
    pending: &mut HashMap<Peer, Vec<Vec<u8>>>,
    transport_config: &TransportConfig,
    to_core: &mpsc::Sender<Inbound>,
    t: super::transaction::Transmit,
) {
    let bytes = t.message.to_bytes();
    match t.peer.transport {
        Transport::Udp => transport::send_udp(udp, t.peer.addr, &bytes).await,
        Transport::Tcp => {
            if !conns.send(&t.peer, bytes.clone()) {
                let queue = pending.entry(t.peer).or_default();
                if queue.is_empty() {
                    transport::connect_tcp(
                        t.peer.addr,
                        transport_config.tcp_idle_timeout,
                        to_core.clone(),
                    );
                }
                if queue.len() < 64 {
                    queue.push(bytes);
                }
            }
        }
        // Only accepted, never opened: the phone or browser keeps its connection open (it
        // registered over it); without one there is no way to reach it.
        Transport::Tls | Transport::Ws | Transport::Wss => {
            if !conns.send(&t.peer, bytes) {
                tracing::info!(
                    to = %t.peer.addr,
                    transport = %t.peer.transport,
                    "no open connection to the peer: message not sent"
                );
            }
        }
    }
}

/// A phone registering logs its agent in and makes them reachable; the last binding going
/// (and no static contact) makes them unreachable, so the ACD never rings a phone that is
/// not there.
/// An agent's direct call (put straight through, not offered by the ACD) takes one of
/// their lines while it lasts.
fn tell_acd_direct_call(plane: &CallPlane, agent: String, started: bool) {
    let Some(hosting) = &plane.actor_config.hosting else {
        return;
    };
    use crate::acd::AcdEvent;
    let event = if started {
        AcdEvent::DirectCallStarted { agent }
    } else {
        AcdEvent::DirectCallEnded { agent }
    };
    hosting.acd.send(crate::acd::actor::AcdInput::Event(event));
}

fn tell_acd_reachability(core: &SipCore, plane: &CallPlane, ev: &RegistrationEvent) {
    let Some(hosting) = &plane.actor_config.hosting else {
        return;
    };
    use crate::acd::AcdEvent;
    use crate::acd::actor::AcdInput;
    match ev {
        RegistrationEvent::Added { agent, .. } => {
            hosting.acd.send(AcdInput::Event(AcdEvent::AgentReachable {
                agent: agent.clone(),
                reachable: true,
            }));
            hosting.acd.send(AcdInput::Event(AcdEvent::AgentLogin {
                agent: agent.clone(),
            }));
        }
        RegistrationEvent::Removed { agent, .. } => {
            if !core.agent_reachable(agent, Instant::now()) {
                hosting.acd.send(AcdInput::Event(AcdEvent::AgentReachable {
                    agent: agent.clone(),
                    reachable: false,
                }));
            }
        }
    }
}

fn record_registration(store: &Option<mpsc::Sender<StoreEvent>>, ev: RegistrationEvent) {
    let event = match &ev {
        RegistrationEvent::Added { agent, binding } => {
            tracing::info!(agent = %agent, contact = %binding.contact, "agent registered");
            StoreEvent::Registration {
                at_ms: now_ms(),
                extension: agent.clone(),
                contact: binding.contact.to_string(),
                event: "registered",
                transport: Some(binding.transport.to_string()),
                source: Some(binding.source.to_string()),
            }
        }
        RegistrationEvent::Removed {
            agent,
            contact,
            why,
        } => {
            tracing::info!(agent = %agent, %contact, ?why, "agent binding removed");
            StoreEvent::Registration {
                at_ms: now_ms(),
                extension: agent.clone(),
                contact: contact.to_string(),
                event: match why {
                    RemovedWhy::Unregistered => "unregistered",
                    RemovedWhy::Expired => "expired",
                    RemovedWhy::ConnectionClosed => "connection_closed",
                },
                transport: None,
                source: None,
            }
        }
    };
    if let Some(tx) = store
        && tx.try_send(event).is_err()
    {
        tracing::warn!("store writer lagging: registration event not recorded");
    }
}

/// The peer for a transport and address (convenience for tests).
pub fn peer(transport: Transport, addr: SocketAddr) -> Peer {
    Peer { transport, addr }
}
