//! Browser legs: WebRTC terminated with str0m (sans-IO), as an ICE-lite server with
//! DTLS-SRTP, rtcp-mux and Opus only. A [`BrowserLeg`] offers the same tick interface as a
//! plain [`crate::engine::Leg`] — datagrams in, one 8 kHz frame out and in per tick — so the
//! engine bridges browser and phone legs through the same [`crate::mixer::Room`].
//!
//! By default Opus runs at 8 kHz inside our codec (narrowband), while the RTP clock stays
//! 48 kHz (RFC 7587 §4.1), so no resampler sits between the browser and G.711 legs.
//!
//! # Wideband
//!
//! With [`BrowserLegConfig::wideband`] the leg's Opus runs at 16 kHz (SILK wideband) and a
//! 2× resampler ([`crate::codec::resample`]) sits at the leg's edge, so the leg still
//! exchanges 8 kHz frames with its room. Rooms mix at 8 kHz — the G.711 phones they bridge
//! are narrowband — so **nothing above 4 kHz survives end to end**: what the browser sends
//! is band-limited to 3.8 kHz before the room, and what it receives carries no content above
//! 4 kHz. Wideband therefore buys no audio bandwidth today; it only changes the codec's
//! operating point (and costs roughly twice the Opus CPU plus the resampler). It is the
//! leg-side half of wideband calls, ready for a wideband room (browser ↔ browser).

use crate::codec::g711::FRAME_SAMPLES;
use crate::codec::opus::{OpusDecoder, OpusEncoder};
use crate::codec::resample::{Downsampler2x, Upsampler2x};
use crate::codec::{Codec, CodecError, Decoder, Encoder};
use crate::engine::{LegEvent, LegStats, Transmit};
use crate::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::rtp::rtcp::ReceiverStats;
use crate::rtp::{PayloadType, RtpHeader, Ssrc};

/// How often a browser leg reports [`LegEvent::Stats`] (as plain legs do with RTCP).
const STATS_INTERVAL: Duration = Duration::from_secs(5);
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::media::{Frequency, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};

/// Errors on a browser leg.
#[derive(Debug, thiserror::Error)]
pub enum WebRtcError {
    /// The SDP offer could not be parsed or accepted (the browser's fault).
    #[error("SDP offer rejected: {0}")]
    Offer(String),
    /// Our candidate address is unusable (our configuration's fault).
    #[error("bad local candidate: {0}")]
    Candidate(String),
    /// str0m refused a datagram or failed (usually the peer's fault: bad DTLS, SRTP, STUN).
    #[error("webrtc: {0}")]
    Rtc(#[from] str0m::RtcError),
    /// The datagram is not for this leg.
    #[error("datagram not accepted by this leg")]
    NotAccepted,
    /// Codec setup failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Browser leg options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BrowserLegConfig {
    /// Run Opus at 16 kHz with a resampler to and from the 8 kHz room (see the module
    /// docs: no end-to-end benefit while rooms are 8 kHz). Default false: 8 kHz Opus.
    pub wideband: bool,
}

impl BrowserLegConfig {
    /// The rate our Opus encoder and decoder run at.
    pub fn codec_rate(&self) -> u32 {
        if self.wideband { 16000 } else { 8000 }
    }
}

/// Opus bitrate for wideband (SILK WB speech).
const WIDEBAND_BITRATE: i32 = 24_000;

/// One browser leg.
pub struct BrowserLeg {
    rtc: Rtc,
    local: SocketAddr,
    mid: Option<Mid>,
    pt: Option<Pt>,
    connected: bool,
    jitter: JitterBuffer,
    decoder: Decoder,
    encoder: Encoder,
    media_time: u64,
    next_timeout: Instant,
    packets_sent: u32,
    rx_stats: ReceiverStats,
    next_stats: Instant,
    transmits: VecDeque<Transmit>,
    events: VecDeque<LegEvent>,
    pcm: Vec<i16>,
    payload: Vec<u8>,
    config: BrowserLegConfig,
    /// Our offer, until the answer comes ([`BrowserLeg::create_offer`]).
    pending: Option<SdpPendingOffer>,
    /// Wideband only: the room's 8 kHz → 16 kHz for the encoder, and back for the room.
    up: Option<Upsampler2x>,
    down: Option<Downsampler2x>,
    wide: Vec<i16>,
}

/// An Opus encoder and decoder at the config's rate.
fn opus_codecs(config: BrowserLegConfig) -> Result<(Encoder, Decoder), CodecError> {
    Ok(if config.wideband {
        (
            Encoder::Opus(Box::new(OpusEncoder::with_sample_rate(
                16000,
                WIDEBAND_BITRATE,
            )?)),
            Decoder::Opus(Box::new(OpusDecoder::with_sample_rate(16000)?)),
        )
    } else {
        (Encoder::new(Codec::Opus)?, Decoder::new(Codec::Opus)?)
    })
}

impl std::fmt::Debug for BrowserLeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserLeg")
            .field("local", &self.local)
            .field("mid", &self.mid)
            .field("connected", &self.connected)
            .finish_non_exhaustive()
    }
}

