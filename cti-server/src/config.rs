//! Configuration: a TOML file (default `config/cti.toml`) with `--set section.key=value`
//! overrides applied on top, so tests and operators can run several instances.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("--set {0}: expected section.key=value")]
    BadOverride(String),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub sip: SipConfig,
    #[serde(default)]
    pub http: HttpConfig,
    /// The certificate of HTTPS, WSS and SIP over TLS.
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub ivr: IvrConfig,
    #[serde(default)]
    pub call: CallSettings,
    #[serde(default)]
    pub voicemail: VoicemailConfig,
    #[serde(default)]
    pub recording: RecordingConfig,
    #[serde(default)]
    pub supervision: SupervisionConfig,
    #[serde(default)]
    pub leads: LeadsConfig,
    #[serde(default)]
    pub softphone: SoftphoneConfig,
    #[serde(default)]
    pub dialing: DialingConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// The outbound SIP trunk for external numbers (none unless `host` is set).
    #[serde(default)]
    pub trunk: TrunkConfig,
    /// Agents allowed to register (and their static contacts, for phones behind a PBX).
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
    /// ACD queues, one per skill group (see [`crate::acd`]).
    #[serde(default)]
    pub queues: Vec<QueueSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP and TCP listen address.
    pub listen: SocketAddr,
    /// SIP over TLS listen address (`tls.*` certificate); empty: none.
    pub tls_listen: String,
    /// Our SIP domain and digest realm.
    pub domain: String,
    /// Address put in our Via/Contact when `listen` is a wildcard.
    pub advertised_host: Option<String>,
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    pub min_expires: u32,
    pub max_expires: u32,
    pub default_expires: u32,
    pub max_contacts_per_agent: usize,
    pub nonce_ttl_s: u64,
    /// Digest algorithms offered to registering phones, most preferred first (RFC 8760).
    /// MD5 leads by default because many phones (and sipp 3.6) read only the first challenge
    /// and know no other; put "SHA-256" first, or alone, when every phone supports it.
    pub digest_algorithms: Vec<String>,
    /// Answer UDP requests at their source address and port even without `rport`
    /// (what Asterisk calls force_rport): phones behind NAT are reachable this way.
    pub force_rport: bool,
    pub tcp_idle_timeout_s: u64,
    pub max_tcp_connections: usize,
    /// Live SIP transactions beyond which new requests get 503 + Retry-After.
    pub max_transactions: usize,
    /// Messages waiting for the SIP task beyond which new requests get a stateless 503.
    pub overload_backlog: usize,
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: "0.0.0.0:5060".parse().expect("valid literal"),
            tls_listen: String::new(),
            domain: "cti.local".into(),
            advertised_host: None,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 600,
            max_contacts_per_agent: 10,
            nonce_ttl_s: 300,
            digest_algorithms: vec!["MD5".into(), "SHA-256".into()],
            force_rport: true,
            tcp_idle_timeout_s: 300,
            max_tcp_connections: 1024,
            max_transactions: 100_000,
            overload_backlog: 2_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Plain HTTP: only on a loopback address unless `allow_plain` (passwords and session
    /// cookies would cross the network in the clear, and browsers give a page on a plain
    /// http:// address other than localhost no microphone).
    pub listen: SocketAddr,
    /// HTTPS and WSS listen address (`tls.*` certificate); empty: none.
    pub tls_listen: String,
    /// Plain HTTP on a non-loopback `listen` address (behind a TLS-terminating proxy).
    pub allow_plain: bool,
    /// A bearer token with an admin's rights, for scripts (`/api`); unset or empty: only
    /// users who log in (`POST /api/login`) use the API.
    pub api_token: Option<String>,
    /// How long a login lasts.
    pub session_ttl_h: u64,
    /// Failed logins within `login_window_s`, for one user or from one address, after which
    /// logins are refused (429) until the window moves on.
    pub login_max_failures: usize,
    pub login_window_s: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8088".parse().expect("valid literal"),
            tls_listen: String::new(),
            allow_plain: false,
            api_token: None,
            session_ttl_h: 12,
            login_max_failures: 5,
            login_window_s: 300,
        }
    }
}

/// The server's certificate: `cert` and `key` (PEM files) together, or neither for a
/// self-signed certificate made on first start and kept in `<storage.data_dir>/tls/`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// More host names and addresses for the self-signed certificate (localhost, the
    /// loopback addresses, the host name and `sip.advertised_host` are always in it).
    pub names: Vec<String>,
}

impl TlsConfig {
    /// The configured files (an empty path is none).
    pub fn files(&self) -> (Option<&Path>, Option<&Path>) {
        fn set(p: &Option<PathBuf>) -> Option<&Path> {
            p.as_deref().filter(|p| !p.as_os_str().is_empty())
        }
        (set(&self.cert), set(&self.key))
    }
}

/// A listen address that may be switched off with an empty string.
fn optional_listen(key: &str, value: &str) -> Result<Option<SocketAddr>, String> {
    let v = value.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.parse()
        .map(Some)
        .map_err(|_| format!("{key} = {v:?}: not an address and port like 0.0.0.0:8443"))
}

