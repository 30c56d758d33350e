//! A count of catalog changes, which caches of catalog reads check before they trust themselves.
//!
//! The catalog holds a [`ChangeGuard`] while it changes anything; when the change is over (stored or
//! failed) the count moves on, before the catalog answers, so a cache in the same process never
//! serves what the caller just changed. A cache records the count it read *before* fetching, so a
//! change that lands while it fetches still invalidates what it fetched. Processes that do not share
//! the catalog's count (distributed mode) are told by facts on `roost.catalog.changed.>` (see
//! [`CatalogChanges::follow`]); until that is wired, they should not cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;

use crate::{Announcer, BusError};

/// The subject prefix of catalog change facts; the workspace id follows.
pub const CATALOG_CHANGED: &str = "roost.catalog.changed";

/// The catalog changes this process knows of.
#[derive(Default)]
pub struct CatalogChanges {
    count: AtomicU64,
    announcer: Option<Arc<dyn Announcer>>,
}

impl std::fmt::Debug for CatalogChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogChanges")
            .field("count", &self.count())
            .field("announces", &self.announcer.is_some())
            .finish()
    }
}

impl CatalogChanges {
    /// Changes counted in this process only.
    pub fn local() -> Arc<CatalogChanges> {
        Arc::default()
    }

    /// Changes counted here and announced to other processes.
    pub fn announcing(announcer: Arc<dyn Announcer>) -> Arc<CatalogChanges> {
        Arc::new(CatalogChanges {
            count: AtomicU64::new(0),
            announcer: Some(announcer),
        })
    }

    /// How many changes so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Marks a change of `workspace_id` under way: the count moves when the guard drops.
    pub fn guard(self: &Arc<Self>, workspace_id: &str) -> ChangeGuard {
        ChangeGuard {
            changes: self.clone(),
            workspace_id: workspace_id.to_string(),
        }
    }

    fn changed(&self, workspace_id: &str) {
        self.count.fetch_add(1, Ordering::AcqRel);
        if let Some(announcer) = self.announcer.clone() {
            let subject = format!("{CATALOG_CHANGED}.{workspace_id}");
            // Facts are fire-and-forget: a lost one costs other processes a stale read until
            // their caches expire, never a wrong write.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(error) = announcer.announce(&subject, Bytes::new()).await {
                        tracing::warn!(%error, "a catalog change could not be announced");
                    }
                });
            }
        }
    }

    /// Counts the changes other processes announce, until the subscription ends.
    pub async fn follow(
        self: &Arc<Self>,
        announcer: &dyn Announcer,
    ) -> Result<tokio::task::JoinHandle<()>, BusError> {
        let mut facts = announcer.subscribe(&format!("{CATALOG_CHANGED}.>")).await?;
        let changes = self.clone();
        Ok(tokio::spawn(async move {
            while facts.next().await.is_some() {
                changes.count.fetch_add(1, Ordering::AcqRel);
            }
            // The subscription is gone: whatever comes next was not seen.
            changes.count.fetch_add(1, Ordering::AcqRel);
        }))
    }
}

/// Held by the catalog while it changes a workspace; dropping it counts the change.
pub struct ChangeGuard {
    changes: Arc<CatalogChanges>,
    workspace_id: String,
}

impl Drop for ChangeGuard {
    fn drop(&mut self) {
        self.changes.changed(&self.workspace_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_count_moves_when_a_change_ends() {
        let changes = CatalogChanges::local();
        let guard = changes.guard("w1");
        assert_eq!(changes.count(), 0, "not while the change is under way");
        drop(guard);
        assert_eq!(changes.count(), 1);
    }

    #[tokio::test]
    async fn announced_changes_reach_a_follower() {
        let bus = crate::InProcessBus::default();
        let follower = CatalogChanges::local();
        let _following = follower.follow(&bus).await.unwrap();
        let catalog = CatalogChanges::announcing(Arc::new(bus));
        drop(catalog.guard("w1"));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while follower.count() == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(follower.count(), 1);
    }
}
