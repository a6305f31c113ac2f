//! Writing to a non-blocking socket (TLS or not), shared by the server, the client and the
//! benchmark tool.

use std::io::{self, Write};

/// Writes as much of `bytes` as the writer takes now; returns how much that was. A `WouldBlock`
/// ends the write early (what is left must be offered again later, first, with the same bytes:
/// OpenSSL requires it); any other error is returned.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then says WouldBlock.
    struct Full {
        room: usize,
    }

    impl Write for Full {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = b.len().min(self.room).min(3);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn stops_at_would_block_and_says_how_much_went() {
        assert_eq!(
            write_until_blocked(&mut Full { room: 7 }, b"0123456789").unwrap(),
            7
        );
        assert_eq!(
            write_until_blocked(&mut Full { room: 70 }, b"0123456789").unwrap(),
            10
        );
    }
}
