//! RTP (RFC 3550 §5) packet parsing and building, RTP/RTCP demultiplexing (RFC 5761 §4),
//! outgoing stream continuity ([`OutgoingStream`]) and RTCP reports ([`rtcp`]).
//!
//! The parser is small and hand-written: it borrows the datagram, checks every length field
//! against the buffer before reading, and returns [`RtpError`] instead of panicking.

pub mod rtcp;
pub mod srtp;
mod stream;

pub use stream::OutgoingStream;

/// Synchronisation source identifier (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// RTP payload type (7 bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadType(u8);

impl PayloadType {
    /// PCMU, RFC 3551 Table 4.
    pub const PCMU: PayloadType = PayloadType(0);
    /// PCMA, RFC 3551 Table 4.
    pub const PCMA: PayloadType = PayloadType(8);

    /// A payload type from its number; `None` above 127.
    pub fn new(pt: u8) -> Option<Self> {
        (pt < 128).then_some(PayloadType(pt))
    }

    /// The 7-bit number.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// Errors parsing RTP: all are the peer's fault and mean "drop this datagram".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Fewer than the 12 fixed header bytes, or a length field points past the end.
    #[error("RTP packet truncated: {0}")]
    Truncated(&'static str),
    /// Version field is not 2.
    #[error("RTP version {0} is not 2")]
    BadVersion(u8),
    /// Padding count is zero or larger than the payload.
    #[error("RTP padding length invalid")]
    BadPadding,
}

/// The fixed RTP header fields we use (RFC 3550 §5.1). CSRCs and header extensions are
/// skipped on parse and never written: we are a mixer endpoint, not a translator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Marker bit (start of talkspurt for audio, RFC 3551 §4.1).
    pub marker: bool,
    /// Payload type.
    pub payload_type: PayloadType,
    /// Sequence number.
    pub sequence: u16,
    /// Media timestamp in the payload's clock rate.
    pub timestamp: u32,
    /// Synchronisation source.
    pub ssrc: Ssrc,
}

/// A parsed RTP packet borrowing its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Header fields.
    pub header: RtpHeader,
    /// Payload with padding removed.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses an RTP datagram (RFC 3550 §5.1, §5.3.1 extension, padding).
    pub fn parse(buf: &'a [u8]) -> Result<Self, RtpError> {
        if buf.len() < 12 {
            return Err(RtpError::Truncated("fixed header"));
        }
        let version = buf[0] >> 6;
        if version != 2 {
            return Err(RtpError::BadVersion(version));
        }
        let padding = buf[0] & 0x20 != 0;
        let extension = buf[0] & 0x10 != 0;
        let csrc_count = (buf[0] & 0x0F) as usize;
        let marker = buf[1] & 0x80 != 0;
        let payload_type = PayloadType(buf[1] & 0x7F);
        let sequence = u16::from_be_bytes([buf[2], buf[3]]);
        let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let ssrc = Ssrc(u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]));
        let mut offset = 12 + 4 * csrc_count;
        if buf.len() < offset {
            return Err(RtpError::Truncated("CSRC list"));
        }
        if extension {
            // RFC 3550 §5.3.1: 16-bit profile id, 16-bit length in 32-bit words.
            if buf.len() < offset + 4 {
                return Err(RtpError::Truncated("extension header"));
            }
            let words = u16::from_be_bytes([buf[offset + 2], buf[offset + 3]]) as usize;
            offset += 4 + 4 * words;
            if buf.len() < offset {
                return Err(RtpError::Truncated("extension body"));
            }
        }
        let mut end = buf.len();
        if padding {
            // RFC 3550 §5.1 P: the last octet counts the padding octets, itself included.
            let pad = buf[end - 1] as usize;
            if pad == 0 || pad > end - offset {
                return Err(RtpError::BadPadding);
            }
            end -= pad;
        }
        Ok(RtpPacket {
            header: RtpHeader {
                marker,
                payload_type,
                sequence,
                timestamp,
                ssrc,
            },
            payload: &buf[offset..end],
        })
    }
}

impl RtpHeader {
    /// Writes this header followed by `payload` into `out` (cleared first).
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.reserve(12 + payload.len());
        out.push(0x80);
        out.push(((self.marker as u8) << 7) | self.payload_type.0);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.0.to_be_bytes());
        out.extend_from_slice(payload);
    }
}

