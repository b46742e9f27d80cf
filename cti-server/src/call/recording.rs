//! Call recording: one stereo WAV per call, the customer on the left and whoever talks to
//! them on the right (the media engine's recorder records what the customer's leg says and
//! what it hears, so a supervisor's whisper, heard by the agent only, never reaches it).
//!
//! The recording starts when the customer is first bridged with somebody and runs to the
//! hang-up: on hold (the customer's side of the hold), through a blind transfer (the customer
//! stays in the call's room) and an attended transfer that joins the colleague into this
//! call's room. Whether a call is recorded is the configured default (`recording.policy`),
//! which a queue's own policy overrides for its callers ([`Call::set_recorded`]).

use std::path::{Path, PathBuf};

use media::engine::LegId;

use super::{Call, CallKey, MediaOp, Target};

#[derive(Debug)]
pub(super) struct CallRecording {
    wanted: bool,
    active: bool,
}

impl CallRecording {
    pub(super) fn new(wanted: bool) -> CallRecording {
        CallRecording {
            wanted,
            active: false,
        }
    }
}

impl Call {
    /// Whether this call is recorded (a queue's policy for its callers). Takes effect at the
    /// next bridge; a recording under way goes on.
    pub fn set_recorded(&mut self, on: bool) {
        self.rec.wanted = on;
    }

    /// True while the call is being recorded.
    pub fn is_recorded(&self) -> bool {
        self.rec.active
    }

    pub(super) fn rec_active(&self) -> bool {
        self.rec.active
    }

    /// The customer's leg: the caller's, but for an agent's own call out through the trunk.
    fn customer_leg(&self) -> LegId {
        let outbound =
            self.hosted.is_none() && matches!(self.record.target, Some(Target::Trunk { .. }));
        if outbound {
            self.agent.leg
        } else {
            self.caller.leg
        }
    }

    /// The customer is bridged with somebody: the recording starts, once per call.
    pub(super) fn start_call_recording(&mut self) {
        if !self.rec.wanted || self.rec.active {
            return;
        }
        if self.hosted.as_ref().is_some_and(|h| h.recording) {
            return; // a voicemail is being recorded
        }
        self.rec.active = true;
        let path = recording_path(
            &self.config.recordings_dir,
            self.record.offered_at_ms,
            self.key,
        );
        let leg = self.customer_leg();
        self.media(MediaOp::StartRecording { leg, path });
    }

    /// Closes the call's recording (hang-up, or a voicemail starting).
    pub(super) fn stop_call_recording(&mut self) {
        if std::mem::take(&mut self.rec.active) {
            self.media(MediaOp::StopRecording);
        }
    }
}

/// `<dir>/YYYY/MM/DD/<offered ms>-<call>.wav`, the date in UTC: a folder per day, and names
/// that cannot collide (the call key is unique).
pub fn recording_path(dir: &Path, offered_at_ms: i64, key: CallKey) -> PathBuf {
    let day = jiff::Timestamp::from_millisecond(offered_at_ms)
        .map(|t| t.strftime("%Y/%m/%d").to_string())
        .unwrap_or_else(|_| "undated".into());
    dir.join(day).join(format!("{offered_at_ms}-{}.wav", key.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_go_in_dated_folders_with_unique_names() {
        let p = recording_path(Path::new("rec"), 1_795_381_811_272, CallKey(42));
        assert_eq!(p, Path::new("rec/2026/11/22/1795381811272-42.wav"));
    }
}
