//! The mock's view of its connections: how many it accepted, which are still open, and the
//! peer each request came from, so a test can tell which upstream connection a request of the
//! gateway's used and when the gateway closed one.

use std::collections::BTreeSet;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Connections accepted so far and those still open, by peer address.
#[derive(Debug, Default)]
pub(super) struct Connections {
    accepted: AtomicU64,
    open: Mutex<BTreeSet<SocketAddr>>,
}

impl Connections {
    pub(super) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// The peers of the connections still open, in address order.
    pub(super) fn open(&self) -> Vec<SocketAddr> {
        self.open_set().iter().copied().collect()
    }

    fn open_set(&self) -> std::sync::MutexGuard<'_, BTreeSet<SocketAddr>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The mock's listener: a TCP listener that sets `TCP_NODELAY` (streamed frames are small;
/// Nagle's algorithm would hold them back) and counts each connection in and out.
pub(super) struct CountingListener {
    listener: TcpListener,
    connections: Arc<Connections>,
}

impl CountingListener {
    pub(super) fn new(listener: TcpListener, connections: Arc<Connections>) -> Self {
        Self {
            listener,
            connections,
        }
    }
}

impl Listener for CountingListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // axum's own accept, which logs and retries a failed accept.
        let (stream, peer) = Listener::accept(&mut self.listener).await;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "the mock upstream could not set TCP_NODELAY");
        }
        self.connections.accepted.fetch_add(1, Ordering::Relaxed);
        self.connections.open_set().insert(peer);
        let counted = CountedStream {
            stream,
            peer,
            connections: Arc::clone(&self.connections),
        };
        (counted, peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An accepted connection, counted as open until the server drops it.
pub(super) struct CountedStream {
    stream: TcpStream,
    peer: SocketAddr,
    connections: Arc<Connections>,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.connections.open_set().remove(&self.peer);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The peer a request came from, put in its extensions by the server.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer(pub(super) SocketAddr);

impl Connected<IncomingStream<'_, CountingListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, CountingListener>) -> Self {
        Self(*stream.remote_addr())
    }
}
