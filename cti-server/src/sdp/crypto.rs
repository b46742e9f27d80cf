//! SDES-SRTP (RFC 4568): the `a=crypto` attribute of an `RTP/SAVP` stream, with the two
//! suites every SRTP phone speaks, `AES_CM_128_HMAC_SHA1_80` and `AES_CM_128_HMAC_SHA1_32`
//! (RFC 4568 §6.2). The keys travel in the SDP, so they are only as secret as the signalling:
//! SIP over TLS keeps them so.
//!
//! What is refused (the line is skipped, another offered line may still fit): a master key
//! index (MKI) or several keys, a key derivation rate other than 0, and the session
//! parameters that switch encryption or authentication off.

use base64::Engine;

pub use media::rtp::srtp::{KEY_AND_SALT, SrtpKeying, SrtpSuite};

/// The suite's name in SDP (RFC 4568 §6.2).
pub fn suite_name(suite: SrtpSuite) -> &'static str {
    match suite {
        SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
        SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
    }
}

fn parse_suite(s: &str) -> Option<SrtpSuite> {
    [
        SrtpSuite::AesCm128HmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32,
    ]
    .into_iter()
    .find(|x| suite_name(*x) == s)
}

/// One `a=crypto:<tag> <suite> inline:<key||salt>` line we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: SrtpSuite,
    pub key: [u8; KEY_AND_SALT],
}

impl Crypto {
    /// Parses the value of an `a=crypto` attribute; why not, when it does not fit.
    pub fn parse(value: &str) -> Result<Crypto, String> {
        let mut parts = value.split_ascii_whitespace();
        let tag = parts
            .next()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|t| *t < 1_000_000_000)
            .ok_or("a tag of 1 to 9 digits")?;
        let suite_name = parts.next().ok_or("no crypto suite")?;
        let suite = parse_suite(suite_name)
            .ok_or_else(|| format!("crypto suite {suite_name} is not supported"))?;
        let key_params = parts.next().ok_or("no key parameters")?;
        if key_params.contains(';') {
            return Err("several master keys are not supported".into());
        }
        let inline = key_params
            .strip_prefix("inline:")
            .ok_or("only inline keys are supported")?;
        let mut fields = inline.split('|');
        let b64 = fields.next().unwrap_or("");
        let key = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| format!("key: {e}"))?;
        let key: [u8; KEY_AND_SALT] = key
            .try_into()
            .map_err(|k: Vec<u8>| format!("key and salt are {} bytes, not 30", k.len()))?;
        for f in fields {
            // A lifetime (`2^31` or a number) is fine; an MKI (`1:4`) is not.
            if f.contains(':') {
                return Err("a master key index (MKI) is not supported".into());
            }
        }
        for p in parts {
            let ok = p == "KDR=0" || p.starts_with("WSH=") || p.starts_with("FEC_ORDER=");
            if !ok {
                return Err(format!("session parameter {p} is not supported"));
            }
        }
        Ok(Crypto { tag, suite, key })
    }

    /// The attribute value, `<tag> <suite> inline:<base64>`.
    pub fn value(&self) -> String {
        format!(
            "{} {} inline:{}",
            self.tag,
            suite_name(self.suite),
            base64::engine::general_purpose::STANDARD.encode(self.key)
        )
    }
}

/// A fresh random master key and salt.
pub fn new_key() -> [u8; KEY_AND_SALT] {
    use rand::RngCore;
    let mut k = [0u8; KEY_AND_SALT];
    rand::rng().fill_bytes(&mut k);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4568_examples_parse_and_print() {
        // RFC 4568 §9.1's offer, with its lifetime and without the MKI.
        let c = Crypto::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20",
        )
        .unwrap();
        assert_eq!(c.tag, 1);
        assert_eq!(c.suite, SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(&c.key[..4], b"=-n@");
        assert_eq!(
            c.value(),
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
        );
        let c = Crypto::parse(
            "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj KDR=0",
        )
        .unwrap();
        assert_eq!((c.tag, c.suite), (2, SrtpSuite::AesCm128HmacSha1_32));
        assert_eq!(Crypto::parse(&c.value()).unwrap(), c);
    }

    #[test]
    fn what_we_cannot_honour_is_refused_with_a_reason() {
        let key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
        for (line, why) in [
            (
                format!("1 F8_128_HMAC_SHA1_80 inline:{key}"),
                "not supported",
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:4"),
                "MKI",
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key};inline:{key}"),
                "several",
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key} UNENCRYPTED_SRTP"),
                "UNENCRYPTED",
            ),
            (
                format!("1 AES_CM_128_HMAC_SHA1_80 inline:{key} KDR=1"),
                "KDR",
            ),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA".to_string(), "30"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!".to_string(), "key"),
            ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA".to_string(), "tag"),
            ("1".to_string(), "suite"),
            (format!("1 AES_CM_128_HMAC_SHA1_80 uri:{key}"), "inline"),
        ] {
            let e = Crypto::parse(&line).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }

    #[test]
    fn fresh_keys_differ() {
        assert_ne!(new_key(), new_key());
    }
}
