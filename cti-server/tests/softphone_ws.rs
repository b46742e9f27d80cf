//! The softphone half of the CTI WebSocket with bad input: what a broken or hostile console
//! sends gets an error event on its socket, and the server goes on (the browser test,
//! `browser_softphone.rs`, covers the working path).

mod common;

use common::{Server, json_of};
use serde_json::{Value, json};
use std::time::Duration;

type Socket = tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

fn console(server: &Server, token: &str) -> Socket {
    let url = format!("ws://{}/api/events?token={token}", server.http);
    let (mut ws, _) = tungstenite::connect(url).expect("the events WebSocket opens");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    }
    assert_eq!(next(&mut ws)["type"], "hello");
    ws
}

fn next(ws: &mut Socket) -> Value {
    loop {
        if let tungstenite::Message::Text(t) = ws.read().expect("an event") {
            return json_of(t.as_str());
        }
    }
}

fn ask(ws: &mut Socket, msg: &str) -> Value {
    ws.send(tungstenite::Message::Text(msg.into())).unwrap();
    next(ws)
}

#[test]
fn bad_softphone_messages_get_clear_errors_and_nothing_breaks() {
    let server = Server::start(&[]);
    let alice = server.login("1001");
    let mut ws = console(&server, &alice);

    let e = ask(&mut ws, "this is not json");
    assert_eq!(
        (e["type"].as_str(), e["error"].as_str()),
        (Some("error"), Some("not JSON"))
    );
    let e = ask(&mut ws, &json!({"op": "fly"}).to_string());
    assert_eq!(e["error"], "no call", "{e}");
    let e = ask(&mut ws, &json!({"op": "fly", "call": 1}).to_string());
    assert_eq!(e["error"], "unknown op", "{e}");
    // A call that is not ringing on this console cannot be answered from it.
    let e = ask(
        &mut ws,
        &json!({"op": "answer", "call": 424242}).to_string(),
    );
    assert_eq!(e["error"], "no call 424242 on your phone", "{e}");
    let e = ask(
        &mut ws,
        &json!({"op": "dtmf", "call": 1, "digit": "55"}).to_string(),
    );
    assert!(e["error"].as_str().unwrap().starts_with("digit"), "{e}");
    // A WebRTC offer that is not SDP: refused, and the agent is not reachable in the browser.
    let e = ask(
        &mut ws,
        &json!({"op": "webrtc", "sdp": "v=0 garbage"}).to_string(),
    );
    assert_eq!(
        (e["type"].as_str(), e["op"].as_str()),
        (Some("error"), Some("webrtc")),
        "{e}"
    );
    let e = ask(&mut ws, &json!({"op": "webrtc"}).to_string());
    assert_eq!(e["error"], "no sdp", "{e}");

    // The server is fine: the socket still answers, and so does the API.
    let e = ask(&mut ws, "{}");
    assert_eq!(e["type"], "error");
    let (code, _) = server.http_get("/healthz");
    assert_eq!(code, 200);
    // An unauthenticated socket is refused before it opens.
    let url = format!("ws://{}/api/events?token=nope", server.http);
    assert!(tungstenite::connect(url).is_err());
}
