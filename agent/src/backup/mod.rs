//! What base backups of every database kind share: chunk objects written with bounded
//! memory ([`chunks`]) and the schedule `logship run` takes them on ([`schedule`]).

pub mod chunks;
pub mod schedule;

pub use chunks::{CHUNK_BYTES, ChunkError, ChunkWriter, StreamChunks};
