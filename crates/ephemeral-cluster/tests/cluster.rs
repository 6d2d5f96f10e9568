//! Several nodes on 127.0.0.1 over real UDP: membership, propagation, ageing, retraction,
//! departures, restarts, coordinators reacting to remote signals. Every test is bounded in
//! time; waits poll and end as soon as their condition holds.

mod common;

use common::*;
use ephemeral::{Operation, Options, SignalSource, WorkCoordinator};
use ephemeral_cluster::{ClusterConfig, ClusterError, ClusterSink};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_each_seeded_with_one_other_share_members_and_signals() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a")).await;
        let b = join(t.config("b").seed(a.addr())).await;
        let c = join(t.config("c").seed(b.addr())).await;
        all_see(&[&a, &b, &c], 3).await;
        let names: Vec<String> = a.members().iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(a.members().iter().filter(|m| m.is_self()).count(), 1);
        assert!(a.members().iter().any(|m| m.is_self() && m.name() == "a"));

        let raised = a.raise_with_key("rate-limit", "api.example.com");
        eventually("c sees a's signal", || c.has_signal("rate-limit")).await;
        let seen = c.signals_named("rate-limit");
        assert_eq!(seen.len(), 1, "exactly once: {seen:?}");
        assert_eq!(seen[0].key(), Some("api.example.com"));
        assert_eq!(seen[0].operation_id(), raised.operation_id());
        assert_eq!(
            seen[0].timestamp(),
            raised.timestamp(),
            "the original timestamp"
        );

        // A signal from each node; every node ends with each exactly once (mirrors are never
        // published again, so nothing echoes).
        b.raise("from-b");
        c.raise("from-c");
        for node in [&a, &b, &c] {
            eventually("every node has all three", || node.total_signals() == 3).await;
        }
        tokio::time::sleep(GOSSIP * 6).await;
        for node in [&a, &b, &c] {
            assert_eq!(
                node.total_signals(),
                3,
                "{}: {:?}",
                node.name(),
                node.signals()
            );
            assert_eq!(node.count_signals("rate-limit"), 1);
        }

        // Retracted on its node, it leaves everywhere.
        assert!(a.retract("rate-limit"));
        assert!(!a.retract("rate-limit"), "nothing left to retract");
        assert!(!a.has_signal("rate-limit"), "gone locally at once");
        for node in [&b, &c] {
            eventually("the retraction reaches every node", || {
                !node.has_signal("rate-limit")
            })
            .await;
        }
        // Another member's signal is not ours to retract.
        assert!(!a.retract("from-b"));
        assert!(a.has_signal("from-b"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_age_out_everywhere_by_their_own_timestamp() {
    bounded(async {
        let t = Cluster::new();
        let max_age = Duration::from_millis(1500);
        let a = join(t.config("a").max_age(max_age)).await;
        let c = join(
            t.config("c")
                .max_age(Duration::from_secs(3600))
                .seed(a.addr()),
        )
        .await;
        all_see(&[&a, &c], 2).await;
        let event = a.raise("short-lived");
        eventually("c sees it", || c.has_signal("short-lived")).await;
        eventually("it ages out on a", || !a.has_signal("short-lived")).await;
        eventually("it ages out on c", || !c.has_signal("short-lived")).await;
        let age = SystemTime::now()
            .duration_since(event.timestamp())
            .unwrap_or_default();
        // Never early: the origin's age governs even on a node with a longer window.
        assert!(age >= max_age, "gone after only {age:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_with_a_ttl_leaves_every_node_after_it() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a")).await;
        let b = join(t.config("b").seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        let ttl = Duration::from_millis(800);
        let event = ephemeral::SignalEvent::new(
            "brief",
            ephemeral::OperationId::next(),
            None,
            ephemeral::now(),
        )
        .with_ttl(ttl);
        let stamped = event.timestamp();
        a.local().raise_event(event);
        eventually("b sees it", || b.has_signal("brief")).await;
        assert_eq!(b.signals_named("brief")[0].ttl(), Some(ttl));
        eventually("it leaves b", || !b.has_signal("brief")).await;
        let age = SystemTime::now()
            .duration_since(stamped)
            .unwrap_or_default();
        assert!(age >= ttl, "gone after {age:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_dropped_with_its_signals_and_a_restarted_one_rejoins() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a")).await;
        let b = join(t.config("b").seed(a.addr())).await;
        let c = join(t.config("c").seed(a.addr())).await;
        all_see(&[&a, &b, &c], 3).await;
        c.raise("c-was-here");
        eventually("a sees c's signal", || a.has_signal("c-was-here")).await;
        let c_addr = c.addr();
        let first_generation = c
            .members()
            .iter()
            .find(|m| m.is_self())
            .unwrap()
            .generation();

        drop(c); // every handle gone: the node stops without a goodbye
        for node in [&a, &b] {
            let took = eventually("the dead node is dropped", || {
                node.members().len() == 2 && !node.has_signal("c-was-here")
            })
            .await;
            eprintln!("{} dropped c after {took:?}", node.name());
        }

        // Restarted on the same address, it rejoins as a newer generation.
        let c = rejoin(t.config_at(c_addr, "c").seed(a.addr()), c_addr).await;
        all_see(&[&a, &b, &c], 3).await;
        let again = a.members().into_iter().find(|m| m.name() == "c").unwrap();
        assert!(again.generation() > first_generation);
        c.raise("c-is-back");
        eventually("b sees the restarted node's signal", || {
            b.has_signal("c-is-back")
        })
        .await;
        assert!(
            !b.has_signal("c-was-here"),
            "the old incarnation's signals stay gone"
        );
    })
    .await;
}

/// Starts a node on `addr` again once the old socket is released.
async fn rejoin(config: ClusterConfig, addr: SocketAddr) -> ClusterSink {
    for _ in 0..500 {
        match ClusterSink::join(config.clone()).await {
            Ok(node) => return node,
            Err(ClusterError::Bind { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(e) => panic!("{e}"),
        }
    }
    panic!("{addr} was never released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_leaves_is_dropped_at_once_with_its_signals() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a")).await;
        let b = join(t.config("b").seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        b.raise("draining");
        eventually("a sees b's signal", || a.has_signal("draining")).await;
        b.leave().await;
        let took = eventually("a drops b", || {
            a.members().len() == 1 && !a.has_signal("draining")
        })
        .await;
        // A goodbye is much faster than failure detection; bound it loosely all the same.
        assert!(took < Duration::from_secs(5), "{took:?}");
        // The handle lives on as a local sink.
        assert_eq!(b.members().len(), 1);
        b.raise("after-leaving");
        assert!(b.has_signal("after-leaving"));
        b.leave().await; // a second call does nothing
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_on_one_node_defers_while_a_signal_is_raised_on_another() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a")).await;
        let b = join(t.config("b").seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let coordinator = WorkCoordinator::new(
            move |n: u32, op: Operation| {
                let r = r.clone();
                async move {
                    r.fetch_add(1, Ordering::SeqCst);
                    op.emit(format!("done.{n}"));
                }
            },
            Options::default()
                .signals(b.local().clone())
                .defer_on_signals(["rate-limit"])
                .max_defer_attempts(u32::MAX)
                .defer_check_interval(Duration::from_millis(20)),
        );

        a.raise("rate-limit");
        eventually("b sees a's rate limit", || b.has_signal("rate-limit")).await;
        for n in 0..5 {
            coordinator.enqueue(n).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "nothing runs while a is rate limited"
        );
        assert!(coordinator.stats().deferred > 0);

        assert!(a.retract("rate-limit"));
        eventually("the work runs once the signal is gone", || {
            ran.load(Ordering::SeqCst) == 5
        })
        .await;
        coordinator.complete();
        coordinator.drain().await;
        // What b's operations emitted was published: a sees it.
        eventually("a sees b's operations' signals", || {
            a.count_signals_matching("done.*") == 5
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_seed_leaves_the_node_alone_until_the_seed_appears() {
    bounded(async {
        let t = Cluster::new();
        // Reserve a port, then free it: nothing listens there yet.
        let spare = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let seed_addr = spare.local_addr().unwrap();
        drop(spare);
        let n = join(t.config("n").seed(seed_addr)).await;
        tokio::time::sleep(GOSSIP * 10).await;
        assert_eq!(n.members().len(), 1, "alone while the seed is away");
        n.raise("from-n");

        let s = join(t.config_at(seed_addr, "s")).await;
        all_see(&[&n, &s], 2).await;
        eventually("the seed sees what n raised before it existed", || {
            s.has_signal("from-n")
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_catches_up_with_live_signals() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a").max_capacity(2000)).await;
        for i in 0..1000 {
            a.raise_with_key("load", format!("key-{i}"));
        }
        let late = join(t.config("late").max_capacity(2000).seed(a.addr())).await;
        let took = eventually("the late joiner has all 1000", || {
            late.count_signals("load") == 1000
        })
        .await;
        eprintln!("caught up with 1000 signals in {took:?}");
        assert_eq!(late.signals_for_key("key-999").len(), 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_node_publishes_is_bounded_by_its_capacity() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a").max_capacity(50)).await;
        let b = join(t.config("b").max_capacity(1000).seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        for i in 0..500 {
            a.raise(format!("burst.{i}"));
        }
        eventually("b holds a's newest 50", || {
            b.count_signals_matching("burst.*") == 50 && b.has_signal("burst.499")
        })
        .await;
        tokio::time::sleep(GOSSIP * 6).await;
        assert_eq!(b.count_signals_matching("burst.*"), 50);
        assert!(
            !b.has_signal("burst.449"),
            "older ones were overwritten in a's ring"
        );
        assert!(b.has_signal("burst.450"));
    })
    .await;
}

#[tokio::test]
async fn bad_settings_are_refused_with_a_clear_error() {
    let short = ClusterSink::join(ClusterConfig::new(any_port(), "fifteen bytes!!")).await;
    assert!(
        matches!(
            short,
            Err(ClusterError::SecretTooShort { len: 15, min: 16 })
        ),
        "{short:?}"
    );
    let ok = ClusterSink::join(ClusterConfig::new(any_port(), "sixteen bytes!!!")).await;
    assert!(ok.is_ok());
    let unspecified =
        ClusterSink::join(ClusterConfig::new("0.0.0.0:0".parse().unwrap(), secret())).await;
    assert!(
        matches!(unspecified, Err(ClusterError::InvalidConfig(_))),
        "{unspecified:?}"
    );
    for config in [
        ClusterConfig::new(any_port(), secret()).max_capacity(0),
        ClusterConfig::new(any_port(), secret()).max_age(Duration::ZERO),
        ClusterConfig::new(any_port(), secret()).max_age(Duration::MAX),
        ClusterConfig::new(any_port(), secret()).gossip_interval(Duration::ZERO),
        ClusterConfig::new(any_port(), secret()).max_signal_bytes(0),
        ClusterConfig::new(any_port(), secret()).node_name(""),
        ClusterConfig::new(any_port(), secret()).replay_window(Duration::ZERO),
    ] {
        let err = ClusterSink::join(config.clone()).await.unwrap_err();
        assert!(
            matches!(err, ClusterError::InvalidConfig(_)),
            "{config:?}: {err}"
        );
        assert!(!err.to_string().is_empty());
    }
    // A port in use is a bind error naming the address.
    let taken = ok.unwrap();
    let err = ClusterSink::join(ClusterConfig::new(taken.addr(), secret()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClusterError::Bind { addr, .. } if addr == taken.addr()),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_keys_over_the_limit_are_refused_or_stay_local() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a").max_signal_bytes(64)).await;
        let b = join(t.config("b").seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        let long = "x".repeat(65);
        let err = a.try_raise(long.clone()).unwrap_err();
        assert!(
            matches!(
                err,
                ClusterError::SignalTooLong {
                    what: "name",
                    len: 65,
                    max: 64
                }
            ),
            "{err}"
        );
        assert!(matches!(
            a.try_raise_with_key("ok", long.clone()),
            Err(ClusterError::SignalTooLong { what: "key", .. })
        ));
        assert!(!a.has_signal(&long), "a refused raise raises nothing");
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.raise(long.clone())));
        assert!(panicked.is_err(), "raise panics, as documented");

        // Through the local sink (a coordinator's emit, say) it stays on this node, counted.
        a.local().raise(long.clone());
        a.raise("marker");
        eventually("b sees the marker", || b.has_signal("marker")).await;
        assert!(!b.has_signal(&long));
        assert!(a.has_signal(&long));
        assert_eq!(a.traffic().unpublished_signals, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retraction_reaches_everywhere_even_after_the_local_sink_dropped_the_signal() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a").max_capacity(20)).await;
        let b = join(t.config("b").max_capacity(1000).seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        a.raise("maintenance");
        eventually("b sees it", || b.has_signal("maintenance")).await;
        // b's raises fill a's local sink and push a's own signal out of it.
        for i in 0..40 {
            b.raise(format!("noise.{i}"));
        }
        eventually("a's sink dropped its own signal for room", || {
            !a.has_signal("maintenance") && a.has_signal("noise.39")
        })
        .await;
        assert!(b.has_signal("maintenance"), "still published");
        assert!(a.retract("maintenance"), "found in what a publishes");
        eventually("the retraction reaches b", || !b.has_signal("maintenance")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_subscriber_raises_in_reaction_to_a_remote_signal_is_published() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a")).await;
        let b = join(t.config("b").seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        let sink = b.local().clone();
        let _reaction = b.local().subscribe(move |e| {
            if e.is("error.disk") {
                sink.raise("alert.disk");
            }
        });
        a.raise("error.disk");
        eventually("b reacts", || b.has_signal("alert.disk")).await;
        eventually("a sees b's reaction", || a.has_signal("alert.disk")).await;
        tokio::time::sleep(GOSSIP * 6).await;
        assert_eq!(
            a.count_signals("error.disk"),
            1,
            "the mirrored one is not echoed"
        );
        assert_eq!(b.count_signals("error.disk"), 1);
    })
    .await;
}

/// A storm of raises moves heartbeats fast; a quiet spell afterwards must not look like a
/// death (members stay, signals stay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_stay_through_a_raise_storm_and_the_quiet_after_it() {
    bounded(async {
        let t = Cluster::new();
        // A generous failure timeout: the storm shares two threads with the nodes (and CI
        // runs other tests beside it), and what is tested is that fast heartbeats during the
        // storm do not make the quiet after it look like a death, as chitchat's phi would.
        let patient = Duration::from_secs(5);
        let a = join(t.config("a").max_capacity(500).failure_timeout(patient)).await;
        let b = join(
            t.config("b")
                .max_capacity(5000)
                .failure_timeout(patient)
                .seed(a.addr()),
        )
        .await;
        all_see(&[&a, &b], 2).await;
        let drops = Arc::new(AtomicUsize::new(0));
        let mut watch = b.watch_members();
        let d = drops.clone();
        let watcher = tokio::spawn(async move {
            while watch.changed().await.is_ok() {
                if watch.borrow().len() < 2 {
                    d.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let started = std::time::Instant::now();
        let mut i = 0u64;
        while started.elapsed() < Duration::from_secs(2) {
            a.raise(format!("storm.{}", i % 400));
            i += 1;
            if i % 8 == 0 {
                tokio::task::yield_now().await;
            }
        }
        a.raise("last");
        eventually("b sees the last raise", || b.has_signal("last")).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(drops.load(Ordering::SeqCst), 0, "b never lost a");
        assert_eq!(b.members().len(), 2);
        assert!(b.has_signal("last"));
        watcher.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_counts_escaped_bytes() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a").max_signal_bytes(64)).await;
        // 20 control characters escape to 120 bytes.
        let err = a.try_raise("\u{1}".repeat(20)).unwrap_err();
        assert!(
            matches!(
                err,
                ClusterError::SignalTooLong {
                    what: "name",
                    len: 120,
                    max: 64
                }
            ),
            "{err}"
        );
        assert!(a.try_raise("\"".repeat(32)).is_ok());
        assert!(a.try_raise("\"".repeat(33)).is_err());
    })
    .await;
}
