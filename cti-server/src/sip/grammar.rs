//! Header-value grammar of RFC 3261 §25: URIs, name-addr, Via, CSeq, generic parameters.
//!
//! Written by hand because no maintained crate is strict enough: ezk-sip-types 0.6.5 accepted
//! six malformed RFC 4475 messages and rejected two valid ones (see `docs/`). Values reaching
//! these parsers are already unfolded (a CRLF followed by whitespace became one SP), so linear
//! whitespace is a run of SP/HT. Every parser consumes its whole input or fails.

use std::fmt;

use super::types::{CSeq, Method, is_token_byte};

/// A grammar error: which construct failed. Always the peer's fault (a 400 to a request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}")]
pub struct GrammarError {
    pub what: &'static str,
}

fn err<T>(what: &'static str) -> Result<T, GrammarError> {
    Err(GrammarError { what })
}

/// A parameter `;name[=value]`. Names compare case-insensitively (§19.1.4, §20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

/// Ordered parameter list with case-insensitive lookup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Params(pub Vec<Param>);

impl Params {
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The value of a parameter that has one.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets (replacing) a parameter.
    pub fn set(&mut self, name: &str, value: Option<String>) {
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            p.value = value;
        } else {
            self.0.push(Param {
                name: name.to_string(),
                value,
            });
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|p| !p.name.eq_ignore_ascii_case(name));
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.0 {
            match &p.value {
                Some(v) => write!(f, ";{}={}", p.name, v)?,
                None => write!(f, ";{}", p.name)?,
            }
        }
        Ok(())
    }
}

/// A URI as found in SIP messages: a parsed sip/sips URI, or any other scheme kept opaque
/// (RFC 4475 §3.3.4: unknown schemes in To/From/Contact must be accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    Sip(SipUri),
    /// Scheme (lower-cased) and everything after the colon, verbatim.
    Other {
        scheme: String,
        rest: String,
    },
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, GrammarError> {
        let Some(colon) = s.find(':') else {
            return err("URI (no scheme)");
        };
        let scheme = &s[..colon];
        let rest = &s[colon + 1..];
        if !is_scheme(scheme) {
            return err("URI scheme");
        }
        let lower = scheme.to_ascii_lowercase();
        match lower.as_str() {
            "sip" | "sips" => Ok(Uri::Sip(SipUri::parse_after_scheme(lower == "sips", rest)?)),
            _ => {
                if rest.is_empty() || !rest.bytes().all(is_uric_byte) {
                    return err("URI characters");
                }
                Ok(Uri::Other {
                    scheme: lower,
                    rest: rest.to_string(),
                })
            }
        }
    }

    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other { .. } => None,
        }
    }

    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Other { scheme, .. } => scheme,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

fn is_scheme(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphabetic()
        && b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
}

