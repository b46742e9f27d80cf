//! Routing policy: where a dialed number goes. Mechanism (the B2BUA) apart from policy
//! (this): a number is a service the server answers itself (an IVR flow, a queue, a voicemail
//! box), else an agent extension, else an external number that goes out through the
//! configured trunk.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::sip::grammar::{SipUri, Uri};
use crate::sip::message::Request;
use crate::sip::registrar::Registrar;
use crate::sip::transaction::Peer;
use crate::sip::types::Transport;

use super::Target;

/// A refusal: status code and reason for the caller.
pub type Refusal = (u16, &'static str);

/// How to reach one agent.
#[derive(Debug, Clone)]
pub struct AgentRoute {
    /// For a phone that does not register.
    pub static_contact: Option<Uri>,
    /// Calls the agent's endpoint carries at once (multi-line: hold one, take another).
    pub lines: usize,
}

/// Digest credentials for the trunk (RFC 3261 §22.2); the password is never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct TrunkCredentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for TrunkCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// How to reach external numbers: the outbound trunk.
#[derive(Debug, Clone)]
pub struct TrunkRoute {
    /// Where requests go.
    pub peer: Peer,
    /// Host of the Request-URI, From and To.
    pub domain: String,
    /// Port in the Request-URI (left out when it is 5060).
    pub port: u16,
    pub credentials: Option<TrunkCredentials>,
    /// The caller id user presented instead of the caller's number.
    pub from_user: Option<String>,
    /// `+`? followed by at least this many digits is an external number.
    pub min_digits: usize,
}

impl TrunkRoute {
    /// `+`? followed by at least `min_digits` digits (and nothing else).
    pub fn is_external(&self, dialed: &str) -> bool {
        let digits = dialed.strip_prefix('+').unwrap_or(dialed);
        digits.len() >= self.min_digits && digits.bytes().all(|b| b.is_ascii_digit())
    }

    fn target(&self, number: String) -> Target {
        let port = (self.port != 5060).then_some(self.port);
        Target::Trunk {
            uri: Uri::Sip(SipUri::new(Some(&number), &self.domain, port)),
            number,
            peer: self.peer,
            credentials: self.credentials.clone(),
            from_user: self.from_user.clone(),
        }
    }
}

/// A service the server answers itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// An IVR flow by name.
    Flow(String),
    /// A queue by name (callers wait with hold music).
    Queue(String),
    /// A voicemail box by name.
    Voicemail(String),
    /// A supervisor listening to (whispering to, barging into) an agent's call.
    Monitor(MonitorTarget),
    /// An agent dialed directly whose console is a browser: the server answers the caller
    /// and rings the console (voicemail if nobody answers), as a flow's "agent" destination.
    Agent(String),
}

/// Who monitors whom, and which call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorTarget {
    /// The monitored agent's extension.
    pub agent: String,
    /// The supervisor, as the SIP core authenticated them.
    pub supervisor: String,
    /// The agent's call and the agent's side in it, found when the monitor call starts.
    pub call: Option<(super::CallKey, super::Side)>,
}

impl std::fmt::Display for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Service::Flow(n) => write!(f, "flow:{n}"),
            Service::Queue(n) => write!(f, "queue:{n}"),
            Service::Voicemail(n) => write!(f, "voicemail:{n}"),
            Service::Monitor(m) => write!(f, "monitor:{}", m.agent),
            Service::Agent(a) => write!(f, "agent:{a}"),
        }
    }
}

/// Where an INVITE goes.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // made once per call and moved once: boxing buys nothing
pub enum Route {
    /// Put through to an agent or the trunk: the B2BUA relays progress and answer.
    Direct(Target),
    /// Answered by the server and handled by a service.
    Hosted(Service),
}

/// The numbers of our services, the extensions we serve, the static contacts of phones that
/// do not register, and the trunk for everything else that looks like a phone number.
#[derive(Debug, Clone, Default)]
pub struct Router {
    services: HashMap<String, Service>,
    agents: HashMap<String, AgentRoute>,
    trunk: Option<TrunkRoute>,
    /// Dialed `<prefix><extension>`: a supervisor monitors that agent.
    monitor_prefix: Option<String>,
    access: crate::access::Access,
    /// Agents' browser consoles ([`crate::softphone`]).
    softphones: Option<crate::softphone::Softphones>,
}

impl Router {
    pub fn new(agents: impl IntoIterator<Item = (String, AgentRoute)>) -> Router {
        Router {
            services: HashMap::new(),
            agents: agents.into_iter().collect(),
            trunk: None,
            monitor_prefix: None,
            access: crate::access::Access::default(),
            softphones: None,
        }
    }

