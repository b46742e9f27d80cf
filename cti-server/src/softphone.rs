//! Browser softphones: the agent's console is their phone.
//!
//! A console opens its CTI WebSocket (`/api/events`) and sends a WebRTC offer over it
//! (`{"op":"webrtc","sdp":...}`); the server answers with a browser media leg
//! ([`media::webrtc`]: ICE-lite, DTLS-SRTP, Opus) that stays up while the console is open,
//! across calls. While it is up the agent is reachable there: the router rings the console
//! ([`crate::call::Target::Browser`]) rather than their desk phone, and the call's events
//! (`ringing`, `connected`, `held`, `ended`, ...) go to the same socket. The console's buttons
//! come back on it (`answer`, `decline`, `hangup`, `hold`, `resume`, `dtmf`, `transfer`).
//!
//! A console that disconnects mid-call (a reload) does not end the call: the customer hears
//! hold music, and a console of the same agent that connects within the grace period
//! (`softphone.reattach_grace_s`) takes the call over with its new leg. After the grace
//! period the call ends and the agent is no longer reachable in the browser.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media::engine::LegId;
use serde_json::{Value, json};

use crate::call::CallKey;
use crate::call::Target;
use crate::call::actor::CallEvent;
use crate::call::browser::{SoftphoneEvent, SoftphoneEventKind, SoftphoneInput};

/// Browser legs are numbered from here, far above the legs calls make for themselves
/// (two per call key), so engine events of a browser leg never reach a call by mistake.
const BROWSER_LEGS: u64 = 1 << 60;

/// One agent's console phone.
#[derive(Debug, Clone)]
pub struct Phone {
    /// Changes with every WebRTC connection (a reload makes a new one).
    pub session: u64,
    pub leg: LegId,
    /// Calls ringing on it or connected to it.
    pub calls: BTreeSet<u64>,
    /// Its socket is open (false during the grace period after a disconnect).
    pub online: bool,
}

#[derive(Default)]
struct Inner {
    phones: HashMap<String, Phone>,
    next: u64,
}

/// The consoles' phones, by agent extension. Shared by the router (who is reachable in the
/// browser), the call actors (whose calls ring where) and the WebSocket handlers.
#[derive(Clone, Default)]
pub struct Softphones {
    inner: Arc<Mutex<Inner>>,
    /// How long a call waits for a console that went away.
    pub grace: Duration,
}

impl std::fmt::Debug for Softphones {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Softphones")
            .field("phones", &self.lock().phones.len())
            .finish()
    }
}

