//! Keys: per-key views, labels, pending counts, odd keys, and idle keys that cost no memory.

use super::*;

#[tokio::test]
async fn per_key_views_and_labels() {
    let (c, gate) = gated(Options::default().max_concurrency(4));
    c.pause();
    let mut a_ids = Vec::new();
    for n in 0..3 {
        a_ids.push(c.enqueue(('a', n)).await.unwrap());
    }
    c.enqueue(('b', 0)).await.unwrap();
    assert_eq!(c.pending_count_for_key(&'a'), 3);
    assert_eq!(c.pending_count_for_key(&'b'), 1);
    assert_eq!(c.pending_count_for_key(&'z'), 0);
    assert_eq!(c.active_keys(), 2);
    gate.add_permits(100);
    c.resume();
    c.complete();
    c.drain().await;
    let a = c.snapshot_for_key(&'a');
    assert_eq!(a.iter().map(|s| s.id()).collect::<Vec<_>>(), a_ids);
    assert!(a.iter().all(|s| s.key() == Some("a") && !s.is_running()));
    assert_eq!(c.snapshot_for_key(&'b').len(), 1);
    assert!(c.snapshot_for_key(&'z').is_empty());
    assert_eq!(c.snapshot().len(), 4);
}

#[tokio::test]
async fn a_key_is_forgotten_as_soon_as_it_is_idle() {
    let (c, gate) = gated(Options::default().max_concurrency(4));
    assert_eq!(c.active_keys(), 0);
    c.enqueue(('a', 0)).await.unwrap();
    c.enqueue(('a', 1)).await.unwrap();
    c.enqueue(('b', 0)).await.unwrap();
    wait_until(1000, || c.active_count() == 2).await;
    assert_eq!(c.active_keys(), 2);
    gate.add_permits(2);
    // a1 runs now; b is gone while the coordinator is still open.
    wait_until(1000, || c.total_completed() == 2).await;
    wait_until(1000, || c.active_count() == 1).await;
    assert_eq!(c.active_keys(), 1);
    gate.add_permits(1);
    wait_until(1000, || c.total_completed() == 3 && c.active_count() == 0).await;
    assert_eq!(c.active_keys(), 0);
    assert!(!c.is_completed());
}

/// Follows `pending_count_for_key` as items wait in their key's queue, wait to be taken, run
/// and finish (one slot, one item per key): an item counts as pending until it shows as
/// running, and never again after.
async fn pending_counts_follow_items(fair: bool) {
    let options = Options::default().max_concurrency(1);
    let (c, gate) = gated(if fair {
        options.max_pending_per_key(100)
    } else {
        options
    });
    c.enqueue(('a', 0)).await.unwrap();
    wait_until(1000, || c.active_count() == 1).await;
    assert_eq!(c.pending_count_for_key(&'a'), 0, "a0 runs");
    c.enqueue(('a', 1)).await.unwrap();
    c.enqueue(('b', 0)).await.unwrap();
    assert_eq!(c.pending_count_for_key(&'a'), 1, "a1 waits behind a0");
    assert_eq!(c.pending_count_for_key(&'b'), 1, "b0 waits for the slot");
    assert_eq!(c.pending_count(), 2);

    // a0 ends: a1 queues behind b0, which starts.
    gate.add_permits(1);
    wait_until(1000, || c.total_completed() == 1 && c.active_count() == 1).await;
    assert_eq!(c.running()[0].key(), Some("b"));
    assert_eq!(c.pending_count_for_key(&'b'), 0, "b0 runs");
    assert_eq!(c.pending_count_for_key(&'a'), 1, "a1 waits for the slot");
    assert_eq!(c.pending_count(), 1);
    assert_eq!(c.active_keys(), 2);

    gate.add_permits(1);
    wait_until(1000, || c.total_completed() == 2 && c.active_count() == 1).await;
    assert_eq!(c.running()[0].key(), Some("a"));
    assert_eq!(c.pending_count_for_key(&'a'), 0, "a1 runs");
    assert_eq!(c.pending_count_for_key(&'b'), 0, "b0 ended");
    assert_eq!(c.active_keys(), 1);

    gate.add_permits(1);
    c.complete();
    c.drain().await;
    assert_eq!(c.pending_count_for_key(&'a'), 0);
    assert_eq!(c.active_keys(), 0);
}

