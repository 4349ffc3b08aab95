//! One way to take a lock: a thread that panicked while holding it leaves
//! the data as it was, and the others go on with it (no second panic, no
//! silently skipped update).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// [`Mutex::lock`] that outlives a panic elsewhere.
pub trait Locked<T> {
    fn locked(&self) -> MutexGuard<'_, T>;
}

impl<T> Locked<T> for Mutex<T> {
    fn locked(&self) -> MutexGuard<'_, T> {
        self.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_taken_with_its_data() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let p = m.clone();
        let _ = std::thread::spawn(move || {
            let mut g = p.locked();
            *g = 2;
            panic!("poisons the lock");
        })
        .join();
        assert!(m.is_poisoned());
        assert_eq!(*m.locked(), 2);
    }
}
