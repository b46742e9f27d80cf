//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 7616 computation, RFC 8760 algorithms).
//!
//! Nonces are stateless to issue and cheap to check: `hex(issued_ms) "." hex(random) "." mac`
//! where `mac` is SHA-256 over the server secret and the first two parts. Expiry comes from the
//! embedded time; replay protection keeps, per live nonce, the highest nonce-count seen
//! (`qop=auth` is required, so every reuse must carry a larger `nc`). The table is bounded.

use std::collections::HashMap;
use std::time::Duration;

use md5::Md5;
use sha2::{Digest as _, Sha256};

use super::grammar::Cursor;

/// Digest algorithms we offer, most preferred first (RFC 8760 §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Md5,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Md5 => "MD5",
        }
    }

    pub fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else {
            None
        }
    }

    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
        }
    }
}

/// The parameters of a `Digest` Authorization header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub cnonce: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub opaque: Option<String>,
}

impl DigestCredentials {
    /// Parses `Digest k=v, k="v", ...`. Returns `None` for another scheme or bad syntax.
    pub fn parse(value: &str) -> Option<DigestCredentials> {
        let mut creds = DigestCredentials::default();
        for (name, raw) in digest_params(value)? {
            match name.to_ascii_lowercase().as_str() {
                "username" => creds.username = raw,
                "realm" => creds.realm = raw,
                "nonce" => creds.nonce = raw,
                "uri" => creds.uri = raw,
                "response" => creds.response = raw,
                "algorithm" => creds.algorithm = Some(raw),
                "cnonce" => creds.cnonce = Some(raw),
                "qop" => creds.qop = Some(raw),
                "nc" => creds.nc = Some(raw),
                "opaque" => creds.opaque = Some(raw),
                _ => {}
            }
        }
        Some(creds)
    }

    /// Computes the expected `response` for `method` and `password` (RFC 7616 §3.4.1).
    pub fn expected_response(
        &self,
        algorithm: Algorithm,
        method: &str,
        password: &str,
    ) -> Option<String> {
        let ha1 = algorithm.hash(&format!("{}:{}:{password}", self.username, self.realm));
        let ha2 = algorithm.hash(&format!("{method}:{}", self.uri));
        let qop = self.qop.as_deref()?;
        if !qop.eq_ignore_ascii_case("auth") {
            return None;
        }
        Some(algorithm.hash(&format!(
            "{ha1}:{}:{}:{}:{qop}:{ha2}",
            self.nonce,
            self.nc.as_deref()?,
            self.cnonce.as_deref()?
        )))
    }
}

fn unquote(q: &str) -> String {
    let inner = &q[1..q.len() - 1];
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(ch);
        }
    }
    out
}

/// Why credentials were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// No usable Digest credentials for our realm: challenge.
    Missing,
    /// Our nonce, but too old: challenge with `stale=true` (§22.1 / RFC 7616 §3.3).
    Stale,
    /// Wrong password, replayed nonce-count, forged nonce or wrong parameters: challenge again.
    Invalid(&'static str),
}

/// Issues and checks nonces; verifies credentials. Sans-IO: the caller passes the time.
pub struct DigestAuthenticator {
    realm: String,
    /// Offered algorithms, most preferred first; credentials with any other are refused.
    algorithms: Vec<Algorithm>,
    secret: [u8; 32],
    nonce_ttl: Duration,
    /// Highest nonce-count accepted per nonce (replay protection), bounded.
    seen: HashMap<String, (u64, u32)>,
    max_tracked: usize,
}

impl DigestAuthenticator {
    pub fn new(realm: impl Into<String>, nonce_ttl: Duration) -> Self {
        Self::with_algorithms(realm, nonce_ttl, vec![Algorithm::Md5, Algorithm::Sha256])
    }

