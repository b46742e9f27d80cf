//! RFC 4566 §5 parser: tolerant line order and attributes, strict types and numbers.

use super::{
    Address, Attribute, Connection, Direction, Field, Formats, MediaDescription, Origin, RtpMap,
    SdpError, SessionDescription, Timing,
};

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
pub(super) fn field_rank(kind: char) -> u8 {
    match kind {
        'i' | 'u' | 'e' | 'p' => 0,
        'b' => 1,
        _ => 2, // r z k
    }
}

pub(super) fn parse(text: &str) -> Result<SessionDescription, SdpError> {
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
