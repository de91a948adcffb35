//! The connection loop: each connection is let in on an allowance
//! ([`admission::Connections`]: the general one, or the reserve that answers only
//! `/healthz` and `/metrics`, capped per client address), must send its first request's
//! head within the header timeout (read here, `head.rs`, so that a head too long for
//! hyper gets a JSON answer), and is then served by hyper, whose header timeout also
//! closes a connection left idle between requests. Reserve connections are served on a
//! thread of their own ([`ProbeLane`]).

use super::admission::{Allowance, Connections, Ticket};
use super::*;

/// A reserve connection must say what it wants within this (or the header timeout, if
/// shorter): the reserve is small, and a probe sends its few bytes at once.
const RESERVE_HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A thread of its own, with its own runtime, for the connections let in on the reserve
/// (only probes are answered there). The reserve is used when a crowd holds the general
/// allowance, and then the general runtime's threads are busy with that crowd's bytes: on
/// them a probe waited its turn behind the crowd's tasks (and for their I/O to be polled).
/// On this lane it waits only for the processor, as a thread that mostly sleeps and so is
/// scheduled at once when it wakes.
struct ProbeLane {
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A connection's service, started on whichever runtime takes it.
type Serving = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

impl ProbeLane {
    /// The lane, or `None` when its thread or runtime cannot start (reserve connections
    /// are then served with the others).
    fn start() -> Option<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
        let runtime = match runtime {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%e, "the probes' runtime did not start");
                return None;
            }
        };
        let handle = runtime.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let spawned =
            std::thread::Builder::new().name("lookalike-probes".into()).spawn(move || {
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            });
        if let Err(e) = spawned {
            tracing::warn!(%e, "the probes' thread did not start");
            return None;
        }
        Some(Self { handle, stop: Some(stop) })
    }

    /// Serve `stream` on the lane: moved off the general runtime's reactor onto the
    /// lane's, so that its reads are woken there too.
    fn serve(
        &self,
        stream: tokio::net::TcpStream,
        serve: impl FnOnce(tokio::net::TcpStream) -> Serving + Send + 'static,
    ) {
        let Ok(stream) = stream.into_std() else { return };
        self.handle.spawn(async move {
            if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                serve(stream).await;
            }
        });
    }
}

impl Drop for ProbeLane {
    fn drop(&mut self) {
        // Its runtime ends with its thread; connections still on it are dropped.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serve on `listener` until `shutdown` completes; then requests in flight get a few
/// seconds to finish.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    opts: &ServeOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    let router = app(state.clone());
    let follower = opts.follow_interval.map(|every| tokio::spawn(follow(state.clone(), every)));
    let gate = Connections::new(
        opts.max_connections,
        opts.reserved_connections,
        opts.max_connections_per_address,
    );
    let header_timeout = opts.header_timeout;
    let lane = ProbeLane::start();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%e, "accepting a connection failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(ticket) = gate.admit(peer.ip()) else {
            // Its address holds its share, or every allowance is full: closing at once
            // costs nothing, where an answer would cost a read of its head.
            state.refused.note();
            state.metrics.connection_refused();
            drop(stream);
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let state = state.clone();
        if let Some(lane) = lane.as_ref().filter(|_| ticket.allowance == Allowance::Reserve) {
            lane.serve(stream, move |stream| {
                Box::pin(connection(stream, peer, ticket, service, header_timeout, state))
            });
            continue;
        }
        tokio::spawn(connection(stream, peer, ticket, service, header_timeout, state));
    }
    if let Some(f) = follower {
        f.abort();
    }
    let done = async {
        while gate.open() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), done).await;
    Ok(())
}

async fn connection(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    ticket: Ticket,
    service: hyper_util::service::TowerToHyperService<Router>,
    header_timeout: std::time::Duration,
    state: Arc<AppState>,
) {
    let _open = &ticket;
    let mut stream = stream;
    let reserve = ticket.allowance == Allowance::Reserve;
    let head_timeout =
        if reserve { header_timeout.min(RESERVE_HEAD_TIMEOUT) } else { header_timeout };
    // The first request's head is read here, so that one too long for hyper gets a JSON
    // answer rather than hyper's empty 414/431; then hyper reads it again.
    let head = match tokio::time::timeout(head_timeout, head::read(&mut stream)).await {
        Ok(Ok(head::Head::Fine(bytes))) => bytes,
        Ok(Ok(head::Head::Refused(status, message))) => {
            head::refuse(&mut stream, status, &message).await;
            return;
        }
        // Closed, or silent past the header timeout.
        Ok(Err(_)) | Err(_) => return,
    };
    if reserve && !head::is_probe(&head) {
        // The general allowance is full: only probes are served beyond it.
        state.refused.note();
        head::refuse(&mut stream, StatusCode::SERVICE_UNAVAILABLE, error::BUSY).await;
        return;
    }
    let io = head::Rewind::new(head, stream);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_headers(head::PARSED_HEADERS)
        // A reserve connection is for one probe.
        .keep_alive(!reserve)
        .serve_connection(hyper_util::rt::TokioIo::new(io), service);
    // Closed here rather than by hyper, so that an answer given before its request's body
    // was read (a refused upload) is not lost to a reset (`head::linger`).
    match conn.without_shutdown().await {
        Ok(parts) => {
            let most = head::LINGER_BYTES.max(state.max_upload + 64 * 1024);
            head::linger(&mut parts.io.into_inner(), most).await;
        }
        Err(e) => tracing::debug!(%e, %peer, "connection closed"),
    }
}
