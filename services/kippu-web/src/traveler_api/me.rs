//! The traveler's live state as JSON: balance, tickets, vouchers, and the event stream.

use crate::session::Traveler;
use crate::views::{voucher_state, Catalogue};
use crate::{AppError, AppState};
use axum::extract::State;
use axum::Json;
use kippu_domain::money::format_fare;
use kippu_identity::did_pkh;

/// Pushes the signed-in traveler's new vouchers as Server-Sent Events. The
/// store is polled every 2 s per open page, which is cheap next to the
/// seconds a delay report takes to be mined and indexed.
pub(crate) async fn events(
    State(s): State<AppState>,
    Traveler(me): Traveler,
) -> axum::response::sse::Sse<impl futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>>
{
    use axum::response::sse::{Event, KeepAlive, Sse};
    let known: std::collections::HashSet<u64> =
        s.store.vouchers_of(&me).await.unwrap_or_default().into_iter().map(|v| v.id).collect();
    // The stream outlives the request's language scope: its texts keep the page's language.
    let lang = crate::i18n::current();
    let stream =
        futures::stream::unfold((s, known, Vec::<Event>::new()), move |(s, mut known, mut queue)| async move {
            loop {
                if let Some(e) = queue.pop() {
                    return Some((Ok(e), (s, known, queue)));
                }
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let Ok(vouchers) = s.store.vouchers_of(&me).await else { continue };
                let fresh: Vec<_> = vouchers.into_iter().filter(|v| !known.contains(&v.id)).collect();
                if fresh.is_empty() {
                    continue;
                }
                // The catalogue (operator names) is read only when there is something to send.
                let Ok(cat) = Catalogue::load(&s).await else { continue };
                for v in fresh {
                    known.insert(v.id);
                    let data = serde_json::json!({
                        "id": v.id,
                        "value": format_fare(i128::from(v.value)),
                        "operator": cat.operator(v.operator_id),
                        "state": crate::i18n::within(lang, || voucher_state(&v)),
                    });
                    queue.push(Event::default().event("voucher").data(data.to_string()));
                }
            }
        });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Machine-readable view of the signed-in traveler (used by tests and the app's scripts).
pub(crate) async fn api_me(
    State(s): State<AppState>,
    Traveler(me): Traveler,
) -> Result<Json<serde_json::Value>, AppError> {
    let balance = s.chain.fare_balance(me).await?;
    let tickets: Vec<_> = s
        .store
        .tickets_of(&me)
        .await?
        .iter()
        .map(|t| serde_json::json!({"id": t.id, "plan_id": t.plan_id, "operator_id": t.operator_id, "product_id": t.product_id, "rides_left": t.rides_left(), "valid_until": t.valid_until}))
        .collect();
    let vouchers: Vec<_> = s
        .store
        .vouchers_of(&me)
        .await?
        .iter()
        .map(|v| serde_json::json!({"id": v.id, "value": v.value, "operator_id": v.operator_id, "redeemed": v.redeemed_by.is_some()}))
        .collect();
    Ok(Json(serde_json::json!({
        "address": format!("{me:#x}"),
        "did": did_pkh(s.chain.chain_id(), me),
        "balance": balance as u64,
        "tickets": tickets,
        "vouchers": vouchers,
    })))
}
