//! What the normalisation does, asserted on the spellings that matter for
//! routing and permission checks. Expected values are what the `jid` and
//! `stringprep` crates produce, checked against the RFC 3454 tables.

use std::collections::{BTreeMap, HashMap, HashSet};

use proptest::prelude::*;

use super::*;

fn bare(text: &str) -> BareJid {
    BareJid::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn full(text: &str) -> FullJid {
    FullJid::parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

fn error(text: &str) -> JidError {
    match Jid::parse(text) {
        Ok(jid) => panic!("{text:?} parsed as {jid:?}"),
        Err(e) => e,
    }
}

/// Asserts that every spelling parses to `expected` and all are one value.
fn assert_same(expected: &str, spellings: &[&str]) {
    let parsed: HashSet<Jid> = spellings
        .iter()
        .map(|s| Jid::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}")))
        .collect();
    assert_eq!(parsed.len(), 1, "{spellings:?} gave {parsed:?}");
    let jid = parsed.into_iter().next().unwrap();
    assert_eq!(jid.as_str(), expected, "{spellings:?}");
}

#[test]
fn ascii_case_of_node_and_domain_is_folded() {
    assert_same(
        "alice@example.org",
        &[
            "Alice@Example.ORG",
            "alice@example.org",
            "ALICE@EXAMPLE.ORG",
        ],
    );
    assert_eq!(bare("Alice@Example.ORG"), bare("alice@example.org"));
    assert_same("example.org", &["Example.ORG", "EXAMPLE.org"]);
}

#[test]
fn unicode_variants_are_folded_as_nodeprep_and_nameprep_fold_them() {
    // NFKC: fullwidth forms and ligatures.
    assert_same(
        "alice@example.org",
        &["ａｌｉｃｅ@example.org", "ＡＬＩＣＥ@ｅｘａｍｐｌｅ.org"],
    );
    assert_same("ff@example.org", &["ﬀ@example.org", "FF@example.org"]);
    assert_same("ffi@example.org", &["ﬃ@example.org"]);
    // Table B.2 folds ß to "ss", unlike Rust's `to_lowercase`.
    assert_same(
        "strasse@example.org",
        &[
            "Straße@example.org",
            "STRASSE@example.org",
            "strasse@example.org",
        ],
    );
    // Kelvin sign, final and capital sigma.
    assert_same("k@example.org", &["\u{212A}@example.org", "K@example.org"]);
    assert_same("σ@example.org", &["ς@example.org", "Σ@example.org"]);
    // Characters mapped to nothing: soft hyphen and zero-width space.
    assert_same(
        "alice@example.org",
        &["al\u{AD}ice@exam\u{200B}ple.org", "alice@example.org"],
    );
    // Domains fold the same way and stay in Unicode form.
    assert_same(
        "a@bücher.example",
        &["a@BÜCHER.example", "a@bu\u{308}cher.example"],
    );
    assert_same("a@example.org", &["a@ｅｘａｍｐｌｅ.org"]);
}

#[test]
fn turkish_and_dotless_i_are_not_plain_i() {
    // B.2 maps U+0130 to "i" + U+0307 (combining dot above), not to "i", so
    // ALİCE is not alice; the server folds it the same way.
    assert_same(
        "ali\u{307}ce@example.org",
        &["ALİCE@example.org", "alİce@example.org"],
    );
    assert_ne!(bare("ALİCE@example.org"), bare("alice@example.org"));
    // Dotless ı has no case mapping to i.
    assert_eq!(bare("alıce@example.org").as_str(), "alıce@example.org");
    assert_ne!(bare("alıce@example.org"), bare("alice@example.org"));
}

#[test]
fn resource_keeps_its_case() {
    assert_ne!(full("a@example.org/Phone"), full("a@example.org/phone"));
    assert_eq!(full("A@Example.org/Phone").as_str(), "a@example.org/Phone");
    // Resourceprep still applies NFKC and drops mapped-to-nothing characters.
    assert_eq!(full("a@x/ＲＥＳ").resource(), "RES");
    assert_eq!(full("a@x/re\u{AD}s").resource(), "res");
    // A resource may hold `@` and `/`.
    let jid = full("juliet@Capulet.LIT/balcony@home/x");
    assert_eq!(jid.node(), Some("juliet"));
    assert_eq!(jid.domain().as_str(), "capulet.lit");
    assert_eq!(jid.resource(), "balcony@home/x");
}

#[test]
fn trailing_dot_of_the_domain_is_dropped() {
    assert_same(
        "a@example.org",
        &["a@example.org.", "a@Example.ORG.", "a@example.org"],
    );
    let jid = full("a@example.org./res");
    assert_eq!(jid.as_str(), "a@example.org/res");
    assert_eq!(jid.resource(), "res");
    assert_eq!(full("example.org./res").resource(), "res");
    assert_eq!(
        Domain::parse("Example.ORG.").unwrap().as_str(),
        "example.org"
    );
    // Only the root label may be empty.
    assert_eq!(error("."), JidError::Empty(JidPart::Domain));
    assert_eq!(error("a@example.org.."), JidError::BadDomain);
    assert_eq!(error("a@.example.org"), JidError::BadDomain);
    assert_eq!(error("a@example..org"), JidError::BadDomain);
}

#[test]
fn ip_literals_are_kept() {
    assert_eq!(bare("a@127.0.0.1").domain().as_str(), "127.0.0.1");
    assert_same("a@[::abcd]", &["a@[::ABCD]", "a@[::abcd]"]);
    assert_eq!(full("[::1]/r").domain().as_str(), "[::1]");
}

#[test]
fn empty_parts_are_refused() {
    assert_eq!(error(""), JidError::Empty(JidPart::Domain));
    assert_eq!(error("@x"), JidError::Empty(JidPart::Node));
    assert_eq!(error("a@"), JidError::Empty(JidPart::Domain));
    assert_eq!(error("a@/r"), JidError::Empty(JidPart::Domain));
    assert_eq!(error("/r"), JidError::Empty(JidPart::Domain));
    assert_eq!(error("a@x/"), JidError::Empty(JidPart::Resource));
    // Non-empty as written, empty once prepared.
    assert_eq!(error("\u{AD}@x"), JidError::Empty(JidPart::Node));
    assert_eq!(error("a@x/\u{200B}"), JidError::Empty(JidPart::Resource));
}

#[test]
fn parts_longer_than_1023_bytes_are_refused() {
    let max = "a".repeat(1023);
    let over = "a".repeat(1024);
    assert!(Jid::parse(&format!("{max}@example.org/{max}")).is_ok());
    assert_eq!(
        error(&format!("{over}@example.org")),
        JidError::TooLong(JidPart::Node)
    );
    assert_eq!(
        error(&format!("a@example.org/{over}")),
        JidError::TooLong(JidPart::Resource)
    );
    assert_eq!(error(&over), JidError::TooLong(JidPart::Domain));
    // The limit holds for the text as written, even if preparing shrinks it,
    // as in Prosody.
    let shrinks = format!("{}a", "\u{AD}".repeat(600));
    assert_eq!(
        error(&format!("{shrinks}@x")),
        JidError::TooLong(JidPart::Node)
    );
    // ... and for the prepared text, even if the written one fits: each "㌀"
    // (3 bytes) becomes "アパート" (12 bytes).
    assert!(BareJid::parse(&format!("{}@x", "㌀".repeat(85))).is_ok());
    assert_eq!(
        error(&format!("{}@x", "㌀".repeat(86))),
        JidError::TooLong(JidPart::Node)
    );
    // DNS limits apply to names: 63 bytes a label, 253 in all.
    assert!(Domain::parse(&"a".repeat(63)).is_ok());
    assert_eq!(error(&"a".repeat(64)), JidError::BadDomain);
    let long_name = vec!["a".repeat(50); 6].join(".");
    assert_eq!(error(&long_name), JidError::BadDomain);
}

#[test]
fn prohibited_characters_are_refused() {
    for node in [
        "al ice", "a\"b", "a&b", "a'b", "a:b", "a<b", "a>b", "a\u{7}b",
    ] {
        let text = format!("{node}@example.org");
        match error(&text) {
            JidError::Prep {
                part: JidPart::Node,
                reason,
            } => assert!(
                reason.contains("prohibited character"),
                "{text:?}: {reason}"
            ),
            other => panic!("{text:?}: {other:?}"),
        }
    }
    assert_eq!(error("a@b@example.org"), JidError::TooManyAts);
    assert_eq!(error("a@exa mple.org"), JidError::BadDomain);
    assert_eq!(error("a@-example.org"), JidError::BadDomain);
    assert!(matches!(
        error("a@x/tab\there"),
        JidError::Prep {
            part: JidPart::Resource,
            ..
        }
    ));
    // Mixed right-to-left and left-to-right text.
    assert!(matches!(
        error("aא@x"),
        JidError::Prep {
            part: JidPart::Node,
            ..
        }
    ));
    // Spaces are fine inside a resource.
    assert_eq!(full("a@x/my phone").resource(), "my phone");
}

#[test]
fn code_points_newer_than_unicode_3_2_are_refused() {
    assert_eq!(
        error("room@muc.example.org/😀"),
        JidError::Unassigned {
            part: JidPart::Resource,
            ch: '😀'
        }
    );
    // Today's NFKC would turn U+1F100 into "0." and U+1D2C into "A"; libidn,
    // on Unicode 3.2, leaves both alone. Refusing keeps us from naming an
    // entity the server does not.
    assert_eq!(
        error("\u{1F100}@example.org"),
        JidError::Unassigned {
            part: JidPart::Node,
            ch: '\u{1F100}'
        }
    );
    assert_eq!(
        error("\u{1D2C}lice@example.org"),
        JidError::Unassigned {
            part: JidPart::Node,
            ch: '\u{1D2C}'
        }
    );
    assert!(matches!(
        error("a@💩.la"),
        JidError::Unassigned {
            part: JidPart::Domain,
            ..
        }
    ));
    let message = error("a@x/😀").to_string();
    assert!(message.contains("U+1F600"), "{message}");
}

#[test]
fn each_type_accepts_its_own_shape() {
    assert!(matches!(Jid::parse("a@x"), Ok(Jid::Bare(_))));
    assert!(matches!(Jid::parse("a@x/r"), Ok(Jid::Full(_))));
    assert_eq!(
        BareJid::parse("a@x/r").unwrap_err(),
        JidError::UnexpectedResource
    );
    assert_eq!(
        FullJid::parse("a@x").unwrap_err(),
        JidError::MissingResource
    );
    assert_eq!(Domain::parse("a@x").unwrap_err(), JidError::UnexpectedNode);
    assert_eq!(
        Domain::parse("x/r").unwrap_err(),
        JidError::UnexpectedResource
    );
    assert_eq!("A@X".parse::<BareJid>(), Ok(bare("a@x")));
    assert!("x".parse::<Domain>().is_ok());
}

#[test]
fn accessors() {
    let jid = Jid::parse("Juliet@Capulet.lit/Balcony").unwrap();
    assert_eq!(jid.node(), Some("juliet"));
    assert_eq!(jid.domain().as_str(), "capulet.lit");
    assert_eq!(jid.resource(), Some("Balcony"));
    assert_eq!(jid.bare(), bare("juliet@capulet.lit"));
    assert!(!jid.is_domain());
    assert_eq!(jid.to_string(), "juliet@capulet.lit/Balcony");
    assert_eq!(format!("{jid:?}"), r#"Jid("juliet@capulet.lit/Balcony")"#);

    let domain = Jid::parse("Pubsub.Capulet.lit").unwrap();
    assert!(domain.is_domain());
    assert_eq!(domain.node(), None);
    assert_eq!(domain.resource(), None);
    assert_eq!(domain.bare().to_string(), "pubsub.capulet.lit");

    let with = bare("juliet@capulet.lit")
        .with_resource("Ｂalcony")
        .unwrap();
    assert_eq!(with, full("juliet@capulet.lit/Balcony"));
    assert_eq!(
        bare("a@x").with_resource("").unwrap_err(),
        JidError::Empty(JidPart::Resource)
    );
    assert!(matches!(
        bare("a@x").with_resource("\u{7}"),
        Err(JidError::Prep {
            part: JidPart::Resource,
            ..
        })
    ));
}

#[test]
fn domains_are_looked_up_by_the_domain_of_a_jid_without_allocating() {
    let mut hash = HashMap::new();
    hash.insert(Domain::parse("Example.ORG").unwrap(), 1);
    let mut tree = BTreeMap::new();
    tree.insert(Domain::parse("example.org.").unwrap(), 1);
    let jid = full("alice@EXAMPLE.org/phone");
    assert_eq!(hash.get(jid.domain()), Some(&1));
    assert_eq!(tree.get(jid.domain()), Some(&1));
    assert_eq!(
        Domain::from(jid.domain()),
        Domain::parse("example.org").unwrap()
    );
    assert_eq!(
        Domain::parse("example.org").unwrap().as_bare(),
        &bare("example.org")
    );
}

#[test]
fn values_are_one_pointer_and_clones_share_it() {
    assert_eq!(size_of::<BareJid>(), size_of::<usize>());
    assert_eq!(size_of::<FullJid>(), size_of::<usize>());
    assert_eq!(size_of::<Domain>(), size_of::<usize>());
    let jid = full("a@x/r");
    let clone = jid.clone();
    assert!(Arc::ptr_eq(&jid.0, &clone.0));
}

/// Characters that stringprep maps, folds or composes, plus plain ones.
fn tricky_text(max: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        prop::char::range('a', 'z'),
        prop::char::range('A', 'Z'),
        prop::char::range('\u{C0}', '\u{24F}'),
        prop::char::range('\u{300}', '\u{36F}'),
        prop::char::range('\u{391}', '\u{3C9}'),
        prop::char::range('\u{1E00}', '\u{1FFF}'),
        prop::char::range('\u{2160}', '\u{2188}'),
        prop::char::range('\u{FB00}', '\u{FB06}'),
        prop::char::range('\u{FF21}', '\u{FF5A}'),
        Just('\u{AD}'),
        Just('\u{200B}'),
        Just('\u{130}'),
        Just('\u{212A}'),
    ];
    prop::collection::vec(chars, 1..max).prop_map(|chars| chars.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Preparing is idempotent: the text we compare and write back parses to
    /// the same value, so a JID survives being stored and parsed again.
    #[test]
    fn prepared_text_parses_to_itself(
        node in tricky_text(12),
        domain in tricky_text(12),
        resource in tricky_text(12),
    ) {
        let text = format!("{node}@{domain}.example/{resource}");
        if let Ok(jid) = Jid::parse(&text) {
            let again = Jid::parse(jid.as_str());
            prop_assert_eq!(again.as_ref(), Ok(&jid), "{:?}", text);
        }
    }

    /// ASCII case never matters in the localpart or domainpart.
    #[test]
    fn ascii_case_never_matters_outside_the_resource(text in "[a-zA-Z0-9._-]{1,20}@[a-zA-Z0-9]{1,20}\\.[a-zA-Z]{2,6}") {
        let lower = text.to_ascii_lowercase();
        prop_assert_eq!(Jid::parse(&text), Jid::parse(&lower));
    }
}
