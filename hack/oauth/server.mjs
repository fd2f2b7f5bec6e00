// The OAuth 2.0 authorization server the tests fetch client-credentials tokens from:
// panva's oidc-provider (an OpenID-certified implementation, from the npm registry), over
// HTTPS on loopback. Started by hack/oauth.sh, which passes everything in the environment.
//
// One client, authenticating with HTTP Basic (RFC 6749 §2.3.1) as Go's oauth2 tries first.
// Introspection (RFC 7662) is on, so a test can ask whether a token a scaler sent is real.
import { readFileSync } from "node:fs";
import https from "node:https";
import Provider from "oidc-provider";

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
const provider = new Provider(issuer, {
  clients: [client(env("OAUTH_CLIENT_ID"), "client_secret_basic")],
  scopes: ["metrics.read", "queue.read"],
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    devInteractions: { enabled: false },
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
