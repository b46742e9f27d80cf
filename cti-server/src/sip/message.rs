//! The SIP message facade: parse, validate, print and frame RFC 3261 messages.
//!
//! Everything outside `sip/` sees SIP through this module only, so the grammar behind it can be
//! replaced. Parsing runs in two steps: [`RawHead`] splits the start line and the (unfolded)
//! header fields, then validation turns it into a typed [`Request`] or [`Response`]. When the
//! second step fails for a request, the raw head survives in the error so the server can still
//! answer 400 (RFC 3261 §8.2.2, RFC 4475 §3.1.2).
//!
//! Content-Length is not stored as a header: it is checked at parse time against the datagram
//! or stream frame and printed from the body's length, so a printed message is always framed.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;

use super::grammar::{self, GrammarError, NameAddr, Uri, Via};
use super::types::{CSeq, CallId, Method};

/// Largest message head we accept (a stream that sends more without a blank line is closed).
pub const MAX_HEAD_LEN: usize = 64 * 1024;
/// Largest body we accept.
pub const MAX_BODY_LEN: usize = 256 * 1024;

/// A header name; compact forms (RFC 3261 §7.3.3) map to their full names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderName {
    Accept,
    Allow,
    AllowEvents,
    Authorization,
    CallId,
    Contact,
    ContentDisposition,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Event,
    Expires,
    From,
    MaxForwards,
    MinExpires,
    MinSe,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    Reason,
    RecordRoute,
    ReferTo,
    ReferredBy,
    Replaces,
    Require,
    RetryAfter,
    Route,
    Server,
    SessionExpires,
    Subject,
    Supported,
    To,
    Unsupported,
    UserAgent,
    Via,
    Warning,
    WwwAuthenticate,
    /// Any other name, as written (compared case-insensitively).
    Other(String),
}

