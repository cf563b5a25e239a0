//! Small helpers for the outgoing HTTP calls of frontend authentication.

/// What went wrong, without the URL: reqwest's messages print it, and a
/// forward-auth or JWKS URL may carry credentials.
pub(super) fn describe(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_redirect() {
        "redirect refused"
    } else if e.is_body() || e.is_decode() {
        "reading the body failed"
    } else {
        "request failed"
    }
}

/// Read at most `cap` bytes of a response body.
pub(super) async fn read_capped(mut res: reqwest::Response, cap: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| describe(&e).to_owned())? {
        if body.len() + chunk.len() > cap {
            return Err(format!("response body larger than {cap} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
