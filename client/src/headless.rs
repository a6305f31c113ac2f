//! `charla --headless`: lines typed on stdin are sent, events printed as readable lines on stdout.
//! Same network thread and trust rules as the window.

use std::collections::VecDeque;
use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc;

use charla_proto::{leave_reason, normalize_fingerprint, parse_client_line, ClientLine, Presence};

use crate::net::{Batch, Command, Event, Network, OsError, Problem, Target};
use crate::present::{clock, escape_bidi, BanShown, Decoder, ModerationNotice, Shown};

enum Input {
    Typed(String),
    /// Standard input ended (Ctrl-D or a closed pipe).
    Eof,
    /// Dropped once its events are printed: until then it counts against the network thread's
    /// bound on what it reads ahead.
    Net(Batch),
}

/// One event as a line of text (English; the window has the translations).
pub fn describe(shown: &Shown) -> String {
    match shown {
        Shown::Message { from, text } => format!("<{from}> {text}"),
        Shown::Action { from, text } => format!("* {from} {text}"),
        Shown::Private { from, text } => format!("[private] <{from}> {text}"),
        Shown::Joined(nick) => format!("[+] User {nick} has joined the chat"),
        Shown::Left { nick, why, text } => match (why.as_str(), text) {
            (leave_reason::QUIT, Some(reason)) => {
                format!("[!] User {nick} has left the chat (\"{reason}\")")
            }
            (leave_reason::QUIT, None) => format!("[!] User {nick} has left the chat"),
            (why, _) => format!("[!] User {nick} has left the chat ({})", leave_words(why)),
        },
        Shown::Renamed { old, new } => format!("{old} is now known as {new}"),
        Shown::Users(nicks) => format!("Users ({}): {}", nicks.len(), nicks.join(", ")),
        Shown::Pong(Some(token)) => format!("PONG {token}"),
        Shown::Pong(None) => "PONG".to_string(),
        Shown::Notice(text) => format!("Notice: {text}"),
        Shown::Error { code, text } => format!("Error: {text} ({code})"),
        Shown::History { shown, .. } => format!("[history] {}", describe(shown)),
        Shown::Kicked {
            by,
            nick,
            reason: Some(r),
        } => format!("[!] {by} kicked {nick} out of the chat ({r})"),
        Shown::Kicked {
            by,
            nick,
            reason: None,
        } => format!("[!] {by} kicked {nick} out of the chat"),
        Shown::Operator(nick) => format!("{nick} is an operator"),
        Shown::NotOperator(nick) => format!("{nick} is no longer an operator"),
        Shown::Whois {
            nick,
            presence,
            registered,
            operator,
            fingerprint,
            address,
        } => format!(
            "{nick}: {}, {}{}, {}{}",
            match presence {
                Presence::Online => "online",
                Presence::Away => "away (connection dropped, place kept)",
                Presence::Offline => "offline",
            },
            if *registered {
                "registered nickname"
            } else {
                "unregistered nickname"
            },
            if *operator { ", operator" } else { "" },
            fingerprint
                .as_deref()
                .map_or("no identity".into(), |fp| format!("identity {fp}")),
            address
                .as_deref()
                .map_or(String::new(), |a| format!(", address {a}"))
        ),
        Shown::Moderation(said) => describe_moderation(said),
        Shown::Other(line) => line.clone(),
    }
}

/// The server's own words for why someone left.
fn leave_words(why: &str) -> &str {
    match why {
        leave_reason::CONNECTION_CLOSED => "connection closed",
        leave_reason::CONNECTION_LOST => "connection lost",
        leave_reason::TOO_SLOW => "too slow",
        leave_reason::TIMEOUT => "took too long",
        leave_reason::SHUTTING_DOWN => "server shutting down",
        other => other,
    }
}

