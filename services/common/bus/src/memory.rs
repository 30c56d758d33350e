//! The in-process bus: facts on a tokio broadcast channel, work queues in memory with the
//! delivery rules of a JetStream work queue (dedup window, ack wait, redelivery, delivery count).
//! Nothing survives the process; it serves `roost local` and tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;

use crate::subject::{check_pattern, check_subject, matches};
use crate::{
    Acknowledger, Announcer, BusError, ConsumerOptions, Enqueued, Fact, FactStream, Leases,
    WorkConsumer, WorkItem, WorkQueue, check_queue_name,
};

/// Facts a subscriber may fall behind by before it misses some.
const FACT_BUFFER: usize = 4096;

/// A bus inside one process. Clones share the same facts and queues.
#[derive(Clone)]
pub struct InProcessBus {
    shared: Arc<Shared>,
}

struct Shared {
    facts: broadcast::Sender<Fact>,
    queues: Mutex<HashMap<String, Arc<LocalQueue>>>,
    duplicate_window: Duration,
    /// Lease name to its holder and when the lease runs out.
    leases: Mutex<HashMap<String, (String, Instant)>>,
}

impl std::fmt::Debug for InProcessBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBus")
            .field("duplicate_window", &self.shared.duplicate_window)
            .finish_non_exhaustive()
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        // JetStream's default duplicate window.
        Self::new(Duration::from_secs(120))
    }
}

impl InProcessBus {
    /// A bus whose queues drop a message whose id was stored within `duplicate_window`.
    pub fn new(duplicate_window: Duration) -> Self {
        let (facts, _) = broadcast::channel(FACT_BUFFER);
        InProcessBus {
            shared: Arc::new(Shared {
                facts,
                queues: Mutex::default(),
                duplicate_window,
                leases: Mutex::default(),
            }),
        }
    }

    fn queue(&self, name: &str) -> Result<Arc<LocalQueue>, BusError> {
        check_queue_name(name)?;
        let mut queues = lock(&self.shared.queues);
        Ok(queues.entry(name.to_string()).or_default().clone())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent at every await-free step, so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait]
impl Announcer for InProcessBus {
    async fn announce(&self, subject: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(subject)?;
        // No subscriber is not an error: nobody needed the fact.
        let _ = self.shared.facts.send(Fact {
            subject: subject.to_string(),
            payload,
        });
        Ok(())
    }

    async fn flush(&self) -> Result<(), BusError> {
        // A fact is in every subscriber's channel once `announce` returns.
        Ok(())
    }

