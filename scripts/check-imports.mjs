#!/usr/bin/env node
/**
 * The house's floors, checked (run by `npm test`): every import between two src/ folders must
 * point down, and no module may import itself back through a cycle. A layering that only lives in
 * STYLE.md erodes one convenient import at a time; this makes the first upward one fail CI.
 *
 * Floors, top to bottom (STYLE.md): cli/; main.ts; failover/ and check/; replay/ and agent/;
 * lmtp/, auth/, admin/; journal/ and directory/; config/; core/. Folders on one floor may not
 * import each other either (they are peers: what both need belongs a floor down).
 *
 * A capability folder is entered through its index.ts only (STYLE.md: "a capability uses another
 * only through that folder's entry file").
 *
 * Only value imports count for cycles (`import type` is erased at build time and cannot make a
 * module load before its dependency has run); every import counts for the floors, since a type
 * reaching up is still a layer leaking.
 *
 *   node scripts/check-imports.mjs [src-dir]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const FLOORS = {
  core: 0,
  config: 1,
  journal: 2, directory: 2,
  lmtp: 3, auth: 3, admin: 3,
  replay: 4, agent: 4,
  failover: 5, check: 5,
  main: 6,
  cli: 7,
};

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'src'));

function* tsFiles(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* tsFiles(path);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) yield path;
  }
}

/** "lmtp" for src/lmtp/x.ts, "main" for src/main.ts. */
function folderOf(file) {
  const rel = relative(root, file).split(sep);
  return rel.length === 1 ? rel[0].replace(/\.ts$/, '') : rel[0];
}

/** Relative imports with whether they are type-only: static, re-exports and dynamic import(). */
function importsOf(text) {
  const out = [];
  const stat = /^\s*(import|export)\s+(type\s+)?(?:[^'"]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;
  for (const m of text.matchAll(stat)) out.push({ spec: m[3], typeOnly: Boolean(m[2]) });
  for (const m of text.matchAll(/\bimport\(\s*['"](\.[^'"]+)['"]\s*\)/g)) out.push({ spec: m[1], typeOnly: false, dynamic: true });
  return out;
}

function resolveSpec(from, spec) {
  return resolve(dirname(from), spec.replace(/\.js$/, '.ts'));
}

const problems = [];
const graph = new Map();
for (const file of tsFiles(root)) {
  const text = readFileSync(file, 'utf8');
  const from = folderOf(file);
  if (!(from in FLOORS)) problems.push(`${relative(root, file)}: folder "${from}" has no floor in scripts/check-imports.mjs`);
  const edges = [];
  for (const imp of importsOf(text)) {
    const target = resolveSpec(file, imp.spec);
    if (!target.startsWith(root + sep)) continue;
    const to = folderOf(target);
    if (to !== from && from in FLOORS && to in FLOORS && FLOORS[to] >= FLOORS[from]) {
      const how = FLOORS[to] === FLOORS[from] ? 'sideways, to a peer on its floor' : 'upward';
      problems.push(`${relative(root, file)} imports ${relative(root, target)}: ${how} (${from} → ${to})`);
    }
    // A capability is used through its entry file only (core/ and config/ are shared helpers and
    // the schema, not capabilities, so their files are imported directly).
    const entry = join(root, to, 'index.ts');
    if (to !== from && !['core', 'config', 'main'].includes(to) && target !== entry) {
      problems.push(`${relative(root, file)} imports ${relative(root, target)}: not through ${relative(root, entry)}`);
    }
    // A dynamic import() runs after loading, so it cannot take part in a load-order cycle.
    if (!imp.typeOnly && !imp.dynamic) edges.push(target);
  }
  graph.set(file, edges);
}

// Cycles among value imports: depth-first search, reporting each cycle once by its path.
const state = new Map(); // file → 1 on the stack, 2 done
const stack = [];
const seen = new Set();
function visit(file) {
  state.set(file, 1);
  stack.push(file);
  for (const next of graph.get(file) ?? []) {
    if (state.get(next) === 1) {
      const cycle = stack.slice(stack.indexOf(next)).concat(next).map((f) => relative(root, f));
      const key = [...cycle].slice(0, -1).sort().join('|');
      if (!seen.has(key)) {
        seen.add(key);
        problems.push(`import cycle: ${cycle.join(' → ')}`);
      }
    } else if (!state.has(next) && graph.has(next)) visit(next);
  }
  stack.pop();
  state.set(file, 2);
}
for (const file of graph.keys()) if (!state.has(file)) visit(file);

if (problems.length > 0) {
  console.error(`check-imports: ${problems.length} problem(s) in ${root}`);
  for (const p of problems) console.error(`  ${p}`);
  process.exit(1);
}
console.log(`check-imports: ${graph.size} files, every import between folders points down and goes through an entry file, no cycles`);
