//! RFC 3264 offer/answer for one B2BUA leg: the audio codecs we speak, RFC 4733
//! telephone-event, RFC 3605 / RFC 5761 RTCP, and hold (RFC 3264 §8.4).
//!
//! Each leg is negotiated on its own: the UAS side calls [`answer`] on the offer it received,
//! the UAC side calls [`create_offer`] and later [`negotiated_from_answer`]. Both give a
//! [`Negotiated`] for the media engine.
//!
//! Policy decisions, in one place:
//! - The answerer picks the first codec in the *offer's* order that is also in `prefs`
//!   (RFC 3264 §6.1 says the answerer SHOULD keep the offerer's preference; carriers expect
//!   their first codec back, e.g. PCMA first in Europe).
//! - Only the first usable audio stream is accepted; any other stream (video, a second audio,
//!   a secure profile) is rejected with port 0 in its position.
//! - `RTP/AVP` and `RTP/AVPF` are accepted, and `RTP/SAVP` / `RTP/SAVPF` with an SDES key
//!   we can use (RFC 4568, [`super::crypto`]): the answer keeps the profile and gives our own
//!   key for the first usable `a=crypto` line. DTLS-SRTP (`UDP/TLS/RTP/SAVPF`) is for the
//!   browser legs, not here.
//! - The caller owns the `o=` version: call [`LocalMedia::next_version`] before each new
//!   offer or answer ([`with_direction`] bumps the version it copies).

use std::net::{IpAddr, SocketAddr};

use super::{
    Address, Attribute, Connection, Direction, Formats, MediaDescription, Origin, RtpMap, SdpError,
    SessionDescription, Timing,
};

/// The audio codecs the media engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static PT 0.
    Pcmu,
    /// G.711 A-law, static PT 8.
    Pcma,
    /// Opus; the SDP always says `opus/48000/2` (RFC 7587 §7) whatever rate we run internally.
    Opus,
}

/// Our side of a leg's media: the RTP socket we receive on and the `o=` identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMedia {
    pub addr: IpAddr,
    pub port: u16,
    pub session_id: u64,
    /// `o=` session version of the next description we send.
    pub version: u64,
    /// Our SDES-SRTP master key and salt, should the peer offer `RTP/SAVP`: one per leg, so
    /// every answer of the leg (183, 200, re-INVITEs) gives the same key.
    pub srtp_key: [u8; super::crypto::KEY_AND_SALT],
}

/// The outcome of negotiation for the media engine, from our point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type both sides use for `codec`.
    pub pt: u8,
    /// RFC 4733 telephone-event payload type, when both sides have it.
    pub dtmf_pt: Option<u8>,
    /// Where to send RTP: the peer's `c=` address and `m=` port. A `0.0.0.0` address is
    /// RFC 2543 legacy hold (send nothing).
    pub remote: SocketAddr,
    /// What we may do: `SendOnly` means we send and do not expect to receive.
    pub direction: Direction,
    /// Packetization time we send with, in ms.
    pub ptime: u32,
    /// RTCP on the RTP port (RFC 5761); otherwise on port + 1 or the `a=rtcp` port.
    pub rtcp_mux: bool,
    /// SDES-SRTP keys when the stream is `RTP/SAVP` (RFC 4568).
    pub srtp: Option<super::crypto::SrtpKeying>,
}

impl Negotiated {
    /// Before the peer has answered our offer (a caller who sent no offer, RFC 3261
    /// §13.2.1): our first codec at the payload type we offer it on, nowhere to send yet.
    pub fn pending(codec: Codec) -> Negotiated {
        Negotiated {
            codec,
            pt: codec.offer_pt(),
            dtmf_pt: Some(if codec == Codec::Opus {
                DTMF_PT_48K
            } else {
                DTMF_PT
            }),
            remote: SocketAddr::from(([0, 0, 0, 0], 0)),
            direction: Direction::SendRecv,
            ptime: 20,
            rtcp_mux: false,
            srtp: None,
        }
    }
}

