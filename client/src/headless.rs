//! `charla --headless`: lines typed on stdin are sent, events printed as readable lines on stdout.
//! Same network thread, trust rules and words (`words.rs`, in the user's language) as the window.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc;

use charla_proto::{is_room, normalize_fingerprint, parse_client_line, ClientLine, ErrorCode};

use crate::net::{Batch, Command, Event, Network, Target};
use crate::present::{clock, escape_bidi, split_room, Decoder, Shown};
use crate::words::{self, Words};
use crate::Strings;

enum Input {
    Typed(String),
    /// Standard input ended (Ctrl-D or a closed pipe).
    Eof,
    /// Dropped once its events are printed: until then it counts against the network thread's
    /// bound on what it reads ahead.
    Net(Batch),
}

/// The user's own line as the others see it, for a complete transcript: a line of a room
/// other than the default one with `[#room] ` in front.
fn own_words(words: &Strings<'_>, me: &str, line: &str, rooms: &RoomView) -> Option<String> {
    let (room, text) = match parse_client_line(line) {
        ClientLine::Message(text) => (rooms.current.as_deref(), format!("<{me}> {text}")),
        ClientLine::Me(text) => (rooms.current.as_deref(), format!("* {me} {text}")),
        ClientLine::Msg { to, text } if is_room(to) => (Some(to), format!("<{me}> {text}")),
        ClientLine::Action { room, text } => (Some(room), format!("* {me} {text}")),
        ClientLine::Msg { to, text } => {
            return Some(words.invoke_private_to(to.into(), text.into()).into())
        }
        _ => return None,
    };
    Some(rooms.prefix(room) + &text)
}

/// Which room is which, as far as the terminal says it (`--join`, docs/protocol.md "Rooms").
#[derive(Default)]
struct RoomView {
    /// The room every client is in: the first one named after the first registration. Its lines
    /// are printed as a client of one room prints them.
    default: Option<String>,
    /// Where a plain line goes: the room joined last (the server says the same).
    current: Option<String>,
}

impl RoomView {
    fn same(a: &str, b: &str) -> bool {
        charla_proto::room_key(a) == charla_proto::room_key(b)
    }

    /// `[#room] ` for a room other than the default one; nothing for the default room.
    fn prefix(&self, room: Option<&str>) -> String {
        match (room, &self.default) {
            (Some(room), Some(default)) if Self::same(room, default) => String::new(),
            (Some(room), _) => format!("[{room}] "),
            (None, _) => String::new(),
        }
    }

    /// A line of `room` arrived for the user called `me`: the first names the default room; the
    /// user's own joining, leaving and being put out move where its plain lines go.
    fn note(&mut self, room: &str, shown: &Shown, me: &str) {
        if self.default.is_none() {
            self.default = Some(room.to_string());
        }
        match shown {
            Shown::Joined(nick) if nick == me => self.current = Some(room.to_string()),
            Shown::Left { nick, .. } | Shown::Kicked { nick, .. }
                if nick == me && self.current.as_deref().is_some_and(|c| Self::same(c, room)) =>
            {
                self.current = None;
            }
            _ => {}
        }
    }
}

/// An event from the server as the terminal says it; `None`: nothing to say.
fn event_words(words: &Strings<'_>, shown: &Shown) -> Option<String> {
    match shown {
        Shown::History { shown, .. } => {
            let text = event_words(words, shown)?;
            Some(words.invoke_history_line(text.into()).into())
        }
        // The window marks operators in its list of users; here it is said.
        Shown::Operator(nick) => Some(words.invoke_is_operator(nick.into()).into()),
        other => crate::words::shown_words(words, other).map(String::from),
    }
}

