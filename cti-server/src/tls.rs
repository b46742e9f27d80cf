//! TLS for the HTTP listener (HTTPS and WSS) and for SIP over TLS: the configured certificate
//! and key, or a self-signed certificate made on first start and kept in the data directory
//! (`<data_dir>/tls/`), so agents on other machines get a secure context (the browser gives a
//! page the microphone only there) and an admin can trust the certificate by its fingerprint.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client gets to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A self-signed certificate is made anew once it is this old (it is valid for 825 days,
/// the longest browsers accept for a certificate they are told to trust).
const SELF_SIGNED_RENEW_AFTER: Duration = Duration::from_secs(800 * 24 * 3600);
const SELF_SIGNED_DAYS: i64 = 825;

/// The server's TLS identity.
#[derive(Clone)]
pub struct TlsIdentity {
    /// For HTTPS and WSS (ALPN `http/1.1`).
    pub http: Arc<rustls::ServerConfig>,
    /// For SIP over TLS (no ALPN).
    pub sip: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, as colon-separated hex (what browsers show).
    pub fingerprint: String,
    /// Where the certificate is (PEM).
    pub cert_path: PathBuf,
    /// Made by the server (true) or configured.
    pub self_signed: bool,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity")
            .field("fingerprint", &self.fingerprint)
            .field("cert_path", &self.cert_path)
            .field("self_signed", &self.self_signed)
            .finish()
    }
}

/// Loads the configured certificate and key (`cert`, `key`: PEM files), or the self-signed
/// pair in `data_dir/tls/`, made (again) when missing, older than 800 days, or made for other
/// `names` than these. The error names the file and what is wrong with it.
pub fn load(
    cert: Option<&Path>,
    key: Option<&Path>,
    data_dir: &Path,
    names: &[String],
) -> Result<TlsIdentity, String> {
    let (cert_path, key_path, self_signed) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_path_buf(), k.to_path_buf(), false),
        (None, None) => {
            let (c, k) = self_signed_files(&data_dir.join("tls"), names)?;
            (c, k, true)
        }
        _ => {
            return Err(
                "tls.cert and tls.key go together: set both, or neither for a \
                        self-signed certificate"
                    .into(),
            );
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| format!("tls.cert {}: {e}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert {}: {e}", cert_path.display()))?;
    let Some(leaf) = certs.first() else {
        return Err(format!(
            "tls.cert {}: no certificate in the file",
            cert_path.display()
        ));
    };
    let fingerprint = fingerprint(leaf);
    let private_key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("tls.key {}: {e}", key_path.display()))?;
    let config = |alpn: &[&[u8]]| -> Result<Arc<rustls::ServerConfig>, String> {
        // The provider is named: the dependency graph may bring more than one, and the
        // process-wide default is then unset.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut c = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_no_client_auth()
            .with_single_cert(certs.clone(), private_key.clone_key())
            .map_err(|e| {
                format!(
                    "tls.cert {} and tls.key {}: {e}",
                    cert_path.display(),
                    key_path.display()
                )
            })?;
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(c))
    };
    Ok(TlsIdentity {
        http: config(&[b"http/1.1"])?,
        sip: config(&[])?,
        fingerprint,
        cert_path,
        self_signed,
    })
}

/// SHA-256 of a certificate, `AB:CD:...`.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The self-signed pair's files, made when needed.
fn self_signed_files(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf), String> {
    let cert = dir.join("self-signed.crt");
    let key = dir.join("self-signed.key");
    let names_file = dir.join("self-signed.names");
    let wanted = names.join("\n");
    let fresh = std::fs::metadata(&cert)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < SELF_SIGNED_RENEW_AFTER);
    let same_names = std::fs::read_to_string(&names_file).is_ok_and(|n| n == wanted);
    if fresh && same_names && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let (cert_pem, key_pem) = make_self_signed(names)?;
    write_private(&key, key_pem.as_bytes())?;
    std::fs::write(&cert, cert_pem).map_err(|e| format!("{}: {e}", cert.display()))?;
    std::fs::write(&names_file, wanted).map_err(|e| format!("{}: {e}", names_file.display()))?;
    tracing::info!(cert = %cert.display(), ?names, "self-signed TLS certificate made");
    Ok((cert, key))
}

/// A self-signed certificate for `names` (DNS names and IP addresses): PEM certificate and
/// PEM key.
pub fn make_self_signed(names: &[String]) -> Result<(String, String), String> {
    let mut params =
        rcgen::CertificateParams::new(names.to_vec()).map_err(|e| format!("TLS names: {e}"))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cti-server (self-signed)");
    let today = jiff::Zoned::now().date();
    let date = |d: jiff::civil::Date| {
        rcgen::date_time_ymd(i32::from(d.year()), d.month() as u8, d.day() as u8)
    };
    params.not_before = date(today.yesterday().unwrap_or(today));
    params.not_after = date(
        today
            .checked_add(jiff::Span::new().days(SELF_SIGNED_DAYS))
            .unwrap_or(today),
    );
    let key = rcgen::KeyPair::generate().map_err(|e| format!("TLS key: {e}"))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("TLS certificate: {e}"))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a file only its owner may read.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(bytes)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The names a self-signed certificate covers: localhost and the loopback addresses, the
/// machine's host name, the addresses the server advertises, and any configured ones.
pub fn default_names(extra: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    for n in extra {
        let n = n.trim().to_string();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// A TLS listener for `axum::serve`: TCP connections are accepted and their handshakes run in
/// tasks of their own (a slow or silent client holds up nobody); finished connections come out
/// of [`axum::serve::Listener::accept`].
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "https accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if ready.is_closed() {
            return;
        }
        let (acceptor, ready) = (acceptor.clone(), ready.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send((tls, from)).await;
                }
                Ok(Err(e)) => tracing::debug!(%from, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%from, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept loop is gone (it never ends by itself): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let names = default_names(["cti.example".to_string()]);
        let a = load(None, None, dir.path(), &names).unwrap();
        assert!(a.self_signed);
        assert_eq!(a.fingerprint.len(), 32 * 3 - 1);
        let b = load(None, None, dir.path(), &names).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint, "kept across starts");
        // Only the owner reads the key.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("tls/self-signed.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        // Other names: a new certificate.
        let c = load(None, None, dir.path(), &default_names([])).unwrap();
        assert_ne!(a.fingerprint, c.fingerprint);
    }

    #[test]
    fn configured_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = make_self_signed(&["localhost".into()]).unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &key).unwrap();
        let id = load(Some(&c), Some(&k), dir.path(), &[]).unwrap();
        assert!(!id.self_signed);
        // A key that is no key, a certificate file without a certificate, half a pair.
        std::fs::write(&k, "not a key").unwrap();
        let e = load(Some(&c), Some(&k), dir.path(), &[]).unwrap_err();
        assert!(e.contains("tls.key"), "{e}");
        std::fs::write(&c, "nothing").unwrap();
        let e = load(Some(&c), Some(&k), dir.path(), &[]).unwrap_err();
        assert!(e.contains("tls.cert"), "{e}");
        let e = load(Some(&c), None, dir.path(), &[]).unwrap_err();
        assert!(e.contains("go together"), "{e}");
        // A key that does not match the certificate.
        let (_, other_key) = make_self_signed(&["localhost".into()]).unwrap();
        std::fs::write(&c, &cert).unwrap();
        std::fs::write(&k, &other_key).unwrap();
        assert!(load(Some(&c), Some(&k), dir.path(), &[]).is_err());
    }
}
