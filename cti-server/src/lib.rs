//! cti-server: the softphone and CTI call-center agent server.
//!
//! Three planes in one process (see `ARCHITECTURE.md` in the shared docs): the signalling
//! plane in [`sip`], the control plane ([`call`], [`ivr`], [`acd`]) and the business plane
//! ([`store`], [`http`]). [`app::run`] wires them; `main.rs` only parses arguments.

pub mod access;
pub mod acd;
pub mod api;
pub mod api_appointments;
pub mod api_campaigns;
pub mod api_dial;
pub mod api_hot_leads;
pub mod api_leads;
pub mod app;
pub mod backup;
pub mod call;
pub mod campaign;
pub mod config;
pub mod cti;
pub mod dial;
pub mod disposition;
pub mod hot;
pub mod http;
pub mod ivr;
pub mod leads;
pub mod login;
pub mod metrics;
pub mod move_db;
pub mod openapi;
pub mod reports;
pub mod retention;
pub mod sdp;
pub mod sip;
pub mod softphone;
pub mod store;
pub mod tls;
pub mod ui;
pub mod users;