    /// `algorithms` in order of preference (RFC 8760 §2.4); must not be empty.
    pub fn with_algorithms(
        realm: impl Into<String>,
        nonce_ttl: Duration,
        algorithms: Vec<Algorithm>,
    ) -> Self {
        assert!(
            !algorithms.is_empty(),
            "config validation guarantees an algorithm"
        );
        let mut secret = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut secret);
        DigestAuthenticator {
            algorithms,
            realm: realm.into(),
            secret,
            nonce_ttl,
            seen: HashMap::new(),
            max_tracked: 100_000,
        }
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A fresh nonce; `now_ms` is wall-clock milliseconds (nonces survive no restart anyway).
    pub fn nonce(&self, now_ms: u64) -> String {
        let rand: u64 = rand::random();
        let body = format!("{now_ms:x}.{rand:x}");
        format!("{body}.{}", self.mac(&body))
    }

    fn mac(&self, body: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(body.as_bytes());
        hex::encode(&h.finalize()[..12])
    }

    /// WWW-Authenticate values, one per offered algorithm in order of preference
    /// (RFC 8760 §2.4).
    pub fn challenges(&self, now_ms: u64, stale: bool) -> Vec<String> {
        self.challenges_for(now_ms, stale, false)
    }

    /// The challenges for a browser SIP client (`browser`: its Via names WS or WSS). Those
    /// clients implement MD5 only, and JsSIP keeps only the last challenge of a response,
    /// SIP.js the first: they get MD5 alone when it is offered at all.
    pub fn challenges_for(&self, now_ms: u64, stale: bool, browser: bool) -> Vec<String> {
        let nonce = self.nonce(now_ms);
        let md5_only = browser && self.algorithms.contains(&Algorithm::Md5);
        self.algorithms
            .iter()
            .filter(|a| !md5_only || **a == Algorithm::Md5)
            .map(|a| {
                format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"{}",
                    self.realm,
                    a.name(),
                    if stale { ", stale=true" } else { "" }
                )
            })
            .collect()
    }

    /// Checks credentials for `method`, given a lookup of the user's password.
    pub fn verify(
        &mut self,
        now_ms: u64,
        method: &str,
        creds: &DigestCredentials,
        password: Option<&str>,
    ) -> Result<(), AuthFailure> {
        if !creds.realm.eq(&self.realm) {
            return Err(AuthFailure::Missing);
        }
        let algorithm = match creds.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or(AuthFailure::Invalid("algorithm"))?,
        };
        if !self.algorithms.contains(&algorithm) {
            return Err(AuthFailure::Invalid("algorithm not offered"));
        }
        let issued = self
            .check_nonce(&creds.nonce)
            .ok_or(AuthFailure::Invalid("nonce"))?;
        let Some(password) = password else {
            return Err(AuthFailure::Invalid("unknown user"));
        };
        let expected = creds
            .expected_response(algorithm, method, password)
            .ok_or(AuthFailure::Invalid("qop=auth with nc and cnonce required"))?;
        if !constant_time_eq(
            expected.as_bytes(),
            creds.response.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(AuthFailure::Invalid("response"));
        }
        if now_ms.saturating_sub(issued) > self.nonce_ttl.as_millis() as u64 {
            return Err(AuthFailure::Stale);
        }
        let nc = creds
            .nc
            .as_deref()
            .and_then(|n| u32::from_str_radix(n, 16).ok())
            .ok_or(AuthFailure::Invalid("nc"))?;
        match self.seen.get_mut(&creds.nonce) {
            Some((_, last)) if nc <= *last => return Err(AuthFailure::Invalid("replayed nc")),
            Some((_, last)) => *last = nc,
            None => {
                if self.seen.len() >= self.max_tracked {
                    self.purge(now_ms);
                }
                if self.seen.len() >= self.max_tracked {
                    return Err(AuthFailure::Stale);
                }
                self.seen.insert(creds.nonce.clone(), (issued, nc));
            }
        }
        Ok(())
    }

    /// Drops replay state of nonces that can no longer be accepted.
    pub fn purge(&mut self, now_ms: u64) {
        let ttl = self.nonce_ttl.as_millis() as u64;
        self.seen
            .retain(|_, (issued, _)| now_ms.saturating_sub(*issued) <= ttl);
    }

    /// Returns the issue time of a nonce we made, `None` for a forged or foreign one.
    fn check_nonce(&self, nonce: &str) -> Option<u64> {
        let (body, mac) = nonce.rsplit_once('.')?;
        if !constant_time_eq(self.mac(body).as_bytes(), mac.as_bytes()) {
            return None;
        }
        let (ts, _) = body.split_once('.')?;
        u64::from_str_radix(ts, 16).ok()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Builds the Authorization value a client would send (used by tests and outbound trunks).
#[allow(clippy::too_many_arguments)]
pub fn client_authorization(
    challenge_nonce: &str,
    realm: &str,
    algorithm: Algorithm,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    nc: u32,
) -> String {
    let cnonce = super::types::random_token(16);
    let creds = DigestCredentials {
        username: username.into(),
        realm: realm.into(),
        nonce: challenge_nonce.into(),
        uri: uri.into(),
        response: String::new(),
        algorithm: Some(algorithm.name().into()),
        cnonce: Some(cnonce.clone()),
        qop: Some("auth".into()),
        nc: Some(format!("{nc:08x}")),
        opaque: None,
    };
    let response = creds
        .expected_response(algorithm, method, password)
        .expect("qop, nc and cnonce are set above");
    format!(
        "Digest username=\"{username}\", realm=\"{realm}\", nonce=\"{challenge_nonce}\", uri=\"{uri}\", response=\"{response}\", algorithm={}, cnonce=\"{cnonce}\", qop=auth, nc={nc:08x}",
        algorithm.name()
    )
}

/// A `Digest` challenge from a `WWW-Authenticate` (401) or `Proxy-Authenticate` (407) field,
/// as a UAC answers it (RFC 3261 §22.2, RFC 7616 §3.3, RFC 8760 for SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    pub realm: String,
    pub nonce: String,
    pub algorithm: Algorithm,
    /// The challenge offered `qop=auth` (alone or in a list): we answer with `qop=auth`,
    /// `nc` and `cnonce`. Without any `qop` we answer in the RFC 2069 form.
    pub qop_auth: bool,
    pub opaque: Option<String>,
    /// The previous credentials were right but the nonce was too old (RFC 7616 §3.3).
    pub stale: bool,
}

