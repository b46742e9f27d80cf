//! Prompts and hold music: WAV files of any common format loaded once, resampled once (to
//! 8 kHz for the mixer and G.711/Opus legs, and 48 kHz for wideband use), cached pre-encoded
//! per codec, and played by a [`PromptPlayer`] one 20 ms frame per engine tick.

use crate::codec::g711::FRAME_SAMPLES;
use crate::codec::{Codec, CodecError, Encoder};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors loading prompts (a bad file is the operator's fault, reported with its path).
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// The file is not a readable WAV.
    #[error("prompt {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: hound::Error,
    },
    /// The WAV has no audio or an unusable format.
    #[error("prompt {path}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: &'static str,
    },
    /// Pre-encoding failed.
    #[error("prompt {path}: {source}")]
    Codec {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: CodecError,
    },
}

/// A loaded prompt: linear audio at 8 kHz (and 48 kHz, made on first use) and 20 ms frames
/// pre-encoded per codec.
#[derive(Debug)]
pub struct Prompt {
    pcm_8k: Vec<i16>,
    /// The file's audio (mono) and its rate, for the 48 kHz version.
    source: (Vec<f32>, u32),
    /// Resampled when first asked for: nothing plays it at start-up, and resampling every
    /// prompt to 48 kHz cost the server seconds at each start.
    pcm_48k: std::sync::OnceLock<Vec<i16>>,
    encoded: HashMap<Codec, Vec<Vec<u8>>>,
}

fn to_i16(x: Vec<f32>) -> Vec<i16> {
    x.into_iter()
        .map(|v| (v * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

impl Prompt {
    /// Loads a WAV file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PromptError> {
        let path = path.as_ref();
        let reader = hound::WavReader::open(path).map_err(|source| PromptError::Wav {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_reader(reader, path)
    }

    /// Loads WAV data from any reader (`name` is used in errors).
    pub fn from_wav<R: Read>(data: R, name: &Path) -> Result<Self, PromptError> {
        let reader = hound::WavReader::new(data).map_err(|source| PromptError::Wav {
            path: name.to_path_buf(),
            source,
        })?;
        Self::from_reader(reader, name)
    }

    fn from_reader<R: Read>(mut r: hound::WavReader<R>, path: &Path) -> Result<Self, PromptError> {
        let spec = r.spec();
        let wav_err = |source| PromptError::Wav {
            path: path.to_path_buf(),
            source,
        };
        let unsupported = |reason| PromptError::Unsupported {
            path: path.to_path_buf(),
            reason,
        };
        if spec.channels == 0 || spec.sample_rate < 4000 || spec.sample_rate > 384_000 {
            return Err(unsupported("channel count or sample rate out of range"));
        }
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => r
                .samples::<f32>()
                .collect::<Result<_, _>>()
                .map_err(wav_err)?,
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                r.samples::<i32>()
                    .map(|s| s.map(|v| v as f32 * scale))
                    .collect::<Result<_, _>>()
                    .map_err(wav_err)?
            }
        };
        let ch = spec.channels as usize;
        let mono: Vec<f32> = interleaved
            .chunks_exact(ch)
            .map(|c| c.iter().sum::<f32>() / ch as f32)
            .collect();
        if mono.is_empty() {
            return Err(unsupported("no audio"));
        }
        let pcm_8k = to_i16(resample(&mono, spec.sample_rate, 8000));
        let mut encoded = HashMap::new();
        for codec in Codec::ALL {
            let codec_err = |source| PromptError::Codec {
                path: path.to_path_buf(),
                source,
            };
            let mut enc = Encoder::new(codec).map_err(codec_err)?;
            let mut frames = Vec::new();
            for f in frames_of(&pcm_8k) {
                let mut p = Vec::new();
                enc.encode(&f, &mut p).map_err(codec_err)?;
                frames.push(p);
            }
            encoded.insert(codec, frames);
        }
        Ok(Self {
            pcm_8k,
            source: (mono, spec.sample_rate),
            pcm_48k: std::sync::OnceLock::new(),
            encoded,
        })
    }

    /// The audio at 8 kHz.
    pub fn pcm_8k(&self) -> &[i16] {
        &self.pcm_8k
    }

    /// The audio at 48 kHz.
    pub fn pcm_48k(&self) -> &[i16] {
        self.pcm_48k
            .get_or_init(|| to_i16(resample(&self.source.0, self.source.1, 48000)))
    }

    /// Number of 20 ms frames (the last one zero-padded).
    pub fn frames(&self) -> usize {
        self.pcm_8k.len().div_ceil(FRAME_SAMPLES)
    }

    /// Frame `i` at 8 kHz, zero-padded to 160 samples.
    pub fn frame(&self, i: usize) -> [i16; FRAME_SAMPLES] {
        let mut f = [0; FRAME_SAMPLES];
        let start = (i * FRAME_SAMPLES).min(self.pcm_8k.len());
        let end = (start + FRAME_SAMPLES).min(self.pcm_8k.len());
        f[..end - start].copy_from_slice(&self.pcm_8k[start..end]);
        f
    }

    /// Frame `i` pre-encoded for `codec`.
    pub fn encoded_frame(&self, codec: Codec, i: usize) -> Option<&[u8]> {
        self.encoded.get(&codec)?.get(i).map(|v| v.as_slice())
    }
}

fn frames_of(pcm: &[i16]) -> impl Iterator<Item = [i16; FRAME_SAMPLES]> + '_ {
    pcm.chunks(FRAME_SAMPLES).map(|c| {
        let mut f = [0; FRAME_SAMPLES];
        f[..c.len()].copy_from_slice(c);
        f
    })
}

/// Prompts by name, loaded once and shared by every call.
#[derive(Debug, Default)]
pub struct PromptCache {
    prompts: HashMap<String, Arc<Prompt>>,
}

impl PromptCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads (once) and returns the prompt stored at `path`.
    pub fn get_or_load(&mut self, path: impl AsRef<Path>) -> Result<Arc<Prompt>, PromptError> {
        let key = path.as_ref().to_string_lossy().into_owned();
        if let Some(p) = self.prompts.get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(Prompt::load(path)?);
        self.prompts.insert(key, p.clone());
        Ok(p)
    }

    /// Number of prompts loaded.
    pub fn len(&self) -> usize {
        self.prompts.len()
    }

    /// Whether nothing is loaded.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }
}

