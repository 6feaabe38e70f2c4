//! Helpers shared by the WAL reader's test files.

use logship_protocol::pg::walrecord::{WalDecodeError, WalRecord, WalRecordReader};
use logship_protocol::pg::{Lsn, WalSegSize};

/// Everything a reader yields from `bytes` (WAL starting at `start`), fed in
/// pieces of the given sizes (cycled) and drained after each, and how it stopped.
pub fn read(
    start: u64,
    seg: WalSegSize,
    bytes: &[u8],
    chunks: &[usize],
) -> (Vec<WalRecord>, Result<(), WalDecodeError>, WalRecordReader) {
    let mut reader = WalRecordReader::new(Lsn::new(start), seg);
    let mut records = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().cycle();
    loop {
        loop {
            match reader.next_record() {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(err) => return (records, Err(err), reader),
            }
        }
        if rest.is_empty() {
            return (records, Ok(()), reader);
        }
        let n = (*sizes.next().unwrap()).clamp(1, rest.len());
        reader.feed(&rest[..n]);
        rest = &rest[n..];
    }
}
