/**
 * The ports a placement holds, as the unit sees them: `$PORT` (its first Port=) and
 * `$FLOTILLA_PORT_<NAME>` for each, appended to its `Environment=` so they win over a
 * same-named assignment there (an `EnvironmentFile=` still wins, as over any Environment=).
 * The agent expands `${PORT}` in exec lines from this environment like any variable, and an
 * image unit gets them after its image's and `[Container]`'s own variables.
 *
 * Only the ports the file declares count: a placement may still hold ports a changed file no
 * longer names (the leader rewrites them in its next pass).
 */
import type { PortAssignment } from '../../proto/flotilla/v1/records.js';
import { portEnvName, type UnitDefinition } from '../../unit/index.js';

/** The placement's ports for the Port= names `def` declares, in the file's order. */
export function declaredPorts(
  def: UnitDefinition,
  ports: readonly PortAssignment[],
): PortAssignment[] {
  const declared = def.xService?.ports ?? [];
  const out: PortAssignment[] = [];
  for (const want of declared) {
    const got = ports.find((p) => p.name === want.name);
    if (got !== undefined && got.number > 0) out.push(got);
  }
  return out;
}

/** `def` with the environment variables of `ports` (see the module comment). */
export function withPortEnvironment(
  def: UnitDefinition,
  ports: readonly PortAssignment[],
): UnitDefinition {
  const held = declaredPorts(def, ports);
  const first = held[0];
  if (first === undefined) return def;
  const vars: (readonly [string, string])[] = [['PORT', String(first.number)]];
  for (const p of held) vars.push([portEnvName(p.name), String(p.number)]);
  return {
    ...def,
    service: { ...def.service, environment: [...def.service.environment, ...vars] },
  };
}
