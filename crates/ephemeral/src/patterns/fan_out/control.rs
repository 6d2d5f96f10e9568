//! The backpressure control of a [`ReactiveFanOut`](super::ReactiveFanOut): shared by stage 1's
//! bodies and the background task, it reads stage 2's pending count and the sink and sets
//! stage 1's limit.

use super::FanOutConfig;
use crate::sync::Mutex;
use crate::{SignalSink, SignalSource, WorkCoordinator};
use std::ops::ControlFlow;
use std::time::Duration;
use tokio::time::Instant;

/// The signal stage 1 raises when stage 2's pending items reach the threshold.
pub(super) const BACKPRESSURE: &str = "stage2.backpressure";
/// The signal a failed stage-2 body raises.
pub(super) const FAILED: &str = "stage2.failed";

/// The backpressure control shared by stage 1's bodies and the background task.
pub(super) struct Control {
    pub(super) config: FanOutConfig,
    pub(super) sink: SignalSink,
    pub(super) state: Mutex<ControlState>,
}

#[derive(Default)]
pub(super) struct ControlState {
    /// When a cause of backpressure was last seen.
    last_pressure: Option<Instant>,
    /// When `stage2.backpressure` was last raised.
    last_raised: Option<Instant>,
}

impl Control {
    /// Reads stage 2's pending count and the sink, raises `stage2.backpressure` if due, and
    /// sets stage 1's limit.
    pub(super) fn evaluate<T: Send + 'static, U: Send + 'static>(
        &self,
        stage1: &WorkCoordinator<T>,
        stage2: &WorkCoordinator<U>,
    ) {
        let cfg = &self.config;
        let pending = stage2.pending_count();
        let now = Instant::now();
        let mut state = self.state.lock();
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
