/**
 * The console's routes on the HTTP listener: `/ui/...` its files (console-assets.ts), `/ui`
 * and `/` sent on to `/ui/`. Public: the files hold no cluster data (the page asks the API,
 * as its caller, for everything it shows), and the login page is among them.
 */
import { ConsoleAssets } from './console-assets.js';
import type { HttpCall, HttpRoute } from './router.js';

function redirect(call: HttpCall): Promise<void> {
  call.res.writeHead(308, { location: '/ui/', 'cache-control': 'no-cache', 'content-length': 0 });
  call.res.end();
  return Promise.resolve();
}

/** The console's routes, serving the files of `dir` (default dist/ui/ beside the build). */
export function consoleRoutes(dir?: string): HttpRoute[] {
  const assets = new ConsoleAssets(dir);
  const serve = async (call: HttpCall): Promise<void> => {
    const a = await assets.get(call.params['path'] ?? '');
    call.res.writeHead(a.status, { ...a.headers, 'content-length': a.body.length });
    call.res.end(call.req.method === 'HEAD' ? undefined : a.body);
  };
  return [
    { method: 'GET', path: '/', access: 'public', handler: redirect },
    { method: 'GET', path: '/ui', access: 'public', handler: redirect },
    { method: 'GET', path: '/ui/*path', access: 'public', handler: serve },
  ];
}
