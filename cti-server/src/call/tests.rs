//! The B2BUA call machine in virtual time: every path from INVITE to record.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::sip::message::SipMessage;
use crate::sip::transaction::TxId;
use crate::sip::types::Transport;

const CALLER_SDP: &str = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n";

fn caller_peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5999".parse().unwrap(),
    }
}

fn agent_peer() -> Peer {
    Peer {
        transport: Transport::Udp,
        addr: "127.0.0.1:5888".parse().unwrap(),
    }
}

fn parse_req(s: String) -> Request {
    match SipMessage::parse(s.as_bytes()).expect("valid test message") {
        SipMessage::Request(r) => r,
        SipMessage::Response(_) => unreachable!(),
    }
}

fn invite(sdp: &str) -> Request {
    parse_req(format!(
        "INVITE sip:1001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKcaller1\r\nFrom: \"Customer\" <sip:+15551234@carrier>;tag=ct\r\nTo: <sip:1001@127.0.0.1>\r\nCall-ID: carrier-call-1\r\nCSeq: 10 INVITE\r\nContact: <sip:carrier@127.0.0.1:5999>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    ))
}

fn config() -> CallConfig {
    CallConfig {
        ring_timeout: Duration::from_secs(20),
        end_timeout: Duration::from_secs(32),
        via: LocalVia::new(Transport::Udp, "127.0.0.1", Some(5060)),
        host: "127.0.0.1".into(),
        sip_port: 5060,
        media_ip: "127.0.0.1".parse().unwrap(),
        codecs: vec![Codec::Pcmu, Codec::Pcma, Codec::Opus],
        user_agent: "test".into(),
        record: crate::config::RecordingPolicy::Always,
        record_keys: "*1".into(),
        beep: Some("beep.wav".into()),
        hold_music: Some("music.wav".into()),
        recordings_dir: "/tmp/rec".into(),
    }
}

fn target() -> Target {
    Target::Agent {
        extension: "1001".into(),
        contact: Uri::parse("sip:1001@127.0.0.1:5888").unwrap(),
        peer: agent_peer(),
    }
}

const CALLER_TX: u64 = 1;

struct Harness {
    call: Call,
    now: Instant,
    out: Vec<Output>,
}

impl Harness {
    fn start() -> Harness {
        Harness::start_to(target())
    }

    fn start_to(target: Target) -> Harness {
        Harness::start_to_with(target, invite(CALLER_SDP))
    }

    fn start_to_with(target: Target, invite: Request) -> Harness {
        Harness::start_keyed(CallKey(7), target, invite)
    }

    fn start_keyed(key: CallKey, target: Target, invite: Request) -> Harness {
        let now = Instant::now();
        let call = Call::new(
            key,
            config(),
            now,
            1_000,
            TxId::for_test(CALLER_TX),
            invite,
            caller_peer(),
            target,
            (LegId(key.0 * 2), LegId(key.0 * 2 + 1)),
        )
        .expect("usable offer");
        let mut h = Harness {
            call,
            now,
            out: Vec::new(),
        };
        h.drain();
        h
    }

    fn drain(&mut self) -> &[Output] {
        self.out.clear();
        while let Some(o) = self.call.poll_output() {
            self.out.push(o);
        }
        &self.out
    }

    /// Media legs up; returns the agent INVITE.
    fn ready(&mut self) -> (ReqRef, Request) {
        let k = self.call.key().0;
        self.call
            .media_ready(self.now, LegId(k * 2), "127.0.0.1:40000".parse().unwrap());
        self.call.media_ready(
            self.now,
            LegId(k * 2 + 1),
            "127.0.0.1:40002".parse().unwrap(),
        );
        self.drain();
        self.sent()
            .into_iter()
            .find(|(_, r, _)| r.method == Method::Invite)
            .map(|(q, r, dest)| {
                assert_eq!(dest, agent_peer());
                (q, r)
            })
            .expect("agent INVITE sent")
    }

    fn sent(&self) -> Vec<(ReqRef, Request, Peer)> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Sip(SipCommand::Send { req, request, dest }) => {
                    Some((*req, request.clone(), *dest))
                }
                _ => None,
            })
            .collect()
    }

    /// Responses sent on `tx`.
    fn responses(&self, tx: u64) -> Vec<Response> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Sip(SipCommand::Respond { tx: t, response })
                    if *t == TxId::for_test(tx) =>
                {
                    Some(response.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn media_ops(&self) -> Vec<MediaOp> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Media(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn ended(&self) -> Option<CallRecord> {
        self.out.iter().find_map(|o| match o {
            Output::Ended(r) => Some((**r).clone()),
            _ => None,
        })
    }

    fn agent_says(&mut self, req: ReqRef, invite: &Request, code: u16, sdp: Option<&str>) {
        let mut r = invite.response(code, "x", Some("agenttag"));
        r.headers
            .push(HeaderName::Contact, "<sip:1001@127.0.0.1:5888>");
        if let Some(s) = sdp {
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = Bytes::from(s.to_string());
        }
        self.call
            .handle_sip(self.now, SipInput::Response { req, response: r });
        self.drain();
    }
}

const AGENT_ANSWER: &str = "v=0\r\no=a 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n";

fn caller_request(method: &str, cseq: u32, to_tag: &str, body: &str) -> Request {
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    parse_req(format!(
        "{method} sip:cti@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{method}{cseq}\r\nFrom: \"Customer\" <sip:+15551234@carrier>;tag=ct\r\nTo: <sip:1001@127.0.0.1>;tag={to_tag}\r\nCall-ID: carrier-call-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:carrier@127.0.0.1:5999>\r\nMax-Forwards: 70\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    ))
}

fn answered() -> (Harness, ReqRef, Request, String) {
    let mut h = Harness::start();
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 180, None);
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    let ok = h.responses(CALLER_TX);
    let tag = ok[0].to_tag().expect("200 has our tag");
    (h, req, inv, tag)
}

#[test]
fn media_legs_come_first_and_the_agent_is_offered_the_callers_codec_first() {
    let mut h = Harness::start();
    let ops = h.media_ops();
    assert!(
        matches!(&ops[0], MediaOp::CreateLeg { leg: LegId(14), params, .. } if params.codec == Codec::Pcma && params.remote == Some("127.0.0.1:6000".parse::<SocketAddr>().unwrap()))
    );
    assert!(
        matches!(&ops[1], MediaOp::CreateLeg { leg: LegId(15), params, .. } if params.remote.is_none())
    );
    let (_, inv) = h.ready();
    let body = std::str::from_utf8(&inv.body).unwrap();
    let m = body.lines().find(|l| l.starts_with("m=audio")).unwrap();
    assert!(m.starts_with("m=audio 40002 RTP/AVP 8 "), "{m}");
    assert!(body.contains("c=IN IP4 127.0.0.1"));
    // The agent's phone shows the caller's number and name.
    let from = inv.from_header().unwrap();
    assert_eq!(from.display.as_deref(), Some("\"Customer\""));
    assert_eq!(
        from.uri.as_sip().unwrap().user.as_deref(),
        Some("+15551234")
    );
    assert_eq!(inv.max_forwards(), Some(69));
}

#[test]
fn answer_bridges_acks_and_answers_the_caller_with_our_sdp() {
    let mut h = Harness::start();
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 180, None);
    let ringing = h.responses(CALLER_TX);
    assert_eq!(ringing.len(), 1);
    assert_eq!(ringing[0].code, 180);
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    let ok = h.responses(CALLER_TX);
    assert_eq!(ok[0].code, 200);
    assert_eq!(
        ok[0].to_tag(),
        ringing[0].to_tag(),
        "one To tag for the caller's dialog"
    );
    let body = std::str::from_utf8(&ok[0].body).unwrap();
    assert!(body.contains("m=audio 40000 RTP/AVP 8"), "{body}");
    assert!(
        h.out.iter().any(
            |o| matches!(o, Output::Sip(SipCommand::Ack { dest, .. }) if *dest == agent_peer())
        )
    );
    let ops = h.media_ops();
    assert!(ops.contains(&MediaOp::Bridge {
        caller: LegId(14),
        agent: LegId(15)
    }));
    assert!(ops.iter().any(|o| matches!(o, MediaOp::Update { leg: LegId(15), params } if params.remote == Some("127.0.0.1:7000".parse().unwrap()))));
    assert!(h.call.is_talking());
}

#[test]
fn requests_to_a_tcp_caller_name_tcp_in_their_via() {
    let tcp_caller = Peer {
        transport: Transport::Tcp,
        addr: "127.0.0.1:5999".parse().unwrap(),
    };
    let now = Instant::now();
    let call = Call::new_hosted(
        CallKey(3),
        config(),
        now,
        0,
        TxId::for_test(CALLER_TX),
        invite(CALLER_SDP),
        tcp_caller,
        (LegId(6), LegId(7)),
        "flow:main".into(),
    )
    .unwrap();
    let mut h = Harness {
        call,
        now,
        out: Vec::new(),
    };
    h.call
        .media_ready(now, LegId(6), "127.0.0.1:40000".parse().unwrap());
    h.drain();
    h.call.hang_up(now, EndCause::Completed);
    h.drain();
    let (_, bye, dest) = h
        .sent()
        .into_iter()
        .find(|(_, r, _)| r.method == Method::Bye)
        .expect("BYE to the caller");
    assert_eq!(dest, tcp_caller);
    let via = bye.headers.get(&HeaderName::Via).unwrap().to_string();
    assert!(via.starts_with("SIP/2.0/TCP "), "{via}");
}

#[test]
fn keys_go_through_to_the_other_party_once_bridged() {
    let (mut h, _, _, tag) = answered();
    h.call.dtmf(h.now, LegId(14), '5');
    h.drain();
    assert_eq!(
        h.media_ops(),
        vec![MediaOp::SendDtmf {
            leg: LegId(15),
            digit: '5'
        }]
    );
    h.call.dtmf(h.now, LegId(15), '#');
    h.drain();
    assert_eq!(
        h.media_ops(),
        vec![MediaOp::SendDtmf {
            leg: LegId(14),
            digit: '#'
        }]
    );
    // A key sent as SIP INFO goes on as RFC 4733 events too.
    let mut info = caller_request("INFO", 11, &tag, "Signal=7\r\nDuration=160\r\n");
    info.headers
        .set(HeaderName::ContentType, "application/dtmf-relay");
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(80),
            request: info,
            source: caller_peer(),
        },
    );
    h.drain();
    assert_eq!(h.responses(80)[0].code, 200);
    assert_eq!(
        h.media_ops(),
        vec![MediaOp::SendDtmf {
            leg: LegId(15),
            digit: '7'
        }]
    );
}

#[test]
fn caller_hangs_up_first() {
    let (mut h, _, _, tag) = answered();
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(50),
            request: caller_request("BYE", 11, &tag, ""),
            source: caller_peer(),
        },
    );
    h.drain();
    assert_eq!(h.responses(50)[0].code, 200);
    let (bye_ref, bye, dest) = h
        .sent()
        .into_iter()
        .find(|(_, r, _)| r.method == Method::Bye)
        .unwrap();
    assert_eq!(dest, agent_peer());
    assert_eq!(bye.to_tag().as_deref(), Some("agenttag"));
    assert!(h.ended().is_none(), "waits for the agent's 200");
    let ok = bye.response(200, "OK", None);
    h.call.handle_sip(
        h.now,
        SipInput::Response {
            req: bye_ref,
            response: ok,
        },
    );
    h.drain();
    let rec = h.ended().expect("record");
    assert_eq!(rec.end_cause, Some(EndCause::CallerHangup));
    assert_eq!(rec.ended_by, Some(Side::Caller));
    assert!(rec.answer_after.is_some());
    assert!(h.media_ops().contains(&MediaOp::EndLeg {
        leg: LegId(14),
        side: Side::Caller
    }));
    assert!(h.media_ops().contains(&MediaOp::EndLeg {
        leg: LegId(15),
        side: Side::Agent
    }));
}

#[test]
fn agent_hangs_up_first() {
    let (mut h, _, inv, _) = answered();
    let mut bye = parse_req(format!(
        "BYE sip:cti@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5888;branch=z9hG4bKab\r\nFrom: <sip:1001@127.0.0.1>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        inv.headers.get(&HeaderName::From).unwrap(),
        inv.call_id().unwrap()
    ));
    bye.headers.set(HeaderName::MaxForwards, "70");
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(60),
            request: bye,
            source: agent_peer(),
        },
    );
    h.drain();
    assert_eq!(h.responses(60)[0].code, 200);
    let (bye_ref, to_caller, dest) = h
        .sent()
        .into_iter()
        .find(|(_, r, _)| r.method == Method::Bye)
        .unwrap();
    assert_eq!(dest, caller_peer());
    assert_eq!(
        to_caller.uri.to_string(),
        "sip:carrier@127.0.0.1:5999",
        "remote target"
    );
    assert_eq!(to_caller.call_id().unwrap().as_str(), "carrier-call-1");
    // The caller never answers the BYE: the call still closes after the end timeout.
    let _ = bye_ref;
    h.now += Duration::from_secs(33);
    h.call.handle_timeout(h.now);
    h.drain();
    let rec = h.ended().expect("record");
    assert_eq!(rec.end_cause, Some(EndCause::AgentHangup));
    assert_eq!(rec.ended_by, Some(Side::Agent));
}

