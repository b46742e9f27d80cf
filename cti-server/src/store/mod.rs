//! The store: sqlx pool, migrations applied at start, and a writer task so the call path never
//! waits on the database (ARCHITECTURE.md "Data").

use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config::AgentConfig;

pub mod appointments;
pub mod campaigns;
pub mod crm;
pub mod dispositions;
pub mod dnc;
pub mod funnel;
pub mod hot_leads;
pub mod leads;
pub mod monitor;
pub mod queues;
pub mod recordings;
pub mod users;
pub mod voicemail;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("unsupported database URL {0} (sqlite://FILE or postgres://USER@HOST/DATABASE)")]
    Unsupported(String),
    #[error("{0}")]
    Other(String),
}

/// The database the store speaks to: SQL written for both (`$N` placeholders, standard
/// functions, integers for flags, sums cast to BIGINT), through sqlx's `Any` driver.
pub type Db = sqlx::Any;
pub type Pool = sqlx::AnyPool;
pub type Tx<'a> = sqlx::Transaction<'a, Db>;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file (the default: nothing to install).
    Sqlite,
    /// A PostgreSQL server (several nodes, managed backups).
    Postgres,
}

impl Backend {
    /// The backend a URL names.
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

/// A flag kept as an integer, 0 or 1, on both backends (SQLite has no boolean type; the SQL
/// gives flags as `CASE WHEN ... THEN 1 ELSE 0 END`, never as a boolean expression, which
/// PostgreSQL would type `boolean`). Read into `bool` fields with
/// `#[sqlx(try_from = "IntFlag")]`; bind flags as `i64::from(flag)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntFlag(pub bool);

impl sqlx::Type<Db> for IntFlag {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<Db>>::type_info()
    }

    fn compatible(ty: &sqlx::any::AnyTypeInfo) -> bool {
        <i64 as sqlx::Type<Db>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, Db> for IntFlag {
    fn decode(value: sqlx::any::AnyValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        Ok(IntFlag(<i64 as sqlx::Decode<'r, Db>>::decode(value)? != 0))
    }
}

impl From<IntFlag> for bool {
    fn from(f: IntFlag) -> bool {
        f.0
    }
}

/// `SUM(CASE WHEN cond THEN 1 ELSE 0 END)` as a BIGINT: how many rows meet `cond` (SQLite
/// sums booleans, PostgreSQL does not; PostgreSQL's SUM of integers is NUMERIC).
pub(crate) fn count_if(cond: &str) -> String {
    format!("CAST(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END) AS BIGINT)")
}

/// `$first, $first+1, ...`: `n` placeholders.
pub(crate) fn placeholders(n: usize, first: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `($1, ..., $cols), ($cols+1, ...)`: the rows of a multi-row `VALUES`.
pub(crate) fn values_list(rows: usize, cols: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(cols, r * cols + 1)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A handle on the database.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    backend: Backend,
}

impl Store {
    /// Opens (creating a SQLite file if needed) the database and applies the migrations of
    /// its backend (`migrations/sqlite`, `migrations/postgres`: kept in step).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let backend = Backend::of_url(url).ok_or_else(|| StoreError::Unsupported(url.into()))?;
        sqlx::any::install_default_drivers();
        let opened = |source| StoreError::Open {
            url: url.to_string(),
            source,
        };
        let pool = match backend {
            Backend::Sqlite => {
                let path = url
                    .strip_prefix("sqlite://")
                    .or_else(|| url.strip_prefix("sqlite:"))
                    .unwrap_or(url);
                let (file, query) = path.split_once('?').unwrap_or((path, ""));
                if let Some(dir) = Path::new(file).parent()
                    && !dir.as_os_str().is_empty()
                {
                    let _ = std::fs::create_dir_all(dir);
                }
                // Created when missing; WAL, and NORMAL sync (safe with WAL), per connection.
                let url = if query.contains("mode=") {
                    url.to_string()
                } else if query.is_empty() {
                    format!("sqlite://{file}?mode=rwc")
                } else {
                    format!("sqlite://{file}?{query}&mode=rwc")
                };
                sqlx::any::AnyPoolOptions::new()
                    .max_connections(4)
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            for pragma in [
                                "PRAGMA journal_mode = WAL",
                                "PRAGMA synchronous = NORMAL",
                                "PRAGMA busy_timeout = 5000",
                                "PRAGMA foreign_keys = ON",
                            ] {
                                sqlx::query(pragma).execute(&mut *conn).await?;
                            }
                            Ok(())
                        })
                    })
                    .connect(&url)
                    .await
                    .map_err(opened)?
            }
            Backend::Postgres => sqlx::any::AnyPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(opened)?,
        };
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::Postgres => sqlx::migrate!("./migrations/postgres").run(&pool).await?,
        }
        Ok(Store { pool, backend })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// An integer member of a JSON text column (`{"call_id": 7}`), in this backend's SQL.
    pub(crate) fn json_integer(&self, column: &str, key: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_extract({column}, '$.{key}')"),
            Backend::Postgres => format!("CAST(CAST({column} AS json) ->> '{key}' AS BIGINT)"),
        }
    }

    /// The `YYYY-MM` (UTC) of a column of epoch milliseconds, in this backend's SQL.
    pub(crate) fn month_of(&self, column: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("strftime('%Y-%m', {column} / 1000, 'unixepoch')"),
            Backend::Postgres => {
                format!("to_char(to_timestamp({column} / 1000) AT TIME ZONE 'UTC', 'YYYY-MM')")
            }
        }
    }

    /// Makes the agents table match the configuration's agents (upsert; none deleted).
    pub async fn sync_agents(&self, agents: &[AgentConfig]) -> Result<(), StoreError> {
        let now = now_ms();
        for a in agents {
            sqlx::query(
                "INSERT INTO agents (extension, name, static_contact, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (extension) DO UPDATE SET
                   name = excluded.name, static_contact = excluded.static_contact,
                   updated_at = excluded.updated_at",
            )
            .bind(&a.extension)
            .bind(&a.name)
            .bind(&a.contact)
            .bind(now)
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Starts the writer task; events sent to the returned channel are written in batches.
    /// The task ends, having written everything, once every sender is dropped.
    pub fn spawn_writer(
        &self,
        capacity: usize,
        metrics: std::sync::Arc<crate::metrics::Metrics>,
    ) -> (mpsc::Sender<StoreEvent>, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity);
        let task = tokio::spawn(run_writer(self.pool.clone(), rx, metrics));
        (tx, task)
    }
}

