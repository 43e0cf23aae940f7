//! Handling what a view receives: events, server messages, URL params, and the pushes
//! handlers ask for.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use super::{End, ToView, ViewSession, panic_message};
use crate::protocol::Reason;
use crate::view::{Ctx, Event, LiveView, Params, Push, ViewError, is_local_url, params_for};

impl<V: LiveView> ViewSession<V> {
    pub(super) async fn on_inbound(&mut self, msg: ToView) -> Result<(), End> {
        match msg {
            ToView::Event { msg_ref, event } => self.on_event(msg_ref, *event).await,
            ToView::Params { msg_ref, url } => {
                // The client may change the query, never the signed path parameters: a URL
                // of another path needs a page load (and a token for it).
                let params = params_for(&self.route, &self.token, &url);
                if params.path_params() != &self.token.path_params {
                    tracing::warn!(url = %url, "params for other path parameters refused");
                    return self
                        .wire
                        .reply_error(msg_ref.as_deref(), Reason::Navigate)
                        .await;
                }
                self.params = params;
                let params = self.params.clone();
                let mut pushes = Vec::new();
                self.call_params(&params, &mut pushes).await?;
                self.after_handler(pushes).await?;
                self.wire.reply_ok(msg_ref.as_deref(), "{}").await
            }
            ToView::Resync { msg_ref } => {
                self.send_whole().await?;
                self.wire.reply_ok(msg_ref.as_deref(), "{}").await
            }
        }
    }

    pub(super) async fn on_event(
        &mut self,
        msg_ref: Option<String>,
        event: Event,
    ) -> Result<(), End> {
        let mut pushes = Vec::new();
        let name = event.name.clone();
        let result = {
            let mut ctx = Ctx::<V> {
                state: &self.rt.state,
                session: &self.session,
                info: &mut self.info,
                pushes: &mut pushes,
                topics: Some(&self.rt.topics),
            };
            AssertUnwindSafe(Box::pin(self.view.handle_event(event, &mut ctx)))
                .catch_unwind()
                .await
        };
        let error = match result {
            Err(p) => {
                return Err(End::Crash(format!(
                    "handle_event panicked: {}",
                    panic_message(p)
                )));
            }
            Ok(Ok(())) => None,
            Ok(Err(e)) => {
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
    }

    pub(super) async fn on_info(&mut self, msg: V::Message) -> Result<(), End> {
        let mut pushes = Vec::new();
        let result = {
            let mut ctx = Ctx::<V> {
                state: &self.rt.state,
                session: &self.session,
                info: &mut self.info,
                pushes: &mut pushes,
                topics: Some(&self.rt.topics),
            };
            AssertUnwindSafe(Box::pin(self.view.handle_info(msg, &mut ctx)))
                .catch_unwind()
                .await
        };
        match result {
            Err(p) => {
                return Err(End::Crash(format!(
                    "handle_info panicked: {}",
                    panic_message(p)
                )));
            }
            Ok(Err(e)) => tracing::error!(error = %e, "handle_info failed"),
            Ok(Ok(())) => {}
        }
        self.after_handler(pushes).await
    }

    pub(super) async fn call_params(
        &mut self,
        params: &Params,
        pushes: &mut Vec<Push>,
    ) -> Result<(), End> {
        let result = {
            let mut ctx = Ctx::<V> {
                state: &self.rt.state,
                session: &self.session,
                info: &mut self.info,
                pushes,
                topics: Some(&self.rt.topics),
            };
            AssertUnwindSafe(Box::pin(self.view.handle_params(params, &mut ctx)))
                .catch_unwind()
                .await
        };
        match result {
            Err(p) => Err(End::Crash(format!(
                "handle_params panicked: {}",
                panic_message(p)
            ))),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "handle_params failed");
                Ok(())
            }
            Ok(Ok(())) => Ok(()),
        }
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
                        token = Some(self.rt.signer.sign(&self.token));
                    }
                    let params = self.params.clone();
                    let mut more = Vec::new();
                    self.call_params(&params, &mut more).await?;
                    self.render_and_send().await?;
                    let payload =
                        serde_json::json!({ "to": to, "replace": replace, "token": token })
                            .to_string();
                    self.wire.push("patch", &payload).await?;
                    // Pushes from that params handler (a redirect, say) are followed once.
                    for q in more {
                        if let Push::Redirect { to } = q
                            && is_local_url(&to)
                        {
                            let payload = serde_json::json!({ "to": to }).to_string();
                            self.wire.push("redirect", &payload).await?;
                        }
                    }
                }
                Push::Redirect { to } => {
                    let payload = serde_json::json!({ "to": to }).to_string();
                    self.wire.push("redirect", &payload).await?;
                }
                Push::Event { name, payload } => {
                    let payload =
                        serde_json::json!({ "event": name, "payload": payload }).to_string();
                    self.wire.push("push_event", &payload).await?;
                }
            }
        }
        Ok(())
    }
}
