//! The registrar for agent endpoints (RFC 3261 §10.3), sans-IO.
//!
//! Bindings live in memory, keyed by the agent's extension (the user part of the To URI).
//! Every REGISTER must carry valid Digest credentials (see [`super::auth`]). Expiry is checked
//! against the `now` the caller passes; [`Registrar::expire`] returns the bindings that lapsed
//! so presence (an agent whose phone is gone is never offered a call) can follow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::auth::{AuthFailure, DigestAuthenticator, DigestCredentials};
use super::grammar::{NameAddr, Uri};
use super::message::{HeaderName, Request, Response, SipHeaders};
use super::types::{CallId, Tag, Transport};

/// Registration policy; the defaults follow RFC 3261 §10.2.1.1 (3600 s).
#[derive(Debug, Clone)]
pub struct RegistrarConfig {
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts_per_agent: usize,
}

impl Default for RegistrarConfig {
    fn default() -> Self {
        RegistrarConfig {
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_contacts_per_agent: 10,
        }
    }
}

/// Who may register, and with which password.
pub trait Credentials {
    fn password(&self, user: &str) -> Option<String>;
}

/// One registered contact of an agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub contact: Uri,
    pub expires_at: Instant,
    pub call_id: CallId,
    pub cseq: u32,
    /// Where the REGISTER came from: requests to this contact go here (NAT-friendly, RFC 5626
    /// flow reuse in spirit) when the contact itself is not reachable.
    pub transport: Transport,
    pub source: SocketAddr,
}

/// A change of an agent's reachability.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrationEvent {
    Added {
        agent: String,
        binding: Binding,
    },
    Removed {
        agent: String,
        contact: Uri,
        why: RemovedWhy,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemovedWhy {
    Unregistered,
    Expired,
    /// The TLS or WebSocket connection it was registered over closed: nothing can reach the
    /// phone or browser any more (RFC 5626 flows; RFC 7118 §5).
    ConnectionClosed,
}

pub struct Registrar {
    config: RegistrarConfig,
    auth: DigestAuthenticator,
    bindings: HashMap<String, Vec<Binding>>,
    events: Vec<RegistrationEvent>,
}

/// What the caller of [`Registrar::handle_register`] needs besides the request.
pub struct RegisterContext<'a> {
    pub now: Instant,
    /// Wall clock in milliseconds (nonce timestamps).
    pub wall_ms: u64,
    pub transport: Transport,
    pub source: SocketAddr,
    pub credentials: &'a dyn Credentials,
}

impl Registrar {
    pub fn new(config: RegistrarConfig, realm: &str, nonce_ttl: Duration) -> Self {
        Self::with_authenticator(config, DigestAuthenticator::new(realm, nonce_ttl))
    }

    pub fn with_authenticator(config: RegistrarConfig, auth: DigestAuthenticator) -> Self {
        Registrar {
            config,
            auth,
            bindings: HashMap::new(),
            events: Vec::new(),
        }
    }

    /// Authenticates a request by digest (RFC 3261 §22): the user name, or the challenge to
    /// answer with. A REGISTER is challenged with 401 and `WWW-Authenticate`; other requests
    /// (an INVITE to a feature code) with 407 and `Proxy-Authenticate`, as phones expect.
    pub fn authenticate(
        &mut self,
        request: &Request,
        wall_ms: u64,
        credentials: &dyn Credentials,
        tag: &Tag,
    ) -> Result<String, Box<Response>> {
        let register = request.method == crate::sip::types::Method::Register;
        let (asked, offered) = if register {
            (HeaderName::Authorization, HeaderName::WwwAuthenticate)
        } else {
            (
                HeaderName::ProxyAuthorization,
                HeaderName::ProxyAuthenticate,
            )
        };
        let creds = request
            .headers
            .get_all(&asked)
            .filter_map(DigestCredentials::parse)
            .find(|c| c.realm == self.auth.realm());
        let method = request.method.to_string();
        let failure = match &creds {
            None => AuthFailure::Missing,
            Some(c) => {
                let password = credentials.password(&c.username);
                match self.auth.verify(wall_ms, &method, c, password.as_deref()) {
                    Ok(()) => return Ok(c.username.clone()),
                    Err(f) => f,
                }
            }
        };
        tracing::info!(?failure, %method, "request challenged");
        let mut r = if register {
            request.response(401, "Unauthorized", Some(tag.as_str()))
        } else {
            request.response(407, "Proxy Authentication Required", Some(tag.as_str()))
        };
        let browser = request.top_via().is_some_and(|v| {
            v.transport.eq_ignore_ascii_case("WS") || v.transport.eq_ignore_ascii_case("WSS")
        });
        for ch in self
            .auth
            .challenges_for(wall_ms, failure == AuthFailure::Stale, browser)
        {
            r.headers.push(offered.clone(), ch);
        }
        Err(Box::new(r))
    }