/// Why negotiation failed. All but `Malformed` are the peer offering nothing we can use
/// (SIP 488 Not Acceptable Here on the UAS side); see [`NegotiationError::sip_status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    #[error("no codec in common")]
    NoCommonCodec,
    #[error("no audio stream")]
    NoAudio,
    #[error("audio only offered with unsupported transport {0}")]
    UnsupportedProtocol(String),
    #[error("answer uses payload type {0} that was not offered")]
    UnofferedPayloadType(u8),
    #[error("the audio stream was rejected (port 0)")]
    Rejected,
    #[error("malformed SDP: {0}")]
    Malformed(String),
}

impl NegotiationError {
    /// The SIP status a UAS answers an unusable offer with.
    pub fn sip_status(&self) -> u16 {
        match self {
            NegotiationError::Malformed(_) => 400,
            _ => 488,
        }
    }
}

impl From<SdpError> for NegotiationError {
    fn from(e: SdpError) -> Self {
        NegotiationError::Malformed(e.to_string())
    }
}

/// Default packetization (RFC 3551 §4.5 for G.711; 20 ms is also the Opus norm).
pub const DEFAULT_PTIME: u32 = 20;
/// Payload type we offer Opus on (what browsers use).
pub const OPUS_PT: u8 = 111;
/// Payload type we offer telephone-event/8000 on.
pub const DTMF_PT: u8 = 101;
/// Payload type we offer telephone-event/48000 on, next to Opus (RFC 4733 §2.1: the event
/// clock should match the audio codec's).
pub const DTMF_PT_48K: u8 = 110;
/// Opus receive parameters (RFC 7587 §7): we decode FEC, 10 ms frames, and run at most
/// wideband internally so ask for no more.
pub const OPUS_FMTP: &str =
    "minptime=10;useinbandfec=1;maxplaybackrate=16000;sprop-maxcapturerate=16000";
/// Events we receive: DTMF 0–9 * # A–D and flash (RFC 4733 §3.2).
pub const DTMF_FMTP: &str = "0-16";

const ALL_CODECS: [Codec; 3] = [Codec::Pcmu, Codec::Pcma, Codec::Opus];

impl Codec {
    /// The `a=rtpmap` encoding name.
    pub fn encoding(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::Opus => "opus",
        }
    }

    /// The RTP clock rate (48000 for Opus whatever the internal rate, RFC 7587 §4.1).
    pub fn clock_rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::Opus => 48000,
        }
    }

    /// The static payload type, if the codec has one (RFC 3551 §6).
    pub fn static_pt(self) -> Option<u8> {
        match self {
            Codec::Pcmu => Some(0),
            Codec::Pcma => Some(8),
            Codec::Opus => None,
        }
    }

    fn offer_pt(self) -> u8 {
        self.static_pt().unwrap_or(OPUS_PT)
    }

    fn rtpmap(self, pt: u8) -> RtpMap {
        RtpMap {
            pt,
            encoding: self.encoding().to_owned(),
            clock_rate: self.clock_rate(),
            channels: (self == Codec::Opus).then_some(2),
        }
    }

    fn from_rtpmap(m: &RtpMap) -> Option<Codec> {
        let e = &m.encoding;
        let mono = matches!(m.channels, None | Some(1));
        if e.eq_ignore_ascii_case("PCMU") && m.clock_rate == 8000 && mono {
            Some(Codec::Pcmu)
        } else if e.eq_ignore_ascii_case("PCMA") && m.clock_rate == 8000 && mono {
            Some(Codec::Pcma)
        } else if e.eq_ignore_ascii_case("opus") && m.clock_rate == 48000 && m.channels == Some(2) {
            // RFC 7587 §7: MUST be opus/48000/2.
            Some(Codec::Opus)
        } else {
            None
        }
    }
}

impl LocalMedia {
    /// Bumps and returns the `o=` version for the next description we send (RFC 3264 §8).
    pub fn next_version(&mut self) -> u64 {
        self.version = self.version.wrapping_add(1);
        self.version
    }
}

