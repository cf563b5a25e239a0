//! Key rotation as docs/configuration.md tells it, against a real Redis:
//! the secret list changes between restarts of the service.

use crate::helpers::*;
use crate::redis_server::shared_url;

const SECRET_K2: &str = "azIta2V5LWZvci10aGUtcm90YXRpb24tZHJpbGwtMDA";

/// The test configuration with `secrets` for its ticket secrets.
async fn spawn_with_secrets(prefix: &str, secrets: &str) -> TestApp {
    let url = shared_url();
    let text = base_config(Backend::Redis, Some(&url), prefix, "").replace(
        &format!("secrets = [{{ id = \"k1\", secret = \"{SECRET_K1}\" }}]"),
        &format!("secrets = [{secrets}]"),
    );
    assert!(text.contains(secrets), "the secrets line was not replaced");
    spawn_toml(&text, prefix.to_owned()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_drill() {
    let prefix = random_prefix();
    let k1 = format!("{{ id = \"k1\", secret = \"{SECRET_K1}\" }}");
    let k2 = format!("{{ id = \"k2\", secret = \"{SECRET_K2}\" }}");

    // Before: k1 alone mints.
    let app = spawn_with_secrets(&prefix, &k1).await;
    let old = app.mint().await;
    let old_kept = app.mint().await;
    assert!(old.starts_with("wst_k1_"), "{old}");

    // Step 2 of the docs: k2 first (mints), k1 still listed (redeems).
    let app = spawn_with_secrets(&prefix, &format!("{k2}, {k1}")).await;
    app.redeem(&old, Some(ORIGIN)).await.expect(200, None);
    let new = app.mint().await;
    assert!(new.starts_with("wst_k2_"), "{new}");

    // Step 4, after max_ttl_secs: k1 removed. Its tickets are unknown (404,
    // without asking the store), k2's still redeem.
    let app = spawn_with_secrets(&prefix, &k2).await;
    app.redeem(&old_kept, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    app.redeem(&new, Some(ORIGIN)).await.expect(200, None);
}

/// A user revoked during a rotation stays revoked for tickets of either
/// secret, whichever list the revoking replica had: the revocation is
/// written under every secret it knows, read under the ticket's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_survive_a_rotation() {
    let prefix = random_prefix();
    let k1 = format!("{{ id = \"k1\", secret = \"{SECRET_K1}\" }}");
    let k2 = format!("{{ id = \"k2\", secret = \"{SECRET_K2}\" }}");
    let old_replica = spawn_with_secrets(&prefix, &k1).await;
    let old = old_replica.mint().await;
    let new_replica = spawn_with_secrets(&prefix, &format!("{k2}, {k1}")).await;
    let new = new_replica.mint().await;
    assert!(new.starts_with("wst_k2_"), "{new}");
    // Revoked on the replica with both secrets: both tickets are dead on
    // either replica.
    new_replica
        .post_json(
            "/v1/users/revoke",
            Some(REVOKER),
            &serde_json::json!({ "user_id": "alice" }),
        )
        .await
        .expect(200, None);
    old_replica
        .redeem(&old, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    new_replica
        .redeem(&new, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
    // A ticket of a revoked user is revoked for good: presented again it
    // is still revoked (404), never a reuse (409).
    new_replica
        .redeem(&new, Some(ORIGIN))
        .await
        .expect(404, Some("ticket_invalid"));
}