impl Softphones {
    pub fn new(grace: Duration) -> Softphones {
        Softphones {
            inner: Arc::default(),
            grace,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where to ring `extension` in the browser, if their console is online.
    pub fn target(&self, extension: &str) -> Option<Target> {
        let inner = self.lock();
        let p = inner.phones.get(extension).filter(|p| p.online)?;
        Some(Target::Browser {
            extension: extension.to_string(),
            session: p.session,
            leg: p.leg,
        })
    }

    /// The console of `extension`, if any.
    pub fn phone(&self, extension: &str) -> Option<Phone> {
        self.lock().phones.get(extension).cloned()
    }

    /// A new WebRTC connection of `extension`'s console: its session and leg id, and the
    /// phone it replaces (whose calls move over).
    pub fn connect(&self, extension: &str) -> (u64, LegId, Option<Phone>) {
        let mut inner = self.lock();
        inner.next += 1;
        let session = inner.next;
        let leg = LegId(BROWSER_LEGS + session);
        let old = inner.phones.remove(extension);
        let calls = old.as_ref().map(|p| p.calls.clone()).unwrap_or_default();
        inner.phones.insert(
            extension.to_string(),
            Phone {
                session,
                leg,
                calls,
                online: true,
            },
        );
        (session, leg, old)
    }

    /// Forgets a connection that could not be set up (its leg was never made).
    pub fn abort(&self, extension: &str, session: u64, old: Option<Phone>) {
        let mut inner = self.lock();
        if inner
            .phones
            .get(extension)
            .is_some_and(|p| p.session == session)
        {
            match old {
                Some(p) => inner.phones.insert(extension.to_string(), p),
                None => inner.phones.remove(extension),
            };
        }
    }

    /// The console of `session` disconnected: its calls, if it is still the agent's phone.
    pub fn offline(&self, extension: &str, session: u64) -> Option<Vec<u64>> {
        let mut inner = self.lock();
        let p = inner
            .phones
            .get_mut(extension)
            .filter(|p| p.session == session)?;
        p.online = false;
        Some(p.calls.iter().copied().collect())
    }

    /// The grace period of `session` is over: the phone, if it did not come back.
    pub fn expire(&self, extension: &str, session: u64) -> Option<Phone> {
        let mut inner = self.lock();
        let p = inner.phones.get(extension)?;
        if p.session != session || p.online {
            return None;
        }
        inner.phones.remove(extension)
    }

    fn track(&self, extension: &str, call: CallKey, active: bool) {
        let mut inner = self.lock();
        if let Some(p) = inner.phones.get_mut(extension) {
            if active {
                p.calls.insert(call.0);
            } else {
                p.calls.remove(&call.0);
            }
        }
    }
}

/// A call's event for a console: the registry learns which calls the phone has, and the
/// console gets it as `{"type":"call", ...}`.
pub fn deliver(phones: &Softphones, hub: &crate::cti::CtiHub, call: CallKey, ev: SoftphoneEvent) {
    let (state, extra) = match &ev.kind {
        SoftphoneEventKind::Ringing { caller, dialed } => {
            ("ringing", json!({ "caller": caller, "dialed": dialed }))
        }
        SoftphoneEventKind::Cancelled => ("cancelled", json!({})),
        SoftphoneEventKind::Connected { caller, held } => {
            ("connected", json!({ "caller": caller, "held": held }))
        }
        SoftphoneEventKind::Held(held) => ("held", json!({ "held": held })),
        SoftphoneEventKind::Transfer { status, done } => {
            ("transfer", json!({ "status": status, "done": done }))
        }
        SoftphoneEventKind::Ended { reason } => ("ended", json!({ "reason": reason })),
    };
    let active = matches!(
        ev.kind,
        SoftphoneEventKind::Ringing { .. }
            | SoftphoneEventKind::Connected { .. }
            | SoftphoneEventKind::Held(_)
            | SoftphoneEventKind::Transfer { .. }
    );
    phones.track(&ev.agent, call, active);
    let mut event = json!({
        "type": "call",
        "call": call.0,
        "state": state,
        "session": ev.session,
        "at_ms": crate::store::now_ms(),
    });
    if let (Some(o), Some(extra)) = (event.as_object_mut(), extra.as_object()) {
        o.extend(extra.clone());
    }
    hub.publish(&ev.agent, event);
}

/// What a console's socket needs of the server to be a phone.
#[derive(Clone)]
pub struct Console {
    pub phones: Softphones,
    pub media: media::engine::MediaHandle,
    pub live: crate::call::live::LiveCalls,
    pub acd: Option<crate::acd::actor::AcdHandle>,
}

/// A socket's phone state: the session it made, if any.
#[derive(Default)]
pub struct SocketPhone {
    session: Option<u64>,
}

impl Console {
    /// Handles one message from `user`'s console; the reply, if any, goes back on the socket.
    pub async fn handle(&self, user: &str, mine: &mut SocketPhone, msg: &str) -> Option<Value> {
        let Ok(v) = serde_json::from_str::<Value>(msg) else {
            return Some(error("?", "not JSON"));
        };
        let op = v["op"].as_str().unwrap_or_default().to_string();
        if op == "webrtc" {
            let Some(sdp) = v["sdp"].as_str() else {
                return Some(error(&op, "no sdp"));
            };
            return Some(self.webrtc(user, mine, sdp.to_string()).await);
        }
        let Some(call) = v["call"].as_u64() else {
            return Some(error(&op, "no call"));
        };
        let input = match op.as_str() {
            "answer" => SoftphoneInput::Answer,
            "decline" => SoftphoneInput::Decline,
            "hangup" => SoftphoneInput::Hangup,
            "hold" => SoftphoneInput::Hold(true),
            "resume" => SoftphoneInput::Hold(false),
            "dtmf" => match v["digit"].as_str().and_then(|d| {
                let mut c = d.chars();
                let first = c.next()?.to_ascii_uppercase();
                (c.next().is_none() && matches!(first, '0'..='9' | '*' | '#' | 'A'..='D'))
                    .then_some(first)
            }) {
                Some(d) => SoftphoneInput::Digit(d),
                None => return Some(error(&op, "digit: one of 0-9, *, #, A-D")),
            },
            "transfer" => match v["number"].as_str() {
                Some(n) => SoftphoneInput::Transfer(n.trim().to_string()),
                None => return Some(error(&op, "no number")),
            },
            _ => return Some(error(&op, "unknown op")),
        };
        let mine_call = self
            .phones
            .phone(user)
            .is_some_and(|p| p.calls.contains(&call));
        let inbox = self.live.inbox(CallKey(call)).filter(|_| mine_call);
        let Some(inbox) = inbox else {
            return Some(error(&op, &format!("no call {call} on your phone")));
        };
        let sent = inbox
            .send(CallEvent::Softphone {
                agent: user.to_string(),
                input,
            })
            .await;
        sent.err()
            .map(|_| error(&op, &format!("call {call} just ended")))
    }

    async fn webrtc(&self, user: &str, mine: &mut SocketPhone, offer: String) -> Value {
        let (session, leg, old) = self.phones.connect(user);
        let answer = match self.media.create_browser_leg(leg, offer).await {
            Ok(a) => a,
            Err(e) => {
                self.phones.abort(user, session, old);
                return error("webrtc", &e.to_string());
            }
        };
        mine.session = Some(session);
        tracing::info!(agent = user, session, "browser softphone connected");
        if let Some(old) = old {
            // A reload (or a second tab): the calls move to the new leg, the old one goes.
            for call in &old.calls {
                if let Some(inbox) = self.live.inbox(CallKey(*call)) {
                    let _ = inbox
                        .send(CallEvent::Softphone {
                            agent: user.to_string(),
                            input: SoftphoneInput::Reattach { session, leg },
                        })
                        .await;
                }
            }
            let _ = self.media.end_leg(old.leg).await;
        }
        if let Some(acd) = &self.acd {
            use crate::acd::AcdEvent;
            use crate::acd::actor::AcdInput;
            acd.send(AcdInput::Event(AcdEvent::AgentReachable {
                agent: user.to_string(),
                reachable: true,
            }));
        }
        json!({ "type": "webrtc", "sdp": answer, "session": session })
    }

    /// The socket closed: its calls wait for the console to come back, for the grace period.
    pub fn closed(&self, user: &str, mine: SocketPhone) {
        let Some(session) = mine.session else {
            return;
        };
        let Some(calls) = self.phones.offline(user, session) else {
            return;
        };
        let console = self.clone();
        let user = user.to_string();
        tokio::spawn(async move {
            console.tell(&user, &calls, SoftphoneInput::Lost).await;
            tokio::time::sleep(console.phones.grace).await;
            let Some(phone) = console.phones.expire(&user, session) else {
                return; // back in time
            };
            tracing::info!(agent = %user, session, "browser softphone gone");
            let calls: Vec<u64> = phone.calls.iter().copied().collect();
            console.tell(&user, &calls, SoftphoneInput::Gone).await;
            let _ = console.media.end_leg(phone.leg).await;
            if let Some(acd) = &console.acd {
                use crate::acd::AcdEvent;
                use crate::acd::actor::AcdInput;
                acd.send(AcdInput::Event(AcdEvent::AgentReachable {
                    agent: user.clone(),
                    reachable: false,
                }));
            }
        });
    }

    async fn tell(&self, user: &str, calls: &[u64], input: SoftphoneInput) {
        for call in calls {
            if let Some(inbox) = self.live.inbox(CallKey(*call)) {
                let _ = inbox
                    .send(CallEvent::Softphone {
                        agent: user.to_string(),
                        input: input.clone(),
                    })
                    .await;
            }
        }
    }
}

fn error(op: &str, why: &str) -> Value {
    json!({ "type": "error", "op": op, "error": why })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reload_replaces_the_phone_and_keeps_its_calls() {
        let phones = Softphones::new(Duration::from_secs(30));
        assert!(phones.target("1001").is_none());
        let (s1, leg1, old) = phones.connect("1001");
        assert!(old.is_none());
        assert_eq!(
            phones.target("1001"),
            Some(Target::Browser {
                extension: "1001".into(),
                session: s1,
                leg: leg1
            })
        );
        phones.track("1001", CallKey(7), true);
        // The page goes away: no new calls ring there, the call waits.
        assert_eq!(phones.offline("1001", s1), Some(vec![7]));
        assert!(phones.target("1001").is_none());
        // Back within the grace period: a new session and leg, the same call.
        let (s2, leg2, old) = phones.connect("1001");
        assert_ne!((s1, leg1), (s2, leg2));
        assert_eq!(old.unwrap().calls.into_iter().collect::<Vec<_>>(), vec![7]);
        assert!(phones.phone("1001").unwrap().calls.contains(&7));
        // The old session's grace period ends without effect.
        assert!(phones.expire("1001", s1).is_none());
        assert!(phones.offline("1001", s1).is_none());
        phones.track("1001", CallKey(7), false);
        assert!(phones.offline("1001", s2).unwrap().is_empty());
        assert!(phones.expire("1001", s2).is_some());
        assert!(phones.phone("1001").is_none());
    }

    #[test]
    fn browser_legs_never_map_to_a_call() {
        let phones = Softphones::default();
        let (_, leg, _) = phones.connect("1001");
        let call = crate::call::actor::call_of_leg(leg);
        assert!(call.0 >= BROWSER_LEGS / 2);
    }
}
