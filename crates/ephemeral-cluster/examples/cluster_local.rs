//! Three nodes in one process on 127.0.0.1: raise a signal on one, detect it on another, and
//! print how long it took. Then retract it and time that too.
//!
//! ```text
//! cargo run -p ephemeral-cluster --example cluster_local
//! ```

use ephemeral::SignalSource;
use ephemeral_cluster::{ClusterConfig, ClusterSink};
use std::time::{Duration, Instant};

const SECRET: &str = "an example secret, not for production";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let any_port = "127.0.0.1:0".parse()?;
    let a = ClusterSink::join(ClusterConfig::new(any_port, SECRET).node_name("a")).await?;
    // Each node needs only one member's address.
    let b = ClusterSink::join(
        ClusterConfig::new(any_port, SECRET)
            .node_name("b")
            .seed(a.addr()),
    )
    .await?;
    let c = ClusterSink::join(
        ClusterConfig::new(any_port, SECRET)
            .node_name("c")
            .seed(b.addr()),
    )
    .await?;

    let started = Instant::now();
    let mut members = c.watch_members();
    while members.borrow_and_update().len() < 3 {
        tokio::time::timeout(Duration::from_secs(10), members.changed()).await??;
    }
    let names: Vec<String> = c.members().iter().map(|m| m.to_string()).collect();
    println!("c sees {} after {:?}", names.join(", "), started.elapsed());

    let raised = Instant::now();
    a.raise_with_key("rate-limit", "api.example.com");
    while !c.has_signal("rate-limit") {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    println!("raised on a, detected on c after {:?}", raised.elapsed());
    let seen = &c.signals_named("rate-limit")[0];
    println!(
        "  as seen on c: {} for {:?} at {:?}",
        seen.signal(),
        seen.key(),
        seen.timestamp()
    );

    let retracted = Instant::now();
    assert!(a.retract("rate-limit"));
    while c.has_signal("rate-limit") {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    println!(
        "retracted on a, gone from c after {:?}",
        retracted.elapsed()
    );

    let left = Instant::now();
    b.raise("draining");
    while !c.has_signal("draining") {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    b.leave().await;
    while c.members().len() != 2 || c.has_signal("draining") {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    println!(
        "b left; c dropped it and its signals after {:?}",
        left.elapsed()
    );
    Ok(())
}
