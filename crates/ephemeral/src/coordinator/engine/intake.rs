//! Producers: refusing, pushing, and waiting for queue room.
//!
//! # Invariants
//!
//! * An item is counted in `enqueued` before `closed` is read, and the count is taken back if
//!   the item is refused: a refused item was never enqueued.
//! * A producer waiting for room is counted in `room.waiters` only while it waits (a guard
//!   takes the count back if its future is dropped).
use super::wake::WaiterGuard;
use super::*;

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    pub(super) fn try_push(
        &self,
        item: T,
        key: I::Key,
        id: OperationId,
    ) -> Result<OperationId, Refusal<T, I::Key>> {
        if self.gates_on && self.gate_active(GateKind::Cancel) {
            // Closed wins over Rejected.
            return Err(if self.closed.load(SeqCst) {
                Refusal::Closed(item)
            } else {
                Refusal::Rejected(item)
            });
        }
        // Counted before `closed` is read, and taken back if refused, also if the key's
        // `Hash` or `Eq` panics in the push (a count left behind would make `drain` wait for
        // an item that does not exist): see `drain::count_in`.
        let outcome = match drain::count_in(&self.producer.enqueued, &self.closed) {
            None => Err(Refusal::Closed(item)),
            Some(count) => match self
                .intake
                .try_push(item, key, self.capacity, count.ticket, id)
            {
                Ok(id) => {
                    count.keep();
                    Ok(id)
                }
                Err(Refused::Full(item, key)) => Err(Refusal::Full(item, key)),
                Err(Refused::KeyOverloaded(item)) => Err(Refusal::KeyOverloaded(item)),
            },
        };
        if outcome.is_ok() {
            self.hub.telemetry.accepted();
            // Our push is ordered before this read (the cancel handshake, see the module
            // docs of `engine`).
            crate::sync::seq_cst_point();
            if self.cancelled.load(SeqCst) {
                // A cancel emptied the queue while we pushed: our item would wait for workers
                // that are gone. It counts as accepted, then cancelled.
                self.drop_pending();
            }
            self.wake_one();
        }
        if self.closed.load(SeqCst) {
            // We may have been the last party a drain or an exiting worker waited for.
            self.wake_one();
            self.check_drained();
        }
        outcome
    }

    pub(crate) fn try_enqueue(
        &self,
        item: T,
        key: I::Key,
    ) -> Result<OperationId, TryEnqueueError<T>> {
        self.try_push(item, key, OperationId::next())
            .map_err(Refusal::into_try)
    }

    pub(crate) async fn enqueue(
        &self,
        item: T,
        key: I::Key,
    ) -> Result<OperationId, EnqueueError<T>> {
        self.enqueue_as(item, key, OperationId::next()).await
    }

    /// [`enqueue`](Self::enqueue), with a [`Completion`] of the item's outcome. The reply is
    /// registered before the item can start, and forgotten if the item is refused or this
    /// future is dropped.
    pub(crate) async fn enqueue_with_handle(
        &self,
        item: T,
        key: I::Key,
        copy: fn(&R) -> R,
    ) -> Result<Completion<R>, EnqueueError<T>> {
        let id = OperationId::next();
        let completion = self.replies.register(id, copy);
        let mut pending = ForgetReply {
            replies: &self.replies,
            id: Some(id),
        };
        self.enqueue_as(item, key, id).await?;
        pending.id = None;
        Ok(completion)
    }

    /// Enqueues `item` as operation `id`.
    async fn enqueue_as(
        &self,
        item: T,
        key: I::Key,
        id: OperationId,
    ) -> Result<OperationId, EnqueueError<T>> {
        let (mut item, mut key) = match self.try_push(item, key, id) {
            Ok(id) => return Ok(id),
            Err(refusal) => refusal.unless_full()?,
        };
        // The queue is full. Give the runtime's other tasks (our workers among them) a turn
        // first: they usually make room in bursts, so the producer then refills in a burst
        // instead of waiting (and being woken) once per freed slot.
        for _ in 0..YIELDS_BEFORE_WAITING {
            tokio::task::yield_now().await;
            (item, key) = match self.try_push(item, key, id) {
                Ok(id) => return Ok(id),
                Err(refusal) => refusal.unless_full()?,
            };
        }
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Counted waiting, then a last try (see `Room`).
            self.room.wait_begin();
            let attempt = self.try_push(item, key, id);
            match attempt {
                Ok(id) => {
                    // Pass the signal on: another producer may wait for room that is left.
                    if self.room.wait_won() && self.intake.len() < self.capacity {
                        self.space.notify_one();
                    }
                    return Ok(id);
                }
                Err(refusal) => match refusal.unless_full() {
                    Ok((i, k)) => {
                        item = i;
                        key = k;
                        // Cancel safety: the guard withdraws our registration if this future
                        // is dropped while waiting.
                        let guard = self.room.waiting();
                        notified.await;
                        drop(guard);
                    }
                    Err(e) => {
                        self.room.wait_end();
                        return Err(e);
                    }
                },
            }
        }
    }
}

