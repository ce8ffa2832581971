import { fileURLToPath } from 'node:url';

/**
 * The example unit files every part must handle, and `bad/` ones it must reject: the
 * repository's copy in deploy/examples/ (dist/testkit/ -> deploy/examples/), so tests
 * need nothing outside the checkout. Ends with a slash.
 */
export const EXAMPLES = fileURLToPath(new URL('../../deploy/examples/', import.meta.url));
