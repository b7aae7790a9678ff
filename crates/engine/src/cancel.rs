//! A cancellation signal shared between whoever starts a restic run and
//! whoever may want to stop it (a client that went away, agent shutdown).

use std::sync::Arc;

use tokio::sync::watch;

/// Cloneable; cancelling any clone cancels all of them.
#[derive(Clone, Debug)]
pub struct Cancel(Arc<watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once [`Cancel::cancel`] was called (at once if it already was).
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so waiting can not fail.
        let _ = rx.wait_for(|c| *c).await;
    }
}
