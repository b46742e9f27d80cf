//! Sans-IO SDP for the B2BUA: the RFC 4566 model, its parser and printer, and RFC 3264
//! offer/answer for the audio codecs we speak (see [`negotiate`]).
//!
//! The parser is tolerant where the grammar is tolerant (unknown attributes are kept verbatim
//! and printed back in their place, session-level lines may come in any order after `v=`, LF
//! line ends are accepted, blank lines are skipped) and strict where a mistake would change
//! the call: `v=0` first, exactly one `o=` and `s=`, at least one `t=`, a `c=` at session
//! level or in every `m=` section, well-formed `m=` ports and format lists (RTP payload types
//! 0–127), well-formed `a=rtpmap`. Other typed attributes whose value does not parse
//! (`a=ptime:abc`) are kept as [`Attribute::Other`] rather than failing the call.
//!
//! Invariant: for every `s` that parses, `parse(&parse(s)?.to_string()) == parse(s)`; the
//! printer writes CRLF line ends in RFC 4566 §5 order and never panics.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod negotiate;

pub use negotiate::{
    Codec, DEFAULT_PTIME, DTMF_FMTP, DTMF_PT, DTMF_PT_48K, LocalMedia, Negotiated,
    NegotiationError, OPUS_FMTP, OPUS_PT, answer, create_offer, is_hold, negotiated_from_answer,
    with_direction,
};

/// A parsed session description (RFC 4566 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=` (kept verbatim; may be empty, which some UAs send).
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<Connection>,
    /// `t=` lines (at least one).
    pub timing: Vec<Timing>,
    /// Other session-level lines (`i= u= e= p= b= r= z= k=`), verbatim, in RFC 4566 order.
    pub fields: Vec<Field>,
    /// Session-level `a=` lines in their order.
    pub attributes: Vec<Attribute>,
    /// `m=` sections in their order (offer/answer matches them by position).
    pub media: Vec<MediaDescription>,
}

/// `o=<username> <sess-id> <sess-version> IN <addrtype> <address>` (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub username: String,
    pub session_id: u64,
    /// Bumped on every new description sent in the session (RFC 3264 §8).
    pub session_version: u64,
    pub address: Address,
}

/// `c=IN <addrtype> <address>[/<ttl>[/<count>]]` (RFC 4566 §5.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub address: Address,
    /// Text after the first `/` (multicast TTL and count), verbatim.
    pub multicast: Option<String>,
}

/// An address with its SDP address type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// An IP literal; `IP4` or `IP6` follows from the address.
    Ip(IpAddr),
    /// A host name (or anything not an IP literal of its type), verbatim.
    Name { ip6: bool, name: String },
}

/// `t=<start> <stop>` (NTP seconds; `0 0` for an unbounded session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub start: u64,
    pub stop: u64,
}

/// A line kept verbatim: `<kind>=<value>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub kind: char,
    pub value: String,
}

/// One `m=` section (RFC 4566 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, `application`, ...
    pub media: String,
    /// 0 means the stream is rejected or disabled (RFC 3264 §5.1).
    pub port: u16,
    /// `/<number of ports>`.
    pub port_count: Option<u16>,
    /// `RTP/AVP`, `RTP/SAVP`, `UDP/TLS/RTP/SAVPF`, ...
    pub protocol: String,
    pub formats: Formats,
    pub connection: Option<Connection>,
    /// Other lines (`i= b= k=`), verbatim.
    pub fields: Vec<Field>,
    pub attributes: Vec<Attribute>,
}

/// The `m=` format list: payload types for RTP profiles, tokens otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Formats {
    Rtp(Vec<u8>),
    Other(Vec<String>),
}

/// Media direction (RFC 4566 §6, RFC 3264 §6.1), from the point of view of whoever wrote the
/// description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

/// An `a=` line. Typed where we act on it; everything else verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    RtpMap(RtpMap),
    /// `a=fmtp:<pt> <params>`; params verbatim (may be empty).
    Fmtp {
        pt: u8,
        params: String,
    },
    Direction(Direction),
    /// `a=ptime:<ms>`.
    Ptime(u32),
    /// `a=maxptime:<ms>`.
    MaxPtime(u32),
    /// RFC 3605 `a=rtcp:<port> [IN <addrtype> <address>]`.
    Rtcp {
        port: u16,
        connection: Option<Connection>,
    },
    /// RFC 5761 `a=rtcp-mux`.
    RtcpMux,
    /// Anything else: `a=<name>` or `a=<name>:<value>`.
    Other {
        name: String,
        value: Option<String>,
    },
}

/// `a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]` (RFC 4566 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    pub pt: u8,
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: Option<u16>,
}

