//! In-memory fakes of kippu-app's ports: just enough of each for the use cases, with a log of
//! the calls made (so tests can check order and idempotency) and failures to inject by name.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256};
use async_trait::async_trait;
use kippu_app::ports::*;
use kippu_app::{ChainFailure, PortError, PortResult};
use kippu_domain::model::*;
use kippu_domain::ContractRejection;

/// The time every test runs at (2027-01-15 08:00 UTC).
pub(crate) const NOW: i64 = 1_800_000_000;

fn unused(what: &str) -> ! {
    panic!("the use cases never call Store::{what}")
}

/// A fixed clock.
pub(crate) struct FixedClock(pub(crate) i64);

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0
    }
}

/// The clock tests use.
pub(crate) static CLOCK: FixedClock = FixedClock(NOW);

/// What the fake store holds.
#[derive(Default)]
pub(crate) struct StoreState {
    /// Chain writes recorded with their business fact (`mark_paid_recording`), once per key.
    pub(crate) writes: Vec<kippu_domain::outbox::PreparedWrite>,
    pub(crate) travelers: BTreeMap<Address, Traveler>,
    /// e-mail → (account, password hash).
    pub(crate) logins: BTreeMap<String, (Address, String)>,
    /// e-mails `create_account` reports taken although `password_login` did not see them (a race).
    pub(crate) race_for: Vec<String>,
    pub(crate) revoked_keys: BTreeMap<Address, (i64, String)>,
    /// Audit entries appended.
    pub(crate) audit: Vec<kippu_domain::audit::AuditRecord>,
    pub(crate) organisations: BTreeMap<String, Organisation>,
    pub(crate) staff: BTreeMap<String, StaffAccount>,
    /// invitation hash → (account id, expires at, used).
    pub(crate) invitations: BTreeMap<String, (String, i64, bool)>,
    /// session hash → (account id, expires at).
    pub(crate) staff_sessions: BTreeMap<String, (String, i64)>,
    pub(crate) tokens: BTreeMap<String, ApiToken>,
    pub(crate) staff_passkeys: Vec<StaffPasskeyRow>,
    pub(crate) erased: Vec<(Address, String)>,
    pub(crate) devices: BTreeMap<[u8; 32], DeviceRow>,
    /// Sessions kept by `revoke_device`.
    pub(crate) kept_sessions: Vec<String>,
    pub(crate) payments: BTreeMap<String, Payment>,
    pub(crate) tickets: BTreeMap<u64, TicketRow>,
    /// Taps per ticket.
    pub(crate) taps: BTreeMap<u64, usize>,
    pub(crate) cards: BTreeMap<[u8; 32], CardBindingRow>,
    pub(crate) issuers: Vec<IssuerRow>,
    pub(crate) trust: Vec<(String, String)>,
    pub(crate) issued: Vec<IssuedCredential>,
    /// holder → (credential id, body).
    pub(crate) wallets: BTreeMap<Address, Vec<(String, String)>>,
    pub(crate) operators: Vec<Operator>,
    pub(crate) timetables: Vec<TimetableRow>,
    pub(crate) products: Vec<Product>,
    pub(crate) vouchers: BTreeMap<u64, VoucherRow>,
    pub(crate) closes: Vec<PeriodCloseRow>,
    /// What `close_period_books` answers.
    pub(crate) books: PeriodClose,
    /// The windows `close_period_books` was asked for.
    pub(crate) books_asked: Vec<(i64, i64)>,
    pub(crate) carry: BTreeMap<u32, i64>,
    /// Methods that fail, by name.
    pub(crate) fail: HashMap<&'static str, PortError>,
    /// Every call, in order.
    pub(crate) calls: Vec<&'static str>,
}

/// An in-memory [`Store`].
#[derive(Default)]
pub(crate) struct FakeStore(pub(crate) Mutex<StoreState>);

impl FakeStore {
    /// The state, to arrange or inspect.
    pub(crate) fn state(&self) -> MutexGuard<'_, StoreState> {
        self.0.lock().unwrap()
    }

    /// Makes `method` fail as the database being down.
    pub(crate) fn fail(&self, method: &'static str) {
        self.state().fail.insert(method, PortError::Unavailable(format!("{method}: connection refused")));
    }

    /// The calls made so far.
    pub(crate) fn calls(&self) -> Vec<&'static str> {
        self.state().calls.clone()
    }

    fn enter(&self, method: &'static str) -> PortResult<MutexGuard<'_, StoreState>> {
        let mut s = self.state();
        s.calls.push(method);
        match s.fail.get(method) {
            Some(e) => Err(e.clone()),
            None => Ok(s),
        }
    }
}

#[async_trait]
impl Store for FakeStore {
    async fn throttle_verdict(&self, _: &str, _: &str, _: i64) -> PortResult<kippu_domain::throttle::Verdict> {
        drop(self.enter("throttle_verdict")?);
        Ok(kippu_domain::throttle::Verdict::Open)
    }

    async fn throttle_failure(
        &self,
        _: &str,
        _: &str,
        _: i64,
        _: &kippu_domain::throttle::Policy,
    ) -> PortResult<kippu_domain::throttle::Verdict> {
        drop(self.enter("throttle_failure")?);
        Ok(kippu_domain::throttle::Verdict::Open)
    }

    async fn throttle_success(&self, _: &str, _: &str, _: i64) -> PortResult<()> {
        drop(self.enter("throttle_success")?);
        Ok(())
    }

    async fn append_audit(&self, record: &kippu_domain::audit::AuditRecord) -> PortResult<()> {
        self.enter("append_audit")?.audit.push(record.clone());
        Ok(())
    }

