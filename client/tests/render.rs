//! The window as Slint's software renderer draws it (no display): the system's fonts, real text
//! layout, real pixels. Each test runs on its own thread with its own testing backend.

use std::rc::Rc;

use charla::config::Settings;
use charla::gui::{self, UiEvent};
use charla::net::Event;
use charla::present::Shown;
use charla::{AppWindow, Dialog};
use i_slint_backend_testing::{ElementHandle, ElementQuery, TestingBackend, TestingBackendOptions};
use slint::ComponentHandle;

fn window() -> Window {
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
    let gui = gui::bind(&app, &Settings::default(), dir, None, Rc::new(|_| {}));
    app.window().set_size(slint::LogicalSize::new(760.0, 520.0));
    app.show().unwrap();
    gui.apply(&app, UiEvent::Net(Event::Registered { nick: "ana".into() }));
    Window { app, gui }
}

/// The window and what the test tells it from outside (as the network would).
struct Window {
    app: AppWindow,
    gui: gui::Gui,
}

impl std::ops::Deref for Window {
    type Target = AppWindow;
    fn deref(&self) -> &AppWindow {
        &self.app
    }
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

fn message(app: &Window, from: &str, text: &str) {
    app.gui.apply(
        &app.app,
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
            let shown: Vec<_> = ElementQuery::from_root(&app.app)
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

/// The element labelled `label` lying wholly inside the window (`width` × `height`), if any.
fn in_view(app: &AppWindow, label: &str, width: f32, height: f32) -> Option<ElementHandle> {
    ElementHandle::find_by_accessible_label(app, label).find(|e| {
        let (pos, size) = (e.absolute_position(), e.size());
        size.height > 0.0
            && pos.x >= -0.5
            && pos.y >= -0.5
            && pos.x + size.width <= width + 0.5
            && pos.y + size.height <= height + 0.5
    })
}

/// Issue 23: in the smallest window (480×360), or with the text twice as large, About lost its
/// title above the window and its Close button below it (only Escape closed it). Every dialog now
/// fits, or scrolls: its title is in view when it opens, and the mouse wheel over it brings its
/// last button into view.
#[test]
fn every_dialog_fits_or_scrolls_in_the_smallest_window() {
    let (width, height) = (480.0, 360.0);
    let fingerprint = "AB:CD:EF:01:23:45:67:89 AB:CD:EF:01:23:45:67:89 \
                       AB:CD:EF:01:23:45:67:89 AB:CD:EF:01:23:45:67:89";
    type Open = fn(&AppWindow, &str);
    let dialogs: [(&str, Open, &str); 8] = [
        ("About", |app, _| app.set_dialog(Dialog::About), "Close"),
        (
            "Trust",
            |app, fp| {
                app.set_trust_server("chat.example.org:12345".into());
                app.set_trust_fingerprint(fp.into());
                app.set_dialog(Dialog::Trust);
            },
            "Cancel",
        ),
        ("Host", |app, _| app.set_dialog(Dialog::Host), "Cancel"),
        (
            "Host info",
            |app, fp| {
                app.set_host_addresses("192.168.1.20, fd00::1234:5678:9abc:def0".into());
                app.set_hosted_port("12345".into());
                app.set_host_fingerprint(fp.into());
                app.set_dialog(Dialog::HostInfo);
            },
            "Close",
        ),
        (
            "Paste",
            |app, _| {
                app.set_paste_count(4);
                app.set_paste_preview("uno\ndos\ntres\ncuatro".into());
                app.set_dialog(Dialog::Paste);
            },
            "Cancel",
        ),
        (
            "Moderate",
            |app, _| {
                app.set_operator(true);
                app.set_moderate_nick("bob".into());
                app.set_moderate_room("#club".into());
                let rooms = ["#club", "#juegos"].map(slint::SharedString::from);
                app.set_invite_rooms(slint::ModelRc::new(slint::VecModel::from(rooms.to_vec())));
                app.set_dialog(Dialog::Moderate);
            },
            "Cancel",
        ),
        (
            "Rooms",
            |app, _| {
                let rooms: Vec<charla::RoomEntry> = (0..12)
                    .map(|n| charla::RoomEntry {
                        name: format!("#sala-{n}").into(),
                        members: n,
                        private: n % 3 == 0,
                        topic: "un tema largo que no cabe entero en una ventana pequeña".into(),
                    })
                    .collect();
                app.set_room_list(slint::ModelRc::new(slint::VecModel::from(rooms)));
                app.set_room_total(12);
                app.set_room_list_more(true);
                app.set_identity("AB:CD".into());
                app.set_rooms_error("not a room name: deberes de mates".into());
                app.set_dialog(Dialog::Rooms);
            },
            "Close",
        ),
        (
            "Topic",
            |app, _| {
                app.set_topic_room("#club".into());
                app.set_dialog(Dialog::Topic);
            },
            "Cancel",
        ),
    ];
    for scale in [1.0, 2.0] {
        for (name, open, last) in dialogs {
            let app = window();
            app.window()
                .set_size(slint::LogicalSize::new(width, height));
            app.set_text_scale(scale);
            open(&app, fingerprint);
            settle(&app);
            let titles = [
                "Charla".to_string(),
                "First connection to chat.example.org:12345".into(),
                "Host a chat on this computer".into(),
                "Your chat is running".into(),
                "Send 4 lines?".into(),
                "Moderate bob".into(),
                "Rooms".into(),
                "Topic of #club".into(),
            ];
            let centre = slint::LogicalPosition::new(width / 2.0, height / 2.0);
            app.window()
                .dispatch_event(slint::platform::WindowEvent::PointerMoved { position: centre });
            // A dialog that gives its last button the keyboard opens scrolled to it.
            scroll_until(
                &app,
                centre,
                40.0,
                &format!("{name} at {scale}×: its title"),
                || {
                    titles
                        .iter()
                        .any(|title| in_view(&app, title, width, height).is_some())
                },
            );
            scroll_until(
                &app,
                centre,
                -40.0,
                &format!("{name} at {scale}×: {last}"),
                || in_view(&app, last, width, height).is_some(),
            );
        }
    }
}

/// From the review of issue 22.11: in a long page of the server's rooms, Up and Down moved the
/// highlight out of sight (the dialog did not scroll with it). The room chosen is in view, at the
/// bottom and back at the top. (Failed before: #sala-29 was below the window.)
#[test]
fn the_room_chosen_with_the_keyboard_is_scrolled_into_view() {
    let (width, height) = (480.0, 360.0);
    let app = window();
    app.window()
        .set_size(slint::LogicalSize::new(width, height));
    let rooms: Vec<charla::RoomEntry> = (0..30)
        .map(|n| charla::RoomEntry {
            name: format!("#sala-{n}").into(),
            members: 2,
            private: false,
            topic: "tema".into(),
        })
        .collect();
    app.set_room_list(slint::ModelRc::new(slint::VecModel::from(rooms)));
    app.set_room_total(30);
    app.set_dialog(Dialog::Rooms);
    settle(&app);
    let key = |key: slint::platform::Key| {
        let text: slint::SharedString = key.into();
        app.window()
            .dispatch_event(slint::platform::WindowEvent::KeyPressed { text: text.clone() });
        app.window()
            .dispatch_event(slint::platform::WindowEvent::KeyReleased { text });
    };
    let row = |n: usize| format!("#sala-{n}, 2 people in it: tema");
    assert!(in_view(&app, &row(29), width, height).is_none());
    for n in 1..30 {
        key(slint::platform::Key::DownArrow);
        settle(&app);
        assert!(
            in_view(&app, &row(n), width, height).is_some(),
            "#sala-{n}, chosen, is out of view"
        );
    }
    for n in (0..29).rev() {
        key(slint::platform::Key::UpArrow);
        settle(&app);
        assert!(
            in_view(&app, &row(n), width, height).is_some(),
            "#sala-{n}, chosen, is out of view"
        );
    }
    assert_eq!(
        ElementHandle::find_by_accessible_label(&app.app, "Rooms of the server")
            .next()
            .unwrap()
            .accessible_value()
            .as_deref(),
        Some("#sala-0")
    );
}

/// Turns the mouse wheel over `at` (`delta` a notch: positive towards the top) until `seen`.
fn scroll_until(
    app: &AppWindow,
    at: slint::LogicalPosition,
    delta: f32,
    what: &str,
    seen: impl Fn() -> bool,
) {
    for _ in 0..40 {
        if seen() {
            return;
        }
        app.window()
            .dispatch_event(slint::platform::WindowEvent::PointerScrolled {
                position: at,
                delta_x: 0.0,
                delta_y: delta,
            });
        settle(app);
    }
    assert!(seen(), "{what} never came into view");
}

/// Issue 23: at a larger text size the times in the log and the user panel's hint stayed small.
#[test]
fn times_and_the_hint_grow_with_the_text() {
    let height_at = |scale: f32| {
        let app = window();
        message(&app, "bob", "hola");
        app.set_text_scale(scale);
        settle(&app);
        let time = slint::Model::row_data(&app.get_log(), 0).unwrap().time;
        let height = |label: &str| {
            ElementHandle::find_by_accessible_label(&app.app, label)
                .next()
                .unwrap_or_else(|| panic!("no {label:?}"))
                .size()
                .height
        };
        (height(&time), height("Click a name to write privately."))
    };
    let (time_1, hint_1) = height_at(1.0);
    let (time_2, hint_2) = height_at(2.0);
    assert!(time_2 >= 1.7 * time_1, "the time: {time_1} → {time_2}");
    assert!(hint_2 >= 1.7 * hint_1, "the hint: {hint_1} → {hint_2}");
}
