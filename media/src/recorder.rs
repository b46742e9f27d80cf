//! Call recording: a stereo 16-bit WAV (left = customer, right = agent / our side) written by
//! a dedicated thread fed through a bounded channel, so the 20 ms audio path never waits on
//! the disk (ARCHITECTURE "the hot path never waits on disk").
//!
//! Crash safety: the WAV header's lengths are rewritten every `flush_every` of audio and at
//! close, so if the process dies the file is a valid WAV holding everything up to the last
//! flush. Pause/resume writes silence (the timeline stays true to the call) and returns a
//! [`Marker`] for the call record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

/// Recorder settings.
#[derive(Debug, Clone)]
pub struct RecorderConfig {
    /// Sample rate of the frames given to [`Recorder::write`].
    pub sample_rate: u32,
    /// Header fix-up period, in audio time.
    pub flush_every: Duration,
    /// Frames queued for the writer thread before frames are counted as overrun.
    pub queue_frames: usize,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        Self {
            sample_rate: 8000,
            flush_every: Duration::from_secs(1),
            queue_frames: 500,
        }
    }
}

/// Recording errors; all are our side's (disk, thread), never the network's.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// Creating or writing the WAV file failed.
    #[error("recording file {path}: {source}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: hound::Error,
    },
    /// The writer thread is gone (it failed earlier, or panicked).
    #[error("recording writer thread stopped")]
    WriterGone,
    /// Customer and agent frames differ in length.
    #[error("channel frames differ in length ({0} vs {1})")]
    FrameMismatch(usize, usize),
}

/// A point in the recording, as media time from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// Offset from the start of the file.
    pub at: Duration,
    /// Whether recording is paused from here on.
    pub paused: bool,
}

/// What a finished recording holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    /// The file.
    pub path: PathBuf,
    /// Audio length.
    pub duration: Duration,
    /// Frames that could not be queued and were written as silence instead.
    pub overrun_samples: u64,
}

/// Samples per channel in one queued chunk (20 ms at 8 kHz). Chunks travel by value so the
/// audio path allocates nothing per frame.
const CHUNK: usize = 160;

// By value on purpose: a 648-byte copy into the channel is cheaper than an allocation per frame.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// `pairs` interleaved left/right sample pairs.
    Audio {
        pairs: usize,
        samples: [i16; 2 * CHUNK],
    },
    Silence(u64),
}

/// A stereo call recording in progress.
pub struct Recorder {
    tx: Option<SyncSender<Command>>,
    writer: Option<JoinHandle<Result<(), RecorderError>>>,
    path: PathBuf,
    sample_rate: u32,
    samples: u64,
    paused: bool,
    pending_silence: u64,
    overrun_samples: u64,
    flushed: Arc<AtomicU64>,
}

