//! Routing policy: which target a dialed number reaches. Mechanism (the B2BUA) apart from
//! policy (this): at this stage a number is an agent extension; IVR flows, queues and the
//! outbound trunk arrive with later work.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::sip::grammar::Uri;
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

/// The extensions we serve and the static contacts of phones that do not register.
#[derive(Debug, Clone, Default)]
pub struct Router {
    agents: HashMap<String, AgentRoute>,
}

impl Router {
    pub fn new(agents: impl IntoIterator<Item = (String, AgentRoute)>) -> Router {
        Router {
            agents: agents.into_iter().collect(),
        }
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
    ) -> Result<Target, Refusal> {
        let dialed = invite
            .uri
            .as_sip()
            .and_then(|u| u.user_unescaped())
            .ok_or((404, "Not Found"))?;
        let Some(AgentRoute { static_contact, .. }) = self.agents.get(&dialed) else {
            return Err((404, "Not Found"));
        };
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
