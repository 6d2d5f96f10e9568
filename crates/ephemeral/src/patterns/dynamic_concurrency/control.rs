//! The control loop of a [`DynamicConcurrency`](super::DynamicConcurrency): read the sink every
//! `sample_interval`, let the newest up or down event decide, apply at most one change per
//! `min_interval`.

use super::ScalingConfig;
use crate::coordinator::AnyCoordinator;
use crate::signal::SignalSink;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Down,
}

/// The newest up or down event within the window decides; a tie goes to up.
fn decide(sink: &SignalSink, config: &ScalingConfig) -> Option<Direction> {
    let now = crate::now();
    let mut newest: Option<(std::time::SystemTime, Direction)> = None;
    sink.sense(|e| {
        let up = config.up.matches(e.signal());
        if !up && !config.down.matches(e.signal()) {
            return false;
        }
        let at = e.timestamp();
        if now.duration_since(at).unwrap_or(Duration::ZERO) >= config.window {
            return false;
        }
        let dir = if up { Direction::Up } else { Direction::Down };
        newest = match newest {
            Some((t, d)) if t > at || (t == at && d == Direction::Up) => Some((t, d)),
            _ => Some((at, dir)),
        };
        false
    });
    newest.map(|(_, d)| d)
}

pub(super) async fn run(
    coordinator: Arc<dyn AnyCoordinator>,
    sink: SignalSink,
    config: ScalingConfig,
    token: CancellationToken,
    adjustments: Arc<AtomicU64>,
) {
    let mut ticks = tokio::time::interval(config.sample_interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_change: Option<Instant> = None;
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(direction) = decide(&sink, &config) else {
            continue;
        };
        let now = Instant::now();
        if last_change.is_some_and(|at| now.duration_since(at) < config.min_interval) {
            continue;
        }
        let current = coordinator.max_concurrency();
        let wanted = match direction {
            Direction::Up => current.saturating_mul(2).min(config.max),
            Direction::Down => (current / 2).max(config.min),
        };
        if wanted == current || token.is_cancelled() {
            continue;
        }
        if coordinator.set_max_concurrency(wanted).is_ok() {
            last_change = Some(now);
            adjustments.fetch_add(1, Ordering::Relaxed);
            if let Some(f) = &config.on_adjusted {
                let _ = catch_unwind(AssertUnwindSafe(|| f(current, wanted)));
            }
        }
    }
}
