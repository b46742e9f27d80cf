//! The call actor: one tokio task per call, owning its [`Call`] machine and its media legs.
//! It only moves things: SIP input from the SIP task into the machine, the machine's SIP
//! commands back, media operations to the engine (awaiting their results), time as a single
//! timer, and the finished record to the store writer.

use std::time::{Duration, Instant};

use media::codec::Codec as MediaCodec;
use media::engine::{LegConfig, LegEvent, LegId, MediaHandle, RoomId};
use media::rtp::PayloadType;
use tokio::sync::mpsc;
use tracing::Instrument;

use super::{Call, CallKey, CallRecord, LegParams, MediaOp, Output, Side, SipCommand, SipInput};
use crate::sdp::Codec;
use crate::store::StoreEvent;

/// What a call actor receives.
#[derive(Debug)]
pub enum CallEvent {
    Sip(SipInput),
    /// Something happened on one of the call's media legs.
    Media(LegId, LegEvent),
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
}

pub struct CallActor {
    pub call: Call,
    pub media: MediaHandle,
    pub events: mpsc::Receiver<CallEvent>,
    pub to_sip: mpsc::Sender<(CallKey, ActorMessage)>,
    pub store: Option<mpsc::Sender<StoreEvent>>,
    pub config: ActorConfig,
}

impl CallActor {
    /// Runs the call to its end inside a `call` tracing span.
    pub async fn run(self) {
        let span = tracing::info_span!("call", key = %self.call.key());
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
                    Output::Ended(mut record) => {
                        if let Some(r) = room.take() {
                            let _ = self.media.end_room(r).await;
                        }
                        fill_media_figures(&mut record, &record_legs);
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
            let deadline = self
                .call
                .poll_timeout()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                ev = self.events.recv() => {
                    let now = Instant::now();
                    match ev {
                        Some(CallEvent::Sip(input)) => self.call.handle_sip(now, input),
                        Some(CallEvent::Media(leg, LegEvent::MediaTimeout)) => {
                            self.call.media_timeout(now, leg);
                        }
                        Some(CallEvent::Media(..)) => {}
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
                    Err(e) => self.call.media_failed(Instant::now(), &e.to_string()),
                }
            }
            MediaOp::Update { leg, params } => {
                let cfg = self.leg_config(&params);
                if let Err(e) = self.media.reconfigure_leg(leg, cfg).await {
                    tracing::warn!(error = %e, ?leg, "media leg update failed");
                }
            }
            MediaOp::Bridge { caller, agent } => {
                let r = RoomId(key.0);
                if room.is_none() {
                    if let Err(e) = self.media.create_room(r).await {
                        tracing::warn!(error = %e, "room creation failed");
                        return;
                    }
                    *room = Some(r);
                }
                for leg in [caller, agent] {
                    if let Err(e) = self.media.join(r, leg).await {
                        tracing::warn!(error = %e, ?leg, "join failed");
                    }
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
        cfg
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