    async fn audit_search(
        &self,
        _: &kippu_domain::audit::AuditFilter,
        _: i64,
    ) -> PortResult<Vec<kippu_domain::audit::AuditEntry>> {
        drop(self.enter("audit_search")?);
        Ok(Vec::new())
    }

    async fn add_organisation(&self, o: &Organisation) -> PortResult<bool> {
        let mut s = self.enter("add_organisation")?;
        if s.organisations.contains_key(&o.slug) {
            return Ok(false);
        }
        s.organisations.insert(o.slug.clone(), o.clone());
        Ok(true)
    }

    async fn organisation(&self, slug: &str) -> PortResult<Option<Organisation>> {
        Ok(self.enter("organisation")?.organisations.get(slug).cloned())
    }

    async fn organisations(&self) -> PortResult<Vec<Organisation>> {
        Ok(self.enter("organisations")?.organisations.values().cloned().collect())
    }

    async fn add_staff(&self, a: &StaffAccount, hash: &str, expires: i64) -> PortResult<bool> {
        let mut s = self.enter("add_staff")?;
        if s.staff.values().any(|x| x.email == a.email) {
            return Ok(false);
        }
        s.staff.insert(a.id.clone(), a.clone());
        s.invitations.insert(hash.into(), (a.id.clone(), expires, false));
        Ok(true)
    }

    async fn reinvite_staff(&self, id: &str, hash: &str, expires: i64, _: i64) -> PortResult<()> {
        let mut s = self.enter("reinvite_staff")?;
        for v in s.invitations.values_mut().filter(|v| v.0 == id) {
            v.2 = true;
        }
        s.invitations.insert(hash.into(), (id.into(), expires, false));
        Ok(())
    }

    async fn invitation(&self, hash: &str, now: i64) -> PortResult<Option<StaffAccount>> {
        let s = self.enter("invitation")?;
        Ok(s.invitations
            .get(hash)
            .filter(|(_, exp, used)| !used && *exp > now)
            .and_then(|(id, _, _)| s.staff.get(id).cloned()))
    }

    async fn accept_invitation(&self, hash: &str, pw: &str, now: i64) -> PortResult<Option<StaffAccount>> {
        let mut s = self.enter("accept_invitation")?;
        let Some((id, exp, used)) = s.invitations.get(hash).cloned() else { return Ok(None) };
        if used || exp <= now {
            return Ok(None);
        }
        s.invitations.insert(hash.into(), (id.clone(), exp, true));
        let a = s.staff.get_mut(&id).expect("invited account");
        a.password_hash = Some(pw.into());
        Ok(Some(a.clone()))
    }

    async fn staff_by_email(&self, email: &str) -> PortResult<Option<StaffAccount>> {
        Ok(self.enter("staff_by_email")?.staff.values().find(|a| a.email == email).cloned())
    }

    async fn staff_account(&self, id: &str) -> PortResult<Option<StaffAccount>> {
        Ok(self.enter("staff_account")?.staff.get(id).cloned())
    }

    async fn staff_of(&self, org: &str) -> PortResult<Vec<StaffAccount>> {
        Ok(self.enter("staff_of")?.staff.values().filter(|a| a.organisation == org).cloned().collect())
    }

    async fn set_staff_role(&self, org: &str, id: &str, role: kippu_domain::staff::Role) -> PortResult<bool> {
        let mut s = self.enter("set_staff_role")?;
        Ok(s.staff.get_mut(id).filter(|a| a.organisation == org).map(|a| a.role = role).is_some())
    }

    async fn disable_staff(&self, org: &str, id: &str, now: i64) -> PortResult<bool> {
        let mut s = self.enter("disable_staff")?;
        Ok(s.staff
            .get_mut(id)
            .filter(|a| a.organisation == org && a.disabled_at.is_none())
            .map(|a| a.disabled_at = Some(now))
            .is_some())
    }

    async fn open_staff_session(&self, hash: &str, id: &str, expires: i64) -> PortResult<()> {
        self.enter("open_staff_session")?.staff_sessions.insert(hash.into(), (id.into(), expires));
        Ok(())
    }

    async fn staff_session(&self, hash: &str, now: i64) -> PortResult<Option<StaffAccount>> {
        let s = self.enter("staff_session")?;
        Ok(s.staff_sessions
            .get(hash)
            .filter(|(_, exp)| *exp > now)
            .and_then(|(id, _)| s.staff.get(id).filter(|a| a.disabled_at.is_none()).cloned()))
    }

    async fn end_staff_session(&self, hash: &str, _: i64) -> PortResult<()> {
        self.enter("end_staff_session")?.staff_sessions.remove(hash);
        Ok(())
    }

    async fn issue_token(&self, t: &ApiToken) -> PortResult<()> {
        self.enter("issue_token")?.tokens.insert(t.id.clone(), t.clone());
        Ok(())
    }

    async fn api_token(&self, id: &str) -> PortResult<Option<ApiToken>> {
        Ok(self.enter("api_token")?.tokens.get(id).cloned())
    }

    async fn tokens_of(&self, org: &str) -> PortResult<Vec<ApiToken>> {
        Ok(self.enter("tokens_of")?.tokens.values().filter(|t| t.organisation == org).cloned().collect())
    }

    async fn revoke_token(&self, org: &str, id: &str, now: i64) -> PortResult<bool> {
        let mut s = self.enter("revoke_token")?;
        Ok(s.tokens
            .get_mut(id)
            .filter(|t| t.organisation == org && t.revoked_at.is_none())
            .map(|t| t.revoked_at = Some(now))
            .is_some())
    }

