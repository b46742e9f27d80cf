//! The conference mixer: one [`Room`] per call, N participants, and a hear matrix.
//!
//! Each participant has the set of participants it hears (equivalently, each has the set it
//! is heard by). That one relation gives every call-centre topology:
//! - two-party bridge: A hears B, B hears A;
//! - supervisor listen: S hears A and B, nobody hears S;
//! - whisper: S hears A and B, only the agent hears S;
//! - barge: S hears A and B and both hear S (a three-party conference);
//! - conference: everybody hears everybody.
//!
//! Every 20 ms tick the engine puts one 8 kHz frame per participant, calls [`Room::mix`],
//! and reads each participant's [`Room::output`]: the saturating 16-bit sum of what it hears,
//! never including itself. A link that appears or disappears (join, leave, a supervisor
//! switching from listen to barge) is faded over one frame so no click is heard.

use crate::codec::g711::FRAME_SAMPLES;

/// A participant in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParticipantId(u32);

/// One 20 ms frame at 8 kHz.
pub type Frame = [i16; FRAME_SAMPLES];

/// Errors from room operations; all are caller bugs (our fault), not the network's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixerError {
    /// The participant is not (or no longer) in this room.
    #[error("participant {0:?} is not in the room")]
    UnknownParticipant(ParticipantId),
    /// A participant never hears itself.
    #[error("participant {0:?} cannot hear itself")]
    SelfLink(ParticipantId),
}

#[derive(Debug, Clone, Copy)]
struct Link {
    speaker: usize,
    /// Gain at the start of the next frame: 0 or 1.
    on: bool,
    /// Gain wanted at the end of the next frame.
    want: bool,
}

#[derive(Debug)]
struct Member {
    id: ParticipantId,
    input: Frame,
    output: Frame,
    hears: Vec<Link>,
    /// Whether `input` was given this tick; a stale input is kept only to fade it on leave.
    fresh: bool,
    leaving: bool,
}

/// A mixing room.
#[derive(Debug, Default)]
pub struct Room {
    members: Vec<Option<Member>>,
    next_id: u32,
    /// The fade ramp, 0..=32768 over one frame (Q15).
    ramp: Vec<i32>,
}

impl Room {
    /// An empty room.
    pub fn new() -> Self {
        let ramp = (0..FRAME_SAMPLES)
            .map(|i| ((i as i32 + 1) << 15) / FRAME_SAMPLES as i32)
            .collect();
        Self {
            members: Vec::new(),
            next_id: 0,
            ramp,
        }
    }

    /// Adds a participant who hears nobody and is heard by nobody yet.
    pub fn join(&mut self) -> ParticipantId {
        let id = ParticipantId(self.next_id);
        self.next_id += 1;
        let m = Member {
            id,
            input: [0; FRAME_SAMPLES],
            output: [0; FRAME_SAMPLES],
            hears: Vec::new(),
            fresh: false,
            leaving: false,
        };
        match self.members.iter_mut().find(|m| m.is_none()) {
            Some(slot) => *slot = Some(m),
            None => self.members.push(Some(m)),
        }
        id
    }

    /// Removes a participant: what others heard of it fades out over the next frame (its
    /// last input is replayed under the fade), then it is gone.
    pub fn leave(&mut self, id: ParticipantId) -> Result<(), MixerError> {
        let idx = self.index(id)?;
        for m in self.members.iter_mut().flatten() {
            for l in m.hears.iter_mut().filter(|l| l.speaker == idx) {
                l.want = false;
            }
        }
        if let Some(m) = self.members[idx].as_mut() {
            m.leaving = true;
            m.hears.clear();
        }
        Ok(())
    }