/// Voicemail: where messages go, how long they may be, and the box for callers whose agent
/// did not answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VoicemailConfig {
    /// Messages are written to `<dir>/<box>/<time>-<call>.wav`.
    pub dir: PathBuf,
    pub max_s: u64,
    /// Callers whose directly dialed agent does not answer leave a message here.
    pub fallback_box: String,
    /// Dialed numbers that go straight to a box, e.g. `[voicemail.numbers] "190" = "general"`.
    pub numbers: std::collections::BTreeMap<String, String>,
}

impl Default for VoicemailConfig {
    fn default() -> Self {
        VoicemailConfig {
            dir: "recordings/voicemail".into(),
            max_s: 120,
            fallback_box: "general".into(),
            numbers: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// RTP port range, e.g. "30000-39999" (inclusive).
    pub rtp_ports: String,
    /// A call whose RTP stops for this long is ended (and the record says why).
    pub timeout_s: u64,
    /// Our address in SDP when sip.listen is a wildcard (defaults to sip.advertised_host).
    pub advertised_ip: Option<std::net::IpAddr>,
    /// Media engine shards (each with its own legs, rooms and 20 ms clock); 0 = one per CPU
    /// core.
    pub shards: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ports: "30000-39999".into(),
            timeout_s: 30,
            advertised_ip: None,
            shards: 0,
        }
    }
}

/// Whether a call is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingPolicy {
    /// Recorded whole, from the moment the customer talks to somebody to the hang-up.
    #[default]
    Always,
    /// Recorded from when the agent asks (their keypad's `recording.keypad_code`, or the
    /// API) to the hang-up.
    #[serde(alias = "on_demand")]
    OnDemand,
    Never,
}

/// Call recording (`[recording]`): one stereo WAV per call under `storage.recordings_dir`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// For calls no queue decides for (direct calls, agents' outbound calls); a queue's
    /// `recording` decides for its callers.
    pub policy: RecordingPolicy,
    /// Agents may list and play the recordings of their own calls (supervisors those of
    /// their groups, admins all, whatever this says).
    pub agents_hear_own: bool,
    /// Recordings older than this many days (fractions allowed) are deleted, unless on legal
    /// hold; a queue's `retention_days` decides for its calls. Unset or 0: kept for ever.
    pub retention_days: Option<f64>,
    /// How often the retention sweep runs.
    pub retention_sweep_s: u64,
    /// Keyed on the agent's phone during a call: pauses or resumes the recording (starts it
    /// under the on-demand policy), with a beep for the agent. Empty: no code.
    pub keypad_code: String,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            policy: RecordingPolicy::default(),
            agents_hear_own: false,
            retention_days: None,
            retention_sweep_s: 3600,
            keypad_code: "*1".into(),
        }
    }
}

/// Browser softphones (`[softphone]`, see [`crate::softphone`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SoftphoneConfig {
    /// How long a call waits, the customer on hold music, for an agent's console that went
    /// away mid-call (a page reload) to come back before it ends.
    pub reattach_grace_s: u64,
}

impl Default for SoftphoneConfig {
    fn default() -> Self {
        SoftphoneConfig {
            reattach_grace_s: 30,
        }
    }
}

/// The lead database (`[leads]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeadsConfig {
    /// Country calling code for national numbers (`030 123456` is `+4930123456` with 49).
    pub default_country: String,
    /// Days between follow-ups per grade; C and invalid leads get no agent calls.
    pub cadence_days: crate::leads::Cadence,
    /// Result codes for calls outside a queue (direct calls, calls placed from the console)
    /// and for queues without their own list.
    pub dispositions: Vec<String>,
    /// Working days a sales manager has to accept or reject a hot-lead report; silence
    /// accepts it. Working days are Monday to Friday in `[dialing] time_zone`, less
    /// `[dialing] holidays`.
    pub hot_lead_review_days: u32,
}

impl Default for LeadsConfig {
    fn default() -> Self {
        LeadsConfig {
            default_country: "49".into(),
            cadence_days: crate::leads::Cadence::default(),
            dispositions: [
                "reached",
                "callback",
                "appointment",
                "not_interested",
                "wrong_number",
                "no_answer",
                "busy",
                "do_not_call",
            ]
            .map(String::from)
            .to_vec(),
            hot_lead_review_days: 5,
        }
    }
}

impl Config {
    /// The calendar hot-lead reviews run on.
    pub fn hot_review(&self) -> Result<crate::hot::ReviewCalendar, String> {
        crate::hot::ReviewCalendar::new(
            &self.dialing.time_zone,
            &self.dialing.holidays,
            self.leads.hot_lead_review_days,
        )
        .map_err(|e| format!("hot-lead reviews: {e}"))
    }
}

/// Calls agents place from their consoles (`[dialing]`): when customers may be called.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DialingConfig {
    /// The customers' time zone, in which the calling hours are read (IANA name).
    pub time_zone: String,
    /// When customers may be called: `{ days = ["Mon-Fri"], from = "09:00", to = "20:00" }`
    /// periods. Empty: at any time.
    pub calling_hours: Vec<crate::ivr::hours::PeriodSpec>,
    /// Days on which no customer is called (`YYYY-MM-DD`, local dates).
    pub holidays: Vec<String>,
}

impl Default for DialingConfig {
    fn default() -> Self {
        let period = |days: &str, from: &str, to: &str| crate::ivr::hours::PeriodSpec {
            days: vec![days.into()],
            from: from.into(),
            to: to.into(),
        };
        DialingConfig {
            time_zone: "Europe/Berlin".into(),
            calling_hours: vec![
                period("Mon-Fri", "08:00", "20:00"),
                period("Sat", "10:00", "16:00"),
            ],
            holidays: Vec::new(),
        }
    }
}

