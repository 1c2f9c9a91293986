//! What the CDC reader starts from: scylla-cdc's saved progress (its checkpoint table), read
//! and made sense of here, and what the polling relay has covered.
//!
//! The checkpoint table holds one row per stream (`stream_id`, the stream's `generation`,
//! the `time` it was consumed up to) and one marker row for the newest generation the reader
//! started (`stream_id = 0x00`, `time` = the largest timestamp). The marker is not a
//! checkpoint, and the streams of older generations (kept for their TTL after a topology
//! change) say nothing about the current one.

use super::ScyllaStore;
use super::cluster::Row;
use super::position;
use super::statements::Stmt;
use crate::store::{RELAY_NAME, StoreError};
use chrono::{DateTime, Utc};
use scylla::value::CqlValue;
use std::time::Duration;

/// The `stream_id` of scylla-cdc's generation marker row.
const MARKER: &[u8] = &[0];

/// scylla-cdc's saved progress.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CdcProgress {
    /// The newest generation the reader started (the marker's, else the newest a stream
    /// row names), as a time since the Unix epoch.
    pub generation: Option<Duration>,
    /// How far each stream of that generation was consumed.
    pub streams: Vec<Duration>,
}

impl CdcProgress {
    /// The progress in the checkpoint table's rows (`stream_id, generation, time`).
    pub fn from_rows(rows: &[Row]) -> Result<Self, StoreError> {
        let mut marker = None;
        let mut streams = Vec::new();
        for row in rows {
            let [Some(CqlValue::Blob(stream)), generation, time] = row.as_slice() else {
                return Err(StoreError::Corrupt(format!("cdc_checkpoints row {row:?}")));
            };
            let generation = since_epoch(generation.as_ref());
            if stream.as_slice() == MARKER {
                marker = generation;
            } else if let (Some(g), Some(t)) = (generation, since_epoch(time.as_ref())) {
                streams.push((g, t));
            }
        }
        let generation = marker.or_else(|| streams.iter().map(|(g, _)| *g).max());
        Ok(Self {
            generation,
            streams: streams
                .into_iter()
                .filter(|(g, _)| Some(*g) == generation)
                .map(|(_, t)| t)
                .collect(),
        })
    }
}

/// A timestamp column as a time since the Unix epoch (`None` when null or out of range).
fn since_epoch(value: Option<&CqlValue>) -> Option<Duration> {
    match value {
        Some(CqlValue::Timestamp(t)) if t.0 >= 0 && t.0 < i64::MAX => {
            Some(Duration::from_millis(t.0 as u64))
        }
        _ => None,
    }
}

/// `t` as a time since the Unix epoch.
fn duration_of(t: DateTime<Utc>) -> Duration {
    Duration::from_micros(t.timestamp_micros().max(0) as u64)
}

/// `d` (since the Unix epoch) as a time.
fn time_at(d: Duration) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl ScyllaStore {
    /// scylla-cdc's saved progress (a row per stream: small).
    pub async fn cdc_progress(&self) -> Result<CdcProgress, StoreError> {
        CdcProgress::from_rows(&self.run(Stmt::CdcCheckpoints, Vec::new()).await?)
    }

    /// Up to when the polling relay has handled every event: its checkpoint's time (`None`
    /// if it never ran).
    pub async fn polled_through(&self) -> Result<Option<Duration>, StoreError> {
        let checkpoint = self.saved_checkpoint(RELAY_NAME).await?;
        Ok((checkpoint > 0).then(|| duration_of(position::time_of(checkpoint))))
    }

    /// When the oldest event the polling relay has not published may have been written: the
    /// start of the first registered bucket after its checkpoint (`None`: no such bucket).
    pub async fn first_unpolled(&self) -> Result<Option<Duration>, StoreError> {
        let checkpoint = self.saved_checkpoint(RELAY_NAME).await?;
        let now = position::last_at(Utc::now());
        Ok(self
            .buckets(checkpoint, now)
            .await?
            .first()
            .map(|bucket| duration_of(position::bucket_start(*bucket))))
    }

    /// Whether any event was written between `from` and `to` (times since the epoch), by
    /// the pending index's registered buckets (which outlive the CDC log).
    pub async fn wrote_between(&self, from: Duration, to: Duration) -> Result<bool, StoreError> {
        let (after, through) = (
            position::first_at(time_at(from)).saturating_sub(1),
            position::last_at(time_at(to)),
        );
        Ok(!self.buckets(after, through).await?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scylla::value::CqlTimestamp;

    fn row(stream: &[u8], generation: i64, time: i64) -> Row {
        vec![
            Some(CqlValue::Blob(stream.to_vec())),
            Some(CqlValue::Timestamp(CqlTimestamp(generation))),
            Some(CqlValue::Timestamp(CqlTimestamp(time))),
        ]
    }

    const STREAM_A: [u8; 16] = [7; 16];
    const STREAM_B: [u8; 16] = [9; 16];

    #[test]
    fn the_generation_marker_is_not_a_checkpoint() {
        // A start killed after the marker was saved and before any stream checkpoint.
        let progress = CdcProgress::from_rows(&[row(MARKER, 1_000, i64::MAX)]).unwrap();
        assert_eq!(progress.generation, Some(Duration::from_secs(1)));
        assert!(progress.streams.is_empty(), "{progress:?}");
    }

    #[test]
    fn only_the_current_generations_streams_count() {
        let rows = [
            row(&STREAM_A, 1_000, 50_000),
            row(&STREAM_B, 1_000, 60_000),
            row(MARKER, 90_000, i64::MAX),
            row(&[1; 16], 90_000, 95_000),
            row(&[2; 16], 90_000, 99_000),
        ];
        let progress = CdcProgress::from_rows(&rows).unwrap();
        assert_eq!(progress.generation, Some(Duration::from_secs(90)));
        assert_eq!(
            progress.streams,
            [Duration::from_secs(95), Duration::from_secs(99)]
        );
    }

    #[test]
    fn without_a_marker_the_newest_generation_named_is_current() {
        let rows = [row(&STREAM_A, 1_000, 50_000), row(&STREAM_B, 2_000, 60_000)];
        let progress = CdcProgress::from_rows(&rows).unwrap();
        assert_eq!(progress.streams, [Duration::from_secs(60)]);
        assert_eq!(CdcProgress::from_rows(&[]).unwrap(), CdcProgress::default());
    }

    #[test]
    fn a_row_of_another_shape_is_reported() {
        let bad = vec![Some(CqlValue::Int(1)), None, None];
        assert!(matches!(
            CdcProgress::from_rows(&[bad]),
            Err(StoreError::Corrupt(_))
        ));
    }
}
