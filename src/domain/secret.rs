//! Secrets from the configuration (the admin token, the ScyllaDB password): kept as given,
//! never shown by `Debug`, so a logged configuration or options struct cannot leak them.

use std::fmt;

/// A secret from the configuration; its `Debug` output never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// A password for another system: 1 to 1,024 characters.
    pub fn password(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.chars().count() > 1024 {
            return Err("must be 1 to 1024 characters".into());
        }
        Ok(Self(text.to_string()))
    }

    /// A token clients present (the admin token): 16 to 256 visible ASCII characters.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !(16..=256).contains(&text.len()) || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("must be 16 to 256 visible ASCII characters".into());
        }
        Ok(Self(text.to_string()))
    }

    /// A fresh random secret (244 bits from the OS generator).
    pub fn generate() -> Self {
        Self(format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        ))
    }

    /// The secret itself, for the places that must use it (hashing the admin token, logging
    /// in to ScyllaDB) or show it once (start-up, when generated).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
