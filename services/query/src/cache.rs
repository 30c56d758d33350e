//! What the catalog lists for a workspace, kept while the catalog's change stamp says it is
//! current (see `roost_bus::CatalogChanges`): in `roost local` until the catalog counts a change,
//! in distributed mode until a change fact arrives, a reconnection, or `FOLLOWED_MAX_AGE`. A
//! process that cannot know of every change (no change source, no subscription, disconnected)
//! fetches on every call.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use roost_bus::{CatalogChanges, ChangeStamp};
use roost_proto::ServiceError;

/// Listings of type `T` by workspace.
pub(crate) struct CatalogCache<T> {
    changes: Option<Arc<CatalogChanges>>,
    /// Workspace id → a listing and the stamp taken before it was fetched.
    entries: Mutex<HashMap<String, (ChangeStamp, Arc<T>)>>,
}

impl<T> Default for CatalogCache<T> {
    fn default() -> Self {
        CatalogCache {
            changes: None,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> CatalogCache<T> {
    /// A cache that trusts an entry while `changes` says it is current.
    pub fn following(changes: Arc<CatalogChanges>) -> Self {
        CatalogCache {
            changes: Some(changes),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The workspace's listing: cached, or from `fetch`.
    pub async fn get<Fetch, Fetching>(
        &self,
        workspace_id: &str,
        fetch: Fetch,
    ) -> Result<Arc<T>, ServiceError>
    where
        Fetch: FnOnce() -> Fetching,
        Fetching: Future<Output = Result<T, ServiceError>>,
    {
        // Taken before fetching: a change landing during the fetch then invalidates its result.
        let now = match &self.changes {
            Some(changes) => changes.stamp().await,
            None => None,
        };
        let entries = || self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(now) = &now
            && let Some((stamp, listing)) = entries().get(workspace_id)
            && stamp.still_current(now)
        {
            return Ok(listing.clone());
        }
        let listing = Arc::new(fetch().await?);
        if let Some(now) = now {
            let mut entries = entries();
            entries.retain(|_, (stamp, _)| stamp.still_current(&now));
            entries.insert(workspace_id.to_string(), (now, listing.clone()));
        }
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use roost_bus::{Announcer, Follow, InProcessBus};

    use super::*;

    #[tokio::test]
    async fn a_listing_is_fetched_again_after_a_change_and_never_without_a_count() {
        let changes = CatalogChanges::local();
        let cache = CatalogCache::following(changes.clone());
        let fetches = AtomicU32::new(0);
        let fetch = || async { Ok(fetches.fetch_add(1, Ordering::SeqCst)) };
        assert_eq!(*cache.get("w1", fetch).await.unwrap(), 0);
        assert_eq!(*cache.get("w1", fetch).await.unwrap(), 0, "cached");
        assert_eq!(*cache.get("w2", fetch).await.unwrap(), 1, "per workspace");
        changes.guard("w1").finish().await;
        assert_eq!(
            *cache.get("w1", fetch).await.unwrap(),
            2,
            "fetched after a change"
        );

        let uncounted = CatalogCache::default();
        assert_eq!(*uncounted.get("w1", fetch).await.unwrap(), 3);
        assert_eq!(
            *uncounted.get("w1", fetch).await.unwrap(),
            4,
            "never cached"
        );
    }

    #[tokio::test]
    async fn a_followed_listing_is_fetched_again_after_any_fact() {
        let bus = InProcessBus::default();
        let catalog =
            CatalogChanges::distributed(Arc::new(bus.clone()), "p", true, Follow::Not).await;
        let follower =
            CatalogChanges::distributed(Arc::new(bus.clone()), "p", false, Follow::CallsOverTheBus)
                .await;
        let cache = CatalogCache::following(follower);
        let fetches = AtomicU32::new(0);
        let fetch = || async { Ok(fetches.fetch_add(1, Ordering::SeqCst)) };
        assert_eq!(*cache.get("w1", fetch).await.unwrap(), 0);
        assert_eq!(*cache.get("w1", fetch).await.unwrap(), 0, "cached");
        catalog.guard("w1").finish().await;
        assert_eq!(*cache.get("w1", fetch).await.unwrap(), 1, "after a fact");
        bus.announce("p.catalog.changed.w2", bytes::Bytes::new())
            .await
            .unwrap();
        assert_eq!(
            *cache.get("w1", fetch).await.unwrap(),
            2,
            "any workspace's fact"
        );
        assert_eq!(*cache.get("w1", fetch).await.unwrap(), 2, "cached again");
    }
}
