//! kippu-store as the application's [`kippu_app::ports::Store`]: every method forwards to the
//! inherent one of the same name; the store's error becomes the port's.

use alloy_primitives::Address;
use async_trait::async_trait;
use kippu_app::ports::{PortError, PortResult};

use crate::*;

fn port(e: StoreError) -> PortError {
    match e {
        StoreError::Corrupt(what) => PortError::Corrupt(what.to_owned()),
        other => PortError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl kippu_app::ports::Store for Store {
    async fn throttle_verdict(&self, scope: &str, key: &str, now: i64) -> PortResult<kippu_domain::throttle::Verdict> {
        Store::throttle_verdict(self, scope, key, now).await.map_err(port)
    }

    async fn throttle_failure(
        &self,
        scope: &str,
        key: &str,
        now: i64,
        policy: &kippu_domain::throttle::Policy,
    ) -> PortResult<kippu_domain::throttle::Verdict> {
        Store::throttle_failure(self, scope, key, now, policy).await.map_err(port)
    }

    async fn throttle_success(&self, scope: &str, key: &str, now: i64) -> PortResult<()> {
        Store::throttle_success(self, scope, key, now).await.map_err(port)
    }

    async fn append_audit(&self, record: &kippu_domain::audit::AuditRecord) -> PortResult<()> {
        Store::append_audit(self, record).await.map(drop).map_err(port)
    }

    async fn audit_search(
        &self,
        filter: &kippu_domain::audit::AuditFilter,
        limit: i64,
    ) -> PortResult<Vec<kippu_domain::audit::AuditEntry>> {
        Store::audit_search(self, filter, limit).await.map_err(port)
    }

    async fn add_organisation(&self, o: &Organisation) -> PortResult<bool> {
        Store::add_organisation(self, o).await.map_err(port)
    }

    async fn organisation(&self, slug: &str) -> PortResult<Option<Organisation>> {
        Store::organisation(self, slug).await.map_err(port)
    }

    async fn organisations(&self) -> PortResult<Vec<Organisation>> {
        Store::organisations(self).await.map_err(port)
    }

    async fn add_staff(&self, a: &StaffAccount, invitation_hash: &str, invitation_expires: i64) -> PortResult<bool> {
        Store::add_staff(self, a, invitation_hash, invitation_expires).await.map_err(port)
    }

    async fn reinvite_staff(&self, account_id: &str, invitation_hash: &str, expires: i64, now: i64) -> PortResult<()> {
        Store::reinvite_staff(self, account_id, invitation_hash, expires, now).await.map_err(port)
    }

    async fn invitation(&self, invitation_hash: &str, now: i64) -> PortResult<Option<StaffAccount>> {
        Store::invitation(self, invitation_hash, now).await.map_err(port)
    }

    async fn accept_invitation(
        &self,
        invitation_hash: &str,
        password_hash: &str,
        now: i64,
    ) -> PortResult<Option<StaffAccount>> {
        Store::accept_invitation(self, invitation_hash, password_hash, now).await.map_err(port)
    }

    async fn staff_by_email(&self, email: &str) -> PortResult<Option<StaffAccount>> {
        Store::staff_by_email(self, email).await.map_err(port)
    }

    async fn staff_account(&self, id: &str) -> PortResult<Option<StaffAccount>> {
        Store::staff_account(self, id).await.map_err(port)
    }

    async fn staff_of(&self, organisation: &str) -> PortResult<Vec<StaffAccount>> {
        Store::staff_of(self, organisation).await.map_err(port)
    }

    async fn set_staff_role(&self, organisation: &str, id: &str, role: kippu_domain::staff::Role) -> PortResult<bool> {
        Store::set_staff_role(self, organisation, id, role).await.map_err(port)
    }

    async fn disable_staff(&self, organisation: &str, id: &str, now: i64) -> PortResult<bool> {
        Store::disable_staff(self, organisation, id, now).await.map_err(port)
    }

    async fn open_staff_session(&self, token_hash: &str, account_id: &str, expires_at: i64) -> PortResult<()> {
        Store::open_staff_session(self, token_hash, account_id, expires_at).await.map_err(port)
    }

    async fn staff_session(&self, token_hash: &str, now: i64) -> PortResult<Option<StaffAccount>> {
        Store::staff_session(self, token_hash, now).await.map_err(port)
    }

    async fn end_staff_session(&self, token_hash: &str, now: i64) -> PortResult<()> {
        Store::end_staff_session(self, token_hash, now).await.map_err(port)
    }

    async fn issue_token(&self, t: &ApiToken) -> PortResult<()> {
        Store::issue_token(self, t).await.map_err(port)
    }

    async fn api_token(&self, id: &str) -> PortResult<Option<ApiToken>> {
        Store::api_token(self, id).await.map_err(port)
    }

    async fn tokens_of(&self, organisation: &str) -> PortResult<Vec<ApiToken>> {
        Store::tokens_of(self, organisation).await.map_err(port)
    }

    async fn revoke_token(&self, organisation: &str, id: &str, now: i64) -> PortResult<bool> {
        Store::revoke_token(self, organisation, id, now).await.map_err(port)
    }

    async fn token_used(&self, id: &str, now: i64) -> PortResult<()> {
        Store::token_used(self, id, now).await.map_err(port)
    }

    async fn insert_staff_passkey(&self, p: &StaffPasskeyRow) -> PortResult<bool> {
        Store::insert_staff_passkey(self, p).await.map_err(port)
    }

    async fn staff_passkey(&self, credential_id: &[u8]) -> PortResult<Option<StaffPasskeyRow>> {
        Store::staff_passkey(self, credential_id).await.map_err(port)
    }

    async fn staff_passkeys_of(&self, account_id: &str) -> PortResult<Vec<StaffPasskeyRow>> {
        Store::staff_passkeys_of(self, account_id).await.map_err(port)
    }

    async fn staff_passkey_used(&self, credential_id: &[u8], dynamic_state: &[u8], now: i64) -> PortResult<()> {
        Store::staff_passkey_used(self, credential_id, dynamic_state, now).await.map_err(port)
    }

    async fn alerts(&self) -> PortResult<Vec<String>> {
        Store::alerts(self).await.map_err(port)
    }

    async fn cards_of(&self, holder: &Address) -> PortResult<Vec<CardBindingRow>> {
        Store::cards_of(self, holder).await.map_err(port)
    }

    async fn claim_counts(&self) -> PortResult<Vec<(String, String, i64)>> {
        Store::claim_counts(self).await.map_err(port)
    }

    async fn cover_terms(&self) -> PortResult<Vec<CoverTerms>> {
        Store::cover_terms(self).await.map_err(port)
    }

    async fn devices_of(&self, holder: &Address) -> PortResult<Vec<DeviceRow>> {
        Store::devices_of(self, holder).await.map_err(port)
    }

    async fn gates(&self) -> PortResult<Vec<GateRow>> {
        Store::gates(self).await.map_err(port)
    }

    async fn issued_by(&self, issuer_slug: &str) -> PortResult<Vec<IssuedCredential>> {
        Store::issued_by(self, issuer_slug).await.map_err(port)
    }

    async fn record_issued(&self, c: &IssuedCredential, list_len: i64) -> PortResult<i64> {
        Store::record_issued(self, c, list_len).await.map_err(port)
    }

    async fn upsert_device(&self, d: &DeviceRow) -> PortResult<()> {
        Store::upsert_device(self, d).await.map_err(port)
    }

    async fn upsert_traveler(&self, t: &Traveler) -> PortResult<()> {
        Store::upsert_traveler(self, t).await.map_err(port)
    }

    async fn add_to_wallet(&self, holder: &Address, id: &str, body: &str, now: i64) -> PortResult<()> {
        Store::add_to_wallet(self, holder, id, body, now).await.map_err(port)
    }

    async fn bind_card(&self, b: &CardBindingRow) -> PortResult<()> {
        Store::bind_card(self, b).await.map_err(port)
    }

    async fn bundles(&self) -> PortResult<Vec<Bundle>> {
        Store::bundles(self).await.map_err(port)
    }

    async fn card_binding(&self, card_key: &[u8; 32]) -> PortResult<Option<CardBindingRow>> {
        Store::card_binding(self, card_key).await.map_err(port)
    }

    async fn create_account(&self, t: &Traveler, email: &str, hash: &str, now: i64) -> PortResult<bool> {
        Store::create_account(self, t, email, hash, now).await.map_err(port)
    }

    async fn create_payment(&self, session_id: &str, traveler: &Address, amount: i64, now: i64) -> PortResult<()> {
        Store::create_payment(self, session_id, traveler, amount, now).await.map_err(port)
    }

    async fn create_session(&self, token: &str, address: &Address, expires_at: i64) -> PortResult<()> {
        Store::create_session(self, token, address, expires_at).await.map_err(port)
    }

    async fn current_timetables(&self) -> PortResult<Vec<TimetableRow>> {
        Store::current_timetables(self).await.map_err(port)
    }

    async fn delays_per_route(&self) -> PortResult<Vec<RouteDelays>> {
        Store::delays_per_route(self).await.map_err(port)
    }

    async fn delete_session(&self, token: &str) -> PortResult<()> {
        Store::delete_session(self, token).await.map_err(port)
    }

    async fn device(&self, key: &[u8; 32]) -> PortResult<Option<DeviceRow>> {
        Store::device(self, key).await.map_err(port)
    }

    async fn email_of(&self, address: &Address) -> PortResult<Option<String>> {
        Store::email_of(self, address).await.map_err(port)
    }

    async fn erase_personal_data(&self, address: &Address, did: &str, now: i64) -> PortResult<()> {
        Store::erase_personal_data(self, address, did, now).await.map_err(port)
    }

    async fn export_personal_data(&self, address: &Address, did: &str) -> PortResult<serde_json::Value> {
        Store::export_personal_data(self, address, did).await.map_err(port)
    }

    async fn first_webhook_delivery(&self, event_id: &str, now: i64) -> PortResult<bool> {
        Store::first_webhook_delivery(self, event_id, now).await.map_err(port)
    }

    async fn insert_passkey(&self, p: &PasskeyRow) -> PortResult<bool> {
        Store::insert_passkey(self, p).await.map_err(port)
    }

    async fn issuers(&self) -> PortResult<Vec<IssuerRow>> {
        Store::issuers(self).await.map_err(port)
    }

    async fn key_revocation(&self, address: &Address) -> PortResult<Option<(i64, String)>> {
        Store::key_revocation(self, address).await.map_err(port)
    }

    async fn latest_reconciliation(&self) -> PortResult<Option<(i64, u64, String)>> {
        Store::latest_reconciliation(self).await.map_err(port)
    }

    async fn mark_minted(&self, session_id: &str, tx_hash: &str) -> PortResult<()> {
        Store::mark_minted(self, session_id, tx_hash).await.map_err(port)
    }

    async fn mark_paid(&self, session_id: &str) -> PortResult<Option<Payment>> {
        Store::mark_paid(self, session_id).await.map_err(port)
    }

    async fn mark_paid_recording(
        &self,
        session_id: &str,
        mint: &kippu_domain::outbox::PreparedWrite,
        now: i64,
    ) -> PortResult<()> {
        Store::mark_paid_recording(self, session_id, mint, now).await.map_err(port)
    }

    async fn operator_bundles(&self, operator_id: u32) -> PortResult<Vec<BundleShare>> {
        Store::operator_bundles(self, operator_id).await.map_err(port)
    }

    async fn operator_daily(&self, operator_id: u32) -> PortResult<OperatorDaily> {
        Store::operator_daily(self, operator_id).await.map_err(port)
    }

    async fn operator_events(
        &self,
        operator_id: u32,
        filter: &EventFilter,
        offset: i64,
        limit: Option<i64>,
    ) -> PortResult<EventPage> {
        Store::operator_events(self, operator_id, filter, offset, limit).await.map_err(port)
    }

    async fn operator_report(&self) -> PortResult<Vec<OperatorReport>> {
        Store::operator_report(self).await.map_err(port)
    }

    async fn operator_rides(
        &self,
        operator_id: u32,
        day: Option<i64>,
        offset: i64,
        limit: Option<i64>,
    ) -> PortResult<RidePage> {
        Store::operator_rides(self, operator_id, day, offset, limit).await.map_err(port)
    }

    async fn operator_statement(&self, operator_id: u32, period: &Period) -> PortResult<Statement> {
        Store::operator_statement(self, operator_id, period).await.map_err(port)
    }

    async fn operators(&self) -> PortResult<Vec<Operator>> {
        Store::operators(self).await.map_err(port)
    }

    async fn passkey(&self, credential_id: &[u8]) -> PortResult<Option<PasskeyRow>> {
        Store::passkey(self, credential_id).await.map_err(port)
    }

    async fn passkey_used(&self, credential_id: &[u8], dynamic_state: &[u8], now: i64) -> PortResult<()> {
        Store::passkey_used(self, credential_id, dynamic_state, now).await.map_err(port)
    }

    async fn passkeys_of(&self, holder: &Address) -> PortResult<Vec<PasskeyRow>> {
        Store::passkeys_of(self, holder).await.map_err(port)
    }

    async fn password_login(&self, email: &str) -> PortResult<Option<(Address, String)>> {
        Store::password_login(self, email).await.map_err(port)
    }

    async fn payment(&self, session_id: &str) -> PortResult<Option<Payment>> {
        Store::payment(self, session_id).await.map_err(port)
    }

    async fn period(&self, period_id: u64) -> PortResult<Option<Period>> {
        Store::period(self, period_id).await.map_err(port)
    }

    async fn periods(&self) -> PortResult<Vec<Period>> {
        Store::periods(self).await.map_err(port)
    }

    async fn plan_receipt(&self, plan_id: u64) -> PortResult<Option<PlanReceipt>> {
        Store::plan_receipt(self, plan_id).await.map_err(port)
    }

    async fn products(&self) -> PortResult<Vec<Product>> {
        Store::products(self).await.map_err(port)
    }

    async fn refund_of(&self, ticket_id: u64, traveler: &Address) -> PortResult<Option<i64>> {
        Store::refund_of(self, ticket_id, traveler).await.map_err(port)
    }

    async fn revoke_device(&self, key: &[u8; 32], holder: &Address, now: i64, keep_session: &str) -> PortResult<bool> {
        Store::revoke_device(self, key, holder, now, keep_session).await.map_err(port)
    }

    async fn revoke_issued(&self, issuer_slug: &str, id: &str, now: i64) -> PortResult<bool> {
        Store::revoke_issued(self, issuer_slug, id, now).await.map_err(port)
    }

    async fn revoke_key(&self, address: &Address, reason: &str, now: i64) -> PortResult<()> {
        Store::revoke_key(self, address, reason, now).await.map_err(port)
    }

    async fn revoked_indices(&self, issuer_slug: &str) -> PortResult<Vec<u64>> {
        Store::revoked_indices(self, issuer_slug).await.map_err(port)
    }

    async fn last_period_close(&self) -> PortResult<Option<PeriodCloseRow>> {
        Store::last_period_close(self).await.map_err(port)
    }

    async fn close_period_books(&self, from: i64, to: i64) -> PortResult<PeriodClose> {
        Store::close_period_books(self, from, to).await.map_err(port)
    }

    async fn settlement_carry(&self) -> PortResult<std::collections::BTreeMap<u32, i64>> {
        Store::settlement_carry(self).await.map_err(port)
    }

    async fn record_period_close(
        &self,
        c: &PeriodCloseRow,
        carry: &std::collections::BTreeMap<u32, i64>,
    ) -> PortResult<()> {
        Store::record_period_close(self, c, carry).await.map_err(port)
    }

    async fn save_timetable(&self, slug: &str, summary: &str, feed_b64: &str, now: i64) -> PortResult<i64> {
        Store::save_timetable(self, slug, summary, feed_b64, now).await.map_err(port)
    }

    async fn session(&self, token: &str, now: i64) -> PortResult<Option<Address>> {
        Store::session(self, token, now).await.map_err(port)
    }

    async fn taps_of_ticket(&self, ticket_id: u64) -> PortResult<Vec<TapRow>> {
        Store::taps_of_ticket(self, ticket_id).await.map_err(port)
    }

    async fn ticket(&self, id: u64) -> PortResult<Option<TicketRow>> {
        Store::ticket(self, id).await.map_err(port)
    }

    async fn tickets_of(&self, holder: &Address) -> PortResult<Vec<TicketRow>> {
        Store::tickets_of(self, holder).await.map_err(port)
    }

    async fn traveler(&self, address: &Address) -> PortResult<Option<Traveler>> {
        Store::traveler(self, address).await.map_err(port)
    }

    async fn travelers(&self) -> PortResult<Vec<Traveler>> {
        Store::travelers(self).await.map_err(port)
    }

    async fn trust_list(&self) -> PortResult<Vec<(String, String)>> {
        Store::trust_list(self).await.map_err(port)
    }

    async fn unbind_card(&self, card_key: &[u8; 32], holder: &Address) -> PortResult<bool> {
        Store::unbind_card(self, card_key, holder).await.map_err(port)
    }

    async fn upsert_operator(&self, o: &Operator) -> PortResult<()> {
        Store::upsert_operator(self, o).await.map_err(port)
    }

    async fn voucher(&self, id: u64) -> PortResult<Option<VoucherRow>> {
        Store::voucher(self, id).await.map_err(port)
    }

    async fn voucher_stats(&self) -> PortResult<Vec<VoucherStats>> {
        Store::voucher_stats(self).await.map_err(port)
    }

    async fn vouchers_of(&self, holder: &Address) -> PortResult<Vec<VoucherRow>> {
        Store::vouchers_of(self, holder).await.map_err(port)
    }

    async fn wallet(&self, holder: &Address) -> PortResult<Vec<WalletCredential>> {
        Store::wallet(self, holder).await.map_err(port)
    }
}

#[async_trait]
impl kippu_app::ports::ChainWrites for Store {
    async fn record_write(
        &self,
        key: &kippu_domain::outbox::WriteKey,
        call: &str,
        sender: &str,
        now: i64,
    ) -> PortResult<bool> {
        Store::record_write(self, key, call, sender, now).await.map_err(port)
    }

    async fn recorded_write(&self, key: &kippu_domain::outbox::WriteKey) -> PortResult<Option<RecordedWrite>> {
        Store::recorded_write(self, key).await.map_err(port)
    }

    async fn open_writes(&self, limit: i64) -> PortResult<Vec<RecordedWrite>> {
        Store::open_writes(self, limit).await.map_err(port)
    }

    async fn confirmed_writes_since(&self, from_block: u64) -> PortResult<Vec<RecordedWrite>> {
        Store::confirmed_writes_since(self, from_block).await.map_err(port)
    }

    async fn recent_writes(&self, limit: i64) -> PortResult<Vec<RecordedWrite>> {
        Store::recent_writes(self, limit).await.map_err(port)
    }

    async fn set_write_stage(
        &self,
        key: &kippu_domain::outbox::WriteKey,
        change: &kippu_domain::outbox::StageChange,
        now: i64,
    ) -> PortResult<()> {
        Store::set_write_stage(self, key, change, now).await.map_err(port)
    }

    async fn write_counts(&self, stuck_after: u32, confirmed_since: i64) -> PortResult<kippu_app::ports::WriteCounts> {
        Store::write_counts(self, stuck_after, confirmed_since).await.map_err(port)
    }

    async fn writes_in_state(
        &self,
        state: kippu_app::ports::WriteState,
        stuck_after: u32,
        limit: i64,
    ) -> PortResult<Vec<RecordedWrite>> {
        Store::writes_in_state(self, state, stuck_after, limit).await.map_err(port)
    }
}

#[async_trait]
impl kippu_app::ports::Leases for Store {
    async fn lead(&self, name: &str, holder: &str, now: i64, ttl_secs: i64) -> PortResult<bool> {
        Store::lead(self, name, holder, now, ttl_secs).await.map_err(port)
    }
}
