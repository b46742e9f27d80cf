//! The UDP port range legs take their sockets from. A [`PortLease`] returns its port when
//! dropped, so a leg that ends (or a task that dies) can never leak one.
//!
//! Plain RTP legs take a pair ([`PortPool::bind_pair`]): an even RTP port and the odd port
//! above it for RTCP (RFC 3550 §11), so a peer that does not multiplex RTCP can reach us on
//! RTP port + 1. Browser legs (always rtcp-mux) take any single port ([`PortPool::bind`]).

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

/// An RTP/RTCP socket pair from [`PortPool::bind_pair`]: RTP on an even port, RTCP on the
/// port above it. Drop the sockets before (or with) the leases.
#[derive(Debug)]
pub struct BoundPair {
    /// The RTP socket (even port).
    pub rtp: UdpSocket,
    /// The RTCP socket (RTP port + 1).
    pub rtcp: UdpSocket,
    /// The RTP port's lease.
    pub rtp_lease: PortLease,
    /// The RTCP port's lease.
    pub rtcp_lease: PortLease,
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

    /// Takes an even port whose odd neighbour is free too (both in the pool), searching
    /// from the cursor and wrapping around.
    fn take_pair(&self) -> Option<(PortLease, PortLease)> {
        let mut inner = self.lock();
        let pair_at = |p: &&u16| {
            (**p).is_multiple_of(2) && p.checked_add(1).is_some_and(|q| inner.free.contains(&q))
        };
        let port = inner
            .free
            .range(inner.cursor..)
            .find(pair_at)
            .or_else(|| inner.free.iter().find(pair_at))
            .copied()?;
        inner.free.remove(&port);
        inner.free.remove(&(port + 1));
        inner.cursor = port.wrapping_add(2);
        let lease = |port| PortLease {
            port,
            pool: self.inner.clone(),
        };
        Some((lease(port), lease(port + 1)))
    }

    /// Binds two non-blocking UDP sockets on `ip`: RTP at an even port of the pool and RTCP
    /// at the port above it (RFC 3550 §11). A pair whose odd port is leased, outside the
    /// pool, or held by another process is skipped (and its ports returned for later).
    pub fn bind_pair(&self, ip: IpAddr) -> std::io::Result<BoundPair> {
        let mut busy = Vec::new();
        let total = self.total();
        for _ in 0..total / 2 + 1 {
            let Some((rtp_lease, rtcp_lease)) = self.take_pair() else {
                break;
            };
            let bound = UdpSocket::bind(SocketAddr::new(ip, rtp_lease.port())).and_then(|rtp| {
                let rtcp = UdpSocket::bind(SocketAddr::new(ip, rtcp_lease.port()))?;
                rtp.set_nonblocking(true)?;
                rtcp.set_nonblocking(true)?;
                Ok((rtp, rtcp))
            });
            match bound {
                Ok((rtp, rtcp)) => {
                    return Ok(BoundPair {
                        rtp,
                        rtcp,
                        rtp_lease,
                        rtcp_lease,
                    });
                }
                Err(_) => busy.push((rtp_lease, rtcp_lease)),
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrNotAvailable,
            "no free even/odd port pair in the media port range",
        ))
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
    fn pairs_are_even_and_odd_and_both_ports_return_on_drop() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // 41021 starts the range on an odd port: it can never be an RTP port.
        let pool = PortPool::new(41021..=41026);
        let a = pool.bind_pair(ip).unwrap();
        assert_eq!((a.rtp_lease.port(), a.rtcp_lease.port()), (41022, 41023));
        assert_eq!(a.rtp.local_addr().unwrap().port(), 41022);
        assert_eq!(a.rtcp.local_addr().unwrap().port(), 41023);
        let b = pool.bind_pair(ip).unwrap();
        assert_eq!(b.rtp_lease.port(), 41024);
        assert_eq!(pool.available(), 2, "41021 and 41026 are left, no pair");
        assert!(pool.bind_pair(ip).is_err());
        drop(a);
        assert_eq!(pool.available(), 4, "both ports of the pair came back");
        drop(b);
        assert_eq!(pool.available(), 6);
    }

    #[test]
    fn a_pair_whose_odd_port_is_taken_is_skipped() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Odd port leased from the pool (a single-port browser leg holds it).
        let pool = PortPool::new(41031..=41035);
        let (_s, single) = pool.bind(ip).unwrap();
        assert_eq!(single.port(), 41031);
        let (_s2, single2) = pool.bind(ip).unwrap();
        let (_s3, single3) = pool.bind(ip).unwrap();
        assert_eq!((single2.port(), single3.port()), (41032, 41033));
        drop((_s2, single2));
        // 41032 is free but 41033 is not: the pair starts at 41034.
        let p = pool.bind_pair(ip).unwrap();
        assert_eq!(p.rtp_lease.port(), 41034);
        drop(p);
        // Odd port held by another process: skipped, and both ports go back to the pool.
        let squatter = UdpSocket::bind((ip, 41041)).unwrap();
        let pool = PortPool::new(41040..=41043);
        let p = pool.bind_pair(ip).unwrap();
        assert_eq!((p.rtp_lease.port(), p.rtcp_lease.port()), (41042, 41043));
        assert_eq!(pool.available(), 2, "41040/41041 went back to the pool");
        drop(squatter);
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
