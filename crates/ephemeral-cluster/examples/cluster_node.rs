//! One cluster node per terminal: prints a line per membership change and per signal, and
//! raises what you type.
//!
//! ```text
//! head -c 32 /dev/urandom > /tmp/secret
//! cargo run -p ephemeral-cluster --example cluster_node -- --listen 127.0.0.1:7000 --secret-file /tmp/secret
//! cargo run -p ephemeral-cluster --example cluster_node -- --listen 127.0.0.1:7001 --seed 127.0.0.1:7000 --secret-file /tmp/secret
//! ```
//!
//! Then type a line in either terminal: `rate-limit` raises it, `rate-limit api.example.com`
//! raises it for a key, `-rate-limit` retracts it, `leave` says goodbye and exits. Ctrl-C stops
//! the node without a goodbye (the others notice it died).

use ephemeral_cluster::{ClusterConfig, ClusterSink, Member};
use futures_util::StreamExt;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, BufReader};

fn usage() -> ! {
    eprintln!("usage: cluster_node --listen ADDR [--seed ADDR] --secret-file PATH [--name NAME]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut listen, mut seed, mut secret_file, mut name) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_else(|| usage());
        match flag.as_str() {
            "--listen" => listen = Some(value.parse::<SocketAddr>()?),
            "--seed" => seed = Some(value.parse::<SocketAddr>()?),
            "--secret-file" => secret_file = Some(value),
            "--name" => name = Some(value),
            _ => usage(),
        }
    }
    let (Some(listen), Some(secret_file)) = (listen, secret_file) else {
        usage()
    };
    let secret = std::fs::read(&secret_file)?;
    let mut config = ClusterConfig::new(listen, secret);
    if let Some(seed) = seed {
        config = config.seed(seed);
    }
    if let Some(name) = name {
        config = config.node_name(name);
    }
    let node = ClusterSink::join(config).await?;
    println!("{} listening on {}", node.name(), node.addr());

    // A line per membership change.
    let mut members = node.watch_members();
    tokio::spawn(async move {
        let mut known: BTreeSet<Member> = BTreeSet::new();
        loop {
            let now: BTreeSet<Member> = members.borrow_and_update().iter().cloned().collect();
            for m in now.difference(&known) {
                println!(
                    "+ member {m}{}",
                    if m.is_self() { " (this node)" } else { "" }
                );
            }
            for m in known.difference(&now) {
                println!("- member {m}");
            }
            known = now;
            if members.changed().await.is_err() {
                break;
            }
        }
    });

    // A line per signal, local or remote.
    let mut signals = node.local().stream(1024);
    tokio::spawn(async move {
        while let Some(s) = signals.next().await {
            match s.key() {
                Some(key) => println!(
                    "! signal {} [{key}] (operation {})",
                    s.signal(),
                    s.operation_id()
                ),
                None => println!("! signal {} (operation {})", s.signal(), s.operation_id()),
            }
        }
    });

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { break };
                let line = line.trim();
                if line == "leave" {
                    node.leave().await;
                    println!("left the cluster");
                    return Ok(());
                }
                if let Some(name) = line.strip_prefix('-') {
                    println!("retracted {name}: {}", node.retract(name));
                    continue;
                }
                let mut parts = line.splitn(2, ' ');
                let result = match (parts.next(), parts.next()) {
                    (Some(""), _) | (None, _) => continue,
                    (Some(name), Some(key)) => node.try_raise_with_key(name.to_owned(), key.trim().to_owned()),
                    (Some(name), None) => node.try_raise(name.to_owned()),
                };
                if let Err(e) = result {
                    eprintln!("not raised: {e}");
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}
