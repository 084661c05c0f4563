//! Throttling failed attempts (sign-ins, token checks): how many failures a key may have in a
//! window before it is locked, and for how long. The counts live in the database so every
//! process sees the same ones; this module only decides.

/// When a key is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures within `window_secs` that lock the key.
    pub max_failures: u32,
    /// How far back failures count.
    pub window_secs: i64,
    /// How long a lock lasts.
    pub lock_secs: i64,
}

impl Policy {
    /// Per account: five wrong passwords in a quarter of an hour lock it for a quarter of an hour.
    pub const ACCOUNT: Policy = Policy { max_failures: 5, window_secs: 900, lock_secs: 900 };
    /// Per client address: more room (a shared office, a NAT), the same lock.
    pub const CLIENT: Policy = Policy { max_failures: 20, window_secs: 900, lock_secs: 900 };
}

/// What a key's record says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Attempts are allowed.
    Open,
    /// Refused until this time (unix seconds).
    Locked {
        /// When the lock ends.
        until: i64,
    },
}

/// The verdict for a key locked until `locked_until` (0: never locked), at `now`.
pub fn verdict(locked_until: i64, now: i64) -> Verdict {
    if locked_until > now {
        Verdict::Locked { until: locked_until }
    } else {
        Verdict::Open
    }
}

/// The lock a key gets after a failure, given its failures in the current window (this one
/// included): `Some(until)` once they reach the policy's maximum.
pub fn lock_after(failures: u32, now: i64, p: &Policy) -> Option<i64> {
    (failures >= p.max_failures).then_some(now + p.lock_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_locks_for_the_policy_s_time_and_the_lock_ends() {
        let p = Policy::ACCOUNT;
        assert_eq!(lock_after(4, 100, &p), None);
        assert_eq!(lock_after(5, 100, &p), Some(1000));
        assert_eq!(verdict(1000, 999), Verdict::Locked { until: 1000 });
        assert_eq!(verdict(1000, 1000), Verdict::Open);
        assert_eq!(verdict(0, 5), Verdict::Open);
    }
}
