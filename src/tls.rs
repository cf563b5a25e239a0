//! rustls (Redis `rediss://`, the JWKS and forward-auth clients) needs one
//! process-wide crypto provider; without it, building a client panics.

/// Install ring's provider once; later calls, and a provider someone else
/// installed first, are fine.
pub fn ensure_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
