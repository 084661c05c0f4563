//! Organisations, staff roles, API token scopes, and the one rule that decides what a signed-in
//! member of staff or a machine's token may do: [`authorize`]. Pure, so every web route and CLI
//! command asks the same question and the table of answers is tested here.

use std::fmt;
use std::str::FromStr;

/// The slug of Kippu's own organisation (the consortium), made by `kippu init`.
pub const CONSORTIUM: &str = "kippu";

/// What an organisation is in the consortium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OrgKind {
    /// Kippu itself: runs the platform, the gate fleet and the period close.
    Consortium,
    /// A transport operator (rail, bus, taxi): reports, timetables, voucher redemption.
    Operator,
    /// A concession issuer (a university, a city): issues and revokes credentials.
    Issuer,
    /// The insurer: the delay cover's pool and terms.
    Insurer,
}

impl OrgKind {
    /// Every kind, in a stable order.
    pub const ALL: [OrgKind; 4] = [OrgKind::Consortium, OrgKind::Operator, OrgKind::Issuer, OrgKind::Insurer];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrgKind::Consortium => "consortium",
            OrgKind::Operator => "operator",
            OrgKind::Issuer => "issuer",
            OrgKind::Insurer => "insurer",
        }
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not one of ours (an organisation kind, a role or a scope).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {got:?} (one of: {allowed})")]
pub struct UnknownName {
    /// What was parsed.
    pub what: &'static str,
    /// The text given.
    pub got: String,
    /// The accepted names.
    pub allowed: String,
}

impl FromStr for OrgKind {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        by_name(&Self::ALL, Self::as_str, "organisation kind", s)
    }
}

/// A staff account's role within its organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The consortium's administrators: every organisation's pages, and adding organisations.
    /// Only the consortium's own staff can hold it.
    Admin,
    /// An organisation's staff: read and change their own organisation, add colleagues, issue
    /// its API tokens.
    Staff,
    /// Read-only: the consortium's auditors read everything (the whole audit log too), an
    /// organisation's auditors read their own organisation.
    Auditor,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 3] = [Role::Admin, Role::Staff, Role::Auditor];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Auditor => "auditor",
        }
    }

    /// Whether an organisation of `kind` can have staff with this role.
    pub fn fits(self, kind: OrgKind) -> bool {
        self != Role::Admin || kind == OrgKind::Consortium
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        by_name(&Self::ALL, Self::as_str, "role", s)
    }
}

/// Something a request wants to do. The names of the ones an API token can carry are its
/// scopes (`reports:read`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// An operator's reports, statements, events and rides.
    ReportsRead,
    /// An operator's current timetable.
    TimetableRead,
    /// Importing an operator's timetable.
    TimetableWrite,
    /// Redeeming vouchers at an operator (its scanners).
    VouchersRedeem,
    /// An issuer's register of credentials.
    CredentialsRead,
    /// Issuing and revoking an issuer's credentials.
    CredentialsWrite,
    /// The insurance pool and its terms.
    InsuranceRead,
    /// The gate fleet, the consortium's overview report.
    ConsortiumRead,
    /// The organisation's staff list.
    StaffRead,
    /// Inviting colleagues, changing their role, disabling them.
    StaffWrite,
    /// The organisation's API tokens.
    TokensRead,
    /// Issuing and revoking API tokens.
    TokensWrite,
    /// The audit log (an organisation's own entries; the consortium's: all of them).
    AuditRead,
    /// Adding organisations.
    OrganisationsWrite,
}

impl Permission {
    /// Every permission, in a stable order.
    pub const ALL: [Permission; 14] = [
        Permission::ReportsRead,
        Permission::TimetableRead,
        Permission::TimetableWrite,
        Permission::VouchersRedeem,
        Permission::CredentialsRead,
        Permission::CredentialsWrite,
        Permission::InsuranceRead,
        Permission::ConsortiumRead,
        Permission::StaffRead,
        Permission::StaffWrite,
        Permission::TokensRead,
        Permission::TokensWrite,
        Permission::AuditRead,
        Permission::OrganisationsWrite,
    ];

    /// The permissions an API token can carry: what machines do. Managing staff, tokens and
    /// organisations stays with people.
    pub const SCOPES: [Permission; 7] = [
        Permission::ReportsRead,
        Permission::TimetableRead,
        Permission::TimetableWrite,
        Permission::VouchersRedeem,
        Permission::CredentialsRead,
        Permission::CredentialsWrite,
        Permission::AuditRead,
    ];

