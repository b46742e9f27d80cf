//! cti-server: the softphone and CTI call-center agent server.

pub mod sip;