impl Recorder {
    /// Creates the file and starts the writer thread.
    pub fn create(path: impl AsRef<Path>, cfg: RecorderConfig) -> Result<Self, RecorderError> {
        let path = path.as_ref().to_path_buf();
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: cfg.sample_rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer =
            hound::WavWriter::create(&path, spec).map_err(|source| RecorderError::Wav {
                path: path.clone(),
                source,
            })?;
        let (tx, rx) = sync_channel(cfg.queue_frames.max(1));
        let flushed = Arc::new(AtomicU64::new(0));
        let flush_every =
            (cfg.flush_every.as_millis() as u64 * cfg.sample_rate as u64 / 1000).max(1);
        let thread_path = path.clone();
        let thread_flushed = flushed.clone();
        let handle = std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || write_loop(writer, rx, flush_every, thread_flushed, thread_path))
            .map_err(|_| RecorderError::WriterGone)?;
        Ok(Self {
            tx: Some(tx),
            writer: Some(handle),
            path,
            sample_rate: cfg.sample_rate,
            samples: 0,
            paused: false,
            pending_silence: 0,
            overrun_samples: 0,
            flushed,
        })
    }

    /// Queues one frame of each side. Never blocks: if the writer is behind, the frame is
    /// counted and written later as silence so the timeline stays right.
    pub fn write(&mut self, customer: &[i16], agent: &[i16]) -> Result<(), RecorderError> {
        if customer.len() != agent.len() {
            return Err(RecorderError::FrameMismatch(customer.len(), agent.len()));
        }
        for (c, a) in customer.chunks(CHUNK).zip(agent.chunks(CHUNK)) {
            self.write_chunk(c, a)?;
        }
        Ok(())
    }

    fn write_chunk(&mut self, customer: &[i16], agent: &[i16]) -> Result<(), RecorderError> {
        let n = customer.len() as u64;
        self.samples += n;
        let tx = self.tx.as_ref().ok_or(RecorderError::WriterGone)?;
        if self.pending_silence > 0 {
            match tx.try_send(Command::Silence(self.pending_silence)) {
                Ok(()) => self.pending_silence = 0,
                Err(TrySendError::Full(_)) => {
                    self.pending_silence += n;
                    self.overrun_samples += n;
                    return Ok(());
                }
                Err(TrySendError::Disconnected(_)) => return Err(RecorderError::WriterGone),
            }
        }
        let cmd = if self.paused {
            Command::Silence(n)
        } else {
            let mut samples = [0i16; 2 * CHUNK];
            for ((pair, &l), &r) in samples.chunks_exact_mut(2).zip(customer).zip(agent) {
                pair[0] = l;
                pair[1] = r;
            }
            Command::Audio {
                pairs: customer.len(),
                samples,
            }
        };
        match tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.pending_silence += n;
                self.overrun_samples += n;
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(RecorderError::WriterGone),
        }
    }

    /// Media time recorded so far.
    pub fn position(&self) -> Duration {
        Duration::from_micros(self.samples * 1_000_000 / self.sample_rate as u64)
    }

    /// Samples per channel known to be on disk with a valid header.
    pub fn flushed_samples(&self) -> u64 {
        self.flushed.load(Ordering::Acquire)
    }

    /// Pauses (e.g. while the customer reads a card number): silence is recorded from here.
    pub fn pause(&mut self) -> Marker {
        self.paused = true;
        Marker {
            at: self.position(),
            paused: true,
        }
    }

    /// Resumes recording audio.
    pub fn resume(&mut self) -> Marker {
        self.paused = false;
        Marker {
            at: self.position(),
            paused: false,
        }
    }

    /// Flushes everything queued, fixes the header and closes the file.
    pub fn finish(mut self) -> Result<RecordingSummary, RecorderError> {
        if let Some(tx) = self.tx.take() {
            if self.pending_silence > 0 {
                // Blocking is fine here: this is the end of the call, off the audio tick.
                tx.send(Command::Silence(self.pending_silence))
                    .map_err(|_| RecorderError::WriterGone)?;
            }
            drop(tx);
        }
        let handle = self.writer.take().ok_or(RecorderError::WriterGone)?;
        handle.join().map_err(|_| RecorderError::WriterGone)??;
        Ok(RecordingSummary {
            path: self.path.clone(),
            duration: self.position(),
            overrun_samples: self.overrun_samples,
        })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Closing the channel makes the writer finalize the file; do not wait for it.
        self.tx.take();
    }
}

