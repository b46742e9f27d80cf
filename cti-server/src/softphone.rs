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
//!
//! A supervisor's console is a phone too, and monitors from it: `{"op":"monitor","call":N,
//! "mode":"listen"}` puts the console's leg into the agent's call as a watcher (exactly as a
//! supervisor's SIP call does, [`crate::call::monitor`]), `monitor_mode` switches listen /
//! whisper / barge in place, `monitor_stop` leaves. The session has a key of its own in the
//! call-key space ([`monitor_key`]); what the monitored call tells that key (started, over)
//! comes back here through the SIP task ([`Softphones::linked`]) and goes to the console and
//! the monitor-session audit log.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use media::engine::LegId;
use serde_json::{Value, json};

use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::call::actor::CallEvent;
use crate::call::browser::{SoftphoneEvent, SoftphoneEventKind, SoftphoneInput};
use crate::call::host::MonitorSession;
use crate::call::monitor::MonitorMode;
use crate::call::{CallKey, Linked, SipInput, Target};
use crate::store::StoreEvent;

/// Browser legs are numbered from here, far above the legs calls make for themselves
/// (two per call key), so engine events of a browser leg never reach a call by mistake.
const BROWSER_LEGS: u64 = 1 << 60;

/// Browser monitor sessions are keyed from here in the call-key space (real call keys are
/// wall-clock milliseconds times 1,000, far below).
const MONITOR_KEYS: u64 = 1 << 61;

/// The key of the monitor session of console session `session`.
pub fn monitor_key(session: u64) -> CallKey {
    CallKey(MONITOR_KEYS + session)
}

/// True for a browser console's media leg (not one a call made).
pub fn is_browser_leg(leg: LegId) -> bool {
    leg.0 >= BROWSER_LEGS
}

/// True for a browser monitor session's key (not a call).
pub fn is_monitor_key(key: CallKey) -> bool {
    key.0 >= MONITOR_KEYS
}

/// A supervisor's console monitoring an agent's call.
#[derive(Debug, Clone)]
struct Watch {
    supervisor: String,
    agent: String,
    call: CallKey,
    started_at: SystemTime,
    modes: Vec<(SystemTime, MonitorMode)>,
    connected: bool,
}

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
    /// Monitor sessions by key.
    watches: HashMap<CallKey, Watch>,
}

