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
