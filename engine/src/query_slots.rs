//! Who may start another analyst query: a cap on the queries running at once, and a
//! smaller one per caller (a token), so one analyst's notebook firing queries in a
//! loop leaves room for everyone else. Over either cap a query is refused, not queued.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Every slot is taken; the cap is the number of slots.
    Server(usize),
    /// This caller already runs its share; the cap is that share.
    Caller(usize),
}

pub struct QuerySlots {
    all: Arc<Semaphore>,
    max: usize,
    per_caller: usize,
    by_caller: Arc<Mutex<HashMap<String, usize>>>,
}

/// A running query's place; given back when dropped.
pub struct Slot {
    _server: OwnedSemaphorePermit,
    caller: String,
    by_caller: Arc<Mutex<HashMap<String, usize>>>,
}

impl QuerySlots {
    pub fn new(max: usize, per_caller: usize) -> Self {
        let max = max.max(1);
        Self {
            all: Arc::new(Semaphore::new(max)),
            max,
            per_caller: per_caller.clamp(1, max),
            by_caller: Arc::default(),
        }
    }

    /// # Errors
    /// [`Full`] when the server's or the caller's slots are all taken.
    pub fn take(&self, caller: &str) -> Result<Slot, Full> {
        let mut by_caller = lock(&self.by_caller);
        let running = by_caller.entry(caller.to_owned()).or_default();
        if *running >= self.per_caller {
            return Err(Full::Caller(self.per_caller));
        }
        let server = Arc::clone(&self.all)
            .try_acquire_owned()
            .map_err(|_| Full::Server(self.max))?;
        *running += 1;
        Ok(Slot {
            _server: server,
            caller: caller.to_owned(),
            by_caller: Arc::clone(&self.by_caller),
        })
    }

    /// Slots not taken.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.all.available_permits()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_caller = lock(&self.by_caller);
        if let Some(running) = by_caller.get_mut(&self.caller) {
            *running -= 1;
            if *running == 0 {
                by_caller.remove(&self.caller);
            }
        }
    }
}

fn lock(
    by_caller: &Mutex<HashMap<String, usize>>,
) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
    by_caller.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_gets_its_share_and_others_the_rest() {
        let slots = QuerySlots::new(4, 2);
        let a1 = slots.take("alice").unwrap();
        let _a2 = slots.take("alice").unwrap();
        assert_eq!(slots.take("alice").err(), Some(Full::Caller(2)));
        let _b1 = slots.take("bob").unwrap();
        let _c1 = slots.take("carol").unwrap();
        assert_eq!(slots.take("dave").err(), Some(Full::Server(4)));
        drop(a1);
        assert_eq!(slots.available(), 1);
        let _a3 = slots.take("alice").unwrap();
        assert!(lock(&slots.by_caller).values().all(|n| *n <= 2));
    }

    #[test]
    fn a_caller_with_nothing_running_is_forgotten() {
        let slots = QuerySlots::new(2, 1);
        drop(slots.take("alice").unwrap());
        assert!(lock(&slots.by_caller).is_empty());
    }
}
