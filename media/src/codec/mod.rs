//! Audio codecs: G.711 ([`g711`]).

pub mod g711;
