// tsc does not copy non-TypeScript files; the Lua scripts must sit beside the compiled loader.
import { cpSync, readdirSync, statSync, mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';

function copy(dir) {
  for (const name of readdirSync(dir)) {
    const src = join(dir, name);
    if (statSync(src).isDirectory()) copy(src);
    else if (name.endsWith('.lua')) {
      const dst = join('dist', src.slice('src/'.length));
      mkdirSync(dirname(dst), { recursive: true });
      cpSync(src, dst);
    }
  }
}
copy('src');
