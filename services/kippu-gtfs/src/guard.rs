//! What stands between a GTFS-Realtime source and a payout: a feed message
//! is acted on only if it is well formed, newer than the last one accepted
//! from the same source, and recent; within it, a trip's update is used only
//! if it is newer than the last update used for that trip. So a replayed,
//! duplicated, stale or reordered message can never trigger a payout that a
//! fresh one would not.

use std::collections::HashMap;

use crate::realtime::{decode_message, ServiceAlert, TripDelay};

/// Why a whole feed message was not acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedRejection {
    /// Not a GTFS-Realtime message (garbage, truncated, no header).
    #[error("malformed feed: {0}")]
    Malformed(String),
    /// The header carries no timestamp, so freshness cannot be judged.
    #[error("feed header has no timestamp")]
    NoTimestamp,
    /// The same message (same header timestamp) was already acted on.
    #[error("duplicate feed: timestamp {0} was already processed")]
    Duplicate(u64),
    /// Older than a message already acted on (delivered out of order).
    #[error("out-of-order feed: timestamp {got} is older than the last accepted {last}")]
    OutOfOrder {
        /// This message's timestamp.
        got: u64,
        /// The newest accepted so far.
        last: u64,
    },
    /// Too old to describe the present (a cached or replayed message).
    #[error("stale feed: {age_secs} s old (limit {max_age_secs} s)")]
    Stale {
        /// Age against the receiver's clock.
        age_secs: u64,
        /// The configured limit.
        max_age_secs: u64,
    },
    /// Dated in the future beyond clock skew: a producer with a broken clock.
    #[error("feed dated {ahead_secs} s in the future")]
    FromTheFuture {
        /// How far ahead.
        ahead_secs: u64,
    },
}

/// The accepted part of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Trip updates to act on.
    pub delays: Vec<TripDelay>,
    /// Trip updates dropped because a newer one for the same trip was already used.
    pub superseded: usize,
    /// The message's alerts (a full dataset: they replace the previous message's).
    pub alerts: Vec<ServiceAlert>,
    /// The message's header timestamp, to hand back to [`FeedGuard::release`] if acting on it failed.
    pub timestamp: u64,
}

/// Per-source freshness state. Pure: the caller supplies the clock.
#[derive(Debug, Clone)]
pub struct FeedGuard {
    max_age_secs: u64,
    skew_secs: u64,
    last_feed: Option<u64>,
    previous_feed: Option<u64>,
    last_trip: HashMap<String, u64>,
}

impl FeedGuard {
    /// A guard accepting messages at most `max_age_secs` old (and `skew_secs` early).
    pub fn new(max_age_secs: u64, skew_secs: u64) -> Self {
        Self { max_age_secs, skew_secs, last_feed: None, previous_feed: None, last_trip: HashMap::new() }
    }

    /// Decodes and screens one message received at `now` (POSIX seconds).
    pub fn accept(&mut self, bytes: &[u8], now: u64) -> Result<Accepted, FeedRejection> {
        let content = decode_message(bytes).map_err(|e| FeedRejection::Malformed(e.to_string()))?;
        let ts = match content.timestamp {
            0 => return Err(FeedRejection::NoTimestamp),
            ts => ts,
        };
        if ts > now + self.skew_secs {
            return Err(FeedRejection::FromTheFuture { ahead_secs: ts - now });
        }
        if now.saturating_sub(ts) > self.max_age_secs {
            return Err(FeedRejection::Stale { age_secs: now - ts, max_age_secs: self.max_age_secs });
        }
        match self.last_feed {
            Some(last) if ts == last => return Err(FeedRejection::Duplicate(ts)),
            Some(last) if ts < last => return Err(FeedRejection::OutOfOrder { got: ts, last }),
            _ => {}
        }
        self.previous_feed = self.last_feed;
        self.last_feed = Some(ts);
        let mut out = Accepted { alerts: content.alerts, timestamp: ts, ..Default::default() };
        for d in content.delays {
            let measured = d.measured_at.unwrap_or(ts);
            let key = format!("{}|{}", d.trip_id, d.start_date.as_deref().unwrap_or(""));
            match self.last_trip.get(&key) {
                Some(&seen) if measured <= seen => out.superseded += 1,
                _ => {
                    self.last_trip.insert(key, measured);
                    out.delays.push(d);
                }
            }
        }
        // Forget trips not updated for a long time, so memory stays bounded by the live service.
        let horizon = now.saturating_sub(self.max_age_secs.saturating_mul(12));
        self.last_trip.retain(|_, seen| *seen >= horizon);
        Ok(out)
    }

