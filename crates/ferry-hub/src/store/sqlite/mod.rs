//! The SQLite backend: one file (`ferry.db`, WAL), embedded migrations, one writer
//! connection and a read pool.
//!
//! Every state change is one `BEGIN IMMEDIATE` transaction on the single writer connection,
//! so the queue's rules hold by construction and a killed hub restarts into a consistent
//! state. Reads go through a separate pool so that long lists never wait behind writes.
//!
//! Why one writer connection: SQLite admits one writer at a time anyway. Letting many pooled
//! connections race for the lock makes them sleep-and-retry inside SQLite's busy handler
//! (milliseconds each), which is exactly the latency a long-poll queue exists to avoid.
//! Queueing writers on the pool instead is FIFO and wakes each one the moment the last is done.

mod audit;
mod connectors;
mod devices;
mod helpdesk;
mod identity;
mod inventory;
mod jobs;
mod ops;
mod packages;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use uuid::Uuid;

use super::{Backend, StoreError};
use crate::config::Synchronous;
use crate::time_util::now_ms;

pub(crate) use super::corrupt;
pub(crate) use audit::audit;

/// Schema migrations, embedded in the binary, applied in order once each. A hand-rolled runner
/// (one table, one loop) instead of sqlx's macro keeps the proc-macro stack out of the build.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "init",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "packages",
        include_str!("../../../migrations/sqlite/0002_packages.sql"),
    ),
    (
        3,
        "inventory",
        include_str!("../../../migrations/sqlite/0003_inventory.sql"),
    ),
    (
        4,
        "progress_cap",
        include_str!("../../../migrations/sqlite/0004_progress_cap.sql"),
    ),
    (
        5,
        "agents",
        include_str!("../../../migrations/sqlite/0005_agents.sql"),
    ),
    (
        6,
        "pending_token",
        include_str!("../../../migrations/sqlite/0006_pending_token.sql"),
    ),
    (
        7,
        "identity",
        include_str!("../../../migrations/sqlite/0007_identity.sql"),
    ),
    (
        8,
        "package_detection",
        include_str!("../../../migrations/sqlite/0008_package_detection.sql"),
    ),
    (
        9,
        "metadata_sources",
        include_str!("../../../migrations/sqlite/0009_metadata_sources.sql"),
    ),
    (
        10,
        "package_owner",
        include_str!("../../../migrations/sqlite/0010_package_owner.sql"),
    ),
    (
        11,
        "upload_activity",
        include_str!("../../../migrations/sqlite/0011_upload_activity.sql"),
    ),
    (
        12,
        "vouched_inventory",
        include_str!("../../../migrations/sqlite/0012_vouched_inventory.sql"),
    ),
    (
        13,
        "lease_contact",
        include_str!("../../../migrations/sqlite/0013_lease_contact.sql"),
    ),
    (
        14,
        "helpdesk",
        include_str!("../../../migrations/sqlite/0014_helpdesk.sql"),
    ),
    (
        15,
        "waiting_ops",
        include_str!("../../../migrations/sqlite/0015_waiting_ops.sql"),
    ),
];

#[derive(Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `ferry.db` in `dir` and applies pending migrations.
    pub async fn open(dir: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(dir.join(crate::DB_FILE))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match synchronous {
                Synchronous::Full => SqliteSynchronous::Full,
                Synchronous::Normal => SqliteSynchronous::Normal,
            })
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .acquire_slow_threshold(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        migrate(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(30))
            // Thousands of agents reconnecting at once queue here for a moment by design
            // (admission paces them); that is not worth a warning per request.
            .acquire_slow_threshold(Duration::from_secs(10))
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore { write, read })
    }

    async fn begin(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        // IMMEDIATE takes the write lock up front, so a transaction that reads and then
        // writes can never fail halfway with SQLITE_BUSY_SNAPSHOT.
        self.write.begin_with("BEGIN IMMEDIATE").await
    }
}

impl Backend for SqliteStore {
    fn close(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(async move {
            self.read.close().await;
            self.write.close().await;
        })
    }
}

async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    migrate_to(pool, i64::MAX).await
}

/// Applies the pending migrations up to `last` (tests stop early to write old-format rows).
async fn migrate_to(pool: &SqlitePool, last: i64) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    )
    .execute(pool)
    .await?;
    let current: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            .fetch_one(pool)
            .await?;
    let newest = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(StoreError::TooNew(current));
    }
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current && m.0 <= last) {
        let fail = |source| StoreError::Migrate {
            version,
            name,
            source,
        };
        // A migration that rebuilds a table others refer to runs with foreign keys off (the
        // pragma cannot change inside a transaction), and is checked before it commits.
        let rebuilds = sql.starts_with("-- ferry:foreign-keys-off");
        let mut conn = pool.acquire().await.map_err(fail)?;
        if rebuilds {
            sqlx::query("PRAGMA foreign_keys = OFF")
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        let applied = apply_one(&mut conn, version, name, sql, rebuilds).await;
        if rebuilds {
            // Whatever happened, the connection goes back to the pool enforcing references.
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&mut *conn)
                .await
                .map_err(fail)?;
        }
        applied?;
        tracing::info!(version, name, "applied database migration");
    }
    Ok(())
}

