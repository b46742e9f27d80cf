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
        let (scheme, rest) = split_scheme(s)?;
        if let Some(secure) = sip_scheme(scheme) {
            return Ok(Uri::Sip(SipUri::from_parts(secure, sip_uri_parts(rest)?)));
        }
        check_opaque(rest)?;
        Ok(Uri::Other {
            scheme: scheme.to_ascii_lowercase(),
            rest: rest.to_string(),
        })
    }

    /// Validates like [`Uri::parse`] without building the value (no allocation).
    pub(crate) fn check(s: &str) -> Result<(), GrammarError> {
        let (scheme, rest) = split_scheme(s)?;
        match sip_scheme(scheme) {
            Some(_) => sip_uri_parts(rest).map(|_| ()),
            None => check_opaque(rest),
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

fn split_scheme(s: &str) -> Result<(&str, &str), GrammarError> {
    let Some(colon) = memchr::memchr(b':', s.as_bytes()) else {
        return err("URI (no scheme)");
    };
    let scheme = &s[..colon];
    if !is_scheme(scheme) {
        return err("URI scheme");
    }
    Ok((scheme, &s[colon + 1..]))
}

/// `Some(secure)` for the sip and sips schemes (compared case-insensitively).
fn sip_scheme(scheme: &str) -> Option<bool> {
    if scheme.eq_ignore_ascii_case("sip") {
        Some(false)
    } else if scheme.eq_ignore_ascii_case("sips") {
        Some(true)
    } else {
        None
    }
}

fn check_opaque(rest: &str) -> Result<(), GrammarError> {
    if rest.is_empty() || !rest.bytes().all(is_uric_byte) {
        return err("URI characters");
    }
    Ok(())
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

    fn from_parts(secure: bool, p: SipUriParts<'_>) -> SipUri {
        let params = match p.params {
            None => Params::default(),
            Some(ps) => Params(
                ps.split(';')
                    .map(|part| {
                        let (name, value) = split_uri_param(part);
                        Param {
                            name: name.to_string(),
                            value: value.map(str::to_string),
                        }
                    })
                    .collect(),
            ),
        };
        SipUri {
            secure,
            user: p.user.map(str::to_string),
            password: p.password.map(str::to_string),
            host: p.host.to_string(),
            port: p.port,
            params,
            headers: p.headers.map(str::to_string),
        }
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

/// The validated pieces of a sip/sips URI after the scheme, borrowed from the input.
struct SipUriParts<'a> {
    user: Option<&'a str>,
    password: Option<&'a str>,
    host: &'a str,
    port: Option<u16>,
    /// The parameters after the first ';' (without it), each already checked.
    params: Option<&'a str>,
    headers: Option<&'a str>,
}

fn split_uri_param(part: &str) -> (&str, Option<&str>) {
    match memchr::memchr(b'=', part.as_bytes()) {
        Some(e) => (&part[..e], Some(&part[e + 1..])),
        None => (part, None),
    }
}

fn sip_uri_parts(s: &str) -> Result<SipUriParts<'_>, GrammarError> {
    // '@' may not appear unescaped after the userinfo, so the first one delimits it.
    let (userinfo, rest) = match memchr::memchr(b'@', s.as_bytes()) {
        Some(at) => (Some(&s[..at]), &s[at + 1..]),
        None => (None, s),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match memchr::memchr(b':', ui.as_bytes()) {
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
            (Some(u), p)
        }
    };
    let (hostport_params, headers) = match memchr::memchr(b'?', rest.as_bytes()) {
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
    let (hostport, params) = match memchr::memchr(b';', hostport_params.as_bytes()) {
        Some(p) => (&hostport_params[..p], Some(&hostport_params[p + 1..])),
        None => (hostport_params, None),
    };
    let (host, port) = hostport_parts(hostport)?;
    if let Some(ps) = params {
        for part in ps.split(';') {
            let (name, value) = split_uri_param(part);
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
        }
    }
    Ok(SipUriParts {
        user,
        password,
        host,
        port,
        params,
        headers,
    })
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
    hostport_parts(s).map(|(host, port)| (host.to_string(), port))
}

fn hostport_parts(s: &str) -> Result<(&str, Option<u16>), GrammarError> {
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
        match memchr::memchr(b':', s.as_bytes()) {
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
    Ok((host, port))
}

fn parse_port(p: &str) -> Result<u16, GrammarError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return err("port");
    }
    p.parse::<u16>().or_else(|_| err("port"))
}

fn is_hostname_or_ipv4(h: &str) -> bool {
    // Labels of alphanumerics and '-', neither starting nor ending with '-', separated by
    // single dots; one trailing dot allowed.
    let b = h.as_bytes();
    let b = b.strip_suffix(b".").unwrap_or(b);
    if b.is_empty() {
        return false;
    }
    let mut prev = b'.';
    for &c in b {
        let ok = match c {
            b'.' => prev != b'.' && prev != b'-',
            b'-' => prev != b'.',
            c => c.is_ascii_alphanumeric(),
        };
        if !ok {
            return false;
        }
        prev = c;
    }
    prev != b'-' && prev != b'.'
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
        self.walk_params(|name, value| {
            params.0.push(Param {
                name: name.to_string(),
                value: value.map(str::to_string),
            })
        })?;
        Ok(params)
    }

    /// Checks `*( SEMI generic-param )` like [`Cursor::params`] and returns the span it covered
    /// (which `params` parses to the same list), without allocating.
    fn skip_params(&mut self) -> Result<&'a str, GrammarError> {
        let start = self.pos;
        self.walk_params(|_, _| {})?;
        Ok(&self.s[start..self.pos])
    }

    fn walk_params(
        &mut self,
        mut f: impl FnMut(&'a str, Option<&'a str>),
    ) -> Result<(), GrammarError> {
        while self.sep(b';') {
            let Some(name) = self.token() else {
                return err("parameter");
            };
            let value = if self.sep(b'=') {
                Some(self.gen_value()?)
            } else {
                None
            };
            f(name, value);
        }
        Ok(())
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

    /// Validates like [`NameAddr::parse`] without building the value (no allocation).
    pub(crate) fn check(s: &str) -> Result<(), GrammarError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        name_addr_parts(&mut c)?;
        c.finish("name-addr")
    }

    /// Validates like [`NameAddr::parse_list`] without building the values.
    pub(crate) fn check_list(s: &str) -> Result<(), GrammarError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        name_addr_parts(&mut c)?;
        while c.sep(b',') {
            name_addr_parts(&mut c)?;
        }
        c.finish("name-addr list")
    }

    pub fn parse_one(c: &mut Cursor<'_>) -> Result<NameAddr, GrammarError> {
        let p = name_addr_parts(c)?;
        let display = p.display.map(|d| match d {
            Display::Quoted(q) => q.to_string(),
            Display::Tokens(words) => {
                let mut out = String::with_capacity(words.len());
                for w in words.split([' ', '\t']).filter(|w| !w.is_empty()) {
                    if !out.is_empty() {
                        out.push(' ');
                    }
                    out.push_str(w);
                }
                out
            }
        });
        Ok(NameAddr {
            display,
            uri: Uri::parse(p.uri)?,
            params: Cursor::new(p.params).params()?,
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

/// A display name as written: a quoted string (with quotes) or tokens separated by LWS.
enum Display<'a> {
    Quoted(&'a str),
    Tokens(&'a str),
}

/// The validated pieces of one name-addr / addr-spec with its header parameters.
struct NameAddrParts<'a> {
    display: Option<Display<'a>>,
    uri: &'a str,
    params: &'a str,
}

fn name_addr_parts<'a>(c: &mut Cursor<'a>) -> Result<NameAddrParts<'a>, GrammarError> {
    let display = if c.peek() == Some(b'"') {
        let q = c.quoted()?;
        c.skip_ws();
        if c.peek() != Some(b'<') {
            return err("name-addr (expected '<' after display name)");
        }
        Some(Display::Quoted(q))
    } else {
        // Either `*(token LWS) "<"` or an addr-spec starting with `scheme ":"`.
        let save = c.pos;
        let mut words_end = save;
        while c.token().is_some() {
            words_end = c.pos;
            let had_ws = c.skip_ws();
            if c.peek() == Some(b'<') || !had_ws {
                break;
            }
        }
        if c.peek() == Some(b'<') {
            (words_end > save).then(|| Display::Tokens(&c.s[save..words_end]))
        } else {
            c.pos = save;
            None
        }
    };
    let uri = if c.peek() == Some(b'<') {
        // LAQUOT addr-spec RAQUOT: no whitespace inside the brackets.
        let rest = c.rest();
        let Some(end) = memchr::memchr(b'>', rest.as_bytes()) else {
            return err("name-addr (unclosed '<')");
        };
        let inner = &rest[1..end];
        c.pos += end + 1;
        Uri::check(inner)?;
        inner
    } else {
        if display.is_some() {
            return err("name-addr");
        }
        // addr-spec without brackets: the URI may not contain ';', ',' or '?' (§20).
        let rest = c.rest();
        let end = rest
            .bytes()
            .position(|ch| matches!(ch, b';' | b',' | b' ' | b'\t'))
            .unwrap_or(rest.len());
        let u = &rest[..end];
        if u.contains('?') {
            return err("addr-spec with headers outside '<>'");
        }
        c.pos += end;
        Uri::check(u)?;
        u
    };
    let params = c.skip_params()?;
    Ok(NameAddrParts {
        display,
        uri,
        params,
    })
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

    /// Validates like [`Via::parse_list`] without building the values (no allocation).
    pub(crate) fn check_list(s: &str) -> Result<(), GrammarError> {
        let mut c = Cursor::new(s);
        c.skip_ws();
        via_parts(&mut c)?;
        while c.sep(b',') {
            via_parts(&mut c)?;
        }
        c.finish("Via")
    }

    fn parse_one(c: &mut Cursor<'_>) -> Result<Via, GrammarError> {
        let p = via_parts(c)?;
        Ok(Via {
            protocol: format!("{}/{}", p.name, p.version),
            transport: p.transport.to_ascii_uppercase(),
            host: p.host.to_string(),
            port: p.port,
            params: Cursor::new(p.params).params()?,
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

/// The validated pieces of one Via value.
struct ViaParts<'a> {
    name: &'a str,
    version: &'a str,
    transport: &'a str,
    host: &'a str,
    port: Option<u16>,
    params: &'a str,
}

fn via_parts<'a>(c: &mut Cursor<'a>) -> Result<ViaParts<'a>, GrammarError> {
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
        .bytes()
        .position(|ch| matches!(ch, b';' | b',' | b' ' | b'\t'))
        .unwrap_or(rest.len());
    let (host, mut port) = hostport_parts(&rest[..end])?;
    c.pos += end;
    // `host COLON port` where COLON allows whitespace around it.
    if c.sep(b':') {
        let rest = c.rest();
        let end = rest
            .bytes()
            .position(|ch| !ch.is_ascii_digit())
            .unwrap_or(rest.len());
        if port.is_some() {
            return err("port");
        }
        port = Some(parse_port(&rest[..end])?);
        c.pos += end;
    }
    let params = c.skip_params()?;
    Ok(ViaParts {
        name,
        version,
        transport,
        host,
        port,
        params,
    })
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

    #[test]
    fn hostnames() {
        for ok in [
            "a",
            "example.com",
            "example.com.",
            "a-b.c1",
            "192.0.2.1",
            "1a",
            "x.y-z.w",
        ] {
            assert!(is_hostname_or_ipv4(ok), "{ok}");
        }
        for bad in [
            "", ".", "a..", "a..b", ".a", "-a", "a-", "a-.b", "a.-b", "a_b", "a b", "é.com",
            "a.b..",
        ] {
            assert!(!is_hostname_or_ipv4(bad), "{bad}");
        }
    }

    #[test]
    fn check_agrees_with_parse() {
        for s in [
            "\"A\" <sip:a@b;x=1?h=v>;tag=1",
            "tok1  tok2<sip:a@b>",
            "sip:a@b;tag=2",
            "<tel:+1555>;p",
            "sip:a@b?x=1",
            "<sip:a@b",
            "\"x\" sip:a@b",
            "<sip:a@[::1]:5060>;q=0.5, <sip:c@d>",
        ] {
            assert_eq!(
                NameAddr::check(s).is_ok(),
                NameAddr::parse(s).is_ok(),
                "{s}"
            );
            assert_eq!(
                NameAddr::check_list(s).is_ok(),
                NameAddr::parse_list(s).is_ok(),
                "{s}"
            );
        }
        for s in [
            "SIP/2.0/UDP h:5060 ; branch=z9hG4bK1",
            "SIP/2.0/UDP h : 5060;rport",
            "SIP/2.0/UDP h:5060:5061",
            "SIP/2.0/UDP h:5060 :5061",
            "SIP/2.0/UDP [::1] : 5060",
            "SIP/2.0/UDP h: ",
        ] {
            assert_eq!(
                Via::check_list(s).is_ok(),
                Via::parse_list(s).is_ok(),
                "{s}"
            );
        }
        let v = Via::parse_list("SIP/2.0/UDP h : 5060;rport").unwrap();
        assert_eq!((v[0].host.as_str(), v[0].port), ("h", Some(5060)));
        assert!(Via::parse_list("SIP/2.0/UDP h:5060 :5061").is_err());
        let n = NameAddr::parse("tok1  \ttok2<sip:a@b>").unwrap();
        assert_eq!(n.display.as_deref(), Some("tok1 tok2"));
    }
}
