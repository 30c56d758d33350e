//! One conformance suite for every bus: each test runs against [`InProcessBus`] and against
//! [`NatsBus`] on the real NATS with JetStream (`ROOST_TEST_NATS_URL`, default
//! `nats://127.0.0.1:4222`). Tests use their own subjects and queues (random suffix) and delete
//! the streams they create, even when they fail.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use roost_bus::{
    Announcer, BusError, ConsumerOptions, Enqueued, FactStream, InProcessBus, Leases, NatsBus,
    NatsBusOptions, WorkQueue,
};

/// A handle on the bus under test, as one process holds it.
#[derive(Clone)]
struct Bus {
    facts: Arc<dyn Announcer>,
    work: Arc<dyn WorkQueue>,
    leases: Arc<dyn Leases>,
}

/// An implementation under test: `open` gives another handle on the same bus (for NATS, a new
/// connection, like another process).
trait Backend: Send + Sync + 'static {
    fn open(&self) -> BoxFuture<'static, Bus>;
}

struct InProcess(InProcessBus);

impl Backend for InProcess {
    fn open(&self) -> BoxFuture<'static, Bus> {
        let bus = self.0.clone();
        Box::pin(async move {
            Bus {
                facts: Arc::new(bus.clone()),
                work: Arc::new(bus.clone()),
                leases: Arc::new(bus),
            }
        })
    }
}

struct Nats;

