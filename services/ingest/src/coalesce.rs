//! Inserts into the same table coalesced: while a table's inserts are running, batches that
//! arrive for it wait and then go to the engine together, as one insert.
//!
//! Every insert costs the engine a fixed amount (planning, a new part with a file per column,
//! and later merging that part away), a few milliseconds of CPU whatever its size. Under
//! concurrent Events API traffic for one data source, joining the batches that queued up behind
//! a running insert turns many small parts into a few large ones. A caller still gets its answer
//! only once its own rows are in the engine, so `wait=true` keeps its meaning.
//!
//! - At most `turns` inserts into one table run at once (the ingest service uses one: a larger
//!   insert costs the engine much less per row than several small ones running side by side).
//! - A turn takes every waiting batch with the same column list and format (a table whose schema
//!   just changed may have both), up to [`MAX_COALESCED_BYTES`]. Their Native blocks are merged
//!   into one block: the engine squashes several small blocks into one before storing them, which
//!   cost a few percent more per row (`insert_formats::joint_insert_as_one_block_or_several`).
//! - Callers announce a batch before decoding it ([`InsertQueues::announce`]). A turn about to
//!   insert first waits, at most [`GATHER_WAIT`], for announced batches still being decoded, as
//!   PostgreSQL's `commit_delay` waits only when other transactions are about to commit: a lone
//!   caller never waits, busy tables get fewer, larger inserts.
//! - The insert runs on its own task, so a caller that goes away does not strand the others.
//! - If a joint insert fails, each batch is retried alone, so one batch's error is never
//!   reported to the callers of the others.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use roost_engine::{Engine, EngineError, InsertBlock};
use tokio::sync::{Notify, Semaphore, oneshot};

use crate::decode::{BlockFormat, merge_native_blocks};

/// A joint insert stops growing past this many bytes.
pub const MAX_COALESCED_BYTES: usize = 64 << 20;

/// How long a turn waits at most for announced batches before inserting what is there.
pub const GATHER_WAIT: Duration = Duration::from_millis(20);

/// Tables with a queue, kept while idle; past this many the idle ones are dropped.
const KEPT_QUEUES: usize = 256;

/// The coalescing insert queues of every table.
pub struct InsertQueues {
    engine: Arc<dyn Engine>,
    turns: usize,
    tables: Mutex<HashMap<String, Arc<TableQueue>>>,
}

struct TableQueue {
    turns: Arc<Semaphore>,
    waiting: Mutex<Vec<Waiting>>,
    /// Announced batches not queued yet.
    incoming: AtomicUsize,
    /// Signalled whenever an announced batch is queued or given up.
    arrived: Notify,
}

/// A batch announced for a table and not queued yet (it is being decoded): turns about to insert
/// into that table wait a little for it. Dropping it withdraws the announcement.
pub struct Incoming<'a> {
    queues: &'a InsertQueues,
    table: String,
    queue: Arc<TableQueue>,
}

impl Drop for Incoming<'_> {
    fn drop(&mut self) {
        self.queue.incoming.fetch_sub(1, Ordering::AcqRel);
        self.queue.arrived.notify_waiters();
    }
}

/// One batch waiting for its insert.
struct Waiting {
    columns: String,
    format: &'static str,
    data: Bytes,
    done: oneshot::Sender<Result<(), EngineError>>,
}

impl InsertQueues {
    /// Queues inserting into `engine`, running at most `turns` inserts per table at once.
    pub fn new(engine: Arc<dyn Engine>, turns: usize) -> InsertQueues {
        InsertQueues {
            engine,
            turns: turns.max(1),
            tables: Mutex::new(HashMap::new()),
        }
    }

    /// Announces a batch for the quoted `table` that is on its way (see [`Incoming`]).
    pub fn announce(&self, table: &str) -> Incoming<'_> {
        let queue = self.queue(table);
        queue.incoming.fetch_add(1, Ordering::AcqRel);
        Incoming {
            queues: self,
            table: table.to_owned(),
            queue,
        }
    }

    /// Inserts `data` (in `format`, for the quoted `columns` of the quoted `table`), possibly
    /// together with other batches for the same table; returns once these rows are stored.
    pub async fn insert(
        &self,
        table: &str,
        columns: &str,
        format: &'static str,
        data: Bytes,
    ) -> Result<(), EngineError> {
        self.announce(table).insert(columns, format, data).await
    }

    fn queue(&self, table: &str) -> Arc<TableQueue> {
        let mut tables = lock(&self.tables);
        if let Some(queue) = tables.get(table) {
            return queue.clone();
        }
        if tables.len() >= KEPT_QUEUES {
            // Idle queues hold nothing: only this map refers to them.
            tables.retain(|_, queue| Arc::strong_count(queue) > 1);
        }
        let queue = Arc::new(TableQueue {
            turns: Arc::new(Semaphore::new(self.turns)),
            waiting: Mutex::new(Vec::new()),
            incoming: AtomicUsize::new(0),
            arrived: Notify::new(),
        });
        tables.insert(table.to_owned(), queue.clone());
        queue
    }
}

