//! The SIP stack: message facade, transactions, dialogs, transports, registrar.

pub mod auth;
pub mod core;
pub mod dialog;
pub mod grammar;
pub mod message;
pub mod registrar;
pub mod service;
pub mod transaction;
pub mod transport;
pub mod types;

pub use grammar::{NameAddr, Params, SipUri, Uri, Via};
pub use message::{HeaderName, Headers, Request, Response, SipHeaders, SipMessage};
pub use types::{Branch, CSeq, CallId, Method, Tag, Transport};