impl DigestChallenge {
    /// Parses one challenge. `None` for another scheme, bad syntax, a missing realm or
    /// nonce, an algorithm we cannot compute (e.g. `MD5-sess`, `SHA-512-256`), or a `qop`
    /// list without `auth` (only `auth-int`): none of which we can answer.
    pub fn parse(value: &str) -> Option<DigestChallenge> {
        let params = digest_params(value)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        // RFC 7616 §3.3: an absent algorithm means MD5.
        let algorithm = match get("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a)?,
        };
        let qop_auth = match get("qop") {
            None => false,
            Some(list) => {
                if !list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                {
                    return None;
                }
                true
            }
        };
        Some(DigestChallenge {
            realm: get("realm")?.to_string(),
            nonce: get("nonce")?.to_string(),
            algorithm,
            qop_auth,
            opaque: get("opaque").map(str::to_string),
            stale: get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value for a request (RFC 7616 §3.4):
    /// `cnonce` and `nc` are used only when the challenge offered `qop=auth`.
    pub fn authorization(
        &self,
        username: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let alg = self.algorithm;
        let ha1 = alg.hash(&format!("{username}:{}:{password}", self.realm));
        let ha2 = alg.hash(&format!("{method}:{uri}"));
        let nc = format!("{nc:08x}");
        let response = if self.qop_auth {
            alg.hash(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", self.nonce))
        } else {
            // RFC 2069 §2.1.2 (kept by RFC 2617 §3.2.2.1 for challenges without qop).
            alg.hash(&format!("{ha1}:{}:{ha2}", self.nonce))
        };
        // `nonce` precedes `cnonce`: some peers (sipp 3.6) find parameters by substring.
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{response}\", algorithm={}",
            quote_escape(username),
            quote_escape(&self.realm),
            quote_escape(&self.nonce),
            quote_escape(uri),
            alg.name()
        );
        if self.qop_auth {
            v.push_str(&format!(
                ", cnonce=\"{}\", qop=auth, nc={nc}",
                quote_escape(cnonce)
            ));
        }
        if let Some(o) = &self.opaque {
            v.push_str(&format!(", opaque=\"{}\"", quote_escape(o)));
        }
        v
    }
}

/// Answers the first challenge among `challenges` that we can compute (RFC 8760 §2.4: the
/// topmost one the client supports), with a fresh `cnonce` and `nc=1`. Returns the chosen
/// challenge with the header value; `None` when no challenge is usable.
pub fn answer_challenge<'a>(
    challenges: impl IntoIterator<Item = &'a str>,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> Option<(DigestChallenge, String)> {
    let challenge = challenges.into_iter().find_map(DigestChallenge::parse)?;
    let cnonce = super::types::random_token(16);
    let value = challenge.authorization(username, password, method, uri, &cnonce, 1);
    Some((challenge, value))
}

/// `Digest k=v, k="v", ...` as (name, unquoted value) pairs; `None` for another scheme or
/// bad syntax (RFC 3261 §25.1 `challenge` / `credentials`).
fn digest_params(value: &str) -> Option<Vec<(String, String)>> {
    let mut c = Cursor::new(value);
    c.skip_ws();
    let scheme = c.token()?;
    if !scheme.eq_ignore_ascii_case("Digest") || !c.skip_ws() {
        return None;
    }
    let mut params = Vec::new();
    loop {
        let name = c.token()?;
        if !c.sep(b'=') {
            return None;
        }
        let raw = if c.rest().starts_with('"') {
            let q = c.quoted().ok()?;
            unquote(q)
        } else {
            c.token()?.to_string()
        };
        params.push((name.to_string(), raw));
        if !c.sep(b',') {
            break;
        }
    }
    c.finish("digest parameters").ok()?;
    Some(params)
}

/// Escapes `"` and backslash inside a quoted-string (§25.1 quoted-pair).
fn quote_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Extracts `nonce` from a WWW-Authenticate value (for clients and tests).
pub fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let rest = challenge.trim_start().strip_prefix("Digest")?;
    rest.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7616_md5_example_response() {
        // RFC 2617 §3.5 example (MD5, qop=auth), still valid under RFC 7616.
        let c = DigestCredentials {
            username: "Mufasa".into(),
            realm: "testrealm@host.com".into(),
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093".into(),
            uri: "/dir/index.html".into(),
            response: String::new(),
            algorithm: None,
            cnonce: Some("0a4f113b".into()),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            opaque: None,
        };
        assert_eq!(
            c.expected_response(Algorithm::Md5, "GET", "Circle Of Life")
                .unwrap(),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    fn login(
        auth: &mut DigestAuthenticator,
        now: u64,
        nonce: &str,
        alg: Algorithm,
        pw: &str,
        nc: u32,
    ) -> Result<(), AuthFailure> {
        let v = client_authorization(nonce, "cti", alg, "1001", pw, "REGISTER", "sip:cti", nc);
        let creds = DigestCredentials::parse(&v).unwrap();
        auth.verify(now, "REGISTER", &creds, Some("secret"))
    }

    #[test]
    fn right_and_wrong_passwords_both_algorithms() {
        let mut auth = DigestAuthenticator::new("cti", Duration::from_secs(30));
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            let nonce = auth.nonce(1_000);
            assert_eq!(login(&mut auth, 1_000, &nonce, alg, "secret", 1), Ok(()));
            assert!(matches!(
                login(&mut auth, 1_000, &nonce, alg, "wrong", 2),
                Err(AuthFailure::Invalid("response"))
            ));
        }
    }

    #[test]
    fn stale_nonce_and_replay() {
        let mut auth = DigestAuthenticator::new("cti", Duration::from_secs(30));
        let nonce = auth.nonce(1_000);
        assert_eq!(
            login(&mut auth, 40_000, &nonce, Algorithm::Md5, "secret", 1),
            Err(AuthFailure::Stale)
        );
        let nonce = auth.nonce(50_000);
        assert_eq!(
            login(&mut auth, 50_000, &nonce, Algorithm::Md5, "secret", 1),
            Ok(())
        );
        assert_eq!(
            login(&mut auth, 50_001, &nonce, Algorithm::Md5, "secret", 1),
            Err(AuthFailure::Invalid("replayed nc"))
        );
        assert_eq!(
            login(&mut auth, 50_002, &nonce, Algorithm::Md5, "secret", 2),
            Ok(())
        );
        let forged = nonce.replace('.', "x.");
        assert!(login(&mut auth, 50_003, &forged, Algorithm::Md5, "secret", 1).is_err());
    }

    #[test]
    fn only_offered_algorithms_in_preference_order() {
        let mut auth = DigestAuthenticator::with_algorithms(
            "cti",
            Duration::from_secs(30),
            vec![Algorithm::Sha256],
        );
        let ch = auth.challenges(1_000, false);
        assert_eq!(ch.len(), 1);
        assert!(ch[0].contains("algorithm=SHA-256"));
        let nonce = auth.nonce(1_000);
        assert_eq!(
            login(&mut auth, 1_000, &nonce, Algorithm::Md5, "secret", 1),
            Err(AuthFailure::Invalid("algorithm not offered"))
        );
        assert_eq!(
            login(&mut auth, 1_000, &nonce, Algorithm::Sha256, "secret", 2),
            Ok(())
        );
        let both = DigestAuthenticator::new("cti", Duration::from_secs(30)).challenges(0, true);
        assert!(
            both[0].contains("MD5")
                && both[1].contains("SHA-256")
                && both[1].contains("stale=true")
        );
        // Browser clients get MD5 alone, when it is offered; else what there is.
        let md5 =
            DigestAuthenticator::new("cti", Duration::from_secs(30)).challenges_for(0, false, true);
        assert_eq!(md5.len(), 1);
        assert!(md5[0].contains("algorithm=MD5"));
        assert_eq!(auth.challenges_for(0, false, true).len(), 1);
        assert!(auth.challenges_for(0, false, true)[0].contains("SHA-256"));
    }

    fn challenge(v: &str) -> DigestChallenge {
        DigestChallenge::parse(v).expect("usable challenge")
    }

    #[test]
    fn rfc2617_3_5_example_answered_from_the_challenge() {
        // RFC 2617 §3.5: the challenge, and the Authorization it shows for cnonce 0a4f113b.
        let c = challenge(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        );
        assert_eq!(c.algorithm, Algorithm::Md5, "absent algorithm means MD5");
        assert!(c.qop_auth);
        let v = c.authorization(
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        let creds = DigestCredentials::parse(&v).unwrap();
        assert_eq!(creds.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(creds.nc.as_deref(), Some("00000001"));
        assert_eq!(creds.cnonce.as_deref(), Some("0a4f113b"));
        assert_eq!(creds.qop.as_deref(), Some("auth"));
        assert_eq!(
            creds.opaque.as_deref(),
            Some("5ccc069c403ebaf9f0171e9517f40e41")
        );
        assert_eq!(creds.realm, "testrealm@host.com");
        assert_eq!(creds.uri, "/dir/index.html");
        // What our own server computes from those credentials agrees.
        assert_eq!(
            creds
                .expected_response(Algorithm::Md5, "GET", "Circle Of Life")
                .unwrap(),
            creds.response
        );
    }

    #[test]
    fn rfc7616_3_9_1_md5_and_sha256_examples() {
        for (alg, expected) in [
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
        ] {
            let c = challenge(&format!(
                "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            ));
            let v = c.authorization(
                "Mufasa",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
                1,
            );
            let creds = DigestCredentials::parse(&v).unwrap();
            assert_eq!(creds.response, expected, "{alg}");
            assert_eq!(creds.algorithm.as_deref(), Some(alg));
        }
    }

    #[test]
    fn rfc2069_form_without_qop() {
        // No qop in the challenge: response = H(HA1:nonce:HA2), no cnonce/nc/qop sent
        // (RFC 2069 §2.1.2; RFC 2617 §3.2.2.1). Expected value computed independently
        // (Python hashlib) over the RFC 2617 §3.5 inputs.
        let c = challenge(
            "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
        );
        assert!(!c.qop_auth);
        let v = c.authorization("Mufasa", "Circle Of Life", "GET", "/dir/index.html", "x", 1);
        let creds = DigestCredentials::parse(&v).unwrap();
        assert_eq!(creds.response, "670fd8c2df070c60b045671b8b24ff02");
        assert_eq!((creds.qop, creds.nc, creds.cnonce), (None, None, None));
        assert!(!v.contains("opaque"));
    }

    #[test]
    fn unusable_challenges_are_skipped_in_order() {
        assert!(DigestChallenge::parse("Basic realm=\"x\"").is_none());
        assert!(
            DigestChallenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess").is_none()
        );
        assert!(
            DigestChallenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"").is_none()
        );
        assert!(
            DigestChallenge::parse("Digest realm=\"r\"").is_none(),
            "no nonce"
        );
        assert!(DigestChallenge::parse("Digest realm=\"r, nonce=\"n\"").is_none());
        let stale = challenge("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, stale=TRUE");
        assert!(stale.stale && stale.algorithm == Algorithm::Sha256);
        // RFC 8760 §2.4: the first challenge we can compute wins.
        let (c, v) = answer_challenge(
            [
                "Digest realm=\"r\", nonce=\"n1\", algorithm=SHA-512-256, qop=\"auth\"",
                "Digest realm=\"r\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth\"",
                "Digest realm=\"r\", nonce=\"n3\", algorithm=MD5, qop=\"auth\"",
            ],
            "u",
            "p",
            "INVITE",
            "sip:+15551234567@trunk.example",
        )
        .unwrap();
        assert_eq!(c.nonce, "n2");
        let creds = DigestCredentials::parse(&v).unwrap();
        assert_eq!(
            creds.expected_response(Algorithm::Sha256, "INVITE", "p"),
            Some(creds.response.clone())
        );
        // nonce before cnonce, for peers that look parameters up by substring.
        assert!(v.find("nonce=").unwrap() < v.find("cnonce=").unwrap());
        assert!(answer_challenge(["Basic realm=\"x\""], "u", "p", "INVITE", "sip:x").is_none());
    }

    #[test]
    fn quoted_values_are_escaped() {
        let c = challenge("Digest realm=\"a\\\"b\", nonce=\"n\"");
        assert_eq!(c.realm, "a\"b");
        let v = c.authorization("u\"x", "p", "INVITE", "sip:x", "c", 1);
        let creds = DigestCredentials::parse(&v).unwrap();
        assert_eq!(creds.realm, "a\"b");
        assert_eq!(creds.username, "u\"x");
    }

    #[test]
    fn parses_unknown_scheme_as_none() {
        assert!(DigestCredentials::parse("NoOneKnowsThisScheme opaque-data=here").is_none());
        let c = DigestCredentials::parse(
            "Digest username=\"a\\\"b\", realm=\"r\", nonce=\"n\", uri=\"sip:x\", response=\"00\", nc=00000001, cnonce=\"c\", qop=auth",
        )
        .unwrap();
        assert_eq!(c.username, "a\"b");
        assert_eq!(c.nc.as_deref(), Some("00000001"));
    }
}
