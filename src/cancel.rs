//! Cooperative cancellation: a flag that batch loops check between batches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

/// A cloneable cancellation flag. Loops finish the batch in hand, checkpoint, then stop.
#[derive(Clone, Default, Debug)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Default, Debug)]
struct Inner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every holder of this token to stop.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// True once [`CancelToken::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration`, returning early (with `false`) when cancelled.
    pub async fn sleep(&self, duration: Duration) -> bool {
        if self.is_cancelled() {
            return false;
        }
        let notified = self.inner.notify.notified();
        tokio::select! {
            _ = tokio::time::sleep(duration) => !self.is_cancelled(),
            _ = notified => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleep_returns_early_when_cancelled() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let token = CancelToken::new();
        let t2 = token.clone();
        let started = std::time::Instant::now();
        let finished = rt.block_on(async move {
            let waiter = tokio::spawn(async move { t2.sleep(Duration::from_secs(30)).await });
            tokio::time::sleep(Duration::from_millis(50)).await;
            token.cancel();
            waiter.await.unwrap()
        });
        assert!(!finished);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
