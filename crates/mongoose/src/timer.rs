//! The per-group timer store (MNG-R05): `maxTimers` entries allocated up front, so
//! scheduling and firing never allocate. A slab holds the timers; a binary heap (created
//! with full capacity) orders them by due time; cancelled entries are skipped lazily.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A timer handle; stale after it fires or is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    slot: u32,
    generation: u32,
}

/// The store is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timer store full ({0} timers)")]
pub struct TimersFull(pub usize);

#[derive(Debug, Clone, Copy)]
struct Slot {
    generation: u32,
    live: bool,
    owner: u32,
    token: u64,
}

/// A fired timer: which processor, which token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fired {
    /// Processor index in the group.
    pub owner: u32,
    /// The token given at scheduling.
    pub token: u64,
}

/// Pre-allocated timers ordered by due time (monotonic nanoseconds).
pub struct Timers {
    slots: Vec<Slot>,
    free: Vec<u32>,
    heap: BinaryHeap<Reverse<(u64, u32, u32)>>,
}

impl Timers {
    /// A store for `capacity` timers.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Timers {
            slots: vec![
                Slot {
                    generation: 0,
                    live: false,
                    owner: 0,
                    token: 0
                };
                capacity
            ],
            free: (0..capacity as u32).rev().collect(),
            heap: BinaryHeap::with_capacity(capacity * 2),
        }
    }

    /// Schedules `token` for processor `owner` at `due_ns`.
    pub fn schedule(&mut self, due_ns: u64, owner: u32, token: u64) -> Result<TimerId, TimersFull> {
        let slot = self.free.pop().ok_or(TimersFull(self.slots.len()))?;
        let generation = {
            let s = &mut self.slots[slot as usize];
            s.generation = s.generation.wrapping_add(1);
            s.live = true;
            s.owner = owner;
            s.token = token;
            s.generation
        };
        // Cancelled entries stay in the heap until popped; compact if they would make it
        // outgrow its allocation (never in steady state: the heap holds 2x capacity).
        if self.heap.len() == self.heap.capacity() {
            let slots = &self.slots;
            self.heap.retain(|Reverse((_, sl, g))| {
                slots[*sl as usize].live && slots[*sl as usize].generation == *g
            });
        }
        self.heap.push(Reverse((due_ns, slot, generation)));
        Ok(TimerId { slot, generation })
    }

    /// Cancels; false when already fired or cancelled.
    pub fn cancel(&mut self, id: TimerId) -> bool {
        let Some(s) = self.slots.get_mut(id.slot as usize) else {
            return false;
        };
        if !s.live || s.generation != id.generation {
            return false;
        }
        s.live = false;
        self.free.push(id.slot);
        true
    }

    /// Pops the next timer due at or before `now_ns`.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<Fired> {
        while let Some(&Reverse((due, slot, generation))) = self.heap.peek() {
            if due > now_ns {
                return None;
            }
            self.heap.pop();
            let s = &mut self.slots[slot as usize];
            if s.live && s.generation == generation {
                s.live = false;
                self.free.push(slot);
                return Some(Fired {
                    owner: s.owner,
                    token: s.token,
                });
            }
        }
        None
    }

    /// Live timers.
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// No live timers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_due_order_and_cancelled_ones_never_fire() {
        let mut t = Timers::new(4);
        t.schedule(30, 0, 3).unwrap();
        let b = t.schedule(10, 1, 1).unwrap();
        t.schedule(20, 2, 2).unwrap();
        assert!(t.cancel(b));
        assert!(!t.cancel(b), "a second cancel is stale");
        assert_eq!(t.pop_due(15), None);
        assert_eq!(t.pop_due(25), Some(Fired { owner: 2, token: 2 }));
        assert_eq!(t.pop_due(100), Some(Fired { owner: 0, token: 3 }));
        assert!(t.is_empty());
    }

    #[test]
    fn a_full_store_refuses_and_reuses_fired_slots_without_growing() {
        let mut t = Timers::new(2);
        t.schedule(1, 0, 0).unwrap();
        t.schedule(2, 0, 0).unwrap();
        assert_eq!(t.schedule(3, 0, 0), Err(TimersFull(2)));
        let cap = t.heap.capacity();
        for i in 0..1000u64 {
            assert!(t.pop_due(u64::MAX).is_some());
            t.schedule(i, 0, i).unwrap();
        }
        assert_eq!(
            t.heap.capacity(),
            cap,
            "steady-state scheduling never reallocates"
        );
    }
}
