/**
 * Fixed-size bit sets over machine indexes. Machines are indexed in id order, so scanning a
 * set from bit 0 upwards visits machines in id order: the planner's tie-break comes for
 * free, and intersecting a load bucket with a metadata mask costs one AND per 32 machines.
 */

/** A set of machine indexes; bit `i` of word `i >>> 5`. */
export type Bits = Uint32Array;

/** An empty set able to hold indexes `0 .. size-1`. */
export function makeBits(size: number): Bits {
  return new Uint32Array((size + 31) >>> 5);
}

/** A set holding every index `0 .. size-1`. */
export function fullBits(size: number): Bits {
  const b = makeBits(size).fill(0xffffffff);
  if ((size & 31) !== 0) b[b.length - 1] = (1 << (size & 31)) - 1;
  return b;
}

export function setBit(b: Bits, i: number): void {
  const w = i >>> 5;
  b[w] = (b[w] ?? 0) | (1 << (i & 31));
}

export function clearBit(b: Bits, i: number): void {
  const w = i >>> 5;
  b[w] = (b[w] ?? 0) & ~(1 << (i & 31));
}

/** `out = a AND b` (all three the same length); returns `out`. */
export function andInto(out: Bits, a: Bits, b: Bits): Bits {
  for (let w = 0; w < out.length; w++) out[w] = (a[w] ?? 0) & (b[w] ?? 0);
  return out;
}

/** `out = out OR a`; returns `out`. */
export function orInto(out: Bits, a: Bits): Bits {
  for (let w = 0; w < out.length; w++) out[w] = (out[w] ?? 0) | (a[w] ?? 0);
  return out;
}

/** Number of members. */
export function countBits(b: Bits): number {
  let n = 0;
  for (let w = 0; w < b.length; w++) {
    let x = b[w] ?? 0;
    x = x - ((x >>> 1) & 0x55555555);
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    n += (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  }
  return n;
}

/**
 * Visit the members of `a AND mask` (`mask` null = no mask) in ascending order until `visit`
 * returns true; returns that member, or -1 when none was accepted.
 */
export function findInBits(a: Bits, mask: Bits | null, visit: (i: number) => boolean): number {
  for (let w = 0; w < a.length; w++) {
    let bits = mask === null ? (a[w] ?? 0) : (a[w] ?? 0) & (mask[w] ?? 0);
    while (bits !== 0) {
      const low = bits & -bits;
      const i = (w << 5) + 31 - Math.clz32(low);
      if (visit(i)) return i;
      bits ^= low;
    }
  }
  return -1;
}
