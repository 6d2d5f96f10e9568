//! [`ReactiveFanOut`] and [`FanOutConfig`]: two stages, stage 1 slowing down when stage 2 backs up.

mod config;
mod control;

pub use config::FanOutConfig;

use crate::outcome::Outcome;
use crate::sync::Mutex;
use crate::{
    CancellationToken, EnqueueError, Operation, OperationId, Options, SignalSink, WorkCoordinator,
};
use control::{Control, ControlState, FAILED};
use futures_util::FutureExt;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// Two coordinators in a row: stage 1 turns each `T` into a `U`, stage 2 consumes the `U`s;
/// when stage 2 backs up, stage 1 slows down.
///
/// - Each `U` stage 1 returns (`Ok`) is handed to stage 2, waiting for room there (stage 2's
///   queue holds `backpressure_threshold + stage2_max` items).
/// - Stage 1 raises `stage2.backpressure` on the config's sink when stage-2 pending reaches
///   the threshold (again at most once per cooldown while it stays there); a failing (or
///   panicking) stage-2 body raises `stage2.failed`.
/// - **Backpressure** is: stage-2 pending at or above the threshold, or a `stage2.backpressure`
///   / `stage2.failed` signal in the sink younger than the cooldown. Under it stage 1's limit
///   drops to `stage1_min`; once pending is at or below `relief_threshold` and the cooldown has
///   passed since the last cause, it returns to `stage1_max`.
/// - The control is evaluated in stage 1's body path (after each hand-off) **and** by a small
///   background task every `cooldown / 4` (between 1 ms and 50 ms), so relief comes even when
///   stage 1 is idle. The task stops when the last handle is dropped or [`drain`](Self::drain)
///   returns.
/// - Dropping the last handle completes stage 1 and, once stage 1 has handed over
///   everything, stage 2 (in the background): queued items still run through both stages,
///   as dropping a coordinator's last handle lets its queue run.
/// - [`drain`](Self::drain) completes stage 1, waits for it (so every hand-off has happened),
///   then completes and drains stage 2: no item in flight is lost, and each item's final
///   outcome is counted once: failed in stage 1, or completed or failed in stage 2
///   (`stage1().total_failed() + stage2().total_completed() + stage2().total_failed()` equals
///   the items enqueued).
///
/// ```
/// use ephemeral::patterns::{FanOutConfig, ReactiveFanOut};
/// use ephemeral::Operation;
/// use std::time::Duration;
///
/// #[tokio::main(flavor = "current_thread", start_paused = true)]
/// async fn main() {
///     let pipeline = ReactiveFanOut::new(
///         |page: u32, _op: Operation| async move {
///             if page % 10 == 9 {
///                 return Err("parse error");
///             }
///             Ok(format!("page {page}")) // parsed quickly...
///         },
///         |doc: String, _op: Operation| async move {
///             tokio::time::sleep(Duration::from_millis(50)).await; // ...stored slowly
///             let _ = doc;
///             Ok::<_, std::io::Error>(())
///         },
///         FanOutConfig::default().stage1_max(8).stage2_max(2).backpressure_threshold(10),
///     );
///     for page in 0..40 {
///         pipeline.enqueue(page).await.unwrap();
///     }
///     pipeline.drain().await;
///     let (failed1, done2) = (pipeline.stage1().total_failed(), pipeline.stage2().total_completed());
///     println!("stage 1 failed {failed1}, stage 2 completed {done2}");
///     assert_eq!((failed1, done2), (4, 36));
/// }
/// ```
pub struct ReactiveFanOut<T: Send + 'static, U: Send + 'static> {
    inner: Arc<Inner<T, U>>,
}

struct Inner<T: Send + 'static, U: Send + 'static> {
    stage1: WorkCoordinator<T>,
    stage2: WorkCoordinator<U>,
    control: Arc<Control>,
    stop: CancellationToken,
}

impl<T: Send + 'static, U: Send + 'static> Drop for Inner<T, U> {
    fn drop(&mut self) {
        // Stage 1's bodies hold a handle of stage 1 (to steer its limit), so dropping ours
        // would not complete it: complete it explicitly, and complete stage 2 only once
        // stage 1 has handed over everything (a background drain), so nothing queued is
        // lost. The control task runs until then.
        self.stage1.complete();
        let (stage1, stage2, stop) = (self.stage1.clone(), self.stage2.clone(), self.stop.clone());
        let finish = async move {
            stage1.drain().await;
            stage2.complete();
            stop.cancel();
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(finish);
        } else {
            self.stage2.complete();
            self.stop.cancel();
        }
    }
}