#[test]
fn caller_cancels_while_the_agent_rings() {
    let mut h = Harness::start();
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 180, None);
    let mut cancel = invite(CALLER_SDP);
    cancel.method = Method::Cancel;
    cancel.headers.set(HeaderName::CSeq, "10 CANCEL");
    cancel.body = Bytes::new();
    h.call.handle_sip(
        h.now,
        SipInput::Cancel {
            cancel_tx: TxId::for_test(70),
            request: cancel,
        },
    );
    h.drain();
    assert_eq!(h.responses(70)[0].code, 200);
    assert_eq!(h.responses(CALLER_TX)[0].code, 487);
    assert!(
        h.out
            .iter()
            .any(|o| matches!(o, Output::Sip(SipCommand::Cancel { req: r }) if *r == req))
    );
    h.agent_says(req, &inv, 487, None);
    let rec = h.ended().expect("record after the agent's 487");
    assert_eq!(rec.end_cause, Some(EndCause::CallerCancelled));
    assert!(
        h.responses(CALLER_TX).is_empty(),
        "no second final response"
    );
}

#[test]
fn agent_busy_is_passed_on_as_486() {
    let mut h = Harness::start();
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 486, None);
    assert_eq!(h.responses(CALLER_TX)[0].code, 486);
    assert_eq!(h.ended().unwrap().end_cause, Some(EndCause::AgentBusy));
}

#[test]
fn failures_map_to_sensible_caller_codes() {
    for (agent, caller) in [
        (480, 480),
        (404, 480),
        (503, 480),
        (408, 480),
        (603, 603),
        (488, 488),
        (600, 486),
    ] {
        let mut h = Harness::start();
        let (req, inv) = h.ready();
        h.agent_says(req, &inv, agent, None);
        assert_eq!(h.responses(CALLER_TX)[0].code, caller, "agent {agent}");
    }
}

#[test]
fn ring_timeout_cancels_the_agent_and_the_caller_gets_480() {
    let mut h = Harness::start();
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 180, None);
    assert_eq!(h.call.poll_timeout(), Some(h.now + Duration::from_secs(20)));
    h.now += Duration::from_secs(20);
    h.call.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.responses(CALLER_TX)[0].code, 480);
    assert!(
        h.out
            .iter()
            .any(|o| matches!(o, Output::Sip(SipCommand::Cancel { .. })))
    );
    h.agent_says(req, &inv, 487, None);
    assert_eq!(h.ended().unwrap().end_cause, Some(EndCause::NoAnswer));
}

#[test]
fn a_200_crossing_the_cancel_is_acked_and_hung_up() {
    let mut h = Harness::start();
    let (req, inv) = h.ready();
    h.now += Duration::from_secs(20);
    h.call.handle_timeout(h.now);
    h.drain();
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    assert!(
        h.out
            .iter()
            .any(|o| matches!(o, Output::Sip(SipCommand::Ack { .. })))
    );
    let bye = h
        .sent()
        .into_iter()
        .find(|(_, r, _)| r.method == Method::Bye);
    assert!(bye.is_some(), "the late-answering agent is hung up");
    assert!(
        h.responses(CALLER_TX).is_empty(),
        "the caller already had its 480"
    );
}

#[test]
fn agent_unreachable_timer_b() {
    let mut h = Harness::start();
    let (req, _) = h.ready();
    h.call.handle_sip(h.now, SipInput::Timeout { req });
    h.drain();
    assert_eq!(h.responses(CALLER_TX)[0].code, 480);
    assert_eq!(
        h.ended().unwrap().end_cause,
        Some(EndCause::AgentUnreachable)
    );
}

#[test]
fn hold_and_resume_by_reinvite_are_answered_locally() {
    let (mut h, _, _, tag) = answered();
    let hold_sdp = CALLER_SDP.replace("o=c 1 1", "o=c 1 2") + "a=sendonly\r\n";
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(80),
            request: caller_request("INVITE", 11, &tag, &hold_sdp),
            source: caller_peer(),
        },
    );
    h.drain();
    let ok = &h.responses(80)[0];
    assert_eq!(ok.code, 200);
    let body = std::str::from_utf8(&ok.body).unwrap();
    assert!(body.contains("a=recvonly"), "{body}");
    assert!(h.media_ops().contains(&MediaOp::Hears {
        listener: LegId(14),
        speaker: LegId(15),
        hears: false
    }));
    assert_eq!(h.call.live(false).state, "on_hold");
    let resume_sdp = CALLER_SDP.replace("o=c 1 1", "o=c 1 3");
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(81),
            request: caller_request("INVITE", 12, &tag, &resume_sdp),
            source: caller_peer(),
        },
    );
    h.drain();
    let body = std::str::from_utf8(&h.responses(81)[0].body)
        .unwrap()
        .to_string();
    assert!(
        body.contains("a=sendrecv") || !body.contains("a=recvonly"),
        "{body}"
    );
    assert!(h.media_ops().contains(&MediaOp::Hears {
        listener: LegId(14),
        speaker: LegId(15),
        hears: true
    }));
    assert_eq!(h.call.live(false).state, "talking");
    // A re-INVITE with an older CSeq is refused (§12.2.2) and changes nothing.
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(82),
            request: caller_request("INVITE", 5, &tag, &resume_sdp),
            source: caller_peer(),
        },
    );
    h.drain();
    assert_eq!(h.responses(82)[0].code, 500);
    assert!(h.call.is_talking());
}

#[test]
fn in_dialog_options_and_unknown_dialogs() {
    let (mut h, _, _, tag) = answered();
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(90),
            request: caller_request("OPTIONS", 11, &tag, ""),
            source: caller_peer(),
        },
    );
    h.drain();
    assert_eq!(h.responses(90)[0].code, 200);
}

#[test]
fn media_timeout_ends_both_legs() {
    let (mut h, _, _, _) = answered();
    h.call.media_timeout(h.now, LegId(14));
    h.drain();
    let byes: Vec<_> = h
        .sent()
        .into_iter()
        .filter(|(_, r, _)| r.method == Method::Bye)
        .collect();
    assert_eq!(byes.len(), 2);
    for (req, bye, _) in byes {
        let ok = bye.response(200, "OK", None);
        h.call
            .handle_sip(h.now, SipInput::Response { req, response: ok });
    }
    h.drain();
    let rec = h.ended().unwrap();
    assert_eq!(rec.end_cause, Some(EndCause::MediaTimeout));
}

#[test]
fn an_offer_without_a_common_codec_is_refused_488() {
    let g729 = "v=0\r\no=c 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
    let r = Call::new(
        CallKey(1),
        config(),
        Instant::now(),
        0,
        TxId::for_test(1),
        invite(g729),
        caller_peer(),
        target(),
        (LegId(2), LegId(3)),
    );
    assert_eq!(r.err().unwrap().code, 488);
}

/// A caller whose INVITE has no offer (late offer, RFC 3261 §13.2.1): our 200 carries our
/// offer, the ACK the answer, which retunes the caller's media leg.
#[test]
fn a_late_offer_is_answered_in_the_ack() {
    let mut h = Harness::start_to_with(target(), invite(""));
    let (req, inv) = h.ready();
    // The agent is offered our preferred codec first (the caller said nothing yet).
    let body = std::str::from_utf8(&inv.body).unwrap();
    assert!(body.contains("m=audio 40002 RTP/AVP 0 "), "{body}");
    h.agent_says(req, &inv, 183, Some(AGENT_ANSWER));
    let early = h.responses(CALLER_TX);
    assert_eq!(
        early[0].code, 180,
        "no SDP in an unreliable 183 to a caller without offer"
    );
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    let ok = &h.responses(CALLER_TX)[0];
    assert_eq!(ok.code, 200);
    let offer = std::str::from_utf8(&ok.body).unwrap();
    assert!(
        offer.contains("m=audio 40000 RTP/AVP 0 8"),
        "our offer: {offer}"
    );
    let tag = ok.to_tag().unwrap();
    let mut ack = caller_request(
        "ACK",
        10,
        &tag,
        CALLER_SDP
            .replace("RTP/AVP 8 0 101", "RTP/AVP 8 101")
            .as_str(),
    );
    ack.headers.set(HeaderName::ContentType, "application/sdp");
    h.call.handle_sip(h.now, SipInput::Ack { request: ack });
    h.drain();
    assert!(h.media_ops().iter().any(|o| matches!(o, MediaOp::Update { leg: LegId(14), params } if params.codec == Codec::Pcma && params.remote == Some("127.0.0.1:6000".parse().unwrap()))), "{:?}", h.media_ops());
    assert!(h.call.is_talking());
}

#[test]
fn a_late_offer_whose_ack_has_no_answer_ends_the_call() {
    let mut h = Harness::start_to_with(target(), invite(""));
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    let tag = h.responses(CALLER_TX)[0].to_tag().unwrap();
    h.call.handle_sip(
        h.now,
        SipInput::Ack {
            request: caller_request("ACK", 10, &tag, ""),
        },
    );
    h.drain();
    let byes: Vec<Peer> = h
        .sent()
        .into_iter()
        .filter(|(_, r, _)| r.method == Method::Bye)
        .map(|(_, _, d)| d)
        .collect();
    assert!(
        byes.contains(&caller_peer()) && byes.contains(&agent_peer()),
        "{byes:?}"
    );
    assert!(!h.call.is_talking());
}

#[test]
fn a_malformed_offer_is_a_bad_request() {
    let r = Call::new(
        CallKey(1),
        config(),
        Instant::now(),
        0,
        TxId::for_test(1),
        invite("v=0\r\nthis is not sdp\r\n"),
        caller_peer(),
        target(),
        (LegId(2), LegId(3)),
    );
    assert_eq!(r.err().unwrap().code, 400);
}

#[test]
fn shutdown_while_ringing_refuses_the_caller_and_cancels_the_agent() {
    let mut h = Harness::start();
    let (req, inv) = h.ready();
    h.call.shutdown(h.now);
    h.drain();
    assert_eq!(h.responses(CALLER_TX)[0].code, 503);
    h.agent_says(req, &inv, 487, None);
    assert_eq!(h.ended().unwrap().end_cause, Some(EndCause::Shutdown));
}

fn timer_invite(extra: &str) -> Request {
    let mut inv = invite(CALLER_SDP);
    for line in extra.split("\r\n").filter(|l| !l.is_empty()) {
        let (n, v) = line.split_once(": ").unwrap();
        inv.headers
            .push(crate::sip::message::HeaderName::parse(n), v.to_string());
    }
    inv
}

fn start_with(inv: Request) -> Result<Harness, Response> {
    let now = Instant::now();
    let call = Call::new(
        CallKey(9),
        config(),
        now,
        0,
        TxId::for_test(CALLER_TX),
        inv,
        caller_peer(),
        target(),
        (LegId(18), LegId(19)),
    )?;
    let mut h = Harness {
        call,
        now,
        out: Vec::new(),
    };
    h.drain();
    h.call
        .media_ready(h.now, LegId(18), "127.0.0.1:40000".parse().unwrap());
    h.call
        .media_ready(h.now, LegId(19), "127.0.0.1:40002".parse().unwrap());
    h.drain();
    let (req, inv) = h
        .sent()
        .into_iter()
        .find(|(_, r, _)| r.method == Method::Invite)
        .map(|(q, r, _)| (q, r))
        .unwrap();
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    Ok(h)
}

#[test]
fn rfc4028_too_small_interval_gets_422_with_min_se() {
    let r = start_with(timer_invite("Supported: timer\r\nSession-Expires: 30"));
    let resp = r.err().expect("refused");
    assert_eq!(resp.code, 422);
    assert_eq!(resp.headers.get(&HeaderName::MinSe), Some("90"));
}

#[test]
fn rfc4028_caller_refreshes_and_an_unrefreshed_session_ends() {
    let mut h = start_with(timer_invite(
        "Supported: timer\r\nSession-Expires: 120;refresher=uac",
    ))
    .unwrap();
    let ok = h.responses(CALLER_TX)[0].clone();
    assert_eq!(
        ok.headers.get(&HeaderName::SessionExpires),
        Some("120;refresher=uac")
    );
    assert_eq!(ok.headers.get(&HeaderName::Require), Some("timer"));
    let tag = ok.to_tag().unwrap();
    // A refresh (re-INVITE) at 60 s moves the expiry to 60 + 120 - 32 = 148 s.
    h.now += Duration::from_secs(60);
    h.call.handle_timeout(h.now);
    let refresh = caller_request(
        "INVITE",
        11,
        &tag,
        &CALLER_SDP.replace("o=c 1 1", "o=c 1 2"),
    );
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(100),
            request: refresh,
            source: caller_peer(),
        },
    );
    h.drain();
    let ok = &h.responses(100)[0];
    assert_eq!(
        ok.headers.get(&HeaderName::SessionExpires),
        Some("120;refresher=uac")
    );
    assert_eq!(h.call.poll_timeout(), Some(h.now + Duration::from_secs(88)));
    h.now += Duration::from_secs(88);
    h.call.handle_timeout(h.now);
    h.drain();
    let byes = h
        .sent()
        .into_iter()
        .filter(|(_, r, _)| r.method == Method::Bye)
        .count();
    assert_eq!(byes, 2, "both legs are hung up when the session expires");
}

