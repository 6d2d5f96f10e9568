//! Signals across machines: a [`ClusterSink`] is an [`ephemeral`] signal sink shared by every
//! member of a cluster, over [chitchat](https://docs.rs/chitchat/0.11.2)'s gossip.
//!
//! ```no_run
//! use ephemeral::SignalSource;
//! use ephemeral_cluster::{ClusterConfig, ClusterSink};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), ephemeral_cluster::ClusterError> {
//!     let secret = std::env::var("CLUSTER_SECRET").expect("a shared secret of 16+ bytes");
//!     let config = ClusterConfig::new("10.0.0.5:7946".parse().unwrap(), secret)
//!         .seed("10.0.0.4:7946".parse().unwrap()); // any one member; none for the first node
//!     let cluster = ClusterSink::join(config).await?;
//!
//!     cluster.raise("rate-limit"); // every member sees it within milliseconds
//!     if cluster.has_signal_matching("maintenance.*") { /* raised on any member */ }
//!     Ok(())
//! }
//! ```
//!
//! Two nodes in one process, on loopback:
//!
//! ```
//! use ephemeral::SignalSource;
//! use ephemeral_cluster::{ClusterConfig, ClusterSink};
//! use std::time::Duration;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), ephemeral_cluster::ClusterError> {
//! let any_port = "127.0.0.1:0".parse().unwrap();
//! let secret = "our shared secret, 16+ bytes";
//! let first = ClusterSink::join(ClusterConfig::new(any_port, secret)).await?;
//! let second = ClusterSink::join(ClusterConfig::new(any_port, secret).seed(first.addr())).await?;
//!
//! second.raise_with_key("maintenance.db", "db-1");
//! while !first.has_signal_matching("maintenance.*") {
//!     tokio::time::sleep(Duration::from_millis(5)).await;
//! }
//! assert_eq!(first.signals_for_key("db-1").len(), 1);
//! second.leave().await;
//! # Ok(())
//! # }
//! ```
//!
//! # What travels, and how
//!
//! Each member publishes only its own live signals (name, key, timestamp, operation id, and
//! lifetime: the shorter of the signal's ttl and the member's `max_age`) in chitchat's per-node
//! key/value state; chitchat's scuttlebutt reconciliation brings every member's state to every
//! other, late joiners included. A member counts another as alive while that member's heartbeat
//! keeps moving ([`failure_timeout`](ClusterConfig::failure_timeout)), and mirrors the live
//! members' signals into its [`local`](ClusterSink::local) sink, where they age by their own
//! timestamps: the window is exact although chitchat's own expiry is coarse. After a change
//! the node gossips with up to three live peers at once (at most once per tenth of a
//! gossip interval), so a signal reaches the others in about one round trip rather than a gossip
//! interval. Retractions are announced the same way; expiries and departures are found by a
//! pass every eighth of a gossip interval.
//!
//! Known limits: a chitchat delta must fit one datagram once sealed, so a member whose state
//! holds close to 64 KiB of incompressible signal names and keys can fail to send a delta
//! (counted in [`Traffic::oversized`]); what a member mirrors is bounded by the other members'
//! capacities, not by its own (its local sink keeps the newest `max_capacity` of them); and
//! signal timestamps come from each machine's clock, so clocks should agree to well within
//! `max_age`.
//!
//! # Security
//!
//! The shared secret scopes and authenticates the cluster. HKDF-SHA256 derives from it the
//! chitchat cluster id and a key; every datagram is sealed with XChaCha20-Poly1305 (random
//! 24-byte nonce) with the cluster id and the send time as associated data. A node refuses,
//! counts ([`ClusterSink::rejected_datagrams`]) and logs (at most once a second) every datagram
//! that does not open, was sealed outside the [replay window](ClusterConfig::replay_window), or
//! was already accepted; it keeps gossiping. A node with another secret learns nothing and
//! injects nothing. A datagram is sealed for its recipient's address, so one captured on its way
//! to one member does not open at another. Sealing adds 49 bytes to a datagram.
//!
//! # Cost
//!
//! With `m` members, each raising `r` signals a second that live `a` seconds, capped at
//! `c` = [`max_capacity`](ClusterConfig::max_capacity):
//!
//! - **State**: each member holds every live member's published signals: at most `m × c` keys
//!   of about 100–150 bytes (a name and key of a few dozen bytes), plus as many tombstones. A
//!   member's own keys are a ring of `c` slots, reused, so its state never grows past `c`
//!   keys however many signals it raises.
//! - **Bandwidth**: in steady state a member sends only heartbeats and digests: it exchanges a
//!   digest of `m` entries with about three peers per gossip interval, whatever the number of
//!   live signals (measured: 9.2 KB/s per member with 3 members at 100 ms, with 0 or 100 live
//!   signals alike). Each change (raise, retraction) then travels once to every other member
//!   (scuttlebutt sends each version once per peer), compressed with the others of its round:
//!   100 raises cost their member 5.6 KB in all to reach two peers; a lone raise costs one
//!   exchange of three datagrams per peer. So a member raising `r` signals a second adds
//!   roughly `r × 30–150 bytes × (m − 1)` to the cluster's traffic.
//! - **Latency** (loopback, 3 members, 100 ms gossip, `cargo run --release -p
//!   ephemeral-cluster --example cluster_bench`): a raise is visible on another member in
//!   0.4 ms (p50; p99 under 3 ms), a retraction in about 3 ms (p99 under 11 ms), a new member
//!   holds 1,000 live signals about 220 ms after it joins.
//! - A single delta is at most one datagram (65,507 bytes); a member that falls behind catches
//!   up over several gossip rounds. Names and keys are capped
//!   ([`max_signal_bytes`](ClusterConfig::max_signal_bytes), 1 KiB by default) so that no single
//!   signal can block a member's later ones.
//!
//! # Versions
//!
//! chitchat is pinned to 0.11.2, the last release whose message (de)serialisation is public,
//! which a sealing transport needs. This crate needs Rust 1.86 (chitchat's edition 2024).
//!
//! # Differences from the contract
//!
//! `raise` and `raise_with_key` return the event as the local sink's do, and panic on a name or
//! key over [`max_signal_bytes`](ClusterConfig::max_signal_bytes) (a programmer error, like an
//! out-of-range index); [`ClusterSink::try_raise`] and [`ClusterSink::try_raise_with_key`] are
//! the fallible forms. [`ClusterConfig::seed`] may be called more than once.

mod codec;
mod config;
mod error;
mod member;
mod mirror;
mod node;
mod ring;
mod seal;
mod sink;
mod transport;

pub use config::ClusterConfig;
pub use error::ClusterError;
pub use member::Member;
pub use sink::{ClusterSink, Traffic};