impl<T: Send + 'static, U: Send + 'static> Clone for ReactiveFanOut<T, U> {
    fn clone(&self) -> Self {
        ReactiveFanOut {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + 'static, U: Send + 'static> ReactiveFanOut<T, U> {
    /// A fan-out running `stage1` on each item and `stage2` on each of its results.
    ///
    /// `stage1` returns `Result<U, E>`; `stage2` returns `()` or `Result<(), E>` (any `E`
    /// converting into [`BoxError`](crate::BoxError)). Both stages are
    /// [`WorkCoordinator`]s built with `dynamic_concurrency(true)` and the config's sink.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime; if `stage1_min` is 0 or above `stage1_max`, if `stage2_max`
    /// is 0, or if `relief_threshold` is above `backpressure_threshold`.
    #[track_caller]
    pub fn new<F1, Fut1, F2, Fut2>(stage1: F1, stage2: F2, config: FanOutConfig) -> Self
    where
        F1: Fn(T, Operation) -> Fut1 + Send + Sync + 'static,
        Fut1: Future<Output: Outcome<U>> + Send + 'static,
        F2: Fn(U, Operation) -> Fut2 + Send + Sync + 'static,
        Fut2: Future<Output: Outcome<()>> + Send + 'static,
    {
        assert!(
            config.stage1_min >= 1 && config.stage1_min <= config.stage1_max,
            "FanOutConfig: need 1 <= stage1_min <= stage1_max"
        );
        assert!(
            config.stage2_max >= 1,
            "FanOutConfig: stage2_max must be at least 1"
        );
        assert!(
            config.relief_threshold <= config.backpressure_threshold,
            "FanOutConfig: relief_threshold must not exceed backpressure_threshold"
        );
        let sink = config.signals.clone().unwrap_or_default();
        let control = Arc::new(Control {
            config: config.clone(),
            sink: sink.clone(),
            state: Mutex::new(ControlState::default()),
        });

        let failed_sink = sink.clone();
        let stage2 = WorkCoordinator::new(
            move |u: U, op: Operation| {
                let run = AssertUnwindSafe(stage2(u, op)).catch_unwind();
                let sink = failed_sink.clone();
                async move {
                    match run.await {
                        Ok(outcome) => {
                            let result = outcome.into_result();
                            if result.is_err() {
                                sink.raise(FAILED);
                            }
                            result
                        }
                        Err(panic) => {
                            sink.raise(FAILED);
                            std::panic::resume_unwind(panic)
                        }
                    }
                }
            },
            Options::default()
                .max_concurrency(config.stage2_max)
                .dynamic_concurrency(true)
                .queue_capacity(config.backpressure_threshold + config.stage2_max)
                .signals(sink.clone())
                .name("fan-out.stage2"),
        );

        // Stage 1's bodies need stage 1 itself (to steer its limit): a slot filled right
        // after construction.
        let stage1_slot: Arc<std::sync::OnceLock<WorkCoordinator<T>>> = Arc::default();
        let (slot, to_stage2, ctl) = (stage1_slot.clone(), stage2.clone(), control.clone());
        let stage1 = WorkCoordinator::new(
            move |t: T, op: Operation| {
                let produced = stage1(t, op);
                let (slot, to_stage2, ctl) = (slot.clone(), to_stage2.clone(), ctl.clone());
                async move {
                    let u = produced.await.into_result()?;
                    let handed = to_stage2.enqueue(u).await;
                    if let Some(stage1) = slot.get() {
                        ctl.evaluate(stage1, &to_stage2);
                    }
                    handed
                        .map(|_| ())
                        .map_err(|_| crate::BoxError::from("stage 2 no longer accepts items"))
                }
            },
            Options::default()
                .max_concurrency(config.stage1_max)
                .dynamic_concurrency(true)
                .signals(sink)
                .name("fan-out.stage1"),
        );
        // This clone keeps stage 1 alive from its own bodies: `Inner::drop` completes it.
        let _ = stage1_slot.set(stage1.clone());

        let stop = CancellationToken::new();
        let period =
            (config.cooldown / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
        {
            let (stop, control) = (stop.clone(), control.clone());
            let (s1, s2) = (stage1.clone(), stage2.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        _ = tick.tick() => control.evaluate(&s1, &s2),
                    }
                }
            });
        }

        ReactiveFanOut {
            inner: Arc::new(Inner {
                stage1,
                stage2,
                control,
                stop,
            }),
        }
    }

    /// Enqueues `item` into stage 1 (waits for queue room).
    ///
    /// # Errors
    ///
    /// [`EnqueueError`] as [`WorkCoordinator::enqueue`], with the item handed back.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before it resolves, the item was not enqueued (it is
    /// dropped with the future).
    pub async fn enqueue(&self, item: T) -> Result<OperationId, EnqueueError<T>> {
        self.inner.stage1.enqueue(item).await
    }

    /// Stage 1's current concurrency limit (`stage1_max`, or `stage1_min` under backpressure).
    #[must_use]
    pub fn stage1_max_concurrency(&self) -> usize {
        self.inner.stage1.max_concurrency()
    }

    /// Items waiting to start in stage 2.
    #[must_use]
    pub fn stage2_pending(&self) -> usize {
        self.inner.stage2.pending_count()
    }

    /// Stage 1's coordinator.
    #[must_use]
    pub fn stage1(&self) -> &WorkCoordinator<T> {
        &self.inner.stage1
    }

    /// Stage 2's coordinator.
    #[must_use]
    pub fn stage2(&self) -> &WorkCoordinator<U> {
        &self.inner.stage2
    }

    /// The sink the fan-out raises its signals on.
    #[must_use]
    pub fn signals(&self) -> &SignalSink {
        &self.inner.control.sink
    }

    /// Completes stage 1, waits for it (every result handed over), then completes and drains
    /// stage 2, and stops the background control task. No item in flight is lost.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future stops the waiting only: stage 1 stays completed, and stage 2 may not be
    /// completed yet (its items still run); call `drain` again to finish.
    pub async fn drain(&self) {
        let inner = &self.inner;
        inner.stage1.complete();
        inner.stage1.drain().await;
        inner.stage2.complete();
        inner.stage2.drain().await;
        inner.stop.cancel();
    }
}

impl<T: Send + 'static, U: Send + 'static> fmt::Debug for ReactiveFanOut<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactiveFanOut")
            .field("config", &self.inner.control.config)
            .field("stage1", &self.inner.stage1)
            .field("stage2", &self.inner.stage2)
            .finish_non_exhaustive()
    }
}
