//! Loom models of the keyed intake (run with `RUSTFLAGS="--cfg loom"`, see RELIABILITY.md).
//!
//! These drive the real [`Keyed`] intake (its fast slots, shard locks and `pending` count)
//! from plain loom threads: producers push, workers take and release as the engine's workers
//! do (a key is released after its body ends, and only then), a canceller drains. The ready
//! queue is crossbeam's, which loom sees as one atomic step per push or pop (it is not loom's,
//! so its own interleavings are crossbeam's to check).

use super::fast_slots::{FastSlots, SLOW_MASK};
use super::{Hashing, Intake, Keyed};
use crate::id::OperationId;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use crate::sync::model;
use loom::sync::Arc;
use loom::thread;
use std::fmt;
use std::hash::{Hash, Hasher};

/// A deliberate break of the intake, for a model to show it catches it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Broken {
    /// A key leaving the map is not counted out of its slot's `slow` count.
    NoCountOut,
    /// A key counted into its slot's `slow` count does not look at the slot again: it waits
    /// for a slot item whose release may already be done.
    NoLookAfterCountIn,
}

/// A key whose `Hash` sees only its first field, so `Key(a, x)` and `Key(a, y)` are tag twins
/// (same slot, same tag: the coarse-`Hash` case the slots give up on).
#[derive(Clone, PartialEq, Eq, Debug)]
struct Key(u64, u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0, self.1)
    }
}

/// A queue of this capacity gets 64 slots.
const CAPACITY: usize = 4;

/// The intake, with a count of running items per key (to catch a key admitted twice).
struct Model {
    keyed: Keyed<u64, Key>,
    keys: Vec<Key>,
    running: Vec<AtomicUsize>,
    taken: AtomicUsize,
}

impl Model {
    fn new(keys: Vec<Key>, broken: Option<Broken>) -> Self {
        let mut keyed = Keyed::new(1, None, CAPACITY);
        keyed.broken = broken;
        Model {
            running: keys.iter().map(|_| AtomicUsize::new(0)).collect(),
            keys,
            keyed,
            taken: AtomicUsize::new(0),
        }
    }

    fn push(&self, key: usize, n: u64) {
        let id = OperationId::from(n);
        let pushed = self
            .keyed
            .try_push(n, self.keys[key].clone(), CAPACITY, 0, id)
            .is_ok();
        assert!(pushed, "room was reserved for every item");
    }

    /// Takes one item, runs it (no other item of its key may run meanwhile), releases its
    /// key; returns whether there was one.
    fn take_one(&self) -> bool {
        let Some(job) = self.keyed.pop(None) else {
            return false;
        };
        let k = self.keys.iter().position(|k| *k == job.key).unwrap();
        let before = self.running[k].fetch_add(1, SeqCst);
        assert_eq!(before, 0, "key {} admitted twice at once", job.key);
        self.taken.fetch_add(1, SeqCst);
        // The body ends, then its key is released.
        self.running[k].fetch_sub(1, SeqCst);
        self.keyed.release(super::Released { key: job.key });
        true
    }

    /// After every thread ended: takes what is left, one by one, then checks that every item
    /// was taken and that the intake holds nothing (no key, no slot, no `slow` count).
    fn finish(&self, items: usize) {
        while self.take_one() {}
        assert_eq!(
            self.taken.load(SeqCst),
            items,
            "an item was stranded in its key's queue"
        );
        self.assert_empty();
    }

    fn assert_empty(&self) {
        assert_eq!(self.keyed.len(), 0, "pending count wrong");
        assert!(!self.keyed.has_ready());
        assert_eq!(self.keyed.tracked_keys(), 0, "a key left in the map");
        let fast = self.keyed.fast.as_ref().unwrap();
        for slot in fast.slots.iter() {
            let word = slot.word.load(SeqCst);
            assert_eq!(word & SLOW_MASK, 0, "slow count wrong");
            assert_eq!(word, 0, "a slot left taken");
        }
    }
}

/// Keys: `a`, a key `b` sharing `a`'s slot with another tag, and `a`'s tag twin (found with
/// the intake's own hashing, which is fixed under loom).
fn keys() -> Vec<Key> {
    let hash = |k: &Key| std::hash::BuildHasher::hash_one(&Hashing::default(), k);
    let mask = FastSlots::slot_count(CAPACITY) as u64 - 1;
    let a = Key(0, 0);
    let ha = hash(&a);
    let b = (1..)
        .map(|i| Key(i, 0))
        .find(|k| {
            let h = hash(k);
            h & mask == ha & mask && FastSlots::word(h) != FastSlots::word(ha)
        })
        .unwrap();
    vec![a, b, Key(0, 1)]
}

