import { DataType } from 'apache-arrow';
import type { Field, Schema } from 'apache-arrow';

/** Schemas that {@link freezeSchema} made read-only: their encoding can be cached by identity. */
const frozenSchemas = new WeakSet<Schema>();

/**
 * Makes a schema read-only all the way down, and returns it: the schema, its fields array,
 * each field at every depth (the children of its type), each type object's own properties,
 * and the `metadata` and `dictionaries` Maps, whose `set`, `delete` and `clear` then throw.
 * A change through any of them throws a `TypeError` (assignments throw in strict code, which
 * every ES module is).
 *
 * Why: a result layout's schema is shared by every result of its layout, and the Arrow answer
 * caches its encoding by schema object (`encodeArrowAnswer`). apache-arrow's `Schema` and
 * `Field` are mutable (`metadata` is a plain `Map`), so a change after the first answer would
 * leave later answers with the stale encoding (review of 5 December, finding 1). Nothing in
 * Quoll changes a layout's schema; freezing makes that a rule instead of an assumption. To
 * derive a different schema, build a new one (`schema.assign(...)`, `new Schema(fields,
 * new Map(schema.metadata))`).
 *
 * Type objects are frozen shallowly: a typed array inside one (a union's `typeIds`) cannot be
 * frozen by JavaScript. The types of an Arrow input's columns are the input schema's own, so
 * they become read-only with it; neither Quoll nor apache-arrow changes a type once built.
 */
export function freezeSchema(schema: Schema): Schema {
  for (const field of schema.fields) freezeField(field);
  Object.freeze(schema.fields);
  readOnlyMap(schema.metadata);
  readOnlyMap(schema.dictionaries);
  Object.freeze(schema);
  frozenSchemas.add(schema);
  return schema;
}

/** Whether {@link freezeSchema} made this schema read-only (so that it cannot change later). */
export function isFrozenSchema(schema: Schema): boolean {
  return frozenSchemas.has(schema);
}

function freezeField(field: Field): void {
  if (Object.isFrozen(field)) return;
  freezeType(field.type as DataType);
  readOnlyMap(field.metadata);
  Object.freeze(field);
}

function freezeType(type: DataType): void {
  if (Object.isFrozen(type)) return;
  // `children` is a getter on a dictionary (its value type's children), an own array otherwise.
  const children = type.children as Field[] | null | undefined;
  if (children) {
    for (const child of children) freezeField(child);
    Object.freeze(children);
  }
  if (DataType.isDictionary(type)) {
    freezeType(type.dictionary as DataType);
    freezeType(type.indices as DataType);
  }
  Object.freeze(type);
}

/** Makes a Map's own methods refuse changes; reads are untouched. */
function readOnlyMap(map: Map<unknown, unknown>): void {
  if (Object.isFrozen(map)) return;
  for (const method of ['set', 'delete', 'clear'] as const)
    Object.defineProperty(map, method, { value: refuseChange, enumerable: false });
  Object.freeze(map);
}

function refuseChange(): never {
  throw new TypeError(
    "This Arrow schema is a result layout's, shared by every result of the layout and encoded once for all their answers, so it is read-only. Build a new Schema to change it (schema.assign(...), or new Schema(fields, new Map(schema.metadata))).",
  );
}