/// Why a description did not parse. `line` is 1-based; the peer is at fault (SIP 400 or 488).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("empty session description")]
    Empty,
    #[error("line {line}: the first line must be v=0")]
    BadVersion { line: usize },
    #[error("line {line}: not a <type>=<value> line")]
    BadLine { line: usize },
    #[error("line {line}: unknown or misplaced {kind}= line")]
    Unexpected { line: usize, kind: char },
    #[error("line {line}: duplicate {kind}= line")]
    Duplicate { line: usize, kind: char },
    #[error("line {line}: malformed {what}")]
    Malformed { line: usize, what: &'static str },
    #[error("missing {kind}= line")]
    Missing { kind: char },
    #[error("m= section {index} has no c= and there is no session-level c=")]
    MissingConnection { index: usize },
}

impl Direction {
    /// The direction an answerer uses for this offered direction (RFC 3264 §6.1).
    pub fn reverse(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction with these send/receive capabilities.
    pub fn from_flags(send: bool, recv: bool) -> Direction {
        match (send, recv) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
}

impl Address {
    /// The IP literal, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Address::Ip(ip) => Some(*ip),
            Address::Name { .. } => None,
        }
    }

    fn is_ip6(&self) -> bool {
        match self {
            Address::Ip(ip) => ip.is_ipv6(),
            Address::Name { ip6, .. } => *ip6,
        }
    }

    fn parse(addr_type: &str, host: &str) -> Option<Address> {
        let ip6 = match addr_type {
            "IP4" => false,
            "IP6" => true,
            _ => return None,
        };
        if host.is_empty() {
            return None;
        }
        let ip = if ip6 {
            host.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
        } else {
            host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
        };
        Some(match ip {
            Some(ip) => Address::Ip(ip),
            None => Address::Name {
                ip6,
                name: host.to_owned(),
            },
        })
    }
}

impl Connection {
    /// A unicast connection to an IP address.
    pub fn ip(ip: IpAddr) -> Connection {
        Connection {
            address: Address::Ip(ip),
            multicast: None,
        }
    }

    /// Parses `IN <addrtype> <address>[/...]` split into words.
    fn parse_words(words: &[&str]) -> Option<Connection> {
        let [net, addr_type, addr] = words else {
            return None;
        };
        if *net != "IN" {
            return None;
        }
        let (host, multicast) = match addr.split_once('/') {
            Some((h, m)) => (h, Some(m.to_owned())),
            None => (*addr, None),
        };
        Some(Connection {
            address: Address::parse(addr_type, host)?,
            multicast,
        })
    }
}

impl MediaDescription {
    /// The RTP payload types, or none for a non-RTP section.
    pub fn payload_types(&self) -> &[u8] {
        match &self.formats {
            Formats::Rtp(pts) => pts,
            Formats::Other(_) => &[],
        }
    }

    /// The `a=rtpmap` for `pt`, if any.
    pub fn rtpmap(&self, pt: u8) -> Option<&RtpMap> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::RtpMap(m) if m.pt == pt => Some(m),
            _ => None,
        })
    }

    /// The `a=fmtp` parameters for `pt`, if any.
    pub fn fmtp(&self, pt: u8) -> Option<&str> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Fmtp { pt: p, params } if *p == pt => Some(params.as_str()),
            _ => None,
        })
    }

    /// The media-level direction attribute (the last one wins), if any.
    pub fn direction_attr(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    pub fn ptime(&self) -> Option<u32> {
        self.attributes.iter().rev().find_map(|a| match a {
            Attribute::Ptime(p) => Some(*p),
            _ => None,
        })
    }

    pub fn maxptime(&self) -> Option<u32> {
        self.attributes.iter().rev().find_map(|a| match a {
            Attribute::MaxPtime(p) => Some(*p),
            _ => None,
        })
    }

    pub fn rtcp_mux(&self) -> bool {
        self.attributes.contains(&Attribute::RtcpMux)
    }

    /// The RFC 3605 RTCP port, if any.
    pub fn rtcp_port(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Rtcp { port, .. } => Some(*port),
            _ => None,
        })
    }

    /// Replaces any direction attribute with `dir` (in place of the first one, else appended).
    pub fn set_direction(&mut self, dir: Direction) {
        set_direction_in(&mut self.attributes, dir);
    }
}

impl SessionDescription {
    /// Parses a description. Never panics; see the module docs for what is strict.
    pub fn parse(text: &str) -> Result<SessionDescription, SdpError> {
        parse(text)
    }

    /// The session-level direction attribute, if any.
    pub fn direction_attr(&self) -> Option<Direction> {
        direction_of(&self.attributes)
    }

