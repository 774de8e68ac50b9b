//! The store: durable appends with group commit, sealing, flushing and replay.
//!
//! ```text
//!  append(payload, batch) ──► writer thread ──► WAL write ─► one fsync per group
//!                                   │                               │
//!                                   │          head.push(batch) ◄───┘ then ack all
//!                                   ▼
//!                             seal (size/age) ──► flusher thread ──► NNN.parquet
//!                                                                    delete WAL ≤ NNN
//! ```
//!
//! One writer thread owns the WAL and the head, so the order of records in the log is
//! the order of batches in the head, and a seal cuts both at the same point.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use parking_lot::{Mutex, RwLock};
use prost::Message;
use tokio::sync::oneshot;

use crate::columnarize::columnarize;
use crate::error::StorageError;
use crate::head::{SealedHead, Tables};
use crate::segment::{Segment, segment_file_name};
use crate::wal::{WalFile, list_generations, replay_file, sync_dir, wal_path};

/// Settings of the store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Root of the data directory; `wal/` and `segments/` live below it.
    pub data_dir: PathBuf,
    /// Seal the head once it holds this many spans.
    pub max_head_spans: usize,
    /// Seal the head once its oldest batch is this old.
    pub max_head_age: Duration,
    /// Memory budget of the process. Half of it may hold spans not yet in a segment (the
    /// head, the heads being flushed and the sorted copy a flush makes): beyond that
    /// appends are refused (retryably), and a head is sealed once it holds a third of that
    /// share. The other half is for everything else: memory the allocator keeps for a
    /// while after a flush frees a head (mimalloc purges freed pages after a delay),
    /// requests being decoded, the service graph, queries.
    pub max_memory_bytes: usize,
    /// Appends queued for the writer before further ones are refused (retryably).
    pub max_queued_appends: usize,
}

impl StoreConfig {
    /// Bytes of unflushed spans allowed in memory: half of
    /// [`max_memory_bytes`](Self::max_memory_bytes).
    pub fn span_memory_budget(&self) -> usize {
        self.max_memory_bytes / 2
    }

    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            max_head_spans: 1_000_000,
            max_head_age: Duration::from_secs(60),
            max_memory_bytes: 1 << 30,
            max_queued_appends: 4096,
        }
    }
}

/// Sees every batch as it becomes durable, in commit order, and every seal.
pub trait CommitObserver: Send + Sync {
    /// Called after `batch` is durable, before its append is acknowledged.
    fn on_commit(&self, batch: &RecordBatch);

    /// Called when the head is sealed as segment `generation`, after the last
    /// `on_commit` of the spans it holds.
    fn on_seal(&self, _generation: u64) {}

    /// Called when segment `generation` is durable, before the WAL files up to it are
    /// removed. Not called for a sealed head that held no spans.
    fn on_flushed(&self, _generation: u64) {}
}

/// Counters the store keeps about itself.
#[derive(Debug, Default)]
pub struct StoreStats {
    /// Spans made durable.
    pub spans_committed: AtomicU64,
    /// WAL records written.
    pub wal_records: AtomicU64,
    /// WAL syncs (each covers a group of appends).
    pub wal_syncs: AtomicU64,
    /// Heads sealed.
    pub seals: AtomicU64,
    /// Segments flushed to Parquet.
    pub flushes: AtomicU64,
    /// Seconds spent flushing, in microseconds.
    pub flush_micros: AtomicU64,
    /// Appends refused because of overload.
    pub overloads: AtomicU64,
}

/// What opening the store found in the WAL.
#[derive(Debug, Default, Clone)]
pub struct ReplayReport {
    /// WAL files replayed.
    pub num_files: usize,
    /// Records replayed.
    pub num_records: u64,
    /// Spans replayed.
    pub num_spans: u64,
    /// Bytes cut from torn tails.
    pub truncated_bytes: u64,
    /// Segments found on disk.
    pub num_segments: usize,
    /// Time taken.
    pub elapsed: Duration,
}

enum Command {
    Append {
        payload: Bytes,
        batch: RecordBatch,
        done: oneshot::Sender<Result<(), StorageError>>,
    },
    Seal {
        done: Option<std::sync::mpsc::Sender<()>>,
    },
    Stop,
}

struct Shared {
    config: StoreConfig,
    tables: RwLock<Tables>,
    stats: StoreStats,
    memory_bytes: AtomicU64,
    observers: Vec<Arc<dyn CommitObserver>>,
}

