//! Audio codecs: G.711 ([`g711`]), Opus ([`opus`]) and RFC 4733 telephone-events
//! ([`telephone_event`]), behind one [`Encoder`] / [`Decoder`] pair that works on the
//! mixer's 8 kHz, 20 ms frames, and a [`Transcoder`] between any two of them.

pub mod g711;
pub mod opus;
pub mod resample;
pub mod telephone_event;

use crate::rtp::PayloadType;

/// The audio codecs a leg can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// Opus, mono, coded at 8 kHz.
    Opus,
}

/// Codec errors. `Malformed` is the peer's fault; `Opus` may be either side's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A payload that cannot be decoded.
    #[error("malformed payload: {0}")]
    Malformed(&'static str),
    /// The Opus library reported an error.
    #[error("opus: {0}")]
    Opus(String),
}

impl Codec {
    /// All codecs.
    pub const ALL: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];

    /// The RTP clock rate (RFC 3551 Table 4; RFC 7587 §4.1: Opus is always 48000).
    pub fn rtp_clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// RTP timestamp units in one 20 ms frame.
    pub fn rtp_samples_per_frame(self) -> u32 {
        self.rtp_clock_rate() / 50
    }

    /// The static payload type, or the one we offer for dynamic codecs.
    pub fn default_payload_type(self) -> PayloadType {
        match self {
            Codec::Pcmu => PayloadType::PCMU,
            Codec::Pcma => PayloadType::PCMA,
            // Matches what browsers offer for Opus; SDP negotiation may change it.
            Codec::Opus => PayloadType::new(111).unwrap_or(PayloadType::PCMU),
        }
    }

    /// The codec for an SDP rtpmap encoding name (case-insensitive).
    pub fn from_sdp_name(name: &str) -> Option<Codec> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "OPUS" => Some(Codec::Opus),
            _ => None,
        }
    }
}

/// Encodes 8 kHz frames for one outgoing stream.
#[derive(Debug)]
pub enum Encoder {
    /// µ-law.
    Pcmu,
    /// A-law.
    Pcma,
    /// Opus.
    Opus(Box<opus::OpusEncoder>),
}

impl Encoder {
    /// Opus bitrate used for the browser leg (narrowband speech).
    pub const OPUS_BITRATE: i32 = 16_000;

    /// An encoder for `codec`.
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        Ok(match codec {
            Codec::Pcmu => Encoder::Pcmu,
            Codec::Pcma => Encoder::Pcma,
            Codec::Opus => Encoder::Opus(Box::new(opus::OpusEncoder::new(Self::OPUS_BITRATE)?)),
        })
    }

    /// Encodes one 20 ms frame at 8 kHz, appending the payload to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            Encoder::Pcmu => g711::encode_ulaw(pcm, out),
            Encoder::Pcma => g711::encode_alaw(pcm, out),
            Encoder::Opus(e) => e.encode(pcm, out)?,
        }
        Ok(())
    }
}

/// Decodes one incoming stream to 8 kHz, with loss concealment.
#[derive(Debug)]
pub enum Decoder {
    /// µ-law with G.711 PLC.
    Pcmu(g711::G711Plc),
    /// A-law with G.711 PLC.
    Pcma(g711::G711Plc),
    /// Opus with its own PLC.
    Opus(Box<opus::OpusDecoder>),
}

impl Decoder {
    /// A decoder for `codec`.
    pub fn new(codec: Codec) -> Result<Self, CodecError> {
        Ok(match codec {
            Codec::Pcmu => Decoder::Pcmu(g711::G711Plc::default()),
            Codec::Pcma => Decoder::Pcma(g711::G711Plc::default()),
            Codec::Opus => Decoder::Opus(Box::new(opus::OpusDecoder::new()?)),
        })
    }

    /// Decodes one payload, appending 8 kHz samples to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let start = out.len();
        match self {
            Decoder::Pcmu(plc) => {
                g711::decode_ulaw(payload, out);
                plc.good_frame(&out[start..]);
            }
            Decoder::Pcma(plc) => {
                g711::decode_alaw(payload, out);
                plc.good_frame(&out[start..]);
            }
            Decoder::Opus(d) => d.decode(payload, out)?,
        }
        Ok(())
    }

    /// Produces a replacement for one lost 20 ms frame.
    pub fn conceal(&mut self, out: &mut Vec<i16>) -> Result<(), CodecError> {
        match self {
            Decoder::Pcmu(plc) | Decoder::Pcma(plc) => plc.conceal(out),
            Decoder::Opus(d) => d.conceal(out)?,
        }
        Ok(())
    }
}

