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
    // Another last character than the real one (a token may end in 'A' itself).
    let last = forged.pop();
    forged.push(if last == Some('A') { 'B' } else { 'A' });
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

async fn fresh() -> (Auth, Seeded, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&Store::sqlite_url(&dir.path().join("catalog.db")))
        .await
        .unwrap();
    let seeded = Seeded::ensure(&store, &SeedOptions::default())
        .await
        .unwrap();
    (Auth::new(store, Some(seeded.clone())), seeded, dir)
}

fn header(seeded: &Seeded) -> Option<roost_proto::common::v1::RequestHeader> {
    Some(roost_proto::common::v1::RequestHeader {
        workspace_id: seeded.workspace_id.clone(),
        ..Default::default()
    })
}

#[tokio::test]
async fn static_tokens_are_created_listed_updated_refreshed_and_revoked() {
    use roost_proto::auth::v1::*;
    let (auth, seeded, _dir) = fresh().await;
    let created = auth
        .create_token(CreateTokenRequest {
            header: header(&seeded),
            name: "reader".into(),
            description: "reads".into(),
            scopes: vec![
                "pipes:read:top".into(),
                "DATASOURCES:READ:events:country = 'ES'".into(),
                "PIPES:READ:top".into(),
            ],
            origin: "P".into(),
            origin_resource: "top".into(),
        })
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(
        created.scopes,
        ["PIPES:READ:top", "DATASOURCES:READ:events:country = 'ES'"]
    );
    assert_eq!(
        (created.origin.as_str(), created.origin_resource.as_str()),
        ("P", "top")
    );
    let principal = authenticate(&auth, &created.token).await.unwrap();
    assert_eq!(principal.token_name, "reader");
    assert!(!principal.is_jwt);

    let duplicate = auth
        .create_token(CreateTokenRequest {
            header: header(&seeded),
            name: "reader".into(),
            scopes: vec!["TOKENS".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(duplicate.code.http_status(), 409);
    for scopes in [
        vec![],
        vec!["PIPES:READ".to_string()],
        vec!["ADMIN_USER".to_string()],
    ] {
        let error = auth
            .create_token(CreateTokenRequest {
                header: header(&seeded),
                name: "bad".into(),
                scopes: scopes.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(error.code.http_status(), 400, "{scopes:?}");
    }

    let listed = auth
        .list_tokens(ListTokensRequest {
            header: header(&seeded),
        })
        .await
        .unwrap()
        .tokens;
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"admin token") && names.contains(&"reader"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"user token"),
        "user tokens belong to no workspace"
    );

    let updated = auth
        .update_token(UpdateTokenRequest {
            header: header(&seeded),
            name_or_id: "reader".into(),
            new_name: Some("appender".into()),
            description: None,
            scopes: vec!["DATASOURCES:APPEND:events".into()],
            replace_scopes: true,
        })
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(
        (updated.name.as_str(), updated.description.as_str()),
        ("appender", "reads")
    );
    assert_eq!(updated.scopes, ["DATASOURCES:APPEND:events"]);
    assert_eq!(updated.token, created.token, "an update keeps the value");

    let refreshed = auth
        .refresh_token(RefreshTokenRequest {
            header: header(&seeded),
            name_or_id: created.id.clone(),
        })
        .await
        .unwrap()
        .token
        .unwrap();
    assert_ne!(refreshed.token, created.token);
    assert_eq!(refreshed.scopes, updated.scopes);
    assert_eq!(
        authenticate(&auth, &created.token)
            .await
            .unwrap_err()
            .code
            .http_status(),
        403
    );
    assert_eq!(
        authenticate(&auth, &refreshed.token).await.unwrap().scopes,
        ["DATASOURCES:APPEND:events"]
    );

    auth.delete_token(DeleteTokenRequest {
        header: header(&seeded),
        name_or_id: "appender".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        authenticate(&auth, &refreshed.token)
            .await
            .unwrap_err()
            .code
            .http_status(),
        403
    );
    let missing = auth
        .get_token(GetTokenRequest {
            header: header(&seeded),
            name_or_id: "appender".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code.http_status(), 404);
}

#[tokio::test]
async fn the_seed_admin_tokens_refresh_but_stay() {
    use roost_proto::auth::v1::*;
    let (auth, seeded, _dir) = fresh().await;
    for name in ["admin token", "admin local@roost.dev"] {
        let error = auth
            .delete_token(DeleteTokenRequest {
                header: header(&seeded),
                name_or_id: name.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(error.code.http_status(), 403, "{name}");
        let error = auth
            .update_token(UpdateTokenRequest {
                header: header(&seeded),
                name_or_id: name.into(),
                scopes: vec!["PIPES:CREATE".into()],
                replace_scopes: true,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(error.code.http_status(), 403, "{name}");
    }
    auth.refresh_token(RefreshTokenRequest {
        header: header(&seeded),
        name_or_id: "admin token".into(),
    })
    .await
    .unwrap();
    let local = auth
        .get_local_tokens(GetLocalTokensRequest { header: None })
        .await
        .unwrap();
    assert_ne!(
        local.workspace_admin_token, seeded.workspace_admin_token,
        "/tokens shows the refreshed value"
    );
    assert_eq!(
        authenticate(&auth, &local.workspace_admin_token)
            .await
            .unwrap()
            .scopes,
        ["ADMIN"]
    );
}

#[tokio::test]
async fn jwts_authenticate_until_they_expire_and_only_with_their_workspace_key() {
    use roost_auth::jwt;
    use roost_proto::auth::v1::*;
    let (auth, seeded, _dir) = fresh().await;
    let in_an_hour = chrono::Utc::now().timestamp() + 3600;
    let token = auth
        .create_jwt(CreateJwtRequest {
            header: header(&seeded),
            name: "frontend".into(),
            expiration_time: in_an_hour,
            scopes: vec![
                JwtScope {
                    r#type: "PIPES:READ".into(),
                    resource: "top".into(),
                    fixed_params_json: r#"{"org": "acme", "ids": [1, 2]}"#.into(),
                    filter: String::new(),
                },
                JwtScope {
                    r#type: "DATASOURCES:READ".into(),
                    resource: "events".into(),
                    fixed_params_json: String::new(),
                    filter: "org = 'acme'".into(),
                },
            ],
            limit_rps: 5,
        })
        .await
        .unwrap()
        .token;
    let claims = jwt::verify(&token, &seeded.workspace_admin_token, 0).unwrap();
    assert_eq!(
        (claims.workspace_id.as_str(), claims.exp),
        (seeded.workspace_id.as_str(), in_an_hour)
    );
    let principal = authenticate(&auth, &token).await.unwrap();
    assert!(principal.is_jwt);
    assert_eq!(
        principal.scopes,
        ["PIPES:READ:top", "DATASOURCES:READ:events:org = 'acme'"]
    );
    assert_eq!(principal.limit_rps, 5);
    assert_eq!(principal.workspace.unwrap().id, seeded.workspace_id);
    let fixed: Vec<(String, Vec<String>)> = principal
        .fixed_params
        .into_iter()
        .map(|p| (p.name, p.values))
        .collect();
    assert!(
        fixed.contains(&("org".into(), vec!["acme".into()]))
            && fixed.contains(&("ids".into(), vec!["1".into(), "2".into()])),
        "{fixed:?}"
    );

    let claims_for = |workspace: &str, exp: i64| jwt::Claims {
        workspace_id: workspace.into(),
        name: "x".into(),
        exp,
        scopes: vec![jwt::ClaimScope {
            kind: "PIPES:READ".into(),
            resource: "top".into(),
            fixed_params: None,
            filter: None,
        }],
        limits: None,
    };
    let expired = jwt::sign(
        &claims_for(&seeded.workspace_id, chrono::Utc::now().timestamp() - 1),
        &seeded.workspace_admin_token,
    );
    let wrong_key = jwt::sign(
        &claims_for(&seeded.workspace_id, in_an_hour),
        &seeded.admin_token,
    );
    let other_workspace = jwt::sign(
        &claims_for("elsewhere", in_an_hour),
        &seeded.workspace_admin_token,
    );
    let mut tampered = token.clone();
    tampered.insert(token.find('.').unwrap() + 5, 'x');
    for bad in [expired, wrong_key, other_workspace, tampered] {
        assert_eq!(
            authenticate(&auth, &bad)
                .await
                .unwrap_err()
                .code
                .http_status(),
            403,
            "{bad}"
        );
    }

    // Refreshing the admin token invalidates every JWT signed with it.
    auth.refresh_token(RefreshTokenRequest {
        header: header(&seeded),
        name_or_id: "admin token".into(),
    })
    .await
    .unwrap();
    assert_eq!(
        authenticate(&auth, &token)
            .await
            .unwrap_err()
            .code
            .http_status(),
        403
    );

    for (scope, expiration) in [
        (
            JwtScope {
                r#type: "ADMIN".into(),
                ..Default::default()
            },
            in_an_hour,
        ),
        (
            JwtScope {
                r#type: "PIPES:READ".into(),
                resource: "top".into(),
                fixed_params_json: "[1]".into(),
                ..Default::default()
            },
            in_an_hour,
        ),
        (
            JwtScope {
                r#type: "PIPES:READ".into(),
                resource: "top".into(),
                ..Default::default()
            },
            1,
        ),
    ] {
        let error = auth
            .create_jwt(CreateJwtRequest {
                header: header(&seeded),
                name: "bad".into(),
                expiration_time: expiration,
                scopes: vec![scope],
                limit_rps: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(error.code.http_status(), 400);
    }
}
