//! `ephemeral-demo`: a simulated service that shows what `ephemeral` does, live.
//!
//! Four coordinators run for a minute (or until Ctrl-C) against a simulated world:
//!
//! * `translator` calls a flaky upstream that answers `rate-limit:<n>ms` in storms: the body
//!   emits a `rate-limit` signal that lasts exactly `n` ms (`Operation::emit_for`), and the
//!   coordinator defers new starts while it is present;
//! * `commands` keeps each user's commands in order (a keyed coordinator) while one hot user
//!   sends almost half of them: her pending limit sheds her excess, never the others' work;
//! * an autoscaler reads the translator's load and moves its concurrency limit, announcing
//!   `load.high` / `load.low` / `scale.to:<n>` signals;
//! * `payments` goes through a circuit breaker: when the gateway keeps failing, a
//!   `circuit-open` signal with a 3 s ttl makes the coordinator refuse work, and it closes by
//!   itself; each successful payment queues a receipt on `emails` through its `Completion`.
//!
//! The dashboard (crate `ephemeral-http`) is served on 127.0.0.1 and its address printed at
//! start; the terminal shows a live table and, at the end, a summary.
//!
//! ```text
//! cargo run --release -p ephemeral-demo                     # 60 s, live table, dashboard
//! cargo run --release -p ephemeral-demo -- --duration 10 --headless --port 8080
//! ```
//!
//! With `--cluster`, each instance joins a cluster (crate `ephemeral-cluster`) and its
//! coordinators raise on, and react to, the cluster's signals: a rate limit met by one
//! instance holds back every instance's translator. Two terminals:
//!
//! ```text
//! export EPHEMERAL_CLUSTER_SECRET="$(head -c 24 /dev/urandom | base64)"
//! cargo run --release -p ephemeral-demo -- --port 0 --cluster --cluster-listen 127.0.0.1:7946
//! cargo run --release -p ephemeral-demo -- --port 0 --cluster --cluster-seed 127.0.0.1:7946
//! ```

mod sim;
mod view;

use clap::Parser;
use ephemeral::CancellationToken;
use std::io::{IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

/// A simulated service showing ephemeral's coordinators, signals and live dashboard.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// How long to run, in seconds (Ctrl-C ends earlier).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Port for the dashboard on 127.0.0.1 (0: any free port, printed at start).
    #[arg(long, default_value_t = 7878)]
    port: u16,
    /// No terminal animation: one status line per second.
    #[arg(long)]
    headless: bool,
    /// Also run 50 small coordinators raising about 10,000 signals a minute (to see the
    /// dashboard under load).
    #[arg(long)]
    many: bool,
    /// Join a cluster: signals are shared with every other instance (the secret comes from
    /// EPHEMERAL_CLUSTER_SECRET or --cluster-secret-file).
    #[arg(long)]
    cluster: bool,
    /// The cluster gossip address to listen on (UDP; port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0", requires = "cluster")]
    cluster_listen: SocketAddr,
    /// The gossip address of any one member to join through.
    #[arg(long, requires = "cluster")]
    cluster_seed: Option<SocketAddr>,
    /// A file holding the cluster's shared secret (at least 16 bytes).
    #[arg(long, requires = "cluster")]
    cluster_secret_file: Option<std::path::PathBuf>,
}

/// Joins the cluster that `--cluster` asks for, or exits with a message.
async fn join_cluster(args: &Args) -> ephemeral_cluster::ClusterSink {
    let secret = match (
        &args.cluster_secret_file,
        std::env::var("EPHEMERAL_CLUSTER_SECRET"),
    ) {
        (Some(path), _) => std::fs::read(path).unwrap_or_else(|e| {
            eprintln!("cannot read {}: {e}", path.display());
            std::process::exit(2);
        }),
        (None, Ok(secret)) => secret.into_bytes(),
        (None, Err(_)) => {
            eprintln!("--cluster needs a secret: set EPHEMERAL_CLUSTER_SECRET or pass --cluster-secret-file");
            std::process::exit(2);
        }
    };
    let mut config =
        ephemeral_cluster::ClusterConfig::new(args.cluster_listen, secret).max_capacity(5000);
    if let Some(seed) = args.cluster_seed {
        config = config.seed(seed);
    }
    match ephemeral_cluster::ClusterSink::join(config).await {
        Ok(node) => node,
        Err(e) => {
            eprintln!("cannot join the cluster: {e}");
            std::process::exit(2);
        }
    }
}

