//! Resumable uploads and the packages they become.

use async_trait::async_trait;
use ferry_proto::ops::PackageRef;
use ferry_proto::package::{
    ImportSource, NewUpload, Package, PackageMetadata, Upload, UploadState,
};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use super::{SqliteStore, audit, corrupt, parse_json, parse_opt_uuid, parse_uuid, to_json};
use crate::store::{Actor, MetadataEdit, PackageStore, StoreError, UploadCaps, UploadError};
use crate::time_util::{from_ms, now_ms};

#[async_trait]
impl PackageStore for SqliteStore {
    async fn create_upload(
        &self,
        actor: &Actor,
        new: &NewUpload,
        caps: UploadCaps,
    ) -> Result<Upload, UploadError> {
        let id = Uuid::new_v4();
        let now = now_ms();
        let owner = upload_owner(actor);
        let mut tx = self.begin().await.map_err(StoreError::from)?;
        // Opening the same declared bytes again continues the open upload: a client whose
        // first answer was lost (a cut connection, a restart) must not leave one behind.
        if let Some(sha) = &new.sha256 {
            let same: Option<String> = sqlx::query_scalar(
                "SELECT id FROM uploads WHERE owner = ? AND state = 'open' \
                 AND expected_sha256 = ? AND size = ? ORDER BY created_at LIMIT 1",
            )
            .bind(&owner)
            .bind(sha)
            .bind(new.size as i64)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            if let Some(id) = same {
                drop(tx);
                let id = parse_uuid(&id)?;
                return self
                    .get_upload(id)
                    .await?
                    .ok_or_else(|| UploadError::Store(corrupt("open upload vanished")));
            }
        }
        let (open, bytes): (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM uploads WHERE owner = ? AND state = 'open'",
        )
        .bind(&owner)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let (open, bytes) = (open as u64, bytes as u64);
        if open >= caps.uploads || bytes.saturating_add(new.size) > caps.bytes {
            return Err(UploadError::TooMany { open, bytes });
        }
        sqlx::query(
            "INSERT INTO uploads (id, filename, size, received, expected_sha256, state, created_by, \
             connector_id, created_at, owner, updated_at) VALUES (?, ?, ?, 0, ?, 'open', ?, ?, ?, ?, ?)",
        )
        .bind(id.to_string())
        .bind(&new.filename)
        .bind(new.size as i64)
        .bind(&new.sha256)
        .bind(&actor.name)
        .bind(actor.connector_id().map(|c| c.to_string()))
        .bind(now)
        .bind(&owner)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        audit(
            &mut tx,
            actor,
            "upload.open",
            Some(&id.to_string()),
            Some(&new.filename),
        )
        .await?;
        tx.commit().await?;
        Ok(Upload {
            id,
            filename: new.filename.clone(),
            size: new.size,
            received: 0,
            expected_sha256: new.sha256.clone(),
            state: UploadState::Open,
            package_id: None,
            created_at: from_ms(now),
        })
    }

