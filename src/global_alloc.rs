//! mimalloc as the global allocator of fencelab's own binaries: the `fencelab` command, the
//! bench and the test suites, each of which declares this file as a module (`mod
//! global_alloc;` in `src/main.rs`, `#[path = "../src/global_alloc.rs"] mod global_alloc;` in
//! `benches/` and `sims/`).
//!
//! Not a module of the library, on purpose: a program has one global allocator, so a library
//! that sets it decides for every program that depends on it, and two libraries that both
//! set one do not link. Programs that use fencelab as a library pick their own.
//!
//! Why mimalloc here: every simulated run allocates for each message, task and timer, and
//! glibc's malloc took about a quarter of a run's instructions; mimalloc made the sweep about
//! 15% faster (docs/performance.md). The `mimalloc` feature (default) switches it on; build
//! with `--no-default-features` for the system allocator.

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
