//! `stanzagate import-prosody`: the `proxy.toml` sections equivalent to a Prosody
//! configuration that uses the modules stanzagate replaces — mod_delegation
//! (`delegations`), mod_privilege (`privileged_entities`, with `iq` tables),
//! mod_http_roster_admin (`http_roster_url`) — plus every external `Component` with
//! its `component_secret`.
//!
//! The Lua is parsed with `full_moon` (a maintained Lua parser), never matched with
//! patterns, so any layout Prosody accepts is read the same way. Prosody's config is
//! a sequence of statements: `VirtualHost "d"` and `Component "n"` open a section,
//! and assignments apply to the section in force (the global one before the first).
//! Anything relevant that cannot be translated — a value that is not a literal, an
//! unknown permission, a file pulled in with `Include` — is reported with its line,
//! never silently dropped or guessed.

use full_moon::ast::{Expression, Field, FunctionArgs, FunctionCall, Prefix, Stmt, Suffix, Var};
use full_moon::tokenizer::{TokenReference, TokenType};

/// What could be translated, and what not.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Imported {
    /// `proxy.toml` sections, ready to be added to a file with `[listen]` and
    /// `[upstream]`.
    pub toml: String,
    /// Constructs that matter for stanzagate but could not be translated.
    pub untranslated: Vec<Untranslated>,
}

/// A construct the importer could not translate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Untranslated {
    pub line: usize,
    pub what: String,
}

/// The Lua could not be parsed at all.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ImportError {
    pub line: usize,
    pub message: String,
}

#[derive(Default)]
struct Host {
    delegations: Vec<(String, Delegation)>,
    entities: Vec<(String, Entity)>,
    roster_url: Option<String>,
    /// `modules_enabled` of the host, when it sets one.
    modules: Option<Vec<String>>,
    modules_disabled: Vec<String>,
}

#[derive(Default)]
struct Delegation {
    jid: Option<String>,
    filtering: Vec<String>,
}

#[derive(Default)]
struct Entity {
    perms: Vec<(&'static str, String)>,
    iq: Vec<(String, String)>,
}

/// Where an assignment applies.
enum Section {
    Global,
    Host(usize),
    /// An external component (`Component "name"`), by index.
    Component(usize),
    /// An internal component (`Component "name" "plugin"`): nothing to translate.
    Internal,
}

#[derive(Default)]
struct Reader {
    hosts: Vec<(String, Host)>,
    components: Vec<(String, Option<String>, usize)>,
    global_roster_url: Option<String>,
    global_modules: Vec<String>,
    untranslated: Vec<Untranslated>,
}

/// Translates the Prosody configuration `lua`.
pub fn import(lua: &str) -> Result<Imported, ImportError> {
    let ast = full_moon::parse(lua).map_err(|errors| {
        let first = errors.first();
        ImportError {
            line: first.map_or(0, |e| e.range().0.line()),
            message: first.map_or_else(
                || "cannot parse".to_owned(),
                |e| e.error_message().into_owned(),
            ),
        }
    })?;
    let mut reader = Reader::default();
    let mut section = Section::Global;
    for stmt in ast.nodes().stmts() {
        match stmt {
            Stmt::FunctionCall(call) => reader.call(call, &mut section),
            Stmt::Assignment(assignment) => {
                let vars = assignment.variables().iter();
                let values = assignment.expressions().iter();
                for (var, value) in vars.zip(values) {
                    if let Var::Name(name) = var {
                        reader.setting(&section, &token_text(name), value);
                    }
                }
            }
            Stmt::LocalAssignment(local) => {
                let line = local.local_token().start_position().line();
                reader.note(
                    line,
                    "a local variable: values that use it are not translated",
                );
            }
            _ => {}
        }
    }
    Ok(reader.finish())
}

impl Reader {
    fn note(&mut self, line: usize, what: impl Into<String>) {
        self.untranslated.push(Untranslated {
            line,
            what: what.into(),
        });
    }

