//! The async shell: UDP sockets from a [`PortPool`], engine shards owning the [`Leg`]s and
//! [`Room`](crate::mixer::Room)s, and bounded channels to the call actors ([`MediaHandle`]
//! for commands in, [`EngineEvent`]s out).
//!
//! The engine runs as [`EngineConfig::shards`] tokio tasks (one per core by default), so
//! media uses every core of a multi-threaded runtime. Each shard owns its legs, their
//! sockets (which it reads itself, without a task per socket) and its rooms, and runs its
//! own 20 ms clock, paced in steps (see `shard`); the shards' clocks are staggered so that
//! their bursts of sent frames do not coincide. A shard is the only place that reads the
//! clock for its legs. Per datagram it feeds the leg's sans-IO core; per tick it pulls one
//! frame from every leg (jitter buffer → decoder), mixes every room, writes recordings, and
//! sends every leg its frame (prompt, room mix, or nothing), then drains transmits to the
//! sockets and events to the one event channel all shards share. Sends use `try_send_to`
//! and events `try_send`: the tick never waits on a socket or a slow consumer.
//!
//! The [`MediaHandle`] routes each command to the shard that owns the leg or room it names
//! (a table in the handle, see `routing`). A room and its legs are always on one shard:
//! placement keeps a call's legs together when told which legs belong together
//! ([`MediaHandle::create_leg_near`]); otherwise a join first moves the leg (or the still
//! empty room) to the other's shard, socket and all.
//!
//! Not done, and why: `recvmmsg`/`sendmmsg` batching would buy nothing, because every leg
//! has its own socket (its own port, which symmetric RTP peers check) and carries one
//! datagram per 20 ms each way, so there is never a batch on one socket.

mod leg;
mod ports;
mod routing;
mod shard;

pub use leg::{DtmfSource, Leg, LegConfig, LegError, LegEvent, LegStats, Transmit};
pub use ports::{BoundPair, PortLease, PortPool};

use crate::codec::CodecError;
use crate::codec::telephone_event::Digit;
use crate::mixer::MixerError;
use crate::prompt::{PlayEnd, PlayOptions, Prompt};
use crate::recorder::{Marker, Recorder, RecorderConfig, RecorderError, RecordingSummary};
use crate::webrtc::{BrowserLegConfig, WebRtcError};
use routing::{JoinPlan, Routes, ShardIndex};
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
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
    /// Engine shards (tasks with their own legs, rooms and clock); 0 means one per CPU core
    /// (`std::thread::available_parallelism`). More shards than runtime worker threads
    /// buys nothing.
    pub shards: usize,
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
            shards: 0,
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
    /// A leg's setup failed (codec, SRTP keys).
    #[error(transparent)]
    Leg(#[from] LegError),
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
    /// The operation needs a browser (WebRTC) leg.
    #[error("leg {0:?} is not a browser leg")]
    NotBrowserLeg(LegId),
    /// The room is not recording.
    #[error("room {0:?} is not recording")]
    NotRecording(RoomId),
    /// A room with legs in it cannot move to another shard (a concurrent join got there
    /// first; the handle plans again).
    #[error("room {0:?} is not empty")]
    RoomNotEmpty(RoomId),
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
    /// A plain RTP leg, placed near another leg of the same call if given.
    CreateLeg(LegId, Box<LegConfig>, Option<LegId>),
    /// A browser leg answering the browser's offer (`Some`), or making our offer (`None`),
    /// placed near another leg of the same call if given.
    CreateBrowserLeg(LegId, Option<String>, BrowserLegConfig, Option<LegId>),
    /// The answer to a browser leg's offer.
    BrowserAnswer(LegId, String),
    SetRemote(LegId, SocketAddr),
    Reconfigure(LegId, Box<LegConfig>),
    EndLeg(LegId),
    CreateRoom(RoomId),
    EndRoom(RoomId),
    Join(RoomId, LegId),
    /// Leaves the leg's room; only that room if one is given.
    Leave(LegId, Option<RoomId>),
    SetHears(RoomId, LegId, LegId, bool),
    Play(LegId, Arc<Prompt>, PlayOptions),
    StopPrompt(LegId),
    SendDtmf(LegId, Digit),
    StartRecording(RoomId, LegId, Box<Recorder>),
    StopRecording(RoomId),
    StartTap(RoomId, LegId, Box<Recorder>),
    StopTap(RoomId, LegId),
    PauseRecording(RoomId, bool),
    Stats(LegId),
    /// Hands a leg that is in no room over to the handle, to attach to another shard.
    DetachLeg(LegId),
    AttachLeg(LegId, Box<shard::LegEntry>),
    /// Hands an empty room over to the handle, to attach to another shard.
    DetachRoom(RoomId),
    AttachRoom(RoomId, Box<shard::RoomEntry>),
    Shutdown,
}

