//! Harness for logship's integration tests: starts real servers (PostgreSQL,
//! MariaDB, s3s-fs) in temp dirs on free loopback ports, and runs the
//! `logship` binary.
//!
//! Every server is stopped when its handle drops, so a failed test leaves no
//! process behind.

pub mod agent;
pub mod archive;
pub mod binlog;
pub mod mariadb;
pub mod pg;
pub mod restore;
pub mod s3;
pub mod store_conformance;
pub mod util;