#[tokio::test]
async fn pending_counts_follow_items_taken_without_a_lock() {
    pending_counts_follow_items(false).await;
}

#[tokio::test]
async fn pending_counts_follow_items_with_fair_scheduling() {
    pending_counts_follow_items(true).await;
}

#[tokio::test]
async fn a_sampled_item_no_longer_counts_as_pending() {
    type Keyed = KeyedWorkCoordinator<char, (char, u32)>;
    let me: Arc<Mutex<Option<Keyed>>> = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (m, s) = (me.clone(), seen.clone());
    let c: Keyed = KeyedWorkCoordinator::new(
        |it: &(char, u32)| it.0,
        |_it, _op: Operation| async { BodyResult::Ok(()) },
        Options::default()
            .max_concurrency(1)
            .on_sample(move |_snapshot| {
                let c = m.lock().unwrap().clone();
                if let Some(c) = c {
                    s.lock().unwrap().push(c.pending_count_for_key(&'a'));
                }
            }),
    );
    *me.lock().unwrap() = Some(c.clone());
    c.pause();
    c.enqueue(('a', 0)).await.unwrap();
    c.enqueue(('a', 1)).await.unwrap();
    c.resume();
    c.complete();
    c.drain().await;
    me.lock().unwrap().take();
    // While a0 is sampled, a1 waits; while a1 is, nothing does.
    assert_eq!(*seen.lock().unwrap(), [1, 0]);
}

/// Readers on another thread never see a key with more operations running than its cap: a
/// worker settles its previous item (record, release) and takes the next in one step as far
/// as readers can tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_each_item_in_one_state_at_a_time() {
    const KEYS: u32 = 3;
    const ITEMS: u32 = 20_000;
    let c = KeyedWorkCoordinator::new(
        |n: &u32| n % KEYS,
        |_n: u32, _op: Operation| async {
            tokio::task::yield_now().await;
            BodyResult::Ok(())
        },
        Options::default().max_concurrency(4).queue_capacity(64),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let mut running = [0usize; KEYS as usize];
                for op in c.running() {
                    let key: usize = op.key().unwrap().parse().unwrap();
                    running[key] += 1;
                }
                assert!(
                    running.iter().all(|&n| n <= 1),
                    "a key listed twice as running: {running:?}"
                );
                reads += 1;
                // Let workers take the locks between reads (the mutexes are not fair).
                std::thread::sleep(Duration::from_micros(20));
            }
            reads
        })
    };
    for n in 0..ITEMS {
        c.enqueue(n).await.map_err(|_| ()).unwrap();
    }
    c.complete();
    c.drain().await;
    stop.store(true, Ordering::SeqCst);
    let reads = reader.join().expect("reader saw an inconsistent state");
    assert!(reads > 0);
    assert_eq!(c.total_completed(), u64::from(ITEMS));
}

/// A key whose `Display` panics for one value.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Touchy(u32);

impl std::fmt::Display for Touchy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 13 {
            std::panic::panic_any(support::PANIC_MARK);
        }
        write!(f, "k{}", self.0)
    }
}

#[tokio::test]
async fn a_key_whose_display_panics_still_runs_and_releases() {
    quiet_deliberate_panics();
    let c = KeyedWorkCoordinator::new(
        |n: &u32| Touchy(n % 20),
        |_n: u32, _op: Operation| async { BodyResult::Ok(()) },
        Options::default().max_concurrency(2),
    );
    for n in 0..100 {
        c.enqueue(n).await.unwrap();
    }
    c.complete();
    tokio::time::timeout(Duration::from_secs(10), c.drain())
        .await
        .expect("drain hung");
    assert_eq!(c.total_completed(), 100);
    assert_eq!(c.active_keys(), 0);
    assert_eq!(c.pending_count_for_key(&Touchy(13)), 0);
    let labels: Vec<_> = c
        .snapshot()
        .iter()
        .filter_map(|s| s.key().map(str::to_owned))
        .collect();
    assert!(labels.iter().any(|l| l == "<key's Display panicked>"));
    assert!(labels.iter().any(|l| l == "k12"));
}

/// A key whose `Hash` covers only part of it: legal, and every document of a tenant has the
/// same hash.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Doc {
    tenant: u32,
    doc: u32,
}

impl std::hash::Hash for Doc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.tenant.hash(state);
    }
}

