//! Configuration: a TOML file (default `config/cti.toml`) with `--set section.key=value`
//! overrides applied on top, so tests and operators can run several instances.

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
    #[serde(default)]
    pub media: MediaConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub ivr: IvrConfig,
    #[serde(default)]
    pub call: CallSettings,
    #[serde(default)]
    pub log: LogConfig,
    /// Agents allowed to register (and their static contacts, for phones behind a PBX).
    #[serde(default)]
    pub agents: Vec<AgentConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP and TCP listen address.
    pub listen: SocketAddr,
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
}

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: "0.0.0.0:5060".parse().expect("valid literal"),
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
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8088".parse().expect("valid literal"),
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
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            rtp_ports: "30000-39999".into(),
            timeout_s: 30,
            advertised_ip: None,
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
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            data_dir: "data".into(),
            database_url: String::new(),
            recordings_dir: "recordings".into(),
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IvrConfig {
    pub dir: PathBuf,
}

impl Default for IvrConfig {
    fn default() -> Self {
        IvrConfig {
            dir: "ivr-scripts".into(),
        }
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
}

fn default_lines() -> usize {
    2
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
            if parts.len() < 2 || parts.iter().any(|p| p.is_empty()) {
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

    /// Checks that types alone cannot express.
    fn check(&self) -> Result<(), String> {
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
        if self.sip.min_expires > self.sip.max_expires {
            return Err("sip.min_expires is larger than sip.max_expires".into());
        }
        if self.sip.t1_ms == 0 || self.sip.t2_ms < self.sip.t1_ms {
            return Err("sip.t1_ms must be > 0 and sip.t2_ms >= sip.t1_ms".into());
        }
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
        Ok(())
    }
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
}