impl HeaderName {
    pub fn parse(s: &str) -> HeaderName {
        use HeaderName::*;
        if s.len() == 1 {
            match s.as_bytes()[0].to_ascii_lowercase() {
                b'i' => return CallId,
                b'm' => return Contact,
                b'e' => return ContentEncoding,
                b'l' => return ContentLength,
                b'c' => return ContentType,
                b'f' => return From,
                b's' => return Subject,
                b'k' => return Supported,
                b't' => return To,
                b'v' => return Via,
                b'o' => return Event,
                b'r' => return ReferTo,
                b'b' => return ReferredBy,
                b'u' => return AllowEvents,
                b'x' => return SessionExpires,
                _ => {}
            }
        }
        // Candidates by length, then one case-insensitive comparison each (no scan over every
        // known name, no allocation unless the name is unknown).
        let candidates: &[(&str, HeaderName)] = match s.len() {
            2 => &[("to", To)],
            3 => &[("via", Via)],
            4 => &[("from", From), ("cseq", CSeq), ("date", Date)],
            5 => &[("allow", Allow), ("event", Event), ("route", Route)],
            6 => &[
                ("accept", Accept),
                ("reason", Reason),
                ("server", Server),
                ("min-se", MinSe),
            ],
            7 => &[
                ("call-id", CallId),
                ("contact", Contact),
                ("expires", Expires),
                ("require", Require),
                ("subject", Subject),
                ("warning", Warning),
            ],
            8 => &[("refer-to", ReferTo), ("replaces", Replaces)],
            9 => &[("supported", Supported)],
            10 => &[("user-agent", UserAgent)],
            11 => &[
                ("referred-by", ReferredBy),
                ("retry-after", RetryAfter),
                ("min-expires", MinExpires),
                ("unsupported", Unsupported),
            ],
            12 => &[
                ("max-forwards", MaxForwards),
                ("content-type", ContentType),
                ("allow-events", AllowEvents),
                ("record-route", RecordRoute),
            ],
            13 => &[
                ("authorization", Authorization),
                ("proxy-require", ProxyRequire),
            ],
            14 => &[("content-length", ContentLength)],
            15 => &[("session-expires", SessionExpires)],
            16 => &[
                ("content-encoding", ContentEncoding),
                ("www-authenticate", WwwAuthenticate),
            ],
            18 => &[("proxy-authenticate", ProxyAuthenticate)],
            19 => &[
                ("content-disposition", ContentDisposition),
                ("proxy-authorization", ProxyAuthorization),
            ],
            _ => &[],
        };
        candidates
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(s))
            .map(|(_, h)| h.clone())
            .unwrap_or_else(|| Other(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        use HeaderName::*;
        match self {
            Accept => "Accept",
            Allow => "Allow",
            AllowEvents => "Allow-Events",
            Authorization => "Authorization",
            CallId => "Call-ID",
            Contact => "Contact",
            ContentDisposition => "Content-Disposition",
            ContentEncoding => "Content-Encoding",
            ContentLength => "Content-Length",
            ContentType => "Content-Type",
            CSeq => "CSeq",
            Date => "Date",
            Event => "Event",
            Expires => "Expires",
            From => "From",
            MaxForwards => "Max-Forwards",
            MinExpires => "Min-Expires",
            MinSe => "Min-SE",
            ProxyAuthenticate => "Proxy-Authenticate",
            ProxyAuthorization => "Proxy-Authorization",
            ProxyRequire => "Proxy-Require",
            Reason => "Reason",
            RecordRoute => "Record-Route",
            ReferTo => "Refer-To",
            ReferredBy => "Referred-By",
            Replaces => "Replaces",
            Require => "Require",
            RetryAfter => "Retry-After",
            Route => "Route",
            Server => "Server",
            SessionExpires => "Session-Expires",
            Subject => "Subject",
            Supported => "Supported",
            To => "To",
            Unsupported => "Unsupported",
            UserAgent => "User-Agent",
            Via => "Via",
            Warning => "Warning",
            WwwAuthenticate => "WWW-Authenticate",
            Other(s) => s,
        }
    }

    fn matches(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header fields in message order; values are unfolded and trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers(Vec<(HeaderName, String)>);

impl Headers {
    pub fn new() -> Self {
        Headers(Vec::with_capacity(12))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.matches(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order (each field may itself hold a comma list).
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.matches(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn count(&self, name: &HeaderName) -> usize {
        self.0.iter().filter(|(n, _)| n.matches(name)).count()
    }

    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push((name, value.into()));
    }

    /// Inserts before every other field (a new top Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(0, (name, value.into()));
    }

    /// Replaces every field of `name` with one value, keeping the first one's position.
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter().position(|(n, _)| n.matches(&name)) {
            Some(i) => {
                self.0[i].1 = value;
                let mut seen = 0;
                self.0.retain(|(n, _)| {
                    if n.matches(&name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.0.push((name, value)),
        }
    }

    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|(n, _)| !n.matches(name));
    }

    /// Removes the first field of `name` (the top Via when a response goes upstream).
    pub fn remove_first(&mut self, name: &HeaderName) -> Option<String> {
        let i = self.0.iter().position(|(n, _)| n.matches(name))?;
        Some(self.0.remove(i).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &str)> {
        self.0.iter().map(|(n, v)| (n, v.as_str()))
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        for (n, v) in &self.0 {
            out.extend_from_slice(n.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Bytes,
}

/// Either kind of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    Request(Request),
    Response(Response),
}

/// Why a message was refused; `raw` keeps what could be read so a request still gets a 400.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}")]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub raw: Option<Box<RawHead>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("empty message")]
    Empty,
    #[error("message head is not UTF-8")]
    NotUtf8,
    #[error("no blank line ends the message head")]
    NoHeadEnd,
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    #[error("unsupported SIP version {0}")]
    Version(String),
    #[error("malformed header line")]
    HeaderLine,
    #[error("malformed {name} header: {source}")]
    Header {
        name: &'static str,
        source: GrammarError,
    },
    #[error("missing {0} header")]
    Missing(&'static str),
    #[error("{0} header appears more than once")]
    Duplicate(&'static str),
    #[error("malformed Content-Length")]
    ContentLength,
    #[error("body shorter than Content-Length")]
    BodyTooShort,
    #[error("body larger than {MAX_BODY_LEN} bytes")]
    BodyTooLarge,
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
}

/// The start line and header fields before validation.
#[derive(Debug, Clone)]
pub struct RawHead {
    pub start: RawStart,
    pub headers: Headers,
}

#[derive(Debug, Clone)]
pub enum RawStart {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

impl RawHead {
    pub fn is_request(&self) -> bool {
        matches!(self.start, RawStart::Request { .. })
    }
}

impl SipMessage {
    /// Parses one message from a datagram (RFC 3261 §18.3: without Content-Length the body runs
    /// to the end of the datagram; octets past Content-Length are discarded).
    pub fn parse(buf: &[u8]) -> Result<SipMessage, ParseError> {
        parse_message(buf, false)
    }

    /// Parses one message exactly framed by [`frame`] (a stream: Content-Length is the truth).
    pub fn parse_framed(buf: &[u8]) -> Result<SipMessage, ParseError> {
        parse_message(buf, true)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            SipMessage::Request(r) => r.to_bytes(),
            SipMessage::Response(r) => r.to_bytes(),
        }
    }

    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }
}

fn parse_message(buf: &[u8], framed: bool) -> Result<SipMessage, ParseError> {
    // §7.5: empty lines before the start line are ignored.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or(plain(ParseErrorKind::Empty))?;
    let buf = &buf[start..];
    let (head_len, body_start) = match find_head_end(buf) {
        Some(found) => found,
        // A datagram is a whole message (§18.3): when its last header line ends the datagram
        // without the empty line, the head ends there and the body is empty, so a request
        // like RFC 4475 baddn can still be validated and answered.
        None if !framed && buf.ends_with(b"\n") => {
            let end = buf.len() - 1;
            (end, buf.len())
        }
        None => return Err(plain(ParseErrorKind::NoHeadEnd)),
    };
    let head = std::str::from_utf8(&buf[..head_len]).map_err(|_| plain(ParseErrorKind::NotUtf8))?;
    let raw = parse_raw_head(head)?;
    let rest = &buf[body_start..];
    let fail = |kind| ParseError {
        kind,
        raw: Some(Box::new(raw.clone())),
    };
    let cl_count = raw.headers.count(&HeaderName::ContentLength);
    if cl_count > 1 {
        return Err(fail(ParseErrorKind::Duplicate("Content-Length")));
    }
    let body = match raw.headers.get(&HeaderName::ContentLength) {
        Some(v) => {
            let len = grammar::parse_bounded(v, u32::MAX as u64)
                .ok_or_else(|| fail(ParseErrorKind::ContentLength))? as usize;
            if len > MAX_BODY_LEN {
                return Err(fail(ParseErrorKind::BodyTooLarge));
            }
            if len > rest.len() {
                return Err(fail(ParseErrorKind::BodyTooShort));
            }
            &rest[..len]
        }
        // A stream without Content-Length carries no body (framing already said so).
        None if framed => &rest[..0],
        None => rest,
    };
    if body.len() > MAX_BODY_LEN {
        return Err(fail(ParseErrorKind::BodyTooLarge));
    }
    validate(raw, Bytes::copy_from_slice(body))
}

fn plain(kind: ParseErrorKind) -> ParseError {
    ParseError { kind, raw: None }
}

/// Returns (head length without the blank line, body offset). Accepts bare LF line ends.
fn find_head_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\n', &buf[i..]) {
        let nl = i + off;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some((nl, nl + 2)),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some((nl, nl + 3)),
            None => return None,
            _ => i = nl + 1,
        }
    }
    None
}

/// Splits the head into the start line and unfolded header fields (§7.3.1).
fn parse_raw_head(head: &str) -> Result<RawHead, ParseError> {
    let mut lines = LogicalLines::new(head);
    // The start line is never folded: a line starting with SP/HT after it is not a header.
    let first = lines.next_physical().ok_or(plain(ParseErrorKind::Empty))?;
    let start = match parse_start_line(first) {
        Ok(start) => start,
        Err(e) => return Err(keep_raw_for_request(e, first, lines)),
    };
    parse_header_lines(start, lines)
}

fn parse_header_lines(start: RawStart, lines: LogicalLines<'_>) -> Result<RawHead, ParseError> {
    let mut headers = Headers(Vec::with_capacity(16));
    for line in lines {
        let colon = memchr::memchr(b':', line.as_bytes()).filter(|&colon| {
            let name = line[..colon].trim_end_matches([' ', '\t']);
            !name.is_empty() && name.bytes().all(super::types::is_token_byte)
        });
        let Some(colon) = colon else {
            return Err(ParseError {
                kind: ParseErrorKind::HeaderLine,
                raw: Some(Box::new(RawHead { start, headers })),
            });
        };
        let name = line[..colon].trim_end_matches([' ', '\t']);
        let value = line[colon + 1..].trim_matches([' ', '\t']);
        let name = HeaderName::parse(name);
        headers.push(name, value);
    }
    Ok(RawHead { start, headers })
}

/// A request whose start line is malformed (RFC 4475 lwsstart, trws, lwsruri, badvers) still
/// gets a 400 or 505 (§8.2.2): keep its header fields when they split cleanly. Responses are
/// never answered, so a bad status line keeps nothing.
fn keep_raw_for_request(mut e: ParseError, first: &str, lines: LogicalLines<'_>) -> ParseError {
    if strip_prefix_ci(first, "SIP/").is_some() {
        return e;
    }
    let mut words = first.split([' ', '\t']).filter(|w| !w.is_empty());
    let start = RawStart::Request {
        method: words.next().unwrap_or_default().to_string(),
        uri: words.next().unwrap_or_default().to_string(),
    };
    if let Ok(raw) = parse_header_lines(start, lines) {
        e.raw = Some(Box::new(raw));
    }
    e
}

/// Iterates header lines, joining continuation lines (a line starting with SP/HT) with one SP.
struct LogicalLines<'a> {
    rest: &'a str,
}

impl<'a> LogicalLines<'a> {
    fn new(s: &'a str) -> Self {
        LogicalLines { rest: s }
    }

    fn next_physical(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let (line, rest) = match memchr::memchr(b'\n', self.rest.as_bytes()) {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..]),
            None => (self.rest, ""),
        };
        self.rest = rest;
        Some(line.strip_suffix('\r').unwrap_or(line))
    }
}

impl<'a> Iterator for LogicalLines<'a> {
    /// Borrowed unless continuation lines had to be joined.
    type Item = Cow<'a, str>;

    fn next(&mut self) -> Option<Cow<'a, str>> {
        let first = self.next_physical()?;
        let mut line: Option<String> = None;
        while self.rest.starts_with([' ', '\t']) {
            let cont = self.next_physical().unwrap_or("");
            let l = line.get_or_insert_with(|| first.trim_end_matches([' ', '\t']).to_string());
            l.push(' ');
            l.push_str(cont.trim_matches([' ', '\t']));
        }
        Some(line.map_or(Cow::Borrowed(first), Cow::Owned))
    }
}

fn parse_start_line(line: &str) -> Result<RawStart, ParseError> {
    let bad = |what| plain(ParseErrorKind::StartLine(what));
    if let Some(after) = strip_prefix_ci(line, "SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (§7.2).
        let (version, rest) = after.split_once(' ').ok_or(bad("status line"))?;
        check_version(version)?;
        let (code, reason) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("status code"));
        }
        let code: u16 = code.parse().map_err(|_| bad("status code"))?;
        if !(100..700).contains(&code) {
            return Err(bad("status code"));
        }
        if reason.bytes().any(|b| b < 0x20 && b != b'\t') {
            return Err(bad("reason phrase"));
        }
        return Ok(RawStart::Response {
            code,
            reason: reason.to_string(),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version (§7.1): single spaces only.
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("request line"));
    };
    if method.is_empty() || uri.is_empty() || Method::parse(method).is_none() {
        return Err(bad("request line"));
    }
    let version = strip_prefix_ci(version, "SIP/").ok_or(bad("SIP version"))?;
    check_version(version)?;
    Ok(RawStart::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    // Compare bytes: slicing the str could split a multi-byte character. An ASCII prefix that
    // matches ends on a character boundary.
    let n = prefix.len();
    (s.len() >= n && s.as_bytes()[..n].eq_ignore_ascii_case(prefix.as_bytes())).then(|| &s[n..])
}

/// `1*DIGIT "." 1*DIGIT`; anything but 2.0 is answered 505 (§8.2.2 / RFC 4475 §3.1.2.16).
fn check_version(v: &str) -> Result<(), ParseError> {
    let ok_shape = v.split_once('.').is_some_and(|(a, b)| {
        !a.is_empty()
            && !b.is_empty()
            && a.bytes().all(|c| c.is_ascii_digit())
            && b.bytes().all(|c| c.is_ascii_digit())
    });
    if !ok_shape {
        return Err(plain(ParseErrorKind::StartLine("SIP version")));
    }
    if v != "2.0" {
        return Err(plain(ParseErrorKind::Version(format!("SIP/{v}"))));
    }
    Ok(())
}

/// Headers that may appear at most once (§20: not comma-list headers).
const SINGLE: &[(HeaderName, &str)] = &[
    (HeaderName::From, "From"),
    (HeaderName::To, "To"),
    (HeaderName::CallId, "Call-ID"),
    (HeaderName::CSeq, "CSeq"),
    (HeaderName::MaxForwards, "Max-Forwards"),
    (HeaderName::ContentType, "Content-Type"),
    (HeaderName::Expires, "Expires"),
];

fn validate(raw: RawHead, body: Bytes) -> Result<SipMessage, ParseError> {
    let fail = |kind, raw: RawHead| ParseError {
        kind,
        raw: Some(Box::new(raw)),
    };
    for (name, label) in SINGLE {
        if raw.headers.count(name) > 1 {
            return Err(fail(ParseErrorKind::Duplicate(label), raw));
        }
    }
    if let Err(kind) = check_common_headers(&raw.headers) {
        return Err(fail(kind, raw));
    }
    match raw.start {
        RawStart::Response { code, reason } => {
            let mut headers = raw.headers;
            headers.remove(&HeaderName::ContentLength);
            Ok(SipMessage::Response(Response {
                code,
                reason,
                headers,
                body,
            }))
        }
        RawStart::Request {
            ref method,
            ref uri,
        } => {
            let method = Method::parse(method).expect("checked by parse_start_line");
            let uri = match Uri::parse(uri) {
                Ok(u) => u,
                Err(source) => {
                    return Err(fail(
                        ParseErrorKind::Header {
                            name: "Request-URI",
                            source,
                        },
                        raw,
                    ));
                }
            };
            // §19.1.1: headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
            if uri.as_sip().is_some_and(|u| u.headers.is_some()) {
                return Err(fail(
                    ParseErrorKind::Header {
                        name: "Request-URI",
                        source: GrammarError {
                            what: "Request-URI with headers",
                        },
                    },
                    raw,
                ));
            }
            let cseq = raw
                .headers
                .get(&HeaderName::CSeq)
                .and_then(|v| grammar::parse_cseq(v).ok());
            if cseq.is_none_or(|c| c.method != method) {
                return Err(fail(ParseErrorKind::CSeqMismatch, raw));
            }
            if let Some(mf) = raw.headers.get(&HeaderName::MaxForwards)
                && grammar::parse_bounded(mf, 255).is_none()
            {
                return Err(fail(
                    ParseErrorKind::Header {
                        name: "Max-Forwards",
                        source: GrammarError {
                            what: "Max-Forwards",
                        },
                    },
                    raw,
                ));
            }
            let mut headers = raw.headers;
            headers.remove(&HeaderName::ContentLength);
            Ok(SipMessage::Request(Request {
                method,
                uri,
                headers,
                body,
            }))
        }
    }
}

/// Required headers present and well formed, for requests and responses alike (§8.1.1).
fn check_common_headers(h: &Headers) -> Result<(), ParseErrorKind> {
    let header = |name: &'static str, r: Result<(), GrammarError>| {
        r.map_err(|source| ParseErrorKind::Header { name, source })
    };
    let mut vias = 0;
    for v in h.get_all(&HeaderName::Via) {
        header("Via", Via::check_list(v))?;
        vias += 1;
    }
    if vias == 0 {
        return Err(ParseErrorKind::Missing("Via"));
    }
    let from = h
        .get(&HeaderName::From)
        .ok_or(ParseErrorKind::Missing("From"))?;
    header("From", NameAddr::check(from))?;
    let to = h
        .get(&HeaderName::To)
        .ok_or(ParseErrorKind::Missing("To"))?;
    header("To", NameAddr::check(to))?;
    let call_id = h
        .get(&HeaderName::CallId)
        .ok_or(ParseErrorKind::Missing("Call-ID"))?;
    if call_id.is_empty() || call_id.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ParseErrorKind::Header {
            name: "Call-ID",
            source: GrammarError { what: "Call-ID" },
        });
    }
    let cseq = h
        .get(&HeaderName::CSeq)
        .ok_or(ParseErrorKind::Missing("CSeq"))?;
    header("CSeq", grammar::parse_cseq(cseq).map(|_| ()))?;
    for c in h.get_all(&HeaderName::Contact) {
        if c != "*" {
            header("Contact", NameAddr::check_list(c))?;
        }
    }
    for name in [HeaderName::Route, HeaderName::RecordRoute] {
        for r in h.get_all(&name) {
            header("Route", NameAddr::check_list(r))?;
        }
    }
    if let Some(e) = h.get(&HeaderName::Expires)
        && (e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(ParseErrorKind::Header {
            name: "Expires",
            source: GrammarError { what: "Expires" },
        });
    }
    Ok(())
}

