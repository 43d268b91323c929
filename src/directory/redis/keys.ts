/**
 * Every Redis key and channel the directory uses, built here and nowhere else. All keys share the
 * hash tag `{dir}`, so every script's keys sit in one Redis Cluster hash slot.
 */
export interface DirectoryKeys {
  version: string;
  slots: string;
  stores: string;
  users: string;
  history: string;
  userCount: string;
  /** Pub/sub channel for invalidations (not a key, but named alongside them). */
  channel: string;
  /** The KEYS list every mutation script takes, in its documented order (common.lua). */
  mutation: string[];
  /** The KEYS list of resolve.lua. */
  read: string[];
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
    channel: `${base}changes`,
  };
  return {
    ...k,
    mutation: [k.version, k.slots, k.stores, k.users, k.history, k.userCount],
    read: [k.version, k.slots, k.stores, k.users],
  };
}
