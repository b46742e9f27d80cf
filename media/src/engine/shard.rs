//! One shard of the media engine: a tokio task owning a share of the legs, their sockets and
//! the rooms they are in, with its own 20 ms clock.
//!
//! The shard reads its sockets itself: each socket's readiness waker is a small
//! [`SocketWaker`] that puts the socket on the shard's ready list and wakes the shard task
//! (no task per socket, no channel hop and no copy per datagram). On a wake-up the shard
//! drains every ready socket with `poll_recv_from` until it would block, feeding each
//! datagram to its leg's sans-IO core; a socket that keeps delivering is put back on the
//! list after [`READ_BUDGET`] datagrams so one flood cannot starve the others or the clock.
//! Per tick it pulls one frame from every leg (jitter buffer → decoder), mixes every room,
//! writes recordings, and sends every leg its frame (prompt, room mix, or nothing), then
//! drains transmits to the sockets and events to the channel. Sends use `try_send_to` and
//! events `try_send`: the tick never waits on a socket or a slow consumer.
//!
//! The tick is paced: the shard's clock runs [`SLOTS`] times per tick and each leg and room
//! has a slot, so each clock step serves a tenth of them and the frames leave in ten small
//! bursts rather than one, which bounds what any receiver's buffer or a switch port sees at
//! once (with one burst per tick, the socket of a load generator that received every agent
//! leg's frames overflowed). A room's legs share the room's slot, so a room is mixed after
//! its members' frames are in; legs created near each other share a slot, so a room usually
//! takes its legs' slot and nobody changes phase.

use super::leg::{Leg, LegEvent, LegStats, Transmit};
use super::ports::{PortLease, PortPool};
use super::{
    Command, EngineConfig, EngineError, EngineEvent, LegId, Op, Reply, RoomId, random_u64,
};
use crate::codec::g711::FRAME_SAMPLES;
use crate::mixer::{ParticipantId, Room};
use crate::prompt::{PlayEnd, PromptPlayer};
use crate::recorder::Recorder;
use crate::rtp::Ssrc;
use crate::webrtc::BrowserLeg;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::{Notify, mpsc};

/// Datagrams read from one socket per wake-up before it goes to the back of the ready list.
pub(super) const READ_BUDGET: usize = 32;

/// How often every socket is read whatever the wake-ups said: a bound on how long a
/// missed wake-up can leave a socket unread, at the cost of one `recvfrom` that finds
/// nothing per socket per sweep (about 0.1 % of a core at 1,000 calls). Seen in load
/// tests before the shard ran outside tokio's cooperative budget (see `start`): a shard's
/// sockets went unread for seconds under CPU starvation, overflowing their receive
/// buffers. Not seen since; the sweep stays as the bound.
const SWEEP: Duration = Duration::from_millis(500);

/// Wake-ups handled back to back before the shard yields to the worker's other tasks (the
/// cooperative budget it runs outside of allows 128 operations).
const YIELD_EVERY: u32 = 32;

/// Clock steps per media tick (2 ms steps for 20 ms frames); each serves the legs and rooms
/// of one slot.
pub(super) const SLOTS: u8 = 10;

/// Sockets with something to read, and the wake-up for the shard task.
#[derive(Default)]
pub(super) struct ReadyQueue {
    ready: Mutex<Vec<(LegId, bool)>>,
    notify: Notify,
}

impl ReadyQueue {
    fn push(&self, leg: LegId, rtcp_port: bool) {
        // The lock only guards a list; a poisoned one is still consistent.
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((leg, rtcp_port));
        self.notify.notify_one();
    }

    /// Queues without waking the shard (the shard itself is queuing).
    fn push_quiet(&self, leg: LegId, rtcp_port: bool) {
        self.ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((leg, rtcp_port));
    }

    fn take(&self, into: &mut Vec<(LegId, bool)>) {
        let mut ready = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *ready, into);
    }
}

/// The readiness waker of one socket: tokio's reactor calls it when the socket becomes
/// readable; it queues the socket for its shard.
struct SocketWaker {
    leg: LegId,
    rtcp_port: bool,
    queue: Arc<ReadyQueue>,
}

impl Wake for SocketWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.queue.push(self.leg, self.rtcp_port);
    }
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