fn nats_url() -> String {
    std::env::var("ROOST_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

impl Backend for Nats {
    fn open(&self) -> BoxFuture<'static, Bus> {
        Box::pin(async move {
            let bus = NatsBus::connect(&nats_url(), NatsBusOptions::default())
                .await
                .expect("NATS with JetStream must run at ROOST_TEST_NATS_URL");
            Bus {
                facts: Arc::new(bus.clone()),
                work: Arc::new(bus.clone()),
                leases: Arc::new(bus),
            }
        })
    }
}

fn suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Runs `body` with a fresh queue name and deletes the queue afterwards, also when `body` fails.
async fn with_queue<Body, Running>(backend: Arc<dyn Backend>, body: Body)
where
    Body: FnOnce(Arc<dyn Backend>, String) -> Running,
    Running: Future<Output = ()> + Send + 'static,
{
    let queue = format!("test_{}", suffix());
    let outcome = tokio::spawn(body(backend.clone(), queue.clone())).await;
    let bus = backend.open().await;
    bus.work.delete_queue(&queue).await.expect("delete queue");
    if let Err(error) = outcome {
        std::panic::resume_unwind(error.into_panic());
    }
}

fn options(ack_wait: Duration) -> ConsumerOptions {
    ConsumerOptions {
        ack_wait,
        max_deliveries: None,
    }
}

async fn next_fact(facts: &mut FactStream) -> Option<roost_bus::Fact> {
    tokio::time::timeout(Duration::from_secs(2), facts.next())
        .await
        .ok()
        .flatten()
}

/// Whether another fact comes within a short while (it should not).
async fn another_fact(facts: &mut FactStream) -> Option<roost_bus::Fact> {
    tokio::time::timeout(Duration::from_millis(300), facts.next())
        .await
        .ok()
        .flatten()
}

async fn facts_reach_every_matching_subscriber(backend: Arc<dyn Backend>) {
    let prefix = format!("roost.test.facts.{}", suffix());
    let announcer = backend.open().await;
    let listener = backend.open().await;
    let mut changed = listener
        .facts
        .subscribe(&format!("{prefix}.catalog.changed.*"))
        .await
        .expect("subscribe");
    let mut everything = listener
        .facts
        .subscribe(&format!("{prefix}.>"))
        .await
        .expect("subscribe");
    let catalog_subject = format!("{prefix}.catalog.changed.ws1");
    let jobs_subject = format!("{prefix}.jobs.finished.j1");
    announcer
        .facts
        .announce(&catalog_subject, Bytes::from_static(b"events"))
        .await
        .expect("announce");
    announcer
        .facts
        .announce(&jobs_subject, Bytes::from_static(b"done"))
        .await
        .expect("announce");

    let fact = next_fact(&mut changed).await.expect("catalog fact");
    assert_eq!(fact.subject, catalog_subject);
    assert_eq!(fact.payload, Bytes::from_static(b"events"));
    assert_eq!(
        another_fact(&mut changed).await,
        None,
        "jobs facts do not match"
    );

    let first = next_fact(&mut everything).await.expect("first");
    let second = next_fact(&mut everything).await.expect("second");
    assert_eq!(
        (first.subject, second.subject),
        (catalog_subject, jobs_subject),
        "in announcement order"
    );
}

async fn facts_announced_before_subscribing_are_not_replayed(backend: Arc<dyn Backend>) {
    let subject = format!("roost.test.replay.{}", suffix());
    let bus = backend.open().await;
    bus.facts
        .announce(&subject, Bytes::from_static(b"old"))
        .await
        .expect("announce");
    let mut facts = bus.facts.subscribe(&subject).await.expect("subscribe");
    bus.facts
        .announce(&subject, Bytes::from_static(b"new"))
        .await
        .expect("announce");
    let fact = next_fact(&mut facts).await.expect("a fact");
    assert_eq!(fact.payload, Bytes::from_static(b"new"));
    assert_eq!(another_fact(&mut facts).await, None);
}

/// What catalog change facts rely on: once `flush` returns, the bus has the fact, so a
/// subscriber receives it before whatever anyone announces afterwards.
async fn a_flushed_fact_comes_before_what_is_announced_after(backend: Arc<dyn Backend>) {
    let subject = format!("roost.test.flushed.{}", suffix());
    let announcer = backend.open().await;
    let listener = backend.open().await;
    assert!(announcer.facts.connection_epoch().is_some(), "connected");
    let mut facts = listener.facts.subscribe(&subject).await.expect("subscribe");
    for round in 0..20 {
        let flushed = Bytes::from(format!("flushed {round}"));
        announcer
            .facts
            .announce(&subject, flushed.clone())
            .await
            .expect("announce");
        announcer.facts.flush().await.expect("flush");
        // From the listener's own connection: on NATS it reaches the server by another path.
        listener
            .facts
            .announce(&subject, Bytes::from(format!("after {round}")))
            .await
            .expect("announce");
        let first = next_fact(&mut facts).await.expect("a fact");
        assert_eq!(first.payload, flushed, "round {round}");
        let second = next_fact(&mut facts).await.expect("a fact");
        assert_eq!(second.payload, Bytes::from(format!("after {round}")));
    }
}

async fn invalid_names_are_refused(backend: Arc<dyn Backend>) {
    let bus = backend.open().await;
    for subject in ["", "a..b", "a.*", "a b"] {
        assert!(
            matches!(
                bus.facts.announce(subject, Bytes::new()).await,
                Err(BusError::InvalidName { .. })
            ),
            "{subject:?}"
        );
    }
    assert!(matches!(
        bus.facts.subscribe("a.>.b").await,
        Err(BusError::InvalidName { .. })
    ));
    for queue in ["", "a.b", "a b", "q*"] {
        assert!(
            matches!(
                bus.work.enqueue(queue, "id", Bytes::new()).await,
                Err(BusError::InvalidName { .. })
            ),
            "{queue:?}"
        );
    }
    // Removing a queue that never existed is fine.
    bus.work
        .delete_queue(&format!("never_{}", suffix()))
        .await
        .expect("nothing to delete");
}

async fn enqueue_stores_a_retried_id_once(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let bus = backend.open().await;
        let work = &bus.work;
        let stored = work
            .enqueue(&queue, "batch-1", Bytes::from_static(b"one"))
            .await
            .expect("enqueue");
        assert_eq!(stored, Enqueued::Stored);
        // The retry of a producer that did not see the first answer.
        let retried = work
            .enqueue(&queue, "batch-1", Bytes::from_static(b"one"))
            .await
            .expect("enqueue");
        assert_eq!(retried, Enqueued::Duplicate);
        let other = work
            .enqueue(&queue, "batch-2", Bytes::from_static(b"two"))
            .await
            .expect("enqueue");
        assert_eq!(other, Enqueued::Stored);
        assert_eq!(work.pending(&queue).await.expect("pending"), 2);

        let mut consumer = work
            .consumer(&queue, options(Duration::from_secs(5)))
            .await
            .expect("consumer");
        let first = consumer
            .next(Duration::from_secs(2))
            .await
            .expect("next")
            .expect("first");
        assert_eq!(
            (first.id(), first.payload().as_ref()),
            ("batch-1", &b"one"[..])
        );
        assert_eq!(first.deliveries(), 1);
        let second = consumer
            .next(Duration::from_secs(2))
            .await
            .expect("next")
            .expect("second");
        assert_eq!(
            (second.id(), second.payload().as_ref()),
            ("batch-2", &b"two"[..])
        );
        first.ack().await.expect("ack");
        second.ack().await.expect("ack");
        assert!(
            consumer
                .next(Duration::from_millis(300))
                .await
                .expect("next")
                .is_none()
        );
        assert_eq!(work.pending(&queue).await.expect("pending"), 0);
    })
    .await;
}

