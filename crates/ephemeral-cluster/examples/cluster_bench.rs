//! The cluster's figures on loopback: propagation latency (raise on a → visible on c, three
//! nodes, 100 ms gossip) and retraction latency over many trials, the bytes a second a node
//! sends with 100 live signals and with none, and how long a new node takes to catch up with
//! 1,000 live signals.
//!
//! ```text
//! cargo run --release -p ephemeral-cluster --example cluster_bench            # 100 trials
//! cargo run --release -p ephemeral-cluster --example cluster_bench -- --quick # CI's short form
//! ```

use ephemeral::SignalSource;
use ephemeral_cluster::{ClusterConfig, ClusterSink};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SECRET: &str = "the benchmark's shared secret....";

fn config(name: &str) -> ClusterConfig {
    ClusterConfig::new("127.0.0.1:0".parse().unwrap(), SECRET)
        .node_name(name)
        .gossip_interval(Duration::from_millis(100))
        .max_capacity(5000)
}

/// Polls `cond` every `every`; fails loudly, naming the step, after 30 s.
async fn wait(what: &str, every: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(every).await;
    }
}

async fn wait_members(nodes: &[&ClusterSink], n: usize) {
    for node in nodes {
        wait(
            "every node lists every member",
            Duration::from_millis(5),
            || node.members().len() == n,
        )
        .await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{label}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} trials",
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().unwrap().as_secs_f64() * 1e3,
        samples.len()
    );
}

/// Bytes a second `node` sends, over `window`.
async fn send_rate(node: &ClusterSink, window: Duration) -> f64 {
    let before = node.traffic().bytes_sent;
    tokio::time::sleep(window).await;
    (node.traffic().bytes_sent - before) as f64 / window.as_secs_f64()
}

#[tokio::main]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let trials = if quick { 20 } else { 100 };
    let window = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(10)
    };

    let a = ClusterSink::join(config("a")).await.unwrap();
    let b = ClusterSink::join(config("b").seed(a.addr())).await.unwrap();
    let c = ClusterSink::join(config("c").seed(b.addr())).await.unwrap();
    wait_members(&[&a, &b, &c], 3).await;
    // Let the failure detectors settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // c's sink tells the moment each probe arrives.
    let (tx, rx) = mpsc::channel::<(String, Instant)>();
    let tx = std::sync::Mutex::new(tx);
    let _sub = c.local().subscribe(move |e| {
        if e.signal().starts_with("probe.") {
            let _ = tx
                .lock()
                .unwrap()
                .send((e.signal().to_owned(), Instant::now()));
        }
    });
    let (mut raise, mut retract) = (Vec::new(), Vec::new());
    for i in 0..trials {
        let name = format!("probe.{i}");
        // Spread the trials over the gossip cycle.
        tokio::time::sleep(Duration::from_millis(37)).await;
        let start = Instant::now();
        a.raise(name.clone());
        let arrived = loop {
            match rx.try_recv() {
                Ok((n, at)) if n == name => break at,
                Ok(_) => {}
                Err(_) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "{name} never arrived"
                    );
                    tokio::time::sleep(Duration::from_micros(100)).await;
                }
            }
        };
        raise.push(arrived - start);
        let start = Instant::now();
        a.retract(&name);
        wait("the retraction arrives", Duration::from_micros(200), || {
            !c.has_signal(&name)
        })
        .await;
        retract.push(start.elapsed());
    }
    summary("raise on a -> visible on c", raise);
    summary("retract on a -> gone on c", retract);

    let idle = send_rate(&a, window).await;
    for i in 0..100 {
        a.raise_with_key("live", format!("key-{i}"));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_100 = send_rate(&a, window).await;
    println!(
        "bytes a second node a sends (3 nodes, 100 ms gossip): {idle:.0} idle, {with_100:.0} with 100 live signals (steady state)"
    );
    let before = a.traffic().bytes_sent;
    let start = Instant::now();
    for i in 0..100 {
        a.raise(format!("burst.{i}"));
    }
    wait("the burst arrives", Duration::from_millis(1), || {
        c.count_signals_matching("burst.*") >= 100
    })
    .await;
    let burst_bytes = a.traffic().bytes_sent - before;
    println!(
        "100 raises reach c in {:.1} ms; a sent {burst_bytes} bytes meanwhile",
        start.elapsed().as_secs_f64() * 1e3
    );

    // A storm: what a raise costs with the cluster's publisher on the sink, and whether the
    // newest signals still arrive (the ring keeps the newest `max_capacity`).
    let names: Vec<String> = (0..100_000).map(|i| format!("storm.{i}")).collect();
    let start = Instant::now();
    for name in &names {
        a.raise(name.as_str());
    }
    let per_raise = start.elapsed() / 100_000;
    wait(
        "the storm's last raise arrives",
        Duration::from_millis(1),
        || c.has_signal("storm.99999"),
    )
    .await;
    println!(
        "100,000 raises in a loop: {} ns each on a; the newest reached c {:.0} ms after the first",
        per_raise.as_nanos(),
        start.elapsed().as_secs_f64() * 1e3
    );

    for i in 0..1000 {
        a.raise_with_key("catch-up", format!("key-{i}"));
    }
    wait("b holds the 1000", Duration::from_millis(1), || {
        b.count_signals("catch-up") >= 1000
    })
    .await;
    let start = Instant::now();
    let late = ClusterSink::join(config("late").seed(b.addr()))
        .await
        .unwrap();
    wait("the new node catches up", Duration::from_millis(1), || {
        late.count_signals("catch-up") >= 1000
    })
    .await;
    println!(
        "a new node caught up with 1000 live signals in {:.0} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let members = c.members().len();
    println!("after the storm c lists {members} members (4 expected)");
    assert_eq!(members, 4, "no member was lost to the storm");
    let t = a.traffic();
    println!(
        "a's socket: {} datagrams / {} bytes sent, {} received, {} refused, {} oversized",
        t.datagrams_sent, t.bytes_sent, t.datagrams_received, t.rejected, t.oversized
    );
    for node in [&a, &b, &c, &late] {
        node.leave().await;
    }
}
