//! The non-INVITE client transaction (RFC 3261 §17.1.2, Figure 6).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{Outputs, Peer, ProvisionalKey, Timer, TimerConfig, TimerTable, TuEvent, TxId};
use crate::sip::message::{Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub(super) struct ClientNonInvite {
    pub(super) id: TxId,
    pub(super) state: State,
    pub(super) request: Request,
    pub(super) dest: Peer,
    pub(super) timers: TimerTable,
    e_interval: Duration,
    seen: HashSet<ProvisionalKey>,
}

impl ClientNonInvite {
    /// Sends the request and arms Timers E (UDP only) and F (§17.1.2.2).
    pub(super) fn start(
        id: TxId,
        request: Request,
        dest: Peer,
        now: Instant,
        cfg: &TimerConfig,
        out: &mut Outputs,
    ) -> ClientNonInvite {
        let mut timers = TimerTable::default();
        if !dest.reliable() {
            timers.set(Timer::E, now + cfg.t1);
        }
        timers.set(Timer::F, now + cfg.t1_x64());
        out.send_request(dest, request.clone());
        ClientNonInvite {
            id,
            state: State::Trying,
            request,
            dest,
            timers,
            e_interval: cfg.t1,
            seen: HashSet::new(),
        }
    }

    pub(super) fn on_timer(
        &mut self,
        now: Instant,
        cfg: &TimerConfig,
        timer: Timer,
        out: &mut Outputs,
    ) {
        match (self.state, timer) {
            // §17.1.2.2: in Trying the interval doubles up to T2; in Proceeding it is T2.
            (State::Trying | State::Proceeding, Timer::E) => {
                out.send_request(self.dest, self.request.clone());
                self.e_interval = if self.state == State::Trying {
                    (self.e_interval * 2).min(cfg.t2)
                } else {
                    cfg.t2
                };
                self.timers.set(Timer::E, now + self.e_interval);
            }
            (State::Trying | State::Proceeding, Timer::F) => {
                out.event(TuEvent::Timeout { tx: self.id });
                self.terminate();
            }
            (State::Completed, Timer::K) => self.terminate(),
            _ => {}
        }
    }

    pub(super) fn on_response(
        &mut self,
        now: Instant,
        cfg: &TimerConfig,
        response: Response,
        out: &mut Outputs,
    ) {
        match self.state {
            State::Trying | State::Proceeding if response.code < 200 => {
                self.state = State::Proceeding;
                if self.seen.insert(super::provisional_key(&response)) {
                    out.event(TuEvent::Response {
                        tx: self.id,
                        response,
                    });
                }
            }
            // §17.1.2.2: the final goes up once; Completed absorbs its retransmissions
            // until Timer K (zero over reliable transports).
            State::Trying | State::Proceeding => {
                self.timers.stop(Timer::E);
                self.timers.stop(Timer::F);
                out.event(TuEvent::Response {
                    tx: self.id,
                    response,
                });
                self.state = State::Completed;
                let k = cfg.timer_k(self.dest.reliable());
                if k.is_zero() {
                    self.terminate();
                } else {
                    self.timers.set(Timer::K, now + k);
                }
            }
            State::Completed | State::Terminated => {}
        }
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.stop_all();
    }

    pub(super) fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }
}