impl std::fmt::Display for Doc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.tenant, self.doc)
    }
}

#[tokio::test]
async fn keys_with_equal_hashes_still_run_in_parallel() {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let c = KeyedWorkCoordinator::new(
        |d: &Doc| *d,
        move |_d: Doc, _op: Operation| {
            let g = g.clone();
            async move {
                g.acquire().await.unwrap().forget();
                BodyResult::Ok(())
            }
        },
        Options::default().max_concurrency(4),
    );
    let doc = |doc| Doc { tenant: 7, doc };
    // The first wave may wait behind the first key's item (its hash is all the
    // coordinator knows of it)...
    for d in 0..3 {
        c.enqueue(doc(d)).await.unwrap();
    }
    wait_until(1000, || c.active_count() >= 1).await;
    gate.add_permits(3);
    wait_until(1000, || c.total_completed() == 3 && c.active_count() == 0).await;
    assert_eq!(c.active_keys(), 0);
    // ...but once two such keys met, every key gets a map entry: equal hashes no longer
    // hold anyone back, even with nothing else going on.
    for d in 3..6 {
        c.enqueue(doc(d)).await.unwrap();
    }
    wait_until(1000, || c.active_count() == 3).await;
    c.enqueue(doc(3)).await.unwrap();
    assert_eq!(
        c.pending_count_for_key(&doc(3)),
        1,
        "doc 3 waits for its own item"
    );
    assert_eq!(c.pending_count_for_key(&doc(4)), 0);
    assert_eq!(c.active_keys(), 3);
    gate.add_permits(100);
    c.complete();
    c.drain().await;
    assert_eq!(c.total_completed(), 7);
    assert_eq!(c.active_keys(), 0);
}

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_distinct_keys_leave_no_state_behind() {
    const ITEMS: u64 = 1_000_000;
    const QUEUE: usize = 256;
    const CAP: usize = 4;
    const TRACKED: usize = 100;
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let c = KeyedWorkCoordinator::new(
        |n: &u64| *n,
        move |_n: u64, _op: Operation| {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::Relaxed);
                BodyResult::Ok(())
            }
        },
        Options::default()
            .max_concurrency(CAP)
            .queue_capacity(QUEUE)
            .max_tracked_operations(TRACKED),
    );
    let mut rss = Vec::new();
    let mut max_keys = 0;
    let mut max_window = 0;
    for n in 0..ITEMS {
        if let Err(TryEnqueueError::Full(n)) = c.try_enqueue(n) {
            c.enqueue(n).await.map_err(|_| ()).unwrap();
        }
        if n % 1000 == 0 {
            max_keys = max_keys.max(c.active_keys());
            max_window = max_window.max(c.window_len());
        }
        if n % (ITEMS / 5) == ITEMS / 5 - 1 {
            rss.extend(rss_bytes());
        }
    }
    c.complete();
    c.drain().await;
    assert_eq!(ran.load(Ordering::Relaxed) as u64, ITEMS);
    assert_eq!(c.total_completed(), ITEMS);
    // Keys with anything pending or running, never more than that.
    assert!(max_keys <= QUEUE + CAP, "{max_keys} keys tracked at once");
    // Each worker keeps a shard of at most TRACKED finished operations (reads trim them to
    // the newest TRACKED overall), plus the one it runs.
    assert!(
        max_window <= (CAP + 1) * TRACKED + CAP,
        "window held {max_window}"
    );
    assert_eq!(c.active_keys(), 0);
    assert!(c.window_len() <= (CAP + 1) * TRACKED);
    // A read trims the shards to the logical window.
    assert!(c.snapshot().len() <= TRACKED);
    assert!(c.window_len() <= TRACKED);
    // RSS is process-wide (other tests run in parallel threads), so a one-off jump is noise;
    // state kept per key would instead grow it in every 200,000-key stretch. Require one
    // stretch with (almost) no growth: that catches a leak of ~20 bytes per key.
    if rss.len() == 5 {
        let stretches: Vec<u64> = rss.windows(2).map(|w| w[1].saturating_sub(w[0])).collect();
        let flattest = *stretches.iter().min().unwrap();
        assert!(
            flattest < 4 << 20,
            "RSS grew in every 200,000-key stretch: {:?} KiB",
            stretches.iter().map(|b| b >> 10).collect::<Vec<_>>()
        );
    }
}
