//! The background task of a [`BatchingAtom`](super::BatchingAtom): collects items into batches
//! and hands them to the coordinator, by size or by the age of the oldest item.

use super::counters::Shared;
use crate::WorkCoordinator;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// What the handle sends the collector.
pub(super) enum Msg<T> {
    Item(Instant, T),
    Flush(oneshot::Sender<u64>),
    Close,
}

/// The background task: collects items into batches and hands them to the coordinator.
pub(super) struct Collector<T: Send + 'static> {
    pub(super) rx: mpsc::Receiver<Msg<T>>,
    pub(super) coordinator: WorkCoordinator<Vec<T>>,
    pub(super) shared: Arc<Shared>,
    pub(super) buf: Vec<T>,
    /// When the oldest item of `buf` was added.
    pub(super) oldest: Option<Instant>,
    /// Batches formed so far.
    pub(super) formed: u64,
    pub(super) max_batch_size: usize,
    pub(super) flush_interval: Duration,
}

impl<T: Send + 'static> Collector<T> {
    pub(super) async fn run(mut self) {
        loop {
            let deadline = self
                .oldest
                .and_then(|at| at.checked_add(self.flush_interval));
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.deliver().await;
                continue;
            }
            let msg = tokio::select! {
                biased;
                msg = self.rx.recv() => msg,
                () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => continue,
            };
            match msg {
                Some(Msg::Item(at, item)) => {
                    if self.buf.is_empty() {
                        self.oldest = Some(at);
                    }
                    self.buf.push(item);
                    if self.buf.len() >= self.max_batch_size {
                        self.deliver().await;
                    }
                }
                Some(Msg::Flush(reply)) => {
                    self.deliver().await;
                    let _ = reply.send(self.formed);
                }
                // Refuse new sends; what is already in the channel is still read.
                Some(Msg::Close) => self.rx.close(),
                None => break,
            }
        }
        self.deliver().await;
        self.coordinator.complete();
        self.coordinator.drain().await;
        self.shared.finished.send_replace(true);
    }

    /// Hands the collected items (if any) to the coordinator, waiting for its queue room.
    async fn deliver(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.buf, Vec::with_capacity(self.max_batch_size));
        self.oldest = None;
        self.formed += 1;
        if let Err(refused) = self.coordinator.enqueue(batch).await {
            // Only if someone completed or cancelled the coordinator by hand.
            self.shared.record(refused.into_inner().len(), true);
        }
    }
}
