import type { OAuthClientCredentials } from '../config/security.js';
import { ConfigError, OrdoError, TransientError } from '../errors.js';

/** What the token endpoint answered (RFC 6749 section 5.1). */
interface TokenResponse {
  access_token?: unknown;
  expires_in?: unknown;
  token_type?: unknown;
}

export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal }) => Promise<{
  status: number;
  json(): Promise<unknown>;
}>;

/**
 * OAUTHBEARER tokens from an OIDC client-credentials grant. kafkajs asks for a token each
 * time it authenticates a new connection; the cached one is handed out until it reaches
 * `refreshRatio` of its lifetime (default 80 %), or earlier so that a minute is left (but not
 * before half of it), so a connection never authenticates with a token about to expire. Concurrent asks
 * share one request. A refused client (401/400 invalid_client) is a ConfigError naming the
 * variables; anything else (endpoint down, 5xx) is transient and kafkajs retries the
 * connection. Neither the secret nor a token ever enters a message.
 */
export class ClientCredentialsTokenProvider {
  private cached: { value: string; refreshAt: number } | undefined;
  private inFlight: Promise<string> | undefined;
  private readonly fetch: FetchLike;
  private readonly now: () => number;
  private readonly refreshRatio: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly settings: OAuthClientCredentials,
    options: { fetch?: FetchLike; now?: () => number; refreshRatio?: number; timeoutMs?: number } = {},
  ) {
    this.fetch = options.fetch ?? globalThis.fetch;
    this.now = options.now ?? Date.now;
    this.refreshRatio = options.refreshRatio ?? 0.8;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  /** The kafkajs `oauthBearerProvider`. */
  readonly provide = async (): Promise<{ value: string }> => ({ value: await this.token() });

  async token(): Promise<string> {
    if (this.cached !== undefined && this.now() < this.cached.refreshAt) return this.cached.value;
    this.inFlight ??= this.request().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  private async request(): Promise<string> {
    const { tokenEndpointUrl, clientId, clientSecret, scope } = this.settings;
    const body = new URLSearchParams({ grant_type: 'client_credentials', ...(scope === undefined ? {} : { scope }) });
    // RFC 6749 2.3.1: client id and secret form-encoded, then as HTTP Basic credentials.
    const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret.reveal())}`).toString('base64');
    const startedAt = this.now();
    let response: Awaited<ReturnType<FetchLike>>;
    try {
      response = await this.fetch(tokenEndpointUrl, {
        method: 'POST',
        headers: { authorization: `Basic ${basic}`, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: body.toString(),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (cause) {
      throw new TransientError(`OAUTHBEARER token endpoint ${tokenEndpointUrl} unreachable: ${describe(cause)}`);
    }
    const answer = (await response.json().catch(() => ({}))) as TokenResponse & { error?: unknown };
    const oauthError = typeof answer.error === 'string' ? answer.error.slice(0, 64) : undefined;
    if (response.status === 401 || oauthError === 'invalid_client' || oauthError === 'unauthorized_client') {
      throw new ConfigError('KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET', `the token endpoint refused client "${clientId}" (HTTP ${response.status}${oauthError ? `, ${oauthError}` : ''}); check KAFKA_SASL_OAUTHBEARER_CLIENT_ID and the client secret`);
    }
    if (oauthError === 'invalid_scope') throw new ConfigError('KAFKA_SASL_OAUTHBEARER_SCOPE', `the token endpoint refused scope "${scope ?? ''}"`);
    if (response.status >= 500 || response.status === 429) throw new TransientError(`OAUTHBEARER token endpoint answered HTTP ${response.status}`);
    if (response.status !== 200 || typeof answer.access_token !== 'string' || answer.access_token === '') {
      throw new OrdoError(`OAUTHBEARER token endpoint answered HTTP ${response.status}${oauthError ? ` (${oauthError})` : ''} without an access_token`);
    }
    const lifetimeMs = typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in * 1000 : 3_600_000;
    const refreshIn = Math.min(lifetimeMs * this.refreshRatio, Math.max(lifetimeMs - 60_000, lifetimeMs / 2));
    this.cached = { value: answer.access_token, refreshAt: startedAt + refreshIn };
    return answer.access_token;
  }
}

function describe(cause: unknown): string {
  const inner = (cause as { cause?: { code?: string } }).cause?.code;
  return inner ?? (cause instanceof Error ? cause.name : 'error');
}
