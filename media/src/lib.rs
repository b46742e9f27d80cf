//! Media engine.

pub mod codec;
pub mod rtp;