/// Typed access to the headers every message carries. Values were validated at parse time;
/// for messages we built ourselves a failure here is our bug, reported as `None`.
pub trait SipHeaders {
    fn headers(&self) -> &Headers;
    fn headers_mut(&mut self) -> &mut Headers;

    fn call_id(&self) -> Option<CallId> {
        self.headers().get(&HeaderName::CallId).map(CallId::new)
    }

    fn cseq(&self) -> Option<CSeq> {
        self.headers()
            .get(&HeaderName::CSeq)
            .and_then(|v| grammar::parse_cseq(v).ok())
    }

    // The name says which header, not a conversion: kept for the callers.
    #[allow(clippy::wrong_self_convention)]
    fn from_header(&self) -> Option<NameAddr> {
        self.headers()
            .get(&HeaderName::From)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    fn to_header(&self) -> Option<NameAddr> {
        self.headers()
            .get(&HeaderName::To)
            .and_then(|v| NameAddr::parse(v).ok())
    }

    #[allow(clippy::wrong_self_convention)]
    fn from_tag(&self) -> Option<String> {
        self.from_header().and_then(|n| n.tag().map(str::to_string))
    }

    fn to_tag(&self) -> Option<String> {
        self.to_header().and_then(|n| n.tag().map(str::to_string))
    }

    /// All Via values, top first.
    fn vias(&self) -> Vec<Via> {
        self.headers()
            .get_all(&HeaderName::Via)
            .filter_map(|v| Via::parse_list(v).ok())
            .flatten()
            .collect()
    }

    fn top_via(&self) -> Option<Via> {
        self.headers()
            .get(&HeaderName::Via)
            .and_then(|v| Via::parse_list(v).ok())
            .and_then(|mut v| (!v.is_empty()).then(|| v.swap_remove(0)))
    }

    /// Contact values; `None` inside for the `*` wildcard (REGISTER only).
    fn contacts(&self) -> Vec<Option<NameAddr>> {
        let mut out = Vec::new();
        for c in self.headers().get_all(&HeaderName::Contact) {
            if c == "*" {
                out.push(None);
            } else if let Ok(list) = NameAddr::parse_list(c) {
                out.extend(list.into_iter().map(Some));
            }
        }
        out
    }

    /// `Expires` as seconds (values past 2^32-1 clamp, §25 delta-seconds).
    fn expires(&self) -> Option<u32> {
        self.headers().get(&HeaderName::Expires).map(|v| {
            grammar::parse_bounded(v, u64::MAX / 2)
                .map_or(u32::MAX, |n| n.min(u32::MAX as u64) as u32)
        })
    }

    /// Comma-list tokens of a header (Require, Supported, Allow...).
    fn tokens(&self, name: &HeaderName) -> Vec<String> {
        self.headers()
            .get_all(name)
            .filter_map(|v| grammar::parse_token_list(v).ok())
            .flatten()
            .collect()
    }

    fn content_type(&self) -> Option<&str> {
        self.headers().get(&HeaderName::ContentType)
    }
}

impl SipHeaders for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
}

