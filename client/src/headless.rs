//! `charla --headless`: lines typed on stdin are sent, events printed as readable lines on stdout.
//! Same network thread and trust rules as the window.

use std::io::{BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc;

use charla_proto::normalize_fingerprint;

use crate::net::{Command, Event, Network, Target};
use crate::present::{clock, Decoder, Shown};

enum Input {
    Typed(String),
    /// Standard input ended (Ctrl-D or a closed pipe).
    Eof,
    Net(Event),
}

/// One event as a line of text (English; the window has the translations).
pub fn describe(shown: &Shown) -> String {
    match shown {
        Shown::Message { from, text } => format!("<{from}> {text}"),
        Shown::Action { from, text } => format!("* {from} {text}"),
        Shown::Private { from, text } => format!("[private] <{from}> {text}"),
        Shown::Joined(nick) => format!("[+] User {nick} has joined the chat"),
        Shown::Left {
            nick,
            reason: Some(r),
        } => format!("[!] User {nick} has left the chat ({r})"),
        Shown::Left { nick, reason: None } => format!("[!] User {nick} has left the chat"),
        Shown::Renamed { old, new } => format!("{old} is now known as {new}"),
        Shown::Users(nicks) => format!("Users ({}): {}", nicks.len(), nicks.join(", ")),
        Shown::Pong(Some(token)) => format!("PONG {token}"),
        Shown::Pong(None) => "PONG".to_string(),
        Shown::Notice(text) => format!("Notice: {text}"),
        Shown::Error { code, text } => format!("Error: {text} ({code})"),
        Shown::Other(line) => line.clone(),
    }
}

pub fn run(target: Target, accept_fingerprint: Option<String>) -> ExitCode {
    let (tx, rx) = mpsc::channel();
    let net_tx = tx.clone();
    let network = match Network::start(move |event| {
        let _ = net_tx.send(Input::Net(event));
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
    let mut asking_trust = false;
    let mut decoder = Decoder::default();
    let mut out = std::io::stdout();
    let mut say = |text: &str| {
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    };
    while let Ok(input) = rx.recv() {
        match input {
            Input::Typed(line) if asking_trust => {
                asking_trust = false;
                let yes = matches!(
                    line.trim().to_lowercase().as_str(),
                    "yes" | "y" | "sí" | "si" | "s"
                );
                if !yes {
                    say("* not trusted");
                }
                network.send(Command::TrustAnswer(yes));
            }
            Input::Typed(line) => match line.strip_prefix("/quit") {
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                    let reason = Some(rest.trim())
                        .filter(|r| !r.is_empty())
                        .map(String::from);
                    network.send(Command::Quit(reason));
                }
                _ => network.send(Command::Send(line)),
            },
            Input::Eof => network.send(Command::Quit(None)),
            Input::Net(event) => {
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
                            asking_trust = true;
                        }
                    },
                    Event::ServerChanged {
                        server,
                        expected,
                        got,
                    } => {
                        say(&format!("! WARNING: {server} shows a DIFFERENT certificate than the one trusted before."));
                        say(&format!("!   trusted: {expected}"));
                        say(&format!("!   now:     {got}"));
                        say("! Someone may be impersonating the server, or it got a new certificate. Not connecting.");
                        say("! If the change is expected, remove its line from the known_servers file and connect again.");
                        return ExitCode::FAILURE;
                    }
                    Event::Registered { nick } => say(&format!("* connected as {nick}")),
                    Event::Line(line) => {
                        if let Some(shown) = decoder.decode(&line) {
                            say(&format!("[{}] {}", clock(), describe(&shown)));
                        }
                    }
                    Event::Refused { code, text } => {
                        say(&format!("! refused ({code}): {text}"));
                        return ExitCode::FAILURE;
                    }
                    Event::Lost { reason, retry_in } => say(&format!(
                        "! {reason}; reconnecting in {} s",
                        retry_in.as_secs()
                    )),
                    Event::Failed { reason } => {
                        say(&format!("! {reason}"));
                        return ExitCode::FAILURE;
                    }
                    Event::Closed => return ExitCode::SUCCESS,
                }
            }
        }
    }
    ExitCode::SUCCESS
}