/// Band-limited resampling with a Blackman-windowed sinc (16 zero crossings each side).
/// The cut-off sits at 95 % of the lower Nyquist rate so downsampling does not alias.
pub fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() {
        return input.to_vec();
    }
    let ratio = to as f64 / from as f64;
    let cutoff = 0.95 * ratio.min(1.0);
    const ZEROS: f64 = 16.0;
    let half = ZEROS / cutoff;
    let out_len = ((input.len() as f64) * ratio).round() as usize;
    let sinc = |x: f64| {
        if x.abs() < 1e-9 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        }
    };
    (0..out_len)
        .map(|n| {
            let t = n as f64 / ratio;
            let lo = (t - half).ceil().max(0.0) as usize;
            let hi = ((t + half).floor() as usize).min(input.len() - 1);
            let mut acc = 0.0;
            for (k, &x) in input.iter().enumerate().take(hi + 1).skip(lo) {
                let d = t - k as f64;
                let w = d / half; // -1..1
                let blackman = 0.42
                    + 0.5 * (std::f64::consts::PI * w).cos()
                    + 0.08 * (2.0 * std::f64::consts::PI * w).cos();
                acc += x as f64 * cutoff * sinc(cutoff * d) * blackman;
            }
            acc as f32
        })
        .collect()
}

/// How to play a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlayOptions {
    /// Start again at the end (hold music).
    pub looped: bool,
    /// A DTMF key stops the prompt (barge-in, so callers can type ahead in an IVR).
    pub interruptible: bool,
    /// The caller's name for this play, echoed in the engine's `PromptEnded` event: a prompt
    /// that ends on the engine's clock while the caller is already starting the next one must
    /// not be taken for the end of the next one.
    pub id: u64,
}

