//! Per-key order and caps under stress (seeded, so failures reproduce).

use super::*;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Fail,
    Panic,
}

struct StressItem {
    key: u32,
    seq: u32,
    idx: usize,
    work: u64,
    outcome: Outcome,
}

#[derive(Default)]
struct KeyTrack {
    next_start: u32,
    running: usize,
}

struct Tracker {
    keys: Mutex<HashMap<u32, KeyTrack>>,
    violations: Mutex<Vec<String>>,
    active: AtomicUsize,
    max_active: AtomicUsize,
    runs: Vec<AtomicUsize>,
    ids: Mutex<HashMap<OperationId, (u32, u32)>>,
}

impl Tracker {
    fn violation(&self, msg: String) {
        self.violations.lock().unwrap().push(msg);
    }
}

async fn stress(seed: u64, n_keys: u32, n_items: usize, cap: usize, per_key: usize, queue: usize) {
    quiet_deliberate_panics();
    let mut rng = Rng(seed);
    let mut seqs = vec![0u32; n_keys as usize];
    let plan: Vec<StressItem> = (0..n_items)
        .map(|idx| {
            // A third of the items go to three hot keys, the rest spread over all keys.
            let key = if rng.below(3) == 0 {
                rng.below(3) as u32
            } else {
                rng.below(u64::from(n_keys)) as u32
            };
            let seq = seqs[key as usize];
            seqs[key as usize] += 1;
            let outcome = match rng.below(10) {
                0 => Outcome::Fail,
                1 => Outcome::Panic,
                _ => Outcome::Ok,
            };
            StressItem {
                key,
                seq,
                idx,
                work: rng.below(6),
                outcome,
            }
        })
        .collect();
    let expected_ok = plan.iter().filter(|i| i.outcome == Outcome::Ok).count() as u64;
    let expected_failed = n_items as u64 - expected_ok;

    let tracker = Arc::new(Tracker {
        keys: Mutex::new(HashMap::new()),
        violations: Mutex::new(Vec::new()),
        active: AtomicUsize::new(0),
        max_active: AtomicUsize::new(0),
        runs: (0..n_items).map(|_| AtomicUsize::new(0)).collect(),
        ids: Mutex::new(HashMap::new()),
    });
    let t = tracker.clone();
    let c = KeyedWorkCoordinator::new(
        |it: &StressItem| it.key,
        move |it: StressItem, op: Operation| {
            let t = t.clone();
            async move {
                let label = it.key.to_string();
                if op.key() != Some(label.as_str()) {
                    t.violation(format!("item of key {} saw key {:?}", it.key, op.key()));
                }
                t.ids.lock().unwrap().insert(op.id(), (it.key, it.seq));
                {
                    let mut keys = t.keys.lock().unwrap();
                    let k = keys.entry(it.key).or_default();
                    // One at a time, a body can only be entered after the previous one of its
                    // key returned, so entry order is start order. With more per key, bodies
                    // started in order may be entered in any order; the start order is then
                    // checked on the window below.
                    if per_key == 1 && k.next_start != it.seq {
                        t.violation(format!(
                            "key {}: started seq {} but expected {}",
                            it.key, it.seq, k.next_start
                        ));
                    }
                    k.next_start = it.seq + 1;
                    k.running += 1;
                    if k.running > per_key {
                        t.violation(format!("key {}: {} running at once", it.key, k.running));
                    }
                }
                let now = t.active.fetch_add(1, Ordering::SeqCst) + 1;
                t.max_active.fetch_max(now, Ordering::SeqCst);
                t.runs[it.idx].fetch_add(1, Ordering::SeqCst);
                if it.work < 3 {
                    for _ in 0..it.work * 5 {
                        tokio::task::yield_now().await;
                    }
                } else {
                    tokio::time::sleep(Duration::from_micros(200 * it.work)).await;
                }
                t.active.fetch_sub(1, Ordering::SeqCst);
                t.keys.lock().unwrap().get_mut(&it.key).unwrap().running -= 1;
                match it.outcome {
                    Outcome::Ok => Ok(()),
                    Outcome::Fail => Err(std::io::Error::other("deliberate failure")),
                    Outcome::Panic => panic!("deliberate test panic"),
                }
            }
        },
        Options::default()
            .max_concurrency(cap)
            .max_concurrency_per_key(per_key)
            .queue_capacity(queue)
            .max_tracked_operations(n_items),
    );

    // Two producers, each owning half of the keys, so every key has one enqueue order.
    let mut halves: [Vec<StressItem>; 2] = [Vec::new(), Vec::new()];
    for it in plan {
        halves[(it.key % 2) as usize].push(it);
    }
    let producers: Vec<_> = halves
        .into_iter()
        .enumerate()
        .map(|(p, items)| {
            let c = c.clone();
            tokio::spawn(async move {
                for (i, it) in items.into_iter().enumerate() {
                    if (i + p) % 2 == 0 {
                        match c.try_enqueue(it) {
                            Ok(_) => {}
                            Err(TryEnqueueError::Full(it)) => {
                                c.enqueue(it).await.map_err(|_| ()).unwrap();
                            }
                            Err(e) => panic!("try_enqueue refused: {e}"),
                        }
                    } else {
                        c.enqueue(it).await.map_err(|_| ()).unwrap();
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.await.unwrap();
    }
    assert!(c.complete());
    tokio::time::timeout(Duration::from_secs(60), c.drain())
        .await
        .expect("drain did not finish");

    let violations = tracker.violations.lock().unwrap().clone();
    assert!(
        violations.is_empty(),
        "seed {seed}: {} violations, first: {:?}",
        violations.len(),
        &violations[..violations.len().min(5)]
    );
    for (idx, runs) in tracker.runs.iter().enumerate() {
        assert_eq!(
            runs.load(Ordering::SeqCst),
            1,
            "item {idx} ran a wrong number of times"
        );
    }
    {
        // The window (in start order) holds every operation: per key, starts follow enqueue
        // order and every item started.
        let ids = tracker.ids.lock().unwrap();
        let mut started: HashMap<u32, Vec<u32>> = HashMap::new();
        for op in c.snapshot() {
            let (key, seq) = ids[&op.id()];
            assert_eq!(op.key(), Some(key.to_string().as_str()));
            started.entry(key).or_default().push(seq);
        }
        for (key, &n) in seqs.iter().enumerate() {
            let got = started.remove(&(key as u32)).unwrap_or_default();
            assert_eq!(
                got,
                (0..n).collect::<Vec<_>>(),
                "seed {seed}: key {key} start order"
            );
        }
    }
    let max_active = tracker.max_active.load(Ordering::SeqCst);
    assert!(
        max_active <= cap,
        "{max_active} bodies ran at once, cap {cap}"
    );
    let s = c.stats();
    assert_eq!(s.enqueued, n_items as u64);
    assert_eq!(s.completed, expected_ok);
    assert_eq!(s.failed, expected_failed);
    assert_eq!(s.cancelled, 0);
    assert_eq!((s.pending, s.active), (0, 0));
    assert_eq!(s.enqueued, s.completed + s.failed + s.cancelled);
    assert_eq!(c.active_keys(), 0, "idle keys still hold state");
    assert!(c.window_len() <= n_items + cap);
    let panics = c
        .failed()
        .iter()
        .filter(|s| s.error().is_some_and(|e| e.is_panic()))
        .count();
    let window_failed = c.failed().len();
    assert!(panics <= window_failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_per_key_order_one_at_a_time() {
    for seed in [1, 2] {
        stress(seed, 40, 2500, 4, 1, 64).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_per_key_order_three_at_a_time() {
    for seed in [3, 4] {
        stress(seed, 25, 2500, 6, 3, 64).await;
    }
}

/// Many keys and a tiny queue: idle keys' items share few admission slots (the fewest a
/// coordinator has), so most go through the map behind a taken slot, and slots are released
/// while other keys wait behind them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_per_key_order_with_crowded_slots() {
    for seed in [5, 6] {
        stress(seed, 400, 3000, 4, 1, 2).await;
    }
}
