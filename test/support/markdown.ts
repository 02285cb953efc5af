// The docs' tables and contents that the code can produce are rendered here and compared
// with the page (one home per fact, and it cannot go stale): the ACL table, the topic table
// and the runbook's contents.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** A page of the repository, e.g. `docs/operations.md`. */
export function readDoc(relative: string): string {
  return readFileSync(ROOT + relative, 'utf8');
}

/** A Markdown table, as the docs write them: `| a | b |` rows under a `|---|---|` rule. */
export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...rows.map(line)].join('\n');
}

/** GitHub's anchor for a Markdown heading. */
export function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The page's headings with their anchors (a repeated one gets -1, -2…), code blocks skipped. */
export function headings(text: string): { level: number; text: string; anchor: string }[] {
  const found: { level: number; text: string; anchor: string }[] = [];
  const anchors = new Set<string>();
  for (const [, marks, heading] of text.replace(/```[\s\S]*?```/g, '').matchAll(/^(#{1,6})\s+(.+)$/gm)) {
    const base = slug(heading!);
    let anchor = base;
    for (let i = 1; anchors.has(anchor); i++) anchor = `${base}-${i}`;
    anchors.add(anchor);
    found.push({ level: marks!.length, text: heading!.trim(), anchor });
  }
  return found;
}

/** A contents list of the page's `##` sections (the contents' own heading left out). */
export function contents(text: string, title = 'Contents'): string {
  return headings(text)
    .filter((h) => h.level === 2 && h.text !== title)
    .map((h) => `- [${h.text}](#${h.anchor})`)
    .join('\n');
}
