// tsc does not copy non-TypeScript files; every Lua script (directory/redis/scripts/*.lua, auth/lua/*.lua,
// registered through directory/redis/scripts.ts) must sit beside the compiled module that reads it.
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