impl BrowserLeg {
    /// A browser leg whose ICE candidate is `local` (the address browsers can reach), with
    /// 8 kHz Opus.
    pub fn new(now: Instant, local: SocketAddr) -> Result<Self, WebRtcError> {
        Self::with_config(now, local, BrowserLegConfig::default())
    }

    /// A browser leg with options (wideband Opus).
    pub fn with_config(
        now: Instant,
        local: SocketAddr,
        config: BrowserLegConfig,
    ) -> Result<Self, WebRtcError> {
        static CRYPTO: std::sync::OnceLock<std::sync::Arc<str0m::crypto::CryptoProvider>> =
            std::sync::OnceLock::new();
        let crypto = CRYPTO
            .get_or_init(|| std::sync::Arc::new(str0m::crypto::from_feature_flags()))
            .clone();
        // `build` panics only if the configuration is invalid; this one is fixed and covered by
        // the tests, so no peer input can reach that panic.
        let mut rtc = Rtc::builder()
            .set_crypto_provider(crypto)
            .set_ice_lite(true)
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        let candidate =
            Candidate::host(local, "udp").map_err(|e| WebRtcError::Candidate(e.to_string()))?;
        rtc.add_local_candidate(candidate);
        let (encoder, decoder) = opus_codecs(config)?;
        Ok(Self {
            rtc,
            local,
            mid: None,
            pt: None,
            connected: false,
            jitter: JitterBuffer::new(JitterConfig {
                clock_rate: Codec::Opus.rtp_clock_rate(),
                ..JitterConfig::default()
            }),
            decoder,
            encoder,
            media_time: 0,
            next_timeout: now,
            packets_sent: 0,
            rx_stats: ReceiverStats::new(Codec::Opus.rtp_clock_rate()),
            next_stats: now + STATS_INTERVAL,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            pcm: Vec::with_capacity(1920),
            payload: Vec::with_capacity(400),
            config,
            pending: None,
            up: config.wideband.then(Upsampler2x::default),
            down: config.wideband.then(Downsampler2x::default),
            wide: Vec::with_capacity(2 * FRAME_SAMPLES),
        })
    }

    /// The options this leg runs with.
    pub fn config(&self) -> BrowserLegConfig {
        self.config
    }