impl SipHeaders for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::new(),
            body: Bytes::new(),
        }
    }

    pub fn max_forwards(&self) -> Option<u8> {
        self.headers
            .get(&HeaderName::MaxForwards)
            .and_then(|v| grammar::parse_bounded(v, 255))
            .map(|v| v as u8)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.to_string().as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\n");
        self.headers.write_to(&mut out);
        write_body(&mut out, &self.body);
        out
    }

    /// A response to this request (§8.2.6.1): Via, From, To, Call-ID and CSeq copied; a To tag
    /// is added when `to_tag` is given and the request's To has none.
    pub fn response(&self, code: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::new();
        for (name, value) in self.headers.iter() {
            match name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(name.clone(), value)
                }
                HeaderName::To => {
                    let v = match to_tag {
                        Some(tag) if code > 100 && self.to_tag().is_none() => {
                            format!("{value};tag={tag}")
                        }
                        _ => value.to_string(),
                    };
                    headers.push(HeaderName::To, v)
                }
                // §8.2.6.2: the timestamp is echoed in 100 Trying.
                HeaderName::Other(n) if code == 100 && n.eq_ignore_ascii_case("timestamp") => {
                    headers.push(name.clone(), value)
                }
                _ => {}
            }
        }
        Response {
            code,
            reason: reason.to_string(),
            headers,
            body: Bytes::new(),
        }
    }
}

