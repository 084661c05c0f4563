//! Request forgery protection and security headers, for every route.
//!
//! CSRF: a state-changing request (anything but GET, HEAD, OPTIONS) made by a browser must
//! come from this site. Browsers say where a request comes from in `Sec-Fetch-Site` (all
//! current ones) and `Origin` (all, on POST); a page on another site can set neither. So a
//! request is refused when `Sec-Fetch-Site` names another site, or when `Origin` is present
//! and is not this app's. A request with neither header is not from a browser (curl, a
//! gate, Stripe's webhook), and no browser can be tricked into sending it. This is OWASP's
//! "Fetch Metadata" defence with Origin verification as its fallback; together with the
//! `SameSite=Lax` session cookie it needs no per-form token, so every form keeps working
//! from a cached page on a phone with no signal.
//!
//! Headers: a strict Content Security Policy (only this origin's scripts, styles, images,
//! connections; no inline script, no framing, no plugins), `nosniff`, no referrer off-site,
//! no camera/microphone/geolocation, an isolated browsing context, and HSTS when served over
//! HTTPS.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;

/// The Content Security Policy of every page. Forms may post only here, and the top-up
/// form's redirect may go on only to Stripe's hosted Checkout (`checkout_origin`): Chromium
/// applies `form-action` to a form's redirects too.
pub(crate) fn csp(checkout_origin: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self' {checkout_origin}; frame-ancestors 'none'; worker-src 'self'; manifest-src 'self'"
    )
}

/// Why a request was refused as cross-site, if it was.
pub(crate) fn cross_site(method: &Method, headers: &axum::http::HeaderMap, own_origin: &str) -> Option<&'static str> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        // `none`: the user typed the URL or used a bookmark.
        return (!matches!(site, "same-origin" | "none")).then_some("the request came from another site");
    }
    match headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("")) {
        Some(o) if o != own_origin => Some("the request's Origin is another site"),
        _ => None,
    }
}

/// `scheme://host[:port]` of a URL.
pub(crate) fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
    let host = rest.split('/').next().unwrap_or("");
    format!("{scheme}://{host}")
}

/// The middleware: refuses cross-site writes, then adds the headers to whatever answers.
pub(crate) async fn guard(s: AppState, csp: HeaderValue, req: Request, next: Next) -> Response {
    if let Some(why) = cross_site(req.method(), req.headers(), &origin_of(&s.public_url)) {
        // The Stripe webhook is server-to-server and signed; no browser header makes it cross-site,
        // but let it through whatever headers a proxy adds, its signature is its protection.
        if req.uri().path() != "/webhooks/stripe" {
            metrics::counter!("kippu_csrf_refused_total").increment(1);
            tracing::warn!(path = %req.uri().path(), why, "cross-site request refused");
            let page = refusal_page(req.headers(), why);
            return with_headers(page, &csp, s.secure_cookies());
        }
    }
    with_headers(next.run(req).await, &csp, s.secure_cookies())
}

/// The 403 page for a cross-site write, in the traveler's language (this runs before the
/// language middleware, so the language is read here).
fn refusal_page(headers: &axum::http::HeaderMap, why: &str) -> Response {
    use crate::i18n::{t, tf, within, Lang};
    within(Lang::of(headers), || {
        let why = if why.contains("Origin") { t("csrf.why_origin") } else { t("csrf.why_site") };
        crate::error::error_page(StatusCode::FORBIDDEN, t("csrf.title"), &tf("csrf.message", why))
    })
}

fn with_headers(mut res: Response<Body>, csp: &HeaderValue, https: bool) -> Response<Body> {
    let h = res.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert_with(|| csp.clone());
    let set = |h: &mut axum::http::HeaderMap, k: &'static str, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(h, "x-content-type-options", "nosniff");
    set(h, "referrer-policy", "same-origin");
    set(h, "x-frame-options", "DENY");
    set(h, "permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()");
    set(h, "cross-origin-opener-policy", "same-origin");
    if https {
        set(h, "strict-transport-security", "max-age=31536000; includeSubDomains");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn cross_site_writes_are_refused_and_same_site_ones_pass() {
        let own = "http://127.0.0.1:8080";
        let post = Method::POST;
        assert!(cross_site(&Method::GET, &headers(&[("sec-fetch-site", "cross-site")]), own).is_none(), "reads pass");
        assert!(cross_site(&post, &headers(&[("sec-fetch-site", "same-origin")]), own).is_none());
        assert!(cross_site(&post, &headers(&[("sec-fetch-site", "none")]), own).is_none());
        assert!(cross_site(&post, &headers(&[("sec-fetch-site", "cross-site")]), own).is_some());
        assert!(cross_site(&post, &headers(&[("sec-fetch-site", "same-site")]), own).is_some(), "a sibling subdomain");
        assert!(cross_site(&post, &headers(&[("origin", "http://127.0.0.1:8080")]), own).is_none());
        assert!(cross_site(&post, &headers(&[("origin", "https://evil.example")]), own).is_some());
        assert!(cross_site(&post, &headers(&[("origin", "null")]), own).is_some(), "sandboxed frames send null");
        assert!(cross_site(&post, &HeaderMap::new(), own).is_none(), "not a browser");
        assert!(
            cross_site(&post, &headers(&[("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")]), own)
                .is_none(),
            "Fetch Metadata decides when present"
        );
    }

    #[tokio::test]
    async fn the_refusal_speaks_the_travelers_language() {
        let body = |h: HeaderMap, why: &'static str| async move {
            let page = refusal_page(&h, why);
            assert_eq!(page.status(), StatusCode::FORBIDDEN);
            let bytes = axum::body::to_bytes(page.into_body(), 1 << 20).await.unwrap();
            String::from_utf8(bytes.to_vec()).unwrap()
        };
        let en = body(HeaderMap::new(), "the request came from another site").await;
        assert!(en.contains("Request refused") && en.contains("another site"), "{en}");
        let ja = body(headers(&[("cookie", "kippu_lang=ja")]), "the request's Origin is another site").await;
        assert!(ja.contains("<html lang=\"ja\">") && ja.contains("リクエストを拒否しました"), "{ja}");
        assert!(ja.contains("Originが別のサイト") && !ja.contains("another site"), "{ja}");
    }

    #[test]
    fn origins() {
        assert_eq!(origin_of("http://127.0.0.1:8080/x/y"), "http://127.0.0.1:8080");
        assert_eq!(origin_of("https://kippu.example"), "https://kippu.example");
    }
}
