//! Which shard owns which leg and room (sans-IO; the [`super::MediaHandle`] holds one behind a
//! mutex and consults it before every command).
//!
//! Invariant: a room and every leg in it live on the same shard, because a shard mixes its
//! rooms from its own legs' frames at its own tick without locking. Placement keeps that
//! cheap: a new leg goes next to a leg it names ([`Routes::place_leg`] with `near`), else to
//! the shard with the fewest legs; a room goes to the least loaded shard and, while it has
//! no members, follows the first leg that joins it. Only a join that would split a room
//! moves a leg ([`JoinPlan::MoveLeg`]).

use super::{EngineError, LegId, RoomId};
use std::collections::HashMap;

/// A shard's index in the handle's list.
pub(crate) type ShardIndex = usize;

/// What a join needs before the shard can do it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinPlan {
    /// Room and leg are on this shard already.
    Here(ShardIndex),
    /// The room is empty: move it to the leg's shard.
    MoveRoom {
        /// Where the room is.
        from: ShardIndex,
        /// The leg's shard.
        to: ShardIndex,
    },
    /// The room has members elsewhere: move the leg to the room's shard.
    MoveLeg {
        /// The leg's shard.
        from: ShardIndex,
        /// The room's shard.
        to: ShardIndex,
    },
}

#[derive(Debug, Clone, Copy)]
struct RoomPlace {
    shard: ShardIndex,
    members: usize,
}

#[derive(Debug, Clone, Copy)]
struct LegPlace {
    shard: ShardIndex,
    room: Option<RoomId>,
}

/// The routing table.
#[derive(Debug)]
pub(crate) struct Routes {
    legs: HashMap<LegId, LegPlace>,
    rooms: HashMap<RoomId, RoomPlace>,
    /// Legs per shard: the placement's load measure (a leg costs about the same everywhere,
    /// rooms cost little beside their legs).
    load: Vec<usize>,
}