/// A leg with everything the shard keeps for it. Moves between shards whole
/// ([`Op::DetachLeg`] / [`Op::AttachLeg`]): the sockets belong to the runtime, not the shard.
pub(super) struct LegEntry {
    leg: AnyLeg,
    socket: LegSocket,
    /// Readiness wakers of the RTP and the RTCP socket, bound to the owning shard's queue.
    wakers: (Waker, Option<Waker>),
    /// Which clock step of the tick serves this leg (the room's, once in a room).
    slot: u8,
    room: Option<(RoomId, ParticipantId)>,
    player: Option<PromptPlayer>,
    received: [i16; FRAME_SAMPLES],
    /// What the leg's last report put in the engine's counters: packets received, sent,
    /// lost (totals over the leg's life).
    counted: (u64, u64, i64),
}

impl LegEntry {
    /// Adds what the leg did since its last report to the engine's counters.
    fn count(&mut self, stats: &LegStats, counters: &super::MediaCounters) {
        let now = (
            stats.packets_received_total,
            u64::from(stats.packets_sent),
            stats.packets_lost_total,
        );
        counters.add(
            now.0.saturating_sub(self.counted.0),
            now.1.saturating_sub(self.counted.1),
            now.2 - self.counted.2,
        );
        self.counted = now;
    }
}

/// A frame of silence, the right channel of a track.
static SILENCE: [i16; FRAME_SAMPLES] = [0; FRAME_SAMPLES];

/// A room and its recording. Moves between shards only while empty ([`Op::DetachRoom`]).
pub(super) struct RoomEntry {
    room: Room,
    recording: Option<(Recorder, LegId)>,
    /// Tracks of single members' voices (a supervisor's whisper): left what the leg says,
    /// right silent. A tap goes when its leg leaves the room.
    taps: Vec<(Recorder, LegId)>,
    /// Which clock step serves the room; taken from its first member while empty.
    slot: u8,
}

/// One shard: see the module documentation.
pub(super) struct Shard {
    cfg: EngineConfig,
    pool: PortPool,
    legs: HashMap<LegId, LegEntry>,
    rooms: HashMap<RoomId, RoomEntry>,
    events: mpsc::Sender<EngineEvent>,
    dropped_events: Arc<AtomicU64>,
    clock: Arc<super::ClockStats>,
    counters: Arc<super::MediaCounters>,
    ready: Arc<ReadyQueue>,
    /// The ready list being worked through (swapped with the shared one, so neither
    /// allocates once warm).
    draining: Vec<(LegId, bool)>,
    buf: Vec<u8>,
    /// Round-robin slot for the next leg or room without a partner.
    next_slot: u8,
}

impl Shard {
    pub(super) fn new(
        cfg: EngineConfig,
        pool: PortPool,
        events: mpsc::Sender<EngineEvent>,
        dropped_events: Arc<AtomicU64>,
        clock: Arc<super::ClockStats>,
        counters: Arc<super::MediaCounters>,
    ) -> Self {
        Self {
            cfg,
            pool,
            legs: HashMap::new(),
            rooms: HashMap::new(),
            events,
            dropped_events,
            clock,
            counters,
            ready: Arc::new(ReadyQueue::default()),
            draining: Vec::new(),
            buf: vec![0; 2048],
            next_slot: 0,
        }
    }

