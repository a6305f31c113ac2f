//! Many non-blocking TLS client connections on one mio `Poll`.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Duration;

use charla_proto::io::write_until_blocked;
use charla_proto::{Frame, LineFramer};

use crate::dialect::Dialect;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use openssl::ssl::{ErrorCode, SslConnector, SslStream};

/// What happened on a connection.
pub enum Ev<'a> {
    /// TLS is up (the certificate verified).
    Ready,
    Line(&'a str),
    /// The connection is gone; why.
    Closed(&'a str),
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum State {
    Connecting,
    Handshaking,
    Open,
}

struct Conn {
    tls: SslStream<TcpStream>,
    /// Not read any more: plays a client that stopped reading.
    deaf: bool,
    state: State,
    framer: LineFramer,
    out: Vec<u8>,
    sent: usize,
    interest: Interest,
}

pub struct Engine {
    poll: Poll,
    events: Events,
    conns: Vec<Option<Conn>>,
    connector: SslConnector,
    server: SocketAddr,
    host: String,
    scratch: Vec<u8>,
    open: usize,
    /// Lines like IRC's `PING` are answered here (see [`Dialect::auto_reply`]).
    pub dialect: Dialect,
}

const MAX_LINE: usize = 1 << 20;

impl Engine {
    pub fn new(server: SocketAddr, host: &str, connector: SslConnector) -> io::Result<Engine> {
        Ok(Engine {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            conns: Vec::new(),
            connector,
            server,
            host: host.to_string(),
            scratch: vec![0; 64 * 1024],
            open: 0,
            dialect: Dialect::Charla,
        })
    }

    /// Connections not closed.
    pub fn open_count(&self) -> usize {
        self.open
    }

    /// Starts connection `id` (ids are small integers chosen by the caller).
    pub fn connect(&mut self, id: usize) -> io::Result<()> {
        let mut tcp = TcpStream::connect(self.server)?;
        tcp.set_nodelay(true)?;
        self.poll.registry().register(
            &mut tcp,
            Token(id),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let ssl = self
            .connector
            .configure()
            .and_then(|c| c.into_ssl(&self.host))
            .map_err(io::Error::other)?;
        let tls = SslStream::new(ssl, tcp).map_err(io::Error::other)?;
        if self.conns.len() <= id {
            self.conns.resize_with(id + 1, || None);
        }
        self.conns[id] = Some(Conn {
            tls,
            deaf: false,
            state: State::Connecting,
            framer: LineFramer::new(),
            out: Vec::new(),
            sent: 0,
            interest: Interest::READABLE | Interest::WRITABLE,
        });
        self.open += 1;
        Ok(())
    }

    /// Queues bytes for connection `id` and writes what the socket takes now.
    pub fn send(&mut self, id: usize, bytes: &[u8]) {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return;
        };
        conn.out.extend_from_slice(bytes);
        if conn.state == State::Open {
            let _ = self.flush(id);
        }
    }

    /// Bytes not yet written for `id`.
    pub fn pending(&self, id: usize) -> usize {
        self.conns
            .get(id)
            .and_then(Option::as_ref)
            .map_or(0, |c| c.out.len() - c.sent)
    }

    /// From now on nothing is read from connection `id` (its socket buffers fill up).
    pub fn stop_reading(&mut self, id: usize) {
        if let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) {
            conn.deaf = true;
        }
    }

    pub fn close(&mut self, id: usize) {
        if let Some(mut conn) = self.conns.get_mut(id).and_then(Option::take) {
            let _ = self.poll.registry().deregister(conn.tls.get_mut());
            self.open -= 1;
        }
    }

    /// Waits up to `timeout` for events and reports them through `on_event`.
    pub fn poll(
        &mut self,
        timeout: Duration,
        on_event: &mut dyn FnMut(usize, Ev<'_>),
    ) -> io::Result<()> {
        match self.poll.poll(&mut self.events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        let ready: Vec<(usize, bool)> = self
            .events
            .iter()
            .map(|e| (e.token().0, e.is_writable()))
            .collect();
        for (id, writable) in ready {
            if let Err(why) = self.ready(id, writable, on_event) {
                self.close(id);
                on_event(id, Ev::Closed(&why));
            }
        }
        Ok(())
    }

    fn ready(
        &mut self,
        id: usize,
        writable: bool,
        on_event: &mut dyn FnMut(usize, Ev<'_>),
    ) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return Ok(());
        };
        if conn.state == State::Connecting {
            if !writable {
                return Ok(());
            }
            if let Some(e) = conn.tls.get_ref().take_error().map_err(|e| e.to_string())? {
                return Err(format!("connect: {e}"));
            }
            match conn.tls.get_ref().peer_addr() {
                Ok(_) => conn.state = State::Handshaking,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(format!("connect: {e}")),
            }
        }
        if conn.state == State::Handshaking {
            match conn.tls.connect() {
                Ok(()) => {
                    conn.state = State::Open;
                    on_event(id, Ev::Ready);
                }
                Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {
                    return Ok(())
                }
                Err(e) => return Err(format!("TLS handshake: {e}")),
            }
        }
        self.flush(id)?;
        self.read(id, on_event)
    }

    fn read(&mut self, id: usize, on_event: &mut dyn FnMut(usize, Ev<'_>)) -> Result<(), String> {
        loop {
            let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
                return Ok(());
            };
            match conn.tls.read(&mut self.scratch) {
                Ok(0) => return Err("closed by server".into()),
                Ok(n) => {
                    let mut dead = None;
                    let dialect = self.dialect;
                    let out = &mut conn.out;
                    conn.framer.feed(&self.scratch[..n], MAX_LINE, |frame| {
                        match frame {
                            Frame::Line(line) => match dialect.auto_reply(line) {
                                Some(reply) => out.extend_from_slice(reply.as_bytes()),
                                None => on_event(id, Ev::Line(line)),
                            },
                            _ => dead = Some("server sent a bad line"),
                        }
                        true
                    });
                    if let Some(why) = dead {
                        return Err(why.into());
                    }
                    if conn.sent < conn.out.len() {
                        self.flush(id)?;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    fn flush(&mut self, id: usize) -> Result<(), String> {
        let Some(conn) = self.conns.get_mut(id).and_then(Option::as_mut) else {
            return Ok(());
        };
        if conn.state != State::Open {
            return Ok(());
        }
        conn.sent += write_until_blocked(&mut conn.tls, &conn.out[conn.sent..])
            .map_err(|e| format!("write: {e}"))?;
        if conn.sent == conn.out.len() {
            conn.out.clear();
            conn.sent = 0;
        }
        let wanted = if conn.out.is_empty() {
            Interest::READABLE
        } else {
            Interest::READABLE | Interest::WRITABLE
        };
        if wanted != conn.interest {
            self.poll
                .registry()
                .reregister(conn.tls.get_mut(), Token(id), wanted)
                .map_err(|e| e.to_string())?;
            conn.interest = wanted;
        }
        Ok(())
    }
}