    /// Un-accepts the last accepted message (stamped `timestamp`) when acting on it
    /// failed part-way (the chain was unreachable), so the same message, re-sent or
    /// polled again, is processed again instead of refused as a duplicate. Trips it
    /// carried become acceptable again too. Payouts already made are not repeated:
    /// the claim store and the contract each refuse a second payout for a run.
    pub fn release(&mut self, accepted: &Accepted) {
        if self.last_feed == Some(accepted.timestamp) {
            self.last_feed = self.previous_feed.take();
            for d in &accepted.delays {
                self.last_trip.remove(&format!("{}|{}", d.trip_id, d.start_date.as_deref().unwrap_or("")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode_trip_updates;

    const NOW: u64 = 1_800_000_000;

    fn feed(ts: u64, trips: &[(&str, i32)]) -> Vec<u8> {
        let items: Vec<_> = trips.iter().map(|(t, d)| (t.to_string(), None, *d)).collect();
        encode_trip_updates(ts, &items)
    }

    #[test]
    fn fresh_newer_messages_pass_and_everything_else_is_refused_with_its_reason() {
        let mut g = FeedGuard::new(300, 30);
        assert_eq!(g.accept(&feed(NOW - 10, &[("1", 900)]), NOW).unwrap().delays.len(), 1);
        assert_eq!(g.accept(&feed(NOW - 10, &[("1", 900)]), NOW), Err(FeedRejection::Duplicate(NOW - 10)));
        assert_eq!(
            g.accept(&feed(NOW - 20, &[("1", 900)]), NOW),
            Err(FeedRejection::OutOfOrder { got: NOW - 20, last: NOW - 10 })
        );
        assert_eq!(
            g.accept(&feed(NOW - 3600, &[("1", 900)]), NOW),
            Err(FeedRejection::Stale { age_secs: 3600, max_age_secs: 300 })
        );
        assert_eq!(g.accept(&feed(NOW + 3600, &[]), NOW), Err(FeedRejection::FromTheFuture { ahead_secs: 3600 }));
        assert!(matches!(g.accept(b"\xff\x00garbage", NOW), Err(FeedRejection::Malformed(_))));
        assert!(matches!(g.accept(&[], NOW), Err(FeedRejection::Malformed(_))));
        assert_eq!(g.accept(&feed(0, &[("1", 900)]), NOW), Err(FeedRejection::NoTimestamp));
        // The refused messages left the state alone: the next fresh one passes.
        assert_eq!(g.accept(&feed(NOW - 5, &[("2", 60)]), NOW).unwrap().delays.len(), 1);
    }

    #[test]
    fn a_trip_update_older_than_one_already_used_is_superseded() {
        let mut g = FeedGuard::new(300, 30);
        g.accept(&feed(NOW - 10, &[("1", 900)]), NOW).unwrap();
        // A newer message that restates trip 1 with the same measurement time, plus a new trip.
        let mut items = vec![("1".to_string(), None, 900), ("2".to_string(), None, 60)];
        let restated = encode_with_measured(NOW - 5, &mut items, Some(NOW - 10));
        let a = g.accept(&restated, NOW).unwrap();
        assert_eq!((a.delays.len(), a.superseded), (1, 1));
        assert_eq!(a.delays[0].trip_id, "2");
    }

    #[test]
    fn a_released_message_is_accepted_again_and_its_trips_with_it() {
        let mut g = FeedGuard::new(300, 30);
        g.accept(&feed(NOW - 20, &[("1", 900)]), NOW).unwrap();
        let msg = feed(NOW - 10, &[("1", 1200), ("2", 60)]);
        let a = g.accept(&msg, NOW).unwrap();
        assert_eq!(a.delays.len(), 2);
        g.release(&a);
        // The retry sees the same trips; a duplicate of the earlier message is still out of order.
        assert_eq!(g.accept(&msg, NOW).unwrap().delays.len(), 2);
        assert_eq!(g.accept(&msg, NOW), Err(FeedRejection::Duplicate(NOW - 10)));
        assert!(matches!(g.accept(&feed(NOW - 20, &[]), NOW), Err(FeedRejection::OutOfOrder { .. })));
    }

    fn encode_with_measured(ts: u64, items: &mut [(String, Option<String>, i32)], measured: Option<u64>) -> Vec<u8> {
        use prost::Message;
        let mut msg = crate::proto::FeedMessage::decode(encode_trip_updates(ts, items).as_slice()).unwrap();
        for e in &mut msg.entity {
            if let Some(tu) = e.trip_update.as_mut() {
                tu.timestamp = measured;
            }
        }
        msg.encode_to_vec()
    }
}
