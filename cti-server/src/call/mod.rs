//! Calls through the server: the B2BUA. One [`Call`] state machine per call, driven by an
//! actor task ([`actor`]).
//!
//! A call has two SIP legs: the *caller* leg (we are its UAS) and the *agent* leg (we are its
//! UAC), each with its own dialog, its own SDP negotiation and its own RTP leg in the media
//! engine; both RTP legs join one mixer room (media is always anchored, so recording,
//! supervision and prompts can reach the audio). The machine is sans-IO: SIP input, media
//! results and time come in through `handle_*`; SIP commands, media operations and the call
//! record come out of [`Call::poll_output`]; [`Call::poll_timeout`] says when to call
//! [`Call::handle_timeout`].
//!
//! Invariants: the caller's INVITE gets exactly one final response; a dialog we confirmed is
//! ended by a BYE (sent or received) before [`Output::Ended`]; both media legs are released
//! when the call ends, whatever the path; nothing a peer sends panics the machine.

pub mod actor;
pub mod browser;
pub mod host;
mod hosted;
mod keys;
pub mod live;
pub mod monitor;
mod placed;
pub mod prompts;
pub mod record;
mod recording;
pub mod router;
pub mod routes;
mod transfer;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use media::engine::LegId;

use crate::sdp::{self, Codec, Direction, LocalMedia, Negotiated, SessionDescription};
use crate::sip::auth::{self, DigestCredentials};
use crate::sip::core::ALLOW;
use crate::sip::dialog::{Dialog, LocalVia};
use crate::sip::grammar::{SipUri, Uri};
use crate::sip::message::{HeaderName, Request, Response, SipHeaders};
use crate::sip::transaction::{Peer, TxId};
use crate::sip::types::{Branch, CallId, Method, Tag};

pub use placed::Placer;
pub use record::{CallRecord, EndCause, LegRecord, Side};
pub use router::TrunkCredentials;

/// Identifies a call inside this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

impl std::fmt::Display for CallKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// A client transaction started by a call, so the SIP task can route its responses back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReqRef(pub u32);

/// Where a call goes, decided by the router before the call starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An agent's endpoint: its contact URI and where to send (the registration's source, or a
    /// static contact's address).
    Agent {
        extension: String,
        contact: Uri,
        peer: Peer,
    },
    /// An external number through the outbound trunk: `uri` is `sip:NUMBER@domain[:port]`.
    /// With credentials, the trunk's 401/407 challenges are answered (RFC 3261 §22.2).
    Trunk {
        number: String,
        uri: Uri,
        peer: Peer,
        credentials: Option<TrunkCredentials>,
        /// Caller id user to present instead of the caller's number.
        from_user: Option<String>,
    },
    /// An agent's browser softphone ([`crate::softphone`]): its WebRTC leg is up already
    /// (one per logged-in console, kept across calls); the call rings it over the agent's
    /// WebSocket and joins that leg to the call's room on answer. No SIP on this leg.
    Browser {
        extension: String,
        /// The console's softphone session (a reload makes a new one).
        session: u64,
        /// The console's media leg.
        leg: LegId,
    },
}

impl Target {
    /// The agent's extension; `None` for a trunk call.
    pub fn agent_extension(&self) -> Option<&str> {
        match self {
            Target::Agent { extension, .. } | Target::Browser { extension, .. } => Some(extension),
            Target::Trunk { .. } => None,
        }
    }

    /// The Request-URI of the outgoing INVITE (`None` for a browser: no INVITE).
    fn request_uri(&self) -> Option<&Uri> {
        match self {
            Target::Agent { contact, .. } => Some(contact),
            Target::Trunk { uri, .. } => Some(uri),
            Target::Browser { .. } => None,
        }
    }

    fn peer(&self) -> Option<Peer> {
        match self {
            Target::Agent { peer, .. } | Target::Trunk { peer, .. } => Some(*peer),
            Target::Browser { .. } => None,
        }
    }

    fn credentials(&self) -> Option<&TrunkCredentials> {
        match self {
            Target::Agent { .. } | Target::Browser { .. } => None,
            Target::Trunk { credentials, .. } => credentials.as_ref(),
        }
    }
}

