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
    /// Why the file stopped before the end (disk full, file gone): it holds the audio up to
    /// `written`, and the call went on unrecorded from there.
    pub failed: Option<String>,
    /// Audio actually in the file (the whole `duration` unless `failed`).
    pub written: Duration,
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
    worker: &'static Worker,
    id: u64,
    open: bool,
    path: PathBuf,
    sample_rate: u32,
    samples: u64,
    paused: bool,
    pending_silence: u64,
    overrun_samples: u64,
    flushed: Arc<AtomicU64>,
    /// Set by the writer when the file cannot be written (disk full, file gone).
    failed: Arc<std::sync::atomic::AtomicBool>,
}

/// Frames one writer thread may have queued (all its recordings together) before frames are
/// counted as overrun: about 80 ms of a thousand calls at 20 ms.
const WORKER_QUEUE: usize = 4096;
/// How often a writer thread looks at its queue when nobody wakes it. Senders do not wake it
/// (a wake-up per frame per call cost more than the writing); closing a file does.
const WORKER_POLL: Duration = Duration::from_millis(5);

/// The writer threads all recordings share (one per core, made on first use): a thread per
/// recording cost a wake-up per 20 ms frame per call and a stack per call (measured with
/// scripts/load-calls --record: 500 recorded calls took 85 % more CPU than unrecorded ones).
struct Worker {
    tx: SyncSender<Job>,
    thread: std::thread::Thread,
}

// By value on purpose, like [`Command`]: a frame is copied into the queue, not allocated.
#[allow(clippy::large_enum_variant)]
enum Job {
    Open {
        id: u64,
        file: Box<OpenFile>,
    },
    Frame(u64, Command),
    Close {
        id: u64,
        done: std::sync::mpsc::Sender<Result<(), RecorderError>>,
    },
}

struct OpenFile {
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    path: PathBuf,
    flush_every: u64,
    flushed: Arc<AtomicU64>,
    failed: Arc<std::sync::atomic::AtomicBool>,
    written: u64,
    since_flush: u64,
    error: Option<RecorderError>,
}