/// The span store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
    commands: SyncSender<Command>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir`, loads the segments, replays
    /// the WAL into the head (calling the observers for every replayed batch) and
    /// starts the writer and flusher threads.
    ///
    /// # Errors
    /// When the directories cannot be created or read, or a segment is unreadable.
    pub fn open(
        config: StoreConfig,
        observers: Vec<Arc<dyn CommitObserver>>,
    ) -> Result<(Self, ReplayReport), StorageError> {
        let started = Instant::now();
        let wal_dir = config.data_dir.join("wal");
        let segment_dir = config.data_dir.join("segments");
        for dir in [&config.data_dir, &wal_dir, &segment_dir] {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io("create", dir, e))?;
        }

        let segments = open_segments(&segment_dir)?;
        let last_flushed = segments.iter().map(|s| s.generation()).max().unwrap_or(0);
        let mut report = ReplayReport {
            num_segments: segments.len(),
            ..Default::default()
        };
        let shared = Arc::new(Shared {
            config: config.clone(),
            tables: RwLock::new(Tables {
                segments,
                ..Default::default()
            }),
            stats: StoreStats::default(),
            memory_bytes: AtomicU64::new(0),
            observers,
        });

        // Replay what the WAL holds beyond the last flushed segment.
        let mut last_generation = last_flushed;
        for generation in list_generations(&wal_dir)? {
            let path = wal_path(&wal_dir, generation);
            last_generation = last_generation.max(generation);
            if generation <= last_flushed {
                std::fs::remove_file(&path).map_err(|e| StorageError::io("remove", &path, e))?;
                continue;
            }
            let replayed = replay_file(&path, |payload| {
                let request = ExportTraceServiceRequest::decode(payload)
                    .map_err(|e| StorageError::Corrupt(format!("WAL record: {e}")))?;
                if let Some(batch) = columnarize(&request).batch {
                    report.num_spans += batch.num_rows() as u64;
                    shared.apply(batch);
                }
                Ok(())
            })?;
            if replayed.truncated_bytes > 0 {
                tracing::warn!(
                    path = %path.display(),
                    truncated_bytes = replayed.truncated_bytes,
                    "truncated a torn WAL tail (never acknowledged)"
                );
            }
            report.num_files += 1;
            report.num_records += replayed.num_records;
            report.truncated_bytes += replayed.truncated_bytes;
        }
        sync_dir(&wal_dir)?;

        let wal = WalFile::create(&wal_dir, last_generation + 1)?;
        let (commands, receiver) = mpsc::sync_channel(config.max_queued_appends);
        let (flush_tx, flush_rx) = mpsc::channel();
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("tracegate-wal".to_string())
            .spawn(move || writer_loop(&writer_shared, wal, &receiver, &flush_tx))
            .map_err(|e| StorageError::io("spawn writer for", &wal_dir, e))?;
        let flusher_shared = Arc::clone(&shared);
        let flusher = std::thread::Builder::new()
            .name("tracegate-flush".to_string())
            .spawn(move || flusher_loop(&flusher_shared, &flush_rx))
            .map_err(|e| StorageError::io("spawn flusher for", &segment_dir, e))?;

        report.elapsed = started.elapsed();
        let store = Self {
            shared,
            commands,
            threads: Arc::new(Mutex::new(vec![writer, flusher])),
        };
        Ok((store, report))
    }

    /// Appends one columnarized batch whose WAL record is `payload` (a protobuf
    /// `ExportTraceServiceRequest` holding exactly the batch's spans). Resolves once the
    /// record is synced to disk and the batch is visible to queries.
    ///
    /// # Errors
    /// [`StorageError::Overloaded`] when memory or the queue is full (retry later),
    /// [`StorageError::ShuttingDown`], or the I/O error of a failed sync.
    pub async fn append(
        &self,
        payload: impl Into<Bytes>,
        batch: RecordBatch,
    ) -> Result<(), StorageError> {
        let memory = self.shared.memory_bytes.load(Ordering::Relaxed);
        let budget = self.shared.config.span_memory_budget();
        if memory as usize > budget {
            self.shared.stats.overloads.fetch_add(1, Ordering::Relaxed);
            return Err(StorageError::Overloaded(format!(
                "{memory} bytes of spans waiting for flush, limit {budget} (half of the {} \
                 byte memory budget)",
                self.shared.config.max_memory_bytes
            )));
        }
        let (done, wait) = oneshot::channel();
        match self.commands.try_send(Command::Append {
            payload: payload.into(),
            batch,
            done,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.stats.overloads.fetch_add(1, Ordering::Relaxed);
                return Err(StorageError::Overloaded("write queue is full".to_string()));
            }
            Err(TrySendError::Disconnected(_)) => return Err(StorageError::ShuttingDown),
        }
        wait.await.map_err(|_| StorageError::ShuttingDown)?
    }

    /// A consistent picture of everything stored.
    pub fn tables(&self) -> Tables {
        self.shared.tables.read().clone()
    }

    /// The store's counters.
    pub fn stats(&self) -> &StoreStats {
        &self.shared.stats
    }

    /// Bytes of span batches held in memory.
    pub fn memory_bytes(&self) -> u64 {
        self.shared.memory_bytes.load(Ordering::Relaxed)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.shared.config.data_dir
    }

    /// Seals the head now and waits until its segment is written.
    pub fn flush(&self) {
        let (done, wait) = std::sync::mpsc::channel();
        if self
            .commands
            .send(Command::Seal { done: Some(done) })
            .is_ok()
        {
            let _ = wait.recv();
        }
    }

    /// Flushes the head, stops the threads and waits for them. Appends after this fail
    /// with [`StorageError::ShuttingDown`].
    pub fn shutdown(&self) {
        self.flush();
        let _ = self.commands.send(Command::Stop);
        let threads = std::mem::take(&mut *self.threads.lock());
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// Makes a durable batch visible and tells the observers.
    fn apply(&self, batch: RecordBatch) {
        for observer in &self.observers {
            observer.on_commit(&batch);
        }
        self.stats
            .spans_committed
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        self.memory_bytes
            .fetch_add(batch.get_array_memory_size() as u64, Ordering::Relaxed);
        self.tables.write().head.push(batch);
    }
}

fn open_segments(dir: &Path) -> Result<Vec<Arc<Segment>>, StorageError> {
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StorageError::io("list", dir, e))? {
        let path = entry.map_err(|e| StorageError::io("list", dir, e))?.path();
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => segments.push(Arc::new(Segment::open(&path)?)),
            Some("tmp") => {
                std::fs::remove_file(&path).map_err(|e| StorageError::io("remove", &path, e))?;
            }
            _ => {}
        }
    }
    segments.sort_by_key(|s| s.generation());
    Ok(segments)
}

/// Largest group written before one sync; more waiting appends form the next group.
const MAX_GROUP_BYTES: usize = 64 << 20;

fn writer_loop(
    shared: &Shared,
    mut wal: WalFile,
    commands: &Receiver<Command>,
    flusher: &mpsc::Sender<(SealedHead, Option<mpsc::Sender<()>>)>,
) {
    let mut head_since: Option<Instant> = None;
    let mut head_spans = 0usize;
    let mut head_bytes = 0usize;
    // A flush holds the sealed head and its sorted copy while the next head fills: three
    // heads' worth must fit in the budget.
    let max_head_bytes = shared.config.span_memory_budget() / 3;
    let mut group = Vec::new();
    let mut stopping = false;
    while !stopping {
        let wait = head_since.map_or(Duration::from_secs(3600), |since| {
            shared.config.max_head_age.saturating_sub(since.elapsed())
        });
        let first = match commands.recv_timeout(wait) {
            Ok(command) => Some(command),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };

        // Gather a group: the first command and whatever else is already waiting.
        let mut seal_waiters = Vec::new();
        let mut group_bytes = 0;
        let mut next = first;
        while let Some(command) = next.take() {
            match command {
                Command::Append {
                    payload,
                    batch,
                    done,
                } => {
                    group_bytes += payload.len();
                    group.push((payload, batch, done));
                }
                Command::Seal { done } => seal_waiters.push(done),
                Command::Stop => stopping = true,
            }
            if group_bytes < MAX_GROUP_BYTES && seal_waiters.is_empty() && !stopping {
                next = commands.try_recv().ok();
            }
        }

        if !group.is_empty() {
            let num_records = group.len();
            let mut result = Ok(());
            for (payload, _, _) in &group {
                if let Err(e) = wal.append(payload) {
                    result = Err(e);
                    break;
                }
            }
            let result = result.and_then(|()| wal.sync());
            shared.stats.wal_syncs.fetch_add(1, Ordering::Relaxed);
            match result {
                Ok(()) => {
                    shared
                        .stats
                        .wal_records
                        .fetch_add(num_records as u64, Ordering::Relaxed);
                    tracing::debug!(num_records, bytes = group_bytes, "WAL group synced");
                    for (_, batch, done) in group.drain(..) {
                        head_spans += batch.num_rows();
                        head_bytes += batch.get_array_memory_size();
                        head_since.get_or_insert_with(Instant::now);
                        shared.apply(batch);
                        let _ = done.send(Ok(()));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, num_records, "WAL write failed; appends refused");
                    for (_, _, done) in group.drain(..) {
                        let _ = done.send(Err(StorageError::Overloaded(error.to_string())));
                    }
                }
            }
        }

        let too_old = head_since.is_some_and(|s| s.elapsed() >= shared.config.max_head_age);
        let too_big = head_spans >= shared.config.max_head_spans || head_bytes >= max_head_bytes;
        if too_old || too_big || !seal_waiters.is_empty() {
            let generation = wal.generation();
            match WalFile::create(&wal_dir(shared), generation + 1) {
                Ok(next_wal) => wal = next_wal,
                Err(error) => {
                    tracing::error!(%error, "cannot start a new WAL file; head not sealed");
                    continue;
                }
            }
            let batches = std::mem::take(&mut shared.tables.write().head);
            // The flush will make a sorted copy of this head: it is counted from now on,
            // so that appends are refused before the copy would overrun the budget.
            let sealed_bytes: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
            shared
                .memory_bytes
                .fetch_add(sealed_bytes as u64, Ordering::Relaxed);
            let sealed = SealedHead {
                generation,
                batches: Arc::new(batches),
            };
            shared.tables.write().sealed.push(sealed.clone());
            for observer in &shared.observers {
                observer.on_seal(generation);
            }
            shared.stats.seals.fetch_add(1, Ordering::Relaxed);
            head_since = None;
            head_spans = 0;
            head_bytes = 0;
            let mut waiters = seal_waiters.into_iter().flatten();
            let first_waiter = waiters.next();
            let _ = flusher.send((sealed, first_waiter));
            for waiter in waiters {
                let _ = waiter.send(());
            }
        }
    }
}

fn wal_dir(shared: &Shared) -> PathBuf {
    shared.config.data_dir.join("wal")
}

fn flusher_loop(shared: &Shared, sealed: &Receiver<(SealedHead, Option<mpsc::Sender<()>>)>) {
    let segment_dir = shared.config.data_dir.join("segments");
    while let Ok((head, done)) = sealed.recv() {
        flush_one(shared, &segment_dir, &head);
        if let Some(done) = done {
            let _ = done.send(());
        }
    }
}

fn flush_one(shared: &Shared, segment_dir: &Path, head: &SealedHead) {
    let started = Instant::now();
    let num_spans: usize = head.batches.iter().map(RecordBatch::num_rows).sum();
    let memory: u64 = head
        .batches
        .iter()
        .map(|b| b.get_array_memory_size() as u64)
        .sum();
    let segment = if num_spans == 0 {
        None
    } else {
        // A failed flush keeps the WAL and the sealed head; it is retried until it works,
        // since dropping it would lose acknowledged spans.
        let mut attempt = 0u32;
        loop {
            match Segment::write(segment_dir, head.generation, &head.batches) {
                Ok(segment) => break Some(Arc::new(segment)),
                Err(error) => {
                    attempt += 1;
                    tracing::error!(%error, attempt, generation = head.generation, "flush failed");
                    std::thread::sleep(
                        Duration::from_secs(1).min(Duration::from_millis(100 * u64::from(attempt))),
                    );
                }
            }
        }
    };

    {
        let mut tables = shared.tables.write();
        tables.sealed.retain(|s| s.generation != head.generation);
        if let Some(segment) = &segment {
            tables.segments.push(Arc::clone(segment));
        }
    }
    let _ = shared
        .memory_bytes
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
            // The head and the sorted copy counted for it at seal time.
            Some(held.saturating_sub(2 * memory))
        });

    if segment.is_some() {
        for observer in &shared.observers {
            observer.on_flushed(head.generation);
        }
    }

    // The spans are in the segment now: the WAL files up to its generation can go.
    let wal_dir = wal_dir(shared);
    if let Ok(generations) = list_generations(&wal_dir) {
        for generation in generations.into_iter().filter(|g| *g <= head.generation) {
            let path = wal_path(&wal_dir, generation);
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(%error, path = %path.display(), "cannot remove flushed WAL file");
            }
        }
        let _ = sync_dir(&wal_dir);
    }

    let elapsed = started.elapsed();
    shared
        .stats
        .flushes
        .fetch_add(u64::from(segment.is_some()), Ordering::Relaxed);
    shared
        .stats
        .flush_micros
        .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    if let Some(segment) = segment {
        tracing::info!(
            segment = segment_file_name(head.generation),
            num_spans,
            bytes = segment.bytes(),
            elapsed_ms = elapsed.as_millis() as u64,
            "flushed head to parquet"
        );
    }
}
