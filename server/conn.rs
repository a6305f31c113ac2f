//! One client connection: its TLS stream, where it is in the protocol, and its buffers.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Instant;

use charla_proto::{ErrorCode, LineFramer};
use mio::net::TcpStream;
use mio::Interest;
use openssl::ssl::SslStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// TLS handshake in progress.
    Handshaking,
    /// TLS is up; waiting for a nickname.
    Registering,
    /// In the room.
    Chatting,
    /// Saying goodbye: flushing what is queued, then close_notify, then waiting briefly for the
    /// peer to close so that our last lines are not lost to a TCP reset.
    Closing,
}

pub struct Conn {
    pub tls: SslStream<TcpStream>,
    pub phase: Phase,
    pub addr: SocketAddr,
    /// Tells this connection apart from a later one that reuses its token.
    pub serial: u64,
    /// Empty until registered.
    pub nick: Box<str>,
    /// Index in the room's member list while registered.
    pub room_slot: Option<usize>,
    /// How far into the room's output (see `Room`) this client has been served: bytes before
    /// it were written to its socket or copied into `out`.
    pub room_pos: u64,
    pub framer: LineFramer,
    pub out: OutQueue,
    pub flood: FloodBucket,
    /// The interest mio currently has for this socket.
    pub interest: Interest,
    /// Interest the TLS handshake asked for last.
    pub handshake_interest: Interest,
    /// Already in the server's list of connections to flush this pass.
    pub flush_queued: bool,
    pub close_started: bool,
    pub close_notify_sent: bool,
    /// The peer closed its side first.
    pub peer_gone: bool,
    /// Accepted over a limit (--max-clients, --max-per-ip, --max-connects-per-ip): after the
    /// handshake it only gets this error, with this text.
    pub reject: Option<(ErrorCode, Box<str>)>,
    /// Gave the server password (or none is needed).
    pub authenticated: bool,
    /// Counted in the server's `joining` (accepted, no nickname yet).
    pub joining: bool,
}

impl Conn {
    pub fn new(
        tls: SslStream<TcpStream>,
        addr: SocketAddr,
        serial: u64,
        now: Instant,
        burst: f64,
    ) -> Self {
        Conn {
            tls,
            phase: Phase::Handshaking,
            addr,
            serial,
            nick: Box::from(""),
            room_slot: None,
            room_pos: 0,
            framer: LineFramer::new(),
            out: OutQueue::default(),
            flood: FloodBucket::new(now, burst),
            interest: Interest::READABLE,
            handshake_interest: Interest::READABLE,
            flush_queued: false,
            close_started: false,
            close_notify_sent: false,
            peer_gone: false,
            reject: None,
            authenticated: true,
            joining: false,
        }
    }

    /// Stops serving this connection (too slow, or its socket failed): what is queued for it
    /// is dropped, and the caller has it closed at the end of the pass.
    pub fn give_up(&mut self) {
        self.phase = Phase::Closing;
        self.out.clear();
    }

    /// Who this is in a log line.
    pub fn who(&self) -> String {
        if self.nick.is_empty() {
            self.addr.to_string()
        } else {
            format!("{} ({})", self.nick, self.addr)
        }
    }

    /// The interest this connection needs now.
    pub fn wanted_interest(&self) -> Interest {
        match self.phase {
            Phase::Handshaking => self.handshake_interest,
            Phase::Closing if self.close_notify_sent => Interest::READABLE,
            _ if self.out.pending() > 0 => Interest::READABLE | Interest::WRITABLE,
            _ => Interest::READABLE,
        }
    }
}

/// Bytes waiting to be written to one client, in order.
///
/// Append-only and consumed from the front only after a successful write: OpenSSL requires a write
/// that returned `WouldBlock` to be retried with the same bytes. Everything queued goes out in as
/// few TLS writes as possible, and the buffer goes back to the [`BufferPool`] once all is sent so
/// that an idle connection holds none.
#[derive(Default)]
pub struct OutQueue {
    buf: Vec<u8>,
    sent: usize,
}

impl OutQueue {
    pub fn pending(&self) -> usize {
        self.buf.len() - self.sent
    }