/// What a payload type means in a media section: `a=rtpmap` wins, else the static table.
enum PtKind {
    Codec(Codec),
    /// telephone-event at this clock rate.
    Dtmf(u32),
    Unknown,
}

fn pt_kind(m: &MediaDescription, pt: u8) -> PtKind {
    match m.rtpmap(pt) {
        Some(map) if map.encoding.eq_ignore_ascii_case("telephone-event") => {
            PtKind::Dtmf(map.clock_rate)
        }
        Some(map) => Codec::from_rtpmap(map).map_or(PtKind::Unknown, PtKind::Codec),
        None => match pt {
            0 => PtKind::Codec(Codec::Pcmu),
            8 => PtKind::Codec(Codec::Pcma),
            _ => PtKind::Unknown,
        },
    }
}

/// The telephone-event PT among `pts` to use with `codec`: the same clock rate if there is
/// one (RFC 4733 §2.1), else any.
fn pick_dtmf(m: &MediaDescription, pts: impl Iterator<Item = u8>, codec: Codec) -> Option<u8> {
    let mut any = None;
    for pt in pts {
        if let PtKind::Dtmf(clock) = pt_kind(m, pt) {
            if clock == codec.clock_rate() {
                return Some(pt);
            }
            any = any.or(Some(pt));
        }
    }
    any
}

fn is_audio_rtp(m: &MediaDescription) -> bool {
    m.media == "audio" && matches!(m.formats, Formats::Rtp(_))
}

fn is_supported_protocol(m: &MediaDescription) -> bool {
    match m.protocol.as_str() {
        "RTP/AVP" | "RTP/AVPF" => true,
        "RTP/SAVP" | "RTP/SAVPF" => usable_crypto(m).is_some(),
        _ => false,
    }
}

/// The first `a=crypto` line of a secure stream we can honour (RFC 4568 §7.1.1: the
/// answerer picks one of the offered lines).
fn usable_crypto(m: &MediaDescription) -> Option<super::crypto::Crypto> {
    m.attributes.iter().find_map(|a| match a {
        Attribute::Other {
            name,
            value: Some(v),
        } if name == "crypto" => super::crypto::Crypto::parse(v).ok(),
        _ => None,
    })
}

/// `ptime` in force for a section: media level, else session level.
fn offered_ptime(sd: &SessionDescription, m: &MediaDescription) -> Option<u32> {
    m.ptime().or_else(|| {
        sd.attributes.iter().rev().find_map(|a| match a {
            Attribute::Ptime(p) => Some(*p),
            _ => None,
        })
    })
}

/// A ptime we can packetize: 10–120 ms in 10 ms steps.
fn usable_ptime(p: u32) -> bool {
    (10..=120).contains(&p) && p.is_multiple_of(10)
}

fn remote_addr(sd: &SessionDescription, index: usize) -> Result<SocketAddr, NegotiationError> {
    let port = sd.media[index].port;
    match sd.media_connection(index).map(|c| &c.address) {
        Some(Address::Ip(ip)) => Ok(SocketAddr::new(*ip, port)),
        Some(Address::Name { name, .. }) => Err(NegotiationError::Malformed(format!(
            "connection address {name} is not an IP literal"
        ))),
        None => Err(NegotiationError::Malformed("no connection address".into())),
    }
}

/// RFC 2543 legacy hold: `c=0.0.0.0` (RFC 3264 §8.4).
fn is_null_connection(sd: &SessionDescription, index: usize) -> bool {
    matches!(
        sd.media_connection(index).map(|c| &c.address),
        Some(Address::Ip(ip)) if ip.is_unspecified()
    )
}

fn session(local: &LocalMedia, media: Vec<MediaDescription>) -> SessionDescription {
    SessionDescription {
        origin: Origin {
            username: "-".to_owned(),
            session_id: local.session_id,
            session_version: local.version,
            address: Address::Ip(local.addr),
        },
        session_name: "-".to_owned(),
        connection: Some(Connection::ip(local.addr)),
        timing: vec![Timing { start: 0, stop: 0 }],
        fields: Vec::new(),
        attributes: Vec::new(),
        media,
    }
}