#[test]
fn rfc4028_we_refresh_when_the_caller_does_not_support_timers() {
    let mut inv = timer_invite("Session-Expires: 100\r\nAllow: INVITE, ACK, BYE, CANCEL, UPDATE");
    inv.headers.remove(&HeaderName::Supported);
    let mut h = start_with(inv).unwrap();
    let ok = h.responses(CALLER_TX)[0].clone();
    assert_eq!(
        ok.headers.get(&HeaderName::SessionExpires),
        Some("100;refresher=uas")
    );
    assert_eq!(ok.headers.get(&HeaderName::Require), None);
    h.now += Duration::from_secs(50);
    h.call.handle_timeout(h.now);
    h.drain();
    let (req, update, dest) = h
        .sent()
        .into_iter()
        .find(|(_, r, _)| r.method == Method::Update)
        .expect("UPDATE refresh at half the interval");
    assert_eq!(dest, caller_peer());
    assert_eq!(update.uri.to_string(), "sip:carrier@127.0.0.1:5999");
    h.call.handle_sip(
        h.now,
        SipInput::Response {
            req,
            response: update.response(200, "OK", None),
        },
    );
    h.drain();
    assert_eq!(h.call.poll_timeout(), Some(h.now + Duration::from_secs(50)));
    assert!(h.call.is_talking());
    // A 481 to the refresh means the caller's side is gone.
    h.now += Duration::from_secs(50);
    h.call.handle_timeout(h.now);
    h.drain();
    let (req, update, _) = h
        .sent()
        .into_iter()
        .find(|(_, r, _)| r.method == Method::Update)
        .unwrap();
    h.call.handle_sip(
        h.now,
        SipInput::Response {
            req,
            response: update.response(481, "Gone", None),
        },
    );
    h.drain();
    assert!(!h.call.is_talking());
}

// ------------------------------------------------------------------------------------------
// Outbound trunk: external numbers, digest challenges on the outgoing INVITE (RFC 3261 §22.2).
// ------------------------------------------------------------------------------------------

const TRUNK_PASSWORD: &str = "trunkpass";

fn trunk_target(credentials: bool, from_user: Option<&str>) -> Target {
    Target::Trunk {
        number: "+15551234567".into(),
        uri: Uri::parse("sip:+15551234567@trunk.example:5888").unwrap(),
        peer: agent_peer(),
        credentials: credentials.then(|| TrunkCredentials {
            username: "trunkuser".into(),
            password: TRUNK_PASSWORD.into(),
        }),
        from_user: from_user.map(str::to_string),
    }
}

fn www_auth(nonce: &str, extra: &str) -> String {
    format!("Digest realm=\"trunk.example\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{extra}")
}

impl Harness {
    /// The trunk answers `inv` with a 401/407 carrying `challenge`.
    fn challenged(&mut self, req: ReqRef, inv: &Request, code: u16, challenge: &str) {
        let mut r = inv.response(code, "Unauthorized", Some("trunktag"));
        let name = if code == 401 {
            HeaderName::WwwAuthenticate
        } else {
            HeaderName::ProxyAuthenticate
        };
        r.headers.push(name, challenge.to_string());
        self.call
            .handle_sip(self.now, SipInput::Response { req, response: r });
        self.drain();
    }

    /// The one INVITE sent by the last input.
    fn resent_invite(&self) -> (ReqRef, Request) {
        let invites: Vec<_> = self
            .sent()
            .into_iter()
            .filter(|(_, r, _)| r.method == Method::Invite)
            .collect();
        assert_eq!(invites.len(), 1, "one new INVITE");
        let (req, inv, dest) = invites.into_iter().next().unwrap();
        assert_eq!(dest, agent_peer());
        (req, inv)
    }
}

/// Checks `value` answers `nonce` for INVITE to `uri` with the trunk's credentials.
fn assert_digest(value: &str, nonce: &str, uri: &str) {
    let creds = crate::sip::auth::DigestCredentials::parse(value).expect("Digest credentials");
    assert_eq!(creds.username, "trunkuser");
    assert_eq!(creds.realm, "trunk.example");
    assert_eq!(creds.nonce, nonce);
    assert_eq!(creds.uri, uri);
    assert_eq!(creds.qop.as_deref(), Some("auth"));
    assert_eq!(creds.nc.as_deref(), Some("00000001"));
    let expected = creds
        .expected_response(crate::sip::auth::Algorithm::Md5, "INVITE", TRUNK_PASSWORD)
        .unwrap();
    assert_eq!(creds.response, expected, "{value}");
}

#[test]
fn trunk_invite_carries_the_number_and_the_callers_number() {
    let mut h = Harness::start_to(trunk_target(true, None));
    let (_, inv) = h.ready();
    assert_eq!(inv.uri.to_string(), "sip:+15551234567@trunk.example:5888");
    assert_eq!(
        inv.to_header().unwrap().uri.to_string(),
        "sip:+15551234567@trunk.example"
    );
    let from = inv.from_header().unwrap();
    assert_eq!(from.uri.to_string(), "sip:+15551234@trunk.example");
    assert_eq!(from.display.as_deref(), Some("\"Customer\""));
    assert_eq!(h.call.record.agent_extension(), None);

    // A configured caller id replaces the caller's number and name.
    let mut h = Harness::start_to(trunk_target(true, Some("+4930123456")));
    let (_, inv) = h.ready();
    let from = inv.from_header().unwrap();
    assert_eq!(from.uri.to_string(), "sip:+4930123456@trunk.example");
    assert_eq!(from.display, None);
}

#[test]
fn rfc3261_22_2_challenge_401_is_answered_with_a_new_invite_then_bridged() {
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.agent_says(req1, &inv1, 100, None);
    h.challenged(req1, &inv1, 401, &www_auth("n-1", ""));
    assert!(
        h.responses(CALLER_TX).is_empty(),
        "the caller gets nothing for the 401"
    );
    assert!(h.ended().is_none());
    let (req2, inv2) = h.resent_invite();
    assert_ne!(req2, req1);
    assert_eq!(inv2.cseq().unwrap().seq, 2);
    assert_eq!(inv2.call_id(), inv1.call_id());
    assert_eq!(
        inv2.headers.get(&HeaderName::From),
        inv1.headers.get(&HeaderName::From),
        "same From with its tag"
    );
    assert_eq!(inv2.from_tag(), inv1.from_tag());
    assert_eq!(
        inv2.headers.get(&HeaderName::To),
        inv1.headers.get(&HeaderName::To)
    );
    assert_eq!(inv2.to_tag(), None);
    assert_eq!(inv2.uri, inv1.uri);
    assert_eq!(inv2.body, inv1.body, "same offer");
    let (b1, b2) = (inv1.top_via().unwrap(), inv2.top_via().unwrap());
    assert_ne!(b1.branch(), b2.branch(), "a new transaction");
    assert!(b2.branch().unwrap().starts_with("z9hG4bK"));
    assert_eq!(inv2.headers.get(&HeaderName::ProxyAuthorization), None);
    assert_digest(
        inv2.headers.get(&HeaderName::Authorization).unwrap(),
        "n-1",
        "sip:+15551234567@trunk.example:5888",
    );
    // The ring timeout kept running from the first INVITE.
    assert_eq!(h.call.poll_timeout(), Some(h.now + Duration::from_secs(20)));

    h.agent_says(req2, &inv2, 180, None);
    assert_eq!(h.responses(CALLER_TX)[0].code, 180);
    h.agent_says(req2, &inv2, 200, Some(AGENT_ANSWER));
    assert_eq!(h.responses(CALLER_TX)[0].code, 200);
    let ack = h
        .out
        .iter()
        .find_map(|o| match o {
            Output::Sip(SipCommand::Ack { request, .. }) => Some(request.clone()),
            _ => None,
        })
        .expect("2xx ACKed");
    // §13.2.2.4: the ACK has the INVITE's CSeq number and credentials.
    assert_eq!(ack.cseq().unwrap().seq, 2);
    assert_eq!(
        ack.headers.get(&HeaderName::Authorization),
        inv2.headers.get(&HeaderName::Authorization)
    );
    assert!(h.call.is_talking());
    // The BYE follows the INVITE's CSeq.
    h.call.media_timeout(h.now, LegId(14));
    h.drain();
    let bye = h
        .sent()
        .into_iter()
        .find(|(_, r, d)| r.method == Method::Bye && *d == agent_peer())
        .unwrap()
        .1;
    assert_eq!(bye.cseq().unwrap().seq, 3);
}

#[test]
fn rfc3261_22_2_wrong_credentials_are_not_retried_and_the_caller_gets_480() {
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.challenged(req1, &inv1, 401, &www_auth("n-1", ""));
    let (req2, inv2) = h.resent_invite();
    // A fresh nonce without stale=true: the password was wrong.
    h.challenged(req2, &inv2, 401, &www_auth("n-2", ""));
    assert!(
        h.sent().iter().all(|(_, r, _)| r.method != Method::Invite),
        "no third INVITE"
    );
    assert_eq!(h.responses(CALLER_TX)[0].code, 480);
    let rec = h.ended().expect("record");
    assert_eq!(rec.end_cause, Some(EndCause::AgentRejected(401)));
    assert_eq!(rec.end_cause.unwrap().as_str(), "agent_rejected_401");
    assert_eq!(rec.agent_extension(), None);

    // The trunk refusing the authenticated INVITE with 403: the caller gets 403.
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.challenged(req1, &inv1, 401, &www_auth("n-1", ""));
    let (req2, inv2) = h.resent_invite();
    h.agent_says(req2, &inv2, 403, None);
    assert_eq!(h.responses(CALLER_TX)[0].code, 403);
    assert_eq!(
        h.ended().unwrap().end_cause,
        Some(EndCause::AgentRejected(403))
    );
}

#[test]
fn rfc7616_stale_nonce_is_retried_once_more() {
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.challenged(req1, &inv1, 401, &www_auth("n-1", ""));
    let (req2, inv2) = h.resent_invite();
    h.challenged(req2, &inv2, 401, &www_auth("n-2", ", stale=true"));
    let (_, inv3) = h.resent_invite();
    assert_eq!(inv3.cseq().unwrap().seq, 3);
    assert_eq!(inv3.headers.count(&HeaderName::Authorization), 1);
    assert_digest(
        inv3.headers.get(&HeaderName::Authorization).unwrap(),
        "n-2",
        "sip:+15551234567@trunk.example:5888",
    );
    assert!(h.responses(CALLER_TX).is_empty());
}

#[test]
fn rfc3261_22_3_proxy_challenge_407_gets_proxy_authorization() {
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.challenged(req1, &inv1, 407, &www_auth("p-1", ""));
    let (req2, inv2) = h.resent_invite();
    assert_eq!(inv2.headers.get(&HeaderName::Authorization), None);
    assert_digest(
        inv2.headers.get(&HeaderName::ProxyAuthorization).unwrap(),
        "p-1",
        "sip:+15551234567@trunk.example:5888",
    );
    // The UAS behind the proxy challenges too: both credentials go in the next INVITE.
    h.challenged(req2, &inv2, 401, &www_auth("u-1", ""));
    let (req3, inv3) = h.resent_invite();
    assert_eq!(inv3.cseq().unwrap().seq, 3);
    assert_eq!(inv3.headers.count(&HeaderName::ProxyAuthorization), 1);
    assert_eq!(inv3.headers.count(&HeaderName::Authorization), 1);
    // The proxy rejecting our credentials again: 480 and the record says 407.
    h.challenged(req3, &inv3, 407, &www_auth("p-2", ""));
    assert_eq!(h.responses(CALLER_TX)[0].code, 480);
    assert_eq!(
        h.ended().unwrap().end_cause,
        Some(EndCause::AgentRejected(407))
    );
}

#[test]
fn cancel_after_the_retry_cancels_the_second_invite() {
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.challenged(req1, &inv1, 401, &www_auth("n-1", ""));
    let (req2, inv2) = h.resent_invite();
    h.agent_says(req2, &inv2, 180, None);
    let mut cancel = invite(CALLER_SDP);
    cancel.method = Method::Cancel;
    cancel.headers.set(HeaderName::CSeq, "10 CANCEL");
    cancel.body = Bytes::new();
    h.call.handle_sip(
        h.now,
        SipInput::Cancel {
            cancel_tx: TxId::for_test(70),
            request: cancel,
        },
    );
    h.drain();
    assert_eq!(h.responses(CALLER_TX)[0].code, 487);
    let cancels: Vec<ReqRef> = h
        .out
        .iter()
        .filter_map(|o| match o {
            Output::Sip(SipCommand::Cancel { req }) => Some(*req),
            _ => None,
        })
        .collect();
    assert_eq!(cancels, vec![req2], "the CANCEL targets the retried INVITE");
    h.agent_says(req2, &inv2, 487, None);
    assert_eq!(
        h.ended().unwrap().end_cause,
        Some(EndCause::CallerCancelled)
    );
}

