import { OrdoError } from '../errors.js';

/**
 * A command (`ordo events`, `ordo topics`) that cannot go ahead for a reason the user can
 * fix: bad input, a missing topic. The CLI prints the message and exits 65 (EX_DATAERR).
 */
export class CommandError extends OrdoError {
  static override readonly code: string = 'ORDO_COMMAND';
}

/** A bad input line or flag, named: `line 3: ...` or `--value: ...`. */
export class EventInputError extends CommandError {
  static override readonly code = 'ORDO_EVENT_INPUT';

  constructor(
    readonly where: string,
    message: string,
  ) {
    super(`${where}: ${message}`);
  }
}

/** A `node:util` parseArgs error (an unknown or malformed flag): a usage error, exit 2. */
export function isParseArgsError(error: unknown): boolean {
  return typeof (error as { code?: unknown }).code === 'string' && (error as { code: string }).code.startsWith('ERR_PARSE_ARGS');
}

/**
 * Retries an admin call that kafkajs reports as retriable (a leader or coordinator moving,
 * a just-created topic's metadata not everywhere yet), a few times with a short backoff:
 * a one-shot command has no batch loop around it to try again.
 */
export async function retrying<T>(call: () => Promise<T>, attempts = 6): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (error) {
      if ((error as { retriable?: boolean }).retriable !== true || attempt >= attempts) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
}
