//! The async shell: UDP sockets from a [`PortPool`], one engine task owning every [`Leg`] and
//! [`Room`], a 20 ms clock, and bounded channels to the call actors ([`MediaHandle`] for
//! commands in, [`EngineEvent`]s out).
//!
//! The engine task is the only place that reads the clock. Per datagram it feeds the leg's
//! sans-IO core; per tick it pulls one frame from every leg (jitter buffer → decoder), mixes
//! every room, writes recordings, and sends every leg its frame (prompt, room mix, or
//! nothing), then drains transmits to the sockets and events to the channel. Sends use
//! `try_send_to` and events `try_send`: the tick never waits on a socket or a slow consumer.

mod leg;
mod ports;

pub use leg::{DtmfSource, Leg, LegConfig, LegError, LegEvent, LegStats, Transmit};
pub use ports::{BoundPair, PortLease, PortPool};

use crate::codec::CodecError;
use crate::codec::g711::FRAME_SAMPLES;
use crate::codec::telephone_event::Digit;
use crate::mixer::{MixerError, ParticipantId, Room};
use crate::prompt::{PlayEnd, PlayOptions, Prompt, PromptPlayer};
use crate::recorder::{Marker, Recorder, RecorderConfig, RecorderError, RecordingSummary};
use crate::rtp::Ssrc;
use crate::webrtc::{BrowserLeg, BrowserLegConfig, WebRtcError};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A call leg, named by the call actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u64);

/// A mixing room, named by the call actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomId(pub u64);

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Address the leg sockets bind to.
    pub bind_ip: IpAddr,
    /// The RTP port range.
    pub ports: RangeInclusive<u16>,
    /// Commands queued before senders wait.
    pub command_queue: usize,
    /// Events queued before new ones are dropped (and counted in the log).
    pub event_queue: usize,
    /// Datagrams queued from the socket readers to the engine task.
    pub inbound_queue: usize,
    /// The media clock period.
    pub tick: Duration,
    /// The address browsers reach us on (ICE host candidate); `bind_ip` if unset.
    pub advertised_ip: Option<IpAddr>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            bind_ip: IpAddr::from([0, 0, 0, 0]),
            ports: 20000..=29999,
            command_queue: 256,
            event_queue: 1024,
            inbound_queue: 4096,
            tick: Duration::from_millis(20),
            advertised_ip: None,
        }
    }
}

