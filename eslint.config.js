// Flat config: typescript-eslint's recommended rules on every TypeScript file; `any` is an error in
// src/ (the library's public surface), a warning elsewhere would still fail `--max-warnings 0`.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'demo-dist/**', 'node_modules/**', 'coverage/**', 'bench/out/**', 'test-artifacts/**', 'docs/api/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The library takes users' sizes.
    files: ['src/**/*.ts'],
    rules: {
      // Math.max(...values) passes every value as an argument: past ≈ 125 000 of them (a vocabulary's
      // columns, a file's tensors) it throws "Maximum call stack size exceeded". Fold with a loop or reduce.
      'no-restricted-syntax': [
        'error',
        {
          selector: "CallExpression[callee.object.name='Math'][callee.property.name=/^(max|min)$/] > SpreadElement",
          message: 'Math.max/min(...values) overflows the stack past ≈ 125 000 values: fold with a loop or reduce',
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
);
