//! The SIP core (the transaction user): what the server answers, sans-IO.
//!
//! Messages from the transports come in with [`SipCore::handle_message`]; timers with
//! [`SipCore::handle_timeout`]; bytes to send come out of [`SipCore::poll_transmit`]. Policy
//! for requests outside dialogs lives here (RFC 3261 §8.2 UAS behaviour): malformed requests
//! get 400 (505 for another SIP version), unknown URI schemes 416, unsupported `Require`
//! extensions 420, bodies we cannot read 415, `Accept` without SDP 406, REGISTER goes to the
//! registrar, OPTIONS is answered 200 with our capabilities.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::auth::{Algorithm, DigestAuthenticator};
use super::grammar::Via;
use super::message::{
    HeaderName, ParseError, ParseErrorKind, Request, Response, SipHeaders, SipMessage,
};
use super::registrar::{Credentials, RegisterContext, Registrar, RegistrarConfig};
use super::transaction::{Peer, TimerConfig, TransactionLayer, Transmit, TuEvent};
use super::types::{Method, Tag, Transport};
use crate::call::router::{Route, Router, Service};
use crate::call::routes::CallRoutes;
use crate::call::{CallKey, Linked, SipCommand, SipInput};

/// Methods we answer (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO, REFER, UPDATE";
/// Extensions we implement (the `Supported` header); anything else in `Require` gets 420.
pub const SUPPORTED: &[&str] = &["path", "timer"];
/// Body types we read.
const ACCEPTED_BODIES: &[&str] = &["application/sdp", "multipart/mixed"];

/// Core settings.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub timers: TimerConfig,
    pub registrar: RegistrarConfig,
    pub realm: String,
    pub nonce_ttl: Duration,
    /// Digest algorithms offered, most preferred first.
    pub digest_algorithms: Vec<Algorithm>,
    pub force_rport: bool,
    pub user_agent: String,
    /// Live transactions beyond which new requests get 503 + Retry-After (overload).
    pub max_transactions: usize,
    /// Messages waiting for the SIP task beyond which new out-of-dialog requests are refused
    /// with a stateless 503 + Retry-After, while the work already accepted (responses,
    /// in-dialog requests, ACK, CANCEL) goes on: the backlog drains instead of growing.
    pub overload_backlog: usize,
    /// Concurrent calls beyond which new INVITEs get 503 + Retry-After.
    pub max_calls: usize,
    /// The first call key; distinct per start (time-based) so records never collide.
    pub first_call_key: u64,
    /// New calls per second one source address may start (burst: twice that); beyond it,
    /// 503 + Retry-After. 0 turns the limit off.
    pub max_call_rate_per_source: u32,
}

