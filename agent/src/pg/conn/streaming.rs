//! START_REPLICATION and the CopyBoth stream: WAL and keepalives in, status
//! updates out, and the end of a timeline handled as pg_receivewal does.

use bytes::BytesMut;
use logship_protocol::pg::replication::{
    PrimaryKeepalive, ReplicationMessage, StandbyStatusUpdate, XLogData,
};
use logship_protocol::pg::{Lsn, TimelineId};
use postgres_protocol::message::backend::Message;
use postgres_protocol::message::frontend;

use super::auth;
use super::connection::{ReplicationConnection, row_values};
use super::error::{DbError, During, Kind, PgError};
use super::wire::Backend;

/// What the replication stream delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationEvent {
    /// WAL bytes.
    XLogData(XLogData),
    /// A keepalive; answer it with a status update when `reply_requested` is set.
    Keepalive(PrimaryKeepalive),
    /// The server ended the stream at the end of a timeline: CopyDone exchanged, then the result
    /// set (next tli, next tli's start LSN) and CommandComplete read; the connection is back in
    /// command mode (ready for another START_REPLICATION, as pg_receivewal does).
    EndOfTimeline {
        /// The timeline that follows.
        next_tli: TimelineId,
        /// Where `next_tli` begins.
        next_start: Lsn,
    },
    /// The server ended streaming without a timeline switch (e.g. it is shutting down): CommandComplete.
    EndOfStream,
}

/// Where the connection is in the protocol.
pub(super) enum Mode {
    /// Ready for a command.
    Command,
    /// In CopyBoth, streaming WAL.
    Streaming,
    /// The server ended the stream; reading the next timeline's result set up to ReadyForQuery.
    Ending { next: Option<(TimelineId, Lsn)> },
    /// The stream ended or failed and the server will not take more commands.
    Done,
}

impl ReplicationConnection {
    /// START_REPLICATION SLOT … PHYSICAL start TIMELINE tli; enters CopyBoth.
    pub async fn start_replication(
        &mut self,
        slot: &str,
        start: Lsn,
        tli: TimelineId,
    ) -> Result<(), PgError> {
        let sql = format!("START_REPLICATION SLOT \"{slot}\" PHYSICAL {start} TIMELINE {tli}");
        let label = format!("START_REPLICATION SLOT \"{slot}\" {start} TIMELINE {tli}");
        self.check_slot_name(slot, &label)?;
        if !matches!(self.mode, Mode::Command) {
            return Err(self.error(
                &label,
                Kind::Protocol("START_REPLICATION while not in command mode".to_string()),
            ));
        }
        let mut failure = None;
        let result = async {
            frontend::query(&sql, self.wire.out())
                .map_err(|e| Kind::Protocol(format!("cannot encode the command: {e}")))?;
            self.wire.flush().await?;
            loop {
                match self.wire.read().await? {
                    Backend::CopyBothResponse => return Ok(Mode::Streaming),
                    // A start at the very end of a historic timeline gets the next timeline's
                    // result set without any streaming; next_event reads it.
                    Backend::Message(Message::RowDescription(_)) => {
                        return Ok(Mode::Ending { next: None });
                    }
                    Backend::Message(Message::ErrorResponse(body)) => {
                        let db = DbError::parse(&mut body.fields())
                            .map_err(|e| Kind::Protocol(e.to_string()))?;
                        failure = Some(Kind::Server {
                            db: Box::new(db),
                            explain: None,
                        });
                    }
                    // After an error the server is ready for the next command.
                    Backend::Message(Message::ReadyForQuery(_)) if failure.is_some() => {
                        return Ok(Mode::Command);
                    }
                    Backend::Message(Message::NoticeResponse(body)) => auth::log_notice(&body),
                    Backend::Message(Message::ParameterStatus(_)) => {}
                    Backend::Message(_) => {
                        return Err(Kind::Protocol(
                            "unexpected reply to START_REPLICATION".to_string(),
                        ));
                    }
                }
            }
        }
        .await;
        match (failure, result) {
            (None, Ok(mode)) => {
                self.mode = mode;
                Ok(())
            }
            (Some(kind), Ok(mode)) => {
                self.mode = mode;
                Err(self.error(&label, kind))
            }
            // A FATAL error closes the connection right after the ErrorResponse.
            (Some(kind), Err(_)) | (None, Err(kind)) => {
                self.mode = Mode::Done;
                Err(self.error(&label, kind))
            }
        }
    }

    /// The next event from the stream. Cancel-safe: use it in `tokio::select!`.
    pub async fn next_event(&mut self) -> Result<ReplicationEvent, PgError> {
        loop {
            if self.wire.has_unflushed() {
                self.wire.flush().await.map_err(|k| self.stream_error(k))?;
            }
            if let Some(event) = self.try_next_buffered()? {
                return Ok(event);
            }
            if matches!(self.mode, Mode::Command | Mode::Done) {
                return Err(self.stream_error(Kind::Protocol(
                    "next_event called while not streaming".to_string(),
                )));
            }
            self.wire.fill().await.map_err(|k| self.stream_error(k))?;
        }
    }

