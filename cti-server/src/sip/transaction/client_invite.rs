//! The INVITE client transaction (RFC 3261 §17.1.1, Figure 5 as amended by RFC 6026 Figure 3).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::{Outputs, Peer, ProvisionalKey, Timer, TimerConfig, TimerTable, TuEvent, TxId};
use crate::sip::message::{HeaderName, Headers, Request, Response, SipHeaders};
use crate::sip::types::Method;

/// States of Figure 5 plus RFC 6026's Accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug)]
pub(super) struct ClientInvite {
    pub(super) id: TxId,
    pub(super) state: State,
    /// Kept to build the ACK for a non-2xx (§17.1.1.3) and the CANCEL (§9.1).
    pub(super) request: Request,
    pub(super) dest: Peer,
    pub(super) timers: TimerTable,
    a_interval: Duration,
    ack: Option<Request>,
    seen: HashSet<ProvisionalKey>,
    /// A CANCEL asked for before any provisional arrived (§9.1): its id, sent on the first 1xx.
    pub(super) pending_cancel: Option<TxId>,
    /// The CANCEL already sent for this INVITE.
    pub(super) cancel: Option<TxId>,
}

impl ClientInvite {
    /// Sends the INVITE and arms Timers A (UDP only) and B (§17.1.1.2).
    pub(super) fn start(
        id: TxId,
        request: Request,
        dest: Peer,
        now: Instant,
        cfg: &TimerConfig,
        out: &mut Outputs,
    ) -> ClientInvite {
        let mut timers = TimerTable::default();
        if !dest.reliable() {
            timers.set(Timer::A, now + cfg.t1);
        }
        timers.set(Timer::B, now + cfg.t1_x64());
        out.send_request(dest, request.clone());
        ClientInvite {
            id,
            state: State::Calling,
            request,
            dest,
            timers,
            a_interval: cfg.t1,
            ack: None,
            seen: HashSet::new(),
            pending_cancel: None,
            cancel: None,
        }
    }

    pub(super) fn on_timer(
        &mut self,
        now: Instant,
        _cfg: &TimerConfig,
        timer: Timer,
        out: &mut Outputs,
    ) {
        match (self.state, timer) {
            // §17.1.1.2: retransmit and double the interval (no cap for Timer A).
            (State::Calling, Timer::A) => {
                out.send_request(self.dest, self.request.clone());
                self.a_interval *= 2;
                self.timers.set(Timer::A, now + self.a_interval);
            }
            // §17.1.1.2: the TU is told of the timeout (a 408 for it, §8.1.3.1).
            (State::Calling, Timer::B) => {
                out.event(TuEvent::Timeout { tx: self.id });
                self.terminate();
            }
            (State::Completed, Timer::D) | (State::Accepted, Timer::M) => self.terminate(),
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
        let code = response.code;
        match self.state {
            State::Calling | State::Proceeding if code < 200 => {
                self.state = State::Proceeding;
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                if self.seen.insert(super::provisional_key(&response)) {
                    out.event(TuEvent::Response {
                        tx: self.id,
                        response,
                    });
                }
            }
            // RFC 6026 §8.4: a 2xx moves to Accepted, where further 2xx (retransmissions or
            // other forks) still go to the TU, which ACKs them itself (§13.2.2.4).
            State::Calling | State::Proceeding if code < 300 => {
                self.state = State::Accepted;
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                self.timers.set(Timer::M, now + cfg.t1_x64());
                out.event(TuEvent::Response {
                    tx: self.id,
                    response,
                });
            }
            State::Accepted if (200..300).contains(&code) => out.event(TuEvent::Response {
                tx: self.id,
                response,
            }),
            // §17.1.1.2: a 300-699 is ACKed by the transaction and passed up once.
            State::Calling | State::Proceeding => {
                self.timers.stop(Timer::A);
                self.timers.stop(Timer::B);
                let ack = self.build_ack(&response);
                out.send_request(self.dest, ack.clone());
                self.ack = Some(ack);
                out.event(TuEvent::Response {
                    tx: self.id,
                    response,
                });
                self.state = State::Completed;
                let d = cfg.timer_d(self.dest.reliable());
                if d.is_zero() {
                    self.terminate();
                } else {
                    self.timers.set(Timer::D, now + d);
                }
            }
            // §17.1.1.2: a retransmitted final gets the ACK again and is not passed up.
            State::Completed if code >= 300 => {
                if let Some(ack) = &self.ack {
                    out.send_request(self.dest, ack.clone());
                }
            }
            _ => {}
        }
    }

    /// §17.1.1.3: the ACK for a non-2xx final belongs to the INVITE transaction: same
    /// Request-URI, Call-ID, From, CSeq number and top Via as the INVITE, the To of the
    /// response (with its tag), and the INVITE's Route headers.
    fn build_ack(&self, response: &Response) -> Request {
        let mut ack = Request::new(Method::Ack, self.request.uri.clone());
        let mut h = Headers::new();
        if let Some(via) = self.request.top_via() {
            h.push(HeaderName::Via, via.to_string());
        }
        for r in self.request.headers.get_all(&HeaderName::Route) {
            h.push(HeaderName::Route, r);
        }
        h.push(HeaderName::MaxForwards, "70");
        for name in [HeaderName::From, HeaderName::CallId] {
            if let Some(v) = self.request.headers.get(&name) {
                h.push(name, v);
            }
        }
        if let Some(to) = response
            .headers
            .get(&HeaderName::To)
            .or_else(|| self.request.headers.get(&HeaderName::To))
        {
            h.push(HeaderName::To, to);
        }
        let seq = self.request.cseq().map_or(1, |c| c.seq);
        h.push(HeaderName::CSeq, format!("{seq} ACK"));
        ack.headers = h;
        ack
    }

    fn terminate(&mut self) {
        self.state = State::Terminated;
        self.timers.stop_all();
    }

    pub(super) fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }
}
