//! Catalog changes, which caches of catalog reads check before they trust themselves.
//!
//! The catalog holds a [`ChangeGuard`] while it changes a workspace and [`ChangeGuard::finish`]es
//! it once the change is over (stored or failed), before it answers. A cache records the
//! [`ChangeStamp`] it took *before* fetching, so a change that lands while it fetches still
//! invalidates what it fetched, and serves an entry only while its stamp is still current.
//!
//! - `roost local` ([`CatalogChanges::local`]): the catalog and the caches share one count in
//!   the process, which moves before the catalog answers; an entry lives until the count moves.
//! - Distributed mode ([`CatalogChanges::distributed`]): the catalog also announces each change
//!   as a fact on `<subject_prefix>.catalog.changed.<workspace_id>` (core NATS) and waits until
//!   the NATS server has taken it before it answers. The server then delivers the fact to every
//!   follower before anything it takes afterwards, so a call that follows the catalog's answer
//!   over NATS reaches a follower after the fact ([`Follow::CallsOverTheBus`]: draining what
//!   was received is enough). A call over gRPC may overtake the fact on its way, so there each
//!   read first makes a round trip to the NATS server ([`Follow::CallsOverAnotherPath`]),
//!   which brings in every fact it had taken. Followers do not cache without a subscription or
//!   while disconnected from NATS, count a reconnection as a change (facts announced meanwhile
//!   were missed), and trust an entry at most [`FOLLOWED_MAX_AGE`], which bounds what a lost
//!   fact costs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use tokio::time::Instant;

use crate::{Announcer, BusError, FactStream};

/// How long a follower trusts an entry at most: facts are at most once, and a lost one would
/// otherwise leave a cache stale until the next change.
pub const FOLLOWED_MAX_AGE: Duration = Duration::from_secs(10);

/// How long the catalog waits for the NATS server to take a fact before it answers anyway.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the round trip a follower makes before a read may take (see
/// [`Follow::CallsOverAnotherPath`]); past it, the read goes to the catalog.
const READ_ROUND_TRIP_TIMEOUT: Duration = Duration::from_secs(1);

/// The subject of the facts about `workspace_id`'s catalog in the deployment on `subject_prefix`.
pub fn catalog_changed_subject(subject_prefix: &str, workspace_id: &str) -> String {
    format!("{subject_prefix}.catalog.changed.{workspace_id}")
}

/// The catalog changes this process knows of.
pub struct CatalogChanges {
    /// Changes made here, facts drained and reconnections seen: what a version is made of.
    count: AtomicU64,
    /// Distributed mode: facts announced or followed on the bus; `None` in `roost local`.
    distributed: Option<Distributed>,
}

struct Distributed {
    bus: Arc<dyn Announcer>,
    subject_prefix: String,
    /// This process runs the catalog: its changes are announced.
    announces: bool,
    /// This process caches catalog reads: it follows the facts (`None`: it does not).
    following: Option<Mutex<Subscription>>,
    /// Each read first makes a round trip on the bus (see [`Follow::CallsOverAnotherPath`]).
    round_trip_before_reading: bool,
}

/// Whether and how a process of a distributed deployment follows catalog changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// The process caches no catalog reads.
    Not,
    /// Calls reach the process on the bus connection the facts arrive on (NATS
    /// request/reply): a call sent after the catalog answered comes after the fact, so
    /// draining the facts received is enough.
    CallsOverTheBus,
    /// Calls may reach the process by another path (gRPC) and overtake the fact: each read
    /// first makes a round trip to the bus, after which every fact it had taken is in.
    CallsOverAnotherPath,
}

enum Subscription {
    Subscribed {
        facts: FactStream,
        /// The bus connection the facts were last seen on (`None` before the first check).
        connection_epoch: Option<u64>,
    },
    /// The subscription failed or ended: nothing tells this process of changes any more.
    Lost,
}