    /// Processes a REGISTER and returns the final response (§10.3 steps 1–8).
    pub fn handle_register(&mut self, request: &Request, ctx: &RegisterContext<'_>) -> Response {
        let tag = Tag::generate();
        let reply = |code, reason| request.response(code, reason, Some(tag.as_str()));
        // §10.3 step 3 / §22: authenticate before revealing anything about the AOR.
        let user = match self.authenticate(request, ctx.wall_ms, ctx.credentials, &tag) {
            Ok(user) => user,
            Err(challenge) => return *challenge,
        };
        // §10.3 step 5: the address-of-record is the To URI's user (the agent's extension).
        let Some(agent) = request
            .to_header()
            .and_then(|to| to.uri.as_sip().and_then(|u| u.user_unescaped()))
        else {
            return reply(404, "Not Found");
        };
        // §10.3 step 4: the authenticated user may only register its own AOR.
        if user != agent {
            return reply(403, "Forbidden");
        }
        if ctx.credentials.password(&agent).is_none() {
            return reply(404, "Not Found");
        }

        let Some(call_id) = request.call_id() else {
            return reply(400, "Missing Call-ID");
        };
        let cseq = request.cseq().map_or(0, |c| c.seq);
        let contacts = request.contacts();
        let header_expires = request.expires();

        if contacts.iter().any(Option::is_none) {
            // §10.3 step 6: "*" only alone and with Expires: 0.
            if contacts.len() != 1 || header_expires != Some(0) {
                return reply(400, "Invalid wildcard Contact");
            }
            let removed = self.bindings.remove(&agent).unwrap_or_default();
            for b in removed {
                self.events.push(RegistrationEvent::Removed {
                    agent: agent.clone(),
                    contact: b.contact,
                    why: RemovedWhy::Unregistered,
                });
            }
            return self.ok(request, &agent, ctx.now, reply(200, "OK"));
        }

        // Validate every contact before changing anything (all or nothing).
        let mut changes = Vec::with_capacity(contacts.len());
        for contact in contacts.into_iter().flatten() {
            let expires = contact
                .params
                .value("expires")
                .map(|v| {
                    super::grammar::parse_bounded(v, u64::MAX / 2)
                        .map_or(u32::MAX, |n| n.min(u32::MAX as u64) as u32)
                })
                .or(header_expires)
                .unwrap_or(self.config.default_expires);
            if expires != 0 && expires < self.config.min_expires {
                let mut r = reply(423, "Interval Too Brief");
                r.headers
                    .push(HeaderName::MinExpires, self.config.min_expires.to_string());
                return r;
            }
            changes.push((contact, expires.min(self.config.max_expires)));
        }

        let list = self.bindings.entry(agent.clone()).or_default();
        for (contact, _) in &changes {
            // §10.3 step 7: same Call-ID with a CSeq not higher is out of order.
            if let Some(b) = list.iter().find(|b| same_contact(&b.contact, &contact.uri))
                && b.call_id == call_id
                && cseq <= b.cseq
            {
                return reply(500, "Out of order REGISTER");
            }
        }
        let new_count = changes
            .iter()
            .filter(|(c, e)| *e > 0 && !list.iter().any(|b| same_contact(&b.contact, &c.uri)))
            .count();
        if list.len() + new_count > self.config.max_contacts_per_agent {
            return reply(403, "Too many contacts");
        }
        for (contact, expires) in changes {
            let existing = list
                .iter()
                .position(|b| same_contact(&b.contact, &contact.uri));
            if expires == 0 {
                if let Some(i) = existing {
                    let b = list.remove(i);
                    self.events.push(RegistrationEvent::Removed {
                        agent: agent.clone(),
                        contact: b.contact,
                        why: RemovedWhy::Unregistered,
                    });
                }
                continue;
            }
            let binding = Binding {
                contact: contact.uri,
                expires_at: ctx.now + Duration::from_secs(expires as u64),
                call_id: call_id.clone(),
                cseq,
                transport: ctx.transport,
                source: ctx.source,
            };
            match existing {
                Some(i) => list[i] = binding,
                None => {
                    self.events.push(RegistrationEvent::Added {
                        agent: agent.clone(),
                        binding: binding.clone(),
                    });
                    list.push(binding);
                }
            }
        }
        if list.is_empty() {
            self.bindings.remove(&agent);
        }
        self.ok(request, &agent, ctx.now, reply(200, "OK"))
    }

