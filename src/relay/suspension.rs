//! The operator's suspension of the relay (`POST /api/admin/relay/suspend` and `/resume`):
//! one switch, set by the admin API and watched by whichever relay runs (the polling runner
//! or the CDC outlet). A suspended relay records what is in flight, then reads and sends
//! nothing until resumed.

use std::sync::Arc;
use tokio::sync::watch;

/// The switch; clones share it.
#[derive(Debug, Clone)]
pub struct Suspension(Arc<watch::Sender<bool>>);

impl Default for Suspension {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(false)))
    }
}

impl Suspension {
    pub fn suspend(&self) {
        self.0.send_replace(true);
    }

    pub fn resume(&self) {
        self.0.send_replace(false);
    }

    pub fn is_suspended(&self) -> bool {
        *self.0.borrow()
    }

    /// A watch for one relay.
    pub fn watch(&self) -> SuspensionWatch {
        SuspensionWatch(self.0.subscribe())
    }
}

/// One relay's view of the switch.
#[derive(Debug, Clone)]
pub struct SuspensionWatch(watch::Receiver<bool>);

impl SuspensionWatch {
    /// Whether the relay is suspended now; what is seen here does not wake [`changed`].
    ///
    /// [`changed`]: SuspensionWatch::changed
    pub fn check(&mut self) -> bool {
        *self.0.borrow_and_update()
    }

    /// Completes once the relay is not suspended (at once if it is not).
    pub async fn resumed(&mut self) {
        // The switch lives as long as the application; if it is gone, nobody can suspend.
        let _ = self.0.wait_for(|suspended| !*suspended).await;
    }

    /// Completes when the switch changes after the last [`check`]; never if it is gone.
    ///
    /// [`check`]: SuspensionWatch::check
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_watch_sees_suspend_and_resume() {
        let switch = Suspension::default();
        let mut watch = switch.watch();
        assert!(!watch.check());
        switch.suspend();
        assert!(switch.is_suspended());
        tokio::time::timeout(Duration::from_secs(1), watch.changed())
            .await
            .expect("the change wakes the watch");
        assert!(watch.check());
        let waiting = tokio::spawn({
            let mut watch = watch.clone();
            async move { watch.resumed().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "still suspended");
        switch.resume();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("resuming ends the wait")
            .unwrap();
    }
}
