//! What the chat core has said and the sockets have not taken yet: one queue per connection and
//! the room's shared log. The chat core only appends; the reactor drains it with [`Outbox::write`],
//! the one place where bytes go to a socket.
//!
//! A line for the whole room is appended once to the room's log, and each member is written
//! straight from it, so that a line is not copied once per recipient. A member only gets a copy
//! of the log's bytes in its own queue when something private must come after them (a reply, its
//! own line skipped) or when its socket is full. That copy ([`Outbox::catch_up`]) is made inside
//! [`Outbox::send`] and [`Outbox::send_to_room`]: room lines and private lines reach each connection in
//! the order they were produced, whoever calls.

use std::io::{self, Write};

use charla_proto::io::write_until_blocked;

/// A connection as the chat core and the outbox know it (the reactor's slab index).
pub type ConnId = usize;

/// Largest room-log capacity kept from one pass to the next.
const ROOM_LOG_KEEP: usize = 256 << 10;

pub struct Outbox {
    mailboxes: Vec<Option<Mailbox>>,
    /// The room's members, for fan-out without scanning idle slots.
    members: Vec<ConnId>,
    /// Lines for every member, not yet served to all of them: as plain clients get them, and
    /// with line ids for the members that asked for ids (`/resume`).
    rooms: [RoomLog; 2],
    /// Members served from `rooms[TAGGED]`: while there are none, it is not written.
    tagged_members: usize,
    /// Lines were added to the room since the reactor last took them.
    room_dirty: bool,
    /// Connections with bytes in their own queue, in the order they got them.
    to_flush: Vec<ConnId>,
    /// Past this many bytes queued for one connection, it is listed in `over_limit`
    /// (--max-queue).
    max_queue: usize,
    /// Connections whose queue passed `max_queue` while lines were being produced: the reactor
    /// offers their sockets what is queued at once, and finds them too slow if that is not
    /// enough, rather than at the end of the pass (a pass can produce far more than the limit).
    over_limit: Vec<ConnId>,
    pool: BufferPool,
    /// Bytes in every connection's own queue together (--max-queue-total).
    total: usize,
}

const PLAIN: usize = 0;
const TAGGED: usize = 1;

#[derive(Default)]
struct RoomLog {
    bytes: Vec<u8>,
    /// Position of `bytes[0]` in everything this log has held since the server started.
    base: u64,
}

impl RoomLog {
    fn end(&self) -> u64 {
        self.base + self.bytes.len() as u64
    }

    /// What a member served up to `pos` has not had yet.
    fn from(&self, pos: u64) -> &[u8] {
        let from = (pos.saturating_sub(self.base) as usize).min(self.bytes.len());
        &self.bytes[from..]
    }

    fn clear(&mut self) {
        self.base = self.end();
        self.bytes.clear();
        if self.bytes.capacity() > ROOM_LOG_KEEP {
            self.bytes = Vec::new();
        }
    }
}

struct Mailbox {
    queue: OutQueue,
    /// While in the room: how far into the room's output this connection has been served
    /// (written to its socket or copied into `queue`), and where it is in `members`.
    member: Option<Membership>,
    /// Listed in `to_flush`.
    listed: bool,
}

#[derive(Clone, Copy)]
struct Membership {
    room_pos: u64,
    slot: usize,
    /// Served from the log with line ids.
    tagged: bool,
}

impl Membership {
    fn log(&self) -> usize {
        if self.tagged {
            TAGGED
        } else {
            PLAIN
        }
    }
}

impl Outbox {
    pub fn new(max_queue: usize) -> Outbox {
        Outbox {
            mailboxes: Vec::new(),
            members: Vec::new(),
            rooms: Default::default(),
            tagged_members: 0,
            room_dirty: false,
            to_flush: Vec::new(),
            max_queue,
            over_limit: Vec::new(),
            pool: BufferPool::default(),
            total: 0,
        }
    }

    /// Bytes waiting in every connection's own queue together.
    pub fn total_pending(&self) -> usize {
        self.total
    }