#[test]
fn ring_timeout_runs_across_the_retry() {
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.now += Duration::from_secs(5);
    h.challenged(req1, &inv1, 401, &www_auth("n-1", ""));
    let (req2, inv2) = h.resent_invite();
    h.now += Duration::from_secs(15);
    h.call.handle_timeout(h.now);
    h.drain();
    assert_eq!(h.responses(CALLER_TX)[0].code, 480);
    assert!(
        h.out
            .iter()
            .any(|o| matches!(o, Output::Sip(SipCommand::Cancel { req }) if *req == req2))
    );
    h.agent_says(req2, &inv2, 487, None);
    assert_eq!(h.ended().unwrap().end_cause, Some(EndCause::NoAnswer));
}

#[test]
fn a_challenge_without_credentials_or_after_cancel_is_a_failure() {
    let mut h = Harness::start_to(trunk_target(false, None));
    let (req1, inv1) = h.ready();
    h.challenged(req1, &inv1, 401, &www_auth("n-1", ""));
    assert!(h.sent().is_empty(), "nothing to answer with");
    assert_eq!(h.responses(CALLER_TX)[0].code, 480);
    assert_eq!(
        h.ended().unwrap().end_cause,
        Some(EndCause::AgentRejected(401))
    );

    // A challenge we cannot compute (auth-int only) is a failure too.
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.challenged(
        req1,
        &inv1,
        401,
        "Digest realm=\"trunk.example\", nonce=\"n\", qop=\"auth-int\"",
    );
    assert_eq!(h.responses(CALLER_TX)[0].code, 480);

    // The caller left while the first INVITE was out: its 401 is not answered.
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.call.shutdown(h.now);
    h.drain();
    h.challenged(req1, &inv1, 401, &www_auth("n-1", ""));
    assert!(h.sent().iter().all(|(_, r, _)| r.method != Method::Invite));
    assert_eq!(h.ended().unwrap().end_cause, Some(EndCause::Shutdown));
}

#[test]
fn rfc2069_challenge_without_qop_is_answered() {
    let mut h = Harness::start_to(trunk_target(true, None));
    let (req1, inv1) = h.ready();
    h.challenged(
        req1,
        &inv1,
        401,
        "Digest realm=\"trunk.example\", nonce=\"old\", opaque=\"o1\"",
    );
    let (_, inv2) = h.resent_invite();
    let v = inv2.headers.get(&HeaderName::Authorization).unwrap();
    let creds = crate::sip::auth::DigestCredentials::parse(v).unwrap();
    assert_eq!((creds.qop.as_deref(), creds.nc.as_deref()), (None, None));
    assert_eq!(creds.opaque.as_deref(), Some("o1"));
    let alg = crate::sip::auth::Algorithm::Md5;
    let ha1 = alg.hash(&format!("trunkuser:trunk.example:{TRUNK_PASSWORD}"));
    let ha2 = alg.hash("INVITE:sip:+15551234567@trunk.example:5888");
    assert_eq!(creds.response, alg.hash(&format!("{ha1}:old:{ha2}")));
}

#[test]
fn legacy_hold_address_is_never_sent_to() {
    let n = Negotiated {
        codec: Codec::Pcmu,
        pt: 0,
        dtmf_pt: None,
        remote: "0.0.0.0:6000".parse().unwrap(),
        direction: Direction::RecvOnly,
        ptime: 20,
        rtcp_mux: false,
        srtp: None,
    };
    assert_eq!(LegParams::from_negotiated(&n).remote, None);
    let n = Negotiated {
        remote: "127.0.0.1:6000".parse().unwrap(),
        ..n
    };
    assert_eq!(
        LegParams::from_negotiated(&n).remote,
        Some("127.0.0.1:6000".parse().unwrap())
    );
}

#[test]
fn media_timeout_on_the_agent_leg_is_recorded_as_the_agents() {
    let (mut h, _, _, _) = answered();
    h.call.media_timeout(h.now, LegId(15));
    h.drain();
    for (req, bye, _) in h
        .sent()
        .into_iter()
        .filter(|(_, r, _)| r.method == Method::Bye)
    {
        let ok = bye.response(200, "OK", None);
        h.call
            .handle_sip(h.now, SipInput::Response { req, response: ok });
    }
    h.drain();
    let rec = h.ended().unwrap();
    assert_eq!(rec.end_cause, Some(EndCause::MediaTimeout));
    assert_eq!(rec.ended_by, Some(Side::Agent));
}

/// A call the server answers itself, for `service`: key `key`, legs `2 key` and `2 key + 1`.
fn start_hosted(key: u64, service: &str) -> Harness {
    let now = Instant::now();
    let call = Call::new_hosted(
        CallKey(key),
        config(),
        now,
        1_000,
        TxId::for_test(CALLER_TX),
        invite(CALLER_SDP),
        caller_peer(),
        (LegId(key * 2), LegId(key * 2 + 1)),
        service.into(),
    )
    .expect("usable offer");
    let mut h = Harness {
        call,
        now,
        out: Vec::new(),
    };
    h.drain();
    h
}

mod hosted {
    //! Calls the server answers itself: prompts, keys, dialing agents one attempt at a time.
    use super::*;

    fn start() -> Harness {
        super::start_hosted(7, "flow:main")
    }

    /// The caller leg up and answered; returns our To tag.
    fn answered_by_us(h: &mut Harness) -> String {
        h.call
            .media_ready(h.now, LegId(14), "127.0.0.1:40000".parse().unwrap());
        h.drain();
        let ok = h.responses(CALLER_TX);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].code, 200);
        assert!(
            std::str::from_utf8(&ok[0].body)
                .unwrap()
                .contains("m=audio 40000 RTP/AVP 8")
        );
        assert_eq!(h.notices(), vec![Notice::Answered]);
        ok[0].to_tag().unwrap()
    }

    /// Dials the agent; returns the INVITE once its media leg is up.
    fn dial(h: &mut Harness, ring: Option<Duration>) -> (ReqRef, Request) {
        assert!(h.call.dial(h.now, target(), ring));
        h.drain();
        assert!(h.media_ops().iter().any(|o| matches!(
            o,
            MediaOp::CreateLeg {
                leg: LegId(15),
                side: Side::Agent,
                ..
            }
        )));
        assert!(
            h.sent().is_empty(),
            "no INVITE before the agent leg has a port"
        );
        h.call
            .media_ready(h.now, LegId(15), "127.0.0.1:40002".parse().unwrap());
        h.drain();
        h.sent()
            .into_iter()
            .find(|(_, r, _)| r.method == Method::Invite)
            .map(|(q, r, _)| (q, r))
            .expect("agent INVITE")
    }

    fn caller_bye(h: &mut Harness, tag: &str) {
        h.call.handle_sip(
            h.now,
            SipInput::Request {
                tx: TxId::for_test(50),
                request: caller_request("BYE", 11, tag, ""),
                source: caller_peer(),
            },
        );
        h.drain();
    }

    #[test]
    fn only_the_caller_leg_is_made_and_the_server_answers() {
        let mut h = start();
        let ops = h.media_ops();
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert!(h.responses(CALLER_TX).is_empty());
        answered_by_us(&mut h);
        assert!(
            h.out
                .iter()
                .any(|o| matches!(o, Output::Sip(SipCommand::BindDialog { .. })))
        );
    }

    #[test]
    fn prompts_play_in_order_and_stale_ends_are_ignored() {
        let mut h = start();
        answered_by_us(&mut h);
        h.call
            .play(vec!["a.wav".into(), "b.wav".into()], false, true);
        h.drain();
        let id = match &h.media_ops()[..] {
            [
                MediaOp::Play {
                    prompt,
                    id,
                    interruptible: true,
                    looped: false,
                    ..
                },
            ] => {
                assert_eq!(prompt, &PathBuf::from("a.wav"));
                *id
            }
            other => panic!("{other:?}"),
        };
        // An end from an earlier play changes nothing.
        h.call.prompt_ended(LegId(14), id - 1, false);
        assert!(h.drain().is_empty());
        h.call.prompt_ended(LegId(14), id, false);
        h.drain();
        assert!(
            matches!(&h.media_ops()[..], [MediaOp::Play { prompt, .. }] if prompt == &PathBuf::from("b.wav"))
        );
        assert!(h.notices().is_empty());
        h.call.prompt_ended(LegId(14), id, false);
        h.drain();
        assert_eq!(h.notices(), vec![Notice::PromptFinished]);
        assert!(!h.call.is_playing());
    }

    #[test]
    fn a_key_interrupts_and_reaches_the_service_and_hold_music_loops() {
        let mut h = start();
        answered_by_us(&mut h);
        h.call.play(vec!["menu.wav".into()], false, true);
        h.drain();
        h.call.dtmf(h.now, LegId(14), '1');
        h.drain();
        assert_eq!(h.notices(), vec![Notice::Digit('1')]);
        assert!(!h.call.is_playing());
        // Keys from the agent leg are not the caller's.
        h.call.dtmf(h.now, LegId(15), '9');
        assert!(h.drain().is_empty());
        h.call.play(vec!["moh.wav".into()], true, false);
        h.drain();
        assert!(matches!(
            &h.media_ops()[..],
            [MediaOp::Play { looped: true, .. }]
        ));
        h.call
            .play(vec!["pos.wav".into(), "moh.wav".into()], true, false);
        h.drain();
        let id = match &h.media_ops()[..] {
            [
                MediaOp::Play {
                    id, looped: false, ..
                },
            ] => *id,
            other => panic!("{other:?}"),
        };
        h.call.prompt_ended(LegId(14), id, false);
        h.call.prompt_ended(LegId(14), id, false);
        h.drain();
        assert!(
            matches!(&h.media_ops()[..], [MediaOp::Play { prompt: a, .. }, MediaOp::Play { prompt: b, .. }] if a == &PathBuf::from("moh.wav") && b == &PathBuf::from("pos.wav")),
            "a looped sequence starts over"
        );
        assert!(h.notices().is_empty());
    }

    #[test]
    fn sip_info_keys_count_like_rtp_keys() {
        let mut h = start();
        let tag = answered_by_us(&mut h);
        let mut info = caller_request("INFO", 11, &tag, "Signal=5\r\nDuration=160\r\n");
        info.headers
            .set(HeaderName::ContentType, "application/dtmf-relay");
        h.call.handle_sip(
            h.now,
            SipInput::Request {
                tx: TxId::for_test(70),
                request: info,
                source: caller_peer(),
            },
        );
        h.drain();
        assert_eq!(h.responses(70)[0].code, 200);
        assert_eq!(h.notices(), vec![Notice::Digit('5')]);
        for (ctype, body, want) in [
            ("application/dtmf", "#", Some('#')),
            ("application/dtmf-relay", "Signal=11", Some('#')),
            ("application/dtmf-relay", "Signal=x", None),
            ("text/plain", "5", None),
        ] {
            let mut r = caller_request("INFO", 12, &tag, body);
            r.headers.set(HeaderName::ContentType, ctype);
            assert_eq!(super::super::hosted::info_digit(&r), want, "{ctype} {body}");
        }
    }

    #[test]
    fn agent_answer_stops_the_music_bridges_and_a_caller_bye_ends_both() {
        let mut h = start();
        let tag = answered_by_us(&mut h);
        h.call.play(vec!["moh.wav".into()], true, false);
        h.drain();
        let (req, inv) = dial(&mut h, None);
        assert_eq!(
            inv.to_header()
                .unwrap()
                .uri
                .as_sip()
                .unwrap()
                .user
                .as_deref(),
            Some("1001")
        );
        h.agent_says(req, &inv, 180, None);
        assert_eq!(h.notices(), vec![Notice::AgentRinging]);
        assert!(
            h.responses(CALLER_TX).is_empty(),
            "nothing relayed to an answered caller"
        );
        h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
        assert!(
            h.out
                .iter()
                .any(|o| matches!(o, Output::Sip(SipCommand::Ack { .. })))
        );
        let ops = h.media_ops();
        assert!(ops.contains(&MediaOp::StopPlay { leg: LegId(14) }));
        assert!(ops.contains(&MediaOp::Bridge {
            caller: LegId(14),
            agent: LegId(15)
        }));
        assert_eq!(h.notices(), vec![Notice::AgentAnswered]);
        assert!(h.call.agent_connected());
        caller_bye(&mut h, &tag);
        assert_eq!(h.notices(), vec![Notice::Ending(EndCause::CallerHangup)]);
        let (bye_ref, bye, _) = h
            .sent()
            .into_iter()
            .find(|(_, r, _)| r.method == Method::Bye)
            .unwrap();
        h.call.handle_sip(
            h.now,
            SipInput::Response {
                req: bye_ref,
                response: bye.response(200, "OK", None),
            },
        );
        h.drain();
        let rec = h.ended().expect("record");
        assert!(rec.connect_after.is_some());
        assert_eq!(rec.agent_extension(), Some("1001"));
        assert_eq!(rec.services, vec!["flow:main".to_string()]);
    }

    #[test]
    fn a_busy_agent_leaves_the_caller_waiting_and_the_next_dial_works() {
        let mut h = start();
        answered_by_us(&mut h);
        let (req, inv) = dial(&mut h, None);
        assert!(!h.call.dial(h.now, target(), None), "one attempt at a time");
        h.agent_says(req, &inv, 486, None);
        assert_eq!(h.notices(), vec![Notice::AgentFailed(EndCause::AgentBusy)]);
        assert!(h.media_ops().contains(&MediaOp::EndLeg {
            leg: LegId(15),
            side: Side::Agent
        }));
        assert!(h.responses(CALLER_TX).is_empty());
        assert!(h.ended().is_none());
        let (req2, inv2) = dial(&mut h, None);
        assert_ne!(
            inv2.call_id(),
            inv.call_id(),
            "a new dialog for a new attempt"
        );
        h.agent_says(req2, &inv2, 200, Some(AGENT_ANSWER));
        assert_eq!(h.notices(), vec![Notice::AgentAnswered]);
    }

    #[test]
    fn ring_timeout_cancels_and_an_answer_crossing_the_cancel_is_hung_up() {
        let mut h = start();
        answered_by_us(&mut h);
        let (req, inv) = dial(&mut h, Some(Duration::from_secs(15)));
        h.agent_says(req, &inv, 180, None);
        h.now += Duration::from_secs(15);
        assert_eq!(h.call.poll_timeout(), Some(h.now));
        h.call.handle_timeout(h.now);
        h.drain();
        assert!(
            h.out
                .iter()
                .any(|o| matches!(o, Output::Sip(SipCommand::Cancel { req: r }) if *r == req))
        );
        assert_eq!(h.notices(), vec![Notice::AgentFailed(EndCause::NoAnswer)]);
        // The agent picked up just as we cancelled.
        h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
        assert!(
            h.notices().is_empty(),
            "the service heard of this attempt already"
        );
        assert!(h.sent().iter().any(|(_, r, _)| r.method == Method::Bye));
        assert!(!h.call.agent_connected());
        assert!(h.ended().is_none(), "the caller is still there");
    }

    #[test]
    fn the_next_dial_does_not_wait_for_a_cancelled_one_whose_late_answer_is_hung_up() {
        let mut h = start();
        answered_by_us(&mut h);
        let (req1, inv1) = dial(&mut h, None);
        h.agent_says(req1, &inv1, 180, None);
        h.call.cancel_dial(h.now);
        h.drain();
        assert!(
            h.out
                .iter()
                .any(|o| matches!(o, Output::Sip(SipCommand::Cancel { req }) if *req == req1))
        );
        assert!(h.media_ops().contains(&MediaOp::EndLeg {
            leg: LegId(15),
            side: Side::Agent
        }));
        // The ACD offers the next agent before the first phone's 487 arrived.
        let (req2, inv2) = dial(&mut h, None);
        assert_ne!(req1, req2);
        // The first phone answers after all: acknowledged and hung up, nobody told.
        h.agent_says(req1, &inv1, 200, Some(AGENT_ANSWER));
        let sent = h.sent();
        assert!(h.out.iter().any(|o| matches!(o, Output::Sip(SipCommand::Ack { request, .. }) if request.call_id() == inv1.call_id())));
        assert!(
            sent.iter()
                .any(|(_, r, _)| r.method == Method::Bye && r.call_id() == inv1.call_id())
        );
        assert!(h.notices().is_empty());
        // The second attempt goes on normally.
        h.agent_says(req2, &inv2, 200, Some(AGENT_ANSWER));
        assert_eq!(h.notices(), vec![Notice::AgentAnswered]);
        assert!(h.call.agent_connected());
    }

    #[test]
    fn cancel_dial_while_the_leg_is_being_made_sends_nothing() {
        let mut h = start();
        answered_by_us(&mut h);
        assert!(h.call.dial(h.now, target(), None));
        h.drain();
        h.call.cancel_dial(h.now);
        h.call
            .media_ready(h.now, LegId(15), "127.0.0.1:40002".parse().unwrap());
        h.drain();
        assert!(h.sent().is_empty());
        assert!(!h.call.is_dialing());
    }

    #[test]
    fn caller_hangs_up_while_the_agent_rings() {
        let mut h = start();
        let tag = answered_by_us(&mut h);
        let (req, inv) = dial(&mut h, None);
        h.agent_says(req, &inv, 180, None);
        caller_bye(&mut h, &tag);
        assert_eq!(h.notices(), vec![Notice::Ending(EndCause::CallerHangup)]);
        assert!(
            h.out
                .iter()
                .any(|o| matches!(o, Output::Sip(SipCommand::Cancel { .. })))
        );
        h.agent_says(req, &inv, 487, None);
        let rec = h.ended().expect("record once the agent INVITE is done");
        assert_eq!(rec.end_cause, Some(EndCause::CallerHangup));
        assert!(rec.connect_after.is_none());
    }

    #[test]
    fn a_voicemail_recording_is_closed_before_the_call_ends() {
        let mut h = start();
        let tag = answered_by_us(&mut h);
        h.call.start_recording("vm/1.wav".into());
        h.drain();
        assert_eq!(
            h.media_ops(),
            vec![MediaOp::StartRecording {
                leg: LegId(14),
                path: "vm/1.wav".into()
            }]
        );
        caller_bye(&mut h, &tag);
        let stop = h
            .out
            .iter()
            .position(|o| matches!(o, Output::Media(MediaOp::StopRecording)))
            .expect("stopped");
        let ended = h
            .out
            .iter()
            .position(|o| matches!(o, Output::Ended(_)))
            .expect("ended");
        assert!(stop < ended);
    }

    #[test]
    fn media_timeout_of_an_idle_agent_leg_is_ignored_but_the_callers_ends_the_call() {
        let mut h = start();
        answered_by_us(&mut h);
        h.call.media_timeout(h.now, LegId(15));
        assert!(h.drain().is_empty());
        h.call.media_timeout(h.now, LegId(14));
        h.drain();
        assert_eq!(h.notices(), vec![Notice::Ending(EndCause::MediaTimeout)]);
    }
}