enum Reply {
    Done,
    /// The leg was not in the room named (nothing done).
    NotThere,
    Answer(String),
    Bound(SocketAddr),
    Recorder(Box<Recorder>),
    Marker(Marker),
    Stats(LegStats),
    Leg(Box<shard::LegEntry>),
    Room(Box<shard::RoomEntry>),
}

struct Command {
    op: Op,
    reply: oneshot::Sender<Result<Reply, EngineError>>,
}

/// How late the shards' clock steps ran: a step sends its legs' frames, so a late step
/// sends them late. Counted over the engine's life; read by differences.
#[derive(Debug, Default)]
pub struct ClockStats {
    pub steps: AtomicU64,
    pub late_over_1ms: AtomicU64,
    pub late_over_2ms: AtomicU64,
    pub late_over_5ms: AtomicU64,
    /// The latest step so far, in microseconds.
    pub max_late_us: AtomicU64,
}

impl ClockStats {
    pub(crate) fn record(&self, late: Duration) {
        self.steps.fetch_add(1, Ordering::Relaxed);
        let us = late.as_micros() as u64;
        for (limit, counter) in [
            (1_000, &self.late_over_1ms),
            (2_000, &self.late_over_2ms),
            (5_000, &self.late_over_5ms),
        ] {
            if us > limit {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.max_late_us.fetch_max(us, Ordering::Relaxed);
    }
}

/// What went through the engine's legs, for a metrics exporter. The shards add each leg's
/// figures when the leg reports them (its RTCP interval) and when it ends, so the totals
/// move every few seconds during a call.
#[derive(Debug, Default)]
pub struct MediaCounters {
    /// RTP packets received (every source, duplicates included).
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    /// Packets lost on the way in (RFC 3550 cumulative loss; duplicates may lower it).
    pub packets_lost: AtomicU64,
    /// Legs open now.
    pub legs: std::sync::atomic::AtomicI64,
    /// Interarrival jitter reports by bucket ([`JITTER_BOUNDS_S`], then +Inf), not
    /// cumulative.
    pub jitter_buckets: [AtomicU64; JITTER_BOUNDS_S.len() + 1],
    /// Sum of the reported jitter in microseconds.
    pub jitter_sum_us: AtomicU64,
}

/// Upper bounds of the jitter buckets, in seconds.
pub const JITTER_BOUNDS_S: [f64; 7] = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1];

impl MediaCounters {
    /// Adds what a leg did since its last report.
    pub(crate) fn add(&self, received: u64, sent: u64, lost: i64) {
        self.packets_received.fetch_add(received, Ordering::Relaxed);
        self.packets_sent.fetch_add(sent, Ordering::Relaxed);
        if lost > 0 {
            self.packets_lost.fetch_add(lost as u64, Ordering::Relaxed);
        }
    }

    pub(crate) fn observe_jitter(&self, jitter_ms: f64) {
        let s = jitter_ms.max(0.0) / 1000.0;
        let i = JITTER_BOUNDS_S
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(JITTER_BOUNDS_S.len());
        self.jitter_buckets[i].fetch_add(1, Ordering::Relaxed);
        self.jitter_sum_us
            .fetch_add((jitter_ms.max(0.0) * 1000.0) as u64, Ordering::Relaxed);
    }
}

/// The call actors' handle on the engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct MediaHandle {
    shards: Arc<[mpsc::Sender<Command>]>,
    routes: Arc<Mutex<Routes>>,
    dropped_events: Arc<AtomicU64>,
    clock: Arc<ClockStats>,
    counters: Arc<MediaCounters>,
}