    async fn insert_staff_passkey(&self, p: &StaffPasskeyRow) -> PortResult<bool> {
        let mut s = self.enter("insert_staff_passkey")?;
        if s.staff_passkeys.iter().any(|x| x.credential_id == p.credential_id) {
            return Ok(false);
        }
        s.staff_passkeys.push(p.clone());
        Ok(true)
    }

    async fn staff_passkey(&self, id: &[u8]) -> PortResult<Option<StaffPasskeyRow>> {
        Ok(self.enter("staff_passkey")?.staff_passkeys.iter().find(|p| p.credential_id == id).cloned())
    }

    async fn staff_passkeys_of(&self, account_id: &str) -> PortResult<Vec<StaffPasskeyRow>> {
        Ok(self
            .enter("staff_passkeys_of")?
            .staff_passkeys
            .iter()
            .filter(|p| p.account_id == account_id)
            .cloned()
            .collect())
    }

    async fn staff_passkey_used(&self, id: &[u8], dynamic: &[u8], now: i64) -> PortResult<()> {
        for p in self.enter("staff_passkey_used")?.staff_passkeys.iter_mut().filter(|p| p.credential_id == id) {
            p.dynamic_state = dynamic.to_vec();
            p.last_used = Some(now);
        }
        Ok(())
    }

    async fn token_used(&self, id: &str, now: i64) -> PortResult<()> {
        if let Some(t) = self.enter("token_used")?.tokens.get_mut(id) {
            t.last_used_at = Some(now);
        }
        Ok(())
    }

    async fn password_login(&self, email: &str) -> PortResult<Option<(Address, String)>> {
        Ok(self.enter("password_login")?.logins.get(email).cloned())
    }

    async fn create_account(&self, t: &Traveler, email: &str, hash: &str, _now: i64) -> PortResult<bool> {
        let mut s = self.enter("create_account")?;
        if s.logins.contains_key(email) || s.race_for.iter().any(|e| e == email) {
            return Ok(false);
        }
        s.logins.insert(email.to_owned(), (t.address, hash.to_owned()));
        s.travelers.insert(t.address, t.clone());
        Ok(true)
    }

    async fn key_revocation(&self, address: &Address) -> PortResult<Option<(i64, String)>> {
        Ok(self.enter("key_revocation")?.revoked_keys.get(address).cloned())
    }

    async fn traveler(&self, address: &Address) -> PortResult<Option<Traveler>> {
        Ok(self.enter("traveler")?.travelers.get(address).cloned())
    }

    async fn upsert_traveler(&self, t: &Traveler) -> PortResult<()> {
        self.enter("upsert_traveler")?.travelers.insert(t.address, t.clone());
        Ok(())
    }

    async fn revoke_key(&self, address: &Address, reason: &str, now: i64) -> PortResult<()> {
        self.enter("revoke_key")?.revoked_keys.insert(*address, (now, reason.to_owned()));
        Ok(())
    }

    async fn erase_personal_data(&self, address: &Address, did: &str, now: i64) -> PortResult<()> {
        let mut s = self.enter("erase_personal_data")?;
        s.erased.push((*address, did.to_owned()));
        s.travelers.remove(address);
        s.revoked_keys.insert(*address, (now, "erased at the traveler's request".into()));
        Ok(())
    }

    async fn device(&self, key: &[u8; 32]) -> PortResult<Option<DeviceRow>> {
        Ok(self.enter("device")?.devices.get(key).cloned())
    }

    async fn upsert_device(&self, d: &DeviceRow) -> PortResult<()> {
        self.enter("upsert_device")?.devices.insert(d.device_key, d.clone());
        Ok(())
    }

    async fn revoke_device(&self, key: &[u8; 32], holder: &Address, now: i64, keep_session: &str) -> PortResult<bool> {
        let mut s = self.enter("revoke_device")?;
        let found = match s.devices.get_mut(key) {
            Some(d) if d.holder == *holder => {
                d.revoked_at = Some(now);
                true
            }
            _ => false,
        };
        if found {
            s.kept_sessions.push(keep_session.to_owned());
        }
        Ok(found)
    }

    async fn create_payment(&self, session_id: &str, traveler: &Address, amount: i64, _now: i64) -> PortResult<()> {
        let p = Payment {
            session_id: session_id.to_owned(),
            traveler: *traveler,
            amount,
            status: "open".into(),
            tx_hash: None,
        };
        self.enter("create_payment")?.payments.insert(session_id.to_owned(), p);
        Ok(())
    }

    async fn payment(&self, session_id: &str) -> PortResult<Option<Payment>> {
        Ok(self.enter("payment")?.payments.get(session_id).cloned())
    }

    async fn mark_paid(&self, session_id: &str) -> PortResult<Option<Payment>> {
        let mut s = self.enter("mark_paid")?;
        Ok(s.payments.get_mut(session_id).filter(|p| p.status == "open").map(|p| {
            p.status = "paid".into();
            p.clone()
        }))
    }

    async fn mark_paid_recording(
        &self,
        session_id: &str,
        mint: &kippu_domain::outbox::PreparedWrite,
        _now: i64,
    ) -> PortResult<()> {
        // one lock: both or neither, as the store's one transaction
        let mut s = self.enter("mark_paid_recording")?;
        if let Some(p) = s.payments.get_mut(session_id).filter(|p| p.status == "open") {
            p.status = "paid".into();
        }
        if !s.writes.iter().any(|w| w.key == mint.key) {
            s.writes.push(mint.clone());
        }
        Ok(())
    }

    async fn mark_minted(&self, session_id: &str, tx_hash: &str) -> PortResult<()> {
        if let Some(p) = self.enter("mark_minted")?.payments.get_mut(session_id) {
            p.status = "minted".into();
            p.tx_hash = Some(tx_hash.to_owned());
        }
        Ok(())
    }