fn write_loop(
    mut writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    rx: Receiver<Command>,
    flush_every: u64,
    flushed: Arc<AtomicU64>,
    path: PathBuf,
) -> Result<(), RecorderError> {
    let err = |source| RecorderError::Wav {
        path: path.clone(),
        source,
    };
    let mut written: u64 = 0;
    let mut since_flush: u64 = 0;
    for cmd in rx {
        match cmd {
            Command::Audio { pairs, samples } => {
                let interleaved = &samples[..2 * pairs];
                // get_i16_writer panics unless the spec is 16-bit int, which `create` fixes.
                let mut w = writer.get_i16_writer(interleaved.len() as u32);
                for &s in interleaved {
                    w.write_sample(s);
                }
                w.flush().map_err(err)?;
                written += interleaved.len() as u64 / 2;
                since_flush += interleaved.len() as u64 / 2;
            }
            Command::Silence(n) => {
                for _ in 0..2 * n {
                    writer.write_sample(0i16).map_err(err)?;
                }
                written += n;
                since_flush += n;
            }
        }
        if since_flush >= flush_every {
            writer.flush().map_err(err)?;
            flushed.store(written, Ordering::Release);
            since_flush = 0;
        }
    }
    writer.finalize().map_err(err)?;
    flushed.store(written, Ordering::Release);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mixer::Room;
    use crate::test_signal::{dominant_frequency, rms, sine};

    fn read(path: &Path) -> (hound::WavSpec, Vec<i16>, Vec<i16>) {
        let mut r = hound::WavReader::open(path).unwrap();
        let spec = r.spec();
        let all: Vec<i16> = r.samples::<i16>().map(|s| s.unwrap()).collect();
        let left = all.iter().step_by(2).copied().collect();
        let right = all.iter().skip(1).step_by(2).copied().collect();
        (spec, left, right)
    }

    #[test]
    fn two_party_call_is_recorded_customer_left_agent_right() {
        let _serial = crate::test_signal::REALTIME.blocking_lock();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("call.wav");
        let mut room = Room::new();
        let customer = room.join();
        let agent = room.join();
        room.bridge(customer, agent).unwrap();
        let mut rec = Recorder::create(&path, RecorderConfig::default()).unwrap();
        let cust_audio = sine(440.0, 6000.0, 8000 * 3, 8000);
        let agent_audio = sine(1000.0, 9000.0, 8000 * 3, 8000);
        for (c, a) in cust_audio.chunks(160).zip(agent_audio.chunks(160)) {
            room.put_frame(customer, c).unwrap();
            room.put_frame(agent, a).unwrap();
            room.mix();
            // What the agent hears is the customer's voice, and vice versa.
            rec.write(room.output(agent).unwrap(), room.output(customer).unwrap())
                .unwrap();
        }
        let summary = rec.finish().unwrap();
        assert_eq!(summary.duration, Duration::from_secs(3));
        assert_eq!(summary.overrun_samples, 0);
        let (spec, left, right) = read(&path);
        assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
        assert_eq!(left.len(), 24_000);
        // Skip the first frame (fade-in), then check who is where.
        let (fl, fr) = (
            dominant_frequency(&left[160..], 8000),
            dominant_frequency(&right[160..], 8000),
        );
        println!(
            "left {fl:.1} Hz rms {:.0}, right {fr:.1} Hz rms {:.0}",
            rms(&left[160..]),
            rms(&right[160..])
        );
        assert!((fl - 440.0).abs() < 5.0 && (fr - 1000.0).abs() < 5.0);
        assert!((rms(&left[160..]) - 6000.0 / 2f64.sqrt()).abs() < 50.0);
        assert!((rms(&right[160..]) - 9000.0 / 2f64.sqrt()).abs() < 50.0);
    }

    #[test]
    fn pause_writes_silence_and_returns_markers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pause.wav");
        let mut rec = Recorder::create(&path, RecorderConfig::default()).unwrap();
        let loud = [5000i16; 160];
        for _ in 0..50 {
            rec.write(&loud, &loud).unwrap();
        }
        let p = rec.pause();
        for _ in 0..25 {
            rec.write(&loud, &loud).unwrap();
        }
        let r = rec.resume();
        for _ in 0..50 {
            rec.write(&loud, &loud).unwrap();
        }
        assert_eq!(
            p,
            Marker {
                at: Duration::from_secs(1),
                paused: true
            }
        );
        assert_eq!(
            r,
            Marker {
                at: Duration::from_millis(1500),
                paused: false
            }
        );
        rec.finish().unwrap();
        let (_, left, right) = read(&path);
        assert_eq!(left.len(), 125 * 160);
        assert!(left[..8000].iter().all(|&s| s == 5000));
        assert!(left[8000..12000].iter().all(|&s| s == 0));
        assert!(right[12000..].iter().all(|&s| s == 5000));
    }

    #[test]
    fn mismatched_frames_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut rec =
            Recorder::create(dir.path().join("x.wav"), RecorderConfig::default()).unwrap();
        assert!(matches!(
            rec.write(&[0; 160], &[0; 80]),
            Err(RecorderError::FrameMismatch(160, 80))
        ));
        assert!(
            Recorder::create(
                dir.path().join("no/such/dir.wav"),
                RecorderConfig::default()
            )
            .is_err()
        );
    }

    /// Simulates a crash: a child process (this same test binary) records 3.5 s, waits for
    /// the 3 s header fix-up, then aborts without running any destructor. The parent then
    /// reads the file with hound.
    #[test]
    fn file_is_readable_after_the_process_is_killed() {
        const ENV: &str = "MEDIA_RECORDER_KILL_TEST_PATH";
        if let Ok(path) = std::env::var(ENV) {
            let mut rec = Recorder::create(&path, RecorderConfig::default()).unwrap();
            let audio = sine(500.0, 7000.0, 8000 * 7 / 2, 8000);
            for f in audio.chunks(160) {
                rec.write(f, &[1234; 160]).unwrap();
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while rec.flushed_samples() < 24_000 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::process::abort();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("killed.wav");
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "recorder::tests::file_is_readable_after_the_process_is_killed",
                "--nocapture",
            ])
            .env(ENV, &path)
            .status()
            .unwrap();
        assert!(!status.success(), "the child must have been killed");
        let (spec, left, right) = read(&path);
        assert_eq!(spec.channels, 2);
        // Everything up to the last flushed second is there, nothing past what was written.
        assert!(
            left.len() >= 24_000 && left.len() <= 28_000,
            "{} samples",
            left.len()
        );
        assert!(right.iter().all(|&s| s == 1234));
        assert!((dominant_frequency(&left, 8000) - 500.0).abs() < 5.0);
    }
}
