//! The daemon's memory allocator: mimalloc, set to keep its memory near what
//! glibc's malloc held (after a large burst about 10 MiB more stays).
//!
//! With glibc's malloc, allocating and freeing (a message makes hundreds of
//! small, short-lived allocations on several threads) took about a tenth of the
//! daemon's CPU time in the benchmark's burst. mimalloc does the same work in
//! less. Two settings keep its memory near glibc's (README, "mimalloc instead of
//! glibc's malloc"):
//! - it asks for no transparent huge pages itself (the `no_thp` feature): with
//!   them, a mostly empty 2 MiB page counts whole, and idle RSS rose by 40–50%;
//! - it returns freed pages to the system after 100 ms instead of its default
//!   second ([`PURGE_DELAY_MS`]). An operator's `MIMALLOC_PURGE_DELAY` (or its
//!   older name) wins; a value mimalloc cannot read leaves ours.

use libmimalloc_sys::{mi_option_set_default, mi_option_t};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mimalloc.h`, version 3; the Rust
/// binding names no constant for it). A test checks its default to catch a
/// renumbering.
const PURGE_DELAY: mi_option_t = 15;

/// How long freed memory stays with the process before it is returned (ms).
const PURGE_DELAY_MS: i64 = 100;

/// Applies the settings above; call first thing in `main`.
pub fn tune() {
    // SAFETY: sets an option's default by its number (mimalloc keeps a value its
    // environment gave); it reads the option on each purge.
    unsafe { mi_option_set_default(PURGE_DELAY, PURGE_DELAY_MS as _) };
}

/// The purge delay in force (ms).
#[cfg(test)]
fn purge_delay() -> i64 {
    // SAFETY: reads an option by its number.
    unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) as i64 }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Option 15 is the purge delay: mimalloc's (version 3) default for it is a
    /// second, and `tune` sets ours. Run without `MIMALLOC_PURGE_DELAY` set.
    #[test]
    fn the_purge_delay_is_mimallocs_option_15() {
        assert_eq!(purge_delay(), 1000, "option 15 is not the purge delay in this mimalloc");
        tune();
        assert_eq!(purge_delay(), PURGE_DELAY_MS);
    }
}