async fn work_not_acknowledged_comes_back_after_ack_wait(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let producer = backend.open().await;
        producer
            .work
            .enqueue(&queue, "job-1", Bytes::from_static(b"populate"))
            .await
            .expect("enqueue");
        let ack_wait = Duration::from_secs(1);
        {
            // A worker takes the message and dies without acknowledging it.
            let doomed = backend.open().await;
            let mut consumer = doomed
                .work
                .consumer(&queue, options(ack_wait))
                .await
                .expect("consumer");
            let item = consumer
                .next(Duration::from_secs(2))
                .await
                .expect("next")
                .expect("item");
            assert_eq!(item.deliveries(), 1);
            drop(item);
            drop(consumer);
            drop(doomed);
        }
        let survivor = backend.open().await;
        let mut consumer = survivor
            .work
            .consumer(&queue, options(ack_wait))
            .await
            .expect("consumer");
        let started = Instant::now();
        let again = consumer
            .next(Duration::from_secs(5))
            .await
            .expect("next")
            .expect("redelivered");
        assert_eq!(again.id(), "job-1");
        assert_eq!(again.payload(), &Bytes::from_static(b"populate"));
        assert_eq!(again.deliveries(), 2, "the second delivery says so");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        again.ack().await.expect("ack");
        assert_eq!(survivor.work.pending(&queue).await.expect("pending"), 0);
    })
    .await;
}

async fn work_acknowledged_after_processing_is_not_redelivered(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let bus = backend.open().await;
        bus.work
            .enqueue(&queue, "job-2", Bytes::from_static(b"copy"))
            .await
            .expect("enqueue");
        let ack_wait = Duration::from_millis(800);
        let mut consumer = bus
            .work
            .consumer(&queue, options(ack_wait))
            .await
            .expect("consumer");
        let item = consumer
            .next(Duration::from_secs(2))
            .await
            .expect("next")
            .expect("item");
        // The work, then the ack.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            bus.work.pending(&queue).await.expect("pending"),
            1,
            "not done yet"
        );
        item.ack().await.expect("ack");
        assert_eq!(bus.work.pending(&queue).await.expect("pending"), 0);
        // Well past the ack wait: nothing comes back.
        let later = consumer.next(ack_wait * 2).await.expect("next");
        assert!(later.is_none(), "acknowledged work came back: {later:?}");
    })
    .await;
}

async fn in_progress_keeps_a_long_job_with_its_worker(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let bus = backend.open().await;
        bus.work
            .enqueue(&queue, "long", Bytes::from_static(b"x"))
            .await
            .expect("enqueue");
        let ack_wait = Duration::from_millis(1000);
        let mut worker = bus
            .work
            .consumer(&queue, options(ack_wait))
            .await
            .expect("consumer");
        let mut other = bus
            .work
            .consumer(&queue, options(ack_wait))
            .await
            .expect("consumer");
        let item = worker
            .next(Duration::from_secs(2))
            .await
            .expect("next")
            .expect("item");
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(600)).await;
            item.in_progress().await.expect("progress");
        }
        // 1.8 s after delivery, well past one ack wait: still with its worker.
        assert!(
            other
                .next(Duration::from_millis(500))
                .await
                .expect("next")
                .is_none()
        );
        item.ack().await.expect("ack");
    })
    .await;
}

async fn retry_after_delivers_again_later(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let bus = backend.open().await;
        bus.work
            .enqueue(&queue, "flaky", Bytes::from_static(b"x"))
            .await
            .expect("enqueue");
        let mut consumer = bus
            .work
            .consumer(&queue, options(Duration::from_secs(30)))
            .await
            .expect("consumer");
        let item = consumer
            .next(Duration::from_secs(2))
            .await
            .expect("next")
            .expect("item");
        item.retry_after(Duration::from_millis(500))
            .await
            .expect("retry");
        let started = Instant::now();
        let again = consumer
            .next(Duration::from_secs(3))
            .await
            .expect("next")
            .expect("again");
        let waited = started.elapsed();
        assert_eq!(again.deliveries(), 2);
        assert!(
            waited >= Duration::from_millis(350),
            "the delay was kept: {waited:?}"
        );
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        again.ack().await.expect("ack");
    })
    .await;
}

