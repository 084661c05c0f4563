//! The audit log's rules: what an entry says, how each entry's hash chains it to the one
//! before, and how a chain read back is checked. An edited row no longer hashes to what it
//! carries; a deleted or inserted row breaks the sequence or the next row's `prev_hash`.
//! (Cutting rows off the end leaves a shorter, valid chain: `kippu audit verify` prints the
//! head, so a head noted earlier, or anchored elsewhere, catches that too.)

use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// What was done, as the log names it. The names are stable: filters and exports use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuditAction {
    /// A member of staff signed in.
    SignIn,
    /// A sign-in was refused (wrong password, unknown account, throttled).
    SignInFailed,
    /// A member of staff signed out.
    SignOut,
    /// An organisation was added.
    OrganisationAdded,
    /// A staff account was added.
    StaffAdded,
    /// A member of staff added a passkey to their account.
    PasskeyAdded,
    /// An invited member of staff set their password (the invitation is used up).
    InvitationAccepted,
    /// A staff account's role changed.
    RoleChanged,
    /// A staff account was disabled.
    StaffDisabled,
    /// An API token was issued.
    TokenIssued,
    /// An API token was revoked.
    TokenRevoked,
    /// The catalogue (operators, products, bundles, cover terms) was applied.
    CatalogueApplied,
    /// A timetable was imported.
    TimetableImported,
    /// A concession credential was issued.
    CredentialIssued,
    /// A concession credential was revoked.
    CredentialRevoked,
    /// A voucher was redeemed at an operator's scanner.
    VoucherRedeemed,
    /// A clearing period was closed (settlement and payouts).
    PeriodClosed,
    /// A ticket was refunded.
    Refunded,
    /// A gate was added.
    GateAdded,
    /// A gate's credential was rotated.
    GateRotated,
    /// A gate was revoked.
    GateRevoked,
}

impl AuditAction {
    /// Every action, in the order the log's filter offers them.
    pub const ALL: [AuditAction; 21] = [
        Self::SignIn,
        Self::SignInFailed,
        Self::SignOut,
        Self::OrganisationAdded,
        Self::StaffAdded,
        Self::InvitationAccepted,
        Self::PasskeyAdded,
        Self::RoleChanged,
        Self::StaffDisabled,
        Self::TokenIssued,
        Self::TokenRevoked,
        Self::CatalogueApplied,
        Self::TimetableImported,
        Self::CredentialIssued,
        Self::CredentialRevoked,
        Self::VoucherRedeemed,
        Self::PeriodClosed,
        Self::Refunded,
        Self::GateAdded,
        Self::GateRotated,
        Self::GateRevoked,
    ];

    /// The stable name (`staff.sign_in`, `gate.rotated`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignIn => "staff.sign_in",
            Self::SignInFailed => "staff.sign_in_failed",
            Self::SignOut => "staff.sign_out",
            Self::OrganisationAdded => "organisation.added",
            Self::StaffAdded => "staff.added",
            Self::InvitationAccepted => "staff.invitation_accepted",
            Self::PasskeyAdded => "staff.passkey_added",
            Self::RoleChanged => "staff.role_changed",
            Self::StaffDisabled => "staff.disabled",
            Self::TokenIssued => "token.issued",
            Self::TokenRevoked => "token.revoked",
            Self::CatalogueApplied => "catalogue.applied",
            Self::TimetableImported => "timetable.imported",
            Self::CredentialIssued => "credential.issued",
            Self::CredentialRevoked => "credential.revoked",
            Self::VoucherRedeemed => "voucher.redeemed",
            Self::PeriodClosed => "period.closed",
            Self::Refunded => "ticket.refunded",
            Self::GateAdded => "gate.added",
            Self::GateRotated => "gate.rotated",
            Self::GateRevoked => "gate.revoked",
        }
    }

    /// The action a stable name names.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to show of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only this organisation's entries.
    pub organisation: Option<String>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only entries whose actor contains this.
    pub actor: Option<String>,
    /// From this time (unix seconds, inclusive).
    pub since: Option<i64>,
    /// Before this time (unix seconds, exclusive).
    pub until: Option<i64>,
}

