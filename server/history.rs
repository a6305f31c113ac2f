//! The rooms' recent public lines (`MSG` and `ACTION`), kept for those who join later or come
//! back after a dropped connection: at most `--history` lines and `--history-bytes` bytes for
//! all rooms together, the oldest dropped first. No I/O.

use std::collections::VecDeque;

/// One public line as it was sent live (without `\n`), with when and by whom.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: u64,
    /// Seconds since the Unix epoch when the server received it.
    pub at: u64,
    /// Who said it: the session (or connection) number of the sender, so that a client coming
    /// back is not given its own lines again.
    pub author: u64,
    /// The key of the room it was said in (`room_key`); None: the default room.
    pub room: Option<Box<str>>,
    pub line: Box<str>,
}

impl Entry {
    /// What it costs to keep.
    fn cost(&self) -> usize {
        self.line.len() + self.room.as_deref().map_or(0, str::len) + ENTRY_OVERHEAD
    }

    /// Whether it was said in the room with key `room` (None: the default room).
    pub fn in_room(&self, room: Option<&str>) -> bool {
        self.room.as_deref() == room
    }
}

pub struct History {
    entries: VecDeque<Entry>,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
    /// The id the next public line gets. Ids grow for the server's whole life, history or not
    /// (clients that asked for ids see them on live lines too).
    next_id: u64,
}

/// What an entry costs besides its text (the struct and the deque's slot), so that many short
/// lines count too.
const ENTRY_OVERHEAD: usize = std::mem::size_of::<Entry>();

impl History {
    /// `first_id`: where ids start, above any a client could remember from an earlier run.
    pub fn new(max_lines: usize, max_bytes: usize, first_id: u64) -> History {
        History {
            entries: VecDeque::new(),
            bytes: 0,
            max_lines,
            max_bytes,
            next_id: first_id.max(1),
        }
    }

    pub fn max_lines(&self) -> usize {
        self.max_lines
    }

    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The id of the newest public line so far (0 before any).
    pub fn last_id(&self) -> u64 {
        self.next_id - 1
    }

    /// Gives the next public line its id.
    pub fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Keeps a public line; the oldest go while over either bound.
    pub fn record(&mut self, entry: Entry) {
        if self.max_lines == 0 {
            return;
        }
        let cost = entry.cost();
        if cost > self.max_bytes {
            return;
        }
        self.bytes += cost;
        self.entries.push_back(entry);
        while self.entries.len() > self.max_lines || self.bytes > self.max_bytes {
            if let Some(old) = self.entries.pop_front() {
                self.bytes -= old.cost();
            }
        }
    }

    /// Puts back a line kept before a restart (`--history-file`); later ids start above it.
    pub fn restore(&mut self, entry: Entry) {
        self.next_id = self.next_id.max(entry.id + 1);
        self.record(entry);
    }

    /// The kept lines newer than `after`, oldest first.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &Entry> {
        let start = self.entries.partition_point(|e| e.id <= after);
        self.entries.range(start..)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(h: &mut History, line: &str) -> Entry {
        Entry {
            id: h.take_id(),
            at: 0,
            author: 1,
            room: None,
            line: line.into(),
        }
    }

    #[test]
    fn keeps_the_newest_lines_within_both_bounds() {
        let mut h = History::new(3, 1 << 20, 1);
        for n in 0..5 {
            let e = entry(&mut h, &format!("MSG ana {n}"));
            h.record(e);
        }
        let kept: Vec<&str> = h.after(0).map(|e| &*e.line).collect();
        assert_eq!(kept, ["MSG ana 2", "MSG ana 3", "MSG ana 4"]);
        assert_eq!(h.last_id(), 5);
        let newer: Vec<u64> = h.after(4).map(|e| e.id).collect();
        assert_eq!(newer, [5]);
        assert_eq!(h.after(5).count(), 0);

        // In bytes: long lines cannot make N lines cost N times the longest line.
        let mut h = History::new(100, 3 * (1000 + ENTRY_OVERHEAD), 1);
        for _ in 0..10 {
            let e = entry(&mut h, &"x".repeat(1000));
            h.record(e);
        }
        assert_eq!(h.len(), 3);
        assert!(h.bytes() <= 3 * (1000 + ENTRY_OVERHEAD));
    }

    #[test]
    fn zero_lines_keeps_nothing_but_ids_still_grow() {
        let mut h = History::new(0, 1 << 20, 100);
        let e = entry(&mut h, "MSG ana hola");
        h.record(e);
        assert_eq!(h.len(), 0);
        assert_eq!(h.last_id(), 100);
    }
}
