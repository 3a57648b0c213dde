//! Typed reading of the parsed TOML tree. Every problem (wrong type, unknown key,
//! missing key, bad value) is recorded as a `ConfigIssue` and reading carries on, so
//! one pass reports everything. Also records the line of every key it visits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{Item, Key, TableLike};

use super::issue::{ConfigErrors, ConfigIssue};
use super::keypath::{KeyPath, Lines};

/// Accumulates issues and key lines while the document is read.
pub(crate) struct Reader<'s> {
    src: &'s str,
    file: PathBuf,
    lines: Lines,
    issues: Vec<ConfigIssue>,
}

/// A key that is present in the document.
pub(crate) struct Entry<'d> {
    pub path: KeyPath,
    pub line: Option<usize>,
    pub item: &'d Item,
}

/// The known keys of one table. Keys looked up through [`Fields::get`] are the
/// allowed ones; anything else left in the table is reported by [`Fields::finish`].
pub(crate) struct Fields<'d> {
    table: Option<&'d dyn TableLike>,
    path: KeyPath,
    line: Option<usize>,
    known: Vec<&'static str>,
}

impl<'s> Reader<'s> {
    pub fn new(src: &'s str, file: &Path) -> Reader<'s> {
        Reader {
            src,
            file: file.to_owned(),
            lines: Lines::default(),
            issues: Vec::new(),
        }
    }

    pub fn line_at(&self, offset: usize) -> usize {
        let before = self.src.get(..offset).unwrap_or(self.src);
        before.matches('\n').count() + 1
    }

    pub fn issue(&mut self, path: &KeyPath, line: Option<usize>, message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            file: self.file.clone(),
            key: path.to_string(),
            line,
            message: message.into(),
        });
    }

    pub fn issue_at(&mut self, entry: &Entry<'_>, message: impl Into<String>) {
        self.issue(&entry.path, entry.line, message);
    }

    /// Reports a problem found after reading, at the line recorded for `path` or
    /// its nearest ancestor.
    pub fn report(&mut self, path: &KeyPath, message: impl Into<String>) {
        let line = self.lines.find(path);
        self.issue(path, line, message);
    }

    /// `value` if nothing went wrong, otherwise every issue ordered by line.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        let mut issues = self.issues;
        if issues.is_empty() {
            return Ok(value);
        }
        issues.sort_by_key(|issue| (issue.line.is_none(), issue.line));
        Err(ConfigErrors(issues))
    }

    /// Records where `path` is written and wraps it as an [`Entry`].
    pub fn enter<'d>(&mut self, path: KeyPath, key: &Key, item: &'d Item) -> Entry<'d> {
        let span = key.span().or_else(|| item.span());
        let line = span.map(|span| self.line_at(span.start));
        self.lines.record(&path, line);
        Entry { path, line, item }
    }

    /// The keys of the document root.
    pub fn root<'d>(&self, table: &'d dyn TableLike) -> Fields<'d> {
        Fields {
            table: Some(table),
            path: KeyPath::root(),
            line: None,
            known: Vec::new(),
        }
    }

    pub fn table<'d>(&mut self, entry: &Entry<'d>) -> Fields<'d> {
        let table = entry.item.as_table_like();
        if table.is_none() {
            self.type_error(entry, "a table");
        }
        Fields {
            table,
            path: entry.path.clone(),
            line: entry.line,
            known: Vec::new(),
        }
    }

    /// The entries of a table whose keys are user-chosen names (hosts,
    /// namespaces, JIDs). The caller builds each entry's path because names are
    /// normalised before they become part of one.
    pub fn names<'d>(&mut self, entry: &Entry<'d>) -> Vec<(&'d Key, &'d Item)> {
        let Some(table) = entry.item.as_table_like() else {
            self.type_error(entry, "a table");
            return Vec::new();
        };
        table
            .iter()
            .filter_map(|(name, item)| Some((table.get_key_value(name)?.0, item)))
            .collect()
    }

    pub fn string(&mut self, entry: &Entry<'_>) -> Option<String> {
        let value = entry.item.as_str().map(str::to_owned);
        if value.is_none() {
            self.type_error(entry, "a string");
        }
        value
    }

    /// A string that `parse` turns into a value or rejects with a message.
    pub fn parsed<T>(
        &mut self,
        entry: &Entry<'_>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let text = self.string(entry)?;
        parse(&text)
            .map_err(|message| self.issue_at(entry, message))
            .ok()
    }

    /// `text` (an element of the array at `entry`) through `parse`; problems are
    /// reported at the entry.
    pub fn parsed_text<T>(
        &mut self,
        entry: &Entry<'_>,
        text: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        parse(text)
            .map_err(|message| self.issue_at(entry, message))
            .ok()
    }

    pub fn boolean(&mut self, entry: &Entry<'_>) -> Option<bool> {
        let value = entry.item.as_bool();
        if value.is_none() {
            self.type_error(entry, "a boolean");
        }
        value
    }

    /// A non-negative integer no smaller than `min`.
    pub fn integer(&mut self, entry: &Entry<'_>, min: u64) -> Option<u64> {
        let Some(value) = entry.item.as_integer() else {
            self.type_error(entry, "an integer");
            return None;
        };
        match u64::try_from(value) {
            Ok(value) if value >= min => Some(value),
            _ if min == 1 => {
                self.issue_at(entry, format!("must be greater than 0, found {value}"));
                None
            }
            _ => {
                self.issue_at(entry, format!("must be at least {min}, found {value}"));
                None
            }
        }
    }

    /// A count (of bytes, elements, …) that must be at least `min`.
    pub fn count(&mut self, entry: &Entry<'_>, min: u64) -> Option<usize> {
        let value = self.integer(entry, min)?;
        let count = usize::try_from(value).ok();
        if count.is_none() {
            self.issue_at(entry, "too large for this platform");
        }
        count
    }

    /// A positive number of milliseconds.
    pub fn millis(&mut self, entry: &Entry<'_>) -> Option<Duration> {
        self.integer(entry, 1).map(Duration::from_millis)
    }

    /// A positive number of seconds.
    pub fn seconds(&mut self, entry: &Entry<'_>) -> Option<Duration> {
        self.integer(entry, 1).map(Duration::from_secs)
    }

    pub fn strings(&mut self, entry: &Entry<'_>) -> Option<Vec<String>> {
        let Some(array) = entry.item.as_array() else {
            self.type_error(entry, "an array of strings");
            return None;
        };
        let strings: Option<Vec<String>> = array
            .iter()
            .map(|value| value.as_str().map(str::to_owned))
            .collect();
        if strings.is_none() {
            self.type_error(entry, "an array of strings");
        }
        strings
    }

    /// One of a closed set of string values; an unknown one is reported with the
    /// list of allowed values.
    pub fn choice<T: Copy>(&mut self, entry: &Entry<'_>, choices: &[(&str, T)]) -> Option<T> {
        let text = self.string(entry)?;
        let found = choices.iter().find(|(name, _)| *name == text);
        if found.is_none() {
            let allowed: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
            let message = format!("unknown value {text:?} (allowed: {})", allowed.join(", "));
            self.issue_at(entry, message);
        }
        found.map(|(_, value)| *value)
    }

    fn type_error(&mut self, entry: &Entry<'_>, expected: &str) {
        let found = entry.item.type_name();
        self.issue_at(entry, format!("expected {expected}, found {found}"));
    }
}

