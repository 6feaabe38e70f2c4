//! The archived binlog of one server, read back as checked events, one object at a time.
//!
//! [`ServerArchive`] knows the server's files from the catalog and which file follows
//! which; [`FileEvents`] reads one file from a position: its FORMAT_DESCRIPTION first, then
//! the events from the position on. Each event's framing and CRC are checked
//! ([`BinlogReader`]) before it is handed out, and a failure names the object it came from.
//! Memory holds one object (at most a span) and the event being assembled, never a file.

use std::collections::VecDeque;
use std::sync::Arc;

use logship_protocol::archive::key::SourceName;
use logship_protocol::mysql::key::ServerNo;
use logship_protocol::mysql::{
    BinlogError, BinlogFileName, BinlogPos, BinlogReader, Event, EventData, EventDecoder,
    EventType, FormatDescription,
};

use super::error::ReplayError;
use crate::mysql::catalog::{BinlogCatalog, FileObjects};
use crate::mysql::read::{ArchivedFile, FilePart};
use crate::store::Store;

/// The archived files of one server of a source.
///
/// A later failover-aware replay continues with the next server's files where this
/// server's stream ends; everything that picks "the next file" goes through
/// [`ServerArchive::next_file`].
#[derive(Clone)]
pub struct ServerArchive {
    store: Arc<dyn Store>,
    source: SourceName,
    server: ServerNo,
    catalog: Arc<BinlogCatalog>,
}

impl ServerArchive {
    /// The archive of `server` of `source`, as `catalog` lists it.
    pub fn new(
        store: Arc<dyn Store>,
        source: SourceName,
        server: ServerNo,
        catalog: Arc<BinlogCatalog>,
    ) -> ServerArchive {
        ServerArchive {
            store,
            source,
            server,
            catalog,
        }
    }

    /// The server whose files these are.
    pub fn server(&self) -> ServerNo {
        self.server
    }

    /// The objects of `file`, or [`ReplayError::NotArchived`].
    pub fn objects(&self, file: &BinlogFileName) -> Result<&FileObjects, ReplayError> {
        self.catalog
            .file(self.server, file)
            .ok_or_else(|| ReplayError::NotArchived {
                server: self.server,
                file: file.clone(),
            })
    }

    /// The server's first archived file, if any.
    pub fn first_file(&self) -> Option<BinlogFileName> {
        self.catalog
            .files(self.server)
            .next()
            .map(|(name, _)| name.clone())
    }

    /// How many bytes of `file` the archive holds from offset 0.
    pub fn durable_len(&self, file: &BinlogFileName) -> Result<u64, ReplayError> {
        Ok(self.objects(file)?.durable_len().map_or(0, u64::from))
    }

    /// The file the server wrote after `file`; an error when the archive skips it.
    pub fn next_file(&self, file: &BinlogFileName) -> Result<BinlogFileName, ReplayError> {
        let gap = |missing: BinlogFileName| ReplayError::Gap {
            server: self.server,
            after: file.clone(),
            missing,
        };
        let next = file.next().ok_or_else(|| gap(file.clone()))?;
        match self.catalog.file(self.server, &next) {
            Some(_) => Ok(next),
            None => Err(gap(next)),
        }
    }

    /// Checks that `pos` lies within what the archive holds of its file.
    pub fn check_reaches(&self, pos: &BinlogPos) -> Result<(), ReplayError> {
        let durable = self.durable_len(pos.file())?;
        if pos.offset() > durable || pos.offset() < BinlogPos::FIRST_EVENT {
            return Err(ReplayError::BeyondArchive {
                server: self.server,
                file: pos.file().clone(),
                durable,
                wanted: pos.offset(),
            });
        }
        Ok(())
    }

    /// Opens `file` to read its events from offset `from` (4 for the first event).
    pub async fn open(&self, file: &BinlogFileName, from: u64) -> Result<FileEvents, ReplayError> {
        let mut events = FileEvents {
            archive: self.clone(),
            file: file.clone(),
            parts: VecDeque::new(),
            fed: Vec::new(),
            reader: BinlogReader::new(),
            format_description: None,
        };
        events.parts = events.all_parts()?;
        events.read_format_description(from).await?;
        Ok(events)
    }
}

/// The events of one archived file, from a position on.
pub struct FileEvents {
    archive: ServerArchive,
    file: BinlogFileName,
    /// The objects not read yet.
    parts: VecDeque<FilePart>,
    /// The objects fed so far: file offset where each starts, and its key.
    fed: Vec<(u64, String)>,
    reader: BinlogReader,
    format_description: Option<(Event, FormatDescription)>,
}