impl Incoming<'_> {
    /// Queues the announced batch: `data` in `format` for the quoted `columns`; returns once
    /// these rows are stored, possibly together with other batches for the same table.
    pub async fn insert(
        self,
        columns: &str,
        format: &'static str,
        data: Bytes,
    ) -> Result<(), EngineError> {
        let (queue, table, engine) = (
            self.queue.clone(),
            self.table.clone(),
            self.queues.engine.clone(),
        );
        let (done, mut answer) = oneshot::channel();
        lock(&queue.waiting).push(Waiting {
            columns: columns.to_owned(),
            format,
            data,
            done,
        });
        // Queued: no longer incoming.
        drop(self);
        loop {
            let turn = tokio::select! {
                biased;
                // Another turn took this batch along.
                result = &mut answer => return result.unwrap_or_else(|_| Err(lost())),
                turn = queue.turns.clone().acquire_owned() => {
                    turn.map_err(|_| EngineError::Unavailable("insert queue closed".into()))?
                }
            };
            gather(&queue).await;
            let group = take_group(&mut lock(&queue.waiting));
            if group.is_empty() {
                // Taken by a turn that started meanwhile; its answer is on its way.
                drop(turn);
                return answer.await.unwrap_or_else(|_| Err(lost()));
            }
            let (engine, table) = (engine.clone(), table.clone());
            tokio::spawn(async move {
                insert_group(engine.as_ref(), &table, group).await;
                drop(turn);
            });
            // Loop: this batch was in the group (the answer comes next) unless its column list
            // differs from the oldest waiting batch's, in which case it needs a turn of its own.
        }
    }
}

/// Waits until no announced batch is on its way to `queue`, or [`GATHER_WAIT`] has passed.
async fn gather(queue: &TableQueue) {
    let deadline = tokio::time::Instant::now() + GATHER_WAIT;
    loop {
        // Registered before looking, so a batch arriving in between is not missed.
        let arrived = queue.arrived.notified();
        tokio::pin!(arrived);
        arrived.as_mut().enable();
        if queue.incoming.load(Ordering::Acquire) == 0 {
            return;
        }
        if tokio::time::timeout_at(deadline, arrived).await.is_err() {
            return;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data under these locks stays consistent even if a holder panicked.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lost() -> EngineError {
    EngineError::Unavailable("the insert task ended without an answer".into())
}

/// The oldest waiting batch and every later one with the same columns and format, within
/// [`MAX_COALESCED_BYTES`], in arrival order.
fn take_group(waiting: &mut Vec<Waiting>) -> Vec<Waiting> {
    let Some(first) = waiting.first() else {
        return Vec::new();
    };
    let (columns, format) = (first.columns.clone(), first.format);
    let mut bytes = 0;
    let mut group = Vec::new();
    let mut kept = Vec::new();
    for batch in waiting.drain(..) {
        let fits = group.is_empty() || bytes + batch.data.len() <= MAX_COALESCED_BYTES;
        if batch.columns == columns && batch.format == format && fits {
            bytes += batch.data.len();
            group.push(batch);
        } else {
            kept.push(batch);
        }
    }
    *waiting = kept;
    group
}

/// The data of a group as one insert's data: Native blocks merged into one block when they can
/// be (the engine then stores it without squashing small blocks first), else laid end to end.
/// The merge runs off the async workers: it takes about a millisecond for 40k rows.
async fn joined(format: &str, group: &[Waiting], bytes: usize) -> Bytes {
    if format == BlockFormat::Native.name() {
        let batches: Vec<Bytes> = group.iter().map(|batch| batch.data.clone()).collect();
        let merge = move || merge_native_blocks(batches.iter().map(|data| &data[..]));
        if let Ok(Some(block)) = tokio::task::spawn_blocking(merge).await {
            return block.into();
        }
    }
    let mut joined = BytesMut::with_capacity(bytes);
    for batch in group {
        joined.extend_from_slice(&batch.data);
    }
    joined.freeze()
}

/// Inserts a group in one go, or batch by batch when that fails, and answers each caller.
async fn insert_group(engine: &dyn Engine, table: &str, group: Vec<Waiting>) {
    let started = Instant::now();
    let (columns, format) = (group[0].columns.clone(), group[0].format);
    let block = |data: Bytes| InsertBlock {
        table,
        columns: &columns,
        format,
        data,
        settings: "",
    };
    let bytes: usize = group.iter().map(|b| b.data.len()).sum();
    let data = match group.as_slice() {
        [single] => single.data.clone(),
        _ => joined(format, &group, bytes).await,
    };
    let result = engine.insert(block(data)).await;
    tracing::debug!(
        table,
        batches = group.len(),
        bytes,
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "insert"
    );
    match result {
        Ok(_) => {
            for batch in group {
                let _ = batch.done.send(Ok(()));
            }
        }
        Err(error) if group.len() == 1 => {
            if let Some(batch) = group.into_iter().next() {
                let _ = batch.done.send(Err(error));
            }
        }
        Err(error) => {
            tracing::warn!(error = %error, batches = group.len(), "a joint insert failed; inserting its batches one by one");
            for batch in group {
                let _ = batch
                    .done
                    .send(engine.insert(block(batch.data)).await.map(|_| ()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting(columns: &str, format: &'static str, size: usize) -> Waiting {
        Waiting {
            columns: columns.to_owned(),
            format,
            data: Bytes::from(vec![0; size]),
            done: oneshot::channel().0,
        }
    }

    #[test]
    fn groups_take_matching_batches_in_order_within_the_size_limit() {
        let mut queue = vec![
            waiting("a", "Native", 10),
            waiting("b", "Native", 11),
            waiting("a", "RowBinaryWithDefaults", 12),
            waiting("a", "Native", 13),
            waiting("a", "Native", MAX_COALESCED_BYTES),
        ];
        let group = take_group(&mut queue);
        let sizes: Vec<usize> = group.iter().map(|b| b.data.len()).collect();
        assert_eq!(sizes, [10, 13]);
        let left: Vec<usize> = queue.iter().map(|b| b.data.len()).collect();
        assert_eq!(left, [11, 12, MAX_COALESCED_BYTES]);
        // An oversized batch still goes, alone.
        let mut queue = vec![waiting("a", "Native", MAX_COALESCED_BYTES + 1)];
        assert_eq!(take_group(&mut queue).len(), 1);
        assert!(take_group(&mut queue).is_empty());
    }
}
