//! The time as the chat core is told it, with each event: the monotonic clock for timeouts and
//! rates, and the wall clock for what people read or what outlives the process (history times,
//! ban and registration expiry). The core never reads a clock itself, so that a unit test can
//! move either.

use std::ops::{Add, AddAssign};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// Both clocks, read now (the reactor, once per pass of the loop).
    pub fn read() -> Now {
        Now {
            at: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The wall clock in whole seconds since the Unix epoch (0 before it).
    pub fn unix(&self) -> u64 {
        unix_seconds_of(self.wall)
    }
}

impl Add<Duration> for Now {
    type Output = Now;

    fn add(self, later: Duration) -> Now {
        Now {
            at: self.at + later,
            wall: self.wall + later,
        }
    }
}

impl AddAssign<Duration> for Now {
    fn add_assign(&mut self, later: Duration) {
        *self = *self + later;
    }
}

fn unix_seconds_of(wall: SystemTime) -> u64 {
    wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The wall clock now, in seconds since the Unix epoch: for the state files, read at start and
/// written by their own thread, outside the core.
pub fn unix_seconds() -> u64 {
    unix_seconds_of(SystemTime::now())
}

/// Whole seconds, rounded up: "try again in 1 s" means that in a second it works.
pub fn seconds_up(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