    /// The direction in force for media section `index`: media level wins over session
    /// level, default `sendrecv` (RFC 4566 §6).
    pub fn media_direction(&self, index: usize) -> Direction {
        self.media
            .get(index)
            .and_then(MediaDescription::direction_attr)
            .or_else(|| self.direction_attr())
            .unwrap_or_default()
    }

    /// The connection in force for media section `index`: media level wins.
    pub fn media_connection(&self, index: usize) -> Option<&Connection> {
        self.media
            .get(index)
            .and_then(|m| m.connection.as_ref())
            .or(self.connection.as_ref())
    }
}

fn direction_of(attrs: &[Attribute]) -> Option<Direction> {
    attrs.iter().rev().find_map(|a| match a {
        Attribute::Direction(d) => Some(*d),
        _ => None,
    })
}

fn set_direction_in(attrs: &mut Vec<Attribute>, dir: Direction) {
    match attrs
        .iter()
        .position(|a| matches!(a, Attribute::Direction(_)))
    {
        Some(first) => {
            attrs[first] = Attribute::Direction(dir);
            let mut i = 0;
            attrs.retain(|a| {
                i += 1;
                i - 1 == first || !matches!(a, Attribute::Direction(_))
            });
        }
        None => attrs.push(Attribute::Direction(dir)),
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Digits only (no sign, no whitespace), fitting in `T`.
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An RTP payload type: 0–127 (RFC 3550 §5.1, 7 bits).
fn payload_type(s: &str) -> Option<u8> {
    number::<u8>(s).filter(|pt| *pt <= 127)
}

/// Ordering rank of verbatim lines so printing follows RFC 4566 §5 (and a reparse gives the
/// same `fields` order).
fn field_rank(kind: char) -> u8 {
    match kind {
        'i' | 'u' | 'e' | 'p' => 0,
        'b' => 1,
        _ => 2, // r z k
    }
}

fn parse(text: &str) -> Result<SessionDescription, SdpError> {
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.is_empty());

    match lines.next() {
        None => return Err(SdpError::Empty),
        Some((_, "v=0")) => {}
        Some((line, _)) => return Err(SdpError::BadVersion { line }),
    }

    let mut origin = None;
    let mut session_name = None;
    let mut connection = None;
    let mut timing = Vec::new();
    let mut fields = Vec::new();
    let mut attributes = Vec::new();
    let mut media: Vec<MediaDescription> = Vec::new();

    for (line, l) in lines {
        let b = l.as_bytes();
        if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
            return Err(SdpError::BadLine { line });
        }
        let kind = b[0] as char;
        // The type byte is ASCII and b[1] is '=', so index 2 is a char boundary.
        let value = &l[2..];
        if let Some(m) = media.last_mut() {
            match kind {
                'm' => media.push(parse_media(line, value)?),
                'c' if m.connection.is_some() => return Err(SdpError::Duplicate { line, kind }),
                'c' => m.connection = Some(parse_connection(line, value)?),
                'a' => m.attributes.push(parse_attribute(line, value)?),
                'i' | 'b' | 'k' => m.fields.push(Field {
                    kind,
                    value: value.to_owned(),
                }),
                _ => return Err(SdpError::Unexpected { line, kind }),
            }
            continue;
        }
        match kind {
            'v' => return Err(SdpError::Duplicate { line, kind }),
            'o' if origin.is_some() => return Err(SdpError::Duplicate { line, kind }),
            'o' => origin = Some(parse_origin(line, value)?),
            's' if session_name.is_some() => return Err(SdpError::Duplicate { line, kind }),
            's' => session_name = Some(value.to_owned()),
            'c' if connection.is_some() => return Err(SdpError::Duplicate { line, kind }),
            'c' => connection = Some(parse_connection(line, value)?),
            't' => timing.push(parse_timing(line, value)?),
            'a' => attributes.push(parse_attribute(line, value)?),
            'm' => media.push(parse_media(line, value)?),
            'i' | 'u' | 'e' | 'p' | 'b' | 'r' | 'z' | 'k' => fields.push(Field {
                kind,
                value: value.to_owned(),
            }),
            _ => return Err(SdpError::Unexpected { line, kind }),
        }
    }

    let origin = origin.ok_or(SdpError::Missing { kind: 'o' })?;
    let session_name = session_name.ok_or(SdpError::Missing { kind: 's' })?;
    if timing.is_empty() {
        return Err(SdpError::Missing { kind: 't' });
    }
    if connection.is_none()
        && let Some(index) = media.iter().position(|m| m.connection.is_none())
    {
        return Err(SdpError::MissingConnection { index });
    }
    // Tolerate any order in, print RFC order out; stable so same-kind lines keep their order.
    fields.sort_by_key(|f: &Field| field_rank(f.kind));
    for m in &mut media {
        m.fields.sort_by_key(|f| u8::from(f.kind != 'i'));
    }
    Ok(SessionDescription {
        origin,
        session_name,
        connection,
        timing,
        fields,
        attributes,
        media,
    })
}

