//! Access tokens that must be refused: expired, forged, `alg: none`, unknown key, tampered —
//! and rotation, where an old key keeps verifying.

use serde_json::{Value, json};

use crate::helpers::*;

async fn claims_of_a_real_session(app: &TestApp) -> (SignedIn, Value) {
    let user = app.signed_in(&unique_email("tok")).await;
    let (_, claims) = jwt_parts(&user.access_token);
    (user, claims)
}

fn header_for(kid: &str) -> Value {
    json!({"alg": "HS256", "typ": "JWT", "kid": kid})
}

#[tokio::test]
async fn a_token_signed_with_the_right_key_for_a_live_session_is_accepted() {
    // Control for the refusals below: the crafting helper itself produces valid tokens.
    let app = TestApp::spawn().await;
    let (_, claims) = claims_of_a_real_session(&app).await;

    let token = sign_jwt(&header_for(TEST_JWT_KID), &claims, TEST_JWT_SECRET);

    assert_eq!(app.get_status_with_token("/api/v1/me", &token).await, 200);
}

#[tokio::test]
async fn an_expired_token_is_refused_with_401() {
    let app = TestApp::spawn().await;
    let (_, mut claims) = claims_of_a_real_session(&app).await;
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now - 3600);
    claims["exp"] = json!(now - 60);

    let token = sign_jwt(&header_for(TEST_JWT_KID), &claims, TEST_JWT_SECRET);

    let problem = app.get_problem_with_token("/api/v1/me", &token, 401).await;
    assert_detail_contains(&problem, "expired");
}

#[tokio::test]
async fn forged_tampered_and_unsigned_tokens_are_refused_with_401() {
    let app = TestApp::spawn().await;
    let (user, claims) = claims_of_a_real_session(&app).await;
    let mut as_admin = claims.clone();
    as_admin["role"] = json!("admin");
    let mut parts: Vec<&str> = user.access_token.split('.').collect();
    let tampered_payload = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(as_admin.to_string())
    };
    parts[1] = &tampered_payload;
    let tampered = parts.join(".");
    let unsigned = {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!(
            "{}.{}.",
            b64.encode(json!({"alg": "none", "typ": "JWT", "kid": TEST_JWT_KID}).to_string()),
            b64.encode(as_admin.to_string())
        )
    };
    let mut no_exp = claims.clone();
    no_exp.as_object_mut().expect("object").remove("exp");
    let mut future_iat = claims.clone();
    future_iat["iat"] = json!(chrono::Utc::now().timestamp() + 3600);
    future_iat["exp"] = json!(chrono::Utc::now().timestamp() + 7200);
    let cases = [
        (
            "forged signature",
            sign_jwt(
                &header_for(TEST_JWT_KID),
                &as_admin,
                "an attacker's guess at the secret!!",
            ),
        ),
        ("tampered payload", tampered),
        ("alg none", unsigned),
        (
            "unknown kid",
            sign_jwt(&header_for("other"), &claims, TEST_JWT_SECRET),
        ),
        (
            "no kid",
            sign_jwt(&json!({"alg": "HS256", "typ": "JWT"}), &claims, TEST_JWT_SECRET),
        ),
        (
            "HS512",
            sign_jwt(
                &json!({"alg": "HS512", "kid": TEST_JWT_KID}),
                &claims,
                TEST_JWT_SECRET,
            ),
        ),
        (
            "no exp",
            sign_jwt(&header_for(TEST_JWT_KID), &no_exp, TEST_JWT_SECRET),
        ),
        (
            "issued in the future",
            sign_jwt(&header_for(TEST_JWT_KID), &future_iat, TEST_JWT_SECRET),
        ),
        ("garbage", "not.a.jwt".to_owned()),
        ("one segment", "eyJhbGciOiJIUzI1NiJ9".to_owned()),
    ];
    for (case, token) in cases {
        let response = app.get_with_token("/api/v1/me", &token).await;
        assert_eq!(response.status(), 401, "{case} was not refused");
        assert_eq!(
            header(&response, "www-authenticate").as_deref(),
            Some("Bearer"),
            "{case}"
        );
    }
    for value in ["Bearer", "Basic dXNlcjpwYXNz", "Bearer    ", "token abc"] {
        let response = app.get_with_header("/api/v1/me", "authorization", value).await;
        assert_problem(response, 401).await;
    }
}

#[tokio::test]
async fn a_token_for_a_revoked_or_made_up_session_is_refused() {
    let app = TestApp::spawn().await;
    let (_, mut claims) = claims_of_a_real_session(&app).await;
    claims["sid"] = json!(uuid::Uuid::new_v4());

    let token = sign_jwt(&header_for(TEST_JWT_KID), &claims, TEST_JWT_SECRET);

    app.get_problem_with_token("/api/v1/me", &token, 401).await;
}

#[tokio::test]
async fn tokens_signed_by_a_previous_key_verify_after_rotation() {
    let old_key = "old:fedcba9876543210fedcba9876543210-old";
    let app = TestApp::with_settings(&[(
        "OUTGROW_JWT_KEYS",
        &format!("new:0123456789abcdef0123456789abcdef-new,{old_key}"),
    )])
    .await;
    let (user, claims) = claims_of_a_real_session(&app).await;
    assert_eq!(
        jwt_parts(&user.access_token).0["kid"],
        "new",
        "the first key signs"
    );

    let by_old_key = sign_jwt(
        &header_for("old"),
        &claims,
        "fedcba9876543210fedcba9876543210-old",
    );

    assert_eq!(app.get_status_with_token("/api/v1/me", &by_old_key).await, 200);
}