/// Engine errors, returned to the call actor that sent the command.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No such leg.
    #[error("unknown leg {0:?}")]
    UnknownLeg(LegId),
    /// No such room.
    #[error("unknown room {0:?}")]
    UnknownRoom(RoomId),
    /// The id is taken.
    #[error("leg {0:?} already exists")]
    LegExists(LegId),
    /// The id is taken.
    #[error("room {0:?} already exists")]
    RoomExists(RoomId),
    /// The leg is already in a room.
    #[error("leg {0:?} is already in a room")]
    AlreadyInRoom(LegId),
    /// No port could be bound.
    #[error("binding a media port: {0}")]
    Ports(#[from] std::io::Error),
    /// Codec setup failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Mixer misuse.
    #[error(transparent)]
    Mixer(#[from] MixerError),
    /// Recording failed.
    #[error(transparent)]
    Recorder(#[from] RecorderError),
    /// WebRTC setup failed (a bad offer is the browser's fault).
    #[error(transparent)]
    WebRtc(#[from] WebRtcError),
    /// The operation needs a plain RTP leg.
    #[error("leg {0:?} is not a plain RTP leg")]
    NotRtpLeg(LegId),
    /// The room is not recording.
    #[error("room {0:?} is not recording")]
    NotRecording(RoomId),
    /// The engine task has stopped.
    #[error("media engine stopped")]
    Stopped,
}

/// Events for the call actors.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// Something happened on a leg (DTMF, timeout, statistics, latching).
    Leg {
        /// Which.
        leg: LegId,
        /// What.
        event: LegEvent,
    },
    /// A prompt stopped.
    PromptEnded {
        /// On which leg.
        leg: LegId,
        /// Why.
        end: PlayEnd,
        /// The play's [`PlayOptions::id`].
        id: u64,
    },
}

enum Op {
    CreateLeg(LegId, Box<LegConfig>),
    CreateBrowserLeg(LegId, String, BrowserLegConfig),
    SetRemote(LegId, SocketAddr),
    Reconfigure(LegId, Box<LegConfig>),
    EndLeg(LegId),
    CreateRoom(RoomId),
    EndRoom(RoomId),
    Join(RoomId, LegId),
    SetHears(RoomId, LegId, LegId, bool),
    Play(LegId, Arc<Prompt>, PlayOptions),
    StopPrompt(LegId),
    SendDtmf(LegId, Digit),
    StartRecording(RoomId, LegId, Box<Recorder>),
    StopRecording(RoomId),
    PauseRecording(RoomId, bool),
    Stats(LegId),
    Shutdown,
}

enum Reply {
    Done,
    Answer(String),
    Bound(SocketAddr),
    Recorder(Box<Recorder>),
    Marker(Marker),
    Stats(LegStats),
}

struct Command {
    op: Op,
    reply: oneshot::Sender<Result<Reply, EngineError>>,
}

/// The call actors' handle on the engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaHandle {
    tx: mpsc::Sender<Command>,
    dropped_events: Arc<AtomicU64>,
}

impl MediaHandle {
    async fn call(&self, op: Op) -> Result<Reply, EngineError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command { op, reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    /// Events dropped so far because the event queue was full (a slow consumer), over the
    /// engine's life. Cheap (one atomic load, no round trip to the engine task): meant for
    /// a metrics exporter.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// The shared counter behind [`MediaHandle::dropped_events`], for a metrics registry
    /// that wants to read it without holding a handle.
    pub fn dropped_events_counter(&self) -> Arc<AtomicU64> {
        self.dropped_events.clone()
    }

    async fn done(&self, op: Op) -> Result<(), EngineError> {
        self.call(op).await.map(|_| ())
    }

    /// Creates a leg with its own socket; returns the local address for our SDP.
    pub async fn create_leg(&self, leg: LegId, cfg: LegConfig) -> Result<SocketAddr, EngineError> {
        match self.call(Op::CreateLeg(leg, Box::new(cfg))).await? {
            Reply::Bound(a) => Ok(a),
            _ => Err(EngineError::Stopped),
        }
    }

    /// Creates a browser (WebRTC) leg from the browser's SDP offer; returns our answer.
    pub async fn create_browser_leg(
        &self,
        leg: LegId,
        offer: String,
    ) -> Result<String, EngineError> {
        self.create_browser_leg_with(leg, offer, BrowserLegConfig::default())
            .await
    }

    /// Creates a browser leg with options (e.g. [`BrowserLegConfig::wideband`] Opus at
    /// 16 kHz, resampled to the 8 kHz room at the leg's edge); returns our SDP answer.
    pub async fn create_browser_leg_with(
        &self,
        leg: LegId,
        offer: String,
        config: BrowserLegConfig,
    ) -> Result<String, EngineError> {
        match self.call(Op::CreateBrowserLeg(leg, offer, config)).await? {
            Reply::Answer(a) => Ok(a),
            _ => Err(EngineError::Stopped),
        }
    }

    /// Points a leg at a new remote address (SDP from a re-INVITE).
    pub async fn set_remote(&self, leg: LegId, remote: SocketAddr) -> Result<(), EngineError> {
        self.done(Op::SetRemote(leg, remote)).await
    }

    /// Applies renegotiated SDP parameters to a plain RTP leg, keeping its outgoing stream.
    pub async fn reconfigure_leg(&self, leg: LegId, cfg: LegConfig) -> Result<(), EngineError> {
        self.done(Op::Reconfigure(leg, Box::new(cfg))).await
    }

    /// Ends a leg: leaves its room, closes its socket, frees its port.
    pub async fn end_leg(&self, leg: LegId) -> Result<(), EngineError> {
        self.done(Op::EndLeg(leg)).await
    }

    /// Creates an empty room.
    pub async fn create_room(&self, room: RoomId) -> Result<(), EngineError> {
        self.done(Op::CreateRoom(room)).await
    }

    /// Ends a room (its legs stay, outside any room; a recording is finished).
    pub async fn end_room(&self, room: RoomId) -> Result<(), EngineError> {
        self.done(Op::EndRoom(room)).await
    }

    /// Puts a leg in a room, hearing nobody and heard by nobody until `set_hears`.
    pub async fn join(&self, room: RoomId, leg: LegId) -> Result<(), EngineError> {
        self.done(Op::Join(room, leg)).await
    }

    /// Sets whether `listener` hears `speaker` (listen / whisper / barge are made of these).
    pub async fn set_hears(
        &self,
        room: RoomId,
        listener: LegId,
        speaker: LegId,
        hears: bool,
    ) -> Result<(), EngineError> {
        self.done(Op::SetHears(room, listener, speaker, hears))
            .await
    }

    /// Plays a prompt to a leg (replacing what it hears from its room until it ends).
    pub async fn play(
        &self,
        leg: LegId,
        prompt: Arc<Prompt>,
        options: PlayOptions,
    ) -> Result<(), EngineError> {
        self.done(Op::Play(leg, prompt, options)).await
    }

    /// Stops a prompt.
    pub async fn stop_prompt(&self, leg: LegId) -> Result<(), EngineError> {
        self.done(Op::StopPrompt(leg)).await
    }

    /// Sends a DTMF key on a leg as RFC 4733 events.
    pub async fn send_dtmf(&self, leg: LegId, digit: Digit) -> Result<(), EngineError> {
        self.done(Op::SendDtmf(leg, digit)).await
    }

    /// Records a room: left channel = what `customer` says, right = what the customer hears.
    /// The file is created here, on a blocking thread, never on the engine task.
    pub async fn start_recording(
        &self,
        room: RoomId,
        customer: LegId,
        path: PathBuf,
    ) -> Result<(), EngineError> {
        let rec =
            tokio::task::spawn_blocking(move || Recorder::create(path, RecorderConfig::default()))
                .await
                .map_err(|_| EngineError::Stopped)??;
        self.done(Op::StartRecording(room, customer, Box::new(rec)))
            .await
    }

    /// Finishes a room's recording (the final flush runs on a blocking thread).
    pub async fn stop_recording(&self, room: RoomId) -> Result<RecordingSummary, EngineError> {
        match self.call(Op::StopRecording(room)).await? {
            Reply::Recorder(rec) => Ok(tokio::task::spawn_blocking(move || rec.finish())
                .await
                .map_err(|_| EngineError::Stopped)??),
            _ => Err(EngineError::Stopped),
        }
    }

    /// Pauses (`true`) or resumes a room's recording; silence is recorded while paused.
    /// Returns the marker for the call record (offset into the file).
    pub async fn pause_recording(&self, room: RoomId, paused: bool) -> Result<Marker, EngineError> {
        match self.call(Op::PauseRecording(room, paused)).await? {
            Reply::Marker(m) => Ok(m),
            _ => Err(EngineError::Stopped),
        }
    }

    /// A leg's current statistics.
    pub async fn stats(&self, leg: LegId) -> Result<LegStats, EngineError> {
        match self.call(Op::Stats(leg)).await? {
            Reply::Stats(s) => Ok(s),
            _ => Err(EngineError::Stopped),
        }
    }

    /// Stops the engine; every leg's port is released.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        self.done(Op::Shutdown).await
    }
}

/// Starts the engine task on the current tokio runtime.
pub fn start(
    cfg: EngineConfig,
) -> (
    MediaHandle,
    mpsc::Receiver<EngineEvent>,
    JoinHandle<()>,
    PortPool,
) {
    let (tx, commands) = mpsc::channel(cfg.command_queue.max(1));
    let (events_tx, events) = mpsc::channel(cfg.event_queue.max(1));
    let (inbound_tx, inbound) = mpsc::channel(cfg.inbound_queue.max(1));
    let pool = PortPool::new(cfg.ports.clone());
    let dropped_events = Arc::new(AtomicU64::new(0));
    let engine = Engine {
        pool: pool.clone(),
        legs: HashMap::new(),
        rooms: HashMap::new(),
        events: events_tx,
        inbound_tx,
        dropped_events: dropped_events.clone(),
        cfg,
    };
    let task = tokio::spawn(engine.run(commands, inbound));
    (MediaHandle { tx, dropped_events }, events, task, pool)
}

/// A plain RTP leg or a browser leg: the engine drives both the same way.
enum AnyLeg {
    Rtp(Box<Leg>),
    Browser(Box<BrowserLeg>),
}

impl AnyLeg {
    fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), String> {
        match self {
            AnyLeg::Rtp(l) => l
                .handle_datagram(now, from, data)
                .map_err(|e| e.to_string()),
            AnyLeg::Browser(b) => b
                .handle_datagram(now, from, data)
                .map_err(|e| e.to_string()),
        }
    }

    fn receive_frame(&mut self, now: Instant) -> [i16; FRAME_SAMPLES] {
        match self {
            AnyLeg::Rtp(l) => l.receive_frame(now),
            AnyLeg::Browser(b) => b.receive_frame(now),
        }
    }

    fn send_frame(&mut self, now: Instant, frame: &[i16]) -> Result<(), String> {
        match self {
            AnyLeg::Rtp(l) => l.send_frame(frame).map_err(|e| e.to_string()),
            AnyLeg::Browser(b) => b.send_frame(now, frame).map_err(|e| e.to_string()),
        }
    }

    fn send_prompt(&mut self, now: Instant, player: &mut PromptPlayer) -> bool {
        match self {
            AnyLeg::Rtp(l) => match player.next_encoded(l.codec()) {
                Some(p) => {
                    l.send_encoded(p);
                    true
                }
                None => false,
            },
            AnyLeg::Browser(b) => match player.next_frame() {
                Some(f) => {
                    if let Err(e) = b.send_frame(now, &f) {
                        tracing::debug!(error = %e, "prompt to browser failed");
                    }
                    true
                }
                None => false,
            },
        }
    }

    fn send_nothing(&mut self) {
        match self {
            AnyLeg::Rtp(l) => l.send_nothing(),
            AnyLeg::Browser(b) => b.send_nothing(),
        }
    }

    fn source_changed(&mut self) {
        if let AnyLeg::Rtp(l) = self {
            l.source_changed();
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            AnyLeg::Rtp(l) => l.handle_timeout(now),
            AnyLeg::Browser(b) => b.handle_timeout(now),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            AnyLeg::Rtp(l) => l.poll_transmit(),
            AnyLeg::Browser(b) => b.poll_transmit(),
        }
    }

    fn poll_event(&mut self) -> Option<LegEvent> {
        match self {
            AnyLeg::Rtp(l) => l.poll_event(),
            AnyLeg::Browser(b) => b.poll_event(),
        }
    }

    fn stats(&self) -> LegStats {
        match self {
            AnyLeg::Rtp(l) => l.stats(),
            AnyLeg::Browser(b) => b.stats(),
        }
    }
}

