//! The window as Slint's software renderer draws it (no display): the system's fonts, real text
//! layout, real pixels. Each test runs on its own thread with its own testing backend.

use std::rc::Rc;

use charla::config::Settings;
use charla::gui::{self, UiEvent};
use charla::net::Event;
use charla::present::Shown;
use charla::AppWindow;
use i_slint_backend_testing::{ElementHandle, ElementQuery, TestingBackend, TestingBackendOptions};
use slint::ComponentHandle;

fn window() -> AppWindow {
    thread_local! {
        static PLATFORM: () = slint::platform::set_platform(Box::new(TestingBackend::new(
            TestingBackendOptions {
                mock_time: true,
                threading: false,
                renderer_name: Some("software".into()),
            },
        )))
        .expect("a fresh test thread");
    }
    PLATFORM.with(|_| {});
    let app = AppWindow::new().unwrap();
    slint::select_bundled_translation("en").unwrap();
    let dir = std::env::temp_dir().join(format!(
        "charla-render-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    gui::bind(&app, &Settings::default(), dir, None, Rc::new(|_| {}));
    app.window().set_size(slint::LogicalSize::new(760.0, 520.0));
    app.show().unwrap();
    gui::apply(&app, UiEvent::Net(Event::Registered { nick: "ana".into() }));
    app
}

/// Draws frames and runs the window's change handlers, as the event loop does between events,
/// until a frame changes nothing more.
fn settle(app: &AppWindow) -> slint::SharedPixelBuffer<slint::Rgba8Pixel> {
    let mut last = app.window().take_snapshot().unwrap();
    for _ in 0..20 {
        slint::platform::update_timers_and_animations();
        let next = app.window().take_snapshot().unwrap();
        if next.as_bytes() == last.as_bytes() {
            return next;
        }
        last = next;
    }
    panic!("the window kept changing")
}

/// The log row whose text (after the nickname) is exactly `text`.
fn row(app: &AppWindow, text: &str) -> Option<ElementHandle> {
    let text = text.to_string();
    ElementQuery::from_root(app)
        .match_descendants()
        .match_predicate(move |e| e.accessible_value().as_deref() == Some(text.as_str()))
        .find_first()
}

fn conversation(app: &AppWindow) -> ElementHandle {
    ElementHandle::find_by_accessible_label(app, "Conversation")
        .next()
        .unwrap()
}

/// Pixels inside `element` that differ from the colour of its top-left corner.
fn ink(picture: &slint::SharedPixelBuffer<slint::Rgba8Pixel>, element: &ElementHandle) -> usize {
    let (pos, size) = (element.absolute_position(), element.size());
    let scale = picture.width() as f32 / 760.0;
    let x0 = (pos.x * scale) as u32;
    let y0 = (pos.y * scale) as u32;
    let x1 = (((pos.x + size.width) * scale) as u32).min(picture.width());
    let y1 = (((pos.y + size.height) * scale) as u32).min(picture.height());
    let pixels = picture.as_slice();
    let at = |x: u32, y: u32| pixels[(y * picture.width() + x) as usize];
    let background = at(x0, y0);
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| at(x, y) != background)
        .count()
}

fn message(app: &AppWindow, from: &str, text: &str) {
    gui::apply(
        app,
        UiEvent::Shown(Shown::Message {
            from: from.into(),
            text: text.into(),
        }),
    );
}

#[test]
fn while_following_the_newest_line_is_always_fully_visible() {
    let app = window();
    let view = conversation(&app);
    for burst in 0..6 {
        // Bursts of many lines at once, some of them wrapping over several rows.
        let line = |i: usize| {
            let long = if i % 7 == 3 {
                " palabra".repeat(30)
            } else {
                String::new()
            };
            format!("ráfaga {burst} línea {i}{long}")
        };
        for i in 0..400 {
            message(&app, "bob", &line(i));
        }
        settle(&app);
        let last = row(&app, &line(399)).unwrap_or_else(|| {
            let shown: Vec<_> = ElementQuery::from_root(&app)
                .match_descendants()
                .find_all()
                .iter()
                .filter_map(|e| e.accessible_value())
                .collect();
            panic!("the newest line is not laid out; shown: {shown:?}")
        });
        let (top, bottom) = (
            last.absolute_position().y,
            last.absolute_position().y + last.size().height,
        );
        let view_top = view.absolute_position().y;
        let view_bottom = view_top + view.size().height;
        assert!(
            top >= view_top && bottom <= view_bottom + 0.5,
            "burst {burst}: the newest line spans {top}..{bottom}, the log {view_top}..{view_bottom}"
        );
    }
}

#[test]
fn emoji_and_characters_without_a_font_are_drawn() {
    // Each is compared with the same row without it: something must be drawn in its place.
    let cases = [
        ("emoji", "👋👋👋👋"),
        ("no font has it", "\u{50000}\u{50000}\u{50000}"),
    ];
    for (what, text) in cases {
        let app = window();
        message(&app, "bob", "x");
        message(&app, "eva", &format!("x{text}"));
        let picture = settle(&app);
        let plain = ink(&picture, &row(&app, "x").unwrap());
        let shown = gui_text(&app, "x", text);
        let with = ink(&picture, &shown);
        assert!(
            with > plain + 20,
            "{what}: {with} pixels drawn with it, {plain} without"
        );
    }
}

/// The row of `prefix` followed by `text` as the window shows it (missing glyphs replaced).
fn gui_text(app: &AppWindow, prefix: &str, text: &str) -> ElementHandle {
    let shown = format!("{prefix}{}", charla::glyphs::visible(text));
    row(app, &shown).unwrap_or_else(|| panic!("no row {shown:?}"))
}

#[test]
fn a_word_longer_than_the_log_is_wide_wraps_anywhere() {
    let app = window();
    let word = "a".repeat(300);
    message(&app, "bob", "corto");
    message(&app, "bob", &word);
    settle(&app);
    let view = conversation(&app);
    let short = row(&app, "corto").unwrap();
    let long = row(&app, &word).unwrap();
    // Clear of the vertical scroll bar, 14 px wide over the log's right edge.
    let right = long.absolute_position().x + long.size().width;
    let bar = view.absolute_position().x + view.size().width - 14.0;
    assert!(
        right <= bar,
        "the text ends at {right}, the scroll bar starts at {bar}"
    );
    assert!(
        long.size().height >= 3.0 * short.size().height,
        "wrapped over several lines: {} high, one line is {}",
        long.size().height,
        short.size().height
    );
}

/// The average brightness (0–255) of the window's pixels.
fn brightness(picture: &slint::SharedPixelBuffer<slint::Rgba8Pixel>) -> u32 {
    let pixels = picture.as_slice();
    let sum: u64 = pixels
        .iter()
        .map(|p| (u64::from(p.r) + u64::from(p.g) + u64::from(p.b)) / 3)
        .sum();
    (sum / pixels.len() as u64) as u32
}

#[test]
fn the_dark_theme_is_dark_and_the_light_one_light() {
    let app = window();
    message(&app, "bob", "hola");
    app.invoke_choose_theme("dark".into());
    let dark = brightness(&settle(&app));
    app.invoke_choose_theme("light".into());
    let light = brightness(&settle(&app));
    assert!(dark < 80, "dark theme, average brightness {dark}");
    assert!(light > 180, "light theme, average brightness {light}");
}

#[test]
fn a_bigger_text_size_draws_bigger_lines() {
    let app = window();
    message(&app, "bob", "hola");
    settle(&app);
    let height = |app: &AppWindow| gui_text(app, "", "hola").size().height;
    let normal = height(&app);
    app.invoke_zoom(1);
    app.invoke_zoom(1);
    app.invoke_zoom(1);
    settle(&app);
    let bigger = height(&app);
    assert!(bigger > normal * 1.3, "{normal} → {bigger} at 1.5");
}
