import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { ConfigError } from '../errors.js';
import { isLoopbackHost } from './api-auth.js';
import type { EnvReader } from './env.js';
import { Secret } from './secret.js';

/**
 * How Ordo authenticates to Kafka and to the schema registry (docs/configuration.md,
 * "Connecting to a secured cluster"). Everything is read and checked at start: files exist
 * and parse, a key matches its certificate and its passphrase, nothing is set that the chosen
 * protocol would ignore. Credentials are `Secret`s: they never print.
 */
export const SECURITY_PROTOCOLS = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'] as const;
export type SecurityProtocol = (typeof SECURITY_PROTOCOLS)[number];
export const SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export interface KafkaTls {
  /** PEM CA bundle that replaces the system CAs; undefined: the system CAs. */
  ca?: Buffer;
  /** Client certificate and key (mTLS); both or neither. */
  cert?: Buffer;
  key?: Buffer;
  passphrase?: Secret;
}

export interface OAuthClientCredentials {
  tokenEndpointUrl: string;
  clientId: string;
  clientSecret: Secret;
  scope?: string;
}

export type KafkaSasl =
  | { mechanism: 'PLAIN' | 'SCRAM-SHA-256' | 'SCRAM-SHA-512'; username: string; password: Secret }
  | { mechanism: 'OAUTHBEARER'; oauth: OAuthClientCredentials };

export interface KafkaSecurity {
  protocol: SecurityProtocol;
  /** Set for SSL and SASL_SSL. */
  tls?: KafkaTls;
  /** Set for SASL_PLAINTEXT and SASL_SSL. */
  sasl?: KafkaSasl;
}

export interface RegistrySecurity {
  basicAuth?: { username: string; password: Secret };
  bearerToken?: Secret;
  /** PEM CA bundle for an https registry with a private CA. */
  ca?: Buffer;
}

export interface SecurityConfig {
  kafka: KafkaSecurity;
  registry: RegistrySecurity;
}

const TLS_VARIABLES = ['KAFKA_SSL_CA_FILE', 'KAFKA_SSL_CERT_FILE', 'KAFKA_SSL_KEY_FILE', 'KAFKA_SSL_KEY_PASSPHRASE', 'KAFKA_SSL_KEY_PASSPHRASE_FILE'];
const PASSWORD_VARIABLES = ['KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD', 'KAFKA_SASL_PASSWORD_FILE'];
const OAUTH_VARIABLES = [
  'KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL',
  'KAFKA_SASL_OAUTHBEARER_CLIENT_ID',
  'KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET',
  'KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE',
  'KAFKA_SASL_OAUTHBEARER_SCOPE',
];

export function loadSecurityConfig(read: EnvReader, registryUrl: string): SecurityConfig {
  return { kafka: kafkaSecurity(read), registry: registrySecurity(read, registryUrl) };
}

function kafkaSecurity(read: EnvReader): KafkaSecurity {
  const protocol = read.oneOf('KAFKA_SECURITY_PROTOCOL', 'PLAINTEXT', SECURITY_PROTOCOLS);
  const usesTls = protocol === 'SSL' || protocol === 'SASL_SSL';
  const usesSasl = protocol === 'SASL_PLAINTEXT' || protocol === 'SASL_SSL';
  if (!usesTls) refuseUnused(read, TLS_VARIABLES, `KAFKA_SECURITY_PROTOCOL=${protocol} does not use TLS (SSL or SASL_SSL do)`);
  const mechanism = read.optionalString('KAFKA_SASL_MECHANISM');
  if (!usesSasl) {
    refuseUnused(read, ['KAFKA_SASL_MECHANISM', ...PASSWORD_VARIABLES, ...OAUTH_VARIABLES], `KAFKA_SECURITY_PROTOCOL=${protocol} does not use SASL (SASL_SSL or SASL_PLAINTEXT do)`);
  }
  if (usesSasl && mechanism === undefined) {
    throw new ConfigError('KAFKA_SASL_MECHANISM', `must be set with KAFKA_SECURITY_PROTOCOL=${protocol} (one of ${SASL_MECHANISMS.join(', ')})`);
  }
  return {
    protocol,
    ...(usesTls ? { tls: kafkaTls(read) } : {}),
    ...(usesSasl ? { sasl: kafkaSasl(read) } : {}),
  };
}