/// Characters allowed in an opaque URI (RFC 2396 uric plus '#' and '%'): no space, no
/// quote, no angle brackets, no control characters.
fn is_uric_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b';' | b'/'
                | b'?'
                | b':'
                | b'@'
                | b'&'
                | b'='
                | b'+'
                | b'$'
                | b','
                | b'-'
                | b'_'
                | b'.'
                | b'!'
                | b'~'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b'%'
                | b'#'
                | b'['
                | b']'
        )
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Checks `%HH` escapes and that every other byte satisfies `allowed`.
fn check_escaped(s: &str, allowed: impl Fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if i + 2 >= b.len() {
                return false;
            }
            if !(b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
        } else if allowed(b[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

/// A sip: or sips: URI (RFC 3261 §19.1). User, password and parameter values are kept
/// escaped as received: comparison rules unescape (§19.1.4), printing keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub secure: bool,
    pub user: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
    /// `?name=value&...` headers, raw (without the leading '?').
    pub headers: Option<String>,
}

impl SipUri {
    pub fn new(user: Option<&str>, host: &str, port: Option<u16>) -> SipUri {
        SipUri {
            secure: false,
            user: user.map(str::to_string),
            password: None,
            host: host.to_string(),
            port,
            params: Params::default(),
            headers: None,
        }
    }

    pub fn parse(s: &str) -> Result<SipUri, GrammarError> {
        match Uri::parse(s)? {
            Uri::Sip(u) => Ok(u),
            Uri::Other { .. } => err("SIP URI"),
        }
    }

    fn parse_after_scheme(secure: bool, s: &str) -> Result<SipUri, GrammarError> {
        // '@' may not appear unescaped after the userinfo, so the first one delimits it.
        let (userinfo, rest) = match s.find('@') {
            Some(at) => (Some(&s[..at]), &s[at + 1..]),
            None => (None, s),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(ui) => {
                let (u, p) = match ui.find(':') {
                    Some(c) => (&ui[..c], Some(&ui[c + 1..])),
                    None => (ui, None),
                };
                if u.is_empty()
                    || !check_escaped(u, |b| {
                        is_unreserved(b)
                            || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
                    })
                {
                    return err("URI user part");
                }
                if let Some(p) = p
                    && !check_escaped(p, |b| {
                        is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
                    })
                {
                    return err("URI password");
                }
                (Some(u.to_string()), p.map(str::to_string))
            }
        };
        let (hostport_params, headers) = match rest.find('?') {
            Some(q) => (&rest[..q], Some(&rest[q + 1..])),
            None => (rest, None),
        };
        if let Some(h) = headers
            && (h.is_empty()
                || !check_escaped(h, |b| {
                    is_unreserved(b)
                        || matches!(
                            b,
                            b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'&' | b'='
                        )
                }))
        {
            return err("URI headers");
        }
        let (hostport, params_str) = match hostport_params.find(';') {
            Some(p) => (&hostport_params[..p], Some(&hostport_params[p..])),
            None => (hostport_params, None),
        };
        let (host, port) = parse_hostport(hostport)?;
        let mut params = Params::default();
        if let Some(ps) = params_str {
            for part in ps[1..].split(';') {
                let (name, value) = match part.find('=') {
                    Some(e) => (&part[..e], Some(&part[e + 1..])),
                    None => (part, None),
                };
                let paramchar = |b: u8| {
                    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
                };
                if name.is_empty() || !check_escaped(name, paramchar) {
                    return err("URI parameter");
                }
                if let Some(v) = value
                    && (v.is_empty() || !check_escaped(v, paramchar))
                {
                    return err("URI parameter value");
                }
                params.0.push(Param {
                    name: name.to_string(),
                    value: value.map(str::to_string),
                });
            }
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers: headers.map(str::to_string),
        })
    }

    /// The user part with %HH escapes decoded (for routing by extension or number).
    pub fn user_unescaped(&self) -> Option<String> {
        self.user.as_deref().map(unescape)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        self.params.fmt(f)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// Decodes %HH escapes (invalid escapes are kept verbatim).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_val(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `host [":" port]` with hostname, IPv4 or `[IPv6]` (RFC 3261 §25.1).
pub fn parse_hostport(s: &str) -> Result<(String, Option<u16>), GrammarError> {
    let (host, port) = if let Some(stripped) = s.strip_prefix('[') {
        let Some(end) = stripped.find(']') else {
            return err("IPv6 reference");
        };
        let inner = &stripped[..end];
        if inner.parse::<std::net::Ipv6Addr>().is_err() {
            return err("IPv6 address");
        }
        let after = &stripped[end + 1..];
        let port = match after {
            "" => None,
            p if p.starts_with(':') => Some(&p[1..]),
            _ => return err("host"),
        };
        (&s[..end + 2], port)
    } else {
        match s.find(':') {
            Some(c) => (&s[..c], Some(&s[c + 1..])),
            None => (s, None),
        }
    };
    if !host.starts_with('[') && !is_hostname_or_ipv4(host) {
        return err("host");
    }
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    Ok((host.to_string(), port))
}

fn parse_port(p: &str) -> Result<u16, GrammarError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return err("port");
    }
    p.parse::<u16>().or_else(|_| err("port"))
}

fn is_hostname_or_ipv4(h: &str) -> bool {
    let h = h.strip_suffix('.').unwrap_or(h);
    !h.is_empty()
        && h.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        })
}