    pub fn push(&mut self, bytes: &[u8], pool: &mut BufferPool) {
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

    pub fn clear(&mut self) {
        *self = OutQueue::default();
    }

    /// Writes until everything is sent (`Ok(true)`) or the socket is full (`Ok(false)`).
    pub fn write_to(&mut self, w: &mut impl Write, pool: &mut BufferPool) -> io::Result<bool> {
        self.sent += write_until_blocked(w, &self.buf[self.sent..])?;
        if self.sent < self.buf.len() {
            return Ok(false);
        }
        pool.give(std::mem::take(&mut self.buf));
        self.sent = 0;
        Ok(true)
    }
}

/// Writes as much of `bytes` as the socket takes now; returns how much that was.
pub fn write_until_blocked(w: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match w.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Output buffers of connections that sent everything, kept for the next connection with
/// something to send: idle connections hold no buffer, and busy ones do not allocate (or fault in
/// fresh pages) on every pass.
#[derive(Default)]
pub struct BufferPool {
    free: Vec<Vec<u8>>,
    bytes: usize,
}

/// Most memory the pool keeps, and the largest buffer it keeps.
const POOL_MAX_BYTES: usize = 2 << 20;
const POOL_MAX_BUFFER: usize = 256 << 10;

impl BufferPool {
    pub fn take(&mut self) -> Vec<u8> {
        let buf = self.free.pop().unwrap_or_default();
        self.bytes -= buf.capacity();
        buf
    }

    pub fn give(&mut self, mut buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap > 0 && cap <= POOL_MAX_BUFFER && self.bytes + cap <= POOL_MAX_BYTES {
            buf.clear();
            self.bytes += cap;
            self.free.push(buf);
        }
    }
}

/// Token bucket: `rate` lines per second on average, `burst` at once.
pub struct FloodBucket {
    tokens: f64,
    last: Instant,
    /// `ERROR flood` was sent for the current run of dropped lines.
    pub warned: bool,
}

impl FloodBucket {
    pub fn new(now: Instant, burst: f64) -> Self {
        FloodBucket {
            tokens: burst,
            last: now,
            warned: false,
        }
    }

    pub fn allow(&mut self, now: Instant, rate: f64, burst: f64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.warned = false;
            true
        } else {
            false
        }
    }
}

/// Connections by token: a vector of slots reused through a free list.
#[derive(Default)]
pub struct Slab {
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    len: usize,
}

impl Slab {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The index the next insert will use.
    pub fn next_index(&self) -> usize {
        self.free.last().copied().unwrap_or(self.slots.len())
    }

    pub fn insert(&mut self, conn: Conn) -> usize {
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(conn);
                i
            }
            None => {
                self.slots.push(Some(conn));
                self.slots.len() - 1
            }
        }
    }

    pub fn remove(&mut self, i: usize) -> Option<Conn> {
        let conn = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        self.free.push(i);
        Some(conn)
    }

    pub fn get(&self, i: usize) -> Option<&Conn> {
        self.slots.get(i)?.as_ref()
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Conn> {
        self.slots.get_mut(i)?.as_mut()
    }

    /// Indexes of every connection.
    pub fn indexes(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&i| self.slots[i].is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A writer that takes at most `room` bytes, then says WouldBlock.
    struct Pipe {
        got: Vec<u8>,
        room: usize,
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

    #[test]
    fn out_queue_keeps_order_across_partial_writes() {
        let mut q = OutQueue::default();
        let mut pool = BufferPool::default();
        let mut pipe = Pipe {
            got: Vec::new(),
            room: 5,
        };
        q.push(b"hello ", &mut pool);
        q.push(b"world\n", &mut pool);
        assert!(!q.write_to(&mut pipe, &mut pool).unwrap());
        assert_eq!(q.pending(), 7);
        q.push(b"more\n", &mut pool);
        pipe.room = 100;
        assert!(q.write_to(&mut pipe, &mut pool).unwrap());
        assert_eq!(pipe.got, b"hello world\nmore\n");
        assert_eq!(q.pending(), 0);
        assert_eq!(q.buf.capacity(), 0, "an empty queue holds no memory");
        assert_eq!(pool.free.len(), 1, "its buffer went back to the pool");
        q.push(b"again", &mut pool);
        assert!(pool.free.is_empty() && pool.bytes == 0, "and is reused");
    }

    #[test]
    fn flood_bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = FloodBucket::new(t0, 3.0);
        assert!((0..3).all(|_| b.allow(t0, 2.0, 3.0)));
        assert!(!b.allow(t0, 2.0, 3.0));
        assert!(b.allow(t0 + Duration::from_millis(500), 2.0, 3.0));
        assert!(!b.allow(t0 + Duration::from_millis(500), 2.0, 3.0));
    }

    #[test]
    fn slab_reuses_slots() {
        let mut s = Slab::default();
        assert!(s.is_empty());
        assert_eq!(s.next_index(), 0);
        assert!(s.remove(0).is_none());
        assert!(s.get(3).is_none());
    }
}