/// Why a player stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayEnd {
    /// The prompt played to its end.
    Finished,
    /// A DTMF key interrupted it.
    Interrupted,
}

/// Plays one prompt, one 20 ms frame per call: the engine's clock is the only pacing, so
/// frames go out exactly every 20 ms without drift.
#[derive(Debug)]
pub struct PromptPlayer {
    prompt: Arc<Prompt>,
    options: PlayOptions,
    position: usize,
    ended: Option<PlayEnd>,
}

impl PromptPlayer {
    /// A player at the start of `prompt`.
    pub fn new(prompt: Arc<Prompt>, options: PlayOptions) -> Self {
        Self {
            prompt,
            options,
            position: 0,
            ended: None,
        }
    }

    /// The play's id (see [`PlayOptions::id`]).
    pub fn id(&self) -> u64 {
        self.options.id
    }

    /// Index of the next frame to play.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Why it stopped, once stopped.
    pub fn ended(&self) -> Option<PlayEnd> {
        self.ended
    }

    fn advance(&mut self) -> Option<usize> {
        if self.ended.is_some() {
            return None;
        }
        if self.position >= self.prompt.frames() {
            if self.options.looped && self.prompt.frames() > 0 {
                self.position = 0;
            } else {
                self.ended = Some(PlayEnd::Finished);
                return None;
            }
        }
        let i = self.position;
        self.position += 1;
        Some(i)
    }

    /// The next frame as 8 kHz audio (for the mixer), or `None` once ended.
    pub fn next_frame(&mut self) -> Option<[i16; FRAME_SAMPLES]> {
        let i = self.advance()?;
        Some(self.prompt.frame(i))
    }

    /// The next frame pre-encoded for `codec` (for a leg that hears only the prompt).
    pub fn next_encoded(&mut self, codec: Codec) -> Option<&[u8]> {
        let i = self.advance()?;
        self.prompt.encoded_frame(codec, i)
    }

