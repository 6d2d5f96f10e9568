//! Helpers for the multi-node tests: nodes on 127.0.0.1 with free ports, and bounded waits.

#![allow(dead_code, unreachable_pub)]

use ephemeral_cluster::{ClusterConfig, ClusterSink};
use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A secret of its own for each test (tests run in parallel and free ports others may take:
/// a shared secret could merge two tests' clusters).
pub fn secret() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "test secret {} {} {:?}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
    )
}
/// A short gossip interval keeps the tests quick; the protocol is the same.
pub const GOSSIP: Duration = Duration::from_millis(50);
/// Generous: CI machines are slow and noisy. Waits end as soon as their condition holds.
pub const PATIENCE: Duration = Duration::from_secs(15);

pub fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// One test's cluster: its nodes share a secret no other test has.
pub struct Cluster {
    pub secret: String,
}

impl Cluster {
    pub fn new() -> Self {
        Cluster { secret: secret() }
    }

    pub fn config(&self, name: &str) -> ClusterConfig {
        self.config_at(any_port(), name)
    }

    pub fn config_at(&self, addr: SocketAddr, name: &str) -> ClusterConfig {
        ClusterConfig::new(addr, &self.secret)
            .node_name(name)
            .gossip_interval(GOSSIP)
    }
}

pub async fn join(config: ClusterConfig) -> ClusterSink {
    ClusterSink::join(config).await.expect("the node starts")
}

/// Waits until `cond` holds, polling every few milliseconds; panics after `PATIENCE`.
#[track_caller]
pub fn eventually<'a>(
    what: &'a str,
    mut cond: impl FnMut() -> bool + 'a,
) -> impl Future<Output = Duration> + 'a {
    let caller = std::panic::Location::caller();
    async move {
        let start = Instant::now();
        loop {
            if cond() {
                return start.elapsed();
            }
            if start.elapsed() > PATIENCE {
                panic!("{caller}: timed out after {PATIENCE:?} waiting until {what}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Waits until every node lists exactly `n` members.
pub async fn all_see(nodes: &[&ClusterSink], n: usize) {
    for node in nodes {
        eventually(&format!("{} lists {n} members", node.name()), || {
            node.members().len() == n
        })
        .await;
    }
}

/// Runs a test body with an overall time bound.
pub async fn bounded<F: Future<Output = ()>>(body: F) {
    tokio::time::timeout(Duration::from_secs(60), body)
        .await
        .expect("the test finished within its time bound");
}
