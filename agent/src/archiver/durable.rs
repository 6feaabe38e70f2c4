//! The durable position: how far the archive is contiguous in the store.
//!
//! Uploads finish in any order, but a position counts as durable only when every upload
//! up to it has finished (DESIGN.md §1), and it never moves backwards. This type holds
//! no I/O, so that rule is checked by property tests.

use std::collections::VecDeque;

/// Identifies one upload registered with a [`DurableTracker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UploadId(u64);

/// Tracks uploads in the order their data arrived and the durable position they add up to.
#[derive(Debug)]
pub struct DurableTracker<P> {
    durable: P,
    /// Uploads not yet folded into `durable`, in registration order.
    pending: VecDeque<Pending<P>>,
    next_id: u64,
}

#[derive(Debug)]
struct Pending<P> {
    id: UploadId,
    end: P,
    done: bool,
}

impl<P: Ord + Copy> DurableTracker<P> {
    /// A tracker whose archive is durable up to `durable`.
    pub fn new(durable: P) -> DurableTracker<P> {
        DurableTracker {
            durable,
            pending: VecDeque::new(),
            next_id: 0,
        }
    }

    /// The position up to which everything is durable: the only one that may be acknowledged.
    pub fn durable(&self) -> P {
        self.durable
    }

    /// How many registered uploads have not been folded into the durable position yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Registers an upload that makes the archive whole up to `end` once it and every
    /// upload registered before it have finished.
    pub fn register(&mut self, end: P) -> UploadId {
        let id = UploadId(self.next_id);
        self.next_id += 1;
        self.pending.push_back(Pending {
            id,
            end,
            done: false,
        });
        id
    }

    /// Marks `id` finished. Returns the new durable position if it moved.
    pub fn complete(&mut self, id: UploadId) -> Option<P> {
        if let Some(pending) = self.pending.iter_mut().find(|p| p.id == id) {
            pending.done = true;
        }
        let before = self.durable;
        while let Some(front) = self.pending.front() {
            if !front.done {
                break;
            }
            // An end below `durable` is an upload that repeats bytes already durable (a
            // new timeline's first segment): it completes, but moves nothing.
            self.durable = self.durable.max(front.end);
            self.pending.pop_front();
        }
        (self.durable > before).then_some(self.durable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Steps between consecutive upload ends, and an order to finish the uploads in.
    fn steps_and_order() -> impl Strategy<Value = (Vec<u64>, Vec<usize>)> {
        proptest::collection::vec(1u64..1000, 1..40).prop_flat_map(|steps| {
            let order = Just((0..steps.len()).collect::<Vec<_>>()).prop_shuffle();
            (Just(steps), order)
        })
    }

    proptest! {
        /// Uploads with increasing ends, finished in a random order: after each completion
        /// the durable position is the end of the longest finished prefix, it never moves
        /// backwards, and it never passes an upload that has not finished.
        #[test]
        fn durable_is_the_longest_finished_prefix((steps, finish) in steps_and_order()) {
            let ends: Vec<u64> = steps
                .iter()
                .scan(100u64, |end, step| {
                    *end += step;
                    Some(*end)
                })
                .collect();
            let mut tracker = DurableTracker::new(100u64);
            let ids: Vec<UploadId> = ends.iter().map(|&e| tracker.register(e)).collect();

            let mut done = vec![false; ids.len()];
            let mut last = tracker.durable();
            for &i in &finish {
                done[i] = true;
                let moved = tracker.complete(ids[i]);
                let prefix = done.iter().take_while(|&&d| d).count();
                let expected = if prefix == 0 { 100 } else { ends[prefix - 1] };
                prop_assert_eq!(tracker.durable(), expected);
                prop_assert!(tracker.durable() >= last);
                prop_assert_eq!(moved.is_some(), tracker.durable() > last);
                if let Some(first_unfinished) = done.iter().position(|&d| !d) {
                    prop_assert!(first_unfinished == 0 || tracker.durable() < ends[first_unfinished]);
                }
                last = tracker.durable();
            }
            prop_assert_eq!(tracker.pending(), 0);
            prop_assert_eq!(tracker.durable(), *ends.last().unwrap());
        }

        /// An upload whose end lies below the durable position moves nothing and blocks nothing.
        #[test]
        fn a_repeated_range_never_moves_durable_back(lower in 0u64..100, higher in 100u64..200) {
            let mut tracker = DurableTracker::new(100u64);
            let repeat = tracker.register(lower);
            let next = tracker.register(higher);
            prop_assert_eq!(tracker.complete(next), None);
            prop_assert_eq!(tracker.durable(), 100);
            tracker.complete(repeat);
            prop_assert_eq!(tracker.durable(), higher.max(100));
        }
    }

    #[test]
    fn completing_an_unknown_or_repeated_id_changes_nothing() {
        let mut tracker = DurableTracker::new(0u64);
        let a = tracker.register(10);
        assert_eq!(tracker.complete(a), Some(10));
        assert_eq!(tracker.complete(a), None);
        assert_eq!(tracker.complete(UploadId(99)), None);
        assert_eq!(tracker.durable(), 10);
    }
}