/// Input from the SIP task.
#[derive(Debug)]
pub enum SipInput {
    /// An in-dialog request for one of this call's dialogs.
    Request {
        tx: TxId,
        request: Request,
        source: Peer,
    },
    /// A response to a request this call sent.
    Response { req: ReqRef, response: Response },
    /// The caller cancelled its INVITE (RFC 3261 §9.2); we answer `cancel_tx`.
    Cancel { cancel_tx: TxId, request: Request },
    /// The ACK for a 2xx we sent.
    Ack { request: Request },
    /// Timer B/F: a request this call sent got no final response (handled as 408, §8.1.3.1).
    Timeout { req: ReqRef },
    /// We sent 2xx to the caller and no ACK came (Timer L, RFC 6026).
    AckTimeout,
    /// Where a number a service asked about ([`SipCommand::Resolve`]) can be reached now.
    Resolved {
        number: String,
        target: Result<Target, (u16, &'static str)>,
    },
    /// Where a transfer's number goes ([`SipCommand::Route`]).
    Routed {
        number: String,
        route: Result<Box<router::Route>, (u16, &'static str)>,
    },
    /// A message from another call (an attended transfer joining the two).
    Linked(Linked),
}

/// What calls tell each other, through the SIP task, to join their parties in an attended
/// transfer ([`transfer`]) and to end together afterwards.
#[derive(Debug, Clone, PartialEq)]
pub enum Linked {
    /// `partner` asks this call to give up its dialog `call_id` (the transferor's) and let
    /// its other party be joined with `partner`'s, who is on `partner_keeps`' side there.
    JoinRequest {
        partner: CallKey,
        call_id: CallId,
        partner_keeps: Side,
    },
    /// The named call agreed. `Some(leg)`: its party's media leg is out of its room, for
    /// this call's room. `None`: the joined parties meet in its room (it keeps the
    /// customer, whose recording goes on there): this call sends its party's leg
    /// ([`Linked::TakeLeg`]).
    JoinAccepted {
        partner: CallKey,
        leg: Option<LegId>,
    },
    /// The other party's media leg, out of its room, for this call's room.
    TakeLeg { leg: LegId },
    /// No such call, or it cannot be joined now.
    JoinRefused { code: u16, reason: &'static str },
    /// The call this one was joined with ended.
    PartnerEnded { cause: EndCause },
    /// A supervisor's call (`monitor`) asks to monitor this call's agent, who is on
    /// `agent_side`, with its media leg `leg` ([`monitor`]).
    MonitorRequest {
        monitor: CallKey,
        leg: LegId,
        agent_side: Side,
        mode: monitor::MonitorMode,
    },
    /// The monitored call took the supervisor's leg in.
    MonitorStarted,
    /// The supervisor switched mode.
    MonitorMode {
        monitor: CallKey,
        mode: monitor::MonitorMode,
    },
    /// The supervisor hung up.
    MonitorEnded { monitor: CallKey },
    /// The monitored call refused the monitor (code, reason) or is over for it (200: it
    /// ended, or its agent left it).
    MonitorOver { code: u16, reason: &'static str },
}

/// Output towards the SIP task.
#[derive(Debug, Clone)]
pub enum SipCommand {
    Respond {
        tx: TxId,
        response: Response,
    },
    Send {
        req: ReqRef,
        request: Request,
        dest: Peer,
    },
    Cancel {
        req: ReqRef,
    },
    /// ACK for a 2xx: sent without a transaction (§13.2.2.4).
    Ack {
        request: Request,
        dest: Peer,
    },
    /// Route in-dialog requests carrying this Call-ID and our tag (as their To tag) here.
    BindDialog {
        call_id: CallId,
        local_tag: Tag,
    },
    /// Where is this agent extension or external number reachable now (the SIP task owns
    /// the registrations)? Answered with [`SipInput::Resolved`].
    Resolve {
        number: String,
    },
    /// Where does this number go: a service, an agent, the trunk? Answered with
    /// [`SipInput::Routed`].
    Route {
        number: String,
    },
    /// Find the call owning the dialog `call_id` with one of `tags` as our tag, and ask it
    /// to join ([`Linked::JoinRequest`]) with our party on side `keeps`;
    /// [`Linked::JoinRefused`] comes back if none does.
    Join {
        call_id: CallId,
        tags: Vec<Tag>,
        keeps: Side,
    },
    /// Pass `msg` to call `to`.
    Tell {
        to: CallKey,
        msg: Linked,
    },
    /// The agent of this direct call left it (transferred): their line is free again.
    AgentLeft,
}

/// Output towards the media engine; results come back through [`Call::media_ready`].
#[derive(Debug, Clone, PartialEq)]
pub enum MediaOp {
    /// Create an RTP leg; its local address comes back through [`Call::media_ready`].
    CreateLeg {
        leg: LegId,
        side: Side,
        params: LegParams,
    },
    /// Create a WebRTC leg (ICE-lite, DTLS-SRTP, Opus) that offers, for a browser SIP
    /// client reached over its WebSocket (RFC 7118); the offer comes back through
    /// [`Call::webrtc_offer_ready`].
    CreateWebRtcOffer { leg: LegId, side: Side },
    /// The browser SIP client's SDP answer for a WebRTC leg.
    WebRtcAnswer { leg: LegId, sdp: String },
    /// Change a leg's codec or remote address after an answer or a re-INVITE.
    Update { leg: LegId, params: LegParams },
    /// Put both legs in the call's room: a two-party bridge.
    Bridge { caller: LegId, agent: LegId },
    /// Whether `listener` hears `speaker` (a party that put the call on hold is sent nothing).
    Hears {
        listener: LegId,
        speaker: LegId,
        hears: bool,
    },
    /// Collect the leg's statistics for the record, then release it.
    EndLeg { leg: LegId, side: Side },
    /// Play a prompt to a leg; its end comes back through [`Call::prompt_ended`] with `id`.
    Play {
        leg: LegId,
        prompt: PathBuf,
        id: u64,
        looped: bool,
        interruptible: bool,
    },
    /// Stop whatever prompt the leg plays (no end is reported for it).
    StopPlay { leg: LegId },
    /// Record what `leg` says (left) and hears (right) to a WAV file (voicemail).
    StartRecording { leg: LegId, path: PathBuf },
    /// Close the recording started on this call.
    StopRecording,
    /// Send a key on a leg as RFC 4733 events.
    SendDtmf { leg: LegId, digit: char },
    /// Take a leg out of the call's room (it is about to join the room of another call).
    Leave { leg: LegId },
    /// Put another call's leg `theirs` in this call's room, bridged with `ours` (an
    /// attended transfer joined the two calls).
    Link { ours: LegId, theirs: LegId },
    /// Pause the call's recording if it runs, resume it if paused (the agent's keypad).
    ToggleRecordingPause,
    /// Record what a supervisor's leg says to its own file (their whisper track).
    StartTrack { leg: LegId, path: PathBuf },
    /// Close a supervisor's track and index it, naming the supervisor's call.
    StopTrack { leg: LegId, monitor: CallKey },
    /// Put a supervisor's leg in this call's room (if not there yet) and set who hears whom
    /// for `mode` ([`monitor`]).
    Monitor {
        leg: LegId,
        customer: LegId,
        agent: LegId,
        mode: monitor::MonitorMode,
    },
}

/// What a hosted call tells the service driving it (IVR, queue, voicemail: [`hosted`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// The server answered the caller: the service can start talking.
    Answered,
    /// A DTMF key from the caller (RFC 4733 or SIP INFO).
    Digit(char),
    /// The last prompt of a [`Call::play`] sequence played to its end.
    PromptFinished,
    /// The agent's phone rings.
    AgentRinging,
    /// The agent answered and is bridged with the caller.
    AgentAnswered,
    /// The agent leg failed before answer (busy, declined, unreachable, no answer, or
    /// cancelled by [`Call::cancel_dial`]); the caller is still there.
    AgentFailed(EndCause),
    /// The call is ending (hang-up, timeout, shutdown): the service must let go of it.
    Ending(EndCause),
    /// The answer to [`Call::resolve`].
    Resolved(String, Box<Result<Target, (u16, &'static str)>>),
    /// The agent's phone asked to transfer the caller to this number (blind transfer, REFER
    /// without Replaces); the service routes it ([`Call::route`]) and answers with
    /// [`Call::transfer_completed`] or [`Call::transfer_failed`].
    TransferRequested(String),
    /// The answer to [`Call::route`].
    Routed(String, Box<Result<router::Route, (u16, &'static str)>>),
    /// An attended transfer joined this call with another: the `dropped` side (the
    /// transferor) left, the other party now talks to the other call's party.
    Joined { dropped: Side },
    /// The agent put the caller on hold (true) or took them back (false), by re-INVITE.
    AgentHold(bool),
    /// The monitored call took the supervisor in ([`Call::monitor`]).
    MonitorStarted,
    /// The monitored call refused the supervisor, or is over for them: the call ends.
    MonitorOver { code: u16, reason: &'static str },
}

/// What the media engine needs to know about a leg from SDP.
#[derive(Debug, Clone, PartialEq)]
pub struct LegParams {
    pub codec: Codec,
    pub payload_type: u8,
    pub dtmf_payload_type: Option<u8>,
    pub remote: Option<SocketAddr>,
    pub rtcp_mux: bool,
    /// SDES-SRTP keys of an `RTP/SAVP` leg.
    pub srtp: Option<crate::sdp::crypto::SrtpKeying>,
}

impl LegParams {
    fn from_negotiated(n: &Negotiated) -> LegParams {
        LegParams {
            codec: n.codec,
            payload_type: n.pt,
            dtmf_payload_type: n.dtmf_pt,
            // Port 0 means the stream is off (RFC 3264 §8.2), and c=0.0.0.0 is RFC 2543 hold:
            // either way there is nothing to send to.
            remote: (n.remote.port() != 0 && !n.remote.ip().is_unspecified()).then_some(n.remote),
            rtcp_mux: n.rtcp_mux,
            srtp: n.srtp,
        }
    }
}

/// Everything a call emits.
#[derive(Debug, Clone)]
pub enum Output {
    Sip(SipCommand),
    Media(MediaOp),
    /// For the agent's browser console.
    Softphone(browser::SoftphoneEvent),
    /// For the service driving a hosted call.
    Notice(Notice),
    /// The call is over. The record is complete but for per-leg media figures, which the
    /// actor adds from the legs' last statistics.
    Ended(Box<CallRecord>),
}

/// Per-call settings.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub ring_timeout: Duration,
    /// How long the far ends get to answer our BYE or CANCEL before the call is closed anyway.
    pub end_timeout: Duration,
    /// Our Via for requests we send.
    pub via: LocalVia,
    /// Our host and port for Contact headers.
    pub host: String,
    pub sip_port: u16,
    /// Our address in SDP.
    pub media_ip: IpAddr,
    /// Codecs we speak, in order of preference.
    pub codecs: Vec<Codec>,
    pub user_agent: String,
    /// Whether calls are recorded, unless a service says otherwise ([`Call::set_recorded`]).
    pub record: crate::config::RecordingPolicy,
    /// The agent's keypad code for the recording (pause/resume, or start on demand).
    pub record_keys: String,
    /// Played to the agent when the keypad code took effect.
    pub beep: Option<PathBuf>,
    /// What a customer on hold hears on a call placed from a console (hosted calls get
    /// their queue's music from their service).
    pub hold_music: Option<PathBuf>,
    /// Where call recordings go (`<dir>/YYYY/MM/DD/<time>-<call>.wav`).
    pub recordings_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the media legs (their ports go into our SDP).
    Preparing,
    /// INVITE sent to the agent.
    Ringing,
    /// Both legs answered and bridged.
    Talking,
    /// BYE/CANCEL sent, waiting for the far ends.
    Ending,
    /// (Hosted calls) the caller was answered by the server; agents are dialed in turn.
    Hosted,
    Ended,
}

struct CallerLeg {
    tx: TxId,
    invite: Request,
    source: Peer,
    local_tag: Tag,
    dialog: Option<Dialog>,
    /// The caller's offer; `None` for an INVITE without one (late offer, RFC 3261 §13.2.1):
    /// then our 200 carries the offer and the ACK the answer.
    offer: Option<SessionDescription>,
    media: LocalMedia,
    leg: LegId,
    negotiated: Negotiated,
    /// Our answer, made once the leg's port is known; reused for 183 and 200 (§13.2.1). For
    /// a late offer, our offer (sent in the 200).
    answer: Option<SessionDescription>,
    /// A late offer's answer came in the ACK (or did not: the call ended).
    late_answered: bool,
    /// A final response went to the INVITE.
    finalized: bool,
    bye: Option<ReqRef>,
    /// The calling party is an agent's browser console, not a SIP phone: a call placed from
    /// the console ([`placed`]). The INVITE is made up (no transaction, nothing is sent to
    /// it) and `leg` is the console's media leg.
    console: Option<browser::BrowserAgent>,
}

struct AgentLeg {
    leg: LegId,
    media: LocalMedia,
    dest: Peer,
    contact: Uri,
    /// The INVITE in flight: after a digest challenge, the retry with credentials.
    req: Option<ReqRef>,
    invite: Option<Request>,
    offer: Option<SessionDescription>,
    dialog: Option<Dialog>,
    negotiated: Option<Negotiated>,
    /// Challenges answered so far: (401 or 407, realm, nonce).
    challenges: Vec<(u16, String, String)>,
    /// The INVITE got its final response (or timed out).
    finished: bool,
    answered: bool,
    cancelled: bool,
    bye: Option<ReqRef>,
    bridged: bool,
    /// (Hosted calls) the media leg exists; it is made for each dial and ended after a failed
    /// one, so an idle leg's media timeout never concerns the call.
    media_up: bool,
    /// The agent answers in a browser console, not a phone ([`browser`]).
    browser: Option<browser::BrowserAgent>,
    /// The agent's phone is a browser SIP client on a WebSocket (RFC 7118): its media is
    /// WebRTC, and the leg's SDP offer is the engine's (`Some` once made).
    webrtc: Option<Option<String>>,
}

impl AgentLeg {
    fn new(leg: LegId, media_ip: IpAddr, dest: Peer, contact: Uri) -> AgentLeg {
        AgentLeg {
            leg,
            media: local_media(media_ip),
            dest,
            contact,
            req: None,
            invite: None,
            offer: None,
            dialog: None,
            negotiated: None,
            challenges: Vec::new(),
            finished: false,
            answered: false,
            cancelled: false,
            bye: None,
            bridged: false,
            media_up: false,
            browser: None,
            webrtc: dest.transport.is_websocket().then_some(None),
        }
    }

    /// An attempt is under way: INVITE in flight, or answered and not hung up.
    fn busy(&self) -> bool {
        (self.req.is_some() && !self.finished)
            || self.dialog.is_some()
            || self.bye.is_some()
            || self
                .browser
                .as_ref()
                .is_some_and(|b| b.ringing || b.connected)
    }
}

/// Who refreshes the session (RFC 4028 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresher {
    /// The caller refreshes; we end the call if it stops.
    Caller,
    /// We refresh the caller leg (UPDATE when the caller allows it, else re-INVITE).
    Us,
}

#[derive(Debug, Clone)]
struct SessionTimer {
    interval: Duration,
    refresher: Refresher,
    /// Our refresh time (Us), or the expiry we enforce (Caller).
    deadline: Option<Instant>,
    /// The refresh request in flight (Us).
    pending: Option<(ReqRef, Method, u32)>,
}

/// The smallest session interval we accept (RFC 4028 §4: Min-SE at least 90 s).
pub const MIN_SE: u64 = 90;

/// Reads `Session-Expires: delta[;refresher=uac|uas]` (RFC 4028 §4).
fn session_expires(req: &Request) -> Option<(u64, Option<String>)> {
    let v = req.headers.get(&HeaderName::SessionExpires)?;
    let mut parts = v.split(';');
    let secs: u64 = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("refresher")
            .then(|| v.trim().to_ascii_lowercase())
    });
    Some((secs, refresher))
}

/// One call through the B2BUA.
pub struct Call {
    key: CallKey,
    config: CallConfig,
    state: State,
    start: Instant,
    caller: CallerLeg,
    agent: AgentLeg,
    /// The media leg the call made for its agent side (a browser agent brings its own).
    own_agent_leg: LegId,
    ring_deadline: Option<Instant>,
    end_deadline: Option<Instant>,
    /// RFC 4028 session timer on the caller leg, once answered.
    session: Option<SessionTimer>,
    next_req: u32,
    legs_pending: u8,
    out: VecDeque<Output>,
    record: CallRecord,
    /// Set for calls the server answers itself ([`Call::new_hosted`]), and for relayed calls
    /// once their agent blind-transfers them.
    hosted: Option<hosted::HostedState>,
    /// Transfers and joined calls ([`transfer`]).
    links: transfer::Links,
    /// The call's recording ([`recording`]).
    rec: recording::CallRecording,
    /// Supervisors monitoring this call, or the call this one monitors ([`monitor`]).
    monitors: monitor::Monitors,
    /// The agent's keypad feature code ([`keys`]).
    keys: keys::FeatureKeys,
    /// The side that put the other on hold (re-INVITE), while it lasts.
    on_hold: Option<Side>,
    /// Since when, for the record's hold time.
    hold_since: Option<Instant>,
}

/// A machine input.
impl Call {
    /// Starts a call for the caller's INVITE (the SIP layer already sent 100 Trying). When the
    /// offer cannot be used, the error is the final response the caller gets at once.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        key: CallKey,
        config: CallConfig,
        now: Instant,
        wall_ms: i64,
        tx: TxId,
        invite: Request,
        source: Peer,
        target: Target,
        legs: (LegId, LegId),
    ) -> Result<Call, Response> {
        let mut call = Call::build(key, config, now, wall_ms, tx, invite, source, legs)?;
        call.record.target = Some(target.clone());
        if let (Some(peer), Some(uri)) = (target.peer(), target.request_uri()) {
            call.agent.dest = peer;
            call.agent.contact = uri.clone();
        }
        call.legs_pending = 2;
        call.agent.webrtc = call.agent.dest.transport.is_websocket().then_some(None);
        call.create_agent_media(legs.1);
        Ok(call)
    }

    /// The parts of a call both kinds share: the caller's offer checked and answered, the
    /// record started, the caller's media leg asked for.
    #[allow(clippy::too_many_arguments)]
    fn build(
        key: CallKey,
        config: CallConfig,
        now: Instant,
        wall_ms: i64,
        tx: TxId,
        invite: Request,
        source: Peer,
        legs: (LegId, LegId),
    ) -> Result<Call, Response> {
        let local_tag = Tag::generate();
        let reject = |code, reason: &str| invite.response(code, reason, Some(local_tag.as_str()));
        // RFC 4028 §8.1: a session interval below our minimum is refused with 422.
        if let Some((secs, _)) = session_expires(&invite)
            && secs < MIN_SE
        {
            let mut r = reject(422, "Session Interval Too Small");
            r.headers.push(HeaderName::MinSe, MIN_SE.to_string());
            return Err(r);
        }
        let offer = match std::str::from_utf8(&invite.body)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .map(SessionDescription::parse)
        {
            Some(Ok(o)) => Some(o),
            // No offer (§13.2.1): we offer in the 200 and the ACK answers.
            None if invite.body.iter().all(u8::is_ascii_whitespace) => None,
            None | Some(Err(_)) => return Err(reject(400, "Bad Request (malformed SDP)")),
        };
        let media = local_media(config.media_ip);
        let negotiated = match &offer {
            None => Negotiated::pending(config.codecs.first().copied().unwrap_or(Codec::Pcmu)),
            Some(offer) => match sdp::answer(offer, &media, &config.codecs) {
                Ok((_, n)) => n,
                Err(e) => {
                    let mut r = reject(488, "Not Acceptable Here");
                    r.headers
                        .push(HeaderName::Warning, format!("304 cti-server \"{e}\""));
                    return Err(r);
                }
            },
        };
        let mut record = CallRecord::new(key, &invite, wall_ms);
        record.caller.codec = Some(negotiated.codec);
        // Until a dial says where, the agent leg points back at the caller; nothing is sent
        // on it before then.
        let agent = AgentLeg::new(legs.1, config.media_ip, source, invite.uri.clone());
        let caller = CallerLeg {
            tx,
            invite,
            source,
            local_tag,
            dialog: None,
            offer,
            media,
            leg: legs.0,
            negotiated,
            answer: None,
            late_answered: false,
            finalized: false,
            bye: None,
            console: None,
        };
        Ok(Call::assemble(key, config, now, record, caller, agent).with_caller_leg())
    }

    /// A call in `Preparing` with its two legs described and no media asked for yet.
    fn assemble(
        key: CallKey,
        config: CallConfig,
        now: Instant,
        record: CallRecord,
        caller: CallerLeg,
        agent: AgentLeg,
    ) -> Call {
        let config_record = config.record;
        let record_keys = keys::FeatureKeys::new(&config.record_keys);
        Call {
            key,
            state: State::Preparing,
            start: now,
            caller,
            own_agent_leg: agent.leg,
            agent,
            ring_deadline: None,
            end_deadline: None,
            session: None,
            next_req: 0,
            legs_pending: 0,
            out: VecDeque::new(),
            record,
            config,
            hosted: None,
            links: transfer::Links::default(),
            monitors: monitor::Monitors::default(),
            rec: recording::CallRecording::new(config_record),
            keys: record_keys,
            on_hold: None,
            hold_since: None,
        }
    }

    fn with_caller_leg(mut self) -> Call {
        self.legs_pending = 1;
        let params = LegParams::from_negotiated(&self.caller.negotiated);
        self.media(MediaOp::CreateLeg {
            leg: self.caller.leg,
            side: Side::Caller,
            params,
        });
        self
    }

    /// Asks for the agent side's media leg: WebRTC for a browser SIP client, else RTP that
    /// starts with the caller's codec, offered first (if the agent takes it, the two legs
    /// agree and nothing is transcoded).
    fn create_agent_media(&mut self, leg: LegId) {
        if self.agent.webrtc.is_some() {
            self.media(MediaOp::CreateWebRtcOffer {
                leg,
                side: Side::Agent,
            });
        } else {
            let params = self.agent_leg_params();
            self.media(MediaOp::CreateLeg {
                leg,
                side: Side::Agent,
                params,
            });
        }
    }

    /// The agent media leg before the agent answers: the caller's codec, no remote yet, and
    /// plain RTP whatever the caller's leg is (our offers are `RTP/AVP`).
    fn agent_leg_params(&self) -> LegParams {
        LegParams {
            remote: None,
            dtmf_payload_type: Some(101),
            srtp: None,
            ..LegParams::from_negotiated(&self.caller.negotiated)
        }
    }

    pub fn key(&self) -> CallKey {
        self.key
    }

    /// A call out through the trunk (placed by an agent, or put straight through to it).
    pub fn is_outbound(&self) -> bool {
        self.record.is_outbound()
    }

    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// True once the caller has been answered 200 and not hung up.
    pub fn is_talking(&self) -> bool {
        self.state == State::Talking
    }

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// True when outputs wait (a service acted on the call after it was drained).
    pub fn poll_output_pending(&self) -> bool {
        !self.out.is_empty()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.ring_deadline,
            self.end_deadline,
            self.session.as_ref().and_then(|s| s.deadline),
            self.keys.deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A WebRTC leg made its SDP offer ([`MediaOp::CreateWebRtcOffer`]).
    pub fn webrtc_offer_ready(&mut self, now: Instant, leg: LegId, offer: String) {
        if leg != self.agent.leg || self.agent.webrtc.is_none() {
            return;
        }
        self.agent.webrtc = Some(Some(offer));
        self.agent.media_up = true;
        self.leg_ready(now, leg);
    }

    /// A media leg is up at `local`.
    pub fn media_ready(&mut self, now: Instant, leg: LegId, local: SocketAddr) {
        if leg == self.caller.leg {
            self.caller.media.port = local.port();
        } else if leg == self.agent.leg {
            self.agent.media.port = local.port();
            self.agent.media_up = true;
        }
        self.leg_ready(now, leg);
    }

    fn leg_ready(&mut self, now: Instant, leg: LegId) {
        if leg != self.caller.leg && leg != self.agent.leg {
            return;
        }
        if leg == self.agent.leg && self.hosted.is_some() {
            self.hosted_agent_media_ready(now);
            return;
        }
        self.legs_pending = self.legs_pending.saturating_sub(1);
        if self.legs_pending == 0 && self.state == State::Preparing {
            if self.hosted.is_some() {
                self.answer_hosted(now);
            } else {
                self.start_agent_leg(now);
            }
        }
    }

    /// Creating a media leg failed: the call cannot go on.
    pub fn media_failed(&mut self, now: Instant, leg: LegId, reason: &str) {
        tracing::warn!(call = %self.key, reason, "media leg failed");
        if self.hosted.is_some() && leg == self.agent.leg && self.state == State::Hosted {
            // No port for the agent leg: this dial fails, the caller stays.
            self.agent_attempt_failed(EndCause::MediaError);
            return;
        }
        self.reject_caller(503, "Service Unavailable (media)");
        self.end(now, EndCause::MediaError, None);
    }

    /// No RTP from a leg for the configured time.
    pub fn media_timeout(&mut self, now: Instant, leg: LegId) {
        let hosted_live = self.state == State::Hosted
            && (leg == self.caller.leg || (leg == self.agent.leg && self.agent.bridged));
        if self.state != State::Talking && !hosted_live {
            return;
        }
        let side = if leg == self.caller.leg {
            Side::Caller
        } else {
            Side::Agent
        };
        tracing::info!(call = %self.key, ?side, "media timeout: ending the call");
        self.end(now, EndCause::MediaTimeout, Some(side));
    }

    /// The server is shutting down: end the call cleanly.
    pub fn shutdown(&mut self, now: Instant) {
        if self.state == State::Hosted {
            self.end(now, EndCause::Shutdown, None);
            return;
        }
        if self.state == State::Preparing || self.state == State::Ringing {
            self.reject_caller(503, "Service Unavailable (shutting down)");
        }
        self.end(now, EndCause::Shutdown, None);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let held = self.keys.timeout(now);
        self.agent_keys(held);
        if self.ring_deadline.is_some_and(|d| now >= d) {
            self.ring_deadline = None;
            if self.state == State::Hosted {
                tracing::info!(call = %self.key, "agent did not answer in time");
                self.cancel_dial(now);
                self.agent_attempt_failed(EndCause::NoAnswer);
            } else if self.state == State::Ringing {
                tracing::info!(call = %self.key, "agent did not answer in time");
                self.reject_caller(480, "Temporarily Unavailable (no answer)");
                self.end(now, EndCause::NoAnswer, None);
            }
        }
        if self.end_deadline.is_some_and(|d| now >= d) {
            self.end_deadline = None;
            self.finish(now);
        }
        if let Some(s) = &mut self.session
            && s.deadline.is_some_and(|d| now >= d)
        {
            s.deadline = None;
            match s.refresher {
                Refresher::Caller => {
                    tracing::info!(call = %self.key, "session timer expired (RFC 4028)");
                    self.end(now, EndCause::SessionExpired, Some(Side::Caller));
                }
                Refresher::Us => self.send_session_refresh(),
            }
        }
    }

    pub fn handle_sip(&mut self, now: Instant, input: SipInput) {
        match input {
            SipInput::Response { req, response } => self.on_response(now, req, response),
            SipInput::Request { tx, request, .. } => self.on_request(now, tx, request),
            SipInput::Cancel { cancel_tx, request } => {
                let ok = request.response(200, "OK", Some(self.caller.local_tag.as_str()));
                self.sip(SipCommand::Respond {
                    tx: cancel_tx,
                    response: self.stamp(ok),
                });
                if !self.caller.finalized {
                    self.reject_caller(487, "Request Terminated");
                    self.end(now, EndCause::CallerCancelled, Some(Side::Caller));
                }
            }
            SipInput::Ack { request } => self.on_caller_ack(now, &request),
            SipInput::Timeout { req } => self.on_timeout(now, req),
            SipInput::Resolved { number, target } => {
                if self.hosted.is_some() {
                    self.out
                        .push_back(Output::Notice(Notice::Resolved(number, Box::new(target))));
                }
            }
            SipInput::Routed { number, route } => {
                if self.hosted.is_some() {
                    let route = route.map(|r| *r);
                    self.out
                        .push_back(Output::Notice(Notice::Routed(number, Box::new(route))));
                }
            }
            SipInput::Linked(msg) => self.on_linked(now, msg),
            SipInput::AckTimeout => {
                if self.state == State::Talking {
                    self.end(now, EndCause::NoAck, Some(Side::Caller));
                }
            }
        }
    }
}

/// Internals.
impl Call {
    fn sip(&mut self, c: SipCommand) {
        self.out.push_back(Output::Sip(c));
    }

    fn media(&mut self, m: MediaOp) {
        self.out.push_back(Output::Media(m));
    }

    fn next_req(&mut self) -> ReqRef {
        self.next_req += 1;
        ReqRef(self.next_req)
    }

    fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    fn stamp(&self, mut r: Response) -> Response {
        r.headers
            .push(HeaderName::Server, self.config.user_agent.clone());
        r
    }

    fn our_contact(&self, user: &str) -> String {
        format!(
            "<{}>",
            SipUri::new(Some(user), &self.config.host, Some(self.config.sip_port))
        )
    }

    /// Codecs for the agent offer: the caller's first, then ours.
    fn agent_prefs(&self) -> Vec<Codec> {
        let first = self.caller.negotiated.codec;
        std::iter::once(first)
            .chain(self.config.codecs.iter().copied().filter(|c| *c != first))
            .collect()
    }

    /// Our answer to the caller, fixed now that the port is known (used in 183 and 200).
    /// False (the caller refused and the call ending) when it cannot be made.
    fn make_caller_answer(&mut self, now: Instant) -> bool {
        let Some(offer) = &self.caller.offer else {
            // Late offer: what goes in our 200 is our offer; the ACK brings the answer.
            self.caller.answer = Some(sdp::create_offer(
                &self.caller.media,
                &self.config.codecs,
                Direction::SendRecv,
            ));
            return true;
        };
        match sdp::answer(offer, &self.caller.media, &self.config.codecs) {
            Ok((answer, negotiated)) => {
                self.caller.answer = Some(answer);
                self.caller.negotiated = negotiated;
                true
            }
            Err(_) => {
                self.reject_caller(488, "Not Acceptable Here");
                self.end(now, EndCause::MediaError, None);
                false
            }
        }
    }

    fn start_agent_leg(&mut self, now: Instant) {
        if !self.make_caller_answer(now) {
            return;
        }
        self.send_agent_invite();
        self.state = State::Ringing;
        self.ring_deadline = Some(now + self.config.ring_timeout);
    }

    /// The INVITE to the agent (or trunk) named by the record's target, with our offer.
    fn send_agent_invite(&mut self) {
        let Some(target) = self.record.target.clone() else {
            return;
        };
        let offer = sdp::create_offer(&self.agent.media, &self.agent_prefs(), Direction::SendRecv);
        // A browser SIP client gets the WebRTC leg's offer instead.
        let webrtc_offer = self.agent.webrtc.clone().flatten();
        let caller_from = self.caller.invite.from_header();
        let caller_user = caller_from
            .as_ref()
            .and_then(|f| f.uri.as_sip().and_then(|u| u.user.clone()))
            .unwrap_or_else(|| "anonymous".to_string());
        let mut display = caller_from.and_then(|f| f.display);
        // The agent's phone: From and To in our domain, To is the extension. The trunk: both
        // in the trunk's domain, To is the number, From the caller's number unless a caller
        // id is configured (then the caller's name is not passed either).
        let (to_user, domain, caller_user) = match &target {
            // A console is rung over its WebSocket ([`browser`]), never with an INVITE.
            Target::Browser { .. } => return,
            Target::Agent { extension, .. } => {
                (extension.clone(), self.config.host.clone(), caller_user)
            }
            Target::Trunk {
                number,
                uri,
                from_user,
                ..
            } => {
                let domain = uri
                    .as_sip()
                    .map_or_else(|| self.config.host.clone(), |u| u.host.clone());
                let user = match from_user {
                    Some(u) => {
                        display = None;
                        u.clone()
                    }
                    None => caller_user,
                };
                (number.clone(), domain, user)
            }
        };

        let mut invite = Request::new(Method::Invite, self.agent.contact.clone());
        let h = &mut invite.headers;
        h.push(
            HeaderName::Via,
            self.agent_via().to_value(&Branch::generate()),
        );
        let mf = self
            .caller
            .invite
            .max_forwards()
            .map_or(70, |m| m.saturating_sub(1));
        h.push(HeaderName::MaxForwards, mf.to_string());
        // The agent's phone shows who is calling: the caller's number and name.
        let from_uri = SipUri::new(Some(&caller_user), &domain, None);
        let from = match display {
            Some(d) => format!("{d} <{from_uri}>;tag={}", Tag::generate()),
            None => format!("<{from_uri}>;tag={}", Tag::generate()),
        };
        h.push(HeaderName::From, from);
        h.push(
            HeaderName::To,
            format!("<{}>", SipUri::new(Some(&to_user), &domain, None)),
        );
        h.push(
            HeaderName::CallId,
            CallId::generate(&self.config.host).to_string(),
        );
        h.push(HeaderName::CSeq, "1 INVITE");
        h.push(HeaderName::Contact, self.our_contact(&caller_user));
        h.push(HeaderName::Allow, ALLOW);
        h.push(HeaderName::UserAgent, self.config.user_agent.clone());
        h.push(HeaderName::ContentType, "application/sdp");
        invite.body = Bytes::from(match &webrtc_offer {
            Some(sdp) => sdp.clone(),
            None => offer.to_string(),
        });

        let req = self.next_req();
        if let (Some(call_id), Some(tag)) = (invite.call_id(), invite.from_tag()) {
            self.sip(SipCommand::BindDialog {
                call_id,
                local_tag: Tag::new(tag),
            });
        }
        if self.hosted.is_none()
            && self.caller.console.is_none()
            && let Some(call_id) = self.caller.invite.call_id()
        {
            self.sip(SipCommand::BindDialog {
                call_id,
                local_tag: self.caller.local_tag.clone(),
            });
        }
        self.sip(SipCommand::Send {
            req,
            request: invite.clone(),
            dest: self.agent.dest,
        });
        self.agent.req = Some(req);
        self.agent.invite = Some(invite);
        self.agent.offer = webrtc_offer.is_none().then_some(offer);
    }

    fn on_response(&mut self, now: Instant, req: ReqRef, resp: Response) {
        if let Some((pending, method, cseq)) = self.session.as_ref().and_then(|s| s.pending.clone())
            && pending == req
        {
            self.on_refresh_response(now, method, cseq, &resp);
            return;
        }
        if self.on_abandoned_attempt_response(req, &resp) || self.links.bye_answered(req) {
            self.finish_if_done(now);
            return;
        }
        if Some(req) == self.agent.req {
            self.on_agent_invite_response(now, resp);
        } else if Some(req) == self.caller.bye {
            self.caller.bye = None;
            self.finish_if_done(now);
        } else if Some(req) == self.agent.bye {
            self.agent.bye = None;
            self.finish_if_done(now);
        }
    }

    fn on_timeout(&mut self, now: Instant, req: ReqRef) {
        if self.hosted.is_some() && Some(req) == self.agent.req && !self.agent.finished {
            self.agent.finished = true;
            self.agent_attempt_failed(EndCause::AgentUnreachable);
            self.finish_if_done(now);
        } else if Some(req) == self.agent.req && !self.agent.finished {
            self.agent.finished = true;
            if !self.caller.finalized {
                self.reject_caller(480, "Temporarily Unavailable (agent unreachable)");
            }
            self.end(now, EndCause::AgentUnreachable, None);
        } else {
            self.on_response(now, req, timeout_response());
        }
    }

    fn on_agent_invite_response(&mut self, now: Instant, resp: Response) {
        let Some(invite) = self.agent.invite.clone() else {
            return;
        };
        if matches!(resp.code, 401 | 407) && self.retry_with_credentials(&invite, &resp) {
            // The caller hears nothing of it and the ring timeout keeps running.
            return;
        }
        if self.hosted.is_some() {
            self.on_hosted_agent_response(now, &invite, resp);
            return;
        }
        match resp.code {
            100 => {}
            101..=199 => {
                if self.agent.dialog.is_none() && resp.to_tag().is_some() {
                    self.agent.dialog = Dialog::uac(&invite, &resp).ok();
                }
                if self.state != State::Ringing || self.caller.finalized {
                    return;
                }
                if self.record.ring_after.is_none() {
                    self.record.ring_after = Some(self.elapsed(now));
                }
                if self.caller.console.is_some() {
                    self.placed_progress(&resp);
                    return;
                }
                // Our SDP cannot go in an unreliable 183 to a caller who made no offer (it
                // would be an offer; RFC 3261 §13.2.1): they hear ringing instead.
                let early_media = !resp.body.is_empty()
                    && self.caller.offer.is_some()
                    && self.take_agent_answer(&resp);
                let mut r = if early_media {
                    // The agent's early audio is bridged: the caller gets our 183 with SDP.
                    self.bridge();
                    self.caller_response(183, "Session Progress", true)
                } else {
                    self.caller_response(180, "Ringing", false)
                };
                r.headers.push(HeaderName::Contact, self.our_contact("cti"));
                self.sip(SipCommand::Respond {
                    tx: self.caller.tx,
                    response: r,
                });
            }
            200..=299 => {
                if !self.accept_agent_2xx(&invite, &resp) {
                    return;
                }
                if self.state != State::Ringing || self.caller.finalized {
                    // Answered after the caller left (CANCEL or ring timeout crossed the 200).
                    self.send_bye(Side::Agent);
                    self.finish_if_done(now);
                    return;
                }
                if !self.take_agent_answer(&resp) {
                    self.reject_caller(488, "Not Acceptable Here");
                    self.end(now, EndCause::MediaError, Some(Side::Agent));
                    return;
                }
                if self.caller.console.is_some() {
                    self.placed_answered(now);
                    return;
                }
                self.ring_deadline = None;
                self.bridge();
                let mut ok = self.caller_response(200, "OK", true);
                ok.headers
                    .push(HeaderName::Contact, self.our_contact("cti"));
                ok.headers.push(HeaderName::Allow, ALLOW);
                self.start_session_timer(now, &mut ok);
                let mut dialog =
                    Dialog::uas(&self.caller.invite, self.caller.local_tag.clone()).ok();
                if let Some(d) = &mut dialog {
                    d.confirm();
                }
                self.caller.dialog = dialog;
                self.caller.finalized = true;
                self.sip(SipCommand::Respond {
                    tx: self.caller.tx,
                    response: ok,
                });
                self.state = State::Talking;
                self.record.answer_after = Some(self.elapsed(now));
                tracing::info!(call = %self.key, "answered");
            }
            code => {
                self.agent.finished = true;
                if self.caller.finalized || self.state != State::Ringing {
                    self.finish_if_done(now);
                    return;
                }
                let (code, reason, cause) = map_agent_failure(code);
                self.reject_caller(code, reason);
                self.end(now, cause, Some(Side::Agent));
            }
        }
    }

    /// A 2xx to the agent INVITE: the dialog confirmed and the 2xx acknowledged (every one,
    /// retransmissions too). True for the first, which makes the agent answered.
    fn accept_agent_2xx(&mut self, invite: &Request, resp: &Response) -> bool {
        let first = !self.agent.finished;
        self.agent.finished = true;
        match &mut self.agent.dialog {
            Some(d) => d.handle_response(resp),
            None => self.agent.dialog = Dialog::uac(invite, resp).ok(),
        }
        self.ack_agent_2xx(invite);
        if first {
            self.agent.answered = true;
        }
        first
    }

    /// Every 2xx is acknowledged, retransmissions too, with the INVITE's CSeq number and
    /// credentials (§13.2.2.4).
    fn ack_agent_2xx(&mut self, invite: &Request) {
        if let Some(d) = &self.agent.dialog {
            let mut ack = d.create_ack(cseq_of(invite), &self.agent_via());
            for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
                for v in invite.headers.get_all(&name) {
                    ack.headers.push(name.clone(), v);
                }
            }
            self.sip(SipCommand::Ack {
                request: ack,
                dest: self.agent.dest,
            });
        }
    }

    /// The caller's ACK: for a late offer it carries the answer to the offer in our 200
    /// (§13.2.1); without a usable one the session cannot be set up and the call ends (BYE).
    fn on_caller_ack(&mut self, now: Instant, ack: &Request) {
        if self.caller.offer.is_some() || self.caller.late_answered {
            return;
        }
        let Some(our_offer) = self.caller.answer.clone() else {
            return;
        };
        self.caller.late_answered = true;
        let answer = std::str::from_utf8(&ack.body)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .map(SessionDescription::parse);
        let negotiated = match answer {
            Some(Ok(a)) => sdp::negotiated_from_answer(&our_offer, &a).ok(),
            _ => None,
        };
        let Some(n) = negotiated else {
            tracing::info!(call = %self.key, "late offer: the ACK brought no usable answer");
            self.end(now, EndCause::MediaError, Some(Side::Caller));
            return;
        };
        self.caller.negotiated = n;
        self.record.caller.codec = Some(n.codec);
        self.media(MediaOp::Update {
            leg: self.caller.leg,
            params: LegParams::from_negotiated(&n),
        });
    }

    /// RFC 3261 §22.2 (§8.1.3.5): a 401/407 to our INVITE is answered by a new INVITE with
    /// the same Call-ID, From (tag), To, Request-URI and offer, the next CSeq, a new branch,
    /// and `Authorization` (401) or `Proxy-Authorization` (407) for the challenge. False
    /// (the response is a failure like any other) without credentials, once the call is
    /// ending, when no challenge is usable, or when the same realm challenges again without
    /// `stale=true` (§22.2: rejected credentials are not retried; RFC 7616 §3.3).
    fn retry_with_credentials(&mut self, invite: &Request, resp: &Response) -> bool {
        /// More than a proxy and a UAS challenging, each once, plus a stale nonce each.
        const MAX_CHALLENGES: usize = 4;
        let dialing = if self.hosted.is_some() {
            self.state == State::Hosted && !self.agent.cancelled
        } else {
            self.state == State::Ringing && !self.caller.finalized
        };
        if !dialing {
            return false;
        }
        let Some(creds) = self
            .record
            .target
            .as_ref()
            .and_then(|t| t.credentials())
            .cloned()
        else {
            return false;
        };
        let (challenge_header, auth_header) = if resp.code == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let uri = invite.uri.to_string();
        let Some((challenge, value)) = auth::answer_challenge(
            resp.headers.get_all(&challenge_header),
            &creds.username,
            &creds.password,
            Method::Invite.as_str(),
            &uri,
        ) else {
            tracing::warn!(call = %self.key, code = resp.code, "no digest challenge we can answer");
            return false;
        };
        let tried = |c: &(u16, String, String)| c.0 == resp.code && c.1 == challenge.realm;
        let answered_before = self.agent.challenges.iter().any(tried);
        let same_nonce = self
            .agent
            .challenges
            .iter()
            .any(|c| tried(c) && c.2 == challenge.nonce);
        if same_nonce
            || (answered_before && !challenge.stale)
            || self.agent.challenges.len() >= MAX_CHALLENGES
        {
            tracing::info!(call = %self.key, code = resp.code, realm = %challenge.realm, "credentials refused");
            return false;
        }
        self.agent
            .challenges
            .push((resp.code, challenge.realm.clone(), challenge.nonce.clone()));

        let mut retry = invite.clone();
        retry.headers.set(
            HeaderName::Via,
            self.agent_via().to_value(&Branch::generate()),
        );
        retry.headers.set(
            HeaderName::CSeq,
            format!("{} INVITE", cseq_of(invite).saturating_add(1)),
        );
        // §22.3: credentials for other realms (a proxy's and the UAS's) are kept; ours for
        // this realm are replaced.
        let realm = challenge.realm.clone();
        let kept: Vec<String> = retry
            .headers
            .get_all(&auth_header)
            .filter(|v| DigestCredentials::parse(v).is_none_or(|c| c.realm != realm))
            .map(str::to_string)
            .collect();
        retry.headers.remove(&auth_header);
        for v in kept {
            retry.headers.push(auth_header.clone(), v);
        }
        retry.headers.push(auth_header, value);
        // A dialog or answer from the challenged INVITE's provisional responses belongs to
        // a transaction that is over.
        self.agent.dialog = None;
        self.agent.negotiated = None;
        let req = self.next_req();
        self.sip(SipCommand::Send {
            req,
            request: retry.clone(),
            dest: self.agent.dest,
        });
        self.agent.req = Some(req);
        self.agent.invite = Some(retry);
        tracing::info!(call = %self.key, code = resp.code, realm = %challenge.realm, "INVITE challenged: retrying with credentials");
        true
    }

    /// Our Via for requests to the caller (BYE, session refresh), on the transport the
    /// caller's INVITE came over (RFC 3261 §18.1.1: the Via names the transport used).
    fn caller_via(&self) -> LocalVia {
        LocalVia {
            transport: self.caller.source.transport,
            ..self.config.via.clone()
        }
    }

    /// Our Via for the agent leg, on the transport the agent (or trunk) is reached by.
    fn agent_via(&self) -> LocalVia {
        LocalVia {
            transport: self.agent.dest.transport,
            ..self.config.via.clone()
        }
    }

    /// Reads the agent's SDP answer and retunes the agent media leg. False when unusable.
    fn take_agent_answer(&mut self, resp: &Response) -> bool {
        if self.agent.negotiated.is_some() {
            return true;
        }
        if self.agent.webrtc.is_some() {
            // The WebRTC leg negotiates for itself (ICE, DTLS, Opus): its answer goes there.
            let Some(sdp) = std::str::from_utf8(&resp.body)
                .ok()
                .filter(|b| b.contains("m=audio"))
            else {
                return false;
            };
            self.media(MediaOp::WebRtcAnswer {
                leg: self.agent.leg,
                sdp: sdp.to_string(),
            });
            self.record.agent.codec = Some(Codec::Opus);
            self.agent.negotiated = Some(Negotiated::pending(Codec::Opus));
            return true;
        }
        let (Some(offer), Ok(body)) = (&self.agent.offer, std::str::from_utf8(&resp.body)) else {
            return false;
        };
        let Ok(answer) = SessionDescription::parse(body) else {
            return false;
        };
        let Ok(n) = sdp::negotiated_from_answer(offer, &answer) else {
            return false;
        };
        self.record.agent.codec = Some(n.codec);
        self.media(MediaOp::Update {
            leg: self.agent.leg,
            params: LegParams::from_negotiated(&n),
        });
        self.agent.negotiated = Some(n);
        true
    }

    fn bridge(&mut self) {
        if !self.agent.bridged {
            self.agent.bridged = true;
            self.media(MediaOp::Bridge {
                caller: self.caller.leg,
                agent: self.agent.leg,
            });
            self.start_call_recording();
        }
    }

    /// A response to the caller's INVITE with our tag, optionally with our SDP answer.
    fn caller_response(&self, code: u16, reason: &str, with_sdp: bool) -> Response {
        let mut r = self
            .caller
            .invite
            .response(code, reason, Some(self.caller.local_tag.as_str()));
        if with_sdp && let Some(a) = &self.caller.answer {
            r.headers.push(HeaderName::ContentType, "application/sdp");
            r.body = Bytes::from(a.to_string());
        }
        self.stamp(r)
    }

    /// The caller's INVITE gets its one final response (no-op after the first).
    fn reject_caller(&mut self, code: u16, reason: &str) {
        if self.caller.finalized {
            return;
        }
        self.caller.finalized = true;
        if self.caller.console.is_some() {
            // No INVITE to answer: the console hears why when the call ends.
            return;
        }
        let r = self.caller_response(code, reason, false);
        self.sip(SipCommand::Respond {
            tx: self.caller.tx,
            response: r,
        });
    }

    fn on_request(&mut self, now: Instant, tx: TxId, req: Request) {
        let side = if req.to_tag().as_deref() == Some(self.caller.local_tag.as_str())
            && req.call_id() == self.caller.invite.call_id()
        {
            Side::Caller
        } else {
            Side::Agent
        };
        let reply = |code: u16, reason: &str| req.response(code, reason, None);
        if self.links.was_released(&req) {
            // The transferor's phone hangs up as we do (RFC 5589 §6): its BYE is answered.
            let code = if req.method == Method::Bye { 200 } else { 481 };
            let r = self.stamp(reply(
                code,
                if code == 200 {
                    "OK"
                } else {
                    "Call/Transaction Does Not Exist"
                },
            ));
            self.sip(SipCommand::Respond { tx, response: r });
            return;
        }
        let dialog = match side {
            Side::Caller => self.caller.dialog.as_mut(),
            Side::Agent => self.agent.dialog.as_mut(),
        };
        let Some(dialog) = dialog else {
            let r = self.stamp(reply(481, "Call/Transaction Does Not Exist"));
            self.sip(SipCommand::Respond { tx, response: r });
            return;
        };
        if let Err(code) = dialog.handle_request(&req) {
            let reason = if code == 500 {
                "Server Internal Error (CSeq out of order)"
            } else {
                "Call/Transaction Does Not Exist"
            };
            let r = self.stamp(reply(code, reason));
            self.sip(SipCommand::Respond { tx, response: r });
            return;
        }
        match req.method {
            Method::Bye => {
                let r = self.stamp(reply(200, "OK"));
                self.sip(SipCommand::Respond { tx, response: r });
                match side {
                    Side::Caller => self.caller.dialog = None,
                    Side::Agent => self.agent.dialog = None,
                }
                let cause = match side {
                    Side::Caller => EndCause::CallerHangup,
                    Side::Agent => EndCause::AgentHangup,
                };
                self.end(now, cause, Some(side));
            }
            Method::Invite => {
                self.on_reinvite(now, tx, &req, side);
                if side == Side::Caller {
                    self.session_refreshed(now);
                }
            }
            Method::Options | Method::Info => {
                // A key sent as SIP INFO (application/dtmf-relay, application/dtmf) is a key
                // like an RFC 4733 one for the service driving a hosted call.
                if let Some(digit) = hosted::info_digit(&req) {
                    let leg = match side {
                        Side::Caller => self.caller.leg,
                        Side::Agent => self.agent.leg,
                    };
                    self.dtmf(now, leg, digit);
                }
                let mut r = reply(200, "OK");
                r.headers.push(HeaderName::Allow, ALLOW);
                let r = self.stamp(r);
                self.sip(SipCommand::Respond { tx, response: r });
            }
            Method::Refer => self.on_refer(tx, &req, side),
            Method::Update if req.body.is_empty() => {
                let mut r = reply(200, "OK");
                if side == Side::Caller {
                    self.session_refreshed(now);
                    self.add_session_expires(&mut r);
                }
                let r = self.stamp(r);
                self.sip(SipCommand::Respond { tx, response: r });
            }
            _ => {
                let mut r = reply(405, "Method Not Allowed");
                r.headers.push(HeaderName::Allow, ALLOW);
                let r = self.stamp(r);
                self.sip(SipCommand::Respond { tx, response: r });
            }
        }
    }

    /// A re-INVITE on one leg (hold, resume, codec change), answered locally (RFC 3264 §8):
    /// the other leg keeps its media; a party on hold is simply sent no audio.
    fn on_reinvite(&mut self, now: Instant, tx: TxId, req: &Request, side: Side) {
        let reply = |code: u16, reason: &str| req.response(code, reason, None);
        let offer = std::str::from_utf8(&req.body)
            .ok()
            .filter(|b| !b.trim().is_empty())
            .map(SessionDescription::parse);
        let offer = match offer {
            Some(Ok(o)) => o,
            _ => {
                // No offer (§14.1 allows it) or a malformed one: refused, the call goes on.
                let r = self.stamp(reply(488, "Not Acceptable Here (SDP offer required)"));
                self.sip(SipCommand::Respond { tx, response: r });
                return;
            }
        };
        let (leg, other, current, mut media) = match side {
            Side::Caller => (
                self.caller.leg,
                self.agent.leg,
                Some(self.caller.negotiated.codec),
                self.caller.media,
            ),
            Side::Agent => (
                self.agent.leg,
                self.caller.leg,
                self.agent.negotiated.as_ref().map(|n| n.codec),
                self.agent.media,
            ),
        };
        media.next_version();
        let prefs: Vec<Codec> = current
            .into_iter()
            .chain(
                self.config
                    .codecs
                    .iter()
                    .copied()
                    .filter(|c| Some(*c) != current),
            )
            .collect();
        let (answer, negotiated) = match sdp::answer(&offer, &media, &prefs) {
            Ok(x) => x,
            Err(_) => {
                let r = self.stamp(reply(488, "Not Acceptable Here"));
                self.sip(SipCommand::Respond { tx, response: r });
                return;
            }
        };
        let held = sdp::is_hold(&offer);
        self.set_hold(now, held.then_some(side));
        self.media(MediaOp::Update {
            leg,
            params: LegParams::from_negotiated(&negotiated),
        });
        self.media(MediaOp::Hears {
            listener: leg,
            speaker: other,
            hears: !held,
        });
        match side {
            Side::Caller => {
                self.caller.media = media;
                self.caller.negotiated = negotiated;
            }
            Side::Agent => {
                self.agent.media = media;
                self.agent.negotiated = Some(negotiated);
            }
        }
        tracing::info!(call = %self.key, ?side, held, "re-INVITE answered");
        if side == Side::Agent && self.hosted.is_some() {
            self.out.push_back(Output::Notice(Notice::AgentHold(held)));
        }
        let mut ok = reply(200, "OK");
        ok.headers
            .push(HeaderName::Contact, self.our_contact("cti"));
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = Bytes::from(answer.to_string());
        if side == Side::Caller {
            self.add_session_expires(&mut ok);
        }
        let ok = self.stamp(ok);
        self.sip(SipCommand::Respond { tx, response: ok });
    }

    /// RFC 4028 §9: the answer fixes the interval and the refresher; the caller chose, or
    /// refreshes itself when it supports timers, else we do.
    fn start_session_timer(&mut self, now: Instant, ok: &mut Response) {
        let supports = self
            .caller
            .invite
            .tokens(&HeaderName::Supported)
            .iter()
            .any(|t| t.eq_ignore_ascii_case("timer"));
        let Some((secs, asked)) = session_expires(&self.caller.invite) else {
            return;
        };
        let refresher = match asked.as_deref() {
            Some("uas") => Refresher::Us,
            Some("uac") if supports => Refresher::Caller,
            _ if supports => Refresher::Caller,
            _ => Refresher::Us,
        };
        self.session = Some(SessionTimer {
            interval: Duration::from_secs(secs),
            refresher,
            deadline: None,
            pending: None,
        });
        self.session_refreshed(now);
        self.add_session_expires(ok);
        if supports {
            ok.headers.push(HeaderName::Require, "timer");
        }
    }

    fn add_session_expires(&self, r: &mut Response) {
        if let Some(s) = &self.session {
            let who = match s.refresher {
                Refresher::Caller => "uac",
                Refresher::Us => "uas",
            };
            r.headers.push(
                HeaderName::SessionExpires,
                format!("{};refresher={who}", s.interval.as_secs()),
            );
        }
    }

    /// The session was refreshed now: schedule our refresh (half the interval, §10) or the
    /// expiry we enforce (the interval minus min(32 s, interval/3), §10).
    fn session_refreshed(&mut self, now: Instant) {
        if let Some(s) = &mut self.session {
            let i = s.interval;
            s.deadline = Some(match s.refresher {
                Refresher::Us => now + i / 2,
                Refresher::Caller => now + i - (i / 3).min(Duration::from_secs(32)),
            });
        }
    }

    /// Our refresh: UPDATE without a body when the caller allows it, else a re-INVITE with
    /// the same session description (RFC 4028 §7.4, §9).
    fn send_session_refresh(&mut self) {
        let allows_update = self
            .caller
            .invite
            .tokens(&HeaderName::Allow)
            .iter()
            .any(|t| t.eq_ignore_ascii_case("UPDATE"));
        let method = if allows_update {
            Method::Update
        } else {
            Method::Invite
        };
        let via = self.caller_via();
        let Some(dialog) = self.caller.dialog.as_mut() else {
            return;
        };
        let mut req = dialog.create_request(method.clone(), &via);
        let cseq = req.cseq().map_or(0, |c| c.seq);
        if let Some(s) = &self.session {
            req.headers.push(
                HeaderName::SessionExpires,
                format!("{};refresher=uas", s.interval.as_secs()),
            );
        }
        req.headers
            .push(HeaderName::Contact, self.our_contact("cti"));
        if method == Method::Invite
            && let Some(a) = &self.caller.answer
        {
            req.headers.push(HeaderName::ContentType, "application/sdp");
            req.body = Bytes::from(a.to_string());
        }
        let r = self.next_req();
        let dest = self.caller.source;
        self.sip(SipCommand::Send {
            req: r,
            request: req,
            dest,
        });
        if let Some(s) = &mut self.session {
            s.pending = Some((r, method, cseq));
        }
    }

    fn on_refresh_response(&mut self, now: Instant, method: Method, cseq: u32, resp: &Response) {
        if resp.code < 200 {
            return;
        }
        if let Some(s) = &mut self.session {
            s.pending = None;
        }
        if (200..300).contains(&resp.code) {
            if method == Method::Invite
                && let Some(d) = &self.caller.dialog
            {
                let ack = d.create_ack(cseq, &self.caller_via());
                self.sip(SipCommand::Ack {
                    request: ack,
                    dest: self.caller.source,
                });
            }
            self.session_refreshed(now);
        } else if matches!(resp.code, 408 | 481) {
            // §10: the session is gone.
            self.end(now, EndCause::SessionExpired, None);
        } else {
            // Other failures (e.g. 491): the session stays; try again at the usual time.
            self.session_refreshed(now);
        }
    }

    /// Who holds the other now (`None`: nobody); the record sums the time on hold.
    fn set_hold(&mut self, now: Instant, who: Option<Side>) {
        match (self.hold_since, who) {
            (None, Some(_)) => self.hold_since = Some(now),
            (Some(since), None) => {
                self.record.hold += now.saturating_duration_since(since);
                self.hold_since = None;
            }
            _ => {}
        }
        self.on_hold = who;
    }

    /// Sends BYE on a leg whose dialog is confirmed.
    fn send_bye(&mut self, side: Side) {
        if side == Side::Agent && self.agent.browser.is_some() {
            let reason = match self.record.end_cause {
                Some(EndCause::CallerHangup) => "the customer hung up",
                Some(EndCause::AgentHangup) => "you hung up",
                Some(_) => "the call ended",
                None => "the call went on without you",
            };
            self.hang_up_browser(reason);
            return;
        }
        let via = match side {
            Side::Caller => self.caller_via(),
            Side::Agent => self.agent_via(),
        };
        let (dialog, dest) = match side {
            Side::Caller => (self.caller.dialog.take(), self.caller.source),
            Side::Agent => (self.agent.dialog.take(), self.agent.dest),
        };
        let Some(mut d) = dialog else {
            return;
        };
        let bye = d.create_request(Method::Bye, &via);
        d.terminate();
        let req = self.next_req();
        self.sip(SipCommand::Send {
            req,
            request: bye,
            dest,
        });
        match side {
            Side::Caller => self.caller.bye = Some(req),
            Side::Agent => self.agent.bye = Some(req),
        }
    }

    /// Starts ending the call: BYE every confirmed dialog, CANCEL a ringing agent.
    fn end(&mut self, now: Instant, cause: EndCause, by: Option<Side>) {
        if matches!(self.state, State::Ending | State::Ended) {
            return;
        }
        if let Some(h) = self.hosted.as_mut() {
            // A voicemail being recorded is closed first, before the legs go.
            if std::mem::take(&mut h.recording) {
                self.out.push_back(Output::Media(MediaOp::StopRecording));
            }
            self.out.push_back(Output::Notice(Notice::Ending(cause)));
        }
        self.stop_call_recording();
        self.state = State::Ending;
        self.ring_deadline = None;
        self.session = None;
        self.end_links(cause);
        self.end_monitors();
        self.record.end_cause = Some(cause);
        self.record.ended_by = by;
        if self
            .caller
            .dialog
            .as_ref()
            .is_some_and(|d| !matches!(d.state(), crate::sip::dialog::DialogState::Early))
        {
            self.send_bye(Side::Caller);
        }
        self.hang_up_console();
        if self.agent.answered {
            self.send_bye(Side::Agent);
        } else if !self.cancel_browser_ring()
            && let Some(req) = self.agent.req
            && !self.agent.finished
            && !self.agent.cancelled
        {
            self.agent.cancelled = true;
            self.sip(SipCommand::Cancel { req });
        }
        self.end_deadline = Some(now + self.config.end_timeout);
        self.finish_if_done(now);
    }

    fn finish_if_done(&mut self, now: Instant) {
        if self.state != State::Ending {
            return;
        }
        let agent_pending = (self.agent.req.is_some() && !self.agent.finished)
            || self
                .hosted
                .as_ref()
                .is_some_and(|h| !h.abandoned.is_empty())
            || self.links.byes_pending();
        if self.caller.bye.is_none() && self.agent.bye.is_none() && !agent_pending {
            self.finish(now);
        }
    }

    /// Releases the media and emits the record.
    fn finish(&mut self, now: Instant) {
        if self.state == State::Ended {
            return;
        }
        self.state = State::Ended;
        self.ring_deadline = None;
        self.end_deadline = None;
        self.session = None;
        self.record.end_after = Some(self.elapsed(now));
        self.set_hold(now, None);
        if self.record.end_cause.is_none() {
            self.record.end_cause = Some(EndCause::Failed);
        }
        if self.caller.console.is_none() {
            self.media(MediaOp::EndLeg {
                leg: self.caller.leg,
                side: Side::Caller,
            });
        }
        if self.agent.browser.is_none() {
            self.media(MediaOp::EndLeg {
                leg: self.agent.leg,
                side: Side::Agent,
            });
        } else {
            // The console's leg is not the call's: it only leaves (it did on hang-up) and
            // the call's own agent leg, if an earlier dial made it, goes.
            self.media(MediaOp::EndLeg {
                leg: self.own_agent_leg,
                side: Side::Agent,
            });
        }
        self.out
            .push_back(Output::Ended(Box::new(self.record.clone())));
    }
}

/// How an agent's failure reaches the caller ("mapped sensibly", RFC 3261 §16.7-style
/// consolidation for a single branch): busy stays busy, anything about reachability becomes
/// 480 so the carrier can try elsewhere, media refusal stays 488.
fn map_agent_failure(code: u16) -> (u16, &'static str, EndCause) {
    match code {
        486 | 600 => (486, "Busy Here", EndCause::AgentBusy),
        603 => (603, "Decline", EndCause::AgentRejected(code)),
        // A trunk refusing the call (credentials, destination barred) says so to the caller.
        403 => (403, "Forbidden", EndCause::AgentRejected(code)),
        488 | 606 => (488, "Not Acceptable Here", EndCause::AgentRejected(code)),
        408 => (480, "Temporarily Unavailable", EndCause::NoAnswer),
        487 => (480, "Temporarily Unavailable", EndCause::NoAnswer),
        _ => (
            480,
            "Temporarily Unavailable",
            EndCause::AgentRejected(code),
        ),
    }
}

/// Our media identity for a new leg: port filled in when the leg exists (§5 of RFC 4566:
/// the session id is random, the version starts at 1 and grows with every new description).
fn local_media(addr: IpAddr) -> LocalMedia {
    LocalMedia {
        addr,
        port: 0,
        session_id: u64::from(rand::random::<u32>()),
        version: 1,
        srtp_key: crate::sdp::crypto::new_key(),
    }
}

/// The CSeq number of a request we built (always present).
fn cseq_of(req: &Request) -> u32 {
    req.cseq().map_or(1, |c| c.seq)
}

/// A locally made 408 for a transaction that timed out (§8.1.3.1).
fn timeout_response() -> Response {
    Response {
        code: 408,
        reason: "Request Timeout".into(),
        headers: crate::sip::message::Headers::new(),
        body: Bytes::new(),
    }
}

#[cfg(test)]
mod tests;
