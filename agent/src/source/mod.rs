//! Sources: drive a database's replication stream into the archiver.

pub mod postgres;