impl Response {
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(384 + self.body.len());
        out.extend_from_slice(b"SIP/2.0 ");
        out.extend_from_slice(self.code.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
        self.headers.write_to(&mut out);
        write_body(&mut out, &self.body);
        out
    }

    /// A response to a request that failed validation, echoing whatever of the mandatory headers
    /// could be read. `None` for a response (never answered) or a head without a Via.
    pub fn for_raw_request(raw: &RawHead, code: u16, reason: &str) -> Option<Response> {
        if !raw.is_request() || raw.headers.get(&HeaderName::Via).is_none() {
            return None;
        }
        let mut headers = Headers::new();
        for (name, value) in raw.headers.iter() {
            match name {
                HeaderName::Via => headers.push(name.clone(), value),
                // Only the first of a duplicated single-value field (RFC 4475 multi01): the
                // answer itself must be a well-formed message.
                HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq
                    if headers.get(name).is_none() =>
                {
                    headers.push(name.clone(), value)
                }
                _ => {}
            }
        }
        Some(Response {
            code,
            reason: reason.to_string(),
            headers,
            body: Bytes::new(),
        })
    }

    pub fn is_provisional(&self) -> bool {
        self.code < 200
    }
}

fn write_body(out: &mut Vec<u8>, body: &[u8]) {
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

/// What the stream framer found at the start of a read buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Not enough bytes yet.
    Incomplete,
    /// RFC 5626 §3.5.1 keep-alive: a double CRLF ping (answer with one CRLF) of this length.
    Ping(usize),
    /// Lone CRLFs between messages (§7.5), to discard.
    Skip(usize),
    /// A whole message occupies `buf[..len]`.
    Message(usize),
}