function kafkaSasl(read: EnvReader): KafkaSasl {
  const mechanism = read.oneOf('KAFKA_SASL_MECHANISM', 'PLAIN', SASL_MECHANISMS);
  if (mechanism === 'OAUTHBEARER') {
    refuseUnused(read, PASSWORD_VARIABLES, 'KAFKA_SASL_MECHANISM=OAUTHBEARER uses the KAFKA_SASL_OAUTHBEARER_* client credentials instead');
    return { mechanism, oauth: oauthClientCredentials(read) };
  }
  refuseUnused(read, OAUTH_VARIABLES, `KAFKA_SASL_MECHANISM=${mechanism} uses KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD(_FILE) instead`);
  const username = read.optionalString('KAFKA_SASL_USERNAME');
  if (username === undefined) throw new ConfigError('KAFKA_SASL_USERNAME', `must be set with KAFKA_SASL_MECHANISM=${mechanism}`);
  const password = read.secret('KAFKA_SASL_PASSWORD');
  if (password === undefined) throw new ConfigError('KAFKA_SASL_PASSWORD', `(or KAFKA_SASL_PASSWORD_FILE) must be set with KAFKA_SASL_MECHANISM=${mechanism}`);
  return { mechanism, username, password };
}

function oauthClientCredentials(read: EnvReader): OAuthClientCredentials {
  const name = 'KAFKA_SASL_OAUTHBEARER_TOKEN_ENDPOINT_URL';
  const tokenEndpointUrl = read.optionalString(name);
  if (tokenEndpointUrl === undefined) throw new ConfigError(name, 'must be set with KAFKA_SASL_MECHANISM=OAUTHBEARER (the OIDC client-credentials token endpoint)');
  let url: URL;
  try {
    url = new URL(tokenEndpointUrl);
  } catch {
    throw new ConfigError(name, `"${tokenEndpointUrl}" is not a URL`);
  }
  if (url.username !== '' || url.password !== '') throw new ConfigError(name, 'must not carry credentials; use KAFKA_SASL_OAUTHBEARER_CLIENT_ID / _CLIENT_SECRET');
  // The client secret goes to this URL: only https, or http to this very host (tests, sidecars).
  if (!(url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname.replace(/^\[|\]$/g, ''))))) {
    throw new ConfigError(name, `"${tokenEndpointUrl}" must be an https URL (http only to a loopback address)`);
  }
  const clientId = read.optionalString('KAFKA_SASL_OAUTHBEARER_CLIENT_ID');
  if (clientId === undefined) throw new ConfigError('KAFKA_SASL_OAUTHBEARER_CLIENT_ID', 'must be set with KAFKA_SASL_MECHANISM=OAUTHBEARER');
  const clientSecret = read.secret('KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET');
  if (clientSecret === undefined) {
    throw new ConfigError('KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET', '(or KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET_FILE) must be set with KAFKA_SASL_MECHANISM=OAUTHBEARER');
  }
  const scope = read.optionalString('KAFKA_SASL_OAUTHBEARER_SCOPE');
  return { tokenEndpointUrl, clientId, clientSecret, ...(scope === undefined ? {} : { scope }) };
}

