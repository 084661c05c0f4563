//! The payout decision, kept free of I/O so chain code and services agree on it.

use crate::TripDelay;

/// Whether `delay` is late enough to trigger a policy with the given
/// threshold, i.e. `delay_secs >= threshold_minutes * 60`.
///
/// Compares in seconds rather than via [`delay_minutes`] so a delay of
/// 4 min 59 s never rounds its way past a 5-minute threshold, and 5 min 0 s
/// always meets it. A threshold of 0 is met by any non-negative delay.
pub fn affected(delay: &TripDelay, threshold_minutes: u32) -> bool {
    i64::from(delay.delay_secs) >= i64::from(threshold_minutes) * 60
}

/// Whole minutes of delay, rounded down; early running (negative delay)
/// counts as 0 because nobody is compensated for an early vehicle.
pub fn delay_minutes(delay_secs: i32) -> u32 {
    // max(0) first makes the cast lossless.
    (delay_secs.max(0) / 60) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delay(secs: i32) -> TripDelay {
        TripDelay {
            entity_id: "e".into(),
            trip_id: "1".into(),
            route_id: None,
            start_date: None,
            delay_secs: secs,
            feed_timestamp: 0,
            measured_at: None,
            start_time: None,
            observed: vec![],
        }
    }

    #[test]
    fn minutes_floor_and_clamp() {
        assert_eq!(delay_minutes(0), 0);
        assert_eq!(delay_minutes(59), 0);
        assert_eq!(delay_minutes(60), 1);
        assert_eq!(delay_minutes(299), 4);
        assert_eq!(delay_minutes(-1), 0);
        assert_eq!(delay_minutes(i32::MIN), 0);
        assert_eq!(delay_minutes(i32::MAX), (i32::MAX / 60) as u32);
    }

    #[test]
    fn threshold_is_inclusive_in_seconds() {
        assert!(!affected(&delay(299), 5));
        assert!(affected(&delay(300), 5));
        assert!(affected(&delay(301), 5));
        assert!(!affected(&delay(-600), 0));
        assert!(affected(&delay(0), 0));
        // No overflow for huge thresholds.
        assert!(!affected(&delay(i32::MAX), u32::MAX));
    }
}
