//! What the client does with bytes from a server (issue 21: a hostile server's nested `HISTORY`
//! lines overflowed its stack): cut into lines as the network thread does (at most 1 MiB each),
//! ids taken off, then decoded for display. Never panics, never recurses per nested prefix, and a
//! user list is never assembled past the count the server gave.
#![no_main]

#[path = "../../client/src/present.rs"]
#[allow(dead_code)]
mod present;

use charla_proto::reply::split_id;
use charla_proto::{Frame, LineFramer};
use libfuzzer_sys::fuzz_target;
use present::{Decoder, Shown};

/// The client's bound on one server line (net.rs).
const MAX_SERVER_LINE: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut framer = LineFramer::new();
    let mut decoder = Decoder::default();
    let mut lines = Vec::new();
    framer.feed(data, MAX_SERVER_LINE, |frame| {
        if let Frame::Line(line) = frame {
            lines.push(line.to_string());
        }
        true
    });
    for line in &lines {
        let (_, rest) = split_id(line);
        for shown in [decoder.decode(line), decoder.decode(rest)]
            .into_iter()
            .flatten()
        {
            check(&shown, 0);
        }
    }
});

fn check(shown: &Shown, depth: usize) {
    match shown {
        Shown::History { shown, .. } => {
            assert_eq!(depth, 0, "history decoded inside history");
            assert!(!matches!(**shown, Shown::History { .. }));
            check(shown, depth + 1);
        }
        Shown::Message { text, .. } | Shown::Action { text, .. } | Shown::Private { text, .. } => {
            let _ = present::first_link(text);
            let _ = present::contained(text);
        }
        _ => {}
    }
}
