//! In-band DTMF detection with the Goertzel algorithm, for phones that send key tones in the
//! audio instead of RFC 4733 events.
//!
//! The 8 kHz signal is cut into blocks of 205 samples (25.6 ms, the classic choice giving
//! ~39 Hz resolution); each block's power at the eight DTMF frequencies (ITU-T Q.23) is
//! compared with the block energy. A key counts as pressed after two consecutive blocks agree
//! (about 40 ms, Q.24 asks for tones of 40 ms and more) and as released after two blocks
//! without it, so each press is reported once.

use crate::codec::telephone_event::Digit;

const BLOCK: usize = 205;
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const COLS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// Keypad layout: row × column → RFC 4733 code.
const KEYS: [[u8; 4]; 4] = [[1, 2, 3, 12], [4, 5, 6, 13], [7, 8, 9, 14], [10, 0, 11, 15]];

/// Minimum mean power per sample (about -35 dBm0 per tone).
const MIN_POWER: f32 = 400.0 * 400.0 / 2.0 / 2.0;
/// Share of the block energy the two tones must carry.
const MIN_TONE_SHARE: f32 = 0.7;
/// Normal twist (column weaker than row) at most 8 dB, reverse twist at most 4 dB (Q.24).
const MAX_NORMAL_TWIST: f32 = 6.31; // 8 dB in power
const MAX_REVERSE_TWIST: f32 = 2.51; // 4 dB in power
/// The strongest tone of a group must beat the next one of the group by 10 dB.
const MIN_GROUP_RATIO: f32 = 10.0;

/// Streaming in-band DTMF detector for one 8 kHz signal.
#[derive(Debug, Clone)]
pub struct ToneDetector {
    coeffs: [f32; 8],
    block: Vec<i16>,
    candidate: Option<u8>,
    candidate_blocks: u32,
    pressed: Option<u8>,
    silent_blocks: u32,
}

