//! Gives the memory the heap has freed back to the system.
//!
//! glibc keeps what a program frees for its next allocations: after the window's start or a
//! burst of lines, close to a megabyte stays resident though nothing uses it (docs/benchmarks.md,
//! "The code the window runs, together").
//! `malloc_trim` hands those pages back; it costs a walk of the free lists, a fraction of a
//! millisecond, so it runs only once the window has gone quiet.

/// Returns the heap's free pages to the system (glibc; elsewhere the allocator does its own).
pub fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers; it only walks glibc's own free lists, under their
    // locks, and may be called from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
