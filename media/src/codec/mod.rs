//! Audio codecs: G.711 ([`g711`]) and RFC 4733 telephone-events ([`telephone_event`]).

pub mod g711;
pub mod telephone_event;
