import { z } from 'zod';

/** Shared field shapes for the section schemas. Defaults live only in the section files. */
export const port = z.number().int().min(1).max(65535);
export const portOrZero = z.number().int().min(0).max(65535);
export const ms = (min = 1) => z.number().int().min(min);
export const host = z.string().min(1);
export const listenTcp = z.strictObject({ host: host.default('127.0.0.1'), port: portOrZero });
/** A secret: never printed by `config print`, never logged. */
export const secret = z.string().min(1);