    /// Participants in the room (leaving ones excluded).
    pub fn participants(&self) -> impl Iterator<Item = ParticipantId> + '_ {
        self.members
            .iter()
            .flatten()
            .filter(|m| !m.leaving)
            .map(|m| m.id)
    }

    fn index(&self, id: ParticipantId) -> Result<usize, MixerError> {
        self.members
            .iter()
            .position(|m| m.as_ref().is_some_and(|m| m.id == id && !m.leaving))
            .ok_or(MixerError::UnknownParticipant(id))
    }

    /// Sets whether `listener` hears `speaker`.
    pub fn set_hears(
        &mut self,
        listener: ParticipantId,
        speaker: ParticipantId,
        hears: bool,
    ) -> Result<(), MixerError> {
        if listener == speaker {
            return Err(MixerError::SelfLink(listener));
        }
        let li = self.index(listener)?;
        let si = self.index(speaker)?;
        let Some(m) = self.members[li].as_mut() else {
            return Err(MixerError::UnknownParticipant(listener));
        };
        match m.hears.iter_mut().find(|l| l.speaker == si) {
            Some(l) => l.want = hears,
            None if hears => m.hears.push(Link {
                speaker: si,
                on: false,
                want: true,
            }),
            None => {}
        }
        Ok(())
    }

    /// Whether `listener` hears (or is fading in) `speaker`.
    pub fn hears(&self, listener: ParticipantId, speaker: ParticipantId) -> bool {
        let (Ok(li), Ok(si)) = (self.index(listener), self.index(speaker)) else {
            return false;
        };
        self.members[li]
            .as_ref()
            .is_some_and(|m| m.hears.iter().any(|l| l.speaker == si && l.want))
    }

    /// Two parties hear each other.
    pub fn bridge(&mut self, a: ParticipantId, b: ParticipantId) -> Result<(), MixerError> {
        self.set_hears(a, b, true)?;
        self.set_hears(b, a, true)
    }

    /// Supervisor listen: `supervisor` hears every party in `parties`, nobody hears it.
    pub fn listen(
        &mut self,
        supervisor: ParticipantId,
        parties: &[ParticipantId],
    ) -> Result<(), MixerError> {
        for &p in parties {
            self.set_hears(supervisor, p, true)?;
            self.set_hears(p, supervisor, false)?;
        }
        Ok(())
    }

    /// Whisper: `supervisor` hears every party, and only `agent` hears the supervisor.
    pub fn whisper(
        &mut self,
        supervisor: ParticipantId,
        agent: ParticipantId,
        parties: &[ParticipantId],
    ) -> Result<(), MixerError> {
        self.listen(supervisor, parties)?;
        self.set_hears(agent, supervisor, true)
    }

    /// Barge: `supervisor` hears and is heard by every party.
    pub fn barge(
        &mut self,
        supervisor: ParticipantId,
        parties: &[ParticipantId],
    ) -> Result<(), MixerError> {
        for &p in parties {
            self.bridge(supervisor, p)?;
        }
        Ok(())
    }

    /// Gives a participant's audio for this tick. A participant that gives nothing is silent.
    pub fn put_frame(&mut self, id: ParticipantId, frame: &[i16]) -> Result<(), MixerError> {
        let idx = self.index(id)?;
        if let Some(m) = self.members[idx].as_mut() {
            let n = frame.len().min(FRAME_SAMPLES);
            m.input[..n].copy_from_slice(&frame[..n]);
            m.input[n..].fill(0);
            m.fresh = true;
        }
        Ok(())
    }

    /// Mixes one tick: computes every participant's output, then clears the inputs, applies
    /// finished fades and drops participants that have left.
    pub fn mix(&mut self) {
        let mut acc = [0i32; FRAME_SAMPLES];
        for li in 0..self.members.len() {
            let Some(listener) = self.members[li].as_ref() else {
                continue;
            };
            acc.fill(0);
            for link in &listener.hears {
                let Some(speaker) = self.members[link.speaker].as_ref() else {
                    continue;
                };
                if !speaker.fresh && !speaker.leaving {
                    continue;
                }
                let x = &speaker.input;
                match (link.on, link.want) {
                    (true, true) => {
                        for (a, &s) in acc.iter_mut().zip(x) {
                            *a += s as i32;
                        }
                    }
                    (false, true) => {
                        for ((a, &s), &g) in acc.iter_mut().zip(x).zip(&self.ramp) {
                            *a += (s as i32 * g) >> 15;
                        }
                    }
                    (true, false) => {
                        for ((a, &s), &g) in acc.iter_mut().zip(x).zip(&self.ramp) {
                            *a += (s as i32 * (32768 - g)) >> 15;
                        }
                    }
                    (false, false) => {}
                }
            }
            if let Some(listener) = self.members[li].as_mut() {
                for (o, &a) in listener.output.iter_mut().zip(&acc) {
                    *o = a.clamp(i16::MIN as i32, i16::MAX as i32) as i16;
                }
            }
        }
        // Settle fades, forget faded-out links and departed members.
        let gone: Vec<usize> = (0..self.members.len())
            .filter(|&i| self.members[i].as_ref().is_some_and(|m| m.leaving))
            .collect();
        for m in self.members.iter_mut().flatten() {
            m.hears.retain_mut(|l| {
                l.on = l.want;
                l.want && !gone.contains(&l.speaker)
            });
            m.fresh = false;
        }
        for i in gone {
            self.members[i] = None;
        }
    }

    /// What `id` hears this tick (valid after [`Room::mix`]).
    pub fn output(&self, id: ParticipantId) -> Result<&Frame, MixerError> {
        let idx = self.index(id)?;
        self.members[idx]
            .as_ref()
            .map(|m| &m.output)
            .ok_or(MixerError::UnknownParticipant(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: i16 = 1000;
    const B: i16 = 200;
    const S: i16 = 30;

    fn tick(room: &mut Room, inputs: &[(ParticipantId, i16)]) {
        for &(id, v) in inputs {
            room.put_frame(id, &[v; FRAME_SAMPLES]).unwrap();
        }
        room.mix();
    }

    /// The steady-state (after fades) level each participant hears.
    fn settled(room: &mut Room, inputs: &[(ParticipantId, i16)]) -> Vec<i16> {
        tick(room, inputs);
        tick(room, inputs);
        inputs
            .iter()
            .map(|&(id, _)| room.output(id).unwrap()[80])
            .collect()
    }

    fn call() -> (Room, ParticipantId, ParticipantId, ParticipantId) {
        let mut room = Room::new();
        let customer = room.join();
        let agent = room.join();
        let sup = room.join();
        room.bridge(customer, agent).unwrap();
        (room, customer, agent, sup)
    }

    #[test]
    fn two_party_bridge_excludes_self() {
        let (mut room, c, a, s) = call();
        let out = settled(&mut room, &[(c, A), (a, B), (s, S)]);
        assert_eq!(out, vec![B, A, 0]);
    }

    #[test]
    fn supervisor_listen_hears_both_heard_by_none() {
        let (mut room, c, a, s) = call();
        room.listen(s, &[c, a]).unwrap();
        let out = settled(&mut room, &[(c, A), (a, B), (s, S)]);
        assert_eq!(out, vec![B, A, A + B]);
    }

    #[test]
    fn whisper_is_heard_by_the_agent_only() {
        let (mut room, c, a, s) = call();
        room.whisper(s, a, &[c, a]).unwrap();
        let out = settled(&mut room, &[(c, A), (a, B), (s, S)]);
        assert_eq!(out, vec![B, A + S, A + B]);
        assert!(room.hears(a, s) && !room.hears(c, s));
    }

    #[test]
    fn barge_is_heard_by_both() {
        let (mut room, c, a, s) = call();
        room.whisper(s, a, &[c, a]).unwrap();
        room.barge(s, &[c, a]).unwrap();
        let out = settled(&mut room, &[(c, A), (a, B), (s, S)]);
        assert_eq!(out, vec![B + S, A + S, A + B]);
        // Back to listen: nobody hears the supervisor any more.
        room.listen(s, &[c, a]).unwrap();
        let out = settled(&mut room, &[(c, A), (a, B), (s, S)]);
        assert_eq!(out, vec![B, A, A + B]);
    }

    #[test]
    fn mixing_saturates_instead_of_wrapping() {
        let mut room = Room::new();
        let ids: Vec<_> = (0..4).map(|_| room.join()).collect();
        for &l in &ids {
            for &s in &ids {
                if l != s {
                    room.set_hears(l, s, true).unwrap();
                }
            }
        }
        let loud = [
            (ids[0], 30000),
            (ids[1], 30000),
            (ids[2], -30000),
            (ids[3], 30000),
        ];
        let out = settled(&mut room, &loud);
        assert_eq!(out, vec![30000, 30000, i16::MAX, 30000]);
        let quiet = [
            (ids[0], -30000),
            (ids[1], -30000),
            (ids[2], -30000),
            (ids[3], 0),
        ];
        assert_eq!(settled(&mut room, &quiet)[3], i16::MIN);
    }

    #[test]
    fn join_and_leave_fade_without_clicks() {
        let (mut room, c, a, s) = call();
        let inputs = [(c, 16000), (a, 0), (s, 0)];
        tick(&mut room, &inputs);
        // The agent's first frame ramps up from near zero; no step larger than a ramp step.
        let first = *room.output(a).unwrap();
        assert!(first[0].abs() < 200, "starts at {}", first[0]);
        assert_eq!(first[FRAME_SAMPLES - 1], 16000);
        assert!(first.windows(2).all(|w| (w[1] - w[0]).abs() <= 101));
        tick(&mut room, &inputs);
        assert!(room.output(a).unwrap().iter().all(|&v| v == 16000));
        // The customer hangs up: the agent hears its last frame fade out, then silence.
        room.leave(c).unwrap();
        room.mix();
        let fading = *room.output(a).unwrap();
        assert!(fading[0] > 15800 && fading[FRAME_SAMPLES - 1] == 0);
        assert!(fading.windows(2).all(|w| (w[1] - w[0]).abs() <= 101));
        room.mix();
        assert!(room.output(a).unwrap().iter().all(|&v| v == 0));
        assert_eq!(room.output(c), Err(MixerError::UnknownParticipant(c)));
        assert_eq!(room.participants().count(), 2);
    }

    #[test]
    fn self_links_and_strangers_are_rejected() {
        let mut room = Room::new();
        let a = room.join();
        assert_eq!(room.set_hears(a, a, true), Err(MixerError::SelfLink(a)));
        let ghost = ParticipantId(99);
        assert_eq!(
            room.set_hears(a, ghost, true),
            Err(MixerError::UnknownParticipant(ghost))
        );
        // Slots are reused but ids are not.
        room.leave(a).unwrap();
        room.mix();
        let b = room.join();
        assert_ne!(a, b);
        assert!(room.put_frame(a, &[1]).is_err());
    }

    proptest! {
        /// After fades settle, every output is the saturating sum of exactly what the
        /// participant hears, whatever the matrix.
        #[test]
        fn output_is_the_saturating_sum_of_heard_inputs(
            n in 1usize..7,
            matrix in proptest::collection::vec(any::<bool>(), 49),
            levels in proptest::collection::vec(any::<i16>(), 7),
        ) {
            let mut room = Room::new();
            let ids: Vec<_> = (0..n).map(|_| room.join()).collect();
            for (li, &l) in ids.iter().enumerate() {
                for (si, &s) in ids.iter().enumerate() {
                    if li != si {
                        room.set_hears(l, s, matrix[li * 7 + si]).unwrap();
                    }
                }
            }
            let inputs: Vec<_> = ids.iter().zip(&levels).map(|(&id, &v)| (id, v)).collect();
            let out = settled(&mut room, &inputs);
            for (li, &got) in out.iter().enumerate() {
                let want: i32 = (0..n)
                    .filter(|&si| si != li && matrix[li * 7 + si])
                    .map(|si| levels[si] as i32)
                    .sum();
                prop_assert_eq!(got as i32, want.clamp(-32768, 32767));
            }
        }
    }
}
