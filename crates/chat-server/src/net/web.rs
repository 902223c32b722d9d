//! The web door: one HTTP/1.1 listener (and an HTTPS one with the TLS certificate) that
//! serves the web client, a WebSocket endpoint into the same hub, a health check and
//! Prometheus metrics.
//!
//! A connection is admitted by the accept loop like any other (the same total and
//! per-address limits), handshaken in its own task if it is HTTPS, then served by
//! hyper's HTTP/1.1 connection with the axum router. `/ws` upgrades it: the session is
//! the native one, over [`WsStream`], and takes over the connection's permits, so a
//! WebSocket counts against the limits exactly as a TCP connection does.
//!
//! | Route | What |
//! |---|---|
//! | `/` | the page (`web/index.html`), with `/app.js`, `/style.css`, `/favicon.svg` |
//! | `/ws` | the native protocol, one line per WebSocket text message |
//! | `/healthz` | 200 and a short JSON body while serving; 503 while shutting down or while the store fails |
//! | `/metrics` | Prometheus text format |
//!
//! Every response carries a strict Content-Security-Policy and `nosniff`.

use crate::config::ProxyHeader;
use crate::core::metrics::{Door, Refusal};
use crate::door::native;
use crate::net::driver::Peer;
use crate::net::listener::{Server, TaskGuard};
use crate::net::ws::{Wire, WsStream};
use axum::Router;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;
use tracing::info;

/// The page and its assets, embedded in the binary.
const INDEX_HTML: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE_CSS: &str = include_str!("../../web/style.css");
const FAVICON_SVG: &str = include_str!("../../web/favicon.svg");

/// What every response says about where its content may come from: only this origin,
/// no inline script or style, no framing, no forms, no plugins.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// Longest an HTTP connection stays open for plain requests (a WebSocket upgrade ends
/// its HTTP life early). Browsers keep idle connections for reuse; this bounds how long
/// such a connection holds its permit.
const HTTP_CONNECTION_LIFE: Duration = Duration::from_secs(60);

/// Largest request head accepted (hyper's minimum buffer).
const MAX_REQUEST_HEAD: usize = 16 * 1024;

/// Headers a reverse proxy adds: their presence means the peer's address is the
/// proxy's, not the user's.
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// tungstenite's read buffer per WebSocket (its default, 128 KiB, would be most of what
/// a connection costs); it grows for a longer message, up to the line limit.
const WS_READ_BUFFER: usize = 1024;

/// What the routes share: the server and its shutdown.
pub(crate) struct Web {
    server: Server,
    /// Cancelled when the server shuts down.
    token: CancellationToken,
    started: Instant,
}

/// One HTTP connection, as its requests see it.
struct Conn {
    /// The peer's address.
    addr: SocketAddr,
    /// Whether it came over TLS.
    https: bool,
    /// The connection's permits and task count, until a WebSocket takes them over.
    guard: Mutex<Option<TaskGuard>>,
}

impl Web {
    pub(crate) fn new(server: Server, token: CancellationToken) -> Arc<Web> {
        Arc::new(Web {
            server,
            token,
            started: Instant::now(),
        })
    }

    /// The routes, over this server.
    pub(crate) fn router(self: &Arc<Web>) -> Router {
        Router::new()
            .route("/", get(|| asset("text/html; charset=utf-8", INDEX_HTML)))
            .route(
                "/app.js",
                get(|| asset("text/javascript; charset=utf-8", APP_JS)),
            )
            .route(
                "/style.css",
                get(|| asset("text/css; charset=utf-8", STYLE_CSS)),
            )
            .route("/favicon.svg", get(|| asset("image/svg+xml", FAVICON_SVG)))
            .route("/favicon.ico", get(|| asset("image/svg+xml", FAVICON_SVG)))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/ws", get(websocket))
            .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
            .layer(axum::middleware::map_response(secure_headers))
            .with_state(self.clone())
    }
}