    /// Answers the browser's SDP offer.
    pub fn accept_offer(&mut self, now: Instant, offer: &str) -> Result<String, WebRtcError> {
        let offer =
            SdpOffer::from_sdp_string(offer).map_err(|e| WebRtcError::Offer(e.to_string()))?;
        let answer = self
            .rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| WebRtcError::Offer(e.to_string()))?;
        self.drain(now)?;
        Ok(answer.to_sdp_string())
    }

    /// Our SDP offer (one audio stream, Opus, ICE-lite, DTLS-SRTP), for an endpoint we call:
    /// a browser SIP client reached over its WebSocket. The answer goes to
    /// [`BrowserLeg::accept_answer`].
    pub fn create_offer(&mut self, now: Instant) -> Result<String, WebRtcError> {
        let mut api = self.rtc.sdp_api();
        let mid = api.add_media(
            str0m::media::MediaKind::Audio,
            str0m::media::Direction::SendRecv,
            None,
            None,
            None,
        );
        let (offer, pending) = api
            .apply()
            .ok_or_else(|| WebRtcError::Offer("nothing to offer".into()))?;
        self.mid = Some(mid);
        self.pending = Some(pending);
        self.drain(now)?;
        Ok(offer.to_sdp_string())
    }

    /// The far end's answer to [`BrowserLeg::create_offer`].
    pub fn accept_answer(&mut self, now: Instant, answer: &str) -> Result<(), WebRtcError> {
        let answer =
            SdpAnswer::from_sdp_string(answer).map_err(|e| WebRtcError::Offer(e.to_string()))?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| WebRtcError::Offer("an answer without an offer".into()))?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, answer)
            .map_err(|e| WebRtcError::Offer(e.to_string()))?;
        self.pt = self
            .rtc
            .codec_config()
            .find(|p| p.spec().codec == str0m::format::Codec::Opus)
            .map(|p| p.pt());
        self.drain(now)
    }

    /// Whether ICE and DTLS are up.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Feeds one datagram (STUN, DTLS or SRTP, all on one port: rtcp-mux and bundle).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Result<(), WebRtcError> {
        let contents = data.try_into().map_err(|_| WebRtcError::NotAccepted)?;
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source: from,
                destination: self.local,
                contents,
            },
        );
        if !self.rtc.accepts(&input) {
            return Err(WebRtcError::NotAccepted);
        }
        self.rtc.handle_input(input)?;
        self.drain(now)
    }

    /// Runs str0m's timers (ICE, DTLS retransmission, RTCP) if due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_stats {
            self.next_stats = now + STATS_INTERVAL;
            tracing::debug!(
                local = %self.local,
                jitter = ?self.jitter.stats(),
                target_frames = self.jitter.target_frames(),
                "browser leg figures"
            );
            self.events.push_back(LegEvent::Stats(self.stats()));
        }
        if now < self.next_timeout {
            return;
        }
        if let Err(e) = self.rtc.handle_input(Input::Timeout(now)) {
            tracing::debug!(error = %e, "str0m timeout handling failed");
        }
        if let Err(e) = self.drain(now) {
            tracing::debug!(error = %e, "str0m output failed");
        }
    }

    /// When [`BrowserLeg::handle_timeout`] next needs calling.
    pub fn poll_timeout(&self) -> Instant {
        self.next_timeout
    }

    fn drain(&mut self, now: Instant) -> Result<(), WebRtcError> {
        loop {
            match self.rtc.poll_output()? {
                Output::Timeout(t) => {
                    self.next_timeout = t;
                    return Ok(());
                }
                Output::Transmit(t) => self.transmits.push_back(Transmit {
                    destination: t.destination,
                    payload: t.contents.to_vec(),
                }),
                Output::Event(e) => self.on_event(now, e),
            }
        }
    }

    fn on_event(&mut self, now: Instant, e: Event) {
        match e {
            Event::Connected => {
                self.connected = true;
                self.events.push_back(LegEvent::Connected);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                self.connected = false;
                self.events.push_back(LegEvent::MediaTimeout);
            }
            Event::MediaAdded(m) => {
                self.mid = Some(m.mid);
                self.pt = self
                    .rtc
                    .codec_config()
                    .find(|p| p.spec().codec == str0m::format::Codec::Opus)
                    .map(|p| p.pt());
            }
            Event::MediaData(d) => {
                // The jitter buffer wants RTP numbering: str0m gives the extended sequence
                // number and the 48 kHz media time of the frame.
                let header = RtpHeader {
                    marker: false,
                    payload_type: PayloadType::new(*d.pt).unwrap_or(PayloadType::PCMU),
                    sequence: **d.seq_range.start() as u16,
                    timestamp: d.time.numer() as u32,
                    ssrc: Ssrc(0),
                };
                // Loss and jitter as RFC 3550 A.3/A.8 figure them, from str0m's numbering
                // and the packet's arrival time.
                self.rx_stats.on_packet(d.network_time, &header);
                self.jitter.push(now, &header, &d.data);
            }
            _ => {}
        }
    }

    /// The 20 ms of the browser's audio due at this tick, at 8 kHz.
    pub fn receive_frame(&mut self, now: Instant) -> [i16; FRAME_SAMPLES] {
        self.pcm.clear();
        let result = match self.jitter.pop(now) {
            Playout::Frame { payload, .. } => self.decoder.decode(payload, &mut self.pcm),
            Playout::Conceal => self.decoder.conceal(&mut self.pcm),
            Playout::Silence => Ok(()),
        };
        if result.is_err() {
            self.pcm.clear();
            let _ = self.decoder.conceal(&mut self.pcm);
        }
        let mut frame = [0; FRAME_SAMPLES];
        let pcm = match self.down.as_mut() {
            Some(down) => {
                // Exactly one 20 ms frame at 16 kHz through the filter (padded or cut), so
                // the resampler's state stays in step with the 8 kHz clock.
                self.pcm.resize(2 * FRAME_SAMPLES, 0);
                self.wide.clear();
                down.process(&self.pcm, &mut self.wide);
                &self.wide
            }
            None => &self.pcm,
        };
        let n = pcm.len().min(FRAME_SAMPLES);
        frame[..n].copy_from_slice(&pcm[..n]);
        frame
    }

    /// Sends 20 ms of audio to the browser (dropped until connected; media time still
    /// advances so the stream stays continuous, RFC 3550 §5.1).
    pub fn send_frame(&mut self, now: Instant, frame: &[i16]) -> Result<(), WebRtcError> {
        let time = MediaTime::new(self.media_time, Frequency::FORTY_EIGHT_KHZ);
        self.media_time += Codec::Opus.rtp_samples_per_frame() as u64;
        let (Some(mid), Some(pt), true) = (self.mid, self.pt, self.connected) else {
            return Ok(());
        };
        self.payload.clear();
        match self.up.as_mut() {
            Some(up) => {
                self.wide.clear();
                up.process(frame, &mut self.wide);
                self.encoder.encode(&self.wide, &mut self.payload)?;
            }
            None => self.encoder.encode(frame, &mut self.payload)?,
        }
        if let Some(w) = self.rtc.writer(mid) {
            w.write(pt, now, time, self.payload.clone())?;
            self.packets_sent += 1;
        }
        self.drain(now)
    }

    /// Nothing to send this tick.
    pub fn send_nothing(&mut self) {
        self.media_time += Codec::Opus.rtp_samples_per_frame() as u64;
    }

    /// Current figures. Remote loss and round trip live in str0m's RTCP and are not mirrored.
    pub fn stats(&self) -> LegStats {
        LegStats {
            reception: self.rx_stats.summary(),
            jitter_buffer: self.jitter.stats(),
            packets_sent: self.packets_sent,
            remote_fraction_lost: None,
            round_trip: None,
            // Every received frame is either played, late, duplicate or dropped by the
            // jitter buffer; concealed frames are the ones that never arrived.
            packets_received_total: {
                let j = self.jitter.stats();
                j.played + j.late + j.duplicates + j.dropped
            },
            packets_lost_total: self.jitter.stats().concealed as i64,
        }
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<LegEvent> {
        self.events.pop_front()
    }

    /// Period between str0m timer checks that the engine guarantees (its tick).
    pub const TIMER_GRANULARITY: Duration = Duration::from_millis(20);
}