/// One thing someone did, before it is chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Unix seconds.
    pub at: i64,
    /// Who: a staff account (`staff:<email>`), a token (`token:<id>`), the command line
    /// (`cli`), a job (`job:<name>`), or a traveler (`traveler:0x…`).
    pub actor: String,
    /// The organisation acting, or acted for (its slug); `kippu` for the consortium.
    pub organisation: String,
    /// What.
    pub action: AuditAction,
    /// What it was done to (a ticket id, a gate key, a credential id, a period id, …).
    pub target: String,
    /// The client's address, when it came over HTTP; empty otherwise.
    pub client: String,
}

/// A stored entry: the record, its place in the chain and its hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// 1, 2, 3, … with no gaps.
    pub seq: i64,
    /// What happened.
    pub record: AuditRecord,
    /// The hash of entry `seq - 1` ([`GENESIS`] for the first).
    pub prev_hash: [u8; 32],
    /// [`entry_hash`] of this entry.
    pub hash: [u8; 32],
}

/// The hash an entry carries: SHA-256 over a version tag, its sequence number, the previous
/// hash and each field length-prefixed (so no two different entries encode alike).
pub fn entry_hash(seq: i64, prev_hash: &[u8; 32], r: &AuditRecord) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"kippu-audit-v1");
    h.update(seq.to_be_bytes());
    h.update(prev_hash);
    h.update(r.at.to_be_bytes());
    for field in [r.actor.as_str(), r.organisation.as_str(), r.action.as_str(), r.target.as_str(), r.client.as_str()] {
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

/// The entry that follows `prev` (`None`: the first) in the chain.
pub fn chain(prev: Option<(i64, [u8; 32])>, record: AuditRecord) -> AuditEntry {
    let (seq, prev_hash) = match prev {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS),
    };
    let hash = entry_hash(seq, &prev_hash, &record);
    AuditEntry { seq, record, prev_hash, hash }
}

/// Where a chain read back stops holding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditBreak {
    /// A row is missing or was inserted: the sequence jumps.
    #[error("entry {found} follows entry {after}: rows are missing or were inserted")]
    Gap {
        /// The last good entry (0: none).
        after: i64,
        /// The entry found next.
        found: i64,
    },
    /// An entry does not carry the hash of the one before it.
    #[error("entry {seq} does not follow the entry before it (its prev_hash differs)")]
    Unlinked {
        /// The entry.
        seq: i64,
    },
    /// An entry's fields no longer hash to the hash it carries: it was edited.
    #[error("entry {seq} was changed after it was written (its hash does not match its fields)")]
    Edited {
        /// The entry.
        seq: i64,
    },
}

/// Checks entries read in `seq` order, continuing from `after` (`None`: from the start).
/// Returns the last entry's `(seq, hash)`, the head to continue from.
pub fn verify<'a>(
    after: Option<(i64, [u8; 32])>,
    entries: impl IntoIterator<Item = &'a AuditEntry>,
) -> Result<Option<(i64, [u8; 32])>, AuditBreak> {
    let mut head = after;
    for e in entries {
        let (expected_seq, expected_prev) = match head {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS),
        };
        if e.seq != expected_seq {
            return Err(AuditBreak::Gap { after: expected_seq - 1, found: e.seq });
        }
        if e.prev_hash != expected_prev {
            return Err(AuditBreak::Unlinked { seq: e.seq });
        }
        if entry_hash(e.seq, &e.prev_hash, &e.record) != e.hash {
            return Err(AuditBreak::Edited { seq: e.seq });
        }
        head = Some((e.seq, e.hash));
    }
    Ok(head)
}

/// Entries as CSV, one row each, in the order given: `seq,at,actor,organisation,action,target,client,hash`.
pub fn to_csv(entries: &[AuditEntry]) -> String {
    let mut out = String::from("seq,at,actor,organisation,action,target,client,hash\n");
    for e in entries {
        let r = &e.record;
        let fields = [
            e.seq.to_string(),
            r.at.to_string(),
            r.actor.clone(),
            r.organisation.clone(),
            r.action.as_str().to_owned(),
            r.target.clone(),
            r.client.clone(),
            hex::encode(e.hash),
        ];
        let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&quoted.join(","));
        out.push('\n');
    }
    out
}

