/**
 * Submit and plan: paste a unit file or drop one on the page, check it (the API verifies it
 * and the planner says where it would go, writing nothing), then submit it or submit and
 * start it. Verification errors are shown at their lines, beside the text.
 */
import { useState } from 'preact/hooks';
import { plan, setDesired, submit } from '../actions.js';
import { ApiFailure } from '../api.js';
import { linkProps } from '../router.js';
import { may } from '../session.js';
import type { PlanJson } from '../types.js';

/** The largest file the page reads (the API's own limit is 256 KiB). */
const FILE_MAX = 256 * 1024;

/** One problem of a refused file, as the API lists them (`error.problems`). */
interface Problem {
  readonly line?: number;
  readonly message?: string;
}

/**
 * A verification error's problems by line number (0: not at a line): from the API's list
 * when it sends one, else from its message's "name:LINE: message" lines.
 */
export function errorsByLine(message: string, body?: unknown): Map<number, string[]> {
  const out = new Map<number, string[]>();
  const problems = (body as { error?: { problems?: Problem[] } } | null | undefined)?.error
    ?.problems;
  if (Array.isArray(problems) && problems.length > 0) {
    for (const p of problems) {
      const n = typeof p.line === 'number' ? p.line : 0;
      out.set(n, [...(out.get(n) ?? []), String(p.message ?? '')]);
    }
    // The list is bounded; the message has every problem, so nothing is lost beyond it.
    if (message.split('\n').length > problems.length) {
      out.set(0, [
        ...(out.get(0) ?? []),
        `and more: ${message.split('\n').length - problems.length} further problems`,
      ]);
    }
    return out;
  }
  for (const line of message.split('\n')) {
    const m = /^(?:[^\s:]+):(\d+): (.*)$/.exec(line);
    const n = m !== null ? Number(m[1]) : 0;
    const list = out.get(n) ?? [];
    list.push(m !== null ? (m[2] as string) : line);
    out.set(n, list);
  }
  return out;
}

export function SubmitView() {
  const [name, setName] = useState('');
  const [text, setText] = useState('');
  const [errors, setErrors] = useState<Map<number, string[]>>(new Map());
  const [result, setResult] = useState<PlanJson | undefined>();
  const [done, setDone] = useState('');
  const [busy, setBusy] = useState(false);

  const files = () => [{ name: name.trim(), contents: text }];
  const run = async (fn: () => Promise<void>) => {
    setBusy(true);
    setErrors(new Map());
    setDone('');
    try {
      await fn();
    } catch (e) {
      setResult(undefined);
      setErrors(
        e instanceof ApiFailure ? errorsByLine(e.message, e.body) : errorsByLine(String(e)),
      );
    } finally {
      setBusy(false);
    }
  };
  const onDrop = (e: DragEvent) => {
    e.preventDefault();
    const f = e.dataTransfer?.files[0];
    if (f === undefined) return;
    if (f.size > FILE_MAX) {
      setErrors(new Map([[0, [`${f.name} is ${f.size} bytes; a unit file may have 262144`]]]));
      return;
    }
    void f.text().then((t) => {
      setName(f.name);
      setText(t);
    });
  };
  const lines = text.split('\n');
  const general = errors.get(0) ?? [];

  return (
    <div class="submit-page" onDragOver={(e) => e.preventDefault()} onDrop={onDrop}>
      <div class="toolbar">
        <input
          placeholder="name, e.g. web@.service"
          value={name}
          onInput={(e) => setName((e.target as HTMLInputElement).value)}
          data-test="submit-name"
        />
        <button
          disabled={busy || name === ''}
          onClick={() =>
            run(async () => {
              setResult(await plan(files()));
            })
          }
          data-test="plan"
        >
          Check and plan
        </button>
        {may('submit') && (
          <>
            <button
              disabled={busy || name === ''}
              onClick={() =>
                run(async () => {
                  await submit(files(), '', true);
                  setDone('submitted');
                })
              }
              data-test="submit"
            >
              Submit
            </button>
            {may('start-stop') && (
              <button
                disabled={busy || name === ''}
                onClick={() =>
                  run(async () => {
                    await submit(files(), '', true);
                    if (!name.includes('@.')) await setDesired([name.trim()], 'start');
                    setDone('submitted and started');
                  })
                }
                data-test="submit-start"
              >
                Submit and start
              </button>
            )}
          </>
        )}
        <span class="muted">or drop a file here</span>
      </div>
      {general.length > 0 && (
        <div class="error" data-test="submit-error">
          {general.map((g) => (
            <div>{g}</div>
          ))}
        </div>
      )}
      {done !== '' && (
        <p class="ok" data-test="submit-done">
          {done}: <a {...linkProps(`units/${name.trim()}`)}>{name.trim()}</a>
        </p>
      )}
      <div class="editor">
        <div class="gutter" aria-hidden="true">
          {lines.map((_, i) => (
            <div class={errors.has(i + 1) ? 'bad' : ''} data-line={i + 1}>
              {i + 1}
            </div>
          ))}
        </div>
        <textarea
          spellcheck={false}
          value={text}
          rows={Math.max(16, lines.length + 1)}
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value.slice(0, FILE_MAX))}
          placeholder="[Service]&#10;ExecStart=/bin/sleep infinity"
          data-test="submit-text"
        />
      </div>
      {[...errors.entries()]
        .filter(([n]) => n > 0)
        .map(([n, msgs]) => (
          <div class="error" data-test="line-error" data-line={n}>
            line {n}: {msgs.join('; ')}
          </div>
        ))}
      {result !== undefined && (
        <div data-test="plan-result">
          <h3>Plan ({result.machines ?? 0} machines)</h3>
          {(result.units ?? []).map((u) => (
            <div>
              {u.name}:{' '}
              {u.machine !== undefined
                ? `would run on ${u.machine}`
                : `would wait: ${u.unscheduled?.summary ?? ''}`}
              {(u.displaces?.length ?? 0) > 0 && ` (displaces ${u.displaces?.join(', ')})`}
            </div>
          ))}
        </div>
      )}
    </div>
  );
}
