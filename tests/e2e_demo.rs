//! The demo as the README promises it (issue 10, item 7): `deploy/local/demo.sh`
//! starts Prosody, stanzagate and the example component, prints two commands, and each
//! does what it says when run exactly as printed, from the repository root.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::process::Owned;

/// Runs one printed command line with bash, bounded by `timeout(1)`.
fn run_printed(root: &Path, line: &str) -> (bool, String) {
    let out = Command::new("timeout")
        .args(["120", "bash", "-c", line])
        .current_dir(root)
        .output()
        .expect("run a printed command");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn accepts(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[test]
fn demo_prints_two_commands_that_work_as_printed() {
    let Some(_peers) = common::peers() else {
        return;
    };
    let root = common::manifest_dir();
    let mut command = Command::new("bash");
    command
        .arg(root.join("deploy/local/demo.sh"))
        .env("STANZAGATE_BIN", env!("CARGO_BIN_EXE_stanzagate"));
    let mut demo = Owned::spawn("demo.sh", command);
    assert!(
        demo.wait_line("log follows", Duration::from_secs(180))
            .is_some(),
        "the demo did not get ready:\n{}",
        demo.output()
    );
    let printed = demo.output();
    let commands: Vec<&str> = printed
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("deploy/local/demo-client ") || l.starts_with("printf "))
        .collect();
    assert_eq!(commands.len(), 2, "two commands to copy:\n{printed}");
    assert!(
        demo.wait_line("ADVERTISED", Duration::from_secs(30))
            .is_some(),
        "the component was told its grants:\n{}",
        demo.output()
    );

    // Before the edit, urn:xmpp:time is Prosody's: the component answers nothing.
    let (ok, before) = run_printed(&root, "deploy/local/demo-client ask urn:xmpp:time");
    assert!(
        ok && before.contains("<utc>"),
        "Prosody answers time:\n{before}"
    );
    assert!(
        !demo.output().contains("ANSWERED urn:xmpp:time"),
        "the component must not have answered time before the edit:\n{}",
        demo.output()
    );

    // 1. The delegated IQ as alice, answered by the component with its privilege.
    let (ok, asked) = run_printed(&root, commands[0]);
    assert!(ok, "command 1 failed:\n{asked}");
    assert!(
        asked.contains("<name>stanzagate demo component</name>"),
        "the component answered, not Prosody:\n{asked}"
    );
    assert!(
        asked.contains("with its privilege: bob@localhost"),
        "the component read alice's roster with its roster privilege:\n{asked}"
    );
    assert!(
        demo.wait_line(
            "ANSWERED jabber:iq:version for alice@localhost/demo",
            Duration::from_secs(10)
        )
        .is_some(),
        "{}",
        demo.output()
    );

    // 2. The edit, and the component's new advertisement, with no restart.
    let (ok, watched) = run_printed(&root, commands[1]);
    assert!(ok, "command 2 failed:\n{watched}");
    assert!(
        watched.contains(r#"<delegated namespace="urn:xmpp:time" />"#),
        "the new advertisement is shown:\n{watched}"
    );
    // And the new delegation routes: the component now answers time.
    let mark = demo.line_count();
    let (ok, after) = run_printed(&root, "deploy/local/demo-client ask urn:xmpp:time");
    assert!(ok && after.contains("<utc>"), "{after}");
    assert!(
        demo.wait_line_after(mark, "ANSWERED urn:xmpp:time", Duration::from_secs(10))
            .is_some(),
        "the component answers the newly delegated namespace:\n{}",
        demo.output()
    );
    assert!(
        !demo.output().contains("stanzagate exited"),
        "stanzagate kept running across the edit"
    );

    demo.stop();
    for port in [5222, 5223, 5280, 5347, 15222, 15347] {
        assert!(
            !accepts(port),
            "the demo left port {port} open after stopping"
        );
    }
}
