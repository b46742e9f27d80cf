//! The SIP stack: message facade, transactions, dialogs, transports, registrar.

pub mod grammar;
pub mod message;
pub mod types;

pub use grammar::{NameAddr, Params, SipUri, Uri, Via};
pub use message::{HeaderName, Headers, Request, Response, SipHeaders, SipMessage};
pub use types::{Branch, CSeq, CallId, Method, Tag, Transport};
