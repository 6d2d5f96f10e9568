//! The README's patterns, as tested building blocks on top of the coordinators and the sink.
//!
//! - [`parse_retry_after`] + [`AdaptiveRate`]: back off while a `rate-limit:<n>ms` signal is fresh.
//! - [`ReactiveFanOut`] + [`FanOutConfig`]: two stages, the first slowing down when the second
//!   backs up; a drain that loses nothing.
//! - [`ControlledFanOut`]: a global cap and a per-key cap.
#![cfg_attr(
    feature = "http-client",
    doc = "- [`SignalingHttpClient`]: downloads that emit stage and progress signals (feature `http-client`)."
)]

mod adaptive_rate;
mod controlled_fan_out;
mod fan_out;
#[cfg(feature = "http-client")]
mod http_client;

pub use adaptive_rate::{parse_retry_after, AdaptiveRate};
pub use controlled_fan_out::ControlledFanOut;
pub use fan_out::{FanOutConfig, ReactiveFanOut};
#[cfg(feature = "http-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "http-client")))]
pub use http_client::SignalingHttpClient;
