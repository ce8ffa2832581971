// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'proto/flotilla/v1/*.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    // The planner is a pure function of a snapshot: it must stay replayable and benchmarkable
    // on its own, so it may not reach etcd, gRPC, logging or the clock.
    files: ['scheduler/planner/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['etcd3', 'etcd3/*'], message: 'The planner is pure: no etcd.' },
            { group: ['@grpc/*'], message: 'The planner is pure: no gRPC.' },
            { group: ['pino', 'pino/*'], message: 'The planner is pure: no logging.' },
            {
              group: ['node:timers', 'node:timers/*', 'timers', 'timers/*'],
              message: 'The planner is pure: no timers.',
            },
            {
              group: ['**/store/**', '**/proto/**'],
              message: 'The planner is pure: no store or wire types.',
            },
          ],
        },
      ],
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'The planner is pure: no timers.' },
        { name: 'setInterval', message: 'The planner is pure: no timers.' },
        { name: 'setImmediate', message: 'The planner is pure: no timers.' },
      ],
      'no-restricted-properties': [
        'error',
        { object: 'Date', property: 'now', message: 'The planner is pure: time is an input.' },
        {
          object: 'Math',
          property: 'random',
          message: 'The planner is pure: the seed is an input.',
        },
      ],
    },
  },
);
