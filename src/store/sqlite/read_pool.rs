//! A small pool of read-only connections. WAL lets them read while the writer commits.

use crate::store::StoreError;
use rusqlite::Connection;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// Read connections, lent one per query and run on tokio's blocking pool.
pub struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Bounds concurrent queries to the number of connections. A query holds its permit
    /// until it finishes on the blocking pool, even if the request that asked for it is gone
    /// (a client that disconnects cannot make queries, or connections, pile up).
    permits: Arc<Semaphore>,
}

impl ReadPool {
    pub fn new(path: PathBuf, size: usize) -> Result<Self, StoreError> {
        let idle = (0..size)
            .map(|_| open_reader(&path))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            path,
            idle: Mutex::new(idle),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    /// Runs `f` with a read connection on the blocking pool.
    pub async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let taken = pool.idle.lock().expect("read pool lock").pop();
            // A connection lost to a panic is replaced on demand.
            let conn = match taken {
                Some(c) => c,
                None => open_reader(&pool.path)?,
            };
            let result = f(&conn);
            pool.idle.lock().expect("read pool lock").push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

fn open_reader(path: &PathBuf) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 5000;")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_query_keeps_its_connection_after_its_caller_gave_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pool.sqlite3");
        rusqlite::Connection::open(&path).unwrap();
        let pool = Arc::new(ReadPool::new(path, 1).unwrap());
        let busy = Arc::new(AtomicBool::new(false));
        let slow = {
            let (pool, busy) = (Arc::clone(&pool), Arc::clone(&busy));
            async move {
                pool.read(move |_| {
                    busy.store(true, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(300));
                    busy.store(false, Ordering::SeqCst);
                    Ok(())
                })
                .await
            }
        };
        // The caller gives up (a client disconnecting) while the query runs on.
        let gave_up = tokio::time::timeout(Duration::from_millis(50), slow).await;
        assert!(gave_up.is_err());
        assert!(
            busy.load(Ordering::SeqCst),
            "the first query is still running"
        );
        // The next query waits for the one connection instead of opening another.
        let overlapped = pool
            .read({
                let busy = Arc::clone(&busy);
                move |_| Ok(busy.load(Ordering::SeqCst))
            })
            .await
            .unwrap();
        assert!(!overlapped, "two queries ran at once on a pool of one");
    }
}
