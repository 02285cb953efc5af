import { createPrivateKey, createSign, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kafka } from 'kafkajs';
import { type TestMessage, produce } from './cluster.js';

/**
 * The local broker's secured listeners and throwaway credentials, as scripts/kafka/up.sh
 * (secure.sh) made them: ORDO_KAFKA_SECURITY_DIR, else <ORDO_LOCAL_DIR or repo/.local>/kafka/security.
 */
export interface SecuredStack {
  dir: string;
  saslSsl: string;
  ssl: string;
  jwksUrl: string;
  oauth: { issuer: string; audience: string; kid: string; superUser: string };
  file(name: string): string;
  password(user: 'ordo' | 'ordo-acl'): string;
  /** The passphrase of client-encrypted.key. */
  passphrase: string;
}

export function securedStack(): SecuredStack {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const dir = process.env.ORDO_KAFKA_SECURITY_DIR ?? join(process.env.ORDO_LOCAL_DIR ?? join(root, '.local'), 'kafka', 'security');
  const stackFile = join(dir, 'stack.json');
  if (!existsSync(stackFile)) {
    throw new Error(`${stackFile} is missing: the local broker was started without its secured listeners; restart it with scripts/kafka/down.sh && scripts/kafka/up.sh`);
  }
  const stack = JSON.parse(readFileSync(stackFile, 'utf8')) as { saslSsl: string; ssl: string; jwksUrl: string; oauth: SecuredStack['oauth'] };
  return {
    dir,
    ...stack,
    file: (name) => join(dir, name),
    password: (user) => readFileSync(join(dir, `scram-${user}.password`), 'utf8').trim(),
    passphrase: readFileSync(join(dir, 'client-key.passphrase'), 'utf8').trim(),
  };
}

/** The environment for a role over SASL_SSL with SCRAM-SHA-512 (password in a file, as on Kubernetes). */
export function scramEnv(stack: SecuredStack, user: 'ordo' | 'ordo-acl' = 'ordo'): Record<string, string> {
  return {
    KAFKA_BROKERS: stack.saslSsl,
    KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
    KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
    KAFKA_SASL_USERNAME: user,
    KAFKA_SASL_PASSWORD_FILE: stack.file(`scram-${user}.password`),
    KAFKA_SSL_CA_FILE: stack.file('ca.pem'),
  };
}

/** The environment for a role over SSL with a client certificate whose key is encrypted. */
export function mtlsEnv(stack: SecuredStack): Record<string, string> {
  return {
    KAFKA_BROKERS: stack.ssl,
    KAFKA_SECURITY_PROTOCOL: 'SSL',
    KAFKA_SSL_CA_FILE: stack.file('ca.pem'),
    KAFKA_SSL_CERT_FILE: stack.file('client.pem'),
    KAFKA_SSL_KEY_FILE: stack.file('client-encrypted.key'),
    KAFKA_SSL_KEY_PASSPHRASE_FILE: stack.file('client-key.passphrase'),
  };
}

export function oauthEnv(stack: SecuredStack, endpoint: TokenEndpoint): Record<string, string> {
  return {
    KAFKA_BROKERS: stack.saslSsl,
    KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
    KAFKA_SASL_MECHANISM: 'OAUTHBEARER',
    KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: endpoint.url,
    KAFKA_SASL_OAUTHBEARER_CLIENT_ID: endpoint.clientId,
    KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: endpoint.clientSecret,
    KAFKA_SASL_OAUTHBEARER_SCOPE: 'kafka',
    KAFKA_SSL_CA_FILE: stack.file('ca.pem'),
  };
}

export interface TokenEndpoint {
  url: string;
  clientId: string;
  clientSecret: string;
  /** Tokens issued so far. */
  issued: string[];
  /** Requests refused for wrong client credentials. */
  refused: number;
  close(): Promise<void>;
}

/**
 * An OIDC client-credentials token endpoint on 127.0.0.1: checks the client's Basic
 * credentials and issues RS256 JWTs (sub = the stack's OAUTHBEARER super user) signed with
 * the key whose JWKS the broker trusts.
 */
export async function startTokenEndpoint(stack: SecuredStack, options: { clientId?: string; clientSecret?: string; expiresInS?: number } = {}): Promise<TokenEndpoint> {
  const key = createPrivateKey(readFileSync(stack.file('oauth.key')));
  const clientId = options.clientId ?? 'ordo-oauth';
  const clientSecret = options.clientSecret ?? `s3cret-${Math.random().toString(36).slice(2)}`;
  const expected = Buffer.from(`Basic ${Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString('base64')}`);
  const b64 = (value: object | Buffer): string => (Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value))).toString('base64url');
  const endpoint = { clientId, clientSecret, issued: [] as string[], refused: 0 };
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const auth = Buffer.from(req.headers.authorization ?? '');
      const form = new URLSearchParams(body);
      if (req.method !== 'POST' || form.get('grant_type') !== 'client_credentials') {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'unsupported_grant_type' }));
        return;
      }
      if (auth.length !== expected.length || !timingSafeEqual(auth, expected)) {
        endpoint.refused += 1;
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_client' }));
        return;
      }
      const now = Math.floor(Date.now() / 1000);
      const expiresIn = options.expiresInS ?? 300;
      const header = b64({ alg: 'RS256', typ: 'JWT', kid: stack.oauth.kid });
      const claims = b64({ iss: stack.oauth.issuer, aud: stack.oauth.audience, sub: stack.oauth.superUser, iat: now, exp: now + expiresIn, scope: form.get('scope') ?? '' });
      const signature = createSign('RSA-SHA256').update(`${header}.${claims}`).sign(key);
      const token = `${header}.${claims}.${b64(signature)}`;
      endpoint.issued.push(token);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: expiresIn }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    ...endpoint,
    get issued() {
      return endpoint.issued;
    },
    get refused() {
      return endpoint.refused;
    },
    url: `http://127.0.0.1:${port}/oauth2/token`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Produces `messages` once the fresh topic's metadata has reached the broker's metadata cache:
 * a broker may answer UNKNOWN_TOPIC_OR_PARTITION for a topic it has just created, before
 * anything is written, so the send is simply repeated then.
 */
export async function produceToNewTopic(kafka: Kafka, topic: string, messages: TestMessage[]): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await produce(producer, topic, messages);
        return;
      } catch (error) {
        if ((error as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION' || attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  } finally {
    await producer.disconnect();
  }
}
