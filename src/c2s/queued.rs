//! Applying at login what was queued for the user while no session of theirs crossed
//! the proxy (see `crate::store`): right after the bind result (or `<resumed/>`), before
//! any client stanza is relayed, each operation goes out on this stream as the live one
//! would have, then leaves the store. What does not fit among the session's awaited
//! answers goes as answers free room; the client is not read until then, nor until
//! the subscriptions the proxy completes on a component's link are complete (bounded:
//! see `Hold`), so its first roster request already sees the items as the entity set
//! them.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::relay::{Session, Stop};
use super::stage::Stage;
use crate::acting::subscription::{self, Wanted};
use crate::hub::Command;
use crate::router::privilege::{message, roster};
use crate::store::{count, OpKind};

/// The longest a client waits at login for what was queued (see `Hold`): the
/// server's processing is all that is awaited.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

impl Session {
    pub(super) fn apply_queued(&mut self) -> Result<(), Stop> {
        let Some(full) = self.stage.bound().map(|b| b.jid.clone()) else {
            return Ok(());
        };
        let bare = crate::hub::bare(&full).to_owned();
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
            self.replay_finished();
            return Ok(());
        }
        // Each roster item goes as an IQ whose answer the session awaits, and the
        // session awaits at most `max_operations_per_session`: what does not fit now
        // stays in the store and goes as answers free room (see `Hold`).
        let max = self.quotas.max_operations_per_session;
        let mut room = match &mut self.stage {
            Stage::Bound(bound) => bound.route.room(max),
            _ => 0,
        };
        let mut done = Vec::with_capacity(entries.len());
        let mut rest = false;
        // Contacts whose subscription the proxy completes on a component's link: the
        // client waits for them (see `Hold`).
        let mut settling = Vec::new();
        for entry in entries {
            let kind = entry.op.kind;
            // Each was re-parsed when it was queued, so one that no longer reads is a
            // damaged record: it is dropped rather than retried at every login.
            let outcome = match kind {
                OpKind::Message => match message::replay(entry.op.stanza, &full) {
                    Ok((stanza, carbon)) => {
                        self.command(Command::SendAs { stanza, carbon })?;
                        "applied"
                    }
                    Err(error) => {
                        tracing::error!(%error, "a queued message is unreadable");
                        "unreadable"
                    }
                },
                OpKind::RosterSet => {
                    let items = roster::query_items(&entry.op.stanza, &bare);
                    // The proxy's own roster request may need a slot too.
                    let needed = items.len() + 1;
                    if items.is_empty() {
                        "unreadable"
                    } else if needed > max {
                        // Only when the limit was lowered after it was queued (the
                        // queue refuses larger sets): it can never go.
                        tracing::error!(
                            items = items.len(),
                            "a queued roster set has more items than limits.max_operations_per_session"
                        );
                        "too_large"
                    } else if needed > room {
                        rest = true;
                        break;
                    } else {
                        room -= items.len();
                        self.apply_roster_items(&bare, items, &mut settling, &mut room)?;
                        "applied"
                    }
                }
            };
            count(kind, outcome, 1);
            done.push(entry.id);
        }
        if let Stage::Bound(bound) = &mut self.stage {
            bound.hold_for(settling, rest, Instant::now() + SETTLE_TIMEOUT);
        }
        tracing::info!(
            operations = done.len(),
            waiting = rest,
            "applied what was queued"
        );
        if let Err(error) = store.remove(&bare, &done) {
            // Sent already: they would go out again at the next login.
            tracing::error!(%error, "cannot remove applied operations from the store");
        }
        Ok(())
    }

    /// One queued roster set, item by item, as the live route applies it.
    fn apply_roster_items(
        &mut self,
        bare: &str,
        items: Vec<roster::Prepared>,
        settling: &mut Vec<(String, Wanted)>,
        room: &mut usize,
    ) -> Result<(), Stop> {
        let shared = self.shared.clone();
        let hub = &shared.hub;
        for item in items {
            if subscription::on_link(hub, &item.jid, item.subscription) {
                // Before the set, so its push (the item may already have the
                // subscription) reaches this session too.
                if self.take_roster_interest()? {
                    *room = room.saturating_sub(1);
                }
                settling.push((item.jid.clone(), item.subscription));
            }
            // The server's answer is consumed like a live set's; nobody waits for it
            // any more (the entity had its result).
            let id = format!("sg-{}", crate::util::random_id());
            let (reply, _) = tokio::sync::oneshot::channel();
            let stanza = roster::set_iq(&id, &item.bytes);
            self.command(Command::Request { stanza, id, reply })?;
            for command in subscription::plan(hub, bare, &item.jid, item.subscription) {
                self.command(command)?;
            }
        }
        Ok(())
    }

    /// Nothing more waits in the store for this session's replay.
    fn replay_finished(&mut self) {
        if let Stage::Bound(bound) = &mut self.stage {
            bound.hold_for(Vec::new(), false, Instant::now());
        }
    }

    /// Asks for the roster on the user's stream as the proxy, so the server sends
    /// this session the roster pushes (RFC 6121 sends them to interested resources
    /// only) that end the client's hold. The answer is consumed, and so are the
    /// pushes until the client asks for its roster itself. `true` when it asked now
    /// (not when this session already gets the pushes).
    fn take_roster_interest(&mut self) -> Result<bool, Stop> {
        match &mut self.stage {
            Stage::Bound(bound) if bound.route.roster_unasked() => {
                bound.route.roster_requested_by_proxy()
            }
            _ => return Ok(false),
        }
        let id = format!("sg-{}", crate::util::random_id());
        let (reply, _) = tokio::sync::oneshot::channel();
        let stanza = roster::get_iq(&id);
        self.command(Command::Request { stanza, id, reply })?;
        Ok(true)
    }
}