/// Decodes one codec and re-encodes to another through 8 kHz linear audio.
#[derive(Debug)]
pub struct Transcoder {
    decoder: Decoder,
    encoder: Encoder,
    pcm: Vec<i16>,
    payload: Vec<u8>,
}

impl Transcoder {
    /// A transcoder from `from` to `to`.
    pub fn new(from: Codec, to: Codec) -> Result<Self, CodecError> {
        Ok(Self {
            decoder: Decoder::new(from)?,
            encoder: Encoder::new(to)?,
            pcm: Vec::with_capacity(960),
            payload: Vec::with_capacity(1500),
        })
    }

    /// Transcodes one payload; `None` input means the packet was lost (concealed).
    pub fn transcode(&mut self, payload: Option<&[u8]>) -> Result<&[u8], CodecError> {
        self.pcm.clear();
        match payload {
            Some(p) => self.decoder.decode(p, &mut self.pcm)?,
            None => self.decoder.conceal(&mut self.pcm)?,
        }
        self.payload.clear();
        for frame in self.pcm.chunks(g711::FRAME_SAMPLES) {
            self.encoder.encode(frame, &mut self.payload)?;
        }
        Ok(&self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{dominant_frequency, rms, sine, snr_db, speech_like};
    use proptest::prelude::*;

    fn round_trip(from: Codec, to: Codec, signal: &[i16]) -> Vec<i16> {
        // Signal → `from` → (transcode) → `to` → linear.
        let mut enc = Encoder::new(from).unwrap();
        let mut tc = Transcoder::new(from, to).unwrap();
        let mut dec = Decoder::new(to).unwrap();
        let mut out = Vec::new();
        let mut payload = Vec::new();
        for frame in signal.chunks(160) {
            payload.clear();
            enc.encode(frame, &mut payload).unwrap();
            let p = tc.transcode(Some(&payload)).unwrap().to_vec();
            dec.decode(&p, &mut out).unwrap();
        }
        out
    }

    /// Log-spectral distance in dB between two signals over 20 ms Hann-windowed frames
    /// (DFT at 100 Hz steps from 100 to 3400 Hz), after aligning by `delay`.
    fn spectral_distance_db(a: &[i16], b: &[i16], delay: usize) -> f64 {
        let n = 160;
        let bands: Vec<f64> = (1..=34).map(|k| k as f64 * 100.0).collect();
        let spectrum = |x: &[i16]| -> Vec<f64> {
            bands
                .iter()
                .map(|&f| {
                    let w = 2.0 * std::f64::consts::PI * f / 8000.0;
                    let (mut re, mut im) = (0.0, 0.0);
                    for (i, &s) in x.iter().enumerate() {
                        let hann =
                            0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos();
                        re += hann * s as f64 * (w * i as f64).cos();
                        im += hann * s as f64 * (w * i as f64).sin();
                    }
                    10.0 * (re * re + im * im + 1.0).log10()
                })
                .collect()
        };
        let mut total = 0.0;
        let mut frames = 0;
        for start in (800..a.len().saturating_sub(n + delay)).step_by(n * 5) {
            let sa = spectrum(&a[start..start + n]);
            let sb = spectrum(&b[start + delay..start + delay + n]);
            // Only bands within 30 dB of the frame's peak: the ones a listener hears.
            let peak = sa.iter().copied().fold(f64::MIN, f64::max);
            let (sum, count) = sa
                .iter()
                .zip(&sb)
                .filter(|(x, _)| **x > peak - 30.0)
                .fold((0.0, 0), |(s, c), (x, y)| (s + (x - y).powi(2), c + 1));
            total += (sum / count as f64).sqrt();
            frames += 1;
        }
        total / frames as f64
    }

    /// The decoder delay of an Opus round trip, found by cross-correlation.
    fn best_delay(reference: &[i16], got: &[i16]) -> usize {
        (0..200)
            .max_by(|&a, &b| {
                snr_db(&reference[..8000], &got[a..], 0).total_cmp(&snr_db(
                    &reference[..8000],
                    &got[b..],
                    0,
                ))
            })
            .unwrap_or(0)
    }

    #[test]
    fn transcoding_round_trips_keep_speech_recognisable() {
        let _serial = crate::test_signal::REALTIME.blocking_lock();
        let speech = speech_like(8000 * 2, 8000);
        let mut report = Vec::new();
        for (from, to) in [
            (Codec::Pcmu, Codec::Pcma),
            (Codec::Pcma, Codec::Pcmu),
            (Codec::Pcmu, Codec::Opus),
            (Codec::Opus, Codec::Pcmu),
            (Codec::Pcma, Codec::Opus),
            (Codec::Opus, Codec::Pcma),
        ] {
            let out = round_trip(from, to, &speech);
            assert_eq!(out.len(), speech.len());
            let delay = best_delay(&speech, &out);
            let snr = snr_db(&speech[..speech.len() - 200], &out[delay..], 0);
            let lsd = spectral_distance_db(&speech, &out, delay);
            report.push(format!(
                "{from:?}->{to:?}: delay {delay}, SNR {snr:.1} dB, LSD {lsd:.2} dB"
            ));
            if from != Codec::Opus && to != Codec::Opus {
                assert!(snr > 30.0 && lsd < 1.0, "{}", report.last().unwrap());
            } else {
                // Opus is a perceptual codec: waveform SNR is low by design, so the
                // spectral distance is the meaningful measure; a few dB means the same
                // formants and pitch come through.
                assert!(snr > 10.0 && lsd < 3.0, "{}", report.last().unwrap());
            }
        }
        // The measure does tell different sounds apart: another vowel pitch scores badly.
        let other: Vec<i16> = speech_like(8000 * 3, 8000)[4000..].to_vec();
        let unrelated = spectral_distance_db(&speech, &other, 0);
        report.push(format!("control (unrelated speech): LSD {unrelated:.2} dB"));
        assert!(unrelated > 5.0, "{}", report.last().unwrap());
        println!("{}", report.join("\n"));
    }

    #[test]
    fn opus_carries_a_tone_at_its_frequency_and_level() {
        let tone = sine(1000.0, 8000.0, 8000, 8000);
        let out = round_trip(Codec::Opus, Codec::Opus, &tone);
        let tail = &out[2000..];
        let f = dominant_frequency(tail, 8000);
        let level = rms(tail) / rms(&tone);
        println!("Opus 1 kHz tone: {f:.1} Hz, level ratio {level:.3}");
        assert!((f - 1000.0).abs() < 3.0);
        assert!((0.8..1.2).contains(&level));
    }

    #[test]
    fn lost_frames_are_concealed_by_each_codec() {
        for codec in Codec::ALL {
            let tone = sine(500.0, 8000.0, 1600, 8000);
            let mut enc = Encoder::new(codec).unwrap();
            let mut dec = Decoder::new(codec).unwrap();
            let mut out = Vec::new();
            for frame in tone.chunks(160) {
                let mut p = Vec::new();
                enc.encode(frame, &mut p).unwrap();
                dec.decode(&p, &mut out).unwrap();
            }
            let before = out.len();
            dec.conceal(&mut out).unwrap();
            assert_eq!(out.len() - before, 160, "{codec:?}");
            // Concealment continues the sound rather than dropping to silence at once.
            assert!(
                rms(&out[before..]) > 1000.0,
                "{codec:?}: {}",
                rms(&out[before..])
            );
        }
    }

    #[test]
    fn codec_metadata() {
        assert_eq!(Codec::Opus.rtp_samples_per_frame(), 960);
        assert_eq!(Codec::Pcma.rtp_samples_per_frame(), 160);
        assert_eq!(Codec::from_sdp_name("opus"), Some(Codec::Opus));
        assert_eq!(Codec::from_sdp_name("G729"), None);
        assert_eq!(Codec::Pcmu.default_payload_type().get(), 0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever a peer sends as Opus, decoding returns (Ok or Err) and never panics.
        #[test]
        fn opus_decoder_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut dec = Decoder::new(Codec::Opus).unwrap();
            let mut out = Vec::new();
            let _ = dec.decode(&bytes, &mut out);
            prop_assert!(out.len() <= 960);
            // And it still works afterwards.
            let _ = dec.conceal(&mut out);
        }
    }
}
