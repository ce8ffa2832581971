/**
 * The reconciler's side of [X-Service]: what a unit is started with (its placement's ports in
 * its environment), what it serves once running (told to the {@link EndpointPublisher}), and
 * taking it out of service before it stops (endpoints deleted first, then DrainSec=).
 */
import type { Logger } from 'pino';
import type { PortAssignment } from '../../proto/flotilla/v1/records.js';
import type { UnitDefinition } from '../../unit/index.js';
import type { EndpointPublisher } from './endpoints.js';
import { declaredPorts, withPortEnvironment } from './unit-ports.js';

/** The ports as one comparable string. */
function portsKey(ports: readonly PortAssignment[]): string {
  return ports.map((p) => `${p.name}=${p.number}`).join(',');
}

export class UnitServing {
  /**
   * The placement ports each unit was started with (its environment holds them), so a
   * placement whose ports change under a running unit restarts it. Absent for adopted units.
   */
  private readonly startedPorts = new Map<string, string>();

  constructor(
    private readonly endpoints: EndpointPublisher | undefined,
    private readonly log: Logger,
  ) {}

  /** `def` as `name` starts now with `ports` (its placement's), serving once it runs. */
  starting(name: string, def: UnitDefinition, ports: readonly PortAssignment[]): UnitDefinition {
    const withPorts = withPortEnvironment(def, ports);
    this.startedPorts.set(name, portsKey(ports));
    this.serve(name, withPorts, ports);
    return withPorts;
  }

  /** True when `name` runs with other ports than its placement now holds. */
  portsMoved(name: string, ports: readonly PortAssignment[]): boolean {
    const started = this.startedPorts.get(name);
    return started !== undefined && started !== portsKey(ports);
  }

  /** `name` runs `def` as placed: it serves what the file declares (level-triggered). */
  serve(name: string, def: UnitDefinition, ports: readonly PortAssignment[]): void {
    this.endpoints?.serve(
      name,
      def.xService,
      declaredPorts(def, ports),
      def.service.health !== undefined,
    );
  }

  /** Withdraws `name`'s endpoints (deleted first), then waits its DrainSec=. */
  async drain(name: string): Promise<void> {
    this.startedPorts.delete(name);
    const ms = (await this.endpoints?.withdraw(name)) ?? 0;
    if (ms <= 0) return;
    this.log.debug({ unit: name, drainMs: ms }, 'endpoints withdrawn: draining before the stop');
    await new Promise((resolve) => setTimeout(resolve, ms));
  }
}
