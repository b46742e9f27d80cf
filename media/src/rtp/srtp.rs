//! SRTP and SRTCP (RFC 3711) for plain RTP legs keyed by SDES (RFC 4568): our key protects
//! what we send, the peer's what we receive. The transform itself is `rtc-srtp` (the
//! webrtc-rs team's sans-IO SRTP) on aws-lc-rs; this module only holds the two contexts of a
//! leg, with replay protection on the receiving one.

use rtc_srtp::context::Context;
use rtc_srtp::crypto::providers::AwsLcRsCrypto;
use rtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use rtc_srtp::protection_profile::ProtectionProfile;

/// Master key and salt of the AES-128 suites: 16 + 14 bytes (RFC 3711 §8.2, RFC 4568 §6.2).
pub const KEY_AND_SALT: usize = 30;
const KEY: usize = 16;

/// Packets remembered against replays (RFC 3711 §3.3.2 asks for at least 64).
const REPLAY_WINDOW: usize = 128;

/// The crypto suites of SDES we speak (RFC 4568 §6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES-128 counter mode, HMAC-SHA1 with an 80-bit tag.
    AesCm128HmacSha1_80,
    /// AES-128 counter mode, HMAC-SHA1 with a 32-bit tag on RTP (80 on SRTCP).
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    fn profile(self) -> ProtectionProfile {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// A leg's SRTP keys.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SrtpKeying {
    pub suite: SrtpSuite,
    /// Ours: protects what we send.
    pub local: [u8; KEY_AND_SALT],
    /// The peer's: what we receive was protected with it.
    pub remote: [u8; KEY_AND_SALT],
}

impl std::fmt::Debug for SrtpKeying {
    // Keys are secrets: logs show the suite only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpKeying")
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// Why a packet could not be protected or unprotected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SRTP: {0}")]
pub struct SrtpError(pub String);

fn srtp_error(e: impl std::fmt::Display) -> SrtpError {
    SrtpError(e.to_string())
}

/// The two contexts of a leg.
pub struct SrtpSession {
    outbound: Context,
    inbound: Context,
    keying: SrtpKeying,
}

impl std::fmt::Debug for SrtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpSession")
            .field("keying", &self.keying)
            .finish_non_exhaustive()
    }
}

impl SrtpSession {
    pub fn new(keying: SrtpKeying) -> Result<SrtpSession, SrtpError> {
        let err = srtp_error;
        let crypto = AwsLcRsCrypto;
        let profile = keying.suite.profile();
        let outbound = Context::new(
            &keying.local[..KEY],
            &keying.local[KEY..],
            profile,
            None,
            None,
            &crypto,
        )
        .map_err(err)?;
        let inbound = Context::new(
            &keying.remote[..KEY],
            &keying.remote[KEY..],
            profile,
            Some(srtp_replay_protection(REPLAY_WINDOW)),
            Some(srtcp_replay_protection(REPLAY_WINDOW)),
            &crypto,
        )
        .map_err(err)?;
        Ok(SrtpSession {
            outbound,
            inbound,
            keying,
        })
    }

    pub fn keying(&self) -> SrtpKeying {
        self.keying
    }

    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.outbound
            .encrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(srtp_error)
    }

    /// Checks and decrypts an SRTP packet: a forged, damaged or replayed one is an error.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.inbound
            .decrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(srtp_error)
    }

    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.outbound
            .encrypt_rtcp(packet)
            .map(|b| b.to_vec())
            .map_err(srtp_error)
    }

    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.inbound
            .decrypt_rtcp(packet)
            .map(|b| b.to_vec())
            .map_err(srtp_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn key(s: &str) -> [u8; KEY_AND_SALT] {
        hex(s).try_into().unwrap()
    }

    const K1: &str = "e1f97a0d3e018be0d64fa32c06de41390ec675ad498afeebb6960b3aabe6";
    const K2: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccdd";

    fn pair(suite: SrtpSuite) -> (SrtpSession, SrtpSession) {
        let a = SrtpKeying {
            suite,
            local: key(K1),
            remote: key(K2),
        };
        let b = SrtpKeying {
            suite,
            local: key(K2),
            remote: key(K1),
        };
        (SrtpSession::new(a).unwrap(), SrtpSession::new(b).unwrap())
    }

    /// libsrtp's known answer for AES_CM_128_HMAC_SHA1_80 (its `srtp_driver` test): the
    /// same key, header and payload give the same bytes, so other SRTP stacks agree with us.
    #[test]
    fn known_answer_matches_libsrtp() {
        let (mut ours, mut theirs) = pair(SrtpSuite::AesCm128HmacSha1_80);
        let plain = hex("800f1234decafbadcafebabeabababababababababababababababab");
        let protected = ours.protect_rtp(&plain).unwrap();
        assert_eq!(
            protected,
            hex("800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb")
        );
        assert_eq!(theirs.unprotect_rtp(&protected).unwrap(), plain);
    }

    #[test]
    fn both_suites_round_trip_rtp_and_rtcp_and_refuse_tampering_and_replays() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let (mut a, mut b) = pair(suite);
            let tag = if suite == SrtpSuite::AesCm128HmacSha1_80 {
                10
            } else {
                4
            };
            for seq in 0u16..50 {
                let mut rtp = vec![0x80, 0x00];
                rtp.extend_from_slice(&seq.to_be_bytes());
                rtp.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
                rtp.extend_from_slice(&[1, 2, 3, 4]);
                rtp.extend(std::iter::repeat_n(0x55, 160));
                let p = a.protect_rtp(&rtp).unwrap();
                assert_eq!(p.len(), rtp.len() + tag);
                assert_ne!(&p[12..172], &rtp[12..], "the payload is encrypted");
                assert_eq!(b.unprotect_rtp(&p).unwrap(), rtp);
                // The same packet again is a replay.
                assert!(b.unprotect_rtp(&p).is_err());
                // A flipped bit fails authentication.
                let mut bad = p.clone();
                bad[20] ^= 1;
                assert!(b.unprotect_rtp(&bad).is_err());
            }
            // RTCP: a receiver report.
            let rr = hex("81c90007010203040a0b0c0d00000000000000000000000000000000000000000000");
            let p = b.protect_rtcp(&rr).unwrap();
            assert_eq!(a.unprotect_rtcp(&p).unwrap(), rr);
            assert!(a.unprotect_rtcp(&p).is_err(), "SRTCP replay");
            // A key that is not the peer's fails.
            let (_, mut stranger) = pair(suite);
            let p = a
                .protect_rtp(&hex("8000ffff000000000102030401020304"))
                .unwrap();
            assert!(stranger.unprotect_rtp(&p[..p.len() - 1]).is_err());
            // Garbage never panics.
            for n in 0..40 {
                let junk = vec![0x80u8; n];
                let _ = b.unprotect_rtp(&junk);
                let _ = b.unprotect_rtcp(&junk);
            }
        }
    }

    #[test]
    fn debug_hides_the_keys() {
        let (a, _) = pair(SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(
            format!("{:?}", a.keying()),
            "SrtpKeying { suite: AesCm128HmacSha1_80, .. }"
        );
    }
}
