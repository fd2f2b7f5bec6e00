// The OAuth 2.0 authorization server the tests fetch client-credentials tokens from:
// panva's oidc-provider (an OpenID-certified implementation, from the npm registry), over
// HTTPS on loopback. Started by hack/oauth.sh, which passes everything in the environment.
//
// One client, authenticating with HTTP Basic (RFC 6749 §2.3.1) as Go's oauth2 tries first.
// Introspection (RFC 7662) is on, so a test can ask whether a token a scaler sent is real.
//
// Two more clients get JWT access tokens (RFC 9068, signed with a key made at start and
// published at /jwks) through resource indicators, for Kafka's OAUTHBEARER validator:
// OAUTH_KAFKA_CLIENT_ID for the audience the test broker expects (OAUTH_KAFKA_AUDIENCE),
// OAUTH_KAFKA_OTHER_CLIENT_ID for another audience. The first client still gets opaque
// tokens: it names no resource, and has no default one.
import { generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import https from "node:https";
import Provider, { errors } from "oidc-provider";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const port = Number(env("OAUTH_PORT"));
const issuer = `https://127.0.0.1:${port}`;
const client = (id, method) => ({
  client_id: id,
  client_secret: env("OAUTH_CLIENT_SECRET"),
  grant_types: ["client_credentials"],
  redirect_uris: [],
  response_types: [],
  token_endpoint_auth_method: method,
  scope: "metrics.read queue.read",
});
const audience = env("OAUTH_KAFKA_AUDIENCE");
// Client → the resource (audience) its tokens are for.
const jwtClients = {
  [env("OAUTH_KAFKA_CLIENT_ID")]: audience,
  [env("OAUTH_KAFKA_OTHER_CLIENT_ID")]: "https://elsewhere.swell.test",
};
const resources = new Set(Object.values(jwtClients));
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: "jwk" }), kid: "swell-test", use: "sig", alg: "RS256" };
const provider = new Provider(issuer, {
  clients: [
    client(env("OAUTH_CLIENT_ID"), "client_secret_basic"),
    ...Object.keys(jwtClients).map((id) => ({ ...client(id, "client_secret_basic"), scope: "kafka" })),
  ],
  scopes: ["metrics.read", "queue.read", "kafka"],
  jwks: { keys: [signingKey] },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: (_ctx, client) => jwtClients[client?.clientId],
      getResourceServerInfo: (_ctx, resource) => {
        if (!resources.has(resource)) throw new errors.InvalidTarget();
        return { scope: "kafka", audience: resource, accessTokenFormat: "jwt", jwt: { sign: { alg: "RS256" } } };
      },
    },
  },
  ttl: { ClientCredentials: Number(env("OAUTH_TOKEN_TTL")) },
});
const tls = {
  key: readFileSync(env("OAUTH_TLS_KEY")),
  cert: readFileSync(env("OAUTH_TLS_CERT")),
};
https.createServer(tls, provider.callback()).listen(port, "127.0.0.1", () => {
  console.log(`listening on ${issuer}`);
});