impl DialingConfig {
    /// The calling hours, `None` when customers may be called at any time; the problems
    /// found when they cannot be used.
    pub fn calling_hours(&self) -> Result<Option<crate::ivr::hours::BusinessHours>, String> {
        if self.calling_hours.is_empty() {
            return Ok(None);
        }
        let (hours, problems) = crate::ivr::hours::BusinessHours::from_spec(
            &self.time_zone,
            &self.calling_hours,
            &self.holidays,
        );
        match problems.first() {
            None => Ok(Some(hours)),
            // The flows' word for the list is `periods`; here it is `calling_hours`.
            Some(p) => Err(format!(
                "dialing: {}",
                p.replace("`periods", "`calling_hours")
            )),
        }
    }
}

/// Live supervision (`[supervision]`): supervisors monitor agents' calls from a SIP phone by
/// dialing `monitor_prefix` followed by the agent's extension (`*331001`), then switch modes
/// with keys: 1 listen, 2 whisper, 3 barge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// Digits and `*` only (`#` would need escaping in a SIP URI); empty turns it off.
    pub monitor_prefix: String,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        SupervisionConfig {
            monitor_prefix: "*33".into(),
        }
    }
}

/// Call handling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CallSettings {
    /// An agent who does not answer within this is given up on (the caller hears 480).
    pub ring_timeout_s: u64,
    /// Concurrent calls beyond which new INVITEs get 503 + Retry-After.
    pub max_concurrent: usize,
    /// On SIGTERM, calls may finish by themselves for this long before they are ended.
    pub shutdown_grace_s: u64,
    /// New calls per second from one source address (burst twice that); 0 = no limit.
    pub max_rate_per_source: u32,
}

impl Default for CallSettings {
    fn default() -> Self {
        CallSettings {
            ring_timeout_s: 30,
            max_concurrent: 2000,
            shutdown_grace_s: 30,
            max_rate_per_source: 200,
        }
    }
}

impl MediaConfig {
    pub fn port_range(&self) -> Result<(u16, u16), String> {
        let (a, b) = self
            .rtp_ports
            .split_once('-')
            .ok_or_else(|| format!("media.rtp_ports {:?}: expected LOW-HIGH", self.rtp_ports))?;
        let lo: u16 = a
            .trim()
            .parse()
            .map_err(|_| "media.rtp_ports: bad low port".to_string())?;
        let hi: u16 = b
            .trim()
            .parse()
            .map_err(|_| "media.rtp_ports: bad high port".to_string())?;
        if lo == 0 || lo > hi || hi - lo < 1 {
            return Err(format!("media.rtp_ports {:?}: empty range", self.rtp_ports));
        }
        Ok((lo, hi))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// sqlx URL; empty means `sqlite://<data_dir>/cti.db`.
    pub database_url: String,
    pub recordings_dir: PathBuf,
    /// Demo leads loaded into an empty lead table at start (CSV, see `config/demo-leads.csv`).
    pub seed_leads: Option<PathBuf>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: "data".into(),
            database_url: String::new(),
            recordings_dir: "recordings".into(),
            seed_leads: None,
        }
    }
}

impl StorageConfig {
    pub fn database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}", self.data_dir.join("cti.db").display())
        } else {
            self.database_url.clone()
        }
    }
}

/// The IVR: where the flows are and which flow a dialed number starts in.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvrConfig {
    /// The flow directory (one `*.toml` per flow, prompts beside them).
    pub dir: PathBuf,
    /// The flow for a dialed number not in `did`.
    pub entry: String,
    /// Dialed number (DID) → flow, e.g. `[ivr.did] "5551000" = "main"`.
    pub did: BTreeMap<String, String>,
    /// The IVR's main number: calls to it start in `entry`. Empty: only the DIDs reach flows.
    pub number: String,
    /// Hold music for queues without their own (`hold_music` in `[[queues]]`).
    pub hold_music: PathBuf,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            dir: "ivr-scripts".into(),
            entry: "main".into(),
            did: BTreeMap::new(),
            number: "100".into(),
            hold_music: "ivr-scripts/prompts/hold-music.wav".into(),
        }
    }
}

impl IvrConfig {
    /// The flow a call to `dialed` starts in.
    pub fn entry_for(&self, dialed: &str) -> &str {
        self.did.get(dialed).map_or(&self.entry, String::as_str)
    }

    /// Every flow name the configuration refers to, with the key that names it.
    pub fn flow_references(&self) -> Vec<(String, &str)> {
        std::iter::once(("ivr.entry".to_string(), self.entry.as_str()))
            .chain(
                self.did
                    .iter()
                    .map(|(did, flow)| (format!("ivr.did.{did:?}"), flow.as_str())),
            )
            .collect()
    }

    fn check(&self) -> Result<(), String> {
        for (key, flow) in self.flow_references() {
            if flow.is_empty()
                || !flow
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "{key} = {flow:?} is not a flow name (the file name without .toml)"
                ));
            }
        }
        for did in self.did.keys() {
            let digits = did.strip_prefix('+').unwrap_or(did);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "ivr.did: {did:?} is not a dialed number (digits, optional +)"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// tracing filter, e.g. "info" or "cti_server=debug".
    pub level: String,
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            json: false,
        }
    }
}