/// Serves one admitted HTTP connection (already through TLS if HTTPS) until it closes,
/// upgrades to a WebSocket, lives [`HTTP_CONNECTION_LIFE`], or the server shuts down.
pub(crate) async fn serve_connection<S>(
    stream: S,
    addr: SocketAddr,
    https: bool,
    router: Router,
    guard: TaskGuard,
    web: &Web,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let conn = Arc::new(Conn {
        addr,
        https,
        guard: Mutex::new(Some(guard)),
    });
    let service = TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(conn.clone());
        hyper::service::Service::call(&service, request)
    });
    let config = &web.server.config();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(config.handshake_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    let connection = http
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut connection = std::pin::pin!(connection);
    let stop = tokio::select! {
        _ = connection.as_mut() => return,
        () = web.token.cancelled() => config.shutdown_grace,
        () = tokio::time::sleep(HTTP_CONNECTION_LIFE) => config.handshake_timeout,
    };
    // Let a request in flight finish; close an idle connection now.
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(stop, connection).await;
}

/// An embedded file.
async fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Adds the security headers to every response.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// `/healthz`: 200 while the server serves and the store takes writes, else 503.
async fn healthz(State(web): State<Arc<Web>>) -> Response {
    let stats = web.server.stats();
    let store_ok = web.server.store_healthy();
    let status = health(web.token.is_cancelled(), store_ok);
    let body = format!(
        "{{\"status\":\"{status}\",\"uptime_seconds\":{},\"connections\":{},\"sessions\":{},\"store\":\"{}\"}}\n",
        web.started.elapsed().as_secs(),
        stats.connections,
        stats.sessions,
        if store_ok { "ok" } else { "failing" },
    );
    let code = if status == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// `/metrics`: the OpenMetrics text format, which Prometheus scrapes.
async fn metrics(State(web): State<Arc<Web>>) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        web.server.metrics_text(),
    )
        .into_response()
}

/// What `/healthz` says: shutting down outranks a failing store.
fn health(stopping: bool, store_ok: bool) -> &'static str {
    match (stopping, store_ok) {
        (true, _) => "shutting down",
        (false, false) => "store failing",
        (false, true) => "ok",
    }
}

