//! A [`BatchingAtom`](super::BatchingAtom)'s counters: the public [`BatchStats`] and the
//! atomics shared by the handle, the collector and the batch body.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use tokio::sync::watch;

/// A [`BatchingAtom`](super::BatchingAtom)'s counters.
///
/// After [`flush`](super::BatchingAtom::flush) or [`close`](super::BatchingAtom::close) returns they include
/// every batch that call waited for.
///
/// ```
/// use ephemeral::atoms::{BatchStats, BatchingAtom};
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() {
///     let atom = BatchingAtom::new(10, Duration::from_secs(1), |_batch: Vec<u32>| async {});
///     let stats: BatchStats = atom.stats();
///     assert_eq!((stats.batches, stats.items, stats.failed_batches, stats.buffered), (0, 0, 0, 0));
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct BatchStats {
    /// Batches handled (the handler returned, failed or panicked).
    pub batches: u64,
    /// Items in the handled batches.
    pub items: u64,
    /// Batches whose handler returned an error or panicked.
    pub failed_batches: u64,
    /// Items accepted by `add` and not handled yet (collecting, queued or being handled).
    pub buffered: usize,
}

/// The counters and the completion flags, shared by the handle, the collector and the body.
pub(super) struct Shared {
    pub(super) closed: AtomicBool,
    pub(super) batches: AtomicU64,
    pub(super) items: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) buffered: AtomicUsize,
    /// Batches handled so far (they are handled in the order they were formed).
    pub(super) handled: watch::Sender<u64>,
    /// Set when the collector has delivered everything and the coordinator drained.
    pub(super) finished: watch::Sender<bool>,
}

impl Shared {
    pub(super) fn record(&self, items: usize, failed: bool) {
        self.items.fetch_add(items as u64, Ordering::SeqCst);
        if failed {
            self.failed.fetch_add(1, Ordering::SeqCst);
        }
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.buffered.fetch_sub(items, Ordering::SeqCst);
        self.handled.send_modify(|h| *h += 1);
    }

    pub(super) async fn wait_finished(&self) {
        let mut rx = self.finished.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }
}
