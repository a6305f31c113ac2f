//! The process's limit on open files, which bounds how many clients fit.

use crate::log::log_warning;

/// Descriptors the server needs besides its clients' (listener, epoll, log, libraries), and
/// those of the connections accepted past --max-clients to be told `ERROR server-full`.
const OTHER_DESCRIPTORS: usize = 100 + 64;

/// Each client is a descriptor; the usual soft limit of 1024 would cap the chat long before
/// --max-clients, so raise it as far as the hard limit allows. Returns how many clients fit: when
/// fewer than asked, the limit is lowered to that (said once here), so that the extra clients are
/// told `ERROR server-full` instead of waiting in the backlog until their handshake times out.
pub fn raise_limit(max_clients: usize) -> usize {
    let wanted = (max_clients + OTHER_DESCRIPTORS) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    let allowed = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return max_clients;
        }
        if lim.rlim_cur >= wanted {
            return max_clients;
        }
        let target = wanted.min(lim.rlim_max);
        let old = lim.rlim_cur;
        lim.rlim_cur = target;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
            target
        } else {
            old
        }
    };
    if allowed >= wanted {
        return max_clients;
    }
    let fit = (allowed as usize).saturating_sub(OTHER_DESCRIPTORS).max(1);
    log_warning!(
        "limit: only {allowed} file descriptors allowed (ulimit -n): --max-clients lowered from {max_clients} to {fit}"
    );
    fit
}