impl FileEvents {
    /// The file.
    pub fn file(&self) -> &BinlogFileName {
        &self.file
    }

    /// The file's FORMAT_DESCRIPTION, as the file holds it, and what it says.
    pub fn format_description(&self) -> Option<&(Event, FormatDescription)> {
        self.format_description.as_ref()
    }

    /// Reads the FORMAT_DESCRIPTION at offset 4, then positions the reader at `from`.
    async fn read_format_description(&mut self, from: u64) -> Result<(), ReplayError> {
        self.feed_next().await?;
        let first_key = self
            .fed
            .first()
            .map(|(_, key)| key.clone())
            .unwrap_or_default();
        let no_fde = || ReplayError::NoFormatDescription {
            key: first_key.clone(),
        };
        let event = loop {
            match self.reader.next_event() {
                Ok(Some(event)) => break event,
                Ok(None) if !self.parts.is_empty() => {
                    self.feed_next().await?;
                }
                Ok(None) => return Err(no_fde()),
                Err(err) => return Err(self.corrupt(err)),
            }
        };
        let EventData::FormatDescription(format) = event.data().clone() else {
            return Err(no_fde());
        };
        let after_fde = event.end_offset();
        self.format_description = Some((event.clone(), format.clone()));
        if from == after_fde || from == BinlogPos::FIRST_EVENT {
            return Ok(());
        }
        if from < after_fde {
            return Err(ReplayError::NotABoundary {
                file: self.file.clone(),
                pos: from,
                start: event.offset(),
                end: after_fde,
            });
        }
        // Skip to `from`: start again with the object that holds it, which may be the one
        // just read (read again then: simpler than keeping it, and at most one span).
        self.reader = BinlogReader::resume(from, EventDecoder::with_format(format));
        self.fed.clear();
        self.parts = self.all_parts()?;
        while let Some(part) = self.parts.front() {
            let end = part.len.map(|len| u64::from(part.start) + u64::from(len));
            if end.is_some_and(|end| end <= from) {
                self.parts.pop_front();
            } else {
                break;
            }
        }
        if let Some((start, bytes)) = self.feed_next_raw().await? {
            let skip = usize::try_from(from.saturating_sub(start)).unwrap_or(usize::MAX);
            self.reader.feed(bytes.get(skip..).unwrap_or_default());
        }
        Ok(())
    }

    /// Every object of the file, in order.
    fn all_parts(&self) -> Result<VecDeque<FilePart>, ReplayError> {
        let archived = ArchivedFile {
            source: &self.archive.source,
            server: self.archive.server,
            file: &self.file,
            objects: self.archive.objects(&self.file)?,
        };
        Ok(archived.parts()?.into())
    }

    /// Reads the next object and feeds it to the reader.
    async fn feed_next(&mut self) -> Result<(), ReplayError> {
        if let Some((_, bytes)) = self.feed_next_raw().await? {
            self.reader.feed(&bytes);
        }
        Ok(())
    }

    /// Reads the next object (without feeding it) and records its key.
    async fn feed_next_raw(&mut self) -> Result<Option<(u64, Vec<u8>)>, ReplayError> {
        let Some(part) = self.parts.pop_front() else {
            return Ok(None);
        };
        let archived = ArchivedFile {
            source: &self.archive.source,
            server: self.archive.server,
            file: &self.file,
            objects: self.archive.objects(&self.file)?,
        };
        let bytes = archived
            .read_part(self.archive.store.as_ref(), &part)
            .await?;
        let start = u64::from(part.start);
        self.fed.push((start, part.key));
        Ok(Some((start, bytes)))
    }

    /// The next event, checked; `None` at the end of what the archive holds.
    pub async fn next(&mut self) -> Result<Option<Event>, ReplayError> {
        loop {
            match self.reader.next_event() {
                Ok(Some(event)) => {
                    if event.event_type() == EventType::START_ENCRYPTION {
                        return Err(ReplayError::Encrypted {
                            file: self.file.clone(),
                        });
                    }
                    return Ok(Some(event));
                }
                Ok(None) if !self.parts.is_empty() => {
                    // Objects already read are no longer needed for error messages.
                    let keep = self.fed.len().saturating_sub(1);
                    self.fed.drain(..keep);
                    self.feed_next().await?;
                }
                Ok(None) => {
                    return match self.reader.finish() {
                        Ok(()) => Ok(None),
                        Err(err) => Err(self.corrupt(err)),
                    };
                }
                Err(err) => return Err(self.corrupt(err)),
            }
        }
    }

