//! Applying at login what was queued for the user while no session of theirs crossed
//! the proxy (see `crate::store`): right after the bind result (or `<resumed/>`), before
//! any client stanza is relayed, each operation goes out on this stream as the live one
//! would have, then leaves the store.

use std::time::SystemTime;

use super::relay::{Session, Stop};
use crate::hub::Command;
use crate::jid::FullJid;
use crate::router::privilege::{message, roster, subscription};
use crate::store::{count, OpKind};

impl Session {
    pub(super) fn apply_queued(&mut self) -> Result<(), Stop> {
        let Some(full) = self.stage.bound().map(|b| b.jid.clone()) else {
            return Ok(());
        };
        let Ok(parsed) = FullJid::parse(&full) else {
            return Ok(());
        };
        let bare = parsed.bare().as_str().to_owned();
        let cfg = self.shared.config.current();
        let store = self.shared.store.clone();
        // A read transaction: an empty queue costs no disk write.
        let (entries, expired) =
            match store.queued(&bare, SystemTime::now(), cfg.store.max_queue_age) {
                Ok(found) => found,
                Err(error) => {
                    // The login goes on; the queue stays for the next one.
                    tracing::error!(%error, "cannot read the queued operations");
                    return Ok(());
                }
            };
        for kind in expired {
            count(kind, "expired", 1);
        }
        if entries.is_empty() {
            return Ok(());
        }
        let mut done = Vec::with_capacity(entries.len());
        for entry in entries {
            let kind = entry.op.kind;
            // Each was re-parsed when it was queued, so one that no longer reads is a
            // damaged record: it is dropped rather than retried at every login.
            let applied = match kind {
                OpKind::Message => match message::replay(entry.op.stanza, &full) {
                    Ok((stanza, carbon)) => {
                        self.command(Command::SendAs { stanza, carbon })?;
                        true
                    }
                    Err(error) => {
                        tracing::error!(%error, "a queued message is unreadable");
                        false
                    }
                },
                OpKind::RosterSet => {
                    let items = roster::queued_items(&entry.op.stanza, &bare);
                    let readable = !items.is_empty();
                    for item in items {
                        // The server's answer is consumed like a live set's; nobody
                        // waits for it any more (the entity had its result).
                        let id = format!("sg-{}", crate::util::random_id());
                        let (reply, _) = tokio::sync::oneshot::channel();
                        let stanza = roster::set_iq(&id, &item.bytes);
                        self.command(Command::Request { stanza, id, reply })?;
                        let planned = subscription::plan(
                            &self.shared.hub,
                            &bare,
                            &item.jid,
                            item.subscription,
                        );
                        for command in planned {
                            self.command(command)?;
                        }
                    }
                    readable
                }
            };
            count(kind, if applied { "applied" } else { "unreadable" }, 1);
            done.push(entry.id);
        }
        let applied = done;
        tracing::info!(operations = applied.len(), "applied what was queued");
        if let Err(error) = store.remove(&bare, &applied) {
            // Sent already: they would go out again at the next login.
            tracing::error!(%error, "cannot remove applied operations from the store");
        }
        Ok(())
    }
}