    async fn subscribe(&self, pattern: &str) -> Result<FactStream, BusError> {
        check_pattern(pattern)?;
        let receiver = self.shared.facts.subscribe();
        let pattern = pattern.to_string();
        let facts = futures::stream::unfold(receiver, move |mut receiver| {
            let pattern = pattern.clone();
            async move {
                loop {
                    match receiver.recv().await {
                        Ok(fact) if matches(&pattern, &fact.subject) => {
                            return Some((fact, receiver));
                        }
                        Ok(_) => continue,
                        Err(broadcast::error::RecvError::Lagged(missed)) => {
                            tracing::warn!(pattern, missed, "a fact subscriber fell behind");
                            continue;
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        Ok(facts.boxed())
    }

    fn connection_epoch(&self) -> Option<u64> {
        // In one process there is no connection to lose.
        Some(0)
    }
}

/// A stored message.
#[derive(Debug, Clone)]
struct Stored {
    id: String,
    payload: Bytes,
    deliveries: u64,
    /// Not delivered before this (a retry with a delay).
    available_at: Instant,
}

#[derive(Default)]
struct LocalQueue {
    state: Mutex<QueueState>,
    changed: Notify,
}

#[derive(Default)]
struct QueueState {
    next_seq: u64,
    /// Waiting for delivery, by sequence, so redeliveries keep their place.
    ready: BTreeMap<u64, Stored>,
    /// Delivered and not acknowledged, with the time they come back.
    in_flight: HashMap<u64, (Stored, Instant)>,
    /// Delivered `max_deliveries` times without acknowledgment: kept, never delivered again.
    given_up: BTreeMap<u64, Stored>,
    /// Ids stored recently, with when.
    recent_ids: HashMap<String, Instant>,
    options: ConsumerOptions,
    /// The queue was deleted: its consumers fail, as JetStream's do once the stream is gone.
    deleted: bool,
}

impl QueueState {
    /// Puts messages whose ack wait ran out back in line (or aside, past `max_deliveries`).
    fn expire(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, (_, due))| *due <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some((message, _)) = self.in_flight.remove(&seq) {
                self.requeue(seq, message, now);
            }
        }
    }

    fn requeue(&mut self, seq: u64, mut message: Stored, available_at: Instant) {
        let exhausted = self
            .options
            .max_deliveries
            .is_some_and(|max| message.deliveries >= u64::from(max));
        if exhausted {
            self.given_up.insert(seq, message);
        } else {
            message.available_at = available_at;
            self.ready.insert(seq, message);
        }
    }

    /// When something may change without anyone acting: an ack wait or a retry delay ends.
    fn next_change(&self) -> Option<Instant> {
        let due = self.in_flight.values().map(|(_, due)| *due);
        let available = self.ready.values().map(|message| message.available_at);
        due.chain(available).min()
    }
}

#[async_trait]
impl WorkQueue for InProcessBus {
    async fn enqueue(&self, queue: &str, id: &str, payload: Bytes) -> Result<Enqueued, BusError> {
        let local = self.queue(queue)?;
        let now = Instant::now();
        {
            let mut state = lock(&local.state);
            let window = self.shared.duplicate_window;
            state
                .recent_ids
                .retain(|_, stored_at| now.duration_since(*stored_at) < window);
            if state.recent_ids.contains_key(id) {
                return Ok(Enqueued::Duplicate);
            }
            state.recent_ids.insert(id.to_string(), now);
            let seq = state.next_seq;
            state.next_seq += 1;
            state.ready.insert(
                seq,
                Stored {
                    id: id.to_string(),
                    payload,
                    deliveries: 0,
                    available_at: now,
                },
            );
        }
        local.changed.notify_waiters();
        Ok(Enqueued::Stored)
    }

    async fn consumer(
        &self,
        queue: &str,
        options: ConsumerOptions,
    ) -> Result<Box<dyn WorkConsumer>, BusError> {
        let local = self.queue(queue)?;
        lock(&local.state).options = options;
        Ok(Box::new(LocalConsumer { queue: local }))
    }

    async fn pending(&self, queue: &str) -> Result<u64, BusError> {
        check_queue_name(queue)?;
        let Some(local) = lock(&self.shared.queues).get(queue).cloned() else {
            return Ok(0);
        };
        let state = lock(&local.state);
        Ok((state.ready.len() + state.in_flight.len() + state.given_up.len()) as u64)
    }

    async fn delete_queue(&self, queue: &str) -> Result<(), BusError> {
        check_queue_name(queue)?;
        let removed = lock(&self.shared.queues).remove(queue);
        if let Some(local) = removed {
            {
                let mut state = lock(&local.state);
                state.deleted = true;
                state.ready.clear();
                state.in_flight.clear();
                state.given_up.clear();
            }
            local.changed.notify_waiters();
        }
        Ok(())
    }
}

struct LocalConsumer {
    queue: Arc<LocalQueue>,
}

#[async_trait]
impl WorkConsumer for LocalConsumer {
    async fn next(&mut self, wait: Duration) -> Result<Option<WorkItem>, BusError> {
        let give_up_at = Instant::now() + wait;
        loop {
            // Registered before looking, so an enqueue between the look and the wait wakes us.
            let changed = self.queue.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let wake_at = {
                let mut state = lock(&self.queue.state);
                if state.deleted {
                    return Err(BusError::Refused("the queue was deleted".to_string()));
                }
                let now = Instant::now();
                state.expire(now);
                let available = state
                    .ready
                    .iter()
                    .find(|(_, message)| message.available_at <= now)
                    .map(|(seq, _)| *seq);
                let taken = available
                    .and_then(|seq| state.ready.remove(&seq).map(|message| (seq, message)));
                if let Some((seq, mut message)) = taken {
                    message.deliveries += 1;
                    let due = now + state.options.ack_wait;
                    state.in_flight.insert(seq, (message.clone(), due));
                    return Ok(Some(WorkItem {
                        id: message.id,
                        payload: message.payload,
                        deliveries: message.deliveries,
                        acknowledger: Box::new(LocalDelivery {
                            queue: self.queue.clone(),
                            seq,
                        }),
                    }));
                }
                state
                    .next_change()
                    .map_or(give_up_at, |change| change.min(give_up_at))
            };
            if Instant::now() >= give_up_at {
                return Ok(None);
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep_until(wake_at) => {}
            }
        }
    }
}

/// One delivery of an in-process message.
struct LocalDelivery {
    queue: Arc<LocalQueue>,
    seq: u64,
}

#[async_trait]
impl Acknowledger for LocalDelivery {
    async fn ack(&self) -> Result<(), BusError> {
        let mut state = lock(&self.queue.state);
        state.in_flight.remove(&self.seq);
        // Acknowledged after its ack wait ran out but before it went out again: still done.
        state.ready.remove(&self.seq);
        Ok(())
    }

    async fn retry_after(&self, delay: Duration) -> Result<(), BusError> {
        {
            let mut state = lock(&self.queue.state);
            if let Some((message, _)) = state.in_flight.remove(&self.seq) {
                state.requeue(self.seq, message, Instant::now() + delay);
            }
        }
        self.queue.changed.notify_waiters();
        Ok(())
    }

    async fn in_progress(&self) -> Result<(), BusError> {
        let mut state = lock(&self.queue.state);
        let ack_wait = state.options.ack_wait;
        if let Some((_, due)) = state.in_flight.get_mut(&self.seq) {
            *due = Instant::now() + ack_wait;
        }
        Ok(())
    }

    async fn give_up(&self) -> Result<(), BusError> {
        self.ack().await
    }
}

#[async_trait]
impl Leases for InProcessBus {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BusError> {
        check_queue_name(name)?;
        let now = Instant::now();
        let mut leases = lock(&self.shared.leases);
        let taken = leases
            .get(name)
            .is_some_and(|(current, until)| current != holder && *until > now);
        if !taken {
            leases.insert(name.to_string(), (holder.to_string(), now + ttl));
        }
        Ok(!taken)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), BusError> {
        check_queue_name(name)?;
        let mut leases = lock(&self.shared.leases);
        if leases
            .get(name)
            .is_some_and(|(current, _)| current == holder)
        {
            leases.remove(name);
        }
        Ok(())
    }
}
