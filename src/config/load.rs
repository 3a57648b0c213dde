//! Loading: reading the config file and the read → build → validate pipeline (the
//! files the config refers to are read by [`super::files`]).

use std::path::{Path, PathBuf};

use toml_edit::ImDocument;

use super::build;
use super::issue::{ConfigErrors, ConfigIssue};
use super::read::Reader;
use super::schema::Config;
use super::validate;

impl Config {
    /// Reads, parses and validates `path`, reporting every problem found.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            whole_file_error(path, None, format!("cannot read the configuration: {e}"))
        })?;
        Config::parse(&text, path, Checks::WithFiles)
    }

    /// Parses and validates `text` as if it had been read from `source`; relative
    /// paths inside it are resolved against `source`'s directory. What the config only
    /// names (the store's directory) is not looked at: `source` need not exist.
    pub fn from_str(text: &str, source: &Path) -> Result<Config, ConfigErrors> {
        Config::parse(text, source, Checks::TextOnly)
    }

    fn parse(text: &str, source: &Path, checks: Checks) -> Result<Config, ConfigErrors> {
        let mut reader = Reader::new(text, source);
        let doc = ImDocument::parse(text).map_err(|e| {
            let line = e.span().map(|span| reader.line_at(span.start));
            whole_file_error(source, line, e.message().trim_end().to_owned())
        })?;
        let source = absolute(source);
        let base = source.parent().map(Path::to_owned).unwrap_or_default();
        let cfg = build::config(doc.as_table(), &mut reader, &base, source);
        for (path, message) in validate::cross_check(&cfg) {
            reader.report(&path, message);
        }
        if checks == Checks::WithFiles {
            for (path, message) in validate::places(&cfg) {
                reader.report(&path, message);
            }
        }
        reader.finish(cfg)
    }
}

/// How far loading looks beyond the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Checks {
    TextOnly,
    /// Also the places the config names on this machine (see [`validate::places`]).
    WithFiles,
}

fn whole_file_error(file: &Path, line: Option<usize>, message: String) -> ConfigErrors {
    ConfigErrors(vec![ConfigIssue {
        file: file.to_owned(),
        key: String::new(),
        line,
        message,
    }])
}

/// Absolute without resolving symlinks: a Kubernetes-mounted config is a symlink
/// whose target changes on every update, so the link itself is what we track.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}