/// A cursor over an unfolded header value with the RFC 3261 separators (SWS around them).
pub struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    pub fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    pub fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Consumes `SWS c SWS` if the next non-space byte is `c`.
    pub fn sep(&mut self, c: u8) -> bool {
        let save = self.pos;
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            self.skip_ws();
            true
        } else {
            self.pos = save;
            false
        }
    }

    pub fn token(&mut self) -> Option<&'a str> {
        let start = self.pos;
        while self.peek().is_some_and(is_token_byte) {
            self.pos += 1;
        }
        (self.pos > start).then(|| &self.s[start..self.pos])
    }

    /// A quoted-string including its quotes (§25.1: qdtext / quoted-pair).
    pub fn quoted(&mut self) -> Result<&'a str, GrammarError> {
        let b = self.s.as_bytes();
        let start = self.pos;
        if b.get(self.pos) != Some(&b'"') {
            return err("quoted string");
        }
        let mut i = self.pos + 1;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    self.pos = i + 1;
                    return Ok(&self.s[start..self.pos]);
                }
                // quoted-pair: any char but CR and LF may be escaped.
                b'\\' => {
                    match b.get(i + 1) {
                        Some(b'\r' | b'\n') | None => return err("quoted string"),
                        Some(_) => {}
                    }
                    // The escaped character may be a multi-byte UTF-8 sequence.
                    let ch = self.s[i + 1..].chars().next().map_or(1, char::len_utf8);
                    i += 1 + ch;
                }
                // qdtext excludes control characters other than HT (LWS is already SP).
                c if c < 0x20 && c != b'\t' => return err("quoted string"),
                0x7f => return err("quoted string"),
                _ => i += 1,
            }
        }
        err("unterminated quoted string")
    }

    /// `gen-value = token / host / quoted-string`.
    fn gen_value(&mut self) -> Result<&'a str, GrammarError> {
        if self.peek() == Some(b'"') {
            return self.quoted();
        }
        if self.peek() == Some(b'[') {
            let start = self.pos;
            let Some(end) = self.rest().find(']') else {
                return err("IPv6 reference");
            };
            self.pos += end + 1;
            return Ok(&self.s[start..self.pos]);
        }
        self.token().ok_or(GrammarError {
            what: "parameter value",
        })
    }

    /// `*( SEMI generic-param )`, stopping before a COMMA or the end.
    pub fn params(&mut self) -> Result<Params, GrammarError> {
        let mut params = Params::default();
        while self.sep(b';') {
            let Some(name) = self.token() else {
                return err("parameter");
            };
            let value = if self.sep(b'=') {
                Some(self.gen_value()?.to_string())
            } else {
                None
            };
            params.0.push(Param {
                name: name.to_string(),
                value,
            });
        }
        Ok(params)
    }

    /// Expects the end of input, allowing trailing whitespace.
    pub fn finish(&mut self, what: &'static str) -> Result<(), GrammarError> {
        self.skip_ws();
        if self.at_end() { Ok(()) } else { err(what) }
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Refer-To.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name as written: a quoted string with its quotes, or tokens.
    pub display: Option<String>,
    pub uri: Uri,
    pub params: Params,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            params: Params::default(),
        }
    }

    /// Parses exactly one name-addr with parameters (From, To, single Contact).
    pub fn parse(s: &str) -> Result<NameAddr, GrammarError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let na = Self::parse_one(&mut c)?;
        c.finish("name-addr")?;
        Ok(na)
    }

    /// Parses a comma-separated list (Contact, Route, Record-Route).
    pub fn parse_list(s: &str) -> Result<Vec<NameAddr>, GrammarError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let mut out = vec![Self::parse_one(&mut c)?];
        while c.sep(b',') {
            out.push(Self::parse_one(&mut c)?);
        }
        c.finish("name-addr list")?;
        Ok(out)
    }

    pub fn parse_one(c: &mut Cursor<'_>) -> Result<NameAddr, GrammarError> {
        let display = if c.peek() == Some(b'"') {
            let q = c.quoted()?;
            c.skip_ws();
            if c.peek() != Some(b'<') {
                return err("name-addr (expected '<' after display name)");
            }
            Some(q.to_string())
        } else {
            // Either `*(token LWS) "<"` or an addr-spec starting with `scheme ":"`.
            let save = c.pos;
            let mut words = Vec::new();
            loop {
                match c.token() {
                    Some(t) => words.push(t),
                    None => break,
                }
                let had_ws = c.skip_ws();
                if c.peek() == Some(b'<') || !had_ws {
                    break;
                }
            }
            if c.peek() == Some(b'<') {
                (!words.is_empty()).then(|| words.join(" "))
            } else {
                c.pos = save;
                None
            }
        };
        let uri = if c.peek() == Some(b'<') {
            // LAQUOT addr-spec RAQUOT: no whitespace inside the brackets.
            let rest = c.rest();
            let Some(end) = rest.find('>') else {
                return err("name-addr (unclosed '<')");
            };
            let inner = &rest[1..end];
            c.pos += end + 1;
            Uri::parse(inner)?
        } else {
            if display.is_some() {
                return err("name-addr");
            }
            // addr-spec without brackets: the URI may not contain ';', ',' or '?' (§20).
            let rest = c.rest();
            let end = rest
                .find(|ch: char| matches!(ch, ';' | ',' | ' ' | '\t'))
                .unwrap_or(rest.len());
            let u = &rest[..end];
            if u.contains('?') {
                return err("addr-spec with headers outside '<>'");
            }
            c.pos += end;
            Uri::parse(u)?
        };
        let params = c.params()?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `protocol-name/protocol-version`, normally `SIP/2.0`.
    pub protocol: String,
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn parse_list(s: &str) -> Result<Vec<Via>, GrammarError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        let mut out = vec![Self::parse_one(&mut c)?];
        while c.sep(b',') {
            out.push(Self::parse_one(&mut c)?);
        }
        c.finish("Via")?;
        Ok(out)
    }

    fn parse_one(c: &mut Cursor<'_>) -> Result<Via, GrammarError> {
        let name = c.token().ok_or(GrammarError {
            what: "Via protocol",
        })?;
        if !c.sep(b'/') {
            return err("Via protocol");
        }
        let version = c.token().ok_or(GrammarError {
            what: "Via version",
        })?;
        if !c.sep(b'/') {
            return err("Via protocol");
        }
        let transport = c.token().ok_or(GrammarError {
            what: "Via transport",
        })?;
        if !c.skip_ws() {
            return err("Via sent-by");
        }
        let rest = c.rest();
        let end = rest
            .find(|ch: char| matches!(ch, ';' | ',' | ' ' | '\t'))
            .unwrap_or(rest.len());
        let mut hostport = rest[..end].to_string();
        c.pos += end;
        // `host COLON port` where COLON allows whitespace around it.
        if c.sep(b':') {
            let rest = c.rest();
            let end = rest
                .find(|ch: char| !ch.is_ascii_digit())
                .unwrap_or(rest.len());
            hostport.push(':');
            hostport.push_str(&rest[..end]);
            c.pos += end;
        }
        let (host, port) = parse_hostport(&hostport)?;
        let params = c.params()?;
        Ok(Via {
            protocol: format!("{name}/{version}"),
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    pub fn received(&self) -> Option<&str> {
        self.params.value("received")
    }

    /// RFC 3581: `Some(None)` for a bare `rport` request, `Some(Some(port))` when filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// `host[:port]` as written (the "sent-by" of §18.2.2).
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} {}{}",
            self.protocol,
            self.transport,
            self.sent_by(),
            self.params
        )
    }
}

