//! Which call a SIP message belongs to: the SIP task's routing tables for calls.
//!
//! In-dialog requests route by (Call-ID, our tag), which is their To tag; responses by the
//! client transaction a call started; CANCEL, ACK and Timer L by the caller's INVITE server
//! transaction. Every entry is indexed by call too, so a finished call leaves nothing behind.

use std::collections::HashMap;

use crate::sip::transaction::TxId;
use crate::sip::types::{CallId, Tag};

use super::{CallKey, ReqRef};

#[derive(Default)]
pub struct CallRoutes {
    dialogs: HashMap<(CallId, Tag), CallKey>,
    client: HashMap<TxId, (CallKey, ReqRef)>,
    client_by_ref: HashMap<(CallKey, ReqRef), TxId>,
    server: HashMap<TxId, CallKey>,
    by_call: HashMap<CallKey, CallIndex>,
}

#[derive(Default)]
struct CallIndex {
    dialogs: Vec<(CallId, Tag)>,
    client: Vec<TxId>,
    server: Vec<TxId>,
}

impl CallRoutes {
    pub fn add_call(&mut self, call: CallKey, invite_tx: TxId) {
        self.server.insert(invite_tx, call);
        self.by_call.entry(call).or_default().server.push(invite_tx);
    }

    /// A call with no server transaction (placed from a browser console).
    pub fn add_placed(&mut self, call: CallKey) {
        self.by_call.entry(call).or_default();
    }

    pub fn bind_dialog(&mut self, call: CallKey, call_id: CallId, local_tag: Tag) {
        let key = (call_id, local_tag);
        self.dialogs.insert(key.clone(), call);
        self.by_call.entry(call).or_default().dialogs.push(key);
    }

    pub fn bind_client(&mut self, call: CallKey, req: ReqRef, tx: TxId) {
        self.client.insert(tx, (call, req));
        self.client_by_ref.insert((call, req), tx);
        self.by_call.entry(call).or_default().client.push(tx);
    }

    pub fn dialog(&self, call_id: &CallId, local_tag: &str) -> Option<CallKey> {
        // Tags are short; building the key costs one allocation per in-dialog request.
        self.dialogs
            .get(&(call_id.clone(), Tag::new(local_tag)))
            .copied()
    }

    pub fn client(&self, tx: TxId) -> Option<(CallKey, ReqRef)> {
        self.client.get(&tx).copied()
    }

    pub fn client_tx(&self, call: CallKey, req: ReqRef) -> Option<TxId> {
        self.client_by_ref.get(&(call, req)).copied()
    }

    pub fn server(&self, tx: TxId) -> Option<CallKey> {
        self.server.get(&tx).copied()
    }

    /// A transaction ended: its routes go (dialog routes stay until the call ends).
    pub fn transaction_ended(&mut self, tx: TxId) {
        if let Some((call, req)) = self.client.remove(&tx) {
            self.client_by_ref.remove(&(call, req));
        }
        self.server.remove(&tx);
    }

    /// The call is over: every route to it goes.
    pub fn remove_call(&mut self, call: CallKey) {
        let Some(idx) = self.by_call.remove(&call) else {
            return;
        };
        for d in idx.dialogs {
            if self.dialogs.get(&d) == Some(&call) {
                self.dialogs.remove(&d);
            }
        }
        for tx in idx.client {
            if let Some((c, req)) = self.client.get(&tx).copied()
                && c == call
            {
                self.client.remove(&tx);
                self.client_by_ref.remove(&(c, req));
            }
        }
        for tx in idx.server {
            if self.server.get(&tx) == Some(&call) {
                self.server.remove(&tx);
            }
        }
    }

    pub fn calls(&self) -> usize {
        self.by_call.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_removed_with_their_call() {
        let mut r = CallRoutes::default();
        let (c1, c2) = (CallKey(1), CallKey(2));
        let tx = |n| crate::sip::transaction::TxId::for_test(n);
        r.add_call(c1, tx(1));
        r.bind_dialog(c1, CallId::new("a"), Tag::new("t1"));
        r.bind_client(c1, ReqRef(1), tx(2));
        r.add_call(c2, tx(3));
        assert_eq!(r.dialog(&CallId::new("a"), "t1"), Some(c1));
        assert_eq!(r.client(tx(2)), Some((c1, ReqRef(1))));
        assert_eq!(r.client_tx(c1, ReqRef(1)), Some(tx(2)));
        r.remove_call(c1);
        assert_eq!(r.dialog(&CallId::new("a"), "t1"), None);
        assert_eq!(r.client(tx(2)), None);
        assert_eq!(r.server(tx(1)), None);
        assert_eq!(r.server(tx(3)), Some(c2));
        assert_eq!(r.calls(), 1);
    }
}
