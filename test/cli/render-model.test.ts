/**
 * render's model and template helpers, without a cluster: what a template sees after a
 * listing and events, the selection helpers, and that configs are not HTML-escaped.
 */
import test from 'ava';
import { Event } from '../../proto/flotilla/v1/events.js';
import { Endpoint, Service } from '../../proto/flotilla/v1/records.js';
import { compileTemplate, ServiceModel } from '../../cli/render-model.js';
import { CliError } from '../../cli/cli-error.js';

const endpoint = (unit: string, port: number, extra: Partial<Endpoint> = {}): Endpoint =>
  Endpoint.fromPartial({
    service: 'web',
    unit,
    machine: 'm1',
    address: '10.0.0.1',
    port,
    portName: 'http',
    health: 'none',
    ...extra,
  });

function model(): ServiceModel {
  const m = new ServiceModel();
  m.setService(
    'web',
    Service.fromPartial({ name: 'web', publish: 8080, units: ['web@.service'] }),
    [
      endpoint('web@1.service', 20001, { tags: ['blue'] }),
      endpoint('web@2.service', 20002, { tags: ['green'], health: 'passing' }),
      endpoint('web@3.service', 20003, { tags: ['green'], health: 'critical' }),
      endpoint('web@4.service', 20004, { portName: 'admin', address: 'fd00::4' }),
    ],
  );
  return m;
}

test('a template sees each service with its healthy endpoints, selected by tag or port', (t) => {
  const render = compileTemplate(
    [
      '{{#each services}}{{name}} {{publish}} [{{#each tags}}{{this}} {{/each}}]',
      '{{#each (byTag endpoints "green")}}green {{hostPort}}',
      '{{/each}}{{#each (byPort endpoints "admin")}}admin {{hostPort}}',
      '{{/each}}{{#each endpoints}}{{#if (hasTag this "blue")}}blue {{slug unit}}{{/if}}{{/each}}',
      '{{/each}}{{#with (service "absent")}}absent has {{endpoints.length}}{{/with}}',
    ].join('\n'),
    'list.hbs',
  );
  t.is(
    render(model().data({})),
    [
      'web 8080 [blue green ]',
      'green 10.0.0.1:20002',
      'admin [fd00::4]:20004',
      'blue web_1.service',
      'absent has 0',
    ].join('\n'),
  );
});

test('events add and remove endpoints and services; others are ignored', (t) => {
  const m = model();
  const ev = (e: Partial<Event>): Event => Event.fromPartial({ revision: 1n, ...e });
  t.true(
    m.apply(
      ev({
        kind: 'endpoint',
        type: 'delete',
        name: 'web@1.service',
        machine: 'm1',
        serviceName: 'web',
        portName: 'http',
      }),
    ),
  );
  t.true(
    m.apply(
      ev({
        kind: 'endpoint',
        type: 'put',
        name: 'api@1.service',
        machine: 'm2',
        serviceName: 'api',
        portName: 'grpc',
        endpoint: endpoint('api@1.service', 9000, { service: 'api', portName: 'grpc' }),
      }),
    ),
  );
  t.false(m.apply(ev({ kind: 'unit', type: 'put', name: 'web@1.service' })));
  const data = m.data({ live: 'green' });
  t.deepEqual(Object.keys(data.services), ['api', 'web']);
  t.deepEqual(
    data.services['web']?.endpoints.map((e) => e.unit),
    ['web@2.service', 'web@4.service'],
  );
  t.is(data.vars['live'], 'green');
  // The service record goes; with no endpoints left, so does the service.
  m.apply(ev({ kind: 'service', type: 'delete', name: 'api', serviceName: 'api' }));
  t.deepEqual(Object.keys(m.data({}).services), ['api', 'web'], 'api still has an endpoint');
  m.apply(
    ev({
      kind: 'endpoint',
      type: 'delete',
      name: 'api@1.service',
      machine: 'm2',
      serviceName: 'api',
      portName: 'grpc',
    }),
  );
  t.deepEqual(Object.keys(m.data({}).services), ['web']);
});

test('configs are not HTML-escaped, and a template that does not compile names its line', (t) => {
  const render = compileTemplate('acl a hdr(x) -m str {{vars.v}}\n', 'a.hbs');
  t.is(render({ services: {}, vars: { v: "<a&b'>" } }), "acl a hdr(x) -m str <a&b'>\n");
  const err = t.throws(() => compileTemplate('x\ny {{foo bar=}}\nz\n', 'bad.hbs'));
  t.true(err instanceof CliError);
  t.regex(err?.message ?? '', /^bad\.hbs: .*line 2/);
});
