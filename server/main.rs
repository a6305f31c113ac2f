//! charla-server: a one-thread TLS chat server. See `--help` and docs/protocol.md.

mod address;
mod admission;
mod auth;
mod chat;
mod clock;
mod close;
mod config;
mod conn;
mod deadlines;
mod descriptors;
mod history;
mod journal;
mod lockfile;
mod log;
mod moderation;
mod nicknames;
mod outbox;
mod reactor;
mod rooms;
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
    // SAFETY: the descriptor was checked to be open when the flag was read, and is ours from
    // here on (its line is written once, then it is closed).
    let mut ready = cfg
        .ready_fd
        .map(|fd| unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    match serve(cfg, &mut ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Some(mut ready) = ready.take() {
                // One write: whoever waits may read as soon as anything comes.
                let line = format!("{} {} {}\n", charla_proto::ready::ERROR, e.code, e.message);
                let _ = ready.write_all(line.as_bytes());
            }
            fail(&e.message)
        }
    }
}

/// Why the server could not start (or its loop failed), with the code its readiness line gives.
pub struct StartError {
    pub code: &'static str,
    pub message: String,
}

impl From<String> for StartError {
    fn from(message: String) -> Self {
        StartError {
            code: charla_proto::ready::code::CANNOT_START,
            message,
        }
    }
}

/// Everything from the certificate to the end of the event loop.
fn serve(cfg: config::Config, ready: &mut Option<std::fs::File>) -> Result<(), StartError> {
    let acceptor = tls::load_acceptor(&cfg)?;
    let password = cfg
        .password_file
        .as_deref()
        .map(auth::Password::load)
        .transpose()?;
    let operators = cfg
        .operators
        .as_deref()
        .map(state::load_operators)
        .transpose()?;
    // Opened once the port is ours: a second server started by mistake stops there, before it
    // touches the history file.
    let (history_file, history, history_bytes) =
        (cfg.history_file.clone(), cfg.history, cfg.history_bytes);
    let (state_dir, operators_file) = (cfg.state_dir.clone(), cfg.operators.clone());
    let mut server = reactor::Server::new(cfg, acceptor, password)?;
    if let Some(path) = history_file.as_deref().filter(|_| history > 0) {
        let (journal, entries) = journal::open(path, history, history_bytes)?;
        log!(
            "history file {}: {} messages kept from before",
            path.display(),
            entries.len()
        );
        server.restore_history(entries, Box::new(journal));
    }
    let state = match state_dir.as_deref() {
        Some(dir) => {
            let (store, loaded) = state::StateDir::open(dir)?;
            log!(
                "state directory {}: {} registered nicknames, {} bans",
                dir.display(),
                loaded.registrations.len(),
                loaded.bans.len()
            );
            Some((store, loaded))
        }
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
    server.set_moderation(operators, state)?;
    let addr = server
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    log!("listening on {addr}");
    if let Some(mut ready) = ready.take() {
        // One line in one write to a pipe its reader waits on; it is closed right after.
        let line = format!("{} {addr}\n", charla_proto::ready::LISTENING);
        let _ = ready.write_all(line.as_bytes());
    }
    // From here on nothing the loop does waits for stderr.
    log::start_writer();
    server
        .run()
        .map_err(|e| StartError::from(format!("event loop failed: {e}")))
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
