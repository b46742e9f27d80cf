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

use super::{Call, CallKey, MediaOp, State, Target};
use crate::config::RecordingPolicy;

#[derive(Debug)]
pub(super) struct CallRecording {
    policy: RecordingPolicy,
    active: bool,
}

impl CallRecording {
    pub(super) fn new(policy: RecordingPolicy) -> CallRecording {
        CallRecording {
            policy,
            active: false,
        }
    }
}

impl Call {
    /// Whether this call is recorded (a queue's policy for its callers). Takes effect at the
    /// next bridge; a recording under way goes on.
    pub fn set_recording_policy(&mut self, policy: RecordingPolicy) {
        self.rec.policy = policy;
    }

    /// True while the call is being recorded.
    pub fn is_recorded(&self) -> bool {
        self.rec.active
    }

    pub(super) fn rec_active(&self) -> bool {
        self.rec.active
    }

    /// The agent asks for the recording (on-demand policy): it starts now, to the hang-up.
    pub fn record_on_demand(&mut self) -> Result<(), &'static str> {
        if self.rec.active {
            return Err("the call is being recorded already");
        }
        if self.rec.policy == RecordingPolicy::Never {
            return Err("this call is not to be recorded (policy never)");
        }
        if !self.agent.bridged || !matches!(self.state, State::Talking | State::Hosted) {
            return Err("the customer is not connected");
        }
        self.begin_recording();
        Ok(())
    }

    /// The agent's keypad code: a recording under way is paused or resumed; under the
    /// on-demand policy, one not yet under way starts. A beep tells the agent it worked.
    fn recording_key(&mut self) {
        let done = if self.rec.active {
            self.media(MediaOp::ToggleRecordingPause);
            Ok(())
        } else if self.rec.policy == RecordingPolicy::OnDemand {
            self.record_on_demand()
        } else {
            Err("the call is not being recorded")
        };
        match done {
            Ok(()) => {
                if let Some(beep) = self.config.beep.clone() {
                    let leg = self.our_leg();
                    self.media(MediaOp::Play {
                        leg,
                        prompt: beep,
                        id: 0,
                        looped: false,
                        interruptible: false,
                    });
                }
            }
            Err(why) => tracing::info!(call = %self.key, why, "recording key ignored"),
        }
    }

    /// What [`super::keys::FeatureKeys`] made of the agent's keys.
    pub(super) fn agent_keys(&mut self, outs: Vec<super::keys::KeyOut>) {
        for out in outs {
            match out {
                super::keys::KeyOut::Relay(digit) => {
                    if self.agent.bridged && matches!(self.state, State::Talking | State::Hosted) {
                        let leg = self.customer_leg();
                        self.media(MediaOp::SendDtmf { leg, digit });
                    }
                }
                super::keys::KeyOut::Feature => self.recording_key(),
            }
        }
    }

    /// Our side's leg: the agent's, but the caller's for an agent's own call out.
    fn our_leg(&self) -> LegId {
        if self.customer_leg() == self.caller.leg {
            self.agent.leg
        } else {
            self.caller.leg
        }
    }

    /// The customer's leg: the caller's, but for an agent's own call out through the trunk.
    pub(super) fn customer_leg(&self) -> LegId {
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
        if self.rec.policy != RecordingPolicy::Always || self.rec.active {
            return;
        }
        self.begin_recording();
    }

    fn begin_recording(&mut self) {
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

/// A supervisor's track beside the call's recording:
/// `<dir>/YYYY/MM/DD/<offered ms>-<call>-supervisor-<monitor call>.wav`.
pub fn track_path(dir: &Path, offered_at_ms: i64, key: CallKey, monitor: CallKey) -> PathBuf {
    let call = recording_path(dir, offered_at_ms, key);
    call.with_file_name(format!(
        "{offered_at_ms}-{}-supervisor-{}.wav",
        key.0, monitor.0
    ))
}

impl Call {
    /// A supervisor's track starts with their monitoring, when the call is recorded.
    pub(super) fn start_track(&mut self, leg: LegId, monitor: CallKey) {
        if self.rec.active {
            let path = track_path(
                &self.config.recordings_dir,
                self.record.offered_at_ms,
                self.key,
                monitor,
            );
            self.media(MediaOp::StartTrack { leg, path });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recordings_go_in_dated_folders_with_unique_names() {
        let p = recording_path(Path::new("rec"), 1_795_381_811_272, CallKey(42));
        assert_eq!(p, Path::new("rec/2026/11/22/1795381811272-42.wav"));
        let t = track_path(
            Path::new("rec"),
            1_795_381_811_272,
            CallKey(42),
            CallKey(43),
        );
        assert_eq!(
            t,
            Path::new("rec/2026/11/22/1795381811272-42-supervisor-43.wav")
        );
    }
}