    async fn get_upload(&self, id: Uuid) -> Result<Option<Upload>, StoreError> {
        let row = sqlx::query(
            "SELECT id, filename, size, received, expected_sha256, state, package_id, created_at \
             FROM uploads WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.write)
        .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Upload {
            id: parse_uuid(&r.get::<String, _>(0))?,
            filename: r.get(1),
            size: r.get::<i64, _>(2) as u64,
            received: r.get::<i64, _>(3) as u64,
            expected_sha256: r.get(4),
            state: if r.get::<String, _>(5) == "completed" {
                UploadState::Completed
            } else {
                UploadState::Open
            },
            package_id: r
                .get::<Option<String>, _>(6)
                .as_deref()
                .map(parse_uuid)
                .transpose()?,
            created_at: from_ms(r.get(7)),
        }))
    }

    async fn upload_connector(&self, id: Uuid) -> Result<Option<Option<Uuid>>, StoreError> {
        let row: Option<Option<String>> =
            sqlx::query_scalar("SELECT connector_id FROM uploads WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.write)
                .await?;
        row.map(parse_opt_uuid).transpose()
    }

    /// A connector may read a package it was asked to push, or one it imported itself.
    async fn connector_may_read_package(
        &self,
        connector: Uuid,
        package: Uuid,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 WHERE EXISTS (SELECT 1 FROM jobs WHERE package_id = ?2 AND connector_id = ?1) \
                         OR EXISTS (SELECT 1 FROM packages WHERE id = ?2 AND owner = 'connector:' || ?1)",
        )
        .bind(connector.to_string())
        .bind(package.to_string())
        .fetch_optional(&self.read)
        .await?;
        Ok(found.is_some())
    }

    async fn set_upload_received(&self, id: Uuid, received: u64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE uploads SET received = ?, updated_at = ? WHERE id = ? AND state = 'open'",
        )
        .bind(received as i64)
        .bind(now_ms())
        .bind(id.to_string())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Removes the open uploads opened before `opened_before_ms` or idle (no bytes received)
    /// since before `idle_since_ms`, and returns their IDs (the caller deletes their part
    /// files).
    async fn expire_uploads(
        &self,
        opened_before_ms: i64,
        idle_since_ms: i64,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "DELETE FROM uploads WHERE state = 'open' \
             AND (created_at < ? OR COALESCE(updated_at, created_at) < ?) RETURNING id",
        )
        .bind(opened_before_ms)
        .bind(idle_since_ms)
        .fetch_all(&self.write)
        .await?;
        rows.iter().map(|id| parse_uuid(id)).collect()
    }

    async fn delete_upload(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM uploads WHERE id = ? AND state = 'open'")
            .bind(id.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Creates the package for a completed upload, or finds the package that already holds the
    /// same bytes (deduplication by hash), and closes the upload. Returns the package and
    /// whether it is new.
    async fn complete_upload(
        &self,
        actor: &Actor,
        upload: &Upload,
        sha256: &str,
        metadata: &PackageMetadata,
    ) -> Result<(Package, bool), StoreError> {
        let mut tx = self.begin().await?;
        // The same bytes are one package per owner: the technicians' library, or each
        // connector's own imports (the blob underneath is shared either way).
        let owner = match actor.connector_id() {
            Some(c) => format!("connector:{c}"),
            None => "technicians".to_owned(),
        };
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id FROM packages WHERE sha256 = ? AND owner = ?")
                .bind(sha256)
                .bind(&owner)
                .fetch_optional(&mut *tx)
                .await?;
        let now = now_ms();
        let (id, new) = match existing {
            Some(id) => (parse_uuid(&id)?, false),
            None => {
                let id = Uuid::new_v4();
                sqlx::query(
                    "INSERT INTO packages (id, filename, size, sha256, metadata, created_by, created_at, owner) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(id.to_string())
                .bind(&upload.filename)
                .bind(upload.size as i64)
                .bind(sha256)
                .bind(to_json(metadata)?)
                .bind(&actor.name)
                .bind(now)
                .bind(&owner)
                .execute(&mut *tx)
                .await?;
                audit(
                    &mut tx,
                    actor,
                    "package.create",
                    Some(&id.to_string()),
                    Some(&upload.filename),
                )
                .await?;
                (id, true)
            }
        };
        sqlx::query("UPDATE uploads SET state = 'completed', package_id = ? WHERE id = ?")
            .bind(id.to_string())
            .bind(upload.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        let package = self
            .get_package(id)
            .await?
            .ok_or_else(|| StoreError::Corrupt("package vanished".into()))?;
        Ok((package, new))
    }

    /// Applies an administrator's corrections to the package's metadata, audited in the same
    /// transaction. `None` if there is no such package.
    async fn update_package_metadata(
        &self,
        actor: &Actor,
        id: Uuid,
        edit: &MetadataEdit<'_>,
    ) -> Result<Option<Package>, StoreError> {
        let mut tx = self.begin().await?;
        let Some(mut metadata) = package_metadata_in(&mut tx, id).await? else {
            return Ok(None);
        };
        let fields = edit(&mut metadata);
        sqlx::query("UPDATE packages SET metadata = ? WHERE id = ?")
            .bind(to_json(&metadata)?)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "package.update",
            Some(&id.to_string()),
            Some(&fields.join(",")),
        )
        .await?;
        tx.commit().await?;
        self.get_package(id).await
    }

    /// Records where an imported package came from (`metadata.imported_from`), but only for a
    /// package whose upload this connector made itself: a connector cannot relabel packages
    /// that are not its own imports. Returns whether the package was updated.
    async fn set_package_source(
        &self,
        actor: &Actor,
        id: Uuid,
        connector: Uuid,
        source: &ImportSource,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let own: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM packages WHERE id = ?1 AND owner = 'connector:' || ?2",
        )
        .bind(id.to_string())
        .bind(connector.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if own.is_none() {
            return Ok(false);
        }
        let Some(mut metadata) = package_metadata_in(&mut tx, id).await? else {
            return Ok(false);
        };
        metadata.imported_from = Some(source.clone());
        sqlx::query("UPDATE packages SET metadata = ? WHERE id = ?")
            .bind(to_json(&metadata)?)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            actor,
            "package.link_source",
            Some(&id.to_string()),
            Some(&source.model_name),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn get_package(&self, id: Uuid) -> Result<Option<Package>, StoreError> {
        let row = sqlx::query(
            "SELECT id, filename, size, sha256, metadata, created_at FROM packages WHERE id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(&self.write)
        .await?;
        row.as_ref().map(package_from_row).transpose()
    }

    async fn list_packages(&self) -> Result<Vec<Package>, StoreError> {
        let rows = sqlx::query("SELECT id, filename, size, sha256, metadata, created_at FROM packages ORDER BY created_at DESC")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(package_from_row).collect()
    }

    async fn package_ref(&self, id: Uuid) -> Result<Option<PackageRef>, StoreError> {
        let row =
            sqlx::query("SELECT id, filename, size, sha256, metadata FROM packages WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.read)
                .await?;
        row.as_ref().map(package_ref_from_row).transpose()
    }
}

async fn package_metadata_in(
    tx: &mut Transaction<'static, Sqlite>,
    id: Uuid,
) -> Result<Option<PackageMetadata>, StoreError> {
    let text: Option<String> = sqlx::query_scalar("SELECT metadata FROM packages WHERE id = ?")
        .bind(id.to_string())
        .fetch_optional(&mut **tx)
        .await?;
    text.map(|t| parse_json(&t, "package metadata")).transpose()
}

fn package_from_row(r: &SqliteRow) -> Result<Package, StoreError> {
    Ok(Package {
        id: parse_uuid(&r.get::<String, _>(0))?,
        filename: r.get(1),
        size: r.get::<i64, _>(2) as u64,
        sha256: r.get(3),
        metadata: parse_json(&r.get::<String, _>(4), "package metadata")?,
        created_at: from_ms(r.get(5)),
    })
}

/// What an agent needs to know to fetch and run a package, from the package's row.
pub(crate) fn package_ref_from_row(row: &SqliteRow) -> Result<PackageRef, StoreError> {
    let metadata: PackageMetadata = parse_json(row.get("metadata"), "package metadata")?;
    let p = metadata.proposal;
    Ok(PackageRef {
        id: parse_uuid(row.get("id"))?,
        filename: row.get("filename"),
        size: row.get::<i64, _>("size") as u64,
        sha256: row.get("sha256"),
        install_command: p.install_command,
        uninstall_command: p.uninstall_command,
        msi_file: p.msi_file,
        product_code: p.product_code,
        copy_from: None,
    })
}

/// Whose an upload is, for the per-caller caps: a connector, or one technician.
fn upload_owner(actor: &Actor) -> String {
    match (actor.connector_id(), actor.id) {
        (Some(c), _) => format!("connector:{c}"),
        (None, Some(id)) => format!("{}:{id}", actor.kind.as_str()),
        (None, None) => format!("{}:{}", actor.kind.as_str(), actor.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    const CAPS: UploadCaps = UploadCaps {
        uploads: 10,
        bytes: 1 << 40,
    };

    fn new_upload() -> NewUpload {
        NewUpload {
            filename: "x.zip".into(),
            size: 100,
            sha256: None,
        }
    }

    #[tokio::test]
    async fn an_upload_that_received_nothing_lately_expires_and_an_active_one_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal)
            .await
            .unwrap();
        let actor = Actor::connector(Uuid::new_v4(), None);
        let idle = store
            .create_upload(&actor, &new_upload(), CAPS)
            .await
            .unwrap();
        let active = store
            .create_upload(&actor, &new_upload(), CAPS)
            .await
            .unwrap();
        // The idle one last received bytes two days ago; the active one just now.
        let two_days_ago = now_ms() - 48 * 3_600_000;
        sqlx::query("UPDATE uploads SET updated_at = ? WHERE id = ?")
            .bind(two_days_ago)
            .bind(idle.id.to_string())
            .execute(&store.write)
            .await
            .unwrap();
        store.set_upload_received(active.id, 10).await.unwrap();
        let a_day_ago = now_ms() - 24 * 3_600_000;
        let week_ago = now_ms() - 7 * 24 * 3_600_000;
        let expired = store.expire_uploads(week_ago, a_day_ago).await.unwrap();
        assert_eq!(expired, vec![idle.id]);
        assert!(store.get_upload(active.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn open_uploads_are_capped_per_owner_in_the_same_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal)
            .await
            .unwrap();
        let caps = UploadCaps {
            uploads: 2,
            bytes: 250,
        };
        let a = Actor::connector(Uuid::new_v4(), None);
        let b = Actor::connector(Uuid::new_v4(), None);
        store.create_upload(&a, &new_upload(), caps).await.unwrap();
        store.create_upload(&a, &new_upload(), caps).await.unwrap();
        assert!(matches!(
            store.create_upload(&a, &new_upload(), caps).await,
            Err(UploadError::TooMany {
                open: 2,
                bytes: 200
            })
        ));
        let big = NewUpload {
            size: 300,
            ..new_upload()
        };
        assert!(matches!(
            store.create_upload(&b, &big, caps).await,
            Err(UploadError::TooMany { open: 0, .. })
        ));
        store.create_upload(&b, &new_upload(), caps).await.unwrap();
    }

    #[tokio::test]
    async fn opening_the_same_declared_bytes_again_continues_the_open_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), Synchronous::Normal)
            .await
            .unwrap();
        let a = Actor::connector(Uuid::new_v4(), None);
        let hashed = NewUpload {
            sha256: Some("ab".repeat(32)),
            ..new_upload()
        };
        let first = store.create_upload(&a, &hashed, CAPS).await.unwrap();
        let again = store.create_upload(&a, &hashed, CAPS).await.unwrap();
        assert_eq!(first.id, again.id);
        // Another owner, or bytes not declared by hash, get their own.
        let b = Actor::connector(Uuid::new_v4(), None);
        assert_ne!(
            store.create_upload(&b, &hashed, CAPS).await.unwrap().id,
            first.id
        );
        assert_ne!(
            store
                .create_upload(&a, &new_upload(), CAPS)
                .await
                .unwrap()
                .id,
            first.id
        );
    }
}