/// `CSeq: 1*DIGIT LWS Method` with the number below 2^31 (§8.1.1.5).
pub fn parse_cseq(s: &str) -> Result<CSeq, GrammarError> {
    let s = s.trim_matches([' ', '\t']);
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let digits = &s[..digits_end];
    let rest = &s[digits_end..];
    let method_str = rest.trim_start_matches([' ', '\t']);
    if digits.is_empty() || method_str.len() == rest.len() {
        return err("CSeq");
    }
    let seq = parse_bounded(digits, (1u64 << 31) - 1).ok_or(GrammarError {
        what: "CSeq number",
    })?;
    let method = Method::parse(method_str).ok_or(GrammarError {
        what: "CSeq method",
    })?;
    Ok(CSeq {
        seq: seq as u32,
        method,
    })
}

/// A run of digits no larger than `max` (leading zeros allowed: "0068").
pub fn parse_bounded(digits: &str, max: u64) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let trimmed = digits.trim_start_matches('0');
    if trimmed.len() > 19 {
        return None;
    }
    let v: u64 = if trimmed.is_empty() {
        0
    } else {
        trimmed.parse().ok()?
    };
    (v <= max).then_some(v)
}

/// A comma-separated list of tokens (Require, Supported, Allow, ...).
pub fn parse_token_list(s: &str) -> Result<Vec<String>, GrammarError> {
    let mut c = Cursor::new(s);
    c.skip_ws();
    let mut out = Vec::new();
    if c.at_end() {
        return Ok(out);
    }
    loop {
        let t = c.token().ok_or(GrammarError { what: "token list" })?;
        out.push(t.to_string());
        if !c.sep(b',') {
            break;
        }
    }
    c.finish("token list")?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_uri_with_user_params_and_headers() {
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        let u = SipUri::parse("sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?X=1").unwrap();
        assert!(u.secure);
        assert_eq!(u.password.as_deref(), Some("secret"));
        assert_eq!(u.port, Some(5061));
        assert!(u.params.contains("lr"));
        assert_eq!(u.headers.as_deref(), Some("X=1"));
        assert_eq!(
            u.to_string(),
            "sips:alice:secret@[2001:db8::1]:5061;transport=tcp;lr?X=1"
        );
    }

    #[test]
    fn bad_uris_are_rejected() {
        for s in [
            "sip:",
            "sip:user@",
            "sip:us er@host",
            "sip:host:99999",
            "sip:host;=x",
            "sip:a@b@c",
            "<sip:x>",
            "1sip:x",
        ] {
            assert!(Uri::parse(s).is_err(), "{s} should fail");
        }
        assert!(matches!(
            Uri::parse("tel:+15551234").unwrap(),
            Uri::Other { .. }
        ));
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com> ; tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        let n =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(n.tag(), Some("1918181833n"));
        assert!(NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>").is_err());
        assert!(NameAddr::parse("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
        assert!(NameAddr::parse("Watson, Thomas <sip:t.watson@example.org>").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").is_err());
        assert!(NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;").is_err());
    }

    #[test]
    fn via_with_whitespace_everywhere() {
        let v = Via::parse_list(
            "SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8  , SIP  /    2.0   / UDP  192.168.255.111   ; branch= z9hG4bK30239",
        )
        .unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].transport, "TCP");
        assert_eq!(v[0].branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(v[1].host, "192.168.255.111");
        assert!(Via::parse_list("SIP/2.0/UDP 192.0.2.15;;,;,,").is_err());
        let v = Via::parse_list("SIP/2.0/UDP 10.0.0.1:5070;rport;branch=z9hG4bKx").unwrap();
        assert_eq!(v[0].rport(), Some(None));
        assert_eq!(v[0].port, Some(5070));
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(parse_cseq("0009   INVITE").unwrap().seq, 9);
        assert!(parse_cseq("36893488147419103232 REGISTER").is_err());
        assert!(parse_cseq("2147483648 INVITE").is_err());
        assert!(parse_cseq("12INVITE").is_err());
        assert!(parse_cseq("INVITE").is_err());
    }
}
