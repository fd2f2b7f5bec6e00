//! A TriggerAuthentication's `awsSecretManager` secrets, read once and kept: every trigger
//! and object built from one secret version shares one `GetSecretValue`, where KEDA reads
//! it again for every scaler it builds. A secret named by stage (AWSCURRENT unless
//! `versionStage` says otherwise) is read again every `--aws-secret-refresh-interval`, and
//! when its stage has moved to a new version the controller rebuilds the scalers built from
//! it ([`AwsClients::refresh_secrets`]); one pinned by `versionId` never changes, so it is
//! never read again. KEDA notices a rotation only once the old value fails.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use super::{AwsClients, Call, Identity, Operation, SdkSettings, Secret};
use crate::upstream::{UpstreamError, UpstreamKind};

const GET: Operation = Operation::new("secretsmanager", "GetSecretValue");

/// Which secret, and which of its versions, a TriggerAuthentication's `awsSecretManager`
/// names.
#[derive(Clone, Copy, Debug)]
pub struct SecretVersion<'a> {
    pub name: &'a str,
    pub version_id: Option<&'a str>,
    pub version_stage: Option<&'a str>,
}

/// A secret's value and the version it came from.
#[derive(Clone, Debug)]
pub struct SecretRead {
    pub value: Secret,
    pub version_id: Option<String>,
    /// Names this secret as a source of the scalers built from it: the controller records
    /// it with `version_id`, and [`SecretChange::key`] is the same string.
    pub key: String,
}

/// A secret whose stage now points at another version than the scalers were built with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretChange {
    pub key: String,
    pub version_id: Option<String>,
}

/// What a kept secret is read again with.
#[derive(Clone, Debug)]
pub(super) struct Wanted {
    identity: Identity,
    region: String,
    name: String,
    version_id: Option<String>,
    version_stage: Option<String>,
}

impl Wanted {
    fn new(identity: &Identity, region: &str, s: &SecretVersion<'_>) -> Wanted {
        Wanted {
            identity: identity.clone(),
            region: region.to_string(),
            name: s.name.to_string(),
            version_id: s.version_id.map(str::to_string),
            version_stage: s.version_stage.map(str::to_string),
        }
    }

    /// One string per identity, region, secret and version asked for (no secret in it:
    /// static keys are hashed by [`Identity::key`]).
    fn key(&self) -> String {
        let version = match (&self.version_id, &self.version_stage) {
            (Some(id), _) => format!("versionId={id}"),
            (None, Some(stage)) => format!("versionStage={stage}"),
            (None, None) => "versionStage=AWSCURRENT".into(),
        };
        format!(
            "{}/{}?{version}#{}",
            self.region,
            self.name,
            self.identity.key()
        )
    }

    /// A version ID names immutable content; a stage may move to another version.
    fn may_change(&self) -> bool {
        self.version_id.is_none()
    }

    fn version(&self) -> SecretVersion<'_> {
        SecretVersion {
            name: &self.name,
            version_id: self.version_id.as_deref(),
            version_stage: self.version_stage.as_deref(),
        }
    }
}

/// A secret asked for this recently is kept though no scaler records it yet: its build
/// may not have finished.
const BUILDING: Duration = Duration::from_secs(60);

/// The secrets read, by key, and how to read each again.
#[derive(Default)]
pub(super) struct Secrets {
    values: crate::coalesce::Coalescer<String, Result<SecretRead, UpstreamError>>,
    /// With when a build last asked for it.
    wanted: std::sync::Mutex<HashMap<String, (Wanted, Instant)>>,
}

impl Secrets {
    fn want(&self, w: Wanted) -> String {
        let key = w.key();
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        wanted.insert(key.clone(), (w, Instant::now()));
        key
    }

    fn forget(&self, key: &str) {
        self.values.forget(&key.to_string());
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        wanted.remove(key);
    }