    /// The next event already buffered, without waiting; for draining a batch.
    pub fn try_next_buffered(&mut self) -> Result<Option<ReplicationEvent>, PgError> {
        // In command mode the buffer belongs to the next command's reply.
        if matches!(self.mode, Mode::Command | Mode::Done) {
            return Ok(None);
        }
        while let Some(message) = self.wire.try_read().map_err(|k| self.stream_error(k))? {
            if let Some(event) = self.handle(message).map_err(|k| {
                self.mode = Mode::Done;
                self.stream_error(k)
            })? {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// Sends a standby status update and flushes it.
    pub async fn send_status(&mut self, update: &StandbyStatusUpdate) -> Result<(), PgError> {
        if !matches!(self.mode, Mode::Streaming) {
            return Err(self.stream_error(Kind::Protocol(
                "status update sent while not streaming".to_string(),
            )));
        }
        let mut body = BytesMut::new();
        update.encode(&mut body);
        frontend::CopyData::new(body.freeze())
            .map_err(|e| self.stream_error(Kind::Protocol(e.to_string())))?
            .write(self.wire.out());
        self.wire.flush().await.map_err(|k| self.stream_error(k))
    }

    /// Advances the protocol state with one message; `Some` when it completes an event.
    fn handle(&mut self, message: Backend) -> Result<Option<ReplicationEvent>, Kind> {
        let Backend::Message(message) = message else {
            return Err(Kind::Protocol("a second CopyBothResponse".to_string()));
        };
        match message {
            Message::NoticeResponse(body) => {
                auth::log_notice(&body);
                return Ok(None);
            }
            Message::ParameterStatus(_) => return Ok(None),
            Message::ErrorResponse(body) => {
                let db = DbError::parse(&mut body.fields())
                    .map_err(|e| Kind::Protocol(e.to_string()))?;
                return Err(Kind::Server {
                    db: Box::new(db),
                    explain: None,
                });
            }
            _ => {}
        }
        match (&mut self.mode, message) {
            (Mode::Streaming, Message::CopyData(body)) => {
                match ReplicationMessage::parse(body.into_bytes()).map_err(Kind::Replication)? {
                    ReplicationMessage::XLogData(data) => {
                        Ok(Some(ReplicationEvent::XLogData(data)))
                    }
                    ReplicationMessage::Keepalive(k) => Ok(Some(ReplicationEvent::Keepalive(k))),
                }
            }
            (Mode::Streaming, Message::CopyDone) => {
                // The server finished the timeline; it sends the next one's start after our CopyDone.
                frontend::copy_done(self.wire.out());
                self.mode = Mode::Ending { next: None };
                Ok(None)
            }
            (Mode::Streaming, Message::CommandComplete(_)) => {
                // A walsender that shuts down ends the COPY this way and then exits.
                self.mode = Mode::Done;
                Ok(Some(ReplicationEvent::EndOfStream))
            }
            (Mode::Ending { .. }, Message::RowDescription(_) | Message::CommandComplete(_)) => {
                Ok(None)
            }
            (Mode::Ending { next }, Message::DataRow(body)) => {
                let row = row_values(&body)?;
                let field = |i: usize| -> Result<String, Kind> {
                    match row.get(i) {
                        Some(Some(v)) => Ok(String::from_utf8_lossy(v).into_owned()),
                        _ => Err(Kind::Protocol(
                            "NULL in the next timeline's result set".into(),
                        )),
                    }
                };
                let (tli_text, start_text) = (field(0)?, field(1)?);
                let tli = tli_text
                    .parse::<u32>()
                    .ok()
                    .and_then(TimelineId::new)
                    .ok_or_else(|| Kind::Protocol(format!("next timeline \"{tli_text}\"")))?;
                let start = start_text
                    .parse::<Lsn>()
                    .map_err(|_| Kind::Protocol(format!("next timeline start \"{start_text}\"")))?;
                *next = Some((tli, start));
                Ok(None)
            }
            (Mode::Ending { next }, Message::ReadyForQuery(_)) => {
                let event = match next.take() {
                    Some((next_tli, next_start)) => ReplicationEvent::EndOfTimeline {
                        next_tli,
                        next_start,
                    },
                    None => ReplicationEvent::EndOfStream,
                };
                self.mode = Mode::Command;
                Ok(Some(event))
            }
            _ => Err(Kind::Protocol(
                "unexpected message in the replication stream".to_string(),
            )),
        }
    }

    fn stream_error(&self, kind: Kind) -> PgError {
        PgError::new(
            During::Stream {
                addr: self.addr.clone(),
            },
            kind,
        )
    }
}
