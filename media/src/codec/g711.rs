//! G.711 µ-law (PCMU, RTP payload type 0) and A-law (PCMA, payload type 8).
//!
//! Hand-written and table-driven: the decode tables (256 entries) and the encode tables
//! (indexed by the 14-bit / 13-bit linear value the law actually quantises) are computed at
//! compile time by `const fn`s that follow ITU-T G.711 §2–3 segment by segment, as in the
//! classic Sun Microsystems reference `g711.c`. No third-party codec code is used.

/// Samples in one 20 ms frame at 8 kHz (RFC 3551 §4.5.14: G.711 default ptime 20 ms).
pub const FRAME_SAMPLES: usize = 160;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 8159;

/// Segment end points of the µ-law compander in the 14-bit domain (G.711 Table 2a).
const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
/// Segment end points of the A-law compander in the 13-bit domain (G.711 Table 1a).
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn segment(val: i32, table: &[i32; 8]) -> usize {
    let mut i = 0;
    while i < 8 {
        if val <= table[i] {
            return i;
        }
        i += 1;
    }
    8
}

/// µ-law encode of a 14-bit signed value (the 16-bit sample shifted right by 2).
const fn ulaw_encode14(v: i32) -> u8 {
    let (mut mag, mask) = if v < 0 { (-v, 0x7F) } else { (v, 0xFF) };
    if mag > ULAW_CLIP {
        mag = ULAW_CLIP;
    }
    mag += ULAW_BIAS >> 2;
    let seg = segment(mag, &SEG_UEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let uval = ((seg as i32) << 4) | ((mag >> (seg + 1)) & 0xF);
    (uval ^ mask) as u8
}

const fn ulaw_decode_const(u: u8) -> i16 {
    let u = !u as i32;
    let mut t = ((u & 0x0F) << 3) + ULAW_BIAS;
    t <<= (u & 0x70) >> 4;
    (if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    }) as i16
}

/// A-law encode of a 13-bit signed value (the 16-bit sample shifted right by 3).
const fn alaw_encode13(v: i32) -> u8 {
    let (mag, mask) = if v >= 0 { (v, 0xD5) } else { (-v - 1, 0x55) };
    let seg = segment(mag, &SEG_AEND);
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut aval = (seg as i32) << 4;
    if seg < 2 {
        aval |= (mag >> 1) & 0xF;
    } else {
        aval |= (mag >> seg) & 0xF;
    }
    (aval ^ mask) as u8
}

const fn alaw_decode_const(a: u8) -> i16 {
    let a = (a ^ 0x55) as i32;
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn build_ulaw_encode() -> [u8; 16384] {
    let mut t = [0u8; 16384];
    let mut i = 0;
    while i < 16384 {
        // index i is the 14-bit value reinterpreted as unsigned; sign-extend it back.
        let v = ((i as i32) << 18) >> 18;
        t[i] = ulaw_encode14(v);
        i += 1;
    }
    t
}

const fn build_alaw_encode() -> [u8; 8192] {
    let mut t = [0u8; 8192];
    let mut i = 0;
    while i < 8192 {
        let v = ((i as i32) << 19) >> 19;
        t[i] = alaw_encode13(v);
        i += 1;
    }
    t
}

const fn build_decode(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_const(i as u8)
        } else {
            ulaw_decode_const(i as u8)
        };
        i += 1;
    }
    t
}

static ULAW_ENCODE: [u8; 16384] = build_ulaw_encode();
static ALAW_ENCODE: [u8; 8192] = build_alaw_encode();
static ULAW_DECODE: [i16; 256] = build_decode(false);
static ALAW_DECODE: [i16; 256] = build_decode(true);

/// Encodes one linear sample to µ-law.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[((sample >> 2) as u16 & 0x3FFF) as usize]
}

/// Decodes one µ-law byte to a linear sample.
#[inline]
pub fn ulaw_decode(byte: u8) -> i16 {
    ULAW_DECODE[byte as usize]
}

/// Encodes one linear sample to A-law.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[((sample >> 3) as u16 & 0x1FFF) as usize]
}

/// Decodes one A-law byte to a linear sample.
#[inline]
pub fn alaw_decode(byte: u8) -> i16 {
    ALAW_DECODE[byte as usize]
}

/// Encodes `pcm` to µ-law, appending to `out`.
pub fn encode_ulaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| ulaw_encode(s)));
}

/// Decodes µ-law `bytes`, appending to `out`.
pub fn decode_ulaw(bytes: &[u8], out: &mut Vec<i16>) {
    out.extend(bytes.iter().map(|&b| ulaw_decode(b)));
}

/// Encodes `pcm` to A-law, appending to `out`.
pub fn encode_alaw(pcm: &[i16], out: &mut Vec<u8>) {
    out.extend(pcm.iter().map(|&s| alaw_encode(s)));
}

/// Decodes A-law `bytes`, appending to `out`.
pub fn decode_alaw(bytes: &[u8], out: &mut Vec<i16>) {
    out.extend(bytes.iter().map(|&b| alaw_decode(b)));
}

/// Packet-loss concealment for G.711 (a simplified ITU-T G.711 Appendix I): the last good
/// frame is repeated with a falling gain, and silence follows after 60 ms so a long gap does
/// not buzz.
#[derive(Debug, Clone)]
pub struct G711Plc {
    last: [i16; FRAME_SAMPLES],
    lost_in_row: u32,
}

