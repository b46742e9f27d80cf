//! Streaming 2× sample-rate conversion between the 8 kHz mixer and a 16 kHz codec (the
//! browser leg's wideband Opus), one 20 ms frame at a time with state carried across
//! frames so frame edges leave no clicks.
//!
//! Both directions use the same linear-phase low-pass FIR (Blackman-windowed sinc, cutoff
//! 3.8 kHz, 95 taps at 16 kHz): it removes the images when stuffing zeros (up) and the band
//! above 4 kHz that would alias when dropping every other sample (down). The delay is
//! 47 samples at 16 kHz (about 2.9 ms) each way.

const TAPS: usize = 95;
const CUTOFF_HZ: f64 = 3800.0;
const WIDE_RATE: f64 = 16000.0;

fn lowpass() -> [f32; TAPS] {
    let mut h = [0f32; TAPS];
    let m = (TAPS - 1) as f64;
    let fc = CUTOFF_HZ / WIDE_RATE;
    let mut sum = 0.0;
    let mut taps = [0f64; TAPS];
    for (n, t) in taps.iter_mut().enumerate() {
        let x = n as f64 - m / 2.0;
        let sinc = if x == 0.0 {
            2.0 * fc
        } else {
            (2.0 * std::f64::consts::PI * fc * x).sin() / (std::f64::consts::PI * x)
        };
        let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / m).cos()
            + 0.08 * (4.0 * std::f64::consts::PI * n as f64 / m).cos();
        *t = sinc * w;
        sum += *t;
    }
    for (o, t) in h.iter_mut().zip(taps) {
        *o = (t / sum) as f32;
    }
    h
}

/// A FIR over a sliding window of the 16 kHz signal.
#[derive(Debug, Clone)]
struct Fir {
    h: [f32; TAPS],
    /// The last `TAPS - 1` input samples, then the current block.
    window: Vec<f32>,
}

impl Fir {
    fn new() -> Self {
        Self {
            h: lowpass(),
            window: vec![0.0; TAPS - 1],
        }
    }

    /// Output at input positions `0, step, 2·step…` of `block`, times `gain`.
    fn run(&mut self, block: &[f32], step: usize, gain: f32, out: &mut Vec<i16>) {
        self.window.truncate(TAPS - 1);
        self.window.extend_from_slice(block);
        for i in (0..block.len()).step_by(step) {
            // window[i + TAPS - 1] is block[i]: convolve backwards from it.
            let acc: f32 = self.window[i..i + TAPS]
                .iter()
                .rev()
                .zip(self.h.iter())
                .map(|(x, h)| x * h)
                .sum();
            out.push((acc * gain).round().clamp(-32768.0, 32767.0) as i16);
        }
        let keep = self.window.len() - (TAPS - 1);
        self.window.drain(..keep);
    }
}

/// 8 kHz → 16 kHz, polyphase: of the zero-stuffed input only every other sample is
/// non-zero, so output `2k` uses the even taps and `2k + 1` the odd taps over the 8 kHz
/// history (half the multiplications of filtering the stuffed signal).
#[derive(Debug, Clone)]
pub struct Upsampler2x {
    even: Vec<f32>,
    odd: Vec<f32>,
    /// The last `PHASE - 1` input samples, then the current frame.
    window: Vec<f32>,
}

/// Taps per phase.
const PHASE: usize = TAPS.div_ceil(2);

impl Default for Upsampler2x {
    fn default() -> Self {
        let h = lowpass();
        // Zero stuffing halves the level: a gain of 2 restores it.
        let even: Vec<f32> = h.iter().step_by(2).map(|x| 2.0 * x).collect();
        let mut odd: Vec<f32> = h.iter().skip(1).step_by(2).map(|x| 2.0 * x).collect();
        odd.resize(PHASE, 0.0);
        Self {
            even,
            odd,
            window: vec![0.0; PHASE - 1],
        }
    }
}

impl Upsampler2x {
    /// Appends `2 × input.len()` samples at 16 kHz to `out`.
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.window.truncate(PHASE - 1);
        self.window.extend(input.iter().map(|&x| f32::from(x)));
        for k in 0..input.len() {
            // window[k + PHASE - 1] is input[k]; tap i multiplies input[k - i].
            let newest = k + PHASE - 1;
            let (mut a, mut b) = (0f32, 0f32);
            for i in 0..PHASE {
                let x = self.window[newest - i];
                a += self.even[i] * x;
                b += self.odd[i] * x;
            }
            for v in [a, b] {
                out.push(v.round().clamp(-32768.0, 32767.0) as i16);
            }
        }
        let keep = self.window.len() - (PHASE - 1);
        self.window.drain(..keep);
    }
}

/// 16 kHz → 8 kHz.
#[derive(Debug, Clone)]
pub struct Downsampler2x {
    fir: Fir,
    block: Vec<f32>,
}

impl Default for Downsampler2x {
    fn default() -> Self {
        Self {
            fir: Fir::new(),
            block: Vec::with_capacity(640),
        }
    }
}

impl Downsampler2x {
    /// Appends `input.len() / 2` samples at 8 kHz to `out` (`input.len()` should be even;
    /// a trailing odd sample is filtered but not output).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        self.block.clear();
        self.block.extend(input.iter().map(|&x| f32::from(x)));
        let block = std::mem::take(&mut self.block);
        let even = block.len() & !1;
        self.fir.run(&block[..even], 2, 1.0, out);
        self.block = block;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_signal::{dominant_frequency, rms, sine};

    #[test]
    fn speech_band_passes_both_ways_at_level_across_frames() {
        let _serial = crate::test_signal::REALTIME.blocking_lock();
        let tone = sine(1000.0, 8000.0, 8000, 8000);
        let mut up = Upsampler2x::default();
        let mut down = Downsampler2x::default();
        let (mut wide, mut back) = (Vec::new(), Vec::new());
        for f in tone.chunks(160) {
            let start = wide.len();
            up.process(f, &mut wide);
            down.process(&wide[start..], &mut back);
        }
        assert_eq!((wide.len(), back.len()), (16000, 8000));
        let w = &wide[2000..];
        assert!((dominant_frequency(w, 16000) - 1000.0).abs() < 2.0);
        assert!(
            (rms(w) / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.02,
            "{}",
            rms(w)
        );
        let b = &back[1000..];
        assert!((dominant_frequency(b, 8000) - 1000.0).abs() < 2.0);
        assert!(
            (rms(b) / (8000.0 / 2f64.sqrt()) - 1.0).abs() < 0.02,
            "{}",
            rms(b)
        );
    }

    #[test]
    fn above_4khz_is_removed_before_decimation() {
        // A 6 kHz tone at 16 kHz would alias to 2 kHz if merely decimated.
        let tone = sine(6000.0, 8000.0, 16000, 16000);
        let mut down = Downsampler2x::default();
        let mut out = Vec::new();
        for f in tone.chunks(320) {
            down.process(f, &mut out);
        }
        let level = rms(&out[1000..]);
        assert!(level < 8000.0 / 2f64.sqrt() * 0.01, "alias at rms {level}");
    }
}
