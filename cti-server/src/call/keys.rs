//! Feature codes keyed on the agent's phone during a call (`*1` pauses and resumes the
//! recording, or starts it where recording is on demand). The agent's keys otherwise go on
//! to the customer (an outbound call through an IVR), so a key that may begin a code is held
//! back until the code is complete (it is then swallowed), broken (the held keys go on, late)
//! or left unfinished for [`HOLD`] (they go on too). Written by hand: a few lines of policy.

use std::time::{Duration, Instant};

/// How long a started code waits for its next key.
pub const HOLD: Duration = Duration::from_secs(2);

/// What to do with the agent's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOut {
    /// Send this key on to the other party.
    Relay(char),
    /// The code was keyed.
    Feature,
}

#[derive(Debug, Default)]
pub(super) struct FeatureKeys {
    code: Vec<char>,
    held: Vec<char>,
    deadline: Option<Instant>,
}

impl FeatureKeys {
    /// `code` empty: no feature, every key goes on at once.
    pub(super) fn new(code: &str) -> FeatureKeys {
        FeatureKeys {
            code: code.chars().collect(),
            held: Vec::new(),
            deadline: None,
        }
    }

    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    pub(super) fn key(&mut self, now: Instant, k: char) -> Vec<KeyOut> {
        if self.code.is_empty() {
            return vec![KeyOut::Relay(k)];
        }
        self.held.push(k);
        if self.held == self.code {
            self.held.clear();
            self.deadline = None;
            return vec![KeyOut::Feature];
        }
        if self.code.starts_with(&self.held) {
            self.deadline = Some(now + HOLD);
            return Vec::new();
        }
        // Broken: the held keys go on, but the last may begin the code afresh.
        let last = self.held.pop();
        let mut out: Vec<KeyOut> = self.held.drain(..).map(KeyOut::Relay).collect();
        self.deadline = None;
        if let Some(last) = last {
            if self.code.first() == Some(&last) {
                self.held.push(last);
                self.deadline = Some(now + HOLD);
            } else {
                out.push(KeyOut::Relay(last));
            }
        }
        out
    }

    /// The held keys go on once the code was left unfinished.
    pub(super) fn timeout(&mut self, now: Instant) -> Vec<KeyOut> {
        if self.deadline.is_none_or(|d| now < d) {
            return Vec::new();
        }
        self.deadline = None;
        self.held.drain(..).map(KeyOut::Relay).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::KeyOut::{Feature, Relay};
    use super::*;

    #[test]
    fn the_code_is_swallowed_other_keys_go_on_and_broken_codes_go_on_late() {
        let t = Instant::now();
        let mut k = FeatureKeys::new("*1");
        assert_eq!(k.key(t, '5'), vec![Relay('5')]);
        assert_eq!(k.key(t, '*'), vec![]);
        assert_eq!(k.deadline(), Some(t + HOLD));
        assert_eq!(k.key(t, '1'), vec![Feature]);
        assert_eq!(k.deadline(), None);
        // "*2": both go on when the 2 comes.
        assert_eq!(k.key(t, '*'), vec![]);
        assert_eq!(k.key(t, '2'), vec![Relay('*'), Relay('2')]);
        // "**1": the first star goes on, the second begins the code.
        assert_eq!(k.key(t, '*'), vec![]);
        assert_eq!(k.key(t, '*'), vec![Relay('*')]);
        assert_eq!(k.key(t, '1'), vec![Feature]);
        // A lone star goes on when nothing follows in time.
        assert_eq!(k.key(t, '*'), vec![]);
        assert_eq!(k.timeout(t + Duration::from_secs(1)), vec![]);
        assert_eq!(k.timeout(t + HOLD), vec![Relay('*')]);
        assert_eq!(k.deadline(), None);
    }

    #[test]
    fn without_a_code_every_key_goes_on() {
        let mut k = FeatureKeys::new("");
        let t = Instant::now();
        assert_eq!(k.key(t, '*'), vec![Relay('*')]);
        assert_eq!(k.key(t, '1'), vec![Relay('1')]);
        assert_eq!(k.deadline(), None);
    }
}