/// A stream that cannot be framed: the connection must be closed after an optional 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message head longer than {MAX_HEAD_LEN} bytes")]
    HeadTooLong,
    #[error("malformed Content-Length on a stream")]
    BadContentLength,
    #[error("body longer than {MAX_BODY_LEN} bytes")]
    BodyTooLarge,
}

/// Step one of stream parsing: is a whole message at the start of `buf`? (mini-redis style:
/// check, then parse.) Content-Length is mandatory on streams; absent, the body is empty.
pub fn frame(buf: &[u8]) -> Result<Frame, FrameError> {
    let lead = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    if lead > 0 {
        if buf.starts_with(b"\r\n\r\n") {
            return Ok(Frame::Ping(4));
        }
        if lead == buf.len() && lead < 4 && b"\r\n\r\n".starts_with(buf) {
            return Ok(Frame::Incomplete);
        }
        return Ok(Frame::Skip(lead));
    }
    let Some((head_len, body_start)) = find_head_end(buf) else {
        return if buf.len() > MAX_HEAD_LEN {
            Err(FrameError::HeadTooLong)
        } else {
            Ok(Frame::Incomplete)
        };
    };
    if head_len > MAX_HEAD_LEN {
        return Err(FrameError::HeadTooLong);
    }
    let content_length = stream_content_length(&buf[..head_len])?.unwrap_or(0);
    if content_length > MAX_BODY_LEN {
        return Err(FrameError::BodyTooLarge);
    }
    let total = body_start + content_length;
    Ok(if buf.len() >= total {
        Frame::Message(total)
    } else {
        Frame::Incomplete
    })
}