    /// Runs the shard until [`Op::Shutdown`] or until every handle is gone. `phase` delays
    /// the first tick so that shards do not all send their burst of frames at once.
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>, phase: Duration) {
        let step = self.cfg.tick / u32::from(SLOTS);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + phase, step);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let ready = self.ready.clone();
        let mut sweep = tokio::time::interval(SWEEP);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut slot = 0u8;
        let mut since_yield = 0u32;
        loop {
            tokio::select! {
                biased;
                due = ticker.tick() => {
                    self.clock
                        .record(Instant::now().saturating_duration_since(due.into_std()));
                    // Whatever arrived before the tick is played at this tick.
                    self.read_ready();
                    self.tick(Instant::now(), slot);
                    slot = (slot + 1) % SLOTS;
                }
                cmd = commands.recv() => {
                    let Some(Command { op, reply }) = cmd else { break };
                    let shutdown = matches!(op, Op::Shutdown);
                    let result = self.handle(op);
                    let _ = reply.send(result);
                    if shutdown {
                        break;
                    }
                }
                _ = ready.notify.notified() => self.read_ready(),
                _ = sweep.tick() => self.sweep(),
            }
            // The task runs outside the cooperative budget (see `start`): let the worker's
            // other tasks (signalling, call actors, other shards) run now and then. Not after
            // every wake-up: a yield costs the worker a trip through its scheduler and driver
            // (measured at 100 calls: 18.5 % of a core instead of 20.8 %).
            since_yield += 1;
            if since_yield >= YIELD_EVERY {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        // Dropping the legs closes their sockets and returns their ports; dropping a
        // recorder closes its queue and its writer thread finalizes the file.
        self.legs.clear();
        self.rooms.clear();
    }

    /// Queues every socket for reading (see [`SWEEP`]).
    fn sweep(&mut self) {
        for (id, entry) in &self.legs {
            self.ready.push_quiet(*id, false);
            if entry.socket.rtcp.is_some() {
                self.ready.push_quiet(*id, true);
            }
        }
        self.read_ready();
    }

    /// Drains every socket on the ready list.
    fn read_ready(&mut self) {
        let mut list = std::mem::take(&mut self.draining);
        self.ready.take(&mut list);
        if list.is_empty() {
            self.draining = list;
            return;
        }
        let now = Instant::now();
        let mut buf = std::mem::take(&mut self.buf);
        for (id, rtcp_port) in list.drain(..) {
            self.read_socket(now, id, rtcp_port, &mut buf);
        }
        self.buf = buf;
        self.draining = list;
    }

    /// Reads one socket until it would block (which re-arms its waker) or its budget is
    /// spent (then it is queued again).
    fn read_socket(&mut self, now: Instant, id: LegId, rtcp_port: bool, buf: &mut [u8]) {
        for _ in 0..READ_BUDGET {
            let Some(entry) = self.legs.get(&id) else {
                return; // ended since it was queued
            };
            let (socket, waker) = match (rtcp_port, &entry.socket.rtcp, &entry.wakers.1) {
                (false, _, _) => (&entry.socket.socket, &entry.wakers.0),
                (true, Some(s), Some(w)) => (s, w),
                _ => return,
            };
            let mut cx = Context::from_waker(waker);
            let mut rb = ReadBuf::new(buf);
            match socket.poll_recv_from(&mut cx, &mut rb) {
                Poll::Pending => return,
                Poll::Ready(Ok(from)) => {
                    let n = rb.filled().len();
                    self.datagram(now, id, from, rtcp_port, &buf[..n]);
                }
                // ICMP port unreachable and the like surface here on some systems: keep going.
                Poll::Ready(Err(e)) => tracing::trace!(leg = id.0, error = %e, "recv error"),
            }
        }
        self.ready.push(id, rtcp_port);
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

    /// One clock step: serves the legs and rooms of `slot`.
    fn tick(&mut self, now: Instant, slot: u8) {
        // 1. One received frame per leg, into its room.
        for entry in self.legs.values_mut().filter(|e| e.slot == slot) {
            entry.received = entry.leg.receive_frame(now);
            if let Some((room_id, pid)) = entry.room
                && let Some(room) = self.rooms.get_mut(&room_id)
            {
                let _ = room.room.put_frame(pid, &entry.received);
            }
        }
        // 2. Mix, and record what the customer says and hears.
        for room in self.rooms.values_mut().filter(|r| r.slot == slot) {
            room.room.mix();
            if let Some((rec, customer)) = room.recording.as_mut()
                && let Some(c) = self.legs.get(customer)
                && let Some((_, pid)) = c.room
                && let Ok(heard) = room.room.output(pid)
                && let Err(e) = rec.write(&c.received, heard)
            {
                tracing::warn!(error = %e, "recording write failed");
            }
            for (rec, leg) in room.taps.iter_mut() {
                if let Some(l) = self.legs.get(leg)
                    && let Err(e) = rec.write(&l.received, &SILENCE)
                {
                    tracing::warn!(error = %e, "track write failed");
                }
            }
        }
        // 3. Each leg sends its prompt, its mix, or nothing.
        let ids: Vec<LegId> = self
            .legs
            .iter()
            .filter(|(_, e)| e.slot == slot)
            .map(|(id, _)| *id)
            .collect();
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
            if let LegEvent::Stats(stats) = &event {
                entry.count(stats, &self.counters);
                if stats.reception.expected > 0 {
                    self.counters.observe_jitter(stats.reception.jitter_ms);
                }
            }
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
            // Logged sparingly: a line per event would add to whatever makes the queue full.
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "media event queue full");
            }
        }
    }

    fn wakers(&self, id: LegId, rtcp: bool) -> (Waker, Option<Waker>) {
        let waker = |rtcp_port| {
            Waker::from(Arc::new(SocketWaker {
                leg: id,
                rtcp_port,
                queue: self.ready.clone(),
            }))
        };
        (waker(false), rtcp.then(|| waker(true)))
    }

    /// Takes a leg in (new, or moved from another shard) and queues its sockets for a first
    /// read, which registers this shard's wakers with the reactor.
    fn insert_leg(&mut self, id: LegId, mut entry: LegEntry) {
        let rtcp = entry.socket.rtcp.is_some();
        entry.wakers = self.wakers(id, rtcp);
        self.legs.insert(id, entry);
        self.ready.push(id, false);
        if rtcp {
            self.ready.push(id, true);
        }
    }

    /// `near`'s slot when that leg is here, else the next one round the clock.
    fn slot_near(&mut self, near: Option<LegId>) -> u8 {
        if let Some(e) = near.and_then(|n| self.legs.get(&n)) {
            return e.slot;
        }
        let slot = self.next_slot;
        self.next_slot = (slot + 1) % SLOTS;
        slot
    }

    fn new_entry(
        &mut self,
        id: LegId,
        leg: AnyLeg,
        socket: LegSocket,
        near: Option<LegId>,
    ) -> LegEntry {
        LegEntry {
            leg,
            wakers: self.wakers(id, socket.rtcp.is_some()),
            slot: self.slot_near(near),
            socket,
            room: None,
            player: None,
            received: [0; FRAME_SAMPLES],
            counted: (0, 0, 0),
        }
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

    fn handle(&mut self, op: Op) -> Result<Reply, EngineError> {
        match op {
            Op::CreateLeg(id, cfg, near) => {
                if self.legs.contains_key(&id) {
                    return Err(EngineError::LegExists(id));
                }
                // Always a pair: rtcp-mux may be renegotiated away by a later answer or
                // re-INVITE, and the peer must then find our RTCP at port + 1.
                let pair = self.pool.bind_pair(self.cfg.bind_ip)?;
                let socket = UdpSocket::from_std(pair.rtp)?;
                let rtcp = UdpSocket::from_std(pair.rtcp)?;
                let local = socket.local_addr()?;
                let socket = LegSocket {
                    socket,
                    rtcp: Some(rtcp),
                    _lease: pair.rtp_lease,
                    _rtcp_lease: Some(pair.rtcp_lease),
                };
                let r = random_u64();
                let leg = Leg::new(
                    *cfg,
                    Instant::now(),
                    Ssrc(r as u32),
                    (r >> 32) as u16,
                    (r >> 16) as u32,
                )?;
                let entry = self.new_entry(id, AnyLeg::Rtp(Box::new(leg)), socket, near);
                self.insert_leg(id, entry);
                self.counters.legs.fetch_add(1, Ordering::Relaxed);
                Ok(Reply::Bound(local))
            }
            Op::CreateBrowserLeg(id, offer, config, near) => {
                if self.legs.contains_key(&id) {
                    return Err(EngineError::LegExists(id));
                }
                let (std_socket, lease) = self.pool.bind(self.cfg.bind_ip)?;
                let socket = UdpSocket::from_std(std_socket)?;
                let port = socket.local_addr()?.port();
                let ip = self.cfg.advertised_ip.unwrap_or(self.cfg.bind_ip);
                let socket = LegSocket {
                    socket,
                    rtcp: None,
                    _lease: lease,
                    _rtcp_lease: None,
                };
                let now = Instant::now();
                let mut leg = BrowserLeg::with_config(now, SocketAddr::new(ip, port), config)?;
                let sdp = match offer {
                    Some(offer) => leg.accept_offer(now, &offer)?,
                    None => leg.create_offer(now)?,
                };
                let entry = self.new_entry(id, AnyLeg::Browser(Box::new(leg)), socket, near);
                self.insert_leg(id, entry);
                self.counters.legs.fetch_add(1, Ordering::Relaxed);
                Ok(Reply::Answer(sdp))
            }
            Op::BrowserAnswer(id, answer) => match &mut self.leg_mut(id)?.leg {
                AnyLeg::Browser(b) => {
                    b.accept_answer(Instant::now(), &answer)?;
                    Ok(Reply::Done)
                }
                AnyLeg::Rtp(_) => Err(EngineError::NotBrowserLeg(id)),
            },
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
                let mut entry = self.legs.remove(&id).ok_or(EngineError::UnknownLeg(id))?;
                let last = entry.leg.stats();
                entry.count(&last, &self.counters);
                self.counters.legs.fetch_sub(1, Ordering::Relaxed);
                if let Some((r, pid)) = entry.room
                    && let Some(room) = self.rooms.get_mut(&r)
                {
                    let _ = room.room.leave(pid);
                    room.taps.retain(|(_, l)| *l != id);
                }
                // Dropping the entry closes the sockets and returns the ports now, before
                // this command is answered.
                drop(entry);
                Ok(Reply::Done)
            }
            Op::DetachLeg(id) => {
                // Only a leg outside any room moves: a room's legs stay with the room.
                if self.leg_mut(id)?.room.is_some() {
                    return Err(EngineError::AlreadyInRoom(id));
                }
                let entry = self.legs.remove(&id).ok_or(EngineError::UnknownLeg(id))?;
                Ok(Reply::Leg(Box::new(entry)))
            }
            Op::AttachLeg(id, entry) => {
                if self.legs.contains_key(&id) {
                    return Err(EngineError::LegExists(id));
                }
                self.insert_leg(id, *entry);
                Ok(Reply::Done)
            }
            Op::DetachRoom(id) => {
                let entry = self.room_mut(id)?;
                if entry.room.participants().next().is_some() {
                    return Err(EngineError::RoomNotEmpty(id));
                }
                let entry = self.rooms.remove(&id).ok_or(EngineError::UnknownRoom(id))?;
                Ok(Reply::Room(Box::new(entry)))
            }
            Op::AttachRoom(id, entry) => {
                if self.rooms.contains_key(&id) {
                    return Err(EngineError::RoomExists(id));
                }
                self.rooms.insert(id, *entry);
                Ok(Reply::Done)
            }
            Op::CreateRoom(id) => {
                if self.rooms.contains_key(&id) {
                    return Err(EngineError::RoomExists(id));
                }
                // The slot is provisional: the first member brings its own.
                let slot = self.slot_near(None);
                self.rooms.insert(
                    id,
                    RoomEntry {
                        room: Room::new(),
                        recording: None,
                        taps: Vec::new(),
                        slot,
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
                let leg_slot = self.leg_mut(leg_id)?.slot;
                let room = self.room_mut(room_id)?;
                // An empty room moves to its first member's clock step; later members move
                // to the room's (a one-off shift of their frame timing by under a tick).
                if room.room.participants().next().is_none() {
                    room.slot = leg_slot;
                }
                let slot = room.slot;
                let pid = room.room.join();
                let entry = self.leg_mut(leg_id)?;
                entry.room = Some((room_id, pid));
                entry.slot = slot;
                // The room becomes the source only if no prompt is playing over it.
                if entry.player.is_none() {
                    entry.leg.source_changed();
                }
                Ok(Reply::Done)
            }
            Op::Leave(leg_id, only) => {
                let entry = self.leg_mut(leg_id)?;
                if only.is_some_and(|room| entry.room.is_none_or(|(r, _)| r != room)) {
                    return Ok(Reply::NotThere);
                }
                if let Some((r, pid)) = entry.room.take() {
                    entry.leg.source_changed();
                    if let Some(room) = self.rooms.get_mut(&r) {
                        let _ = room.room.leave(pid);
                        // A track not stopped first is finalized by its writer thread.
                        room.taps.retain(|(_, l)| *l != leg_id);
                    }
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
            Op::StartTap(room_id, leg, rec) => {
                self.participant(room_id, leg)?;
                let room = self.room_mut(room_id)?;
                room.taps.retain(|(_, l)| *l != leg);
                room.taps.push((*rec, leg));
                Ok(Reply::Done)
            }
            Op::StopTap(room_id, leg) => {
                let room = self.room_mut(room_id)?;
                let i = room
                    .taps
                    .iter()
                    .position(|(_, l)| *l == leg)
                    .ok_or(EngineError::NotRecording(room_id))?;
                Ok(Reply::Recorder(Box::new(room.taps.remove(i).0)))
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
