/**
 * Instance records built from their template, for SetDesiredState, Scale and Plan: the
 * template's file, verbatim, and its hash, once the file is known to hold for the instance.
 * A file that places every instance alike (no specifier in `[X-Fleet]`) is valid for one
 * instance when it is for all, so it is checked once per template version: scaling to
 * 100,000 validates the file once. The versions known valid belong to one
 * {@link InstanceRecords}, which the API server makes (startApiServer) and hands its handlers
 * as `ApiCluster.instanceRecords` (reads.ts): two servers in one process share nothing.
 */
import type { NumberRange, Unit } from '../../proto/flotilla/v1/records.js';
import { validateUnitFile, type UnitError, type UnitStateName } from '../../unit/index.js';
import { sharedByInstances } from '../view/snapshot.js';
import { invalidUnits } from '../gate/errors.js';

/** Template versions remembered before the set starts over. */
const VALID_TEMPLATES_LIMIT = 10_000;

/** Builds instance records, remembering which template versions hold for every instance. */
export class InstanceRecords {
  /** Template versions known valid for every instance (see {@link problems}). */
  private readonly validTemplates = new Set<string>();

  /**
   * The record of instance `name` of `template`: the template's file, verbatim, and the hash
   * of that file. INVALID_ARGUMENT when the file does not hold for this instance (a specifier
   * that expands to something invalid).
   */
  record(name: string, template: Unit, desiredState: UnitStateName): Unit {
    const errors = this.problems(name, template);
    if (errors.length > 0) throw invalidUnits(errors);
    return { name, file: template.file, hash: template.hash, desiredState };
  }

  /**
   * Throws INVALID_ARGUMENT, as {@link record} would, when the template's file does not hold
   * for one of the instances `numbers` (of template `prefix@.type`, as `instanceOf` names
   * them): a file that places every instance alike is checked once, however many there are.
   */
  checkNumbers(
    template: Unit,
    numbers: readonly NumberRange[],
    nameOf: (n: number) => string,
  ): void {
    for (const r of numbers) {
      for (let n = r.first; n <= r.last; n++) {
        const name = nameOf(n);
        const errors = this.problems(name, template);
        if (errors.length > 0) throw invalidUnits(errors);
        if (this.validTemplates.has(versionKey(template))) return;
      }
    }
  }

  /** The problems of `template`'s file as instance `name`, checked once per version if it can. */
  private problems(name: string, template: Unit): UnitError[] {
    // Looked up first: only versions that place every instance alike are remembered, and a
    // scale asks this of every instance it creates (100,000 of them, in one turn).
    const key = versionKey(template);
    if (this.validTemplates.has(key)) return [];
    const instance = { ...template, name };
    if (!sharedByInstances(instance)) return validateUnitFile(name, template.file);
    const errors = validateUnitFile(name, template.file);
    if (errors.length === 0) {
      if (this.validTemplates.size >= VALID_TEMPLATES_LIMIT) this.validTemplates.clear();
      this.validTemplates.add(key);
    }
    return errors;
  }
}

/** What {@link InstanceRecords} remembers a template version by. */
function versionKey(template: Unit): string {
  return `${template.name}\u0000${template.hash}`;
}
