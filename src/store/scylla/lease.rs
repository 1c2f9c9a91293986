//! The relay lease row (see `cdc::lease`): lightweight transactions, so two instances never
//! both hold it.

use super::ScyllaStore;
use super::statements::applied;
use crate::store::StoreError;
use std::time::Duration;
use uuid::Uuid;

impl ScyllaStore {
    /// Renews the relay lease for `owner`, or takes it if it is free, for `ttl`. False if
    /// another owner holds it.
    pub async fn take_relay_lease(&self, owner: Uuid, ttl: Duration) -> Result<bool, StoreError> {
        let ttl = i32::try_from(ttl.as_secs()).unwrap_or(i32::MAX).max(1);
        let s = &self.statements;
        let renewed = self
            .session
            .execute_unpaged(&s.renew_lease, (ttl, owner, owner))
            .await?;
        if applied(renewed)? {
            return Ok(true);
        }
        let taken = self
            .session
            .execute_unpaged(&s.take_lease, (owner, ttl))
            .await?;
        applied(taken)
    }

    /// Gives the lease up if `owner` holds it, so another instance takes over at once.
    pub async fn release_relay_lease(&self, owner: Uuid) -> Result<(), StoreError> {
        self.session
            .execute_unpaged(&self.statements.release_lease, (owner,))
            .await?;
        Ok(())
    }
}
