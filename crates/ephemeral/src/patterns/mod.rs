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
//! | [`parse_retry_after`] + [`AdaptiveRate`] | back off while a `rate-limit:<n>ms` signal is fresh |
//! | [`ReactiveFanOut`] + [`FanOutConfig`] | two stages, the first slowing down when the second backs up; a drain that loses nothing |
//! | [`ControlledFanOut`] | a global cap and a per-key cap |
//! | `SignalingHttpClient` (feature `http-client`) | downloads that emit stage and progress signals |
//!
//! Everything timed follows tokio's clock, so a paused-clock test is exact.

mod adaptive_rate;
mod anomaly;
mod backpressure;
mod circuit_breaker;
mod controlled_fan_out;
mod dynamic_concurrency;
mod fan_out;
#[cfg(feature = "http-client")]
mod http_client;
mod log_watcher;

pub use adaptive_rate::{parse_retry_after, AdaptiveRate};
pub use anomaly::SignalAnomalyDetector;
pub use backpressure::signal_driven_backpressure;
pub use circuit_breaker::{CircuitBreaker, CircuitOpen};
pub use controlled_fan_out::ControlledFanOut;
pub use dynamic_concurrency::{DynamicConcurrency, ScalingConfig};
pub use fan_out::{FanOutConfig, ReactiveFanOut};
#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub use http_client::SignalingHttpClient;
pub use log_watcher::SignalLogWatcher;
