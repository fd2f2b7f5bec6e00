use super::*;
use crate::{RawParams, map};

type Pairs<'a> = &'a [(&'a str, &'a str)];

fn read(meta: Pairs, auth: Pairs, unsupported: &[(Mode, &str)]) -> (HttpAuth, Vec<String>) {
    let raw = RawParams {
        metadata: map(meta),
        auth: map(auth),
        ..Default::default()
    };
    let mut p = Params::new(&raw);
    let a = parse(&mut p, "test", unsupported);
    let (errors, _) = p.into_parts();
    (a, errors.iter().map(ToString::to_string).collect())
}

/// KEDA's `testPrometheusAuthMetadata` (prometheus_scaler_test.go) and the `Validate` rules of
/// `authentication.Config`: which combinations parse and which are refused.
#[test]
fn modes_are_validated_as_keda() {
    let tls = &[("ca", "caaa"), ("cert", "ceert"), ("key", "keey")][..];
    let basic = &[("username", "user"), ("password", "pass")][..];
    let cases: &[(&str, Pairs, Pairs, bool)] = &[
        ("tls with ca", &[("authModes", "tls")], tls, true),
        (
            "tls without ca",
            &[("authModes", "tls")],
            &[("cert", "c"), ("key", "k")],
            true,
        ),
        (
            "tls without key",
            &[("authModes", "tls")],
            &[("ca", "a"), ("cert", "c")],
            false,
        ),
        (
            "tls without cert",
            &[("authModes", "tls")],
            &[("ca", "a"), ("key", "k")],
            false,
        ),
        (
            "bearer",
            &[("authModes", "bearer")],
            &[("bearerToken", "t")],
            true,
        ),
        (
            "bearer via token",
            &[("authModes", "bearer")],
            &[("token", "t")],
            true,
        ),
        (
            "bearer without token",
            &[("authModes", "bearer")],
            &[],
            false,
        ),
        ("basic", &[("authModes", "basic")], basic, true),
        (
            "basic, empty password",
            &[("authModes", "basic")],
            &[("username", "u")],
            true,
        ),
        (
            "basic without username",
            &[("authModes", "basic")],
            &[],
            false,
        ),
        (
            "tls and basic",
            &[("authModes", "tls, basic")],
            &[
                ("ca", "a"),
                ("cert", "c"),
                ("key", "k"),
                ("username", "u"),
                ("password", "p"),
            ],
            true,
        ),
        (
            "tls and basic without cert",
            &[("authModes", "tls,basic")],
            basic,
            false,
        ),
        (
            "custom",
            &[("authModes", "custom")],
            &[("customAuthHeader", "h"), ("customAuthValue", "v")],
            true,
        ),
        (
            "custom without value",
            &[("authModes", "custom")],
            &[("customAuthHeader", "h")],
            false,
        ),
        (
            "custom without header",
            &[("authModes", "custom")],
            &[("customAuthValue", "v")],
            false,
        ),
        (
            "bearer and basic",
            &[("authModes", "bearer,basic")],
            &[("bearerToken", "t"), ("username", "u")],
            false,
        ),
        (
            "oauth",
            &[("authModes", "oauth")],
            &[("oauthTokenURI", "https://idp/token"), ("clientID", "c")],
            true,
        ),
        (
            "oauth without clientID",
            &[("authModes", "oauth")],
            &[("oauthTokenURI", "https://idp/token")],
            false,
        ),
        (
            "oauth without token URI",
            &[("authModes", "oauth")],
            &[("clientID", "c")],
            false,
        ),
        (
            "oauth and bearer",
            &[("authModes", "oauth,bearer")],
            &[
                ("oauthTokenURI", "https://i/t"),
                ("clientID", "c"),
                ("bearerToken", "t"),
            ],
            false,
        ),
        (
            "apiKey",
            &[("authModes", "apiKey")],
            &[("apiKey", "k")],
            true,
        ),
        ("apiKey without key", &[("authModes", "apiKey")], &[], false),
        (
            "authMode, the singular name",
            &[("authMode", "bearer")],
            &[("token", "t")],
            true,
        ),
        (
            "authModes from the TriggerAuthentication",
            &[],
            &[("authModes", "bearer"), ("token", "t")],
            true,
        ),
        ("unknown mode", &[("authModes", "digest")], &[], false),
        (
            "empty element",
            &[("authModes", "bearer,")],
            &[("token", "t")],
            false,
        ),
        (
            "method outside the enum",
            &[("method", "cookie")],
            &[],
            false,
        ),
        ("no auth", &[], &[], true),
    ];
    for (name, meta, auth, ok) in cases {
        let (_, errors) = read(meta, auth, &[]);
        assert_eq!(errors.is_empty(), *ok, "{name}: {errors:?}");
    }
}

#[test]
fn parameters_become_what_requests_carry() {
    let (a, _) = read(
        &[
            ("authModes", "oauth,custom,apiKey"),
            ("method", "query"),
            ("keyParamName", "k"),
        ],
        &[
            ("oauthTokenURI", "https://idp/token"),
            ("clientID", "swell"),
            ("clientSecret", "s3cr3t"),
            ("scopes", " metrics.read, ,queue.read"),
            ("endpointParams", "audience=api%3A%2F%2Fx&resource=r"),
            ("customAuthHeader", "X-Org"),
            ("customAuthValue", "7"),
            ("apiKey", "key"),
        ],
        &[],
    );
    let Authorization::OAuth(c) = &a.authorization else {
        panic!("{:?}", a.authorization)
    };
    assert_eq!(c.token_uri, "https://idp/token");
    assert_eq!(c.client_id, "swell");
    assert_eq!(c.client_secret.expose(), "s3cr3t");
    assert_eq!(c.scopes, ["metrics.read", "queue.read"]);
    assert_eq!(
        c.params,
        [
            ("audience".to_string(), "api://x".to_string()),
            ("resource".into(), "r".into())
        ]
    );
    assert_eq!(a.custom, Some(("X-Org".into(), Secret::new("7"))));
    assert_eq!(
        a.api_key,
        Some(ApiKey::Query {
            name: "k".into(),
            key: Secret::new("key")
        })
    );
    assert!(!format!("{a:?}").contains("s3cr3t"), "secrets are redacted");
    let (a, _) = read(&[("authModes", "apiKey")], &[("apiKey", "key")], &[]);
    assert_eq!(
        a.api_key,
        Some(ApiKey::Header {
            name: "X-API-KEY".into(),
            key: Secret::new("key")
        })
    );
}

#[test]
fn a_mode_the_scaler_cannot_apply_is_refused_by_name() {
    let (_, errors) = read(
        &[("authModes", "apiKey")],
        &[("apiKey", "k")],
        &[(Mode::ApiKey, "KEDA ignores it here; use custom")],
    );
    assert_eq!(
        errors,
        [
            "triggers[0].metadata.authModes: apiKey is not supported by the test scaler: KEDA ignores it here; use custom"
        ]
    );
}
