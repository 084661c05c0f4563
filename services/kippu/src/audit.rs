//! `kippu audit`: verifying the audit log's chain, listing it, and the binary's own entries
//! (the command line's and the jobs' actions).

use anyhow::Context;
use kippu_domain::audit::{verify as verify_chain, AuditAction, AuditBreak, AuditRecord};
use kippu_store::{AuditFilter, Store};

/// Entries read per page when verifying.
const PAGE: i64 = 1000;

/// The verified log: how many entries and the head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Entries checked.
    pub entries: i64,
    /// The newest entry's hash (hex), `None` for an empty log.
    pub head: Option<String>,
}

/// Checks the whole chain, oldest first. With `expect_head` (`SEQ:HASH` printed by an earlier
/// run), also that that entry is still there with that hash: rows cut off the end are found.
pub async fn verify(store: &Store, expect_head: Option<&str>) -> anyhow::Result<Result<Verified, AuditBreak>> {
    let expected = expect_head
        .map(|h| {
            let (seq, hash) = h.split_once(':').context("--expect-head is SEQ:HASH")?;
            anyhow::Ok((seq.parse::<i64>().context("--expect-head: SEQ")?, hash.to_ascii_lowercase()))
        })
        .transpose()?;
    let mut head = None;
    let mut seen_expected = false;
    loop {
        let after = head.map_or(0, |(seq, _)| seq);
        let page = store.audit_page(after, PAGE).await?;
        if page.is_empty() {
            break;
        }
        if let Some((seq, hash)) = &expected {
            if let Some(e) = page.iter().find(|e| e.seq == *seq) {
                if hex::encode(e.hash) != *hash {
                    return Ok(Err(AuditBreak::Edited { seq: *seq }));
                }
                seen_expected = true;
            }
        }
        match verify_chain(head, &page) {
            Ok(h) => head = h,
            Err(b) => return Ok(Err(b)),
        }
    }
    if let Some((seq, _)) = expected {
        if !seen_expected {
            let last = head.map_or(0, |(s, _)| s);
            return Ok(Err(AuditBreak::Gap { after: last, found: seq }));
        }
    }
    Ok(Ok(Verified { entries: head.map_or(0, |(s, _)| s), head: head.map(|(s, h)| format!("{s}:{}", hex::encode(h))) }))
}

/// Records what the command line or a job did. `organisation` is the slug acted for
/// (`kippu` for the consortium).
pub async fn record(
    store: &Store,
    actor: &str,
    organisation: &str,
    action: AuditAction,
    target: &str,
) -> anyhow::Result<()> {
    let at = crate::clock::now();
    let r = AuditRecord {
        at,
        actor: actor.into(),
        organisation: organisation.into(),
        action,
        target: target.into(),
        client: String::new(),
    };
    store.append_audit(&r).await.context("writing the audit log")?;
    Ok(())
}

/// The log as CSV (newest first), filtered.
pub async fn csv(store: &Store, filter: &AuditFilter, limit: i64) -> anyhow::Result<String> {
    Ok(kippu_domain::audit::to_csv(&store.audit_search(filter, limit).await?))
}
