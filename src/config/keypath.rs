//! `KeyPath`: the dotted TOML path used to name a key in error messages and diffs,
//! and `Lines`, the map from key paths to the line where each key was written.

use std::collections::HashMap;
use std::fmt;

/// A schema field (printed bare) or a user-chosen name such as a host domain or a
/// namespace (always printed quoted, so `hosts."a"` reads the same for any name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Field(String),
    Name(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    pub fn root() -> KeyPath {
        KeyPath::default()
    }

    pub fn field(&self, field: &str) -> KeyPath {
        self.push(Segment::Field(field.to_owned()))
    }

    pub fn name(&self, name: &str) -> KeyPath {
        self.push(Segment::Name(name.to_owned()))
    }

    pub fn parent(&self) -> Option<KeyPath> {
        let (_, parent) = self.0.split_last()?;
        Some(KeyPath(parent.to_vec()))
    }

    fn push(&self, segment: Segment) -> KeyPath {
        let mut segments = self.0.clone();
        segments.push(segment);
        KeyPath(segments)
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            match segment {
                Segment::Field(field) => f.write_str(field)?,
                Segment::Name(name) => write!(f, "\"{}\"", escape(name))?,
            }
        }
        Ok(())
    }
}

fn escape(name: &str) -> String {
    name.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Where each key of the document was written, recorded while reading it so that
/// later checks on the typed configuration can still point at a line.
#[derive(Debug, Default)]
pub struct Lines(HashMap<KeyPath, usize>);

impl Lines {
    pub fn record(&mut self, path: &KeyPath, line: Option<usize>) {
        if let Some(line) = line {
            self.0.entry(path.clone()).or_insert(line);
        }
    }

    /// The line of `path`, or of its closest ancestor when the key itself is absent
    /// (a missing key is best reported at the table that should contain it).
    pub fn find(&self, path: &KeyPath) -> Option<usize> {
        let mut current = Some(path.clone());
        while let Some(path) = current {
            if let Some(line) = self.0.get(&path) {
                return Some(*line);
            }
            current = path.parent();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_fields_are_not() {
        let path = KeyPath::root()
            .field("hosts")
            .name("a")
            .field("delegations")
            .name("x\"y");
        assert_eq!(path.to_string(), r#"hosts."a".delegations."x\"y""#);
    }

    #[test]
    fn find_falls_back_to_ancestors() {
        let mut lines = Lines::default();
        let listen = KeyPath::root().field("listen");
        lines.record(&listen, Some(3));
        assert_eq!(lines.find(&listen.field("c2s")), Some(3));
        assert_eq!(lines.find(&KeyPath::root().field("tls")), None);
    }
}
