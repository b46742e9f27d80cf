//! Sans-IO SDP for the B2BUA: the RFC 4566 model, its parser and printer, and RFC 3264
//! offer/answer for the audio codecs we speak (`negotiate.rs`).
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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod crypto;
mod negotiate;
mod parse;
mod print;

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
        parse::parse(text)
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

#[cfg(test)]
mod tests;
