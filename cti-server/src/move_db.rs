//! Moving a center from SQLite to PostgreSQL: `cti-server move-db --to postgres://...` copies
//! every table of the configured SQLite database into an empty PostgreSQL database (migrated
//! first), in one transaction on the target, then sets the identity counters past the copied
//! ids. Recordings and voicemails stay where they are: their paths are copied as they are.
//!
//! Stop the server first (the copy reads a consistent snapshot, but calls ending meanwhile
//! would be missing), then point `storage.database_url` at the new database.

use std::collections::BTreeMap;

use crate::store::{Backend, Store, StoreError};

/// Every table of the schema, parents before children (the order the migrations made them,
/// which their foreign keys follow). A test checks the list against the schema.
pub const TABLES: [&str; 20] = [
    "agents",
    "registration_events",
    "calls",
    "call_legs",
    "queue_events",
    "voicemails",
    "leads",
    "lead_phones",
    "recordings",
    "monitor_sessions",
    "users",
    "sessions",
    "audit_log",
    "lead_events",
    "dnc_numbers",
    "appointments",
    "call_dispositions",
    "hot_leads",
    "campaigns",
    "campaign_leads",
];

#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0}: the source must be a SQLite database (storage.database_url)")]
    SourceNotSqlite(String),
    #[error("{0}: the target must be a PostgreSQL database (postgres://...)")]
    TargetNotPostgres(String),
    #[error(
        "the target database already holds {rows} rows in {table}: move into an empty database"
    )]
    TargetNotEmpty { table: String, rows: i64 },
    #[error("table {table}, column {column}: {what}")]
    Value {
        table: String,
        column: String,
        what: String,
    },
}

/// How many rows went into each table.
pub type MoveSummary = BTreeMap<String, i64>;

/// A column's type on the target, as the copy binds it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Int,
    Float,
    Text,
}

/// Copies the SQLite database at `from` into the (empty) PostgreSQL database at `to`.
pub async fn move_db(from: &str, to: &str) -> Result<MoveSummary, MoveError> {
    if Backend::of_url(from) != Some(Backend::Sqlite) {
        return Err(MoveError::SourceNotSqlite(from.into()));
    }
    if Backend::of_url(to) != Some(Backend::Postgres) {
        return Err(MoveError::TargetNotPostgres(to.into()));
    }
    let source = Store::open(from).await?;
    let target = Store::open(to).await?;
    for table in TABLES {
        let (rows,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(target.pool())
            .await?;
        if rows > 0 {
            return Err(MoveError::TargetNotEmpty {
                table: table.into(),
                rows,
            });
        }
    }
    let mut summary = MoveSummary::new();
    // One read transaction on the source: a snapshot of every table.
    let mut read = source.pool().begin().await?;
    let mut write = target.pool().begin().await?;
    for table in TABLES {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1
             ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&mut *write)
        .await?;
        let kinds: Vec<(String, Kind)> = columns
            .into_iter()
            .map(|(name, ty)| {
                let kind = match ty.as_str() {
                    "bigint" | "integer" | "smallint" => Kind::Int,
                    "double precision" | "real" | "numeric" => Kind::Float,
                    _ => Kind::Text,
                };
                (name, kind)
            })
            .collect();
        let names: Vec<&str> = kinds.iter().map(|(n, _)| n.as_str()).collect();
        let select = format!("SELECT {} FROM {table}", names.join(", "));
        let insert = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            names.join(", "),
            crate::store::placeholders(names.len(), 1)
        );
        let rows = sqlx::query(&select).fetch_all(&mut *read).await?;
        for row in &rows {
            let mut q = sqlx::query(&insert);
            for (i, (column, kind)) in kinds.iter().enumerate() {
                let bad = |what: String| MoveError::Value {
                    table: table.into(),
                    column: column.clone(),
                    what,
                };
                q = match kind {
                    Kind::Int => q.bind(int_at(row, i).map_err(bad)?),
                    Kind::Float => q.bind(float_at(row, i).map_err(bad)?),
                    Kind::Text => q.bind(text_at(row, i).map_err(bad)?),
                };
            }
            q.execute(&mut *write).await?;
        }
        summary.insert(table.to_string(), rows.len() as i64);
        // Identity columns continue after the copied ids.
        if names.contains(&"id") {
            sqlx::query(&format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                               COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)
                 WHERE pg_get_serial_sequence('{table}', 'id') IS NOT NULL"
            ))
            .execute(&mut *write)
            .await?;
        }
    }
    write.commit().await?;
    read.rollback().await?;
    source.pool().close().await;
    target.pool().close().await;
    Ok(summary)
}

fn int_at(row: &sqlx::any::AnyRow, i: usize) -> Result<Option<i64>, String> {
    use sqlx::Row;
    row.try_get::<Option<i64>, _>(i)
        .or_else(|_| {
            row.try_get::<Option<f64>, _>(i)
                .map(|v| v.map(|f| f as i64))
        })
        .or_else(|_| {
            row.try_get::<Option<String>, _>(i)
                .map_err(|e| e.to_string())
                .and_then(|v| {
                    v.map(|t| t.parse::<i64>().map_err(|e| format!("{t:?}: {e}")))
                        .transpose()
                })
        })
}

fn float_at(row: &sqlx::any::AnyRow, i: usize) -> Result<Option<f64>, String> {
    use sqlx::Row;
    row.try_get::<Option<f64>, _>(i)
        .or_else(|_| {
            row.try_get::<Option<i64>, _>(i)
                .map(|v| v.map(|n| n as f64))
        })
        .map_err(|e| e.to_string())
}

fn text_at(row: &sqlx::any::AnyRow, i: usize) -> Result<Option<String>, String> {
    use sqlx::Row;
    row.try_get::<Option<String>, _>(i)
        .or_else(|_| {
            row.try_get::<Option<i64>, _>(i)
                .map(|v| v.map(|n| n.to_string()))
        })
        .or_else(|_| {
            row.try_get::<Option<f64>, _>(i)
                .map(|v| v.map(|n| n.to_string()))
        })
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table list is the schema: a table added by a migration must be moved too.
    #[tokio::test]
    async fn every_table_of_the_schema_is_moved_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        let mut tables: Vec<(String,)> = sqlx::query_as(
            "SELECT name FROM sqlite_master WHERE type = 'table'
               AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY rowid",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let created: Vec<String> = tables.drain(..).map(|t| t.0).collect();
        assert_eq!(created, TABLES.to_vec());
    }

    #[tokio::test]
    async fn wrong_backends_are_refused() {
        let e = move_db("postgres://x/y", "postgres://x/z")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("SQLite"), "{e}");
        let e = move_db("sqlite:///tmp/x.db", "sqlite:///tmp/y.db")
            .await
            .unwrap_err();
        assert!(e.to_string().contains("PostgreSQL"), "{e}");
    }
}
