//! A bounded, lossy async receiver of a sink's events.

use crate::signal::{SignalEvent, SignalSink, Subscription};
use crate::sync::{Mutex, MutexGuard};
use futures_util::task::AtomicWaker;
use futures_util::Stream;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Every event raised on a [`SignalSink`] from the moment it was made, as an async stream:
/// made by [`SignalSink::stream`].
///
/// It is bounded and lossy, like the receiver of a `tokio::sync::broadcast` channel, so a slow
/// consumer never slows down the code that raises signals: at most `capacity` events wait, and
/// when one more arrives the **oldest** waiting event is dropped and counted in
/// [`dropped`](Self::dropped). Events arrive in the order they were raised (for raises from one
/// thread; concurrent raises arrive in the order their raising threads delivered them).
///
/// It implements [`Stream`] (`Item = SignalEvent`) and has [`recv`](Self::recv). A sink never
/// closes, so the stream only ends (yields `None`) once every handle of its sink is gone (the
/// [`SignalSink`] clones, and the coordinators configured with it), after the events still
/// waiting have been taken. Dropping the stream unsubscribes it from the sink.
///
/// The events a stream sees are the ones *raised* on the sink, whatever their timestamps; the
/// sink's `max_age` and `max_capacity` apply to the sink's window, not to the stream.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use ephemeral::SignalSink;
/// use futures_util::StreamExt;
///
/// let sink = SignalSink::default();
/// let mut stream = sink.stream(2);
/// sink.raise("a");
/// sink.raise("b");
/// sink.raise("c"); // two already wait: "a" is dropped
/// assert_eq!(stream.dropped(), 1);
/// assert_eq!(stream.recv().await.unwrap().signal(), "b");
/// assert_eq!(stream.next().await.unwrap().signal(), "c");
///
/// drop(sink); // the last handle: the stream ends
/// assert!(stream.next().await.is_none());
/// # }
/// ```
#[must_use = "a stream that is not read only drops events"]
pub struct SignalStream {
    shared: Arc<Shared>,
    /// Keeps the subscriber registered; dropping the stream drops it, which unsubscribes.
    _subscription: Subscription,
}

struct Shared {
    queue: Mutex<Queue>,
    waker: AtomicWaker,
    capacity: usize,
    dropped: AtomicU64,
}

struct Queue {
    events: VecDeque<SignalEvent>,
    /// The sink is gone: no event will arrive after those waiting.
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // No user code runs under this lock, so poisoning cannot leave broken state.
        self.queue.lock()
    }

    /// Called on the raising thread: queue the event, dropping the oldest when full; never
    /// waits for the consumer.
    fn push(&self, event: &SignalEvent) {
        let mut queue = self.lock();
        let oldest = if queue.events.len() >= self.capacity {
            queue.events.pop_front()
        } else {
            None
        };
        queue.events.push_back(event.clone());
        drop(queue);
        if oldest.is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop(oldest);
        self.waker.wake();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.waker.wake();
    }
}

/// The subscriber's half: when the sink drops its subscribers (every sink handle is gone),
/// this drops too and closes the stream.
struct Feeder {
    shared: Arc<Shared>,
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl SignalStream {
    pub(crate) fn new(sink: &SignalSink, capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "SignalSink::stream: capacity must be at least 1"
        );
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                events: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
            }),
            waker: AtomicWaker::new(),
            capacity,
            dropped: AtomicU64::new(0),
        });
        let feeder = Feeder {
            shared: shared.clone(),
        };
        let subscription = sink.subscribe(move |event| feeder.shared.push(event));
        SignalStream {
            shared,
            _subscription: subscription,
        }
    }

    /// The next event, waiting for one if none is queued; `None` once every handle of the sink
    /// is gone and the queued events have been taken.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: an event is taken only when the future resolves, so dropping it (for example in
    /// `tokio::select!`) loses none.
    pub async fn recv(&mut self) -> Option<SignalEvent> {
        futures_util::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next event (what [`recv`](Self::recv) and [`Stream::poll_next`] do).
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<SignalEvent>> {
        if let Some(ready) = self.ready() {
            return Poll::Ready(ready);
        }
        // Register before looking again, so a push between the two looks wakes us.
        self.shared.waker.register(cx.waker());
        match self.ready() {
            Some(ready) => Poll::Ready(ready),
            None => Poll::Pending,
        }
    }

    /// `Some(next)` if an event waits or the stream has ended.
    fn ready(&self) -> Option<Option<SignalEvent>> {
        let mut queue = self.shared.lock();
        match queue.events.pop_front() {
            Some(event) => Some(Some(event)),
            None if queue.closed => Some(None),
            None => None,
        }
    }

    /// How many events wait to be taken (at most the capacity).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shared.lock().events.len()
    }

    /// Whether no event waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most events that wait before the oldest is dropped.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// How many events were dropped so far because `capacity` events were already waiting
    /// (the oldest waiting one is dropped each time).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Stream for SignalStream {
    type Item = SignalEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SignalEvent>> {
        self.get_mut().poll_recv(cx)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let queue = self.shared.lock();
        (
            queue.events.len(),
            queue.closed.then_some(queue.events.len()),
        )
    }
}

impl fmt::Debug for SignalStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = self.shared.lock();
        f.debug_struct("SignalStream")
            .field("queued", &queue.events.len())
            .field("capacity", &self.shared.capacity)
            .field("dropped", &self.dropped())
            .field("ended", &queue.closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_stream_unsubscribes_it() {
        let sink = SignalSink::default();
        assert_eq!(sink.subscriber_count(), 0);
        let stream = sink.stream(4);
        let other = sink.stream(4);
        assert_eq!(sink.subscriber_count(), 2);
        let weak = Arc::downgrade(&stream.shared);
        drop(stream);
        assert_eq!(sink.subscriber_count(), 1);
        // The subscriber (and with it the stream's queue) is released.
        assert!(weak.upgrade().is_none());
        sink.raise("a");
        assert_eq!(other.len(), 1);
    }
}
