import { inspect } from 'node:util';

/**
 * A credential read from the environment or a file. It prints as `[redacted]` however it is
 * logged (String, JSON, util.inspect), so a config object or an error's metadata can be
 * logged whole without leaking it; only `reveal()` hands out the value, at the one place
 * that sends it (the Kafka or registry client).
 */
export class Secret {
  readonly #value: string;

  /** `source` names where it came from (a variable), for messages; never the value. */
  constructor(
    value: string,
    readonly source: string,
  ) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  toString(): string {
    return '[redacted]';
  }

  toJSON(): string {
    return '[redacted]';
  }

  [inspect.custom](): string {
    return `Secret(${this.source}: [redacted])`;
  }
}
