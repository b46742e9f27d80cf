//! CTI events: one WebSocket per logged-in user (`GET /api/events?token=...`), and the hub
//! that hands each user the events meant for them. The first is the screen pop: when a call
//! is offered to an agent (the ACD rings them, or a caller dials them), the agent gets the
//! caller's number, the queue, the IVR path and keys, and the matching leads (several: a list
//! to choose from; none: a new lead prefilled with the number) while their phone rings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::http::AppState;
use crate::login::{ApiError, err, principal};

/// Events a user's sockets have not taken yet beyond this are dropped for that socket (a
/// stuck browser must not hold the server's memory).
const QUEUE: usize = 256;

/// Who listens for what: each user's open sockets.
#[derive(Clone, Default)]
pub struct CtiHub {
    users: Arc<Mutex<HashMap<String, Vec<mpsc::Sender<Value>>>>>,
}

impl CtiHub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<mpsc::Sender<Value>>>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new socket of `user`: the events for them arrive on the receiver.
    pub fn subscribe(&self, user: &str) -> mpsc::Receiver<Value> {
        let (tx, rx) = mpsc::channel(QUEUE);
        self.lock().entry(user.to_string()).or_default().push(tx);
        rx
    }

    /// How many sockets are open (every user).
    pub fn sockets(&self) -> usize {
        self.lock()
            .values()
            .map(|v| v.iter().filter(|s| !s.is_closed()).count())
            .sum()
    }

    /// Sends `event` to every open socket of `user`; false when they have none.
    pub fn publish(&self, user: &str, event: Value) -> bool {
        let mut users = self.lock();
        let Some(sockets) = users.get_mut(user) else {
            return false;
        };
        sockets.retain(|s| !s.is_closed());
        for s in sockets.iter() {
            if s.try_send(event.clone()).is_err() {
                tracing::warn!(user, "CTI socket lagging: event dropped");
            }
        }
        let any = !sockets.is_empty();
        if !any {
            users.remove(user);
        }
        any
    }
}

/// What a call offered to an agent pops on their screen.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub call: u64,
    pub agent: String,
    pub caller: String,
    pub dialed: String,
    pub queue: Option<String>,
    /// The services the call went through (`flow:main`, `queue:sales`).
    pub path: Vec<String>,
    /// What the caller keyed in the IVR, and its lookups.
    pub variables: std::collections::BTreeMap<String, String>,
    /// A lead the IVR matched (by a keyed-in customer number), or the one an agent called.
    pub ivr_lead: Option<i64>,
    /// The agent placed the call (`caller` is then the customer they call).
    pub outbound: bool,
    /// The result codes for the call's wrap-up.
    pub dispositions: Vec<String>,
    /// The queue holds the agent in wrap-up until one is recorded.
    pub disposition_required: bool,
}

/// Finds the caller's leads and pops the offer on the agent's screens (off the call's task).
pub fn pop(hub: &CtiHub, store: Option<crate::store::Store>, country: String, offer: Offer) {
    let hub = hub.clone();
    tokio::spawn(async move {
        let mut leads: Vec<Value> = Vec::new();
        if let Some(store) = &store {
            let mut ids = Vec::new();
            if let Some(id) = offer.ivr_lead {
                ids.push(id);
            }
            match store.leads_by_caller(&offer.caller, &country).await {
                Ok(found) => ids.extend(found),
                Err(e) => tracing::warn!(error = %e, "screen pop: lead lookup failed"),
            }
            ids.dedup();
            for id in ids {
                if let Ok(Some(l)) = store.lead(id).await
                    && !leads.iter().any(|x| x["id"] == l.id)
                {
                    leads.push(json!({
                        "id": l.id,
                        "name": l.name,
                        "company": l.company,
                        "grade": l.grade,
                        "status": l.status,
                        "owner_agent": l.owner_agent,
                        "next_follow_up_ms": l.next_follow_up_ms,
                    }));
                }
            }
        }
        let new_lead = leads
            .is_empty()
            .then(|| json!({ "phones": [crate::leads::e164(&offer.caller, &country).unwrap_or(offer.caller.clone())] }));
        let event = json!({
            "type": "offer",
            "call": offer.call,
            "agent": offer.agent,
            "caller": offer.caller,
            "dialed": offer.dialed,
            "direction": if offer.outbound { "outbound" } else { "inbound" },
            "dispositions": offer.dispositions,
            "disposition_required": offer.disposition_required,
            "queue": offer.queue,
            "ivr_path": offer.path,
            "ivr_variables": offer.variables,
            "leads": leads,
            "new_lead": new_lead,
            "at_ms": crate::store::now_ms(),
        });
        let delivered = hub.publish(&offer.agent, event);
        tracing::debug!(agent = %offer.agent, call = offer.call, delivered, "screen pop");
    });
}

