//! The call actor: one tokio task per call, owning its [`Call`] machine and its media legs.
//! It only moves things: SIP input from the SIP task into the machine, the machine's SIP
//! commands back, media operations to the engine (awaiting their results), time as a single
//! timer, and the finished record to the store writer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use media::codec::Codec as MediaCodec;
use media::engine::{EngineError, LegConfig, LegEvent, LegId, MediaHandle, RoomId};
use media::prompt::{PlayEnd, PlayOptions};
use media::rtp::PayloadType;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::host::HostOutput;
use super::prompts::Prompts;
use super::{
    Call, CallKey, CallRecord, LegParams, MediaOp, Notice, Output, Side, SipCommand, SipInput,
};
use crate::sdp::Codec;
use crate::store::StoreEvent;

/// What a call actor receives.
#[derive(Debug)]
pub enum CallEvent {
    Sip(SipInput),
    /// Something happened on one of the call's media legs.
    Media(LegId, LegEvent),
    /// A prompt ended on a leg: the play's id, and why.
    PromptEnded(LegId, u64, PlayEnd),
    /// The ACD decided something for this call.
    Acd(crate::acd::AcdAction),
    /// The answer to a lead lookup.
    Lead(Option<crate::ivr::LeadMatch>),
    /// Pause (true) or resume the call's recording (the agent, while the customer reads out a
    /// card number); the answer is the marker's offset in the file.
    PauseRecording {
        paused: bool,
        reply: tokio::sync::oneshot::Sender<Result<Duration, String>>,
    },
    /// The supervisor of this (monitoring) call switches mode from their console.
    MonitorMode {
        mode: super::monitor::MonitorMode,
        reply: tokio::sync::oneshot::Sender<bool>,
    },
    /// The agent's browser console (answer, hang up, hold, keys, transfer, reload).
    Softphone {
        agent: String,
        input: super::browser::SoftphoneInput,
    },
    /// Start recording now (the on-demand policy): the agent asked.
    RecordNow {
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
    Shutdown,
}

/// What a call actor tells the SIP task.
#[derive(Debug)]
pub enum ActorMessage {
    Sip(Box<SipCommand>),
    /// The call is over: forget its routes.
    Ended,
}

/// Media leg ids of a call: two per call, derived from the key so engine events route back
/// without a table.
pub fn legs_of(key: CallKey) -> (LegId, LegId) {
    (LegId(key.0 * 2), LegId(key.0 * 2 + 1))
}

/// The call a media leg belongs to.
pub fn call_of_leg(leg: LegId) -> CallKey {
    CallKey(leg.0 / 2)
}

/// Settings the actor needs besides the machine's.
#[derive(Clone)]
pub struct ActorConfig {
    pub media_timeout: Duration,
    pub prompts: Arc<Prompts>,
    /// What hosted calls need (IVR flows, the ACD, the lead store).
    pub hosting: Option<Arc<Hosting>>,
    /// Recordings the disk stopped or did not let start (`/healthz`).
    pub recording_failures: Arc<std::sync::atomic::AtomicU64>,
    /// The calls in progress, kept current by their actors.
    pub live: super::live::LiveCalls,
    /// Calls by direction and end cause (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The agents' extensions (to name a call's agent in its log span).
    pub live_agents: Arc<std::collections::HashSet<String>>,
}

/// The shared parts hosted calls use.
pub struct Hosting {
    pub config: Arc<super::host::HostConfig>,
    pub flows: crate::ivr::FlowRegistry,
    pub acd: crate::acd::actor::AcdHandle,
    /// For lead lookups (reads; writes go through the writer task).
    pub store: Option<crate::store::Store>,
    /// Screen pops and other CTI events for the agents' consoles.
    pub cti: crate::cti::CtiHub,
    /// The agents' browser consoles and their media legs.
    pub softphones: crate::softphone::Softphones,
}

impl Hosting {
    /// The service side of a new hosted call.
    pub fn host(&self, key: CallKey, service: super::router::Service) -> super::host::Host {
        super::host::Host::new(
            key,
            service,
            self.config.clone(),
            self.flows.current(),
            Instant::now(),
        )
    }