    /// Supervisors dial `prefix` and an agent's extension to monitor them (an empty prefix
    /// turns it off); `access` says who may.
    pub fn with_supervision(mut self, prefix: &str, access: crate::access::Access) -> Router {
        self.monitor_prefix = (!prefix.is_empty()).then(|| prefix.to_string());
        self.access = access;
        self
    }

    /// Who may do what.
    pub fn access(&self) -> &crate::access::Access {
        &self.access
    }

    /// Numbers the server answers itself (they win over extensions of the same number).
    pub fn with_services(
        mut self,
        services: impl IntoIterator<Item = (String, Service)>,
    ) -> Router {
        self.services = services.into_iter().collect();
        self
    }

    /// True when `extension` is one of our agents.
    pub fn is_agent(&self, extension: &str) -> bool {
        self.agents.contains_key(extension)
    }

    /// Where a number dialed by a service (IVR route, transfer, overflow) goes: an agent
    /// extension or an external number through the trunk.
    pub fn target(
        &self,
        number: &str,
        registrar: &Registrar,
        now: Instant,
    ) -> Result<Target, Refusal> {
        if self.agents.contains_key(number) {
            return self.agent_target(number, registrar, now);
        }
        match &self.trunk {
            Some(t) if t.is_external(number) => Ok(t.target(number.to_string())),
            _ => Err((404, "Not Found")),
        }
    }

    /// Rings agents in their browser console when it is open.
    pub fn with_softphones(mut self, softphones: crate::softphone::Softphones) -> Router {
        self.softphones = Some(softphones);
        self
    }

    /// Sends external numbers out through `trunk`.
    pub fn with_trunk(mut self, trunk: TrunkRoute) -> Router {
        self.trunk = Some(trunk);
        self
    }

    /// True when external numbers can be called.
    pub fn has_trunk(&self) -> bool {
        self.trunk.is_some()
    }

    /// Lines of an agent (1 for an unknown one).
    pub fn lines(&self, extension: &str) -> usize {
        self.agents.get(extension).map_or(1, |a| a.lines.max(1))
    }

    /// Routes an out-of-dialog INVITE by its Request-URI user.
    pub fn route(
        &self,
        invite: &Request,
        registrar: &Registrar,
        now: Instant,
    ) -> Result<Route, Refusal> {
        let dialed = invite
            .uri
            .as_sip()
            .and_then(|u| u.user_unescaped())
            .ok_or((404, "Not Found"))?;
        // A feature code is dialed, never transferred to: only here, not in `destination`.
        if let Some(agent) = self
            .monitor_prefix
            .as_deref()
            .and_then(|p| dialed.strip_prefix(p))
            .filter(|rest| !rest.is_empty() && !self.services.contains_key(&dialed))
        {
            if !self.agents.contains_key(agent) {
                return Err((404, "Not Found (no such agent to monitor)"));
            }
            return Ok(Route::Hosted(Service::Monitor(MonitorTarget {
                agent: agent.to_string(),
                supervisor: String::new(),
                call: None,
            })));
        }
        self.destination(&dialed, registrar, now)
    }

    /// Where a number goes (a dialed number, or a transfer's): one of our services, else an
    /// agent or the trunk.
    pub fn destination(
        &self,
        number: &str,
        registrar: &Registrar,
        now: Instant,
    ) -> Result<Route, Refusal> {
        if let Some(service) = self.services.get(number) {
            return Ok(Route::Hosted(service.clone()));
        }
        self.target(number, registrar, now).map(Route::Direct)
    }

    /// How to reach an agent now: the newest registration, else the static contact.
    pub fn agent_target(
        &self,
        extension: &str,
        registrar: &Registrar,
        now: Instant,
    ) -> Result<Target, Refusal> {
        let dialed = extension.to_string();
        let Some(AgentRoute { static_contact, .. }) = self.agents.get(&dialed) else {
            return Err((404, "Not Found"));
        };
        // A console open in the browser wins over the desk phone: the agent is at it.
        if let Some(t) = self.softphones.as_ref().and_then(|s| s.target(&dialed)) {
            return Ok(t);
        }
        // A registered phone wins over the static contact; the newest binding first.
        let mut bindings = registrar.lookup(&dialed, now);
        bindings.sort_by_key(|b| std::cmp::Reverse(b.expires_at));
        if let Some(b) = bindings.first() {
            return Ok(Target::Agent {
                extension: dialed,
                contact: b.contact.clone(),
                peer: Peer {
                    transport: b.transport,
                    addr: b.source,
                },
            });
        }
        if let Some(uri) = static_contact
            && let Some(peer) = peer_of_uri(uri)
        {
            return Ok(Target::Agent {
                extension: dialed,
                contact: uri.clone(),
                peer,
            });
        }
        Err((480, "Temporarily Unavailable"))
    }
}

