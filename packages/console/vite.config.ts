import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

const outDir = fileURLToPath(new URL('../quoll/console', import.meta.url));

/**
 * Writes `.br` and `.gz` beside every built text file over 1 KB, compressed at the highest
 * levels once here: the server sends them as they are (no compression per request or at start).
 */
function precompress(): Plugin {
  return {
    name: 'quoll-precompress',
    apply: 'build',
    closeBundle() {
      const walk = (dir: string): void => {
        for (const entry of readdirSync(dir, { withFileTypes: true })) {
          const path = join(dir, entry.name);
          if (entry.isDirectory()) walk(path);
          else if (/\.(js|css|html|svg|json)$/.test(entry.name)) {
            const body = readFileSync(path);
            if (body.length <= 1024) continue;
            writeFileSync(`${path}.gz`, gzipSync(body, { level: 9 }));
            writeFileSync(
              `${path}.br`,
              brotliCompressSync(body, {
                params: {
                  [constants.BROTLI_PARAM_QUALITY]: 11,
                  [constants.BROTLI_PARAM_SIZE_HINT]: body.length,
                },
              }),
            );
          }
        }
      };
      walk(outDir);
    },
  };
}

/** The console builds into the quoll package, which serves it at `/` and ships it. */
export default defineConfig({
  root: fileURLToPath(new URL('./app', import.meta.url)),
  base: '/',
  publicDir: false,
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  resolve: { alias: { react: 'preact/compat', 'react-dom': 'preact/compat' } },
  plugins: [precompress()],
  build: {
    outDir,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 1200,
  },
});
