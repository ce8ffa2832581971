/**
 * One unit: its status (where it runs, or why it waits), health checks, restarts, its recent
 * events from the page's feed, its file, a live tail of its log, and the actions the caller
 * may take. The status is read again whenever an event names the unit.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import { destroy, setDesired, scale } from '../actions.js';
import { call, enc, ApiFailure } from '../api.js';
import { templateOf, unitSummary } from '../model.js';
import { linkProps, navigate } from '../router.js';
import { may, model, useModel } from '../session.js';
import type { UnitStatusJson } from '../types.js';
import { eventLine } from './events-view.js';

/** Log lines kept on the page (older ones scroll away). */
const LOG_LINES = 500;
/** A log line is cut at this many characters. */
const LOG_LINE_MAX = 2_000;

/** How long a tail that ended (the unit stopped, moved or restarted) waits to open again. */
const LOG_RETRY_MS = 3_000;

/**
 * The unit's log, live: the last 100 lines, then each new one, from the API's followed tail
 * (Server-Sent Events of `line` messages). A tail that ends (the unit is not running, or it
 * moved) is opened again every few seconds while the page is open.
 */
function LogTail({ name }: { name: string }) {
  const [lines, setLines] = useState<string[]>([]);
  const [problem, setProblem] = useState('');
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const ctl = new AbortController();
    let buf: string[] = [];
    let first = true;
    const timer = setInterval(() => {
      if (buf.length === 0) return;
      const add = buf;
      buf = [];
      setLines((old) => [...old, ...add].slice(-LOG_LINES));
    }, 100);
    const follow = async (): Promise<void> => {
      // The first opening shows the last 100 lines; a reopening only what is new.
      const back = first ? 100 : 0;
      first = false;
      const res = await fetch(`/api/v1/units/${enc(name)}/logs?follow=1&lines=${back}`, {
        credentials: 'same-origin',
        signal: ctl.signal,
      });
      if (!res.ok || res.body === null) {
        const text = (await res.text()).slice(0, 500);
        let why = text;
        try {
          why = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? text;
        } catch {
          // not JSON: the text as it is
        }
        setProblem(`no log yet: ${why}`);
        return;
      }
      setProblem('');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let rest = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        rest += value;
        const parts = rest.split('\n');
        rest = (parts.pop() ?? '').slice(-LOG_LINE_MAX * 4);
        for (const p of parts) {
          const text = sseLine(p);
          if (text !== undefined) buf.push(text.slice(0, LOG_LINE_MAX));
        }
      }
      setProblem('the log stream ended (the unit stopped or moved); following again');
    };
    void (async () => {
      while (!ctl.signal.aborted) {
        try {
          await follow();
        } catch (err) {
          if (ctl.signal.aborted) return;
          setProblem(`the log stream broke: ${String(err)}`);
        }
        await new Promise((r) => setTimeout(r, LOG_RETRY_MS));
      }
    })();
    return () => {
      ctl.abort();
      clearInterval(timer);
    };
  }, [name]);
  useEffect(() => {
    const el = pre.current;
    if (el !== null) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <div>
      <pre class="log" ref={pre} data-test="log">
        {lines.join('\n')}
      </pre>
      {problem !== '' && <p class="muted">{problem}</p>}
    </div>
  );
}

/** The text of an SSE `data:` line of a followed tail (`{"time","stream","text"}`), else undefined. */
function sseLine(raw: string): string | undefined {
  if (!raw.startsWith('data:')) return undefined;
  try {
    const j = JSON.parse(raw.slice(5)) as { text?: string; code?: string; message?: string };
    return j.text ?? (j.message !== undefined ? `[${j.code ?? 'error'}] ${j.message}` : undefined);
  } catch {
    return undefined;
  }
}

