//! Domain types for SIP values: wire strings become these at the edge (parse, don't validate).

use std::fmt;

/// A SIP method (RFC 3261 §7.1). Unknown methods are kept as their token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Refer,
    Update,
    Prack,
    Subscribe,
    Notify,
    Message,
    Publish,
    /// Any other token: method names are case-sensitive (RFC 3261 §7.1).
    Other(String),
}

impl Method {
    /// Parses a method token. Returns `None` for a string that is not a `token`.
    pub fn parse(s: &str) -> Option<Method> {
        if s.is_empty() || !s.bytes().all(is_token_byte) {
            return None;
        }
        Some(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "REFER" => Method::Refer,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_string()),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 3261 §25.1 `token` characters.
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The Call-ID header value (compared byte for byte, RFC 3261 §20.8).
    CallId
);
string_id!(
    /// A Via branch parameter: the transaction identifier (RFC 3261 §17.1.1.3).
    Branch
);
string_id!(
    /// A From/To tag: one half of a dialog identifier (RFC 3261 §19.3).
    Tag
);

/// RFC 3261 §8.1.1.7: branches made by RFC 3261 elements start with this cookie.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

impl Branch {
    /// A fresh, globally unique branch carrying the magic cookie.
    pub fn generate() -> Branch {
        Branch(format!("{BRANCH_MAGIC_COOKIE}{}", random_token(16)))
    }

    /// True when the branch was made by an RFC 3261 element (§17.2.3 matching applies).
    pub fn is_rfc3261(&self) -> bool {
        self.0.starts_with(BRANCH_MAGIC_COOKIE)
    }
}

impl Tag {
    pub fn generate() -> Tag {
        Tag(random_token(12))
    }
}

impl CallId {
    pub fn generate(host: &str) -> CallId {
        CallId(format!("{}@{host}", random_token(20)))
    }
}

/// Random alphanumeric token for tags, branches and Call-IDs (≥ 32 bits of randomness, §19.3).
pub fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The CSeq header (RFC 3261 §20.16): sequence number below 2^31 and the request method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// SIP transports this server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS (RFC 3261 §26.2; `sips:` and `;transport=tls`).
    Tls,
    /// SIP over WebSocket (RFC 7118), and over secure WebSocket.
    Ws,
    Wss,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// The transport named in a Via or a `transport=` parameter (any case).
    pub fn from_name(name: &str) -> Option<Transport> {
        [
            Transport::Udp,
            Transport::Tcp,
            Transport::Tls,
            Transport::Ws,
            Transport::Wss,
        ]
        .into_iter()
        .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }

    /// Reliable transports get no retransmissions (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Connections a browser opened (RFC 7118): its endpoint speaks WebRTC media (ICE,
    /// DTLS-SRTP), not plain RTP, and it can only be reached over its own connection.
    pub fn is_websocket(self) -> bool {
        matches!(self, Transport::Ws | Transport::Wss)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
