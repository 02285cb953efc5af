import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { Secret } from '../../src/config/secret.js';
import { ConfigError } from '../../src/errors.js';
import { kafkaSecurityOptions } from '../../src/kafka/client.js';
import { registryClientArgs } from '../../src/schema/registry-client.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import { catchError } from '../support/unit/fixtures.js';

/**
 * Throwaway PEM files: a certificate and its key (plain, and encrypted here), another key.
 * Node cannot make an X.509 certificate, and a unit test runs no external tool, so the
 * certificate and its key are checked in (test/config/fixtures, valid until 2126, made with
 * `openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=ordo-test-client`);
 * they protect nothing.
 */
let dir: string;
const file = (name: string): string => join(dir, name);
const fixture = (name: string): string => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ordo-security-'));
  copyFileSync(fixture('throwaway-client.pem'), file('client.pem'));
  copyFileSync(fixture('throwaway-client.key'), file('client.key'));
  const key = createPrivateKey(readFileSync(file('client.key')));
  writeFileSync(file('client-encrypted.key'), key.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'open-sesame' }));
  writeFileSync(file('other.key'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  writeFileSync(file('passphrase'), 'open-sesame\n');
  writeFileSync(file('wrong-passphrase'), 'not-it\n');
  writeFileSync(file('password'), 'pa55word\n');
  writeFileSync(file('empty'), '');
  writeFileSync(file('not-pem'), 'hello');
});

function configError(env: Record<string, string>, variable: string): ConfigError {
  const error = catchError(() => loadConfig(env));
  expect(error).toBeInstanceOf(ConfigError);
  expect((error as ConfigError).variable).toBe(variable);
  return error as ConfigError;
}