/// The outbound trunk: calls to external numbers go to a carrier's SIP server, answering its
/// digest challenges with these credentials (RFC 3261 §22.2).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrunkConfig {
    /// The trunk's address, an IP literal (no DNS); unset means no trunk.
    pub host: Option<std::net::IpAddr>,
    pub port: u16,
    pub transport: TrunkTransport,
    /// Digest credentials; both or neither.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Host of the From, To and Request-URI of calls to the trunk; defaults to `host`.
    pub domain: Option<String>,
    /// Caller id user presented to the trunk instead of the caller's number.
    pub from_user: Option<String>,
    /// A dialed number that is not an agent extension is external when it is `+`? followed
    /// by at least this many digits.
    pub min_digits: usize,
}

impl Default for TrunkConfig {
    fn default() -> Self {
        TrunkConfig {
            host: None,
            port: 5060,
            transport: TrunkTransport::Udp,
            username: None,
            password: None,
            domain: None,
            from_user: None,
            min_digits: 7,
        }
    }
}

/// The password stays out of logs and error messages.
impl std::fmt::Debug for TrunkConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrunkConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("domain", &self.domain)
            .field("from_user", &self.from_user)
            .field("min_digits", &self.min_digits)
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    Udp,
    Tcp,
}

impl TrunkConfig {
    /// The domain for From/To/Request-URI: `domain`, else the host's address.
    pub fn domain(&self) -> Option<String> {
        self.domain.clone().or_else(|| {
            self.host.map(|h| match h {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                // RFC 3261 §19.1.1: an IPv6 host in a SIP URI is bracketed.
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            })
        })
    }