    /// The connections with bytes waiting, and how many each.
    pub fn backlogged(&self) -> impl Iterator<Item = (ConnId, usize)> + '_ {
        self.mailboxes
            .iter()
            .enumerate()
            .filter_map(|(id, m)| Some((id, m.as_ref()?.queue.pending())))
            .filter(|&(_, pending)| pending > 0)
    }

    /// A new limit from a reload: queues are judged by it from their next line on.
    pub fn set_max_queue(&mut self, max_queue: usize) {
        self.max_queue = max_queue;
    }

    fn mailbox(&mut self, id: ConnId) -> Option<&mut Mailbox> {
        self.mailboxes.get_mut(id)?.as_mut()
    }

    /// A new connection: an empty queue, outside the room.
    pub fn open(&mut self, id: ConnId) {
        if self.mailboxes.len() <= id {
            self.mailboxes.resize_with(id + 1, || None);
        }
        self.mailboxes[id] = Some(Mailbox {
            queue: OutQueue::default(),
            member: None,
            listed: false,
        });
    }

    /// The connection is gone: what was queued for it is dropped.
    pub fn remove(&mut self, id: ConnId) {
        self.leave(id, false);
        if let Some(mut mailbox) = self.mailboxes.get_mut(id).and_then(Option::take) {
            self.total -= mailbox.queue.pending();
            mailbox.queue.clear(&mut self.pool);
        }
    }

    /// Drops what is queued for a connection (it is broken or does not read).
    pub fn discard(&mut self, id: ConnId) {
        if let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) {
            self.total -= mailbox.queue.pending();
            mailbox.queue.clear(&mut self.pool);
        }
    }

    /// Enters the room: served every room line from now on, with line ids if `tagged`.
    pub fn join(&mut self, id: ConnId, tagged: bool) {
        let log = if tagged { TAGGED } else { PLAIN };
        let room_pos = self.rooms[log].end();
        let slot = self.members.len();
        if let Some(mailbox) = self.mailbox(id) {
            if mailbox.member.is_none() {
                mailbox.member = Some(Membership {
                    room_pos,
                    slot,
                    tagged,
                });
                self.members.push(id);
                self.tagged_members += usize::from(tagged);
            }
        }
    }

    /// Leaves the room. With `keep_unserved`, the room's lines said before still reach it.
    pub fn leave(&mut self, id: ConnId, keep_unserved: bool) {
        if keep_unserved {
            self.catch_up(id);
        }
        let Some(member) = self.mailbox(id).and_then(|m| m.member.take()) else {
            return;
        };
        self.tagged_members -= usize::from(member.tagged);
        self.members.swap_remove(member.slot);
        if let Some(&moved) = self.members.get(member.slot) {
            if let Some(m) = self.mailbox(moved).and_then(|m| m.member.as_mut()) {
                m.slot = member.slot;
            }
        }
    }

    /// Some member asked for line ids: public lines need their tagged copy.
    pub fn has_tagged_members(&self) -> bool {
        self.tagged_members > 0
    }

    pub fn members(&self) -> &[ConnId] {
        &self.members
    }

    /// Queues bytes for one connection, after every room line said before them.
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) {
        self.catch_up(id);
        let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let before = mailbox.queue.pending();
        mailbox.queue.push(bytes, &mut self.pool);
        self.total += bytes.len();
        if before <= self.max_queue && mailbox.queue.pending() > self.max_queue {
            self.over_limit.push(id);
        }
        if !mailbox.listed {
            mailbox.listed = true;
            self.to_flush.push(id);
        }
    }

    /// Connections whose queue passed --max-queue since last asked.
    pub fn take_over_limit(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.over_limit)
    }

    /// A line for every member but `except` (who is served up to here, then skips it).
    pub fn send_to_room(&mut self, except: Option<ConnId>, bytes: &[u8]) {
        self.send_public(except, bytes, bytes);
    }

    /// A public line, as plain clients get it and as those that asked for line ids get it.
    pub fn send_public(&mut self, except: Option<ConnId>, plain: &[u8], tagged: &[u8]) {
        if let Some(id) = except {
            self.catch_up(id);
        }
        self.rooms[PLAIN].bytes.extend_from_slice(plain);
        if self.tagged_members > 0 {
            self.rooms[TAGGED].bytes.extend_from_slice(tagged);
        }
        let ends = [self.rooms[PLAIN].end(), self.rooms[TAGGED].end()];
        if let Some(m) = except.and_then(|id| self.mailbox(id)?.member.as_mut()) {
            m.room_pos = ends[m.log()];
        }
        self.room_dirty = true;
    }

    /// Copies the room's bytes `id` has not been served into its own queue, so that whatever is
    /// queued for it next comes after them.
    fn catch_up(&mut self, id: ConnId) {
        let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let Some(member) = mailbox.member.as_mut() else {
            return;
        };
        let room = &self.rooms[member.log()];
        let unserved = room.from(member.room_pos);
        if !unserved.is_empty() {
            mailbox.queue.push(unserved, &mut self.pool);
            self.total += unserved.len();
        }
        member.room_pos = room.end();
    }

    /// Bytes waiting for `id` in its own queue.
    pub fn pending(&self, id: ConnId) -> usize {
        self.mailboxes
            .get(id)
            .and_then(Option::as_ref)
            .map_or(0, |m| m.queue.pending())
    }

    /// Bytes in the room's logs this pass.
    pub fn room_len(&self) -> usize {
        self.rooms[PLAIN].bytes.len() + self.rooms[TAGGED].bytes.len()
    }

    /// Whether anything waits to be written.
    pub fn has_output(&self) -> bool {
        self.room_dirty || !self.to_flush.is_empty()
    }

    /// Puts `id` on the list of connections to write at the end of the pass (its socket has room
    /// again, or it is closing).
    pub fn list_for_flush(&mut self, id: ConnId) {
        if let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) {
            if !mailbox.listed {
                mailbox.listed = true;
                self.to_flush.push(id);
            }
        }
    }

    /// Moves into `ids` every connection with something to write: the room's members when the
    /// room has new lines, then those with bytes of their own. A connection may appear twice;
    /// writing it again is harmless.
    pub fn take_writers(&mut self, ids: &mut Vec<ConnId>) {
        if std::mem::take(&mut self.room_dirty) {
            ids.extend_from_slice(&self.members);
        }
        for id in self.to_flush.drain(..) {
            if let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) {
                mailbox.listed = false;
                ids.push(id);
            }
        }
    }

    /// Writes what waits for `id` to `w`: its own queue first, then, once that is all out, the
    /// room's lines straight from the log. What `w` does not take stays queued, in order (a write
    /// that returned `WouldBlock` is retried from the queue with the same bytes first, which
    /// OpenSSL allows with ACCEPT_MOVING_WRITE_BUFFER). Returns how many bytes `w` took, and the
    /// bytes still waiting.
    pub fn write(&mut self, id: ConnId, w: &mut impl Write) -> io::Result<Written> {
        let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) else {
            return Ok(Written::default());
        };
        let before = mailbox.queue.pending();
        let all_out = mailbox.queue.write_to(w, &mut self.pool);
        let mut taken = before - mailbox.queue.pending();
        self.total -= taken;
        if all_out? {
            if let Some(member) = mailbox.member.as_mut() {
                let unserved = self.rooms[member.log()].from(member.room_pos);
                let n = write_until_blocked(w, unserved)?;
                member.room_pos += n as u64;
                taken += n;
            }
        }
        self.catch_up(id);
        Ok(Written {
            taken,
            pending: self.pending(id),
        })
    }

    /// Ends a pass: every member has been served the room's logs (written or copied into its
    /// queue), which are emptied.
    pub fn end_pass(&mut self) {
        if self.room_len() == 0 {
            return;
        }
        for i in 0..self.members.len() {
            self.catch_up(self.members[i]);
        }
        for room in &mut self.rooms {
            room.clear();
        }
    }
}