/// Builds our offer: one `RTP/AVP` audio stream with `prefs` in order (all our codecs when
/// `prefs` is empty), telephone-event/8000 (and /48000 when offering Opus), ptime 20,
/// rtcp-mux (RFC 5761: the answerer may ignore it) and `direction`.
pub fn create_offer(
    local: &LocalMedia,
    prefs: &[Codec],
    direction: Direction,
) -> SessionDescription {
    let prefs = if prefs.is_empty() {
        &ALL_CODECS[..]
    } else {
        prefs
    };
    let mut pts = Vec::with_capacity(prefs.len() + 2);
    let mut attributes = Vec::with_capacity(prefs.len() + 8);
    for &codec in prefs {
        let pt = codec.offer_pt();
        if pts.contains(&pt) {
            continue;
        }
        pts.push(pt);
        attributes.push(Attribute::RtpMap(codec.rtpmap(pt)));
        if codec == Codec::Opus {
            attributes.push(Attribute::Fmtp {
                pt,
                params: OPUS_FMTP.to_owned(),
            });
        }
    }
    let mut dtmf = vec![(DTMF_PT, 8000)];
    if prefs.contains(&Codec::Opus) {
        dtmf.push((DTMF_PT_48K, 48000));
    }
    for (pt, clock_rate) in dtmf {
        pts.push(pt);
        attributes.push(dtmf_rtpmap(pt, clock_rate));
        attributes.push(Attribute::Fmtp {
            pt,
            params: DTMF_FMTP.to_owned(),
        });
    }
    attributes.push(Attribute::Ptime(DEFAULT_PTIME));
    attributes.push(Attribute::RtcpMux);
    attributes.push(Attribute::Direction(direction));
    session(
        local,
        vec![MediaDescription {
            media: "audio".to_owned(),
            port: local.port,
            port_count: None,
            protocol: "RTP/AVP".to_owned(),
            formats: Formats::Rtp(pts),
            connection: None,
            fields: Vec::new(),
            attributes,
        }],
    )
}

fn dtmf_rtpmap(pt: u8, clock_rate: u32) -> Attribute {
    Attribute::RtpMap(RtpMap {
        pt,
        encoding: "telephone-event".to_owned(),
        clock_rate,
        channels: None,
    })
}

/// A stream rejected in an answer: same media and protocol, port 0 (RFC 3264 §6).
fn rejected(m: &MediaDescription) -> MediaDescription {
    MediaDescription {
        media: m.media.clone(),
        port: 0,
        port_count: None,
        protocol: m.protocol.clone(),
        formats: m.formats.clone(),
        connection: None,
        fields: Vec::new(),
        attributes: Vec::new(),
    }
}

/// Answers an offer (RFC 3264 §6): accepts the first audio stream with a codec we share
/// (first in the offer's order among `prefs`; all our codecs when `prefs` is empty), keeps
/// the offered telephone-event PT, mirrors the direction, echoes ptime and rtcp-mux, and
/// rejects every other stream with port 0 in its position.
pub fn answer(
    offer: &SessionDescription,
    local: &LocalMedia,
    prefs: &[Codec],
) -> Result<(SessionDescription, Negotiated), NegotiationError> {
    let prefs = if prefs.is_empty() {
        &ALL_CODECS[..]
    } else {
        prefs
    };
    let mut media = Vec::with_capacity(offer.media.len());
    let mut negotiated = None;
    let mut saw_audio = false;
    let mut unsupported_protocol = None;
    for (index, m) in offer.media.iter().enumerate() {
        if negotiated.is_some() || !is_audio_rtp(m) || m.port == 0 {
            media.push(rejected(m));
            continue;
        }
        saw_audio = true;
        if !is_supported_protocol(m) {
            unsupported_protocol.get_or_insert_with(|| m.protocol.clone());
            media.push(rejected(m));
            continue;
        }
        match answer_stream(offer, index, local, prefs)? {
            Some((section, n)) => {
                media.push(section);
                negotiated = Some(n);
            }
            None => media.push(rejected(m)),
        }
    }
    match negotiated {
        Some(n) => Ok((session(local, media), n)),
        None if !saw_audio => Err(NegotiationError::NoAudio),
        None => Err(unsupported_protocol.map_or(
            NegotiationError::NoCommonCodec,
            NegotiationError::UnsupportedProtocol,
        )),
    }
}