/// The consoles' phones, by agent extension. Shared by the router (who is reachable in the
/// browser), the call actors (whose calls ring where) and the WebSocket handlers.
#[derive(Clone, Default)]
pub struct Softphones {
    inner: Arc<Mutex<Inner>>,
    /// How long a call waits for a console that went away.
    pub grace: Duration,
    /// The consoles' sockets (monitor events).
    hub: crate::cti::CtiHub,
    /// The monitor-session audit log.
    store: Option<mpsc::Sender<StoreEvent>>,
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
            hub: crate::cti::CtiHub::default(),
            store: None,
        }
    }

    /// Monitor events go to `hub`'s sockets, monitor sessions to the store writer.
    pub fn with_outputs(
        mut self,
        hub: crate::cti::CtiHub,
        store: Option<mpsc::Sender<StoreEvent>>,
    ) -> Softphones {
        self.hub = hub;
        self.store = store;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where to ring `extension` in the browser, if their console is online (and not busy
    /// monitoring somebody's call).
    pub fn target(&self, extension: &str) -> Option<Target> {
        let inner = self.lock();
        let p = inner
            .phones
            .get(extension)
            .filter(|p| p.online && !inner.watches.contains_key(&monitor_key(p.session)))?;
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

impl Softphones {
    /// What a monitored call told a browser monitor session (through the SIP task).
    pub fn linked(&self, key: CallKey, msg: Linked) {
        match msg {
            Linked::MonitorStarted => {
                let watch = {
                    let mut inner = self.lock();
                    let Some(w) = inner.watches.get_mut(&key) else {
                        return;
                    };
                    w.connected = true;
                    w.clone()
                };
                self.publish_monitor(&watch, "started", None);
            }
            Linked::MonitorOver { reason, .. } => self.finish(key, reason),
            _ => {}
        }
    }

    /// A monitor session is over: the console hears why, the audit log gets the session.
    fn finish(&self, key: CallKey, outcome: &str) {
        let Some(w) = self.lock().watches.remove(&key) else {
            return;
        };
        tracing::info!(supervisor = %w.supervisor, agent = %w.agent, outcome, "browser monitor over");
        self.publish_monitor(&w, "over", Some(outcome));
        let session = MonitorSession {
            call: key,
            monitored: w.call,
            supervisor: w.supervisor.clone(),
            agent: w.agent.clone(),
            started_at: w.started_at,
            ended_at: SystemTime::now(),
            modes: w.modes.clone(),
            connected: w.connected,
            outcome: outcome.to_string(),
        };
        if let Some(store) = &self.store
            && store
                .try_send(StoreEvent::Monitor(Box::new(session)))
                .is_err()
        {
            tracing::warn!("store writer lagging: monitor session not logged");
        }
    }

    fn publish_monitor(&self, w: &Watch, state: &str, reason: Option<&str>) {
        let mode = w.modes.last().map(|(_, m)| m.as_str());
        self.hub.publish(
            &w.supervisor,
            json!({
                "type": "monitor",
                "state": state,
                "call": w.call.0,
                "agent": w.agent,
                "mode": mode,
                "reason": reason,
            }),
        );
    }
}

/// A call's event for a console: the registry learns which calls the phone has, and the
/// console gets it as `{"type":"call", ...}`.
pub fn deliver(phones: &Softphones, hub: &crate::cti::CtiHub, call: CallKey, ev: SoftphoneEvent) {
    let (state, extra) = match &ev.kind {
        SoftphoneEventKind::Ringing { caller, dialed } => {
            ("ringing", json!({ "caller": caller, "dialed": dialed }))
        }
        SoftphoneEventKind::Dialing { number, ringing } => (
            "dialing",
            json!({ "caller": number, "ringing": ringing, "direction": "outbound" }),
        ),
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
            | SoftphoneEventKind::Dialing { .. }
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
    /// Who may monitor whom.
    pub access: Arc<crate::access::Access>,
    /// Placing calls (click-to-dial); `None` where no SIP task runs.
    pub dialing: Option<Arc<crate::dial::Dialing>>,
}

/// The `source` of calls a campaign places: its leads need not be the agent's own.
pub const CAMPAIGN: &str = "campaign";

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
        match op.as_str() {
            "dial" => {
                let (number, lead) = (v["number"].as_str(), v["lead"].as_i64());
                if number.is_none() && lead.is_none() {
                    return Some(error(&op, "no number or lead"));
                }
                return match self.place(user, number, lead, "console").await {
                    // The call's own events follow (`dialing`, `connected`, ...).
                    Ok(key) => Some(json!({ "type": "placed", "call": key.0 })),
                    Err(refusal) => Some(error(&op, &refusal.message())),
                };
            }
            "monitor" => return self.monitor(user, mine, &v).await,
            "monitor_mode" => return self.monitor_mode(user, mine, &v).await,
            "monitor_stop" => return self.monitor_stop(mine, "the supervisor stopped").await,
            _ => {}
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
        if input == SoftphoneInput::Answer {
            // One line talks at a time: the others go on hold (music for their customers).
            let others: Vec<u64> = self
                .phones
                .phone(user)
                .map(|p| p.calls.into_iter().filter(|c| *c != call).collect())
                .unwrap_or_default();
            self.tell(user, &others, SoftphoneInput::Hold(true)).await;
        }
        let sent = inbox
            .send(CallEvent::Softphone {
                agent: user.to_string(),
                input,
            })
            .await;
        sent.err()
            .map(|_| error(&op, &format!("call {call} just ended")))
    }

    /// Places a call from `user`'s console phone to `number` (else the lead's primary
    /// phone), from `lead` if given ([`crate::dial`]); the line talking now goes on hold.
    /// A lead must be one the user may work, unless it comes from a campaign (`source`
    /// `campaign`): the campaign's list is given to its agents.
    pub async fn place(
        &self,
        user: &str,
        number: Option<&str>,
        lead: Option<i64>,
        source: &str,
    ) -> Result<CallKey, crate::dial::DialRefusal> {
        let Some(dialing) = &self.dialing else {
            return Err(crate::dial::DialRefusal::Unavailable(
                "click-to-dial is not available on this server".into(),
            ));
        };
        let access = self.access.clone();
        let campaign = source == CAMPAIGN;
        let may_work =
            |owner: Option<&str>| campaign || owner.is_none_or(|o| access.oversees(user, o));
        let request = crate::dial::DialRequest {
            user,
            number,
            lead,
            source,
        };
        let key = dialing
            .dial(request, self.phones.target(user), may_work)
            .await?;
        let others: Vec<u64> = self
            .phones
            .phone(user)
            .map(|p| p.calls.into_iter().filter(|c| *c != key.0).collect())
            .unwrap_or_default();
        self.tell(user, &others, SoftphoneInput::Hold(true)).await;
        Ok(key)
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
            let calls: Vec<u64> = old.calls.iter().copied().collect();
            self.tell(user, &calls, SoftphoneInput::Reattach { session, leg })
                .await;
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

    /// `{"op":"monitor","call":N,"mode":"listen"}`: the console joins the agent's call.
    async fn monitor(&self, user: &str, mine: &mut SocketPhone, v: &Value) -> Option<Value> {
        let op = "monitor";
        let mode = match v["mode"].as_str().map(MonitorMode::parse) {
            None => MonitorMode::Listen,
            Some(Some(m)) => m,
            Some(None) => return Some(error(op, "mode: listen, whisper or barge")),
        };
        let Some(call) = v["call"].as_u64() else {
            return Some(error(op, "no call"));
        };
        let phone = self.phones.phone(user).filter(|p| p.online);
        let (Some(session), Some(phone)) = (mine.session, phone) else {
            return Some(error(op, "no audio: connect the console's phone first"));
        };
        if phone.session != session {
            return Some(error(op, "the phone is in another window"));
        }
        if !phone.calls.is_empty() {
            return Some(error(op, "finish your own call first"));
        }
        let live = self.live.list().into_iter().find(|c| c.id == call);
        let is_agent = |x: &str| self.access.role(x).is_some();
        // The agent the call was put through to, or the one who placed it.
        let staff = live
            .as_ref()
            .filter(|c| c.connected)
            .and_then(|c| c.staff(is_agent))
            .map(|(a, side)| (a.to_string(), side));
        let Some((agent, agent_side)) = staff else {
            return Some(error(op, &format!("no connected call {call}")));
        };
        if let Err(denied) = self.access.may_monitor(user, &agent) {
            tracing::warn!(
                supervisor = user,
                agent,
                why = denied.as_str(),
                "monitor refused"
            );
            self.audit(user, &agent, denied.as_str());
            return Some(error(op, &format!("you may not monitor {agent}")));
        }
        // One monitor at a time: a new one ends the one before.
        self.monitor_stop(mine, "the supervisor moved to another call")
            .await;
        let key = monitor_key(session);
        let now = SystemTime::now();
        self.phones.lock().watches.insert(
            key,
            Watch {
                supervisor: user.to_string(),
                agent: agent.clone(),
                call: CallKey(call),
                started_at: now,
                modes: vec![(now, mode)],
                connected: false,
            },
        );
        let request = Linked::MonitorRequest {
            monitor: key,
            leg: phone.leg,
            agent_side,
            mode,
        };
        if !self.tell_call(CallKey(call), request).await {
            self.phones.finish(key, "the monitored call ended");
        }
        None
    }

    /// `{"op":"monitor_mode","mode":"whisper"}`: switches the console's monitor in place.
    async fn monitor_mode(&self, user: &str, mine: &SocketPhone, v: &Value) -> Option<Value> {
        let Some(mode) = v["mode"].as_str().and_then(MonitorMode::parse) else {
            return Some(error("monitor_mode", "mode: listen, whisper or barge"));
        };
        let key = mine.session.map(monitor_key);
        let call = key.and_then(|k| {
            let mut inner = self.phones.lock();
            let w = inner.watches.get_mut(&k)?;
            w.modes.push((SystemTime::now(), mode));
            Some(w.call)
        });
        let (Some(key), Some(call)) = (key, call) else {
            return Some(error("monitor_mode", "not monitoring"));
        };
        tracing::info!(
            supervisor = user,
            mode = mode.as_str(),
            "browser monitor mode"
        );
        self.tell_call(call, Linked::MonitorMode { monitor: key, mode })
            .await;
        let w = self.phones.lock().watches.get(&key).cloned();
        if let Some(w) = w {
            self.phones.publish_monitor(&w, "mode", None);
        }
        None
    }

    /// Ends the console's monitor session, if any.
    async fn monitor_stop(&self, mine: &SocketPhone, why: &str) -> Option<Value> {
        let key = monitor_key(mine.session?);
        let call = self.phones.lock().watches.get(&key).map(|w| w.call)?;
        self.tell_call(call, Linked::MonitorEnded { monitor: key })
            .await;
        self.phones.finish(key, why);
        None
    }

    /// Sends `msg` to call `call` as the SIP task would; false when the call is gone.
    async fn tell_call(&self, call: CallKey, msg: Linked) -> bool {
        match self.live.inbox(call) {
            Some(inbox) => inbox
                .send(CallEvent::Sip(SipInput::Linked(msg)))
                .await
                .is_ok(),
            None => false,
        }
    }

    fn audit(&self, user: &str, agent: &str, why: &str) {
        if let Some(store) = &self.phones.store {
            let _ = store.try_send(StoreEvent::Audit(Box::new(crate::store::AuditNote {
                actor: user.to_string(),
                action: "monitor_refused",
                target: Some(agent.to_string()),
                detail: Some(why.to_string()),
                source: Some("console".into()),
            })));
        }
    }

    /// The socket closed: its calls wait for the console to come back, for the grace period;
    /// a monitor session ends at once.
    pub fn closed(&self, user: &str, mine: SocketPhone) {
        let Some(session) = mine.session else {
            return;
        };
        let console = self.clone();
        tokio::spawn(async move {
            console
                .monitor_stop(&mine, "the supervisor's console closed")
                .await;
        });
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

    #[tokio::test]
    async fn a_monitoring_console_is_not_rung_and_its_session_is_audited_when_over() {
        let (tx, mut rx) = mpsc::channel(8);
        let hub = crate::cti::CtiHub::default();
        let mut events = hub.subscribe("9001");
        let phones = Softphones::new(Duration::from_secs(30)).with_outputs(hub, Some(tx));
        let (session, _, _) = phones.connect("9001");
        assert!(phones.target("9001").is_some());
        let key = monitor_key(session);
        assert!(is_monitor_key(key) && !is_monitor_key(CallKey(1_763_000_000_000_000)));
        let t0 = SystemTime::now();
        phones.lock().watches.insert(
            key,
            Watch {
                supervisor: "9001".into(),
                agent: "1001".into(),
                call: CallKey(42),
                started_at: t0,
                modes: vec![(t0, MonitorMode::Listen)],
                connected: false,
            },
        );
        // Busy monitoring: calls do not ring this console.
        assert!(phones.target("9001").is_none());
        phones.linked(key, Linked::MonitorStarted);
        let ev = events.recv().await.unwrap();
        assert_eq!(
            (ev["state"].as_str(), ev["mode"].as_str()),
            (Some("started"), Some("listen"))
        );
        phones.linked(
            key,
            Linked::MonitorOver {
                code: 200,
                reason: "the monitored call ended",
            },
        );
        let ev = events.recv().await.unwrap();
        assert_eq!(ev["state"], "over");
        assert_eq!(ev["reason"], "the monitored call ended");
        let Some(StoreEvent::Monitor(m)) = rx.recv().await else {
            panic!("the session goes to the audit log");
        };
        assert_eq!(
            (m.supervisor.as_str(), m.agent.as_str(), m.monitored),
            ("9001", "1001", CallKey(42))
        );
        assert!(m.connected);
        assert_eq!(m.outcome, "the monitored call ended");
        // Ringable again; a second "over" changes nothing.
        assert!(phones.target("9001").is_some());
        phones.linked(
            key,
            Linked::MonitorOver {
                code: 200,
                reason: "again",
            },
        );
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn browser_legs_never_map_to_a_call() {
        let phones = Softphones::default();
        let (_, leg, _) = phones.connect("1001");
        let call = crate::call::actor::call_of_leg(leg);
        assert!(call.0 >= BROWSER_LEGS / 2);
    }
}