/// What one [`Outbox::write`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes the socket took.
    pub taken: usize,
    /// Bytes still waiting for it.
    pub pending: usize,
}

/// Bytes waiting to be written to one client, in order.
///
/// Append-only and consumed from the front only after a successful write: OpenSSL requires a write
/// that returned `WouldBlock` to be retried with the same bytes. Everything queued goes out in as
/// few TLS writes as possible, and the buffer goes back to the [`BufferPool`] once all is sent so
/// that an idle connection holds none.
#[derive(Default)]
struct OutQueue {
    buf: Vec<u8>,
    sent: usize,
}

impl OutQueue {
    fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    fn push(&mut self, bytes: &[u8], pool: &mut BufferPool) {
        if self.buf.capacity() == 0 {
            self.buf = pool.take();
        }
        // Moving the unsent tail to the front keeps the same bytes first, which OpenSSL allows
        // (ACCEPT_MOVING_WRITE_BUFFER), and bounds the buffer by what is actually pending.
        if self.sent > 0 && self.sent >= self.buf.len() / 2 {
            self.buf.drain(..self.sent);
            self.sent = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn clear(&mut self, pool: &mut BufferPool) {
        pool.give(std::mem::take(&mut self.buf));
        self.sent = 0;
    }

    /// Writes until everything is sent (`Ok(true)`) or the socket is full (`Ok(false)`).
    fn write_to(&mut self, w: &mut impl Write, pool: &mut BufferPool) -> io::Result<bool> {
        self.sent += write_until_blocked(w, &self.buf[self.sent..])?;
        if self.sent < self.buf.len() {
            return Ok(false);
        }
        self.clear(pool);
        Ok(true)
    }
}

/// Output buffers of connections that sent everything, kept for the next connection with
/// something to send: idle connections hold no buffer, and busy ones do not allocate (or fault in
/// fresh pages) on every pass.
#[derive(Default)]
struct BufferPool {
    free: Vec<Vec<u8>>,
    bytes: usize,
}

/// Most memory the pool keeps, and the largest buffer it keeps.
const POOL_MAX_BYTES: usize = 2 << 20;
const POOL_MAX_BUFFER: usize = 256 << 10;

impl BufferPool {
    fn take(&mut self) -> Vec<u8> {
        let buf = self.free.pop().unwrap_or_default();
        self.bytes -= buf.capacity();
        buf
    }

    fn give(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap > 0 && cap <= POOL_MAX_BUFFER && self.bytes + cap <= POOL_MAX_BYTES {
            buf.clear();
            self.bytes += cap;
            self.free.push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A socket that takes at most `room` bytes, then says WouldBlock.
    pub struct Pipe {
        pub got: Vec<u8>,
        pub room: usize,
    }

    impl Write for Pipe {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn pipe(room: usize) -> Pipe {
        Pipe {
            got: Vec::new(),
            room,
        }
    }

    fn member(outbox: &mut Outbox, id: ConnId) {
        outbox.open(id);
        outbox.join(id, false);
    }

    #[test]
    fn queue_keeps_order_across_partial_writes_and_holds_no_memory_when_empty() {
        let mut out = Outbox::new(usize::MAX);
        out.open(0);
        let mut p = pipe(5);
        out.send(0, b"hello ");
        out.send(0, b"world\n");
        assert_eq!(out.write(0, &mut p).unwrap().pending, 7);
        out.send(0, b"more\n");
        p.room = 100;
        assert_eq!(out.write(0, &mut p).unwrap().pending, 0);
        assert_eq!(out.total_pending(), 0);
        assert_eq!(p.got, b"hello world\nmore\n");
        let queue = &out.mailboxes[0].as_ref().unwrap().queue;
        assert_eq!(queue.buf.capacity(), 0, "an empty queue holds no memory");
        assert_eq!(out.pool.free.len(), 1, "its buffer went back to the pool");
        out.send(0, b"again");
        assert!(
            out.pool.free.is_empty() && out.pool.bytes == 0,
            "and is reused"
        );
    }

    #[test]
    fn room_lines_and_private_lines_arrive_in_the_order_they_were_produced() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        member(&mut out, 1);
        out.send_to_room(None, b"1 room\n");
        out.send(0, b"2 private\n");
        out.send_to_room(Some(0), b"3 not for 0\n");
        out.send_to_room(None, b"4 room\n");
        let mut writers = Vec::new();
        out.take_writers(&mut writers);
        assert_eq!(
            writers,
            [0, 1, 0],
            "members, then those with their own bytes"
        );
        let (mut p0, mut p1) = (pipe(1000), pipe(1000));
        out.write(0, &mut p0).unwrap();
        out.write(1, &mut p1).unwrap();
        out.end_pass();
        assert_eq!(p0.got, b"1 room\n2 private\n4 room\n");
        assert_eq!(p1.got, b"1 room\n3 not for 0\n4 room\n");
    }

    #[test]
    fn a_full_socket_keeps_the_rest_in_order_for_the_next_pass() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        out.send_to_room(None, b"abcdef\n");
        let mut p = pipe(3);
        assert_eq!(
            out.write(0, &mut p).unwrap(),
            Written {
                taken: 3,
                pending: 4
            },
            "the rest is in its queue"
        );
        out.end_pass();
        out.send_to_room(None, b"next\n");
        out.send(0, b"mine\n");
        p.room = 100;
        out.write(0, &mut p).unwrap();
        assert_eq!(p.got, b"abcdef\nnext\nmine\n");
    }

    #[test]
    fn leaving_keeps_or_drops_what_the_room_said_before() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        member(&mut out, 1);
        member(&mut out, 2);
        out.send_to_room(None, b"before\n");
        out.leave(0, true);
        out.leave(1, false);
        out.send_to_room(None, b"after\n");
        assert_eq!(out.members(), [2]);
        let (mut p0, mut p1) = (pipe(100), pipe(100));
        out.write(0, &mut p0).unwrap();
        out.write(1, &mut p1).unwrap();
        assert_eq!(p0.got, b"before\n");
        assert!(p1.got.is_empty());
    }

    #[test]
    fn members_stay_findable_after_others_leave() {
        let mut out = Outbox::new(usize::MAX);
        for id in 0..4 {
            member(&mut out, id);
        }
        out.leave(0, false);
        out.leave(2, false);
        out.leave(3, false);
        assert_eq!(out.members(), [1]);
        out.remove(1);
        assert!(out.members().is_empty());
    }

    #[test]
    fn members_that_asked_for_ids_get_the_tagged_lines_in_the_same_order() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        out.open(1);
        out.join(1, true);
        out.send_public(None, b"MSG ana uno\n", b"@7 MSG ana uno\n");
        out.send_to_room(None, b"JOIN eva\n");
        out.send(1, b"PONG\n");
        out.send_public(Some(1), b"MSG bob dos\n", b"@8 MSG bob dos\n");
        let (mut p0, mut p1) = (pipe(1000), pipe(1000));
        out.write(0, &mut p0).unwrap();
        out.write(1, &mut p1).unwrap();
        out.end_pass();
        assert_eq!(p0.got, b"MSG ana uno\nJOIN eva\nMSG bob dos\n");
        assert_eq!(p1.got, b"@7 MSG ana uno\nJOIN eva\nPONG\n");
        out.leave(1, false);
        out.send_public(None, b"MSG ana tres\n", b"@9 MSG ana tres\n");
        assert_eq!(
            out.room_len(),
            13,
            "no tagged copy once nobody asks for ids"
        );
    }

    #[test]
    fn a_queue_past_the_limit_is_reported_once() {
        let mut out = Outbox::new(10);
        out.open(0);
        out.send(0, b"0123456789");
        assert!(out.take_over_limit().is_empty());
        out.send(0, b"x");
        out.send(0, b"y");
        assert_eq!(out.take_over_limit(), [0]);
        assert!(out.take_over_limit().is_empty());
    }

    #[test]
    fn end_of_pass_serves_members_that_were_not_written() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        out.send_to_room(None, b"kept\n");
        out.end_pass();
        assert_eq!(out.room_len(), 0);
        assert_eq!(
            out.pending(0),
            5,
            "copied into its queue before the log was emptied"
        );
    }

    #[test]
    fn the_bytes_waiting_for_everyone_are_counted() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        member(&mut out, 1);
        out.send(0, b"private\n");
        out.send_to_room(None, b"room\n");
        assert_eq!(out.total_pending(), 8);
        let mut p = pipe(3);
        out.write(1, &mut p).unwrap();
        // 1 took 3 bytes of the room's line; the other 2 wait in its queue.
        assert_eq!(out.total_pending(), 10);
        out.end_pass();
        // 0 was served the room's line into its queue.
        assert_eq!(out.total_pending(), 15);
        let backlogged: Vec<(ConnId, usize)> = out.backlogged().collect();
        assert_eq!(backlogged, [(0, 13), (1, 2)]);
        out.discard(0);
        out.remove(1);
        assert_eq!(out.total_pending(), 0);
    }
}