/// A browser stand-in for tests: a full-ICE str0m peer that offers Opus audio.
#[cfg(test)]
pub(crate) mod test_browser {
    use super::*;
    use str0m::change::{SdpAnswer, SdpPendingOffer};
    use str0m::media::{Direction, MediaKind};

    pub(crate) struct TestBrowser {
        rtc: Rtc,
        addr: SocketAddr,
        mid: Option<Mid>,
        pending: Option<SdpPendingOffer>,
        encoder: Encoder,
        decoder: Decoder,
        pub(crate) heard: Vec<i16>,
        pub(crate) connected: bool,
        media_time: u64,
        next_timeout: Instant,
        pub(crate) out: Vec<Transmit>,
    }

    impl TestBrowser {
        /// A browser at `addr`, and its SDP offer.
        pub(crate) fn new(now: Instant, addr: SocketAddr) -> (Self, String) {
            Self::with_rate(now, addr, 8000)
        }

        /// A browser whose Opus runs at `rate` (it speaks and hears `rate / 50`-sample
        /// frames).
        pub(crate) fn with_rate(now: Instant, addr: SocketAddr, rate: u32) -> (Self, String) {
            let mut b = Self::unconnected(now, addr, rate);
            let mut api = b.rtc.sdp_api();
            let mid = api.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
            let (offer, pending) = api.apply().unwrap();
            b.mid = Some(mid);
            b.pending = Some(pending);
            (b, offer.to_sdp_string())
        }