function kafkaTls(read: EnvReader): KafkaTls {
  const ca = read.file('KAFKA_SSL_CA_FILE');
  if (ca !== undefined) parseCertificate('KAFKA_SSL_CA_FILE', ca);
  const cert = read.file('KAFKA_SSL_CERT_FILE');
  const key = read.file('KAFKA_SSL_KEY_FILE');
  const passphrase = read.secret('KAFKA_SSL_KEY_PASSPHRASE');
  if (cert !== undefined && key === undefined) throw new ConfigError('KAFKA_SSL_KEY_FILE', 'must be set with KAFKA_SSL_CERT_FILE (the client certificate\'s private key)');
  if (key !== undefined && cert === undefined) throw new ConfigError('KAFKA_SSL_CERT_FILE', 'must be set with KAFKA_SSL_KEY_FILE (the client certificate)');
  if (passphrase !== undefined && key === undefined) throw new ConfigError(passphrase.source, 'is set but there is no KAFKA_SSL_KEY_FILE to decrypt');
  if (cert !== undefined && key !== undefined) {
    const certificate = parseCertificate('KAFKA_SSL_CERT_FILE', cert);
    const privateKey = parsePrivateKey(key, passphrase);
    if (!certificate.checkPrivateKey(privateKey)) throw new ConfigError('KAFKA_SSL_KEY_FILE', 'does not match the certificate in KAFKA_SSL_CERT_FILE');
    if (Date.parse(certificate.validTo) < Date.now()) throw new ConfigError('KAFKA_SSL_CERT_FILE', `the client certificate expired on ${certificate.validTo}`);
  }
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(passphrase ? { passphrase } : {}) };
}

function registrySecurity(read: EnvReader, registryUrl: string): RegistrySecurity {
  const url = new URL(registryUrl);
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError('SCHEMA_REGISTRY_URL', 'must not carry credentials (they would show wherever the URL is logged); use SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO(_FILE)');
  }
  const userInfo = read.secret('SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO');
  const bearerToken = read.secret('SCHEMA_REGISTRY_BEARER_TOKEN');
  if (userInfo !== undefined && bearerToken !== undefined) {
    throw new ConfigError(bearerToken.source, `is set together with ${userInfo.source}; the registry takes one kind of credentials`);
  }
  const ca = read.file('SCHEMA_REGISTRY_CA_FILE');
  if (ca !== undefined) {
    if (url.protocol !== 'https:') throw new ConfigError('SCHEMA_REGISTRY_CA_FILE', 'is set but SCHEMA_REGISTRY_URL is not an https URL');
    parseCertificate('SCHEMA_REGISTRY_CA_FILE', ca);
  }
  let basicAuth: RegistrySecurity['basicAuth'];
  if (userInfo !== undefined) {
    const text = userInfo.reveal();
    const colon = text.indexOf(':');
    if (colon <= 0) throw new ConfigError(userInfo.source, 'is not of the form user:password');
    basicAuth = { username: text.slice(0, colon), password: new Secret(text.slice(colon + 1), userInfo.source) };
  }
  return { ...(basicAuth ? { basicAuth } : {}), ...(bearerToken ? { bearerToken } : {}), ...(ca ? { ca } : {}) };
}

function refuseUnused(read: EnvReader, variables: string[], why: string): void {
  for (const name of variables) {
    if (read.optionalString(name) !== undefined) throw new ConfigError(name, `is set but ${why}`);
  }
}

function parseCertificate(variable: string, pem: Buffer): X509Certificate {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(variable, 'is not a PEM certificate file (-----BEGIN CERTIFICATE-----)');
  try {
    return new X509Certificate(pem);
  } catch {
    throw new ConfigError(variable, 'holds a PEM certificate that does not parse');
  }
}

function parsePrivateKey(pem: Buffer, passphrase: Secret | undefined): KeyObject {
  try {
    return createPrivateKey(passphrase === undefined ? { key: pem } : { key: pem, passphrase: passphrase.reveal() });
  } catch {
    const encrypted = pem.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || pem.includes('Proc-Type: 4,ENCRYPTED');
    if (passphrase === undefined && encrypted) {
      throw new ConfigError('KAFKA_SSL_KEY_PASSPHRASE', '(or KAFKA_SSL_KEY_PASSPHRASE_FILE) must be set: the key in KAFKA_SSL_KEY_FILE is encrypted');
    }
    if (passphrase !== undefined && encrypted) {
      throw new ConfigError(passphrase.source, 'does not decrypt the key in KAFKA_SSL_KEY_FILE');
    }
    throw new ConfigError('KAFKA_SSL_KEY_FILE', 'is not a PEM private key');
  }
}

