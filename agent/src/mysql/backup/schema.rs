//! Reading what the schema script holds, under the schema lock: every user database with
//! its tables, views, triggers, routines and events, then the accounts and their grants;
//! and the plan of each table's rows.

use logship_protocol::mysql::schema::{
    Phase, SchemaScript, quote_ident, quote_string, split_secondary_keys,
};

use super::BackupError;
use crate::mysql::conn::MysqlConnection;

/// Databases of the server itself, never backed up.
const SYSTEM_DATABASES: &str = "'mysql', 'information_schema', 'performance_schema', 'sys'";

/// Accounts every server creates for itself, never backed up.
fn is_builtin_account(user: &str, host: &str) -> bool {
    matches!(
        (user, host),
        ("root", "localhost" | "127.0.0.1" | "::1")
            | (
                "mariadb.sys" | "mysql" | "mysql.sys" | "mysql.session" | "mysql.infoschema",
                "localhost"
            )
            | ("PUBLIC", "")
            | ("", _)
    )
}

/// The integer types a primary key may be split into ranges of.
const INTEGER_TYPES: &[&str] = &["tinyint", "smallint", "mediumint", "int", "bigint"];

/// What the backup reads of one table's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TablePlan {
    pub db: String,
    pub name: String,
    /// The stored columns, in order (generated ones left out).
    pub columns: Vec<String>,
    /// The `BIT` columns among them.
    pub bit_columns: Vec<String>,
    /// The primary key's column, when it is a single integer column.
    pub integer_key: Option<String>,
    /// The server's estimate of the table's size.
    pub data_length: u64,
}

/// The schema script and the tables whose rows to read.
pub(super) async fn read_schema(
    conn: &mut MysqlConnection,
) -> Result<(SchemaScript, Vec<TablePlan>), BackupError> {
    let mut script = SchemaScript::default();
    let mut tables = Vec::new();
    let databases = column(
        conn,
        &format!(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME NOT IN ({SYSTEM_DATABASES}) ORDER BY SCHEMA_NAME"
        ),
    )
    .await?;
    let mut objects = SchemaScript::default();
    for db in &databases {
        let qdb = quote_ident(db);
        let create = field(conn, &format!("SHOW CREATE DATABASE {qdb}"), 1).await?;
        script.push(Phase::Create, create);
        script.push(Phase::Create, format!("USE {qdb}"));
        read_tables(conn, db, &mut script, &mut tables).await?;
        read_objects(conn, db, &mut objects).await?;
    }
    script.statements.extend(objects.statements);
    read_accounts(conn, &mut script).await?;
    Ok((script, tables))
}

/// The base tables of `db`: their CREATE (keys split off) and their row plans.
async fn read_tables(
    conn: &mut MysqlConnection,
    db: &str,
    script: &mut SchemaScript,
    tables: &mut Vec<TablePlan>,
) -> Result<(), BackupError> {
    let qdb = quote_ident(db);
    let rows = conn
        .query(&format!(
            "SELECT TABLE_NAME, TABLE_TYPE, COALESCE(DATA_LENGTH, 0) FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = {} AND TABLE_TYPE IN ('BASE TABLE', 'SEQUENCE') ORDER BY TABLE_NAME",
            quote_string(db)
        ))
        .await?;
    for row in rows {
        let name = text(&row, 0)?.to_owned();
        let qualified = format!("{qdb}.{}", quote_ident(&name));
        let create = field(conn, &format!("SHOW CREATE TABLE {qualified}"), 1).await?;
        if text(&row, 1)? == "SEQUENCE" {
            script.push(Phase::Create, create);
            continue;
        }
        let split = split_secondary_keys(&create);
        script.push(Phase::Create, split.create);
        if !split.keys.is_empty() {
            let adds: Vec<String> = split.keys.iter().map(|k| format!("ADD {k}")).collect();
            script.push(
                Phase::Index,
                format!("ALTER TABLE {qualified} {}", adds.join(", ")),
            );
        }
        let mut plan = TablePlan {
            db: db.to_owned(),
            name: name.clone(),
            columns: Vec::new(),
            bit_columns: Vec::new(),
            integer_key: None,
            data_length: text(&row, 2)?.parse().unwrap_or(0),
        };
        let columns = conn
            .query(&format!(
                "SELECT COLUMN_NAME, DATA_TYPE, EXTRA, COLUMN_KEY FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = {} AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                quote_string(db),
                quote_string(&name)
            ))
            .await?;
        let mut key_columns = Vec::new();
        for column in &columns {
            let (col, data_type, extra) = (text(column, 0)?, text(column, 1)?, text(column, 2)?);
            if extra.to_ascii_uppercase().contains("GENERATED") {
                continue;
            }
            plan.columns.push(col.to_owned());
            if data_type.eq_ignore_ascii_case("bit") {
                plan.bit_columns.push(col.to_owned());
            }
            if text(column, 3)? == "PRI" {
                key_columns.push((col.to_owned(), data_type.to_ascii_lowercase()));
            }
        }
        if let [(col, data_type)] = key_columns.as_slice()
            && INTEGER_TYPES.contains(&data_type.as_str())
        {
            plan.integer_key = Some(col.clone());
        }
        tables.push(plan);
    }
    Ok(())
}

