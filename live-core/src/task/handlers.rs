//! Handling what a view receives: events, server messages, URL params, and the pushes
//! handlers ask for.

use super::{End, ToView, ViewSession, guarded};
use crate::protocol::Reason;
use crate::view::{Ctx, Event, LiveView, Params, Push, ViewError, is_local_url, params_for};

/// Runs a handler of the view with a fresh [`Ctx`] (a panic ends the view): `$call` is an
/// expression over `view` and `ctx`.
macro_rules! with_ctx {
    ($s:ident, $what:literal, $pushes:expr, |$view:ident, $ctx:ident| $call:expr) => {{
        let mut $ctx = Ctx::<V>::new(
            &$s.rt.state,
            &$s.session,
            &mut $s.info,
            $pushes,
            Some(&$s.rt.topics),
        );
        let $view = &mut $s.view;
        guarded($what, Box::pin($call)).await
    }};
}

impl<V: LiveView> ViewSession<V> {
    pub(super) async fn on_inbound(&mut self, msg: ToView) -> Result<(), End> {
        match msg {
            ToView::Event { msg_ref, event, n } => self.on_event(msg_ref, *event, n).await,
            ToView::Params { msg_ref, url } => self.on_params(msg_ref, url).await,
            ToView::Resync { msg_ref } => {
                self.send_whole().await;
                self.wire.reply_ok(msg_ref.as_deref(), "{}").await;
                Ok(())
            }
        }
    }

    /// The client's URL changed (a `live-patch` link, back or forward).
    pub(super) async fn on_params(
        &mut self,
        msg_ref: Option<String>,
        url: String,
    ) -> Result<(), End> {
        // The client may change the query, never the signed path parameters: a URL of
        // another path needs a page load (and a token for it).
        let params = params_for(&self.route, &self.token, &url);
        if params.path_params() != &self.token.path_params {
            tracing::warn!(url = %url, "params for other path parameters refused");
            self.wire
                .reply_error(msg_ref.as_deref(), Reason::Navigate)
                .await;
            return Ok(());
        }
        self.params = params;
        let params = self.params.clone();
        let mut pushes = Vec::new();
        self.call_params(&params, &mut pushes).await?;
        self.after_handler(pushes).await?;
        self.wire.reply_ok(msg_ref.as_deref(), "{}").await;
        Ok(())
    }

    pub(super) async fn on_event(
        &mut self,
        msg_ref: Option<String>,
        event: Event,
        n: Option<u64>,
    ) -> Result<(), End> {
        if let Some(n) = n {
            if n <= self.last_event {
                // A resend of an event handled already (its reply was lost with a
                // connection): handled once, answered again.
                tracing::debug!(n, "an event handled already");
                self.wire.reply_ok(msg_ref.as_deref(), "{}").await;
                return Ok(());
            }
            self.last_event = n;
        }
        let mut pushes = Vec::new();
        let name = event.name.clone();
        let result = with_ctx!(self, "handle_event", &mut pushes, |view, ctx| view
            .handle_event(event, &mut ctx))?;
        let error = match result {
            Ok(()) => None,
            Err(e) => {
                match &e {
                    ViewError::UnknownEvent(n) => tracing::warn!(event = %n, "unknown event"),
                    ViewError::BadRequest(m) => {
                        tracing::warn!(event = %name, error = %m, "bad event payload")
                    }
                    e => tracing::error!(event = %name, error = %e, "event handler failed"),
                }
                Some(e.event_reason())
            }
        };
        self.after_handler(pushes).await?;
        match error {
            None => self.wire.reply_ok(msg_ref.as_deref(), "{}").await,
            Some(reason) => self.wire.reply_error(msg_ref.as_deref(), reason).await,
        }
        Ok(())
    }

    pub(super) async fn on_info(&mut self, msg: V::Message) -> Result<(), End> {
        let mut pushes = Vec::new();
        let result = with_ctx!(self, "handle_info", &mut pushes, |view, ctx| view
            .handle_info(msg, &mut ctx))?;
        if let Err(e) = result {
            tracing::error!(error = %e, "handle_info failed");
        }
        self.after_handler(pushes).await
    }

    pub(super) async fn call_params(
        &mut self,
        params: &Params,
        pushes: &mut Vec<Push>,
    ) -> Result<(), End> {
        let result = with_ctx!(self, "handle_params", pushes, |view, ctx| view
            .handle_params(params, &mut ctx))?;
        if let Err(e) = result {
            tracing::warn!(error = %e, "handle_params failed");
        }
        Ok(())
    }

    /// After any handler: follow a changed subscription key, render and send, then pushes.
    pub(super) async fn after_handler(&mut self, pushes: Vec<Push>) -> Result<(), End> {
        if self.scopes_changed() {
            self.reload(Vec::new()).await?;
        }
        self.render_and_send().await?;
        self.process_pushes(pushes).await
    }

    pub(super) async fn process_pushes(&mut self, pushes: Vec<Push>) -> Result<(), End> {
        for p in pushes {
            if self.detached.is_some() {
                // Nobody to tell: a redirect, patch or push event of a handler that ran while
                // the client was away is dropped (its state is in the assigns).
                tracing::debug!(push = ?p, "no client to push to; dropped");
                continue;
            }
            match p {
                Push::Patch { to, .. } | Push::Redirect { to } if !is_local_url(&to) => {
                    tracing::error!(to = %to, "refused a patch or redirect to another origin");
                }
                Push::Patch { to, replace } => {
                    // The server chose this URL: its path parameters are trusted, and the
                    // client gets a token signed with them for later rejoins.
                    self.params = params_for(&self.route, &self.token, &to);
                    let mut token = None;
                    if self.params.path_params() != &self.token.path_params {
                        self.token.path_params = self.params.path_params().clone();
                        self.token.exp =
                            crate::token::now_secs() + self.rt.config.token_max_age.as_secs();
                        let signed = self.rt.signer.sign(&self.token);
                        // Kept assigns are bound to the page token the client holds.
                        self.page_id = super::keep::page_id(&signed);
                        self.kept_sent = None;
                        token = Some(signed);
                    }
                    let params = self.params.clone();
                    let mut more = Vec::new();
                    self.call_params(&params, &mut more).await?;
                    self.render_and_send().await?;
                    let payload =
                        serde_json::json!({ "to": to, "replace": replace, "token": token })
                            .to_string();
                    self.wire.push("patch", &payload).await;
                    self.send_kept().await;
                    // Pushes from that params handler (a redirect, say) are followed once.
                    for q in more {
                        if let Push::Redirect { to } = q
                            && is_local_url(&to)
                        {
                            let payload = serde_json::json!({ "to": to }).to_string();
                            self.wire.push("redirect", &payload).await;
                        }
                    }
                }
                Push::Redirect { to } => {
                    let payload = serde_json::json!({ "to": to }).to_string();
                    self.wire.push("redirect", &payload).await;
                }
                Push::Event { name, payload } => {
                    let payload =
                        serde_json::json!({ "event": name, "payload": payload }).to_string();
                    self.wire.push("push_event", &payload).await;
                }
            }
        }
        Ok(())
    }
}