impl<'d> Fields<'d> {
    /// Looks up an allowed key.
    pub fn get(&mut self, r: &mut Reader<'_>, key: &'static str) -> Option<Entry<'d>> {
        self.known.push(key);
        let (k, item) = self.table?.get_key_value(key)?;
        Some(r.enter(self.path.field(key), k, item))
    }

    /// Looks up an allowed key that must be present.
    pub fn require(&mut self, r: &mut Reader<'_>, key: &'static str) -> Option<Entry<'d>> {
        let entry = self.get(r, key);
        if entry.is_none() {
            r.issue(&self.path.field(key), self.line, "missing required key");
        }
        entry
    }

    /// Reads an allowed key with `read` when it is present.
    pub fn read<'s, T>(
        &mut self,
        r: &mut Reader<'s>,
        key: &'static str,
        read: impl FnOnce(&mut Reader<'s>, &Entry<'d>) -> Option<T>,
    ) -> Option<T> {
        let entry = self.get(r, key)?;
        read(r, &entry)
    }

    /// Reads a key that must be present.
    pub fn read_required<'s, T>(
        &mut self,
        r: &mut Reader<'s>,
        key: &'static str,
        read: impl FnOnce(&mut Reader<'s>, &Entry<'d>) -> Option<T>,
    ) -> Option<T> {
        let entry = self.require(r, key)?;
        read(r, &entry)
    }

    /// A sub-table with a fixed set of keys. An absent section reads as empty so
    /// that its required keys are still reported by name.
    pub fn section(&mut self, r: &mut Reader<'_>, key: &'static str) -> Fields<'d> {
        match self.get(r, key) {
            Some(entry) => r.table(&entry),
            None => Fields {
                table: None,
                path: self.path.field(key),
                line: self.line,
                known: Vec::new(),
            },
        }
    }

    /// Reports a problem with the table as a whole.
    pub fn issue(&self, r: &mut Reader<'_>, message: impl Into<String>) {
        r.issue(&self.path, self.line, message);
    }

    /// Reports every key of the table that was not asked for.
    pub fn finish(self, r: &mut Reader<'_>) {
        let Some(table) = self.table else { return };
        for (name, item) in table.iter() {
            if self.known.contains(&name) {
                continue;
            }
            let Some((key, _)) = table.get_key_value(name) else {
                continue;
            };
            let entry = r.enter(self.path.field(name), key, item);
            let expected = self.known.join(", ");
            r.issue_at(&entry, format!("unknown key (expected one of: {expected})"));
        }
    }
}