    /// Pops a call outside any queue on `agent`'s screens: put straight through to them
    /// (`caller` is the customer), or placed by them (`outbound`: `caller` is the number
    /// they call). `lead`: the lead they called from.
    pub fn pop_direct(
        &self,
        key: CallKey,
        agent: &str,
        caller: String,
        dialed: String,
        lead: Option<i64>,
        outbound: bool,
    ) {
        crate::cti::pop(
            &self.cti,
            self.store.clone(),
            self.config.lead_country.clone(),
            crate::cti::Offer {
                call: key.0,
                agent: agent.to_string(),
                caller,
                dialed,
                queue: None,
                path: Vec::new(),
                variables: Default::default(),
                ivr_lead: lead,
                outbound,
                dispositions: self.config.dispositions.codes(None).to_vec(),
                disposition_required: false,
            },
        );
    }

    /// The service side of a relayed call whose agent transfers it.
    pub fn adopt(&self, call: &Call) -> super::host::Host {
        super::host::Host::adopt(
            call,
            self.config.clone(),
            self.flows.current(),
            Instant::now(),
        )
    }
}

pub struct CallActor {
    pub call: Call,
    pub media: MediaHandle,
    pub events: mpsc::Receiver<CallEvent>,
    pub to_sip: mpsc::Sender<(CallKey, ActorMessage)>,
    pub store: Option<mpsc::Sender<StoreEvent>>,
    pub config: ActorConfig,
    /// Recordings closed during the call (the call's own, voicemail).
    pub recorded: Vec<media::recorder::RecordingSummary>,
    /// When the recording under way started (wall-clock ms).
    pub recording_started_ms: Option<i64>,
    /// A recording that could not start: its path and why.
    pub recording_not_started: Option<(std::path::PathBuf, String)>,
    /// Pause and resume markers of the recording under way (offset, paused).
    pub recording_markers: Vec<(Duration, bool)>,
    /// Supervisors' tracks under way: their leg, and when each started (wall-clock ms).
    pub tracks: Vec<(LegId, i64)>,
    /// The call's own recordings, closed (for the lead's timeline).
    pub call_recordings: Vec<std::path::PathBuf>,
    /// The service side of a hosted call.
    pub host: Option<super::host::Host>,
    /// This actor's own inbox, for answers that come back from spawned work (lead lookups)
    /// and for the ACD.
    pub inbox: mpsc::Sender<CallEvent>,
    /// The lead an agent called from (a call placed from the console).
    pub lead: Option<i64>,
}

impl CallActor {
    /// Runs the call to its end inside a `call` tracing span, with the call's key and, once
    /// one is known, its agent (every line of the call's log carries them, also as JSON).
    pub async fn run(self) {
        let span = tracing::info_span!(
            "call",
            key = %self.call.key(),
            agent = tracing::field::Empty
        );
        self.run_inner().instrument(span).await
    }

