//! Test signals and measurements shared by the unit tests.

/// A sine of `freq` Hz and peak `amp`, `n` samples at `rate` Hz.
pub fn sine(freq: f64, amp: f64, n: usize, rate: u32) -> Vec<i16> {
    (0..n)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
        .collect()
}

/// A speech-like test signal: a 120–180 Hz gliding fundamental with decaying harmonics,
/// shaped by two formant-like resonances and a 4 Hz syllable envelope.
pub fn speech_like(n: usize, rate: u32) -> Vec<i16> {
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            let t = i as f64 / rate as f64;
            let f0 = 150.0 + 30.0 * (2.0 * std::f64::consts::PI * 0.7 * t).sin();
            phase += 2.0 * std::f64::consts::PI * f0 / rate as f64;
            let mut v = 0.0;
            for h in 1..=(3400.0 / 180.0) as usize {
                let f = f0 * h as f64;
                // Formants near 700 Hz and 1200 Hz.
                let g = 1.0 / (1.0 + ((f - 700.0) / 200.0).powi(2))
                    + 0.6 / (1.0 + ((f - 1200.0) / 250.0).powi(2))
                    + 0.05;
                v += g * (phase * h as f64).sin();
            }
            let env = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            (v * env * 5000.0).clamp(-32000.0, 32000.0) as i16
        })
        .collect()
}

/// Root-mean-square level.
pub fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Frequency of the strongest spectral peak, searched from 50 Hz to rate/2 in 1 Hz steps and
/// refined to 0.1 Hz (single-bin DFT).
pub fn dominant_frequency(x: &[i16], rate: u32) -> f64 {
    let power = |f: f64| {
        let w = 2.0 * std::f64::consts::PI * f / rate as f64;
        let (mut re, mut im) = (0.0, 0.0);
        for (i, &s) in x.iter().enumerate() {
            re += s as f64 * (w * i as f64).cos();
            im += s as f64 * (w * i as f64).sin();
        }
        re * re + im * im
    };
    let step = |from: f64, to: f64, by: f64| {
        let mut best = (from, 0.0);
        let mut f = from;
        while f <= to {
            let p = power(f);
            if p > best.1 {
                best = (f, p);
            }
            f += by;
        }
        best.0
    };
    let coarse = step(50.0, rate as f64 / 2.0 - 10.0, 5.0);
    let fine = step(coarse - 5.0, coarse + 5.0, 0.5);
    step(fine - 0.5, fine + 0.5, 0.1)
}

/// Signal-to-noise ratio in dB of `got` against `reference`, after finding the delay (0 to
/// `max_delay` samples) and gain that align them best.
pub fn snr_db(reference: &[i16], got: &[i16], max_delay: usize) -> f64 {
    let mut best = f64::NEG_INFINITY;
    for d in 0..=max_delay {
        let n = reference.len().min(got.len().saturating_sub(d));
        if n == 0 {
            break;
        }
        let r = &reference[..n];
        let g = &got[d..d + n];
        let rg: f64 = r.iter().zip(g).map(|(&a, &b)| a as f64 * b as f64).sum();
        let gg: f64 = g.iter().map(|&b| (b as f64).powi(2)).sum();
        let gain = if gg > 0.0 { rg / gg } else { 1.0 };
        let sig: f64 = r.iter().map(|&a| (a as f64).powi(2)).sum();
        let noise: f64 = r
            .iter()
            .zip(g)
            .map(|(&a, &b)| (a as f64 - gain * b as f64).powi(2))
            .sum();
        let snr = 10.0 * (sig / noise.max(1e-9)).log10();
        best = best.max(snr);
    }
    best
}

/// Amplitude of the component at `freq` (single-bin DFT, Hann window, amplitude-corrected).
pub fn tone_amplitude(x: &[i16], freq: f64, rate: u32) -> f64 {
    let n = x.len() as f64;
    let w = 2.0 * std::f64::consts::PI * freq / rate as f64;
    let (mut re, mut im) = (0.0, 0.0);
    for (i, &s) in x.iter().enumerate() {
        let hann = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n).cos();
        re += hann * s as f64 * (w * i as f64).cos();
        im += hann * s as f64 * (w * i as f64).sin();
    }
    // The Hann window's coherent gain is 1/2.
    4.0 * (re * re + im * im).sqrt() / n
}

/// Tests that measure audio in real time (engine tests over UDP) take this exclusively, and
/// the heaviest CPU-bound tests take it too (`blocking_lock` outside a runtime): with two
/// cores and debug-built Opus, a busy neighbour makes the engine tick late, and late frames
/// are concealed, which the level checks would see.
pub static REALTIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