    /// Forgets the secrets not in `in_use` (nor asked for within [`BUILDING`]); returns the
    /// rest that may change, to read again.
    fn keep(&self, in_use: &HashSet<String>) -> Vec<(String, Wanted)> {
        let mut wanted = self.wanted.lock().unwrap_or_else(|p| p.into_inner());
        wanted.retain(|key, (_, asked)| {
            let keep = in_use.contains(key) || asked.elapsed() < BUILDING;
            if !keep {
                self.values.forget(key);
            }
            keep
        });
        wanted
            .iter()
            .filter(|(_, (w, _))| w.may_change())
            .map(|(k, (w, _))| (k.clone(), w.clone()))
            .collect()
    }
}

impl AwsClients {
    /// A secret's value from AWS Secrets Manager (`GetSecretValue`; the version by ID or
    /// stage when given, else AWSCURRENT), as a TriggerAuthentication's `awsSecretManager`
    /// reads it: from what was read before when it was, else read once for every caller
    /// asking at the same time. A failure is not kept. The endpoint is the SDK's
    /// (`AWS_ENDPOINT_URL_SECRETS_MANAGER` overrides it).
    pub async fn secret(
        &self,
        identity: &Identity,
        region: &str,
        secret: &SecretVersion<'_>,
    ) -> Result<SecretRead, UpstreamError> {
        let wanted = Wanted::new(identity, region, secret);
        let key = self.secrets.want(wanted.clone());
        let (read, _) = self
            .secrets
            .values
            .get(&key, Duration::MAX, || self.read_secret(&wanted, &key))
            .await;
        if read.is_err() {
            // Not kept, nor read again: the next build asks again.
            self.secrets.forget(&key);
        }
        read
    }

    /// Reads again every secret in `in_use` (the keys of [`SecretRead`]s that scalers are
    /// built from) that may change and was read longer than `max_age` ago, and forgets
    /// those no scaler uses any more. Returns the ones now at another version. A failed
    /// read keeps the value read before (a scaler still built from it says when it fails).
    pub async fn refresh_secrets(
        &self,
        in_use: &HashSet<String>,
        max_age: Duration,
    ) -> Vec<SecretChange> {
        let mut changed = Vec::new();
        for (key, wanted) in self.secrets.keep(in_use) {
            let before = self.secrets.values.peek(&key).and_then(Result::ok);
            let (now, fetched) = self
                .secrets
                .values
                .get(&key, max_age, || async {
                    match self.read_secret(&wanted, &key).await {
                        Ok(read) => Ok(read),
                        Err(e) => {
                            tracing::warn!(secret = %wanted.name, region = %wanted.region, error = %e.message, "reading a secret again failed; its scalers keep the value read before");
                            before.clone().ok_or(e)
                        }
                    }
                })
                .await;
            let now = match (now, fetched) {
                (Ok(now), true) => now,
                (Ok(_), false) => continue,
                (Err(_), _) => {
                    self.secrets.forget(&key);
                    continue;
                }
            };
            if before.is_some_and(|b| b.version_id != now.version_id) {
                changed.push(SecretChange {
                    key,
                    version_id: now.version_id,
                });
            }
        }
        changed
    }

    async fn read_secret(&self, wanted: &Wanted, key: &str) -> Result<SecretRead, UpstreamError> {
        let sdk = SdkSettings::default();
        let secret = wanted.version();
        let client = self
            .client(
                &wanted.identity,
                &wanted.region,
                None,
                &sdk,
                aws_sdk_secretsmanager::Client::new,
            )
            .await;
        let request = client
            .get_secret_value()
            .secret_id(secret.name)
            .set_version_id(secret.version_id.map(str::to_string))
            .set_version_stage(secret.version_stage.map(str::to_string));
        let resource = format!("secret {}", secret.name);
        let call = Call {
            identity: &wanted.identity,
            region: &wanted.region,
            sdk: &sdk,
            operation: GET,
            resource: &resource,
        };
        let got = self.call(&call, 1.0, || request.send()).await?;
        let value = got.secret_string.ok_or_else(|| {
            UpstreamError::new(
                UpstreamKind::Unsupported,
                format!(
                    "secret {} holds binary data; Swell reads SecretString values, as KEDA",
                    secret.name
                ),
            )
        })?;
        Ok(SecretRead {
            value: Secret::new(value),
            version_id: got.version_id,
            key: key.to_string(),
        })
    }
}

