//! Media engine.

pub mod codec;
pub mod dtmf;
pub mod jitter;
pub mod mixer;
pub mod rtp;
