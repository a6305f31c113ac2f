//! What the chat core has said and the sockets have not taken yet: one queue per connection and
//! each room's shared log. The chat core only appends; the reactor drains it with
//! [`Outbox::write`], the one place where bytes go to a socket.
//!
//! A line for a room is appended once to the room's log, and each member it serves is written
//! straight from it, so that a line is not copied once per recipient. A member only gets a copy
//! of the log's bytes in its own queue when something private must come after them (a reply, its
//! own line skipped) or when its socket is full. That copy ([`Outbox::catch_up`]) is made inside
//! [`Outbox::send`] and [`Outbox::send_to_room`]: room lines and private lines reach each
//! connection in the order they were produced, whoever calls.
//!
//! A connection is served from the log of one room only (the first it joined, and when it leaves
//! that one, another of its rooms): the lines of its other rooms are copied into its own queue as
//! they are said, which keeps every line in the order it was produced. Most members are in one
//! room, or mostly read one; the fan-out of a busy room stays one copy per pass. The copies are
//! counted as they are made ([`Outbox::total_pending`]): people in many rooms together can
//! produce far more within one pass than --max-queue-total.

use std::io::{self, Write};

use charla_proto::io::write_until_blocked;

/// A connection as the chat core and the outbox know it (the reactor's slab index).
pub type ConnId = usize;

/// A room as the chat core and the outbox know it.
pub type RoomId = usize;

/// Largest room-log capacity kept from one pass to the next: for the first room (the default
/// one, where most lines are said), and for every other (a thousand rooms may each have had a
/// burst; what they keep must stay small).
const ROOM_LOG_KEEP: usize = 256 << 10;
const OTHER_ROOM_LOG_KEEP: usize = 4 << 10;

/// How a connection gets room lines: with their line id in front (`@<id> `, for clients that
/// sent `/resume`) and with their room named (`#room `, for clients that sent `/cap rooms`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineForm {
    pub ids: bool,
    pub rooms: bool,
}

impl LineForm {
    const COUNT: usize = 4;

    fn index(self) -> usize {
        usize::from(self.ids) | usize::from(self.rooms) << 1
    }

    fn from_index(i: usize) -> LineForm {
        LineForm {
            ids: i & 1 != 0,
            rooms: i & 2 != 0,
        }
    }

    /// `line` as this form wants it: `[@<id> ][<room> ]<line>`.
    fn push(self, out: &mut Vec<u8>, room: &str, id: Option<u64>, line: &[u8]) {
        if let (true, Some(id)) = (self.ids, id) {
            let _ = write!(out, "@{id} ");
        }
        if self.rooms {
            out.extend_from_slice(room.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line);
    }
}

pub struct Outbox {
    mailboxes: Vec<Option<Mailbox>>,
    rooms: Vec<Room>,
    /// Rooms whose logs hold lines this pass (emptied at its end), and those with lines added
    /// since the reactor last took the writers.
    rooms_with_lines: Vec<RoomId>,
    rooms_to_write: Vec<RoomId>,
    /// Bytes in every room's logs this pass.
    room_bytes: usize,
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
    /// Bytes in every connection's own queue together (--max-queue-total), counted as they are
    /// queued: one pass can copy far more than the limit.
    total: usize,
    /// Where a room line is formatted for the members it is copied to.
    scratch: Vec<u8>,
}

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

    fn clear(&mut self, keep: usize) {
        self.base = self.end();
        self.bytes.clear();
        if self.bytes.capacity() > keep {
            self.bytes = Vec::new();
        }
    }
}

#[derive(Default)]
struct Room {
    /// The room's lines this pass, one log per [`LineForm`]; a form nobody served needs is not
    /// written.
    logs: [RoomLog; LineForm::COUNT],
    /// Members served from the logs, and how many of them want each form.
    served: Vec<ConnId>,
    served_forms: [usize; LineForm::COUNT],
    /// Members whose copy of each line goes into their own queue.
    copied: Vec<ConnId>,
    in_lines: bool,
    to_write: bool,
}

