//! Applying at login what was queued for the user while no session of theirs crossed
//! the proxy (see `crate::store`): right after the bind result (or `<resumed/>`), before
//! any client stanza is relayed, each operation goes out on this stream as the live one
//! would have, then leaves the store. When roster sets ask subscriptions the proxy
//! completes on a component's link, the client is not read until they are complete
//! (bounded), so its first roster request already sees them as the entity set them.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::relay::{Session, Stop};
use super::stage::{Hold, Stage};
use crate::acting::subscription;
use crate::hub::Command;
use crate::jid::FullJid;
use crate::router::privilege::{message, roster};
use crate::store::{count, OpKind};

impl Session {
    /// Asks for the roster on the user's stream as the proxy, so the server sends
    /// this session the roster pushes (RFC 6121 sends them to interested resources
    /// only) that end the client's hold. The answer is consumed, and so are the
    /// pushes until the client asks for its roster itself.
    fn take_roster_interest(&mut self) -> Result<(), Stop> {
        if let Stage::Bound(bound) = &mut self.stage {
            bound.route.roster_requested_by_proxy();
        }
        let id = format!("sg-{}", crate::util::random_id());
        let (reply, _) = tokio::sync::oneshot::channel();
        let stanza = roster::get_iq(&id);
        self.command(Command::Request { stanza, id, reply })
    }
}

/// The longest a client waits at login for the subscriptions its queued roster sets
/// asked of components connected through the proxy (the proxy answers them at once:
/// only the server's processing is awaited).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

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
        // Contacts whose subscription the proxy completes on a component's link: the
        // client waits for them (see `Hold`).
        let mut settling = Vec::new();
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
                    let items = roster::query_items(&entry.op.stanza, &bare);
                    let readable = !items.is_empty();
                    for item in items {
                        let shared = self.shared.clone();
                        let hub = &shared.hub;
                        if subscription::on_link(hub, &item.jid, item.subscription) {
                            // Before the set, so its push (the item may already have
                            // the subscription) reaches this session too.
                            if settling.is_empty() {
                                self.take_roster_interest()?;
                            }
                            settling.push((item.jid.clone(), item.subscription));
                        }
                        // The server's answer is consumed like a live set's; nobody
                        // waits for it any more (the entity had its result).
                        let id = format!("sg-{}", crate::util::random_id());
                        let (reply, _) = tokio::sync::oneshot::channel();
                        let stanza = roster::set_iq(&id, &item.bytes);
                        self.command(Command::Request { stanza, id, reply })?;
                        let planned = subscription::plan(hub, &bare, &item.jid, item.subscription);
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
        if !settling.is_empty() {
            if let Stage::Bound(bound) = &mut self.stage {
                bound.hold = Hold::Settling {
                    contacts: settling,
                    until: Instant::now() + SETTLE_TIMEOUT,
                };
            }
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
