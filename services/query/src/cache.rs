//! What the catalog lists for a workspace, kept until the catalog counts a change.
//!
//! Only a process that sees the catalog's own change count caches (see
//! `roost_bus::CatalogChanges`): there a cached listing is never older than the caller's last
//! change. Elsewhere every call fetches.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use roost_bus::CatalogChanges;
use roost_proto::ServiceError;

/// Listings of type `T` by workspace.
pub(crate) struct CatalogCache<T> {
    changes: Option<Arc<CatalogChanges>>,
    /// Workspace id → a listing and the change count read before it was fetched.
    entries: Mutex<HashMap<String, (u64, Arc<T>)>>,
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
    /// A cache that trusts an entry while `changes` counts nothing new.
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
        // Read before fetching: a change landing during the fetch then invalidates its result.
        let count = self.changes.as_ref().map(|changes| changes.count());
        let entries = || self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = count
            && let Some((cached_at, listing)) = entries().get(workspace_id)
            && *cached_at == count
        {
            return Ok(listing.clone());
        }
        let listing = Arc::new(fetch().await?);
        if let Some(count) = count {
            let mut entries = entries();
            entries.retain(|_, (cached_at, _)| *cached_at == count);
            entries.insert(workspace_id.to_string(), (count, listing.clone()));
        }
        Ok(listing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_listing_is_fetched_again_after_a_change_and_never_without_a_count() {
        let changes = CatalogChanges::local();
        let cache = CatalogCache::following(changes.clone());
        let fetches = std::sync::atomic::AtomicU32::new(0);
        let fetch = || async { Ok(fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst)) };
        assert_eq!(*cache.get("w1", fetch).await.unwrap(), 0);
        assert_eq!(*cache.get("w1", fetch).await.unwrap(), 0, "cached");
        assert_eq!(*cache.get("w2", fetch).await.unwrap(), 1, "per workspace");
        drop(changes.guard("w1"));
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
}
