/**
 * `npm run capacity -- --events-per-second N --subjects N [flags]`: the capacity model
 * (src/capacity/, docs/scaling.md) over the measured constants of
 * bench/results/capacity-constants.json (`npm run bench:capacity` writes them).
 * Prints one Markdown table, a column per (events/s, subjects); a bad flag exits 2 naming it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CapacityArgsError, capacityHelp, parseCapacityArgs } from '../src/capacity/capacity-args.js';
import { plan } from '../src/capacity/capacity-model.js';
import { formatPlans, renderDocBlocks } from '../src/capacity/capacity-table.js';
import { type CapacityConstants, ConstantsError, capacityConstants } from '../src/capacity/constants.js';

export const DEFAULT_CONSTANTS = resolve(fileURLToPath(import.meta.url), '..', '..', 'bench', 'results', 'capacity-constants.json');

export const SCALING_DOC = resolve(fileURLToPath(import.meta.url), '..', '..', 'docs', 'scaling.md');

function loadConstants(path: string): CapacityConstants {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new ConstantsError(`cannot read the capacity constants ${path}: ${(error as Error).message} (npm run bench:capacity writes them)`);
  }
  return capacityConstants(json);
}

/** The table for these arguments, from the constants file. */
export function capacityReport(argv: readonly string[]): string {
  const args = parseCapacityArgs(argv);
  if (args.help) return capacityHelp();
  const constants = loadConstants(args.constantsPath ?? DEFAULT_CONSTANTS);
  return formatPlans(args.workloads.map((w) => plan(w, constants)), constants.measuredAt);
}

/** docs/scaling.md with its generated blocks filled from the committed constants (`npm run capacity -- --write-docs`). */
export function scalingDoc(text: string): string {
  return renderDocBlocks(text, loadConstants(DEFAULT_CONSTANTS), capacityReport);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    if (process.argv[2] === '--write-docs') {
      writeFileSync(SCALING_DOC, scalingDoc(readFileSync(SCALING_DOC, 'utf8')));
      process.stdout.write(`${SCALING_DOC} regenerated\n`);
    } else {
      process.stdout.write(`${capacityReport(process.argv.slice(2))}\n`);
    }
  } catch (error) {
    if (!(error instanceof CapacityArgsError || error instanceof ConstantsError)) throw error;
    process.stderr.write(`capacity: ${error.message}\n`);
    process.exitCode = 2;
  }
}
