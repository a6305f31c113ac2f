//! Several lines pasted at once: asked about first, then sent paced under the server's flood
//! limit.

use std::rc::Rc;

use slint::ComponentHandle;

use super::{close_dialog, UiState};
use crate::glyphs;
use crate::present::contained;
use crate::{AppWindow, Dialog};

/// Pasted lines shown in the question before sending them.
const PASTE_PREVIEW_LINES: usize = 5;
/// Pasted lines sent at once, then one per interval: 4 a second, under the 10 a second (bursts
/// of 20) that servers allow by default (`--flood-rate`).
const PASTE_BURST: usize = 5;
const PASTE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// The lines of a paste worth sending: without line ends, blank ones left out.
pub fn pasted_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

impl UiState {
    /// Ctrl+V with several lines: asks first (returns true: the paste is taken here). One line
    /// is pasted into the input as usual (false).
    pub(super) fn pasted(&self, app: &AppWindow, text: &str) -> bool {
        let lines = pasted_lines(text);
        if lines.len() < 2 {
            return false;
        }
        let preview: Vec<&str> = lines
            .iter()
            .take(PASTE_PREVIEW_LINES)
            .map(String::as_str)
            .collect();
        let mut preview = preview.join("\n");
        if lines.len() > PASTE_PREVIEW_LINES {
            preview.push_str("\n…");
        }
        app.set_paste_count(lines.len() as i32);
        app.set_paste_preview(glyphs::visible(&contained(&preview)).as_ref().into());
        *self.paste_offered.borrow_mut() = lines;
        app.set_dialog(Dialog::Paste);
        true
    }

    /// Send in the paste dialog: the lines go out as messages (a line starting with `/` is not
    /// taken for a command), the first few at once and the rest paced, under the servers'
    /// default flood limit; they wait while the connection is down.
    pub(super) fn send_pasted(self: &Rc<Self>, app: &AppWindow) {
        close_dialog(app, Dialog::Paste);
        let lines = std::mem::take(&mut *self.paste_offered.borrow_mut());
        let mut queue = self.paste_queue.borrow_mut();
        // Addressed now: to the conversation shown when they were pasted.
        queue.extend(lines.into_iter().map(|line| {
            if line.starts_with('/') {
                self.addressed(&format!("/{line}"))
            } else {
                self.addressed(&line)
            }
        }));
        drop(queue);
        for _ in 0..PASTE_BURST {
            if !self.send_next_pasted(app) {
                break;
            }
        }
        if !self.paste_queue.borrow().is_empty() && !self.paste_timer.running() {
            let weak_state = Rc::downgrade(self);
            let weak_app = app.as_weak();
            self.paste_timer
                .start(slint::TimerMode::Repeated, PASTE_INTERVAL, move || {
                    let (Some(state), Some(app)) = (weak_state.upgrade(), weak_app.upgrade())
                    else {
                        return;
                    };
                    state.send_next_pasted(&app);
                    if state.paste_queue.borrow().is_empty() {
                        state.paste_timer.stop();
                    }
                });
        }
    }

    /// One pasted line out, if connected; false when none could go.
    fn send_next_pasted(&self, app: &AppWindow) -> bool {
        if !app.get_online() {
            return false;
        }
        let Some(line) = self.paste_queue.borrow_mut().pop_front() else {
            return false;
        };
        // Shown in its conversation, without pulling the user back to it.
        self.send_text(app, &line, false)
    }
}
