//! Upload bodies, read whole before their handler runs, and judged by what arrives rather
//! than by what the client announced: no byte for the idle timeout, or fewer bytes than
//! the minimum rate asks for once the grace period is over, is a 408 that closes the
//! connection; every byte received is held against the server's byte budget (three
//! times: the body, the multipart parser's buffer, a field's copy), and a body the budget
//! cannot hold is a 503 at once. An announced `Content-Length` over the upload limit is refused before a byte of
//! the body is read.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::*;

/// What the server counts an upload's byte as: the body itself (kept as the pieces that
/// arrived, never copied or grown), the multipart parser's buffer, and the copy each
/// field is read whole into.
const HELD_PER_BYTE: u64 = 3;

/// How uploads must arrive.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    /// No byte for this long: the upload is given up.
    pub(super) idle: Duration,
    /// Before this, any pace is fine.
    pub(super) grace: Duration,
    /// After the grace period, the bytes received must keep up with this many per
    /// second, counted from the start (0: no minimum).
    pub(super) min_rate: u64,
}

/// Why a body stopped arriving.
#[derive(Debug, PartialEq, Eq)]
enum Stalled {
    Idle,
    Slow,
}

/// The middleware of the routes that take uploads: the body read whole under [`Pace`],
/// within the upload limit and the byte budget, then the handler (the budget's share held
/// until it answers).
pub(super) async fn whole_body(
    State(state): State<Arc<AppState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let mut body = body.into_data_stream();
    let limit = state.max_upload + 64 * 1024;
    let announced = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return closing(too_large(state.max_upload));
    }
    let pace = state.pace;
    let mut held = state.budget.nothing();
    // The pieces as they arrived: no buffer sized by the announced length, and none that
    // grows by doubling (a 20 MB body would sit in 32 MB).
    let mut pieces: Vec<Bytes> = Vec::new();
    let mut received = 0usize;
    let start = Instant::now();
    let mut last = start;
    loop {
        let idle_at = last + pace.idle;
        let slow_at = if pace.min_rate == 0 {
            None
        } else {
            // Received bytes at the minimum rate buy this much time beyond the grace.
            let earned = Duration::from_secs_f64(received as f64 / pace.min_rate as f64);
            Some(start + pace.grace + earned)
        };
        let (deadline, why) = match slow_at {
            Some(slow) if slow < idle_at => (slow, Stalled::Slow),
            _ => (idle_at, Stalled::Idle),
        };
        let data = match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(data))) => data,
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return closing(AppError::BadRequest(format!("the upload could not be read: {e}")));
            }
            Err(_) => {
                state.refused.note();
                return closing(AppError::Timeout(match why {
                    Stalled::Idle => format!(
                        "the upload stopped: no byte arrived for {:.0} s",
                        pace.idle.as_secs_f64()
                    ),
                    Stalled::Slow => format!(
                        "the upload arrived slower than {} KB/s",
                        (pace.min_rate / 1024).max(1)
                    ),
                }));
            }
        };
        if received + data.len() > limit {
            return closing(too_large(state.max_upload));
        }
        if !held.grow(data.len() as u64 * HELD_PER_BYTE) {
            state.refused.note();
            return closing(AppError::Busy);
        }
        received += data.len();
        pieces.push(data);
        last = Instant::now();
    }
    let pieces = futures_util::stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    let body = axum::body::Body::from_stream(pieces);
    let res = next.run(axum::extract::Request::from_parts(parts, body)).await;
    drop(held);
    res
}

/// `error` as the answer, and the connection closed after it: the rest of the body (if
/// any) is not read, so the connection cannot carry another request.
fn closing(error: AppError) -> Response {
    let mut res = error.into_response();
    res.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    res
}