    /// §10.3 step 8: the 200 lists every current binding with its remaining time.
    fn ok(&self, _request: &Request, agent: &str, now: Instant, mut r: Response) -> Response {
        for b in self.bindings.get(agent).into_iter().flatten() {
            let left = b.expires_at.saturating_duration_since(now).as_secs();
            r.headers.push(
                HeaderName::Contact,
                format!("{};expires={left}", NameAddr::new(b.contact.clone())),
            );
        }
        r
    }

    /// Live bindings of an agent.
    pub fn lookup(&self, agent: &str, now: Instant) -> Vec<&Binding> {
        self.bindings
            .get(agent)
            .into_iter()
            .flatten()
            .filter(|b| b.expires_at > now)
            .collect()
    }

    pub fn is_registered(&self, agent: &str, now: Instant) -> bool {
        !self.lookup(agent, now).is_empty()
    }

    /// Removes lapsed bindings; their removal is reported through [`Self::poll_event`].
    pub fn expire(&mut self, now: Instant) {
        let events = &mut self.events;
        self.bindings.retain(|agent, list| {
            list.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    events.push(RegistrationEvent::Removed {
                        agent: agent.clone(),
                        contact: b.contact.clone(),
                        why: RemovedWhy::Expired,
                    });
                }
                live
            });
            !list.is_empty()
        });
    }

    /// Drops the bindings registered over a connection that closed (TLS, WebSocket): they
    /// can only be reached over it.
    pub fn connection_closed(&mut self, transport: Transport, source: SocketAddr) {
        let events = &mut self.events;
        self.bindings.retain(|agent, list| {
            list.retain(|b| {
                let gone = b.transport == transport && b.source == source;
                if gone {
                    events.push(RegistrationEvent::Removed {
                        agent: agent.clone(),
                        contact: b.contact.clone(),
                        why: RemovedWhy::ConnectionClosed,
                    });
                }
                !gone
            });
            !list.is_empty()
        });
    }

    /// The next instant at which a binding lapses.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }

    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    /// Forgets replay state of dead nonces (call now and then).
    pub fn purge_nonces(&mut self, wall_ms: u64) {
        self.auth.purge(wall_ms);
    }

    pub fn binding_count(&self) -> usize {
        self.bindings.values().map(Vec::len).sum()
    }
}