/// `/ws`: checks the origin, takes over the connection's permits, and runs the native
/// session over the WebSocket.
async fn websocket(
    State(web): State<Arc<Web>>,
    Extension(conn): Extension<Arc<Conn>>,
    mut request: Request,
) -> Response {
    let headers = request.headers();
    let Some(accept) = upgrade_accept_key(&request) else {
        return (
            StatusCode::UPGRADE_REQUIRED,
            [
                (header::UPGRADE, "websocket"),
                (header::SEC_WEBSOCKET_VERSION, "13"),
            ],
            "this is a WebSocket endpoint: the chat protocol, one line per text message\n",
        )
            .into_response();
    };
    let config = web.server.config();
    let proxied = PROXY_HEADERS
        .iter()
        .any(|name| headers.contains_key(HeaderName::from_static(name)));
    // Only a proxy on this machine that the operator named (--http-proxy-header) is
    // believed about the user's address and scheme; anyone else's forwarding headers
    // only make the request count as not local.
    let trusted = match config.http_proxy_header {
        Some(header) if proxied && conn.addr.ip().to_canonical().is_loopback() => Some(header),
        _ => None,
    };
    let https = conn.https || (trusted.is_some() && forwarded_https(headers));
    if !origin_allowed(headers, https, &config.http_allow_origin) {
        info!(peer = %conn.addr, origin = ?headers.get(header::ORIGIN), "WebSocket refused: origin");
        web.server.hub().metrics.refused(Refusal::Origin);
        return (
            StatusCode::FORBIDDEN,
            "this page's origin may not open a chat connection here\n",
        )
            .into_response();
    }
    // A page served in the clear from another host: whatever the peer, the user's
    // password would have crossed a network unencrypted.
    let remote_page = !https && origin_host(headers).is_some_and(|host| !is_local_host(host));
    let mut addr = conn.addr;
    let mut extra_permit = None;
    if proxied && conn.addr.ip().to_canonical().is_loopback() {
        // The connection was admitted as loopback, exempt from the per-address limit:
        // count it against the user's address, or, with no proxy header trusted, against
        // the proxy's own (so an unconfigured proxy is limited like one user).
        let ip = match trusted {
            Some(header) => match forwarded_for(headers, header) {
                Some(ip) => ip,
                None => {
                    return (
                        StatusCode::BAD_REQUEST,
                        format!("a proxied request must give the user's address in {header}\n"),
                    )
                        .into_response();
                }
            },
            None => conn.addr.ip(),
        };
        if ip != conn.addr.ip() {
            addr = SocketAddr::new(ip, 0);
        }
        match web.server.admit_forwarded(ip) {
            Ok(permit) => extra_permit = Some(permit),
            Err(limit) => {
                info!(peer = %addr, limit, "WebSocket refused: too many from this address");
                web.server.hub().metrics.refused(Refusal::PerAddress);
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("your address already has {limit} connections, the most allowed\n"),
                )
                    .into_response();
            }
        }
    }
    let Some(guard) = conn
        .guard
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
    else {
        return (
            StatusCode::CONFLICT,
            "this connection is already a WebSocket\n",
        )
            .into_response();
    };
    let peer = Peer {
        addr,
        tls: https,
        proxied: proxied || remote_page,
        websocket: true,
    };
    let max_line = config.max_line;
    let (hub, config, token) = (web.server.hub(), web.server.config_arc(), web.token.clone());
    // Counted as a `ws` connection from the upgrade to its end.
    let open = hub.metrics.accepted(Door::Ws);
    let upgraded = hyper::upgrade::on(&mut request);
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(WS_READ_BUFFER)
        // Every frame tungstenite writes (its control frames only) goes straight to the
        // `Wire`, which keeps nothing once flushed.
        .write_buffer_size(0)
        .max_message_size(Some(max_line))
        .max_frame_size(Some(max_line));
    web.server.tracker().spawn(async move {
        let upgraded = match upgraded.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                info!(peer = %peer.addr, error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let wire = Wire::new(TokioIo::new(upgraded));
        let socket = WebSocketStream::from_raw_socket(wire, Role::Server, Some(ws_config)).await;
        let deadline = tokio::time::Instant::now() + config.handshake_timeout;
        native::serve(Box::new(native::Start {
            stream: WsStream::new(socket, max_line, config.ws_ping),
            peer,
            hub,
            config,
            shutdown: token,
            deadline,
        }))
        .await;
        // In this order: a waiter woken by the permits sees the count done.
        drop((open, extra_permit, guard));
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::CONNECTION, HeaderValue::from_static("upgrade")),
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response()
}

/// The `Sec-WebSocket-Accept` answer to `request` if it is a WebSocket upgrade (RFC
/// 6455, 4.2.1: a GET over HTTP/1.1 with `Connection: upgrade`, `Upgrade: websocket`,
/// version 13 and a key).
fn upgrade_accept_key(request: &Request) -> Option<HeaderValue> {
    let headers = request.headers();
    let has_token = |name: HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let upgrade = request.method() == axum::http::Method::GET
        && request.version() == axum::http::Version::HTTP_11
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && headers
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let key = headers.get(header::SEC_WEBSOCKET_KEY)?;
    if !upgrade {
        return None;
    }
    HeaderValue::from_str(&derive_accept_key(key.as_bytes())).ok()
}

/// Whether a WebSocket may be opened from the page that asks: one served by this host
/// under an address or `localhost` (its `Origin` is the scheme and `Host` of this
/// request), or one of `--http-allow-origin`. A client that sends no `Origin` is not a browser and has no
/// page to be tricked by; `Origin: null` (a sandboxed or file page) is refused.
pub(crate) fn origin_allowed(headers: &HeaderMap, https: bool, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    // A page under a name (not an address) could be any site whose name was pointed at
    // this machine afterwards (DNS rebinding): names must be listed.
    let name = host_name(host);
    if !(is_local_host(name) || name.parse::<IpAddr>().is_ok()) {
        return false;
    }
    let scheme = if https { "https://" } else { "http://" };
    origin
        .get(..scheme.len())
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        && origin[scheme.len()..].eq_ignore_ascii_case(host)
}

/// The user's address as the proxy gives it in `header`: the last `X-Forwarded-For`
/// entry (the one the nearest proxy added; those before it are the client's word), the
/// `X-Real-IP`, or the last `for=` of `Forwarded`.
pub(crate) fn forwarded_for(headers: &HeaderMap, header: ProxyHeader) -> Option<IpAddr> {
    let last_entry = |name: HeaderName| -> Option<String> {
        let values = headers.get_all(name);
        let value = values.iter().next_back()?.to_str().ok()?;
        Some(value.rsplit(',').next()?.trim().to_owned())
    };
    match header {
        ProxyHeader::XForwardedFor => {
            last_entry(HeaderName::from_static("x-forwarded-for")).and_then(|v| parse_ip(&v))
        }
        ProxyHeader::XRealIp => {
            last_entry(HeaderName::from_static("x-real-ip")).and_then(|v| parse_ip(&v))
        }
        ProxyHeader::Forwarded => {
            let forwarded = last_entry(header::FORWARDED)?;
            forwarded_param(&forwarded, "for").and_then(|v| parse_ip(&v))
        }
    }
}

/// Whether the trusted proxy says the page came over HTTPS (`X-Forwarded-Proto` or the
/// `proto=` of `Forwarded`).
fn forwarded_https(headers: &HeaderMap) -> bool {
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .or_else(|| {
            let forwarded = headers.get_all(header::FORWARDED).iter().next_back()?;
            let last = forwarded.to_str().ok()?.rsplit(',').next()?;
            forwarded_param(last, "proto")
        });
    proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

/// The value of `name` in one `Forwarded` element (`for=…;proto=…`), unquoted.
fn forwarded_param(element: &str, name: &str) -> Option<String> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The host (without port) of the request's `Origin`, if it has one.
fn origin_host(headers: &HeaderMap) -> Option<&str> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let (_, rest) = origin.split_once("://")?;
    Some(host_name(rest))
}

/// `host[:port]` or `[v6]:port` without the port.
fn host_name(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split(']').next().unwrap_or(v6);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// A name that can only mean this machine, or an address literal (which DNS cannot
/// rebind): the hosts under which the server's own page is trusted without
/// `--http-allow-origin`.
fn is_local_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or
/// `[2001:db8::1]:5678`.
fn parse_ip(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    text.strip_prefix('[')?.split(']').next()?.parse().ok()
}

/// What a refused HTTP connection is told.
pub(crate) fn refusal_response(status: &str, text: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\nRetry-After: 5\r\n\r\n{text}\n",
        text.len() + 1
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_origin_must_be_this_host_or_allowed() {
        let host = [("host", "127.0.0.1:8080")];
        let with = |origin: &str| {
            let mut h = headers(&host);
            h.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
            h
        };
        assert!(
            origin_allowed(&headers(&host), false, &[]),
            "no Origin: not a browser"
        );
        assert!(origin_allowed(&with("http://127.0.0.1:8080"), false, &[]));
        assert!(origin_allowed(&with("HTTP://127.0.0.1:8080"), false, &[]));
        assert!(!origin_allowed(&with("https://127.0.0.1:8080"), false, &[]));
        assert!(origin_allowed(&with("https://127.0.0.1:8080"), true, &[]));
        assert!(!origin_allowed(&with("http://evil.example"), false, &[]));
        assert!(!origin_allowed(
            &with("http://127.0.0.1:8080.evil.example"),
            false,
            &[]
        ));
        assert!(!origin_allowed(&with("null"), false, &[]));
        let allowed = ["https://chat.example.org/".to_owned()];
        assert!(origin_allowed(
            &with("https://chat.example.org"),
            false,
            &allowed
        ));
        assert!(!origin_allowed(
            &with("https://other.example.org"),
            false,
            &allowed
        ));
        // DNS rebinding: a site's name pointed at this machine sends a matching Origin
        // and Host; a name must be listed.
        let rebound = headers(&[
            ("host", "attacker.example:8080"),
            ("origin", "http://attacker.example:8080"),
        ]);
        assert!(!origin_allowed(&rebound, false, &[]));
        let listed = ["http://attacker.example:8080".to_owned()];
        assert!(origin_allowed(&rebound, false, &listed));
        let local = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ]);
        assert!(origin_allowed(&local, false, &[]));
        let mut no_host = HeaderMap::new();
        no_host.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(!origin_allowed(&no_host, false, &[]));
    }

    #[test]
    fn health_is_ok_only_while_serving_with_a_working_store() {
        assert_eq!(health(false, true), "ok");
        assert_eq!(health(false, false), "store failing");
        assert_eq!(health(true, true), "shutting down");
        assert_eq!(health(true, false), "shutting down");
    }

    #[test]
    fn the_forwarded_address_is_the_trusted_headers_word() {
        use ProxyHeader::{Forwarded, XForwardedFor, XRealIp};
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let xff = headers(&[("x-forwarded-for", "203.0.113.9, 198.51.100.7")]);
        assert_eq!(forwarded_for(&xff, XForwardedFor), Some(ip("198.51.100.7")));
        let real = headers(&[("x-real-ip", "2001:db8::5")]);
        assert_eq!(forwarded_for(&real, XRealIp), Some(ip("2001:db8::5")));
        let fwd = headers(&[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")]);
        assert_eq!(forwarded_for(&fwd, Forwarded), Some(ip("192.0.2.60")));
        let v6 = headers(&[("forwarded", "For=\"[2001:db8:cafe::17]:4711\"")]);
        assert_eq!(forwarded_for(&v6, Forwarded), Some(ip("2001:db8:cafe::17")));
        let port = headers(&[("x-forwarded-for", "192.0.2.1:5555")]);
        assert_eq!(forwarded_for(&port, XForwardedFor), Some(ip("192.0.2.1")));
        let unknown = headers(&[("x-forwarded-for", "unknown")]);
        assert_eq!(forwarded_for(&unknown, XForwardedFor), None);
        let hidden = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(forwarded_for(&hidden, Forwarded), None);
        // Only the header named is read: a client's own X-Forwarded-For passed on by a
        // proxy that sets X-Real-IP is not believed.
        let both = headers(&[
            ("x-real-ip", "203.0.113.5"),
            ("x-forwarded-for", "127.0.0.1"),
        ]);
        assert_eq!(forwarded_for(&both, XRealIp), Some(ip("203.0.113.5")));
        assert_eq!(forwarded_for(&real, XForwardedFor), None);
    }

    #[test]
    fn the_scheme_is_the_trusted_proxys_word() {
        assert!(forwarded_https(&headers(&[("x-forwarded-proto", "https")])));
        assert!(forwarded_https(&headers(&[(
            "forwarded",
            "for=192.0.2.1;proto=https"
        )])));
        assert!(!forwarded_https(&headers(&[("x-forwarded-proto", "http")])));
        assert!(!forwarded_https(&headers(&[])));
    }

    #[test]
    fn names_that_only_mean_this_machine() {
        for local in [
            "localhost",
            "LOCALHOST",
            "chat.localhost",
            "127.0.0.1",
            "127.0.0.2",
            "::1",
        ] {
            assert!(is_local_host(local), "{local}");
        }
        for remote in ["chat.example.org", "192.0.2.1", "localhost.example.org"] {
            assert!(!is_local_host(remote), "{remote}");
        }
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("example.org:8080"), "example.org");
        assert_eq!(host_name("example.org"), "example.org");
    }
}
