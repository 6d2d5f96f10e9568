//! The secret scopes and authenticates the cluster: a node with another secret learns and
//! injects nothing, and forged, altered, truncated, misaddressed, replayed and stale datagrams
//! sent with a plain `UdpSocket` are refused and counted while the node keeps gossiping.

mod common;

use common::*;
use ephemeral::SignalSource;
use ephemeral_cluster::ClusterConfig;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_secret_sees_nothing_and_injects_nothing() {
    bounded(async {
        let t = Cluster::new();
        let intruder = join(
            ClusterConfig::new(any_port(), "not the tests' secret at all!!")
                .node_name("intruder")
                .gossip_interval(GOSSIP),
        )
        .await;
        intruder.raise("injected");
        let a = join(t.config("a")).await;
        // b gossips to the intruder too (it is one of b's seeds), so genuine sealed traffic
        // reaches it; and the intruder gossips to a and b.
        let b = join(t.config("b").seed(a.addr()).seed(intruder.addr())).await;
        all_see(&[&a, &b], 2).await;
        a.raise("private");
        let intruder2 = join(
            ClusterConfig::new(any_port(), "not the tests' secret at all!!")
                .node_name("intruder2")
                .gossip_interval(GOSSIP)
                .seed(intruder.addr())
                .seed(a.addr())
                .seed(b.addr()),
        )
        .await;
        eventually("the intruders find each other", || {
            intruder.members().len() == 2
        })
        .await;
        eventually("the members refuse the intruders' datagrams", || {
            a.rejected_datagrams() >= 3 && b.rejected_datagrams() >= 3
        })
        .await;
        eventually("the intruder refuses the members' datagrams", || {
            intruder.rejected_datagrams() >= 3
        })
        .await;
        tokio::time::sleep(GOSSIP * 10).await;
        for outsider in [&intruder, &intruder2] {
            assert_eq!(outsider.members().len(), 2, "{:?}", outsider.members());
            assert!(!outsider.has_signal("private"));
        }
        for node in [&a, &b] {
            assert_eq!(node.members().len(), 2, "{:?}", node.members());
            assert!(!node.has_signal("injected"));
        }
        // The cluster itself is unaffected.
        b.raise("still-fine");
        eventually("a and b keep gossiping", || a.has_signal("still-fine")).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_altered_truncated_misaddressed_replayed_and_stale_datagrams_are_refused() {
    bounded(async {
        let t = Cluster::new();
        // A plain socket relays x's traffic to y (y advertises the relay's address), keeping a
        // copy of every datagram: genuine sealed datagrams to replay.
        let relay = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let relay_addr = relay.local_addr().unwrap();
        let window = Duration::from_secs(2);
        let y = join(t.config("y").advertise(relay_addr).replay_window(window)).await;
        assert_eq!(y.addr(), relay_addr, "y advertises the relay");
        let y_real = y.bound_addr();
        let z = join(t.config("z")).await;
        let captured: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let relaying = {
            let (relay, captured) = (relay.clone(), captured.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 70_000];
                loop {
                    let Ok((len, _)) = relay.recv_from(&mut buf).await else {
                        break;
                    };
                    captured.lock().unwrap().push(buf[..len].to_vec());
                    let _ = relay.send_to(&buf[..len], y_real).await;
                }
            })
        };
        let x = join(t.config("x").seed(relay_addr).seed(z.addr())).await;
        all_see(&[&x, &y, &z], 3).await;

        // Fresh genuine datagrams, sealed for y's advertised address.
        captured.lock().unwrap().clear();
        eventually("x sends y more datagrams", || {
            captured.lock().unwrap().len() >= 3
        })
        .await;
        let genuine = captured.lock().unwrap()[0].clone();
        let before = y.rejected_datagrams();
        let mut bad = 0;

        // Random bytes, of many lengths.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for len in [0usize, 1, 16, 48, 49, 100, 1500, 65_000] {
            let noise: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            relay.send_to(&noise, y_real).await.unwrap();
            bad += 1;
        }
        // Altered: one flipped bit in the header, the body and the tag.
        for at in [3, genuine.len() / 2, genuine.len() - 1] {
            let mut altered = genuine.clone();
            altered[at] ^= 0x10;
            relay.send_to(&altered, y_real).await.unwrap();
            bad += 1;
        }
        // Truncated.
        for keep in [10, genuine.len() - 1] {
            relay.send_to(&genuine[..keep], y_real).await.unwrap();
            bad += 1;
        }
        // Replayed: already delivered once by the relay.
        relay.send_to(&genuine, y_real).await.unwrap();
        bad += 1;
        eventually("y counts every bad datagram", || {
            y.rejected_datagrams() >= before + bad
        })
        .await;
        // Misaddressed: sealed for y, replayed to z.
        let z_before = z.rejected_datagrams();
        relay.send_to(&genuine, z.addr()).await.unwrap();
        eventually("z refuses a datagram sealed for y", || {
            z.rejected_datagrams() > z_before
        })
        .await;

        // Stale: a genuine datagram older than y's window, never delivered to y (the relay
        // is stopped first, so nothing else reaches y meanwhile but x's replies via the relay).
        relaying.abort();
        let old = captured.lock().unwrap().last().unwrap().clone();
        tokio::time::sleep(window + Duration::from_millis(500)).await;
        let before_stale = y.rejected_datagrams();
        relay.send_to(&old, y_real).await.unwrap();
        eventually("y refuses a stale datagram", || {
            y.rejected_datagrams() > before_stale
        })
        .await;

        // y kept gossiping through all of it (with z; x reaches y only through the relay).
        z.raise("after-the-attack");
        eventually("y still hears z", || y.has_signal("after-the-attack")).await;
        let traffic = y.traffic();
        assert!(traffic.datagrams_received > traffic.rejected, "{traffic:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_counts_what_the_socket_did() {
    bounded(async {
        let t = Cluster::new();
        let a = join(t.config("a")).await;
        let b = join(t.config("b").seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        let tr = a.traffic();
        assert!(
            tr.datagrams_sent > 0 && tr.bytes_sent >= tr.datagrams_sent * 49,
            "{tr:?}"
        );
        assert!(tr.datagrams_received > 0 && tr.bytes_received > 0, "{tr:?}");
        assert_eq!(
            (tr.rejected, tr.oversized, tr.unpublished_signals),
            (0, 0, 0)
        );
    })
    .await;
}