impl Default for ToneDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl ToneDetector {
    /// A detector for 8 kHz audio.
    pub fn new() -> Self {
        let mut coeffs = [0.0; 8];
        for (c, f) in coeffs.iter_mut().zip(ROWS.iter().chain(&COLS)) {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / 8000.0).cos();
        }
        Self {
            coeffs,
            block: Vec::with_capacity(BLOCK),
            candidate: None,
            candidate_blocks: 0,
            pressed: None,
            silent_blocks: 0,
        }
    }

    /// Feeds audio; returns the keys whose press completed in it, in order.
    pub fn feed(&mut self, samples: &[i16]) -> Vec<Digit> {
        let mut out = Vec::new();
        for &s in samples {
            self.block.push(s);
            if self.block.len() == BLOCK {
                let hit = self.analyse();
                self.block.clear();
                if let Some(d) = self.debounce(hit) {
                    out.extend(Digit::from_code(d));
                }
            }
        }
        out
    }

    fn analyse(&self) -> Option<u8> {
        let mut energy = 0.0f32;
        let mut power = [0.0f32; 8];
        for (p, &c) in power.iter_mut().zip(&self.coeffs) {
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for &x in &self.block {
                let s0 = x as f32 + c * s1 - s2;
                s2 = s1;
                s1 = s0;
            }
            *p = s1 * s1 + s2 * s2 - c * s1 * s2;
        }
        for &x in &self.block {
            energy += (x as f32) * (x as f32);
        }
        if energy / (BLOCK as f32) < MIN_POWER {
            return None;
        }
        let best = |p: &[f32]| {
            let mut idx = 0;
            for i in 1..4 {
                if p[i] > p[idx] {
                    idx = i;
                }
            }
            let second = (0..4)
                .filter(|&i| i != idx)
                .map(|i| p[i])
                .fold(0.0, f32::max);
            (idx, p[idx], second)
        };
        let (r, rp, r2) = best(&power[..4]);
        let (c, cp, c2) = best(&power[4..]);
        // A sine of amplitude A over N samples gives Goertzel power (N·A/2)² and energy N·A²/2,
        // so power / (energy · N/2) is each tone's share of the block energy.
        let share = (rp + cp) / (energy * BLOCK as f32 / 2.0);
        if share < MIN_TONE_SHARE {
            return None;
        }
        if cp > rp * MAX_REVERSE_TWIST || rp > cp * MAX_NORMAL_TWIST {
            return None;
        }
        if rp < r2 * MIN_GROUP_RATIO || cp < c2 * MIN_GROUP_RATIO {
            return None;
        }
        Some(KEYS[r][c])
    }

    fn debounce(&mut self, hit: Option<u8>) -> Option<u8> {
        if hit.is_some() && hit == self.candidate {
            self.candidate_blocks += 1;
        } else {
            self.candidate = hit;
            self.candidate_blocks = 1;
        }
        match hit {
            Some(d) if self.pressed != Some(d) && self.candidate_blocks >= 2 => {
                self.pressed = Some(d);
                self.silent_blocks = 0;
                Some(d)
            }
            Some(d) if self.pressed == Some(d) => {
                self.silent_blocks = 0;
                None
            }
            _ => {
                self.silent_blocks += 1;
                if self.silent_blocks >= 2 {
                    self.pressed = None;
                }
                None
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic pseudo-random noise (xorshift), amplitude ±`amp`.
    pub(crate) fn noise(n: usize, amp: i32, seed: &mut u32) -> Vec<i16> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 17;
                *seed ^= *seed << 5;
                ((*seed % (2 * amp as u32 + 1)) as i32 - amp) as i16
            })
            .collect()
    }

    fn tone_pair(digit: char, ms: usize, row_amp: f32, col_amp: f32) -> Vec<i16> {
        let code = Digit::from_char(digit).unwrap().code();
        let (r, c) = (0..16)
            .map(|i| (i / 4, i % 4))
            .find(|&(r, c)| KEYS[r][c] == code)
            .unwrap();
        (0..ms * 8)
            .map(|i| {
                let t = i as f32 / 8000.0;
                let v = row_amp * (2.0 * std::f32::consts::PI * ROWS[r] * t).sin()
                    + col_amp * (2.0 * std::f32::consts::PI * COLS[c] * t).sin();
                v as i16
            })
            .collect()
    }

    #[test]
    fn every_key_is_detected_once_through_g711_and_noise() {
        let keys = "123A456B789C*0#D";
        let mut seed = 7;
        let mut signal = Vec::new();
        for k in keys.chars() {
            signal.extend(tone_pair(k, 70, 6000.0, 6000.0));
            signal.extend(noise(8 * 60, 200, &mut seed));
        }
        // Add noise throughout and pass through µ-law as a phone would.
        let noisy: Vec<i16> = signal
            .iter()
            .zip(noise(signal.len(), 300, &mut seed))
            .map(|(&s, n)| {
                crate::codec::g711::ulaw_decode(crate::codec::g711::ulaw_encode(
                    s.saturating_add(n),
                ))
            })
            .collect();
        let mut det = ToneDetector::new();
        // Fed in 20 ms frames as the engine does.
        let got: String = noisy
            .chunks(160)
            .flat_map(|f| det.feed(f))
            .map(|d| d.to_char())
            .collect();
        assert_eq!(got, keys);
    }

    #[test]
    fn a_long_press_is_one_digit() {
        let mut det = ToneDetector::new();
        assert_eq!(det.feed(&tone_pair('9', 500, 5000.0, 5000.0)).len(), 1);
    }

    #[test]
    fn short_blips_single_tones_speech_and_twist_are_rejected() {
        let mut det = ToneDetector::new();
        // 30 ms is shorter than two whole blocks.
        assert!(det.feed(&tone_pair('5', 30, 6000.0, 6000.0)).is_empty());
        det.feed(&[0; 1000]);
        // 10 dB twist.
        assert!(det.feed(&tone_pair('5', 200, 9000.0, 2850.0)).is_empty());
        // A 1 kHz test tone.
        let one_k: Vec<i16> = (0..8000)
            .map(|i| {
                (8000.0 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin()) as i16
            })
            .collect();
        assert!(det.feed(&one_k).is_empty());
        // A vowel-like harmonic series at 140 Hz (its harmonics pass near DTMF tones).
        let vowel: Vec<i16> = (0..16000)
            .map(|i| {
                let t = i as f32 / 8000.0;
                (1..25)
                    .map(|h| {
                        3000.0 / h as f32
                            * (2.0 * std::f32::consts::PI * 140.0 * h as f32 * t).sin()
                    })
                    .sum::<f32>() as i16
            })
            .collect();
        assert!(det.feed(&vowel).is_empty());
        // Quiet tones under the level floor.
        assert!(det.feed(&tone_pair('1', 200, 150.0, 150.0)).is_empty());
    }
}
