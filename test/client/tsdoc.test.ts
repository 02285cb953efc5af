import { resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ENTRY = resolve(import.meta.dirname, '../../src/client/index.ts');

/** Documented: a TSDoc comment on the declaration (for a re-export, on the original). */
function documented(symbol: ts.Symbol, checker: ts.TypeChecker): boolean {
  return ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim().length > 0;
}

function isPrivateName(declaration: ts.Declaration): boolean {
  const name = (declaration as ts.NamedDeclaration).name;
  return name !== undefined && ts.isPrivateIdentifier(name);
}

describe('ordo/client documentation', () => {
  it('every export, and every public member of an exported class or interface, has a TSDoc comment', () => {
    const program = ts.createProgram([ENTRY], { module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, target: ts.ScriptTarget.ES2022, strict: true, noEmit: true, types: ['node'] });
    const checker = program.getTypeChecker();
    const moduleSymbol = checker.getSymbolAtLocation(program.getSourceFile(ENTRY)!)!;
    const exports = checker.getExportsOfModule(moduleSymbol);
    expect(exports.length).toBeGreaterThan(40);
    const missing: string[] = [];
    for (const exported of exports) {
      const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
      if (!documented(symbol, checker)) missing.push(exported.name);
      if (symbol.flags & (ts.SymbolFlags.Class | ts.SymbolFlags.Interface)) {
        for (const [name, member] of symbol.members ?? new Map<ts.__String, ts.Symbol>()) {
          const declaration = member.declarations?.[0];
          const hidden =
            declaration === undefined ||
            (ts.getCombinedModifierFlags(declaration) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) !== 0 ||
            isPrivateName(declaration) ||
            String(name) === '__constructor';
          if (!hidden && !documented(member, checker)) missing.push(`${exported.name}.${String(name)}`);
        }
      }
    }
    expect(missing).toEqual([]);
  });
});
