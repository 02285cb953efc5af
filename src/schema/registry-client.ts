import { Agent } from 'node:https';
import type { SchemaRegistry } from '@kafkajs/confluent-schema-registry';
import type { RegistrySecurity } from '../config/security.js';

/** A registry URL with the credentials and CA to reach it (SCHEMA_REGISTRY_* variables). */
export interface RegistryConnection {
  url: string;
  security: RegistrySecurity;
}

type ClientArgs = ConstructorParameters<typeof SchemaRegistry>[0];
type Middleware = NonNullable<ClientArgs['middlewares']>[number];

/** @kafkajs/confluent-schema-registry's client arguments: basic auth, a bearer token, a private CA. */
export function registryClientArgs(registry: string | RegistryConnection, timeoutMs = REGISTRY_REQUEST_TIMEOUT_MS): ClientArgs {
  if (typeof registry === 'string') return { host: registry, middlewares: [timeout(timeoutMs)] };
  const { basicAuth, bearerToken, ca } = registry.security;
  return {
    host: registry.url,
    ...(basicAuth ? { auth: { username: basicAuth.username, password: basicAuth.password.reveal() } } : {}),
    ...(ca ? { agent: new Agent({ ca, keepAlive: true }) } : {}),
    middlewares: [timeout(timeoutMs), ...(bearerToken ? [bearer(bearerToken.reveal())] : [])],
  };
}

/**
 * Bounds every registry request: without it a registry that accepts the connection but never
 * answers holds a role's start (or a batch's schema fetch) silently forever. A timeout is an
 * error like any other network failure: the client's own retries, then the engine's.
 */
export const REGISTRY_REQUEST_TIMEOUT_MS = 10_000;

/** Which variable holds the credentials the registry would refuse (for a 401/403 message). */
export function registryCredentialsVariable(registry: string | RegistryConnection): string {
  if (typeof registry === 'string') return 'SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO';
  const { basicAuth, bearerToken } = registry.security;
  return bearerToken?.source ?? basicAuth?.password.source ?? 'SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO';
}

function timeout(ms: number): Middleware {
  return () => ({
    async prepareRequest(next) {
      const request = await next();
      return request.enhance({ timeout: ms });
    },
  });
}

function bearer(token: string): Middleware {
  return () => ({
    async prepareRequest(next) {
      const request = await next();
      return request.enhance({ headers: { authorization: `Bearer ${token}` } });
    },
  });
}