export function UnitView({ name }: { name: string }) {
  useModel(250);
  const row = model.units.get(name);
  const [status, setStatus] = useState<UnitStatusJson | undefined>();
  const [file, setFile] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState('');
  const [count, setCount] = useState('');
  const [note, setNote] = useState('');
  const recent = model.recent.filter((e) => e.name === name).slice(-30);
  const lastRev = recent.at(-1)?.revision ?? '';

  useEffect(() => {
    call<UnitStatusJson>('GET', `/api/v1/units/${enc(name)}`)
      .then((s) => setStatus(s))
      .catch((e: unknown) => setError(e instanceof ApiFailure ? e.message : String(e)));
  }, [name, lastRev]);
  useEffect(() => {
    call<{ contents?: string; file?: string } | string>('GET', `/api/v1/units/${enc(name)}/file`)
      .then((f) => setFile(typeof f === 'string' ? f : (f.contents ?? f.file ?? '')))
      .catch(() => setFile(''));
  }, [name, status?.unit?.hash]);

  const act = async (label: string, fn: () => Promise<unknown>) => {
    setBusy(label);
    setError('');
    setNote('');
    try {
      await fn();
      setNote(`${label}: done`);
    } catch (e) {
      setError(e instanceof ApiFailure ? `${e.code}: ${e.message}` : String(e));
    } finally {
      setBusy('');
    }
  };
  const st = status?.state;
  const template = templateOf(name);
  const isTemplate = /@\./.test(name);
  return (
    <div class="unit-page">
      <h2>
        {name}{' '}
        {row !== undefined && (
          <span class={`pill s-${unitSummary(row)}`} data-test="unit-state">
            {unitSummary(row)}
          </span>
        )}
      </h2>
      {error !== '' && (
        <p class="error" data-test="error">
          {error}
        </p>
      )}
      <div class="actions">
        {may('start-stop') && !isTemplate && (
          <>
            <button
              disabled={busy !== ''}
              onClick={() => act('start', () => setDesired([name], 'start'))}
              data-test="start"
            >
              Start
            </button>
            <button
              disabled={busy !== ''}
              onClick={() => act('stop', () => setDesired([name], 'stop'))}
              data-test="stop"
            >
              Stop
            </button>
            <button
              disabled={busy !== ''}
              onClick={() => act('unload', () => setDesired([name], 'unload'))}
            >
              Unload
            </button>
          </>
        )}
        {may('destroy') && (
          <button
            class="danger"
            disabled={busy !== ''}
            onClick={() =>
              confirm(`Destroy ${name}?`) &&
              act('destroy', async () => {
                await destroy([name]);
                navigate('units');
              })
            }
            data-test="destroy"
          >
            Destroy
          </button>
        )}
        {may('scale') && isTemplate && (
          <span>
            <input
              size={5}
              value={count}
              placeholder="count"
              data-test="scale-count"
              onInput={(e) => setCount((e.target as HTMLInputElement).value)}
            />
            <button
              disabled={busy !== '' || !/^\d+$/.test(count)}
              onClick={() => act('scale', () => scale(name, Number(count)))}
              data-test="scale"
            >
              Scale
            </button>
          </span>
        )}
        {busy !== '' && <span class="muted">{busy}…</span>}
        {busy === '' && note !== '' && (
          <span class="ok" data-test="done">
            {note}
          </span>
        )}
      </div>
      <dl class="facts">
        <dt>desired</dt>
        <dd>{status?.unit?.desiredState ?? row?.desired ?? ''}</dd>
        <dt>current</dt>
        <dd>{status?.currentState ?? ''}</dd>
        <dt>machine</dt>
        <dd>
          {status?.placement?.machine !== undefined ? (
            <a {...linkProps(`machines/${status.placement.machine}`)}>
              {status.placement.machine} {status.addresses?.[status.placement.machine] ?? ''}
            </a>
          ) : status?.global === true ? (
            `${status.instances?.length ?? 0} machines (global)`
          ) : (
            'not placed'
          )}
        </dd>
        {status?.unscheduled !== undefined && (
          <>
            <dt>waiting</dt>
            <dd data-test="waiting">
              {status.unscheduled.summary}
              <ul>
                {(status.unscheduled.reasons ?? []).map((r) => (
                  <li>
                    {r.machines} machines: {r.reason}
                  </li>
                ))}
              </ul>
            </dd>
          </>
        )}
        <dt>state</dt>
        <dd>
          {st !== undefined
            ? `${st.loadState ?? ''} ${st.activeState ?? ''} ${st.subState ?? ''}`
            : 'no state reported'}
        </dd>
        {st?.message !== undefined && (
          <>
            <dt>message</dt>
            <dd>{st.message}</dd>
          </>
        )}
        <dt>restarts</dt>
        <dd>
          {st?.restarts ?? 0}
          {st?.restartReason !== undefined && ` (last: ${st.restartReason})`}
        </dd>
        <dt>health</dt>
        <dd>
          {st?.health ?? 'no check'}
          {(st?.healthFailures ?? 0) > 0 && ` (${st?.healthFailures} failures)`}
          <ul>
            {(st?.healthChecks ?? []).map((c) => (
              <li>
                exit {c.exitStatus ?? 0} in {c.durationMs ?? 0}ms {c.output ?? ''}
              </li>
            ))}
          </ul>
        </dd>
        {status?.image !== undefined && (
          <>
            <dt>image</dt>
            <dd>{status.image}</dd>
          </>
        )}
        {template !== '' && (
          <>
            <dt>template</dt>
            <dd>
              <a {...linkProps(`units/${template}`)}>{template}</a>
            </dd>
          </>
        )}
      </dl>
      {!isTemplate && (
        <>
          <h3>Log</h3>
          <LogTail name={name} />
        </>
      )}
      <h3>Recent events</h3>
      <pre class="events">{recent.map(eventLine).join('\n') || 'none since the page opened'}</pre>
      <h3>File</h3>
      <pre class="file">{file}</pre>
    </div>
  );
}
