//! The first (static) render of a GET: mount (disconnected), params, render, a signed token,
//! the layout.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::RawPathParams;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::assets::live_js_name;
use super::upgrade::host_allowed;
use crate::task::mount_retried;
use crate::token::{ViewToken, session_from_headers};
use crate::view::{Ctx, DbSlot, InfoSlot, LiveView, Params, Push, SyncCtx, ViewError};

/// The parts of a page a layout puts together.
///
/// ```
/// use live_core::{DOCTYPE, Live, LiveConfig, Markup, Page, html};
///
/// fn layout(page: Page<'_>) -> Markup {
///     html! {
///         (DOCTYPE)
///         html lang="en" {
///             head { title { (page.title.unwrap_or("Todos")) } (page.head) }
///             body { nav { a href="/" { "Home" } } (page.body) }
///         }
///     }
/// }
///
/// let live = Live::builder(()).config(LiveConfig::new(vec![7u8; 32])).layout(layout).build().unwrap();
/// # drop(live);
/// let html = layout(Page { title: None, head: html! {}, body: html! { p { "hi" } } }).into_string();
/// assert!(html.contains("<title>Todos</title>"));
/// ```
pub struct Page<'a> {
    /// The view's title, if it has one.
    pub title: Option<&'a str>,
    /// Tags for `<head>`: the client script.
    pub head: Markup,
    /// The view's container, with its first render inside.
    pub body: Markup,
}

impl std::fmt::Debug for Page<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Page")
            .field("title", &self.title)
            .finish_non_exhaustive()
    }
}

pub(crate) type LayoutFn = dyn Fn(Page<'_>) -> Markup + Send + Sync;

/// The default layout: a minimal HTML document.
pub(crate) fn default_layout(page: Page<'_>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (page.title.unwrap_or("")) }
                (page.head)
            }
            body { (page.body) }
        }
    }
}

/// The first render of a GET: mount (disconnected), params, render, token, layout.
pub(crate) async fn render_page<V: LiveView>(
    live: super::Live<V::State>,
    route: Arc<str>,
    raw: RawPathParams,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let rt = &*live.rt;
    if !host_allowed(&rt.config, &headers) {
        tracing::warn!(host = ?headers.get(header::HOST), "page refused: host not allowed");
        return (StatusCode::MISDIRECTED_REQUEST, "host not allowed").into_response();
    }
    let session = session_from_headers(&headers, &rt.cookies, &rt.cookie_name());
    let path_params: BTreeMap<String, String> = raw
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let uri_str = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| uri.path().to_string());
    let params = Params::from_parts(path_params.clone(), &uri_str);
    // A page's mount takes a database connection too: it waits its turn with the joins.
    let permits = match rt.mount_permits(None).await {
        Ok(p) => p,
        Err(_) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                "Server busy, try again",
            )
                .into_response();
        }
    };
    let mut db = DbSlot::new(rt.pool.clone());
    let mounted = mount_retried::<V>(rt, &params, &session, &mut db, false, false).await;
    drop(permits);
    let mut view = match mounted {
        Ok(v) => v,
        Err(e) => return error_page(&live, &e),
    };
    // The same steps as a connected mount, so the first HTML equals the connected render
    // (and the page is right without JavaScript): sync hooks, then params.
    {
        let mut ctx = SyncCtx::<V> { state: &rt.state };
        if let Err(e) = view.run_sync_hooks(&mut ctx).await {
            tracing::error!(error = %e, "sync hook failed");
        }
    }
    let mut info = InfoSlot::<V::Message>::new();
    let mut pushes = Vec::new();
    {
        let mut ctx = Ctx::<V> {
            state: &rt.state,
            session: &session,
            info: &mut info,
            pushes: &mut pushes,
            topics: None,
        };
        if let Err(e) = view.handle_params(&params, &mut ctx).await {
            return error_page(&live, &e);
        }
    }
    for p in &pushes {
        match p {
            Push::Redirect { to } | Push::Patch { to, .. } => {
                if !crate::view::is_local_url(to) {
                    tracing::error!(to = %to, "refused a redirect to another origin");
                    return error_page(&live, &ViewError::other("redirect to another origin"));
                }
                return Redirect::to(to).into_response();
            }
            Push::Event { .. } => {}
        }
    }
    let body_html = crate::render::render_static(|| view.render());
    let title = view.title();
    let token = rt.signer.sign(&ViewToken::new(
        route.to_string(),
        path_params,
        session,
        rt.config.token_max_age,
    ));
    let id: String = crate::token::random_bytes(6)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let prefix = rt.config.prefix.trim_end_matches('/');
    let page = Page {
        title: title.as_deref(),
        head: html! {
            script defer src=(format!("{prefix}/{}", live_js_name())) data-live-socket=(format!("{prefix}/websocket")) {}
        },
        body: html! {
            div id=(format!("lv-{id}")) data-live-root data-live-token=(token) class="live-loading" {
                (PreEscaped(body_html))
            }
        },
    };
    Html((live.layout)(page).into_string()).into_response()
}

fn error_page<S>(live: &super::Live<S>, e: &ViewError) -> Response {
    let (status, text) = e.http_status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "mount failed");
    } else {
        tracing::info!(error = %e, "mount refused");
    }
    let detail = match e {
        ViewError::BadRequest(m) => Some(m.clone()),
        _ => None,
    };
    let page = Page {
        title: Some(text),
        head: html! {},
        body: html! {
            main class="live-error-page" {
                h1 { (status.as_u16()) " " (text) }
                @if let Some(d) = detail { p { (d) } }
                p { a href="/" { "Back to the start" } }
            }
        },
    };
    (status, Html((live.layout)(page).into_string())).into_response()
}