const SCRAM = { KAFKA_SECURITY_PROTOCOL: 'SASL_SSL', KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512', KAFKA_SASL_USERNAME: 'ordo' };
const OAUTH = {
  KAFKA_SECURITY_PROTOCOL: 'SASL_SSL',
  KAFKA_SASL_MECHANISM: 'OAUTHBEARER',
  KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'https://idp.example.com/oauth2/token',
  KAFKA_SASL_OAUTHBEARER_CLIENT_ID: 'ordo',
  KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: 'cl13nt-secret',
};

describe('Kafka security settings', () => {
  it('defaults to PLAINTEXT with no TLS and no SASL', () => {
    expect(loadConfig({}).security).toEqual({ kafka: { protocol: 'PLAINTEXT' }, registry: {} });
    expect(kafkaSecurityOptions(loadConfig({}).security.kafka)).toEqual({});
  });

  it('reads SCRAM over TLS with the password from a file (one trailing newline dropped) and maps it to kafkajs', () => {
    const { kafka } = loadConfig({ ...SCRAM, KAFKA_SASL_PASSWORD_FILE: file('password'), KAFKA_SSL_CA_FILE: file('client.pem') }).security;
    expect(kafka.protocol).toBe('SASL_SSL');
    expect(kafka.sasl).toMatchObject({ mechanism: 'SCRAM-SHA-512', username: 'ordo' });
    const options = kafkaSecurityOptions(kafka);
    expect(options.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'ordo', password: 'pa55word' });
    expect(options.ssl).toMatchObject({ rejectUnauthorized: true, ca: [expect.any(Buffer)] });
  });

  it('maps PLAIN and SCRAM-SHA-256 and a SASL_PLAINTEXT protocol without TLS', () => {
    for (const [mechanism, kafkajs] of [['PLAIN', 'plain'], ['SCRAM-SHA-256', 'scram-sha-256']] as const) {
      const { kafka } = loadConfig({ KAFKA_SECURITY_PROTOCOL: 'SASL_PLAINTEXT', KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p' }).security;
      expect(kafka.tls).toBeUndefined();
      expect(kafkaSecurityOptions(kafka)).toEqual({ sasl: { mechanism: kafkajs, username: 'u', password: 'p' } });
    }
  });

  it('reads mTLS with an encrypted key and its passphrase file', () => {
    const { kafka } = loadConfig({
      KAFKA_SECURITY_PROTOCOL: 'SSL',
      KAFKA_SSL_CERT_FILE: file('client.pem'),
      KAFKA_SSL_KEY_FILE: file('client-encrypted.key'),
      KAFKA_SSL_KEY_PASSPHRASE_FILE: file('passphrase'),
    }).security;
    const ssl = kafkaSecurityOptions(kafka).ssl!;
    expect(ssl).toMatchObject({ rejectUnauthorized: true, cert: expect.any(Buffer), key: expect.any(Buffer), passphrase: 'open-sesame' });
    expect(ssl.ca).toBeUndefined(); // the system CAs
  });

  it('reads the OAUTHBEARER client credentials and gives kafkajs a token provider', () => {
    const { kafka } = loadConfig({ ...OAUTH, KAFKA_SASL_OAUTHBEARER_SCOPE: 'kafka' }).security;
    expect(kafka.sasl).toMatchObject({ mechanism: 'OAUTHBEARER', oauth: { clientId: 'ordo', scope: 'kafka', tokenEndpointUrl: OAUTH.KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL } });
    expect(kafkaSecurityOptions(kafka).sasl).toMatchObject({ mechanism: 'oauthbearer', oauthBearerProvider: expect.any(Function) });
  });

  it.each([
    [{ KAFKA_SECURITY_PROTOCOL: 'TLS' }, 'KAFKA_SECURITY_PROTOCOL'],
    [{ KAFKA_SECURITY_PROTOCOL: 'SASL_SSL' }, 'KAFKA_SASL_MECHANISM'],
    [{ KAFKA_SECURITY_PROTOCOL: 'SASL_SSL', KAFKA_SASL_MECHANISM: 'GSSAPI' }, 'KAFKA_SASL_MECHANISM'],
    [{ KAFKA_SASL_MECHANISM: 'PLAIN' }, 'KAFKA_SASL_MECHANISM'],
    [{ KAFKA_SASL_USERNAME: 'ordo' }, 'KAFKA_SASL_USERNAME'],
    [{ KAFKA_SSL_CA_FILE: '/etc/ca.pem' }, 'KAFKA_SSL_CA_FILE'],
    [{ KAFKA_SECURITY_PROTOCOL: 'SASL_PLAINTEXT', KAFKA_SASL_MECHANISM: 'PLAIN', KAFKA_SASL_USERNAME: 'u', KAFKA_SASL_PASSWORD: 'p', KAFKA_SSL_KEY_FILE: 'k' }, 'KAFKA_SSL_KEY_FILE'],
    [{ ...SCRAM }, 'KAFKA_SASL_PASSWORD'],
    [{ ...SCRAM, KAFKA_SASL_USERNAME: '', KAFKA_SASL_PASSWORD: 'p' }, 'KAFKA_SASL_USERNAME'],
    [{ ...SCRAM, KAFKA_SASL_PASSWORD: 'p', KAFKA_SASL_PASSWORD_FILE: '/run/secrets/p' }, 'KAFKA_SASL_PASSWORD'],
    [{ ...SCRAM, KAFKA_SASL_PASSWORD_FILE: '/nonexistent/password' }, 'KAFKA_SASL_PASSWORD_FILE'],
    [{ ...SCRAM, KAFKA_SASL_PASSWORD: 'p', KAFKA_SASL_OAUTHBEARER_CLIENT_ID: 'x' }, 'KAFKA_SASL_OAUTHBEARER_CLIENT_ID'],
    [{ ...OAUTH, KAFKA_SASL_PASSWORD: 'p' }, 'KAFKA_SASL_PASSWORD'],
    [{ ...OAUTH, KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: '' }, 'KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL'],
    [{ ...OAUTH, KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'http://idp.example.com/token' }, 'KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL'],
    [{ ...OAUTH, KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'https://a:b@idp.example.com/token' }, 'KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL'],
    [{ ...OAUTH, KAFKA_SASL_OAUTHBEARER_CLIENT_ID: '' }, 'KAFKA_SASL_OAUTHBEARER_CLIENT_ID'],
    [{ ...OAUTH, KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: '' }, 'KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET'],
  ])('refuses %j naming %s', (env, variable) => {
    configError(env, variable);
  });

  it('accepts http for the token endpoint only on a loopback address', () => {
    expect(loadConfig({ ...OAUTH, KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: 'http://127.0.0.1:8443/token' }).security.kafka.sasl?.mechanism).toBe('OAUTHBEARER');
  });

  it('checks certificate and key files at start: exists, PEM, encrypted key has the right passphrase, key matches certificate', () => {
    const ssl = { KAFKA_SECURITY_PROTOCOL: 'SSL' };
    configError({ ...ssl, KAFKA_SSL_CA_FILE: file('missing.pem') }, 'KAFKA_SSL_CA_FILE');
    configError({ ...ssl, KAFKA_SSL_CA_FILE: file('not-pem') }, 'KAFKA_SSL_CA_FILE');
    configError({ ...ssl, KAFKA_SSL_CERT_FILE: file('client.pem') }, 'KAFKA_SSL_KEY_FILE');
    configError({ ...ssl, KAFKA_SSL_KEY_FILE: file('client.key') }, 'KAFKA_SSL_CERT_FILE');
    configError({ ...ssl, KAFKA_SSL_KEY_PASSPHRASE: 'x' }, 'KAFKA_SSL_KEY_PASSPHRASE');
    const mtls = { ...ssl, KAFKA_SSL_CERT_FILE: file('client.pem') };
    configError({ ...mtls, KAFKA_SSL_KEY_FILE: file('client-encrypted.key') }, 'KAFKA_SSL_KEY_PASSPHRASE');
    configError({ ...mtls, KAFKA_SSL_KEY_FILE: file('client-encrypted.key'), KAFKA_SSL_KEY_PASSPHRASE_FILE: file('wrong-passphrase') }, 'KAFKA_SSL_KEY_PASSPHRASE_FILE');
    configError({ ...mtls, KAFKA_SSL_KEY_FILE: file('other.key') }, 'KAFKA_SSL_KEY_FILE');
    configError({ ...mtls, KAFKA_SSL_KEY_FILE: file('not-pem') }, 'KAFKA_SSL_KEY_FILE');
    expect(loadConfig({ ...mtls, KAFKA_SSL_KEY_FILE: file('client.key') }).security.kafka.tls?.key).toBeInstanceOf(Buffer);
  });

  it('never puts a secret into an error message', () => {
    const secret = 'open-sesame';
    const attempts: Record<string, string>[] = [
      { KAFKA_SECURITY_PROTOCOL: 'SSL', KAFKA_SSL_CERT_FILE: file('client.pem'), KAFKA_SSL_KEY_FILE: file('client-encrypted.key'), KAFKA_SSL_KEY_PASSPHRASE: 'open-sesame-wrong' },
      { ...SCRAM, KAFKA_SASL_PASSWORD: secret, KAFKA_SASL_PASSWORD_FILE: file('password') },
      { SCHEMA_REGISTRY_URL: `https://ordo:${secret}@registry.example.com` },
      { SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: secret },
      { SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: `u:${secret}`, SCHEMA_REGISTRY_BEARER_TOKEN: secret },
      { ...OAUTH, KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET: secret, KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL: `http://x:${secret}@idp/` },
    ];
    for (const env of attempts) {
      const error = catchError(() => loadConfig(env));
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).not.toContain(secret);
    }
  });
});

describe('schema registry credentials', () => {
  it('reads basic auth user info (from a file too) and passes it to the client', () => {
    writeFileSync(file('userinfo'), 'ordo:reg1stry-pass\n');
    const { registry } = loadConfig({ SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO_FILE: file('userinfo') }).security;
    expect(registry.basicAuth?.username).toBe('ordo');
    expect(registryClientArgs({ url: 'http://r', security: registry })).toMatchObject({ host: 'http://r', auth: { username: 'ordo', password: 'reg1stry-pass' } });
  });

  it('reads a bearer token and an https CA', () => {
    const { registry } = loadConfig({ SCHEMA_REGISTRY_URL: 'https://registry.example.com', SCHEMA_REGISTRY_BEARER_TOKEN: 't0ken', SCHEMA_REGISTRY_CA_FILE: file('client.pem') }).security;
    expect(registry.bearerToken?.reveal()).toBe('t0ken');
    const args = registryClientArgs({ url: 'https://registry.example.com', security: registry });
    expect(args.middlewares).toHaveLength(2); // the request timeout, the bearer token
    expect(args.agent).toBeDefined();
  });

  it('bounds every request: a registry that accepts the connection and never answers is an error, not a hang', async () => {
    const server = createServer(() => undefined); // reads the request, never answers
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const client = new SchemaRegistry({ ...registryClientArgs(`http://127.0.0.1:${port}`, 200), retry: { retries: 0 } });
      const started = Date.now();
      await expect(client.getSchema(1)).rejects.toThrow(/Timeout \(200ms\)/);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it.each([
    [{ SCHEMA_REGISTRY_URL: 'https://u:p@registry.example.com' }, 'SCHEMA_REGISTRY_URL'],
    [{ SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: 'no-colon' }, 'SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO'],
    [{ SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: 'u:p', SCHEMA_REGISTRY_BEARER_TOKEN: 't' }, 'SCHEMA_REGISTRY_BEARER_TOKEN'],
    [{ SCHEMA_REGISTRY_BEARER_TOKEN_FILE: '/nonexistent' }, 'SCHEMA_REGISTRY_BEARER_TOKEN_FILE'],
    [{ SCHEMA_REGISTRY_CA_FILE: '/etc/ca.pem' }, 'SCHEMA_REGISTRY_CA_FILE'],
  ])('refuses %j naming %s', (env, variable) => {
    configError(env, variable);
  });

  it('refuses an empty secret file', () => {
    configError({ SCHEMA_REGISTRY_BEARER_TOKEN_FILE: file('empty') }, 'SCHEMA_REGISTRY_BEARER_TOKEN_FILE');
  });
});

describe('Secret', () => {
  it('prints as [redacted] however it is logged', () => {
    const secret = new Secret('hunter2', 'KAFKA_SASL_PASSWORD');
    const config = loadConfig({ ...SCRAM, KAFKA_SASL_PASSWORD: 'hunter2' });
    for (const text of [String(secret), `${String(secret)}`, JSON.stringify({ secret }), inspect(secret), JSON.stringify(config), inspect(config, { depth: 10 })]) {
      expect(text).not.toContain('hunter2');
    }
    expect(secret.reveal()).toBe('hunter2');
  });
});
