//! The README's patterns, as tested library code built on the coordinators and the
//! [`SignalSink`](crate::SignalSink) (no second engine).
//!
//! | pattern | what it does |
//! |---|---|
//! | [`SignalLogWatcher`] | calls back once for every matching event a sink holds or receives |
//! | [`SignalAnomalyDetector`] | counts matching events within a window, flags a burst |
//! | [`CircuitBreaker`] / [`CircuitOpen`] | opens while failures within a window reach a threshold |
//! | [`DynamicConcurrency`] / [`ScalingConfig`] | steers a coordinator's limit from `load.high` / `load.low` |
//! | [`signal_driven_backpressure`] | a coordinator whose starts wait while `backpressure.*` is in a sink |
//!
//! Everything timed follows tokio's clock, so a paused-clock test is exact.

mod anomaly;
mod backpressure;
mod circuit_breaker;
mod dynamic_concurrency;
mod log_watcher;

pub use anomaly::SignalAnomalyDetector;
pub use backpressure::signal_driven_backpressure;
pub use circuit_breaker::{CircuitBreaker, CircuitOpen};
pub use dynamic_concurrency::{DynamicConcurrency, ScalingConfig};
pub use log_watcher::SignalLogWatcher;
