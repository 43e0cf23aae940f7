//! The fence and the changes: subscribing with the scopes the assigns state, replaying what
//! the load did not see, reloading, and applying committed changes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{End, ViewSession, guarded};
use crate::fanout::{Delivery, Fanout, Gap, Mailbox, Op, ScopeKey};
use crate::pg::Snapshot;
use crate::row::HeldRows;
use crate::view::{DbSlot, LiveView, Mount, SyncCtx, is_stale_statement};
use crate::watch::{ApplyError, ChangeBatch, Scopes};

pub(crate) struct Subscription {
    pub(crate) fanout: Arc<Fanout>,
    pub(crate) mailbox: Mailbox,
    pub(crate) seq_after: u64,
    /// The scope keys subscribed, as the assigns stated them at the last (re)load.
    pub(crate) keys: Vec<ScopeKey>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.fanout.remove_view(self.mailbox.id);
    }
}

impl<V: LiveView> ViewSession<V> {
    pub(super) async fn run_hooks(&mut self) -> Result<(), End> {
        let mut ctx = SyncCtx::<V> {
            state: &self.rt.state,
        };
        let result = guarded("sync hook", Box::pin(self.view.run_sync_hooks(&mut ctx))).await?;
        if let Err(e) = result {
            tracing::error!(error = %e, "sync hook failed");
        }
        Ok(())
    }

    /// Whether the assigns now state other scopes than those subscribed (a changed key, or a
    /// key set that grew or shrank).
    pub(super) fn scopes_changed(&self) -> bool {
        self.sub
            .as_ref()
            .is_some_and(|sub| sub.keys != scope_keys(&self.view))
    }

    /// Subscribes with the view's key and applies the replay. `Ok(Some(xids))`: the replay
    /// asks for a reload whose snapshot sees those transactions.
    pub(super) async fn subscribe(
        &mut self,
        since: u64,
        snapshot: Option<&Snapshot>,
    ) -> Result<Option<Vec<u32>>, Gap> {
        let Some(sub) = &mut self.sub else {
            return Ok(None);
        };
        let keys = scope_keys(&self.view);
        let mut held = HeldRows::default();
        self.view.held_rows(&mut held);
        let (replay, seq_after) =
            sub.fanout
                .subscribe(sub.mailbox.id, keys.clone(), &held, since, snapshot)?;
        sub.seq_after = seq_after;
        sub.keys = keys;
        if replay.is_empty() {
            return Ok(None);
        }
        let xids: Vec<u32> = replay.iter().map(|d| d.txn.xid).collect();
        Ok(match self.apply(replay).await {
            Ok(Applied::Done) => None,
            Ok(Applied::Reload) | Err(_) => Some(xids),
        })
    }

    /// Reloads the watched assigns under a new fence (retrying a few times). The new snapshot
    /// sees at least the transactions in `must_see` (those that asked for the reload).
    pub(super) async fn reload(&mut self, mut must_see: Vec<u32>) -> Result<(), End> {
        let Some(fanout) = self.sub.as_ref().map(|s| s.fanout.clone()) else {
            return Ok(());
        };
        let mut delay = Duration::from_millis(50);
        let mut stale = false;
        for attempt in 0..6 {
            if let Some(sub) = &self.sub {
                sub.mailbox.overflow.store(false, Ordering::Release);
            }
            // A reload takes a database connection like a mount does.
            let permits = match self.rt.mount_permits(None).await {
                Ok(p) => p,
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    continue;
                }
            };
            let s0 = fanout.next_seq();
            let mut db = DbSlot::new(self.rt.pool.clone());
            if stale {
                db.clear_statement_cache();
            }
            let result = match db.begin_seeing(&must_see).await {
                Err(e) => Err(e),
                Ok(_) => {
                    let mut m = Mount::<V> {
                        state: &self.rt.state,
                        params: &self.params,
                        session: &self.session,
                        connected: true,
                        db: &mut db,
                    };
                    guarded("reload", Box::pin(self.view.reload(&mut m))).await?
                }
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, attempt, "reload failed; retrying");
                if is_stale_statement(&e) {
                    stale = true;
                }
                db.rollback().await;
                tokio::time::sleep(delay).await;
                delay *= 2;
                continue;
            }
            let finished = db.finish().await;
            drop(permits);
            self.view.share_rows();
            if let Err(e) = finished {
                tracing::warn!(error = %e, attempt, "reload transaction failed; retrying");
                continue;
            }
            self.run_hooks().await?;
            match self.subscribe(s0, db.snapshot.as_ref()).await {
                Ok(None) => return Ok(()),
                Ok(Some(xids)) => must_see = xids,
                Err(Gap) => {}
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(End::Crash("reload kept failing".into()))
    }

    pub(super) async fn on_changes(&mut self, first: Box<Delivery>) -> Result<(), End> {
        let mut batch = vec![*first];
        let mut overflow = false;
        if let Some(sub) = &mut self.sub {
            sub.mailbox.taken(&batch[0]);
            while batch.len() < 256 {
                match sub.mailbox.rx.try_recv() {
                    Ok(d) => {
                        sub.mailbox.taken(&d);
                        batch.push(*d);
                    }
                    Err(_) => break,
                }
            }
            let after = sub.seq_after;
            batch.retain(|d| d.seq >= after);
            overflow = sub.mailbox.overflow.load(Ordering::Acquire);
        }
        if overflow {
            tracing::info!("view fell behind; reloading");
            self.reload(Vec::new()).await?;
        } else if !batch.is_empty() {
            let xids: Vec<u32> = batch.iter().map(|d| d.txn.xid).collect();
            match self.apply(batch).await? {
                Applied::Done if self.scopes_changed() => {
                    // A key set derived from the rows changed: rows entering it are loaded
                    // through the fence (the new snapshot sees what was just applied).
                    self.reload(xids).await?
                }
                Applied::Done => {}
                Applied::Reload => self.reload(xids).await?,
            }
        }
        if let Some(why) = self.view.over_cap() {
            // An error, not a silent slowdown.
            return Err(End::Crash(why));
        }
        self.render_and_send().await
    }

    pub(super) async fn apply(&mut self, deliveries: Vec<Delivery>) -> Result<Applied, End> {
        if deliveries
            .iter()
            .any(|d| d.items.iter().any(|i| i.op == Op::Reload))
        {
            return Ok(Applied::Reload);
        }
        let batch = ChangeBatch { deliveries };
        let mut ctx = SyncCtx::<V> {
            state: &self.rt.state,
        };
        let result = guarded(
            "applying changes",
            Box::pin(self.view.apply_changes(&batch, &mut ctx)),
        )
        .await?;
        match result {
            Ok(_) => Ok(Applied::Done),
            Err(ApplyError::Reload) => Ok(Applied::Reload),
            Err(ApplyError::Decode(e)) => {
                tracing::error!(error = %e, "a row did not decode; reloading the view");
                Ok(Applied::Reload)
            }
            Err(ApplyError::Hook(e)) => {
                tracing::error!(error = %e, "sync hook failed");
                Ok(Applied::Done)
            }
        }
    }
}

/// The scope keys the view's assigns state right now.
fn scope_keys<V: LiveView>(view: &V) -> Vec<ScopeKey> {
    let mut scopes = Scopes::default();
    view.watch_scopes(&mut scopes);
    scopes
        .list
        .iter()
        .flat_map(|s| {
            s.keys
                .iter()
                .map(move |k| (s.slot, s.ty, s.column, k.clone()))
        })
        .collect()
}

pub(super) enum Applied {
    Done,
    Reload,
}