    async fn ticket(&self, id: u64) -> PortResult<Option<TicketRow>> {
        Ok(self.enter("ticket")?.tickets.get(&id).cloned())
    }

    async fn taps_of_ticket(&self, ticket_id: u64) -> PortResult<Vec<TapRow>> {
        let s = self.enter("taps_of_ticket")?;
        let n = s.taps.get(&ticket_id).copied().unwrap_or(0);
        Ok((0..n)
            .map(|i| TapRow {
                scan_id: format!("scan-{i}"),
                ticket_id,
                operator_id: 1,
                gate_key: "metro/central/1".into(),
                at: NOW - 600 + i as i64,
            })
            .collect())
    }

    async fn card_binding(&self, card_key: &[u8; 32]) -> PortResult<Option<CardBindingRow>> {
        Ok(self.enter("card_binding")?.cards.get(card_key).cloned())
    }

    async fn bind_card(&self, b: &CardBindingRow) -> PortResult<()> {
        self.enter("bind_card")?.cards.insert(b.card_key, b.clone());
        Ok(())
    }

    async fn unbind_card(&self, card_key: &[u8; 32], holder: &Address) -> PortResult<bool> {
        let mut s = self.enter("unbind_card")?;
        if s.cards.get(card_key).is_some_and(|c| c.holder == *holder) {
            s.cards.remove(card_key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn issuers(&self) -> PortResult<Vec<IssuerRow>> {
        Ok(self.enter("issuers")?.issuers.clone())
    }

    async fn trust_list(&self) -> PortResult<Vec<(String, String)>> {
        Ok(self.enter("trust_list")?.trust.clone())
    }

    async fn record_issued(&self, c: &IssuedCredential, _list_len: i64) -> PortResult<i64> {
        let mut s = self.enter("record_issued")?;
        let index = 1000 + s.issued.len() as i64;
        s.issued.push(IssuedCredential { status_index: index, ..c.clone() });
        Ok(index)
    }

    async fn add_to_wallet(&self, holder: &Address, id: &str, body: &str, _now: i64) -> PortResult<()> {
        self.enter("add_to_wallet")?.wallets.entry(*holder).or_default().push((id.to_owned(), body.to_owned()));
        Ok(())
    }

    async fn revoke_issued(&self, issuer_slug: &str, id: &str, now: i64) -> PortResult<bool> {
        let mut s = self.enter("revoke_issued")?;
        match s.issued.iter_mut().find(|c| c.issuer_slug == issuer_slug && c.id == id && c.revoked_at.is_none()) {
            Some(c) => {
                c.revoked_at = Some(now);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn operators(&self) -> PortResult<Vec<Operator>> {
        Ok(self.enter("operators")?.operators.clone())
    }

    async fn current_timetables(&self) -> PortResult<Vec<TimetableRow>> {
        Ok(self.enter("current_timetables")?.timetables.clone())
    }

    async fn products(&self) -> PortResult<Vec<Product>> {
        Ok(self.enter("products")?.products.clone())
    }

    async fn save_timetable(&self, slug: &str, summary: &str, feed_b64: &str, now: i64) -> PortResult<i64> {
        let mut s = self.enter("save_timetable")?;
        let version = s.timetables.iter().filter(|t| t.operator_slug == slug).map(|t| t.version).max().unwrap_or(0) + 1;
        s.timetables.retain(|t| t.operator_slug != slug);
        s.timetables.push(TimetableRow {
            operator_slug: slug.to_owned(),
            version,
            imported_at: now,
            summary: summary.to_owned(),
            feed: feed_b64.to_owned(),
        });
        Ok(version)
    }

    async fn voucher(&self, id: u64) -> PortResult<Option<VoucherRow>> {
        Ok(self.enter("voucher")?.vouchers.get(&id).cloned())
    }

    async fn last_period_close(&self) -> PortResult<Option<PeriodCloseRow>> {
        Ok(self.enter("last_period_close")?.closes.last().cloned())
    }

    async fn close_period_books(&self, from: i64, to: i64) -> PortResult<PeriodClose> {
        let mut s = self.enter("close_period_books")?;
        s.books_asked.push((from, to));
        Ok(s.books.clone())
    }

    async fn settlement_carry(&self) -> PortResult<BTreeMap<u32, i64>> {
        Ok(self.enter("settlement_carry")?.carry.clone())
    }

    async fn record_period_close(&self, c: &PeriodCloseRow, carry: &BTreeMap<u32, i64>) -> PortResult<()> {
        let mut s = self.enter("record_period_close")?;
        s.closes.push(c.clone());
        s.carry = carry.clone();
        Ok(())
    }

    // ---- not used by any use case ----

    async fn alerts(&self) -> PortResult<Vec<String>> {
        unused("alerts")
    }

    async fn cards_of(&self, _holder: &Address) -> PortResult<Vec<CardBindingRow>> {
        unused("cards_of")
    }

    async fn claim_counts(&self) -> PortResult<Vec<(String, String, i64)>> {
        unused("claim_counts")
    }

    async fn cover_terms(&self) -> PortResult<Vec<CoverTerms>> {
        unused("cover_terms")
    }

    async fn devices_of(&self, _holder: &Address) -> PortResult<Vec<DeviceRow>> {
        unused("devices_of")
    }

    async fn gates(&self) -> PortResult<Vec<GateRow>> {
        unused("gates")
    }

    async fn issued_by(&self, _issuer_slug: &str) -> PortResult<Vec<IssuedCredential>> {
        unused("issued_by")
    }

    async fn bundles(&self) -> PortResult<Vec<Bundle>> {
        unused("bundles")
    }

    async fn create_session(&self, _token: &str, _address: &Address, _expires_at: i64) -> PortResult<()> {
        unused("create_session")
    }

    async fn delays_per_route(&self) -> PortResult<Vec<RouteDelays>> {
        unused("delays_per_route")
    }

    async fn delete_session(&self, _token: &str) -> PortResult<()> {
        unused("delete_session")
    }

    async fn email_of(&self, _address: &Address) -> PortResult<Option<String>> {
        unused("email_of")
    }

    async fn export_personal_data(&self, _address: &Address, _did: &str) -> PortResult<serde_json::Value> {
        unused("export_personal_data")
    }

    async fn first_webhook_delivery(&self, _event_id: &str, _now: i64) -> PortResult<bool> {
        unused("first_webhook_delivery")
    }

    async fn insert_passkey(&self, _p: &PasskeyRow) -> PortResult<bool> {
        unused("insert_passkey")
    }

    async fn latest_reconciliation(&self) -> PortResult<Option<(i64, u64, String)>> {
        unused("latest_reconciliation")
    }

    async fn operator_bundles(&self, _operator_id: u32) -> PortResult<Vec<BundleShare>> {
        unused("operator_bundles")
    }

    async fn operator_daily(&self, _operator_id: u32) -> PortResult<OperatorDaily> {
        unused("operator_daily")
    }

    async fn operator_events(
        &self,
        _operator_id: u32,
        _filter: &EventFilter,
        _offset: i64,
        _limit: Option<i64>,
    ) -> PortResult<EventPage> {
        unused("operator_events")
    }

    async fn operator_report(&self) -> PortResult<Vec<OperatorReport>> {
        unused("operator_report")
    }

    async fn operator_rides(
        &self,
        _operator_id: u32,
        _day: Option<i64>,
        _offset: i64,
        _limit: Option<i64>,
    ) -> PortResult<RidePage> {
        unused("operator_rides")
    }

    async fn operator_statement(&self, _operator_id: u32, _period: &Period) -> PortResult<Statement> {
        unused("operator_statement")
    }

    async fn passkey(&self, _credential_id: &[u8]) -> PortResult<Option<PasskeyRow>> {
        unused("passkey")
    }

    async fn passkey_used(&self, _credential_id: &[u8], _dynamic_state: &[u8], _now: i64) -> PortResult<()> {
        unused("passkey_used")
    }

    async fn passkeys_of(&self, _holder: &Address) -> PortResult<Vec<PasskeyRow>> {
        unused("passkeys_of")
    }

    async fn period(&self, _period_id: u64) -> PortResult<Option<Period>> {
        unused("period")
    }

    async fn periods(&self) -> PortResult<Vec<Period>> {
        unused("periods")
    }

    async fn plan_receipt(&self, _plan_id: u64) -> PortResult<Option<PlanReceipt>> {
        unused("plan_receipt")
    }

    async fn refund_of(&self, _ticket_id: u64, _traveler: &Address) -> PortResult<Option<i64>> {
        unused("refund_of")
    }

    async fn revoked_indices(&self, _issuer_slug: &str) -> PortResult<Vec<u64>> {
        unused("revoked_indices")
    }

    async fn session(&self, _token: &str, _now: i64) -> PortResult<Option<Address>> {
        unused("session")
    }

    async fn tickets_of(&self, _holder: &Address) -> PortResult<Vec<TicketRow>> {
        unused("tickets_of")
    }

    async fn travelers(&self) -> PortResult<Vec<Traveler>> {
        unused("travelers")
    }

    async fn upsert_operator(&self, _o: &Operator) -> PortResult<()> {
        unused("upsert_operator")
    }

    async fn voucher_stats(&self) -> PortResult<Vec<VoucherStats>> {
        unused("voucher_stats")
    }

    async fn vouchers_of(&self, _holder: &Address) -> PortResult<Vec<VoucherRow>> {
        unused("vouchers_of")
    }

    async fn wallet(&self, _holder: &Address) -> PortResult<Vec<WalletCredential>> {
        unused("wallet")
    }
}

/// A purchase the fake chain took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Purchase {
    pub(crate) request_id: B256,
    pub(crate) buyer: Address,
    pub(crate) bundle_id: u32,
    pub(crate) max_price: u128,
    /// What was charged.
    pub(crate) price: u128,
    /// `(attestor, kind, discount)` of a concession purchase.
    pub(crate) concession: Option<(Address, u8, u16)>,
}

/// What the fake chain holds.
#[derive(Default)]
pub(crate) struct ChainState {
    pub(crate) balances: HashMap<Address, u128>,
    /// Bundle → list price.
    pub(crate) bundles: BTreeMap<u32, u128>,
    /// `(to, amount, payment ref)` of every mint.
    pub(crate) minted: Vec<(Address, u128, B256)>,
    /// Ticket → (refund amount, deadline).
    pub(crate) refundable: BTreeMap<u64, (u128, u64)>,
    pub(crate) refunded: Vec<u64>,
    /// `(voucher, operator)` redeemed.
    pub(crate) redeemed: Vec<(u64, u32)>,
    pub(crate) purchases: Vec<Purchase>,
    /// Writes go through an outbox: a mint is prepared for the store to record, then awaited.
    pub(crate) outbox: bool,
    /// Mints prepared and not yet made: key id → (to, amount, payment ref).
    pub(crate) prepared: HashMap<String, (Address, u128, B256)>,
    /// Methods that fail, by name.
    pub(crate) fail: HashMap<&'static str, ChainFailure>,
    pub(crate) calls: Vec<&'static str>,
}

/// An in-memory [`Chain`].
pub(crate) struct FakeChain {
    pub(crate) chain_id: u64,
    state: Mutex<ChainState>,
}

impl Default for FakeChain {
    fn default() -> Self {
        Self { chain_id: 31337, state: Mutex::default() }
    }
}

fn tx(n: usize) -> B256 {
    B256::with_last_byte(n as u8 + 1)
}

impl FakeChain {
    pub(crate) fn state(&self) -> MutexGuard<'_, ChainState> {
        self.state.lock().unwrap()
    }

    /// Makes `method` fail with `e`.
    pub(crate) fn fail(&self, method: &'static str, e: ChainFailure) {
        self.state().fail.insert(method, e);
    }

    pub(crate) fn calls(&self) -> Vec<&'static str> {
        self.state().calls.clone()
    }

    fn enter(&self, method: &'static str) -> Result<MutexGuard<'_, ChainState>, ChainFailure> {
        let mut s = self.state();
        s.calls.push(method);
        match s.fail.get(method) {
            Some(e) => Err(e.clone()),
            None => Ok(s),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn buy(
        &self,
        method: &'static str,
        request_id: B256,
        buyer: Address,
        bundle_id: u32,
        max_price: u128,
        price: Option<u128>,
        concession: Option<(Address, u8, u16)>,
    ) -> ChainResult<(u64, B256)> {
        let mut s = self.enter(method)?;
        if let Some(n) = s.purchases.iter().position(|p| p.request_id == request_id) {
            return Err(ChainFailure::Rejected(ContractRejection::PurchaseAlreadyMade {
                request_id,
                plan: n as u64 + 1,
            }));
        }
        let list = *s
            .bundles
            .get(&bundle_id)
            .ok_or(ChainFailure::Rejected(ContractRejection::UnknownBundle { bundle: bundle_id }))?;
        let price = price.unwrap_or(list);
        if price > max_price {
            return Err(ChainFailure::Rejected(ContractRejection::PriceAboveMax {
                price: price.try_into().unwrap(),
                max_price: max_price.try_into().unwrap(),
            }));
        }
        let balance = s.balances.entry(buyer).or_default();
        if *balance < price {
            return Err(ChainFailure::Rejected(ContractRejection::InsufficientBalance {
                account: buyer,
                balance: (*balance).try_into().unwrap(),
                needed: price.try_into().unwrap(),
            }));
        }
        *balance -= price;
        s.purchases.push(Purchase { request_id, buyer, bundle_id, max_price, price, concession });
        let n = s.purchases.len();
        Ok((n as u64, tx(n)))
    }
}

/// A concession price: the list price less `bps`.
pub(crate) fn discounted(price: u128, bps: u16) -> u128 {
    price * u128::from(10_000 - bps) / 10_000
}

impl FakeChain {
    /// The mint itself, once per payment reference as FareToken.
    fn mint(&self, to: Address, amount: u128, payment_ref: B256) -> ChainResult<B256> {
        let mut s = self.state();
        if s.minted.iter().any(|m| m.2 == payment_ref) {
            return Err(ChainFailure::Rejected(ContractRejection::PaymentAlreadyMinted { payment_ref }));
        }
        s.minted.push((to, amount, payment_ref));
        *s.balances.entry(to).or_default() += amount;
        Ok(tx(100 + s.minted.len()))
    }
}

#[async_trait]
impl Chain for FakeChain {
    fn chain_id(&self) -> u64 {
        self.chain_id
    }

    async fn fare_balance(&self, who: Address) -> ChainResult<u128> {
        Ok(self.enter("fare_balance")?.balances.get(&who).copied().unwrap_or(0))
    }

    async fn escrow_balance(&self) -> ChainResult<u128> {
        panic!("the use cases never call Chain::escrow_balance")
    }

    fn prepare_mint(
        &self,
        to: Address,
        amount: u128,
        payment_ref: B256,
    ) -> ChainResult<Option<kippu_domain::outbox::PreparedWrite>> {
        let mut s = self.enter("prepare_mint")?;
        if !s.outbox {
            return Ok(None);
        }
        let key = kippu_domain::outbox::WriteKey {
            kind: kippu_domain::outbox::WriteKind::Mint,
            id: format!("{payment_ref:#x}"),
        };
        s.prepared.insert(key.id.clone(), (to, amount, payment_ref));
        Ok(Some(kippu_domain::outbox::PreparedWrite {
            key,
            call: format!("mint {to:#x} {amount}"),
            sender: "minter".into(),
        }))
    }

    async fn await_mint(&self, key: &kippu_domain::outbox::WriteKey) -> ChainResult<B256> {
        let (to, amount, payment_ref) = {
            let s = self.enter("await_mint")?;
            *s.prepared.get(&key.id).expect("a mint awaited was prepared")
        };
        self.mint(to, amount, payment_ref)
    }

    async fn mint_fare(&self, to: Address, amount: u128, payment_ref: B256) -> ChainResult<B256> {
        drop(self.enter("mint_fare")?);
        self.mint(to, amount, payment_ref)
    }

    async fn payment_minted(&self, payment_ref: B256) -> ChainResult<bool> {
        Ok(self.enter("payment_minted")?.minted.iter().any(|m| m.2 == payment_ref))
    }

    async fn quote(&self, bundle_id: u32) -> ChainResult<(u128, Vec<u128>)> {
        let s = self.enter("quote")?;
        let price = s
            .bundles
            .get(&bundle_id)
            .ok_or(ChainFailure::Rejected(ContractRejection::UnknownBundle { bundle: bundle_id }))?;
        Ok((*price, vec![*price]))
    }

    async fn quote_with_concession(&self, bundle_id: u32, concession_bps: u16) -> ChainResult<u128> {
        let s = self.enter("quote_with_concession")?;
        let price = s
            .bundles
            .get(&bundle_id)
            .ok_or(ChainFailure::Rejected(ContractRejection::UnknownBundle { bundle: bundle_id }))?;
        Ok(discounted(*price, concession_bps))
    }

    async fn buy_with_permit(
        &self,
        request_id: B256,
        traveler: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        _valid_from: u64,
    ) -> ChainResult<(u64, B256)> {
        self.buy("buy_with_permit", request_id, traveler.address(), bundle_id, max_price, None, None)
    }

    async fn purchase_of(&self, request_id: B256) -> ChainResult<Option<(u64, B256, u128)>> {
        let s = self.enter("purchase_of")?;
        let n = s.purchases.iter().position(|p| p.request_id == request_id);
        Ok(n.map(|n| (n as u64 + 1, tx(n + 1), s.purchases[n].price)))
    }

    async fn buy_with_permit_and_concession(
        &self,
        request_id: B256,
        traveler: &PrivateKeySigner,
        attestor: &PrivateKeySigner,
        bundle_id: u32,
        max_price: u128,
        _valid_from: u64,
        kind: u8,
        discount_bps: u16,
    ) -> ChainResult<(u64, B256)> {
        let list = self.state().bundles.get(&bundle_id).copied();
        let price = list.map(|p| discounted(p, discount_bps));
        let concession = Some((attestor.address(), kind, discount_bps));
        self.buy(
            "buy_with_permit_and_concession",
            request_id,
            traveler.address(),
            bundle_id,
            max_price,
            price,
            concession,
        )
    }

    async fn refundable(&self, ticket_id: u64) -> ChainResult<(u128, u64)> {
        Ok(self.enter("refundable")?.refundable.get(&ticket_id).copied().unwrap_or((0, 0)))
    }

    async fn refund(&self, ticket_id: u64) -> ChainResult<u128> {
        let mut s = self.enter("refund")?;
        let (amount, _) = s
            .refundable
            .remove(&ticket_id)
            .ok_or(ChainFailure::Rejected(ContractRejection::NotRefundable { ticket: ticket_id }))?;
        s.refunded.push(ticket_id);
        Ok(amount)
    }

    async fn redeem_voucher(&self, voucher_id: u64, operator_id: u32) -> ChainResult<B256> {
        let mut s = self.enter("redeem_voucher")?;
        if s.redeemed.iter().any(|(v, _)| *v == voucher_id) {
            return Err(ChainFailure::Rejected(ContractRejection::UnknownVoucher { voucher: voucher_id }));
        }
        s.redeemed.push((voucher_id, operator_id));
        Ok(tx(200 + s.redeemed.len()))
    }
}

/// What the gates were told, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Notice {
    KeyRevoked(Address),
    DeviceRevoked([u8; 32]),
    CardBound([u8; 32], u64, Vec<u8>),
    CardUnbound([u8; 32]),
    /// `(operator, trips)`.
    TimetableImported(u32, usize),
}

/// A [`Notifier`] that remembers.
#[derive(Default)]
pub(crate) struct FakeNotifier(pub(crate) Mutex<Vec<Notice>>);

impl FakeNotifier {
    pub(crate) fn notices(&self) -> Vec<Notice> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait]
impl Notifier for FakeNotifier {
    async fn key_revoked(&self, holder: Address) {
        self.0.lock().unwrap().push(Notice::KeyRevoked(holder));
    }

    async fn device_revoked(&self, device_key: [u8; 32]) {
        self.0.lock().unwrap().push(Notice::DeviceRevoked(device_key));
    }

    async fn card_bound(&self, card_key: [u8; 32], ticket_id: u64, sig: Vec<u8>) {
        self.0.lock().unwrap().push(Notice::CardBound(card_key, ticket_id, sig));
    }

    async fn card_unbound(&self, card_key: [u8; 32]) {
        self.0.lock().unwrap().push(Notice::CardUnbound(card_key));
    }

    async fn timetable_imported(&self, operator_id: u32, timetable: kippu_gtfs::Timetable) {
        self.0.lock().unwrap().push(Notice::TimetableImported(operator_id, timetable.summary.trips));
    }
}

/// A card payment provider that opens pages (or fails, when told).
#[derive(Default)]
pub(crate) struct FakePayments {
    pub(crate) opened: Mutex<Vec<CheckoutRequest>>,
    pub(crate) down: Mutex<Option<String>>,
}

#[async_trait]
impl Payments for FakePayments {
    async fn open_checkout(&self, req: &CheckoutRequest) -> Result<CheckoutPage, PaymentFailure> {
        if let Some(why) = self.down.lock().unwrap().clone() {
            return Err(PaymentFailure(why));
        }
        let mut opened = self.opened.lock().unwrap();
        opened.push(req.clone());
        let id = format!("cs_test_{}", opened.len());
        Ok(CheckoutPage { url: format!("https://pay.example/{id}"), id })
    }
}

/// The traveler's concession as the credential services would present it.
pub(crate) struct FakeConcessions {
    pub(crate) answer: Result<Option<PresentedConcession>, ConcessionFailure>,
    /// Who presented.
    pub(crate) presented_by: Mutex<Vec<Address>>,
}

impl FakeConcessions {
    pub(crate) fn none() -> Self {
        Self::answering(Ok(None))
    }

    pub(crate) fn answering(answer: Result<Option<PresentedConcession>, ConcessionFailure>) -> Self {
        Self { answer, presented_by: Mutex::default() }
    }
}

#[async_trait]
impl Concessions for FakeConcessions {
    async fn present_best(
        &self,
        traveler: &PrivateKeySigner,
    ) -> Result<Option<PresentedConcession>, ConcessionFailure> {
        self.presented_by.lock().unwrap().push(traveler.address());
        self.answer.clone()
    }
}

/// A transfer between operators' claims `(from, to, amount)`.
type Transfer = (u32, u32, i64);

/// The settler's chain calls, in memory.
pub(crate) struct FakeClearing {
    pub(crate) state: Mutex<ClearingState>,
}

/// What the fake clearing holds.
pub(crate) struct ClearingState {
    pub(crate) period: u64,
    pub(crate) head: u64,
    /// Block → timestamp.
    pub(crate) blocks: BTreeMap<u64, u64>,
    pub(crate) unpaid: Vec<(u32, u128)>,
    pub(crate) payable: Vec<(u32, u128)>,
    pub(crate) insurer: Option<u32>,
    /// `(period, adjustments)` settled.
    pub(crate) settled: Vec<(u64, Vec<Transfer>)>,
    pub(crate) fail: HashMap<&'static str, ChainFailure>,
    pub(crate) calls: Vec<&'static str>,
}

impl Default for FakeClearing {
    fn default() -> Self {
        Self {
            state: Mutex::new(ClearingState {
                period: 1,
                head: 20,
                blocks: (0..=20).map(|n| (n, NOW as u64 - 100 + n)).collect(),
                unpaid: vec![],
                payable: vec![],
                insurer: None,
                settled: vec![],
                fail: HashMap::new(),
                calls: vec![],
            }),
        }
    }
}

impl FakeClearing {
    pub(crate) fn state(&self) -> MutexGuard<'_, ClearingState> {
        self.state.lock().unwrap()
    }

    fn enter(&self, method: &'static str) -> Result<MutexGuard<'_, ClearingState>, ChainFailure> {
        let mut s = self.state();
        s.calls.push(method);
        match s.fail.get(method) {
            Some(e) => Err(e.clone()),
            None => Ok(s),
        }
    }
}

#[async_trait]
impl Clearing for FakeClearing {
    async fn current_period(&self) -> ChainResult<u64> {
        Ok(self.enter("current_period")?.period)
    }

    async fn block_number(&self) -> ChainResult<u64> {
        Ok(self.enter("block_number")?.head)
    }

    async fn block_header(&self, n: u64) -> ChainResult<Option<(B256, B256, u64)>> {
        Ok(self.enter("block_header")?.blocks.get(&n).map(|t| (B256::with_last_byte(n as u8), B256::ZERO, *t)))
    }

    async fn settlement_state(&self, block: u64, _operators: &[u32]) -> ChainResult<SettlementState> {
        let s = self.enter("settlement_state")?;
        Ok(SettlementState { block, unpaid: s.unpaid.clone(), payable: s.payable.clone(), ..Default::default() })
    }

    async fn insurer(&self) -> ChainResult<Option<u32>> {
        Ok(self.enter("insurer")?.insurer)
    }

    async fn settle_period(&self, period_id: u64, adjustments: &[(u32, u32, i64)]) -> ChainResult<(B256, u64)> {
        let mut s = self.enter("settle_period")?;
        if period_id != s.period {
            return Err(ChainFailure::Rejected(ContractRejection::WrongPeriod { given: period_id, current: s.period }));
        }
        s.settled.push((period_id, adjustments.to_vec()));
        s.period += 1;
        Ok((B256::with_last_byte(0xc1), period_id))
    }
}

/// A ledger follower that has booked up to `next_block` and counts its catch-ups.
pub(crate) struct FakeLedger {
    pub(crate) next_block: Mutex<Option<u64>>,
    pub(crate) catch_ups: Mutex<usize>,
    pub(crate) down: Mutex<Option<String>>,
}

impl FakeLedger {
    pub(crate) fn at(next_block: Option<u64>) -> Self {
        Self { next_block: Mutex::new(next_block), catch_ups: Mutex::new(0), down: Mutex::new(None) }
    }
}

#[async_trait]
impl Ledger for FakeLedger {
    async fn catch_up(&self) -> Result<usize, LedgerFailure> {
        if let Some(why) = self.down.lock().unwrap().clone() {
            return Err(LedgerFailure(why));
        }
        *self.catch_ups.lock().unwrap() += 1;
        Ok(0)
    }

    async fn next_block(&self) -> PortResult<Option<u64>> {
        Ok(*self.next_block.lock().unwrap())
    }
}

/// The keystore every test seals keys with.
pub(crate) fn keystore() -> kippu_identity::Keystore {
    kippu_identity::Keystore::new([7; 32])
}

/// A traveler with a custodial key sealed in `keystore`.
pub(crate) fn custodial_traveler(store: &FakeStore, keystore: &kippu_identity::Keystore, name: &str) -> Address {
    let (address, sealed) = keystore.create().unwrap();
    store.state().travelers.insert(
        address,
        Traveler {
            address,
            did: kippu_identity::did_pkh(31337, address),
            display_name: name.into(),
            sealed_key: Some(sealed.to_string()),
            created_at: NOW - 86_400,
        },
    );
    address
}

/// A traveler who signs with their own wallet (no key here).
pub(crate) fn wallet_traveler(store: &FakeStore) -> PrivateKeySigner {
    let key = PrivateKeySigner::random();
    let address = key.address();
    store.state().travelers.insert(
        address,
        Traveler {
            address,
            did: kippu_identity::did_pkh(31337, address),
            display_name: "Wallet".into(),
            sealed_key: None,
            created_at: NOW - 86_400,
        },
    );
    key
}

/// An operator.
pub(crate) fn operator(id: u32, slug: &str) -> Operator {
    Operator {
        id,
        slug: slug.into(),
        name: slug.to_uppercase(),
        kind: "metro".into(),
        payee: Address::repeat_byte(id as u8),
    }
}