/// What a datagram on a muxed RTP/RTCP port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    /// RTP.
    Rtp,
    /// RTCP.
    Rtcp,
    /// Neither (STUN, DTLS, garbage).
    Other,
}

/// Classifies a datagram: RFC 5761 §4 (RTCP packet types 192–223 in the second octet) and
/// RFC 7983 §7 (first-octet ranges for STUN 0–3, DTLS 20–63, RTP/RTCP 128–191).
pub fn classify(buf: &[u8]) -> PacketKind {
    match buf {
        [b0, b1, ..] if (128..=191).contains(b0) => {
            if (192..=223).contains(b1) {
                PacketKind::Rtcp
            } else {
                PacketKind::Rtp
            }
        }
        _ => PacketKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> RtpHeader {
        RtpHeader {
            marker: true,
            payload_type: PayloadType::PCMA,
            sequence: 65535,
            timestamp: 0xDEAD_BEEF,
            ssrc: Ssrc(0x0102_0304),
        }
    }

    #[test]
    fn build_then_parse_round_trips() {
        let mut buf = Vec::new();
        header().write(b"hello", &mut buf);
        assert_eq!(buf.len(), 17);
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.header, header());
        assert_eq!(p.payload, b"hello");
        assert_eq!(classify(&buf), PacketKind::Rtp);
    }

    #[test]
    fn csrc_extension_and_padding_are_skipped() {
        let mut buf = vec![0x80 | 0x20 | 0x10 | 2, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        buf.extend_from_slice(&[0xAA; 8]); // two CSRCs
        buf.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]); // one-word extension
        buf.extend_from_slice(b"pay");
        buf.extend_from_slice(&[0, 0, 3]); // three padding octets
        let p = RtpPacket::parse(&buf).unwrap();
        assert_eq!(p.payload, b"pay");
        assert_eq!(p.header.sequence, 1);
        assert_eq!(p.header.ssrc, Ssrc(3));
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert_eq!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::Truncated("fixed header"))
        );
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::BadVersion(1)));
        let mut buf = vec![0x8F; 12];
        assert_eq!(
            RtpPacket::parse(&buf),
            Err(RtpError::Truncated("CSRC list"))
        );
        buf[0] = 0xA0;
        buf.push(0);
        assert_eq!(RtpPacket::parse(&buf), Err(RtpError::BadPadding));
        buf[12] = 2; // padding longer than the payload
        assert_eq!(RtpPacket::parse(&buf), Err(RtpError::BadPadding));
        let mut ext = vec![0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 9];
        assert_eq!(
            RtpPacket::parse(&ext),
            Err(RtpError::Truncated("extension body"))
        );
        ext.truncate(14);
        assert_eq!(
            RtpPacket::parse(&ext),
            Err(RtpError::Truncated("extension header"))
        );
    }

    #[test]
    fn classify_follows_rfc5761_and_rfc7983() {
        assert_eq!(classify(&[0x80, 200, 0, 0]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x81, 201]), PacketKind::Rtcp);
        assert_eq!(classify(&[0x80, 0x60]), PacketKind::Rtp);
        assert_eq!(classify(&[0x00, 0x01]), PacketKind::Other); // STUN
        assert_eq!(classify(&[22, 0xFE]), PacketKind::Other); // DTLS
        assert_eq!(classify(&[0x80]), PacketKind::Other);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = RtpPacket::parse(&bytes);
        }

        #[test]
        fn round_trip_any_header(m in any::<bool>(), pt in 0u8..128, seq in any::<u16>(),
                                 ts in any::<u32>(), ssrc in any::<u32>(),
                                 payload in proptest::collection::vec(any::<u8>(), 0..200)) {
            let h = RtpHeader { marker: m, payload_type: PayloadType::new(pt).unwrap(),
                                sequence: seq, timestamp: ts, ssrc: Ssrc(ssrc) };
            let mut buf = Vec::new();
            h.write(&payload, &mut buf);
            let p = RtpPacket::parse(&buf).unwrap();
            prop_assert_eq!(p.header, h);
            prop_assert_eq!(p.payload, &payload[..]);
        }
    }
}