/// A leg's socket and the port lease, dropped together (socket first, then the lease).
/// Plain RTP legs also hold the RTCP socket at RTP port + 1 (RFC 3550 §11).
struct LegSocket {
    socket: UdpSocket,
    rtcp: Option<UdpSocket>,
    _lease: PortLease,
    _rtcp_lease: Option<PortLease>,
}

/// A datagram from a reader task: which leg, from where, whether it came in on the RTCP
/// port, and the bytes.
type Inbound = (LegId, SocketAddr, bool, Vec<u8>);

struct LegEntry {
    leg: AnyLeg,
    socket: Arc<LegSocket>,
    readers: Vec<JoinHandle<()>>,
    room: Option<(RoomId, ParticipantId)>,
    player: Option<PromptPlayer>,
    received: [i16; FRAME_SAMPLES],
}

struct RoomEntry {
    room: Room,
    recording: Option<(Recorder, LegId)>,
}

struct Engine {
    cfg: EngineConfig,
    pool: PortPool,
    legs: HashMap<LegId, LegEntry>,
    rooms: HashMap<RoomId, RoomEntry>,
    events: mpsc::Sender<EngineEvent>,
    inbound_tx: mpsc::Sender<Inbound>,
    dropped_events: Arc<AtomicU64>,
}