fn describe_moderation(said: &ModerationNotice) -> String {
    let target = |ban: &BanShown| {
        let who = match &ban.nick {
            Some(nick) => format!("{} {} ({nick})", ban.kind, ban.value),
            None => format!("{} {}", ban.kind, ban.value),
        };
        let until = ban
            .until
            .as_deref()
            .map_or("until lifted".to_string(), |t| format!("until {t}"));
        format!("{who} {until}")
    };
    match said {
        ModerationNotice::Registered {
            nick,
            expires_days: 0,
        } => {
            format!("{nick} is now registered to your identity")
        }
        ModerationNotice::Registered { nick, expires_days } => format!(
            "{nick} is now registered to your identity (freed after {expires_days} days unused)"
        ),
        ModerationNotice::Unregistered(nick) => format!("{nick} is no longer registered"),
        ModerationNotice::Banned { ban, closed } => {
            format!("Banned: {}; {closed} connections closed", target(ban))
        }
        ModerationNotice::BanList { total, page, pages } if *pages > 1 => {
            format!("Bans in force: {total} (page {page} of {pages})")
        }
        ModerationNotice::BanList { total, .. } => format!("Bans in force: {total}"),
        ModerationNotice::Ban { ban, by, reason } => match reason {
            Some(reason) => format!("Ban: {}, by {by} ({reason})", target(ban)),
            None => format!("Ban: {}, by {by}", target(ban)),
        },
        ModerationNotice::Unbanned(count) => format!("Bans lifted: {count}"),
        ModerationNotice::Muted {
            nick,
            minutes: Some(m),
        } => format!("{nick} is muted for {m} minutes"),
        ModerationNotice::Muted {
            nick,
            minutes: None,
        } => format!("{nick} is muted until unmuted"),
        ModerationNotice::Unmuted(nick) => format!("{nick} may speak again"),
    }
}

/// A connection problem as a line of text.
pub fn describe_problem(problem: &Problem) -> String {
    match problem {
        Problem::UnknownHost { host, detail } if detail.is_empty() => {
            format!("cannot find a server named {host}: check the name")
        }
        Problem::UnknownHost { host, detail } => {
            format!("cannot find a server named {host}: check the name ({detail})")
        }
        Problem::Unreachable { server, tries } => {
            let tried: Vec<String> = tries
                .iter()
                .map(|(addr, error)| format!("{addr}: {}", describe_os_error(error)))
                .collect();
            format!("cannot connect to {server} ({})", tried.join("; "))
        }
        Problem::CertificateRejected { server, ca, detail } => format!(
            "the certificate of {server} does not verify against {} ({detail}): not connecting",
            ca.display()
        ),
        Problem::TlsFailed { server, detail } => {
            format!("no secure connection with {server} ({detail})")
        }
        Problem::NoCertificate { server } => format!("{server} showed no certificate"),
        Problem::CaUnreadable { path, error } => format!(
            "cannot read the certificate file {} ({})",
            path.display(),
            describe_os_error(error)
        ),
        Problem::CaInvalid { path } => format!(
            "{} is not a certificate file (PEM, like certs/server-cert.pem)",
            path.display()
        ),
        Problem::KnownServers { path, error } => format!(
            "cannot use the trusted servers file {} ({})",
            path.display(),
            describe_os_error(error)
        ),
        Problem::NotTrusted { server } => format!("{server} was not trusted: not connected"),
        Problem::Busy { code, text } => {
            format!("the server is busy ({}): {text}", code.as_str())
        }
        Problem::ServerClosed => "the server closed the connection".into(),
        Problem::NoAnswer { server } => format!("{server} did not answer in time"),
        Problem::Broken(error) => format!("connection broken ({})", describe_os_error(error)),
        Problem::Internal(text) => text.clone(),
    }
}

pub fn describe_os_error(error: &OsError) -> String {
    match error {
        OsError::Refused => "refused: no server is listening there".into(),
        OsError::TimedOut => "no answer".into(),
        OsError::Reset => "the connection was cut".into(),
        OsError::Unreachable => "the network cannot reach it".into(),
        OsError::NotFound => "no such file".into(),
        OsError::PermissionDenied => "permission denied".into(),
        OsError::Other(text) => text.clone(),
    }
}

/// The user's own line as the others see it, for a complete transcript.
fn describe_own(me: &str, line: &str) -> Option<String> {
    match parse_client_line(line) {
        ClientLine::Message(text) => Some(format!("<{me}> {text}")),
        ClientLine::Me(text) => Some(format!("* {me} {text}")),
        ClientLine::Msg { to, text } => Some(format!("[private to {to}] <{me}> {text}")),
        _ => None,
    }
}

/// `/quit [reason]` typed (in any case, as the server takes it): the reason, if any.
fn quit_reason(line: &str) -> Option<Option<String>> {
    match parse_client_line(line) {
        ClientLine::Quit(reason) => Some(reason.map(String::from)),
        _ => None,
    }
}