// --- Transfers (RFC 3515 REFER, RFC 3891 Replaces) ---

/// An in-dialog request from the agent's phone in the dialog of the agent INVITE `inv`.
fn agent_request(inv: &Request, method: &str, cseq: u32, extra: &str) -> Request {
    parse_req(format!(
        "{method} sip:cti@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5888;branch=z9hG4bK{method}{cseq}\r\nFrom: <sip:1001@127.0.0.1>;tag=agenttag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n",
        inv.headers.get(&HeaderName::From).unwrap(),
        inv.call_id().unwrap()
    ))
}

impl Harness {
    fn agent_sends(&mut self, tx: u64, req: Request) {
        self.call.handle_sip(
            self.now,
            SipInput::Request {
                tx: TxId::for_test(tx),
                request: req,
                source: agent_peer(),
            },
        );
        self.drain();
    }

    fn caller_sends(&mut self, tx: u64, req: Request) {
        self.call.handle_sip(
            self.now,
            SipInput::Request {
                tx: TxId::for_test(tx),
                request: req,
                source: caller_peer(),
            },
        );
        self.drain();
    }

    fn notices(&self) -> Vec<Notice> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Notice(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn commands(&self) -> Vec<SipCommand> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Sip(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// The NOTIFYs sent: (destination, sipfrag status line, Subscription-State).
    fn notifies(&self) -> Vec<(Peer, String, String)> {
        self.sent()
            .into_iter()
            .filter(|(_, r, _)| r.method == Method::Notify)
            .map(|(_, r, dest)| {
                assert_eq!(
                    r.headers.get(&HeaderName::ContentType),
                    Some("message/sipfrag;version=2.0")
                );
                let body = String::from_utf8(r.body.to_vec()).unwrap();
                let state = r
                    .headers
                    .get(&HeaderName::Other("Subscription-State".into()))
                    .unwrap_or_default()
                    .to_string();
                (dest, body.trim_end().to_string(), state)
            })
            .collect()
    }

    /// The BYEs sent: (request ref, destination).
    fn byes(&self) -> Vec<(ReqRef, Peer)> {
        self.sent()
            .into_iter()
            .filter(|(_, r, _)| r.method == Method::Bye)
            .map(|(q, _, d)| (q, d))
            .collect()
    }

    fn answer_ok(&mut self, req: ReqRef, method: &str) {
        let raw = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=x\r\nTo: <sip:c@d>;tag=y\r\nCall-ID: z\r\nCSeq: 9 {method}\r\nContent-Length: 0\r\n\r\n"
        );
        let SipMessage::Response(resp) = SipMessage::parse(raw.as_bytes()).unwrap() else {
            unreachable!()
        };
        self.call.handle_sip(
            self.now,
            SipInput::Response {
                req,
                response: resp,
            },
        );
        self.drain();
    }
}

#[test]
fn rfc3515_blind_transfer_is_accepted_notified_and_the_agent_let_go() {
    let (mut h, _, inv, caller_tag) = answered();
    h.agent_sends(
        70,
        agent_request(&inv, "REFER", 5, "Refer-To: <sip:120@127.0.0.1>\r\n"),
    );
    assert_eq!(h.responses(70)[0].code, 202);
    let n = h.notifies();
    assert_eq!(n.len(), 1);
    assert_eq!(n[0].0, agent_peer());
    assert_eq!(n[0].1, "SIP/2.0 100 Trying");
    assert!(n[0].2.starts_with("active"), "{n:?}");
    let notify = &h.sent()[0].1;
    assert_eq!(notify.headers.get(&HeaderName::Event), Some("refer;id=5"));
    assert_eq!(h.notices(), vec![Notice::TransferRequested("120".into())]);
    assert!(h.call.is_hosted(), "the server drives the caller from here");

    h.call.route("120".into());
    h.drain();
    assert!(matches!(
        h.commands().as_slice(),
        [SipCommand::Route { number }] if number == "120"
    ));

    h.call.transfer_completed();
    h.drain();
    let n = h.notifies();
    assert_eq!(n[0].1, "SIP/2.0 200 OK");
    assert_eq!(n[0].2, "terminated;reason=noresource");
    let byes = h.byes();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].1, agent_peer(), "the transferor is hung up");
    assert!(h.media_ops().contains(&MediaOp::EndLeg {
        leg: LegId(15),
        side: Side::Agent
    }));
    assert!(
        h.commands()
            .iter()
            .any(|c| matches!(c, SipCommand::AgentLeft))
    );
    assert!(!h.call.agent_connected());

    // The transferor's phone hangs up too: its BYE crosses ours and is answered 200.
    h.agent_sends(71, agent_request(&inv, "BYE", 6, ""));
    assert_eq!(h.responses(71)[0].code, 200);
    assert!(h.ended().is_none(), "the caller is still there");
    h.answer_ok(byes[0].0, "BYE");
    assert!(h.ended().is_none());

    // The caller, now with the service, hangs up: the call ends.
    h.caller_sends(72, caller_request("BYE", 11, &caller_tag, ""));
    assert_eq!(h.responses(72)[0].code, 200);
    let rec = h.ended().expect("record");
    assert_eq!(rec.end_cause, Some(EndCause::CallerHangup));
}

#[test]
fn a_transfer_to_nowhere_is_notified_and_the_agent_keeps_the_caller() {
    let (mut h, _, inv, _) = answered();
    h.agent_sends(
        70,
        agent_request(&inv, "REFER", 5, "Refer-To: <sip:999@127.0.0.1>\r\n"),
    );
    h.call.transfer_failed(404, "Not Found");
    h.drain();
    let n = h.notifies();
    assert_eq!(n[0].1, "SIP/2.0 404 Not Found");
    assert_eq!(n[0].2, "terminated;reason=noresource");
    assert!(h.byes().is_empty());
    assert!(h.call.agent_connected(), "caller and agent still talk");
    // A second try is possible.
    h.agent_sends(
        71,
        agent_request(&inv, "REFER", 6, "Refer-To: <sip:120@127.0.0.1>\r\n"),
    );
    assert_eq!(h.responses(71)[0].code, 202);
}

#[test]
fn refers_that_cannot_be_carried_out_are_refused() {
    let (mut h, _, inv, caller_tag) = answered();
    h.agent_sends(70, agent_request(&inv, "REFER", 5, ""));
    assert_eq!(h.responses(70)[0].code, 400, "no Refer-To");
    h.agent_sends(
        71,
        agent_request(
            &inv,
            "REFER",
            6,
            "Refer-To: <sip:1@x>\r\nRefer-To: <sip:2@x>\r\n",
        ),
    );
    assert_eq!(h.responses(71)[0].code, 400, "two Refer-To");
    h.agent_sends(
        72,
        agent_request(&inv, "REFER", 7, "Refer-To: <mailto:a@b>\r\n"),
    );
    assert_eq!(h.responses(72)[0].code, 400, "no number");
    // The customer's side cannot send the agent away.
    let mut refer = caller_request("REFER", 11, &caller_tag, "");
    refer
        .headers
        .push(HeaderName::ReferTo, "<sip:120@127.0.0.1>");
    h.caller_sends(73, refer);
    assert_eq!(h.responses(73)[0].code, 403);
    // One transfer at a time.
    h.agent_sends(
        74,
        agent_request(&inv, "REFER", 8, "Refer-To: <sip:120@127.0.0.1>\r\n"),
    );
    assert_eq!(h.responses(74)[0].code, 202);
    h.agent_sends(
        75,
        agent_request(&inv, "REFER", 9, "Refer-To: <sip:130@127.0.0.1>\r\n"),
    );
    assert_eq!(h.responses(75)[0].code, 491);
    assert!(h.ended().is_none());
}

