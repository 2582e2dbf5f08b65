//! ZooKeeper's expiry queue: elements grouped in buckets keyed by an expiration time rounded up
//! to the next multiple of an interval (the tick), polled one bucket at a time.
//!
//! As `zookeeper-server/src/main/java/org/apache/zookeeper/server/ExpiryQueue.java` (ZooKeeper
//! 3.8.0, class `ExpiryQueue`): `roundToNextInterval`, `update`, `remove`, `getWaitTime`,
//! `poll`. Time is the server's *monotonic* clock in ms (`common/Time.java`,
//! `currentElapsedTime`, `System.nanoTime() / 1e6`), passed in by the caller: the model reads
//! no clock.
//!
//! One difference that nothing can observe: ZooKeeper leaves an emptied bucket in its map until
//! `poll` reaches it ("they'll eventually be removed when they expire"); the model drops it at
//! once, so that the number of buckets stays bounded by the number of elements.

use std::collections::{BTreeMap, BTreeSet};

/// What an element of the queue must be: ordered (a `BTreeMap` key, so that every output is in a
/// fixed order) and cheap to copy (a session ID).
pub trait Element: Ord + Copy + std::fmt::Debug {}
impl<T: Ord + Copy + std::fmt::Debug> Element for T {}

/// The queue is full: it already holds `elems_max` elements and was asked to add another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull {
    pub elems_max: usize,
}

/// `ExpiryQueue<E>`: each element's expiration time, and the elements of each expiration time.
#[derive(Debug, Clone)]
pub struct ExpiryQueue<E: Element> {
    /// `elemMap`: element → the expiration time of its bucket, ms.
    expiry_ms_of: BTreeMap<E, u64>,
    /// `expiryMap`: expiration time, ms → the elements that expire then (never empty here).
    buckets: BTreeMap<u64, BTreeSet<E>>,
    /// `nextExpirationTime`: the bucket that `poll` hands out next, ms; a multiple of the interval.
    next_expiration_ms: u64,
    /// `expirationInterval`: the tick, ms.
    interval_ms: u64,
    /// A limit on everything: the queue refuses an element past this many (ZooKeeper has no such
    /// limit; the model's memory must be bounded).
    elems_max: usize,
}

impl<E: Element> ExpiryQueue<E> {
    /// `ExpiryQueue(int expirationInterval)`: the first bucket handed out is
    /// `roundToNextInterval(now)`.
    pub fn new(interval_ms: u64, now_ms: u64, elems_max: usize) -> Self {
        assert!(
            interval_ms > 0,
            "the expiration interval is a positive tick"
        );
        assert!(
            elems_max > 0,
            "a queue that holds nothing is a configuration error"
        );
        Self {
            expiry_ms_of: BTreeMap::new(),
            buckets: BTreeMap::new(),
            next_expiration_ms: round_to_next_interval(now_ms, interval_ms),
            interval_ms,
            elems_max,
        }
    }

    pub fn interval_ms(&self) -> u64 {
        self.interval_ms
    }

    pub fn len(&self) -> usize {
        self.expiry_ms_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expiry_ms_of.is_empty()
    }

    /// The expiration time of `elem`'s bucket, ms, if it is queued.
    pub fn expiry_ms(&self, elem: E) -> Option<u64> {
        self.expiry_ms_of.get(&elem).copied()
    }

    /// The bucket that `poll` hands out next, ms.
    pub fn next_expiration_ms(&self) -> u64 {
        self.next_expiration_ms
    }

    /// `update(E elem, int timeout)`: moves `elem` to the bucket `roundToNextInterval(now +
    /// timeout)`. Answers the new expiration time, or `None` when it is the bucket `elem` is
    /// already in ("No change, so nothing to update").
    pub fn update(
        &mut self,
        elem: E,
        timeout_ms: u64,
        now_ms: u64,
    ) -> Result<Option<u64>, QueueFull> {
        let previous_ms = self.expiry_ms_of.get(&elem).copied();
        let new_ms = round_to_next_interval(now_ms.saturating_add(timeout_ms), self.interval_ms);
        if previous_ms == Some(new_ms) {
            return Ok(None);
        }
        if previous_ms.is_none() && self.expiry_ms_of.len() >= self.elems_max {
            return Err(QueueFull {
                elems_max: self.elems_max,
            });
        }
        // Every new bucket lies at or after the next one polled (both are multiples of the
        // interval and `next` never passes `roundToNextInterval(now)`), so no element is lost
        // behind the poll.
        assert!(
            new_ms >= self.next_expiration_ms,
            "bucket {new_ms} ms behind the next poll at {} ms",
            self.next_expiration_ms
        );
        self.buckets.entry(new_ms).or_default().insert(elem);
        self.expiry_ms_of.insert(elem, new_ms);
        if let Some(previous_ms) = previous_ms {
            self.take_from_bucket(previous_ms, elem);
        }
        Ok(Some(new_ms))
    }

    /// `remove(E elem)`: takes `elem` out of the queue; answers its expiration time if it was in.
    pub fn remove(&mut self, elem: E) -> Option<u64> {
        let expiry_ms = self.expiry_ms_of.remove(&elem)?;
        self.take_from_bucket(expiry_ms, elem);
        Some(expiry_ms)
    }

    fn take_from_bucket(&mut self, expiry_ms: u64, elem: E) {
        let bucket = self
            .buckets
            .get_mut(&expiry_ms)
            .expect("an element's bucket exists");
        assert!(
            bucket.remove(&elem),
            "{elem:?} was in its bucket at {expiry_ms} ms"
        );
        if bucket.is_empty() {
            self.buckets.remove(&expiry_ms);
        }
    }

