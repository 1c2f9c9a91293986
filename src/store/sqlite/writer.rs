//! The single writer with group commit.
//!
//! Every write of the process goes through one OS thread that owns the only writable
//! connection. Requests queue on a bounded channel; the thread takes whatever has queued (up to
//! `max_batch`), applies each request inside its own SAVEPOINT of one IMMEDIATE transaction,
//! commits once, and only then answers each caller. One fsync thus serves a whole batch, and a
//! failing request (a version conflict, say) rolls back only its own savepoint.
//!
//! Because there is exactly one writer, outbox positions are assigned in commit order without
//! gaps, and read-check-write sequences inside a request need no further locking.

use super::rows;
use crate::domain::{EventEnvelope, Order, OrderId};
use crate::store::{Applied, Command, StoreError, StoredEvent};
use chrono::{SubsecRound, Utc};
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

/// One queued request for the writer.
pub enum Job {
    Apply {
        command: Command,
        reply: oneshot::Sender<Result<Applied, StoreError>>,
    },
    /// Readiness probe: a real durable write through the same path.
    Probe {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl Job {
    /// Answers a job that could not run at all.
    fn fail(self, error: StoreError) {
        // A caller that went away (timeout, disconnect) simply misses its answer.
        match self {
            Job::Apply { reply, .. } => drop(reply.send(Err(error))),
            Job::Probe { reply } => drop(reply.send(Err(error))),
        }
    }
}

/// The answer owed to one job once the batch's fate is known.
enum Pending {
    Apply(
        oneshot::Sender<Result<Applied, StoreError>>,
        Result<Applied, StoreError>,
    ),
    Probe(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
}

impl Pending {
    /// Answers the caller. If the batch failed to commit, writes that had succeeded are
    /// reported with the commit's error instead: nothing of theirs is stored.
    fn answer(self, commit: &Result<(), StoreError>) {
        match (self, commit) {
            (Pending::Apply(tx, Ok(_)), Err(e)) => drop(tx.send(Err(e.clone()))),
            (Pending::Apply(tx, result), _) => drop(tx.send(result)),
            (Pending::Probe(tx, Ok(())), Err(e)) => drop(tx.send(Err(e.clone()))),
            (Pending::Probe(tx, result), _) => drop(tx.send(result)),
        }
    }
}

/// Runs the writer loop until every sender is dropped. Blocking: call it on its own thread.
pub fn run(mut conn: Connection, mut jobs: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch = Vec::with_capacity(max_batch);
    while let Some(first) = jobs.blocking_recv() {
        batch.push(first);
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut batch);
    }
    tracing::debug!("writer stopped: no more senders");
}

/// Applies and commits one batch, then answers every job in it.
fn commit_batch(conn: &mut Connection, batch: &mut Vec<Job>) {
    let size = batch.len();
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = StoreError::from(e);
            tracing::error!(error = %e, batch = size, "cannot begin the write transaction");
            batch.drain(..).for_each(|job| job.fail(e.clone()));
            return;
        }
    };
    let mut answers = Vec::with_capacity(size);
    for job in batch.drain(..) {
        answers.push(match job {
            Job::Apply { command, reply } => {
                Pending::Apply(reply, in_savepoint(&tx, |c| apply(c, command)))
            }
            Job::Probe { reply } => Pending::Probe(reply, in_savepoint(&tx, rows::touch_probe)),
        });
    }
    let commit = tx.commit().map_err(StoreError::from);
    if let Err(e) = &commit {
        tracing::error!(error = %e, batch = size, "group commit failed");
    }
    answers.into_iter().for_each(|a| a.answer(&commit));
}

/// Runs `f` in a savepoint: kept on success, rolled back on error.
fn in_savepoint<T>(
    tx: &rusqlite::Transaction<'_>,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    // Plain SQL savepoints: the answers collected so far never borrow the transaction.
    tx.execute_batch("SAVEPOINT job")?;
    match f(tx) {
        Ok(v) => {
            tx.execute_batch("RELEASE job")?;
            Ok(v)
        }
        Err(e) => {
            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
            Err(e)
        }
    }
}

/// Applies one command on the writer connection.
fn apply(conn: &Connection, command: Command) -> Result<Applied, StoreError> {
    // Stored timestamps keep microseconds; truncating here makes the answer equal the row.
    let now = Utc::now().trunc_subsecs(6);
    match command {
        Command::Create {
            order,
            idempotency_key,
        } => {
            let fingerprint = idempotency_key.as_ref().map(|_| rows::fingerprint(&order));
            if let (Some(key), Some(fp)) = (&idempotency_key, &fingerprint)
                && let Some((stored, id)) = rows::find_idempotency_key(conn, key)?
            {
                if &stored != fp {
                    return Err(StoreError::IdempotencyKeyReused);
                }
                let order = rows::load_order(conn, id)?.ok_or_else(|| {
                    StoreError::Corrupt(format!("idempotency key points at missing order {id}"))
                })?;
                return Ok(Applied::Replayed { order });
            }
            let (order, event) = Order::create(OrderId::generate(), order, now);
            rows::insert_order(conn, &order)?;
            let position = rows::insert_event(conn, &event)?;
            if let (Some(key), Some(fp)) = (&idempotency_key, &fingerprint) {
                rows::insert_idempotency_key(conn, key, fp, &order)?;
            }
            Ok(written(order, event, position))
        }
        Command::ReplaceItems {
            id,
            items,
            expected_version,
        } => change(conn, id, |o| o.replace_items(items, expected_version, now)),
        Command::Cancel {
            id,
            reason,
            expected_version,
        } => change(conn, id, |o| o.cancel(reason, expected_version, now)),
    }
}

/// Loads an order, lets the state machine decide, and persists the new state with its event.
fn change(
    conn: &Connection,
    id: OrderId,
    decide: impl FnOnce(&Order) -> Result<(Order, EventEnvelope), crate::domain::DomainError>,
) -> Result<Applied, StoreError> {
    let current = rows::load_order(conn, id)?.ok_or(StoreError::NotFound)?;
    let (order, event) = decide(&current)?;
    rows::update_order(conn, &order)?;
    let position = rows::insert_event(conn, &event)?;
    Ok(written(order, event, position))
}

fn written(order: Order, envelope: EventEnvelope, position: u64) -> Applied {
    Applied::Written {
        order,
        event: StoredEvent { position, envelope },
    }
}