    /// A DTMF key arrived: stops the prompt if it is interruptible. Returns whether it did.
    pub fn on_dtmf(&mut self) -> bool {
        if self.options.interruptible && self.ended.is_none() {
            self.ended = Some(PlayEnd::Interrupted);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Decoder;
    use crate::test_signal::{dominant_frequency, rms};

    fn write_wav(path: &Path, spec: hound::WavSpec, seconds: f64, freq: f64, amp: f64) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        let n = (spec.sample_rate as f64 * seconds) as usize;
        for i in 0..n {
            let v = amp
                * (2.0 * std::f64::consts::PI * freq * i as f64 / spec.sample_rate as f64).sin();
            for _ in 0..spec.channels {
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => w.write_sample(v as f32).unwrap(),
                    (_, 8) => w.write_sample((v * 127.0) as i8).unwrap(),
                    (_, 16) => w.write_sample((v * 32767.0) as i16).unwrap(),
                    (_, b) => w
                        .write_sample((v * ((1i64 << (b - 1)) - 1) as f64) as i32)
                        .unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }

    fn spec(rate: u32, channels: u16, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    #[test]
    fn common_formats_load_at_the_right_pitch_length_and_level() {
        let _serial = crate::test_signal::REALTIME.blocking_lock();
        let dir = tempfile::tempdir().unwrap();
        for (i, s) in [
            spec(8000, 1, 16, false),
            spec(16000, 1, 16, false),
            spec(22050, 1, 8, false),
            spec(44100, 2, 16, false),
            spec(48000, 2, 24, false),
            spec(32000, 1, 32, true),
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.path().join(format!("p{i}.wav"));
            write_wav(&path, s, 0.5, 1000.0, 0.5);
            let p = Prompt::load(&path).unwrap();
            assert_eq!(p.pcm_8k().len(), 4000, "{s:?}");
            assert_eq!(p.pcm_48k().len(), 24000, "{s:?}");
            assert_eq!(p.frames(), 25);
            let mid = &p.pcm_8k()[400..3600];
            let f = dominant_frequency(mid, 8000);
            let level = rms(mid) / (0.5 * 32767.0 / 2f64.sqrt());
            assert!((f - 1000.0).abs() < 2.0, "{s:?}: {f}");
            assert!((level - 1.0).abs() < 0.03, "{s:?}: level {level}");
        }
    }

    #[test]
    fn downsampling_removes_what_8k_cannot_carry() {
        // A 6 kHz tone at 44.1 kHz would alias to 2 kHz at 8 kHz without the filter.
        let x: Vec<f32> = (0..44100)
            .map(|i| (2.0 * std::f32::consts::PI * 6000.0 * i as f32 / 44100.0).sin() * 0.5)
            .collect();
        let y = resample(&x, 44100, 8000);
        let energy: f32 = y[100..7900].iter().map(|v| v * v).sum::<f32>() / 7800.0;
        assert!(energy.sqrt() < 0.005, "alias rms {}", energy.sqrt());
    }

    #[test]
    fn broken_files_are_errors() {
        assert!(Prompt::from_wav(&b"RIFF....WAVEjunk"[..], Path::new("junk.wav")).is_err());
        assert!(Prompt::load("/no/such/prompt.wav").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.wav");
        hound::WavWriter::create(&path, spec(8000, 1, 16, false))
            .unwrap()
            .finalize()
            .unwrap();
        assert!(matches!(
            Prompt::load(&path),
            Err(PromptError::Unsupported { .. })
        ));
    }

    fn tone_prompt(frames: usize) -> Arc<Prompt> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        write_wav(
            &path,
            spec(8000, 1, 16, false),
            frames as f64 * 0.02,
            400.0,
            0.3,
        );
        Arc::new(Prompt::load(&path).unwrap())
    }

    #[test]
    fn player_paces_one_frame_per_tick_loops_and_stops_on_dtmf() {
        let prompt = tone_prompt(10);
        let mut once = PromptPlayer::new(prompt.clone(), PlayOptions::default());
        let mut n = 0;
        while let Some(f) = once.next_frame() {
            assert_eq!(f, prompt.frame(n));
            n += 1;
        }
        assert_eq!((n, once.ended()), (10, Some(PlayEnd::Finished)));
        assert!(!once.on_dtmf());

        let mut moh = PromptPlayer::new(
            prompt.clone(),
            PlayOptions {
                looped: true,
                interruptible: false,
                id: 1,
            },
        );
        for i in 0..35 {
            assert_eq!(moh.next_frame().unwrap(), prompt.frame(i % 10));
        }
        assert!(!moh.on_dtmf(), "hold music ignores keys");

        let mut ivr = PromptPlayer::new(
            prompt.clone(),
            PlayOptions {
                looped: false,
                interruptible: true,
                id: 2,
            },
        );
        assert_eq!((moh.id(), ivr.id()), (1, 2));
        ivr.next_frame();
        assert!(ivr.on_dtmf());
        assert_eq!(ivr.next_frame(), None);
        assert_eq!(ivr.ended(), Some(PlayEnd::Interrupted));
    }

    #[test]
    fn pre_encoded_frames_decode_to_the_prompt() {
        let prompt = tone_prompt(20);
        for codec in Codec::ALL {
            let mut player = PromptPlayer::new(prompt.clone(), PlayOptions::default());
            let mut dec = Decoder::new(codec).unwrap();
            let mut out = Vec::new();
            while let Some(p) = player.next_encoded(codec) {
                let p = p.to_vec();
                dec.decode(&p, &mut out).unwrap();
            }
            assert_eq!(out.len(), 20 * FRAME_SAMPLES, "{codec:?}");
            let f = dominant_frequency(&out[800..], 8000);
            assert!((f - 400.0).abs() < 3.0, "{codec:?}: {f}");
        }
    }

    #[test]
    fn cache_loads_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("welcome.wav");
        write_wav(&path, spec(16000, 1, 16, false), 0.1, 300.0, 0.2);
        let mut cache = PromptCache::new();
        let a = cache.get_or_load(&path).unwrap();
        let b = cache.get_or_load(&path).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.len(), 1);
    }
}
