//! The INVITE server transaction (RFC 3261 §17.2.1, Figure 7 as amended by RFC 6026 Figure 5).
//!
//! Besides the RFC's machine it carries two duties RFC 3261 gives the UAS core, to keep the TU
//! simple: the 2xx retransmission of §13.3.1.4 (in Accepted, until the ACK or Timer L), and
//! the 100 Trying of §17.2.1 when the TU is silent for 200 ms.

use std::time::{Duration, Instant};

use super::{Outputs, Peer, Timer, TimerConfig, TimerTable, TuEvent, TxId};
use crate::sip::message::{Request, Response};

/// §17.2.1: a 100 Trying goes out if the TU has not sent a provisional within 200 ms.
const TRYING_DELAY: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// What an ACK meant to the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AckOutcome {
    /// Hop-by-hop ACK for a non-2xx, or a repeat: nothing for the TU.
    Absorbed,
    /// First ACK for the 2xx: the TU gets it (RFC 6026 §8.7).
    ForTu,
}

#[derive(Debug)]
pub(super) struct ServerInvite {
    pub(super) id: TxId,
    pub(super) state: State,
    /// The INVITE as delivered to the TU (top Via stamped with received/rport).
    pub(super) request: Request,
    pub(super) dest: Peer,
    pub(super) timers: TimerTable,
    last_provisional: Option<Response>,
    pub(super) final_response: Option<Response>,
    interval: Duration,
    acked: bool,
}

impl ServerInvite {
    pub(super) fn new(id: TxId, request: Request, dest: Peer, now: Instant) -> ServerInvite {
        let mut timers = TimerTable::default();
        timers.set(Timer::Trying, now + TRYING_DELAY);
        ServerInvite {
            id,
            state: State::Proceeding,
            request,
            dest,
            timers,
            last_provisional: None,
            final_response: None,
            interval: Duration::ZERO,
            acked: false,
        }
    }

    /// §17.2.1: a retransmitted INVITE gets the last provisional (Proceeding) or the final
    /// (Completed) again; Confirmed and Accepted absorb it (RFC 6026 §7.1).
    pub(super) fn on_retransmission(&mut self, out: &mut Outputs) {
        let resend = match self.state {
            State::Proceeding => self.last_provisional.clone(),
            State::Completed => self.final_response.clone(),
            _ => None,
        };
        if let Some(r) = resend {
            out.send_response(self.dest, r);
        }
    }

    /// The TU's response. Returns false (and sends nothing) when the state forbids it.
    pub(super) fn send_response(
        &mut self,
        now: Instant,
        cfg: &TimerConfig,
        response: Response,
        out: &mut Outputs,
    ) -> bool {
        let code = response.code;
        let udp = !self.dest.reliable();
        match self.state {
            State::Proceeding if code < 200 => {
                self.timers.stop(Timer::Trying);
                self.last_provisional = Some(response.clone());
            }
            // RFC 6026 §8.5: a 2xx moves to Accepted; the 2xx is retransmitted per §13.3.1.4
            // (T1 doubling, capped at T2) until the ACK, for at most Timer L = 64*T1.
            State::Proceeding if code < 300 => {
                self.timers.stop(Timer::Trying);
                self.state = State::Accepted;
                self.final_response = Some(response.clone());
                self.timers.set(Timer::L, now + cfg.t1_x64());
                if udp {
                    self.interval = cfg.t1;
                    self.timers.set(Timer::Retransmit2xx, now + cfg.t1);
                }
            }
            // §17.2.1: 300-699 moves to Completed with Timers G (UDP) and H.
            State::Proceeding => {
                self.timers.stop(Timer::Trying);
                self.state = State::Completed;
                self.final_response = Some(response.clone());
                self.timers.set(Timer::H, now + cfg.t1_x64());
                if udp {
                    self.interval = cfg.t1;
                    self.timers.set(Timer::G, now + cfg.t1);
                }
            }
            // RFC 6026 §8.6: further 2xx (e.g. after forking upstream) pass through Accepted.
            State::Accepted if (200..300).contains(&code) => {
                if !self.acked {
                    self.final_response = Some(response.clone());
                }
            }
            _ => return false,
        }
        out.send_response(self.dest, response);
        true
    }

    pub(super) fn on_ack(&mut self, now: Instant, cfg: &TimerConfig) -> AckOutcome {
        match self.state {
            // §17.2.1: the ACK for a non-2xx confirms; Timer I absorbs its retransmissions.
            State::Completed => {
                self.timers.stop(Timer::G);
                self.timers.stop(Timer::H);
                self.state = State::Confirmed;
                let i = cfg.timer_i(self.dest.reliable());
                if i.is_zero() {
                    self.terminate();
                } else {
                    self.timers.set(Timer::I, now + i);
                }
                AckOutcome::Absorbed
            }
            // §13.3.1.4: the ACK stops the 2xx retransmissions; the transaction stays in
            // Accepted until Timer L to absorb INVITE retransmissions (RFC 6026 §8.7).
            State::Accepted if !self.acked => {
                self.acked = true;
                self.timers.stop(Timer::Retransmit2xx);
                AckOutcome::ForTu
            }
            _ => AckOutcome::Absorbed,
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
            (State::Proceeding, Timer::Trying) if self.last_provisional.is_none() => {
                let trying = self.request.response(100, "Trying", None);
                self.last_provisional = Some(trying.clone());
                out.send_response(self.dest, trying);
            }
            // §17.2.1: retransmit the final, doubling up to T2.
            (State::Completed, Timer::G) | (State::Accepted, Timer::Retransmit2xx) => {
                if let Some(r) = &self.final_response {
                    out.send_response(self.dest, r.clone());
                }
                self.interval = (self.interval * 2).min(cfg.t2);
                self.timers.set(timer, now + self.interval);
            }
            // §17.2.1: no ACK for the non-2xx: the TU is told.
            (State::Completed, Timer::H) => {
                out.event(TuEvent::Timeout { tx: self.id });
                self.terminate();
            }
            (State::Confirmed, Timer::I) => self.terminate(),
            (State::Accepted, Timer::L) => {
                if !self.acked {
                    out.event(TuEvent::AckTimeout { tx: self.id });
                }
                self.terminate();
            }
            _ => {}
        }
    }

    /// A CANCEL can still act on it (§9.2): no final response yet.
    pub(super) fn is_pending(&self) -> bool {
        self.state == State::Proceeding
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.stop_all();
    }

    pub(super) fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }
}