    fn check(&self) -> Result<(), String> {
        let Some(_) = self.host else {
            for (key, set) in [
                ("username", self.username.is_some()),
                ("password", self.password.is_some()),
                ("domain", self.domain.is_some()),
                ("from_user", self.from_user.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "trunk.{key} is set but trunk.host is not (the trunk's IP address)"
                    ));
                }
            }
            return Ok(());
        };
        if self.port == 0 {
            return Err("trunk.port must not be 0".into());
        }
        match (&self.username, &self.password) {
            (Some(u), Some(_)) if u.is_empty() || u.contains(['"', '\\']) => {
                return Err(format!(
                    "trunk.username {u:?} must be non-empty, without quotes or backslashes"
                ));
            }
            (Some(_), None) => {
                return Err("trunk.username is set without trunk.password".into());
            }
            (None, Some(_)) => {
                return Err("trunk.password is set without trunk.username".into());
            }
            _ => {}
        }
        if let Some(d) = &self.domain
            && (d.is_empty()
                || crate::sip::SipUri::parse(&format!("sip:x@{d}"))
                    .map_or(true, |u| u.port.is_some() || u.host != *d))
        {
            return Err(format!(
                "trunk.domain {d:?} is not a host name or address (no port: set trunk.port)"
            ));
        }
        if let Some(u) = &self.from_user
            && (u.is_empty()
                || !u
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-_.".contains(&b)))
        {
            return Err(format!(
                "trunk.from_user {u:?} must be a number or a user name (letters, digits, + - _ .)"
            ));
        }
        if !(1..=15).contains(&self.min_digits) {
            return Err(format!(
                "trunk.min_digits {} must be between 1 and 15 (E.164 numbers have at most 15 digits)",
                self.min_digits
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub extension: String,
    pub name: String,
    pub password: String,
    /// A fixed contact URI for a phone that does not register (e.g. behind a PBX).
    pub contact: Option<String>,
    /// Calls the agent's endpoint carries at once (hold one, take another).
    #[serde(default = "default_lines")]
    pub lines: usize,
    /// Skill name → level, e.g. `skills = { sales = 5 }`: the queues of these skills offer
    /// the agent their callers (`top-down` queues the highest level first).
    #[serde(default)]
    pub skills: std::collections::BTreeMap<String, u8>,
    /// `agent` (the default), `supervisor` or `admin`.
    #[serde(default)]
    pub role: crate::access::Role,
    /// The skill groups a supervisor is responsible for: they may monitor the agents who
    /// have one of these skills.
    #[serde(default)]
    pub supervises: Vec<String>,
}

fn default_lines() -> usize {
    2
}

/// A `[[queues]]` entry: one ACD queue (skill group). Times are whole seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSettings {
    pub name: String,
    /// A number that reaches the queue directly (no IVR), e.g. for transfers.
    pub number: Option<String>,
    /// Agents with this skill serve the queue; defaults to the queue's name.
    pub skill: Option<String>,
    #[serde(default)]
    pub strategy: crate::acd::Strategy,
    #[serde(default = "default_ring_timeout_s")]
    pub ring_timeout_s: u64,
    #[serde(default = "default_wrap_up_s")]
    pub wrap_up_s: u64,
    /// Unset: callers wait without limit.
    pub max_wait_s: Option<u64>,
    /// Unset: no limit.
    pub max_length: Option<usize>,
    /// `{ queue = "x" }`, `{ agent = "1001" }`, `{ voicemail = "box" }`, `{ flow = "f" }`,
    /// `{ external = "+49..." }` or `"hangup"` (the default).
    #[serde(default)]
    pub overflow: crate::acd::OverflowTarget,
    pub widen: Option<WidenSettings>,
    /// 0: no announcements.
    #[serde(default)]
    pub announce_every_s: u64,
    #[serde(default = "default_no_answer_break_after")]
    pub no_answer_break_after: u32,
    #[serde(default)]
    pub priority: u8,
    pub hold_music: Option<PathBuf>,
    /// Seconds before an agent whose offer failed is offered the same caller again.
    #[serde(default = "default_retry_s")]
    pub retry_s: u64,
    /// Whether this queue's calls are recorded; unset: `recording.policy`.
    pub recording: Option<RecordingPolicy>,
    /// Days this queue's recordings are kept; unset: `recording.retention_days`.
    pub retention_days: Option<f64>,
    /// The service-level target: callers answered within this many seconds count as served
    /// in time (the floor's "80 % in 20 s").
    #[serde(default = "default_service_level_s")]
    pub service_level_s: u64,
    /// Result codes for this queue's calls. When set, an agent's wrap-up lasts until they
    /// record one for the call (they cannot go available before); unset: the codes of
    /// `leads.dispositions`, not enforced.
    #[serde(default)]
    pub dispositions: Vec<String>,
}

fn default_service_level_s() -> u64 {
    20
}

/// `widen = { after_s = 30, skill = "service" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WidenSettings {
    pub after_s: u64,
    pub skill: String,
}

fn default_ring_timeout_s() -> u64 {
    crate::acd::config::DEFAULT_RING_TIMEOUT_S
}

fn default_wrap_up_s() -> u64 {
    crate::acd::config::DEFAULT_WRAP_UP_S
}

fn default_retry_s() -> u64 {
    crate::acd::config::DEFAULT_RETRY_S
}

fn default_no_answer_break_after() -> u32 {
    crate::acd::config::DEFAULT_NO_ANSWER_BREAK_AFTER
}

impl QueueSettings {
    pub fn to_queue_config(&self) -> crate::acd::QueueConfig {
        use std::time::Duration;
        crate::acd::QueueConfig {
            name: self.name.clone(),
            skill: self.skill.clone().unwrap_or_else(|| self.name.clone()),
            strategy: self.strategy,
            ring_timeout: Duration::from_secs(self.ring_timeout_s),
            wrap_up: Duration::from_secs(self.wrap_up_s),
            max_wait: self.max_wait_s.map(Duration::from_secs),
            max_length: self.max_length,
            overflow: self.overflow.clone(),
            widen: self.widen.as_ref().map(|w| crate::acd::Widen {
                after: Duration::from_secs(w.after_s),
                skill: w.skill.clone(),
            }),
            announce_every: (self.announce_every_s > 0)
                .then(|| Duration::from_secs(self.announce_every_s)),
            no_answer_break_after: self.no_answer_break_after,
            default_priority: self.priority,
            hold_music: self.hold_music.clone(),
            retry: Duration::from_secs(self.retry_s),
            dispositions: self.dispositions.clone(),
        }
    }
}

impl Config {
    /// Loads `path` and applies `overrides` (`section.key=value`; the value is read as TOML
    /// when it parses as such, else as a string).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_str_with_overrides(path, &text, overrides)
    }

    pub fn from_str_with_overrides(
        path: &Path,
        text: &str,
        overrides: &[String],
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        // Syntax and types are checked on the file alone first, so errors carry its lines.
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        toml::from_str::<Config>(text).map_err(|e| invalid(e.to_string()))?;
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
            let parts: Vec<&str> = key.trim().split('.').collect();
            // Usually section.key; a top-level key (the `agents` list) is allowed too.
            if parts.iter().any(|p| p.is_empty()) {
                return Err(ConfigError::BadOverride(o.clone()));
            }
            let value = parse_override_value(value.trim());
            let mut table = &mut doc;
            for p in &parts[..parts.len() - 1] {
                let entry = table
                    .entry(p.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                table = entry
                    .as_table_mut()
                    .ok_or_else(|| ConfigError::BadOverride(o.clone()))?;
            }
            table.insert(parts[parts.len() - 1].to_string(), value);
        }
        let config = Config::deserialize(toml::Value::Table(doc))
            .map_err(|e| invalid(format!("after --set overrides: {e}")))?;
        config.check().map_err(invalid)?;
        if let Err(e) = crate::acd::AcdConfig::from_config(&config).validate() {
            // Cross-references are checked on the merged config; the line comes from the file.
            return Err(invalid(match queue_key_line(text, &e) {
                Some(line) => format!("line {line}: {e}"),
                None => e.to_string(),
            }));
        }
        Ok(config)
    }

    /// The configured digest algorithms (validated by [`Config::load`]).
    pub fn digest_algorithms(&self) -> Vec<crate::sip::auth::Algorithm> {
        self.sip
            .digest_algorithms
            .iter()
            .filter_map(|a| crate::sip::auth::Algorithm::parse(a))
            .collect()
    }

    /// The HTTPS listen address (validated by [`Config::load`]).
    pub fn https_listen(&self) -> Option<SocketAddr> {
        optional_listen("http.tls_listen", &self.http.tls_listen)
            .ok()
            .flatten()
    }

    /// The SIP-over-TLS listen address (validated by [`Config::load`]).
    pub fn sips_listen(&self) -> Option<SocketAddr> {
        optional_listen("sip.tls_listen", &self.sip.tls_listen)
            .ok()
            .flatten()
    }

    /// Checks that types alone cannot express.
    fn check(&self) -> Result<(), String> {
        optional_listen("http.tls_listen", &self.http.tls_listen)?;
        optional_listen("sip.tls_listen", &self.sip.tls_listen)?;
        if !self.http.listen.ip().is_loopback() && !self.http.allow_plain {
            return Err(format!(
                "http.listen = {}: plain HTTP only listens on a loopback address (passwords and \
                 session cookies would cross the network in the clear). Agents on other \
                 machines use http.tls_listen (HTTPS); set http.allow_plain = true only behind \
                 a proxy that adds TLS",
                self.http.listen
            ));
        }
        if let (Some(_), None) | (None, Some(_)) = self.tls.files() {
            return Err(
                "tls.cert and tls.key go together: set both, or neither for a \
                        self-signed certificate"
                    .into(),
            );
        }
        if self.sip.digest_algorithms.is_empty() {
            return Err("sip.digest_algorithms must name at least one algorithm".into());
        }
        for a in &self.sip.digest_algorithms {
            if crate::sip::auth::Algorithm::parse(a).is_none() {
                return Err(format!(
                    "sip.digest_algorithms: unknown algorithm {a:?} (MD5 or SHA-256)"
                ));
            }
        }
        self.media.port_range()?;
        self.dialing.calling_hours()?;
        self.hot_review()?;
        crate::disposition::check_codes("leads.dispositions", &self.leads.dispositions)?;
        if self.leads.dispositions.is_empty() {
            return Err("leads.dispositions: at least one result code".into());
        }
        for q in &self.queues {
            crate::disposition::check_codes(
                &format!("queue {:?} dispositions", q.name),
                &q.dispositions,
            )?;
        }
        if self.sip.min_expires > self.sip.max_expires {
            return Err("sip.min_expires is larger than sip.max_expires".into());
        }
        if self.sip.t1_ms == 0 || self.sip.t2_ms < self.sip.t1_ms {
            return Err("sip.t1_ms must be > 0 and sip.t2_ms >= sip.t1_ms".into());
        }
        self.trunk.check()?;
        self.ivr.check()?;
        let mut seen = std::collections::HashSet::new();
        for a in &self.agents {
            if a.extension.is_empty() || !a.extension.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "agents: extension {:?} must be alphanumeric",
                    a.extension
                ));
            }
            if !seen.insert(&a.extension) {
                return Err(format!("agents: extension {} appears twice", a.extension));
            }
            if let Some(c) = &a.contact
                && crate::sip::SipUri::parse(c).is_err()
            {
                return Err(format!(
                    "agents.contact {c:?} of {} is not a SIP URI",
                    a.extension
                ));
            }
        }
        let groups: std::collections::BTreeSet<&str> = self
            .agents
            .iter()
            .flat_map(|a| a.skills.keys().map(String::as_str))
            .chain(
                self.queues
                    .iter()
                    .map(|q| q.skill.as_deref().unwrap_or(&q.name)),
            )
            .collect();
        for a in &self.agents {
            if !a.supervises.is_empty() && a.role == crate::access::Role::Agent {
                return Err(format!(
                    "agents: {} supervises groups but has role \"agent\" (set role = \"supervisor\")",
                    a.extension
                ));
            }
            if let Some(g) = a.supervises.iter().find(|g| !groups.contains(g.as_str())) {
                return Err(format!(
                    "agents: {} supervises {g:?}, which no queue or agent has as a skill",
                    a.extension
                ));
            }
        }
        let bad_days = |d: Option<f64>| d.is_some_and(|d| !d.is_finite() || d < 0.0);
        if bad_days(self.recording.retention_days)
            || self.queues.iter().any(|q| bad_days(q.retention_days))
        {
            return Err("retention_days must be a number of days, 0 or more".into());
        }
        if self.recording.retention_sweep_s == 0 {
            return Err("recording.retention_sweep_s must be at least 1".into());
        }
        let code = &self.recording.keypad_code;
        if code.chars().count() > 8
            || !code
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
        {
            return Err(format!(
                "recording.keypad_code {code:?}: up to 8 keys of 0-9, *, #, A-D"
            ));
        }
        let cc = &self.leads.default_country;
        if cc.is_empty()
            || cc.len() > 3
            || !cc.bytes().all(|b| b.is_ascii_digit())
            || cc.starts_with('0')
        {
            return Err(format!(
                "leads.default_country {cc:?}: a country calling code, 1 to 3 digits (49, 1, 86)"
            ));
        }
        let prefix = &self.supervision.monitor_prefix;
        if !prefix.bytes().all(|b| b.is_ascii_digit() || b == b'*') {
            return Err(format!(
                "supervision.monitor_prefix {prefix:?}: digits and * only"
            ));
        }
        Ok(())
    }
}

