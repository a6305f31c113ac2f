//! Splitting a byte stream into protocol lines, with a bound on memory.

/// One item found in the byte stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete line without its `\n` (a `\r` before the `\n` is dropped too).
    Line(&'a str),
    /// A line went past the length limit; it is discarded up to its `\n`.
    TooLong,
    /// A complete line that is not valid UTF-8; it is discarded.
    BadUtf8,
}

/// Splits a stream of bytes, arriving in arbitrary chunks, into lines of at most `max_line` bytes
/// (terminator included).
///
/// Memory stays bounded by `max_line`: the part of a line past the limit is never stored. A framer
/// holds no allocation between lines, so an idle connection costs nothing here.
#[derive(Debug, Default)]
pub struct LineFramer {
    partial: Vec<u8>,
    /// The current line already went over the limit: skip up to the next `\n`.
    discarding: bool,
}

impl LineFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of an unfinished line held until its `\n` arrives.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// Feeds `data` and calls `on_frame` for each frame found, in order. When `on_frame` returns
    /// `false` the rest of `data` is dropped (the reader is going away).
    pub fn feed(
        &mut self,
        mut data: &[u8],
        max_line: usize,
        mut on_frame: impl FnMut(Frame<'_>) -> bool,
    ) {
        while !data.is_empty() {
            let Some(end) = data.iter().position(|&b| b == b'\n') else {
                if !self.discarding {
                    // Even a `\n` as the next byte would make this line too long.
                    if self.partial.len() + data.len() >= max_line {
                        self.partial = Vec::new();
                        self.discarding = true;
                        on_frame(Frame::TooLong);
                    } else {
                        self.partial.extend_from_slice(data);
                    }
                }
                return;
            };
            let (chunk, rest) = data.split_at(end + 1);
            data = rest;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let keep_going = if self.partial.len() + chunk.len() > max_line {
                self.partial = Vec::new();
                on_frame(Frame::TooLong)
            } else if self.partial.is_empty() {
                // The common case: the whole line is in this chunk, no copy.
                on_frame(frame_of(&chunk[..end]))
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&chunk[..end]);
                on_frame(frame_of(&line))
            };
            if !keep_going {
                return;
            }
        }
    }
}

fn frame_of(line: &[u8]) -> Frame<'_> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(text) => Frame::Line(text),
        Err(_) => Frame::BadUtf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Clone)]
    enum Owned {
        Line(String),
        TooLong,
        BadUtf8,
    }

    fn run(chunks: &[&[u8]], max: usize) -> Vec<Owned> {
        let mut framer = LineFramer::new();
        let mut out = Vec::new();
        for chunk in chunks {
            framer.feed(chunk, max, |f| {
                out.push(match f {
                    Frame::Line(s) => Owned::Line(s.to_string()),
                    Frame::TooLong => Owned::TooLong,
                    Frame::BadUtf8 => Owned::BadUtf8,
                });
                true
            });
        }
        out
    }

    fn line(s: &str) -> Owned {
        Owned::Line(s.to_string())
    }

    #[test]
    fn splits_lines_and_drops_cr() {
        assert_eq!(
            run(&[b"hola\nque tal\r\n\n"], 100),
            vec![line("hola"), line("que tal"), line("")]
        );
    }

    #[test]
    fn joins_chunks_byte_by_byte() {
        let data = "uno\r\ndós\ntres\n".as_bytes();
        let chunks: Vec<&[u8]> = data.chunks(1).collect();
        assert_eq!(
            run(&chunks, 100),
            vec![line("uno"), line("dós"), line("tres")]
        );
    }

    #[test]
    fn holds_unfinished_line_until_newline() {
        let mut framer = LineFramer::new();
        let mut seen = 0;
        framer.feed(b"abc", 100, |_| {
            seen += 1;
            true
        });
        assert_eq!(seen, 0);
        assert_eq!(framer.buffered(), 3);
        framer.feed(b"\n", 100, |f| {
            assert_eq!(f, Frame::Line("abc"));
            seen += 1;
            true
        });
        assert_eq!(seen, 1);
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn limit_counts_the_terminator() {
        // 9 bytes + '\n' = 10: allowed at max 10, too long at max 9.
        assert_eq!(
            run(&[b"123456789\nok\n"], 10),
            vec![line("123456789"), line("ok")]
        );
        assert_eq!(
            run(&[b"123456789\nok\n"], 9),
            vec![Owned::TooLong, line("ok")]
        );
        // "\r\n" counts as two bytes.
        assert_eq!(run(&[b"12345678\r\n"], 9), vec![Owned::TooLong]);
    }

    #[test]
    fn too_long_is_reported_once_and_skipped_without_storing_it() {
        let mut framer = LineFramer::new();
        let mut frames = Vec::new();
        for _ in 0..100 {
            framer.feed(&[b'x'; 1000], 64, |f| {
                frames.push(format!("{f:?}"));
                true
            });
            assert_eq!(framer.buffered(), 0);
        }
        framer.feed(b"xx\nnext\n", 64, |f| {
            frames.push(format!("{f:?}"));
            true
        });
        assert_eq!(frames, vec!["TooLong", "Line(\"next\")"]);
    }

    #[test]
    fn bad_utf8_drops_only_that_line() {
        assert_eq!(
            run(&[b"a\xff\xfeb\n", b"bien\n"], 100),
            vec![Owned::BadUtf8, line("bien")]
        );
        // A multibyte character split across chunks is fine.
        assert_eq!(run(&[b"\xc3", b"\xb1\n"], 100), vec![line("ñ")]);
    }

    #[test]
    fn stop_drops_the_rest() {
        let mut framer = LineFramer::new();
        let mut n = 0;
        framer.feed(b"a\nb\nc\n", 100, |_| {
            n += 1;
            false
        });
        assert_eq!(n, 1);
    }

    #[test]
    fn random_chunking_gives_the_same_frames() {
        let data: Vec<u8> = b"hola\r\nmundo\n\xff\n"
            .iter()
            .chain([b'y'; 300].iter())
            .chain(b"\nfin\n".iter())
            .copied()
            .collect();
        let whole = run(&[&data], 64);
        assert_eq!(
            whole,
            vec![
                line("hola"),
                line("mundo"),
                Owned::BadUtf8,
                Owned::TooLong,
                line("fin")
            ]
        );
        // A small deterministic generator stands in for a random source.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..500 {
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < data.len() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = 1 + (seed % 40) as usize;
                let end = (at + len).min(data.len());
                chunks.push(&data[at..end]);
                at = end;
            }
            assert_eq!(run(&chunks, 64), whole);
        }
    }
}