impl Routes {
    /// A table for `shards` shards (at least one).
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            legs: HashMap::new(),
            rooms: HashMap::new(),
            load: vec![0; shards.max(1)],
        }
    }

    fn least_loaded(&self) -> ShardIndex {
        // Ties go to the lowest index: deterministic for tests.
        self.load
            .iter()
            .enumerate()
            .min_by_key(|(i, n)| (**n, *i))
            .map_or(0, |(i, _)| i)
    }

    /// Reserves a shard for a new leg: `near`'s shard if that leg exists (the other leg of
    /// the same call), else the least loaded one. Undo with [`Routes::remove_leg`] if the
    /// shard then fails to create it.
    pub(crate) fn place_leg(
        &mut self,
        leg: LegId,
        near: Option<LegId>,
    ) -> Result<ShardIndex, EngineError> {
        if self.legs.contains_key(&leg) {
            return Err(EngineError::LegExists(leg));
        }
        let shard = near
            .and_then(|n| self.legs.get(&n))
            .map_or_else(|| self.least_loaded(), |p| p.shard);
        self.legs.insert(leg, LegPlace { shard, room: None });
        self.load[shard] += 1;
        Ok(shard)
    }

    /// Reserves a shard for a new room.
    pub(crate) fn place_room(&mut self, room: RoomId) -> Result<ShardIndex, EngineError> {
        if self.rooms.contains_key(&room) {
            return Err(EngineError::RoomExists(room));
        }
        let shard = self.least_loaded();
        self.rooms.insert(room, RoomPlace { shard, members: 0 });
        Ok(shard)
    }

    /// The shard a leg lives on.
    pub(crate) fn leg(&self, leg: LegId) -> Result<ShardIndex, EngineError> {
        self.legs
            .get(&leg)
            .map(|p| p.shard)
            .ok_or(EngineError::UnknownLeg(leg))
    }

    /// The shard a room lives on.
    pub(crate) fn room(&self, room: RoomId) -> Result<ShardIndex, EngineError> {
        self.rooms
            .get(&room)
            .map(|p| p.shard)
            .ok_or(EngineError::UnknownRoom(room))
    }

    /// What joining `leg` to `room` takes. Errors as the shard would report them.
    pub(crate) fn plan_join(&self, room: RoomId, leg: LegId) -> Result<JoinPlan, EngineError> {
        let l = self.legs.get(&leg).ok_or(EngineError::UnknownLeg(leg))?;
        let r = self
            .rooms
            .get(&room)
            .ok_or(EngineError::UnknownRoom(room))?;
        if l.room.is_some() {
            return Err(EngineError::AlreadyInRoom(leg));
        }
        Ok(if l.shard == r.shard {
            JoinPlan::Here(l.shard)
        } else if r.members == 0 {
            JoinPlan::MoveRoom {
                from: r.shard,
                to: l.shard,
            }
        } else {
            JoinPlan::MoveLeg {
                from: l.shard,
                to: r.shard,
            }
        })
    }

    /// Records a move made by the handle.
    pub(crate) fn moved_leg(&mut self, leg: LegId, to: ShardIndex) {
        if let Some(p) = self.legs.get_mut(&leg) {
            self.load[p.shard] -= 1;
            self.load[to] += 1;
            p.shard = to;
        }
    }

    /// Records a move made by the handle.
    pub(crate) fn moved_room(&mut self, room: RoomId, to: ShardIndex) {
        if let Some(p) = self.rooms.get_mut(&room) {
            p.shard = to;
        }
    }

    /// Records a completed join.
    pub(crate) fn joined(&mut self, room: RoomId, leg: LegId) {
        if let Some(p) = self.legs.get_mut(&leg) {
            p.room = Some(room);
        }
        if let Some(p) = self.rooms.get_mut(&room) {
            p.members += 1;
        }
    }

    /// Records a leg leaving its room.
    pub(crate) fn left(&mut self, leg: LegId) {
        if let Some(p) = self.legs.get_mut(&leg)
            && let Some(r) = p.room.take().and_then(|r| self.rooms.get_mut(&r))
        {
            r.members = r.members.saturating_sub(1);
        }
    }

    /// Forgets a leg (ended, or never created).
    pub(crate) fn remove_leg(&mut self, leg: LegId) {
        if let Some(p) = self.legs.remove(&leg) {
            self.load[p.shard] -= 1;
            if let Some(r) = p.room.and_then(|r| self.rooms.get_mut(&r)) {
                r.members = r.members.saturating_sub(1);
            }
        }
    }

    /// Forgets a room; its legs stay, outside any room.
    pub(crate) fn remove_room(&mut self, room: RoomId) {
        if self.rooms.remove(&room).is_some() {
            for p in self.legs.values_mut() {
                if p.room == Some(room) {
                    p.room = None;
                }
            }
        }
    }

    /// Legs per shard.
    #[cfg(test)]
    pub(crate) fn load(&self) -> &[usize] {
        &self.load
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn legs_spread_over_shards_and_a_near_leg_joins_its_partner() {
        let mut r = Routes::new(2);
        assert_eq!(r.place_leg(LegId(1), None).unwrap(), 0);
        assert_eq!(r.place_leg(LegId(3), None).unwrap(), 1);
        // The second leg of call 1 goes where the first is, not to the emptier shard.
        assert_eq!(r.place_leg(LegId(2), Some(LegId(1))).unwrap(), 0);
        assert_eq!(r.load(), &[2, 1]);
        // A `near` leg that does not exist falls back to the least loaded shard.
        assert_eq!(r.place_leg(LegId(4), Some(LegId(99))).unwrap(), 1);
        assert!(matches!(
            r.place_leg(LegId(4), None),
            Err(EngineError::LegExists(LegId(4)))
        ));
    }

    #[test]
    fn an_empty_room_follows_its_first_leg_and_later_legs_follow_the_room() {
        let mut r = Routes::new(2);
        r.place_leg(LegId(1), None).unwrap(); // shard 0
        r.place_leg(LegId(2), None).unwrap(); // shard 1
        r.place_leg(LegId(5), None).unwrap(); // shard 0
        let room = RoomId(9);
        assert_eq!(r.place_room(room).unwrap(), 1); // shard 1 has fewer legs
        assert_eq!(
            r.plan_join(room, LegId(1)).unwrap(),
            JoinPlan::MoveRoom { from: 1, to: 0 }
        );
        r.moved_room(room, 0);
        r.joined(room, LegId(1));
        assert_eq!(
            r.plan_join(room, LegId(2)).unwrap(),
            JoinPlan::MoveLeg { from: 1, to: 0 }
        );
        r.moved_leg(LegId(2), 0);
        r.joined(room, LegId(2));
        assert_eq!(r.leg(LegId(2)).unwrap(), 0);
        assert_eq!(r.load(), &[3, 0]);
        assert_eq!(r.plan_join(room, LegId(5)).unwrap(), JoinPlan::Here(0));
        assert!(matches!(
            r.plan_join(room, LegId(1)),
            Err(EngineError::AlreadyInRoom(LegId(1)))
        ));
        // Ending the room frees its legs to join another.
        r.remove_room(room);
        assert!(matches!(r.room(room), Err(EngineError::UnknownRoom(_))));
        let other = RoomId(10);
        r.place_room(other).unwrap();
        assert!(r.plan_join(other, LegId(1)).is_ok());
    }

    #[test]
    fn removing_legs_gives_back_their_load_and_membership() {
        let mut r = Routes::new(3);
        r.place_leg(LegId(1), None).unwrap();
        let room = RoomId(1);
        let s = r.place_room(room).unwrap();
        assert_eq!(s, 1);
        r.moved_room(room, 0);
        r.joined(room, LegId(1));
        r.remove_leg(LegId(1));
        assert_eq!(r.load(), &[0, 0, 0]);
        assert!(matches!(r.leg(LegId(1)), Err(EngineError::UnknownLeg(_))));
        // Empty again: the next joiner takes the room with it.
        r.place_leg(LegId(2), None).unwrap();
        r.place_leg(LegId(3), None).unwrap();
        assert_eq!(r.leg(LegId(3)).unwrap(), 1);
        assert_eq!(
            r.plan_join(room, LegId(3)).unwrap(),
            JoinPlan::MoveRoom { from: 0, to: 1 }
        );
    }

    proptest! {
        /// Whatever sequence of creates, joins (applying the plan), ends and room ends,
        /// every room's members are on the room's shard and the load counts the legs.
        #[test]
        fn rooms_and_their_legs_stay_together(
            ops in proptest::collection::vec((0u8..5, 0u64..12, 0u64..4), 1..200),
            shards in 1usize..5,
        ) {
            let mut r = Routes::new(shards);
            for (op, leg, room) in ops {
                let (leg, room) = (LegId(leg), RoomId(room));
                match op {
                    0 => { let _ = r.place_leg(leg, None); }
                    1 => { let _ = r.place_leg(leg, Some(LegId(leg.0 ^ 1))); }
                    2 => { let _ = r.place_room(room); }
                    3 => match r.plan_join(room, leg) {
                        Ok(JoinPlan::Here(_)) => r.joined(room, leg),
                        Ok(JoinPlan::MoveRoom { to, .. }) => { r.moved_room(room, to); r.joined(room, leg); }
                        Ok(JoinPlan::MoveLeg { to, .. }) => { r.moved_leg(leg, to); r.joined(room, leg); }
                        Err(_) => {}
                    },
                    _ => if leg.0 % 2 == 0 { r.remove_leg(leg) } else { r.remove_room(room) },
                }
                for p in r.legs.values() {
                    if let Some(room) = p.room {
                        prop_assert_eq!(r.rooms[&room].shard, p.shard);
                    }
                }
                for (id, place) in &r.rooms {
                    let n = r.legs.values().filter(|p| p.room == Some(*id)).count();
                    prop_assert_eq!(place.members, n);
                }
                let mut load = vec![0; shards];
                for p in r.legs.values() { load[p.shard] += 1; }
                prop_assert_eq!(r.load(), &load[..]);
            }
        }
    }
}