    /// `getWaitTime()`: how long until the next bucket is due, 0 when it is.
    pub fn wait_ms(&self, now_ms: u64) -> u64 {
        self.next_expiration_ms.saturating_sub(now_ms)
    }

    /// `poll()`: when the next bucket's time has come, hands out its elements (in order) and moves
    /// on to the bucket one interval later; before then, hands out nothing. One bucket a call, as
    /// ZooKeeper's: a caller that was stalled calls it again while `wait_ms` is 0.
    pub fn poll(&mut self, now_ms: u64) -> Vec<E> {
        if now_ms < self.next_expiration_ms {
            return Vec::new();
        }
        let expiration_ms = self.next_expiration_ms;
        self.next_expiration_ms = expiration_ms + self.interval_ms;
        let expired: Vec<E> = self
            .buckets
            .remove(&expiration_ms)
            .unwrap_or_default()
            .into_iter()
            .collect();
        for elem in &expired {
            let removed = self.expiry_ms_of.remove(elem);
            assert_eq!(
                removed,
                Some(expiration_ms),
                "{elem:?}'s bucket and its expiry agree"
            );
        }
        expired
    }

    /// The queue's invariants, swept whole: the two maps agree, no bucket is empty, every bucket
    /// is a multiple of the interval not behind the next poll, and the bound holds.
    pub fn check_invariants(&self) {
        assert!(
            self.expiry_ms_of.len() <= self.elems_max,
            "the queue is over its bound"
        );
        assert_eq!(
            self.next_expiration_ms % self.interval_ms,
            0,
            "the next poll is on the tick grid"
        );
        let mut counted = 0;
        for (&expiry_ms, bucket) in &self.buckets {
            assert!(
                !bucket.is_empty(),
                "an empty bucket at {expiry_ms} ms is kept"
            );
            assert_eq!(
                expiry_ms % self.interval_ms,
                0,
                "bucket {expiry_ms} ms is off the tick grid"
            );
            assert!(
                expiry_ms >= self.next_expiration_ms,
                "bucket {expiry_ms} ms is behind the poll"
            );
            for elem in bucket {
                assert_eq!(
                    self.expiry_ms_of.get(elem),
                    Some(&expiry_ms),
                    "{elem:?} in two places"
                );
            }
            counted += bucket.len();
        }
        assert_eq!(
            counted,
            self.expiry_ms_of.len(),
            "every element is in exactly one bucket"
        );
    }
}

/// `roundToNextInterval(long time)`: `(time / interval + 1) * interval`, the next multiple of
/// the interval strictly after `time` (a time already on the grid goes to the next one).
pub fn round_to_next_interval(time_ms: u64, interval_ms: u64) -> u64 {
    assert!(interval_ms > 0);
    (time_ms / interval_ms + 1) * interval_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_up_strictly_to_the_next_tick() {
        assert_eq!(round_to_next_interval(0, 2000), 2000);
        assert_eq!(round_to_next_interval(1999, 2000), 2000);
        assert_eq!(round_to_next_interval(2000, 2000), 4000);
        assert_eq!(round_to_next_interval(45_001, 2000), 46_000);
    }

    #[test]
    fn update_moves_an_element_between_buckets_and_poll_hands_out_a_due_bucket() {
        let mut q = ExpiryQueue::new(2000, 0, 8);
        assert_eq!(q.next_expiration_ms(), 2000);
        assert_eq!(q.update(1u64, 4000, 100), Ok(Some(6000)));
        assert_eq!(
            q.update(1u64, 4000, 1500),
            Ok(None),
            "the same bucket: nothing to update"
        );
        assert_eq!(q.update(1u64, 4000, 2100), Ok(Some(8000)));
        assert_eq!(q.update(2u64, 4000, 2100), Ok(Some(8000)));
        q.check_invariants();
        // Buckets 2000, 4000 and 6000 are empty; 8000 holds both.
        for now_ms in [2000, 4000, 6000] {
            assert_eq!(q.poll(now_ms), Vec::<u64>::new());
        }
        assert_eq!(q.poll(7999), Vec::<u64>::new(), "not yet due");
        assert_eq!(q.wait_ms(7999), 1);
        assert_eq!(q.poll(8000), vec![1, 2]);
        assert!(q.is_empty());
        assert_eq!(q.next_expiration_ms(), 10_000);
        q.check_invariants();
    }

    #[test]
    fn poll_hands_out_one_bucket_a_call_after_a_stall() {
        let mut q = ExpiryQueue::new(1000, 0, 8);
        q.update(1u64, 1000, 0).unwrap(); // bucket 2000
        q.update(2u64, 3000, 0).unwrap(); // bucket 4000
                                          // Stalled until 10 s: the first poll hands out the 1000 ms bucket (empty), and so on.
        let mut polled = Vec::new();
        while q.wait_ms(10_000) == 0 {
            polled.push(q.poll(10_000));
        }
        assert_eq!(polled.len(), 10, "buckets 1000..=10000, one a call");
        assert_eq!(polled[1], vec![1]);
        assert_eq!(polled[3], vec![2]);
        assert_eq!(q.next_expiration_ms(), 11_000);
        q.check_invariants();
    }

    #[test]
    fn remove_and_the_bound() {
        let mut q = ExpiryQueue::new(1000, 0, 2);
        q.update(1u64, 1000, 0).unwrap();
        q.update(2u64, 1000, 0).unwrap();
        assert_eq!(q.update(3u64, 1000, 0), Err(QueueFull { elems_max: 2 }));
        assert_eq!(q.remove(1), Some(2000));
        assert_eq!(q.remove(1), None);
        assert_eq!(q.update(3u64, 1000, 0), Ok(Some(2000)));
        q.check_invariants();
    }
}