    /// `VirtualHost "d"`, `Component "n" ["plugin"]`, `Include "file"`.
    fn call(&mut self, call: &FunctionCall, section: &mut Section) {
        let Prefix::Name(name) = call.prefix() else {
            return;
        };
        let line = name.start_position().line();
        let args: Vec<Option<String>> = call
            .suffixes()
            .map(|suffix| match suffix {
                Suffix::Call(full_moon::ast::Call::AnonymousCall(args)) => match &**args {
                    FunctionArgs::String(token) => string(token),
                    FunctionArgs::Parentheses { arguments, .. } => {
                        arguments.iter().next().and_then(literal_string)
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        let first = args.first().cloned().flatten();
        match (token_text(name).as_str(), first) {
            ("VirtualHost" | "Host", Some(domain)) => {
                self.hosts.push((domain, Host::default()));
                *section = Section::Host(self.hosts.len() - 1);
            }
            ("Component", Some(component)) => {
                let plugin = args.get(1).cloned().flatten();
                *section = match plugin {
                    Some(_) => Section::Internal,
                    None => {
                        self.components.push((component, None, line));
                        Section::Component(self.components.len() - 1)
                    }
                };
            }
            ("VirtualHost" | "Host" | "Component", None) => {
                self.note(line, "a section whose name is not a literal string");
                *section = Section::Internal;
            }
            ("Include" | "include", _) => self.note(
                line,
                "Include: the included files are not read; import them too",
            ),
            _ => {}
        }
    }

    /// One `name = value` in `section`.
    fn setting(&mut self, section: &Section, name: &str, value: &Expression) {
        let line = expression_line(value);
        match (section, name) {
            (Section::Global, "http_roster_url") => match literal_string(value) {
                Some(url) => self.global_roster_url = Some(url),
                None => self.note(line, "http_roster_url is not a literal string"),
            },
            (Section::Global, "modules_enabled") => {
                self.global_modules = self.strings(value, "modules_enabled")
            }
            (Section::Host(i), "http_roster_url") => match literal_string(value) {
                Some(url) => self.hosts[*i].1.roster_url = Some(url),
                None => self.note(line, "http_roster_url is not a literal string"),
            },
            (Section::Host(i), "modules_enabled") => {
                let modules = self.strings(value, "modules_enabled");
                self.hosts[*i].1.modules = Some(modules);
            }
            (Section::Host(i), "modules_disabled") => {
                let modules = self.strings(value, "modules_disabled");
                self.hosts[*i].1.modules_disabled = modules;
            }
            (Section::Host(i), "delegations") => {
                let delegations = self.delegations(value);
                self.hosts[*i].1.delegations = delegations;
            }
            (Section::Host(i), "privileged_entities") => {
                let entities = self.entities(value);
                self.hosts[*i].1.entities = entities;
            }
            (Section::Global, "delegations" | "privileged_entities") => self.note(
                line,
                format!("{name} outside a VirtualHost: set it on each VirtualHost"),
            ),
            (Section::Component(i), "component_secret") => match literal_string(value) {
                Some(secret) => self.components[*i].1 = Some(secret),
                None => self.note(line, "component_secret is not a literal string"),
            },
            _ => {}
        }
    }

    /// A table of strings (`{"a", "b"}`).
    fn strings(&mut self, value: &Expression, what: &str) -> Vec<String> {
        let Some(table) = table_of(value) else {
            self.note(
                expression_line(value),
                format!("{what} is not a table of strings"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for field in table.fields() {
            match field {
                Field::NoKey(expression) => match literal_string(expression) {
                    Some(s) => out.push(s),
                    None => self.note(
                        expression_line(expression),
                        format!("an entry of {what} is not a literal string"),
                    ),
                },
                _ => self.note(field_line(field), format!("{what} has a keyed entry")),
            }
        }
        out
    }

    /// `delegations = { ["ns"] = { jid = "…"; filtering = {…} } }`.
    fn delegations(&mut self, value: &Expression) -> Vec<(String, Delegation)> {
        let mut out = Vec::new();
        for (line, ns, spec) in self.keyed(value, "delegations") {
            let Some(table) = table_of(spec) else {
                self.note(line, format!("the delegation of {ns} is not a table"));
                continue;
            };
            let mut delegation = Delegation::default();
            for field in table.fields() {
                let line = field_line(field);
                match (field_key(field).as_deref(), field_value(field)) {
                    (Some("jid"), Some(v)) => match literal_string(v) {
                        Some(jid) => delegation.jid = Some(jid),
                        None => self.note(line, format!("the jid of {ns} is not a literal string")),
                    },
                    (Some("filtering"), Some(v)) => {
                        delegation.filtering = self.strings(v, "filtering");
                    }
                    (key, _) => self.note(
                        line,
                        format!(
                            "unknown delegation setting {:?} for {ns}",
                            key.unwrap_or("?")
                        ),
                    ),
                }
            }
            if delegation.jid.is_none() {
                self.note(line, format!("the delegation of {ns} has no jid"));
                continue;
            }
            out.push((ns, delegation));
        }
        out
    }

    /// `privileged_entities = { ["jid"] = { roster = "…"; message = "…"; presence = "…";
    /// iq = { ["ns"] = "…" } } }`.
    fn entities(&mut self, value: &Expression) -> Vec<(String, Entity)> {
        let mut out = Vec::new();
        for (line, jid, spec) in self.keyed(value, "privileged_entities") {
            let Some(table) = table_of(spec) else {
                self.note(line, format!("the privileges of {jid} are not a table"));
                continue;
            };
            let mut entity = Entity::default();
            for field in table.fields() {
                let line = field_line(field);
                let key = field_key(field);
                let Some(value) = field_value(field) else {
                    self.note(line, format!("a privilege of {jid} has no name"));
                    continue;
                };
                let allowed: &[&str] = match key.as_deref() {
                    Some("roster") => &["none", "get", "set", "both"],
                    Some("message") => &["none", "outgoing"],
                    Some("presence") => &["none", "managed_entity", "roster"],
                    Some("iq") => {
                        entity.iq = self.iq_table(value, &jid);
                        continue;
                    }
                    other => {
                        let name = other.unwrap_or("?");
                        self.note(line, format!("unknown privilege {name:?} for {jid}"));
                        continue;
                    }
                };
                let name = match key.as_deref() {
                    Some("roster") => "roster",
                    Some("message") => "message",
                    _ => "presence",
                };
                match literal_string(value).filter(|v| allowed.contains(&v.as_str())) {
                    Some(perm) => entity.perms.push((name, perm)),
                    None => self.note(
                        line,
                        format!("{name} of {jid} is not one of {}", allowed.join(", ")),
                    ),
                }
            }
            out.push((jid, entity));
        }
        out
    }

    fn iq_table(&mut self, value: &Expression, jid: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (line, ns, perm) in self.keyed(value, "iq") {
            match literal_string(perm)
                .filter(|p| ["none", "get", "set", "both"].contains(&p.as_str()))
            {
                Some(perm) => out.push((ns, perm)),
                None => self.note(
                    line,
                    format!("the iq permission of {jid} for {ns} is not none, get, set or both"),
                ),
            }
        }
        out
    }

    /// The `["key"] = value` (or `key = value`) entries of a table.
    fn keyed<'a>(
        &mut self,
        value: &'a Expression,
        what: &str,
    ) -> Vec<(usize, String, &'a Expression)> {
        let Some(table) = table_of(value) else {
            self.note(expression_line(value), format!("{what} is not a table"));
            return Vec::new();
        };
        let mut out = Vec::new();
        for field in table.fields() {
            let line = field_line(field);
            match (field_key(field), field_value(field)) {
                (Some(key), Some(value)) => out.push((line, key, value)),
                _ => self.note(line, format!("an entry of {what} has no literal key")),
            }
        }
        out
    }

    fn finish(mut self) -> Imported {
        let mut toml = String::new();
        let roster_admin_everywhere = self.global_modules.iter().any(|m| m == "http_roster_admin");
        for (domain, host) in &self.hosts {
            toml.push_str(&format!("[hosts.{}]\n\n", quote(domain)));
            for (ns, delegation) in &host.delegations {
                toml.push_str(&format!(
                    "[hosts.{}.delegations.{}]\njid = {}\n",
                    quote(domain),
                    quote(ns),
                    quote(delegation.jid.as_deref().unwrap_or_default())
                ));
                if !delegation.filtering.is_empty() {
                    toml.push_str(&format!("filtering = {}\n", list(&delegation.filtering)));
                }
                toml.push('\n');
            }
            for (jid, entity) in &host.entities {
                toml.push_str(&format!(
                    "[hosts.{}.privileged_entities.{}]\n",
                    quote(domain),
                    quote(jid)
                ));
                for (name, perm) in &entity.perms {
                    toml.push_str(&format!("{name} = {}\n", quote(perm)));
                }
                if !entity.iq.is_empty() {
                    let iq: Vec<String> = entity
                        .iq
                        .iter()
                        .map(|(ns, perm)| format!("{} = {}", quote(ns), quote(perm)))
                        .collect();
                    toml.push_str(&format!("iq = {{ {} }}\n", iq.join(", ")));
                }
                toml.push('\n');
            }
            let enabled = match &host.modules {
                Some(modules) => modules.iter().any(|m| m == "http_roster_admin"),
                None => false,
            } || roster_admin_everywhere;
            let disabled = host
                .modules_disabled
                .iter()
                .any(|m| m == "http_roster_admin");
            let url = host.roster_url.as_ref().or(self.global_roster_url.as_ref());
            if enabled && !disabled {
                match url {
                    Some(url) => {
                        toml.push_str(&format!(
                            "[hosts.{}.roster_admin]\nurl = {}\n\
# New in stanzagate: the refresh endpoint needs a bearer token (create the file).\n\
refresh_token_file = \"roster_admin.token\"\n\n",
                            quote(domain),
                            quote(url)
                        ));
                    }
                    None => self.untranslated.push(Untranslated {
                        line: 0,
                        what: format!(
                            "http_roster_admin is enabled for {domain} but no http_roster_url is set"
                        ),
                    }),
                }
            }
        }
        let entities: Vec<&str> = self
            .hosts
            .iter()
            .flat_map(|(_, h)| h.delegations.iter().filter_map(|(_, d)| d.jid.as_deref()))
            .collect();
        for (name, secret, line) in &self.components {
            toml.push_str(&format!("[components.{}]\n", quote(name)));
            match secret {
                Some(secret) => toml.push_str(&format!("secret = {}\n\n", quote(secret))),
                None => {
                    toml.push_str("secret_file = \"component.secret\"  # Prosody had none\n\n");
                    self.untranslated.push(Untranslated {
                        line: *line,
                        what: format!("Component {name} has no component_secret"),
                    });
                }
            }
        }
        for jid in entities {
            let known = self.components.iter().any(|(name, ..)| name == jid);
            if !known {
                self.untranslated.push(Untranslated {
                    line: 0,
                    what: format!(
                        "delegations name {jid}, which is not a Component of this file: add its [components] entry"
                    ),
                });
            }
        }
        self.untranslated.sort_by_key(|u| u.line);
        Imported {
            toml,
            untranslated: self.untranslated,
        }
    }
}

fn token_text(token: &TokenReference) -> String {
    token.token().to_string()
}

/// The value of a literal string token (`"…"`, `'…'` or `[[…]]`), escapes decoded.
fn string(token: &TokenReference) -> Option<String> {
    match token.token_type() {
        TokenType::StringLiteral {
            literal,
            multi_line_depth,
            ..
        } => match multi_line_depth {
            0 => unescape(literal),
            _ => Some(literal.to_string()),
        },
        _ => None,
    }
}

/// Lua's short-string escapes the configs use; anything else is not translated.
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            't' => '\t',
            c @ ('\\' | '"' | '\'') => c,
            _ => return None,
        });
    }
    Some(out)
}

fn literal_string(expression: &Expression) -> Option<String> {
    match expression {
        Expression::String(token) => string(token),
        Expression::Parentheses { expression, .. } => literal_string(expression),
        _ => None,
    }
}

fn table_of(expression: &Expression) -> Option<&full_moon::ast::TableConstructor> {
    match expression {
        Expression::TableConstructor(table) => Some(table),
        _ => None,
    }
}

fn field_key(field: &Field) -> Option<String> {
    match field {
        Field::ExpressionKey { key, .. } => literal_string(key),
        Field::NameKey { key, .. } => Some(token_text(key)),
        _ => None,
    }
}

fn field_value(field: &Field) -> Option<&Expression> {
    match field {
        Field::ExpressionKey { value, .. } | Field::NameKey { value, .. } => Some(value),
        _ => None,
    }
}

fn field_line(field: &Field) -> usize {
    match field {
        Field::ExpressionKey { brackets, .. } => brackets.tokens().0.start_position().line(),
        Field::NameKey { key, .. } => key.start_position().line(),
        Field::NoKey(expression) => expression_line(expression),
        _ => 0,
    }
}

fn expression_line(expression: &Expression) -> usize {
    use full_moon::node::Node;
    expression.start_position().map_or(0, |p| p.line())
}

/// A TOML string (basic, escaped).
fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| quote(i)).collect();
    format!("[{}]", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    /// The examples in the modules' own documentation (prosody-modules READMEs of
    /// mod_delegation, mod_privilege and mod_http_roster_admin), as operators have them.
    const DELEGATION_README: &str = r#"
VirtualHost "yourdomain.tld"
    delegations = {
        ["urn:xmpp:mam:0"] = {
            filtering = {"node"};
            jid = "pubsub.yourdomain.tld";
        },
        ["http://jabber.org/protocol/pubsub"] = {
            jid = "pubsub.yourdomain.tld";
        },
    }

Component "pubsub.yourdomain.tld"
    component_secret = "yourpassword"
    modules_enabled = {"delegation"}
"#;

    const PRIVILEGE_README: &str = r#"
VirtualHost "yourdomain.tld"
    privileged_entities = {
        ["romeo@montaigu.lit"] = {
            roster = "get";
            presence = "managed_entity";
        },
        ["juliet@capulet.lit"] = {
            roster = "both";
            message = "outgoing";
            presence = "roster";
        },
        ["pubsub.yourdomain.tld"] = {
            roster = "get";
            message = "outgoing";
            presence = "roster";
            iq = {
                ["http://jabber.org/protocol/pubsub"] = "set";
            };
        },
    }

Component "pubsub.yourdomain.tld"
    component_secret = "s3cret"
"#;

    const ROSTER_ADMIN_README: &str = r#"
modules_enabled = { "http_roster_admin", "block_subscriptions", "storage_memory", "http_files" }
modules_disabled = { "roster" }
storage = { roster = "memory" }
http_roster_url = "http://localhost/contacts/%s" -- %s: the URL-encoded username

VirtualHost "example.com"
"#;

    const BASE: &str = "[listen]\nc2s = \"127.0.0.1:5222\"\ncomponent = \"127.0.0.1:5347\"\n\
[tls]\nrequired = false\n[upstream]\nc2s = \"127.0.0.1:15222\"\ncomponent = \"127.0.0.1:15347\"\n";

    /// The imported sections make a valid config with a `[listen]` and `[upstream]`.
    fn valid(imported: &Imported) -> Config {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("roster_admin.token"), "token").expect("token file");
        let path = dir.path().join("proxy.toml");
        Config::from_str(&format!("{BASE}{}", imported.toml), &path)
            .unwrap_or_else(|e| panic!("{e}\n{}", imported.toml))
    }