/// The Content-Length of a stream head, read the way `parse` reads header fields: the start
/// line is skipped, folded continuation lines belong to the field above them (so a value like
/// `Subject: x\r\n l: 9` is not a length), and several fields that disagree make the stream
/// unframeable (RFC 4475 mcl01).
fn stream_content_length(head: &[u8]) -> Result<Option<usize>, FrameError> {
    let mut found: Option<usize> = None;
    let mut lines = head.split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        if line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            // Continuation of a field that is not Content-Length.
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim_ascii(&line[..colon]);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let is_cont = |l: &&[u8]| l.first().is_some_and(|&b| b == b' ' || b == b'\t');
        let mut value = std::borrow::Cow::Borrowed(trim_ascii(&line[colon + 1..]));
        while let Some(cont) = lines.next_if(is_cont) {
            value.to_mut().extend_from_slice(trim_ascii(cont));
        }
        let value = std::str::from_utf8(&value).map_err(|_| FrameError::BadContentLength)?;
        let len = grammar::parse_bounded(value, u32::MAX as u64)
            .ok_or(FrameError::BadContentLength)? as usize;
        if found.is_some_and(|f| f != len) {
            return Err(FrameError::BadContentLength);
        }
        found = Some(len);
    }
    Ok(found)
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\r";

    #[test]
    fn parses_and_prints_an_invite() {
        let SipMessage::Request(r) = SipMessage::parse(INVITE.as_bytes()).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.cseq().unwrap().seq, 314159);
        assert_eq!(r.from_tag().as_deref(), Some("1928301774"));
        assert_eq!(r.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(&r.body[..], b"v=0\r");
        let again = SipMessage::parse(&r.to_bytes()).unwrap();
        assert_eq!(again, SipMessage::Request(r));
    }

    #[test]
    fn folding_and_compact_forms() {
        let msg = "OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x@y>\r\n ;tag=1\r\nt: sip:a@b\r\ni: c1\r\nCSeq: 1\r\n  OPTIONS\r\nl: 0\r\n\r\n";
        let SipMessage::Request(r) = SipMessage::parse(msg.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.from_tag().as_deref(), Some("1"));
        assert_eq!(r.headers.get(&HeaderName::CSeq), Some("1 OPTIONS"));
    }

    #[test]
    fn content_length_rules() {
        let short = INVITE.replace("Content-Length: 4", "Content-Length: 40");
        assert_eq!(
            SipMessage::parse(short.as_bytes()).unwrap_err().kind,
            ParseErrorKind::BodyTooShort
        );
        let neg = INVITE.replace("Content-Length: 4", "Content-Length: -4");
        assert_eq!(
            SipMessage::parse(neg.as_bytes()).unwrap_err().kind,
            ParseErrorKind::ContentLength
        );
        let extra = format!("{INVITE}garbage after the body");
        let SipMessage::Request(r) = SipMessage::parse(extra.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(&r.body[..], b"v=0\r");
    }

    #[test]
    fn cseq_method_must_match() {
        let m = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 OPTIONS");
        let e = SipMessage::parse(m.as_bytes()).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::CSeqMismatch);
        let resp = Response::for_raw_request(e.raw.as_ref().unwrap(), 400, "Bad Request").unwrap();
        assert_eq!(resp.headers.count(&HeaderName::Via), 1);
    }

    #[test]
    fn stream_framing() {
        let two = format!("{INVITE}{INVITE}");
        let b = two.as_bytes();
        assert_eq!(frame(b).unwrap(), Frame::Message(INVITE.len()));
        assert_eq!(frame(&b[..INVITE.len() - 1]).unwrap(), Frame::Incomplete);
        assert_eq!(frame(b"\r\n\r\nINVITE").unwrap(), Frame::Ping(4));
        assert_eq!(frame(b"\r\nINV").unwrap(), Frame::Skip(2));
        assert_eq!(frame(b"\r\n").unwrap(), Frame::Incomplete);
        let neg = INVITE.replace("Content-Length: 4", "Content-Length: -4");
        assert_eq!(frame(neg.as_bytes()), Err(FrameError::BadContentLength));
        assert_eq!(
            frame(&vec![b'a'; MAX_HEAD_LEN + 1]),
            Err(FrameError::HeadTooLong)
        );
    }

    #[test]
    fn response_builder_adds_to_tag() {
        let SipMessage::Request(r) = SipMessage::parse(INVITE.as_bytes()).unwrap() else {
            panic!()
        };
        let resp = r.response(180, "Ringing", Some("abc"));
        assert_eq!(resp.to_tag().as_deref(), Some("abc"));
        let trying = r.response(100, "Trying", Some("abc"));
        assert_eq!(trying.to_tag(), None);
        let parsed = SipMessage::parse(&resp.to_bytes()).unwrap();
        assert_eq!(parsed, SipMessage::Response(resp));
    }

    #[test]
    fn datagram_without_blank_line_is_validated() {
        // RFC 4475 baddn: the head ends at the datagram's end, so the bad From gets its 400.
        let head = INVITE.split("Content-Type").next().unwrap();
        let bad = head.replace("From: Alice <", "From: Alice, Smith <");
        let e = SipMessage::parse(bad.as_bytes()).unwrap_err();
        assert!(matches!(
            e.kind,
            ParseErrorKind::Header { name: "From", .. }
        ));
        assert!(Response::for_raw_request(e.raw.as_ref().unwrap(), 400, "Bad Request").is_some());
        let SipMessage::Request(r) = SipMessage::parse(head.as_bytes()).unwrap() else {
            panic!()
        };
        assert!(r.body.is_empty());
        // Not on a stream, and not when the datagram stops inside a line.
        assert_eq!(
            SipMessage::parse_framed(head.as_bytes()).unwrap_err().kind,
            ParseErrorKind::NoHeadEnd
        );
        assert_eq!(
            SipMessage::parse(head.trim_end().as_bytes())
                .unwrap_err()
                .kind,
            ParseErrorKind::NoHeadEnd
        );
    }

    #[test]
    fn bad_request_line_keeps_the_head_for_an_answer() {
        // RFC 4475 lwsstart, trws, badvers: 400 / 505 need Via, From, To, Call-ID, CSeq.
        for (line, kind) in [
            (
                "INVITE  sip:bob@biloxi.example.com  SIP/2.0",
                ParseErrorKind::StartLine("request line"),
            ),
            (
                "INVITE sip:bob@biloxi.example.com SIP/2.0  ",
                ParseErrorKind::StartLine("request line"),
            ),
            (
                "INVITE sip:bob@biloxi.example.com SIP/7.0",
                ParseErrorKind::Version("SIP/7.0".into()),
            ),
        ] {
            let m = INVITE.replacen("INVITE sip:bob@biloxi.example.com SIP/2.0", line, 1);
            let e = SipMessage::parse(m.as_bytes()).unwrap_err();
            assert_eq!(e.kind, kind);
            let raw = e.raw.as_ref().expect("raw head kept");
            let resp = Response::for_raw_request(raw, 400, "Bad Request").unwrap();
            assert_eq!(resp.headers.get(&HeaderName::CSeq), Some("314159 INVITE"));
        }
        // A bad status line is never answered: nothing is kept.
        let e =
            SipMessage::parse(b"SIP/2.0 4294967301 x\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap_err();
        assert!(e.raw.is_none());
    }

    #[test]
    fn start_line_is_not_folded() {
        let m = INVITE.replacen(" SIP/2.0\r\n", "\r\n SIP/2.0\r\n", 1);
        assert!(SipMessage::parse(m.as_bytes()).is_err());
        let r = "SIP/2.0 200 OK\r\n more\r\nVia: SIP/2.0/UDP h\r\n\r\n";
        assert_eq!(
            SipMessage::parse(r.as_bytes()).unwrap_err().kind,
            ParseErrorKind::HeaderLine
        );
    }

    #[test]
    fn non_ascii_start_line_does_not_panic() {
        // "€€" is 6 bytes: the case-insensitive "SIP/" check must not slice inside a char.
        for m in [
            "€€ sip:a@b SIP/2.0\r\n\r\n",
            "INVITE sip:a@b €€\r\n\r\n",
            "S€\r\n\r\n",
        ] {
            assert!(SipMessage::parse(m.as_bytes()).is_err());
        }
    }

    #[test]
    fn stream_content_length_like_parse() {
        // Folded text that looks like a Content-Length line is part of another field.
        let m = INVITE.replace("Max-Forwards: 70\r\n", "Subject: hi\r\n l: 999\r\n");
        assert_eq!(frame(m.as_bytes()).unwrap(), Frame::Message(m.len()));
        // A folded Content-Length value is read whole.
        let m = INVITE.replace("Content-Length: 4", "Content-Length:\r\n 4");
        assert_eq!(frame(m.as_bytes()).unwrap(), Frame::Message(m.len()));
        assert!(SipMessage::parse_framed(m.as_bytes()).is_ok());
        // RFC 4475 mcl01: disagreeing lengths cannot frame a stream; agreeing ones can (the
        // parser then answers 400 for the duplicate).
        let two = INVITE.replace("Content-Length: 4", "Content-Length: 4\r\nl: 2");
        assert_eq!(frame(two.as_bytes()), Err(FrameError::BadContentLength));
        let same = INVITE.replace("Content-Length: 4", "Content-Length: 4\r\nl: 4");
        assert_eq!(frame(same.as_bytes()).unwrap(), Frame::Message(same.len()));
        assert_eq!(
            SipMessage::parse_framed(same.as_bytes()).unwrap_err().kind,
            ParseErrorKind::Duplicate("Content-Length")
        );
    }

    #[test]
    fn answer_to_duplicated_fields_is_well_formed() {
        // RFC 4475 multi01: two From, To, Call-ID and CSeq fields → one of each in the 400.
        let m = INVITE.replace(
            "CSeq: 314159 INVITE\r\n",
            "CSeq: 314159 INVITE\r\nCSeq: 2 INVITE\r\nFrom: <sip:x@y>;tag=2\r\nTo: <sip:z@y>\r\n",
        );
        let e = SipMessage::parse(m.as_bytes()).unwrap_err();
        assert!(matches!(e.kind, ParseErrorKind::Duplicate(_)));
        let resp = Response::for_raw_request(e.raw.as_ref().unwrap(), 400, "Bad Request").unwrap();
        assert_eq!(resp.headers.count(&HeaderName::CSeq), 1);
        assert_eq!(resp.headers.get(&HeaderName::CSeq), Some("314159 INVITE"));
        assert_eq!(resp.headers.count(&HeaderName::From), 1);
        assert!(SipMessage::parse(&resp.to_bytes()).is_ok());
    }

    #[test]
    fn header_names_parse_back_case_insensitively() {
        use HeaderName::*;
        let all = [
            Accept,
            Allow,
            AllowEvents,
            Authorization,
            CallId,
            Contact,
            ContentDisposition,
            ContentEncoding,
            ContentLength,
            ContentType,
            CSeq,
            Date,
            Event,
            Expires,
            From,
            MaxForwards,
            MinExpires,
            MinSe,
            ProxyAuthenticate,
            ProxyAuthorization,
            ProxyRequire,
            Reason,
            RecordRoute,
            ReferTo,
            ReferredBy,
            Replaces,
            Require,
            RetryAfter,
            Route,
            Server,
            SessionExpires,
            Subject,
            Supported,
            To,
            Unsupported,
            UserAgent,
            Via,
            Warning,
            WwwAuthenticate,
        ];
        for h in all {
            let name = h.as_str();
            assert_eq!(HeaderName::parse(name), h);
            assert_eq!(HeaderName::parse(&name.to_ascii_lowercase()), h);
            assert_eq!(HeaderName::parse(&name.to_ascii_uppercase()), h);
        }
        assert_eq!(HeaderName::parse("v"), Via);
        assert_eq!(HeaderName::parse("X-Foo"), Other("X-Foo".into()));
        assert_eq!(HeaderName::parse("Vía"), Other("Vía".into()));
        assert_eq!(HeaderName::parse("Tos"), Other("Tos".into()));
    }
}
