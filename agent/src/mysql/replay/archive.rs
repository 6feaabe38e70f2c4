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