/// Token buckets per source address, bounded in size.
#[derive(Default)]
struct RateLimiter {
    buckets: HashMap<std::net::IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    /// Takes one token for `ip` at `now`; false when the source is over its rate.
    fn allow(&mut self, ip: std::net::IpAddr, now: Instant, rate: u32) -> bool {
        if rate == 0 {
            return true;
        }
        let burst = f64::from(rate) * 2.0;
        if self.buckets.len() >= 10_000 {
            // Sources idle long enough to be full again carry no state worth keeping.
            self.buckets.retain(|_, (_, at)| {
                now.saturating_duration_since(*at).as_secs_f64() * f64::from(rate) < burst
            });
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * f64::from(rate))
            .min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the core hands to the call plane.
#[derive(Debug)]
pub enum CallDispatch {
    /// Start a call: the INVITE was accepted for routing and answered 100 Trying.
    New {
        key: CallKey,
        tx: super::transaction::TxId,
        request: Request,
        source: Peer,
        /// Boxed: a trunk target is large, and dispatches are mostly `To`.
        route: Box<Route>,
    },
    /// Start a call an agent places from their browser console to `target` (the trunk).
    Placed {
        key: CallKey,
        placement: Box<Placement>,
        target: Box<crate::call::Target>,
    },
    /// Input for a running call.
    To(CallKey, SipInput),
}

/// A call an agent places from their browser console (click-to-dial).
#[derive(Debug, Clone, PartialEq)]
pub struct Placement {
    pub placer: crate::call::Placer,
    /// The customer's number, as the trunk is to get it.
    pub number: String,
    /// The lead the agent called, if they called from one.
    pub lead: Option<i64>,
}

/// Counters for observability.
#[derive(Debug, Default, Clone)]
pub struct CoreStats {
    pub requests: u64,
    pub responses: u64,
    pub malformed: u64,
    pub dropped: u64,
    pub overload: u64,
    pub calls_started: u64,
    pub calls_refused: u64,
    /// Client transactions that timed out (Timer B/F).
    pub client_timeouts: u64,
    /// 2xx answers to INVITE that got no ACK (Timer L).
    pub ack_timeouts: u64,
}

pub struct SipCore {
    layer: TransactionLayer,
    registrar: Registrar,
    config: CoreConfig,
    out: VecDeque<Transmit>,
    router: Router,
    routes: CallRoutes,
    dispatch: VecDeque<CallDispatch>,
    /// Agents whose direct call (put straight through, not by the ACD) started (true) or
    /// ended (false), for the ACD: a line in use is not offered a queue call.
    line_events: VecDeque<(String, bool)>,
    next_call: u64,
    draining: bool,
    /// Messages waiting behind the current one (see [`SipCore::set_backlog`]).
    backlog: usize,
    rate: RateLimiter,
    /// Calls in progress per agent extension (multi-line accounting).
    agent_calls: HashMap<String, usize>,
    call_agent: HashMap<CallKey, String>,
    /// Entries for the audit log (refused monitor attempts).
    audit: VecDeque<crate::store::AuditNote>,
    pub stats: CoreStats,
}

impl SipCore {
    pub fn new(config: CoreConfig, router: Router) -> SipCore {
        SipCore {
            router,
            routes: CallRoutes::default(),
            dispatch: VecDeque::new(),
            line_events: VecDeque::new(),
            next_call: config.first_call_key.max(1),
            draining: false,
            backlog: 0,
            rate: RateLimiter::default(),
            agent_calls: HashMap::new(),
            call_agent: HashMap::new(),
            audit: VecDeque::new(),
            layer: TransactionLayer::new(config.timers),
            registrar: Registrar::with_authenticator(
                config.registrar.clone(),
                DigestAuthenticator::with_algorithms(
                    config.realm.clone(),
                    config.nonce_ttl,
                    config.digest_algorithms.clone(),
                ),
            ),
            config,
            out: VecDeque::new(),
            stats: CoreStats::default(),
        }
    }

    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// A TLS or WebSocket connection closed: the bindings registered over it go.
    pub fn connection_closed(&mut self, peer: Peer) {
        self.registrar.connection_closed(peer.transport, peer.addr);
    }

    /// A parsed (or refused) message from a transport.
    pub fn handle_message(
        &mut self,
        now: Instant,
        wall_ms: u64,
        message: Result<SipMessage, ParseError>,
        peer: Peer,
        credentials: &dyn Credentials,
    ) {
        match message {
            Ok(SipMessage::Request(mut req)) => {
                self.stats.requests += 1;
                if self.config.force_rport && peer.transport == Transport::Udp {
                    force_rport(&mut req);
                }
                // Bounded state: past the limit, refuse work instead of slowing everyone
                // (RFC 3261 §21.5.4). ACKs create no transaction and pass. Behind a long
                // backlog, new work is refused the same way (RFC 6357 §3: shedding new
                // requests early keeps the accepted ones alive); what finishes existing
                // dialogs and transactions still passes.
                let new_work =
                    req.to_tag().is_none() && !matches!(req.method, Method::Ack | Method::Cancel);
                let backlogged = self.backlog >= self.config.overload_backlog && new_work;
                if (self.layer.len() >= self.config.max_transactions || backlogged)
                    && req.method != Method::Ack
                    && !self.layer.is_retransmission(&req)
                {
                    self.stats.overload += 1;
                    let destination = req
                        .top_via()
                        .map_or(peer, |v| super::transaction::response_destination(&v, peer));
                    let mut r =
                        req.response(503, "Service Unavailable", Some(Tag::generate().as_str()));
                    r.headers.push(HeaderName::RetryAfter, "5");
                    self.stamp(&mut r);
                    self.out.push_back(Transmit {
                        peer: destination,
                        message: SipMessage::Response(r),
                    });
                    return;
                }
                self.layer
                    .handle_message(now, SipMessage::Request(req), peer);
            }
            Ok(SipMessage::Response(resp)) => {
                self.stats.responses += 1;
                self.layer
                    .handle_message(now, SipMessage::Response(resp), peer);
            }
            Err(e) => self.refuse(e, peer),
        }
        self.drain(now, wall_ms, credentials);
    }

    pub fn handle_timeout(&mut self, now: Instant, wall_ms: u64, credentials: &dyn Credentials) {
        self.layer.handle_timeout(now);
        self.registrar.expire(now);
        self.drain(now, wall_ms, credentials);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.layer.poll_timeout(), self.registrar.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// The next entry for the audit log.
    pub fn poll_audit(&mut self) -> Option<crate::store::AuditNote> {
        self.audit.pop_front()
    }

    pub fn poll_registration_event(&mut self) -> Option<super::registrar::RegistrationEvent> {
        self.registrar.poll_event()
    }

    /// A message that failed validation: a request gets 400 (505 for a version we do not
    /// speak), sent statelessly to its source; a response is dropped (RFC 4475 §3.1.2).
    fn refuse(&mut self, e: ParseError, peer: Peer) {
        self.stats.malformed += 1;
        let (code, reason) = match &e.kind {
            ParseErrorKind::Version(_) => (505, "Version Not Supported".to_string()),
            other => (400, bad_request_reason(other)),
        };
        let response = e
            .raw
            .as_deref()
            .and_then(|raw| Response::for_raw_request(raw, code, &reason));
        match response {
            Some(mut r) => {
                tracing::info!(src = %peer.addr, error = %e, code, "malformed request refused");
                self.stamp(&mut r);
                self.out.push_back(Transmit {
                    peer,
                    message: SipMessage::Response(r),
                });
            }
            None => {
                self.stats.dropped += 1;
                tracing::info!(src = %peer.addr, error = %e, "malformed message dropped");
            }
        }
    }

    fn drain(&mut self, now: Instant, wall_ms: u64, credentials: &dyn Credentials) {
        loop {
            while let Some(t) = self.layer.poll_transmit() {
                self.out.push_back(t);
            }
            let Some(event) = self.layer.poll_event() else {
                break;
            };
            self.handle_event(now, wall_ms, event, credentials);
        }
    }

    fn handle_event(
        &mut self,
        now: Instant,
        wall_ms: u64,
        event: TuEvent,
        credentials: &dyn Credentials,
    ) {
        match event {
            TuEvent::Request {
                tx,
                request,
                source,
            } => {
                let span = tracing::debug_span!(
                    "sip_request",
                    method = %request.method,
                    call_id = request.call_id().as_ref().map(|c| c.as_str()).unwrap_or(""),
                    src = %source.addr,
                );
                let _g = span.enter();
                // In-dialog requests belong to the call that owns the dialog (§12.2.2).
                if let Some(to_tag) = request.to_tag() {
                    let call = request
                        .call_id()
                        .and_then(|cid| self.routes.dialog(&cid, &to_tag));
                    match call {
                        Some(call) => self.dispatch.push_back(CallDispatch::To(
                            call,
                            SipInput::Request {
                                tx,
                                request,
                                source,
                            },
                        )),
                        None => {
                            let mut r =
                                request.response(481, "Call/Transaction Does Not Exist", None);
                            self.stamp(&mut r);
                            self.layer.send_response(now, tx, r);
                        }
                    }
                    return;
                }
                if request.method == Method::Invite
                    && let Some(refusal) = self.precheck(&request)
                {
                    let mut r = refusal;
                    self.stamp(&mut r);
                    self.layer.send_response(now, tx, r);
                    return;
                }
                if request.method == Method::Invite {
                    self.new_call(now, wall_ms, tx, request, source, credentials);
                    return;
                }
                let mut response = self.answer(now, wall_ms, &request, source, credentials);
                self.stamp(&mut response);
                tracing::debug!(code = response.code, "answered");
                self.layer.send_response(now, tx, response);
            }
            TuEvent::Cancel {
                invite_tx,
                cancel_tx,
                request,
                ..
            } => {
                if let Some(call) = self.routes.server(invite_tx) {
                    self.dispatch.push_back(CallDispatch::To(
                        call,
                        SipInput::Cancel { cancel_tx, request },
                    ));
                    return;
                }
                // §9.2: 200 to the CANCEL, 487 to the INVITE it cancels.
                let tag = Tag::generate();
                let mut ok = request.response(200, "OK", Some(tag.as_str()));
                self.stamp(&mut ok);
                self.layer.send_response(now, cancel_tx, ok);
                self.layer.send_response(
                    now,
                    invite_tx,
                    self.terminated_response(&request, tag.as_str()),
                );
            }
            TuEvent::Ack { tx, request, .. } => {
                let call = tx.and_then(|t| self.routes.server(t)).or_else(|| {
                    let cid = request.call_id()?;
                    self.routes.dialog(&cid, &request.to_tag()?)
                });
                if let Some(call) = call {
                    self.dispatch
                        .push_back(CallDispatch::To(call, SipInput::Ack { request }));
                }
            }
            TuEvent::Response { tx, response } => {
                if let Some((call, req)) = self.routes.client(tx) {
                    self.dispatch
                        .push_back(CallDispatch::To(call, SipInput::Response { req, response }));
                }
            }
            TuEvent::Timeout { tx } => {
                self.stats.client_timeouts += 1;
                if let Some((call, req)) = self.routes.client(tx) {
                    self.dispatch
                        .push_back(CallDispatch::To(call, SipInput::Timeout { req }));
                }
            }
            TuEvent::AckTimeout { tx } => {
                self.stats.ack_timeouts += 1;
                if let Some(call) = self.routes.server(tx) {
                    self.dispatch
                        .push_back(CallDispatch::To(call, SipInput::AckTimeout));
                }
            }
            TuEvent::Terminated { tx } => self.routes.transaction_ended(tx),
            TuEvent::StrayResponse { .. } => {}
        }
    }

    /// An out-of-dialog INVITE that passed the checks: route it and start a call.
    fn new_call(
        &mut self,
        now: Instant,
        wall_ms: u64,
        tx: super::transaction::TxId,
        request: Request,
        source: Peer,
        credentials: &dyn Credentials,
    ) {
        let refuse = |this: &mut Self, code: u16, reason: &str, retry: bool| {
            this.stats.calls_refused += 1;
            let mut r = request.response(code, reason, Some(Tag::generate().as_str()));
            if retry {
                r.headers.push(HeaderName::RetryAfter, "5");
            }
            this.stamp(&mut r);
            this.layer.send_response(now, tx, r);
        };
        if self.draining {
            return refuse(self, 503, "Service Unavailable (shutting down)", true);
        }
        if self.routes.calls() >= self.config.max_calls {
            return refuse(self, 503, "Service Unavailable (call limit)", true);
        }
        if !self
            .rate
            .allow(source.addr.ip(), now, self.config.max_call_rate_per_source)
        {
            tracing::info!(src = %source.addr, "call rate limit");
            return refuse(self, 503, "Service Unavailable (call rate limit)", true);
        }
        let mut route = match self.router.route(&request, &self.registrar, now) {
            Ok(t) => t,
            Err((code, reason)) => return refuse(self, code, reason, false),
        };
        // An agent at their browser console: the server answers the caller and rings the
        // console (it has no SIP dialog to relay to), with voicemail if nobody answers.
        if let Route::Direct(crate::call::Target::Browser { extension, .. }) = &route {
            route = Route::Hosted(Service::Agent(extension.clone()));
        }
        // Monitoring is for supervisors who prove who they are (digest, as for REGISTER).
        if let Route::Hosted(Service::Monitor(m)) = &mut route {
            let tag = Tag::generate();
            let user = match self
                .registrar
                .authenticate(&request, wall_ms, credentials, &tag)
            {
                Ok(user) => user,
                Err(challenge) => {
                    let mut r = *challenge;
                    self.stamp(&mut r);
                    self.layer.send_response(now, tx, r);
                    return;
                }
            };
            if let Err(denied) = self.router.access().may_monitor(&user, &m.agent) {
                tracing::warn!(supervisor = %user, agent = %m.agent, why = denied.as_str(), "monitor refused");
                self.audit.push_back(crate::store::AuditNote {
                    actor: user,
                    action: "monitor_refused",
                    target: Some(m.agent.clone()),
                    detail: Some(denied.as_str().to_string()),
                    source: Some(source.addr.ip().to_string()),
                });
                return refuse(self, 403, "Forbidden (may not monitor this agent)", false);
            }
            m.supervisor = user;
        }
        // Multi-line accounting is per agent; trunk calls are bounded by max_calls only, and
        // queue calls by the ACD.
        let extension = match &route {
            Route::Direct(t) => t.agent_extension().map(str::to_string),
            Route::Hosted(_) => None,
        };
        if let Some(ext) = &extension {
            let in_use = self.agent_calls.get(ext).copied().unwrap_or(0);
            if in_use >= self.router.lines(ext) {
                return refuse(self, 486, "Busy Here", false);
            }
        }
        // §8.2.6.1 / §17.2.1: 100 Trying at once, so the caller stops retransmitting.
        let mut trying = request.response(100, "Trying", None);
        self.stamp(&mut trying);
        self.layer.send_response(now, tx, trying);
        let key = CallKey(self.next_call);
        self.next_call += 1;
        self.stats.calls_started += 1;
        self.routes.add_call(key, tx);
        if let Some(ext) = extension {
            *self.agent_calls.entry(ext.clone()).or_default() += 1;
            self.line_events.push_back((ext.clone(), true));
            self.call_agent.insert(key, ext);
        }
        self.dispatch.push_back(CallDispatch::New {
            key,
            tx,
            request,
            source,
            route: Box::new(route),
        });
    }

    /// An agent places a call from their console: the number must go out through the trunk
    /// (a console calls customers; colleagues and queues are reached by transfer), the
    /// agent must have a line free, and the server must take calls. The refusal says why.
    pub fn place_call(
        &mut self,
        now: Instant,
        placement: Placement,
    ) -> Result<CallKey, (u16, &'static str)> {
        if self.draining {
            return Err((503, "the server is shutting down"));
        }
        if self.routes.calls() >= self.config.max_calls {
            return Err((503, "the server is at its call limit"));
        }
        let target = match self
            .router
            .destination(&placement.number, &self.registrar, now)
        {
            Ok(Route::Direct(t @ crate::call::Target::Trunk { .. })) => t,
            Ok(_) => return Err((403, "not an external number")),
            Err((404, _)) if !self.router.has_trunk() => {
                return Err((503, "no outbound trunk is configured"));
            }
            Err((404, _)) => return Err((404, "not a phone number")),
            Err(e) => return Err(e),
        };
        let ext = placement.placer.extension.clone();
        let in_use = self.agent_calls.get(&ext).copied().unwrap_or(0);
        if in_use >= self.router.lines(&ext) {
            return Err((486, "all your lines are in use"));
        }
        let key = CallKey(self.next_call);
        self.next_call += 1;
        self.stats.calls_started += 1;
        self.routes.add_placed(key);
        *self.agent_calls.entry(ext.clone()).or_default() += 1;
        self.line_events.push_back((ext.clone(), true));
        self.call_agent.insert(key, ext);
        self.dispatch.push_back(CallDispatch::Placed {
            key,
            placement: Box::new(placement),
            target: Box::new(target),
        });
        Ok(key)
    }

    /// A command from a call actor.
    pub fn handle_call_command(&mut self, now: Instant, call: CallKey, cmd: SipCommand) {
        match cmd {
            SipCommand::Respond { tx, response } => self.layer.send_response(now, tx, response),
            SipCommand::Send { req, request, dest } => {
                let tx = self.layer.send_request(now, request, dest);
                self.routes.bind_client(call, req, tx);
            }
            SipCommand::Cancel { req } => {
                if let Some(tx) = self.routes.client_tx(call, req) {
                    self.layer.cancel(now, tx);
                }
            }
            SipCommand::Ack { request, dest } => self
                .layer
                .send_stateless(SipMessage::Request(request), dest),
            SipCommand::BindDialog { call_id, local_tag } => {
                self.routes.bind_dialog(call, call_id, local_tag)
            }
            SipCommand::Route { number } => {
                let route = self
                    .router
                    .destination(&number, &self.registrar, now)
                    .map(Box::new);
                self.dispatch
                    .push_back(CallDispatch::To(call, SipInput::Routed { number, route }));
            }
            SipCommand::Join {
                call_id,
                tags,
                keeps,
            } => {
                // Replaces names the dialog from its sender's side; phones differ on which
                // tag is whose, so either may be ours.
                let found = tags
                    .iter()
                    .find_map(|t| self.routes.dialog(&call_id, t.as_str()));
                let (to, msg) = match found {
                    Some(partner) if partner != call => (
                        partner,
                        Linked::JoinRequest {
                            partner: call,
                            call_id,
                            partner_keeps: keeps,
                        },
                    ),
                    Some(_) => (
                        call,
                        Linked::JoinRefused {
                            code: 400,
                            reason: "Bad Request (Replaces names the transferred call itself)",
                        },
                    ),
                    None => (
                        call,
                        Linked::JoinRefused {
                            code: 481,
                            reason: "Call/Transaction Does Not Exist",
                        },
                    ),
                };
                self.dispatch
                    .push_back(CallDispatch::To(to, SipInput::Linked(msg)));
            }
            SipCommand::Tell { to, msg } => {
                self.dispatch
                    .push_back(CallDispatch::To(to, SipInput::Linked(msg)));
            }
            SipCommand::AgentLeft => self.release_agent_line(call),
            SipCommand::Resolve { number } => {
                let target = self.router.target(&number, &self.registrar, now);
                self.dispatch.push_back(CallDispatch::To(
                    call,
                    SipInput::Resolved { number, target },
                ));
            }
        }
        while let Some(t) = self.layer.poll_transmit() {
            self.out.push_back(t);
        }
    }

    /// A call finished: forget its routes.
    pub fn call_ended(&mut self, call: CallKey) {
        self.routes.remove_call(call);
        self.release_agent_line(call);
    }

    /// The agent of a direct call left it (transferred): their line is free.
    fn release_agent_line(&mut self, call: CallKey) {
        if let Some(ext) = self.call_agent.remove(&call) {
            self.line_events.push_back((ext.clone(), false));
            self.agent_line_freed(&ext);
        }
    }

    fn agent_line_freed(&mut self, ext: &str) {
        if let Some(n) = self.agent_calls.get_mut(ext) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.agent_calls.remove(ext);
            }
        }
    }

    /// An agent's direct call started (true) or ended (false).
    pub fn poll_line_event(&mut self) -> Option<(String, bool)> {
        self.line_events.pop_front()
    }

    /// True when the agent can be reached now: a live registration or a static contact.
    pub fn agent_reachable(&self, agent: &str, now: Instant) -> bool {
        self.router
            .agent_target(agent, &self.registrar, now)
            .is_ok()
    }

    /// The backlog beyond which new requests are refused ([`CoreConfig::overload_backlog`]).
    pub fn overload_backlog(&self) -> usize {
        self.config.overload_backlog
    }

    /// How many messages wait behind the one about to be handled (the SIP task's inbox).
    pub fn set_backlog(&mut self, backlog: usize) {
        self.backlog = backlog;
    }

    pub fn poll_call_dispatch(&mut self) -> Option<CallDispatch> {
        self.dispatch.pop_front()
    }

    pub fn active_calls(&self) -> usize {
        self.routes.calls()
    }

    /// Graceful shutdown: new INVITEs get 503 from now on.
    pub fn begin_drain(&mut self) {
        self.draining = true;
    }

    /// A 487 for the INVITE a CANCEL matched (the CANCEL carries the same Via, From, To,
    /// Call-ID and CSeq number; §9.1).
    fn terminated_response(&self, cancel: &Request, tag: &str) -> Response {
        let mut r = cancel.response(487, "Request Terminated", Some(tag));
        if let Some(cseq) = cancel.cseq() {
            r.headers
                .set(HeaderName::CSeq, format!("{} INVITE", cseq.seq));
        }
        self.stamp(&mut r);
        r
    }

    /// Checks every out-of-dialog request passes before its method is looked at (§8.2.1–§8.2.3).
    fn precheck(&self, req: &Request) -> Option<Response> {
        let tag = Tag::generate();
        let reply = |code: u16, reason: &str| req.response(code, reason, Some(tag.as_str()));
        // §8.2.2.1: a Request-URI scheme we do not understand.
        if !matches!(req.uri.scheme(), "sip" | "sips" | "tel") {
            return Some(reply(416, "Unsupported URI Scheme"));
        }
        // §8.2.2.3: extensions we do not support (never for ACK/CANCEL).
        let unsupported: Vec<String> = req
            .tokens(&HeaderName::Require)
            .into_iter()
            .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .collect();
        if !unsupported.is_empty() {
            let mut r = reply(420, "Bad Extension");
            r.headers
                .push(HeaderName::Unsupported, unsupported.join(", "));
            return Some(r);
        }
        // §8.2.3: a body we cannot process.
        if !req.body.is_empty()
            && let Some(ct) = req.content_type()
        {
            let media = ct.split(';').next().unwrap_or("").trim();
            if !ACCEPTED_BODIES
                .iter()
                .any(|a| a.eq_ignore_ascii_case(media))
            {
                let mut r = reply(415, "Unsupported Media Type");
                r.headers.push(HeaderName::Accept, "application/sdp");
                return Some(r);
            }
        }
        if req.method == Method::Invite {
            // §8.2.2: we answer with SDP; a client that cannot accept it gets 406.
            if let Some(accept) = req.headers.get(&HeaderName::Accept)
                && !accept_allows_sdp(accept)
            {
                let mut r = reply(406, "Not Acceptable");
                r.headers.push(HeaderName::Accept, "application/sdp");
                return Some(r);
            }
            if req.max_forwards() == Some(0) {
                return Some(reply(483, "Too Many Hops"));
            }
        }
        None
    }

    /// The final answer to a request outside any dialog.
    fn answer(
        &mut self,
        now: Instant,
        wall_ms: u64,
        req: &Request,
        source: Peer,
        credentials: &dyn Credentials,
    ) -> Response {
        if let Some(refusal) = self.precheck(req) {
            return refusal;
        }
        let tag = Tag::generate();
        let reply = |code: u16, reason: &str| req.response(code, reason, Some(tag.as_str()));
        match &req.method {
            Method::Register => {
                let ctx = RegisterContext {
                    now,
                    wall_ms,
                    transport: source.transport,
                    source: source.addr,
                    credentials,
                };
                self.registrar.handle_register(req, &ctx)
            }
            Method::Options => {
                let mut r = reply(200, "OK");
                r.headers.push(HeaderName::Allow, ALLOW);
                r.headers.push(HeaderName::Accept, "application/sdp");
                r.headers.push(HeaderName::Supported, SUPPORTED.join(", "));
                r
            }
            // INVITEs become calls before reaching here (see `new_call`).
            Method::Invite => reply(500, "Server Internal Error"),
            // Requests that only make sense inside a dialog we do not have (§12.2.2).
            Method::Bye | Method::Info | Method::Update | Method::Refer | Method::Prack => {
                reply(481, "Call/Transaction Does Not Exist")
            }
            Method::Subscribe | Method::Notify | Method::Message | Method::Publish => {
                let mut r = reply(405, "Method Not Allowed");
                r.headers.push(HeaderName::Allow, ALLOW);
                r
            }
            // ACK and CANCEL never reach here (the transaction layer routes them).
            Method::Ack | Method::Cancel => reply(481, "Call/Transaction Does Not Exist"),
            Method::Other(_) => {
                let mut r = reply(501, "Not Implemented");
                r.headers.push(HeaderName::Allow, ALLOW);
                r
            }
        }
    }

    /// Adds our Server header to every response we make.
    fn stamp(&self, r: &mut Response) {
        if r.headers.get(&HeaderName::Server).is_none() {
            r.headers
                .push(HeaderName::Server, self.config.user_agent.clone());
        }
    }

    pub fn transaction_count(&self) -> usize {
        self.layer.len()
    }

    /// Exposes the layer for tests that need to inspect its state.
    pub fn layer(&self) -> &TransactionLayer {
        &self.layer
    }
}

fn bad_request_reason(kind: &ParseErrorKind) -> String {
    // Reason phrases may not contain CR/LF; the error texts never do.
    let mut s = format!("Bad Request ({kind})");
    s.retain(|c| c != '\r' && c != '\n');
    s
}

fn accept_allows_sdp(accept: &str) -> bool {
    accept.split(',').any(|m| {
        let m = m.split(';').next().unwrap_or("").trim();
        m.eq_ignore_ascii_case("application/sdp")
            || m.eq_ignore_ascii_case("application/*")
            || m == "*/*"
    })
}

/// Adds an empty `rport` to the top Via so the response goes back to the source port.
fn force_rport(req: &mut Request) {
    let Some(first) = req.headers.get(&HeaderName::Via).map(str::to_string) else {
        return;
    };
    let Ok(mut vias) = Via::parse_list(&first) else {
        return;
    };
    if vias[0].params.contains("rport") {
        return;
    }
    vias[0].params.set("rport", None);
    let value = vias
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    // Replace only the first Via field, keeping the others in place.
    let mut replaced = false;
    let mut headers = super::message::Headers::new();
    for (name, v) in req.headers.iter() {
        if !replaced && *name == HeaderName::Via {
            headers.push(HeaderName::Via, value.clone());
            replaced = true;
        } else {
            headers.push(name.clone(), v);
        }
    }
    req.headers = headers;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::registrar::Credentials;

    struct NoAgents;
    impl Credentials for NoAgents {
        fn password(&self, _: &str) -> Option<String> {
            None
        }
    }

    fn core(max_transactions: usize) -> SipCore {
        core_with(max_transactions, 0)
    }

    /// A core serving agent 1001 (2 lines, a static contact) with the given limits.
    fn core_with(max_transactions: usize, rate: u32) -> SipCore {
        SipCore::new(
            CoreConfig {
                timers: TimerConfig::default(),
                registrar: RegistrarConfig::default(),
                realm: "cti.local".into(),
                nonce_ttl: Duration::from_secs(300),
                digest_algorithms: vec![Algorithm::Md5],
                force_rport: true,
                user_agent: "test".into(),
                max_transactions,
                overload_backlog: 100,
                max_calls: 100,
                first_call_key: 1,
                max_call_rate_per_source: rate,
            },
            Router::new([(
                "1001".to_string(),
                crate::call::router::AgentRoute {
                    static_contact: crate::sip::Uri::parse("sip:1001@127.0.0.1:5888").ok(),
                    lines: 2,
                },
            )]),
        )
    }

    fn request(method: &str, n: u32, extra: &str) -> Result<SipMessage, ParseError> {
        SipMessage::parse(
            format!(
                "{method} sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9:5070;branch=z9hG4bKc{n}\r\nFrom: <sip:a@b>;tag=f{n}\r\nTo: <sip:x@127.0.0.1>\r\nCall-ID: c{n}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
            )
            .as_bytes(),
        )
    }

    fn peer() -> Peer {
        Peer {
            transport: Transport::Udp,
            addr: "127.0.0.1:40000".parse().unwrap(),
        }
    }

    fn answers(core: &mut SipCore) -> Vec<(u16, Peer)> {
        std::iter::from_fn(|| core.poll_transmit())
            .filter_map(|t| match t.message {
                SipMessage::Response(r) => Some((r.code, t.peer)),
                SipMessage::Request(_) => None,
            })
            .collect()
    }

    #[test]
    fn options_answered_at_the_source_port_even_without_rport() {
        let mut c = core(10);
        let now = Instant::now();
        c.handle_message(now, 0, request("OPTIONS", 1, ""), peer(), &NoAgents);
        // force_rport: the Via says 10.9.9.9:5070, the answer goes where the packet came from.
        assert_eq!(answers(&mut c), vec![(200, peer())]);
    }

    #[test]
    fn policy_answers_for_requests_outside_dialogs() {
        let mut c = core(100);
        let now = Instant::now();
        let cases = [
            ("BYE", "", 481),
            ("SUBSCRIBE", "", 405),
            ("FOO", "", 501),
            ("OPTIONS", "Require: 100rel\r\n", 420),
            ("INVITE", "Accept: text/plain\r\n", 406),
            ("INVITE", "Max-Forwards: 0\r\n", 483),
            // Routed: "x" is no extension of ours.
            ("INVITE", "", 404),
            ("REGISTER", "", 401),
        ];
        for (i, (method, extra, code)) in cases.iter().enumerate() {
            c.handle_message(
                now,
                0,
                request(method, i as u32 + 10, extra),
                peer(),
                &NoAgents,
            );
            let got = answers(&mut c);
            assert!(
                got.iter().any(|(c, _)| c == code),
                "{method} {extra}: {got:?}"
            );
        }
    }

    #[test]
    fn a_long_backlog_refuses_new_requests_but_finishes_accepted_work() {
        let mut c = core(1000);
        let now = Instant::now();
        c.handle_message(now, 0, request("OPTIONS", 1, ""), peer(), &NoAgents);
        assert_eq!(answers(&mut c), vec![(200, peer())]);
        c.set_backlog(100);
        // New work is refused at once, without a transaction.
        c.handle_message(now, 0, request("OPTIONS", 2, ""), peer(), &NoAgents);
        c.handle_message(now, 0, request("INVITE", 3, ""), peer(), &NoAgents);
        assert_eq!(answers(&mut c), vec![(503, peer()), (503, peer())]);
        assert_eq!(c.stats.overload, 2);
        assert_eq!(c.layer.len(), 1, "no transaction for refused work");
        // A retransmission of accepted work gets its answer again, not a 503.
        c.handle_message(now, 0, request("OPTIONS", 1, ""), peer(), &NoAgents);
        assert_eq!(answers(&mut c), vec![(200, peer())]);
        // In-dialog requests pass (here: no such dialog, so 481 rather than 503).
        c.handle_message(
            now,
            0,
            SipMessage::parse(b"BYE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9:5070;branch=z9hG4bKbye\r\nFrom: <sip:a@b>;tag=f\r\nTo: <sip:x@127.0.0.1>;tag=t\r\nCall-ID: cb\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"),
            peer(),
            &NoAgents,
        );
        assert_eq!(answers(&mut c), vec![(481, peer())]);
        c.set_backlog(99);
        c.handle_message(now, 0, request("OPTIONS", 4, ""), peer(), &NoAgents);
        assert_eq!(answers(&mut c), vec![(200, peer())]);
    }

    #[test]
    fn overload_is_answered_503_and_recovers_when_transactions_end() {
        let mut c = core(2);
        let mut now = Instant::now();
        for n in 0..2 {
            c.handle_message(now, 0, request("OPTIONS", n, ""), peer(), &NoAgents);
        }
        assert_eq!(answers(&mut c).len(), 2);
        c.handle_message(now, 0, request("OPTIONS", 7, ""), peer(), &NoAgents);
        assert_eq!(answers(&mut c), vec![(503, peer())]);
        assert_eq!(c.stats.overload, 1);
        // Timer J (64*T1 over UDP) ends the two transactions; service resumes.
        now += Duration::from_secs(33);
        c.handle_timeout(now, 0, &NoAgents);
        c.handle_message(now, 0, request("OPTIONS", 8, ""), peer(), &NoAgents);
        assert_eq!(answers(&mut c), vec![(200, peer())]);
    }

    #[test]
    fn malformed_requests_get_400_or_505_and_responses_are_dropped() {
        let mut c = core(10);
        let now = Instant::now();
        let bad = request("OPTIONS", 1, "").map(|_| ()).and(SipMessage::parse(
            b"OPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: 1\r\nCSeq: 1 INVITE\r\n\r\n",
        ));
        c.handle_message(now, 0, bad, peer(), &NoAgents);
        assert_eq!(answers(&mut c), vec![(400, peer())]);
        let v = SipMessage::parse(
            b"OPTIONS sip:x@y SIP/3.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: 1\r\nCSeq: 1 OPTIONS\r\n\r\n",
        );
        c.handle_message(now, 0, v, peer(), &NoAgents);
        assert_eq!(answers(&mut c), vec![(505, peer())]);
        let r = SipMessage::parse(b"SIP/2.0 999 x\r\n\r\n");
        c.handle_message(now, 0, r, peer(), &NoAgents);
        assert!(answers(&mut c).is_empty());
        assert_eq!(c.stats.dropped, 1);
    }

    fn invite(n: u32, user: &str, src: &str) -> (Result<SipMessage, ParseError>, Peer) {
        let m = format!(
            "INVITE sip:{user}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bKadm{n}\r\nFrom: <sip:c@x>;tag=f{n}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: adm{n}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        );
        (
            SipMessage::parse(m.as_bytes()),
            Peer {
                transport: Transport::Udp,
                addr: src.parse().unwrap(),
            },
        )
    }

    fn codes(c: &mut SipCore) -> Vec<u16> {
        std::iter::from_fn(|| c.poll_transmit())
            .filter_map(|t| match t.message {
                SipMessage::Response(r) if r.code >= 200 => Some(r.code),
                _ => None,
            })
            .collect()
    }

    fn news(c: &mut SipCore) -> Vec<CallKey> {
        std::iter::from_fn(|| c.poll_call_dispatch())
            .filter_map(|d| match d {
                CallDispatch::New { key, .. } | CallDispatch::Placed { key, .. } => Some(key),
                CallDispatch::To(..) => None,
            })
            .collect()
    }

    struct Staff;
    impl Credentials for Staff {
        fn password(&self, user: &str) -> Option<String> {
            Some(format!("pw{user}"))
        }
    }

    /// A core where 9001 supervises sales (1001's group) and 2001 is an agent.
    fn supervised_core() -> SipCore {
        use crate::access::{Access, Role, Staff as S};
        let staff = |role, skills: &[&str], sup: &[&str]| S {
            role,
            skills: skills.iter().map(|s| s.to_string()).collect(),
            supervises: sup.iter().map(|s| s.to_string()).collect(),
        };
        let mut c = core_with(1000, 0);
        let agents = ["1001", "2001", "9001"].map(|e| {
            (
                e.to_string(),
                crate::call::router::AgentRoute {
                    static_contact: None,
                    lines: 2,
                },
            )
        });
        c.router = Router::new(agents).with_supervision(
            "*33",
            Access::new([
                ("1001".into(), staff(Role::Agent, &["sales"], &[])),
                ("2001".into(), staff(Role::Agent, &["service"], &[])),
                ("9001".into(), staff(Role::Supervisor, &[], &["sales"])),
            ]),
        );
        c
    }

    /// The INVITE to the monitor code again, with an answer to `challenge` as `user`.
    fn authed_invite(
        n: u32,
        dialed: &str,
        user: &str,
        challenge: &str,
    ) -> Result<SipMessage, ParseError> {
        let nonce = crate::sip::auth::challenge_param(challenge, "nonce").unwrap();
        let uri = format!("sip:{dialed}@127.0.0.1");
        let auth = crate::sip::auth::client_authorization(
            &nonce,
            "cti.local",
            Algorithm::Md5,
            user,
            &format!("pw{user}"),
            "INVITE",
            &uri,
            1,
        );
        let m = format!(
            "INVITE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:6000;branch=z9hG4bKmon{n}\r\nFrom: <sip:{user}@x>;tag=f{n}\r\nTo: <{uri}>\r\nCall-ID: mon\r\nCSeq: {n} INVITE\r\nProxy-Authorization: {auth}\r\nContent-Length: 0\r\n\r\n"
        );
        SipMessage::parse(m.as_bytes())
    }

    fn challenge_of(c: &mut SipCore) -> (u16, Option<String>) {
        let r = std::iter::from_fn(|| c.poll_transmit())
            .find_map(|t| match t.message {
                SipMessage::Response(r) if r.code >= 200 => Some(r),
                _ => None,
            })
            .expect("a final response");
        let ch = r
            .headers
            .get(&HeaderName::ProxyAuthenticate)
            .map(str::to_string);
        (r.code, ch)
    }

    #[test]
    fn the_monitor_code_is_for_authenticated_supervisors_of_the_agents_group() {
        let mut c = supervised_core();
        let now = Instant::now();
        let wall = 1_000_000;
        let (m, p) = invite(1, "*331001", "127.0.0.1:6000");
        c.handle_message(now, wall, m, p, &Staff);
        let (code, challenge) = challenge_of(&mut c);
        assert_eq!(code, 407, "challenged like a proxy would");
        let challenge = challenge.expect("Proxy-Authenticate");
        assert!(news(&mut c).is_empty());

        // The supervisor of sales answers: the monitor call starts, naming them.
        let m = authed_invite(2, "*331001", "9001", &challenge);
        c.handle_message(now, wall, m, p, &Staff);
        let started: Vec<_> = std::iter::from_fn(|| c.poll_call_dispatch()).collect();
        match &started[..] {
            [CallDispatch::New { route, .. }] => assert_eq!(
                **route,
                Route::Hosted(Service::Monitor(crate::call::router::MonitorTarget {
                    agent: "1001".into(),
                    supervisor: "9001".into(),
                    call: None,
                }))
            ),
            other => panic!("expected a new call: {other:?}"),
        }

        // Not their group; an agent; a wrong password: refused.
        for (n, dialed, user) in [(3, "*332001", "9001"), (4, "*331001", "2001")] {
            let (m, p) = invite(10 + n, dialed, "127.0.0.1:6000");
            c.handle_message(now, wall, m, p, &Staff);
            let (_, ch) = challenge_of(&mut c);
            let m = authed_invite(n, dialed, user, &ch.unwrap());
            c.handle_message(now, wall, m, p, &Staff);
            assert_eq!(codes(&mut c), vec![403], "{user} monitoring {dialed}");
            assert!(news(&mut c).is_empty());
            let note = c.poll_audit().expect("the refusal is audited");
            assert_eq!(
                (note.actor.as_str(), note.action),
                (user, "monitor_refused")
            );
            assert_eq!(note.target.as_deref(), Some(&dialed[3..]));
        }
        struct WrongPasswords;
        impl Credentials for WrongPasswords {
            fn password(&self, _: &str) -> Option<String> {
                Some("other".into())
            }
        }
        let (m, p) = invite(20, "*331001", "127.0.0.1:6000");
        c.handle_message(now, wall, m, p, &WrongPasswords);
        let (_, ch) = challenge_of(&mut c);
        let m = authed_invite(21, "*331001", "9001", &ch.unwrap());
        c.handle_message(now, wall, m, p, &WrongPasswords);
        assert_eq!(challenge_of(&mut c).0, 407);
        assert!(news(&mut c).is_empty());

        // The code with no such agent behind it.
        let (m, p) = invite(30, "*337777", "127.0.0.1:6000");
        c.handle_message(now, wall, m, p, &Staff);
        assert_eq!(codes(&mut c), vec![404]);
    }

    #[test]
    fn an_agent_takes_as_many_calls_as_it_has_lines_then_is_busy() {
        let mut c = core_with(1000, 0);
        let now = Instant::now();
        for n in 0..3 {
            let (m, p) = invite(n, "1001", "127.0.0.1:6000");
            c.handle_message(now, 0, m, p, &NoAgents);
        }
        let started = news(&mut c);
        assert_eq!(started.len(), 2, "two lines");
        assert_eq!(
            codes(&mut c),
            vec![486],
            "the third call finds the agent busy"
        );
        // A line frees up when a call ends, or when the agent transfers the call away.
        c.call_ended(started[0]);
        c.handle_call_command(now, started[1], SipCommand::AgentLeft);
        let (m, p) = invite(9, "1001", "127.0.0.1:6000");
        c.handle_message(now, 0, m, p, &NoAgents);
        assert_eq!(news(&mut c).len(), 1);
        // The ACD hears of each line taken and freed.
        let lines: Vec<(String, bool)> = std::iter::from_fn(|| c.poll_line_event()).collect();
        let taken = |t| ("1001".to_string(), t);
        assert_eq!(
            lines,
            vec![
                taken(true),
                taken(true),
                taken(false),
                taken(false),
                taken(true)
            ]
        );
        // A call ended twice (transferred, then over) frees its line once.
        c.call_ended(started[1]);
        assert_eq!(c.poll_line_event(), None);
    }

    fn placement(number: &str) -> Placement {
        Placement {
            placer: crate::call::Placer {
                extension: "1001".into(),
                name: "Alice".into(),
                session: 1,
                leg: media::engine::LegId(1 << 60),
            },
            number: number.into(),
            lead: Some(5),
        }
    }

    #[test]
    fn a_console_places_calls_to_external_numbers_on_its_free_lines() {
        let mut c = core_with(1000, 0);
        let now = Instant::now();
        assert_eq!(
            c.place_call(now, placement("+4930111001")),
            Err((503, "no outbound trunk is configured"))
        );
        c.router = c
            .router
            .clone()
            .with_trunk(crate::call::router::TrunkRoute {
                peer: peer(),
                domain: "trunk.example".into(),
                port: 5060,
                credentials: None,
                from_user: None,
                min_digits: 7,
            });
        // Colleagues are reached by transfer, not from the dial box.
        assert_eq!(
            c.place_call(now, placement("1001")),
            Err((403, "not an external number"))
        );
        assert_eq!(
            c.place_call(now, placement("12")),
            Err((404, "not a phone number"))
        );
        let first = c.place_call(now, placement("+4930111001")).unwrap();
        match c.poll_call_dispatch() {
            Some(CallDispatch::Placed {
                key,
                placement: p,
                target,
            }) => {
                assert_eq!(key, first);
                assert_eq!(p.lead, Some(5));
                assert!(
                    matches!(*target, crate::call::Target::Trunk { ref number, .. } if number == "+4930111001")
                );
            }
            other => panic!("expected a placed call, got {other:?}"),
        }
        // Two lines: a second call may go out (the first is on hold), a third may not.
        c.place_call(now, placement("+4930111002")).unwrap();
        assert_eq!(
            c.place_call(now, placement("+4930111003")),
            Err((486, "all your lines are in use"))
        );
        // An inbound call finds the agent busy too, and the ACD heard of both lines.
        let (m, p) = invite(1, "1001", "127.0.0.1:6000");
        c.handle_message(now, 0, m, p, &NoAgents);
        assert_eq!(codes(&mut c), vec![486]);
        let lines: Vec<(String, bool)> = std::iter::from_fn(|| c.poll_line_event()).collect();
        assert_eq!(lines, vec![("1001".to_string(), true); 2]);
        c.call_ended(first);
        assert_eq!(c.poll_line_event(), Some(("1001".to_string(), false)));
        c.begin_drain();
        assert_eq!(
            c.place_call(now, placement("+4930111004")),
            Err((503, "the server is shutting down"))
        );
    }

    #[test]
    fn unknown_numbers_404_and_a_source_over_its_rate_gets_503() {
        let mut c = core_with(1000, 5);
        let now = Instant::now();
        let (m, p) = invite(1, "9999", "127.0.0.1:6000");
        c.handle_message(now, 0, m, p, &NoAgents);
        assert_eq!(codes(&mut c), vec![404]);
        // Burst of 10 (twice the rate) from one address, then 503 with Retry-After.
        let mut refused = 0;
        for n in 10..30 {
            let (m, p) = invite(n, "9999", "127.0.0.2:6000");
            c.handle_message(now, 0, m, p, &NoAgents);
            refused += codes(&mut c).iter().filter(|&&x| x == 503).count();
        }
        assert_eq!(refused, 10);
        // Another source is not affected; and the first recovers with time.
        let (m, p) = invite(40, "9999", "127.0.0.3:6000");
        c.handle_message(now, 0, m, p, &NoAgents);
        assert_eq!(codes(&mut c), vec![404]);
        let later = now + Duration::from_secs(1);
        let (m, p) = invite(41, "9999", "127.0.0.2:6000");
        c.handle_message(later, 0, m, p, &NoAgents);
        assert_eq!(codes(&mut c), vec![404]);
    }
}
