//! The single writer with group commit.
//!
//! Every write of the process goes through one OS thread that owns the only writable
//! connection. Jobs queue on a bounded channel; the thread takes whatever has queued (up to
//! `max_batch`), runs each job inside its own SAVEPOINT of one IMMEDIATE transaction, commits
//! once, and only then answers each caller. One fsync thus serves a whole batch, and a failing
//! job (a version conflict, say) rolls back only its own savepoint.
//!
//! Because there is exactly one writer, outbox positions are assigned in commit order without
//! gaps, and read-check-write sequences inside a job need no further locking. After each commit
//! the newest outbox position is published on a watch channel (the relay's streaming mode).

use crate::store::StoreError;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

/// What a job still has to do once its batch committed (`None`) or failed to (`Some`).
pub type Answer = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// Work for the writer. It runs inside the batch transaction, or learns why there is none.
pub type Job = Box<dyn FnOnce(Result<&Connection, &StoreError>) -> Answer + Send>;

/// A job that runs `work` in a savepoint and sends its result to `reply` after the commit.
/// If the commit fails, a successful `work` is reported with the commit's error instead:
/// nothing of it is stored.
pub fn job<T: Send + 'static>(
    work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    reply: oneshot::Sender<Result<T, StoreError>>,
) -> Job {
    Box::new(move |conn| {
        let result = match conn {
            Ok(conn) => in_savepoint(conn, work),
            Err(e) => Err(e.clone()),
        };
        Box::new(move |commit_error| {
            let result = match (result, commit_error) {
                (Ok(_), Some(e)) => Err(e.clone()),
                (result, _) => result,
            };
            // A caller that went away (timeout, disconnect) simply misses its answer.
            let _ = reply.send(result);
        })
    })
}

/// Runs the writer loop until every sender is dropped. Blocking: call it on its own thread.
pub fn run(
    mut conn: Connection,
    mut jobs: mpsc::Receiver<Job>,
    max_batch: usize,
    head: watch::Sender<u64>,
) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if commit_batch(&mut conn, &mut batch) {
            match newest_position(&conn) {
                Ok(position) => {
                    head.send_if_modified(|h| std::mem::replace(h, position) != position);
                }
                Err(e) => tracing::error!(error = %e, "cannot read the newest outbox position"),
            }
        }
    }
    tracing::debug!("writer stopped: no more senders");
}

/// The newest commit position (0 for an empty outbox). AUTOINCREMENT keeps it in the
/// two-row `sqlite_sequence` table; that one-row read is much cheaper after every commit
/// than `max(position)` over the outbox (which halved write throughput when measured).
pub fn newest_position(conn: &Connection) -> Result<u64, StoreError> {
    let found: Option<u64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(found.unwrap_or(0))
}

/// Runs and commits one batch, then answers every job in it. True if it committed.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Job>) -> bool {
    let size = batch.len();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = StoreError::from(e);
            tracing::error!(error = %e, batch = size, "cannot begin the write transaction");
            batch.drain(..).for_each(|job| job(Err(&e))(None));
            return false;
        }
    };
    let answers: Vec<Answer> = batch.drain(..).map(|job| job(Ok(&tx))).collect();
    let commit = tx.commit().map_err(StoreError::from);
    if let Err(e) = &commit {
        tracing::error!(error = %e, batch = size, "group commit failed");
    }
    let committed = commit.is_ok();
    answers.into_iter().for_each(|a| a(commit.as_ref().err()));
    committed
}

/// Runs `f` in a savepoint: kept on success, rolled back on error.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Cached statements: `execute_batch` compiled these anew for every job, which cost more
    // than the job's own inserts.
    let run = |sql: &str| -> Result<(), StoreError> {
        conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    };
    run("SAVEPOINT job")?;
    match f(conn) {
        Ok(v) => {
            run("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            run("ROLLBACK TO job")?;
            run("RELEASE job")?;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with an outbox (for the writer's newest position) and a table of numbers.
    fn database(dir: &std::path::Path) -> Connection {
        let conn = Connection::open(dir.join("writer.sqlite3")).unwrap();
        conn.execute_batch(
            "CREATE TABLE outbox (position INTEGER PRIMARY KEY AUTOINCREMENT);
             CREATE TABLE numbers (n INTEGER NOT NULL);",
        )
        .unwrap();
        conn
    }

    /// A job that inserts `n`, then fails if `fail`.
    fn insert(n: i64, fail: bool) -> (Job, oneshot::Receiver<Result<i64, StoreError>>) {
        let (tx, rx) = oneshot::channel();
        let work = move |conn: &Connection| {
            conn.execute("INSERT INTO numbers (n) VALUES (?1)", [n])?;
            if fail {
                return Err(StoreError::NotFound("number"));
            }
            Ok(n)
        };
        (job(work, tx), rx)
    }

    #[test]
    fn a_failing_job_rolls_back_alone_and_the_rest_of_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let conn = database(dir.path());
        let (jobs, queue) = mpsc::channel(8);
        let mut answers = Vec::new();
        // All three are queued before the writer starts, so they share one transaction.
        for (n, fail) in [(1, false), (2, true), (3, false)] {
            let (job, answer) = insert(n, fail);
            assert!(jobs.try_send(job).is_ok());
            answers.push(answer);
        }
        drop(jobs);
        let (head, _) = watch::channel(0);
        run(conn, queue, 8, head);

        let results: Vec<_> = answers
            .into_iter()
            .map(|a| a.blocking_recv().unwrap())
            .collect();
        assert!(
            matches!(
                results[..],
                [Ok(1), Err(StoreError::NotFound("number")), Ok(3)]
            ),
            "{results:?}"
        );
        let check = Connection::open(dir.path().join("writer.sqlite3")).unwrap();
        let stored: Vec<i64> = check
            .prepare("SELECT n FROM numbers ORDER BY n")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            stored,
            [1, 3],
            "the failed job's insert is gone, the others stay"
        );
    }
}
