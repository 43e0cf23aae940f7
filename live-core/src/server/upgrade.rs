//! The websocket endpoint, and the `Host` and `Origin` checks of pages and the websocket.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::serve::ConnSlot;
use crate::config::LiveConfig;

/// `host[:port]` of a URL, lowercase, the port only when it is not the scheme's default.
fn url_authority(u: &url::Url) -> String {
    let host = u.host_str().unwrap_or("").to_ascii_lowercase();
    match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

/// The host part of a `Host` header value (without the port).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// Whether the request's `Host` is one this app answers to (DNS rebinding sends a foreign
/// name that resolves here: it is refused).
pub(crate) fn host_allowed(config: &LiveConfig, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let host = host.to_ascii_lowercase();
    let public = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok());
    if let Some(p) = &public
        && url_authority(p) == host
    {
        return true;
    }
    if config
        .allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(&host) || h.eq_ignore_ascii_case(host_name(&host)))
    {
        return true;
    }
    if public.is_none() && config.allowed_hosts.is_empty() {
        // No configured name: only names that cannot be rebound.
        let name = host_name(&host);
        return name == "localhost" || name.parse::<std::net::IpAddr>().is_ok();
    }
    false
}

/// Whether the websocket's `Origin` may connect: a configured origin, the public URL's
/// origin, or (without a public URL) `http://` + the request's own `Host`.
pub(crate) fn origin_allowed(config: &LiveConfig, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return config.allow_missing_origin;
    };
    if config.allowed_origins.iter().any(|o| o == origin) {
        return true;
    }
    let Ok(o) = url::Url::parse(origin) else {
        return false;
    };
    if let Some(public) = config
        .public_url
        .as_deref()
        .and_then(|u| url::Url::parse(u).ok())
    {
        return o.origin() == public.origin();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    o.scheme() == "http" && !host.is_empty() && url_authority(&o) == host
}

/// The websocket endpoint: checks the `Host` and `Origin`, then upgrades by hand (rather
/// than through axum's extractor) so that the socket keeps its raw connection: an oversized
/// frame gets its close frame and the rest of the frame is drained, not reset.
pub(crate) async fn ws_upgrade<S: Clone + Send + Sync + 'static>(
    State(live): State<super::Live<S>>,
    mut req: axum::extract::Request,
) -> Response {
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
    let rt = live.rt.clone();
    let headers = req.headers();
    if !host_allowed(&rt.config, headers) {
        tracing::warn!(host = ?headers.get(header::HOST), "websocket refused: host not allowed");
        return (StatusCode::MISDIRECTED_REQUEST, "host not allowed").into_response();
    }
    if !origin_allowed(&rt.config, headers) {
        tracing::warn!(
            origin = ?headers.get(header::ORIGIN),
            host = ?headers.get(header::HOST),
            "websocket refused: foreign origin"
        );
        return (StatusCode::FORBIDDEN, "origin not allowed").into_response();
    }
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "a websocket upgrade is required",
        )
            .into_response();
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return (StatusCode::BAD_REQUEST, "websocket version 13 is required").into_response();
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return (StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key").into_response();
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let slot = req.extensions_mut().remove::<ConnSlot>();
    let Some(on_upgrade) = req.extensions_mut().remove::<hyper::upgrade::OnUpgrade>() else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            "this connection cannot be upgraded",
        )
            .into_response();
    };
    let max = rt.config.max_message_size;
    // Small buffers: an idle connection should cost little (a frame bigger than the read
    // buffer is still read whole; the write buffer grows as needed and flushes at 16 KiB).
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size((2 * max).max(4 << 20))
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    tokio::spawn(async move {
        let _slot = slot;
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    io,
                    Role::Server,
                    Some(ws_config),
                )
                .await;
                crate::socket::serve_socket(rt, live.views, ws).await;
            }
            Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
        }
    });
    let mut resp = Response::new(axum::body::Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        h
    }

    #[test]
    fn origins() {
        let mut c = LiveConfig::new(vec![0; 32]);
        assert!(origin_allowed(
            &c,
            &headers(Some("http://127.0.0.1:3000"), "127.0.0.1:3000")
        ));
        assert!(!origin_allowed(
            &c,
            &headers(Some("http://evil.example"), "127.0.0.1:3000")
        ));
        // The scheme counts, and so does the port.
        assert!(!origin_allowed(
            &c,
            &headers(Some("https://127.0.0.1:3000"), "127.0.0.1:3000")
        ));
        assert!(!origin_allowed(
            &c,
            &headers(Some("http://127.0.0.1:3001"), "127.0.0.1:3000")
        ));
        assert!(!origin_allowed(&c, &headers(None, "127.0.0.1:3000")));
        assert!(!origin_allowed(
            &c,
            &headers(Some("null"), "127.0.0.1:3000")
        ));
        c.allowed_origins.push("https://app.example".into());
        assert!(origin_allowed(
            &c,
            &headers(Some("https://app.example"), "internal:80")
        ));
        c.allow_missing_origin = true;
        assert!(origin_allowed(&c, &headers(None, "x")));
        // With a public URL, only its origin.
        let mut c = LiveConfig::new(vec![0; 32]);
        c.public_url = Some("https://app.example.com".into());
        assert!(origin_allowed(
            &c,
            &headers(Some("https://app.example.com"), "app.example.com")
        ));
        assert!(!origin_allowed(
            &c,
            &headers(Some("http://app.example.com"), "app.example.com")
        ));
        assert!(!origin_allowed(
            &c,
            &headers(Some("https://rebind.evil.example"), "rebind.evil.example")
        ));
    }

    #[test]
    fn hosts() {
        let c = LiveConfig::new(vec![0; 32]);
        for ok in [
            "127.0.0.1:3000",
            "localhost:3000",
            "[::1]:8080",
            "127.0.0.1",
            "LOCALHOST",
        ] {
            assert!(host_allowed(&c, &headers(None, ok)), "{ok}");
        }
        // A DNS-rebinding name that resolves to this machine.
        assert!(!host_allowed(
            &c,
            &headers(None, "rebind.evil.example:3000")
        ));
        assert!(!host_allowed(&c, &HeaderMap::new()));
        let mut c = LiveConfig::new(vec![0; 32]);
        c.public_url = Some("https://app.example.com".into());
        c.allowed_hosts.push("internal.lan".into());
        assert!(host_allowed(&c, &headers(None, "app.example.com")));
        assert!(host_allowed(&c, &headers(None, "internal.lan:8080")));
        assert!(!host_allowed(&c, &headers(None, "127.0.0.1:3000")));
        assert!(!host_allowed(&c, &headers(None, "evil.example")));
    }
}
