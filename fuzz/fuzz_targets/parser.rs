//! Command, nickname and server-line parsing on arbitrary text: never panics, and what the
//! server builds from it keeps the protocol's promises.
#![no_main]

use charla_proto::reply::{push_line, push_user_list};
use charla_proto::{
    clean_text, nick_key, parse_client_line, parse_server_line, validate_nick, ClientLine,
    MAX_NICK_CHARS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let cleaned = clean_text(text);
    assert!(!cleaned.chars().any(|c| c.is_control() && c != '\t'));

    match parse_client_line(text) {
        ClientLine::Msg { to, text } => assert!(!to.is_empty() && !text.trim().is_empty()),
        ClientLine::Nick(n) => assert!(!n.is_empty()),
        _ => {}
    }
    let _ = parse_server_line(text);

    if validate_nick(text).is_ok() {
        assert!(!text.is_empty() && text.chars().count() <= MAX_NICK_CHARS);
        assert!(!text.contains(' ') && !text.contains('\n'));
        let _ = nick_key(text);
        // A list of valid nicknames always fits the protocol's line length.
        // Also in front of a room's name (`#<name> `), as a client that understands rooms gets it.
        let nicks = vec![text; 300];
        for prefix in [String::new(), format!("#{text} ")] {
            let mut out = Vec::new();
            push_user_list(&mut out, &prefix, nicks.iter().copied());
            for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                assert!(line.len() < charla_proto::MAX_SERVER_LINE);
                assert!(line.starts_with(prefix.as_bytes()));
            }
        }
    }
    // A server line built from cleaned text parses back to the same text.
    if !cleaned.contains('\n') {
        let mut out = Vec::new();
        push_line(&mut out, &["MSG", "ana", &cleaned]);
        let line = std::str::from_utf8(&out[..out.len() - 1]).unwrap();
        if let charla_proto::ServerLine::Msg { from, text } = parse_server_line(line) {
            assert_eq!(from, "ana");
            assert_eq!(text, &*cleaned);
        } else if !cleaned.is_empty() {
            panic!("MSG line did not parse back: {line:?}");
        }
    }
});
