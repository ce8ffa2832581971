/**
 * An image unit's [Service] options once its image is on the machine: the image's config
 * (Entrypoint, Cmd, Env, WorkingDir, User) under the unit's `[Container]` overrides, under its
 * `[Service]` keys, on the overlay root. The result runs like a `RootDirectory=` unit, so the
 * drivers and the supervisor need to know nothing else about images. Pure: no I/O.
 *
 * The command, as Docker and podman build it: `Entrypoint=` replaces the image's Entrypoint
 * and then drops its Cmd; `Exec=` replaces the Cmd; `ExecStart=` in [Service] replaces both.
 */
import type { BindMount, ContainerOptions, ExecCommand, ServiceOptions } from '../../unit/model.js';
import { RuntimeError } from '../runtime/errors.js';
import { unitSecrets } from '../../unit/secrets.js';
import type { ImageConfig } from './oci.js';

/** The argv the image unit runs without ExecStart=; empty when neither says anything. */
export function imageArgv(c: ContainerOptions, config: ImageConfig): string[] {
  const entrypoint = c.entrypoint ?? config.entrypoint;
  const cmd = c.exec ?? (c.entrypoint !== undefined ? [] : config.cmd);
  return [...entrypoint, ...cmd];
}

function envPairs(env: readonly string[]): [string, string][] {
  return env.flatMap((e): [string, string][] => {
    const eq = e.indexOf('=');
    return eq > 0 ? [[e.slice(0, eq), e.slice(eq + 1)]] : [];
  });
}

/**
 * `service` for running `c` whose image has `config`, rooted at `root`, with `binds` for its
 * volumes. Throws RuntimeError('missing-program') when there is nothing to run.
 */
export function imageService(
  service: ServiceOptions,
  c: ContainerOptions,
  config: ImageConfig,
  image: string,
  root: string,
  binds: readonly BindMount[],
): ServiceOptions {
  let execStart = service.execStart;
  if (execStart.length === 0) {
    const argv = imageArgv(c, config);
    const [program] = argv;
    if (program === undefined || program === '') {
      throw new RuntimeError(
        'missing-program',
        `the image ${image} has no Entrypoint or Cmd: set Exec= or Entrypoint= in [Container]`,
      );
    }
    const cmd: ExecCommand = {
      path: program,
      argv,
      ignoreFailure: false,
      privileged: false,
      line: c.imageLine,
    };
    execStart = [cmd];
  }
  const user = (service.user || c.user || config.user).split(':')[0] ?? '';
  return {
    ...service,
    execStart,
    environment: [...envPairs(config.env), ...c.environment, ...service.environment],
    workingDirectory: service.workingDirectory || c.workingDir || config.workingDir,
    // Both sections' Secret= (the supervisor refuses what it cannot deliver).
    ...(c.secrets === undefined ? {} : { secrets: unitSecrets({ service, container: c }) }),
    user,
    rootDirectory: root,
    binds,
    image,
  };
}