/// One migration in one `BEGIN IMMEDIATE` transaction, recorded in `schema_migrations`; a
/// rebuild is checked for broken references before it commits.
async fn apply_one(
    conn: &mut sqlx::SqliteConnection,
    version: i64,
    name: &'static str,
    sql: &'static str,
    rebuilds: bool,
) -> Result<(), StoreError> {
    let fail = |source| StoreError::Migrate {
        version,
        name,
        source,
    };
    let mut tx = sqlx::Connection::begin_with(conn, "BEGIN IMMEDIATE")
        .await
        .map_err(fail)?;
    sqlx::raw_sql(sql).execute(&mut *tx).await.map_err(fail)?;
    if rebuilds {
        let broken: Option<String> =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_check LIMIT 1")
                .fetch_optional(&mut *tx)
                .await
                .map_err(fail)?;
        if let Some(table) = broken {
            return Err(StoreError::Corrupt(format!(
                "migration {version} ({name}) would leave rows of {table} referring to missing rows"
            )));
        }
    }
    sqlx::query("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
        .bind(version)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    tx.commit().await.map_err(fail)
}

fn parse_uuid(s: &str) -> Result<Uuid, StoreError> {
    Uuid::from_str(s).map_err(|_| StoreError::Corrupt(format!("bad uuid {s:?}")))
}

fn parse_opt_uuid(s: Option<String>) -> Result<Option<Uuid>, StoreError> {
    s.as_deref().map(parse_uuid).transpose()
}

fn parse_json<T: serde::de::DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| corrupt(e.to_string()))
}

#[cfg(test)]
mod migration_tests {
    use super::*;

    async fn memory_pool() -> SqlitePool {
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::from_str("sqlite::memory:").unwrap())
            .await
            .unwrap()
    }

    async fn detection_after_upgrade(detection: &str) -> serde_json::Value {
        let pool = memory_pool().await;
        migrate_to(&pool, 7).await.unwrap();
        let metadata = format!(r#"{{"vendor":"V","detection":{detection}}}"#);
        sqlx::query(
            "INSERT INTO packages (id, filename, size, sha256, metadata, created_by, created_at) \
             VALUES ('p', 'p.zip', 1, 'abc', ?, 'admin', 0)",
        )
        .bind(metadata)
        .execute(&pool)
        .await
        .unwrap();
        migrate(&pool).await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT metadata FROM packages")
            .fetch_one(&pool)
            .await
            .unwrap();
        let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(stored["vendor"], "V", "the rest is kept");
        stored["detection"].clone()
    }

    #[tokio::test]
    async fn a_detection_merged_from_two_kinds_is_cleared_on_upgrade() {
        let both = r#"{"msi_product_code":"{A}","script":{"language":"powershell","text":"x"}}"#;
        assert_eq!(detection_after_upgrade(both).await, serde_json::Value::Null);
        assert_eq!(detection_after_upgrade("{}").await, serde_json::Value::Null);
        let no_text = r#"{"script":{"language":"powershell"}}"#;
        assert_eq!(
            detection_after_upgrade(no_text).await,
            serde_json::Value::Null
        );
    }

    #[tokio::test]
    async fn a_valid_detection_survives_the_upgrade() {
        for valid in [
            r#"{"msi_product_code":"{A}"}"#,
            r#"{"script":{"language":"PowerShell","text":"x"}}"#,
        ] {
            let kept = detection_after_upgrade(valid).await;
            assert_eq!(
                kept,
                serde_json::from_str::<serde_json::Value>(valid).unwrap()
            );
            let typed: Option<ferry_proto::package::DetectionSpec> =
                serde_json::from_value(kept).unwrap();
            assert!(typed.is_some());
        }
    }

    #[tokio::test]
    async fn hand_set_fields_become_user_sources_on_upgrade() {
        let pool = memory_pool().await;
        migrate_to(&pool, 8).await.unwrap();
        sqlx::query(
            "INSERT INTO packages (id, filename, size, sha256, metadata, created_by, created_at) \
             VALUES ('p', 'p.zip', 1, 'abc', ?, 'admin', 0)",
        )
        .bind(r#"{"vendor":"Contoso","overridden":["vendor","package_name"]}"#)
        .execute(&pool)
        .await
        .unwrap();
        migrate(&pool).await.unwrap();
        let stored: String = sqlx::query_scalar("SELECT metadata FROM packages")
            .fetch_one(&pool)
            .await
            .unwrap();
        let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({
                "vendor": "Contoso",
                "sources": { "vendor": "user", "package_name": "user" }
            })
        );
        let typed: ferry_proto::package::PackageMetadata = serde_json::from_value(stored).unwrap();
        assert!(
            typed
                .proposal
                .is_user_set(ferry_proto::package::MetadataField::Vendor)
        );
    }

    #[tokio::test]
    async fn a_package_first_uploaded_by_a_technician_stays_the_technicians_on_upgrade() {
        let pool = memory_pool().await;
        migrate_to(&pool, 9).await.unwrap();
        sqlx::query(
            "INSERT INTO packages (id, filename, size, sha256, metadata, created_by, created_at) \
             VALUES ('p', 'p.zip', 1, 'abc', '{}', 'admin', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        for (id, connector, at) in [("u1", None, 1), ("u2", Some("c1"), 2)] {
            sqlx::query(
                "INSERT INTO uploads (id, filename, size, received, state, package_id, created_by, \
                 created_at, connector_id) VALUES (?, 'p.zip', 1, 1, 'completed', 'p', 'x', ?, ?)",
            )
            .bind(id)
            .bind(at)
            .bind(connector)
            .execute(&pool)
            .await
            .unwrap();
        }
        migrate(&pool).await.unwrap();
        let owner: String = sqlx::query_scalar("SELECT owner FROM packages WHERE id = 'p'")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            owner, "technicians",
            "a later connector upload of the same bytes owns nothing"
        );
    }
}
