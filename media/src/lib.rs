//! The media engine: every call leg's audio passes through here (ARCHITECTURE: media is
//! always anchored), so recording, supervisor listen/whisper/barge, IVR prompts and hold
//! music all work on the same frames.
//!
//! # Shape
//!
//! Sans-IO cores, a thin async shell ([`engine`]):
//! - [`rtp`]: RTP parse/build, RTCP reports with RFC 3550 A.1/A.3/A.8 statistics, and
//!   [`rtp::OutgoingStream`], which keeps one SSRC and continuous sequence numbers and
//!   timestamps whatever feeds a leg (prompt, hold music, the agent).
//! - [`codec`]: G.711 µ-law/A-law (hand-written tables), Opus (`opus-pure`, 8 kHz mono, or
//!   16 kHz for wideband browser legs), RFC 4733 telephone-events, [`codec::Transcoder`]
//!   between any two, and a streaming 2× resampler ([`codec::resample`]).
//! - [`jitter`]: the adaptive jitter buffer; [`dtmf`]: in-band (Goertzel) key detection.
//! - [`mixer`]: [`mixer::Room`] with a hear matrix (bridge, listen, whisper, barge, conference).
//! - [`prompt`]: WAV prompts resampled once and cached pre-encoded; [`recorder`]: stereo WAV.
//! - [`engine::Leg`] (plain RTP) and [`webrtc::BrowserLeg`] (str0m, ICE-lite, DTLS-SRTP, Opus)
//!   both take datagrams and give/take one 20 ms, 8 kHz frame per tick. Rooms mix at 8 kHz,
//!   so a wideband browser leg ([`webrtc::BrowserLegConfig::wideband`]) resamples at its
//!   edge and gains no audio bandwidth end to end.
//! - RTCP: with rtcp-mux on the RTP port; without, on RTP port + 1 both ways (RFC 3550 §11),
//!   sent at randomised intervals (RFC 3550 §6.3.1).
//!
//! # Run loop
//!
//! One engine task owns every leg and room. Socket reader tasks (one per socket: a plain
//! RTP leg has its RTP port and the RTCP port above it, RFC 3550 §11) forward
//! datagrams to it over a bounded channel; it feeds them to the leg's core at once. Every
//! 20 ms tick (absolute deadlines, so no drift) it:
//! 1. pulls one frame from every leg (jitter buffer → decoder, or loss concealment) into the
//!    leg's room;
//! 2. mixes every room and queues recording frames to the recorder's writer thread;
//! 3. gives every leg its frame to send — its prompt if one plays, else its room's mix for it,
//!    else nothing (the RTP timestamp still advances);
//! 4. runs leg timers (RTCP, media timeout, str0m's ICE/DTLS timers), sends queued datagrams
//!    with non-blocking `try_send_to`, and forwards events with `try_send`.
//!
//! # Invariants
//!
//! - Nothing a peer sends can panic the engine: every parser returns errors, the Opus
//!   decoder is shielded, and the bad datagram is dropped with a trace.
//! - The tick never waits: on disk (recorder thread), on sockets (non-blocking sends), or on
//!   a slow call actor (bounded event queue, overflow dropped, logged and counted in
//!   [`engine::MediaHandle::dropped_events`]).
//! - A leg's ports (both of a plain leg's even/odd pair) return to the [`engine::PortPool`]
//!   when the leg ends (RAII lease).
//! - An outgoing stream never changes SSRC and never skips or repeats a sequence number.
//! - Only the engine task reads the clock; every core takes `now` as an argument, so the
//!   tests run in virtual time.

pub mod codec;
pub mod dtmf;
pub mod engine;
pub mod jitter;
pub mod mixer;
pub mod prompt;
pub mod recorder;
pub mod rtp;
pub mod webrtc;

#[cfg(test)]
pub(crate) mod test_signal;
