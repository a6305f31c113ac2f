//! The line framer on arbitrary bytes in arbitrary chunks: never panics, never holds more than
//! the limit, and gives the same frames however the stream is cut.
#![no_main]

use charla_proto::{Frame, LineFramer};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
enum Owned {
    Line(String),
    TooLong,
    BadUtf8,
}

fn frames(chunks: &[&[u8]], max: usize) -> Vec<Owned> {
    let mut framer = LineFramer::new();
    let mut out = Vec::new();
    for chunk in chunks {
        framer.feed(chunk, max, |f| {
            out.push(match f {
                Frame::Line(l) => {
                    assert!(!l.contains('\n'));
                    assert!(l.len() < max);
                    Owned::Line(l.to_string())
                }
                Frame::TooLong => Owned::TooLong,
                Frame::BadUtf8 => Owned::BadUtf8,
            });
            true
        });
        assert!(
            framer.buffered() < max,
            "held {} bytes with a limit of {max}",
            framer.buffered()
        );
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    // The first two bytes choose the limit and how the rest is cut.
    let max = 2 + data[0] as usize;
    let cut = 1 + data[1] as usize % 17;
    let stream = &data[2..];
    let whole = frames(&[stream], max);
    let chunks: Vec<&[u8]> = stream.chunks(cut).collect();
    assert_eq!(frames(&chunks, max), whole);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(frames(&bytes, max), whole);
});
