//! The UDP port range legs take their sockets from. A [`PortLease`] returns its port when
//! dropped, so a leg that ends (or a task that dies) can never leak one.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, PoisonError};

/// A pool of UDP ports.
#[derive(Debug, Clone)]
pub struct PortPool {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    free: BTreeSet<u16>,
    total: usize,
    /// Where the next search starts, so a just-freed port is reused last (a late packet
    /// for the previous call does not land in the next one).
    cursor: u16,
}

/// One port taken from the pool; given back on drop.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    pool: Arc<Mutex<Inner>>,
}

impl PortLease {
    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        // The lock only guards a set; a poisoned one is still consistent.
        let mut inner = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        inner.free.insert(self.port);
    }
}

impl PortPool {
    /// A pool over `range` (RTP conventionally uses even ports; with rtcp-mux any port is
    /// fine and we use every one).
    pub fn new(range: RangeInclusive<u16>) -> Self {
        let free: BTreeSet<u16> = range.clone().collect();
        Self {
            inner: Arc::new(Mutex::new(Inner {
                total: free.len(),
                free,
                cursor: *range.start(),
            })),
        }
    }

    /// Ports free now.
    pub fn available(&self) -> usize {
        self.lock().free.len()
    }

    /// Ports in the pool.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take(&self) -> Option<PortLease> {
        let mut inner = self.lock();
        let port = inner
            .free
            .range(inner.cursor..)
            .next()
            .or_else(|| inner.free.iter().next())
            .copied()?;
        inner.free.remove(&port);
        inner.cursor = port.wrapping_add(1);
        Some(PortLease {
            port,
            pool: self.inner.clone(),
        })
    }

    /// Binds a non-blocking UDP socket on `ip` at a free port of the pool. Ports another
    /// process holds are skipped (and returned to the pool for later).
    pub fn bind(&self, ip: IpAddr) -> std::io::Result<(UdpSocket, PortLease)> {
        let mut busy = Vec::new();
        let total = self.total();
        for _ in 0..total {
            let Some(lease) = self.take() else { break };
            match UdpSocket::bind(SocketAddr::new(ip, lease.port())) {
                Ok(s) => {
                    s.set_nonblocking(true)?;
                    return Ok((s, lease));
                }
                Err(_) => busy.push(lease),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no free port in the media port range",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn leases_return_on_drop_and_the_pool_runs_dry_cleanly() {
        let pool = PortPool::new(41000..=41003);
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut held: Vec<_> = (0..4).map(|_| pool.bind(ip).unwrap()).collect();
        assert_eq!(pool.available(), 0);
        assert!(pool.bind(ip).is_err());
        let (_sock, lease) = held.remove(1);
        let freed = lease.port();
        drop((_sock, lease));
        assert_eq!(pool.available(), 1);
        let (_s, again) = pool.bind(ip).unwrap();
        assert_eq!(again.port(), freed);
        drop(held);
        drop((_s, again));
        assert_eq!(pool.available(), 4);
    }

    #[test]
    fn ports_in_use_elsewhere_are_skipped() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let squatter = UdpSocket::bind((ip, 41010)).unwrap();
        let pool = PortPool::new(41010..=41011);
        let (_s, lease) = pool.bind(ip).unwrap();
        assert_eq!(lease.port(), 41011);
        drop(squatter);
        assert_eq!(
            pool.available(),
            1,
            "the squatted port went back to the pool"
        );
    }
}