impl MediaHandle {
    async fn call_shard(&self, shard: ShardIndex, op: Op) -> Result<Reply, EngineError> {
        let tx = self.shards.get(shard).ok_or(EngineError::Stopped)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Command { op, reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)?
    }

    fn routes(&self) -> std::sync::MutexGuard<'_, Routes> {
        // The lock guards plain maps, never held across an await; a poisoned one is still
        // consistent.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    async fn on_leg(&self, leg: LegId, op: Op) -> Result<Reply, EngineError> {
        let shard = self.routes().leg(leg)?;
        self.call_shard(shard, op).await
    }

    async fn on_room(&self, room: RoomId, op: Op) -> Result<Reply, EngineError> {
        let shard = self.routes().room(room)?;
        self.call_shard(shard, op).await
    }

    /// How many shards the engine runs.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Which shard owns a leg (for tests and diagnostics).
    pub fn shard_of_leg(&self, leg: LegId) -> Option<usize> {
        self.routes().leg(leg).ok()
    }

    /// Which shard owns a room (for tests and diagnostics).
    pub fn shard_of_room(&self, room: RoomId) -> Option<usize> {
        self.routes().room(room).ok()
    }

    /// Events dropped so far because the event queue was full (a slow consumer), over the
    /// engine's life. Cheap (one atomic load, no round trip to the engine task): meant for
    /// a metrics exporter.
    pub fn dropped_events(&self) -> u64 {
        self.dropped_events.load(Ordering::Relaxed)
    }

    /// How late the clock steps ran ([`ClockStats`]).
    pub fn clock(&self) -> Arc<ClockStats> {
        self.clock.clone()
    }

    /// Packets, loss and jitter over every leg ([`MediaCounters`]).
    pub fn counters(&self) -> Arc<MediaCounters> {
        self.counters.clone()
    }

    /// The shared counter behind [`MediaHandle::dropped_events`], for a metrics registry
    /// that wants to read it without holding a handle.
    pub fn dropped_events_counter(&self) -> Arc<AtomicU64> {
        self.dropped_events.clone()
    }

    /// Creates a leg with its own socket on the least loaded shard; returns the local
    /// address for our SDP.
    pub async fn create_leg(&self, leg: LegId, cfg: LegConfig) -> Result<SocketAddr, EngineError> {
        self.create_leg_placed(leg, None, cfg).await
    }

    /// Creates a leg on the shard of `near` (another leg of the same call, which it will
    /// share a room with), so that joining them needs no move; on the least loaded shard if
    /// `near` does not exist. Returns the local address for our SDP.
    pub async fn create_leg_near(
        &self,
        leg: LegId,
        near: LegId,
        cfg: LegConfig,
    ) -> Result<SocketAddr, EngineError> {
        self.create_leg_placed(leg, Some(near), cfg).await
    }

    async fn create_leg_placed(
        &self,
        leg: LegId,
        near: Option<LegId>,
        cfg: LegConfig,
    ) -> Result<SocketAddr, EngineError> {
        let shard = self.routes().place_leg(leg, near)?;
        match self
            .call_shard(shard, Op::CreateLeg(leg, Box::new(cfg), near))
            .await
        {
            Ok(Reply::Bound(a)) => Ok(a),
            other => {
                self.routes().remove_leg(leg);
                Err(other.err().unwrap_or(EngineError::Stopped))
            }
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
        self.create_browser_leg_placed(leg, Some(offer), config, None)
            .await
    }

    /// Creates a browser leg that offers: for a browser SIP client (RFC 7118) the server
    /// calls. Placed near `near` (the call's other leg); returns our SDP offer, whose answer
    /// goes to [`MediaHandle::browser_answer`].
    pub async fn create_browser_offer(
        &self,
        leg: LegId,
        near: Option<LegId>,
    ) -> Result<String, EngineError> {
        self.create_browser_leg_placed(leg, None, BrowserLegConfig::default(), near)
            .await
    }

    async fn create_browser_leg_placed(
        &self,
        leg: LegId,
        offer: Option<String>,
        config: BrowserLegConfig,
        near: Option<LegId>,
    ) -> Result<String, EngineError> {
        let shard = self.routes().place_leg(leg, near)?;
        match self
            .call_shard(shard, Op::CreateBrowserLeg(leg, offer, config, near))
            .await
        {
            Ok(Reply::Answer(a)) => Ok(a),
            other => {
                self.routes().remove_leg(leg);
                Err(other.err().unwrap_or(EngineError::Stopped))
            }
        }
    }

    /// The far end's SDP answer to a browser leg's offer ([`MediaHandle::create_browser_offer`]).
    pub async fn browser_answer(&self, leg: LegId, answer: String) -> Result<(), EngineError> {
        self.on_leg(leg, Op::BrowserAnswer(leg, answer))
            .await
            .map(|_| ())
    }

    /// Points a leg at a new remote address (SDP from a re-INVITE).
    pub async fn set_remote(&self, leg: LegId, remote: SocketAddr) -> Result<(), EngineError> {
        self.on_leg(leg, Op::SetRemote(leg, remote))
            .await
            .map(|_| ())
    }

    /// Applies renegotiated SDP parameters to a plain RTP leg, keeping its outgoing stream.
    pub async fn reconfigure_leg(&self, leg: LegId, cfg: LegConfig) -> Result<(), EngineError> {
        self.on_leg(leg, Op::Reconfigure(leg, Box::new(cfg)))
            .await
            .map(|_| ())
    }

    /// Ends a leg: leaves its room, closes its socket, frees its port.
    pub async fn end_leg(&self, leg: LegId) -> Result<(), EngineError> {
        let result = self.on_leg(leg, Op::EndLeg(leg)).await;
        self.routes().remove_leg(leg);
        result.map(|_| ())
    }

    /// Creates an empty room (on the least loaded shard; it follows its first leg).
    pub async fn create_room(&self, room: RoomId) -> Result<(), EngineError> {
        let shard = self.routes().place_room(room)?;
        let result = self.call_shard(shard, Op::CreateRoom(room)).await;
        if result.is_err() {
            self.routes().remove_room(room);
        }
        result.map(|_| ())
    }

    /// Ends a room (its legs stay, outside any room; a recording is finished).
    pub async fn end_room(&self, room: RoomId) -> Result<(), EngineError> {
        let result = self.on_room(room, Op::EndRoom(room)).await;
        self.routes().remove_room(room);
        result.map(|_| ())
    }

    /// Puts a leg in a room, hearing nobody and heard by nobody until `set_hears`. If the
    /// two are on different shards, the empty room or else the leg moves first.
    pub async fn join(&self, room: RoomId, leg: LegId) -> Result<(), EngineError> {
        // A concurrent join to the same room can change the plan between planning and
        // moving (the shard refuses to move a room that gained a member): plan again.
        for _ in 0..4 {
            let plan = self.routes().plan_join(room, leg)?;
            match plan {
                JoinPlan::Here(shard) => {
                    self.call_shard(shard, Op::Join(room, leg)).await?;
                    self.routes().joined(room, leg);
                    return Ok(());
                }
                JoinPlan::MoveRoom { from, to } => {
                    match self.call_shard(from, Op::DetachRoom(room)).await {
                        Ok(Reply::Room(entry)) => {
                            self.call_shard(to, Op::AttachRoom(room, entry)).await?;
                            self.routes().moved_room(room, to);
                        }
                        Err(EngineError::RoomNotEmpty(_)) => {}
                        Err(e) => return Err(e),
                        Ok(_) => return Err(EngineError::Stopped),
                    }
                }
                JoinPlan::MoveLeg { from, to } => {
                    let Reply::Leg(entry) = self.call_shard(from, Op::DetachLeg(leg)).await? else {
                        return Err(EngineError::Stopped);
                    };
                    if let Err(e) = self.call_shard(to, Op::AttachLeg(leg, entry)).await {
                        // The target shard is gone, and the leg with it.
                        self.routes().remove_leg(leg);
                        return Err(e);
                    }
                    self.routes().moved_leg(leg, to);
                }
            }
        }
        Err(EngineError::RoomNotEmpty(room))
    }

    /// Takes a leg out of its room (it stays up, hearing nothing, until it joins another:
    /// a transferred party moving to the room of the call it is joined with).
    pub async fn leave(&self, leg: LegId) -> Result<(), EngineError> {
        let result = self.on_leg(leg, Op::Leave(leg, None)).await;
        if result.is_ok() {
            self.routes().left(leg);
        }
        result.map(|_| ())
    }

    /// Takes a leg out of `room` if it is in it there and then (a shared leg, such as an
    /// agent's browser leg, may have moved to another call's room meanwhile: it stays there).
    /// True when it left.
    pub async fn leave_room(&self, room: RoomId, leg: LegId) -> Result<bool, EngineError> {
        match self.on_leg(leg, Op::Leave(leg, Some(room))).await? {
            Reply::NotThere => Ok(false),
            _ => {
                self.routes().left(leg);
                Ok(true)
            }
        }
    }

    /// Sets whether `listener` hears `speaker` (listen / whisper / barge are made of these).
    pub async fn set_hears(
        &self,
        room: RoomId,
        listener: LegId,
        speaker: LegId,
        hears: bool,
    ) -> Result<(), EngineError> {
        self.on_room(room, Op::SetHears(room, listener, speaker, hears))
            .await
            .map(|_| ())
    }

    /// Plays a prompt to a leg (replacing what it hears from its room until it ends).
    pub async fn play(
        &self,
        leg: LegId,
        prompt: Arc<Prompt>,
        options: PlayOptions,
    ) -> Result<(), EngineError> {
        self.on_leg(leg, Op::Play(leg, prompt, options))
            .await
            .map(|_| ())
    }

    /// Stops a prompt.
    pub async fn stop_prompt(&self, leg: LegId) -> Result<(), EngineError> {
        self.on_leg(leg, Op::StopPrompt(leg)).await.map(|_| ())
    }

    /// Sends a DTMF key on a leg as RFC 4733 events.
    pub async fn send_dtmf(&self, leg: LegId, digit: Digit) -> Result<(), EngineError> {
        self.on_leg(leg, Op::SendDtmf(leg, digit)).await.map(|_| ())
    }

    /// Records a room: left channel = what `customer` says, right = what the customer hears.
    /// The file is created here, on a blocking thread, never on the engine task.
    pub async fn start_recording(
        &self,
        room: RoomId,
        customer: LegId,
        path: PathBuf,
    ) -> Result<(), EngineError> {
        let rec = create_recorder(path).await?;
        self.on_room(room, Op::StartRecording(room, customer, rec))
            .await
            .map(|_| ())
    }

    /// Finishes a room's recording (the final flush runs on a blocking thread).
    pub async fn stop_recording(&self, room: RoomId) -> Result<RecordingSummary, EngineError> {
        finish_recorder(self.on_room(room, Op::StopRecording(room)).await?).await
    }

    /// Records one member's voice alone to its own file (a supervisor's whisper track): left
    /// what `leg` says, right silent, until [`MediaHandle::stop_track`] or the leg leaves
    /// the room. The room's recording (the call's) is not touched.
    pub async fn start_track(
        &self,
        room: RoomId,
        leg: LegId,
        path: PathBuf,
    ) -> Result<(), EngineError> {
        let rec = create_recorder(path).await?;
        self.on_room(room, Op::StartTap(room, leg, rec))
            .await
            .map(|_| ())
    }

    /// Finishes a member's track.
    pub async fn stop_track(
        &self,
        room: RoomId,
        leg: LegId,
    ) -> Result<RecordingSummary, EngineError> {
        finish_recorder(self.on_room(room, Op::StopTap(room, leg)).await?).await
    }

    /// Pauses (`true`) or resumes a room's recording; silence is recorded while paused.
    /// Returns the marker for the call record (offset into the file).
    pub async fn pause_recording(&self, room: RoomId, paused: bool) -> Result<Marker, EngineError> {
        match self.on_room(room, Op::PauseRecording(room, paused)).await? {
            Reply::Marker(m) => Ok(m),
            _ => Err(EngineError::Stopped),
        }
    }

    /// A leg's current statistics.
    pub async fn stats(&self, leg: LegId) -> Result<LegStats, EngineError> {
        match self.on_leg(leg, Op::Stats(leg)).await? {
            Reply::Stats(s) => Ok(s),
            _ => Err(EngineError::Stopped),
        }
    }

    /// Stops the engine (every shard); every leg's port is released.
    pub async fn shutdown(&self) -> Result<(), EngineError> {
        let mut result = Ok(());
        for shard in 0..self.shards.len() {
            if let Err(e) = self.call_shard(shard, Op::Shutdown).await {
                result = Err(e);
            }
        }
        result
    }
}