/// `lang`: `--lang`, else the system's language; `join`: the rooms to join (`--join`).
pub fn run(
    target: Target,
    accept_fingerprint: Option<String>,
    lang: Option<&str>,
    join: Vec<String>,
) -> ExitCode {
    let words = match Words::new(lang) {
        Ok(words) => words,
        Err(e) => {
            eprintln!("charla: cannot load the words to show: {e}");
            return ExitCode::FAILURE;
        }
    };
    let words = words.strings();
    let (tx, rx) = mpsc::channel();
    let net_tx = tx.clone();
    let network = match Network::start(move |batch| {
        let _ = net_tx.send(Input::Net(batch));
    }) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("charla: cannot start the network thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(Input::Typed(line)).is_err() {
                return;
            }
        }
        let _ = tx.send(Input::Eof);
    });
    network.send(Command::Rooms(join));
    network.send(Command::Connect(target));

    let accept = accept_fingerprint
        .as_deref()
        .and_then(normalize_fingerprint);
    let mut session = Session {
        network: &network,
        words: &words,
        pending: VecDeque::new(),
        registered: false,
        asking_trust: false,
        said: VecDeque::new(),
        input_ended: false,
        leaving: false,
        me: String::new(),
        rooms: RoomView::default(),
    };
    let mut decoder = Decoder::default();
    while let Ok(input) = rx.recv() {
        match input {
            Input::Typed(line) if session.asking_trust => session.trust_answer(&line),
            Input::Typed(line) if session.registered => session.typed(line),
            // Kept until it is known whether the first line answers a trust question.
            Input::Typed(line) => session.pending.push_back(line),
            Input::Eof => {
                session.input_ended = true;
                if session.asking_trust {
                    session.asking_trust = false;
                    say(&format!("* {}", words.invoke_trust_no_answer()));
                    network.send(Command::TrustAnswer(false));
                } else if session.registered {
                    session.leave(None);
                }
            }
            Input::Net(Batch { events, slot }) => {
                for event in events {
                    match event {
                        Event::Connecting { server, attempt } if attempt <= 1 => {
                            say(&format!("* {}", words.invoke_connecting(server.into())))
                        }
                        Event::Connecting { server, attempt } => say(&format!(
                            "* {}",
                            words.invoke_connecting_again(server.into(), attempt as i32)
                        )),
                        Event::NewServer {
                            server,
                            fingerprint,
                        } => match &accept {
                            Some(fp) if *fp == fingerprint => {
                                say(&format!("* {}", words.invoke_trust_given(server.into())));
                                network.send(Command::TrustAnswer(true));
                            }
                            Some(fp) => {
                                say(&format!(
                                    "! {}",
                                    words.invoke_trust_given_differs(
                                        server.into(),
                                        fingerprint.into(),
                                        fp.into()
                                    )
                                ));
                                network.send(Command::TrustAnswer(false));
                            }
                            None => {
                                let question =
                                    words.invoke_trust_question(server.into(), fingerprint.into());
                                say_lines('*', &question);
                                session.asking_trust = true;
                                if let Some(answer) = session.pending.pop_front() {
                                    session.trust_answer(&answer);
                                } else if session.input_ended {
                                    session.asking_trust = false;
                                    say(&format!("* {}", words.invoke_trust_no_answer()));
                                    network.send(Command::TrustAnswer(false));
                                }
                            }
                        },
                        Event::ServerChanged {
                            server,
                            expected,
                            got,
                            known_servers,
                        } => {
                            let warning = words.invoke_server_changed(
                                server.into(),
                                expected.into(),
                                got.into(),
                                known_servers.display().to_string().into(),
                            );
                            say_lines('!', &warning);
                            return ExitCode::FAILURE;
                        }
                        Event::Registered { nick } => {
                            say(&format!(
                                "* {}",
                                words.invoke_connected(nick.as_str().into())
                            ));
                            session.me = nick;
                            session.registered = true;
                            while let Some(line) = session.pending.pop_front() {
                                session.typed(line);
                            }
                            if session.input_ended {
                                session.leave(None);
                            }
                        }
                        Event::Sent(line) => {
                            if let Some(text) =
                                own_words(&words, &session.me, &line, &session.rooms)
                            {
                                say(&format!("[{}] {text}", clock()));
                                let private = matches!(
                                    parse_client_line(&line),
                                    ClientLine::Msg { to, .. } if !is_room(to)
                                );
                                if !private {
                                    session.said_in_public(text);
                                }
                            }
                        }
                        Event::Line(line) => {
                            let (room, line) = split_room(&line);
                            let Some(shown) = decoder.decode(&line) else {
                                continue;
                            };
                            let prefix = match room {
                                Some(room) => {
                                    session.rooms.note(room, &shown, &session.me);
                                    session.rooms.prefix(Some(room))
                                }
                                None => String::new(),
                            };
                            if let Shown::Renamed { old, new } = &shown {
                                if *old == session.me {
                                    session.me = new.clone();
                                }
                            }
                            // A line from the history carries its own time.
                            let at = match &shown {
                                Shown::History { at, .. } => at.clone(),
                                _ => clock(),
                            };
                            if let Some(text) = event_words(&words, &shown) {
                                say(&format!("[{at}] {prefix}{text}"));
                            }
                            if let Shown::Error { code, .. } = &shown {
                                // The server refused the newest of the user's public lines.
                                if code == ErrorCode::Muted.as_str() {
                                    if let Some(own) = session.said.pop_back() {
                                        say(&format!(
                                            "[{at}] {}",
                                            words.invoke_not_sent(own.into())
                                        ));
                                    }
                                }
                            }
                        }
                        Event::Refused { code, text } => {
                            say(&format!("! {}", words::refused_words(&words, code, &text)));
                            return ExitCode::FAILURE;
                        }
                        Event::Lost { problem, retry_in } => say(&format!(
                            "! {}",
                            words.invoke_lost(
                                words::problem_words(&words, &problem),
                                retry_in.as_secs().min(i32::MAX as u64) as i32
                            )
                        )),
                        Event::Failed { problem } => {
                            say(&format!("! {}", words::problem_words(&words, &problem)));
                            return ExitCode::FAILURE;
                        }
                        Event::Closed => return ExitCode::SUCCESS,
                    }
                }
                drop(slot);
            }
        }
    }
    ExitCode::FAILURE
}