fn random_u64() -> u64 {
    // RandomState is seeded from the OS per process and differs per instance: random
    // enough for SSRCs and initial sequence numbers (RFC 3550 §5.1), which need not be
    // cryptographic.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

impl Engine {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut inbound: mpsc::Receiver<Inbound>,
    ) {
        let mut ticker = tokio::time::interval(self.cfg.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        loop {
            tokio::select! {
                biased;
                _ = ticker.tick() => self.tick(Instant::now()),
                cmd = commands.recv() => {
                    let Some(Command { op, reply }) = cmd else { break };
                    let shutdown = matches!(op, Op::Shutdown);
                    let result = self.handle(op).await;
                    let _ = reply.send(result);
                    if shutdown {
                        break;
                    }
                }
                Some((leg, from, rtcp_port, data)) = inbound.recv() => {
                    self.datagram(Instant::now(), leg, from, rtcp_port, &data);
                }
            }
        }
        for (_, entry) in self.legs.drain() {
            for r in &entry.readers {
                r.abort();
            }
        }
        // Dropping a recorder closes its queue; its writer thread finalizes the file.
        self.rooms.clear();
    }

    fn datagram(
        &mut self,
        now: Instant,
        id: LegId,
        from: SocketAddr,
        rtcp_port: bool,
        data: &[u8],
    ) {
        let Some(entry) = self.legs.get_mut(&id) else {
            return;
        };
        let result = match (&mut entry.leg, rtcp_port) {
            (AnyLeg::Rtp(l), true) => l
                .handle_rtcp_datagram(now, from, data)
                .map_err(|e| e.to_string()),
            (leg, _) => leg.handle_datagram(now, from, data),
        };
        if let Err(e) = result {
            tracing::trace!(leg = id.0, %from, error = %e, "dropped datagram");
        }
        self.drain_leg(id);
    }

    fn tick(&mut self, now: Instant) {
        // 1. One received frame per leg, into its room.
        for entry in self.legs.values_mut() {
            entry.received = entry.leg.receive_frame(now);
            if let Some((room_id, pid)) = entry.room
                && let Some(room) = self.rooms.get_mut(&room_id)
            {
                let _ = room.room.put_frame(pid, &entry.received);
            }
        }
        // 2. Mix, and record what the customer says and hears.
        for room in self.rooms.values_mut() {
            room.room.mix();
            if let Some((rec, customer)) = room.recording.as_mut()
                && let Some(c) = self.legs.get(customer)
                && let Some((_, pid)) = c.room
                && let Ok(heard) = room.room.output(pid)
                && let Err(e) = rec.write(&c.received, heard)
            {
                tracing::warn!(error = %e, "recording write failed");
            }
        }
        // 3. Each leg sends its prompt, its mix, or nothing.
        let ids: Vec<LegId> = self.legs.keys().copied().collect();
        for id in ids {
            let Some(entry) = self.legs.get_mut(&id) else {
                continue;
            };
            let mut ended = None;
            if let Some(player) = entry.player.as_mut()
                && !entry.leg.send_prompt(now, player)
            {
                ended = player.ended().map(|end| (end, player.id()));
            }
            if let Some((end, play)) = ended {
                entry.player = None;
                entry.leg.source_changed();
                self.emit(EngineEvent::PromptEnded {
                    leg: id,
                    end,
                    id: play,
                });
            }
            let Some(entry) = self.legs.get_mut(&id) else {
                continue;
            };
            if entry.player.is_none() || ended.is_some() {
                let mix = entry
                    .room
                    .and_then(|(r, pid)| self.rooms.get(&r).and_then(|r| r.room.output(pid).ok()));
                let result = match mix {
                    Some(frame) => entry.leg.send_frame(now, frame),
                    None => {
                        entry.leg.send_nothing();
                        Ok(())
                    }
                };
                if let Err(e) = result {
                    tracing::warn!(leg = id.0, error = %e, "encode failed");
                }
            }
            entry.leg.handle_timeout(now);
            self.drain_leg(id);
        }
    }

    /// Sends a leg's queued datagrams and forwards its events.
    fn drain_leg(&mut self, id: LegId) {
        let Some(entry) = self.legs.get_mut(&id) else {
            return;
        };
        while let Some(t) = entry.leg.poll_transmit() {
            if let Err(e) = entry.socket.socket.try_send_to(&t.payload, t.destination) {
                tracing::debug!(leg = id.0, error = %e, "send failed");
            }
        }
        if let AnyLeg::Rtp(l) = &mut entry.leg {
            let socket = entry.socket.rtcp.as_ref().unwrap_or(&entry.socket.socket);
            while let Some(t) = l.poll_rtcp_transmit() {
                if let Err(e) = socket.try_send_to(&t.payload, t.destination) {
                    tracing::debug!(leg = id.0, error = %e, "RTCP send failed");
                }
            }
        }
        let mut out = Vec::new();
        while let Some(event) = entry.leg.poll_event() {
            if let LegEvent::Dtmf(..) = event
                && let Some(player) = entry.player.as_mut()
                && player.on_dtmf()
            {
                let play = player.id();
                entry.player = None;
                entry.leg.source_changed();
                out.push(EngineEvent::PromptEnded {
                    leg: id,
                    end: PlayEnd::Interrupted,
                    id: play,
                });
            }
            out.push(EngineEvent::Leg { leg: id, event });
        }
        for e in out {
            self.emit(e);
        }
    }

    fn emit(&mut self, event: EngineEvent) {
        if self.events.try_send(event).is_err() {
            let dropped = self.dropped_events.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::warn!(dropped, "media event queue full");
        }
    }

    fn insert_leg(&mut self, id: LegId, leg: AnyLeg, socket: Arc<LegSocket>) {
        let mut readers = vec![tokio::spawn(read_loop(
            id,
            socket.clone(),
            false,
            self.inbound_tx.clone(),
        ))];
        if socket.rtcp.is_some() {
            readers.push(tokio::spawn(read_loop(
                id,
                socket.clone(),
                true,
                self.inbound_tx.clone(),
            )));
        }
        self.legs.insert(
            id,
            LegEntry {
                leg,
                socket,
                readers,
                room: None,
                player: None,
                received: [0; FRAME_SAMPLES],
            },
        );
    }

    fn leg_mut(&mut self, id: LegId) -> Result<&mut LegEntry, EngineError> {
        self.legs.get_mut(&id).ok_or(EngineError::UnknownLeg(id))
    }

    fn room_mut(&mut self, id: RoomId) -> Result<&mut RoomEntry, EngineError> {
        self.rooms.get_mut(&id).ok_or(EngineError::UnknownRoom(id))
    }

    fn participant(&self, room: RoomId, leg: LegId) -> Result<ParticipantId, EngineError> {
        match self
            .legs
            .get(&leg)
            .ok_or(EngineError::UnknownLeg(leg))?
            .room
        {
            Some((r, pid)) if r == room => Ok(pid),
            _ => Err(EngineError::UnknownLeg(leg)),
        }
    }

    async fn handle(&mut self, op: Op) -> Result<Reply, EngineError> {
        match op {
            Op::CreateLeg(id, cfg) => {
                if self.legs.contains_key(&id) {
                    return Err(EngineError::LegExists(id));
                }
                // Always a pair: rtcp-mux may be renegotiated away by a later answer or
                // re-INVITE, and the peer must then find our RTCP at port + 1.
                let pair = self.pool.bind_pair(self.cfg.bind_ip)?;
                let socket = UdpSocket::from_std(pair.rtp)?;
                let rtcp = UdpSocket::from_std(pair.rtcp)?;
                let local = socket.local_addr()?;
                let socket = Arc::new(LegSocket {
                    socket,
                    rtcp: Some(rtcp),
                    _lease: pair.rtp_lease,
                    _rtcp_lease: Some(pair.rtcp_lease),
                });
                let r = random_u64();
                let leg = Leg::new(
                    *cfg,
                    Instant::now(),
                    Ssrc(r as u32),
                    (r >> 32) as u16,
                    (r >> 16) as u32,
                )?;
                self.insert_leg(id, AnyLeg::Rtp(Box::new(leg)), socket);
                Ok(Reply::Bound(local))
            }
            Op::CreateBrowserLeg(id, offer, config) => {
                if self.legs.contains_key(&id) {
                    return Err(EngineError::LegExists(id));
                }
                let (std_socket, lease) = self.pool.bind(self.cfg.bind_ip)?;
                let socket = UdpSocket::from_std(std_socket)?;
                let port = socket.local_addr()?.port();
                let ip = self.cfg.advertised_ip.unwrap_or(self.cfg.bind_ip);
                let socket = Arc::new(LegSocket {
                    socket,
                    rtcp: None,
                    _lease: lease,
                    _rtcp_lease: None,
                });
                let now = Instant::now();
                let mut leg = BrowserLeg::with_config(now, SocketAddr::new(ip, port), config)?;
                let answer = leg.accept_offer(now, &offer)?;
                self.insert_leg(id, AnyLeg::Browser(Box::new(leg)), socket);
                Ok(Reply::Answer(answer))
            }
            Op::SetRemote(id, addr) => match &mut self.leg_mut(id)?.leg {
                AnyLeg::Rtp(l) => {
                    l.set_remote(addr);
                    Ok(Reply::Done)
                }
                AnyLeg::Browser(_) => Err(EngineError::NotRtpLeg(id)),
            },
            Op::Reconfigure(id, cfg) => match &mut self.leg_mut(id)?.leg {
                AnyLeg::Rtp(l) => {
                    l.reconfigure(*cfg)?;
                    Ok(Reply::Done)
                }
                AnyLeg::Browser(_) => Err(EngineError::NotRtpLeg(id)),
            },
            Op::EndLeg(id) => {
                let entry = self.legs.remove(&id).ok_or(EngineError::UnknownLeg(id))?;
                if let Some((r, pid)) = entry.room
                    && let Some(room) = self.rooms.get_mut(&r)
                {
                    let _ = room.room.leave(pid);
                }
                for r in &entry.readers {
                    r.abort();
                }
                // Wait for the readers to drop their socket handles so the ports are free
                // when this command returns.
                for r in entry.readers {
                    let _ = r.await;
                }
                Ok(Reply::Done)
            }
            Op::CreateRoom(id) => {
                if self.rooms.contains_key(&id) {
                    return Err(EngineError::RoomExists(id));
                }
                self.rooms.insert(
                    id,
                    RoomEntry {
                        room: Room::new(),
                        recording: None,
                    },
                );
                Ok(Reply::Done)
            }
            Op::EndRoom(id) => {
                let room = self.rooms.remove(&id).ok_or(EngineError::UnknownRoom(id))?;
                for entry in self.legs.values_mut() {
                    if entry.room.is_some_and(|(r, _)| r == id) {
                        entry.room = None;
                    }
                }
                // Dropping the recorder lets its writer thread finalize the file on its own.
                drop(room);
                Ok(Reply::Done)
            }
            Op::Join(room_id, leg_id) => {
                if self.leg_mut(leg_id)?.room.is_some() {
                    return Err(EngineError::AlreadyInRoom(leg_id));
                }
                let pid = self.room_mut(room_id)?.room.join();
                let entry = self.leg_mut(leg_id)?;
                entry.room = Some((room_id, pid));
                // The room becomes the source only if no prompt is playing over it.
                if entry.player.is_none() {
                    entry.leg.source_changed();
                }
                Ok(Reply::Done)
            }
            Op::SetHears(room_id, listener, speaker, hears) => {
                let l = self.participant(room_id, listener)?;
                let s = self.participant(room_id, speaker)?;
                self.room_mut(room_id)?.room.set_hears(l, s, hears)?;
                Ok(Reply::Done)
            }
            Op::Play(id, prompt, options) => {
                let entry = self.leg_mut(id)?;
                entry.player = Some(PromptPlayer::new(prompt, options));
                entry.leg.source_changed();
                Ok(Reply::Done)
            }
            Op::StopPrompt(id) => {
                let entry = self.leg_mut(id)?;
                if entry.player.take().is_some() {
                    entry.leg.source_changed();
                }
                Ok(Reply::Done)
            }
            Op::SendDtmf(id, digit) => match &mut self.leg_mut(id)?.leg {
                AnyLeg::Rtp(l) => {
                    l.send_dtmf(digit);
                    Ok(Reply::Done)
                }
                // Browser agents get keys over the CTI WebSocket, not RTP.
                AnyLeg::Browser(_) => Err(EngineError::NotRtpLeg(id)),
            },
            Op::StartRecording(room_id, customer, rec) => {
                self.participant(room_id, customer)?;
                let room = self.room_mut(room_id)?;
                // A replaced recording is finalized by its writer thread when dropped.
                room.recording = Some((*rec, customer));
                Ok(Reply::Done)
            }
            Op::StopRecording(room_id) => {
                let room = self.room_mut(room_id)?;
                let (rec, _) = room
                    .recording
                    .take()
                    .ok_or(EngineError::NotRecording(room_id))?;
                Ok(Reply::Recorder(Box::new(rec)))
            }
            Op::PauseRecording(room_id, paused) => {
                let room = self.room_mut(room_id)?;
                let (rec, _) = room
                    .recording
                    .as_mut()
                    .ok_or(EngineError::NotRecording(room_id))?;
                Ok(Reply::Marker(if paused {
                    rec.pause()
                } else {
                    rec.resume()
                }))
            }
            Op::Stats(id) => Ok(Reply::Stats(self.leg_mut(id)?.leg.stats())),
            Op::Shutdown => Ok(Reply::Done),
        }
    }
}

async fn read_loop(
    id: LegId,
    socket: Arc<LegSocket>,
    rtcp_port: bool,
    to_engine: mpsc::Sender<Inbound>,
) {
    let s = match (rtcp_port, socket.rtcp.as_ref()) {
        (false, _) => &socket.socket,
        (true, Some(rtcp)) => rtcp,
        (true, None) => return,
    };
    let mut buf = vec![0u8; 2048];
    loop {
        match s.recv_from(&mut buf).await {
            Ok((n, from)) => {
                if to_engine
                    .send((id, from, rtcp_port, buf[..n].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // ICMP port unreachable and the like surface here on some systems: keep going.
            Err(e) => tracing::trace!(leg = id.0, error = %e, "recv error"),
        }
    }
}

#[cfg(test)]
mod tests;