/// A write the hot path hands off.
#[derive(Debug, Clone)]
pub enum StoreEvent {
    /// A finished call: one `calls` row and one `call_legs` row per leg.
    Call(Box<crate::call::CallRecord>),
    Registration {
        at_ms: i64,
        extension: String,
        contact: String,
        event: &'static str,
        transport: Option<String>,
        source: Option<String>,
    },
    /// One queue or agent event from the ACD.
    Queue(QueueEventRow),
    /// A voicemail a caller left.
    Voicemail(Box<crate::call::host::Voicemail>),
    /// A call's recording, closed.
    Recording(Box<RecordingDone>),
    /// A supervisor's monitor session, over (the audit log).
    Monitor(Box<crate::call::host::MonitorSession>),
    /// An entry for the audit log from the signalling path (a refused monitor attempt).
    Audit(Box<AuditNote>),
    /// An entry on a lead's timeline (a call with the lead's customer).
    LeadEvent {
        lead: i64,
        actor: String,
        kind: &'static str,
        detail: serde_json::Value,
    },
}

/// An audit log entry made where nothing may wait for the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditNote {
    pub actor: String,
    pub action: &'static str,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub source: Option<String>,
}

/// A finished call recording, for the `recordings` index (size and SHA-256 are read from the
/// file by the writer).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordingDone {
    pub call: crate::call::CallKey,
    pub path: std::path::PathBuf,
    pub started_at_ms: i64,
    pub duration: std::time::Duration,
    /// Audio the disk could not take in time, written as silence.
    pub overrun_samples: u64,
    /// Why the recording stopped before the call did (it holds `written` of audio).
    pub failed: Option<String>,
    pub written: std::time::Duration,
    /// Pause (true) and resume markers: offsets in the file.
    pub markers: Vec<(std::time::Duration, bool)>,
    /// For a supervisor's track: the supervisor's (monitoring) call.
    pub monitor: Option<crate::call::CallKey>,
}

