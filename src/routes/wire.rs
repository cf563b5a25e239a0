//! The connection under the HTTP layer, for what happens before any route
//! runs. actix's HTTP/1 parser answers a request it cannot parse (a broken
//! header line, a `Content-Length` that is no number) with a bare
//! `400 Bad Request` and an empty body, and offers no hook to change that.
//! [`ProblemIo`] wraps each connection and, when that exact bare answer is
//! about to be written, writes the problem+json answer of `invalid_request`
//! in its place: wsticket's own errors always have a body, so nothing else
//! can match.

use super::problem::{ApiError, raw_http_response};
use actix_web::rt::net::TcpStream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What actix's HTTP/1 dispatcher writes for a request it cannot parse.
const BARE_400: &[u8] = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n";

pub(crate) struct ProblemIo<T = TcpStream> {
    io: T,
    /// The problem answer being written in place of the bare one: its bytes,
    /// how many are written, and how many bytes of actix's it stands for.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> ProblemIo<T> {
    pub(crate) fn new(io: T) -> Self {
        ProblemIo {
            io,
            replacing: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ProblemIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ProblemIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() && buf.starts_with(BARE_400) {
            // The bare answer is its head alone: up to the blank line.
            let end = buf
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(buf.len(), |i| i + 4);
            tracing::debug!("a request that is not valid HTTP/1.1 was answered 400");
            let problem = ApiError::invalid("the request is not valid HTTP/1.1");
            this.replacing = Some((raw_http_response(&problem), 0, end));
        }
        let Some((bytes, written, stands_for)) = &mut this.replacing else {
            return Pin::new(&mut this.io).poll_write(cx, buf);
        };
        while *written < bytes.len() {
            match Pin::new(&mut this.io).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let done = *stands_for;
        this.replacing = None;
        Poll::Ready(Ok(done))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_bare_400_becomes_problem_json_and_nothing_else_changes() {
        let mut out = ProblemIo::new(Vec::new());
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\ndate: x\r\n\r\n";
        let n = Pin::new(&mut out).write(bare).await.unwrap();
        assert_eq!(n, bare.len());
        let text = String::from_utf8(out.io.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(
            text.contains("content-type: application/problem+json\r\n"),
            "{text}"
        );
        assert!(text.contains("cache-control: no-store\r\n"), "{text}");
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["code"], "invalid_request");
        assert_eq!(v["status"], 400);

        // Any other answer passes through untouched.
        let mut out = ProblemIo::new(Vec::new());
        let other = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n{\"code\":1}\r\n";
        Pin::new(&mut out).write_all(other).await.unwrap();
        assert_eq!(out.io, other);
    }
}
