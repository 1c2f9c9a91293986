//! Secrets from the configuration (the admin token, the ScyllaDB password): kept as given,
//! never shown by `Debug`, so a logged configuration cannot leak them.

use std::fmt;

/// A secret from the configuration; its `Debug` output never shows it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Accepts 16 to 256 visible ASCII characters.
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

    /// The secret itself, for the one place that must show it (start-up, when generated).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
