import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { sha256Hex } from './constant-time.js';
import { SCOPES } from './scopes.js';
import { readStdin } from '../commands/stdin.js';
import { parseTokensFile } from './tokens-file.js';

export const TOKEN_USAGE = `usage: ordo token new --name <name> --scope <scope> [--scope ...] [--subject <subject> ...]
       ordo token hash < token.txt

  new    make a random API token; prints it once, and the entry to add to the
         tokens file (ORDO_API_TOKENS_FILE), which stores only its sha256
         --name     how logs name the token, e.g. portal-acme
         --scope    ${SCOPES.join(', ')} (repeat for several; admin implies all)
         --subject  a subject it may see, or a prefix ending in * (repeat for
                    several); left out: every subject
  hash   print the sha256 of a token read from stdin (the same as
         printf %s "$TOKEN" | sha256sum)`;

export interface TokenCliIo {
  out: (text: string) => void;
  err: (text: string) => void;
  /** All of stdin, for `hash`. */
  readStdin: () => Promise<string>;
}

/** The process's own stdout, stderr and stdin. */
export const processIo: TokenCliIo = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  readStdin,
};

/** `ordo token ...`: returns the exit code (0, or 2 for a usage error). */
export async function runTokenCli(argv: string[], io: TokenCliIo): Promise<number> {
  const [command, ...rest] = argv;
  if (command === 'hash') {
    const token = (await io.readStdin()).replace(/\r?\n$/, '');
    if (token === '') {
      io.err(`ordo token hash: no token on stdin\n\n${TOKEN_USAGE}\n`);
      return 2;
    }
    io.out(`${sha256Hex(token)}\n`);
    return 0;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    io.out(`${TOKEN_USAGE}\n`);
    return 0;
  }
  if (command !== 'new') {
    io.err(`${command === undefined ? '' : `ordo token: unknown command ${JSON.stringify(command)}\n\n`}${TOKEN_USAGE}\n`);
    return 2;
  }
  let values: { name?: string; scope?: string[]; subject?: string[] };
  try {
    ({ values } = parseArgs({
      args: rest,
      options: { name: { type: 'string' }, scope: { type: 'string', multiple: true }, subject: { type: 'string', multiple: true } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    io.err(`ordo token new: ${(error as Error).message}\n\n${TOKEN_USAGE}\n`);
    return 2;
  }
  if (values.name === undefined || values.scope === undefined) {
    io.err(`ordo token new: --name and --scope are required\n\n${TOKEN_USAGE}\n`);
    return 2;
  }
  // 256 random bits; base64url fits RFC 6750's token syntax, the prefix makes leaked tokens greppable.
  const token = `ordo_${randomBytes(32).toString('base64url')}`;
  const entry = [
    `  - name: ${JSON.stringify(values.name)}`,
    `    sha256: ${sha256Hex(token)}`,
    `    scopes: ${JSON.stringify(values.scope)}`,
    ...(values.subject === undefined ? [] : [`    subjects: ${JSON.stringify(values.subject)}`]),
  ].join('\n');
  try {
    // The entry is checked exactly as the api role will read it.
    parseTokensFile(`tokens:\n${entry}\n`);
  } catch (error) {
    io.err(`ordo token new: ${(error as Error).message.replace(/^tokens\[0\] ?(\([^)]*\))?\.?/, '')}\n`);
    return 2;
  }
  io.err('The token is shown once: give it to its user now. The tokens file keeps only its sha256.\n');
  io.out(`token: ${token}\n\nadd under "tokens:" in the tokens file (ORDO_API_TOKENS_FILE):\n${entry}\n`);
  return 0;
}