/// The answer to one offered audio stream, or `None` when no codec is shared.
fn answer_stream(
    offer: &SessionDescription,
    index: usize,
    local: &LocalMedia,
    prefs: &[Codec],
) -> Result<Option<(MediaDescription, Negotiated)>, NegotiationError> {
    let m = &offer.media[index];
    let pts = m.payload_types();
    // RFC 3264 §6.1: keep the offerer's order.
    let Some((pt, codec)) = pts.iter().find_map(|&pt| match pt_kind(m, pt) {
        PtKind::Codec(c) if prefs.contains(&c) => Some((pt, c)),
        _ => None,
    }) else {
        return Ok(None);
    };
    let remote = remote_addr(offer, index)?;
    let dtmf_pt = pick_dtmf(m, pts.iter().copied(), codec);

    // RFC 3264 §8.4: c=0.0.0.0 means the offerer will not receive, whatever the attribute.
    let offered = offer.media_direction(index);
    let offered = Direction::from_flags(
        offered.sends(),
        offered.receives() && !is_null_connection(offer, index),
    );
    let direction = offered.reverse();

    let offered_ptime = offered_ptime(offer, m).filter(|p| usable_ptime(*p));
    let mut ptime = offered_ptime.unwrap_or(DEFAULT_PTIME);
    if let Some(max) = m.maxptime()
        && max < ptime
    {
        ptime = (max / 10 * 10).max(10);
    }
    let rtcp_mux = m.rtcp_mux();

    let mut formats = vec![pt];
    let mut attributes = vec![Attribute::RtpMap(codec.rtpmap(pt))];
    if codec == Codec::Opus {
        attributes.push(Attribute::Fmtp {
            pt,
            params: OPUS_FMTP.to_owned(),
        });
    }
    if let Some(dpt) = dtmf_pt {
        formats.push(dpt);
        let clock = match pt_kind(m, dpt) {
            PtKind::Dtmf(clock) => clock,
            _ => 8000,
        };
        attributes.push(dtmf_rtpmap(dpt, clock));
        if let Some(params) = m.fmtp(dpt) {
            attributes.push(Attribute::Fmtp {
                pt: dpt,
                params: params.to_owned(),
            });
        }
    }
    if offered_ptime.is_some() {
        attributes.push(Attribute::Ptime(ptime));
    }
    if rtcp_mux {
        attributes.push(Attribute::RtcpMux);
    }
    // SDES: our own key, under the tag and suite of the line we took (RFC 4568 §7.1.2).
    let srtp = match m.protocol.as_str() {
        "RTP/SAVP" | "RTP/SAVPF" => {
            let theirs = usable_crypto(m)
                .ok_or(NegotiationError::UnsupportedProtocol(m.protocol.clone()))?;
            let ours = super::crypto::Crypto {
                key: local.srtp_key,
                ..theirs
            };
            attributes.push(Attribute::Other {
                name: "crypto".into(),
                value: Some(ours.value()),
            });
            Some(super::crypto::SrtpKeying {
                suite: theirs.suite,
                local: ours.key,
                remote: theirs.key,
            })
        }
        _ => None,
    };
    attributes.push(Attribute::Direction(direction));

    let section = MediaDescription {
        media: "audio".to_owned(),
        port: local.port,
        port_count: None,
        protocol: m.protocol.clone(),
        formats: Formats::Rtp(formats),
        connection: None,
        fields: Vec::new(),
        attributes,
    };
    let negotiated = Negotiated {
        codec,
        pt,
        dtmf_pt,
        remote,
        direction,
        ptime,
        rtcp_mux,
        srtp,
    };
    Ok(Some((section, negotiated)))
}