/// A CSV field, quoted when it must be; a leading `=`, `+`, `-` or `@` is defused so a
/// spreadsheet does not run it as a formula.
fn csv_field(f: &str) -> String {
    let f = if f.starts_with(['=', '+', '-', '@']) { format!("'{f}") } else { f.to_owned() };
    if f.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", f.replace('"', "\"\""))
    } else {
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }

    fn record(n: i64) -> AuditRecord {
        AuditRecord {
            at: 1_800_000_000 + n,
            actor: format!("staff:ops{n}@metro.example"),
            organisation: "metro".into(),
            action: AuditAction::TimetableImported,
            target: format!("v{n}"),
            client: "192.0.2.7".into(),
        }
    }

    fn log(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 1..=n {
            let prev = out.last().map(|e| (e.seq, e.hash));
            out.push(chain(prev, record(i)));
        }
        out
    }

    #[test]
    fn a_chain_as_written_verifies_and_reports_its_head() {
        let l = log(5);
        assert_eq!(verify(None, &l), Ok(Some((5, l[4].hash))));
        assert_eq!(verify(None, &[]), Ok(None));
        // in pages: the second page continues from the first's head
        let head = verify(None, &l[..2]).unwrap();
        assert_eq!(verify(head, &l[2..]), Ok(Some((5, l[4].hash))));
    }

    #[test]
    fn an_edit_a_deletion_an_insertion_and_a_forged_rehash_are_each_found() {
        let l = log(5);
        let mut edited = l.clone();
        edited[2].record.target = "v999".into();
        assert_eq!(verify(None, &edited), Err(AuditBreak::Edited { seq: 3 }));
        let mut deleted = l.clone();
        deleted.remove(1);
        assert_eq!(verify(None, &deleted), Err(AuditBreak::Gap { after: 1, found: 3 }));
        // an edited row whose hash is recomputed still breaks the next row's link
        let mut rehashed = l.clone();
        rehashed[2].record.actor = "staff:someone-else".into();
        rehashed[2].hash = entry_hash(3, &rehashed[2].prev_hash, &rehashed[2].record);
        assert_eq!(verify(None, &rehashed), Err(AuditBreak::Unlinked { seq: 4 }));
        // a row slipped in with renumbered successors breaks the link too
        let mut inserted = l.clone();
        let mut fake = chain(Some((2, l[1].hash)), record(42));
        fake.seq = 3;
        inserted.insert(2, fake);
        for (i, e) in inserted.iter_mut().enumerate().skip(3) {
            e.seq = i as i64 + 1;
        }
        assert_eq!(verify(None, &inserted), Err(AuditBreak::Unlinked { seq: 4 }));
    }

    #[test]
    fn every_field_is_in_the_hash_and_fields_cannot_run_into_each_other() {
        let base = record(1);
        let h = entry_hash(1, &GENESIS, &base);
        let variants = [
            AuditRecord { at: base.at + 1, ..base.clone() },
            AuditRecord { actor: "x".into(), ..base.clone() },
            AuditRecord { organisation: "bus".into(), ..base.clone() },
            AuditRecord { action: AuditAction::GateAdded, ..base.clone() },
            AuditRecord { target: "v2".into(), ..base.clone() },
            AuditRecord { client: String::new(), ..base.clone() },
        ];
        for v in &variants {
            assert_ne!(entry_hash(1, &GENESIS, v), h, "{v:?}");
        }
        assert_ne!(entry_hash(2, &GENESIS, &base), h);
        assert_ne!(entry_hash(1, &[1; 32], &base), h);
        let a = AuditRecord { actor: "ab".into(), organisation: "c".into(), ..base.clone() };
        let b = AuditRecord { actor: "a".into(), organisation: "bc".into(), ..base };
        assert_ne!(entry_hash(1, &GENESIS, &a), entry_hash(1, &GENESIS, &b));
    }

    #[test]
    fn action_names_are_stable_and_parse_back() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(AuditAction::GateRotated.as_str(), "gate.rotated");
        assert_eq!(AuditAction::parse("gate.melted"), None);
    }
}
