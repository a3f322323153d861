//! Hands memory the daemon freed back to the system. glibc's allocator keeps
//! freed pages inside its arenas for reuse; after a burst of work they would
//! stay resident, so memory would follow the busiest moment seen rather than
//! what the daemon holds now. The daemon's binary allocates with mimalloc,
//! which returns its own free pages (`allocator` in the binary); glibc's still
//! holds what C code allocates, SQLite's page caches above all.

use std::time::Duration;

/// How often freed memory is handed back.
pub const GIVE_BACK_EVERY: Duration = Duration::from_secs(30);

/// Returns the free pages of every arena to the system (a few milliseconds).
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