/// The UAC side: what the peer's answer to our offer agreed (RFC 3264 §7). The answer must
/// keep our `m=` lines and pick only payload types we offered.
pub fn negotiated_from_answer(
    offer_we_sent: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, NegotiationError> {
    if offer_we_sent.media.len() != answer.media.len() {
        return Err(NegotiationError::Malformed(format!(
            "answer has {} m= lines, offer had {}",
            answer.media.len(),
            offer_we_sent.media.len()
        )));
    }
    let index = offer_we_sent
        .media
        .iter()
        .position(|m| is_audio_rtp(m) && m.port != 0)
        .ok_or(NegotiationError::NoAudio)?;
    let ours = &offer_we_sent.media[index];
    let theirs = &answer.media[index];
    if theirs.port == 0 {
        return Err(NegotiationError::Rejected);
    }
    // RFC 3264 §6: the answer keeps each m= line's media type in its position.
    if theirs.media != ours.media {
        return Err(NegotiationError::Malformed(format!(
            "answer m= line {index} is {}, offer's is {}",
            theirs.media, ours.media
        )));
    }
    let offered = ours.payload_types();
    let answered = theirs.payload_types();
    if let Some(&pt) = answered.iter().find(|pt| !offered.contains(pt)) {
        return Err(NegotiationError::UnofferedPayloadType(pt));
    }
    // The PT numbers are ours (RFC 3264 §6.1), so read them with our offer's rtpmaps.
    let (pt, codec) = answered
        .iter()
        .find_map(|&pt| match pt_kind(ours, pt) {
            PtKind::Codec(c) => Some((pt, c)),
            _ => None,
        })
        .ok_or(NegotiationError::NoCommonCodec)?;
    let dtmf_pt = pick_dtmf(ours, answered.iter().copied(), codec);
    let remote = remote_addr(answer, index)?;

    let we_offered = offer_we_sent.media_direction(index);
    let they_answered = answer.media_direction(index);
    let direction = Direction::from_flags(
        we_offered.sends() && they_answered.receives() && !is_null_connection(answer, index),
        we_offered.receives() && they_answered.sends(),
    );
    let ptime = offered_ptime(answer, theirs)
        .filter(|p| usable_ptime(*p))
        .unwrap_or(DEFAULT_PTIME);
    Ok(Negotiated {
        codec,
        pt,
        dtmf_pt,
        remote,
        direction,
        ptime,
        rtcp_mux: ours.rtcp_mux() && theirs.rtcp_mux(),
        // Our offers are plain RTP/AVP.
        srtp: None,
    })
}

/// Whether a description puts us on hold (RFC 3264 §8.4): every active audio stream is
/// `sendonly` or `inactive`, or has the RFC 2543 `c=0.0.0.0`.
pub fn is_hold(sd: &SessionDescription) -> bool {
    let mut active = (0..sd.media.len())
        .filter(|&i| is_audio_rtp(&sd.media[i]) && sd.media[i].port != 0)
        .peekable();
    active.peek().is_some()
        && active.all(|i| {
            matches!(
                sd.media_direction(i),
                Direction::SendOnly | Direction::Inactive
            ) || is_null_connection(sd, i)
        })
}

/// A copy of `sd` with `direction` on every active stream (and none at session level) and
/// the `o=` version bumped: the re-INVITE offer for hold (`SendOnly`) or resume (`SendRecv`).
pub fn with_direction(sd: &SessionDescription, direction: Direction) -> SessionDescription {
    let mut out = sd.clone();
    out.attributes
        .retain(|a| !matches!(a, Attribute::Direction(_)));
    for m in out.media.iter_mut().filter(|m| m.port != 0) {
        m.set_direction(direction);
    }
    out.origin.session_version = out.origin.session_version.wrapping_add(1);
    out
}
