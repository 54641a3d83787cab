//! A network between the caller and WeCom, modelled on loopback: a round
//! trip added to every API answer, and extra round trips before the first
//! answer on a new connection (TCP's handshake 1 and TLS 1.3's 1: 2, what
//! `qyapi.weixin.qq.com` costs a client that does not keep connections
//! alive; TLS 1.2 would be 3). Counts API connections and API calls in flight, so tests see
//! connection reuse and concurrency. Browser pages are not delayed: the
//! model is the server's path to WeCom.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The modelled network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Network {
    /// One round trip, added to every API answer.
    pub rtt: Duration,
    /// Extra round trips before a new connection's first API answer.
    pub new_connection_round_trips: u32,
}

impl Network {
    /// `rtt` per answer, `extra` more on a new connection.
    pub fn new(rtt: Duration, new_connection_round_trips: u32) -> Self {
        Network {
            rtt,
            new_connection_round_trips,
        }
    }
}

/// What the server counts of the network.
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    pub(crate) network: Mutex<Network>,
    pub(crate) connections: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Traffic {
    pub(crate) fn network(&self) -> Network {
        *self.network.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An API call arrives: counted in flight until the guard drops.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(self)
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    pub(crate) fn reset(&self) {
        self.connections.store(0, Ordering::SeqCst);
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

pub(crate) struct InFlight<'a>(&'a Traffic);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