    #[test]
    fn the_delegation_readme_example() {
        let imported = import(DELEGATION_README).unwrap();
        assert!(
            imported.untranslated.is_empty(),
            "{:?}",
            imported.untranslated
        );
        let cfg = valid(&imported);
        let host = cfg.host("yourdomain.tld").unwrap();
        let mam = &host.delegations["urn:xmpp:mam:0"];
        assert_eq!(mam.jid, "pubsub.yourdomain.tld");
        assert_eq!(mam.filtering, ["node"]);
        assert!(host
            .delegations
            .contains_key("http://jabber.org/protocol/pubsub"));
        assert_eq!(
            cfg.component("pubsub.yourdomain.tld")
                .unwrap()
                .secret
                .expose(),
            "yourpassword"
        );
    }

    #[test]
    fn the_privilege_readme_example_with_iq_tables() {
        let imported = import(PRIVILEGE_README).unwrap();
        assert!(
            imported.untranslated.is_empty(),
            "{:?}",
            imported.untranslated
        );
        let cfg = valid(&imported);
        let entities = &cfg.host("yourdomain.tld").unwrap().privileged_entities;
        assert_eq!(entities.len(), 3);
        let pubsub = &entities["pubsub.yourdomain.tld"];
        assert_eq!(pubsub.iq.len(), 1);
        assert!(pubsub.iq["http://jabber.org/protocol/pubsub"].allows_set());
        assert!(entities["juliet@capulet.lit"].roster.allows_set());
        assert!(!entities["romeo@montaigu.lit"].roster.allows_set());
    }