fn parse_origin(line: usize, value: &str) -> Result<Origin, SdpError> {
    let bad = SdpError::Malformed { line, what: "o=" };
    let words: Vec<&str> = value.split_ascii_whitespace().collect();
    let [username, id, version, "IN", addr_type, addr] = words[..] else {
        return Err(bad);
    };
    Ok(Origin {
        username: username.to_owned(),
        session_id: number(id).ok_or(bad.clone())?,
        session_version: number(version).ok_or(bad.clone())?,
        address: Address::parse(addr_type, addr).ok_or(bad)?,
    })
}

fn parse_connection(line: usize, value: &str) -> Result<Connection, SdpError> {
    let words: Vec<&str> = value.split_ascii_whitespace().collect();
    Connection::parse_words(&words).ok_or(SdpError::Malformed { line, what: "c=" })
}

fn parse_timing(line: usize, value: &str) -> Result<Timing, SdpError> {
    let bad = SdpError::Malformed { line, what: "t=" };
    let mut words = value.split_ascii_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some(start), Some(stop), None) => Ok(Timing {
            start: number(start).ok_or(bad.clone())?,
            stop: number(stop).ok_or(bad)?,
        }),
        _ => Err(bad),
    }
}

/// A protocol carries RTP payload types in its format list (RTP/AVP, RTP/SAVPF,
/// UDP/TLS/RTP/SAVPF, ...).
fn is_rtp_protocol(protocol: &str) -> bool {
    protocol.split('/').any(|p| p == "RTP")
}

fn parse_media(line: usize, value: &str) -> Result<MediaDescription, SdpError> {
    let bad = |what| SdpError::Malformed { line, what };
    let mut words = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(protocol)) = (words.next(), words.next(), words.next())
    else {
        return Err(bad("m= line"));
    };
    let (port, port_count) = match port.split_once('/') {
        Some((p, n)) => (p, Some(number(n).ok_or(bad("m= port count"))?)),
        None => (port, None),
    };
    let port: u16 = number(port).ok_or(bad("m= port"))?;
    let formats = if is_rtp_protocol(protocol) {
        let pts = words
            .map(payload_type)
            .collect::<Option<Vec<u8>>>()
            .ok_or(bad("m= payload type"))?;
        Formats::Rtp(pts)
    } else {
        Formats::Other(words.map(str::to_owned).collect())
    };
    let empty = match &formats {
        Formats::Rtp(v) => v.is_empty(),
        Formats::Other(v) => v.is_empty(),
    };
    // RFC 4566 requires a format; some UAs leave it out of a rejected (port 0) stream.
    if empty && port != 0 {
        return Err(bad("m= format list"));
    }
    Ok(MediaDescription {
        media: media.to_owned(),
        port,
        port_count,
        protocol: protocol.to_owned(),
        formats,
        connection: None,
        fields: Vec::new(),
        attributes: Vec::new(),
    })
}

fn parse_attribute(line: usize, value: &str) -> Result<Attribute, SdpError> {
    let (name, val) = match value.split_once(':') {
        Some((n, v)) => (n, Some(v)),
        None => (value, None),
    };
    let typed = match (name, val) {
        ("sendrecv", None) => Some(Attribute::Direction(Direction::SendRecv)),
        ("sendonly", None) => Some(Attribute::Direction(Direction::SendOnly)),
        ("recvonly", None) => Some(Attribute::Direction(Direction::RecvOnly)),
        ("inactive", None) => Some(Attribute::Direction(Direction::Inactive)),
        ("rtcp-mux", None) => Some(Attribute::RtcpMux),
        ("ptime", Some(v)) => number(v).map(Attribute::Ptime),
        ("maxptime", Some(v)) => number(v).map(Attribute::MaxPtime),
        // Strict: the codec choice depends on it.
        ("rtpmap", Some(v)) => Some(Attribute::RtpMap(parse_rtpmap(v).ok_or(
            SdpError::Malformed {
                line,
                what: "a=rtpmap",
            },
        )?)),
        ("fmtp", Some(v)) => {
            let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
            payload_type(pt).map(|pt| Attribute::Fmtp {
                pt,
                params: params.to_owned(),
            })
        }
        ("rtcp", Some(v)) => parse_rtcp(v),
        _ => None,
    };
    Ok(typed.unwrap_or_else(|| Attribute::Other {
        name: name.to_owned(),
        value: val.map(str::to_owned),
    }))
}

