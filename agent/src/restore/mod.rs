//! What a restore of any source kind needs from this machine: [`dir`] checks the
//! directories it writes, creates them and removes them again when it fails; [`sync`]
//! flushes what it wrote to disk. The restore engines themselves are per kind:
//! [`crate::pg::restore`] and [`crate::mysql::restore`].

pub mod dir;
pub mod sync;
