//! RFC 4566 printer: CRLF line ends, lines in §5 order, attributes in their stored order.

use std::fmt;

use super::parse::field_rank;
use super::{
    Address, Attribute, Connection, Direction, Field, Formats, MediaDescription, SessionDescription,
};

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
