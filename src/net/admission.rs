//! Per-address limits on the client listeners, applied to the client's real address
//! (after PROXY protocol): connections open at once (`limits.max_connections_per_ip`)
//! and authentication attempts per minute (`limits.logins_per_ip_per_minute`).
//! Loopback addresses are exempt: they are the proxy's own infrastructure (a local TLS
//! terminator, the test harness), never a remote attacker. Expiry walks a queue, so no
//! event scans every address.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;

const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct Admission {
    open: Arc<DashMap<IpAddr, usize>>,
    /// Address → (window start, attempts in the window).
    logins: DashMap<IpAddr, (Instant, usize)>,
    expiry: Mutex<VecDeque<(Instant, IpAddr)>>,
}

/// One admitted connection; its address's count goes down when it is dropped.
pub struct Admitted {
    slot: Option<(Arc<DashMap<IpAddr, usize>>, IpAddr)>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((open, ip)) = self.slot.take() {
            open.remove_if_mut(&ip, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
    }
}

impl Admission {
    /// Admits one more connection from `ip`, unless `max` are open already.
    pub fn connect(&self, ip: IpAddr, max: usize) -> Option<Admitted> {
        if ip.is_loopback() {
            return Some(Admitted { slot: None });
        }
        let mut open = self.open.entry(ip).or_insert(0);
        if *open >= max {
            drop(open);
            crate::metrics::quota_exceeded("max_connections_per_ip");
            return None;
        }
        *open += 1;
        Some(Admitted {
            slot: Some((self.open.clone(), ip)),
        })
    }

    /// Counts an authentication attempt from `ip`; `false` beyond `max` a minute.
    pub fn login(&self, ip: IpAddr, max: usize) -> bool {
        if ip.is_loopback() {
            return true;
        }
        let now = Instant::now();
        self.expire(now);
        // The map entry is released before the expiry queue is locked (`expire` takes
        // them the other way round).
        let (allowed, fresh) = {
            let mut entry = self.logins.entry(ip).or_insert((now, 0));
            let fresh = entry.1 == 0;
            if now.duration_since(entry.0) >= WINDOW {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
            (entry.1 <= max, fresh)
        };
        if fresh {
            crate::util::lock(&self.expiry).push_back((now + WINDOW, ip));
        }
        if !allowed {
            crate::metrics::quota_exceeded("logins_per_ip_per_minute");
        }
        allowed
    }

    /// Forgets addresses whose window ended, oldest first.
    fn expire(&self, now: Instant) {
        let mut expiry = crate::util::lock(&self.expiry);
        while let Some((at, ip)) = expiry.front().copied() {
            if at > now {
                break;
            }
            expiry.pop_front();
            let stale = self
                .logins
                .get(&ip)
                .is_some_and(|e| now.duration_since(e.0) >= WINDOW);
            match stale {
                true => {
                    self.logins.remove(&ip);
                }
                // Its window restarted: check again when that one ends.
                false => {
                    if let Some(e) = self.logins.get(&ip) {
                        expiry.push_back((e.0 + WINDOW, ip));
                    }
                }
            }
        }
    }

    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.open.get(&ip).map_or(0, |n| *n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_address_are_bounded_and_released() {
        let admission = Admission::default();
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let a = admission.connect(ip, 2).unwrap();
        let _b = admission.connect(ip, 2).unwrap();
        assert!(admission.connect(ip, 2).is_none());
        assert!(admission
            .connect("203.0.113.8".parse().unwrap(), 2)
            .is_some());
        drop(a);
        assert_eq!(admission.open_from(ip), 1);
        assert!(admission.connect(ip, 2).is_some());
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..10)
            .filter_map(|_| admission.connect(loopback, 2))
            .collect();
        assert_eq!(held.len(), 10, "loopback is exempt");
    }

    #[test]
    fn logins_per_minute_are_bounded() {
        let admission = Admission::default();
        let ip: IpAddr = "2001:db8::7".parse().unwrap();
        assert!((0..3).all(|_| admission.login(ip, 3)));
        assert!(!admission.login(ip, 3));
        assert!(admission.login("2001:db8::8".parse().unwrap(), 3));
    }
}
