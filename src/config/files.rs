//! The files a configuration refers to: paths relative to the config file's directory
//! and secrets kept in files of their own.

use std::path::{Path, PathBuf};

use super::secret::Secret;

/// A path from the configuration, made absolute against the config directory.
pub(crate) fn resolve(base: &Path, text: &str) -> Result<PathBuf, String> {
    if text.is_empty() {
        return Err("the path must not be empty".to_owned());
    }
    Ok(base.join(text))
}

/// A secret kept in its own file; surrounding whitespace (the trailing newline
/// editors add) is not part of it.
pub(crate) fn read_secret(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Secret::new(trimmed))
}