async fn max_deliveries_stops_redelivery(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let bus = backend.open().await;
        bus.work
            .enqueue(&queue, "poison", Bytes::from_static(b"x"))
            .await
            .expect("enqueue");
        let mut consumer = bus
            .work
            .consumer(
                &queue,
                ConsumerOptions {
                    ack_wait: Duration::from_millis(500),
                    max_deliveries: Some(2),
                },
            )
            .await
            .expect("consumer");
        for delivery in 1..=2 {
            let item = consumer
                .next(Duration::from_secs(3))
                .await
                .expect("next")
                .expect("item");
            assert_eq!(item.deliveries(), delivery);
        }
        assert!(
            consumer
                .next(Duration::from_millis(1500))
                .await
                .expect("next")
                .is_none()
        );
        // Given up but kept, for someone to look at.
        assert_eq!(bus.work.pending(&queue).await.expect("pending"), 1);
    })
    .await;
}

async fn give_up_removes_a_message_that_can_never_work(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let bus = backend.open().await;
        bus.work
            .enqueue(&queue, "bad", Bytes::from_static(b"x"))
            .await
            .expect("enqueue");
        let mut consumer = bus
            .work
            .consumer(&queue, options(Duration::from_millis(500)))
            .await
            .expect("consumer");
        let item = consumer
            .next(Duration::from_secs(2))
            .await
            .expect("next")
            .expect("item");
        item.give_up().await.expect("give up");
        assert!(
            consumer
                .next(Duration::from_millis(1200))
                .await
                .expect("next")
                .is_none()
        );
        assert_eq!(bus.work.pending(&queue).await.expect("pending"), 0);
    })
    .await;
}

async fn workers_share_the_messages_of_a_queue(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let producer = backend.open().await;
        for i in 0..20 {
            producer
                .work
                .enqueue(&queue, &format!("m{i}"), Bytes::from(format!("{i}")))
                .await
                .expect("enqueue");
        }
        let mut workers = Vec::new();
        for _ in 0..2 {
            let bus = backend.open().await;
            let consumer = bus
                .work
                .consumer(&queue, options(Duration::from_secs(10)))
                .await
                .expect("consumer");
            workers.push(tokio::spawn(async move {
                let _bus = bus;
                let mut consumer = consumer;
                let mut taken = Vec::new();
                while let Some(item) = consumer
                    .next(Duration::from_millis(500))
                    .await
                    .expect("next")
                {
                    taken.push(item.id().to_string());
                    item.ack().await.expect("ack");
                }
                taken
            }));
        }
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.expect("worker"));
        }
        all.sort_by_key(|id| id[1..].parse::<u32>().unwrap_or(u32::MAX));
        let expected: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        assert_eq!(all, expected, "each message exactly once");
    })
    .await;
}

