//! The secret scopes and authenticates the cluster: a node with another secret learns and
//! injects nothing, and forged, altered, truncated, replayed and stale datagrams sent with a
//! plain `UdpSocket` are refused and counted while the node keeps gossiping.

mod common;

use common::*;
use ephemeral::SignalSource;
use ephemeral_cluster::ClusterConfig;
use std::time::Duration;
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_the_wrong_secret_sees_nothing_and_injects_nothing() {
    bounded(async {
        let a = join(config("a")).await;
        let b = join(config("b").seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        a.raise("private");

        let intruder = join(
            ClusterConfig::new(any_port(), "not the tests' secret at all!!")
                .node_name("intruder")
                .gossip_interval(GOSSIP)
                .seed(a.addr())
                .seed(b.addr()),
        )
        .await;
        intruder.raise("injected");
        eventually("a refuses the intruder's datagrams", || {
            a.rejected_datagrams() >= 3
        })
        .await;
        tokio::time::sleep(GOSSIP * 10).await;
        assert_eq!(intruder.members().len(), 1, "{:?}", intruder.members());
        assert!(!intruder.has_signal("private"));
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
async fn forged_altered_truncated_replayed_and_stale_datagrams_are_refused_and_counted() {
    bounded(async {
        // A plain socket poses as x's seed, so x sends it genuine sealed datagrams to replay.
        let spy = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let y = join(config("y").replay_window(Duration::from_secs(1))).await;
        let x = join(config("x").seed(spy.local_addr().unwrap()).seed(y.addr())).await;
        all_see(&[&x, &y], 2).await;

        let mut captured = Vec::new();
        let mut buf = vec![0u8; 70_000];
        while captured.len() < 3 {
            let (len, _) = tokio::time::timeout(PATIENCE, spy.recv_from(&mut buf))
                .await
                .expect("x gossips to its seed")
                .unwrap();
            captured.push(buf[..len].to_vec());
        }
        let genuine = captured[0].clone();
        let to = y.addr();
        let before = y.rejected_datagrams();
        let mut bad = 0;
        let send = |bytes: Vec<u8>| {
            let spy = &spy;
            async move {
                spy.send_to(&bytes, to).await.unwrap();
            }
        };

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
            send(noise).await;
            bad += 1;
        }
        // Altered: one flipped bit in the header, the body and the tag.
        for at in [3, genuine.len() / 2, genuine.len() - 1] {
            let mut altered = genuine.clone();
            altered[at] ^= 0x10;
            send(altered).await;
            bad += 1;
        }
        // Truncated.
        for keep in [10, genuine.len() - 1] {
            send(genuine[..keep].to_vec()).await;
            bad += 1;
        }
        // Replayed: the first copy of a genuine datagram is accepted, the second refused.
        send(genuine.clone()).await;
        send(genuine.clone()).await;
        bad += 1;
        eventually("y counts every bad datagram", || {
            y.rejected_datagrams() == before + bad
        })
        .await;

        // Stale: a genuine datagram older than y's one-second window.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let before_stale = y.rejected_datagrams();
        send(captured[1].clone()).await;
        eventually("y refuses a stale datagram", || {
            y.rejected_datagrams() == before_stale + 1
        })
        .await;

        // y kept gossiping through all of it.
        x.raise("after-the-attack");
        eventually("y still hears x", || y.has_signal("after-the-attack")).await;
        y.raise("reply");
        eventually("x still hears y", || x.has_signal("reply")).await;
        assert_eq!(y.members().len(), 2);
        let traffic = y.traffic();
        assert!(traffic.datagrams_received > traffic.rejected, "{traffic:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_counts_what_the_socket_did() {
    bounded(async {
        let a = join(config("a")).await;
        let b = join(config("b").seed(a.addr())).await;
        all_see(&[&a, &b], 2).await;
        let t = a.traffic();
        assert!(
            t.datagrams_sent > 0 && t.bytes_sent >= t.datagrams_sent * 49,
            "{t:?}"
        );
        assert!(t.datagrams_received > 0 && t.bytes_received > 0, "{t:?}");
        assert_eq!((t.rejected, t.oversized, t.unpublished_signals), (0, 0, 0));
    })
    .await;
}
