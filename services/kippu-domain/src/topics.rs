//! MQTT topic layout of the gate protocol:
//! `kippu/v1/gates/{operator}/{station}/{gate}/{scan|verdict|status|config}`.

/// Root of every gate topic; the version lets old gates and new validators coexist.
pub const GATE_ROOT: &str = "kippu/v1/gates";

/// A gate's address in the topic tree.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct GatePath {
    /// Operator slug, e.g. `metro`.
    pub operator: String,
    /// Station slug.
    pub station: String,
    /// Gate slug within the station.
    pub gate: String,
}

impl GatePath {
    /// Builds a path, refusing segments that would break the topic tree.
    pub fn new(operator: &str, station: &str, gate: &str) -> Option<Self> {
        let ok = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        (ok(operator) && ok(station) && ok(gate)).then(|| Self {
            operator: operator.into(),
            station: station.into(),
            gate: gate.into(),
        })
    }

    /// Topic for one of this gate's channels.
    pub fn topic(&self, channel: &str) -> String {
        format!("{GATE_ROOT}/{}/{}/{}/{channel}", self.operator, self.station, self.gate)
    }

    /// Parses `kippu/v1/gates/{op}/{station}/{gate}/{channel}` into the path and channel.
    pub fn parse_topic(topic: &str) -> Option<(Self, &str)> {
        let rest = topic.strip_prefix(GATE_ROOT)?.strip_prefix('/')?;
        let mut parts = rest.split('/');
        let (op, st, gate, channel) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Some((Self::new(op, st, gate)?, channel))
    }

    /// `operator/station/gate`, the key gates are known by.
    pub fn key(&self) -> String {
        format!("{}/{}/{}", self.operator, self.station, self.gate)
    }

    /// Parses a key `operator/station/gate` ([`Self::key`]); `None` unless it is exactly
    /// three valid slugs.
    pub fn parse_key(key: &str) -> Option<Self> {
        let mut parts = key.split('/');
        let (op, st, gate) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        Self::new(op, st, gate)
    }
}

/// Where validators tell each other the entries they accepted, so replay, passback and
/// rides hold across validator processes that split the scans between them.
pub const VALIDATOR_ENTRIES: &str = "kippu/v1/validators/entries";

/// Filter a validator subscribes to; `$share/validators/` spreads scans over validators.
pub fn scan_filter(shared: bool) -> String {
    if shared {
        format!("$share/validators/{GATE_ROOT}/+/+/+/scan")
    } else {
        format!("{GATE_ROOT}/+/+/+/scan")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let p = GatePath::new("metro", "central", "g1").unwrap();
        let t = p.topic("scan");
        assert_eq!(t, "kippu/v1/gates/metro/central/g1/scan");
        assert_eq!(GatePath::parse_topic(&t), Some((p, "scan")));
        assert!(GatePath::parse_topic("kippu/v1/gates/a/b/scan").is_none());
        assert!(GatePath::parse_topic("kippu/v1/gates/a/b/c/d/e").is_none());
        assert!(GatePath::new("a+", "b", "c").is_none());
        assert!(GatePath::new("a", "", "c").is_none());
    }

    #[test]
    fn keys_parse_back() {
        let p = GatePath::new("metro", "central", "g1").unwrap();
        assert_eq!(GatePath::parse_key(&p.key()), Some(p));
        for bad in ["", "metro", "metro/central", "metro/central/g1/x", "metro//g1", "metro/+/g1", "/central/g1"] {
            assert_eq!(GatePath::parse_key(bad), None, "{bad}");
        }
    }
}