fn workers() -> &'static [Worker] {
    static WORKERS: std::sync::OnceLock<Vec<Worker>> = std::sync::OnceLock::new();
    WORKERS.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n)
            .filter_map(|i| {
                let (tx, rx) = sync_channel(WORKER_QUEUE);
                std::thread::Builder::new()
                    .name(format!("recorder-{i}"))
                    .spawn(move || worker_loop(rx))
                    .ok()
                    .map(|h| Worker {
                        tx,
                        thread: h.thread().clone(),
                    })
            })
            .collect()
    })
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Recorder {
    /// Creates the file and hands it to a writer thread.
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
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let pool = workers();
        let worker = pool
            .get(id as usize % pool.len().max(1))
            .ok_or(RecorderError::WriterGone)?;
        let flushed = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flush_every =
            (cfg.flush_every.as_millis() as u64 * cfg.sample_rate as u64 / 1000).max(1);
        let file = Box::new(OpenFile {
            writer,
            path: path.clone(),
            flush_every,
            flushed: flushed.clone(),
            failed: failed.clone(),
            written: 0,
            since_flush: 0,
            error: None,
        });
        // Blocking is fine here: a recording starts off the audio tick's hot path, once.
        worker
            .tx
            .send(Job::Open { id, file })
            .map_err(|_| RecorderError::WriterGone)?;
        Ok(Self {
            worker,
            id,
            open: true,
            path,
            sample_rate: cfg.sample_rate,
            samples: 0,
            paused: false,
            pending_silence: 0,
            overrun_samples: 0,
            flushed,
            failed,
        })
    }

    /// Queues one frame of each side. Never blocks: if the writer is behind, the frame is
    /// counted and written later as silence so the timeline stays right.
    pub fn write(&mut self, customer: &[i16], agent: &[i16]) -> Result<(), RecorderError> {
        if customer.len() != agent.len() {
            return Err(RecorderError::FrameMismatch(customer.len(), agent.len()));
        }
        if self.failed.load(Ordering::Relaxed) {
            return Err(RecorderError::WriterGone);
        }
        for (c, a) in customer.chunks(CHUNK).zip(agent.chunks(CHUNK)) {
            self.write_chunk(c, a)?;
        }
        Ok(())
    }

    fn send(&self, cmd: Command) -> Result<bool, RecorderError> {
        match self.worker.tx.try_send(Job::Frame(self.id, cmd)) {
            Ok(()) => Ok(true),
            Err(TrySendError::Full(_)) => Ok(false),
            Err(TrySendError::Disconnected(_)) => Err(RecorderError::WriterGone),
        }
    }

    fn write_chunk(&mut self, customer: &[i16], agent: &[i16]) -> Result<(), RecorderError> {
        let n = customer.len() as u64;
        self.samples += n;
        if self.pending_silence > 0 {
            if self.send(Command::Silence(self.pending_silence))? {
                self.pending_silence = 0;
            } else {
                self.pending_silence += n;
                self.overrun_samples += n;
                return Ok(());
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
        if !self.send(cmd)? {
            self.pending_silence += n;
            self.overrun_samples += n;
        }
        Ok(())
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
        self.open = false;
        // Blocking is fine here: this is the end of the call, off the audio tick.
        if self.pending_silence > 0 {
            self.worker
                .tx
                .send(Job::Frame(self.id, Command::Silence(self.pending_silence)))
                .map_err(|_| RecorderError::WriterGone)?;
        }
        let (done, result) = std::sync::mpsc::channel();
        self.worker
            .tx
            .send(Job::Close { id: self.id, done })
            .map_err(|_| RecorderError::WriterGone)?;
        self.worker.thread.unpark();
        let failed = match result.recv().map_err(|_| RecorderError::WriterGone)? {
            Ok(()) => None,
            // The file is there up to the failure: say so, do not lose what was recorded.
            Err(e @ RecorderError::Wav { .. }) => Some(e.to_string()),
            Err(e) => return Err(e),
        };
        let written = match failed {
            None => self.position(),
            Some(_) => Duration::from_micros(
                self.flushed_samples() * 1_000_000 / u64::from(self.sample_rate),
            ),
        };
        Ok(RecordingSummary {
            path: self.path.clone(),
            duration: self.position(),
            overrun_samples: self.overrun_samples,
            failed,
            written,
        })
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        // Not finished: the writer still finalizes the file; nobody waits for it.
        if std::mem::take(&mut self.open) {
            let (done, _) = std::sync::mpsc::channel();
            let _ = self.worker.tx.try_send(Job::Close { id: self.id, done });
            self.worker.thread.unpark();
        }
    }
}

fn worker_loop(rx: Receiver<Job>) {
    let mut files: std::collections::HashMap<u64, Box<OpenFile>> = std::collections::HashMap::new();
    loop {
        loop {
            match rx.try_recv() {
                Ok(job) => handle_job(&mut files, job),
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => return,
            }
        }
        std::thread::park_timeout(WORKER_POLL);
    }
}

fn handle_job(files: &mut std::collections::HashMap<u64, Box<OpenFile>>, job: Job) {
    match job {
        Job::Open { id, file } => {
            files.insert(id, file);
        }
        Job::Frame(id, cmd) => {
            if let Some(f) = files.get_mut(&id)
                && f.error.is_none()
                && let Err(e) = f.write(cmd)
            {
                tracing::warn!(error = %e, "recording write failed: the rest of the call is not recorded");
                f.failed.store(true, Ordering::Relaxed);
                f.error = Some(e);
            }
        }
        Job::Close { id, done } => {
            if let Some(f) = files.remove(&id) {
                let _ = done.send((*f).close());
            } else {
                let _ = done.send(Err(RecorderError::WriterGone));
            }
        }
    }
}

impl OpenFile {
    fn write(&mut self, cmd: Command) -> Result<(), RecorderError> {
        let path = &self.path;
        let err = |source| RecorderError::Wav {
            path: path.clone(),
            source,
        };
        let n = match cmd {
            Command::Audio { pairs, samples } => {
                let interleaved = &samples[..2 * pairs];
                // get_i16_writer panics unless the spec is 16-bit int, which `create` fixes.
                let mut w = self.writer.get_i16_writer(interleaved.len() as u32);
                for &s in interleaved {
                    w.write_sample(s);
                }
                w.flush().map_err(err)?;
                pairs as u64
            }
            Command::Silence(n) => {
                for _ in 0..2 * n {
                    self.writer.write_sample(0i16).map_err(err)?;
                }
                n
            }
        };
        self.written += n;
        self.since_flush += n;
        if self.since_flush >= self.flush_every {
            let path = self.path.clone();
            self.writer
                .flush()
                .map_err(|source| RecorderError::Wav { path, source })?;
            self.flushed.store(self.written, Ordering::Release);
            self.since_flush = 0;
        }
        Ok(())
    }

    fn close(self) -> Result<(), RecorderError> {
        let OpenFile {
            writer,
            path,
            flushed,
            written,
            error,
            ..
        } = self;
        let finalized = writer
            .finalize()
            .map_err(|source| RecorderError::Wav { path, source });
        flushed.store(written, Ordering::Release);
        match error {
            Some(e) => Err(e),
            None => finalized,
        }
    }
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
    fn a_full_disk_stops_the_recording_and_says_so() {
        // /dev/full takes the header into the writer's buffer, then refuses every write with
        // "no space left on device", as a full disk does.
        let mut rec = Recorder::create("/dev/full", RecorderConfig::default()).unwrap();
        let frame = [1000i16; 160];
        let mut refused = false;
        for _ in 0..500 {
            if rec.write(&frame, &frame).is_err() {
                refused = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(refused, "writes are refused once the writer failed");
        let summary = rec
            .finish()
            .expect("a summary, not an error: the call goes on");
        let why = summary.failed.expect("the failure is reported");
        assert!(why.contains("No space left"), "{why}");
        assert!(summary.written < summary.duration);
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