    /// The name (a token's scope, a log field).
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ReportsRead => "reports:read",
            Permission::TimetableRead => "timetable:read",
            Permission::TimetableWrite => "timetable:write",
            Permission::VouchersRedeem => "vouchers:redeem",
            Permission::CredentialsRead => "credentials:read",
            Permission::CredentialsWrite => "credentials:write",
            Permission::InsuranceRead => "insurance:read",
            Permission::ConsortiumRead => "consortium:read",
            Permission::StaffRead => "staff:read",
            Permission::StaffWrite => "staff:write",
            Permission::TokensRead => "tokens:read",
            Permission::TokensWrite => "tokens:write",
            Permission::AuditRead => "audit:read",
            Permission::OrganisationsWrite => "organisations:write",
        }
    }

    /// Whether it changes something (auditors may do none of these).
    pub fn writes(self) -> bool {
        matches!(
            self,
            Permission::TimetableWrite
                | Permission::VouchersRedeem
                | Permission::CredentialsWrite
                | Permission::StaffWrite
                | Permission::TokensWrite
                | Permission::OrganisationsWrite
        )
    }

    /// The kinds of organisation whose own resources this is about. Staff hold a permission
    /// only for their own organisation and only when it is of one of these kinds.
    fn kinds(self) -> &'static [OrgKind] {
        use OrgKind::*;
        match self {
            // The insurer is an operator in settlement (it pays vouchers out of its pool): it
            // reads its own report and statements.
            Permission::ReportsRead => &[Operator, Insurer],
            Permission::TimetableRead | Permission::TimetableWrite | Permission::VouchersRedeem => &[Operator],
            Permission::CredentialsRead | Permission::CredentialsWrite => &[Issuer],
            Permission::InsuranceRead => &[Insurer, Consortium],
            Permission::ConsortiumRead | Permission::OrganisationsWrite => &[Consortium],
            Permission::StaffRead
            | Permission::StaffWrite
            | Permission::TokensRead
            | Permission::TokensWrite
            | Permission::AuditRead => &[Consortium, Operator, Issuer, Insurer],
        }
    }

    /// Whether organisations of `kind` have resources this permission is about (an issuer has
    /// no report, an operator no credentials).
    pub fn fits(self, kind: OrgKind) -> bool {
        self.kinds().contains(&kind)
    }

    /// Whether an organisation of `kind` can be given a token with this scope.
    pub fn scope_fits(self, kind: OrgKind) -> bool {
        Self::SCOPES.contains(&self) && self.kinds().contains(&kind)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Permission {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, UnknownName> {
        by_name(&Self::ALL, Self::as_str, "permission", s)
    }
}

/// The one of `all` named `got`, or which names there are.
fn by_name<T: Copy>(all: &[T], name: fn(T) -> &'static str, what: &'static str, got: &str) -> Result<T, UnknownName> {
    all.iter().copied().find(|x| name(*x) == got).ok_or_else(|| UnknownName {
        what,
        got: got.into(),
        allowed: all.iter().map(|x| name(*x)).collect::<Vec<_>>().join(", "),
    })
}

/// Parses a token's scopes (space- or comma-separated), refusing names no token can carry.
pub fn parse_scopes(text: &str) -> Result<Vec<Permission>, UnknownName> {
    let mut out = Vec::new();
    for name in text.split([' ', ',']).filter(|s| !s.is_empty()) {
        let p: Permission = name.parse()?;
        if !Permission::SCOPES.contains(&p) {
            return Err(UnknownName {
                what: "token scope",
                got: name.into(),
                allowed: Permission::SCOPES.map(|p| p.as_str()).join(", "),
            });
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The scopes as stored: space-separated, sorted.
pub fn scopes_text(scopes: &[Permission]) -> String {
    let mut s: Vec<_> = scopes.to_vec();
    s.sort();
    s.dedup();
    s.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(" ")
}

/// Whose a resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// One organisation's (an operator's reports, an issuer's register), by slug.
    Org(&'a str),
    /// The consortium's as a whole (the gate fleet, the overview, every organisation).
    Consortium,
}

/// What a request acts with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// A member of staff signed in, with their role.
    Role(Role),
    /// A machine's API token, with its scopes.
    Token(Vec<Permission>),
}

/// Who a request comes from: an organisation, and a role or a token's scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The organisation's slug.
    pub organisation: String,
    /// Its kind.
    pub kind: OrgKind,
    /// The role or the scopes.
    pub grant: Grant,
}

/// Why a request was refused. `Display` is the sentence the 403 page shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The resource belongs to another organisation.
    #[error("this belongs to another organisation than yours ({yours})")]
    OtherOrganisation {
        /// The caller's organisation.
        yours: String,
    },
    /// A read-only role tried to change something.
    #[error("your role ({0}) can read but not change anything")]
    ReadOnly(Role),
    /// The token was not issued for this.
    #[error("this token's scopes ({have}) do not include {need}")]
    OutOfScope {
        /// The token's scopes.
        have: String,
        /// The permission needed.
        need: Permission,
    },
    /// Nothing of this kind belongs to an organisation like the caller's.
    #[error("{kind} organisations have no {need}")]
    NotForKind {
        /// The caller's organisation's kind.
        kind: OrgKind,
        /// The permission needed.
        need: Permission,
    },
}

/// Whether `who` may do `what` to `target`. The consortium's admins may do anything, its
/// auditors read anything; everyone else acts only on their own organisation, within what its
/// kind has, and a token only within its scopes.
pub fn authorize(who: &Principal, what: Permission, target: Target<'_>) -> Result<(), Denied> {
    let consortium = who.kind == OrgKind::Consortium;
    match &who.grant {
        Grant::Role(Role::Admin) if consortium => return Ok(()),
        Grant::Role(Role::Auditor) if what.writes() => return Err(Denied::ReadOnly(Role::Auditor)),
        Grant::Role(Role::Auditor) if consortium => return Ok(()),
        Grant::Token(scopes) if !scopes.contains(&what) => {
            return Err(Denied::OutOfScope { have: scopes_text(scopes), need: what })
        }
        _ => {}
    }
    // An admin outside the consortium cannot be made (Role::fits), but is only staff if it were.
    let own = match target {
        Target::Org(slug) => slug == who.organisation,
        // Consortium-wide resources: the consortium's own staff, and the insurer for its pool.
        // The whole audit log is its admins' and auditors' only (allowed above).
        Target::Consortium => match what {
            Permission::AuditRead => false,
            Permission::InsuranceRead => matches!(who.kind, OrgKind::Consortium | OrgKind::Insurer),
            _ => who.kind == OrgKind::Consortium,
        },
    };
    if !own {
        return Err(Denied::OtherOrganisation { yours: who.organisation.clone() });
    }
    if !what.kinds().contains(&who.kind) {
        return Err(Denied::NotForKind { kind: who.kind, need: what });
    }
    Ok(())
}

/// Whether a slug names an organisation well: lower-case letters, digits and dashes, 2 to 32
/// long, starting with a letter (it appears in paths such as `/operators/{slug}/report`).
pub fn valid_slug(slug: &str) -> bool {
    (2..=32).contains(&slug.len())
        && slug.starts_with(|c: char| c.is_ascii_lowercase())
        && slug.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(org: &str, kind: OrgKind, grant: Grant) -> Principal {
        Principal { organisation: org.into(), kind, grant }
    }

    #[test]
    fn names_round_trip() {
        for k in OrgKind::ALL {
            assert_eq!(k.as_str().parse::<OrgKind>().unwrap(), k);
        }
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        for p in Permission::ALL {
            assert_eq!(p.as_str().parse::<Permission>().unwrap(), p);
        }
        assert!("root".parse::<Role>().unwrap_err().to_string().contains("admin, staff, auditor"));
    }

    #[test]
    fn scopes_parse_sorted_without_repeats_and_refuse_people_s_permissions() {
        let s = parse_scopes("vouchers:redeem, reports:read vouchers:redeem").unwrap();
        assert_eq!(s, vec![Permission::ReportsRead, Permission::VouchersRedeem]);
        assert_eq!(scopes_text(&s), "reports:read vouchers:redeem");
        assert!(parse_scopes("staff:write").is_err());
        assert!(parse_scopes("tokens:write").is_err());
        assert!(parse_scopes("reports:readx").is_err());
        assert!(Permission::VouchersRedeem.scope_fits(OrgKind::Operator));
        assert!(!Permission::VouchersRedeem.scope_fits(OrgKind::Issuer));
    }

    #[test]
    fn staff_act_on_their_own_organisation_only() {
        let bus = who("bus", OrgKind::Operator, Grant::Role(Role::Staff));
        assert_eq!(authorize(&bus, Permission::ReportsRead, Target::Org("bus")), Ok(()));
        assert_eq!(authorize(&bus, Permission::TimetableWrite, Target::Org("bus")), Ok(()));
        assert!(matches!(
            authorize(&bus, Permission::ReportsRead, Target::Org("rail")),
            Err(Denied::OtherOrganisation { .. })
        ));
        assert!(authorize(&bus, Permission::ConsortiumRead, Target::Consortium).is_err());
        assert!(authorize(&bus, Permission::InsuranceRead, Target::Consortium).is_err());
        assert!(matches!(
            authorize(&bus, Permission::CredentialsWrite, Target::Org("bus")),
            Err(Denied::NotForKind { .. })
        ));
        assert!(authorize(&bus, Permission::OrganisationsWrite, Target::Consortium).is_err());
        let usf = who("usf", OrgKind::Issuer, Grant::Role(Role::Staff));
        assert_eq!(authorize(&usf, Permission::CredentialsWrite, Target::Org("usf")), Ok(()));
        assert!(authorize(&usf, Permission::CredentialsWrite, Target::Org("other")).is_err());
        let insurer = who("mutual", OrgKind::Insurer, Grant::Role(Role::Staff));
        assert_eq!(authorize(&insurer, Permission::InsuranceRead, Target::Consortium), Ok(()));
        assert_eq!(authorize(&insurer, Permission::ReportsRead, Target::Org("mutual")), Ok(()));
        assert!(authorize(&insurer, Permission::TimetableWrite, Target::Org("mutual")).is_err());
        assert!(authorize(&insurer, Permission::ConsortiumRead, Target::Consortium).is_err());
        // The whole audit log: not for an organisation's staff, nor for the consortium's staff.
        assert!(authorize(&bus, Permission::AuditRead, Target::Consortium).is_err());
        assert_eq!(authorize(&bus, Permission::AuditRead, Target::Org("bus")), Ok(()));
        let kippu_staff = who(CONSORTIUM, OrgKind::Consortium, Grant::Role(Role::Staff));
        assert!(authorize(&kippu_staff, Permission::AuditRead, Target::Consortium).is_err());
        assert_eq!(authorize(&kippu_staff, Permission::ConsortiumRead, Target::Consortium), Ok(()));
        assert!(authorize(&kippu_staff, Permission::ReportsRead, Target::Org("bus")).is_err());
    }

    #[test]
    fn the_consortium_s_admin_does_anything_and_its_auditor_reads_anything() {
        let admin = who(CONSORTIUM, OrgKind::Consortium, Grant::Role(Role::Admin));
        let auditor = who(CONSORTIUM, OrgKind::Consortium, Grant::Role(Role::Auditor));
        for p in Permission::ALL {
            for t in [Target::Org("bus"), Target::Org("usf"), Target::Consortium] {
                assert_eq!(authorize(&admin, p, t), Ok(()), "{p} {t:?}");
                assert_eq!(authorize(&auditor, p, t).is_ok(), !p.writes(), "{p} {t:?}");
            }
        }
        // An organisation's auditor reads its own organisation only.
        let bus_auditor = who("bus", OrgKind::Operator, Grant::Role(Role::Auditor));
        assert_eq!(authorize(&bus_auditor, Permission::ReportsRead, Target::Org("bus")), Ok(()));
        assert!(authorize(&bus_auditor, Permission::ReportsRead, Target::Org("rail")).is_err());
        assert_eq!(
            authorize(&bus_auditor, Permission::TimetableWrite, Target::Org("bus")),
            Err(Denied::ReadOnly(Role::Auditor))
        );
        // "admin" of an operator is not the consortium's admin.
        let odd = who("bus", OrgKind::Operator, Grant::Role(Role::Admin));
        assert!(authorize(&odd, Permission::ReportsRead, Target::Org("rail")).is_err());
        assert!(!Role::Admin.fits(OrgKind::Operator) && Role::Admin.fits(OrgKind::Consortium));
    }

    #[test]
    fn a_token_acts_within_its_scopes_on_its_organisation() {
        let scanner = who("taxi", OrgKind::Operator, Grant::Token(vec![Permission::VouchersRedeem]));
        assert_eq!(authorize(&scanner, Permission::VouchersRedeem, Target::Org("taxi")), Ok(()));
        assert!(matches!(
            authorize(&scanner, Permission::ReportsRead, Target::Org("taxi")),
            Err(Denied::OutOfScope { .. })
        ));
        assert!(authorize(&scanner, Permission::VouchersRedeem, Target::Org("bus")).is_err());
        // A consortium token is no admin.
        let c = who(CONSORTIUM, OrgKind::Consortium, Grant::Token(vec![Permission::AuditRead]));
        assert_eq!(authorize(&c, Permission::AuditRead, Target::Org(CONSORTIUM)), Ok(()));
        assert!(authorize(&c, Permission::AuditRead, Target::Org("bus")).is_err());
    }

    #[test]
    fn slugs_are_path_safe() {
        assert!(valid_slug("bus") && valid_slug("city-rail-2"));
        for bad in ["", "b", "Bus", "bus/rail", "2bus", "a b", "ü-bahn", &"x".repeat(33)] {
            assert!(!valid_slug(bad), "{bad}");
        }
    }
}
