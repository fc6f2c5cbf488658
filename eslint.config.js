import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'bench/results/**', '**/*.js', '**/*.cjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      // Store ports are async (for a future PostgreSQL store) while SQLite answers synchronously.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
  {
    // The SDK's root entry loads in browsers: Node-only code lives in packages/client/src/node/.
    files: ['packages/client/src/**/*.ts'],
    ignores: ['packages/client/src/node/**', 'packages/client/src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: '^(node:.*|fs|fs/promises|path|os|stream|util|url|buffer|crypto|child_process)$',
              message:
                'The SDK root must load in a browser; put Node-only code in packages/client/src/node/.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'process', message: 'Not in browsers; Node-only code goes in packages/client/src/node/.' },
        { name: 'Buffer', message: 'Not in browsers; use Uint8Array, TextEncoder/TextDecoder.' },
        { name: '__dirname', message: 'Not in browsers.' },
        { name: 'require', message: 'Not in browsers or ES modules.' },
      ],
    },
  },
);
