//! The relay lease row (see `cdc::lease`): lightweight transactions, so two instances never
//! both hold it.

use super::ScyllaStore;
use super::cluster::values;
use super::statements::{Stmt, applied};
use crate::store::StoreError;
use std::time::Duration;
use uuid::Uuid;

impl ScyllaStore {
    /// Renews the relay lease for `owner`, or takes it if it is free, for `ttl`. False if
    /// another owner holds it.
    pub async fn take_relay_lease(&self, owner: Uuid, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX).max(1);
        let renewed = self
            .run(Stmt::RenewLease, values![ttl, owner, owner])
            .await?;
        if applied(&renewed)? {
            return Ok(true);
        }
        let taken = self.run(Stmt::TakeLease, values![owner, ttl]).await?;
        applied(&taken)
    }

    /// Gives the lease up if `owner` holds it, so another instance takes over at once.
    pub async fn release_relay_lease(&self, owner: Uuid) -> Result<(), StoreError> {
        self.run(Stmt::ReleaseLease, values![owner]).await?;
        Ok(())
    }
}