    async fn run_inner(mut self) {
        let key = self.call.key();
        let mut room: Option<RoomId> = None;
        // The call's first media leg: later legs are created on its engine shard, so
        // bridging them needs no move between shards.
        let mut anchor: Option<LegId> = None;
        let mut record_legs: Vec<(Side, media::engine::LegStats)> = Vec::new();
        let mut shutting_down = false;
        let mut acd_attached = false;
        // What the live-calls registry last got from this call.
        let mut live: Option<super::live::LiveCall> = None;
        // The agent named in the call's log span.
        let mut logged_agent: Option<String> = None;
        // Counted by the direction it started with, so the gauge comes back down.
        let outbound = self.call.is_outbound();
        self.config.metrics.calls.started(outbound);
        loop {
            // Drain everything the machine wants done.
            while let Some(out) = self.call.poll_output() {
                match out {
                    Output::Sip(cmd) => {
                        if self
                            .to_sip
                            .send((key, ActorMessage::Sip(Box::new(cmd))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    Output::Media(op) => {
                        self.media_op(op, &mut room, &mut anchor, &mut record_legs)
                            .await;
                    }
                    Output::Softphone(ev) => {
                        if let Some(h) = &self.config.hosting {
                            crate::softphone::deliver(&h.softphones, &h.cti, key, ev);
                        }
                    }
                    Output::Notice(notice) => {
                        if self.host.is_none() && matches!(notice, Notice::TransferRequested(_)) {
                            // A relayed call being transferred: a service takes it on.
                            match &self.config.hosting {
                                Some(hosting) => self.host = Some(hosting.adopt(&self.call)),
                                None => self
                                    .call
                                    .transfer_failed(503, "Service Unavailable (no services)"),
                            }
                        }
                        if let Some(h) = self.host.as_mut() {
                            h.on_notice(&mut self.call, notice, now_pair());
                        }
                    }
                    Output::Ended(mut record) => {
                        self.config.live.remove(key);
                        self.host_outputs(&mut acd_attached);
                        if acd_attached && let Some(hosting) = &self.config.hosting {
                            hosting.acd.send(crate::acd::actor::AcdInput::Detach(
                                crate::acd::CallRef(key.0),
                            ));
                        }
                        if let Some(r) = room.take() {
                            let _ = self.media.end_room(r).await;
                        }
                        fill_media_figures(&mut record, &record_legs);
                        self.config.metrics.calls.ended(
                            outbound,
                            &record.end_cause.map(|c| c.as_str()).unwrap_or_default(),
                        );
                        self.log_on_lead_timeline(&record);
                        tracing::info!(
                            cause = record.end_cause.map(|c| c.as_str()).unwrap_or_default(),
                            "call ended"
                        );
                        if let Some(store) = &self.store
                            && store.try_send(StoreEvent::Call(record)).is_err()
                        {
                            tracing::warn!("store writer lagging: call record dropped");
                        }
                        let _ = self.to_sip.send((key, ActorMessage::Ended)).await;
                        return;
                    }
                }
            }
            self.host_outputs(&mut acd_attached);
            if self.call.poll_output_pending() {
                continue;
            }
            let paused = self.recording_markers.last().is_some_and(|m| m.1);
            let mut now_live = self.call.live(paused);
            if let Some(h) = &self.host {
                if now_live.state == "service" {
                    now_live.state = h.activity().unwrap_or("service");
                }
                now_live.lead = h.lead().map(|l| super::live::LiveLead {
                    id: l.lead_id,
                    name: l.name.clone(),
                    grade: l.grade.clone(),
                });
                now_live.monitoring =
                    h.monitoring()
                        .map(|(supervisor, agent)| super::live::LiveMonitoring {
                            supervisor: supervisor.to_string(),
                            agent: agent.to_string(),
                            mode: self.call.monitor_mode(),
                        });
            }
            if live.as_ref() != Some(&now_live) {
                // The agent the call is with (put through to, or placing it).
                let agent = match now_live.agent.as_deref() {
                    Some(a) if self.config.live_agents.contains(a) => Some(a),
                    _ if self.config.live_agents.contains(&now_live.caller) => {
                        Some(now_live.caller.as_str())
                    }
                    _ => None,
                };
                if let Some(a) = agent
                    && logged_agent.as_deref() != Some(a)
                {
                    tracing::Span::current().record("agent", a);
                    logged_agent = Some(a.to_string());
                }
                self.config.live.update(key, now_live.clone(), &self.inbox);
                live = Some(now_live);
            }
            let deadline = [
                self.call.poll_timeout(),
                self.host.as_ref().and_then(|h| h.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                ev = self.events.recv() => {
                    let now = Instant::now();
                    match ev {
                        Some(CallEvent::Sip(input)) => self.call.handle_sip(now, input),
                        Some(CallEvent::Media(leg, LegEvent::MediaTimeout)) => {
                            self.call.media_timeout(now, leg);
                        }
                        Some(CallEvent::Media(leg, LegEvent::Dtmf(digit, _))) => {
                            self.call.dtmf(now, leg, digit.to_char());
                        }
                        Some(CallEvent::Media(..)) => {}
                        Some(CallEvent::PromptEnded(leg, id, end)) => {
                            self.call.prompt_ended(leg, id, end == PlayEnd::Interrupted);
                        }
                        Some(CallEvent::Acd(action)) => {
                            if let Some(h) = self.host.as_mut() {
                                h.on_acd(&mut self.call, action, now_pair());
                            }
                        }
                        Some(CallEvent::Lead(lead)) => {
                            if let Some(h) = self.host.as_mut() {
                                h.lead_found(&mut self.call, lead, now_pair());
                            }
                        }
                        Some(CallEvent::PauseRecording { paused, reply }) => {
                            let _ = reply.send(self.pause_recording(room, paused).await);
                        }
                        Some(CallEvent::MonitorMode { mode, reply }) => {
                            let done = match self.host.as_mut() {
                                Some(h) => h.switch_monitor_mode(&mut self.call, mode, now_pair()),
                                None => false,
                            };
                            let _ = reply.send(done);
                        }
                        Some(CallEvent::Softphone { agent, input }) => {
                            self.call.softphone(Instant::now(), &agent, input);
                        }
                        Some(CallEvent::RecordNow { reply }) => {
                            let _ = reply.send(self.call.record_on_demand().map_err(str::to_string));
                        }
                        Some(CallEvent::Shutdown) | None => {
                            if !shutting_down {
                                shutting_down = true;
                                self.call.shutdown(now);
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => {
                    self.call.handle_timeout(Instant::now());
                    if let Some(h) = self.host.as_mut() {
                        h.handle_timeout(&mut self.call, now_pair());
                    }
                }
            }
        }
    }

    async fn media_op(
        &mut self,
        op: MediaOp,
        room: &mut Option<RoomId>,
        anchor: &mut Option<LegId>,
        record_legs: &mut Vec<(Side, media::engine::LegStats)>,
    ) {
        let key = self.call.key();
        match op {
            MediaOp::CreateLeg { leg, params, .. } => {
                let cfg = self.leg_config(&params);
                let created = match *anchor {
                    Some(near) => self.media.create_leg_near(leg, near, cfg).await,
                    None => self.media.create_leg(leg, cfg).await,
                };
                match created {
                    Ok(addr) => {
                        anchor.get_or_insert(leg);
                        self.call.media_ready(Instant::now(), leg, addr)
                    }
                    Err(e) => self.call.media_failed(Instant::now(), leg, &e.to_string()),
                }
            }
            MediaOp::CreateWebRtcOffer { leg, .. } => {
                match self.media.create_browser_offer(leg, *anchor).await {
                    Ok(offer) => {
                        anchor.get_or_insert(leg);
                        self.call.webrtc_offer_ready(Instant::now(), leg, offer)
                    }
                    Err(e) => self.call.media_failed(Instant::now(), leg, &e.to_string()),
                }
            }
            MediaOp::WebRtcAnswer { leg, sdp } => {
                if let Err(e) = self.media.browser_answer(leg, sdp).await {
                    // The browser's answer does not fit our offer: no audio can flow.
                    self.call
                        .media_failed(Instant::now(), leg, &format!("WebRTC answer: {e}"));
                }
            }
            MediaOp::Update { leg, params } => {
                let cfg = self.leg_config(&params);
                if let Err(e) = self.media.reconfigure_leg(leg, cfg).await {
                    tracing::warn!(error = %e, ?leg, "media leg update failed");
                }
            }
            MediaOp::Bridge { caller, agent } => {
                let Some(r) = self.room(key, room).await else {
                    return;
                };
                for leg in [caller, agent] {
                    match self.media.join(r, leg).await {
                        // The caller stays in the room from an earlier bridge (a transfer).
                        Ok(()) => {}
                        Err(EngineError::AlreadyInRoom(_))
                            if leg == caller && !crate::softphone::is_browser_leg(leg) => {}
                        // An agent's browser leg still in the room of their other line (that
                        // call's hold is on its way): it moves here. A console that places a
                        // call is on the caller side.
                        Err(EngineError::AlreadyInRoom(_)) => {
                            let moved = match self.media.leave(leg).await {
                                Ok(()) => self.media.join(r, leg).await,
                                Err(e) => Err(e),
                            };
                            if let Err(e) = moved {
                                tracing::warn!(error = %e, ?leg, "agent leg not moved in");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, ?leg, "join failed"),
                    }
                }
                self.hear_each_other(r, caller, agent).await;
            }
            MediaOp::Link { ours, theirs } => {
                let Some(r) = self.room(key, room).await else {
                    return;
                };
                // Ours is in the room already (it was bridged); theirs left its own room.
                let _ = self.media.join(r, ours).await;
                if let Err(e) = self.media.join(r, theirs).await {
                    tracing::warn!(error = %e, leg = ?theirs, "joined call's leg not taken in");
                }
                self.hear_each_other(r, ours, theirs).await;
            }
            MediaOp::StartTrack { leg, path } => {
                let Some(r) = *room else {
                    return;
                };
                let started_at_ms = crate::store::now_ms();
                let made = match make_parent(&path).await {
                    Ok(()) => self
                        .media
                        .start_track(r, leg, path.clone())
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                match made {
                    Ok(()) => {
                        self.tracks.push((leg, started_at_ms));
                    }
                    Err(e) => self.recording_failure(&path, &format!("supervisor track: {e}")),
                }
            }
            MediaOp::StopTrack { leg, monitor } => {
                let Some(i) = self.tracks.iter().position(|(l, _)| *l == leg) else {
                    return;
                };
                let (_, started_at_ms) = self.tracks.remove(i);
                let Some(r) = *room else {
                    return;
                };
                match self.media.stop_track(r, leg).await {
                    Ok(summary) => self.index_recording(crate::store::RecordingDone {
                        call: key,
                        path: summary.path.clone(),
                        started_at_ms,
                        duration: summary.duration,
                        overrun_samples: summary.overrun_samples,
                        failed: summary.failed.clone(),
                        written: summary.written,
                        markers: Vec::new(),
                        monitor: Some(monitor),
                    }),
                    Err(e) => tracing::warn!(error = %e, "supervisor track not closed cleanly"),
                }
            }
            MediaOp::ToggleRecordingPause => {
                let paused = self.recording_markers.last().is_some_and(|m| m.1);
                if let Err(why) = self.pause_recording(*room, !paused).await {
                    tracing::info!(why, "recording key: nothing to pause");
                }
            }
            MediaOp::Monitor {
                leg,
                customer,
                agent,
                mode,
            } => {
                let Some(r) = self.room(key, room).await else {
                    return;
                };
                match self.media.join(r, leg).await {
                    // A mode switch: the supervisor is in the room already.
                    Ok(()) | Err(EngineError::AlreadyInRoom(_)) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, ?leg, "supervisor's leg not taken in");
                        return;
                    }
                }
                use super::monitor::MonitorMode::{Barge, Whisper};
                let links = [
                    (leg, customer, true),
                    (leg, agent, true),
                    (agent, leg, matches!(mode, Whisper | Barge)),
                    (customer, leg, mode == Barge),
                ];
                for (listener, speaker, hears) in links {
                    if let Err(e) = self.media.set_hears(r, listener, speaker, hears).await {
                        tracing::warn!(error = %e, "monitor hearing not set");
                    }
                }
            }
            MediaOp::Leave { leg } => {
                // Out of this call's room only: a browser leg may be in its other line's.
                let left = match *room {
                    Some(r) => self.media.leave_room(r, leg).await.map(|_| ()),
                    None => self.media.leave(leg).await,
                };
                if let Err(e) = left {
                    tracing::warn!(error = %e, ?leg, "leg did not leave its room");
                }
            }
            MediaOp::Hears {
                listener,
                speaker,
                hears,
            } => {
                if let Some(r) = *room
                    && let Err(e) = self.media.set_hears(r, listener, speaker, hears).await
                {
                    tracing::warn!(error = %e, "set_hears failed");
                }
            }
            MediaOp::EndLeg { leg, side } => {
                if let Ok(stats) = self.media.stats(leg).await {
                    record_legs.push((side, stats));
                }
                let _ = self.media.end_leg(leg).await;
                if *anchor == Some(leg) {
                    *anchor = None;
                }
            }
            MediaOp::Play {
                leg,
                prompt,
                id,
                looped,
                interruptible,
            } => {
                let options = PlayOptions {
                    looped,
                    interruptible,
                    id,
                };
                let played = match self.config.prompts.get(&prompt).await {
                    Ok(p) => self
                        .media
                        .play(leg, p, options)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                if let Err(e) = played {
                    // A prompt that cannot play counts as played: the flow goes on rather
                    // than leaving the caller in silence forever.
                    tracing::warn!(error = %e, prompt = %prompt.display(), "prompt not played");
                    self.call.prompt_ended(leg, id, false);
                }
            }
            MediaOp::SendDtmf { leg, digit } => {
                if let Some(d) = media::codec::telephone_event::Digit::from_char(digit)
                    && let Err(e) = self.media.send_dtmf(leg, d).await
                {
                    tracing::debug!(error = %e, ?leg, "key not relayed");
                }
            }
            MediaOp::StopPlay { leg } => {
                let _ = self.media.stop_prompt(leg).await;
            }
            MediaOp::StartRecording { leg, path } => {
                let Some(r) = self.room(key, room).await else {
                    return;
                };
                let _ = self.media.join(r, leg).await;
                self.recording_started_ms = Some(crate::store::now_ms());
                let started = match make_parent(&path).await {
                    Ok(()) => self
                        .media
                        .start_recording(r, leg, path.clone())
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e),
                };
                if let Err(e) = started {
                    // The call goes on unrecorded; the gap is on record when it ends.
                    self.recording_failure(&path, &e);
                    self.recording_not_started = Some((path, e));
                }
            }
            MediaOp::StopRecording => {
                if let Some((path, why)) = self.recording_not_started.take() {
                    let started = self.recording_started_ms.take();
                    let voicemail = self
                        .host
                        .as_mut()
                        .is_some_and(super::host::Host::recording_lost);
                    if !voicemail {
                        // The row says the whole call is a gap.
                        let now = crate::store::now_ms();
                        self.index_recording(crate::store::RecordingDone {
                            call: key,
                            path,
                            started_at_ms: started.unwrap_or(now),
                            duration: Duration::from_millis(
                                started.map_or(0, |t| (now - t).max(0) as u64),
                            ),
                            overrun_samples: 0,
                            failed: Some(format!("not started: {why}")),
                            written: Duration::ZERO,
                            markers: Vec::new(),
                            monitor: None,
                        });
                    }
                    return;
                }
                if let Some(r) = *room {
                    match self.media.stop_recording(r).await {
                        Ok(summary) => {
                            if let Some(why) = &summary.failed {
                                self.recording_failure(&summary.path, why);
                            }
                            let voicemail = self
                                .host
                                .as_mut()
                                .is_some_and(|h| h.recorded(summary.path.clone(), summary.written));
                            let started = self.recording_started_ms.take();
                            let markers = std::mem::take(&mut self.recording_markers);
                            if !voicemail && let Some(started_at_ms) = started {
                                self.call_recordings.push(summary.path.clone());
                                self.index_recording(crate::store::RecordingDone {
                                    call: key,
                                    path: summary.path.clone(),
                                    started_at_ms,
                                    duration: summary.duration,
                                    overrun_samples: summary.overrun_samples,
                                    failed: summary.failed.clone(),
                                    written: summary.written,
                                    markers,
                                    monitor: None,
                                });
                            }
                            self.recorded.push(summary);
                        }
                        Err(e) => tracing::warn!(error = %e, "recording not closed cleanly"),
                    }
                }
            }
        }
    }

    /// Every call with a customer goes on their lead's timeline (the lead the IVR matched,
    /// else every lead with the customer's number), with its recording.
    fn log_on_lead_timeline(&self, record: &CallRecord) {
        let (Some(hosting), Some(writer)) = (&self.config.hosting, &self.store) else {
            return;
        };
        let Some(store) = hosting.store.clone() else {
            return;
        };
        if self.host.as_ref().is_some_and(|h| h.monitoring().is_some()) {
            return;
        }
        let Some(customer) = record.customer_number() else {
            return;
        };
        let known = self
            .host
            .as_ref()
            .and_then(|h| h.lead())
            .map(|l| l.lead_id)
            .or(self.lead);
        let connected = record.connect_after.or(record.answer_after);
        let detail = serde_json::json!({
            "call_id": record.key.0,
            "direction": if record.is_outbound() { "outbound" } else { "inbound" },
            "number": customer,
            "agent": record.agent_extension().map(str::to_string).or_else(|| record.placed_by()),
            "services": record.services,
            "connected": connected.is_some(),
            "talk_ms": match (connected, record.end_after) {
                (Some(c), Some(e)) => Some(e.saturating_sub(c).as_millis() as u64),
                _ => None,
            },
            "end_cause": record.end_cause.map(|c| c.as_str()),
            "recordings": self.call_recordings.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        let actor = record
            .agent_extension()
            .map(str::to_string)
            .or_else(|| record.placed_by())
            .unwrap_or_else(|| "system".to_string());
        let (writer, country) = (writer.clone(), hosting.config.lead_country.clone());
        tokio::spawn(async move {
            let leads = match known {
                Some(id) => vec![id],
                None => store
                    .leads_by_caller(&customer, &country)
                    .await
                    .unwrap_or_default(),
            };
            for lead in leads {
                let ev = StoreEvent::LeadEvent {
                    lead,
                    actor: actor.clone(),
                    kind: "call",
                    detail: detail.clone(),
                };
                if writer.try_send(ev).is_err() {
                    tracing::warn!(
                        lead,
                        "store writer lagging: call not on the lead's timeline"
                    );
                }
            }
        });
    }

    /// Pauses or resumes the call's recording; the marker's offset in the file.
    async fn pause_recording(
        &mut self,
        room: Option<RoomId>,
        paused: bool,
    ) -> Result<Duration, String> {
        if !self.call.is_recorded() || self.recording_not_started.is_some() {
            return Err("the call is not being recorded".into());
        }
        let Some(r) = room else {
            return Err("the call is not being recorded".into());
        };
        let m = self
            .media
            .pause_recording(r, paused)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            paused,
            at_ms = m.at.as_millis() as u64,
            "recording paused/resumed"
        );
        self.recording_markers.push((m.at, m.paused));
        Ok(m.at)
    }

    fn index_recording(&self, row: crate::store::RecordingDone) {
        if let Some(store) = &self.store
            && store
                .try_send(StoreEvent::Recording(Box::new(row)))
                .is_err()
        {
            tracing::warn!("store writer lagging: recording not indexed");
        }
    }

    /// The alarm for a recording the disk stopped or did not let start: an error in the log
    /// and a count in `/healthz` (`media.recording_failures`).
    fn recording_failure(&self, path: &std::path::Path, why: &str) {
        self.config
            .recording_failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::error!(path = %path.display(), why, "recording failed: the call goes on unrecorded");
    }

    /// The call's room, made on first use.
    async fn room(&self, key: CallKey, room: &mut Option<RoomId>) -> Option<RoomId> {
        if room.is_none() {
            let r = RoomId(key.0);
            if let Err(e) = self.media.create_room(r).await {
                tracing::warn!(error = %e, "room creation failed");
                return None;
            }
            *room = Some(r);
        }
        *room
    }

    /// A leg joins hearing nobody: the two parties of a bridge hear each other.
    async fn hear_each_other(&self, r: RoomId, a: LegId, b: LegId) {
        for (listener, speaker) in [(a, b), (b, a)] {
            if let Err(e) = self.media.set_hears(r, listener, speaker, true).await {
                tracing::warn!(error = %e, "bridge not made");
            }
        }
    }

    /// Passes on what the host asks of the world: ACD events, lead lookups, voicemails.
    fn host_outputs(&mut self, acd_attached: &mut bool) {
        let Some(host) = self.host.as_mut() else {
            return;
        };
        let key = self.call.key();
        while let Some(out) = host.poll_output() {
            match out {
                HostOutput::Acd(event) => {
                    let Some(hosting) = &self.config.hosting else {
                        continue;
                    };
                    if !*acd_attached {
                        *acd_attached = true;
                        hosting.acd.send(crate::acd::actor::AcdInput::Attach(
                            crate::acd::CallRef(key.0),
                            self.inbox.clone(),
                        ));
                    }
                    hosting.acd.send(crate::acd::actor::AcdInput::Event(event));
                }
                HostOutput::LookupLead(query) => {
                    let store = self.config.hosting.as_ref().and_then(|h| h.store.clone());
                    let country = self
                        .config
                        .hosting
                        .as_ref()
                        .map(|h| h.config.lead_country.clone())
                        .unwrap_or_default();
                    let inbox = self.inbox.clone();
                    // Off the call's task: the IVR has its own timeout for a slow answer.
                    tokio::spawn(async move {
                        let found = match (&store, &query) {
                            (Some(s), crate::ivr::LeadQuery::CallerNumber(n)) => {
                                s.lead_by_caller(n, &country).await
                            }
                            (Some(s), crate::ivr::LeadQuery::Digits(d)) => {
                                s.lead_by_customer_no(d).await
                            }
                            (None, _) => Ok(None),
                        };
                        let lead = found.unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "lead lookup failed");
                            None
                        });
                        let _ = inbox.send(CallEvent::Lead(lead)).await;
                    });
                }
                HostOutput::Offered(offer) => {
                    if let Some(hosting) = &self.config.hosting {
                        crate::cti::pop(
                            &hosting.cti,
                            hosting.store.clone(),
                            hosting.config.lead_country.clone(),
                            offer,
                        );
                    }
                }
                HostOutput::Monitor(m) => {
                    if let Some(store) = &self.store
                        && store.try_send(StoreEvent::Monitor(Box::new(m))).is_err()
                    {
                        tracing::warn!("store writer lagging: monitor session not logged");
                    }
                }
                HostOutput::Voicemail(v) => {
                    tracing::info!(mailbox = %v.mailbox, path = %v.path.display(), "voicemail left");
                    if let Some(store) = &self.store
                        && store.try_send(StoreEvent::Voicemail(Box::new(v))).is_err()
                    {
                        tracing::warn!("store writer lagging: voicemail record dropped");
                    }
                }
            }
        }
    }

    fn leg_config(&self, p: &LegParams) -> LegConfig {
        let mut cfg = LegConfig::new(media_codec(p.codec));
        if let Some(pt) = PayloadType::new(p.payload_type) {
            cfg.payload_type = pt;
        }
        cfg.telephone_event = p.dtmf_payload_type.and_then(PayloadType::new);
        cfg.remote = p.remote;
        cfg.symmetric = true;
        cfg.rtcp_mux = p.rtcp_mux;
        cfg.media_timeout = self.config.media_timeout;
        cfg.srtp = p.srtp;
        cfg
    }
}

/// Makes the folder a recording goes in (its dated folder); the error names it.
async fn make_parent(path: &std::path::Path) -> Result<(), String> {
    match path.parent() {
        Some(dir) => tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("{}: {e}", dir.display())),
        None => Ok(()),
    }
}

/// Now, for the IVR: the monotonic clock for timers, the wall clock for business hours.
fn now_pair() -> crate::ivr::Now {
    crate::ivr::Now {
        mono: Instant::now(),
        wall: std::time::SystemTime::now(),
    }
}

pub fn media_codec(c: Codec) -> MediaCodec {
    match c {
        Codec::Pcmu => MediaCodec::Pcmu,
        Codec::Pcma => MediaCodec::Pcma,
        Codec::Opus => MediaCodec::Opus,
    }
}

fn fill_media_figures(record: &mut CallRecord, legs: &[(Side, media::engine::LegStats)]) {
    for (side, s) in legs {
        let r = match side {
            Side::Caller => &mut record.caller,
            Side::Agent => &mut record.agent,
        };
        r.packets_sent = u64::from(s.packets_sent);
        r.packets_received = s.packets_received_total;
        r.packets_lost = s.packets_lost_total.max(0) as u64;
        r.jitter_ms = s.reception.jitter_ms;
        r.remote_loss_fraction = s.remote_fraction_lost.map(|f| f64::from(f) / 256.0);
        r.round_trip_ms = s.round_trip.map(|d| d.as_secs_f64() * 1000.0);
    }
}
