import { createHash } from 'node:crypto';
import type { DataType, Field, Schema } from 'apache-arrow';

/** Schemas already hashed: the writer sees the same `Schema` object for many batches. */
const cache = new WeakMap<Schema, string>();

function describeType(type: DataType): unknown {
  // `String(type)` names the type and its parameters (list size, time unit, precision);
  // children are described recursively so nullability and nested names count too.
  // Every concrete Arrow type overrides toString (e.g. "FixedSizeList[18]<Float32>").
  const name = (type as { toString(): string }).toString();
  const children = (type.children ?? []).map((f) => describeField(f));
  return children.length > 0 ? [name, children] : name;
}

function describeField(f: Field): unknown {
  const type: DataType = f.type as DataType;
  return [f.name, describeType(type), f.nullable];
}

/**
 * The id of an Arrow schema: a short hash of its column names, types and nullability.
 * Batches with the same id can share one segment file; a different id starts a new one.
 *
 * @example
 * schemaIdOf(table.schema) // 'a3f09c…' (16 hex characters)
 */
export function schemaIdOf(schema: Schema): string {
  let id = cache.get(schema);
  if (id === undefined) {
    const text = JSON.stringify(schema.fields.map(describeField));
    id = createHash('sha256').update(text).digest('hex').slice(0, 16);
    cache.set(schema, id);
  }
  return id;
}
