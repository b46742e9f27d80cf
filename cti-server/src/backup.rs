//! Backup and restore of the database and the audio it points to (call recordings,
//! voicemails): `cti-server backup --to DIR` and `cti-server restore --from DIR`.
//!
//! A backup is consistent while the server runs: the database is copied with SQLite's
//! `VACUUM INTO` (one read transaction: a snapshot), and the audio files copied are exactly
//! those the snapshot lists. Files are written once and then never change (a recording is
//! indexed when it is closed), so copying them after the snapshot is safe. Each file's
//! SHA-256 is checked against the index where the index has one.
//!
//! Layout of a backup directory: `cti.db`, `files/<n>.wav` (one per listed file), and
//! `manifest.json` (when, and for each file its original path, the name in `files/`, its size
//! and SHA-256). Restore puts the database back and every file at its original path, after
//! checking sizes and digests; it refuses to overwrite a database that already holds calls
//! unless asked to (`--force`), and the server must not be running.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("{0} is not empty: back up into a new directory")]
    NotEmpty(PathBuf),
    #[error("{0} is not a backup (no manifest.json)")]
    NotABackup(PathBuf),
    #[error("manifest: {0}")]
    Manifest(String),
    #[error("{path}: {what}")]
    Damaged { path: PathBuf, what: String },
    #[error(
        "the database {0} already holds calls: restoring would replace them (use --force, with the server stopped)"
    )]
    WouldReplace(PathBuf),
    #[error(
        "only SQLite databases are backed up this way (database_url {0}): back a PostgreSQL \
         database up with pg_dump, and the recordings directory with it"
    )]
    Unsupported(String),
}

/// One audio file in a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Where the server keeps it (as the database says).
    pub original: PathBuf,
    /// Its name under `files/`.
    pub stored: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub created_at_ms: i64,
    pub files: Vec<FileEntry>,
    /// Files the database lists that were not there (a file removed by hand).
    pub missing: Vec<PathBuf>,
}

/// The database file behind a `sqlite://` URL.
fn sqlite_path(url: &str) -> Result<PathBuf, BackupError> {
    let path = url
        .strip_prefix("sqlite://")
        .ok_or_else(|| BackupError::Unsupported(url.to_string()))?;
    Ok(PathBuf::from(path.split('?').next().unwrap_or(path)))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(path.to_path_buf(), e)
}

fn digest(path: &Path) -> Result<(u64, String), BackupError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = sha2::Sha256::new();
    let n = std::io::copy(&mut f, &mut h).map_err(io(path))?;
    Ok((n, hex::encode(h.finalize())))
}

/// Backs the database at `url` and its audio files up into `to` (new or empty).
pub async fn backup(url: &str, to: &Path) -> Result<Manifest, BackupError> {
    sqlite_path(url)?;
    if to.exists() && std::fs::read_dir(to).map_err(io(to))?.next().is_some() {
        return Err(BackupError::NotEmpty(to.to_path_buf()));
    }
    let files_dir = to.join("files");
    std::fs::create_dir_all(&files_dir).map_err(io(&files_dir))?;
    let store = Store::open(url).await?;
    let db = to.join("cti.db");
    // A snapshot in one statement; the running server keeps writing meanwhile.
    sqlx::query("VACUUM INTO $1")
        .bind(db.to_string_lossy().into_owned())
        .execute(store.pool())
        .await?;
    store.pool().close().await;
    // The files the snapshot lists, read from the snapshot itself.
    let snap = Store::open(&format!("sqlite://{}", db.display())).await?;
    let listed: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT path, sha256 FROM recordings UNION ALL SELECT path, NULL FROM voicemails",
    )
    .fetch_all(snap.pool())
    .await?;
    snap.pool().close().await;
    let mut manifest = Manifest {
        created_at_ms: crate::store::now_ms(),
        files: Vec::new(),
        missing: Vec::new(),
    };
    for (i, (path, indexed)) in listed.into_iter().enumerate() {
        let original = PathBuf::from(path);
        if !original.exists() {
            manifest.missing.push(original);
            continue;
        }
        let stored = format!("{i}.wav");
        let dest = files_dir.join(&stored);
        std::fs::copy(&original, &dest).map_err(io(&original))?;
        let (bytes, sha256) = digest(&dest)?;
        if let Some(want) = indexed
            && want != sha256
        {
            return Err(BackupError::Damaged {
                path: original,
                what: format!("SHA-256 {sha256}, the index says {want}"),
            });
        }
        manifest.files.push(FileEntry {
            original,
            stored,
            bytes,
            sha256,
        });
    }
    let text = serde_json::to_string_pretty(&manifest)
        .map_err(|e| BackupError::Manifest(e.to_string()))?;
    let path = to.join("manifest.json");
    std::fs::write(&path, text).map_err(io(&path))?;
    Ok(manifest)
}