    #[test]
    fn the_roster_admin_readme_example_applies_to_every_host() {
        let imported = import(ROSTER_ADMIN_README).unwrap();
        assert!(
            imported.untranslated.is_empty(),
            "{:?}",
            imported.untranslated
        );
        let cfg = valid(&imported);
        let admin = cfg
            .host("example.com")
            .unwrap()
            .roster_admin
            .clone()
            .unwrap();
        assert_eq!(admin.url, "http://localhost/contacts/%s");
    }

    #[test]
    fn what_cannot_be_translated_is_listed_with_its_line() {
        let lua = r#"
local pubsub = "pubsub.example.com"
Include "conf.d/*.cfg.lua"
VirtualHost "example.com"
    delegations = {
        ["urn:example:a"] = { jid = pubsub },
        ["urn:example:b"] = { jid = "c.example.com", sharding = true },
    }
    privileged_entities = {
        ["c.example.com"] = { roster = "all"; message = "outgoing" },
    }
Component "c.example.com"
    component_secret = os.getenv("SECRET")
Component "muc.example.com" "muc"
    component_secret = "not an external component"
"#;
        let imported = import(lua).unwrap();
        let lines: Vec<usize> = imported.untranslated.iter().map(|u| u.line).collect();
        let text = format!("{:?}", imported.untranslated);
        assert!(lines.contains(&2), "local variable: {text}");
        assert!(lines.contains(&3), "Include: {text}");
        assert!(lines.contains(&6), "non-literal jid: {text}");
        assert!(lines.contains(&7), "unknown setting: {text}");
        assert!(lines.contains(&10), "unknown permission value: {text}");
        assert!(lines.contains(&13), "non-literal secret: {text}");
        // What could be translated still is; the internal MUC component is not external.
        assert!(imported
            .toml
            .contains("[hosts.\"example.com\".delegations.\"urn:example:b\"]"));
        assert!(imported.toml.contains("message = \"outgoing\""));
        assert!(!imported.toml.contains("muc.example.com"));
    }

    #[test]
    fn a_syntax_error_is_reported_with_its_line() {
        let error = import("VirtualHost \"a\"\n  delegations = {\n").unwrap_err();
        assert!(error.line >= 2, "{error}");
    }

    #[test]
    fn the_output_is_valid_toml_whatever_the_strings_hold() {
        let lua = "VirtualHost \"example.com\"\nComponent \"c.example.com\"\n  component_secret = \"a\\\"b\\\\c'\"\n";
        let imported = import(lua).unwrap();
        let cfg = valid(&imported);
        assert_eq!(
            cfg.component("c.example.com").unwrap().secret.expose(),
            "a\"b\\c'"
        );
    }
}