        /// A browser at `addr` answering `offer` (as a SIP client called by the server
        /// does), and its SDP answer.
        pub(crate) fn answering(
            now: Instant,
            addr: SocketAddr,
            rate: u32,
            offer: &str,
        ) -> (Self, String) {
            let mut b = Self::unconnected(now, addr, rate);
            let offer = SdpOffer::from_sdp_string(offer).unwrap();
            let answer = b.rtc.sdp_api().accept_offer(offer).unwrap();
            b.drain(now);
            (b, answer.to_sdp_string())
        }

        fn unconnected(now: Instant, addr: SocketAddr, rate: u32) -> Self {
            let mut rtc = Rtc::builder()
                .set_crypto_provider(std::sync::Arc::new(str0m::crypto::from_feature_flags()))
                .clear_codecs()
                .enable_opus(true, false)
                .build(now);
            rtc.add_local_candidate(Candidate::host(addr, "udp").unwrap());
            Self {
                rtc,
                addr,
                mid: None,
                pending: None,
                encoder: Encoder::Opus(Box::new(
                    OpusEncoder::with_sample_rate(rate, WIDEBAND_BITRATE).unwrap(),
                )),
                decoder: Decoder::Opus(Box::new(OpusDecoder::with_sample_rate(rate).unwrap())),
                heard: Vec::new(),
                connected: false,
                media_time: 0,
                next_timeout: now,
                out: Vec::new(),
            }
        }

        pub(crate) fn accept_answer(&mut self, now: Instant, answer: &str) {
            let answer = SdpAnswer::from_sdp_string(answer).unwrap();
            let pending = self.pending.take().unwrap();
            self.rtc.sdp_api().accept_answer(pending, answer).unwrap();
            self.drain(now);
        }

        pub(crate) fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
            let input = Input::Receive(
                now,
                Receive {
                    proto: Protocol::Udp,
                    source: from,
                    destination: self.addr,
                    contents: data.try_into().unwrap(),
                },
            );
            if self.rtc.accepts(&input) {
                self.rtc.handle_input(input).unwrap();
                self.drain(now);
            }
        }

        pub(crate) fn handle_timeout(&mut self, now: Instant) {
            if now >= self.next_timeout {
                self.rtc.handle_input(Input::Timeout(now)).unwrap();
                self.drain(now);
            }
        }

        /// Speaks one 20 ms frame (at the browser's rate) as Opus.
        pub(crate) fn speak(&mut self, now: Instant, frame: &[i16]) {
            let payload = self.encode(frame);
            self.speak_encoded(now, payload);
        }

        /// Encodes one 20 ms frame (at the browser's rate), e.g. ahead of a real-time run.
        pub(crate) fn encode(&mut self, frame: &[i16]) -> Vec<u8> {
            let mut payload = Vec::new();
            self.encoder.encode(frame, &mut payload).unwrap();
            payload
        }