fn parse_rtpmap(v: &str) -> Option<RtpMap> {
    let (pt, rest) = v.split_once(' ')?;
    let mut parts = rest.split('/');
    let encoding = parts
        .next()
        .filter(|e| !e.is_empty() && !e.bytes().any(|b| b.is_ascii_whitespace() || b == b'/'))?;
    let clock_rate = number(parts.next()?)?;
    let channels = match parts.next() {
        Some(c) => Some(number(c)?),
        None => None,
    };
    if parts.next().is_some() {
        return None;
    }
    Some(RtpMap {
        pt: payload_type(pt)?,
        encoding: encoding.to_owned(),
        clock_rate,
        channels,
    })
}

fn parse_rtcp(v: &str) -> Option<Attribute> {
    let words: Vec<&str> = v.split_ascii_whitespace().collect();
    let (port, rest) = words.split_first()?;
    let connection = if rest.is_empty() {
        None
    } else {
        Some(Connection::parse_words(rest)?)
    };
    Some(Attribute::Rtcp {
        port: number(port)?,
        connection,
    })
}

// ---------------------------------------------------------------------------------------------
// Printing

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr_type = if self.is_ip6() { "IP6" } else { "IP4" };
        match self {
            Address::Ip(ip) => write!(f, "IN {addr_type} {ip}"),
            Address::Name { name, .. } => write!(f, "IN {addr_type} {name}"),
        }
    }
}

impl fmt::Display for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.address)?;
        if let Some(m) = &self.multicast {
            write!(f, "/{m}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Attribute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attribute::RtpMap(m) => {
                write!(f, "rtpmap:{} {}/{}", m.pt, m.encoding, m.clock_rate)?;
                if let Some(c) = m.channels {
                    write!(f, "/{c}")?;
                }
                Ok(())
            }
            Attribute::Fmtp { pt, params } if params.is_empty() => write!(f, "fmtp:{pt}"),
            Attribute::Fmtp { pt, params } => write!(f, "fmtp:{pt} {params}"),
            Attribute::Direction(d) => f.write_str(d.as_str()),
            Attribute::Ptime(p) => write!(f, "ptime:{p}"),
            Attribute::MaxPtime(p) => write!(f, "maxptime:{p}"),
            Attribute::Rtcp { port, connection } => {
                write!(f, "rtcp:{port}")?;
                if let Some(c) = connection {
                    write!(f, " {c}")?;
                }
                Ok(())
            }
            Attribute::RtcpMux => f.write_str("rtcp-mux"),
            Attribute::Other { name, value: None } => f.write_str(name),
            Attribute::Other {
                name,
                value: Some(v),
            } => write!(f, "{name}:{v}"),
        }
    }
}

fn write_fields<'a>(
    f: &mut fmt::Formatter<'_>,
    fields: impl IntoIterator<Item = &'a Field>,
) -> fmt::Result {
    for field in fields {
        write!(f, "{}={}\r\n", field.kind, field.value)?;
    }
    Ok(())
}

impl fmt::Display for MediaDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m={} {}", self.media, self.port)?;
        if let Some(n) = self.port_count {
            write!(f, "/{n}")?;
        }
        write!(f, " {}", self.protocol)?;
        match &self.formats {
            Formats::Rtp(pts) => pts.iter().try_for_each(|pt| write!(f, " {pt}"))?,
            Formats::Other(fmts) => fmts.iter().try_for_each(|t| write!(f, " {t}"))?,
        }
        f.write_str("\r\n")?;
        write_fields(f, self.fields.iter().filter(|l| l.kind == 'i'))?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        write_fields(f, self.fields.iter().filter(|l| l.kind != 'i'))?;
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        Ok(())
    }
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} {}\r\ns={}\r\n",
            o.username, o.session_id, o.session_version, o.address, self.session_name
        )?;
        write_fields(f, self.fields.iter().filter(|l| field_rank(l.kind) == 0))?;
        if let Some(c) = &self.connection {
            write!(f, "c={c}\r\n")?;
        }
        write_fields(f, self.fields.iter().filter(|l| field_rank(l.kind) == 1))?;
        for t in &self.timing {
            write!(f, "t={} {}\r\n", t.start, t.stop)?;
        }
        write_fields(f, self.fields.iter().filter(|l| field_rank(l.kind) == 2))?;
        for a in &self.attributes {
            write!(f, "a={a}\r\n")?;
        }
        for m in &self.media {
            write!(f, "{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
