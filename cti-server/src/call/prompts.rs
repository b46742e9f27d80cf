//! Prompt audio for the call actors: loaded once (WAV read, resampled to 8 kHz, pre-encoded by
//! `media::prompt`), shared by every call. Files are read on a blocking thread, never on a
//! call's task, and a file that fails to load is reported, not cached, so fixing it on disk
//! is enough.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use media::prompt::Prompt;

#[derive(Default)]
pub struct Prompts {
    cache: Mutex<HashMap<PathBuf, Arc<Prompt>>>,
}

impl Prompts {
    pub fn new() -> Prompts {
        Prompts::default()
    }

    /// The prompt at `path`, loaded on first use.
    pub async fn get(&self, path: &Path) -> Result<Arc<Prompt>, String> {
        if let Some(p) = self.lock().get(path) {
            return Ok(p.clone());
        }
        let owned = path.to_path_buf();
        let prompt = tokio::task::spawn_blocking(move || Prompt::load(&owned))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let prompt = Arc::new(prompt);
        self.lock().insert(path.to_path_buf(), prompt.clone());
        Ok(prompt)
    }

    /// Loads every file now (start-up: the first caller should not wait on the disk).
    /// Returns the files that failed, with why.
    pub async fn preload(
        &self,
        paths: impl IntoIterator<Item = PathBuf>,
    ) -> Vec<(PathBuf, String)> {
        let mut failed = Vec::new();
        for p in paths {
            if let Err(e) = self.get(&p).await {
                failed.push((p, e));
            }
        }
        failed
    }

    /// Forgets a file (replaced through the API): the next play reads it again.
    pub fn invalidate(&self, path: &Path) {
        self.lock().remove(path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<Prompt>>> {
        // A panic while holding the lock cannot leave the map half-updated (single inserts).
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}
