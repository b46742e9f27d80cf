//! Media engine.

pub mod codec;
pub mod jitter;
pub mod mixer;
pub mod rtp;