/// A `queue_events` row.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueEventRow {
    pub at_ms: i64,
    pub queue: Option<String>,
    pub call_id: Option<i64>,
    pub agent: Option<String>,
    pub kind: &'static str,
    pub reason: Option<String>,
    pub waited_ms: Option<i64>,
    pub detail: Option<String>,
}

async fn run_writer(
    pool: Pool,
    mut rx: mpsc::Receiver<StoreEvent>,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
) {
    use std::sync::atomic::Ordering;
    let mut batch = Vec::with_capacity(64);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let started = std::time::Instant::now();
        let result = write_batch(&pool, &batch, &metrics).await;
        metrics.db_write.observe_duration(started.elapsed());
        if let Err(e) = result {
            // The events are lost, not the server: log loudly and count it (`/metrics`).
            metrics.db_write_failures.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %e, count = batch.len(), "store writer: batch failed");
        }
        batch.clear();
    }
}

async fn write_batch(
    pool: &Pool,
    batch: &[StoreEvent],
    metrics: &crate::metrics::Metrics,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for ev in batch {
        match ev {
            StoreEvent::Call(r) => write_call(&mut tx, r).await?,
            StoreEvent::Registration {
                at_ms,
                extension,
                contact,
                event,
                transport,
                source,
            } => {
                sqlx::query(
                    "INSERT INTO registration_events (at_ms, extension, contact, event, transport, source)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(at_ms)
                .bind(extension)
                .bind(contact)
                .bind(*event)
                .bind(transport)
                .bind(source)
                .execute(&mut *tx)
                .await?;
            }
            StoreEvent::Queue(q) => {
                sqlx::query(
                    "INSERT INTO queue_events (at_ms, queue, call_id, agent, kind, reason, waited_ms, detail)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(q.at_ms)
                .bind(&q.queue)
                .bind(q.call_id)
                .bind(&q.agent)
                .bind(q.kind)
                .bind(&q.reason)
                .bind(q.waited_ms)
                .bind(&q.detail)
                .execute(&mut *tx)
                .await?;
            }
            StoreEvent::Recording(r) => {
                let path = r.path.clone();
                let (bytes, sha256) = tokio::task::spawn_blocking(move || file_digest(&path))
                    .await
                    .unwrap_or(None)
                    .map_or((None, None), |(b, h)| (Some(b), Some(h)));
                if let Some(b) = bytes {
                    metrics
                        .recording_bytes
                        .fetch_add(b as u64, std::sync::atomic::Ordering::Relaxed);
                }
                sqlx::query(
                    "INSERT INTO recordings (call_id, path, started_at_ms, duration_ms, bytes,
                       sha256, overrun_ms, written_ms, error, markers, monitor_call_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(r.call.0 as i64)
                .bind(r.path.to_string_lossy().into_owned())
                .bind(r.started_at_ms)
                .bind(r.duration.as_millis() as i64)
                .bind(bytes)
                .bind(sha256)
                .bind((r.overrun_samples / 8) as i64)
                .bind(r.failed.as_ref().map(|_| r.written.as_millis() as i64))
                .bind(&r.failed)
                .bind(
                    serde_json::to_string(
                        &r.markers
                            .iter()
                            .map(|(at, paused)| {
                                serde_json::json!({"at_ms": at.as_millis() as u64, "paused": paused})
                            })
                            .collect::<Vec<_>>(),
                    )
                    .unwrap_or_else(|_| "[]".into()),
                )
                .bind(r.monitor.map(|k| k.0 as i64))
                .execute(&mut *tx)
                .await?;
            }
            StoreEvent::Voicemail(v) => {
                sqlx::query(
                    "INSERT INTO voicemails (call_id, mailbox, caller, lead_id, path, started_at_ms, duration_ms)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(v.call.0 as i64)
                .bind(&v.mailbox)
                .bind(&v.caller)
                .bind(v.lead_id)
                .bind(v.path.to_string_lossy().into_owned())
                .bind(wall_ms(v.started_at))
                .bind(v.duration.as_millis() as i64)
                .execute(&mut *tx)
                .await?;
            }
            StoreEvent::LeadEvent {
                lead,
                actor,
                kind,
                detail,
            } => {
                sqlx::query(
                    "INSERT INTO lead_events (lead_id, at_ms, actor, kind, detail)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(lead)
                .bind(now_ms())
                .bind(actor)
                .bind(kind)
                .bind(detail.to_string())
                .execute(&mut *tx)
                .await?;
            }
            StoreEvent::Audit(a) => {
                sqlx::query(
                    "INSERT INTO audit_log (at_ms, actor, action, target, detail, source)
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(now_ms())
                .bind(&a.actor)
                .bind(a.action)
                .bind(&a.target)
                .bind(&a.detail)
                .bind(&a.source)
                .execute(&mut *tx)
                .await?;
            }
            StoreEvent::Monitor(m) => {
                let modes: Vec<serde_json::Value> = m
                    .modes
                    .iter()
                    .map(|(at, mode)| serde_json::json!({"at_ms": wall_ms(*at), "mode": mode.as_str()}))
                    .collect();
                sqlx::query(
                    "INSERT INTO monitor_sessions (call_id, monitored_call_id, supervisor, agent,
                       started_at_ms, ended_at_ms, modes, connected, outcome)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(m.call.0 as i64)
                .bind(m.monitored.0 as i64)
                .bind(&m.supervisor)
                .bind(&m.agent)
                .bind(wall_ms(m.started_at))
                .bind(wall_ms(m.ended_at))
                .bind(serde_json::Value::Array(modes).to_string())
                .bind(i64::from(m.connected))
                .bind(&m.outcome)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    tx.commit().await
}

/// Milliseconds since the Unix epoch (0 before it).
fn wall_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A file's size and SHA-256 (hex); `None` when it cannot be read.
fn file_digest(path: &std::path::Path) -> Option<(i64, String)> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path).ok()?;
    let mut hasher = sha2::Sha256::new();
    let bytes = std::io::copy(&mut f, &mut hasher).ok()?;
    Some((bytes as i64, hex::encode(hasher.finalize())))
}

async fn write_call(tx: &mut Tx<'_>, r: &crate::call::CallRecord) -> Result<(), sqlx::Error> {
    let at = |d: Option<std::time::Duration>| d.map(|d| r.offered_at_ms + d.as_millis() as i64);
    sqlx::query(
        "INSERT INTO calls (id, sip_call_id, direction, from_uri, to_uri, dialed, agent,
           offered_at_ms, ringing_at_ms, answered_at_ms, ended_at_ms, end_cause, ended_by,
           connected_at_ms, services, hold_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(r.key.0 as i64)
    .bind(&r.sip_call_id)
    .bind(if r.is_outbound() {
        "outbound"
    } else {
        "inbound"
    })
    .bind(&r.from)
    .bind(&r.to)
    .bind(&r.dialed)
    .bind(r.agent_extension())
    .bind(r.offered_at_ms)
    .bind(at(r.ring_after))
    .bind(at(r.answer_after))
    .bind(at(r.end_after))
    .bind(r.end_cause.map(|c| c.as_str()))
    .bind(r.ended_by.map(|s| s.as_str()))
    .bind(at(r.connect_after))
    .bind((!r.services.is_empty()).then(|| r.services.join(" ")))
    .bind(r.hold.as_millis() as i64)
    .execute(&mut **tx)
    .await?;
    for (side, leg) in [("caller", &r.caller), ("agent", &r.agent)] {
        sqlx::query(
            "INSERT INTO call_legs (call_id, side, codec, packets_sent, packets_received,
               packets_lost, jitter_ms, remote_loss_fraction, round_trip_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(r.key.0 as i64)
        .bind(side)
        .bind(leg.codec.map(|c| c.encoding()))
        .bind(leg.packets_sent as i64)
        .bind(leg.packets_received as i64)
        .bind(leg.packets_lost as i64)
        .bind(leg.jitter_ms)
        .bind(leg.remote_loss_fraction)
        .bind(leg.round_trip_ms)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Stores for the tests: SQLite in the test's temporary directory, or, when the environment
/// names a PostgreSQL server (`CTI_TEST_POSTGRES`, an admin URL such as
/// `postgres://postgres@localhost/postgres?host=/tmp/pg`), a new database on it for each
/// test. The test command runs the store and API tests both ways.
#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// The URL of a new, empty database for one test.
    pub async fn url(dir: &tempfile::TempDir) -> String {
        match std::env::var("CTI_TEST_POSTGRES") {
            Ok(admin) if !admin.is_empty() => new_postgres_database(&admin).await,
            _ => format!("sqlite://{}/t.db", dir.path().display()),
        }
    }

    /// A migrated store on a new database.
    pub async fn open(dir: &tempfile::TempDir) -> Store {
        Store::open(&url(dir).await).await.expect("test store")
    }

    async fn new_postgres_database(admin: &str) -> String {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let name = format!(
            "cti_t_{}_{:x}",
            std::process::id(),
            rand::random::<u64>() & 0xffff_ffff
        );
        let mut conn = sqlx::AnyConnection::connect(admin)
            .await
            .expect("the PostgreSQL server of CTI_TEST_POSTGRES");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        with_database(admin, &name)
    }

    /// `admin` with its database name replaced by `name`.
    fn with_database(admin: &str, name: &str) -> String {
        let (base, query) = admin.split_once('?').unwrap_or((admin, ""));
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let host_end = base[scheme_end..]
            .find('/')
            .map_or(base.len(), |i| scheme_end + i);
        let mut url = format!("{}/{name}", &base[..host_end]);
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    #[test]
    fn database_names_replace_the_admin_urls() {
        assert_eq!(
            with_database("postgres://postgres@localhost/postgres?host=/tmp/pg", "x"),
            "postgres://postgres@localhost/x?host=/tmp/pg"
        );
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5433", "x"),
            "postgres://u:p@127.0.0.1:5433/x"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_callers_national_number_finds_the_lead_stored_in_e164() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::open(&dir).await;
        let id = store
            .insert_lead(&leads::NewLead {
                name: "Anna".into(),
                company: None,
                grade: Some("H".into()),
                owner_agent: None,
                customer_no: None,
                phones: vec!["+49 30 111001".into()],
            })
            .await
            .unwrap();
        for number in ["+4930111001", "030 111001", "0049 30 111001", "30111001"] {
            let found = store.lead_by_caller(number, "49").await.unwrap();
            assert_eq!(found.map(|l| l.lead_id), Some(id), "{number}");
        }
        assert_eq!(
            store.lead_by_caller("030 111002", "49").await.unwrap(),
            None
        );
        assert_eq!(store.lead_by_caller("anonymous", "49").await.unwrap(), None);
    }

    #[tokio::test]
    async fn migrates_syncs_agents_and_writes_events() {
        let dir = tempfile::tempdir().unwrap();
        let url = testing::url(&dir).await;
        let store = Store::open(&url).await.unwrap();
        let agents = vec![AgentConfig {
            extension: "1001".into(),
            name: "Alice".into(),
            password: "x".into(),
            contact: None,
            lines: 2,
            skills: Default::default(),
            role: Default::default(),
            supervises: Vec::new(),
        }];
        store.sync_agents(&agents).await.unwrap();
        store.sync_agents(&agents).await.unwrap();
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM agents")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(n.0, 1);
        let (tx, _writer) = store.spawn_writer(8, Default::default());
        tx.send(StoreEvent::Registration {
            at_ms: 1,
            extension: "1001".into(),
            contact: "sip:1001@127.0.0.1".into(),
            event: "registered",
            transport: Some("UDP".into()),
            source: None,
        })
        .await
        .unwrap();
        drop(tx);
        for _ in 0..100 {
            let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM registration_events")
                .fetch_one(store.pool())
                .await
                .unwrap();
            if n.0 == 1 {
                // Reopening applies no migration twice.
                Store::open(&url).await.unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("event never written");
    }

    #[tokio::test]
    async fn unsupported_url_is_a_clear_error() {
        let e = Store::open("mysql://x").await.err().unwrap();
        assert!(e.to_string().contains("mysql://x"));
    }
}
