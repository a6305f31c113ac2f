//! One client connection as the reactor sees it: its TLS stream and where its socket is in its
//! life. What it is in the chat (nickname, registration) is the chat core's (`chat.rs`); what waits
//! to be written to it is the outbox's (`outbox.rs`).

use std::time::Instant;

use mio::net::TcpStream;
use mio::Interest;
use openssl::ssl::SslStream;

/// Where the socket is in its life; each state carries what only it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// TLS handshake in progress; it last asked for this readiness.
    Handshaking { wants: Interest },
    /// TLS is up: lines are read and written.
    Open,
    /// Saying goodbye: what is queued goes out, then close_notify (once; the peer's is not
    /// waited for), then the connection lingers briefly for the peer to close, so that the last
    /// lines are not lost to a TCP reset.
    Closing {
        notify_sent: bool,
        /// The peer closed its side first: nothing to linger for.
        peer_gone: bool,
    },
    /// Its socket failed or it was shed: nothing more is read or written, and the chat hears of
    /// it (its rooms get its LEAVE) when the reactor has the others' output in hand.
    Failed,
}

pub struct Conn {
    pub tls: SslStream<TcpStream>,
    /// Tells this connection apart from a later one that reuses its token.
    pub serial: u64,
    pub link: Link,
    /// The interest mio currently has for this socket.
    pub interest: Interest,
    /// Since when lines have waited for it without its socket taking any (--write-timeout).
    pub stalled_since: Option<Instant>,
    /// A write deadline for it is in the reactor's queue.
    pub write_deadline_set: bool,
}

impl Conn {
    pub fn new(tls: SslStream<TcpStream>, serial: u64) -> Self {
        Conn {
            tls,
            serial,
            link: Link::Handshaking {
                wants: Interest::READABLE,
            },
            interest: Interest::READABLE,
            stalled_since: None,
            write_deadline_set: false,
        }
    }

    /// The interest this connection needs now, given how many bytes wait for it.
    pub fn wanted_interest(&self, pending: usize) -> Interest {
        match self.link {
            Link::Handshaking { wants } => wants,
            Link::Closing {
                notify_sent: true, ..
            }
            | Link::Failed => Interest::READABLE,
            _ if pending > 0 => Interest::READABLE | Interest::WRITABLE,
            _ => Interest::READABLE,
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slab_reuses_slots() {
        let mut s = Slab::default();
        assert!(s.is_empty());
        assert_eq!(s.next_index(), 0);
        assert!(s.remove(0).is_none());
        assert!(s.get(3).is_none());
    }
}
