/**
 * The console's shell: asks who the caller is (or shows the login), starts the live model,
 * and shows the view the path names, under a bar of links and the feed's status.
 */
import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiFailure, whenUnauthenticated } from './api.js';
import { linkProps, useRoute } from './router.js';
import { loadMe, me, startLive, useLiveStatus } from './session.js';
import { EventsView } from './views/events-view.js';
import { LoginView } from './views/login-view.js';
import { MachinesView, MachineView } from './views/machines-view.js';
import { MapView } from './views/map-view.js';
import { RolloutsView } from './views/rollouts-view.js';
import { ServicesView, ServiceView } from './views/services-view.js';
import { SubmitView } from './views/submit-view.js';
import { UnitView } from './views/unit-view.js';
import { UnitsView } from './views/units-view.js';

const NAV: readonly [string, string][] = [
  ['', 'Map'],
  ['units', 'Units'],
  ['machines', 'Machines'],
  ['services', 'Services'],
  ['rollouts', 'Rollouts'],
  ['events', 'Events'],
  ['submit', 'Submit'],
];

function View({ route }: { route: string }) {
  const [head, ...rest] = route.split('/');
  const arg = rest.join('/');
  switch (head) {
    case '':
      return <MapView />;
    case 'units':
      return arg === '' ? <UnitsView /> : <UnitView name={arg} />;
    case 'machines':
      return arg === '' ? <MachinesView /> : <MachineView id={arg} />;
    case 'services':
      return arg === '' ? <ServicesView /> : <ServiceView name={arg} />;
    case 'rollouts':
      return <RolloutsView />;
    case 'events':
      return <EventsView />;
    case 'submit':
      return <SubmitView />;
    default:
      return <p>Nothing here: pick a view above.</p>;
  }
}

function Shell() {
  const route = useRoute();
  const live = useLiveStatus();
  const head = route.split('/')[0] ?? '';
  return (
    <div class="shell">
      <header>
        <strong class="brand">Flotilla</strong>
        <nav>
          {NAV.map(([r, label]) => (
            <a {...linkProps(r)} class={head === r ? 'active' : ''}>
              {label}
            </a>
          ))}
        </nav>
        <span class={`live l-${live.status}`} data-test="live" title={live.problem}>
          {live.status}
        </span>
        <span class="who" data-test="who">
          {me.authorization === 'off'
            ? 'no auth policy'
            : `${me.identity ?? ''} (${(me.roles ?? []).join(', ')})`}
        </span>
      </header>
      <main>
        <View route={route} />
      </main>
    </div>
  );
}

function App() {
  const [phase, setPhase] = useState<'checking' | 'login' | 'ready' | 'error'>('checking');
  const [error, setError] = useState('');
  const begin = () => {
    loadMe()
      .then(() => {
        setPhase('ready');
        startLive()
          .start()
          .catch((e: unknown) => setError(e instanceof ApiFailure ? e.message : String(e)));
      })
      .catch((e: unknown) => {
        if (e instanceof ApiFailure && e.status === 401) setPhase('login');
        else {
          setError(e instanceof ApiFailure ? e.message : String(e));
          setPhase('error');
        }
      });
  };
  useEffect(() => {
    whenUnauthenticated(() => setPhase('login'));
    begin();
  }, []);
  if (phase === 'login') return <LoginView onLogin={begin} />;
  if (phase === 'checking') return <p class="muted">Connecting…</p>;
  return (
    <>
      {error !== '' && <p class="error banner">{error}</p>}
      {phase === 'ready' && <Shell />}
    </>
  );
}

render(<App />, document.getElementById('app') as HTMLElement);