impl Default for G711Plc {
    fn default() -> Self {
        Self {
            last: [0; FRAME_SAMPLES],
            lost_in_row: 0,
        }
    }
}

impl G711Plc {
    /// Remembers a frame that was received and decoded.
    pub fn good_frame(&mut self, frame: &[i16]) {
        let n = frame.len().min(FRAME_SAMPLES);
        self.last[..n].copy_from_slice(&frame[..n]);
        self.last[n..].fill(0);
        self.lost_in_row = 0;
    }

    /// Produces a replacement for a lost frame.
    pub fn conceal(&mut self, out: &mut Vec<i16>) {
        self.lost_in_row += 1;
        // Gain per consecutive loss: 1/2, 1/4, 1/8 then silence; ramps within the frame so
        // the step between frames is not a click.
        let start_shift = self.lost_in_row;
        for (i, &s) in self.last.iter().enumerate() {
            if self.lost_in_row > 3 {
                out.push(0);
                continue;
            }
            let from = (s as i32) >> (start_shift - 1);
            let to = (s as i32) >> start_shift;
            let v = from + (to - from) * i as i32 / FRAME_SAMPLES as i32;
            out.push(v as i16);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_reference_points() {
        // G.711: µ-law 0xFF is +0, 0x7F is -0; 0x00 / 0x80 are the extremes ±32124.
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(ulaw_decode(0x80), 32124);
        assert_eq!(ulaw_decode(0x00), -32124);
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
    }

    #[test]
    fn alaw_reference_points() {
        // G.711: A-law code for +0 is 0xD5 (even bits inverted), -0 is 0x55.
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
        assert_eq!(alaw_decode(0xAA), 32256);
        assert_eq!(alaw_decode(0x2A), -32256);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }

    #[test]
    fn every_code_decodes_and_reencodes_to_itself() {
        for b in 0..=255u8 {
            let u = ulaw_decode(b);
            // 0x7F (-0) re-encodes as +0 (0xFF); otherwise the code is a fixed point.
            if b != 0x7F {
                assert_eq!(ulaw_encode(u), b, "ulaw code {b:#x} -> {u}");
            }
            let a = alaw_decode(b);
            assert_eq!(alaw_encode(a), b, "alaw code {b:#x} -> {a}");
        }
    }

    #[test]
    fn quantisation_error_is_within_half_a_step_of_the_segment() {
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            for (enc, dec, law) in [
                (
                    ulaw_encode as fn(i16) -> u8,
                    ulaw_decode as fn(u8) -> i16,
                    "u",
                ),
                (alaw_encode, alaw_decode, "a"),
            ] {
                let r = dec(enc(s)) as i32;
                let err = (r - s as i32).abs();
                // The largest step in either law is 1024 (µ) / 1024 (A) at the top segment;
                // relative error stays under ~6.5 % plus the small-signal floor.
                let bound = (s as i32).abs() / 15 + 40;
                assert!(err <= bound, "{law}-law {s} -> {r} (err {err} > {bound})");
            }
        }
    }

    #[test]
    fn encode_is_monotonic_in_the_decoded_domain() {
        let mut prev_u = i16::MIN;
        let mut prev_a = i16::MIN;
        for s in i16::MIN..=i16::MAX {
            let u = ulaw_decode(ulaw_encode(s));
            let a = alaw_decode(alaw_encode(s));
            assert!(u >= prev_u && a >= prev_a, "not monotonic at {s}");
            prev_u = u;
            prev_a = a;
        }
    }

    #[test]
    fn speech_through_each_law_and_across_laws_keeps_toll_quality_snr() {
        use crate::test_signal::{snr_db, speech_like};
        let speech = speech_like(16000, 8000);
        let through = |f: &dyn Fn(i16) -> i16| speech.iter().map(|&s| f(s)).collect::<Vec<_>>();
        let mu = snr_db(&speech, &through(&|s| ulaw_decode(ulaw_encode(s))), 0);
        let a = snr_db(&speech, &through(&|s| alaw_decode(alaw_encode(s))), 0);
        // µ-law → A-law transcoding (a PCMU phone bridged to a PCMA trunk).
        let mu_a = snr_db(
            &speech,
            &through(&|s| alaw_decode(alaw_encode(ulaw_decode(ulaw_encode(s))))),
            0,
        );
        println!("G.711 speech SNR: µ-law {mu:.1} dB, A-law {a:.1} dB, µ→A {mu_a:.1} dB");
        // G.711 gives about 38 dB SQNR on speech-level signals.
        assert!(mu > 33.0 && a > 33.0 && mu_a > 30.0);
    }

    #[test]
    fn plc_fades_to_silence() {
        let mut plc = G711Plc::default();
        plc.good_frame(&[8000; FRAME_SAMPLES]);
        let mut out = Vec::new();
        for _ in 0..5 {
            out.clear();
            plc.conceal(&mut out);
        }
        assert!(out.iter().all(|&s| s == 0));
        let mut plc = G711Plc::default();
        plc.good_frame(&[8000; FRAME_SAMPLES]);
        out.clear();
        plc.conceal(&mut out);
        assert_eq!(out[0], 8000);
        assert!(out[FRAME_SAMPLES - 1] < 4100 && out[FRAME_SAMPLES - 1] > 3900);
    }
}
