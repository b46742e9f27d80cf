//! Opus (RFC 6716, RTP payload RFC 7587) through the pure-Rust `opus-pure` crate, mono at the
//! mixer's 8 kHz: the browser leg's Opus runs narrowband so G.711 ↔ Opus needs no
//! resampler (ARCHITECTURE "Browser agent endpoint"). Opus RTP timestamps still count at
//! 48 kHz (RFC 7587 §4.1), which [`super::Codec::rtp_clock_rate`] reflects.
//!
//! [`OpusEncoder::with_sample_rate`] and [`OpusDecoder::with_sample_rate`] run the codec at
//! any rate Opus supports (8, 12, 16, 24 or 48 kHz); the browser leg's wideband mode uses
//! 16 kHz ([`crate::webrtc::BrowserLegConfig::wideband`]).

use super::CodecError;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Decoder output room: 120 ms, the longest Opus packet (RFC 6716 §3.2.5), at 8 kHz.
const MAX_FRAME_8K: usize = 960;

/// The sample rates Opus codes at (RFC 6716 §2).
pub const SAMPLE_RATES: [u32; 5] = [8000, 12000, 16000, 24000, 48000];

fn check_rate(rate: u32) -> Result<(), CodecError> {
    if SAMPLE_RATES.contains(&rate) {
        Ok(())
    } else {
        Err(CodecError::Opus(format!(
            "unsupported Opus sample rate {rate}"
        )))
    }
}

/// Encoder complexity (0–10; libopus and opus-pure default to 9). For narrowband SILK at
/// 8 kHz the speech round-trip figures barely move (SNR ~15.3 dB and spectral distance
/// ~1.6–1.9 dB at both 9 and 1, see `transcoding_round_trips_keep_speech_recognisable`)
/// while the encode cost drops about 3× (≈140 µs → ≈44 µs per 20 ms frame here).
pub const COMPLEXITY: i32 = 1;

/// Mono Opus encoder at 8 kHz, speech-tuned (SILK narrowband).
pub struct OpusEncoder {
    inner: opus_pure::OpusEncoder,
    packet: Vec<u8>,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder").finish_non_exhaustive()
    }
}

impl OpusEncoder {
    /// An encoder for 8 kHz mono speech at `bitrate_bps`.
    pub fn new(bitrate_bps: i32) -> Result<Self, CodecError> {
        Self::with_sample_rate(8000, bitrate_bps)
    }

    /// An encoder for mono speech at `sample_rate` (one of [`SAMPLE_RATES`]); frames are
    /// then `sample_rate / 50` samples per 20 ms.
    pub fn with_sample_rate(sample_rate: u32, bitrate_bps: i32) -> Result<Self, CodecError> {
        check_rate(sample_rate)?;
        let mut inner =
            opus_pure::OpusEncoder::new(sample_rate as i32, 1, opus_pure::Application::Voip)
                .map_err(|e| CodecError::Opus(e.to_string()))?;
        inner.bitrate_bps = bitrate_bps;
        inner.complexity = COMPLEXITY;
        inner.use_inband_fec = true;
        inner.packet_loss_perc = 5;
        inner.signal_type = Some(opus_pure::Signal::Voice);
        Ok(Self {
            inner,
            packet: vec![0; opus_pure::MAX_PACKET_BYTES],
        })
    }

    /// Encodes one frame (160 samples = 20 ms), appending the packet to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let n = self
            .inner
            .encode_s16(pcm, pcm.len(), &mut self.packet)
            .map_err(|e| CodecError::Opus(e.to_string()))?;
        out.extend_from_slice(&self.packet[..n]);
        Ok(())
    }
}

/// Mono Opus decoder at 8 kHz with Opus's own loss concealment.
pub struct OpusDecoder {
    inner: opus_pure::OpusDecoder,
    pcm: Vec<i16>,
    last_frame: usize,
    max_frame: usize,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// A decoder producing 8 kHz mono.
    pub fn new() -> Result<Self, CodecError> {
        Self::with_sample_rate(8000)
    }

    /// A decoder producing mono at `sample_rate` (one of [`SAMPLE_RATES`]).
    pub fn with_sample_rate(sample_rate: u32) -> Result<Self, CodecError> {
        check_rate(sample_rate)?;
        let max_frame = MAX_FRAME_8K * sample_rate as usize / 8000;
        Ok(Self {
            inner: opus_pure::OpusDecoder::new(sample_rate as i32, 1)
                .map_err(|e| CodecError::Opus(e.to_string()))?,
            pcm: vec![0; max_frame],
            last_frame: sample_rate as usize / 50,
            max_frame,
        })
    }

    /// Decodes one packet from the network, appending the samples to `out`. A malformed
    /// packet is an error, never a panic: the decoder is also shielded with `catch_unwind`
    /// because it is a large third-party codec fed by the peer (STYLE 8), and reset after
    /// such a failure.
    pub fn decode(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if packet.is_empty() {
            return Err(CodecError::Malformed("empty Opus packet"));
        }
        self.run(packet, out)
    }

    /// Conceals one lost 20 ms frame (Opus PLC, RFC 6716 §4.4).
    pub fn conceal(&mut self, out: &mut Vec<i16>) -> Result<(), CodecError> {
        self.run(&[], out)
    }

    fn run(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let frame = if packet.is_empty() {
            self.last_frame
        } else {
            self.max_frame
        };
        let Self { inner, pcm, .. } = self;
        let result = catch_unwind(AssertUnwindSafe(|| {
            inner.decode_s16(packet, frame, &mut pcm[..frame])
        }));
        match result {
            Ok(Ok(n)) => {
                out.extend_from_slice(&self.pcm[..n]);
                if !packet.is_empty() {
                    self.last_frame = n.clamp(1, self.max_frame);
                }
                Ok(())
            }
            Ok(Err(e)) => Err(CodecError::Opus(e.to_string())),
            Err(_) => {
                let _ = self.inner.reset_state();
                Err(CodecError::Malformed("Opus decoder rejected the packet"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_opus_rate_codes_20ms_frames_and_others_are_refused() {
        for rate in SAMPLE_RATES {
            let mut enc = OpusEncoder::with_sample_rate(rate, 24_000).unwrap();
            let mut dec = OpusDecoder::with_sample_rate(rate).unwrap();
            let frame = crate::test_signal::sine(440.0, 4000.0, rate as usize / 50, rate);
            let mut packet = Vec::new();
            enc.encode(&frame, &mut packet).unwrap();
            let mut out = Vec::new();
            dec.decode(&packet, &mut out).unwrap();
            assert_eq!(out.len(), rate as usize / 50, "{rate} Hz");
            out.clear();
            dec.conceal(&mut out).unwrap();
            assert_eq!(out.len(), rate as usize / 50, "{rate} Hz concealment");
        }
        assert!(OpusEncoder::with_sample_rate(44100, 24_000).is_err());
        assert!(OpusDecoder::with_sample_rate(11025).is_err());
    }
}
