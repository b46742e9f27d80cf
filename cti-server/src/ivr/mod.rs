//! The IVR: flows as data ([`FlowSet`], loaded from `ivr-scripts/`) and a sans-IO interpreter
//! ([`Session`], one per call in a flow).
//!
//! # Driving a session (the call actor's loop)
//!
//! ```text
//! let set = registry.current();                          // Arc<FlowSet>, kept for the call
//! let mut s = Session::new(set, entry_flow, CallContext { caller, dialed }, now)?;
//! loop {
//!     while let Some(action) = s.poll_action() {          // drain after every input
//!         match action {
//!             Action::Play { prompts, barge_in } => media: play the files in order
//!             Action::StopPlay                   => media: stop (send no PromptFinished)
//!             Action::LookupLead(query)          => lead store, answer Event::LeadLookup
//!             Action::Route(destination)         => leave the IVR: queue/agent/voicemail/trunk
//!             Action::Hangup                     => leave the IVR: BYE
//!         }
//!     }
//!     if s.is_ended() { break }
//!     select! {
//!         media/DTMF/lookup event  => s.handle(event, now),
//!         sleep_until(s.poll_timeout()) => s.handle_timeout(now),
//!     }
//! }
//! ```
//!
//! Time comes in as [`Now`]: `mono` for every timer, `wall` only for business hours, so the
//! tests run menus, digit timeouts and DST transitions in virtual time.
//!
//! # Contract with the actor
//!
//! - Exactly one terminal action ([`Action::Route`] or [`Action::Hangup`]) ends every session;
//!   nothing is emitted after it. Until then [`Session::poll_timeout`] always has a deadline:
//!   every wait has a timeout (menu, digits) or a guard (a prompt that never reports its end,
//!   `max_prompt_s`; a lead lookup that never answers, `lookup_timeout_s`), so a session fed
//!   only its timeouts still ends.
//! - [`Event::PromptFinished`] is sent when the latest [`Action::Play`] played to its end, and
//!   not for a play ended by [`Action::StopPlay`] (otherwise it would be taken as the end of
//!   the next prompt).
//! - Every [`Action::LookupLead`] gets one [`Event::LeadLookup`], in order, late or not: a
//!   lookup that timed out is counted and its late answer is dropped.
//! - Jumps to another flow (`route` with `flow = ...`) happen inside the session, within the
//!   set it started with; [`Destination`] has no flow variant for that reason. More than
//!   [`MAX_STEPS_WITHOUT_EVENT`] node transitions without an input is a loop in the flows: the
//!   session hangs up and [`Session::error`] says where.
//! - Nothing here does I/O, allocates per frame or looks names up per event: nodes refer to each
//!   other by index and an event costs a few comparisons.
//!
//! # Design choices
//!
//! - A play action carries the whole prompt sequence of a step (e.g. "invalid choice" followed
//!   by the menu again), and a step waits for one `PromptFinished`.
//! - Menu and collect nodes allow barge-in by default: a digit during their prompt stops it
//!   ([`Action::StopPlay`]) and counts as input. Without barge-in the digit is kept and used
//!   when the prompt has finished. A menu's timeout starts when its prompt finishes.
//! - Type-ahead: digits pressed while a prompt without barge-in plays, during a lookup, or that
//!   interrupt a barge-in `play` node are kept (up to [`MAX_TYPEAHEAD`]) for the next menu or
//!   collect node, which then skips its prompt when it allows barge-in. A wrong key clears
//!   them.
//! - Retries: `retries` more attempts after the first, each after a no-input or invalid
//!   input (with `no_input_prompts` / `invalid_prompts` played before the prompt again).
//!   Then the node's `fail` target, or, without one, hang up (a flow that wants a goodbye
//!   prompt names a `hangup` node with prompts as `fail`).
//! - Collect: digits `0`-`9` are input; the terminator ends input; `*`, `#`, `A`-`D` other
//!   than the terminator are an invalid entry; reaching `max_digits` or the inter-digit timeout
//!   ends input; fewer than `min_digits` is an invalid entry.
//! - Route targets may use `${variable}` (e.g. `agent = "${lead_owner}"`); such a route names
//!   a `fallback` node for when the value comes out empty or malformed.
//!
//! The file format is documented in `ivr-scripts/README.md`.

mod flow;
pub mod hours;
mod session;

pub use flow::{Flow, FlowError, FlowErrorKind, FlowRegistry, FlowSet, ValidationContext};
pub use session::{
    Action, CallContext, Destination, Event, LeadMatch, LeadQuery, MAX_STEPS_WITHOUT_EVENT,
    MAX_TYPEAHEAD, MAX_VARIABLE_LEN, Now, Session, SessionError,
};

#[cfg(test)]
mod tests;