#[test]
fn a_refer_before_the_agent_answers_is_refused() {
    let mut h = Harness::start();
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 180, None);
    h.agent_sends(
        70,
        agent_request(&inv, "REFER", 5, "Refer-To: <sip:120@127.0.0.1>\r\n"),
    );
    assert_eq!(h.responses(70)[0].code, 403);
}

/// The second call of an attended transfer: the agent (as caller, From tag `at`) consulted a
/// colleague, who answered.
fn consult_call() -> (Harness, String) {
    let inv = parse_req(format!(
        "INVITE sip:2001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKconsult\r\nFrom: <sip:1001@127.0.0.1>;tag=at\r\nTo: <sip:2001@127.0.0.1>\r\nCall-ID: consult-1\r\nCSeq: 1 INVITE\r\nContact: <sip:1001@127.0.0.1:5999>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{CALLER_SDP}",
        CALLER_SDP.len()
    ));
    let mut h = Harness::start_keyed(CallKey(8), target(), inv);
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    let tag = h.responses(CALLER_TX)[0].to_tag().unwrap();
    (h, tag)
}

#[test]
fn rfc3891_attended_transfer_joins_the_two_calls_and_they_end_together() {
    let (mut k1, _, inv, caller_tag) = answered();
    let (mut k2, consult_tag) = consult_call();
    k1.agent_sends(
        70,
        agent_request(
            &inv,
            "REFER",
            5,
            &format!(
                "Refer-To: <sip:2001@127.0.0.1?Replaces=consult-1%3Bto-tag%3D{consult_tag}%3Bfrom-tag%3Dat>\r\n"
            ),
        ),
    );
    assert_eq!(k1.responses(70)[0].code, 202);
    assert_eq!(k1.notifies()[0].1, "SIP/2.0 100 Trying");
    let join = k1
        .commands()
        .into_iter()
        .find_map(|c| match c {
            SipCommand::Join {
                call_id,
                tags,
                keeps: Side::Caller,
            } => Some((call_id, tags)),
            _ => None,
        })
        .expect("the SIP task is asked to find the consulted call");
    assert_eq!(join.0.as_str(), "consult-1");
    assert!(join.1.iter().any(|t| t.as_str() == consult_tag));

    // The consulted call hangs up on the transferor and hands its party's leg over.
    k2.call.handle_sip(
        k2.now,
        SipInput::Linked(Linked::JoinRequest {
            partner: CallKey(7),
            call_id: join.0,
            partner_keeps: Side::Caller,
        }),
    );
    k2.drain();
    let byes = k2.byes();
    assert_eq!(byes.len(), 1);
    assert_eq!(byes[0].1, caller_peer(), "the transferor's consult leg");
    let ops = k2.media_ops();
    assert!(ops.contains(&MediaOp::EndLeg {
        leg: LegId(16),
        side: Side::Caller
    }));
    assert!(ops.contains(&MediaOp::Leave { leg: LegId(17) }));
    let accepted = k2
        .commands()
        .into_iter()
        .find_map(|c| match c {
            SipCommand::Tell { to, msg } => Some((to, msg)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        accepted,
        (
            CallKey(7),
            Linked::JoinAccepted {
                partner: CallKey(8),
                leg: Some(LegId(17))
            }
        )
    );

    // The customer's call hangs up on the transferor and takes the colleague's leg in.
    k1.call.handle_sip(k1.now, SipInput::Linked(accepted.1));
    k1.drain();
    assert_eq!(k1.notifies()[0].1, "SIP/2.0 200 OK");
    assert_eq!(k1.byes()[0].1, agent_peer());
    assert!(k1.media_ops().contains(&MediaOp::Link {
        ours: LegId(14),
        theirs: LegId(17)
    }));
    assert_eq!(k1.call.partner(), Some(CallKey(8)));
    assert_eq!(k2.call.partner(), Some(CallKey(7)));

    // The customer hangs up: the joined call is told and ends too.
    k1.caller_sends(72, caller_request("BYE", 11, &caller_tag, ""));
    let tell = k1
        .commands()
        .into_iter()
        .find_map(|c| match c {
            SipCommand::Tell { to, msg } => Some((to, msg)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        tell,
        (
            CallKey(8),
            Linked::PartnerEnded {
                cause: EndCause::CallerHangup
            }
        )
    );
    k2.call.handle_sip(k2.now, SipInput::Linked(tell.1));
    k2.drain();
    let bye = k2.byes();
    assert_eq!(bye[0].1, agent_peer(), "the colleague is hung up");
    k2.answer_ok(bye[0].0, "BYE");
    k2.answer_ok(byes[0].0, "BYE");
    assert_eq!(
        k2.ended().expect("joined call ended").end_cause,
        Some(EndCause::CallerHangup)
    );
    // Nothing goes back to the first call.
    assert!(
        !k2.commands()
            .iter()
            .any(|c| matches!(c, SipCommand::Tell { .. }))
    );
}

#[test]
fn an_attended_transfer_to_a_call_not_connected_is_refused_and_the_agent_keeps_the_caller() {
    let (mut k1, _, inv, _) = answered();
    let mut k2 = Harness::start_keyed(CallKey(8), target(), invite(CALLER_SDP));
    let (req, inv2) = k2.ready();
    k2.agent_says(req, &inv2, 180, None);
    k1.agent_sends(
        70,
        agent_request(
            &inv,
            "REFER",
            5,
            "Refer-To: <sip:2001@127.0.0.1?Replaces=carrier-call-1%3Bto-tag%3Dx%3Bfrom-tag%3Dct>\r\n",
        ),
    );
    k2.call.handle_sip(
        k2.now,
        SipInput::Linked(Linked::JoinRequest {
            partner: CallKey(7),
            call_id: CallId::new("carrier-call-1"),
            partner_keeps: Side::Caller,
        }),
    );
    k2.drain();
    let refused = k2
        .commands()
        .into_iter()
        .find_map(|c| match c {
            SipCommand::Tell { msg, .. } => Some(msg),
            _ => None,
        })
        .unwrap();
    assert!(matches!(refused, Linked::JoinRefused { code: 486, .. }));
    assert!(k2.byes().is_empty());
    k1.call.handle_sip(k1.now, SipInput::Linked(refused));
    k1.drain();
    assert!(k1.notifies()[0].1.starts_with("SIP/2.0 486"));
    assert!(k1.byes().is_empty());
    assert!(k1.call.agent_connected());
}

// --- Recording ---

#[test]
fn an_answered_call_is_recorded_from_the_bridge_to_the_hang_up() {
    let (mut h, _, _, caller_tag) = {
        let mut h = Harness::start();
        let (req, inv) = h.ready();
        h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
        let tag = h.responses(CALLER_TX)[0].to_tag().unwrap();
        (h, req, inv, tag)
    };
    let ops = h.media_ops();
    let start = ops
        .iter()
        .position(|m| matches!(m, MediaOp::StartRecording { leg: LegId(14), path } if path.starts_with("/tmp/rec") && path.extension().is_some_and(|e| e == "wav")))
        .expect("the customer (caller) leg is recorded once bridged");
    let bridge = ops
        .iter()
        .position(|m| matches!(m, MediaOp::Bridge { .. }))
        .unwrap();
    assert!(bridge < start);
    assert!(h.call.is_recorded());
    h.caller_sends(72, caller_request("BYE", 11, &caller_tag, ""));
    let ops = h.media_ops();
    assert_eq!(
        ops.iter()
            .filter(|m| matches!(m, MediaOp::StopRecording))
            .count(),
        1
    );
    assert!(!h.call.is_recorded());
}

#[test]
fn an_agents_call_out_records_the_external_party_as_the_customer() {
    let mut h = Harness::start_to(trunk_target(false, None));
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    assert!(
        h.media_ops()
            .iter()
            .any(|m| matches!(m, MediaOp::StartRecording { leg: LegId(15), .. }))
    );
}

#[test]
fn a_call_not_to_be_recorded_is_not() {
    let mut h = Harness::start();
    h.call
        .set_recording_policy(crate::config::RecordingPolicy::Never);
    let (req, inv) = h.ready();
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    assert!(
        !h.media_ops()
            .iter()
            .any(|m| matches!(m, MediaOp::StartRecording { .. }))
    );
}

/// The REFER comes in the consultation call instead (the agent is its caller): the customer's
/// call keeps the customer in its room, where the recording runs, and takes the colleague in.
#[test]
fn an_attended_transfer_refered_in_the_consultation_joins_in_the_customers_room() {
    let (mut k1, _, inv1, _) = answered();
    let (mut k2, consult_tag) = consult_call();
    // The agent, caller of the consultation call, REFERs there naming its dialog with k1.
    let mut refer = parse_req(format!(
        "REFER sip:cti@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKrc\r\nFrom: <sip:1001@127.0.0.1>;tag=at\r\nTo: <sip:2001@127.0.0.1>;tag={consult_tag}\r\nCall-ID: consult-1\r\nCSeq: 2 REFER\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ));
    let k1_dialog = inv1.call_id().unwrap();
    let k1_tag = inv1.from_tag().unwrap();
    refer.headers.push(
        HeaderName::ReferTo,
        format!(
            "<sip:2001@127.0.0.1?Replaces={}%3Bto-tag%3Dagenttag%3Bfrom-tag%3D{k1_tag}>",
            k1_dialog.as_str().replace('@', "%40")
        ),
    );
    k2.caller_sends(80, refer);
    assert_eq!(k2.responses(80)[0].code, 202);
    let (call_id, keeps) = k2
        .commands()
        .into_iter()
        .find_map(|c| match c {
            SipCommand::Join { call_id, keeps, .. } => Some((call_id, keeps)),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        keeps,
        Side::Agent,
        "the consultation call keeps the colleague"
    );
    k1.call.handle_sip(
        k1.now,
        SipInput::Linked(Linked::JoinRequest {
            partner: CallKey(8),
            call_id,
            partner_keeps: keeps,
        }),
    );
    k1.drain();
    assert_eq!(k1.byes()[0].1, agent_peer(), "k1 hangs up on the agent");
    assert!(
        !k1.media_ops()
            .iter()
            .any(|m| matches!(m, MediaOp::Leave { .. })),
        "the customer stays in k1's room"
    );
    let accepted = k1
        .commands()
        .into_iter()
        .find_map(|c| match c {
            SipCommand::Tell { msg, .. } => Some(msg),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        accepted,
        Linked::JoinAccepted {
            partner: CallKey(7),
            leg: None
        }
    );
    k2.call.handle_sip(k2.now, SipInput::Linked(accepted));
    k2.drain();
    assert_eq!(k2.notifies()[0].1, "SIP/2.0 200 OK");
    assert!(k2.media_ops().contains(&MediaOp::Leave { leg: LegId(17) }));
    let take = k2
        .commands()
        .into_iter()
        .find_map(|c| match c {
            SipCommand::Tell { to, msg } => Some((to, msg)),
            _ => None,
        })
        .unwrap();
    assert_eq!(take, (CallKey(7), Linked::TakeLeg { leg: LegId(17) }));
    k1.call.handle_sip(k1.now, SipInput::Linked(take.1));
    k1.drain();
    assert!(k1.media_ops().contains(&MediaOp::Link {
        ours: LegId(14),
        theirs: LegId(17)
    }));
}

mod monitoring {
    //! A supervisor's call monitors an agent's: the two calls' messages, passed by hand.
    use super::*;
    use crate::call::monitor::MonitorMode;

    /// The supervisor's call to the monitor code, answered (key 9, leg 18), and our tag.
    fn supervisor() -> (Harness, String) {
        let mut h = super::start_hosted(9, "monitor:1001");
        h.call
            .media_ready(h.now, LegId(18), "127.0.0.1:40010".parse().unwrap());
        h.drain();
        assert_eq!(h.responses(CALLER_TX)[0].code, 200);
        let tag = h.responses(CALLER_TX)[0].to_tag().unwrap();
        (h, tag)
    }

    fn tells(h: &Harness) -> Vec<(CallKey, Linked)> {
        h.out
            .iter()
            .filter_map(|o| match o {
                Output::Sip(SipCommand::Tell { to, msg }) => Some((*to, msg.clone())),
                _ => None,
            })
            .collect()
    }

    /// Passes the one message `from` sent to `to`; returns it.
    fn pass(from: &Harness, to: &mut Harness) -> Linked {
        let mut t = tells(from);
        assert_eq!(t.len(), 1, "one message: {t:?}");
        let (key, msg) = t.remove(0);
        assert_eq!(key, to.call.key());
        to.call.handle_sip(to.now, SipInput::Linked(msg.clone()));
        to.drain();
        msg
    }

    /// The agent's call (key 7: customer leg 14, agent leg 15) with a listening supervisor.
    fn listening() -> (Harness, Harness, String, String) {
        let (mut agent_call, _, _, tag) = answered();
        let (mut sup, sup_tag) = supervisor();
        sup.call
            .monitor(CallKey(7), Side::Agent, MonitorMode::Listen);
        sup.drain();
        let req = pass(&sup, &mut agent_call);
        assert_eq!(
            req,
            Linked::MonitorRequest {
                monitor: CallKey(9),
                leg: LegId(18),
                agent_side: Side::Agent,
                mode: MonitorMode::Listen
            }
        );
        assert_eq!(
            agent_call.media_ops(),
            vec![
                MediaOp::Monitor {
                    leg: LegId(18),
                    customer: LegId(14),
                    agent: LegId(15),
                    mode: MonitorMode::Listen
                },
                MediaOp::StartTrack {
                    leg: LegId(18),
                    path: "/tmp/rec/1970/01/01/1000-7-supervisor-9.wav".into()
                }
            ],
            "the supervisor's leg joins, and what they say is recorded on its own"
        );
        assert!(agent_call.sent().is_empty(), "nothing goes to the parties");
        pass(&agent_call, &mut sup);
        assert_eq!(sup.notices(), vec![Notice::MonitorStarted]);
        let live = agent_call.call.live(false);
        assert_eq!(live.state, "talking");
        assert_eq!(
            live.monitors,
            vec![crate::call::live::LiveMonitor {
                call: 9,
                mode: MonitorMode::Listen
            }]
        );
        (agent_call, sup, tag, sup_tag)
    }

    #[test]
    fn modes_switch_in_place_and_the_call_ending_lets_the_supervisor_go() {
        let (mut agent_call, mut sup, tag, _) = listening();
        for mode in [
            MonitorMode::Whisper,
            MonitorMode::Barge,
            MonitorMode::Listen,
        ] {
            assert!(sup.call.set_monitor_mode(mode));
            sup.drain();
            pass(&sup, &mut agent_call);
            assert_eq!(
                agent_call.media_ops(),
                vec![MediaOp::Monitor {
                    leg: LegId(18),
                    customer: LegId(14),
                    agent: LegId(15),
                    mode
                }]
            );
            assert_eq!(sup.call.monitor_mode(), Some(mode));
        }
        // The customer hangs up: the supervisor's leg leaves before the room goes, and the
        // supervisor's call is told and hangs up.
        agent_call.call.handle_sip(
            agent_call.now,
            SipInput::Request {
                tx: TxId::for_test(50),
                request: caller_request("BYE", 11, &tag, ""),
                source: caller_peer(),
            },
        );
        agent_call.drain();
        let ops = agent_call.media_ops();
        let at = |op: &MediaOp| ops.iter().position(|o| o == op).unwrap();
        let stop = MediaOp::StopTrack {
            leg: LegId(18),
            monitor: CallKey(9),
        };
        assert!(at(&stop) < at(&MediaOp::Leave { leg: LegId(18) }));
        let over = pass(&agent_call, &mut sup);
        assert!(matches!(over, Linked::MonitorOver { code: 200, .. }));
        assert!(matches!(
            sup.notices()[..],
            [Notice::MonitorOver { code: 200, .. }, Notice::Ending(_)]
        ));
        let byes: Vec<_> = sup
            .sent()
            .into_iter()
            .filter(|(_, r, _)| r.method == Method::Bye)
            .collect();
        assert_eq!(byes.len(), 1, "the supervisor's phone gets a BYE");
        assert!(
            tells(&sup).is_empty(),
            "nothing back to a call that is gone"
        );
    }

    #[test]
    fn the_supervisor_hanging_up_leaves_the_call_untouched() {
        let (mut agent_call, mut sup, _, sup_tag) = listening();
        sup.call.handle_sip(
            sup.now,
            SipInput::Request {
                tx: TxId::for_test(60),
                request: caller_request("BYE", 12, &sup_tag, ""),
                source: caller_peer(),
            },
        );
        sup.drain();
        assert_eq!(sup.responses(60)[0].code, 200);
        let ended = pass(&sup, &mut agent_call);
        assert_eq!(
            ended,
            Linked::MonitorEnded {
                monitor: CallKey(9)
            }
        );
        assert_eq!(
            agent_call.media_ops(),
            vec![
                MediaOp::StopTrack {
                    leg: LegId(18),
                    monitor: CallKey(9)
                },
                MediaOp::Leave { leg: LegId(18) }
            ]
        );
        assert!(agent_call.sent().is_empty(), "no BYE, no re-INVITE");
        assert!(agent_call.ended().is_none());
        assert!(agent_call.call.is_talking());
        // A mode message after the end changes nothing.
        agent_call.call.handle_sip(
            agent_call.now,
            SipInput::Linked(Linked::MonitorMode {
                monitor: CallKey(9),
                mode: MonitorMode::Barge,
            }),
        );
        agent_call.drain();
        assert!(agent_call.out.is_empty());
    }

    #[test]
    fn a_call_not_yet_connected_refuses_and_the_supervisor_is_hung_up_on() {
        let mut ringing = Harness::start();
        ringing.ready();
        let (mut sup, _) = supervisor();
        sup.call
            .monitor(CallKey(7), Side::Agent, MonitorMode::Listen);
        sup.drain();
        pass(&sup, &mut ringing);
        assert!(ringing.media_ops().is_empty());
        let over = pass(&ringing, &mut sup);
        assert!(matches!(over, Linked::MonitorOver { code: 480, .. }));
        assert!(
            sup.sent().iter().any(|(_, r, _)| r.method == Method::Bye),
            "the supervisor's call ends"
        );
        assert!(!sup.call.set_monitor_mode(MonitorMode::Barge));
    }

    #[test]
    fn an_unrecorded_call_gets_no_supervisor_track() {
        let mut agent_call = Harness::start();
        agent_call
            .call
            .set_recording_policy(crate::config::RecordingPolicy::Never);
        let (req, inv) = agent_call.ready();
        agent_call.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
        let (mut sup, _) = supervisor();
        sup.call
            .monitor(CallKey(7), Side::Agent, MonitorMode::Whisper);
        sup.drain();
        pass(&sup, &mut agent_call);
        assert!(matches!(
            agent_call.media_ops()[..],
            [MediaOp::Monitor { .. }]
        ));
    }

    #[test]
    fn an_agent_monitored_on_the_caller_side_is_whispered_to_on_that_side() {
        let (mut agent_call, _, _, _) = answered();
        let (mut sup, _) = supervisor();
        sup.call
            .monitor(CallKey(7), Side::Caller, MonitorMode::Whisper);
        sup.drain();
        pass(&sup, &mut agent_call);
        assert_eq!(
            agent_call.media_ops()[0],
            MediaOp::Monitor {
                leg: LegId(18),
                customer: LegId(15),
                agent: LegId(14),
                mode: MonitorMode::Whisper
            }
        );
    }
}

mod keypad {
    //! The agent's keypad code for the recording: pause/resume, start on demand, and keys
    //! that only look like the code going on to the customer.
    use super::*;
    use crate::config::RecordingPolicy;

    fn keys_sent(h: &Harness) -> Vec<(LegId, char)> {
        h.media_ops()
            .into_iter()
            .filter_map(|m| match m {
                MediaOp::SendDtmf { leg, digit } => Some((leg, digit)),
                _ => None,
            })
            .collect()
    }

    fn beeped(h: &Harness) -> bool {
        h.media_ops().iter().any(|m| {
            matches!(m, MediaOp::Play { leg, prompt, .. }
                if *leg == LegId(15) && prompt == std::path::Path::new("beep.wav"))
        })
    }

    fn key(h: &mut Harness, leg: u64, k: char) {
        h.call.dtmf(h.now, LegId(leg), k);
        h.drain();
    }

    #[test]
    fn star_one_pauses_and_resumes_other_keys_reach_the_customer() {
        let (mut h, _, _, _) = answered();
        assert!(h.call.is_recorded());
        key(&mut h, 15, '*');
        assert!(h.out.is_empty(), "held: it may begin the code");
        key(&mut h, 15, '1');
        assert!(h.media_ops().contains(&MediaOp::ToggleRecordingPause));
        assert!(beeped(&h), "the agent hears a beep");
        assert!(
            keys_sent(&h).is_empty(),
            "the code is not sent to the customer"
        );
        // "*5": not the code, both keys go on, in order.
        key(&mut h, 15, '*');
        key(&mut h, 15, '5');
        assert_eq!(keys_sent(&h), vec![(LegId(14), '*'), (LegId(14), '5')]);
        // A lone star goes on after the hold time.
        key(&mut h, 15, '*');
        assert_eq!(
            h.call.poll_timeout(),
            Some(h.now + super::super::keys::HOLD)
        );
        h.call.handle_timeout(h.now + super::super::keys::HOLD);
        h.drain();
        assert_eq!(keys_sent(&h), vec![(LegId(14), '*')]);
        // The customer's keys are never a code: they go to the agent at once.
        key(&mut h, 14, '*');
        key(&mut h, 14, '1');
        assert_eq!(keys_sent(&h), vec![(LegId(15), '1')]);
    }

    #[test]
    fn on_demand_the_code_starts_the_recording_then_pauses_it() {
        let mut h = Harness::start();
        h.call.set_recording_policy(RecordingPolicy::OnDemand);
        let (req, inv) = h.ready();
        h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
        assert!(!h.call.is_recorded(), "not before the agent asks");
        assert!(
            !h.media_ops()
                .iter()
                .any(|m| matches!(m, MediaOp::StartRecording { .. }))
        );
        key(&mut h, 15, '*');
        key(&mut h, 15, '1');
        assert!(h.call.is_recorded());
        assert!(matches!(
            h.media_ops()[..],
            [
                MediaOp::StartRecording { leg: LegId(14), .. },
                MediaOp::Play { .. }
            ]
        ));
        key(&mut h, 15, '*');
        key(&mut h, 15, '1');
        assert!(h.media_ops().contains(&MediaOp::ToggleRecordingPause));
        assert_eq!(
            h.call.record_on_demand(),
            Err("the call is being recorded already")
        );
    }

    #[test]
    fn a_call_never_to_be_recorded_ignores_the_code() {
        let mut h = Harness::start();
        h.call.set_recording_policy(RecordingPolicy::Never);
        let (req, inv) = h.ready();
        h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
        key(&mut h, 15, '*');
        key(&mut h, 15, '1');
        assert!(!h.call.is_recorded());
        assert!(
            h.media_ops().is_empty(),
            "no recording, no beep, no key sent"
        );
        assert!(h.call.record_on_demand().is_err());
    }
}

// ------------------------------------------------------------------------------------------
// Calls placed from a browser console (click-to-dial, [`placed`]).
// ------------------------------------------------------------------------------------------

/// The placing console's media leg (in the browser legs' range).
const CONSOLE_LEG: LegId = LegId((1 << 60) + 3);
const PLACED_OWN_LEG: LegId = LegId(43);

impl Harness {
    /// Agent 1001 places a call to the trunk's number from console session 3.
    fn placed() -> Harness {
        let now = Instant::now();
        let call = Call::new_placed(
            CallKey(21),
            config(),
            now,
            1_000,
            Placer {
                extension: "1001".into(),
                name: "Alice \"A\"".into(),
                session: 3,
                leg: CONSOLE_LEG,
            },
            "+15551234567",
            trunk_target(false, None),
            PLACED_OWN_LEG,
        );
        let mut h = Harness {
            call,
            now,
            out: Vec::new(),
        };
        h.drain();
        h
    }

    /// The customer's leg is up: the INVITE to the trunk.
    fn placed_ready(&mut self) -> (ReqRef, Request) {
        self.call
            .media_ready(self.now, PLACED_OWN_LEG, "127.0.0.1:40010".parse().unwrap());
        self.drain();
        self.resent_invite()
    }

    /// What the console was told by the last input.
    fn console_events(&self) -> Vec<browser::SoftphoneEventKind> {
        self.out
            .iter()
            .filter_map(|o| match o {
                Output::Softphone(e) => {
                    assert_eq!(e.agent, "1001");
                    Some(e.kind.clone())
                }
                _ => None,
            })
            .collect()
    }

    fn console(&mut self, input: browser::SoftphoneInput) {
        self.call.softphone(self.now, "1001", input);
        self.drain();
    }

    fn nothing_to_a_caller_transaction(&self) {
        assert!(
            !self
                .out
                .iter()
                .any(|o| matches!(o, Output::Sip(SipCommand::Respond { .. }))),
            "a placed call has no INVITE to answer: {:?}",
            self.out
        );
    }
}

fn dialing(ringing: bool) -> browser::SoftphoneEventKind {
    browser::SoftphoneEventKind::Dialing {
        number: "+15551234567".into(),
        ringing,
    }
}

fn ended(reason: &str) -> browser::SoftphoneEventKind {
    browser::SoftphoneEventKind::Ended {
        reason: reason.into(),
    }
}

/// A placed call answered by the trunk.
fn placed_answered() -> (Harness, ReqRef, Request) {
    let mut h = Harness::placed();
    let (req, inv) = h.placed_ready();
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    (h, req, inv)
}

#[test]
fn a_placed_call_dials_the_trunk_and_tells_the_console_each_step() {
    let mut h = Harness::placed();
    // One media leg, the customer's: the console brings its own.
    let ops = h.media_ops();
    assert!(
        matches!(&ops[..], [MediaOp::CreateLeg { leg, side: Side::Agent, .. }] if *leg == PLACED_OWN_LEG),
        "{ops:?}"
    );
    assert_eq!(h.console_events(), vec![dialing(false)]);
    let (req, inv) = h.placed_ready();
    assert_eq!(inv.uri.to_string(), "sip:+15551234567@trunk.example:5888");
    assert_eq!(
        inv.from_header().unwrap().uri.to_string(),
        "sip:1001@trunk.example",
        "the agent's extension unless trunk.from_user is set"
    );
    let body = std::str::from_utf8(&inv.body).unwrap();
    assert!(body.contains("m=audio 40010 RTP/AVP 0 "), "{body}");

    h.agent_says(req, &inv, 180, None);
    assert_eq!(h.console_events(), vec![dialing(true)]);
    h.nothing_to_a_caller_transaction();

    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    assert!(h.call.is_talking());
    assert!(
        h.out.iter().any(
            |o| matches!(o, Output::Sip(SipCommand::Ack { dest, .. }) if *dest == agent_peer())
        )
    );
    assert!(h.media_ops().contains(&MediaOp::Bridge {
        caller: CONSOLE_LEG,
        agent: PLACED_OWN_LEG
    }));
    assert_eq!(
        h.console_events(),
        vec![browser::SoftphoneEventKind::Connected {
            caller: "+15551234567".into(),
            held: false
        }]
    );
    h.nothing_to_a_caller_transaction();
    // The supervisors' wall: the agent placed it, the customer is connected.
    let live = h.call.live(false);
    assert_eq!((live.caller.as_str(), live.connected), ("1001", true));

    h.console(browser::SoftphoneInput::Hangup);
    let (bye_req, bye, dest) = h
        .sent()
        .into_iter()
        .find(|(_, r, _)| r.method == Method::Bye)
        .expect("BYE to the trunk");
    assert_eq!(dest, agent_peer());
    assert!(h.media_ops().contains(&MediaOp::Leave { leg: CONSOLE_LEG }));
    assert_eq!(h.console_events(), vec![ended("you hung up")]);
    let ok = bye.response(200, "OK", None);
    h.call.handle_sip(
        h.now,
        SipInput::Response {
            req: bye_req,
            response: ok,
        },
    );
    h.drain();
    let record = h.ended().expect("the call ended");
    // The console's leg outlives the call; the call's own leg goes.
    let ops = h.media_ops();
    assert!(
        !ops.iter()
            .any(|o| matches!(o, MediaOp::EndLeg { leg, .. } if *leg == CONSOLE_LEG))
    );
    assert!(ops.contains(&MediaOp::EndLeg {
        leg: PLACED_OWN_LEG,
        side: Side::Agent
    }));
    assert!(record.is_outbound());
    assert_eq!(record.customer_number().as_deref(), Some("+15551234567"));
    assert_eq!(record.dialed, "+15551234567");
    assert!(record.from.starts_with("sip:1001@"), "{}", record.from);
    assert_eq!(record.end_cause, Some(EndCause::CallerHangup));
    assert_eq!(record.ended_by, Some(Side::Caller));
}

#[test]
fn a_busy_or_silent_number_ends_with_the_reason_on_the_console() {
    let mut h = Harness::placed();
    let (req, inv) = h.placed_ready();
    h.agent_says(req, &inv, 486, None);
    assert_eq!(h.console_events(), vec![ended("busy")]);
    h.nothing_to_a_caller_transaction();
    let record = h.ended().expect("over at once");
    assert_eq!(record.end_cause, Some(EndCause::AgentBusy));

    let mut h = Harness::placed();
    let (req, inv) = h.placed_ready();
    h.agent_says(req, &inv, 180, None);
    h.now += Duration::from_secs(21);
    h.call.handle_timeout(h.now);
    h.drain();
    assert!(
        h.out
            .iter()
            .any(|o| matches!(o, Output::Sip(SipCommand::Cancel { req: r }) if *r == req)),
        "the ring timeout cancels the INVITE"
    );
    assert_eq!(h.console_events(), vec![ended("no answer")]);
    h.nothing_to_a_caller_transaction();
    h.agent_says(req, &inv, 487, None);
    assert_eq!(
        h.ended().map(|r| r.end_cause),
        Some(Some(EndCause::NoAnswer))
    );
}

#[test]
fn hanging_up_while_it_rings_cancels_and_a_crossing_answer_is_hung_up() {
    let mut h = Harness::placed();
    let (req, inv) = h.placed_ready();
    h.agent_says(req, &inv, 183, Some(AGENT_ANSWER));
    // Early audio (the carrier's ringback) reaches the console.
    assert!(h.media_ops().contains(&MediaOp::Bridge {
        caller: CONSOLE_LEG,
        agent: PLACED_OWN_LEG
    }));
    h.console(browser::SoftphoneInput::Hangup);
    assert!(
        h.out
            .iter()
            .any(|o| matches!(o, Output::Sip(SipCommand::Cancel { req: r }) if *r == req))
    );
    assert_eq!(h.console_events(), vec![ended("you hung up")]);
    // The customer picked up as the CANCEL went: hung up at once.
    h.agent_says(req, &inv, 200, Some(AGENT_ANSWER));
    assert!(h.sent().iter().any(|(_, r, _)| r.method == Method::Bye));
    assert!(h.console_events().is_empty());
    assert!(!h.call.is_talking());
}

#[test]
fn hold_plays_music_keys_reach_the_customer_and_a_reload_reattaches() {
    let (mut h, _, _) = placed_answered();
    h.console(browser::SoftphoneInput::Hold(true));
    let ops = h.media_ops();
    assert!(ops.contains(&MediaOp::Leave { leg: CONSOLE_LEG }));
    assert!(ops.contains(&MediaOp::Play {
        leg: PLACED_OWN_LEG,
        prompt: "music.wav".into(),
        id: 0,
        looped: true,
        interruptible: false
    }));
    assert_eq!(
        h.console_events(),
        vec![browser::SoftphoneEventKind::Held(true)]
    );
    assert_eq!(h.call.live(false).state, "on_hold");
    h.now += Duration::from_secs(3);
    h.console(browser::SoftphoneInput::Hold(false));
    let ops = h.media_ops();
    assert!(ops.contains(&MediaOp::StopPlay {
        leg: PLACED_OWN_LEG
    }));
    assert!(ops.contains(&MediaOp::Bridge {
        caller: CONSOLE_LEG,
        agent: PLACED_OWN_LEG
    }));

    h.console(browser::SoftphoneInput::Digit('5'));
    assert_eq!(
        h.media_ops(),
        vec![MediaOp::SendDtmf {
            leg: PLACED_OWN_LEG,
            digit: '5'
        }]
    );
    // A transfer is refused with a reason; the call goes on.
    h.console(browser::SoftphoneInput::Transfer("2000".into()));
    assert!(matches!(
        &h.console_events()[..],
        [browser::SoftphoneEventKind::Transfer { done: true, .. }]
    ));
    assert!(h.call.is_talking());

    // A reload: music meanwhile, then the new page's leg takes over.
    h.console(browser::SoftphoneInput::Lost);
    assert!(
        h.media_ops()
            .iter()
            .any(|o| matches!(o, MediaOp::Play { leg, .. } if *leg == PLACED_OWN_LEG))
    );
    let new_leg = LegId((1 << 60) + 4);
    h.console(browser::SoftphoneInput::Reattach {
        session: 4,
        leg: new_leg,
    });
    assert!(h.media_ops().contains(&MediaOp::Bridge {
        caller: new_leg,
        agent: PLACED_OWN_LEG
    }));
    let evs: Vec<_> = h
        .out
        .iter()
        .filter_map(|o| match o {
            Output::Softphone(e) => Some((e.session, e.kind.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        evs,
        vec![(
            4,
            browser::SoftphoneEventKind::Connected {
                caller: "+15551234567".into(),
                held: false
            }
        )]
    );
    // Another agent's console cannot touch the call.
    h.call
        .softphone(h.now, "1002", browser::SoftphoneInput::Hangup);
    h.drain();
    assert!(h.out.is_empty());
    // The customer hangs up: the console is told.
    let bye = parse_req(format!(
        "BYE sip:cti@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5888;branch=z9hG4bKtb1\r\nFrom: <sip:+15551234567@trunk.example>;tag=agenttag\r\nTo: {};tag={}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        "<sip:1001@trunk.example>",
        placed_invite_tag(&h),
        placed_call_id(&h),
    ));
    h.call.handle_sip(
        h.now,
        SipInput::Request {
            tx: TxId::for_test(77),
            request: bye,
            source: agent_peer(),
        },
    );
    h.drain();
    assert_eq!(h.responses(77)[0].code, 200);
    assert_eq!(h.console_events(), vec![ended("the customer hung up")]);
    assert!(h.media_ops().contains(&MediaOp::Leave { leg: new_leg }));
    let record = h.ended().expect("ended");
    assert_eq!(record.end_cause, Some(EndCause::AgentHangup));
    assert_eq!(record.hold, Duration::from_secs(3), "the time on hold");
}

#[test]
fn a_supervisor_listens_to_a_placed_call_with_the_agent_on_the_caller_side() {
    let (mut h, _, _) = placed_answered();
    h.call.handle_sip(
        h.now,
        SipInput::Linked(Linked::MonitorRequest {
            monitor: CallKey(9),
            leg: LegId(18),
            agent_side: Side::Caller,
            mode: monitor::MonitorMode::Listen,
        }),
    );
    h.drain();
    assert!(
        h.media_ops().contains(&MediaOp::Monitor {
            leg: LegId(18),
            customer: PLACED_OWN_LEG,
            agent: CONSOLE_LEG,
            mode: monitor::MonitorMode::Listen
        }),
        "{:?}",
        h.out
    );
    assert!(h.out.iter().any(|o| matches!(
        o,
        Output::Sip(SipCommand::Tell {
            msg: Linked::MonitorStarted,
            ..
        })
    )));
}

/// Our From tag and the Call-ID of the INVITE the placed call sent to the trunk.
fn placed_invite_tag(h: &Harness) -> String {
    h.call.agent.invite.as_ref().unwrap().from_tag().unwrap()
}

fn placed_call_id(h: &Harness) -> String {
    h.call
        .agent
        .invite
        .as_ref()
        .unwrap()
        .call_id()
        .unwrap()
        .to_string()
}

/// An agent whose phone is a browser SIP client on a WebSocket (RFC 7118): its leg is a
/// WebRTC leg that makes the offer; the INVITE carries that offer and the answer goes back to
/// the leg, not to our RTP negotiation.
#[test]
fn a_browser_sip_client_gets_the_webrtc_legs_offer_and_its_answer_goes_to_the_leg() {
    let ws = Peer {
        transport: Transport::Wss,
        addr: "127.0.0.1:50123".parse().unwrap(),
    };
    let mut h = Harness::start_to(Target::Agent {
        extension: "1001".into(),
        contact: Uri::parse("sip:x7k@abc.invalid;transport=ws").unwrap(),
        peer: ws,
    });
    let ops = h.media_ops();
    assert!(matches!(&ops[0], MediaOp::CreateLeg { leg: LegId(14), .. }));
    assert!(
        matches!(
            &ops[1],
            MediaOp::CreateWebRtcOffer {
                leg: LegId(15),
                side: Side::Agent
            }
        ),
        "{ops:?}"
    );
    // The caller's RTP leg is up, then the WebRTC leg's offer comes.
    h.call
        .media_ready(h.now, LegId(14), "127.0.0.1:40000".parse().unwrap());
    h.drain();
    assert!(h.sent().is_empty(), "no INVITE before the offer");
    let offer = "v=0\r\no=str0m 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=ice-lite\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
    h.call
        .webrtc_offer_ready(h.now, LegId(15), offer.to_string());
    h.drain();
    let (req, inv, dest) = h.sent().into_iter().next().expect("the INVITE");
    assert_eq!(dest, ws);
    assert_eq!(std::str::from_utf8(&inv.body).unwrap(), offer);
    assert!(
        inv.top_via().unwrap().transport.eq_ignore_ascii_case("WSS"),
        "our Via names the transport"
    );
    let answer = "v=0\r\no=- 5 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:active\r\n";
    h.agent_says(req, &inv, 200, Some(answer));
    let ops = h.media_ops();
    assert!(
        ops.iter()
            .any(|o| matches!(o, MediaOp::WebRtcAnswer { leg: LegId(15), sdp } if sdp == answer)),
        "{ops:?}"
    );
    assert!(
        !ops.iter()
            .any(|o| matches!(o, MediaOp::Update { leg: LegId(15), .. })),
        "the WebRTC leg is not retuned as RTP: {ops:?}"
    );
    assert!(ops.iter().any(|o| matches!(o, MediaOp::Bridge { .. })));
    assert_eq!(h.responses(CALLER_TX)[0].code, 200);
    // A 200 without an answer is no answer: the call cannot bridge.
    let mut h = Harness::start_to(Target::Agent {
        extension: "1001".into(),
        contact: Uri::parse("sip:x7k@abc.invalid;transport=ws").unwrap(),
        peer: ws,
    });
    h.call
        .media_ready(h.now, LegId(14), "127.0.0.1:40000".parse().unwrap());
    h.call
        .webrtc_offer_ready(h.now, LegId(15), offer.to_string());
    h.drain();
    let (req, inv, _) = h.sent().into_iter().next().unwrap();
    h.agent_says(req, &inv, 200, None);
    assert!(
        !h.media_ops()
            .iter()
            .any(|o| matches!(o, MediaOp::Bridge { .. })),
        "bridged without an answer"
    );
}
