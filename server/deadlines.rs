//! Moments when something must happen (a handshake or a registration timing out, a linger
//! ending, an away session expiring), kept in order of when they are due: a reload can shorten a
//! timeout, and a deadline set after it must not wait behind older, longer ones. No I/O.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A min-heap of `(when, what)`. Entries that no longer apply (the connection left that state,
/// its slot was reused) are not removed when that happens: whoever pops them checks.
pub struct Deadlines<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    /// Breaks ties in the order entries were pushed.
    next: u64,
}

struct Entry<T> {
    at: Instant,
    order: u64,
    what: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.order) == (other.at, other.order)
    }
}

impl<T> Eq for Entry<T> {}

impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.order).cmp(&(other.at, other.order))
    }
}

impl<T> Default for Deadlines<T> {
    fn default() -> Self {
        Deadlines {
            heap: BinaryHeap::new(),
            next: 0,
        }
    }
}

impl<T> Deadlines<T> {
    pub fn push(&mut self, at: Instant, what: T) {
        self.next += 1;
        self.heap.push(Reverse(Entry {
            at,
            order: self.next,
            what,
        }));
    }

    /// The earliest moment anything is due.
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|e| e.0.at)
    }

    /// The earliest entry, if it is due by `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, T)> {
        if self.next()? > now {
            return None;
        }
        self.heap.pop().map(|e| (e.0.at, e.0.what))
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_shorter_deadline_set_later_comes_out_first() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut d = Deadlines::default();
        d.push(t0 + s(30), "old, long");
        d.push(t0 + s(1), "new, short");
        d.push(t0 + s(1), "new, short, second");
        assert_eq!(d.next(), Some(t0 + s(1)));
        assert_eq!(d.pop_due(t0), None);
        assert_eq!(d.pop_due(t0 + s(1)).map(|e| e.1), Some("new, short"));
        assert_eq!(
            d.pop_due(t0 + s(1)).map(|e| e.1),
            Some("new, short, second")
        );
        assert_eq!(d.pop_due(t0 + s(29)), None);
        assert_eq!(d.len(), 1);
        assert_eq!(d.pop_due(t0 + s(30)).map(|e| e.1), Some("old, long"));
        assert_eq!(d.next(), None);
    }
}
