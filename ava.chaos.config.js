// The chaos suite (npm run test:chaos): real clusters with faults, one file at a time.
// `npm test` leaves these files out (package.json's ava.files).
export default {
  files: ['dist/test/chaos/**/*.test.js'],
  timeout: '10m',
  concurrency: 1,
  workerThreads: false,
};