#[derive(Deserialize)]
pub struct EventsQuery {
    /// Browsers cannot set headers on a WebSocket: the session token may come here.
    token: Option<String>,
}

/// `GET /api/events`: upgrades to a WebSocket carrying the user's CTI events as JSON text
/// messages (first `{"type":"hello"}`).
pub async fn events(
    State(s): State<AppState>,
    Query(q): Query<EventsQuery>,
    mut headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if let Some(t) = q.token {
        let v = HeaderValue::from_str(&format!("Bearer {t}"))
            .map_err(|_| err(StatusCode::BAD_REQUEST, "a malformed token"))?;
        headers.insert(axum::http::header::AUTHORIZATION, v);
    }
    let p = principal(&s, &headers).await?;
    let rx = s.cti.subscribe(&p.name);
    let console = s.console.clone();
    Ok(ws.on_upgrade(move |socket| serve(socket, p.name, p.role, rx, console)))
}

/// One console's socket: CTI events out; softphone messages in ([`crate::softphone`]).
async fn serve(
    mut socket: WebSocket,
    user: String,
    role: crate::access::Role,
    mut rx: mpsc::Receiver<Value>,
    console: Option<crate::softphone::Console>,
) {
    let mut phone = crate::softphone::SocketPhone::default();
    serve_socket(
        &mut socket,
        &user,
        role,
        &mut rx,
        console.as_ref(),
        &mut phone,
    )
    .await;
    if let Some(c) = &console {
        c.closed(&user, phone);
    }
}

async fn serve_socket(
    socket: &mut WebSocket,
    user: &str,
    role: crate::access::Role,
    rx: &mut mpsc::Receiver<Value>,
    console: Option<&crate::softphone::Console>,
    phone: &mut crate::softphone::SocketPhone,
) {
    let hello = json!({ "type": "hello", "user": user, "role": role.as_str() });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            ev = rx.recv() => {
                let Some(ev) = ev else { return };
                if socket.send(Message::Text(ev.to_string().into())).await.is_err() {
                    return;
                }
            }
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(Message::Text(t))) => {
                    let reply = match console {
                        Some(c) => c.handle(user, phone, t.as_str()).await,
                        None => Some(json!({ "type": "error", "error": "no softphone here" })),
                    };
                    if let Some(r) = reply
                        && socket.send(Message::Text(r.to_string().into())).await.is_err()
                    {
                        return;
                    }
                }
                // Pings are answered by axum.
                Some(Ok(_)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn events_reach_every_socket_of_their_user_only() {
        let hub = CtiHub::default();
        let mut a1 = hub.subscribe("1001");
        let mut a2 = hub.subscribe("1001");
        let mut b = hub.subscribe("1002");
        assert!(hub.publish("1001", json!({"n": 1})));
        assert_eq!(a1.recv().await.unwrap()["n"], 1);
        assert_eq!(a2.recv().await.unwrap()["n"], 1);
        assert!(b.try_recv().is_err());
        drop((a1, a2));
        assert!(
            !hub.publish("1001", json!({"n": 2})),
            "closed sockets are forgotten"
        );
        assert!(!hub.publish("9999", json!({})));
    }
}
