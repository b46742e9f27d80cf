//! The consoles' pages (`agent-ui/`), built into the binary so `cargo run` serves them from
//! anywhere: plain HTML, CSS and JavaScript, no build step. The pages speak only the public
//! API (`/api/...`) and the CTI WebSocket.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;

const INDEX: &str = include_str!("../../agent-ui/index.html");
const APP_JS: &str = include_str!("../../agent-ui/app.js");
const APP_CSS: &str = include_str!("../../agent-ui/app.css");

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/agent/") }))
        .route("/agent", get(|| async { Redirect::to("/agent/") }))
        .route("/agent/", get(|| page(INDEX, "text/html; charset=utf-8")))
        .route(
            "/agent/app.js",
            get(|| page(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/agent/app.css",
            get(|| page(APP_CSS, "text/css; charset=utf-8")),
        )
}

async fn page(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // A new server version's page is fetched again, never a stale cached one.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}
