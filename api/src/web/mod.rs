//! The merchandisers' page, served by `assay serve` at `/`: an HTML shell, one script
//! and one stylesheet, compiled into the binary. The page talks only to the JSON API of
//! the same origin; its Content-Security-Policy forbids anything else, so it works with
//! no internet access and a browser never fetches from a third party on its behalf.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::server::state::AppState;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");
const FAVICON: &str = include_str!("assets/favicon.svg");

/// Same origin only: scripts, styles, API calls; `blob:` for the CSV download the page
/// builds itself, `data:` for nothing but inline SVG images.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(|| asset(INDEX_HTML, "text/html; charset=utf-8")))
        .route(
            "/assets/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/app.css",
            get(|| asset(APP_CSS, "text/css; charset=utf-8")),
        )
        .route(
            "/assets/favicon.svg",
            get(|| asset(FAVICON, "image/svg+xml")),
        )
        // Browsers ask for it whatever the page says.
        .route("/favicon.ico", get(|| asset(FAVICON, "image/svg+xml")))
}

async fn asset(body: &'static str, content_type: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            // The binary is the version: a restarted server may serve a new page.
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}
