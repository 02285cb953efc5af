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
export function registryClientArgs(registry: string | RegistryConnection): ClientArgs {
  if (typeof registry === 'string') return { host: registry };
  const { basicAuth, bearerToken, ca } = registry.security;
  return {
    host: registry.url,
    ...(basicAuth ? { auth: { username: basicAuth.username, password: basicAuth.password.reveal() } } : {}),
    ...(ca ? { agent: new Agent({ ca, keepAlive: true }) } : {}),
    ...(bearerToken ? { middlewares: [bearer(bearerToken.reveal())] } : {}),
  };
}

/** Which variable holds the credentials the registry would refuse (for a 401/403 message). */
export function registryCredentialsVariable(registry: string | RegistryConnection): string {
  if (typeof registry === 'string') return 'SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO';
  const { basicAuth, bearerToken } = registry.security;
  return bearerToken?.source ?? basicAuth?.password.source ?? 'SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO';
}

function bearer(token: string): Middleware {
  return () => ({
    async prepareRequest(next) {
      const request = await next();
      return request.enhance({ headers: { authorization: `Bearer ${token}` } });
    },
  });
}