/// The cluster part of a status line.
fn cluster_line(cluster: Option<&ephemeral_cluster::ClusterSink>) -> String {
    match cluster {
        Some(node) => {
            let others = node.members().len() - 1;
            format!(" | cluster: {} members ({others} others)", others + 1)
        }
        None => String::new(),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let total = Duration::from_secs(args.duration);
    let cluster = if args.cluster {
        Some(join_cluster(&args).await)
    } else {
        None
    };
    let service = match &cluster {
        Some(node) => sim::Service::start_on(node.local().clone()),
        None => sim::Service::start(),
    };

    let registry = ephemeral_http::Registry::new();
    for (name, c) in service.coordinators() {
        registry.register_arc(name, c);
    }
    registry.register_sink("signals", &service.sink);
    let crowd = if args.many {
        sim::Crowd::start(50, &registry)
    } else {
        sim::Crowd::default()
    };
    let app = axum::Router::new()
        .nest_service("/ephemeral", ephemeral_http::router_with_controls(registry))
        .route(
            "/",
            axum::routing::get(|| async { axum::response::Redirect::to("/ephemeral/") }),
        );
    let listener =
        match tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, args.port)))
            .await
        {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "cannot listen on 127.0.0.1:{}: {e} (try --port 0 for any free port)",
                    args.port
                );
                std::process::exit(2);
            }
        };
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    println!("dashboard: http://{addr}/ephemeral/");
    if let Some(node) = &cluster {
        println!("cluster: node {} gossiping on {}", node.name(), node.addr());
    }
    let _ = std::io::stdout().flush();

    let stop = CancellationToken::new();
    let server = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                eprintln!("dashboard server stopped: {e}");
            }
        })
    };
    let mut producers = service.run(&stop);
    producers.extend(crowd.run(&stop));

    let started = Instant::now();
    let animate = !args.headless && std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(if animate {
        Duration::from_millis(250)
    } else {
        Duration::from_secs(1)
    });
    let mut drawn_lines = 0usize;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut ctrl_c => {
                println!("\nCtrl-C: finishing the work in flight");
                break;
            }
        }
        let elapsed = started.elapsed();
        if animate {
            let mut frame = view::live(&service, elapsed, total);
            if cluster.is_some() {
                frame.push_str(cluster_line(cluster.as_ref()).trim_start_matches(" | "));
                frame.push('\n');
            }
            let mut out = std::io::stdout().lock();
            if drawn_lines > 0 {
                // Back to the top of the previous frame, then redraw over it.
                let _ = write!(out, "\x1b[{drawn_lines}A");
            }
            for line in frame.lines() {
                let _ = writeln!(out, "{line}\x1b[K");
            }
            let _ = out.flush();
            drawn_lines = frame.lines().count();
        } else {
            println!(
                "{}{}",
                view::line(&service, elapsed),
                cluster_line(cluster.as_ref())
            );
        }
        if elapsed >= total {
            break;
        }
    }

    stop.cancel();
    for p in producers {
        let _ = p.await;
    }
    service.finish(Duration::from_secs(10)).await;
    let _ = server.await;
    print!("{}", view::summary(&service, started.elapsed()));
    if let Some(node) = cluster {
        let t = node.traffic();
        println!(
            "\n  cluster: {} members at the end; {} datagrams sent, {} received, {} refused",
            node.members().len(),
            t.datagrams_sent,
            t.datagrams_received,
            t.rejected
        );
        node.leave().await;
    }
}