impl std::fmt::Debug for CatalogChanges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let distributed = self.distributed.as_ref();
        f.debug_struct("CatalogChanges")
            .field("count", &self.count.load(Ordering::Acquire))
            .field("distributed", &distributed.is_some())
            .field("announces", &distributed.is_some_and(|d| d.announces))
            .field(
                "follows",
                &distributed.is_some_and(|d| d.following.is_some()),
            )
            .finish()
    }
}

impl CatalogChanges {
    /// Changes counted in this process only: the catalog and every cache live here.
    pub fn local() -> Arc<CatalogChanges> {
        Arc::new(CatalogChanges {
            count: AtomicU64::new(0),
            distributed: None,
        })
    }

    /// Changes of a distributed deployment on `subject_prefix` (`nats.subject_prefix`), told by
    /// facts on `bus`: announced when this process runs the catalog (`announces`), followed
    /// when it caches catalog reads (`follow`). A subscription that cannot be made is logged
    /// and leaves the process without a version, so it does not cache.
    pub async fn distributed(
        bus: Arc<dyn Announcer>,
        subject_prefix: &str,
        announces: bool,
        follow: Follow,
    ) -> Arc<CatalogChanges> {
        let following = if follow != Follow::Not {
            let pattern = format!("{subject_prefix}.catalog.changed.>");
            Some(Mutex::new(match bus.subscribe(&pattern).await {
                Ok(facts) => Subscription::Subscribed {
                    facts,
                    connection_epoch: None,
                },
                Err(error) => {
                    tracing::warn!(%error, pattern, "cannot follow catalog changes: catalog reads will not be cached");
                    Subscription::Lost
                }
            }))
        } else {
            None
        };
        Arc::new(CatalogChanges {
            count: AtomicU64::new(0),
            distributed: Some(Distributed {
                bus,
                subject_prefix: subject_prefix.to_string(),
                announces,
                following,
                round_trip_before_reading: follow == Follow::CallsOverAnotherPath,
            }),
        })
    }

    /// The version of the catalog as this process knows it: it moves with every change known
    /// here. `None` when this process cannot know of every change (distributed mode without a
    /// subscription, or while disconnected from the bus): then nothing may be cached.
    pub async fn version(&self) -> Option<u64> {
        let Some(distributed) = &self.distributed else {
            return Some(self.count.load(Ordering::Acquire));
        };
        let following = distributed.following.as_ref()?;
        if distributed.round_trip_before_reading {
            // Disconnected, the round trip could only time out.
            distributed.bus.connection_epoch()?;
            let round_trip = distributed.bus.flush();
            if let Err(error) = within(READ_ROUND_TRIP_TIMEOUT, round_trip).await {
                tracing::warn!(%error, "catalog changes may be unseen: reading the catalog");
                return None;
            }
        }
        let mut following = following.lock().unwrap_or_else(PoisonError::into_inner);
        let Subscription::Subscribed {
            facts,
            connection_epoch,
        } = &mut *following
        else {
            return None;
        };
        let epoch = distributed.bus.connection_epoch()?;
        // Drain the facts already received, without waiting for more; unconstrained, so that
        // tokio's cooperative budget never makes a received fact look like none.
        while let Some(fact) = tokio::task::unconstrained(facts.next()).now_or_never() {
            if fact.is_none() {
                tracing::warn!(
                    "the catalog changes subscription ended: catalog reads will not be cached"
                );
                *following = Subscription::Lost;
                return None;
            }
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        if *connection_epoch != Some(epoch) {
            *connection_epoch = Some(epoch);
            self.count.fetch_add(1, Ordering::AcqRel);
        }
        Some(self.count.load(Ordering::Acquire))
    }

    /// The current version with the time it was read, for a cache entry about to be fetched;
    /// `None`: do not cache.
    pub async fn stamp(&self) -> Option<ChangeStamp> {
        Some(ChangeStamp {
            version: self.version().await?,
            taken_at: Instant::now(),
            max_age: self.distributed.as_ref().map(|_| FOLLOWED_MAX_AGE),
        })
    }

    /// Marks a change of `workspace_id` under way; see [`ChangeGuard`].
    pub fn guard(self: &Arc<Self>, workspace_id: &str) -> ChangeGuard {
        ChangeGuard {
            changes: self.clone(),
            workspace_id: workspace_id.to_string(),
            finished: false,
        }
    }

    /// Announces a change of `workspace_id` when this process announces, and waits (at most
    /// [`ANNOUNCE_TIMEOUT`]) until the bus has taken it. A fact that cannot be announced costs
    /// followers stale reads until their entries expire, never a wrong write: it is logged.
    async fn announce(&self, workspace_id: &str) {
        let Some(distributed) = self.distributed.as_ref().filter(|d| d.announces) else {
            return;
        };
        let subject = catalog_changed_subject(&distributed.subject_prefix, workspace_id);
        let announced = within(ANNOUNCE_TIMEOUT, async {
            distributed.bus.announce(&subject, Bytes::new()).await?;
            distributed.bus.flush().await
        })
        .await;
        if let Err(error) = announced {
            tracing::warn!(%error, subject, "a catalog change could not be announced");
        }
    }
}

/// `work`, or an `Unavailable` error once `limit` has passed.
async fn within(
    limit: Duration,
    work: impl std::future::Future<Output = Result<(), BusError>>,
) -> Result<(), BusError> {
    tokio::time::timeout(limit, work)
        .await
        .unwrap_or_else(|_| Err(BusError::Unavailable(format!("no answer within {limit:?}"))))
}

/// The catalog's version as a cache read it, and when (see [`CatalogChanges::stamp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeStamp {
    version: u64,
    taken_at: Instant,
    /// How long an entry stamped so may be trusted at most (`None`: until the version moves).
    max_age: Option<Duration>,
}