/// The line in `text` of the queue key an ACD configuration error names (the queue's `name`
/// line when the key itself is absent); `None` when the file does not hold that queue (it
/// came from an override).
fn queue_key_line(text: &str, e: &crate::acd::AcdConfigError) -> Option<usize> {
    /// Only the spans of the file's queue entries; every other key is ignored here.
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        queues: Vec<toml::Spanned<toml::Table>>,
    }
    let name = e.queue.as_deref()?;
    let file: File = toml::from_str(text).ok()?;
    let queue = file
        .queues
        .iter()
        .find(|q| q.get_ref().get("name").and_then(|n| n.as_str()) == Some(name))?;
    let start = queue.span().start;
    let block = text.get(start..queue.span().end)?;
    // The key's own line within the entry, else the entry's header.
    let offset = block
        .lines()
        .scan(0, |pos, line| {
            let at = *pos;
            *pos += line.len() + 1;
            Some((at, line))
        })
        .find(|(_, line)| {
            line.trim_start()
                .strip_prefix(e.key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(0, |(at, _)| at);
    Some(text[..start + offset].matches('\n').count() + 1)
}

fn parse_override_value(v: &str) -> toml::Value {
    // A bare TOML value (number, bool, array, quoted string) parses inside a one-key document.
    match toml::from_str::<toml::Table>(&format!("v = {v}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(v.into())),
        Err(_) => toml::Value::String(v.to_string()),
    }
}

impl Config {
    /// How long recordings are kept, per queue and otherwise.
    pub fn retention(&self) -> crate::retention::RetentionPolicy {
        use crate::retention::days;
        crate::retention::RetentionPolicy {
            default: days(self.recording.retention_days),
            queues: self
                .queues
                .iter()
                .filter_map(|q| days(q.retention_days).map(|d| (q.name.clone(), d)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_apply_and_parse_types() {
        let c = Config::from_str_with_overrides(
            Path::new("x.toml"),
            "[sip]\nlisten = \"127.0.0.1:5999\"\n",
            &[
                "sip.listen=127.0.0.1:6000".into(),
                "sip.t1_ms=100".into(),
                "storage.data_dir=/tmp/d".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.sip.listen.port(), 6000);
        assert_eq!(c.sip.t1_ms, 100);
        assert_eq!(c.storage.database_url(), "sqlite:///tmp/d/cti.db");
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = Config::from_str_with_overrides(
            Path::new("bad.toml"),
            "[sip]\ndomain = \"x\"\nlisten = 5\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("bad.toml"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("listen"), "{e}");
        let e = Config::from_str_with_overrides(Path::new("c.toml"), "[sip]\nlisen = 1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("lisen") && e.contains("line 2"), "{e}");
        let e = Config::from_str_with_overrides(
            Path::new("c.toml"),
            "[media]\nrtp_ports = \"9-3\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("rtp_ports"), "{e}");
        assert!(
            Config::from_str_with_overrides(Path::new("c.toml"), "", &["nodot=1".into()]).is_err()
        );
    }

    #[test]
    fn ivr_entry_and_did_map() {
        let c = Config::from_str_with_overrides(
            Path::new("i.toml"),
            "[ivr]\ndir = \"flows\"\nentry = \"main\"\n[ivr.did]\n\"5551000\" = \"menu\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.ivr.dir, Path::new("flows"));
        assert_eq!(c.ivr.entry_for("5551000"), "menu");
        assert_eq!(c.ivr.entry_for("5559999"), "main");
        let d = Config::from_str_with_overrides(Path::new("i.toml"), "", &[]).unwrap();
        assert_eq!(d.ivr.entry_for("1"), "main");

        for (text, needle) in [
            ("[ivr]\nentry = \"\"\n", "ivr.entry"),
            ("[ivr]\nentry = \"a/b\"\n", "ivr.entry"),
            ("[ivr.did]\n\"5551000\" = \"no such\"\n", "5551000"),
            ("[ivr.did]\n\"sales\" = \"main\"\n", "ivr.did"),
            ("[ivr]\nentyr = \"main\"\n", "entyr"),
        ] {
            let e = Config::from_str_with_overrides(Path::new("i.toml"), text, &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains("i.toml"), "{text}: {e}");
        }
    }

    fn trunk(sets: &[&str]) -> Result<Config, String> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::from_str_with_overrides(Path::new("t.toml"), "", &sets).map_err(|e| e.to_string())
    }

    #[test]
    fn trunk_is_optional_and_defaults_apply() {
        let c = trunk(&[]).unwrap();
        assert!(c.trunk.host.is_none());
        let c = trunk(&[
            "trunk.host=192.0.2.7",
            "trunk.username=acct",
            "trunk.password=pw",
        ])
        .unwrap();
        assert_eq!(c.trunk.port, 5060);
        assert_eq!(c.trunk.transport, TrunkTransport::Udp);
        assert_eq!(c.trunk.min_digits, 7);
        assert_eq!(c.trunk.domain().as_deref(), Some("192.0.2.7"));
        assert!(
            !format!("{:?}", c.trunk).contains("pw"),
            "password redacted"
        );
        let c = trunk(&["trunk.host=::1", "trunk.transport=tcp"]).unwrap();
        assert_eq!(c.trunk.domain().as_deref(), Some("[::1]"));
        assert_eq!(c.trunk.transport, TrunkTransport::Tcp);
    }

    #[test]
    fn trunk_errors_name_the_key() {
        for (sets, key) in [
            (&["trunk.host=sip.carrier.example"][..], "host"),
            (
                &["trunk.username=a", "trunk.password=b"][..],
                "trunk.username",
            ),
            (
                &["trunk.host=192.0.2.7", "trunk.username=a"][..],
                "trunk.password",
            ),
            (
                &["trunk.host=192.0.2.7", "trunk.password=b"][..],
                "trunk.username",
            ),
            (&["trunk.host=192.0.2.7", "trunk.transport=tls"][..], "tls"),
            (
                &["trunk.host=192.0.2.7", "trunk.domain=a b"][..],
                "trunk.domain",
            ),
            (
                &["trunk.host=192.0.2.7", "trunk.domain=x.example:5070"][..],
                "trunk.domain",
            ),
            (
                &["trunk.host=192.0.2.7", "trunk.from_user=a@b"][..],
                "trunk.from_user",
            ),
            (
                &["trunk.host=192.0.2.7", "trunk.min_digits=0"][..],
                "trunk.min_digits",
            ),
            (&["trunk.host=192.0.2.7", "trunk.port=0"][..], "trunk.port"),
            (&["trunk.host=192.0.2.7", "trunk.pasword=x"][..], "pasword"),
        ] {
            let e = trunk(sets)
                .err()
                .unwrap_or_else(|| panic!("{sets:?} accepted"));
            assert!(e.contains(key), "{sets:?}: {e}");
        }
    }

    #[test]
    fn the_demo_config_has_two_queues_and_skilled_agents() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/cti.toml"));
        let c = Config::load(path, &[]).unwrap();
        let acd = crate::acd::AcdConfig::from_config(&c);
        let sales = &acd.queues[0];
        assert_eq!(sales.name, "sales");
        assert_eq!(sales.strategy, crate::acd::Strategy::LongestIdle);
        assert_eq!(sales.ring_timeout, std::time::Duration::from_secs(15));
        assert_eq!(sales.max_wait, Some(std::time::Duration::from_secs(60)));
        assert_eq!(
            sales.overflow,
            crate::acd::OverflowTarget::Queue("service".into())
        );
        let service = &acd.queues[1];
        assert_eq!(
            service.overflow,
            crate::acd::OverflowTarget::Voicemail("general".into())
        );
        assert_eq!(service.max_wait, Some(std::time::Duration::from_secs(120)));
        let skills: Vec<(&str, Vec<&String>)> = acd
            .agents
            .iter()
            .map(|a| (a.id.as_str(), a.skills.keys().collect()))
            .collect();
        assert_eq!(skills[0].0, "1001");
        assert_eq!(skills[0].1, ["sales"]);
        assert_eq!(skills[3].1, ["service"]);
    }

    #[test]
    fn queue_settings_have_defaults_and_parse_every_target() {
        let c = Config::from_str_with_overrides(
            Path::new("q.toml"),
            "[[queues]]\nname = \"a\"\nwiden = { after_s = 5, skill = \"b\" }\n\n[[queues]]\nname = \"b\"\nstrategy = \"ring-all\"\noverflow = { external = \"+4930123\" }\nannounce_every_s = 20\nmax_length = 3\n",
            &[],
        )
        .unwrap();
        let acd = crate::acd::AcdConfig::from_config(&c);
        let a = &acd.queues[0];
        assert_eq!(a.skill, "a", "skill defaults to the name");
        assert_eq!(a.overflow, crate::acd::OverflowTarget::Hangup);
        assert_eq!(a.max_wait, None);
        assert_eq!(a.announce_every, None);
        assert_eq!(a.widen.as_ref().map(|w| w.skill.as_str()), Some("b"));
        let b = &acd.queues[1];
        assert_eq!(b.strategy, crate::acd::Strategy::RingAll);
        assert_eq!(
            b.overflow,
            crate::acd::OverflowTarget::External("+4930123".into())
        );
        assert_eq!(b.announce_every, Some(std::time::Duration::from_secs(20)));
        assert_eq!(b.max_length, Some(3));
    }

    #[test]
    fn queue_errors_name_the_line_key_or_queue() {
        let parse = |text: &str| {
            Config::from_str_with_overrides(Path::new("q.toml"), text, &[])
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        let e = parse("[[queues]]\nname = \"a\"\nstrategy = \"fastest\"\n");
        assert!(e.contains("line 3") && e.contains("fastest"), "{e}");
        let e = parse("[[queues]]\nname = \"a\"\nring_timeout = 5\n");
        assert!(e.contains("line 3") && e.contains("ring_timeout"), "{e}");
        let e = parse("[[queues]]\nname = \"a\"\noverflow = { queue = \"servce\" }\n");
        assert!(
            e.contains("q.toml")
                && e.contains("line 3")
                && e.contains("\"servce\"")
                && e.contains("overflow"),
            "{e}"
        );
        let e = parse("[[queues]]\nname = \"a\"\noverflow = { agent = \"9999\" }\n");
        assert!(e.contains("\"9999\""), "{e}");
        let e = parse("[[queues]]\nname = \"a\"\n[[queues]]\nname = \"a\"\n");
        assert!(e.contains("twice") && e.contains("line 2"), "{e}");
        let e = parse(
            "[sip]\ndomain = \"x\"\n\n[[queues]]\nname = \"a\"\noverflow = { queue = \"b\" }\n\n[[queues]]\nname = \"b\"\noverflow = { queue = \"a\" }\n",
        );
        assert!(
            e.contains("loop a -> b -> a") && e.contains("line 6"),
            "{e}"
        );
        let e = parse("[[queues]]\nname = \"a\"\noverflow = { mailbox = \"x\" }\n");
        assert!(e.contains("line 3") && e.contains("mailbox"), "{e}");
        let e = parse(
            "[[agents]]\nextension = \"1\"\nname = \"n\"\npassword = \"p\"\nskills = { sales = 300 }\n",
        );
        assert!(e.contains("line 5"), "{e}");
    }
}
