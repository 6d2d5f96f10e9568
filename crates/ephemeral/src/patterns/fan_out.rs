//! [`ReactiveFanOut`] and [`FanOutConfig`]: two stages, stage 1 slowing down when stage 2 backs up.

use crate::outcome::Outcome;
use crate::{
    CancellationToken, EnqueueError, Operation, OperationId, Options, SignalSink, SignalSource,
    WorkCoordinator,
};
use futures_util::FutureExt;
use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The signal stage 1 raises when stage 2's pending items reach the threshold.
const BACKPRESSURE: &str = "stage2.backpressure";
/// The signal a failed stage-2 body raises.
const FAILED: &str = "stage2.failed";

/// The settings of a [`ReactiveFanOut`].
///
/// ```
/// use ephemeral::patterns::FanOutConfig;
/// use ephemeral::SignalSink;
/// use std::time::Duration;
///
/// let config = FanOutConfig::default()
///     .stage1_max(16)
///     .stage1_min(2)
///     .stage2_max(4)
///     .backpressure_threshold(64)
///     .relief_threshold(16)
///     .cooldown(Duration::from_millis(500))
///     .signals(SignalSink::default());
/// println!("{config:?}");
/// ```
#[derive(Clone, Debug)]
pub struct FanOutConfig {
    stage1_max: usize,
    stage1_min: usize,
    stage2_max: usize,
    backpressure_threshold: usize,
    relief_threshold: usize,
    cooldown: Duration,
    signals: Option<SignalSink>,
}

impl Default for FanOutConfig {
    /// Stage 1 between 1 and 8, stage 2 at 4, backpressure at 32 pending, relief at 8,
    /// cooldown 200 ms, a fresh [`SignalSink::default`].
    fn default() -> Self {
        FanOutConfig {
            stage1_max: 8,
            stage1_min: 1,
            stage2_max: 4,
            backpressure_threshold: 32,
            relief_threshold: 8,
            cooldown: Duration::from_millis(200),
            signals: None,
        }
    }
}

impl FanOutConfig {
    /// Stage 1's concurrency without backpressure (default 8).
    #[must_use]
    pub fn stage1_max(mut self, n: usize) -> Self {
        self.stage1_max = n;
        self
    }

    /// Stage 1's concurrency under backpressure (default 1).
    #[must_use]
    pub fn stage1_min(mut self, n: usize) -> Self {
        self.stage1_min = n;
        self
    }

    /// Stage 2's concurrency (default 4).
    #[must_use]
    pub fn stage2_max(mut self, n: usize) -> Self {
        self.stage2_max = n;
        self
    }

    /// Stage-2 pending items at which backpressure starts (default 32).
    #[must_use]
    pub fn backpressure_threshold(mut self, n: usize) -> Self {
        self.backpressure_threshold = n;
        self
    }

    /// Stage-2 pending items at or below which backpressure may end (default 8).
    #[must_use]
    pub fn relief_threshold(mut self, n: usize) -> Self {
        self.relief_threshold = n;
        self
    }

    /// How long backpressure lasts after its last cause (default 200 ms).
    #[must_use]
    pub fn cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The sink both stages raise their signals on (default: a fresh
    /// [`SignalSink::default`] of the fan-out's own).
    #[must_use]
    pub fn signals(mut self, sink: SignalSink) -> Self {
        self.signals = Some(sink);
        self
    }
}

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

/// The backpressure control shared by stage 1's bodies and the background task.
struct Control {
    config: FanOutConfig,
    sink: SignalSink,
    state: Mutex<ControlState>,
}

#[derive(Default)]
struct ControlState {
    /// When a cause of backpressure was last seen.
    last_pressure: Option<Instant>,
    /// When `stage2.backpressure` was last raised.
    last_raised: Option<Instant>,
}

impl Control {
    /// Reads stage 2's pending count and the sink, raises `stage2.backpressure` if due, and
    /// sets stage 1's limit.
    fn evaluate<T: Send + 'static, U: Send + 'static>(
        &self,
        stage1: &WorkCoordinator<T>,
        stage2: &WorkCoordinator<U>,
    ) {
        let cfg = &self.config;
        let pending = stage2.pending_count();
        let now = Instant::now();
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending >= cfg.backpressure_threshold {
            if state
                .last_raised
                .is_none_or(|t| now.duration_since(t) >= cfg.cooldown)
            {
                self.sink.raise(BACKPRESSURE);
                state.last_raised = Some(now);
            }
            state.last_pressure = Some(now);
        }
        if let Some(age) = self.youngest_signal_age() {
            if age < cfg.cooldown {
                let at = now.checked_sub(age).unwrap_or(now);
                if state.last_pressure.is_none_or(|t| at > t) {
                    state.last_pressure = Some(at);
                }
            }
        }
        let pressed = pending >= cfg.backpressure_threshold
            || state
                .last_pressure
                .is_some_and(|t| now.duration_since(t) < cfg.cooldown);
        let target = if pressed {
            Some(cfg.stage1_min)
        } else if pending <= cfg.relief_threshold {
            Some(cfg.stage1_max)
        } else {
            None // between relief and threshold: keep the current limit
        };
        drop(state);
        if let Some(n) = target {
            if stage1.max_concurrency() != n {
                // Stage 1 is built with dynamic concurrency and n >= 1: cannot fail.
                let _ = stage1.set_max_concurrency(n);
            }
        }
    }

    /// The age of the youngest `stage2.backpressure` / `stage2.failed` signal in the sink.
    fn youngest_signal_age(&self) -> Option<Duration> {
        let mut newest = None;
        self.sink.visit_signals(&mut |e| {
            if (e.is(BACKPRESSURE) || e.is(FAILED)) && newest.is_none_or(|t| e.timestamp() > t) {
                newest = Some(e.timestamp());
            }
            ControlFlow::Continue(())
        });
        newest.map(|t| crate::now().duration_since(t).unwrap_or(Duration::ZERO))
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
