//! charla-server: a one-thread TLS chat server. See `--help` and docs/protocol.md.

mod address;
mod auth;
mod chat;
mod close;
mod config;
mod conn;
mod deadlines;
mod descriptors;
mod history;
mod journal;
mod log;
mod moderation;
mod outbox;
mod reactor;
mod sessions;
mod state;
mod tls;

use std::io::Write;
use std::process::ExitCode;

use config::Command;
use log::log;

fn main() -> ExitCode {
    let code = run();
    log::finish();
    code
}

fn run() -> ExitCode {
    // The log is written by a thread of its own; what a panic interrupts still goes out.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::finish();
        default_hook(info);
    }));
    // A file-size limit (ulimit -f) reached while writing the history or the state must fail
    // that write, not kill the server.
    // SAFETY: setting a signal's disposition to "ignore".
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let cfg = match config::parse_args(std::env::args_os().skip(1)) {
        Ok(Command::Run(cfg)) => cfg,
        Ok(Command::Help) => {
            print!("{}", config::HELP);
            return ExitCode::SUCCESS;
        }
        Ok(Command::Version) => {
            println!("charla-server {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let prefix = log::error_prefix();
            let _ = writeln!(
                std::io::stderr(),
                "{prefix}charla-server: {e}\n{prefix}Try 'charla-server --help'."
            );
            return ExitCode::from(2);
        }
    };
    let acceptor = match tls::load_acceptor(&cfg) {
        Ok(a) => a,
        Err(e) => return fail(&e),
    };
    let password = match cfg
        .password_file
        .as_deref()
        .map(auth::Password::load)
        .transpose()
    {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let operators = match cfg
        .operators
        .as_deref()
        .map(state::load_operators)
        .transpose()
    {
        Ok(operators) => operators,
        Err(e) => return fail(&e),
    };
    // Opened once the port is ours: a second server started by mistake stops there, before it
    // touches the history file.
    let (history_file, history, history_bytes) =
        (cfg.history_file.clone(), cfg.history, cfg.history_bytes);
    let (state_dir, operators_file) = (cfg.state_dir.clone(), cfg.operators.clone());
    let mut server = match reactor::Server::new(cfg, acceptor, password) {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    let journal = match history_file.as_deref().filter(|_| history > 0) {
        Some(path) => match journal::open(path, history, history_bytes) {
            Ok((journal, entries)) => {
                log!(
                    "history file {}: {} messages kept from before",
                    path.display(),
                    entries.len()
                );
                Some((journal, entries))
            }
            Err(e) => return fail(&e),
        },
        None => None,
    };
    if let Some((journal, entries)) = journal {
        server.restore_history(entries, Box::new(journal));
    }
    let state = match state_dir.as_deref() {
        Some(dir) => match state::StateDir::open(dir) {
            Ok((store, loaded)) => {
                log!(
                    "state directory {}: {} registered nicknames, {} bans",
                    dir.display(),
                    loaded.registrations.len(),
                    loaded.bans.len()
                );
                Some((store, loaded))
            }
            Err(e) => return fail(&e),
        },
        None => {
            log!("registered nicknames and bans are kept in memory only, and lost when the server stops (no --state-dir)");
            None
        }
    };
    let operators = operators.unwrap_or_default();
    match &operators_file {
        Some(path) => log!(
            "{} operator identities listed in {}",
            operators.len(),
            path.display()
        ),
        None => log!("no --operators file: nobody can kick, ban or mute"),
    }
    if let Err(e) = server.set_moderation(operators, state) {
        return fail(&e);
    }
    match server.local_addr() {
        Ok(addr) => log!("listening on {addr}"),
        Err(e) => return fail(&format!("cannot read the listening address: {e}")),
    }
    // From here on nothing the loop does waits for stderr.
    log::start_writer();
    let run = server.run();
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&format!("event loop failed: {e}")),
    }
}

fn fail(message: &str) -> ExitCode {
    log::finish();
    // Not eprintln!, which panics when stderr cannot take the line.
    let _ = writeln!(
        std::io::stderr(),
        "{}charla-server: {message}",
        log::error_prefix()
    );
    ExitCode::FAILURE
}
