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
    let mut out = String::from("seq,at,actor,organisation,action,target,client,hash\n");
    for e in store.audit_search(filter, limit).await? {
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
    Ok(out)
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
    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(super::csv_field("plain"), "plain");
        assert_eq!(super::csv_field("a,b"), "\"a,b\"");
        assert_eq!(super::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(super::csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    }
}