/// The views, triggers, routines and events of `db`, each after the `USE` and `SET` it needs.
async fn read_objects(
    conn: &mut MysqlConnection,
    db: &str,
    objects: &mut SchemaScript,
) -> Result<(), BackupError> {
    let (qdb, sdb) = (quote_ident(db), quote_string(db));
    objects.push(Phase::Object, format!("USE {qdb}"));
    let views = column(
        conn,
        &format!(
            "SELECT TABLE_NAME FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {sdb} \
             ORDER BY TABLE_NAME"
        ),
    )
    .await?;
    for view in views {
        let sql = format!("SHOW CREATE VIEW {qdb}.{}", quote_ident(&view));
        objects.push(Phase::Object, field(conn, &sql, 1).await?);
    }
    let kinds: [(&str, String, usize); 4] = [
        (
            "TRIGGER",
            format!(
                "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = \
                 {sdb} ORDER BY EVENT_OBJECT_TABLE, ACTION_ORDER"
            ),
            2,
        ),
        (
            "PROCEDURE",
            format!(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = \
                 {sdb} AND ROUTINE_TYPE = 'PROCEDURE' ORDER BY ROUTINE_NAME"
            ),
            2,
        ),
        (
            "FUNCTION",
            format!(
                "SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = \
                 {sdb} AND ROUTINE_TYPE = 'FUNCTION' ORDER BY ROUTINE_NAME"
            ),
            2,
        ),
        (
            "EVENT",
            format!(
                "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {sdb} \
                 ORDER BY EVENT_NAME"
            ),
            3,
        ),
    ];
    for (kind, list, create_at) in kinds {
        for name in column(conn, &list).await? {
            let sql = format!("SHOW CREATE {kind} {qdb}.{}", quote_ident(&name));
            let rows = conn.query(&sql).await?;
            let row = single(&rows, &sql)?;
            objects.push(
                Phase::Object,
                format!("SET SESSION sql_mode = {}", quote_string(text(row, 1)?)),
            );
            if kind == "EVENT" {
                objects.push(
                    Phase::Object,
                    format!("SET SESSION time_zone = {}", quote_string(text(row, 2)?)),
                );
            }
            objects.push(Phase::Object, text(row, create_at)?.to_owned());
        }
    }
    Ok(())
}

/// Accounts and roles, then every grant (roles must exist before they are granted).
async fn read_accounts(
    conn: &mut MysqlConnection,
    script: &mut SchemaScript,
) -> Result<(), BackupError> {
    let is_mariadb = conn.info().is_mariadb;
    let role_column = if is_mariadb { "is_role" } else { "'N'" };
    let accounts = conn
        .query(&format!(
            "SELECT User, Host, {role_column} FROM mysql.user ORDER BY User, Host"
        ))
        .await?;
    let mut grants = Vec::new();
    for row in &accounts {
        let (user, host) = (text(row, 0)?, text(row, 1)?);
        if is_builtin_account(user, host) {
            continue;
        }
        let (account, is_role) = if text(row, 2)? == "Y" {
            (quote_ident(user), true)
        } else {
            (
                format!("{}@{}", quote_string(user), quote_string(host)),
                false,
            )
        };
        // IF NOT EXISTS: a fresh server has accounts of its own, such as root@<its host name>.
        if is_role {
            script.push(
                Phase::Account,
                format!("CREATE ROLE IF NOT EXISTS {account}"),
            );
        } else {
            let create = field(conn, &format!("SHOW CREATE USER {account}"), 0).await?;
            let create = match create.strip_prefix("CREATE USER ") {
                Some(rest) => format!("CREATE USER IF NOT EXISTS {rest}"),
                None => create,
            };
            script.push(Phase::Account, create);
        }
        grants.extend(column(conn, &format!("SHOW GRANTS FOR {account}")).await?);
    }
    for grant in grants {
        script.push(Phase::Account, grant);
    }
    Ok(())
}

/// The first column of every row of `sql`.
async fn column(conn: &mut MysqlConnection, sql: &str) -> Result<Vec<String>, BackupError> {
    let rows = conn.query(sql).await?;
    rows.iter()
        .map(|row| text(row, 0).map(str::to_owned))
        .collect()
}

/// Column `at` of the one row of `sql`.
async fn field(conn: &mut MysqlConnection, sql: &str, at: usize) -> Result<String, BackupError> {
    let rows = conn.query(sql).await?;
    Ok(text(single(&rows, sql)?, at)?.to_owned())
}

fn single<'a>(
    rows: &'a [Vec<Option<String>>],
    sql: &str,
) -> Result<&'a Vec<Option<String>>, BackupError> {
    match rows {
        [row] => Ok(row),
        _ => Err(BackupError::BadReply {
            what: format!("{sql} returned {} rows, not one", rows.len()),
        }),
    }
}

fn text(row: &[Option<String>], at: usize) -> Result<&str, BackupError> {
    row.get(at)
        .and_then(|v| v.as_deref())
        .ok_or_else(|| BackupError::BadReply {
            what: format!("column {} of a schema query is missing or NULL", at + 1),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_own_accounts_are_left_out() {
        assert!(is_builtin_account("root", "localhost"));
        assert!(is_builtin_account("mariadb.sys", "localhost"));
        assert!(is_builtin_account("PUBLIC", ""));
        assert!(is_builtin_account("", "localhost"));
        assert!(!is_builtin_account("root", "%"));
        assert!(!is_builtin_account("app", "localhost"));
    }
}