impl ChangeStamp {
    /// Whether an entry stamped `self` may still be served, given a stamp taken `now`.
    pub fn still_current(&self, now: &ChangeStamp) -> bool {
        self.version == now.version
            && self.max_age.is_none_or(|max_age| {
                now.taken_at.saturating_duration_since(self.taken_at) < max_age
            })
    }
}

/// Held by the catalog while it changes a workspace. [`ChangeGuard::finish`] ends the change
/// before the catalog answers; a guard dropped unfinished (the call was abandoned midway) still
/// counts the change and announces it in the background.
pub struct ChangeGuard {
    changes: Arc<CatalogChanges>,
    workspace_id: String,
    finished: bool,
}

impl ChangeGuard {
    /// The change is over: counts it, and in distributed mode announces it and returns once
    /// the bus has taken the fact (or the announcement gave up), so whoever the caller asks
    /// next learns of it before reading the catalog.
    pub async fn finish(mut self) {
        self.finished = true;
        self.changes.count.fetch_add(1, Ordering::AcqRel);
        self.changes.announce(&self.workspace_id).await;
    }
}

impl Drop for ChangeGuard {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.changes.count.fetch_add(1, Ordering::AcqRel);
        if self.changes.distributed.is_some()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let changes = self.changes.clone();
            let workspace_id = std::mem::take(&mut self.workspace_id);
            runtime.spawn(async move { changes.announce(&workspace_id).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use async_trait::async_trait;
    use futures::channel::mpsc;

    use super::*;
    use crate::{Fact, InProcessBus};

    /// A bus whose facts, subscriptions and connection the test decides.
    #[derive(Default)]
    struct ScriptedBus {
        /// Where the facts of each subscription come from.
        subscriptions: Mutex<Vec<mpsc::UnboundedSender<Fact>>>,
        refuses_subscriptions: AtomicBool,
        /// `None`: disconnected.
        connection_epoch: Mutex<Option<u64>>,
        announced: Mutex<Vec<String>>,
        flushes: AtomicU64,
        refuses_flushes: AtomicBool,
    }

    impl ScriptedBus {
        fn connected() -> Arc<ScriptedBus> {
            let bus = ScriptedBus::default();
            *bus.connection_epoch.lock().unwrap() = Some(1);
            Arc::new(bus)
        }

        fn deliver(&self, workspace_id: &str) {
            for subscription in self.subscriptions.lock().unwrap().iter() {
                let _ = subscription.unbounded_send(Fact {
                    subject: catalog_changed_subject("test", workspace_id),
                    payload: Bytes::new(),
                });
            }
        }

        fn set_connection(&self, epoch: Option<u64>) {
            *self.connection_epoch.lock().unwrap() = epoch;
        }
    }

    #[async_trait]
    impl Announcer for ScriptedBus {
        async fn announce(&self, subject: &str, _payload: Bytes) -> Result<(), BusError> {
            self.announced.lock().unwrap().push(subject.to_string());
            Ok(())
        }

        async fn flush(&self) -> Result<(), BusError> {
            self.flushes.fetch_add(1, Ordering::SeqCst);
            if self.refuses_flushes.load(Ordering::SeqCst) {
                return Err(BusError::Unavailable("scripted".to_string()));
            }
            Ok(())
        }

        async fn subscribe(&self, _pattern: &str) -> Result<FactStream, BusError> {
            if self.refuses_subscriptions.load(Ordering::SeqCst) {
                return Err(BusError::Unavailable("scripted".to_string()));
            }
            let (sender, receiver) = mpsc::unbounded();
            self.subscriptions.lock().unwrap().push(sender);
            Ok(receiver.boxed())
        }

        fn connection_epoch(&self) -> Option<u64> {
            *self.connection_epoch.lock().unwrap()
        }
    }

    async fn follower(bus: &Arc<ScriptedBus>) -> Arc<CatalogChanges> {
        CatalogChanges::distributed(bus.clone(), "test", false, Follow::CallsOverTheBus).await
    }

    #[tokio::test]
    async fn locally_the_version_moves_when_a_change_finishes() {
        let changes = CatalogChanges::local();
        let before = changes.version().await;
        let guard = changes.guard("w1");
        assert_eq!(
            changes.version().await,
            before,
            "not while the change is under way"
        );
        guard.finish().await;
        assert_ne!(changes.version().await, before);
        assert!(before.is_some());
    }

    #[tokio::test]
    async fn a_change_abandoned_midway_still_counts() {
        let changes = CatalogChanges::local();
        let before = changes.version().await;
        drop(changes.guard("w1"));
        assert_ne!(changes.version().await, before);
    }

    #[tokio::test]
    async fn announced_changes_reach_a_follower_before_the_catalog_answers() {
        let bus = InProcessBus::default();
        let follower =
            CatalogChanges::distributed(Arc::new(bus.clone()), "p", false, Follow::CallsOverTheBus)
                .await;
        let catalog = CatalogChanges::distributed(Arc::new(bus), "p", true, Follow::Not).await;
        let before = follower.version().await.expect("a follower has a version");
        assert_eq!(follower.version().await, Some(before), "nothing changed");
        catalog.guard("w1").finish().await;
        let after = follower.version().await.expect("still following");
        assert_ne!(after, before, "the fact was drained at once");
        assert_eq!(follower.version().await, Some(after), "and counted once");
        assert_eq!(
            catalog.version().await,
            None,
            "the catalog alone does not follow"
        );
    }

    #[tokio::test]
    async fn the_catalog_announces_on_its_prefix_and_flushes_before_finishing() {
        let bus = ScriptedBus::connected();
        let catalog =
            CatalogChanges::distributed(bus.clone(), "roost.it1", true, Follow::Not).await;
        catalog.guard("w_9").finish().await;
        assert_eq!(
            *bus.announced.lock().unwrap(),
            ["roost.it1.catalog.changed.w_9"]
        );
        assert_eq!(bus.flushes.load(Ordering::SeqCst), 1);
        assert!(bus.subscriptions.lock().unwrap().is_empty(), "no follower");
        let local = CatalogChanges::local();
        local.guard("w_9").finish().await;
        assert_eq!(
            bus.announced.lock().unwrap().len(),
            1,
            "local mode is silent"
        );
    }

    #[tokio::test]
    async fn facts_of_other_processes_move_the_version() {
        let bus = ScriptedBus::connected();
        let follower = follower(&bus).await;
        let before = follower.version().await.unwrap();
        bus.deliver("w1");
        bus.deliver("w2");
        let after = follower.version().await.unwrap();
        assert_ne!(after, before);
        assert_eq!(follower.version().await, Some(after));
    }

    #[tokio::test]
    async fn calls_over_another_path_make_a_round_trip_before_each_read() {
        let bus = ScriptedBus::connected();
        let over_the_bus = follower(&bus).await;
        assert!(over_the_bus.version().await.is_some());
        assert_eq!(bus.flushes.load(Ordering::SeqCst), 0, "draining is enough");
        let over_grpc =
            CatalogChanges::distributed(bus.clone(), "test", false, Follow::CallsOverAnotherPath)
                .await;
        let before = over_grpc.version().await.expect("following");
        bus.deliver("w1");
        assert_ne!(over_grpc.version().await, Some(before));
        assert_eq!(bus.flushes.load(Ordering::SeqCst), 2, "one per read");
        bus.refuses_flushes.store(true, Ordering::SeqCst);
        assert_eq!(
            over_grpc.version().await,
            None,
            "without the round trip a fact may still be on its way"
        );
    }

    #[tokio::test]
    async fn without_a_subscription_there_is_no_version() {
        let bus = ScriptedBus::connected();
        bus.refuses_subscriptions.store(true, Ordering::SeqCst);
        assert_eq!(
            follower(&bus).await.version().await,
            None,
            "subscription failed"
        );
        let not_following =
            CatalogChanges::distributed(bus.clone(), "test", true, Follow::Not).await;
        assert_eq!(not_following.version().await, None, "never subscribed");
        assert_eq!(not_following.stamp().await, None);
    }

    #[tokio::test]
    async fn an_ended_subscription_leaves_no_version_for_good() {
        let bus = ScriptedBus::connected();
        let follower = follower(&bus).await;
        assert!(follower.version().await.is_some());
        bus.subscriptions.lock().unwrap().clear();
        assert_eq!(follower.version().await, None);
        assert_eq!(follower.version().await, None, "still none");
    }

    #[tokio::test]
    async fn no_version_while_disconnected_and_a_reconnection_is_a_change() {
        let bus = ScriptedBus::connected();
        let follower = follower(&bus).await;
        let before = follower.version().await.unwrap();
        bus.set_connection(None);
        assert_eq!(follower.version().await, None, "disconnected");
        bus.set_connection(Some(2));
        let after = follower.version().await.expect("connected again");
        assert_ne!(after, before, "facts may have been missed meanwhile");
        assert_eq!(follower.version().await, Some(after));
    }

    #[tokio::test]
    async fn followed_stamps_expire_and_local_ones_do_not() {
        let bus = ScriptedBus::connected();
        let follower = follower(&bus).await;
        let local = CatalogChanges::local();
        let later = |stamp: ChangeStamp, by: Duration| ChangeStamp {
            taken_at: stamp.taken_at + by,
            ..stamp
        };
        let followed_entry = follower.stamp().await.unwrap();
        let just_in_time = FOLLOWED_MAX_AGE - Duration::from_millis(1);
        assert!(
            followed_entry.still_current(&later(follower.stamp().await.unwrap(), just_in_time))
        );
        assert!(
            !followed_entry
                .still_current(&later(follower.stamp().await.unwrap(), FOLLOWED_MAX_AGE))
        );
        let local_entry = local.stamp().await.unwrap();
        let an_hour = Duration::from_secs(3600);
        assert!(local_entry.still_current(&later(local.stamp().await.unwrap(), an_hour)));
        drop(local.guard("w1"));
        assert!(!local_entry.still_current(&local.stamp().await.unwrap()));
    }
}