/// §10.3 step 7 compares contacts by URI equality; our stored URIs are normalised by parsing,
/// so structural equality ignoring parameter order is close enough for bindings.
fn same_contact(a: &Uri, b: &Uri) -> bool {
    match (a, b) {
        (Uri::Sip(x), Uri::Sip(y)) => {
            x.secure == y.secure
                && x.user == y.user
                && x.host.eq_ignore_ascii_case(&y.host)
                && x.port == y.port
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::{Algorithm, challenge_param, client_authorization};
    use crate::sip::message::SipMessage;

    struct Agents;
    impl Credentials for Agents {
        fn password(&self, user: &str) -> Option<String> {
            (user == "1001").then(|| "pw1001".to_string())
        }
    }

    fn register(extra: &str, cseq: u32) -> Request {
        let m = format!(
            "REGISTER sip:cti.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK{cseq}\r\nFrom: <sip:1001@cti.local>;tag=a\r\nTo: <sip:1001@cti.local>\r\nCall-ID: reg-1\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:1001@127.0.0.1:5099>\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        match SipMessage::parse(m.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn ctx(now: Instant, wall_ms: u64) -> RegisterContext<'static> {
        RegisterContext {
            now,
            wall_ms,
            transport: Transport::Udp,
            source: "127.0.0.1:5099".parse().unwrap(),
            credentials: &Agents,
        }
    }

    fn authed(r: &Registrar, challenge: &Response, extra: &str, cseq: u32, pw: &str) -> Request {
        let www = challenge.headers.get(&HeaderName::WwwAuthenticate).unwrap();
        let nonce = challenge_param(www, "nonce").unwrap();
        let auth = client_authorization(
            &nonce,
            r.auth.realm(),
            Algorithm::Sha256,
            "1001",
            pw,
            "REGISTER",
            "sip:cti.local",
            cseq,
        );
        register(&format!("{extra}Authorization: {auth}\r\n"), cseq)
    }

    #[test]
    fn challenge_then_register_then_expire() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(
            RegistrarConfig::default(),
            "cti.local",
            Duration::from_secs(300),
        );
        let c = reg.handle_register(&register("Expires: 120\r\n", 1), &ctx(t0, 1000));
        assert_eq!(c.code, 401);
        assert_eq!(c.headers.count(&HeaderName::WwwAuthenticate), 2);
        assert!(
            c.headers
                .get(&HeaderName::WwwAuthenticate)
                .unwrap()
                .contains("MD5")
        );

        let bad = authed(&reg, &c, "Expires: 120\r\n", 2, "nope");
        assert_eq!(reg.handle_register(&bad, &ctx(t0, 1000)).code, 401);

        let good = authed(&reg, &c, "Expires: 120\r\n", 3, "pw1001");
        let ok = reg.handle_register(&good, &ctx(t0, 1000));
        assert_eq!(ok.code, 200);
        assert!(
            ok.headers
                .get(&HeaderName::Contact)
                .unwrap()
                .ends_with("expires=120")
        );
        assert!(reg.is_registered("1001", t0));
        assert!(matches!(
            reg.poll_event(),
            Some(RegistrationEvent::Added { .. })
        ));

        reg.expire(t0 + Duration::from_secs(121));
        assert!(!reg.is_registered("1001", t0 + Duration::from_secs(121)));
        assert!(matches!(
            reg.poll_event(),
            Some(RegistrationEvent::Removed {
                why: RemovedWhy::Expired,
                ..
            })
        ));
    }

    #[test]
    fn interval_too_brief_and_unregister() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(
            RegistrarConfig::default(),
            "cti.local",
            Duration::from_secs(300),
        );
        let c = reg.handle_register(&register("", 1), &ctx(t0, 1000));
        let brief = authed(&reg, &c, "Expires: 5\r\n", 2, "pw1001");
        let r = reg.handle_register(&brief, &ctx(t0, 1000));
        assert_eq!(r.code, 423);
        assert_eq!(r.headers.get(&HeaderName::MinExpires), Some("60"));

        let ok = authed(&reg, &c, "Expires: 7200\r\n", 3, "pw1001");
        let r = reg.handle_register(&ok, &ctx(t0, 1000));
        assert_eq!(r.code, 200);
        // Clamped to max_expires.
        assert!(
            r.headers
                .get(&HeaderName::Contact)
                .unwrap()
                .ends_with("expires=3600")
        );

        let stale_order = authed(&reg, &c, "Expires: 600\r\n", 3, "pw1001");
        assert_eq!(
            reg.handle_register(&stale_order, &ctx(t0, 1000)).code,
            401,
            "replayed nc"
        );

        let unreg = authed(&reg, &c, "Expires: 0\r\n", 4, "pw1001");
        assert_eq!(reg.handle_register(&unreg, &ctx(t0, 1000)).code, 200);
        assert!(!reg.is_registered("1001", t0));
    }

    #[test]
    fn stale_nonce_is_flagged() {
        let t0 = Instant::now();
        let mut reg = Registrar::new(
            RegistrarConfig::default(),
            "cti.local",
            Duration::from_secs(30),
        );
        let c = reg.handle_register(&register("", 1), &ctx(t0, 1000));
        let late = authed(&reg, &c, "", 2, "pw1001");
        let r = reg.handle_register(&late, &ctx(t0, 1000 + 31_000));
        assert_eq!(r.code, 401);
        assert!(
            r.headers
                .get(&HeaderName::WwwAuthenticate)
                .unwrap()
                .contains("stale=true")
        );
    }
}
