//! Reading the rows: each table is one part, or several ranges of its integer primary key
//! when it is large; the workers take parts off one queue, biggest first, and write each
//! part's rows as chunks in the LOAD DATA text format (`logship_protocol::mysql::rowfile`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use logship_protocol::mysql::TextValues;
use logship_protocol::mysql::rowfile::{end_row, push_value};
use logship_protocol::mysql::schema::quote_ident;

use super::BackupError;
use super::schema::TablePlan;
use crate::backup::{CHUNK_BYTES, ChunkWriter, StreamChunks};
use crate::mysql::conn::SqlConnection;

/// About how much of a table (as the server estimates it) one primary-key range holds:
/// two chunks, so that a range is worth a worker's time.
const RANGE_BYTES: u64 = 2 * CHUNK_BYTES as u64;

/// The most ranges a table is split into.
const MAX_RANGES: u64 = 256;

/// One part of one table's rows: `key >= from` and `key < to`, each bound when present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Part {
    /// The part's number in the keys.
    pub number: u32,
    /// Index into the table plans.
    pub table: usize,
    pub from: Option<i128>,
    pub to: Option<i128>,
    /// The estimated size, to start with the biggest parts.
    pub estimate: u64,
}

/// Splits the tables into parts: `bounds[t]` is the smallest and largest key of table `t`,
/// read in the snapshot, for the tables worth splitting.
pub(super) fn plan_parts(
    tables: &[TablePlan],
    bounds: &BTreeMap<usize, (i128, i128)>,
) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut number = 0u32;
    let mut push = |table: usize, from, to, estimate| {
        parts.push(Part {
            number,
            table,
            from,
            to,
            estimate,
        });
        number = number.saturating_add(1);
    };
    for (t, table) in tables.iter().enumerate() {
        let Some(&(min, max)) = bounds.get(&t) else {
            push(t, None, None, table.data_length);
            continue;
        };
        let ranges = ranges_for(table.data_length);
        let span = (max - min).saturating_add(1);
        let ranges = ranges.min(u64::try_from(span).unwrap_or(u64::MAX)).max(1);
        let step = span / i128::from(ranges);
        let estimate = table.data_length / ranges;
        let mut from = None;
        for r in 1..ranges {
            let to = min + step * i128::from(r);
            push(t, from, Some(to), estimate);
            from = Some(to);
        }
        push(t, from, None, estimate);
    }
    parts.sort_by(|a, b| b.estimate.cmp(&a.estimate).then(a.number.cmp(&b.number)));
    parts
}

/// How many ranges a table of `data_length` bytes is read in.
pub(super) fn ranges_for(data_length: u64) -> u64 {
    data_length.div_ceil(RANGE_BYTES).clamp(1, MAX_RANGES)
}

/// The query that reads `part` of `table`.
pub(super) fn select(table: &TablePlan, part: &Part) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| {
            let q = quote_ident(c);
            if table.bit_columns.contains(c) {
                format!("CAST({q} AS UNSIGNED)")
            } else {
                q
            }
        })
        .collect();
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        columns.join(", "),
        quote_ident(&table.db),
        quote_ident(&table.name)
    );
    if let Some(key) = &table.integer_key {
        let key = quote_ident(key);
        let mut conditions = Vec::new();
        if let Some(from) = part.from {
            conditions.push(format!("{key} >= {from}"));
        }
        if let Some(to) = part.to {
            conditions.push(format!("{key} < {to}"));
        }
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
    }
    sql
}

/// Rows per part, and the chunks stored for each part.
pub(super) type PartsRead = (BTreeMap<u32, u64>, BTreeMap<u32, StreamChunks>);

/// What one worker read.
pub(super) struct WorkerOutcome {
    pub result: Result<PartsRead, BackupError>,
    /// Every key the worker's writer may have written.
    pub written: Vec<String>,
}