/// KEDA's `secretKey`: the value under `key` in a JSON secret, which must be a string.
pub fn secret_key_value(secret: &str, json: &str, key: &str) -> Result<String, UpstreamError> {
    let bad = |why: String| UpstreamError::bad_response(format!("secret {secret}: {why}"));
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|_| {
            bad(format!(
                "is not a JSON object, so secretKey {key:?} cannot be read"
            ))
        })?;
    match map.get(key) {
        Some(serde_json::Value::String(v)) => Ok(v.clone()),
        Some(_) => Err(bad(format!("the value of {key:?} is not a string"))),
        None => Err(bad(format!("has no key {key:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted(identity: Identity, id: Option<&str>, stage: Option<&str>) -> Wanted {
        let s = SecretVersion {
            name: "app/db",
            version_id: id,
            version_stage: stage,
        };
        Wanted::new(&identity, "eu-west-1", &s)
    }

    #[test]
    fn one_key_per_identity_region_secret_and_version() {
        let keys = |id: &Identity| Identity::key(id);
        let alice = Identity::Static {
            access_key_id: "AKIA1".into(),
            secret_access_key: Secret::new("hunter2"),
            session_token: None,
        };
        let cases = [
            (
                wanted(Identity::Operator, None, None),
                "eu-west-1/app/db?versionStage=AWSCURRENT#operator".to_string(),
                true,
            ),
            (
                wanted(Identity::Operator, None, Some("AWSPREVIOUS")),
                "eu-west-1/app/db?versionStage=AWSPREVIOUS#operator".to_string(),
                true,
            ),
            (
                wanted(Identity::Operator, Some("v1"), Some("AWSCURRENT")),
                "eu-west-1/app/db?versionId=v1#operator".to_string(),
                false,
            ),
            (
                wanted(alice.clone(), None, None),
                format!("eu-west-1/app/db?versionStage=AWSCURRENT#{}", keys(&alice)),
                true,
            ),
        ];
        for (w, key, may_change) in cases {
            assert_eq!(w.key(), key);
            assert_eq!(w.may_change(), may_change, "{key}");
            assert!(!w.key().contains("hunter2"));
        }
    }

    #[test]
    fn secrets_nobody_uses_are_forgotten_and_pinned_ones_never_reread() {
        let s = Secrets::default();
        let current = s.want(wanted(Identity::Operator, None, None));
        let pinned = s.want(wanted(Identity::Operator, Some("v1"), None));
        let building = s.want(wanted(Identity::Operator, None, Some("AWSPREVIOUS")));
        let gone = s.want(wanted(Identity::Operator, None, Some("AWSPENDING")));
        if let Some((_, asked)) = s.wanted.lock().unwrap().get_mut(&gone) {
            *asked = asked.checked_sub(BUILDING).unwrap();
        }
        let in_use = HashSet::from([current.clone(), pinned.clone()]);
        let mut reread: Vec<String> = s.keep(&in_use).into_iter().map(|(k, _)| k).collect();
        reread.sort();
        assert_eq!(reread, vec![current, building]);
        let left = s.wanted.lock().unwrap();
        assert!(left.contains_key(&pinned) && !left.contains_key(&gone));
    }

    #[test]
    fn a_secret_key_is_read_from_a_json_object() {
        let json = r#"{"token": "t", "n": 1}"#;
        assert_eq!(secret_key_value("s", json, "token"), Ok("t".to_string()));
        let cases = [
            (json, "n", "the value of \"n\" is not a string"),
            (json, "missing", "has no key \"missing\""),
            ("plain", "token", "is not a JSON object"),
        ];
        for (json, key, why) in cases {
            let e = secret_key_value("s", json, key).unwrap_err();
            assert!(e.message.contains(why), "{}", e.message);
        }
    }
}