async fn a_waiting_worker_gets_work_as_soon_as_it_is_stored(backend: Arc<dyn Backend>) {
    with_queue(backend, |backend, queue| async move {
        let worker_bus = backend.open().await;
        let mut consumer = worker_bus
            .work
            .consumer(&queue, options(Duration::from_secs(10)))
            .await
            .expect("consumer");
        let waiting = tokio::spawn(async move {
            let started = Instant::now();
            let item = consumer.next(Duration::from_secs(5)).await.expect("next");
            (item.map(|item| item.id().to_string()), started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let producer = backend.open().await;
        producer
            .work
            .enqueue(&queue, "wake", Bytes::from_static(b"x"))
            .await
            .expect("enqueue");
        let (id, waited) = waiting.await.expect("worker");
        assert_eq!(id.as_deref(), Some("wake"));
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    })
    .await;
}

async fn consumers_of_a_deleted_queue_fail(backend: Arc<dyn Backend>) {
    let queue = format!("test_{}", suffix());
    let bus = backend.open().await;
    bus.work
        .enqueue(&queue, "a", Bytes::from_static(b"x"))
        .await
        .expect("enqueue");
    assert_eq!(bus.work.pending(&queue).await.expect("pending"), 1);
    let mut consumer = bus
        .work
        .consumer(&queue, options(Duration::from_secs(5)))
        .await
        .expect("consumer");
    bus.work.delete_queue(&queue).await.expect("delete");
    assert_eq!(bus.work.pending(&queue).await.expect("pending"), 0);
    let outcome = consumer.next(Duration::from_millis(500)).await;
    assert!(outcome.is_err(), "{outcome:?}");
    // Asking about a queue does not create it.
    let never = format!("never_{}", suffix());
    assert_eq!(bus.work.pending(&never).await.expect("pending"), 0);
    bus.work
        .delete_queue(&never)
        .await
        .expect("nothing to delete");
}

const LEASE_TTL: Duration = Duration::from_secs(5);

async fn a_lease_has_one_holder_until_released(backend: Arc<dyn Backend>) {
    let name = format!("lease_{}", suffix());
    let (first, second) = (backend.open().await, backend.open().await);
    assert!(first.leases.acquire(&name, "a", LEASE_TTL).await.unwrap());
    assert!(!second.leases.acquire(&name, "b", LEASE_TTL).await.unwrap());
    // Renewing is acquiring again.
    assert!(first.leases.acquire(&name, "a", LEASE_TTL).await.unwrap());
    // Only the holder can release.
    second.leases.release(&name, "b").await.unwrap();
    assert!(!second.leases.acquire(&name, "b", LEASE_TTL).await.unwrap());
    first.leases.release(&name, "a").await.unwrap();
    assert!(second.leases.acquire(&name, "b", LEASE_TTL).await.unwrap());
    assert!(!first.leases.acquire(&name, "a", LEASE_TTL).await.unwrap());
    // Releasing twice, or a lease never taken, is not an error.
    first.leases.release(&name, "a").await.unwrap();
    first
        .leases
        .release(&format!("never_{name}"), "a")
        .await
        .unwrap();
}

async fn a_lease_not_renewed_passes_on_after_its_ttl(backend: Arc<dyn Backend>) {
    let name = format!("lease_{}", suffix());
    let (first, second) = (backend.open().await, backend.open().await);
    let ttl = Duration::from_millis(400);
    assert!(first.leases.acquire(&name, "a", ttl).await.unwrap());
    assert!(!second.leases.acquire(&name, "b", ttl).await.unwrap());
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(second.leases.acquire(&name, "b", LEASE_TTL).await.unwrap());
    assert!(!first.leases.acquire(&name, "a", ttl).await.unwrap());
}

async fn one_of_many_contenders_wins_a_lease(backend: Arc<dyn Backend>) {
    let name = format!("lease_{}", suffix());
    let mut contenders = Vec::new();
    for holder in 0..8 {
        let bus = backend.open().await;
        let name = name.clone();
        contenders.push(tokio::spawn(async move {
            bus.leases
                .acquire(&name, &format!("holder-{holder}"), LEASE_TTL)
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for contender in contenders {
        winners += usize::from(contender.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn lease_names_are_checked(backend: Arc<dyn Backend>) {
    let bus = backend.open().await;
    for name in ["", "a.b", "a b", "a>"] {
        assert!(matches!(
            bus.leases.acquire(name, "a", LEASE_TTL).await,
            Err(BusError::InvalidName { .. })
        ));
    }
}

macro_rules! conformance {
    ($($test:ident),+ $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $test() {
                    let backend = std::sync::Arc::new(super::InProcess(
                        super::InProcessBus::default(),
                    ));
                    super::$test(backend).await;
                }
            )+
        }
        mod nats {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(std::sync::Arc::new(super::Nats)).await;
                }
            )+
        }
    };
}

conformance!(
    facts_reach_every_matching_subscriber,
    facts_announced_before_subscribing_are_not_replayed,
    a_flushed_fact_comes_before_what_is_announced_after,
    invalid_names_are_refused,
    enqueue_stores_a_retried_id_once,
    work_not_acknowledged_comes_back_after_ack_wait,
    work_acknowledged_after_processing_is_not_redelivered,
    in_progress_keeps_a_long_job_with_its_worker,
    retry_after_delivers_again_later,
    max_deliveries_stops_redelivery,
    give_up_removes_a_message_that_can_never_work,
    workers_share_the_messages_of_a_queue,
    a_waiting_worker_gets_work_as_soon_as_it_is_stored,
    consumers_of_a_deleted_queue_fail,
    a_lease_has_one_holder_until_released,
    a_lease_not_renewed_passes_on_after_its_ttl,
    one_of_many_contenders_wins_a_lease,
    lease_names_are_checked,
);