    /// The position after the last event handed out.
    pub fn position(&self) -> u64 {
        self.reader.position()
    }

    /// `err` at its offset, naming the object that holds that offset.
    fn corrupt(&self, err: BinlogError) -> ReplayError {
        let offset = err.offset();
        let key = self
            .fed
            .iter()
            .rev()
            .find(|(start, _)| *start <= offset)
            .or(self.fed.first())
            .map(|(_, key)| key.clone())
            .unwrap_or_default();
        ReplayError::Events { key, source: err }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use logship_protocol::archive::object::{Codec, encode};
    use logship_protocol::archive::pieces::PieceRange;
    use logship_protocol::mysql::key::BinlogKey;

    use super::*;
    use crate::store::fs::FsStore;

    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../protocol/tests/fixtures/mysql-binlogs/mariadb-10.11-binlog.000002"
    );

    /// The fixture stored as pieces cut at `cuts` (inside events too), and its bytes.
    async fn archive_in_pieces(cuts: &[u32]) -> (tempfile::TempDir, ServerArchive, Vec<u8>) {
        let bytes = std::fs::read(FIXTURE).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(FsStore::new(dir.path()).unwrap());
        let source = SourceName::new("main").unwrap();
        let file = BinlogFileName::new("binlog.000002").unwrap();
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(bytes.len() as u32);
        for pair in bounds.windows(2) {
            let range = PieceRange::new(pair[0], pair[1]).unwrap();
            let key = BinlogKey::Piece {
                server: ServerNo::FIRST,
                file: file.clone(),
                range,
            }
            .format(&source);
            let content = &bytes[pair[0] as usize..pair[1] as usize];
            store
                .put(&key, Bytes::from(encode(content, Codec::Lz4)))
                .await
                .unwrap();
        }
        let catalog = Arc::new(BinlogCatalog::load(store.as_ref(), &source).await.unwrap());
        let archive = ServerArchive::new(store, source, ServerNo::FIRST, catalog);
        (dir, archive, bytes)
    }

    async fn offsets(events: &mut FileEvents) -> Vec<u64> {
        let mut out = Vec::new();
        while let Some(event) = events.next().await.unwrap() {
            out.push(event.offset());
        }
        out
    }

    #[tokio::test]
    async fn reads_every_event_across_piece_boundaries_and_from_a_position() {
        let (_dir, archive, bytes) = archive_in_pieces(&[100, 700, 701, 1500]).await;
        let all = BinlogReader::read_all(&bytes).unwrap();
        let file = BinlogFileName::new("binlog.000002").unwrap();
        let mut from_start = archive.open(&file, 4).await.unwrap();
        let (fde, _) = from_start.format_description().unwrap().clone();
        assert_eq!(fde.raw(), all[0].raw());
        let expected: Vec<u64> = all[1..].iter().map(Event::offset).collect();
        assert_eq!(offsets(&mut from_start).await, expected);
        // From each event boundary past the FORMAT_DESCRIPTION: the events from there on.
        for (i, event) in all.iter().enumerate().skip(1) {
            let mut events = archive.open(&file, event.offset()).await.unwrap();
            assert_eq!(
                offsets(&mut events).await,
                expected[i - 1..],
                "from {}",
                event.offset()
            );
        }
        // From inside an event: its bytes do not frame as one, and reading says so.
        let mut inside = archive.open(&file, all[2].offset() + 1).await.unwrap();
        let err = inside.next().await.unwrap_err();
        assert!(matches!(err, ReplayError::Events { .. }), "{err}");
        // From inside the FORMAT_DESCRIPTION: refused.
        let Err(err) = archive.open(&file, 10).await else {
            panic!("a position inside the FORMAT_DESCRIPTION was accepted");
        };
        assert!(matches!(err, ReplayError::NotABoundary { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_damaged_piece_is_named() {
        let (dir, archive, _) = archive_in_pieces(&[700]).await;
        let key = "main/binlog/00000001/binlog.000002.partial.000002BC-0000077F";
        let path = dir.path().join(key);
        let mut stored = std::fs::read(&path).unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        std::fs::write(&path, stored).unwrap();
        let file = BinlogFileName::new("binlog.000002").unwrap();
        let mut events = archive.open(&file, 4).await.unwrap();
        let err = loop {
            match events.next().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the damaged piece was read"),
                Err(err) => break err,
            }
        };
        assert!(
            err.to_string()
                .starts_with(&format!("object {key} is corrupt: ")),
            "{err}"
        );
    }
}
