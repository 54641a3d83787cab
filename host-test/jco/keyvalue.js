// wasi:keyvalue@0.2.0-draft2 (store, atomics, batch.get-many) for jco: one in-memory map per
// Node process, shared by every instance of the component. Compare-and-swap
// compares a version taken under Node's single thread, so it is atomic.
// Only what the component imports (jco reports any other as missing).

const buckets = new Map();
let version = 0;

function data(name) {
  if (!buckets.has(name)) buckets.set(name, new Map());
  return buckets.get(name);
}

function write(map, key, value) {
  version += 1;
  map.set(key, { value: Uint8Array.from(value), version });
}

export class Bucket {
  #map;
  constructor(map) {
    this.#map = map;
  }
  static map(bucket) {
    return bucket.#map;
  }
  get(key) {
    const entry = this.#map.get(key);
    return entry && Uint8Array.from(entry.value);
  }
  set(key, value) {
    write(this.#map, key, value);
  }
  delete(key) {
    this.#map.delete(key);
  }
}

export const store = {
  Bucket,
  open(identifier) {
    if (identifier !== 'default') throw { tag: 'no-such-store' };
    return new Bucket(data(identifier));
  },
};

class Cas {
  #map;
  #key;
  #seen;
  constructor(map, key) {
    this.#map = map;
    this.#key = key;
    this.#seen = map.get(key);
  }
  static new(bucket, key) {
    return new Cas(Bucket.map(bucket), key);
  }
  current() {
    return this.#seen && Uint8Array.from(this.#seen.value);
  }
  swap(value) {
    const now = this.#map.get(this.#key);
    if ((now && now.version) !== (this.#seen && this.#seen.version)) {
      throw { tag: 'cas-failed', val: new Cas(this.#map, this.#key) };
    }
    write(this.#map, this.#key, value);
  }
}

export const atomics = {
  Cas,
  increment(bucket, key, delta) {
    const map = Bucket.map(bucket);
    const entry = map.get(key);
    const current = entry ? BigInt(new TextDecoder().decode(entry.value)) : 0n;
    const next = current + delta;
    write(map, key, new TextEncoder().encode(next.toString()));
    return next;
  },
  swap(cas, value) {
    cas.swap(value);
  },
};

/** Every key, for tests. */
export function keys(name = 'default') {
  return [...data(name).keys()].sort();
}

// batch.get-many: each key with its value, in the order asked.
export const batch = {
  getMany(bucket, keys) {
    const map = Bucket.map(bucket);
    return keys.map((key) => {
      const entry = map.get(key);
      return [key, entry && Uint8Array.from(entry.value)];
    });
  },
};
