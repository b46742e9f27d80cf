//! Media engine.

pub mod codec;
pub mod dtmf;
pub mod engine;
pub mod jitter;
pub mod mixer;
pub mod prompt;
pub mod recorder;
pub mod rtp;
#[cfg(test)]
pub(crate) mod test_signal;