/// Creates a recorder's file on a blocking thread, never on the engine task.
async fn create_recorder(path: PathBuf) -> Result<Box<Recorder>, EngineError> {
    let rec =
        tokio::task::spawn_blocking(move || Recorder::create(path, RecorderConfig::default()))
            .await
            .map_err(|_| EngineError::Stopped)??;
    Ok(Box::new(rec))
}

/// The final flush of a recorder a shard gave back, on a blocking thread.
async fn finish_recorder(reply: Reply) -> Result<RecordingSummary, EngineError> {
    match reply {
        Reply::Recorder(rec) => Ok(tokio::task::spawn_blocking(move || rec.finish())
            .await
            .map_err(|_| EngineError::Stopped)??),
        _ => Err(EngineError::Stopped),
    }
}

/// Starts the engine's shards on the current tokio runtime. The join handle finishes when
/// every shard has stopped.
pub fn start(
    cfg: EngineConfig,
) -> (
    MediaHandle,
    mpsc::Receiver<EngineEvent>,
    JoinHandle<()>,
    PortPool,
) {
    let n = match cfg.shards {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let (events_tx, events) = mpsc::channel(cfg.event_queue.max(1));
    let pool = PortPool::new(cfg.ports.clone());
    let dropped_events = Arc::new(AtomicU64::new(0));
    let clock = Arc::new(ClockStats::default());
    let counters = Arc::new(MediaCounters::default());
    let mut senders = Vec::with_capacity(n);
    let mut shards = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, commands) = mpsc::channel(cfg.command_queue.max(1));
        let shard = shard::Shard::new(
            cfg.clone(),
            pool.clone(),
            events_tx.clone(),
            dropped_events.clone(),
            clock.clone(),
            counters.clone(),
        );
        // Stagger the clocks evenly over one clock step.
        let phase = (cfg.tick / u32::from(shard::SLOTS)).mul_f64(i as f64 / n as f64);
        shards.push((shard, commands, phase));
        senders.push(tx);
    }
    // The shards are tasks on the application's runtime. A runtime of their own (one worker
    // thread per shard) was measured against this with scripts/load-ivr and was no better on
    // this machine, where the hypervisor took 40-140 % of a core during the runs (see
    // docs/BENCHMARKS.md); /healthz media.clock counts late clock steps either way.
    let tasks: Vec<_> = shards
        .into_iter()
        .map(|(shard, commands, phase)| {
            // Outside tokio's cooperative budget: a shard reads its sockets through wakers of
            // its own, and a budget-refused read would hand the socket's waker to the
            // runtime's deferred list instead of waking it. The shard bounds its own work per
            // wake-up (READ_BUDGET per socket, one clock step per tick) and yields after each.
            tokio::spawn(tokio::task::unconstrained(shard.run(commands, phase)))
        })
        .collect();
    let task = tokio::spawn(async move {
        for t in tasks {
            let _ = t.await;
        }
    });
    let handle = MediaHandle {
        shards: senders.into(),
        routes: Arc::new(Mutex::new(Routes::new(n))),
        dropped_events,
        clock,
        counters,
    };
    (handle, events, task, pool)
}

fn random_u64() -> u64 {
    // RandomState is seeded from the OS per process and differs per instance: random
    // enough for SSRCs and initial sequence numbers (RFC 3550 §5.1), which need not be
    // cryptographic.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

#[cfg(test)]
mod tests;
