/**
 * Services and their endpoints, as `flotctl list-services` and `flotctl endpoints NAME` show
 * them: read from the API when the view opens and again after service or endpoint events
 * (at most every half second), so the page follows instances as they join and leave.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, call, enc } from '../api.js';
import { linkProps } from '../router.js';
import { model, useModel } from '../session.js';

interface ServiceJson {
  readonly name?: string;
  readonly healthy?: number;
  readonly total?: number;
  readonly publish?: number;
  readonly tags?: readonly string[];
}
interface EndpointJson {
  readonly endpoint?: {
    readonly unit?: string;
    readonly machine?: string;
    readonly address?: string;
    readonly port?: number;
    readonly portName?: string;
    readonly tags?: readonly string[];
    readonly health?: string;
  };
  readonly healthy?: boolean;
}

/** Reads `path` again whenever service or endpoint events arrive. */
function useServiceRead<T>(path: string): { data: T | undefined; error: string } {
  useModel(500);
  const version = model.servicesVersion;
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  useEffect(() => {
    let live = true;
    call<T>('GET', path).then(
      (d) => {
        if (!live) return;
        setData(d);
        setError('');
      },
      (e: unknown) => live && setError(e instanceof ApiFailure ? e.message : String(e)),
    );
    return () => {
      live = false;
    };
  }, [path, version]);
  return { data, error };
}

export function ServicesView() {
  const { data, error } = useServiceRead<{ services?: ServiceJson[] }>('/api/v1/services');
  const services = data?.services ?? [];
  return (
    <div>
      <h2>Services</h2>
      {error !== '' && <p class="error">{error}</p>}
      {data !== undefined && services.length === 0 && (
        <p class="muted">No services. A unit declares one with [X-Service] Port= and Publish=.</p>
      )}
      <table class="grid" data-test="services">
        <thead>
          <tr>
            <th>Name</th>
            <th>Endpoints</th>
            <th>Publish</th>
            <th>Tags</th>
          </tr>
        </thead>
        <tbody>
          {services.map((s) => (
            <tr data-service={s.name}>
              <td>
                <a {...linkProps(`services/${s.name ?? ''}`)}>{s.name}</a>
              </td>
              <td>
                {s.healthy ?? 0}/{s.total ?? 0}
              </td>
              <td>{(s.publish ?? 0) > 0 ? s.publish : '-'}</td>
              <td>{(s.tags ?? []).join(' ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export function ServiceView({ name }: { name: string }) {
  const { data, error } = useServiceRead<{ endpoints?: EndpointJson[] }>(
    `/api/v1/services/${enc(name)}/endpoints`,
  );
  const endpoints = data?.endpoints ?? [];
  return (
    <div>
      <h2>
        <a {...linkProps('services')}>Services</a> / {name}
      </h2>
      {error !== '' && <p class="error">{error}</p>}
      {data !== undefined && endpoints.length === 0 && (
        <p class="muted">No endpoint serves: no instance is active and healthy.</p>
      )}
      <table class="grid" data-test="endpoints">
        <thead>
          <tr>
            <th>Unit</th>
            <th>Machine</th>
            <th>Address</th>
            <th>Health</th>
            <th>Tags</th>
          </tr>
        </thead>
        <tbody>
          {endpoints.map(({ endpoint: e, healthy }) => (
            <tr data-endpoint={e?.unit}>
              <td>
                <a {...linkProps(`units/${e?.unit ?? ''}`)}>{e?.unit}</a>
              </td>
              <td>{(e?.machine ?? '').slice(0, 12)}</td>
              <td>
                {e?.address}:{e?.port}
              </td>
              <td>{healthy === true ? (e?.health ?? 'none') : 'not serving'}</td>
              <td>{(e?.tags ?? []).join(' ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