/// Where to send for a SIP URI whose host is an IP literal (no DNS resolution here).
pub fn peer_of_uri(uri: &Uri) -> Option<Peer> {
    let sip = uri.as_sip()?;
    let host = sip.host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = host.parse().ok()?;
    let transport = match sip.params.value("transport") {
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    Some(Peer {
        transport,
        addr: SocketAddr::new(ip, sip.port.unwrap_or(5060)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::SipMessage;
    use crate::sip::registrar::RegistrarConfig;

    fn invite_to(user: &str) -> Request {
        let raw = format!(
            "INVITE sip:{user}@cti.local SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKr\r\nFrom: <sip:c@x>;tag=a\r\nTo: <sip:{user}@cti.local>\r\nCall-ID: r1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        match SipMessage::parse(raw.as_bytes()).expect("valid test INVITE") {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => unreachable!(),
        }
    }

    fn trunk(port: u16) -> TrunkRoute {
        TrunkRoute {
            peer: Peer {
                transport: Transport::Udp,
                addr: SocketAddr::new([192, 0, 2, 7].into(), port),
            },
            domain: "trunk.example".into(),
            port,
            credentials: Some(TrunkCredentials {
                username: "u".into(),
                password: "secret".into(),
            }),
            from_user: None,
            min_digits: 7,
        }
    }

    fn router() -> Router {
        Router::new([(
            "1001".to_string(),
            AgentRoute {
                static_contact: Uri::parse("sip:1001@192.0.2.20").ok(),
                lines: 2,
            },
        )])
    }

    #[test]
    fn external_numbers_go_to_the_trunk_and_extensions_to_agents() {
        let reg = Registrar::new(
            RegistrarConfig::default(),
            "cti.local",
            std::time::Duration::from_secs(60),
        );
        let now = Instant::now();
        let r = router().with_trunk(trunk(5060));
        match r.route(&invite_to("+15551234567"), &reg, now) {
            Ok(Route::Direct(Target::Trunk {
                number, uri, peer, ..
            })) => {
                assert_eq!(number, "+15551234567");
                assert_eq!(uri.to_string(), "sip:+15551234567@trunk.example");
                assert_eq!(peer.addr, "192.0.2.7:5060".parse().unwrap());
            }
            other => panic!("{other:?}"),
        }
        let r5070 = router().with_trunk(trunk(5070));
        let Ok(Route::Direct(Target::Trunk { uri, .. })) =
            r5070.route(&invite_to("5551234"), &reg, now)
        else {
            panic!("7 digits without + are external");
        };
        assert_eq!(uri.to_string(), "sip:5551234@trunk.example:5070");
        assert!(matches!(
            r.route(&invite_to("1001"), &reg, now),
            Ok(Route::Direct(Target::Agent { .. }))
        ));
        for not_external in ["555123", "+555123", "1002", "+1555abc4567", "++15551234567"] {
            assert_eq!(
                r.route(&invite_to(not_external), &reg, now).err(),
                Some((404, "Not Found")),
                "{not_external}"
            );
        }
        assert_eq!(
            router().route(&invite_to("+15551234567"), &reg, now).err(),
            Some((404, "Not Found")),
            "no trunk configured"
        );
        assert!(!format!("{:?}", trunk(5060)).contains("secret"));
    }

    #[test]
    fn service_numbers_are_answered_by_the_server_and_services_can_dial_out() {
        let reg = Registrar::new(
            RegistrarConfig::default(),
            "cti.local",
            std::time::Duration::from_secs(60),
        );
        let now = Instant::now();
        let r = router().with_trunk(trunk(5060)).with_services([
            ("100".to_string(), Service::Flow("main".into())),
            ("1001".to_string(), Service::Queue("sales".into())),
        ]);
        assert_eq!(
            r.route(&invite_to("100"), &reg, now),
            Ok(Route::Hosted(Service::Flow("main".into())))
        );
        assert_eq!(
            r.route(&invite_to("1001"), &reg, now),
            Ok(Route::Hosted(Service::Queue("sales".into()))),
            "a service number wins over an extension"
        );
        assert!(matches!(
            r.agent_target("1001", &reg, now),
            Ok(Target::Agent { .. })
        ));
        assert_eq!(
            r.agent_target("1002", &reg, now).err(),
            Some((404, "Not Found"))
        );
        assert!(matches!(
            r.target("+15551234567", &reg, now),
            Ok(Target::Trunk { .. })
        ));
        assert_eq!(
            Service::Voicemail("general".into()).to_string(),
            "voicemail:general"
        );
    }
}
