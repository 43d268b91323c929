/**
 * Every Redis key and channel the directory uses, built here and nowhere else. All keys share the
 * hash tag `{dir}`, so every script's keys sit in one Redis Cluster hash slot.
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