pub fn run(target: Target, accept_fingerprint: Option<String>) -> ExitCode {
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
    network.send(Command::Connect(target));

    let accept = accept_fingerprint
        .as_deref()
        .and_then(normalize_fingerprint);
    let mut session = Session {
        network: &network,
        pending: VecDeque::new(),
        registered: false,
        asking_trust: false,
        input_ended: false,
        leaving: false,
        me: String::new(),
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
                    say("* no answer (end of input): not trusted");
                    session.asking_trust = false;
                    network.send(Command::TrustAnswer(false));
                } else if session.registered {
                    session.leave(None);
                }
            }
            Input::Net(Batch { events, slot }) => {
                for event in events {
                    match event {
                        Event::Connecting { server, attempt } if attempt <= 1 => {
                            say(&format!("* connecting to {server}"))
                        }
                        Event::Connecting { server, attempt } => {
                            say(&format!("* connecting to {server} (attempt {attempt})"))
                        }
                        Event::NewServer {
                            server,
                            fingerprint,
                        } => match &accept {
                            Some(fp) if *fp == fingerprint => {
                                say(&format!("* trusting {server}: its fingerprint is the one given with --accept-fingerprint"));
                                network.send(Command::TrustAnswer(true));
                            }
                            Some(fp) => {
                                say(&format!("! {server} shows fingerprint {fingerprint}, not the {fp} given with --accept-fingerprint: not connecting"));
                                network.send(Command::TrustAnswer(false));
                            }
                            None => {
                                say(&format!("* {server} is not known yet. Its certificate's SHA-256 fingerprint is"));
                                say(&format!("  {fingerprint}"));
                                say("  Compare it with the one gen-certs.sh printed on the server. Trust it? (yes/no)");
                                session.asking_trust = true;
                                if let Some(answer) = session.pending.pop_front() {
                                    session.trust_answer(&answer);
                                } else if session.input_ended {
                                    say("* no answer (end of input): not trusted");
                                    session.asking_trust = false;
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
                            say(&format!("! WARNING: {server} shows a DIFFERENT certificate than the one trusted before."));
                            say(&format!("!   trusted: {expected}"));
                            say(&format!("!   now:     {got}"));
                            say("! Someone may be impersonating the server, or it got a new certificate. Not connecting.");
                            say(&format!(
                        "! If the change is expected, remove the line of {server} from {} and connect again.",
                        known_servers.display()
                    ));
                            return ExitCode::FAILURE;
                        }
                        Event::Registered { nick } => {
                            say(&format!("* connected as {nick}"));
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
                            if let Some(text) = describe_own(&session.me, &line) {
                                say(&format!("[{}] {text}", clock()));
                            }
                        }
                        Event::Line(line) => {
                            if let Some(shown) = decoder.decode(&line) {
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
                                say(&format!("[{at}] {}", describe(&shown)));
                            }
                        }
                        Event::Refused { code, text } => {
                            say(&format!("! refused ({}): {text}", code.as_str()));
                            return ExitCode::FAILURE;
                        }
                        Event::Lost { problem, retry_in } => say(&format!(
                            "! {}; reconnecting in {} s",
                            describe_problem(&problem),
                            retry_in.as_secs()
                        )),
                        Event::Failed { problem } => {
                            say(&format!("! {}", describe_problem(&problem)));
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

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    // A terminal would let bidi controls in a message reorder the rest of the line.
    let _ = writeln!(out, "{}", escape_bidi(text));
    let _ = out.flush();
}

/// What the user typed, and what is left to do with it.
struct Session<'a> {
    network: &'a Network,
    /// Typed before registration: sent once registered, unless the first one answers a trust
    /// question.
    pending: VecDeque<String>,
    registered: bool,
    asking_trust: bool,
    input_ended: bool,
    /// `/quit` was given: later input is not sent.
    leaving: bool,
    me: String,
}

impl Session<'_> {
    fn trust_answer(&mut self, line: &str) {
        self.asking_trust = false;
        let yes = matches!(
            line.trim().to_lowercase().as_str(),
            "yes" | "y" | "sí" | "si" | "s"
        );
        if !yes {
            say("* not trusted");
        }
        self.network.send(Command::TrustAnswer(yes));
    }

    fn typed(&mut self, line: String) {
        if self.leaving {
            return;
        }
        match quit_reason(&line) {
            Some(reason) => self.leave(reason),
            None => self.network.send(Command::Send(line)),
        }
    }

    fn leave(&mut self, reason: Option<String>) {
        if !self.leaving {
            self.leaving = true;
            self.network.send(Command::Quit(reason));
        }
    }
}
