//! Error reporting for configuration loading: one `ConfigIssue` per problem, all of
//! them collected into `ConfigErrors` so `check-config` can show everything at once.

use std::fmt;
use std::path::PathBuf;

/// One problem found in the configuration, located by key path and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// The configuration file as the caller named it, for the `file:line:` prefix.
    pub file: PathBuf,
    /// TOML key path such as `hosts."capulet.lit".delegations`; empty when the
    /// problem concerns the whole file (unreadable, syntax error).
    pub key: String,
    /// 1-based line number, when the key appears in the file.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigIssue {}

/// Every issue found in one load attempt, sorted by line. Never empty when
/// returned by the loader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigIssue>);

impl ConfigErrors {
    pub fn issues(&self) -> &[ConfigIssue] {
        &self.0
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, issue) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{issue}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(key: &str, line: Option<usize>) -> ConfigIssue {
        ConfigIssue {
            file: PathBuf::from("proxy.toml"),
            key: key.to_owned(),
            line,
            message: "bad".to_owned(),
        }
    }

    #[test]
    fn display_formats() {
        assert_eq!(
            issue("a.b", Some(12)).to_string(),
            "proxy.toml:12: a.b: bad"
        );
        assert_eq!(issue("a.b", None).to_string(), "proxy.toml: a.b: bad");
        assert_eq!(issue("", None).to_string(), "proxy.toml: bad");
        let all = ConfigErrors(vec![issue("a", Some(1)), issue("b", Some(2))]);
        assert_eq!(
            all.to_string(),
            "proxy.toml:1: a: bad\nproxy.toml:2: b: bad"
        );
    }
}
