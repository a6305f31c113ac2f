//! What the input line does with keys beyond typing: Up and Down recall the lines sent (as a
//! shell does), Tab completes nicknames (repeated Tab cycles through them, as HexChat does).

/// Most lines remembered for Up.
pub const MAX_RECALLED: usize = 100;

/// The lines the user sent, and where Up/Down have got to.
#[derive(Default)]
pub struct InputHistory {
    sent: Vec<String>,
    /// Which sent line the input shows; `None`: the user's own draft.
    at: Option<usize>,
    /// What was in the input before Up was first pressed.
    draft: String,
}

impl InputHistory {
    /// A line was sent: it is the newest to recall, and browsing starts again from the draft.
    pub fn sent(&mut self, line: &str) {
        if self.sent.last().map(String::as_str) != Some(line) {
            self.sent.push(line.to_string());
            if self.sent.len() > MAX_RECALLED {
                self.sent.remove(0);
            }
        }
        self.at = None;
        self.draft.clear();
    }

    /// Up: the line before the one shown (the newest, from the draft); `None` at the oldest.
    pub fn previous(&mut self, current: &str) -> Option<String> {
        let at = match self.at {
            None if self.sent.is_empty() => return None,
            None => {
                self.draft = current.to_string();
                self.sent.len() - 1
            }
            Some(0) => return None,
            Some(at) => at - 1,
        };
        self.at = Some(at);
        Some(self.sent[at].clone())
    }

    /// Down: the line after the one shown, then the draft again; `None` when on the draft.
    pub fn following(&mut self) -> Option<String> {
        let at = self.at?;
        if at + 1 < self.sent.len() {
            self.at = Some(at + 1);
            Some(self.sent[at + 1].clone())
        } else {
            self.at = None;
            Some(std::mem::take(&mut self.draft))
        }
    }
}

/// Tab completion of the last word of the input against the nicknames in the chat.
#[derive(Default)]
pub struct NickCompleter {
    /// The last completion made, with what it was made from: a Tab on exactly that text goes on
    /// to the next match.
    last: Option<Cycle>,
}

struct Cycle {
    shown: String,
    before: String,
    matches: Vec<String>,
    index: usize,
}

impl NickCompleter {
    /// The input with its last word completed, or the next match if `input` is the previous
    /// completion; `None` if nothing matches. A name at the start of the line gets `": "` after
    /// it (how a chat addresses someone), elsewhere a space.
    pub fn complete<'a>(
        &mut self,
        input: &str,
        nicks: impl Iterator<Item = &'a str>,
    ) -> Option<String> {
        if let Some(cycle) = self.last.as_mut().filter(|c| c.shown == input) {
            cycle.index = (cycle.index + 1) % cycle.matches.len();
            cycle.shown = with_nick(&cycle.before, &cycle.matches[cycle.index]);
            return Some(cycle.shown.clone());
        }
        self.last = None;
        let start = input.rfind(' ').map_or(0, |i| i + 1);
        let (before, word) = input.split_at(start);
        if word.is_empty() {
            return None;
        }
        let word = word.to_lowercase();
        let mut matches: Vec<String> = nicks
            .filter(|n| n.to_lowercase().starts_with(&word))
            .map(String::from)
            .collect();
        if matches.is_empty() {
            return None;
        }
        matches.sort_by_key(|n| n.to_lowercase());
        let shown = with_nick(before, &matches[0]);
        self.last = Some(Cycle {
            shown: shown.clone(),
            before: before.to_string(),
            matches,
            index: 0,
        });
        Some(shown)
    }
}

fn with_nick(before: &str, nick: &str) -> String {
    if before.is_empty() {
        format!("{nick}: ")
    } else {
        format!("{before}{nick} ")
    }
}

/// Whether `text` names `nick` as a word of its own (any case): `ana:`, `@ana`, `¿ana?`, not
/// `banana`.
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let (text, nick) = (text.to_lowercase(), nick.to_lowercase());
    let is_name_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    text.match_indices(&nick).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + nick.len()..].chars().next();
        // A dot right after the name ends a sentence; it is not part of another name.
        let after_ok = match after {
            None => true,
            Some('.') => text[i + nick.len() + 1..]
                .chars()
                .next()
                .is_none_or(|c| !is_name_char(c)),
            Some(c) => !is_name_char(c),
        };
        before.is_none_or(|c| !is_name_char(c)) && after_ok
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_and_down_walk_the_sent_lines_and_come_back_to_the_draft() {
        let mut h = InputHistory::default();
        assert_eq!(h.previous("x"), None);
        h.sent("uno");
        h.sent("dos");
        h.sent("dos");
        assert_eq!(h.previous("borrador").as_deref(), Some("dos"));
        assert_eq!(h.previous("dos").as_deref(), Some("uno"));
        assert_eq!(h.previous("uno"), None, "the oldest stays");
        assert_eq!(h.following().as_deref(), Some("dos"));
        assert_eq!(h.following().as_deref(), Some("borrador"));
        assert_eq!(h.following(), None);
        for i in 0..150 {
            h.sent(&i.to_string());
        }
        let mut oldest = String::new();
        while let Some(line) = h.previous("") {
            oldest = line;
        }
        assert_eq!(oldest, "50", "the last {MAX_RECALLED} are kept");
    }

    #[test]
    fn tab_completes_the_last_word_and_cycles() {
        let nicks = ["ana", "Andrés", "bob", "anabel"];
        let mut c = NickCompleter::default();
        let mut tab = |input: &str| c.complete(input, nicks.iter().copied());
        assert_eq!(tab("an").as_deref(), Some("ana: "));
        assert_eq!(tab("ana: ").as_deref(), Some("anabel: "));
        assert_eq!(tab("anabel: ").as_deref(), Some("Andrés: "));
        assert_eq!(tab("Andrés: ").as_deref(), Some("ana: "));
        assert_eq!(tab("hola B").as_deref(), Some("hola bob "));
        assert_eq!(tab("hola zz"), None);
        assert_eq!(tab("hola "), None);
        assert_eq!(tab(""), None);
    }

    #[test]
    fn a_mention_is_the_name_as_a_word() {
        assert!(mentions("ana: ¿vienes?", "ana"));
        assert!(mentions("hola @ANA", "ana"));
        assert!(mentions("gracias, ana.", "ana"));
        assert!(!mentions("una banana", "ana"));
        assert!(!mentions("ana_b dice", "ana"));
        assert!(!mentions("ana.b dice", "ana"));
        assert!(!mentions("algo", ""));
    }
}