        /// Sends one pre-encoded 20 ms Opus frame.
        pub(crate) fn speak_encoded(&mut self, now: Instant, payload: Vec<u8>) {
            let time = MediaTime::new(self.media_time, Frequency::FORTY_EIGHT_KHZ);
            self.media_time += 960;
            let (true, Some(mid)) = (self.connected, self.mid) else {
                return;
            };
            let pt = self
                .rtc
                .codec_config()
                .find(|p| p.spec().codec == str0m::format::Codec::Opus)
                .map(|p| p.pt())
                .unwrap();
            self.rtc
                .writer(mid)
                .unwrap()
                .write(pt, now, time, payload)
                .unwrap();
            self.drain(now);
        }

        fn drain(&mut self, _now: Instant) {
            loop {
                match self.rtc.poll_output().unwrap() {
                    Output::Timeout(t) => {
                        self.next_timeout = t;
                        return;
                    }
                    Output::Transmit(t) => self.out.push(Transmit {
                        destination: t.destination,
                        payload: t.contents.to_vec(),
                    }),
                    Output::Event(Event::Connected) => self.connected = true,
                    Output::Event(Event::MediaAdded(m)) => self.mid = Some(m.mid),
                    Output::Event(Event::MediaData(d)) => {
                        self.decoder.decode(&d.data, &mut self.heard).unwrap();
                    }
                    Output::Event(_) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_browser::TestBrowser;
    use super::*;
    use crate::test_signal::{dominant_frequency, rms, sine};

    /// Our ICE-lite leg against a full str0m peer, in virtual time with no sockets: ICE,
    /// DTLS-SRTP and Opus both ways.
    #[test]
    fn browser_leg_talks_opus_over_dtls_srtp_with_a_str0m_peer() {
        browser_call(false, false);
    }

    /// The leg offers (the server calls a browser SIP client over its WebSocket) and the
    /// peer answers: the same call.
    #[test]
    fn browser_leg_offers_and_talks_with_a_str0m_answerer() {
        browser_call(false, true);
    }

    /// Wideband: the browser runs Opus at 16 kHz, our leg decodes at 16 kHz and resamples
    /// to the room's 8 kHz (and back up for what it sends). Tones in the speech band keep
    /// their frequency and level both ways.
    #[test]
    fn wideband_browser_leg_resamples_between_16khz_opus_and_the_8khz_room() {
        browser_call(true, false);
    }

    fn browser_call(wideband: bool, leg_offers: bool) {
        let _serial = crate::test_signal::REALTIME.blocking_lock();
        let t0 = Instant::now();
        let leg_addr: SocketAddr = "10.0.0.1:30000".parse().unwrap();
        let browser_addr: SocketAddr = "10.0.0.2:50000".parse().unwrap();
        let config = BrowserLegConfig { wideband };
        let mut leg = BrowserLeg::with_config(t0, leg_addr, config).unwrap();
        assert_eq!(leg.config(), config);
        let rate = config.codec_rate();
        let frame = rate as usize / 50;
        let (mut browser, ours) = if leg_offers {
            let offer = leg.create_offer(t0).unwrap();
            let (browser, answer) = TestBrowser::answering(t0, browser_addr, rate, &offer);
            // An answer is not an offer: refused before the real one is taken.
            assert!(leg.accept_answer(t0, "v=0\r\nnonsense").is_err());
            leg.accept_answer(t0, &answer).unwrap();
            (browser, offer)
        } else {
            let (mut browser, offer) = TestBrowser::with_rate(t0, browser_addr, rate);
            let answer = leg.accept_offer(t0, &offer).unwrap();
            browser.accept_answer(t0, &answer);
            (browser, answer)
        };
        assert!(ours.contains("a=ice-lite"), "{ours}");
        assert!(ours.contains("a=rtcp-mux"), "{ours}");
        assert!(ours.contains("a=fingerprint:sha-256"), "DTLS-SRTP: {ours}");
        assert!(ours.to_lowercase().contains("opus/48000/2"));
        let to_leg = sine(1000.0, 8000.0, rate as usize * 6, rate);
        let to_browser = sine(600.0, 8000.0, 8000 * 6, 8000);
        let mut leg_heard = Vec::new();
        let mut now = t0;
        for tick in 0..280 {
            // Two 10 ms network steps per 20 ms media tick.
            for _ in 0..2 {
                now += Duration::from_millis(10);
                leg.handle_timeout(now);
                browser.handle_timeout(now);
                for _ in 0..10 {
                    let mut moved = false;
                    while let Some(t) = leg.poll_transmit() {
                        assert_eq!(t.destination, browser_addr);
                        browser.handle_datagram(now, leg_addr, &t.payload);
                        moved = true;
                    }
                    for t in std::mem::take(&mut browser.out) {
                        assert_eq!(t.destination, leg_addr);
                        leg.handle_datagram(now, browser_addr, &t.payload).unwrap();
                        moved = true;
                    }
                    if !moved {
                        break;
                    }
                }
            }
            let i = tick * 160;
            browser.speak(now, &to_leg[tick * frame..(tick + 1) * frame]);
            leg.send_frame(now, &to_browser[i..i + 160]).unwrap();
            leg_heard.extend_from_slice(&leg.receive_frame(now));
        }
        assert!(leg.is_connected() && browser.connected);
        assert_eq!(leg.poll_event(), Some(LegEvent::Connected));
        // Three seconds in: a statistics event with what was received, nothing lost.
        let stats = std::iter::from_fn(|| leg.poll_event())
            .find_map(|e| match e {
                LegEvent::Stats(s) => Some(s),
                _ => None,
            })
            .expect("a stats event after 5 s");
        assert!(
            stats.packets_sent > 50 && stats.reception.expected > 50,
            "{stats:?}"
        );
        assert_eq!(stats.reception.lost, 0);
        let n = browser.heard.len();
        let second = rate as usize;
        assert!(n > 2 * second, "browser heard {n} samples");
        let tail = &browser.heard[n - second..];
        let (fb, lb) = (dominant_frequency(tail, rate), rms(tail));
        let tail = &leg_heard[leg_heard.len() - 8000..];
        let (fl, ll) = (dominant_frequency(tail, 8000), rms(tail));
        println!(
            "{rate} Hz browser hears {fb:.1} Hz rms {lb:.0}; leg hears {fl:.1} Hz rms {ll:.0}"
        );
        let expected = 8000.0 / 2f64.sqrt();
        assert!((fb - 600.0).abs() < 3.0 && (lb / expected - 1.0).abs() < 0.2);
        assert!((fl - 1000.0).abs() < 3.0 && (ll / expected - 1.0).abs() < 0.2);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random datagrams (including STUN- and DTLS-looking first bytes) never panic.
        #[test]
        fn random_datagrams_never_panic_a_browser_leg(
            first in proptest::prelude::any::<u8>(),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let _serial = crate::test_signal::REALTIME.blocking_lock();
            let t0 = Instant::now();
            let mut leg = BrowserLeg::new(t0, "10.0.0.1:30000".parse().unwrap()).unwrap();
            let (_, offer) = test_browser::TestBrowser::new(t0, "10.0.0.2:5000".parse().unwrap());
            leg.accept_offer(t0, &offer).unwrap();
            let mut d = vec![first];
            d.extend_from_slice(&body);
            let _ = leg.handle_datagram(t0, "10.0.0.2:5000".parse().unwrap(), &d);
            leg.handle_timeout(t0 + Duration::from_millis(20));
            let _ = leg.receive_frame(t0);
        }
    }

    #[test]
    fn garbage_offers_and_datagrams_are_errors() {
        let t0 = Instant::now();
        let mut leg = BrowserLeg::new(t0, "10.0.0.1:30000".parse().unwrap()).unwrap();
        assert!(matches!(
            leg.accept_offer(t0, "v=0\r\nnonsense"),
            Err(WebRtcError::Offer(_))
        ));
        let from: SocketAddr = "10.0.0.9:1".parse().unwrap();
        assert!(leg.handle_datagram(t0, from, &[0x80, 0, 1, 2, 3]).is_err());
        assert!(leg.handle_datagram(t0, from, &[]).is_err());
    }
}