/// An item of `a` runs (admitted through its slot) while a second item of `a` and one of `b`
/// (same slot) arrive, and two workers take: `a` never runs twice at once, nothing is
/// stranded, and the slot and its `slow` count end at zero.
/// `b_first`: the producer adds `b` before `a2` (then `b` counts into the slot first and `a2`
/// finds the slot's `slow` count raised).
fn slot_race(broken: Option<Broken>, b_first: bool) {
    let keys = keys();
    model::check(
        if b_first {
            "fast_slots_b_first"
        } else {
            "fast_slots"
        },
        move || {
            let m = Arc::new(Model::new(keys.clone(), broken));
            m.push(0, 1);
            let p = {
                let m = m.clone();
                thread::spawn(move || {
                    if b_first {
                        m.push(1, 3);
                        m.push(0, 2);
                    } else {
                        m.push(0, 2);
                        m.push(1, 3);
                    }
                })
            };
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    let m = m.clone();
                    thread::spawn(move || {
                        m.take_one();
                    })
                })
                .collect();
            p.join().unwrap();
            for w in workers {
                w.join().unwrap();
            }
            m.finish(3);
        },
    );
}

#[test]
fn loom_fast_slots() {
    slot_race(None, false);
}

#[test]
fn loom_fast_slots_b_first() {
    slot_race(None, true);
}

/// A slot item of `a` runs while its tag twin arrives: the twin waits for it, is admitted by
/// its release, and slots are disabled; nothing is stranded or run twice.
#[test]
fn loom_fast_slots_tag_twins() {
    let keys = keys();
    model::check("fast_slots_tag_twins", move || {
        let m = Arc::new(Model::new(keys.clone(), None));
        m.push(0, 1);
        let p = {
            let m = m.clone();
            thread::spawn(move || m.push(2, 2))
        };
        let w = {
            let m = m.clone();
            thread::spawn(move || {
                m.take_one();
            })
        };
        p.join().unwrap();
        w.join().unwrap();
        m.finish(2);
    });
}

/// Broken variant: no `slow` count-out when a key leaves the map.
#[test]
#[should_panic(expected = "slow count wrong")]
fn loom_fast_slots_catch_missing_count_out() {
    slot_race(Some(Broken::NoCountOut), false);
}

/// Broken variant: no look at the slot after counting in (a release in between strands it).
#[test]
#[should_panic(expected = "stranded")]
fn loom_fast_slots_catch_missing_look_after_count_in() {
    slot_race(Some(Broken::NoLookAfterCountIn), false);
}

/// The exact `pending` count: two producers race for the last room (one is refused), a worker
/// takes, and a cancel drains, with the engine's cancel handshake around it (a producer whose
/// push lands after the cancel's drain sees `cancelled` and drains again, as `try_push` does).
/// The count never exceeds the capacity, and at the end every accepted item was taken or
/// drained exactly once and the count is zero.
///
/// `recheck: false` is the broken variant: a producer does not look at `cancelled` after its
/// push.
fn pending_race(capacity: usize, recheck: bool) {
    model::check("pending", move || {
        let keyed = Arc::new(Keyed::<u64, Key>::new(1, None, capacity));
        let cancelled = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let gone = Arc::new(AtomicUsize::new(0));
        // One item already pending: the producers race for the room left.
        keyed
            .try_push(0, Key(10, 0), capacity, 0, OperationId::from(100))
            .ok()
            .unwrap();
        accepted.fetch_add(1, SeqCst);
        let drain = |keyed: &Keyed<u64, Key>, gone: &AtomicUsize| {
            let mut out = Vec::new();
            keyed.drain_into(&mut out);
            gone.fetch_add(out.len(), SeqCst);
        };
        let producers: Vec<_> = (0..2u64)
            .map(|p| {
                let (keyed, cancelled, accepted, gone) = (
                    keyed.clone(),
                    cancelled.clone(),
                    accepted.clone(),
                    gone.clone(),
                );
                thread::spawn(move || {
                    let id = OperationId::from(p + 1);
                    if keyed.try_push(p, Key(p + 1, 0), capacity, 0, id).is_ok() {
                        accepted.fetch_add(1, SeqCst);
                        assert!(keyed.len() <= capacity, "pending above the capacity");
                        crate::sync::seq_cst_point();
                        if recheck && cancelled.load(SeqCst) {
                            drain(&keyed, &gone);
                        }
                    }
                })
            })
            .collect();
        let worker = {
            let (keyed, gone) = (keyed.clone(), gone.clone());
            thread::spawn(move || {
                if let Some(job) = keyed.pop(None) {
                    gone.fetch_add(1, SeqCst);
                    keyed.release(super::Released { key: job.key });
                }
            })
        };
        // The cancel.
        cancelled.store(true, SeqCst);
        crate::sync::seq_cst_point();
        drain(&keyed, &gone);
        for t in producers {
            t.join().unwrap();
        }
        worker.join().unwrap();
        assert_eq!(keyed.len(), 0, "pending count wrong after a cancel");
        assert!(!keyed.has_ready());
        assert_eq!(
            gone.load(SeqCst),
            accepted.load(SeqCst),
            "an accepted item was lost or counted twice"
        );
    });
}

#[test]
fn loom_pending_count() {
    pending_race(2, true);
}

/// Broken variant: a producer that does not look at `cancelled` after its push.
#[test]
#[should_panic(expected = "pending count wrong after a cancel")]
fn loom_pending_count_catches_missing_cancel_recheck() {
    pending_race(2, false);
}