impl<T, I, R> Shared<T, I, R>
where
    T: Send + 'static,
    I: Intake<T>,
    R: Send + 'static,
{
    /// Enqueues an item read from a source that has no caller to hand a refused item back to
    /// (a stream): waits for queue room, and for its key's room on `KeyOverloaded`; an item
    /// refused by a cancel-on signal, or because the coordinator closed, is counted as
    /// accepted and cancelled, so that items read == completed + failed + cancelled.
    pub(crate) async fn enqueue_from_source(
        &self,
        item: T,
        key_of: &impl Fn(&T) -> I::Key,
    ) -> SourceOutcome {
        // Held: a drain waits until this item is enqueued or counted.
        self.sourcing.fetch_add(1, SeqCst);
        let _held = SourcingGuard(self);
        let mut item = item;
        let mut waiting = None;
        loop {
            let key = key_of(&item);
            let refused = match self.enqueue(item, key).await {
                Ok(_) => return SourceOutcome::Accepted,
                Err(EnqueueError::KeyOverloaded(refused)) => refused,
                Err(EnqueueError::Rejected(refused)) => {
                    self.count_refused_as_cancelled(refused);
                    return SourceOutcome::Cancelled;
                }
                Err(EnqueueError::Closed(refused)) => {
                    self.count_refused_as_cancelled(refused);
                    return SourceOutcome::Closed;
                }
            };
            item = refused;
            // The key has too many items pending. Register for news of takes, then look
            // again before waiting: a take between that look and the wait is not missed.
            // (Registered only from the first refusal on, so a stream that never meets one
            // costs the workers nothing.)
            if waiting.is_none() {
                self.room.key_waiters.fetch_add(1, SeqCst);
                waiting = Some(WaiterGuard(&self.room.key_waiters));
            }
            let notified = self.key_room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let key = key_of(&item);
            match self.try_push(item, key, OperationId::next()) {
                Ok(_) => return SourceOutcome::Accepted,
                Err(Refusal::KeyOverloaded(refused)) => {
                    item = refused;
                    tokio::select! {
                        () = notified => {}
                        () = self.closed_token.cancelled() => {}
                    }
                }
                // Full, closed or rejected: the next round's `enqueue` deals with it.
                Err(
                    Refusal::Full(refused, _)
                    | Refusal::Closed(refused)
                    | Refusal::Rejected(refused),
                ) => item = refused,
            }
        }
    }

    /// Counts an item that a source read but the coordinator refused as accepted, then
    /// cancelled, in that order (see `drain::count_accepted_cancelled`).
    fn count_refused_as_cancelled(&self, item: T) {
        drop(item);
        drain::count_accepted_cancelled(&self.producer.enqueued, &self.cancelled_items);
        self.hub.telemetry.accepted_cancelled();
    }
}

/// Forgets a registered reply unless the item was accepted (`id` taken).
struct ForgetReply<'a, R> {
    replies: &'a Replies<R>,
    id: Option<OperationId>,
}

impl<R> Drop for ForgetReply<'_, R> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.replies.forget(id);
        }
    }
}

/// Ends a source's hold on an item however `enqueue_from_source` ends (also when its future
/// is dropped), and tells a drain that may have waited for it.
struct SourcingGuard<'a, T: Send + 'static, I: Intake<T>, R: Send + 'static>(&'a Shared<T, I, R>);

impl<T: Send + 'static, I: Intake<T>, R: Send + 'static> Drop for SourcingGuard<'_, T, I, R> {
    fn drop(&mut self) {
        self.0.sourcing.fetch_sub(1, SeqCst);
        self.0.check_drained();
    }
}

/// How often a producer facing a full queue yields to the runtime before it waits to be told
/// of room.
const YIELDS_BEFORE_WAITING: usize = 1;
