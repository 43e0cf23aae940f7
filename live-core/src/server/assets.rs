//! The browser client, served by the runtime.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The browser client, served at `<prefix>/live-<hash>.js` (cached for a year: the name
/// changes with the content) and at `<prefix>/live.js` (cached briefly).
const LIVE_JS: &str = include_str!("../../../assets/live.js");

/// The file name of the client with its content hash (`live-<16 hex>.js`).
pub(crate) fn live_js_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(LIVE_JS.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("live-{hex}.js")
    })
}

pub(crate) async fn serve_js_hashed() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        LIVE_JS,
    )
        .into_response()
}

pub(crate) async fn serve_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        LIVE_JS,
    )
        .into_response()
}