/// Text of several lines: the first marked, the others indented under it (a fingerprint on a line
/// of its own stays easy to copy).
fn say_lines(mark: char, text: &str) {
    for (i, line) in text.lines().enumerate() {
        if i == 0 {
            say(&format!("{mark} {line}"));
        } else {
            say(&format!("  {line}"));
        }
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    // A terminal would let bidi controls in a message reorder the rest of the line.
    let _ = writeln!(out, "{}", escape_bidi(text));
    let _ = out.flush();
}

/// What the user typed, and what is left to do with it.
struct Session<'a> {
    network: &'a Network,
    words: &'a Strings<'a>,
    /// Typed before registration: sent once registered, unless the first one answers a trust
    /// question.
    pending: VecDeque<String>,
    registered: bool,
    asking_trust: bool,
    /// The user's last public lines as printed, newest last: one the server refuses (muted) is
    /// said again as not sent.
    said: VecDeque<String>,
    input_ended: bool,
    /// `/quit` was given: later input is not sent.
    leaving: bool,
    me: String,
    rooms: RoomView,
}

impl Session<'_> {
    fn trust_answer(&mut self, line: &str) {
        self.asking_trust = false;
        // A no is said by the network thread's answer (not trusted: not connected).
        let yes = matches!(
            line.trim().to_lowercase().as_str(),
            "yes" | "y" | "sí" | "si" | "s"
        );
        self.network.send(Command::TrustAnswer(yes));
    }

    fn said_in_public(&mut self, text: String) {
        // A refusal comes one round trip after its line: only the last few can be refused.
        if self.said.len() == 32 {
            self.said.pop_front();
        }
        self.said.push_back(text);
    }

    fn typed(&mut self, line: String) {
        if self.leaving {
            return;
        }
        match parse_client_line(&line) {
            ClientLine::Quit(reason) => self.leave(reason.map(String::from)),
            // The client's own list, in the user's language; the server's is in English.
            ClientLine::Help => {
                say_lines('*', &self.words.invoke_help());
                say_lines('*', &self.words.invoke_help_rooms());
            }
            _ => self.network.send(Command::Send(line)),
        }
    }

    fn leave(&mut self, reason: Option<String>) {
        if !self.leaving {
            self.leaving = true;
            self.network.send(Command::Quit(reason));
        }
    }
}
