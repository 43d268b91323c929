/**
 * Every Redis key and channel storeroute uses, built here and nowhere else. Four groups, each
 * under its own hash tag, so whatever one script touches sits in one Redis Cluster hash slot:
 *
 *   <prefix>{dir}:version | slots | stores | users | history | user-count | retired-epochs
 *                                           the directory (every mutation script takes all seven)
 *   <prefix>{dir}:changes                   its invalidation channel (pub/sub, not a key)
 *   <prefix>{dir}:apply:<token>:slots | stores | users | history
 *                                           one `directory apply`'s staged tables (commit.lua)
 *   <prefix>{auth}:fail:ip:<client ip>      auth_http failure counters (record-failure.lua)
 *   <prefix>{auth}:fail:user:<login name>
 *   <prefix>{instances}                     the proxy instance registry, one hash
 *   <prefix>{status}:<kind>                 status documents of one kind (`agent`: one report
 *                                           per machine), one hash: name -> JSON; not audited
 *   <prefix>failover:lease:<store>          one failover runner per store (failover/lease.ts);
 *                                           a single key with a TTL, no hash tag needed
 *
 * The strings are a contract with data already in Redis: two releases share one Redis during a
 * rolling upgrade, so a changed byte here hides the directory from one of them.
 * test/core/redis-keys.test.ts pins them; test/redis-sharing.test.ts checks a running process uses no other.
 *
 * Why core/ and not directory/: the builders are pure string functions, and their users sit on
 * three floors (directory/, auth/, replay/). Only a module below all of them can serve every one
 * without an auth or replay key depending on the directory's code.
 */

export interface StagingKeys {
  slots: string;
  stores: string;
  users: string;
  history: string;
}

export interface DirectoryKeys {
  version: string;
  slots: string;
  stores: string;
  users: string;
  history: string;
  userCount: string;
  /** Hash: deleted store name -> the highest epoch it reached (a store created again starts above). */
  retiredEpochs: string;
  /** Pub/sub channel for invalidations (not a key, but named alongside them). */
  channel: string;
  /** The KEYS list every mutation script takes, in its documented order (common.lua). */
  mutation: string[];
  /** The KEYS list of resolve.lua. */
  read: string[];
  /**
   * Where one `directory apply` (identified by `token`) stages the tables it replaces whole before
   * commit.lua swaps them in; they expire by themselves if the apply dies half-way.
   */
  staging(token: string): StagingKeys;
  /** The KEYS list of commit.lua: the mutation keys, then the staging keys of `token`. */
  commit(token: string): string[];
}

export function directoryKeys(keyPrefix: string): DirectoryKeys {
  const base = `${keyPrefix}{dir}:`;
  const k = {
    version: `${base}version`,
    slots: `${base}slots`,
    stores: `${base}stores`,
    users: `${base}users`,
    history: `${base}history`,
    userCount: `${base}user-count`,
    retiredEpochs: `${base}retired-epochs`,
    channel: `${base}changes`,
  };
  const mutation = [k.version, k.slots, k.stores, k.users, k.history, k.userCount, k.retiredEpochs];
  const staging = (token: string): StagingKeys => {
    if (!/^[0-9a-f]{8,32}$/.test(token)) throw new Error(`staging token must be 8-32 hex digits, got ${JSON.stringify(token)}`);
    const t = `${base}apply:${token}:`;
    return { slots: `${t}slots`, stores: `${t}stores`, users: `${t}users`, history: `${t}history` };
  };
  return {
    ...k,
    mutation,
    read: [k.version, k.slots, k.stores, k.users],
    staging,
    commit(token) {
      const s = staging(token);
      return [...mutation, s.slots, s.stores, s.users, s.history];
    },
  };
}

/** The auth_http failure counters, shared by every proxy (auth/throttle-redis.ts). */
export interface AuthThrottleKeys {
  /** Failures from one client IP. */
  ip(ip: string): string;
  /** Failures for one login name. */
  user(user: string): string;
}

export function authThrottleKeys(keyPrefix: string): AuthThrottleKeys {
  const base = `${keyPrefix}{auth}:fail:`;
  return {
    ip: (ip) => `${base}ip:${ip}`,
    user: (user) => `${base}user:${user}`,
  };
}

/** The instance registry hash (replay/instances.ts); its own hash tag, no script touches it with others. */
export function instancesKey(keyPrefix: string): string {
  return `${keyPrefix}{instances}`;
}

/** Status kinds are part of a key: lower-case letters, digits and dashes, like `agent`. */
export const STATUS_KIND = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * The status hash of one kind (directory/redis: publishStatus, readStatus): name -> JSON document.
 * Its own hash tag, apart from `{dir}`: no script that changes the layout ever touches it, and a
 * status write is a plain HSET that cannot reach a layout key.
 */
export function statusKey(keyPrefix: string, kind: string): string {
  if (!STATUS_KIND.test(kind)) throw new Error(`status kind must match ${STATUS_KIND.source}, got ${JSON.stringify(kind)}`);
  return `${keyPrefix}{status}:${kind}`;
}

/** The lease a `storeroute failover` of `store` holds while it runs (failover/lease.ts). */
export function failoverLeaseKey(keyPrefix: string, store: string): string {
  return `${keyPrefix}failover:lease:${store}`;
}

/** All of them for one prefix (`directory.redis.keyPrefix`). */
export interface RedisKeys {
  directory: DirectoryKeys;
  authThrottle: AuthThrottleKeys;
  instances: string;
  status(kind: string): string;
  failoverLease(store: string): string;
}

export function redisKeys(keyPrefix: string): RedisKeys {
  return {
    directory: directoryKeys(keyPrefix), authThrottle: authThrottleKeys(keyPrefix), instances: instancesKey(keyPrefix),
    status: (kind) => statusKey(keyPrefix, kind),
    failoverLease: (store) => failoverLeaseKey(keyPrefix, store),
  };
}