/// Takes parts off `queue` until it is empty, reading each in `conn`'s snapshot.
pub(super) async fn dump(
    mut conn: SqlConnection,
    queue: Arc<Mutex<VecDeque<Part>>>,
    tables: Arc<Vec<TablePlan>>,
    mut writer: ChunkWriter,
) -> WorkerOutcome {
    let result = async {
        let mut rows = BTreeMap::new();
        loop {
            let next = queue.lock().ok().and_then(|mut q| q.pop_front());
            let Some(part) = next else { break };
            let table = tables.get(part.table).ok_or(BackupError::BadReply {
                what: "a part of an unknown table".into(),
            })?;
            let read = dump_part(&mut conn, table, &part, &mut writer).await?;
            tracing::debug!(db = %table.db, table = %table.name, part = part.number, rows = read, "part read");
            rows.insert(part.number, read);
        }
        let chunks = writer.finish().await?;
        Ok((rows, chunks))
    }
    .await;
    let written = writer.abandon().await;
    conn.close().await;
    WorkerOutcome { result, written }
}

/// Reads one part into its stream; returns its row count.
async fn dump_part(
    conn: &mut SqlConnection,
    table: &TablePlan,
    part: &Part,
    writer: &mut ChunkWriter,
) -> Result<u64, BackupError> {
    writer.begin(part.number).await?;
    let sql = select(table, part);
    let mut stream = conn.query_rows(&sql).await?;
    let columns = stream.columns().len();
    if columns != table.columns.len() {
        return Err(BackupError::BadReply {
            what: format!("{sql} returned {columns} columns"),
        });
    }
    let mut line = Vec::with_capacity(4096);
    let mut rows = 0u64;
    while let Some(payload) = stream.next().await? {
        line.clear();
        let mut values = TextValues::new(&payload);
        for i in 0..columns {
            let value = values
                .next()
                .map_err(|e| BackupError::BadReply {
                    what: format!("a row of {sql}: {e}"),
                })?
                .ok_or_else(|| BackupError::BadReply {
                    what: format!("a row of {sql} is short"),
                })?;
            push_value(&mut line, i == 0, value);
        }
        end_row(&mut line);
        writer.write_record(&line).await?;
        rows += 1;
    }
    writer.end().await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(data_length: u64, key: Option<&str>) -> TablePlan {
        TablePlan {
            db: "shop".into(),
            name: "orders".into(),
            columns: vec!["id".into(), "flags".into()],
            bit_columns: vec!["flags".into()],
            integer_key: key.map(Into::into),
            data_length,
        }
    }

    #[test]
    fn large_tables_split_into_key_ranges_covering_every_key() {
        let tables = [table(10, None), table(3 * RANGE_BYTES, Some("id"))];
        let bounds = BTreeMap::from([(1, (1, 300))]);
        let parts = plan_parts(&tables, &bounds);
        let ranges: Vec<(u32, usize, Option<i128>, Option<i128>)> = parts
            .iter()
            .map(|p| (p.number, p.table, p.from, p.to))
            .collect();
        assert_eq!(
            ranges,
            [
                (1, 1, None, Some(101)),
                (2, 1, Some(101), Some(201)),
                (3, 1, Some(201), None),
                (0, 0, None, None),
            ]
        );
        assert_eq!(
            select(&tables[1], &parts[1]),
            "SELECT `id`, CAST(`flags` AS UNSIGNED) FROM `shop`.`orders` WHERE `id` >= 101 AND `id` < 201"
        );
        assert_eq!(
            select(&tables[0], &parts[3]),
            "SELECT `id`, CAST(`flags` AS UNSIGNED) FROM `shop`.`orders`"
        );
    }

    #[test]
    fn a_few_keys_make_a_few_ranges() {
        let tables = [table(100 * RANGE_BYTES, Some("id"))];
        let parts = plan_parts(&tables, &BTreeMap::from([(0, (5, 6))]));
        assert_eq!(parts.len(), 2);
        let one = plan_parts(&tables, &BTreeMap::from([(0, (5, 5))]));
        assert_eq!((one[0].from, one[0].to), (None, None));
        assert_eq!(ranges_for(0), 1);
        assert_eq!(ranges_for(u64::MAX), MAX_RANGES);
    }
}
