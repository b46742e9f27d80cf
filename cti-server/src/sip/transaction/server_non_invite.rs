//! The non-INVITE server transaction (RFC 3261 §17.2.2, Figure 8).

use std::time::Instant;

use super::{Outputs, Peer, Timer, TimerConfig, TimerTable, TxId};
use crate::sip::message::{Request, Response};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Trying,
    Proceeding,
    Completed,
    Terminated,
}

#[derive(Debug)]
pub(super) struct ServerNonInvite {
    #[allow(dead_code)]
    pub(super) id: TxId,
    pub(super) state: State,
    pub(super) request: Request,
    pub(super) dest: Peer,
    pub(super) timers: TimerTable,
    last_response: Option<Response>,
}

impl ServerNonInvite {
    pub(super) fn new(id: TxId, request: Request, dest: Peer) -> ServerNonInvite {
        ServerNonInvite {
            id,
            state: State::Trying,
            request,
            dest,
            timers: TimerTable::default(),
            last_response: None,
        }
    }

    /// §17.2.2: Trying absorbs a retransmitted request; Proceeding and Completed answer it
    /// with the last response.
    pub(super) fn on_retransmission(&mut self, out: &mut Outputs) {
        if let (State::Proceeding | State::Completed, Some(r)) = (self.state, &self.last_response) {
            out.send_response(self.dest, r.clone());
        }
    }

    /// The TU's response. Returns false (and sends nothing) once a final was sent.
    pub(super) fn send_response(
        &mut self,
        now: Instant,
        cfg: &TimerConfig,
        response: Response,
        out: &mut Outputs,
    ) -> bool {
        match self.state {
            State::Trying | State::Proceeding => {
                if response.code < 200 {
                    self.state = State::Proceeding;
                } else {
                    // §17.2.2: Timer J absorbs request retransmissions (zero when reliable).
                    self.state = State::Completed;
                    let j = cfg.timer_j(self.dest.reliable());
                    if j.is_zero() {
                        self.terminate();
                    } else {
                        self.timers.set(Timer::J, now + j);
                    }
                }
                self.last_response = Some(response.clone());
                out.send_response(self.dest, response);
                true
            }
            State::Completed | State::Terminated => false,
        }
    }

    pub(super) fn on_timer(&mut self, timer: Timer) {
        if (self.state, timer) == (State::Completed, Timer::J) {
            self.terminate();
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
