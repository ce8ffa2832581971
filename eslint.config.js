// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The boundaries between folders (docs/architecture.md, "Code layout"), held by the linter so
 * that no one has to remember them. Each is a no-restricted-imports pattern with the reason;
 * a file gets every boundary of the folders it is in (ESLint does not merge one rule's options
 * across config objects, so each block lists all that apply to it).
 */
const noTests = {
  group: ['**/test/**', '!**/testkit/**'],
  message: 'Only tests import test files: put what others need in testkit/.',
};
const noStore = (who) => ({
  group: ['**/store/**', 'etcd3', 'etcd3/*'],
  message: `${who} never talks to etcd: that is agent/sync/'s job.`,
});
const restricted = (...patterns) => ({
  'no-restricted-imports': ['error', { patterns }],
});

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
    // Every file but a test: test files are no library.
    files: ['**/*.ts'],
    ignores: ['test/**'],
    rules: restricted(noTests),
  },
  {
    // flotctl talks to the API, never to etcd or a daemon's insides; what it shares with the
    // daemons lives in proto/, unit/, daemon/ or lib/.
    files: ['cli/**/*.ts'],
    rules: restricted(noTests, {
      group: [
        '**/store/**',
        '**/scheduler/**',
        '**/agent/**',
        '**/registry/**',
        'etcd3',
        'etcd3/*',
      ],
      message:
        'flotctl imports only proto/, unit/, daemon/ and lib/: it reaches the cluster through the API.',
    }),
  },
  {
    // A unit's local life (manager, supervisors, health) runs the same with etcd gone.
    files: ['agent/units/**/*.ts'],
    rules: restricted(noTests, noStore('The local unit runtime')),
  },
  {
    // The routing mesh and DNS read services through agent/mesh/catalog.ts; sync/ feeds it.
    files: ['agent/mesh/**/*.ts', 'agent/dns/**/*.ts'],
    rules: restricted(noTests, noStore('The routing mesh and DNS')),
  },
  {
    // The runtime drivers are the agent's floor: they import nothing above them.
    files: ['agent/runtime/**/*.ts'],
    rules: restricted(noTests, noStore('The runtime'), {
      group: ['../units/**', '../sync/**', '../logs/**', '../images/**', '../*.js'],
      message: 'agent/runtime/ is the lowest layer of the agent: it imports nothing above it.',
    }),
  },
  {
    // lib/ holds leaves: anything may import them, so they import nothing of the project.
    files: ['lib/**/*.ts'],
    rules: restricted({
      group: ['../*', '!./*'],
      message: 'lib/ modules are leaves: they import nothing of the project.',
    }),
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
            noTests,
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
