//! How the client shows text from others (present.rs): the first web address of a line, bidi
//! isolation and the terminal's escaping, nickname colours. Never panics; an address found is a
//! part of the text that starts with http(s):// and holds no space, control or bidi character;
//! an isolated text opens as many isolates as it closes; escaped text has no bidi control left.
#![no_main]

#[path = "../../client/src/present.rs"]
#[allow(dead_code)]
mod present;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(link) = present::first_link(text) {
        assert!(text.contains(link));
        assert!(link.starts_with("http://") || link.starts_with("https://"));
        assert!(!link
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || present::is_bidi_control(c)));
    }
    let isolated = present::isolate(text);
    let opened = isolated
        .chars()
        .filter(|c| ('\u{2066}'..='\u{2068}').contains(c))
        .count();
    let closed = isolated.chars().filter(|&c| c == '\u{2069}').count();
    assert_eq!(opened, closed, "{isolated:?}");
    assert!(!present::escape_bidi(text)
        .chars()
        .any(present::is_bidi_control));
    let colour = present::nick_color(text);
    assert!((0..present::NICK_COLORS as i32).contains(&colour));
});