/// Restores a backup made by [`backup`] into the database at `url` and the files' original
/// places. Everything is checked before anything is replaced.
pub async fn restore(url: &str, from: &Path, force: bool) -> Result<Manifest, BackupError> {
    let db_path = sqlite_path(url)?;
    let manifest_path = from.join("manifest.json");
    if !manifest_path.exists() {
        return Err(BackupError::NotABackup(from.to_path_buf()));
    }
    let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
    let manifest: Manifest =
        serde_json::from_str(&text).map_err(|e| BackupError::Manifest(e.to_string()))?;
    for f in &manifest.files {
        let stored = from.join("files").join(&f.stored);
        let (bytes, sha256) = digest(&stored)?;
        if bytes != f.bytes || sha256 != f.sha256 {
            return Err(BackupError::Damaged {
                path: stored,
                what: format!(
                    "{bytes} bytes, SHA-256 {sha256}; the manifest says {} bytes, {}",
                    f.bytes, f.sha256
                ),
            });
        }
    }
    let backup_db = from.join("cti.db");
    if !backup_db.exists() {
        return Err(BackupError::NotABackup(from.to_path_buf()));
    }
    if db_path.exists() && !force {
        let store = Store::open(url).await?;
        let (calls,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM calls")
            .fetch_one(store.pool())
            .await?;
        store.pool().close().await;
        if calls > 0 {
            return Err(BackupError::WouldReplace(db_path));
        }
    }
    if let Some(dir) = db_path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    // The old write-ahead log must not be replayed over the restored database.
    for ext in ["-wal", "-shm"] {
        let side = PathBuf::from(format!("{}{ext}", db_path.display()));
        if side.exists() {
            std::fs::remove_file(&side).map_err(io(&side))?;
        }
    }
    std::fs::copy(&backup_db, &db_path).map_err(io(&db_path))?;
    for f in &manifest.files {
        if let Some(dir) = f.original.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        std::fs::copy(from.join("files").join(&f.stored), &f.original).map_err(io(&f.original))?;
    }
    // Opening applies any migrations newer than the backup.
    Store::open(url).await?.pool().close().await;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn seeded(dir: &Path) -> (String, PathBuf) {
        let url = format!("sqlite://{}", dir.join("data/cti.db").display());
        let store = Store::open(&url).await.unwrap();
        let wav = dir.join("rec/2026/11/22/1-7.wav");
        std::fs::create_dir_all(wav.parent().unwrap()).unwrap();
        std::fs::write(&wav, b"RIFF....WAVEfake audio").unwrap();
        let (_, sha) = digest(&wav).unwrap();
        sqlx::query(
            "INSERT INTO calls (id, sip_call_id, direction, from_uri, to_uri, dialed, offered_at_ms)
             VALUES (7, 'c7', 'inbound', 'sip:a@x', 'sip:b@y', '1001', 1)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO recordings (call_id, path, started_at_ms, duration_ms, bytes, sha256, overrun_ms)
             VALUES (7, $1, 1, 1000, 22, $2, 0)",
        )
        .bind(wav.to_string_lossy().into_owned())
        .bind(sha)
        .execute(store.pool())
        .await
        .unwrap();
        store.pool().close().await;
        (url, wav)
    }

    #[tokio::test]
    async fn a_backup_restores_the_database_and_the_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let (url, wav) = seeded(dir.path()).await;
        let to = dir.path().join("backup");
        let m = backup(&url, &to).await.unwrap();
        assert_eq!(m.files.len(), 1);
        assert!(m.missing.is_empty());
        assert!(matches!(
            backup(&url, &to).await,
            Err(BackupError::NotEmpty(_))
        ));

        // Disaster: the database and the recording are gone.
        std::fs::remove_dir_all(dir.path().join("data")).unwrap();
        std::fs::remove_file(&wav).unwrap();
        restore(&url, &to, false).await.unwrap();
        assert_eq!(std::fs::read(&wav).unwrap(), b"RIFF....WAVEfake audio");
        let store = Store::open(&url).await.unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM recordings WHERE call_id = 7")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n, 1);
        store.pool().close().await;

        // A database holding calls is not replaced unless asked to.
        assert!(matches!(
            restore(&url, &to, false).await,
            Err(BackupError::WouldReplace(_))
        ));
        restore(&url, &to, true).await.unwrap();
    }

    #[tokio::test]
    async fn a_damaged_backup_is_refused_before_anything_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (url, wav) = seeded(dir.path()).await;
        let to = dir.path().join("backup");
        backup(&url, &to).await.unwrap();
        std::fs::write(to.join("files/0.wav"), b"RIFF....WAVEbit rot!!!").unwrap();
        std::fs::write(&wav, b"the current file").unwrap();
        let e = restore(&url, &to, true).await.unwrap_err();
        assert!(matches!(e, BackupError::Damaged { .. }), "{e}");
        assert_eq!(std::fs::read(&wav).unwrap(), b"the current file");
        assert!(matches!(
            restore(&url, dir.path(), true).await,
            Err(BackupError::NotABackup(_))
        ));
    }
}
