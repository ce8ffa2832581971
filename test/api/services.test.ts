/**
 * services/<name> records: a submit of a unit declaring [X-Service] writes its service in the
 * same transaction, a destroy takes the unit out (and the record with its last unit); two
 * services publishing one port, or two files of one service disagreeing on Publish=, are
 * refused with a message that says what to do, and nothing is written.
 */
import { status } from '@grpc/grpc-js';
import test from 'ava';
import { codecs } from '../../store/index.js';
import { etcdForFile } from '../../testkit/index.js';
import { failure, fingerprint, startApi, type Api } from './api-kit.js';

const server = etcdForFile(test);

function file(name: string, xService: string): { name: string; contents: string } {
  return { name, contents: `[Service]\nExecStart=/bin/sleep 1000\n\n[X-Service]\n${xService}` };
}

async function service(api: Api, name: string) {
  return (await api.store.getRecord(codecs.service, api.store.keys.service(name)))?.value;
}

test('a submit writes the service its units declare, at the same revision as the units', async (t) => {
  const api = await startApi(t, server());
  const res = await api.submit({
    files: [
      file('web@.service', 'Port=http\nPublish=8080\nTags=blue\n'),
      file('web-canary.service', 'Name=web\nPort=http\nPublish=8080:http\nTags=canary\n'),
      file('db.service', 'Port=pg=5432\n'),
    ],
  });
  t.deepEqual(await service(api, 'web'), {
    name: 'web',
    publish: 8080,
    publishPortName: 'http',
    units: ['web-canary.service', 'web@.service'],
  });
  t.deepEqual(await service(api, 'db'), {
    name: 'db',
    publish: 0,
    publishPortName: '',
    units: ['db.service'],
  });
  const kv = await api.store.get(api.store.keys.service('web'));
  t.is(kv?.modRevision, res.revision);
});

test('a destroy takes the unit out of its service, and the record goes with the last unit', async (t) => {
  const api = await startApi(t, server());
  await api.submit({
    files: [
      file('web@.service', 'Port=http\nPublish=8080\n'),
      file('web-canary.service', 'Name=web\nPort=http\nPublish=8080\n'),
    ],
  });
  await api.destroy(['web@.service']);
  t.deepEqual((await service(api, 'web'))?.units, ['web-canary.service']);
  await api.destroy(['web-canary.service']);
  t.is(await service(api, 'web'), undefined);
});

test('a second service publishing a taken port is refused and nothing is written', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [file('web.service', 'Port=http\nPublish=8080\n')] });
  const before = await fingerprint(api.store);
  const err = await failure(
    api.submit({
      files: [
        file('other.service', 'Port=http\n'),
        file('api.service', 'Port=http\nPublish=8080\n'),
      ],
    }),
  );
  t.is(err.code, status.FAILED_PRECONDITION);
  t.regex(
    err.details,
    /service api cannot publish port 8080: service web publishes it.*choose another Publish=/,
  );
  t.deepEqual(await fingerprint(api.store), before);
  // Once the first is destroyed, the port is free again.
  await api.destroy(['web.service']);
  await api.submit({ files: [file('api.service', 'Port=http\nPublish=8080\n')] });
  t.is((await service(api, 'api'))?.publish, 8080);
});

test('two unit files of one service must agree on Publish=', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [file('web@.service', 'Port=http\nPublish=8080\n')] });
  const before = await fingerprint(api.store);
  const err = await failure(
    api.submit({ files: [file('web-v2@.service', 'Name=web\nPort=http\nPublish=9090\n')] }),
  );
  t.is(err.code, status.FAILED_PRECONDITION);
  t.regex(
    err.details,
    /web-v2@\.service declares Publish=9090:http for service web, but web@\.service declares Publish=8080:http for it/,
  );
  t.deepEqual(await fingerprint(api.store), before);
});

test('a replaced file that renames its service moves the unit from the old record to the new', async (t) => {
  const api = await startApi(t, server());
  await api.submit({ files: [file('web.service', 'Port=http\n')] });
  await api.submit({ files: [file('web.service', 'Name=www\nPort=http\n')], replace: true });
  t.is(await service(api, 'web'), undefined);
  t.deepEqual((await service(api, 'www'))?.units, ['web.service']);
});
