//! Interned signal names: a sink that raises the same few names over and over shares one
//! `Arc<str>` per distinct name instead of allocating a copy per event.
//!
//! # Invariants
//!
//! * At most [`MAX_NAMES`] names are held; when that many are, the table starts over, so a
//!   sink raising ever-new names holds a bounded table (events keep their own references).
//! * Runs under the sink's lock; no user code.

use std::collections::HashSet;
use std::sync::Arc;

/// The most distinct names a sink interns before it starts over.
const MAX_NAMES: usize = 256;

#[derive(Default)]
pub(super) struct Names {
    /// The name interned last (most raises repeat it, and a compare is cheaper than a hash).
    last: Option<Arc<str>>,
    table: HashSet<Arc<str>, foldhash::fast::RandomState>,
}

impl Names {
    /// The shared `Arc<str>` for `name`.
    #[inline]
    pub(super) fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(last) = &self.last {
            if **last == *name {
                return last.clone();
            }
        }
        let arc = match self.table.get(name) {
            Some(arc) => arc.clone(),
            None => {
                if self.table.len() >= MAX_NAMES {
                    self.table.clear();
                }
                let arc: Arc<str> = Arc::from(name);
                self.table.insert(arc.clone());
                arc
            }
        };
        self.last = Some(arc.clone());
        arc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_shared_and_the_table_stays_bounded() {
        let mut names = Names::default();
        let a = names.intern("a");
        let b = names.intern("b");
        assert!(Arc::ptr_eq(&a, &names.intern("a")));
        assert!(Arc::ptr_eq(&b, &names.intern("b")));
        for i in 0..(MAX_NAMES * 3) {
            assert_eq!(&*names.intern(&format!("n{i}")), format!("n{i}"));
        }
        assert!(names.table.len() <= MAX_NAMES);
    }
}
