//! The auth service over a real SQLite store.

use roost_auth::{Auth, SeedOptions, Seeded};
use roost_proto::AuthService;
use roost_proto::auth::v1::{AuthenticateRequest, GetLocalTokensRequest};
use roost_store::Store;

async fn authenticate(
    auth: &Auth,
    token: &str,
) -> Result<roost_proto::auth::v1::Principal, roost_proto::ServiceError> {
    let response = auth
        .authenticate(AuthenticateRequest {
            header: None,
            token: token.to_string(),
        })
        .await?;
    Ok(response.principal.expect("a principal"))
}

#[tokio::test]
async fn the_seed_is_created_once_and_its_tokens_authenticate() {
    let dir = tempfile::tempdir().unwrap();
    let url = Store::sqlite_url(&dir.path().join("catalog.db"));
    let store = Store::connect(&url).await.unwrap();
    let seeded = Seeded::ensure(&store, &SeedOptions::default())
        .await
        .unwrap();
    let again = Seeded::ensure(
        &Store::connect(&url).await.unwrap(),
        &SeedOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        seeded, again,
        "a restart keeps the organization, workspace and tokens"
    );

    let auth = Auth::new(store, Some(seeded.clone()));
    let admin = authenticate(&auth, &seeded.workspace_admin_token)
        .await
        .unwrap();
    assert_eq!(admin.scopes, ["ADMIN"]);
    assert_eq!(admin.workspace.as_ref().unwrap().id, seeded.workspace_id);
    assert_eq!(admin.workspace.as_ref().unwrap().database, seeded.database);
    assert!(!admin.is_user_token);

    let user = authenticate(&auth, &seeded.user_token).await.unwrap();
    assert!(user.is_user_token);
    assert!(user.workspace.is_none());

    let tokens = auth
        .get_local_tokens(GetLocalTokensRequest { header: None })
        .await
        .unwrap();
    assert_eq!(tokens.admin_token, seeded.admin_token);
}

#[tokio::test]
async fn forged_and_unknown_tokens_are_forbidden() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("catalog.db")))
        .await
        .unwrap();
    let seeded = Seeded::ensure(&store, &SeedOptions::default())
        .await
        .unwrap();
    let auth = Auth::new(store, None);
    let mut forged = seeded.admin_token.clone();
    forged.pop();
    forged.push('A');
    for token in [
        "",
        "nonsense",
        forged.as_str(),
        "p.eyJpZCI6Im5vcGUifQ.secret",
    ] {
        let error = authenticate(&auth, token).await.unwrap_err();
        assert_eq!(error.code.http_status(), 403, "{token}");
    }
    let error = auth
        .get_local_tokens(GetLocalTokensRequest { header: None })
        .await
        .unwrap_err();
    assert_eq!(
        error.code.http_status(),
        404,
        "no /tokens outside local mode"
    );
}
