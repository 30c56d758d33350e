//! Who a static token is, remembered between requests of one process.
//!
//! Authenticating a token reads the token, its user and its workspace from the store: three
//! round trips before every API call does anything. When this process's auth service is the
//! store's only writer (`roost local`), it knows every change: each change to tokens or workspaces
//! moves a generation when it ends (stored or failed), and an answer is trusted only while the
//! generation it was read under is current. A lookup records the generation *before* reading, so a
//! change that lands while it reads still voids what it read. JWTs are not remembered: their
//! expiry is checked on every call.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use roost_proto::auth::v1::Principal;

/// Entries kept at most; past that the cache starts over, so a flood of distinct valid tokens
/// costs store reads, never unbounded memory.
const MAX_ENTRIES: usize = 10_000;

/// Principals by token value, valid for one generation.
#[derive(Debug, Default)]
pub struct PrincipalCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, (u64, Principal)>>,
}

impl PrincipalCache {
    /// The generation a lookup starts under.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The principal of `token`, if it was read under the current generation.
    pub fn get(&self, token: &str) -> Option<Principal> {
        let current = self.generation();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(token)
            .filter(|(generation, _)| *generation == current)
            .map(|(_, principal)| principal.clone())
    }

    /// Remembers `principal`, read under `generation`.
    pub fn put(&self, token: &str, generation: u64, principal: Principal) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(token.to_string(), (generation, principal));
    }

    /// Marks a change under way; the generation moves when the guard drops.
    pub fn changing(self: &Arc<Self>) -> ChangeGuard {
        ChangeGuard(self.clone())
    }
}

/// Held while tokens or workspaces change; dropping it voids every remembered principal.
pub struct ChangeGuard(Arc<PrincipalCache>);

impl Drop for ChangeGuard {
    fn drop(&mut self) {
        self.0.generation.fetch_add(1, Ordering::AcqRel);
        self.0
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str) -> Principal {
        Principal {
            token_name: name.into(),
            ..Principal::default()
        }
    }

    #[test]
    fn an_entry_lives_until_a_change_ends() {
        let cache = Arc::new(PrincipalCache::default());
        cache.put("t", cache.generation(), principal("a"));
        assert_eq!(cache.get("t").unwrap().token_name, "a");
        let change = cache.changing();
        assert!(
            cache.get("t").is_some(),
            "not voided before the change ends"
        );
        drop(change);
        assert!(cache.get("t").is_none());
    }

    #[test]
    fn a_read_overtaken_by_a_change_is_not_trusted() {
        let cache = Arc::new(PrincipalCache::default());
        let read_under = cache.generation();
        drop(cache.changing());
        cache.put("t", read_under, principal("stale"));
        assert!(cache.get("t").is_none());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = PrincipalCache::default();
        for i in 0..=MAX_ENTRIES {
            cache.put(&i.to_string(), 0, principal("p"));
        }
        assert_eq!(cache.entries.lock().unwrap().len(), 1);
    }
}
