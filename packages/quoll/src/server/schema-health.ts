import { schemaAheadMessage } from '../store/index.js';
import type { ServerContext } from './server-context.js';

/** `schema` of `GET /v1/health` (and of `GET /v2/health/ready` while `schema_ahead`). */
export interface SchemaHealthDto {
  status: 'current' | 'schema_ahead';
  /** The newest migration this node's code has. */
  code: number;
  /** The newest migration the database has applied. */
  database: number;
  /** What it means and what to do (only while `schema_ahead`). */
  message?: string;
}

/** The schema part of the health answers, from the node's last reading. */
export function schemaHealth(ctx: Pick<ServerContext, 'schemaState'>, withMessage: boolean): SchemaHealthDto {
  const { status, code, database } = ctx.schemaState();
  if (status === 'current') return { status, code, database };
  const dto: SchemaHealthDto = { status: 'schema_ahead', code, database };
  return withMessage ? { ...dto, message: schemaAheadMessage({ code, database }) } : dto;
}