struct Mailbox {
    queue: OutQueue,
    form: LineForm,
    /// The room this connection is served from the log of, how far, and where it is in that
    /// room's `served`.
    served: Option<Served>,
    /// The other rooms it is in, and where it is in each one's `copied`.
    copied: Vec<(RoomId, usize)>,
    /// Listed in `to_flush`.
    listed: bool,
    /// Gets nothing more: its connection failed and is on its way out.
    silenced: bool,
}

#[derive(Clone, Copy)]
struct Served {
    room: RoomId,
    pos: u64,
    slot: usize,
}

impl Outbox {
    pub fn new(max_queue: usize) -> Outbox {
        Outbox {
            mailboxes: Vec::new(),
            rooms: Vec::new(),
            rooms_with_lines: Vec::new(),
            rooms_to_write: Vec::new(),
            room_bytes: 0,
            to_flush: Vec::new(),
            max_queue,
            over_limit: Vec::new(),
            pool: BufferPool::default(),
            total: 0,
            scratch: Vec::new(),
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

    fn room(&mut self, room: RoomId) -> &mut Room {
        if self.rooms.len() <= room {
            self.rooms.resize_with(room + 1, Room::default);
        }
        &mut self.rooms[room]
    }

    /// A new connection: an empty queue, in no room.
    pub fn open(&mut self, id: ConnId) {
        if self.mailboxes.len() <= id {
            self.mailboxes.resize_with(id + 1, || None);
        }
        self.mailboxes[id] = Some(Mailbox {
            queue: OutQueue::default(),
            form: LineForm::default(),
            served: None,
            copied: Vec::new(),
            listed: false,
            silenced: false,
        });
    }

    /// The connection is gone: what was queued for it is dropped.
    pub fn remove(&mut self, id: ConnId) {
        self.leave_all(id, false);
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

    /// Drops what is queued for a connection that is on its way out, and whatever would be
    /// queued for it from now on, so that the lines of others leaving with it do not pile up
    /// there. It stays in its rooms, for the chat to say where it leaves.
    pub fn silence(&mut self, id: ConnId) {
        self.discard(id);
        if let Some(mailbox) = self.mailbox(id) {
            mailbox.silenced = true;
        }
    }

    /// How `id` wants room lines; set before it joins a room.
    pub fn set_form(&mut self, id: ConnId, form: LineForm) {
        if let Some(mailbox) = self.mailbox(id) {
            if mailbox.served.is_none() && mailbox.copied.is_empty() {
                mailbox.form = form;
            }
        }
    }

    /// Enters `room`: gets every line said in it from now on.
    pub fn join(&mut self, id: ConnId, room: RoomId) {
        self.room(room);
        let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let in_room = mailbox.served.is_some_and(|s| s.room == room)
            || mailbox.copied.iter().any(|&(r, _)| r == room);
        if in_room {
            return;
        }
        let form = mailbox.form.index();
        let r = &mut self.rooms[room];
        if mailbox.served.is_none() {
            mailbox.served = Some(Served {
                room,
                pos: r.logs[form].end(),
                slot: r.served.len(),
            });
            r.served.push(id);
            r.served_forms[form] += 1;
        } else {
            mailbox.copied.push((room, r.copied.len()));
            r.copied.push(id);
        }
    }

    /// Leaves `room`. With `keep_unserved`, the room's lines said before still reach it.
    pub fn leave(&mut self, id: ConnId, room: RoomId, keep_unserved: bool) {
        let Some(mailbox) = self.mailbox(id) else {
            return;
        };
        if let Some(at) = mailbox.copied.iter().position(|&(r, _)| r == room) {
            let (_, slot) = mailbox.copied.swap_remove(at);
            self.unlist_copied(room, slot);
            return;
        }
        if mailbox.served.is_none_or(|s| s.room != room) {
            return;
        }
        if keep_unserved {
            // What the room said before goes out from its own queue now: listed to be written,
            // as it is no longer among the room's members the reactor writes.
            self.catch_up(id);
            if self.pending(id) > 0 {
                self.list_for_flush(id);
            }
        }
        let Some(mailbox) = self.mailbox(id) else {
            return;
        };
        let form = mailbox.form.index();
        let Some(served) = mailbox.served.take() else {
            return;
        };
        // Another of its rooms is served from its log from now on: every line of it said so far
        // has been copied into its queue.
        let next = mailbox.copied.pop();
        let r = &mut self.rooms[room];
        r.served_forms[form] -= 1;
        r.served.swap_remove(served.slot);
        if let Some(&moved) = r.served.get(served.slot) {
            if let Some(s) = self.mailbox(moved).and_then(|m| m.served.as_mut()) {
                s.slot = served.slot;
            }
        }
        if let Some((next, slot)) = next {
            self.unlist_copied(next, slot);
            let r = &mut self.rooms[next];
            let served = Served {
                room: next,
                pos: r.logs[form].end(),
                slot: r.served.len(),
            };
            r.served.push(id);
            r.served_forms[form] += 1;
            if let Some(mailbox) = self.mailbox(id) {
                mailbox.served = Some(served);
            }
        }
    }

    /// Takes the member at `slot` out of `room`'s copied members.
    fn unlist_copied(&mut self, room: RoomId, slot: usize) {
        let r = &mut self.rooms[room];
        r.copied.swap_remove(slot);
        if let Some(&moved) = r.copied.get(slot) {
            if let Some(m) = self.mailbox(moved) {
                if let Some(entry) = m.copied.iter_mut().find(|(r, _)| *r == room) {
                    entry.1 = slot;
                }
            }
        }
    }

    /// Leaves every room.
    pub fn leave_all(&mut self, id: ConnId, keep_unserved: bool) {
        loop {
            let Some(room) = self.rooms_of(id).next() else {
                break;
            };
            self.leave(id, room, keep_unserved);
        }
    }

    /// The rooms `id` is in.
    pub fn rooms_of(&self, id: ConnId) -> impl Iterator<Item = RoomId> + '_ {
        let mailbox = self.mailboxes.get(id).and_then(Option::as_ref);
        let served = mailbox.and_then(|m| m.served).map(|s| s.room);
        let copied = mailbox
            .into_iter()
            .flat_map(|m| m.copied.iter().map(|&(r, _)| r));
        served.into_iter().chain(copied)
    }

    /// The members of `room`.
    pub fn members(&self, room: RoomId) -> impl Iterator<Item = ConnId> + '_ {
        self.rooms
            .get(room)
            .into_iter()
            .flat_map(|r| r.served.iter().chain(&r.copied).copied())
    }

    pub fn member_count(&self, room: RoomId) -> usize {
        self.rooms
            .get(room)
            .map_or(0, |r| r.served.len() + r.copied.len())
    }

    /// Queues bytes for one connection, after every room line said before them.
    pub fn send(&mut self, id: ConnId, bytes: &[u8]) {
        self.catch_up(id);
        let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        if mailbox.silenced {
            return;
        }
        let before = mailbox.queue.pending();
        mailbox.queue.push(bytes, &mut self.pool);
        if before <= self.max_queue && mailbox.queue.pending() > self.max_queue {
            self.over_limit.push(id);
        }
        if !mailbox.listed {
            mailbox.listed = true;
            self.to_flush.push(id);
        }
        self.total += bytes.len();
    }

    /// Connections whose queue passed --max-queue since last asked.
    pub fn take_over_limit(&mut self) -> Vec<ConnId> {
        std::mem::take(&mut self.over_limit)
    }

    /// A line for every member of `room` but `except` (who is served up to here, then skips
    /// it): `line` as it is, or with its `id` and the room's `name` in front for the members
    /// that want them ([`LineForm`]).
    pub fn send_to_room(
        &mut self,
        room: RoomId,
        name: &str,
        except: Option<ConnId>,
        id: Option<u64>,
        line: &[u8],
    ) {
        self.send_to_room_as(room, name, except, id, Some(line), line);
    }

    /// As [`Outbox::send_to_room`], with `plain` for the members that do not want room names
    /// (none: they get nothing) and `named` for those that do.
    pub fn send_to_room_as(
        &mut self,
        room: RoomId,
        name: &str,
        except: Option<ConnId>,
        id: Option<u64>,
        plain: Option<&[u8]>,
        named: &[u8],
    ) {
        let line_for = |form: LineForm| if form.rooms { Some(named) } else { plain };
        if room >= self.rooms.len() {
            return;
        }
        if let Some(id) = except {
            self.catch_up(id);
        }
        let r = &mut self.rooms[room];
        let mut wrote = false;
        for form in 0..LineForm::COUNT {
            let Some(line) = line_for(LineForm::from_index(form)) else {
                continue;
            };
            if r.served_forms[form] > 0 {
                let before = r.logs[form].bytes.len();
                LineForm::from_index(form).push(&mut r.logs[form].bytes, name, id, line);
                self.room_bytes += r.logs[form].bytes.len() - before;
                wrote = true;
            }
        }
        if wrote {
            if !std::mem::replace(&mut r.in_lines, true) {
                self.rooms_with_lines.push(room);
            }
            if !std::mem::replace(&mut r.to_write, true) {
                self.rooms_to_write.push(room);
            }
        }
        if let Some(except) = except.and_then(|e| self.mailboxes.get_mut(e)?.as_mut()) {
            let form = except.form.index();
            if let Some(served) = except.served.as_mut().filter(|s| s.room == room) {
                served.pos = self.rooms[room].logs[form].end();
            }
        }
        if self.rooms[room].copied.is_empty() {
            return;
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        for i in 0..self.rooms[room].copied.len() {
            let member = self.rooms[room].copied[i];
            if Some(member) == except {
                continue;
            }
            let Some(form) = self.mailbox(member).map(|m| m.form) else {
                continue;
            };
            let Some(line) = line_for(form) else {
                continue;
            };
            scratch.clear();
            form.push(&mut scratch, name, id, line);
            self.send(member, &scratch);
        }
        scratch.clear();
        self.scratch = scratch;
    }

    /// Copies the bytes of its room's log `id` has not been served into its own queue, so that
    /// whatever is queued for it next comes after them.
    fn catch_up(&mut self, id: ConnId) {
        let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        let form = mailbox.form.index();
        let Some(served) = mailbox.served.as_mut() else {
            return;
        };
        let log = &self.rooms[served.room].logs[form];
        let unserved = log.from(served.pos);
        let n = if mailbox.silenced { 0 } else { unserved.len() };
        if n > 0 {
            mailbox.queue.push(unserved, &mut self.pool);
        }
        served.pos = log.end();
        self.total += n;
    }

    /// Bytes waiting for `id` in its own queue.
    pub fn pending(&self, id: ConnId) -> usize {
        self.mailboxes
            .get(id)
            .and_then(Option::as_ref)
            .map_or(0, |m| m.queue.pending())
    }

    /// Bytes in the rooms' logs this pass.
    pub fn room_len(&self) -> usize {
        self.room_bytes
    }

    /// Whether anything waits to be written.
    pub fn has_output(&self) -> bool {
        !self.rooms_to_write.is_empty() || !self.to_flush.is_empty()
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

    /// Moves into `ids` every connection with something to write: the members served from the
    /// logs of rooms with new lines, then those with bytes of their own. A connection may appear
    /// twice; writing it again is harmless.
    pub fn take_writers(&mut self, ids: &mut Vec<ConnId>) {
        for room in self.rooms_to_write.drain(..) {
            let r = &mut self.rooms[room];
            r.to_write = false;
            ids.extend_from_slice(&r.served);
        }
        for id in self.to_flush.drain(..) {
            if let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) {
                mailbox.listed = false;
                ids.push(id);
            }
        }
    }

    /// Writes what waits for `id` to `w`: its own queue first, then, once that is all out, its
    /// room's lines straight from the log. What `w` does not take stays queued, in order (a
    /// write that returned `WouldBlock` is retried from the queue with the same bytes first,
    /// which OpenSSL allows with ACCEPT_MOVING_WRITE_BUFFER). Returns how many bytes `w` took,
    /// and the bytes still waiting.
    pub fn write(&mut self, id: ConnId, w: &mut impl Write) -> io::Result<Written> {
        let Some(mailbox) = self.mailboxes.get_mut(id).and_then(Option::as_mut) else {
            return Ok(Written::default());
        };
        let before = mailbox.queue.pending();
        let all_out = mailbox.queue.write_to(w, &mut self.pool);
        let mut taken = before - mailbox.queue.pending();
        self.total -= taken;
        if all_out? {
            let form = mailbox.form.index();
            if let Some(served) = mailbox.served.as_mut() {
                let unserved = self.rooms[served.room].logs[form].from(served.pos);
                let n = write_until_blocked(w, unserved)?;
                served.pos += n as u64;
                taken += n;
            }
        }
        self.catch_up(id);
        Ok(Written {
            taken,
            pending: self.pending(id),
        })
    }

    /// Ends a pass: every member has been served the rooms' logs (written or copied into its
    /// queue), which are emptied.
    pub fn end_pass(&mut self) {
        for room in std::mem::take(&mut self.rooms_with_lines) {
            for i in 0..self.rooms[room].served.len() {
                self.catch_up(self.rooms[room].served[i]);
            }
            let keep = if room == 0 {
                ROOM_LOG_KEEP
            } else {
                OTHER_ROOM_LOG_KEEP
            };
            let r = &mut self.rooms[room];
            r.in_lines = false;
            for log in &mut r.logs {
                log.clear(keep);
            }
        }
        self.room_bytes = 0;
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

    const ROOM: RoomId = 0;

    fn member(outbox: &mut Outbox, id: ConnId) {
        outbox.open(id);
        outbox.join(id, ROOM);
    }

    /// A line for the room, none of its members wanting ids or room names.
    fn to_room(outbox: &mut Outbox, except: Option<ConnId>, line: &[u8]) {
        outbox.send_to_room(ROOM, "#general", except, None, line);
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
        to_room(&mut out, None, b"1 room\n");
        out.send(0, b"2 private\n");
        to_room(&mut out, Some(0), b"3 not for 0\n");
        to_room(&mut out, None, b"4 room\n");
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
        to_room(&mut out, None, b"abcdef\n");
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
        to_room(&mut out, None, b"next\n");
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
        to_room(&mut out, None, b"before\n");
        out.leave(0, ROOM, true);
        out.leave(1, ROOM, false);
        to_room(&mut out, None, b"after\n");
        assert_eq!(out.members(ROOM).collect::<Vec<_>>(), [2]);
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
        out.leave(0, ROOM, false);
        out.leave(2, ROOM, false);
        out.leave(3, ROOM, false);
        assert_eq!(out.members(ROOM).collect::<Vec<_>>(), [1]);
        out.remove(1);
        assert_eq!(out.member_count(ROOM), 0);
    }

    #[test]
    fn members_get_ids_and_room_names_as_they_asked_in_the_same_order() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        out.open(1);
        out.set_form(
            1,
            LineForm {
                ids: true,
                rooms: false,
            },
        );
        out.join(1, ROOM);
        out.open(2);
        out.set_form(
            2,
            LineForm {
                ids: true,
                rooms: true,
            },
        );
        out.join(2, ROOM);
        out.send_to_room(ROOM, "#general", None, Some(7), b"MSG ana uno\n");
        to_room(&mut out, None, b"JOIN eva\n");
        out.send(1, b"PONG\n");
        out.send_to_room(ROOM, "#general", Some(1), Some(8), b"MSG bob dos\n");
        let (mut p0, mut p1, mut p2) = (pipe(1000), pipe(1000), pipe(1000));
        out.write(0, &mut p0).unwrap();
        out.write(1, &mut p1).unwrap();
        out.write(2, &mut p2).unwrap();
        out.end_pass();
        assert_eq!(p0.got, b"MSG ana uno\nJOIN eva\nMSG bob dos\n");
        assert_eq!(p1.got, b"@7 MSG ana uno\nJOIN eva\nPONG\n");
        assert_eq!(
            p2.got,
            b"@7 #general MSG ana uno\n#general JOIN eva\n@8 #general MSG bob dos\n"
        );
        out.leave(1, ROOM, false);
        out.leave(2, ROOM, false);
        to_room(&mut out, None, b"MSG ana tres\n");
        assert_eq!(out.room_len(), 13, "no other form once nobody asks for one");
    }

    #[test]
    fn a_member_of_several_rooms_gets_every_line_in_the_order_it_was_said() {
        let mut out = Outbox::new(usize::MAX);
        let rooms = LineForm {
            ids: false,
            rooms: true,
        };
        for id in 0..3 {
            out.open(id);
            out.set_form(id, rooms);
        }
        // 0 is in both rooms; 1 only in the first, 2 only in the second.
        out.join(0, 0);
        out.join(0, 1);
        out.join(1, 0);
        out.join(2, 1);
        out.send_to_room(0, "#a", None, None, b"1\n");
        out.send_to_room(1, "#b", None, None, b"2\n");
        out.send(0, b"3 private\n");
        out.send_to_room(0, "#a", None, None, b"4\n");
        out.send_to_room(1, "#b", Some(0), None, b"5 from 0\n");
        let mut writers = Vec::new();
        out.take_writers(&mut writers);
        let mut pipes: Vec<Pipe> = (0..3).map(|_| pipe(1000)).collect();
        for &id in &writers {
            out.write(id, &mut pipes[id]).unwrap();
        }
        out.end_pass();
        assert_eq!(pipes[0].got, b"#a 1\n#b 2\n3 private\n#a 4\n");
        assert_eq!(pipes[1].got, b"#a 1\n#a 4\n");
        assert_eq!(pipes[2].got, b"#b 2\n#b 5 from 0\n");
        assert_eq!(out.rooms_of(0).collect::<Vec<_>>(), [0, 1]);
        // Leaving the room it is served from, what that room said before goes out at the next
        // flush (the review of issue 22: it waited for something else to be sent).
        out.send_to_room(0, "#a", None, None, b"5b\n");
        out.leave(0, 0, true);
        let mut writers = Vec::new();
        out.take_writers(&mut writers);
        assert!(writers.contains(&0), "{writers:?}");
        let mut p = pipe(1000);
        out.write(0, &mut p).unwrap();
        assert_eq!(p.got, b"#a 5b\n");
        out.end_pass();
        out.join(0, 0);
        out.leave(0, 1, true);
        assert_eq!(out.rooms_of(0).collect::<Vec<_>>(), [0]);
        out.join(0, 1);
        out.leave(0, 0, true);
        out.join(0, 0);
        assert_eq!(out.rooms_of(0).collect::<Vec<_>>(), [1, 0]);
        // Leaving the room it was served from: the other is served from its log from then on.
        out.send_to_room(0, "#a", None, None, b"6\n");
        out.leave(0, 0, true);
        out.take_writers(&mut Vec::new());
        out.send_to_room(1, "#b", None, None, b"7\n");
        out.send_to_room(0, "#a", None, None, b"8 not for 0\n");
        assert_eq!(out.rooms_of(0).collect::<Vec<_>>(), [1]);
        let mut p = pipe(1000);
        out.write(0, &mut p).unwrap();
        assert_eq!(p.got, b"#a 6\n#b 7\n");
        assert_eq!(out.members(1).collect::<Vec<_>>(), [2, 0]);
        out.remove(0);
        assert_eq!(out.members(1).collect::<Vec<_>>(), [2]);
        assert_eq!(out.members(0).collect::<Vec<_>>(), [1]);
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
    fn copies_are_counted_as_they_are_made() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        member(&mut out, 1);
        out.send(1, b"private\n");
        out.join(0, 1);
        // 0 is served from room 0's log (not counted) and gets room 1's lines as copies, counted
        // at once, not at the end of the pass.
        out.send_to_room(1, "#b", None, None, b"12345\n");
        assert_eq!(out.total_pending(), 8 + 6);
        out.send_to_room(1, "#b", None, None, b"abc\n");
        assert_eq!(out.total_pending(), 8 + 6 + 4);
        to_room(&mut out, None, b"log\n");
        assert_eq!(out.total_pending(), 18, "room 0's log is not a copy");
        out.discard(0);
        out.discard(1);
        assert_eq!(out.total_pending(), 0);
    }

    #[test]
    fn a_silenced_member_gets_nothing_more_but_stays_in_its_rooms() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        member(&mut out, 1);
        to_room(&mut out, None, b"before\n");
        out.send(0, b"private\n");
        out.silence(0);
        assert_eq!(out.pending(0), 0);
        to_room(&mut out, None, b"after\n");
        out.send(0, b"private\n");
        out.end_pass();
        assert_eq!(out.pending(0), 0);
        assert_eq!(out.pending(1), b"before\nafter\n".len());
        assert_eq!(out.rooms_of(0).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn end_of_pass_serves_members_that_were_not_written() {
        let mut out = Outbox::new(usize::MAX);
        member(&mut out, 0);
        to_room(&mut out, None, b"kept\n");
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
        to_room(&mut out, None, b"room\n");
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
