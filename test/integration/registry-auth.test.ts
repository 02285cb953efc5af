import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { type Server, createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { SchemaCatalog } from '../../src/schema/schema-catalog.js';
import { usageEventSchema } from '../../src/schema/usage-event.js';
import { REGISTRY_URL, uniqueName } from '../support/cluster.js';
import { type SecuredStack, securedStack } from '../support/secured.js';

/**
 * The schema registry behind https with a private CA and authentication: a proxy on
 * 127.0.0.1 (the local stack's throwaway broker certificate) that lets through only the
 * expected Basic credentials or bearer token and forwards to the real registry. The catalog is
 * configured the way the roles are, from SCHEMA_REGISTRY_* variables.
 */
let stack: SecuredStack;
let proxy: Server;
let url: string;
const USER_INFO = `ordo:reg-${Math.random().toString(36).slice(2)}`;
const TOKEN = `tok-${Math.random().toString(36).slice(2)}`;
const seen: string[] = [];

beforeAll(async () => {
  stack = securedStack();
  const upstream = new URL(REGISTRY_URL);
  proxy = createServer({ cert: readFileSync(stack.file('broker.pem')), key: readFileSync(stack.file('broker.key')) }, (req, res) => {
    const auth = req.headers.authorization ?? '';
    seen.push(auth.split(' ')[0] ?? '');
    if (auth !== `Basic ${Buffer.from(USER_INFO).toString('base64')}` && auth !== `Bearer ${TOKEN}`) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error_code: 401, message: 'Unauthorized' }));
      return;
    }
    const forward = httpRequest(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: { ...req.headers, host: upstream.host, authorization: '' } },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    forward.on('error', () => res.writeHead(502).end());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  url = `https://127.0.0.1:${(proxy.address() as AddressInfo).port}${upstream.pathname}`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => proxy?.close(() => resolve()));
});

function catalogFor(env: Record<string, string>): SchemaCatalog {
  const config = loadConfig({ SCHEMA_REGISTRY_URL: url, SCHEMA_REGISTRY_CA_FILE: stack.file('ca.pem'), ...env });
  return new SchemaCatalog({ url: config.registryUrl, security: config.security.registry });
}

describe('schema registry over https with credentials', () => {
  it('registers and reads schemas with basic auth and with a bearer token, trusting the private CA', async () => {
    const subject = `${uniqueName('reg-auth')}-value`;
    const basic = catalogFor({ SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: USER_INFO });
    const id = await basic.register(subject, usageEventSchema);
    const bearer = catalogFor({ SCHEMA_REGISTRY_BEARER_TOKEN: TOKEN });
    await bearer.prefetch([id]);
    expect(bearer.writerType(id)).toBeTruthy();
    expect(seen).toEqual(expect.arrayContaining(['Basic', 'Bearer']));
  });

  it('refused credentials are a ConfigError naming the variable, without the secret', async () => {
    const error = await catalogFor({ SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: 'ordo:wrong-password' })
      .register(`${uniqueName('reg-auth')}-value`, usageEventSchema)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).variable).toBe('SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO');
    expect((error as Error).message).not.toContain('wrong-password');
    const refused = await catalogFor({ SCHEMA_REGISTRY_BEARER_TOKEN: 'not-the-token' }).prefetch([1]).catch((e: unknown) => e);
    expect((refused as ConfigError).variable).toBe('SCHEMA_REGISTRY_BEARER_TOKEN');
  });

  it('does not trust the registry without its CA', async () => {
    const config = loadConfig({ SCHEMA_REGISTRY_URL: url, SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO: USER_INFO });
    const untrusted = new SchemaCatalog({ url: config.registryUrl, security: config.security.registry });
    const error = await untrusted.register(`${uniqueName('reg-auth')}-value`, usageEventSchema).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(String((error as Error).message)).toMatch(/certificate|self.signed|issuer/i);
  });
});
